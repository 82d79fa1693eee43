#!/usr/bin/env bash
# make experiment end to end on its tiny profile (a corpus it generates,
# tiny models; about a minute on 2 cores): every output exists and is well formed, a
# rerun trains nothing and gives the same results, a stopped run resumes
# bit for bit, wrong input is refused before anything trains, and the
# power-law fit recovers a known law.
# Closing line: "test_experiment: N passed, N failed" (-v: every check).
set -u
TEST_NAME=test_experiment; . "$(dirname "$0")/lib.sh" "$@"
PY=python3
W=build/test_experiment
rm -rf "$W"; mkdir -p "$W"
X="$PY tools/experiment.py --profile tiny --out $W/grid"

out=$($PY tools/experiment.py --self-test 2>&1); rc=$?
check "power-law fit recovers alpha 0.07, Nc 1e14 from noisy points: $(echo "$out" | head -1)" [ $rc -eq 0 ]

start=$(date +%s)
$X > "$W/run1.log" 2>&1; rc=$?
secs=$(( $(date +%s) - start ))
check "tiny grid runs (exit $rc, ${secs}s)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || { tail -5 "$W/run1.log"; finish; }

R=$W/grid/results.csv
check "results.csv header" [ "$(head -1 "$R")" = "family,size,params,seed,lr,tokens,val_loss,test_loss,test_bpb,isa_contribution,attn_contribution,wall_s,phase" ]
# 3 families x 2 sizes x (2 lrs + 2 more seeds)
check "results.csv has one row per run (24)" [ "$(tail -n +2 "$R" | wc -l)" -eq 24 ]
bad=$(awk -F, 'NR > 1 {
    if ($13 != "seed" && $13 != "sweep") print "phase " $13
    if ($7 == "" || $7 + 0 <= 0 || $7 + 0 > 20) print "val " $7
    if ($13 == "seed" && ($8 == "" || $8 + 0 <= 0 || $8 + 0 > 20)) print "test " $8
    if ($13 == "seed" && $1 != "transformer" && $10 == "") print "isa missing"
    if ($13 == "seed" && $1 != "lmu" && $11 == "") print "attn missing"
    if (tolower($0) ~ /nan|inf/) print "nonfinite"
}' "$R")
check "results.csv values are finite and complete ($bad)" [ -z "$bad" ]
check "3 seeds per family and size" [ "$(awk -F, '$13 == "seed"' "$R" | wc -l)" -eq 18 ]
for sec in "## Settings" "## Test loss" "## What the memory" "## Learning-rate sweep" "## Power-law fits" "## Tokens to match"; do
    check "report.md has '$sec'" grep -q "^$sec" "$W/grid/report.md"
done
for p in loss_vs_params positions val_curves; do
    check "$p.png is a PNG" [ "$(head -c 8 "$W/grid/$p.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]
    check "$p.svg is well-formed XML" $PY -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$W/grid/$p.svg"
done

# rerun: nothing trains, the same results
cp "$R" "$W/results1.csv"
$X > "$W/run2.log" 2>&1; rc=$?
check "rerun succeeds" [ $rc -eq 0 ]
check "rerun trains nothing" [ "$(grep -c 'training ' "$W/run2.log")" -eq 0 ]
check "rerun gives the same results.csv" cmp -s "$R" "$W/results1.csv"

# a run stopped mid-training resumes from its checkpoint, bit for bit: redo
# one final run, stopped after step 20 of 40 (train saves and exits, as on
# Ctrl-C; a kill leaves the last checkpoint the same way), then rerun
d=$(ls -d "$W"/grid/runs/lmu-t2-*-s2)
rm -rf "$d"
EXPERIMENT_STOP_AT=20 $X > "$W/run3.log" 2>&1; rc=$?
check "a stopped run is reported (exit $rc: $(tail -1 "$W/run3.log"))" \
    eval '[ $rc -ne 0 ] && grep -q "stopped at step 19 of 40" "$W/run3.log"'
check "it left a checkpoint and no done.json" eval '[ -f "$d/model.safetensors" ] && [ ! -f "$d/done.json" ]'
$X > "$W/run4.log" 2>&1; rc=$?
check "the rerun resumes it (exit $rc)" eval '[ $rc -eq 0 ] && grep -q "resuming from .* at step 2[01]" "$d/train.out"'
# wall_s (column 12) differs; every loss must be the same bits
keep() { cut -d, -f1-11,13 "$1"; }
check "and the results are the same after resuming" cmp -s <(keep "$R") <(keep "$W/results1.csv")

# wrong input: one line, non-zero exit, nothing trained
expect_fail() { # NAME PATTERN ARGS...
    local name=$1 pat=$2; shift 2
    local o rc
    o=$($PY tools/experiment.py "$@" 2>&1); rc=$?
    if [ $rc -ne 0 ] && echo "$o" | grep -q "^experiment: .*$pat" && [ "$(echo "$o" | grep -c .)" -le 2 ]; then ok "$name"
    else fail "$name (exit $rc: $o)"; fi
}
expect_fail "unknown family" "unknown family 'gpt'" --profile tiny --out "$W/bad" --families lmu,gpt
expect_fail "unknown size" "unknown size '7k'" --profile tiny --out "$W/bad" --sizes 7k
expect_fail "missing test split" "no such file" --profile tiny --out "$W/bad" --data "$W/nothere"
head -c 80 "$W/grid/corpus.train.tok" > "$W/small.train.tok"
cp "$W/grid/corpus.val.tok" "$W/small.val.tok"; cp "$W/grid/corpus.test.tok" "$W/small.test.tok"
expect_fail "corpus too small for a batch" "fewer than one batch" --profile tiny --out "$W/bad" --data "$W/small"
expect_fail "a budget below one batch" "less than one batch" --profile tiny --out "$W/bad" --tokens 10
expect_fail "a grid that cannot finish in time" "more than --max-minutes" --profile tiny --out "$W/bad" --tokens 5000000 --max-minutes 0.1
expect_fail "bad override" "FAMILY.key=value" --profile tiny --out "$W/bad" --override "gpt.theta=3"
check "nothing was trained for wrong input" [ ! -d "$W/bad/runs" ]
finish
