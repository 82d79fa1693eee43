#!/usr/bin/env python3
"""MQAR sweep: every model of the list over d_model and sequence length,
a small learning-rate sweep and seeds, through build/mqar.

    tools/mqar_sweep.py [--profile default|probe|paper|tiny] [--out out/mqar]
                        [--jobs 2] [--threads 1] [--models transformer,rebased,...]

Each run writes OUT/runs/NAME.json (build/mqar --json); a run whose file
exists is not run again, so a stopped sweep resumes. Then OUT/results.csv
(every run), OUT/report.md (per model, d and L: the mean and spread over
seeds of the test accuracy at the learning rate with the best mean, as the
ReBased paper reports the best of its sweep, beside that paper's Figure 1)
and OUT/accuracy.png (accuracy against L, one panel per d_model; gnuplot).
--jobs runs that many at once, each on --threads threads: on small models
two one-thread runs get more done than one two-thread run.

The models (our names): transformer (GPT-2 blocks); rebased and based,
the reference's MQAR models: 2 transformer-style layers, the first a short
convolution gate (mixer conv, the reference's BaseConv), the second the
linear attention (the reference has no MLP in its MQAR layers, ours keep
the transformer's); lmu (mixer ffn), lmu-attn, lmu-rebased, lmu-based: the
LMU stack with that mixer in every layer. All from the library's defaults
at the given d_model and 2 layers.
K = 16 key-value pairs at L = 128 and L / 4 above (the issue's grid).

Profiles:
- 'default': the issue's grid (7 models, d 64 and 128, L 128, 256 and 512,
  lr 1e-3 and 3e-3, 3 seeds: 252 runs) at V 8192, cut to what fits in
  about an hour on 2 cores: 131,072 training tokens a run (1,024 examples
  at L 128, 512 at 256, 256 at 512), one epoch of batch 16, 100 test
  examples. That is about 1/1,000 of the reference's training (100,000
  examples, up to 64 epochs): every model stays at chance there (252
  runs in 64 minutes on a Zen 3, 2 jobs of 1 thread, 2026-12-07; README).
- 'paper': the same grid at the reference's budget (100,000 examples, 64
  epochs, batch 64, early stop at 0.99): days on 2 cores; not run here.
- 'probe': the easy setting in which the models do learn the task on a CPU:
  V 128, d 64, L 32, K 4, 20,000 examples, 16 epochs, lr 1e-3, 3 seeds (1
  to 7 minutes a run on one core).
- 'tiny': the test's.
"""
import argparse
import concurrent.futures
import csv
import json
import os
import statistics
import subprocess
import sys
import time

MODELS = {
    "transformer": "arch=transformer,n_layer=2",
    "based": "arch=transformer,n_layer=2,mixer=conv,based",
    "rebased": "arch=transformer,n_layer=2,mixer=conv,rebased",
    "lmu": "mixer=ffn,n_layer=2",
    "lmu-attn": "mixer=attn,n_layer=2",
    "lmu-rebased": "mixer=rebased,n_layer=2",
    "lmu-based": "mixer=based,n_layer=2",
}
# ReBased paper, Figure 1 (read off the authors' plot, +-0.02): (d, L) -> model -> accuracy
PAPER = {
    (64, 256): {"transformer": 1.0, "rebased": 0.97, "based": 0.99},
    (64, 512): {"transformer": 1.0, "rebased": 0.89, "based": 0.90},
}
PROFILES = {
    # vocab, train examples, test examples, epochs, batch, d list, L list, lrs, seeds
    # train: examples at each L (a dict) or at every L
    "default": dict(vocab=8192, train={128: 1024, 256: 512, 512: 256}, test=100, epochs=1, batch=16,
                    d=(64, 128), L=(128, 256, 512), lrs=(1e-3, 3e-3), seeds=(1, 2, 3), models=tuple(MODELS)),
    "paper": dict(vocab=8192, train=100000, test=3000, epochs=64, batch=64, d=(64, 128), L=(128, 256, 512),
                  lrs=(1e-3, 3e-3), seeds=(1, 2, 3), models=tuple(MODELS)),
    "probe": dict(vocab=128, train=20000, test=200, epochs=16, batch=64, d=(64,), L=(32,), kv_div=8,
                  lrs=(1e-3,), seeds=(1, 2, 3), models=tuple(MODELS)),
    "tiny": dict(vocab=64, train=64, test=16, epochs=2, batch=16, d=(16,), L=(32,), lrs=(3e-3,), seeds=(1,),
                 models=("rebased", "lmu-rebased")),
}


def kv_for(L):
    return 16 if L <= 128 else L // 4


