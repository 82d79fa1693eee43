#!/usr/bin/env bash
# Training across processes (examples/train.c built with mpicc -DTRAIN_MPI),
# on one machine with Open MPI's mpirun (--allow-run-as-root: CI runs as
# root; --oversubscribe: 4 ranks on 2 cores). Checks: 1, 2 and 4 processes
# with the ordered sum write the same checkpoint bits as build/train with
# the same --shards; MPI_Allreduce agrees to 1e-6; a run stopped with 2
# processes and resumed with 4 ends with the same bits; a rank killed with
# SIGKILL stops the others within seconds and the last checkpoint resumes;
# SIGUSR1 and Ctrl-C on mpirun stop at a step boundary with a checkpoint;
# --carry keeps each rank's states and resumes bit for bit across counts;
# bad settings and mismatched ranks get one clear message and no hang.
# Closing line: "test_mpi: N passed, N failed" (-v: every check).
set -u
TEST_NAME=test_mpi; . "$(dirname "$0")/lib.sh" "$@"
W=build/test_mpi
rm -rf "$W"; mkdir -p "$W"
command -v mpicc >/dev/null || tools/setup.sh mpi >"$W/setup.log" 2>&1
check "mpicc and mpirun installed (tools/setup.sh mpi)" command -v mpicc mpirun
command -v mpicc >/dev/null || finish

# both programs from the lines in train.c's first comment: the same flags,
# so the same arithmetic
line=$(grep -m1 -E '^ +build: cc ' examples/train.c | sed -E 's/^ +build: //; s#build/train#'"$W"'/train#')
mline=$(grep -m1 -E '^ +MPI: +mpicc ' examples/train.c | sed -E 's/^ +MPI: +//; s#build/train_mpi#'"$W"'/train_mpi#')
eval "$line" >"$W/cc.log" 2>&1; check "train builds: $line" [ -x "$W/train" ]
eval "$mline" >"$W/mpicc.log" 2>&1; check "train_mpi builds: $mline" [ -x "$W/train_mpi" ]
[ -x "$W/train" ] && [ -x "$W/train_mpi" ] || { cat "$W/mpicc.log"; finish; }
make --no-print-directory build/prepare >"$W/make.log" 2>&1
head -c 40000 README.md >"$W/a.txt"; tail -c 30000 lmu.h >"$W/b.txt"
build/prepare --bytes --val 0.2 -o "$W/c" "$W/a.txt" "$W/b.txt" >"$W/prepare.log" 2>&1
tail -c 20000 examples/train.c >"$W/d.txt"
mkdir -p "$W/other"; build/prepare --bytes --val 0.2 -o "$W/other/c" "$W/a.txt" "$W/d.txt" >>"$W/prepare.log" 2>&1
check "token files" [ -s "$W/c.train.tok" -a -s "$W/other/c.train.tok" ]

export OMPI_MCA_btl_vader_single_copy_mechanism=none # containers lack CMA
MPI="mpirun --allow-run-as-root --oversubscribe"
TM=$PWD/$W/train_mpi
A="--data $PWD/$W/c --preset lmu-55k --batch 8 --seq 32 --steps 6 --eval-every 3 --eval-batches 2 --threads 1 --save-every 0"
params() { cut -d, -f1-6 "$1"; } # log.csv without the timings

# ---- the ordered sum: the same bits for any number of processes ----------
"$W/train" $A --shards 4 --out "$W/one" >"$W/one.log" 2>&1
check "train --shards 4 runs" [ -s "$W/one/model.safetensors" ]
for np in 1 2 4; do
    $MPI -np $np "$TM" $A --shards 4 --out "$W/p$np" >"$W/p$np.log" 2>&1; rc=$?
    check "$np process(es), ordered: exit $rc, the same checkpoint bits as train --shards 4" \
        cmp -s "$W/one/model.safetensors" "$W/p$np/model.safetensors"
    check "$np process(es): the same losses, gradient norms, validation in log.csv" \
        diff -q <(params "$W/one/log.csv") <(params "$W/p$np/log.csv")
done
check "only rank 0 prints: one plan line" [ "$(grep -c '^train: lmu-55k' "$W/p4.log")" -eq 1 ]
check "train_mpi reports its shards" grep -q "4 processes, each batch in 4 shards of 2" "$W/p4.log"
"$W/train" $A --out "$W/one1" >/dev/null 2>&1
$MPI -np 1 "$TM" $A --out "$W/m1" >/dev/null 2>&1
check "one process, one shard: the same bits as plain train" cmp -s "$W/one1/model.safetensors" "$W/m1/model.safetensors"

