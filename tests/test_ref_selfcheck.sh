#!/usr/bin/env bash
# The PyTorch reference (tools/lmu_ref.py) checked against itself, and its
# command line exercised end to end: ZOH and impulse response, direct vs FFT
# convolution, recurrent vs parallel logits (both mixers and the transformer),
# autograd vs finite differences, the preset parameter counts of MODEL.md
# section 4, checkpoint round trips; then init -> grads -> generate-check on
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
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# 1. the in-process checks; their "ok"/"FAIL" lines are counted here
out=$("$PY" tools/lmu_ref.py selfcheck 2>&1); rc=$?
printf '%s\n' "$out"
p=$(printf '%s\n' "$out" | grep -c '^  ok ')
f=$(printf '%s\n' "$out" | grep -c '^  FAIL ')
passed=$((passed + p)); failed=$((failed + f))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail "lmu_ref.py selfcheck exited $rc"; fi
if ! printf '%s\n' "$out" | grep -q '^lmu_ref selfcheck: '; then fail "lmu_ref.py selfcheck did not finish"; fi

# 2. the command line, on files
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() { "$PY" "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log"; return 1; }; }
for spec in "lmu-55k,V=97,n=40" "lmu-55k,V=97,n=40,mixer=attn" "arch=transformer,V=97,n=40,d=32,L=2"; do
    if run tools/lmu_ref.py init --config "$spec" --out "$tmp/m.safetensors" --seed 2 --jitter 0.05 &&
       run - "$tmp" <<'EOF'
import sys, torch
sys.path.insert(0, "tools")
import lmu_ref
tmp = sys.argv[1]
g = torch.Generator().manual_seed(4)
lmu_ref.st_write(f"{tmp}/b.safetensors", {"tokens": torch.randint(0, 97, (2, 33), generator=g, dtype=torch.int32)})
EOF
    then
        if run tools/lmu_ref.py grads --ckpt "$tmp/m.safetensors" --batch "$tmp/b.safetensors" --out "$tmp/r.safetensors" &&
           run - "$tmp" <<'EOF'
import sys, math, torch
sys.path.insert(0, "tools")
import lmu_ref
tmp = sys.argv[1]
cfg, P = lmu_ref.load_checkpoint(f"{tmp}/m.safetensors")
R, meta = lmu_ref.st_read(f"{tmp}/r.safetensors")
tok = lmu_ref.load_tokens(f"{tmp}/b.safetensors")
names = list(lmu_ref.param_shapes(cfg))
assert R["loss"].dtype == torch.float64 and R["loss"].shape == (1,)
assert R["logits"].shape == (2, 32, 97) and R["logits"].dtype == torch.float32
assert all(R["grad." + k].shape == P[k].shape and R["grad." + k].dtype == torch.float32 for k in names)
assert all(R["grad." + k].abs().max() > 0 for k in names), "a gradient is all zero"
# the file agrees with an in-process float64 run, loss near log V at init
loss, logits, grads = lmu_ref.compute_grads(P, cfg, tok)
assert abs(R["loss"].item() - loss.item()) == 0.0
assert abs(loss.item() - math.log(97)) < 0.5, loss.item()
EOF
        then ok "CLI $spec: init -> grads writes loss, logits and ${spec%%,*} gradients"
        else fail "CLI $spec: grads"; fi
        if run tools/lmu_ref.py generate-check --ckpt "$tmp/m.safetensors" --batch "$tmp/b.safetensors" --out "$tmp/g.safetensors"
        then ok "CLI $spec: generate-check, recurrent == parallel ($(tr -d '\n' <"$tmp/log" | sed 's/.*max |diff| \([^ ]*\).*/\1/'))"
        else fail "CLI $spec: generate-check"; fi
    else
        fail "CLI $spec: init"
    fi
done
if run tools/lmu_ref.py count && grep -q '^lmu-1m    ffn .* 469 ' "$tmp/log"; then ok "CLI count prints the preset table"
else fail "CLI count"; fi

# 3. the benchmark peer computes the same model (float32 vs the oracle)
out=$("$PY" tools/bench_torch.py --check 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^  ok   /    /; s/^  FAIL /    FAIL /'
if [ "$rc" -eq 0 ]; then ok "bench_torch.py --check: float32 module == lmu_ref float64"
else fail "bench_torch.py --check"; fi

finish