def run_name(model, d, L, lr, seed):
    return f"{model}_d{d}_L{L}_lr{lr:g}_s{seed}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--out", default="out/mqar")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="threads per run (default 1)")
    ap.add_argument("--bin", default="build/mqar")
    ap.add_argument("--models", default=None, help="comma list: a subset of the profile's models")
    a = ap.parse_args()
    P = dict(PROFILES[a.profile])
    if a.models:
        want = a.models.split(",")
        bad = [m for m in want if m not in P["models"]]
        if bad:
            sys.exit(f"mqar_sweep: --models: {', '.join(bad)} not in the profile ({', '.join(P['models'])})")
        P["models"] = tuple(want)
    os.makedirs(os.path.join(a.out, "runs"), exist_ok=True)
    grid = [(m, d, L, lr, s) for m in P["models"] for d in P["d"] for L in P["L"]
            for lr in P["lrs"] for s in P["seeds"]]
    if a.jobs < 1 or a.threads < 1:
        sys.exit("mqar_sweep: --jobs and --threads must be at least 1")
    t0 = time.time()
    todo = []
    for i, (m, d, L, lr, s) in enumerate(grid):
        path = os.path.join(a.out, "runs", run_name(m, d, L, lr, s) + ".json")
        if os.path.exists(path):
            continue
        kv = L // P["kv_div"] if "kv_div" in P else min(kv_for(L), L // 4)
        train = P["train"][L] if isinstance(P["train"], dict) else P["train"]
        cmd = [a.bin, "--preset", "none", "--set", f"d_model={d}," + MODELS[m], "--vocab", str(P["vocab"]),
               "--seq", str(L), "--kv", str(kv), "--train", str(train), "--test", str(P["test"]),
               "--epochs", str(P["epochs"]), "--batch", str(P["batch"]), "--lr", str(lr), "--seed", str(s),
               "--threads", str(a.threads), "--json", path + ".tmp"]
        todo.append((i, path, cmd))

    def run(job):
        i, path, cmd = job
        print(f"[{i + 1}/{len(grid)}, {time.time() - t0:.0f} s] {' '.join(cmd)}", flush=True)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            return f"run failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-2000:]}"
        os.replace(path + ".tmp", path)
        return None

    # the runs already done stay; a failure stops the sweep once the runs
    # under way have finished (their results are kept)
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futs = [pool.submit(run, j) for j in todo]
        for f in futs:
            err = f.result()
            if err:
                for g in futs:
                    g.cancel()
                sys.exit(f"mqar_sweep: {err}")
    if todo:
        print(f"mqar_sweep: {len(todo)} runs in {time.time() - t0:.0f} s", flush=True)
    rows = []
    for m, d, L, lr, s in grid:
        with open(os.path.join(a.out, "runs", run_name(m, d, L, lr, s) + ".json")) as f:
            j = json.load(f)
        rows.append(dict(model=m, d=d, L=L, kv=j["kv"], lr=lr, seed=s, params=j["params"],
                         accuracy=j["accuracy"], best_accuracy=j["best_accuracy"], test_loss=j["test_loss"],
                         steps=j["steps"], seconds=j["seconds"]))
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # per (model, d, L): the lr with the best mean final accuracy over seeds
    best = {}
    for m in P["models"]:
        for d in P["d"]:
            for L in P["L"]:
                cands = []
                for lr in P["lrs"]:
                    acc = [r["accuracy"] for r in rows if (r["model"], r["d"], r["L"], r["lr"]) == (m, d, L, lr)]
                    cands.append((statistics.mean(acc), lr, acc))
                best[(m, d, L)] = max(cands)
    train_desc = (", ".join(f"{n} (L {L})" for L, n in sorted(P["train"].items()))
                  if isinstance(P["train"], dict) else str(P["train"]))
    lines = [f"# MQAR sweep ({a.profile} profile)", "",
             f"V {P['vocab']}, {train_desc} training / {P['test']} test examples, {P['epochs']} epochs of "
             f"batch {P['batch']}, lrs {', '.join('%g' % x for x in P['lrs'])}, seeds "
             f"{', '.join(map(str, P['seeds']))}; "
             + (f"K = L/{P['kv_div']}. " if "kv_div" in P else "K = 16 at L = 128, L/4 above. ")
             + "Test accuracy on the "
             "queries, mean +- std over seeds at the learning rate with the best mean "
             "(paper: ReBased Figure 1, +-0.02).", ""]
    for d in P["d"]:
        lines += [f"## d_model = {d}", "", "| model | " + " | ".join(f"L = {L}" for L in P["L"]) + " |",
                  "|---|" + "---:|" * len(P["L"])]
        for m in P["models"]:
            cells = []
            for L in P["L"]:
                mean, lr, acc = best[(m, d, L)]
                sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
                ref = PAPER.get((d, L), {}).get(m)
                cells.append(f"{mean:.3f} +- {sd:.3f} (lr {lr:g})" + (f", paper {ref:.2f}" if ref is not None else ""))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    dat = os.path.join(a.out, "accuracy.dat")
    with open(dat, "w") as f:
        for m in P["models"]:
            f.write(f"# {m}\n")
            for d in P["d"]:
                for L in P["L"]:
                    mean, lr, acc = best[(m, d, L)]
                    f.write(f"{d} {L} {mean:.6f}\n")
            f.write("\n\n")
    plots = []
    for k, d in enumerate(P["d"]):
        series = ", ".join(f"'{dat}' index {i} using ($1 == {d} ? $2 : 1/0):3 with linespoints title '{m}'"
                           for i, m in enumerate(P["models"]))
        plots.append(f"set title 'd_model = {d}'; plot {series}")
    gp = (f"set terminal pngcairo size {600 * len(P['d'])},450; set output '{os.path.join(a.out, 'accuracy.png')}';"
          f"set multiplot layout 1,{len(P['d'])}; set logscale x 2; set xlabel 'sequence length L';"
          f"set ylabel 'MQAR test accuracy'; set yrange [0:1.05]; set key bottom left;"
          + ";".join(plots) + "; unset multiplot")
    r = subprocess.run(["gnuplot", "-e", gp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print(f"mqar_sweep: gnuplot failed: {r.stdout[-500:]}", file=sys.stderr)
    print(f"mqar_sweep: {len(rows)} runs in {a.out}/results.csv, report.md, accuracy.png")


if __name__ == "__main__":
    main()
