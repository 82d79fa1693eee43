#!/usr/bin/env bash
# bench_mpi.sh - data-parallel training on this machine: 1 process x 2
# threads against 2 processes x 1 thread, and what the gradient sum costs.
#
#   tools/bench_mpi.sh                 lmu-1m and transformer-1m, batch 8 x 1024
#   options: --models "lmu-1m transformer-1m" --batch 8 --seq 1024
#            --steps N (timed steps after one warm-up, default 3)
#            --np 2 (processes) --out DIR (build/bench_mpi)
#
# For each model, one after the other (never two at once: they share the
# cores): build/train --threads NP (one process), then mpirun -np NP
# build/train_mpi --threads 1 with --reduce ordered and with --reduce
# allreduce. Tokens/s are the mean over the timed steps (log.csv's elapsed
# time, warm-up step excluded); the gradient sum's time per step and
# share are train_mpi's own report (rank 0, every step). Then a model of
# the cost across machines: gradient bytes per step and a ring
# all-reduce's time, 2 (P-1)/P bytes / bandwidth, at 1 and 10 Gbit/s,
# against the measured step time. Token data are random ids (V = 50257):
# the speed does not depend on them. Results: OUT/results.md.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODELS="lmu-1m transformer-1m"; BATCH=8; SEQ=1024; STEPS=3; NP=2; OUT=build/bench_mpi
while [ $# -gt 0 ]; do
    case "$1" in
    --models) MODELS=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --seq) SEQ=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --np) NP=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench_mpi: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
command -v mpicc >/dev/null || tools/setup.sh mpi
make --no-print-directory build/train build/train_mpi build/bench_fma >/dev/null
mkdir -p "$OUT"
MPI="mpirun --oversubscribe"; [ "$(id -u)" -eq 0 ] && MPI="$MPI --allow-run-as-root"
export OMP_WAIT_POLICY=PASSIVE OMPI_MCA_btl_vader_single_copy_mechanism=none
R=$OUT/results.md
say() { echo "$@" | tee -a "$R"; }
: >"$R"

# random GPT-2 ids, enough for every window
python3 - "$OUT/rand.train.tok" <<'EOF'
import random, struct, sys
n = 2_000_000; random.seed(1)
with open(sys.argv[1], "wb") as f:
    f.write(b"LMUTOKS\0" + struct.pack("<IIQQ", 1, 50257, n, 0))
    f.write(struct.pack("<%dH" % n, *(random.randrange(50257) for _ in range(n))))
EOF

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1) (family $(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1), model $(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -1)$(grep -q avx512f /proc/cpuinfo && echo ', AVX-512' || echo ', AVX2 without AVX-512'))"
fma=$(build/bench_fma | sed -n 's/^fma_gflops_per_core: //p')
bw=$(python3 -c '
import time
a = bytearray(512 << 20); b = bytearray(512 << 20); mb = memoryview(b); best = 0
mb[:] = a  # first touch of the pages, not timed
for _ in range(3):
    t = time.perf_counter(); mb[:] = a; t = time.perf_counter() - t; best = max(best, 2 * len(a) / t / 1e9)
print("%.1f" % best)')
say "# Data-parallel training, $(date -u +%Y-%m-%d)"
say ""
say "CPU: $cpu, $(nproc) cores; FMA peak $fma GFLOP/s per core (build/bench_fma); memcpy $bw GB/s (read + write, one thread)."
say "Open MPI $(mpirun --version | head -1 | awk '{print $NF}'), one machine (shared memory). Batch $BATCH x $SEQ, V 50257, $STEPS timed steps after one warm-up."
say ""

A="--train $OUT/rand.train.tok --val none --batch $BATCH --seq $SEQ --steps $((STEPS + 1)) --save-every 0 --lr 1e-4"
# mean seconds per step over the timed steps, from log.csv's elapsed_s
step_s() { awk -F, -v k="$STEPS" 'NR == 2 { a = $8 } NR > 2 { b = $8 } END { printf "%.3f", (b - a) / k }' "$1"; }

say "| model | run | tokens/s | step (s) | gradient sum per step | share of the step | gradient MB |"
say "|---|---|---:|---:|---:|---:|---:|"
for m in $MODELS; do
    d=$OUT/$m; rm -rf "$d"; mkdir -p "$d"
    build/train $A --preset "$m" --threads "$NP" --out "$d/one" >"$d/one.log" 2>&1
    s=$(step_s "$d/one/log.csv")
    say "| $m | 1 process x $NP threads | $(awk -v s="$s" -v t=$((BATCH * SEQ)) 'BEGIN { printf "%.0f", t / s }') | $s | | | |"
    for red in ordered allreduce; do
        $MPI -np "$NP" build/train_mpi $A --preset "$m" --threads 1 --reduce $red --out "$d/$red" >"$d/$red.log" 2>&1
        s=$(step_s "$d/$red/log.csv")
        line=$(grep "summing gradients took" "$d/$red.log")
        pct=$(echo "$line" | sed -n 's/.*took \([0-9.]*\)%.*/\1/p')
        ms=$(echo "$line" | sed -n 's/.*(\([0-9.]*\) ms a step.*/\1/p')
        mb=$(echo "$line" | sed -n 's/.*, \([0-9.]*\) MB of gradient.*/\1/p')
        say "| $m | $NP processes x 1 thread, $red | $(awk -v s="$s" -v t=$((BATCH * SEQ)) 'BEGIN { printf "%.0f", t / s }') | $s | $ms ms | $pct% | $mb |"
        echo "$mb $s" >"$d/$red.cost"
    done
done
say ""
say "Across machines (a model, not a measurement): a ring all-reduce of G bytes over P machines moves"
say "2 (P-1)/P G bytes through each link; at 1 Gbit/s (125 MB/s) and 10 Gbit/s (1250 MB/s), P = 2 and 8,"
say "against the step time measured above (2 processes; on P machines of this kind each would take about that):"
say ""
say "| model | gradient MB | step (s) | P=2, 1 Gbit/s | P=8, 1 Gbit/s | P=2, 10 Gbit/s | P=8, 10 Gbit/s |"
say "|---|---:|---:|---:|---:|---:|---:|"
for m in $MODELS; do
    read -r mb s <"$OUT/$m/allreduce.cost"
    say "$(awk -v m="$m" -v g="$mb" -v s="$s" 'BEGIN {
        printf "| %s | %.1f | %.2f |", m, g, s
        n = split("2 125 8 125 2 1250 8 1250", a, " ")
        for (i = 1; i <= n; i += 2) { t = 2 * (a[i] - 1) / a[i] * g / a[i + 1]; printf " %.2f s (%.0f%%) |", t, 100 * t / (s + t) }
    }')"
done
say ""
say "(The percentage is the communication's share if it does not overlap the computation, as in"
say "train_mpi, where the sum follows the backward pass.)"
echo "bench_mpi: wrote $R"
