#!/usr/bin/env bash
# Runs every test program given on the command line, shows its output, and
# prints the suite's closing line: "total: N passed, N failed".
# A program that crashes or prints no closing line counts as one failure.
set -u
# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning
# threads steal the cores the working ones need (4-10x slower here).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
passed=0; failed=0; bad=()
for t in "$@"; do
    echo "== $t"
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "  FAIL $t printed no closing line (exit $rc)"; failed=$((failed + 1)); bad+=("$t"); continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "  FAIL $t exited $rc"; failed=$((failed + 1))
    fi
    [ "$rc" -ne 0 ] && bad+=("$t")
done
[ ${#bad[@]} -gt 0 ] && echo "failing programs: ${bad[*]}"
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