# ---- MPI_Allreduce: equal to rounding --------------------------------------
# after one step the gradient and the parameters (as vectors), and over six steps the logged losses and
# gradient norms (Adam divides by the gradient's size, so parameters with
# tiny gradients drift apart faster over steps than the gradients do)
$MPI -np 4 "$TM" $A --shards 4 --reduce allreduce --out "$W/ar" >"$W/ar.log" 2>&1
"$W/train" $A --steps 1 --shards 4 --out "$W/one_s1" >/dev/null 2>&1
$MPI -np 4 "$TM" $A --steps 1 --shards 4 --reduce allreduce --out "$W/ar_s1" >/dev/null 2>&1
d=$(python3 - "$W/one_s1/model.safetensors" "$W/ar_s1/model.safetensors" <<'EOF'
import json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or v["dtype"] != "F32": continue
        s, e = v["data_offsets"]; out[k] = struct.unpack("<%df" % ((e - s) // 4), b[8 + n + s:8 + n + e])
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys()
def rel(pick):  # |a - b| / |a| over the tensors pick chooses, as one vector
    d = sum((x - y) ** 2 for k in a if pick(k) for x, y in zip(a[k], b[k]))
    return (d / sum(x * x for k in a if pick(k) for x in a[k])) ** 0.5
print("%.3g %.3g" % (rel(lambda k: k.startswith("optim.m.")), rel(lambda k: not k.startswith("optim."))))
EOF
)
check "allreduce, one step: gradient (optim.m) and parameters within 1e-6 relative of the ordered sum's ($d)" \
    awk -v d="$d" 'BEGIN { split(d, e, " "); exit !(d != "" && e[1] + 0 <= 1e-6 && e[2] + 0 <= 1e-6) }'
d=$(paste -d, <(cut -d, -f3,5 "$W/one/log.csv") <(cut -d, -f3,5 "$W/ar/log.csv") | awk -F, 'NR > 1 {
    for (i = 1; i <= 2; i++) { e = ($i - $(i + 2)) / $i; if (e < 0) e = -e; if (e > w) w = e } } END { printf "%.3g", w }')
check "allreduce, six steps: losses and gradient norms within 1e-6 relative (worst $d)" \
    awk -v d="$d" 'BEGIN { exit !(d + 0 <= 1e-6) }'

# ---- resume with another number of processes --------------------------------
$MPI -np 2 "$TM" $A --shards 4 --stop-at 3 --out "$W/rs" >"$W/rs1.log" 2>&1
check "2 processes stop at step 3" grep -q "stopped at step 3" "$W/rs1.log"
$MPI -np 4 "$TM" --resume "$W/rs/model.safetensors" >"$W/rs2.log" 2>&1; rc=$?
check "resumed with 4 processes (exit $rc): the same bits as the uninterrupted run" \
    cmp -s "$W/one/model.safetensors" "$W/rs/model.safetensors"
check "resumed: log.csv continues with the same rows" diff -q <(params "$W/one/log.csv") <(params "$W/rs/log.csv")

# ---- --carry: each rank keeps its rows' states; rank 0 saves them all ------
C="--data $PWD/$W/c --preset transformer-55k-brt --batch 8 --seq 128 --steps 6 --eval-every 0 --threads 1 --save-every 0 --carry --shards 4"
"$W/train" $C --out "$W/cy1" >"$W/cy1.log" 2>&1
$MPI -np 2 "$TM" $C --out "$W/cy2" >"$W/cy2.log" 2>&1; rc=$?
check "--carry, 2 processes (exit $rc): the same checkpoint and states as one" \
    sh -c 'cmp -s "$1/model.safetensors" "$2/model.safetensors" && cmp -s "$1/carry.safetensors" "$2/carry.safetensors"' _ "$W/cy1" "$W/cy2"
$MPI -np 4 "$TM" $C --stop-at 3 --out "$W/cy4" >"$W/cy4a.log" 2>&1
$MPI -np 2 "$TM" --resume "$W/cy4/model.safetensors" >"$W/cy4b.log" 2>&1; rc=$?
check "--carry, stopped with 4 processes, resumed with 2 (exit $rc): the same bits as one process" \
    cmp -s "$W/cy1/model.safetensors" "$W/cy4/model.safetensors"

# ---- a rank killed --------------------------------------------------------------
B="--data $PWD/$W/c --preset lmu-55k --batch 8 --seq 32 --eval-every 0 --threads 1"
$MPI -np 2 "$TM" $B --steps 100000 --save-every 10 --out "$PWD/$W/kill" >"$W/kill.log" 2>&1 &
mp=$!
for i in $(seq 100); do [ -f "$W/kill/model.safetensors" ] && break; sleep 0.2; done
sleep 0.5
victim=$(pgrep -n -f "train_mpi.*$W/kill")
kill -9 "$victim"; t0=$(date +%s)
( sleep 30; kill -9 $mp 2>/dev/null ) & guard=$!
wait $mp; rc=$?; kill $guard 2>/dev/null; wait $guard 2>/dev/null
took=$(( $(date +%s) - t0 ))
check "a rank killed: mpirun ends in $took s (<= 10) with a failure ($rc)" [ $took -le 10 -a $rc -ne 0 ]
check "a rank killed: mpirun names it" grep -q "exited on signal 9" "$W/kill.log"
check "no process left" [ -z "$(pgrep -f "train_mpi.*$W/kill")" ]
# the checkpoint's step depends on how fast this machine got there: ask it
# (a run already past --steps says so and does nothing), then go 20 further
$MPI -np 2 "$TM" --resume "$W/kill/model.safetensors" --steps 1 >"$W/kill1.log" 2>&1
at=$(sed -n 's/.* is at step \([0-9]*\) of 1: nothing to do.*/\1/p' "$W/kill1.log" | head -1)
check "a checkpoint past --steps: nothing to do, and says at which step (${at:-none})" [ -n "$at" ]
$MPI -np 2 "$TM" --resume "$W/kill/model.safetensors" --steps $(( ${at:-0} + 20 )) >"$W/kill2.log" 2>&1; rc=$?
check "the last checkpoint resumes (exit $rc)" grep -q "resuming from .* at step [1-9]" "$W/kill2.log"
check "and trains to the end" grep -q "train: done" "$W/kill2.log"

# ---- SIGUSR1 and Ctrl-C on mpirun: a step boundary, one checkpoint ------------
for sig in USR1 INT; do
    rm -rf "$W/sig"
    $MPI --mca odls_base_sigkill_timeout 10 -np 2 "$TM" $B --steps 100000 --save-every 0 \
        --out "$PWD/$W/sig" >"$W/sig.log" 2>&1 &
    mp=$!
    for i in $(seq 100); do [ -s "$W/sig/log.csv" ] && [ "$(wc -l <"$W/sig/log.csv")" -gt 3 ] && break; sleep 0.2; done
    kill -$sig $mp; t0=$(date +%s)
    ( sleep 40; kill -9 $mp 2>/dev/null ) & guard=$!
    wait $mp; rc=$?; kill $guard 2>/dev/null; wait $guard 2>/dev/null
    at=$(sed -n 's/.*interrupted at step \([0-9]*\);.*/\1/p' "$W/sig.log")
    check "SIG$sig: interrupted at step $at in $(( $(date +%s) - t0 )) s (exit $rc), message once" \
        [ -n "$at" ] && [ "$(grep -c 'interrupted at step' "$W/sig.log")" -eq 1 ]
    check "SIG$sig: the checkpoint is of step $at" python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; s, e = json.loads(b[8:8 + n])["optim.data_pos"]["data_offsets"]
sys.exit(str(struct.unpack("<q", b[8 + n + s:8 + n + e])[0]) != sys.argv[2])' \
        "$W/sig/model.safetensors" "${at:-x}"
done

# ---- bad settings, mismatched ranks: one message, no hang -------------------------
$MPI -np 4 "$TM" $A --batch 6 --out "$W/bad" >"$W/bad.log" 2>&1; rc=$?
check "--batch 6 over 4 shards refused (exit $rc), once" \
    [ $rc -ne 0 ] && [ "$(grep -c 'not a multiple of --shards 4' "$W/bad.log")" -eq 1 ]
$MPI -np 3 "$TM" $A --shards 4 --out "$W/bad" >"$W/bad3.log" 2>&1; rc=$?
check "--shards 4 over 3 processes refused (exit $rc)" \
    [ $rc -ne 0 ] && grep -q "not a multiple of the 3 processes" "$W/bad3.log"
$MPI -np 1 "$TM" $A --shards 2 --out "$W/mm" : -np 1 "$TM" $A --shards 2 --seed 7 --out "$W/mm" >"$W/mm.log" 2>&1; rc=$?
check "a rank with other settings refused (exit $rc)" \
    [ $rc -ne 0 ] && grep -q "rank 1 of 2: its settings .* differ from rank 0's" "$W/mm.log"
R="--train c.train.tok --val none --preset lmu-55k --batch 8 --seq 32 --steps 2 --threads 1 --shards 2 --out $PWD/$W/mm"
$MPI -np 1 --wdir "$PWD/$W" "$TM" $R : -np 1 --wdir "$PWD/$W/other" "$TM" $R >"$W/mm2.log" 2>&1; rc=$?
check "a rank with other data at the same path refused (exit $rc)" \
    [ $rc -ne 0 ] && grep -q "rank 1 of 2: its training tokens differ" "$W/mm2.log"
$MPI -np 1 "$TM" $A --shards 2 --out "$W/mm" : -np 1 "$TM" $A --shards 2 --data /nonexistent --out "$W/mm" >"$W/mm3.log" 2>&1; rc=$?
check "a rank that cannot read its data: its message from rank 0 (exit $rc)" \
    [ $rc -ne 0 ] && grep -q "rank 1 of 2: token file: cannot open /nonexistent" "$W/mm3.log"
check "no process left" [ -z "$(pgrep -f "$TM")" ]
finish
