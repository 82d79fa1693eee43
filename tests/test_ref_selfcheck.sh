#!/usr/bin/env bash
# The PyTorch reference (tests/lmu_ref.py) checked against itself, and its
# command line exercised end to end: ZOH and impulse response, direct vs FFT
# convolution, recurrent vs parallel logits (every mixer, in both archs),
# autograd vs finite differences, a window per layer (theta_last), the
# delay initialisation's lags, Legendre values and read-out peaks, the preset
# parameter counts of MODEL.md section 4, checkpoint round trips; then init -> grads -> generate-check on
# files, and tools/bench_torch.py's float32 model against the float64 oracle.
# Installs python3-torch (tools/setup.sh torch) when missing.
set -u
cd "$(dirname "$0")/.."
name=test_ref_selfcheck
PY=/usr/bin/python3   # Debian's python: a pyenv python3 earlier in PATH lacks torch
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $*"; }
fail() { failed=$((failed + 1)); echo "  FAIL $*"; }
finish() { echo "$name: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "installing python3-torch (tools/setup.sh torch)"
    tools/setup.sh torch || true
    if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
        fail "python3-torch and python3-numpy could not be installed"
        finish
    fi
fi
# tiny tensors: one thread, and no spinning on a shared machine
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

# 1. the in-process checks; their "ok"/"FAIL" lines are counted here
out=$("$PY" tests/lmu_ref.py selfcheck 2>&1); rc=$?
printf '%s\n' "$out"
p=$(printf '%s\n' "$out" | grep -c '^  ok ')
f=$(printf '%s\n' "$out" | grep -c '^  FAIL ')
passed=$((passed + p)); failed=$((failed + f))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail "lmu_ref.py selfcheck exited $rc"; fi
if ! printf '%s\n' "$out" | grep -q '^lmu_ref selfcheck: '; then fail "lmu_ref.py selfcheck did not finish"; fi

# 2. the command line on files (tests/ref_clicheck.py), and the script's own
#    entry point once
out=$("$PY" tests/ref_clicheck.py 2>&1)
printf '%s\n' "$out"
passed=$((passed + $(printf '%s\n' "$out" | grep -c '^  ok ')))
failed=$((failed + $(printf '%s\n' "$out" | grep -c '^  FAIL ')))
printf '%s\n' "$out" | grep -q '^ref_clicheck done' || fail "tests/ref_clicheck.py did not run to the end"
out=$("$PY" tests/lmu_ref.py count 2>&1)
if printf '%s\n' "$out" | grep -q '^lmu-1m    ffn .* 469 ' && printf '%s\n' "$out" | grep -q '^lmu-55k   ffn .* 105 '
then ok "tests/lmu_ref.py count prints the preset table (lmu-55k d_ff 105, lmu-1m d_ff 469)"
else printf '%s\n' "$out"; fail "tests/lmu_ref.py count"; fi

# 3. the benchmark peer computes the same model (float32 vs the float64 oracle)
out=$("$PY" tools/bench_torch.py --check 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^  ok   /    /'
if [ "$rc" -eq 0 ]; then ok "tools/bench_torch.py --check: float32 module == lmu_ref float64"
else fail "tools/bench_torch.py --check"; fi

finish
