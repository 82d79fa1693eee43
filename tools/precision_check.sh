#!/usr/bin/env bash
# precision_check.sh - does mixed precision change what a model learns?
# The same run twice, --precision fp32 and --precision bf16, then their
# training losses step by step and their validation losses side by side.
#
#   tools/precision_check.sh                    lmu-55k and lmu-1m, 300 steps
#   options: --models "lmu-55k lmu-1m" --steps 300 --batch 8 --seq 128
#            --lr 3e-3 --data PREFIX (data/brown: tools/fetch_data.sh)
#            --threads N (each run; the two run side by side, default 1)
#            --out DIR (build/precision_check)
#
# Both runs of a model start from the same seed and see the same batches
# (train's batches are a function of (seed, step)), so every difference is
# the bf16 products'. Printed per model: the largest and the mean relative
# difference of the step losses, the last 50 steps' mean loss of each, and
# the validation losses (eval every 50 steps, the same subset). Results:
# OUT/results.md. The two runs of a model go side by side, one thread
# each: timings are not the point here (tools/bench_model.sh is).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODELS="lmu-55k lmu-1m"; STEPS=300; BATCH=8; SEQ=128; LR=3e-3; DATA=data/brown; THREADS=1
OUT=build/precision_check
while [ $# -gt 0 ]; do
    case "$1" in
    --models) MODELS=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --seq) SEQ=$2; shift ;;
    --lr) LR=$2; shift ;;
    --data) DATA=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "precision_check: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -f "$DATA.train.tok" ] || { echo "precision_check: no $DATA.train.tok (tools/fetch_data.sh, build/prepare)" >&2; exit 2; }
make --no-print-directory build/train >/dev/null
mkdir -p "$OUT"
{
    echo "| model | steps x tokens | step loss: max / mean relative difference | last 50 steps fp32 / bf16 | val loss fp32 / bf16 (every 50 steps) |"
    echo "|---|---|---|---|---|"
} >"$OUT/results.md"
for m in $MODELS; do
    for p in fp32 bf16; do
        rm -rf "$OUT/$m-$p"
        build/train --data "$DATA" --preset "$m" --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --lr "$LR" \
            --eval-every 50 --save-every 0 --threads "$THREADS" --precision $p --out "$OUT/$m-$p" \
            >"$OUT/$m-$p.log" 2>&1 &
    done
    wait
    for p in fp32 bf16; do
        grep -q "train: done" "$OUT/$m-$p.log" || { echo "precision_check: $m $p failed (see $OUT/$m-$p.log)" >&2; exit 1; }
    done
    row=$(paste -d, "$OUT/$m-fp32/log.csv" "$OUT/$m-bf16/log.csv" | awk -F, -v n="$STEPS" -v m="$m" -v b="$BATCH" -v s="$SEQ" '
        NR == 1 { w = NF / 2; for (i = 1; i <= w; i++) if ($i == "loss") L = i; else if ($i == "val_loss") V = i; next }
        {
            a = $L; c = $(L + w); e = (a - c) / a; if (e < 0) e = -e
            if (e > mx) mx = e; sum += e; k++
            if (k > n - 50) { ta += a; tc += c; tn++ }
            if ($V != "") vl = vl sprintf("%s%.4f / %.4f", vl == "" ? "" : ", ", $V, $(V + w))
        }
        END { printf "| %s | %d x %d | %.2e / %.2e | %.4f / %.4f | %s |", m, k, b * s, mx, sum / k, ta / tn, tc / tn, vl }')
    echo "$row" | tee -a "$OUT/results.md"
done
echo "precision_check: $OUT/results.md"
