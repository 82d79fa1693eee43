#!/usr/bin/python3
"""ref_clicheck.py - exercises lmu_ref.py's command line on real files.

Each mode goes through lmu_ref.main(argv), in one process (a torch import per
call would cost seconds): init -> grads -> generate-check for both mixers and
the transformer, and a corrupt checkpoint. Prints "  ok"/"  FAIL" lines (the
test script counts them) and a last line "ref_clicheck done". Used by
tests/test_ref_selfcheck.sh.
"""
import contextlib
import io
import math
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmu_ref  # noqa: E402


def cli(*argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = lmu_ref.main(list(argv))
    return rc, buf.getvalue().strip()


def check(ok, msg):
    print(("  ok   " if ok else "  FAIL ") + msg)
    sys.stdout.flush()
    return ok


def one(tmp, spec, V=97):
    m, b, r, g = (os.path.join(tmp, x + ".safetensors") for x in "mbrg")
    tok = torch.randint(0, V, (2, 33), generator=torch.Generator().manual_seed(4), dtype=torch.int32)
    lmu_ref.st_write(b, {"tokens": tok})
    rc, log = cli("init", "--config", spec, "--out", m, "--seed", "2", "--jitter", "0.05")
    if not check(rc == 0, f"CLI {spec}: init"):
        print(log)
        return
    rc, log = cli("grads", "--ckpt", m, "--batch", b, "--out", r)
    try:
        assert rc == 0, log
        cfg, P = lmu_ref.load_checkpoint(m)
        R, meta = lmu_ref.st_read(r)
        names = list(lmu_ref.param_shapes(cfg))
        assert R["loss"].dtype == torch.float64 and tuple(R["loss"].shape) == (1,)
        assert tuple(R["logits"].shape) == (2, 32, V) and R["logits"].dtype == torch.float32
        for k in names:
            assert tuple(R["grad." + k].shape) == tuple(P[k].shape), k
            assert R["grad." + k].dtype == torch.float32, k
            assert R["grad." + k].abs().max() > 0, f"grad.{k} is all zero"
        loss, logits, _ = lmu_ref.compute_grads(P, cfg, lmu_ref.load_tokens(b))
        assert R["loss"].item() == loss.item()
        assert torch.equal(R["logits"], logits.float())
        assert abs(loss.item() - math.log(V)) < 0.5, f"loss {loss.item()} far from log V at init"
        check(True, f"CLI {spec}: init -> grads writes loss, logits and {len(names)} gradients")
    except AssertionError as e:
        check(False, f"CLI {spec}: grads: {e}")
    rc, log = cli("generate-check", "--ckpt", m, "--batch", b, "--out", g)
    ok = rc == 0
    if ok:
        G, _ = lmu_ref.st_read(g)
        ok = tuple(G["logits"].shape) == (2, 33, V) and G["max_abs_diff"].item() < 1e-9
    check(ok, f"CLI {spec}: generate-check: {log}")
    return m, b, r


def main():
    with tempfile.TemporaryDirectory() as tmp:
        files = None
        for spec in ("lmu-55k,V=97,n=40", "lmu-55k,V=97,n=40,mixer=attn,theta=90.5",
                     "arch=transformer,V=97,n=40,d=32,L=2"):
            files = one(tmp, spec) or files
        if files:  # a corrupt file is an error message and status 2, not a traceback
            m, b, r = files
            with open(m, "r+b") as f:
                f.write(b"\xff" * 8)
            rc, log = cli("grads", "--ckpt", m, "--batch", b, "--out", r)
            check(rc == 2 and "error" in log, f"CLI grads on a corrupt checkpoint: status {rc}, {log!r}")
    print("ref_clicheck done")


if __name__ == "__main__":
    main()
