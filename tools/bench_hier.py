#!/usr/bin/env python3
"""Multi-scale stacks against their plain stacks, at equal tokens.

    tools/bench_hier.py [--data PREFIX] [--out DIR] [--size 200k] [--tokens N]
                        [--seq 1024] [--batch 2] [--lr 3e-3] [--seeds 3]
                        [--threads 1] [--models NAME,...] [--vocab V]

For each model and seed: build/train on PREFIX.train.tok, then build/eval
on PREFIX.test.tok (no choice is made on it) with the loss at each
position. The models (lmu_config items on a preset of --size):

    transformer        transformer-SIZE
    transformer-hier5  transformer-SIZE, n_layer 5, hier_k 4: 1 fine, 3
                       coarse, 1 fine layer (more parameters, less
                       activation memory: the paper's trade-off)
    lmu                lmu-SIZE
    lmu-hier           lmu-SIZE, hier_k 4: 1 fine, 1 coarse, 1 fine
                       (the same parameters; the coarse layer's window is
                       4 theta tokens)

Writes DIR/MODEL-sSEED/ (train's files, test.json, positions.csv),
DIR/results.csv (one row a run), DIR/report.md (mean and spread over
seeds, loss by context bucket) and DIR/positions.{png,svg} (the loss at
each position, mean over seeds). Finished runs are skipped, so running
it again continues. The step time and memory of the same models:
build/bench_train PRESET --set ITEMS (step_used_mb).
"""
import argparse, csv, json, math, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = {
    "transformer": ("transformer-%s", ""),
    "transformer-hier5": ("transformer-%s", "n_layer=5,hier_k=4"),
    "lmu": ("lmu-%s", ""),
    "lmu-hier": ("lmu-%s", "hier_k=4"),
}


def die(msg):
    sys.stderr.write("bench_hier: %s\n" % msg)
    sys.exit(1)


def run(cmd, log):
    with open(log, "w") as f:
        if subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT) != 0:
            die("failed: %s (see %s)" % (" ".join(cmd), log))


def one(a, name, seed):
    preset, items = MODELS[name]
    d = os.path.join(a.out, "%s-s%d" % (name, seed))
    res = os.path.join(d, "test.json")
    if os.path.exists(res):
        with open(res) as f:
            return json.load(f)
    os.makedirs(d, exist_ok=True)
    conf = ["preset = " + preset % a.size, "n_ctx = %d" % a.seq]
    conf += [kv.replace("=", " = ") for kv in items.split(",") if kv]
    conf += ["vocab_size = %d" % a.vocab] if a.vocab else []
    with open(os.path.join(d, "model.conf"), "w") as f:
        f.write("\n".join(conf) + "\n")
    ckpt = os.path.join(d, "model.safetensors")
    train = [os.path.join(ROOT, "build/train")]
    if os.path.exists(ckpt):  # a killed run continues from its checkpoint
        train += ["--resume", ckpt, "--out", d, "--threads", str(a.threads)]
    else:
        train += ["--config", os.path.join(d, "model.conf"), "--data", a.data, "--batch", str(a.batch),
                  "--seq", str(a.seq), "--tokens", str(a.tokens), "--lr", "%g" % a.lr, "--seed", str(seed),
                  "--threads", str(a.threads), "--eval-every", "50", "--out", d]
    run(train, os.path.join(d, "train.log"))
    run([os.path.join(ROOT, "build/eval"), ckpt, "--tokens", a.data + ".test.tok", "--seq", str(a.seq),
         "--threads", str(a.threads), "--csv", os.path.join(d, "positions.csv"), "--json", res],
        os.path.join(d, "eval.log"))
    with open(res) as f:
        r = json.load(f)
    print("bench_hier: %s seed %d: test loss %.4f" % (name, seed, r["loss"]), flush=True)
    return r


def bench(a, name):
    """build/bench_train's step time and memory for the model (cached)."""
    preset, items = MODELS[name]
    p = os.path.join(a.out, name, "bench.txt")
    if not os.path.exists(p):
        cmd = [os.path.join(ROOT, "build/bench_train"), preset % a.size, "--batch", str(a.batch), "--seq",
               str(a.seq), "--steps", "3", "--threads", str(a.threads)] + (["--set", items] if items else []) + \
              (["--vocab", str(a.vocab)] if a.vocab else [])
        os.makedirs(os.path.dirname(p), exist_ok=True)
        run(cmd, p)
    with open(p) as f:
        kv = dict(line.split(": ", 1) for line in f.read().splitlines() if ": " in line)
    return {k: float(kv[k]) for k in ("tokens_per_s", "s_per_step_best", "step_used_mb", "peak_rss_mb")}


