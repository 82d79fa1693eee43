#!/usr/bin/env bash
# The README's commands, exactly as written: every example's build line (the
# same line as in the example's first comment) is in the README and builds;
# the two set-up commands name real Makefile targets. (.ci/run runs the two
# set-up commands themselves: `make test` and `make demo`.)
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0
ok() { passed=$((passed + 1)); [ "${V:-}" = 1 ] && echo "  ok   $1"; return 0; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; }

grep -qxF '    make demo    # fetch the Brown corpus and GPT-2'"'"'s tokenizer, train lmu-55k for a few minutes, plot, sample' README.md \
    && ok "README shows make demo" || fail "README's first command is not make demo"
grep -qE '^    make test +#' README.md && ok "README shows make test" || fail "README does not show make test"
for t in demo test; do
    make -n "$t" >/dev/null 2>&1 && ok "Makefile has target $t" || fail "Makefile has no target $t"
done

mkdir -p build
for src in examples/*.c; do
    line=$(grep -m1 -E '^ +build: cc ' "$src" | sed -E 's/^ +build: //')
    if [ -z "$line" ]; then fail "$src: no build line in its first comment"; continue; fi
    if grep -qxF "    $line" README.md; then ok "$src: build line is in the README"
    else fail "$src: README lacks its build line: $line"; continue; fi
done
# every cc command in the README, run exactly as written
while IFS= read -r cmd; do
    if (eval "$cmd") >build/test_readme.log 2>&1; then ok "runs: $cmd"
    else fail "README command fails: $cmd"; head -5 build/test_readme.log; fi
done < <(grep -E '^    (cc|mpicc) ' README.md | sed -E 's/^    //')
echo "test_readme: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
