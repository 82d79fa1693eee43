#!/usr/bin/env bash
# The example programs end to end, on a corpus this test writes itself (a few
# KB, byte-level tokenizer, so no downloads): prepare, train a tiny model,
# save, resume (bit-identical to a straight run), Ctrl-C, NaN steps, eval,
# sample (recurrent and parallel agree); then bad input to every tool: each
# must exit non-zero with a one-line "tool: reason" and never crash.
#
# Builds each example (and the helper tests/nan_checkpoint.c) with the exact
# cc line in its first comment, when the binary is missing or older than its
# sources. TOOLS_BUILD=DIR builds into and runs from DIR instead of build/
# (the line's "-o build/" becomes "-o DIR/"; DIR must not contain spaces).
# Prints failures (-v: every check) and the closing line
# "test_tools: N passed, N failed".
set -u
TEST_NAME=test_tools; . "$(dirname "$0")/lib.sh" "$@"

BUILD=${TOOLS_BUILD:-build}
W=$BUILD/test_tools
rm -rf "$W"; mkdir -p "$W"

# ---- build: the one cc command from each example's first comment ---------
progs="prepare train sample eval tokenize nan_checkpoint"
src_of() { if [ "$1" = nan_checkpoint ]; then echo tests/$1.c; else echo examples/$1.c; fi; }
pids=()
for p in $progs; do
    src=$(src_of $p)
    line=$(grep -m1 -E '^ +build: cc ' "$src" | sed -E 's/^ +build: //')
    check "$p: first comment has a build line" [ -n "$line" ]
    line=${line/ -o build\// -o $BUILD/}
    # rebuilt with exactly that line when stale (tests/test_readme.sh, which
    # runs first, builds every one of them with it)
    stale=0
    [ -x $BUILD/$p ] || stale=1
    for dep in "$src" lmu.h lmu_fft.h examples/example_util.h; do [ "$dep" -nt $BUILD/$p ] && stale=1; done
    if [ $stale = 1 ] && [ -n "$line" ]; then
        mkdir -p "$BUILD"
        (eval "$line" >"$W/build_$p.log" 2>&1; echo $? >"$W/build_$p.rc") &
        pids+=($!)
        # two compilers at a time: the machine this targets has 2 cores
        [ ${#pids[@]} -ge 2 ] && { wait "${pids[0]}"; pids=("${pids[@]:1}"); }
    else
        echo 0 >"$W/build_$p.rc"
    fi
done
wait
for p in $progs; do
    rc=$(cat "$W/build_$p.rc" 2>/dev/null || echo 1)
    if [ "$rc" = 0 ] && [ -x $BUILD/$p ]; then ok "$p builds"; else
        fail "$p builds (see $W/build_$p.log)"; cat "$W/build_$p.log" 2>/dev/null | head -20; fi
done
for p in $progs; do [ -x $BUILD/$p ] || finish; done

# ---- helpers --------------------------------------------------------------
# run NAME CMD...: runs, keeps stdout/stderr/rc in $W/NAME.{out,err,rc}
run() {
    local name=$1; shift
    "$@" >"$W/$name.out" 2>"$W/$name.err" </dev/null
    echo $? >"$W/$name.rc"
}
rc_of() { cat "$W/$1.rc"; }
# expect_ok NAME CMD...: exit 0
expect_ok() {
    local name=$1; run "$@"
    if [ "$(rc_of "$name")" = 0 ]; then ok "$name"; else
        fail "$name (exit $(rc_of "$name")): $(head -c 400 "$W/$name.err")"; fi
}
# expect_err NAME PATTERN CMD...: non-zero exit, not a crash (< 128), and the
# first line of stderr is "prog: ..." matching PATTERN (grep -E)
expect_err() {
    local name=$1 pat=$2; shift 2
    local prog; prog=$(basename "$1" .sh)
    run "$name" "$@"
    local rc; rc=$(rc_of "$name")
    local first; first=$(head -n 1 "$W/$name.err")
    if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [[ "$first" == "$prog: "* ]] &&
        echo "$first" | grep -qE -- "$pat"; then ok "$name"; else
        fail "$name: exit $rc, stderr '$first' (want '$prog: ...$pat...')"; fi
}
# mktok FILE VOCAB N: a token file of N ids (7 i mod VOCAB), written by hand
le() { # le VALUE BYTES: appends VALUE little-endian to $bytes as printf escapes
    local v=$1 k b
    for ((k = 0; k < $2; k++)); do printf -v b '\\x%02x' $((v & 255)); bytes+=$b; v=$((v >> 8)); done
}
mktok() {
    local i bytes='LMUTOKS\x00'
    le 1 4; le "$2" 4; le "$3" 8; le 0 8
    for ((i = 0; i < $3; i++)); do le $(((i * 7) % $2)) 2; done
    printf "$bytes" >"$1"
}
csvcol() { cut -d, -f"$2" "$1"; } # csvcol FILE COLS

# ---- a small corpus: 6 documents in two files -----------------------------
{
    for i in $(seq 1 40); do
        echo "The cat sat on the mat number $i. The dog ran to the park and back $((i % 7)) times."
    done
    echo "<|endoftext|>"
    for i in $(seq 1 30); do echo "A quick brown fox jumps over the lazy dog, again and again ($i)."; done
    echo "<|endoftext|>"
    for i in $(seq 1 30); do echo "Rain falls on the plain in Spain; snow falls on the hills ($i)."; done
} >"$W/a.txt"
{
    for i in $(seq 1 30); do echo "Numbers: $i $((i * i)) $((i * i * i)), counting up."; done
    echo "<|endoftext|>"
    for i in $(seq 1 30); do echo "She sells sea shells by the sea shore, $i shells a day."; done
    echo "<|endoftext|>"
    for i in $(seq 1 30); do echo "To be or not to be, that is question $i."; done
} >"$W/b.txt"
cat >"$W/tiny.cfg" <<'EOF'
# a tiny model and its training settings
d_model = 16
n_layer = 2
q = 12
q_prime = 2
theta = 64
d_pre = 24
d_ff = 32
batch = 4      # training settings live here too
seq = 32
lr = 3e-3
threads = 2
eval_every = 10
eval_batches = 2
save_every = 10
EOF
T="$BUILD/train --config $W/tiny.cfg"

# ---- prepare --------------------------------------------------------------
expect_ok prepare $BUILD/prepare --bytes --val 0.2 -o "$W/c" "$W/a.txt" "$W/b.txt"
check "prepare: both splits written" [ -s "$W/c.train.tok" -a -s "$W/c.val.tok" ]
check "prepare: token file magic" [ "$(head -c 7 "$W/c.train.tok")" = LMUTOKS ]
check "prepare: reports 6 documents" grep -q "6 documents" "$W/prepare.out"
# sizes: header + 2 bytes per token; tokens = text bytes without the
# separators + one <|endoftext|> opening each document
tb=$(($(stat -c %s "$W/c.train.tok") - 32)); vb=$(($(stat -c %s "$W/c.val.tok") - 32))
nbytes=$(cat "$W/a.txt" "$W/b.txt" | sed 's/<|endoftext|>//' | wc -c)
check "prepare: every byte is a token, one eot per document" \
    [ $(((tb + vb) / 2)) -eq $((nbytes + 6)) ]
expect_ok prepare_help $BUILD/prepare --help

# ---- train, a straight run --------------------------------------------------
expect_ok train $T --data "$W/c" --steps 40 --out "$W/run"
check "train: checkpoint, log and run file" [ -s "$W/run/model.safetensors" -a -s "$W/run/log.csv" -a -s "$W/run/run.txt" ]
check "train: log has a header and 40 rows" [ "$(wc -l <"$W/run/log.csv")" -eq 41 ]
check "train: log header" [ "$(head -n 1 "$W/run/log.csv")" = "step,tokens,loss,lr,grad_norm,val_loss,tokens_per_s,elapsed_s" ]
check "train: validation every 10 steps" [ "$(csvcol "$W/run/log.csv" 6 | grep -c '[0-9]')" -eq 4 ]
first=$(sed -n 2p "$W/run/log.csv" | cut -d, -f3); last=$(tail -n 1 "$W/run/log.csv" | cut -d, -f3)
check "train: loss falls ($first -> $last)" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.3) }'
check "train: no temporary files left" [ -z "$(ls "$W/run" | grep tmp)" ]
check "train: progress lines when not a terminal" grep -q "^step 40/40" "$W/train.out"
expect_ok train_help $BUILD/train --help
check "train --help lists every option" sh -c 'for o in data train val out preset batch seq ctx steps tokens lr warmup schedule clip seed threads precision eval-every eval-batches save-every print-every on-nan stop-at config resume carry list-presets; do grep -q -- "--$o " "$1" || exit 1; done' _ "$W/train_help.out"
# a config file's model keys start from the library's defaults, not from
# --preset's default lmu-55k (d_ff 105): d_model 16 gives d_ff 2 d = 32, q = d
printf 'd_model = 16\nn_layer = 1\nd_pre = 0  # 0: the default\nbatch = 2\nseq = 16\n' >"$W/dflt.cfg"
expect_ok train_cfg_defaults $BUILD/train --config "$W/dflt.cfg" --data "$W/c" --steps 1 --out "$W/dflt"
check "train: config keys start from the library's defaults (d_ff = 32, q = 16, d_pre = 24)" \
    sh -c 'grep -qx "d_ff = 32" "$1" && grep -qx "q = 16" "$1" && grep -qx "d_pre = 24" "$1"' _ "$W/dflt/run.txt"
expect_ok train_presets $BUILD/train --list-presets
check "train: presets listed" grep -q "lmu-1m" "$W/train_presets.out"

# ---- exact resume: stop at 17, resume (settings from run.txt), compare ------
expect_ok train_stop $T --data "$W/c" --steps 40 --out "$W/res" --stop-at 17
check "train: --stop-at says how to continue" grep -q "train --resume" "$W/train_stop.out"
check "train: stopped log has 17 rows" [ "$(wc -l <"$W/res/log.csv")" -eq 18 ]
expect_ok train_resume $BUILD/train --resume "$W/res/model.safetensors"
check "train: resume reads run.txt" grep -q "settings from $W/res/run.txt" "$W/train_resume.out"
check "train: resumed at step 17" grep -q "at step 17" "$W/train_resume.out"
csvcol "$W/run/log.csv" 1-6 >"$W/straight.csv"; csvcol "$W/res/log.csv" 1-6 >"$W/resumed.csv"
check "train: resumed run is bit-identical to the straight one (loss, lr, grad norm, val loss)" \
    cmp -s "$W/straight.csv" "$W/resumed.csv"
check "train: final checkpoints identical" cmp -s "$W/run/model.safetensors" "$W/res/model.safetensors"

# ---- --precision bf16: its own numbers, kept by run.txt across a resume -------
expect_ok train_bf16 $T --data "$W/c" --steps 40 --precision bf16 --out "$W/b16"
check "train --precision bf16: says which kernel (no bf16 matrix unit)" grep -q "precision bf16: .*fp32's speed" "$W/train_bf16.out"
check "train --precision bf16: run.txt keeps it" grep -qx "precision = bf16" "$W/b16/run.txt"
check "train --precision bf16: not fp32's checkpoint" sh -c '! cmp -s "$1" "$2"' _ "$W/run/model.safetensors" "$W/b16/model.safetensors"
d=$(paste -d, <(csvcol "$W/run/log.csv" 3) <(csvcol "$W/b16/log.csv" 3) | awk -F, 'NR > 1 {
    e = ($1 - $2) / $1; if (e < 0) e = -e; if (e > w) w = e } END { printf "%.3g", w }')
check "train --precision bf16: 40-step losses within 1% of fp32's (worst $d)" awk -v d="$d" 'BEGIN { exit !(d != "" && d + 0 <= 0.01) }'
expect_ok train_bf16_stop $T --data "$W/c" --steps 40 --precision bf16 --out "$W/b16r" --stop-at 17
expect_ok train_bf16_resume $BUILD/train --resume "$W/b16r/model.safetensors"
check "train --precision bf16: resumed bf16 run is bit-identical to the straight one" cmp -s "$W/b16/model.safetensors" "$W/b16r/model.safetensors"
expect_err train_bad_precision "--precision 'fp16': want fp32 or bf16" $T --data "$W/c" --precision fp16

# ---- --carry: the block-recurrent state from step to step ------------------
# consecutive segments per row (lmu_tokens_segments); a resume reads the
# states saved beside the checkpoint and is bit-identical; without them it
# says so and starts from state0; eval --carry measures what the state adds
cat >"$W/brt.cfg" <<'EOF'
arch = transformer
d_model = 16
n_layer = 2
n_head = 2
d_ff = 32
mixer = attn, brt
window = 8
n_state = 2
qk_norm = 1
seq = 16
EOF
sed -n '/^batch = /,/^save_every = /{/^seq = /d;p}' "$W/tiny.cfg" >>"$W/brt.cfg" # tiny's settings
TB="$BUILD/train --config $W/brt.cfg --data $W/c --steps 24"
expect_ok train_carry $TB --carry --out "$W/cy"
check "train --carry: says what it carries" grep -q -- "--carry: 4 streams of consecutive 16-token segments" "$W/train_carry.out"
check "train --carry: the states beside the checkpoint" [ -s "$W/cy/carry.safetensors" ]
check "train --carry: run.txt keeps it" grep -qx "carry = 1" "$W/cy/run.txt"
expect_ok train_nocarry $TB --out "$W/ncy"
check "train --carry: not the random batches' run" sh -c '! cmp -s "$1" "$2"' _ "$W/cy/model.safetensors" "$W/ncy/model.safetensors"
expect_ok train_carry_stop $TB --carry --out "$W/cyr" --stop-at 13
expect_ok train_carry_resume $BUILD/train --resume "$W/cyr/model.safetensors"
check "train --carry: resumed run is bit-identical to the straight one" cmp -s "$W/cy/model.safetensors" "$W/cyr/model.safetensors"
expect_ok train_carry_stop2 $TB --carry --out "$W/cyl" --stop-at 13
rm -f "$W/cyl/carry.safetensors"
expect_ok train_carry_lost $BUILD/train --resume "$W/cyl/model.safetensors"
check "train --carry: a resume without the states says so" grep -q "no state for step 13" "$W/train_carry_lost.out" "$W/train_carry_lost.err"
expect_err train_carry_nostate "--carry: the model has no block-recurrent state" $T --data "$W/c" --carry
expect_err train_carry_seq "--carry: --seq 12 must be a multiple of the window 8" $TB --carry --seq 12 --out "$W/cys"
expect_ok eval_carry $BUILD/eval "$W/cy/model.safetensors" --data "$W/c" --seq 16 --batch 2 --carry --json "$W/cy/eval.json"
check "eval --carry: the loss with and without the carried state" grep -q "every window from state0: loss .*the carried state contributes" "$W/eval_carry.out"
check "eval --carry: both in the JSON" grep -q '"carry": true, "loss_fresh": ' "$W/cy/eval.json"
expect_err eval_carry_nostate "--carry: .* has no block-recurrent state" $BUILD/eval "$W/run/model.safetensors" --data "$W/c" --carry

# ---- Ctrl-C: finish the step, save, exit 0; then resume ---------------------
$T --data "$W/c" --steps 1000000 --save-every 0 --out "$W/int" >"$W/int.out" 2>"$W/int.err" </dev/null &
pid=$!
for _ in $(seq 1 200); do
    [ -f "$W/int/log.csv" ] && [ "$(wc -l <"$W/int/log.csv")" -gt 5 ] && break
    sleep 0.05
done
kill -INT $pid; wait $pid; rc=$?
check "train: Ctrl-C exits 0 (got $rc)" [ $rc -eq 0 ]
check "train: Ctrl-C says interrupted" grep -q "interrupted at step" "$W/int.out"
check "train: Ctrl-C saved a checkpoint" [ -s "$W/int/model.safetensors" ]
rows=$(($(wc -l <"$W/int/log.csv") - 1))
expect_ok train_int_resume $BUILD/train --resume "$W/int/model.safetensors" --steps $((rows + 5))
check "train: resumed after Ctrl-C to step $((rows + 5))" [ "$(wc -l <"$W/int/log.csv")" -eq $((rows + 6)) ]

# ---- NaN / Inf ----------------------------------------------------------------
# A checkpoint whose final LayerNorm weight holds a NaN (tests/nan_checkpoint.c
# writes it) makes every step's loss NaN. Resumed from it, train must report
# and skip each such step and go on to the next (--on-nan skip, the default),
# stop at the first naming the last good checkpoint (--on-nan stop), and give
# up after 20 in a row. That a skipped step leaves the parameters and Adam
# state bit-identical, and training resumes once the poison is gone, is
# tests/test_faults.c's (test_nonfinite).
expect_ok train_nan_base $T --data "$W/c" --steps 10 --out "$W/nan"
cp "$W/nan/model.safetensors" "$W/good.safetensors"
expect_ok nan_checkpoint $BUILD/nan_checkpoint "$W/nan/model.safetensors" "$W/poisoned.safetensors"
expect_ok train_nan_skip $T --data "$W/c" --resume "$W/poisoned.safetensors" --steps 13 --out "$W/nan_skip"
check "train: each NaN step reported and skipped (steps 10, 11, 12)" \
    [ "$(grep -cE '^train: step 1[012]: .*loss.*step skipped' "$W/train_nan_skip.out")" -eq 3 ]
check "train: NaN steps logged as nan" [ "$(csvcol "$W/nan_skip/log.csv" 3 | tail -n +2 | sort -u)" = nan ]
check "train: the run goes on past them and counts them" grep -q "done, 3 steps.*3 NaN/Inf steps skipped" "$W/train_nan_skip.out"
expect_err train_nan_stop "step 10: .*stopping.*last good checkpoint is $W/nan/model.safetensors" \
    $T --data "$W/c" --resume "$W/poisoned.safetensors" --steps 30 --on-nan stop --out "$W/nan"
check "train: --on-nan stop leaves the last good checkpoint as it was" cmp -s "$W/nan/model.safetensors" "$W/good.safetensors"
expect_err train_nan_20 "20 steps in a row were NaN/Inf; stopping" \
    $T --data "$W/c" --resume "$W/poisoned.safetensors" --steps 40 --out "$W/nan20"
check "train: ...after skipping 20 (steps 10..29)" [ "$(grep -c 'step skipped' "$W/train_nan_20.out")" -eq 20 ]

# ---- eval -----------------------------------------------------------------------
expect_ok eval $BUILD/eval "$W/run/model.safetensors" --data "$W/c" --csv "$W/pos.csv" --append "$W/results.csv"
check "eval: loss and bits per byte, 6 decimals" grep -qE "loss [0-9]+\.[0-9]{6} nats/token .*[0-9]+\.[0-9]{6} bits/byte" "$W/eval.out"
check "eval: per-position CSV has 32 positions" [ "$(wc -l <"$W/pos.csv")" -eq 33 ]
check "eval: results CSV header + row" [ "$(wc -l <"$W/results.csv")" -eq 2 ]
# the last validation loss of training and eval's loss: both are mean nats on the
# validation split, on different windows; they must roughly agree
vl=$(csvcol "$W/run/log.csv" 6 | grep . | tail -n 1); el=$(grep -oE 'loss [0-9.]+' "$W/eval.out" | head -1 | cut -d' ' -f2)
check "eval: loss $el close to training's val loss $vl" awk -v a="$vl" -v b="$el" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.5) }'
# bpb = nats / ln 2 / bytes per token; byte tokens: one byte each but eot (>= 1, less
# the rounding of the six printed decimals)
bpb=$(grep -oE '[0-9.]+ bits/byte' "$W/eval.out" | cut -d' ' -f1)
check "eval: bits/byte ~ loss / ln 2 for a byte-level model" awk -v l="$el" -v b="$bpb" 'BEGIN { r = b / (l / log(2)); exit !(r >= 0.99999 && r < 1.1) }'
# --ablate: every part switched off in turn, per layer and in all layers;
# --json: the same numbers as one object. Switching a part off must change
# the loss, and the JSON's loss must be the printed one.
expect_ok eval_ablate $BUILD/eval "$W/run/model.safetensors" --data "$W/c" --ablate --json "$W/eval.json"
check "eval --json: loss, buckets 1, 2-3, ..., and every part's ablation per layer and all" python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); el = float(sys.argv[2])
parts = {(a["part"], a["layer"]) for a in j["ablations"]}
want = {(p, l) for p in ("implicit_attention", "ffn_pre", "ffn_post") for l in range(-1, j.get("n_layer", 1))}
assert abs(j["loss"] - el) < 1e-9, (j["loss"], el)  # both printed with 6 decimals
assert [(b["lo"], b["hi"]) for b in j["buckets"]][:3] == [(1, 1), (2, 3), (4, 7)]
assert want <= parts, (want, parts)
assert all(abs(a["loss"] - j["loss"] - a["delta"]) < 1e-5 and a["loss"] != j["loss"] for a in j["ablations"])
' "$W/eval.json" "$el"
check "eval --ablate prints the contribution table" grep -q "implicit_attention  *all" "$W/eval_ablate.out"
expect_ok eval_help $BUILD/eval --help
# a layer stack from a config file: trains, evaluates, and --ablate switches a
# part off in the layers that have it (attn: layer 2 only, so "all" is layer 2)
{ grep -v '^\(q\|q_prime\|theta\|n_layer\) = ' "$W/tiny.cfg"
  printf 'n_layer = 3\nmixer = ffn, ffn, attn\nq = 8, 12, 8\nq_prime = 2,3,2\ntheta = 16, 64, 64\nn_head = 2\n'; } >"$W/stack.cfg"
