#!/usr/bin/env bash
# make demo: from a fresh clone to an LMU language model writing text.
#   1. fetch GPT-2's tokenizer and the Brown corpus if missing (tools/fetch_data.sh)
#   2. tokenize the corpus with GPT-2's BPE into train/validation token files
#   3. train lmu-55k for about three minutes on 2 cores (out/demo/)
#   4. evaluate it: validation loss, bits per byte, loss at each position
#   5. plot the loss curves (out/demo/loss.png, positions.png; SVG beside them)
#   6. sample text from it
# Settings through the environment: STEPS (500), BATCH (8), SEQ (128), LR (6e-3),
# THREADS (2), OUT (out/demo). Example: STEPS=2000 tools/demo.sh
set -eu
cd "$(dirname "$0")/.."
STEPS=${STEPS:-500} BATCH=${BATCH:-8} SEQ=${SEQ:-128} LR=${LR:-6e-3} THREADS=${THREADS:-2}
OUT=${OUT:-out/demo}
# Waiting OpenMP threads sleep instead of spinning: on a busy machine
# spinning threads steal the cores the working ones need (4x slower here).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
start=$(date +%s)
step() { printf '\n== %s\n' "$*"; }

step "1/6 data"
tools/fetch_data.sh

# the programs, with the build line of each one's first comment, if missing
for p in prepare train eval sample; do
    if [ ! -x build/$p ]; then
        line=$(grep -m1 -E '^ +build: cc ' examples/$p.c | sed -E 's/^ +build: //')
        echo "$line"; mkdir -p build; eval "$line"
    fi
done

step "2/6 tokenize (GPT-2 BPE)"
if [ -s data/brown.train.tok ] && [ data/brown.train.tok -nt data/brown.txt ] && [ -s data/brown.val.tok ]; then
    echo "data/brown.train.tok, data/brown.val.tok are up to date"
else
    build/prepare -o data/brown data/brown.txt
fi

step "3/6 train lmu-55k: $STEPS steps of $BATCH x $SEQ tokens on $THREADS threads"
rm -rf "$OUT"
build/train --data data/brown --preset lmu-55k --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" \
    --lr "$LR" --eval-every 50 --eval-batches 8 --save-every 100 --threads "$THREADS" --out "$OUT"

step "4/6 evaluate on the validation split"
build/eval "$OUT/model.safetensors" --data data/brown --max-tokens 65536 --threads "$THREADS" \
    --csv "$OUT/positions.csv"

step "5/6 plots"
TITLE="lmu-55k on the Brown corpus (GPT-2 BPE), $THREADS CPU threads" \
    tools/plot.sh loss "$OUT/loss" "$OUT=lmu-55k"
TITLE="lmu-55k: validation loss at each position of the context" \
    tools/plot.sh positions "$OUT/positions" "$OUT/positions.csv=lmu-55k"

step "6/6 sample (recurrent: constant work per token)"
for prompt in "The jury said" "In the morning"; do
    build/sample "$OUT/model.safetensors" -p "$prompt" -n 60 -t 0.8 -k 40 -s 1 --threads "$THREADS"
    echo
done

end=$(date +%s)
printf '== done in %dm%02ds. Loss curve: %s/loss.png\n' $(((end - start) / 60)) $(((end - start) % 60)) "$OUT"
echo "   more text: build/sample $OUT/model.safetensors -p \"Your prompt\" -n 200"
