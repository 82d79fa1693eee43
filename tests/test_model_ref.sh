#!/usr/bin/env bash
# Loss and every parameter gradient of tiny models (LMU with mixer ffn,
# attn, rebased, based and conv, with a window per layer, a layer stack, and
# the transformer with mixer attn, rebased, a stack of conv, based,
# rebased, attention window 5, and the block-recurrent layer with fixed
# gates and its MLP or LSTM gates without, and two of them from a carried
# state, truncated backprop, and three multi-scale stacks, one of two levels) against the PyTorch reference tests/lmu_ref.py, which computes in float64 and is itself
# checked against finite differences by tests/test_ref_selfcheck.sh; and the
# delay initialisation against the reference's own. Installs python3-torch
# when missing.
set -u
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "test_model_ref: installing python3-torch (Debian) for the reference"
    tools/setup.sh torch || { echo "test_model_ref: 0 passed, 1 failed"; exit 1; }
fi
mkdir -p build
cc -std=c99 -O2 -g -march=native -fopenmp -I. -Itests tests/model_ref_tool.c -o build/model_ref_tool \
    $(pkg-config --cflags --libs stb) -lm || { echo "test_model_ref: 0 passed, 1 failed"; exit 1; }
passed=0; failed=0
for kind in ffn attn rebased based conv transformer layers stack trrebased trstack trwindow trbrt trbrtlstm trbrtcarry hier trhier hier2; do
    dir=build/model_ref_$kind
    rm -rf "$dir"; mkdir -p "$dir"
    if ! build/model_ref_tool dump $kind "$dir" ||
       ! /usr/bin/python3 tests/lmu_ref.py grads --ckpt "$dir/model.safetensors" \
            --batch "$dir/batch.safetensors" --out "$dir/ref.safetensors" >/dev/null; then
        echo "  FAIL $kind: could not produce both sides"; failed=$((failed + 1)); continue
    fi
    out=$(build/model_ref_tool compare $kind "$dir" -v)
    echo "$out" | grep -v ' passed, '
    line=$(echo "$out" | tail -n 1)
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
    passed=$((passed + p)); failed=$((failed + f))
done
# iattn_init = delay: the C model's L as created against the reference's own
# delay read-outs (one window, one window per layer, a stack)
for kind in ffn layers stack; do
    dir=build/model_ref_$kind
    if build/model_ref_tool init $kind "$dir" &&
       out=$(/usr/bin/python3 tests/lmu_ref.py delay-check --ckpt "$dir/init.safetensors" --tol 1e-6); then
        passed=$((passed + 1)); echo "  ok   $kind: $out"
    else
        failed=$((failed + 1)); echo "  FAIL $kind: delay initialisation: ${out:-no result}"
    fi
done
echo "test_model_ref: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