expect_ok train_stack $BUILD/train --config "$W/stack.cfg" --data "$W/c" --steps 20 --out "$W/stack"
check "train: a layer stack's lists in run.txt" grep -q "mixer = ffn,ffn,attn" "$W/stack/run.txt"
expect_ok eval_stack $BUILD/eval "$W/stack/model.safetensors" --data "$W/c" --ablate --json "$W/stack.json"
check "eval --ablate on a stack: each part in the layers that have it" python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); a = {(x["part"], x["layer"]): x["loss"] for x in j["ablations"]}
assert ("attn", 0) not in a and ("ffn_pre", 2) not in a, sorted(a)
assert a[("attn", -1)] == a[("attn", 2)], a
assert len({a[("ffn_pre", l)] for l in (-1, 0, 1)}) == 3, a  # nothing left switched off
' "$W/stack.json"
expect_ok sample_stack_greedy $BUILD/sample "$W/stack/model.safetensors" -p "The dog" -n 30 -t 0
expect_ok sample_stack_parallel $BUILD/sample "$W/stack/model.safetensors" -p "The dog" -n 30 -t 0 --parallel
check "sample: a stack's recurrent and parallel modes agree (greedy)" cmp -s "$W/sample_stack_greedy.out" "$W/sample_stack_parallel.out"

