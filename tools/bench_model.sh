#!/bin/sh
# bench_model.sh - lmu.h against PyTorch on the issue-4 benchmark, in one run.
#
#   tools/bench_model.sh            default run (about 15 minutes on 2 cores)
#   tools/bench_model.sh --quick    smaller shapes, about 3 minutes (NOT the
#                                   issue's configuration: a smoke test)
#   tools/bench_model.sh --full     more steps, all four contexts fed for
#                                   lmu-55k generation (30+ minutes)
#   options: --steps N (timed training steps after 1 warm-up, default 1), --threads "1 2",
#            --models "lmu-55k lmu-1m lmu-1m-attn transformer-1m",
#            --no-torch, --no-train, --no-generate, --no-scaling,
#            --out DIR (build/bench),
#            --c-wait-policy ACTIVE|PASSIVE (lmu.h's OMP_WAIT_POLICY, default
#            PASSIVE like PyTorch's)
#
# What it runs, all on this machine in this one run:
#   1. build/bench_fma: the FMA peak per core (the MFU denominator).
#   2. training at batch 8 x 1024, V = 50257, for each model and thread
#      count: build/bench_train and tools/bench_torch.py with the same
#      batch, seq, threads and steps, alternating C and PyTorch so machine
#      noise falls on both. Table: tokens/s (best step), ratio, peak RSS,
#      RSS ratio, MFU.
#   3. generation at batch 1: build/bench_generate and bench_torch.py
#      --generate, lmu-1m (O(1) state) and the transformer (KV cache), at
#      contexts 1k .. 64k.
#   4. training step time against n = 256 .. 16384 at batch 1 (LMU and
#      transformer), a CSV and a log-log plot (gnuplot):
#      OUT/scaling.png and OUT/scaling.svg.
# Everything printed goes to OUT/results.md too; raw outputs to OUT/logs/.
#
# Settings. PyTorch runs at its best, as tools/bench_torch.py describes:
# OPENBLAS_CORETYPE unset (this machine's environment pins it to Haswell,
# AVX2 only), OMP_WAIT_POLICY=PASSIVE, torch.set_num_threads(K), and
# jemalloc with decay off when installed. lmu.h runs with
# omp_set_num_threads(K) and OMP_WAIT_POLICY=PASSIVE too: with other work on
# the 2 cores, libgomp's default (active: idle threads spin at every
# barrier) made lmu-1m's step 2.3x slower here. Both report the best timed step (after
# warm-up); the ratio is taken between those. The machine is shared: the
# 1-minute load average is printed beside each row.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

MODE=default
STEPS=1
THREADS="1 2"
MODELS="lmu-55k lmu-1m lmu-1m-attn transformer-1m"
TORCH=1
TRAIN=1
SCALING=1
GENERATE=1
OUT=build/bench
BATCH=8
SEQ=1024
C_WAIT=PASSIVE
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --steps) STEPS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --models) MODELS=$2; shift ;;
    --no-torch) TORCH=0 ;;
    --no-scaling) SCALING=0 ;;
    --no-generate) GENERATE=0 ;;
    --no-train) TRAIN=0 ;;
    --out) OUT=$2; shift ;;
    --c-wait-policy) C_WAIT=$2; shift ;;
    -h | --help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "bench_model.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# per-mode shapes
GEN_TOKENS=128
GEN_CONTEXTS=1024,4096,16384,65536
GEN_FEED_BUDGET=40
SCAL_NMAX=16384
SCAL_STEPS=1
SCAL_BUDGET=6
SCAL_STOP=12
SCAL_LMU=lmu-1m
SCAL_TF=transformer-1m
case $MODE in
quick)
    SEQ=256
    THREADS=2
    MODELS="lmu-55k lmu-1m transformer-1m"
    STEPS=1
    GEN_TOKENS=32
    GEN_CONTEXTS=1024,4096
    GEN_FEED_BUDGET=5
    SCAL_NMAX=1024
    SCAL_LMU=lmu-55k
    SCAL_TF=transformer-55k
    ;;
full)
    [ "$STEPS" = 1 ] && STEPS=3
    GEN_TOKENS=256
    GEN_FEED_BUDGET=600
    SCAL_STEPS=2
    SCAL_BUDGET=30
    SCAL_STOP=1000
    ;;
