# The checks of the shell tests, shared: a test sets TEST_NAME to its name and
# sources this with its arguments (`. "$(dirname "$0")/lib.sh" "$@"`). It
# then runs from the project root, `check NAME CONDITION...` counts a
# check, and `finish` prints "TEST_NAME: N passed, N failed" and exits 0 only when
# none failed. -v as the first argument prints every check, not only the
# failures.
# idle OpenMP threads sleep: spinning ones starve the working ones on a busy machine
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd "$(dirname "$0")/.." || exit 1
verbose=0; [ "${1:-}" = -v ] && verbose=1
passed=0; failed=0
ok()   { passed=$((passed + 1)); [ $verbose = 1 ] && echo "  ok   $1"; return 0; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
finish() { echo "$TEST_NAME: $passed passed, $failed failed"; [ $failed -eq 0 ]; exit $?; }