# ---- sample -----------------------------------------------------------------------
S="$BUILD/sample $W/run/model.safetensors"
expect_ok sample $S -p "The cat" -n 40 -s 7
expect_ok sample2 $S -p "The cat" -n 40 -s 7
check "sample: prompt echoed" grep -q "^The cat" "$W/sample.out"
check "sample: same seed, same text" cmp -s "$W/sample.out" "$W/sample2.out"
check "sample: 40 tokens (bytes) generated" [ "$(wc -c <"$W/sample.out")" -ge 40 ]
expect_ok sample_greedy $S -p "The dog" -n 30 -t 0
expect_ok sample_parallel $S -p "The dog" -n 30 -t 0 --parallel
check "sample: recurrent and parallel modes agree (greedy)" cmp -s "$W/sample_greedy.out" "$W/sample_parallel.out"
for fmt in bf16 int8; do
    expect_ok sample_$fmt $S -p "The cat" -n 40 -s 7 --weights $fmt
    check "sample --weights $fmt: prompt echoed" grep -q "^The cat" "$W/sample_$fmt.out"
    check "sample --weights $fmt: 40 tokens (bytes) generated" [ "$(wc -c <"$W/sample_$fmt.out")" -ge 40 ]
done
expect_err sample_bad_weights "--weights 'int4': want fp32, bf16 or int8" $S -p "The cat" --weights int4
expect_ok sample_empty $S -n 20 -s 1 --top-k 0 --top-p 1
expect_ok sample_help $BUILD/sample --help
check "sample --help lists short and long options" grep -q -- "-k, --top-k K" "$W/sample_help.out"