esac

mkdir -p "$OUT/logs"
RES=$OUT/results.md
: >"$RES"
say() { printf '%s\n' "$*" | tee -a "$RES"; }
kv() { awk -v k="$2" -F': ' '$1 == k { print $2; exit }' "$1"; }
# a / b as "1.23x", or "-" when either is missing
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'; }
# ms/token of bench_generate's row for context $1 in log $2
ms_at() { awk -v c="$1" '$1 == "context" && $2 == c ":" { print $3; exit }' "$2"; }

make --no-print-directory build/bench_fma build/bench_train build/bench_generate >&2
# Private copies: another engineer's `make clean` must not pull a binary
# away in the middle of a 15-minute run.
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
cp build/bench_fma build/bench_train build/bench_generate "$BIN/"

PY=/usr/bin/python3
torch_run() { env -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=PASSIVE "$PY" tools/bench_torch.py "$@"; }
have_torch=0
if [ $TORCH = 1 ] && "$PY" -c 'import torch' 2>/dev/null; then have_torch=1; fi

say "# lmu.h vs PyTorch: training, generation, scaling ($MODE run)"
say ""
say "$(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
export OMP_WAIT_POLICY="$C_WAIT" # lmu.h's binaries; torch_run sets its own
say "lmu.h: gcc $(gcc -dumpfullversion) -std=c99 -O3 -march=native -fopenmp; OMP_WAIT_POLICY=$C_WAIT, omp_set_num_threads(K), glibc malloc (OPENBLAS_CORETYPE irrelevant: no BLAS)"
if [ $have_torch = 1 ]; then
    say "PyTorch: $("$PY" -c 'import torch; print(torch.__version__)') via $PY; OPENBLAS_CORETYPE unset (environment had ${OPENBLAS_CORETYPE:-unset}), OMP_WAIT_POLICY=PASSIVE, malloc as tools/bench_torch.py chooses (see its 'malloc:' line in $OUT/logs)"
else
    say "PyTorch: not run"
fi
say "Timings: best timed step after 1 warm-up step (min-of-N), $STEPS timed steps; a shared, noisy machine: compare ratios, not absolute numbers."
say ""

# ---------------------------------------------------------------- FMA peak
"$BIN/bench_fma" --trials 5 >"$OUT/logs/fma.txt"
PEAK=$(kv "$OUT/logs/fma.txt" fma_gflops_per_core)
say "## FMA peak (build/bench_fma)"
say ""
say '```'
tee -a "$RES" <"$OUT/logs/fma.txt"
say '```'
say "MFU below = training FLOPs/s (3 x lmu_config_flops_per_token x tokens/s) / ($PEAK GFLOP/s x threads)."
say "\"MFU (cpu)\" divides by the CPU seconds the step used instead of wall seconds x threads (blind to time-slicing by other processes)."
say ""

# ---------------------------------------------------------------- training
torch_model_args() {
    case $1 in
    transformer-*) echo "--tf $("$BIN/bench_train" "$1" --info | awk -F': ' '$1 == "tf_spec" { print $2 }')" ;;
    *-attn) echo "--config ${1%-attn} --mixer attn" ;;
    *) echo "--config $1" ;;
    esac
}