def mean_std(v):
    m = sum(v) / len(v)
    return m, (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/brown3")
    ap.add_argument("--out", default="out/bench_hier")
    ap.add_argument("--size", default="200k")
    ap.add_argument("--tokens", type=int, default=409600)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--vocab", type=int, default=0, help="vocabulary size (default: the preset's, GPT-2's)")
    a = ap.parse_args()
    names = a.models.split(",")
    for n in names:
        if n not in MODELS:
            die("unknown model '%s' (want %s)" % (n, ", ".join(MODELS)))
    for ext in (".train.tok", ".test.tok"):
        if not os.path.exists(os.path.join(ROOT, a.data + ext)):
            die("no %s%s: build/prepare -o %s --test 0.1 data/brown.txt makes it" % (a.data, ext, a.data))
    for b in ("build/train", "build/eval", "build/bench_train"):
        if not os.path.exists(os.path.join(ROOT, b)):
            die("%s missing: make %s" % (b, b))
    os.makedirs(a.out, exist_ok=True)
    results = {n: [one(a, n, s) for s in range(a.seeds)] for n in names}
    speed = {n: bench(a, n) for n in names}
    rows = []
    for n in names:
        for s, r in enumerate(results[n]):
            rows.append({"model": n, "seed": s, "params": r["params"], "tokens": a.tokens,
                         "test_loss": r["loss"], "test_bpb": r.get("bpb", "")})
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    # the mean over seeds of the loss at each position, for the plot
    csvs = []
    for n in names:
        per = []
        for s in range(a.seeds):
            with open(os.path.join(a.out, "%s-s%d" % (n, s), "positions.csv")) as f:
                per.append({int(r["position"]): float(r["loss"]) for r in csv.DictReader(f)})
        p = os.path.join(a.out, n, "positions.csv")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("position,loss,count\n")
            for t in sorted(per[0]):
                f.write("%d,%.6f,%d\n" % (t, sum(q[t] for q in per) / len(per), len(per)))
        csvs.append(p)
    out = ["# Multi-scale stacks against their plain stacks", "",
           "`tools/bench_hier.py --data %s --size %s --tokens %d --seq %d --batch %d --lr %g --seeds %d%s`: "
           "test split, %d tokens a run." % (a.data, a.size, a.tokens, a.seq, a.batch, a.lr, a.seeds,
                                            " --vocab %d" % a.vocab if a.vocab else "", a.tokens), "",
           "| model | N | test loss, mean +- std | seeds | step memory MB | peak RSS MB | tokens/s |",
           "|---|---|---|---|---|---|---|"]
    for n in names:
        m, sd = mean_std([r["loss"] for r in results[n]])
        b = speed[n]
        out.append("| %s | %d | %.4f +- %.4f | %s | %.1f | %.1f | %.0f |" % (
            n, results[n][0]["params"], m, sd, ", ".join("%.4f" % r["loss"] for r in results[n]),
            b["step_used_mb"], b["peak_rss_mb"], b["tokens_per_s"]))
    out += ["", "Step memory: lmu_model_step_bytes_used (activations, their gradients, kernel "
            "scratch) of a training step at batch %d x %d; tokens/s of `build/bench_train` at "
            "%d thread(s), best of 3 steps." % (a.batch, a.seq, a.threads)]
    out += ["", "Loss by tokens of context (mean over seeds):", ""]
    bk = results[names[0]][0]["buckets"]
    out.append("| model | " + " | ".join("%d-%d" % (b["lo"], b["hi"]) for b in bk) + " |")
    out.append("|---|" + "---|" * len(bk))
    for n in names:
        out.append("| %s | " % n + " | ".join(
            "%.3f" % (sum(r["buckets"][i]["loss"] for r in results[n]) / len(results[n]))
            for i in range(len(bk))) + " |")
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))
    env = dict(os.environ, TITLE="loss at each position, test split, mean of %d seeds" % a.seeds)
    subprocess.call([os.path.join(HERE, "plot.sh"), "positions", os.path.join(a.out, "positions")] +
                    csvs, env=env, cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