# ---- tokenize -------------------------------------------------------------------
$BUILD/tokenize -b "$W/a.txt" >"$W/tok_short.out" 2>"$W/tok.err"; rc=$?
check "tokenize: encodes a file (exit $rc)" [ $rc -eq 0 -a -s "$W/tok_short.out" ]
$BUILD/tokenize --bytes --special <"$W/a.txt" >"$W/tok_long.out"
check "tokenize: <|endoftext|> is id 256 with --special" grep -q " 256 " "$W/tok_long.out"
n_eot=$(grep -c '<|endoftext|>' "$W/a.txt")
check "tokenize: ...and 13 bytes without it" [ "$(wc -w <"$W/tok_short.out")" -eq $(($(wc -w <"$W/tok_long.out") + 12 * n_eot)) ]
$BUILD/tokenize --bytes --decode <"$W/tok_short.out" >"$W/tok_round.txt"
check "tokenize: decode gives the text back" cmp -s "$W/a.txt" "$W/tok_round.txt"
expect_ok tokenize_help $BUILD/tokenize --help
check "tokenize --help lists the long options" grep -q -- "-d, --decode" "$W/tokenize_help.out"

# ---- plots (gnuplot; tools/setup.sh installs gnuplot-nox) ----------------------
if command -v gnuplot >/dev/null; then
    expect_ok plot_loss tools/plot.sh loss "$W/plots/loss" "$W/run" "$W/res/log.csv=resumed"
    expect_ok plot_pos tools/plot.sh positions "$W/plots/pos" "$W/pos.csv"
    $BUILD/eval "$W/res/model.safetensors" --data "$W/c" --append "$W/results.csv" >/dev/null 2>&1
    $BUILD/train --data "$W/c" --preset lmu-55k --batch 2 --seq 16 --steps 2 --out "$W/big" >/dev/null 2>&1
    $BUILD/eval "$W/big/model.safetensors" --data "$W/c" --append "$W/results.csv" >/dev/null 2>&1
    check "eval: --append adds rows" [ "$(wc -l <"$W/results.csv")" -eq 4 ]
    expect_ok plot_scaling tools/plot.sh scaling "$W/plots/scaling" "$W/results.csv"
    for f in loss pos scaling; do
        check "plot: $f.png is a PNG" [ "$(head -c 4 "$W/plots/$f.png" | tail -c 3)" = PNG ]
        check "plot: $f.svg is an SVG" grep -q "<svg" "$W/plots/$f.svg"
    done
    check "plot: prints the paths" grep -qx "$W/plots/loss.png" "$W/plot_loss.out"
    expect_err plot_missing "cannot open $W/nope: No such file" tools/plot.sh loss "$W/plots/x" "$W/nope"
    expect_err plot_kind "unknown plot 'pie'" tools/plot.sh pie "$W/plots/x" "$W/run"
    expect_err plot_wrong "is not a train log" tools/plot.sh loss "$W/plots/x" "$W/pos.csv"