if [ $TRAIN = 1 ]; then
say "## Training: batch $BATCH x $SEQ tokens, V = 50257"
say ""
say "| model | N | threads | C tok/s | torch tok/s | ratio | C RSS MB | torch RSS MB | RSS ratio | C MFU | C MFU (cpu) | C fwd/bwd/adam s | load |"
say "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for model in $MODELS; do
    for th in $THREADS; do
        clog=$OUT/logs/train_${model}_t$th.txt
        tlog=$OUT/logs/torch_train_${model}_t$th.txt
        "$BIN/bench_train" "$model" --batch $BATCH --seq $SEQ --threads "$th" --steps "$STEPS" \
            --warmup 1 --peak "$PEAK" >"$clog" 2>&1 || echo "bench_train $model failed" >>"$clog"
        ctok=$(kv "$clog" tokens_per_s)
        crss=$(kv "$clog" peak_rss_mb)
        mfu=$(kv "$clog" mfu)
        mfuc=$(kv "$clog" mfu_cpu)
        split="$(kv "$clog" best_step_forward_s)/$(kv "$clog" best_step_backward_s)/$(kv "$clog" best_step_adam_s)"
        N=$(kv "$clog" N)
        ttok=-
        trss=-
        if [ $have_torch = 1 ]; then
            # shellcheck disable=SC2046
            torch_run $(torch_model_args "$model") --threads "$th" --batch $BATCH --seq $SEQ \
                --warmup 1 --steps "$STEPS" --max-seconds 600 >"$tlog" 2>&1 ||
                echo "bench_torch failed" >>"$tlog"
            tbest=$(kv "$tlog" s_per_step_best)
            [ -n "$tbest" ] && ttok=$(awk -v s="$tbest" -v n=$((BATCH * SEQ)) 'BEGIN { printf "%.1f", n / s }')
            trss=$(kv "$tlog" peak_rss_mb)
        fi
        tr=$(ratio "$ctok" "$ttok")
        rr=$(ratio "$crss" "$trss")
        mfu=$(awk -v a="$mfu" 'BEGIN { if (a != "") printf "%.1f%%", 100 * a; else print "-" }')
        mfuc=$(awk -v a="$mfuc" 'BEGIN { if (a != "") printf "%.1f%%", 100 * a; else print "-" }')
        say "| $model | $N | $th | ${ctok:--} | $ttok | $tr | ${crss:--} | ${trss:--} | $rr | $mfu | $mfuc | $split | $(cut -d' ' -f1 /proc/loadavg) |"
    done
done
say ""
say "tok/s: tokens per second of the best timed step on each side. RSS: getrusage ru_maxrss of the process (PyTorch's includes the interpreter, ~300 MB)."
if [ $have_torch = 1 ]; then
    say "PyTorch settings (from its output): $(grep -h '^malloc:\|^OPENBLAS_CORETYPE:\|^OMP_WAIT_POLICY:' "$OUT"/logs/torch_train_*.txt 2>/dev/null | sort -u | tr '\n' ' ')"
fi
say ""
fi

# ---------------------------------------------------------------- generation
if [ $GENERATE = 1 ]; then
    say "## Generation: batch 1, greedy, 1 thread both sides"
    say ""
    gen_models="lmu-1m transformer-1m"
    [ $MODE = quick ] && gen_models="lmu-55k transformer-55k"
    [ $MODE = full ] && gen_models="lmu-55k lmu-1m transformer-1m"
    for model in $gen_models; do
        glog=$OUT/logs/gen_$model.txt
        budget=$GEN_FEED_BUDGET
        "$BIN/bench_generate" "$model" --threads 1 --tokens $GEN_TOKENS --contexts $GEN_CONTEXTS \
            --feed-budget "$budget" >"$glog" 2>&1 || echo "bench_generate $model failed" >>"$glog"
        say "### $model: lmu.h (build/bench_generate $model --tokens $GEN_TOKENS --contexts $GEN_CONTEXTS --feed-budget $budget)"
        say '```'
        grep '^context\|^state\|^ratio\|^peak_rss' "$glog" | tee -a "$RES"
        say '```'
        if [ $have_torch = 1 ]; then
            tglog=$OUT/logs/torch_gen_$model.txt
            case $model in
            transformer-*)
                # shellcheck disable=SC2046
                torch_run --generate $(torch_model_args "$model") --threads 1 --tokens $GEN_TOKENS \
                    --contexts $GEN_CONTEXTS >"$tglog" 2>&1 || echo "bench_torch failed" >>"$tglog"
                say "PyTorch (bench_torch.py --generate $(torch_model_args "$model") --contexts $GEN_CONTEXTS):"
                say '```'
                grep '^ms_per_token_at\|^tokens_per_s_at\|^peak_rss' "$tglog" | tee -a "$RES"
                say '```'
                c1=${GEN_CONTEXTS%%,*}
                cl=${GEN_CONTEXTS##*,}
                say "ratio (PyTorch ms/token / lmu.h ms/token): at $c1: $(ratio "$(kv "$tglog" "ms_per_token_at_$c1")" "$(ms_at "$c1" "$glog")"), at $cl: $(ratio "$(kv "$tglog" "ms_per_token_at_$cl")" "$(ms_at "$cl" "$glog")")"
                ;;
            *)
                # shellcheck disable=SC2046
                torch_run --generate $(torch_model_args "$model") --threads 1 --tokens $GEN_TOKENS \
                    >"$tglog" 2>&1 || echo "bench_torch failed" >>"$tglog"
                tms=$(kv "$tglog" ms_per_token)
                cms=$(ms_at "${GEN_CONTEXTS%%,*}" "$glog")
                say "PyTorch (bench_torch.py --generate $(torch_model_args "$model")): $tms ms/token, $(kv "$tglog" tokens_per_s) tokens/s, peak RSS $(kv "$tglog" peak_rss_mb) MB"
                say "ratio (PyTorch ms/token / lmu.h ms/token at the first context): $(ratio "$tms" "$cms")"
                ;;
            esac
        fi
        say ""
    done
    say "fed: every token before the context was generated; jumped: the position set directly (LMU: nothing depends on it; attention: KV cache filled with random values, as the PyTorch peer does)."
    say ""
