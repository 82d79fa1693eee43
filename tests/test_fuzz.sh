#!/usr/bin/env bash
# libFuzzer on every parser that reads outside data (tests/fuzz/fuzz_*.c):
# safetensors (lmu_st_load_memory), model checkpoints (lmu_model_load_memory),
# encoder.json + vocab.bpe (lmu_tokenizer_load_memory), lmu_encode on any
# bytes (decode(encode(x)) == x), token files, config files.
#
# For each target: build it with clang -fsanitize=fuzzer,address,undefined;
# replay the seed corpus (tests/fuzz/gen_seeds.c makes it from small valid
# files) and every past crash kept in tests/fuzz/regress/<target>/; then fuzz
# for FUZZ_SECONDS (default 20) from the corpus in build/fuzz/corpus/<target>
# (kept between runs). A crash fails the test and is left in
# build/fuzz/artifacts/; copy it to tests/fuzz/regress/<target>/ once fixed
# so it is replayed from then on.
#
#   FUZZ_SECONDS=0 tests/test_fuzz.sh       replay only
#   FUZZ_TARGETS="st_load encode" ...       a subset
#   tools/fuzz.sh 600                       the longer run for people
set -u
cd "$(dirname "$0")/.."
S=${FUZZ_SECONDS:-20}
B=build/fuzz
mkdir -p "$B/corpus" "$B/artifacts"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $*"; }
bad() { failed=$((failed + 1)); echo "  FAIL $*"; }
STB_CFLAGS=$(pkg-config --cflags stb 2>/dev/null || echo -I/usr/include/stb)
STB_INC=$(echo "$STB_CFLAGS" | sed -n 's/.*-I\([^ ]*\).*/\1/p')
[ -n "$STB_INC" ] || STB_INC=/usr/include/stb
CLANG=${FUZZ_CC:-clang}

# libFuzzer ships with Debian's clang (libclang-rt-dev); install it if missing.
probe() {
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}\n' > "$B/probe.c"
    "$CLANG" -fsanitize=fuzzer "$B/probe.c" -o "$B/probe" >/dev/null 2>&1
}
if ! probe; then
    echo "test_fuzz: installing clang (libFuzzer)" >&2
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq clang >/dev/null 2>&1 ||
        { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq clang >/dev/null 2>&1; }
fi
have_fuzzer=1
probe || have_fuzzer=0

deps="lmu.h lmu_fft.h tests/fuzz/fuzz_common.h tests/fuzz/fuzz_vocab.h tests/fuzz/ubsan_ignore.txt"
newer() { # out src...: out missing or older than a source
    local o=$1 s
    shift
    [ -e "$o" ] || return 0
    for s in "$@"; do [ "$s" -nt "$o" ] && return 0; done
    return 1
}

# Seeds, fresh every run (cheap, and always from the current writers).
if newer "$B/gen_seeds" tests/fuzz/gen_seeds.c $deps; then
    cc -std=c99 -O1 -g -I. -isystem "$STB_INC" tests/fuzz/gen_seeds.c -o "$B/gen_seeds" -lm ||
        bad "build gen_seeds"
fi
rm -rf "$B/seeds"
if "$B/gen_seeds" "$B/seeds" >/dev/null; then ok "seed corpora: $(find "$B/seeds" -type f | wc -l) files"; else bad "gen_seeds"; fi

targets=${FUZZ_TARGETS:-$(for f in tests/fuzz/fuzz_*.c; do b=${f##*/fuzz_}; echo "${b%.c}"; done)}
max_len() {
    case $1 in
        st_load | model_load) echo 16384 ;;
        tokenizer_load) echo 12288 ;;
        *) echo 4096 ;;
    esac
}
total_execs=0
for t in $targets; do
    src=tests/fuzz/fuzz_$t.c
    bin=$B/fuzz_$t
    [ -f "$src" ] || { bad "no target $src"; continue; }
    reg=tests/fuzz/regress/$t
    inputs=("$B/seeds/$t")
    [ -d "$reg" ] && inputs+=("$reg")
    if [ "$have_fuzzer" = 0 ]; then
        # No libFuzzer: still replay everything under the sanitizers.
        if newer "$bin.replay" "$src" $deps; then
            cc -std=c99 -O1 -g -DFZ_REPLAY_MAIN -fsanitize=address,undefined -fno-sanitize-recover=all \
                -I. -isystem "$STB_INC" "$src" -o "$bin.replay" -lm || { bad "build $t (replay)"; continue; }
        fi
        files=$(find "${inputs[@]}" -type f 2>/dev/null)
        if "$bin.replay" $files >/dev/null 2>"$B/$t.log"; then ok "$t: seeds and regressions replay clean (no libFuzzer)"; else bad "$t: replay (log $B/$t.log)"; tail -n 30 "$B/$t.log"; fi
        continue
    fi
    if newer "$bin" "$src" $deps; then
        "$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -fsanitize-ignorelist=tests/fuzz/ubsan_ignore.txt \
            -I. -isystem "$STB_INC" "$src" -o "$bin" -lm || { bad "build $t"; continue; }
    fi
    # 1. replay: seeds and past crashes
    if "$bin" -runs=0 -artifact_prefix="$B/artifacts/$t-replay-" "${inputs[@]}" >"$B/$t.replay.log" 2>&1; then
        ok "$t: $(find "${inputs[@]}" -type f | wc -l) seeds and regression inputs replay clean"
    else
        bad "$t: replay crashed (log $B/$t.replay.log)"
        grep -E 'ERROR|FZ_ASSERT|SUMMARY|Test unit written|runtime error' "$B/$t.replay.log" | head -n 20
        continue
    fi
    [ "$S" -gt 0 ] || continue
    # 2. fuzz
    mkdir -p "$B/corpus/$t"
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    "$bin" -max_total_time="$S" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" "${dict[@]}" \
        -print_final_stats=1 -artifact_prefix="$B/artifacts/$t-" \
        "$B/corpus/$t" "${inputs[@]}" >"$B/$t.log" 2>&1
    rc=$?
    execs=$(grep -E '^stat::number_of_executed_units' "$B/$t.log" | awk '{print $2}')
    cov=$(grep -E '#[0-9]+.*cov:' "$B/$t.log" | tail -n 1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, ft \2, corpus \3/')
    total_execs=$((total_execs + ${execs:-0}))
    if [ "$rc" -eq 0 ]; then
        ok "$t: ${execs:-?} executions in ${S} s ($cov), no crash"
    else
        bad "$t: crashed after ${execs:-?} executions (exit $rc); log $B/$t.log"
        grep -E 'ERROR|FZ_ASSERT|SUMMARY|Test unit written|runtime error|^    #[0-9]' "$B/$t.log" | head -n 30
        echo "       fix it, then: cp the artifact above into $reg/"
    fi
done
[ "$S" -gt 0 ] && echo "  total executions: $total_execs"
[ "$have_fuzzer" = 0 ] && bad "libFuzzer (clang -fsanitize=fuzzer) unavailable: replayed only, no fuzzing"
echo "test_fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