else
    echo "  (no gnuplot: plot checks skipped; tools/setup.sh should install gnuplot-nox)"
fi

# ---- bad input: one clear line, non-zero exit, no crash ------------------------------
printf 'not a token file at all, just some text\n' >"$W/junk.tok"
head -c 50 "$W/c.train.tok" >"$W/trunc.tok"
mktok "$W/v300.train.tok" 300 3000
mktok "$W/v300.val.tok" 300 500
cp "$W/c.train.tok" "$W/badid.tok"; printf '\xff\xff' | dd of="$W/badid.tok" bs=1 seek=40 conv=notrunc 2>/dev/null
: >"$W/empty.txt"
printf 'd_model = 16\nbatch = 4\nbogus_key = 1\n' >"$W/bad.cfg"
printf 'batch = many\n' >"$W/bad2.cfg"
printf 'not a checkpoint\n' >"$W/junk.safetensors"
expect_ok v300_model $T --train "$W/v300.train.tok" --val "$W/v300.val.tok" --steps 2 --out "$W/v300"

expect_err prepare_missing "cannot open $W/nope.txt: No such file" $BUILD/prepare --bytes "$W/nope.txt"
expect_err prepare_empty "empty corpus" $BUILD/prepare --bytes "$W/empty.txt"
expect_err prepare_noargs "no input files" $BUILD/prepare
expect_err prepare_flag "unknown option '--frobnicate'" $BUILD/prepare --frobnicate "$W/a.txt"
expect_err prepare_val "--val 2 is outside 0..0.5" $BUILD/prepare --bytes --val 2 "$W/a.txt"
expect_err prepare_vocab "cannot open $W/nodir/encoder.json: No such file.*fetch_data" $BUILD/prepare --vocab-dir "$W/nodir" "$W/a.txt"

