#!/usr/bin/env bash
# A short training run under valgrind memcheck: every architecture trains a
# few steps, saves and reloads a checkpoint, generates; the tokenizer, token
# files and config files round-trip (build/test_faults_vg --train, built
# without -fopenmp and without AVX-512, see the Makefile). Zero errors and
# no definitely or indirectly lost block, or the test fails.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL $1"; }
if ! command -v valgrind >/dev/null 2>&1; then
    echo "test_valgrind: installing valgrind" >&2
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null 2>&1 ||
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null; }
fi
if ! command -v valgrind >/dev/null 2>&1; then
    bad "valgrind is not installed and could not be"
    echo "test_valgrind: $passed passed, $failed failed"
    exit 1
fi
make --no-print-directory -s build/test_faults_vg >/dev/null || bad "build build/test_faults_vg"
log=build/test_valgrind.log
out=$(valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --track-origins=yes --log-file="$log" \
    build/test_faults_vg --train 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    /'
line=$(printf '%s\n' "$out" | grep -E '^test_faults_train: [0-9]+ passed, 0 failed$')
[ -n "$line" ] && ok "the training run's own checks: ${line#*: }" || bad "the training run's own checks"
summary=$(grep -E 'ERROR SUMMARY' "$log" | tail -n 1 | sed 's/^==[0-9]*== //')
leaks=$(grep -E 'definitely lost|indirectly lost|All heap blocks were freed|in use at exit' "$log" | sed 's/^==[0-9]*== */    /')
printf '%s\n' "$leaks"
[ "$rc" -eq 0 ] && ok "valgrind exit 0 ($summary)" || { bad "valgrind exit $rc ($summary), log: $log"; grep -E '^==[0-9]+== ' "$log" | head -n 60; }
if grep -qE 'definitely lost: [1-9]|indirectly lost: [1-9]' "$log"; then bad "blocks lost"; else ok "no definitely or indirectly lost block"; fi
echo "test_valgrind: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