fi

# ---------------------------------------------------------------- scaling
if [ $SCALING = 1 ]; then
    say "## Training step time against sequence length (batch 1, 2 threads)"
    say ""
    say "One warm-up step, then $SCAL_STEPS timed (best kept); a model whose step passes $SCAL_STOP s stops there (--full: all n)."
    say ""
    for model in $SCAL_LMU $SCAL_TF; do
        "$BIN/bench_train" "$model" --scaling --threads 2 --nmin 256 --nmax $SCAL_NMAX \
            --steps $SCAL_STEPS --step-budget $SCAL_BUDGET --stop-after $SCAL_STOP --csv "$OUT/scaling_$model.csv" \
            >"$OUT/logs/scaling_$model.txt" 2>&1 || echo "scaling $model failed" >>"$OUT/logs/scaling_$model.txt"
    done
    grep -h 'skipped' "$OUT"/logs/scaling_*.txt | tee -a "$RES" || true
    say "| n | $SCAL_LMU s/step | $SCAL_TF s/step | $SCAL_LMU tok/s | $SCAL_TF tok/s |"
    say "|---|---|---|---|---|"
    awk -F, 'FNR == 1 { f++; next } { t[f, $2] = $3; k[$2] = 1 }
        END { for (n in k) printf "%d %s %s\n", n, t[1, n], t[2, n] }' \
        "$OUT/scaling_$SCAL_LMU.csv" "$OUT/scaling_$SCAL_TF.csv" | sort -n |
        while read -r n a b; do
            say "| $n | $a | $b | $(awk -v n="$n" -v s="$a" 'BEGIN { if (s + 0 > 0) printf "%.0f", n / s; else print "-" }') | $(awk -v n="$n" -v s="$b" 'BEGIN { if (s + 0 > 0) printf "%.0f", n / s; else print "-" }') |"
        done
    say ""
    say "Growth per doubling of n at the top (s(n) / s(n/2)): n log n predicts ~2.1, n^2 predicts 4."
    for model in $SCAL_LMU $SCAL_TF; do
        say "- $model: $(awk -F, 'FNR > 1 { s[++i] = $3; n[i] = $2 } END { for (j = 2; j <= i; j++) printf "%s%d: %.2f", (j > 2 ? ", " : ""), n[j], s[j] / s[j - 1] }' "$OUT/scaling_$model.csv")"
    done
    if command -v gnuplot >/dev/null 2>&1; then
        for fmt in png svg; do
            gnuplot -e "fmt='$fmt'; out='$OUT/scaling.$fmt'; tdir='tools'; lmu='$OUT/scaling_$SCAL_LMU.csv'; tf='$OUT/scaling_$SCAL_TF.csv'; lmu_label='$SCAL_LMU (lmu.h)'; tf_label='$SCAL_TF (lmu.h)'; title='Training step time vs sequence length, batch 1, 2 threads'" \
                tools/bench_model_scaling.gp 2>>"$OUT/logs/gnuplot.txt" || say "(gnuplot failed: see $OUT/logs/gnuplot.txt)"
        done
        say ""
        say "Plot: $OUT/scaling.png, $OUT/scaling.svg"
    else
        say "(gnuplot not installed: apt-get install gnuplot-nox for the plot)"
    fi
    say ""
fi
say "Raw outputs: $OUT/logs/"