expect_err train_nodata "no data" $BUILD/train
expect_err train_missing "cannot open $W/nope.train.tok: No such file" $BUILD/train --data "$W/nope"
expect_err train_magic "$W/junk.tok: bad magic" $BUILD/train --train "$W/junk.tok"
expect_err train_trunc "$W/trunc.tok: header says" $BUILD/train --train "$W/trunc.tok"
expect_err train_badid "id 65535 at token 4" $BUILD/train --train "$W/badid.tok"
expect_err train_preset "unknown preset 'lmu-3k'" $BUILD/train --data "$W/c" --preset lmu-3k
expect_err train_flag "unknown option '--bogus'" $BUILD/train --data "$W/c" --bogus 3
expect_err train_nonsense "unexpected argument 'fast'" $BUILD/train --data "$W/c" fast
expect_err train_batch "batch 'abc' is not a number" $BUILD/train --data "$W/c" --batch abc
expect_err train_batch0 "batch 0 is outside" $BUILD/train --data "$W/c" --batch 0
expect_err train_lr "lr 'x' is not a number" $BUILD/train --data "$W/c" --lr x
expect_err train_sched "want cosine, linear or constant" $BUILD/train --data "$W/c" --schedule cosinus
expect_err train_noval "needs a value" $BUILD/train --data "$W/c" --steps
expect_err train_seq "too few for --seq 100000" $BUILD/train --data "$W/c" --seq 100000
expect_err train_cfg "$W/bad.cfg: line 3: unknown key 'bogus_key'" $BUILD/train --data "$W/c" --config "$W/bad.cfg"
expect_err train_cfg2 "$W/bad2.cfg: line 1: batch 'many' is not a number" $BUILD/train --data "$W/c" --config "$W/bad2.cfg"
expect_err train_cfgmissing "cannot open $W/none.cfg" $BUILD/train --data "$W/c" --config "$W/none.cfg"
expect_err train_resume_missing "cannot resume from .*nope.safetensors" $BUILD/train --data "$W/c" --resume "$W/nope.safetensors"
expect_err train_resume_junk "cannot resume from" $BUILD/train --data "$W/c" --resume "$W/junk.safetensors"
expect_err train_resume_vocab "vocab_size 300 but $W/c.train.tok has 257" $BUILD/train --data "$W/c" --resume "$W/v300/model.safetensors"
expect_err train_val_vocab "has vocab_size 300 but" $BUILD/train --train "$W/c.train.tok" --val "$W/v300.val.tok"

