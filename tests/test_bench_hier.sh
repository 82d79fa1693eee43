#!/usr/bin/env bash
# tools/bench_hier.py end to end on a byte-level corpus (this repository's
# README) with 55k models at 32 tokens: every output exists and is well
# formed, a rerun trains nothing, bad input is refused before anything
# trains. Closing line: "test_bench_hier: N passed, N failed" (-v: every check).
set -u
TEST_NAME=test_bench_hier; . "$(dirname "$0")/lib.sh" "$@"
W=build/test_bench_hier
rm -rf "$W"; mkdir -p "$W"
make -s build/train build/eval build/bench_train build/prepare >/dev/null || { fail "build"; finish; }
build/prepare --bytes -o "$W/corpus" --val 0.2 --test 0.2 README.md docs/MODEL.md docs/EXPERIMENTS.md > "$W/prepare.log" 2>&1
check "byte corpus with a test split" [ -s "$W/corpus.test.tok" ]
X="python3 tools/bench_hier.py --data $W/corpus --size 55k --vocab 257 --tokens 1024 --seq 32 --batch 4 --seeds 2 --threads 1 --out $W/out"
$X > "$W/run1.log" 2>&1; rc=$?
check "runs (exit $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || { tail -5 "$W/run1.log"; finish; }
R=$W/out/results.csv
check "results.csv header" [ "$(head -1 "$R")" = "model,seed,params,tokens,test_loss,test_bpb" ]
check "8 runs (4 models x 2 seeds)" [ "$(tail -n +2 "$R" | wc -l)" -eq 8 ]
bad=$(awk -F, 'NR > 1 && ($5 + 0 <= 0 || $5 + 0 > 20 || tolower($0) ~ /nan|inf/)' "$R")
check "finite test losses ($bad)" [ -z "$bad" ]
check "the multi-scale LMU has the LMU's parameters" [ "$(awk -F, '$1 == "lmu" {print $3; exit}' "$R")" = "$(awk -F, '$1 == "lmu-hier" {print $3; exit}' "$R")" ]
check "transformer-hier5 has more" [ "$(awk -F, '$1 == "transformer-hier5" {print $3; exit}' "$R")" -gt "$(awk -F, '$1 == "transformer" {print $3; exit}' "$R")" ]
check "its checkpoint says hier_k 4" grep -q '"hier_k":"4"' "$W/out/lmu-hier-s0/model.safetensors"
check "report.md has the table and the buckets" grep -q '^| lmu-hier | ' "$W/out/report.md"
check "report.md has step memory" grep -q 'step memory MB' "$W/out/report.md"
for f in positions.png positions.svg; do check "$f written" [ -s "$W/out/$f" ]; done
start=$(date +%s)
$X > "$W/run2.log" 2>&1; rc=$?
check "a rerun trains nothing (exit $rc, $(( $(date +%s) - start ))s)" [ $rc -eq 0 ] && ! grep -q 'test loss' "$W/run2.log"
out=$(python3 tools/bench_hier.py --models lmu,gpt --out "$W/bad" 2>&1); rc=$?
check "an unknown model is refused: $out" [ $rc -ne 0 ] && [[ "$out" == *"unknown model 'gpt'"* ]]
out=$(python3 tools/bench_hier.py --data "$W/none" --out "$W/bad" 2>&1); rc=$?
check "missing data is refused: $out" [ $rc -ne 0 ] && [[ "$out" == *"build/prepare"* ]]
check "nothing trained for bad input" [ ! -d "$W/bad/lmu-s0" ]
finish
