#!/usr/bin/env bash
# MQAR end to end (examples/mqar.c, tools/mqar_sweep.py): the generator
# keeps every property of the task, bad settings are refused with a
# message, a tiny sweep writes its CSV, report and plot, and a rerun
# trains nothing. Closing line: "test_mqar: N passed, N failed" (-v: all).
set -u
TEST_NAME=test_mqar; . "$(dirname "$0")/lib.sh" "$@"
W=build/test_mqar
rm -rf "$W"; mkdir -p "$W"
make --no-print-directory build/mqar >"$W/make.log" 2>&1
check "build/mqar builds" [ -x build/mqar ]
[ -x build/mqar ] || finish

for args in "--vocab 8192 --seq 256 --train 200" "--vocab 64 --seq 32 --kv 8 --train 500" "--vocab 512 --seq 128 --train 300"; do
    out=$(build/mqar --check $args 2>&1); rc=$?
    check "data: keys, values, one query per key with its value as target, no other target ($args): $out" [ $rc -eq 0 ]
done
# the long-gap variant: no query before 2 (K + G); the check verifies it
out=$(build/mqar --check --vocab 1024 --seq 512 --kv 16 --offset 128 --train 300 2>&1); rc=$?
check "data with --offset 128: every query at 2 (K + G) or later, each key's value ($out)" [ $rc -eq 0 ] && echo "$out" | grep -q "offset 128"
first=$(build/mqar --check --vocab 1024 --seq 512 --kv 16 --offset 128 --train 300 | sed -n 's/.*nearest tenth of the \([0-9]*\) gaps.*/\1/p')
check "with --offset 128 the gaps are (L - 2K)/2 - G = 112 (got $first)" [ "$first" = 112 ]
build/mqar --seq 128 --kv 16 --offset 33 >"$W/off.out" 2>&1; rc=$?
check "--offset past the room for K gaps refused (exit $rc)" [ $rc -ne 0 ] && grep -q "must fit" "$W/off.out"
# the power law (a = 0.01) favours near queries: with K = 16 of 48 gaps, far more than a tenth
near=$(build/mqar --check --vocab 512 --seq 128 --train 2000 | sed -n 's/.* \([0-9.]*\)% of the queries.*/\1/p')
check "gaps: $near% of the queries in the nearest tenth (uniform: 10%)" awk -v p="$near" 'BEGIN { exit !(p > 20) }'
build/mqar --seq 33 >"$W/odd.out" 2>&1; rc=$?
check "odd --seq refused (exit $rc)" [ $rc -ne 0 ] && grep -q "must be even" "$W/odd.out"
build/mqar --seq 32 --kv 9 >"$W/kv.out" 2>&1; rc=$?
check "--kv over L/4 refused (exit $rc)" [ $rc -ne 0 ] && grep -q "must fit" "$W/kv.out"
build/mqar --preset none --set feature_dim=0x --seq 32 >"$W/set.out" 2>&1; rc=$?
check "a bad --set refused (exit $rc)" [ $rc -ne 0 ] && grep -q "feature_dim" "$W/set.out"

start=$(date +%s)
python3 tools/mqar_sweep.py --profile tiny --out "$W/sweep" --jobs 2 --threads 1 >"$W/sweep.log" 2>&1; rc=$?
check "tiny sweep runs (exit $rc, $(( $(date +%s) - start )) s)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || { tail -5 "$W/sweep.log"; finish; }
R=$W/sweep/results.csv
check "results.csv: header and one row per run (2)" [ "$(head -1 "$R" | cut -d, -f1-3)" = "model,d,L" -a "$(tail -n +2 "$R" | wc -l)" -eq 2 ]
bad=$(awk -F, 'NR > 1 && ($8 < 0 || $8 > 1 || $10 <= 0) { print }' "$R")
check "accuracies in [0, 1], losses positive" [ -z "$bad" ]
check "report.md has a table per d_model" grep -q "^| lmu-rebased | " "$W/sweep/report.md"
check "accuracy.png written" [ -s "$W/sweep/accuracy.png" ]
python3 tools/mqar_sweep.py --profile tiny --out "$W/sweep" --jobs 2 --threads 1 >"$W/rerun.log" 2>&1
check "a rerun trains nothing" [ "$(grep -c 'build/mqar' "$W/rerun.log")" -eq 0 ]
finish