expect_err sample_none "no checkpoint given" $BUILD/sample
expect_err sample_missing "cannot load .*nope.safetensors" $BUILD/sample "$W/nope.safetensors"
expect_err sample_junk "cannot load" $BUILD/sample "$W/junk.safetensors"
expect_err sample_vocab "vocab_size 300 but the tokenizer has 257" $BUILD/sample "$W/v300/model.safetensors" --bytes
expect_err sample_temp "--temp -1 is outside 0..100" $S --temp -1
expect_err sample_topp "--top-p 0 is outside \(0, 1]" $S --top-p 0
expect_err sample_n "-n 'lots' is not a number" $S -n lots
expect_err sample_k "--top-k '2.5' is not a whole number" $S --top-k 2.5
expect_err sample_noval "-n needs a value" $S -n
expect_err sample_two "unexpected argument 'extra'" $S extra
expect_err sample_flag "unknown option '--fast'" $S --fast

expect_err eval_nodata "no data" $BUILD/eval "$W/run/model.safetensors"
expect_err eval_missing "cannot open $W/nope.val.tok" $BUILD/eval "$W/run/model.safetensors" --data "$W/nope"
expect_err eval_magic "bad magic" $BUILD/eval "$W/run/model.safetensors" --tokens "$W/junk.tok"
expect_err eval_vocab "vocab_size 300 but $W/c.val.tok has 257" $BUILD/eval "$W/v300/model.safetensors" --data "$W/c"
expect_err eval_junk "cannot load" $BUILD/eval "$W/junk.safetensors" --data "$W/c"
# an LMU has no positional limit: eval runs it past its n_ctx 32; the
# transformer's learned positions end there
expect_ok eval_long $BUILD/eval "$W/run/model.safetensors" --data "$W/c" --seq 64
check "eval: an LMU beyond its n_ctx says so" grep -q "beyond the model.s n_ctx 32" "$W/eval_long.err"
printf 'arch = transformer\nd_model = 16\nn_layer = 1\nn_ctx = 32\nbatch = 2\nseq = 32\n' >"$W/tr.cfg"
expect_ok train_tr $BUILD/train --config "$W/tr.cfg" --data "$W/c" --steps 1 --out "$W/tr"
expect_err eval_seq "--seq 64 exceeds the model's n_ctx 32: n_ctx: the transformer's learned positions end at 32" \
    $BUILD/eval "$W/tr/model.safetensors" --data "$W/c" --seq 64
expect_err eval_flag "unknown option '--fast'" $BUILD/eval "$W/run/model.safetensors" --fast
expect_err eval_batch "--batch 0 is outside 1..65536" $BUILD/eval "$W/run/model.safetensors" --data "$W/c" --batch 0
expect_err eval_none "no checkpoint given" $BUILD/eval --data "$W/c"

expect_err tokenize_flag "unknown option '--fast'" $BUILD/tokenize --bytes --fast
expect_err tokenize_missing "cannot open $W/nope.txt" $BUILD/tokenize --bytes "$W/nope.txt"
expect_err tokenize_vocab "cannot open $W/nodir/encoder.json" $BUILD/tokenize -v "$W/nodir" "$W/a.txt"
printf '1 2 x 3' >"$W/bad_ids.txt"
expect_err tokenize_id "not an id at byte 4" $BUILD/tokenize --bytes -d "$W/bad_ids.txt"

finish
