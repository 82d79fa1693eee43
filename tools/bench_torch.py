#!/usr/bin/python3
"""bench_torch.py - the PyTorch peer for lmu.h's benchmarks (not a test).

The model of MODEL.md in float32, written as a competent PyTorch user would
(nn.Module, F.layer_norm, F.gelu(approximate="tanh"), batched rfft/irfft for
the implicit-attention convolution, F.cross_entropy, torch.optim.Adam). The
module's parameter names are MODEL.md section 7's, so `--check` can compare it
with tests/lmu_ref.py (float64), and `--ckpt` can load a checkpoint.

Run PyTorch at its best: leave OPENBLAS_CORETYPE UNSET (let OpenBLAS detect
the CPU) and set OMP_WAIT_POLICY=PASSIVE, e.g.

  env -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=PASSIVE \
      /usr/bin/python3 tools/bench_torch.py --config lmu-55k --threads 2

Memory: PyTorch allocates each step's large buffers afresh (logits alone are
B*n*V floats = 1.6 GB at 8 x 1024 x 50257). Where first-touch page faults are
slow (on this project's VM a fresh 400 MB buffer costs ~2.5 s to fault in),
glibc malloc's habit of returning big blocks to the kernel dominates the step
time. So by default (--malloc auto) the script re-executes itself under
jemalloc with decay off (LD_PRELOAD=libjemalloc.so.2, MALLOC_CONF=
dirty_decay_ms:-1,muzzy_decay_ms:-1, the usual PyTorch-on-CPU tuning) when
Debian's libjemalloc2 is installed; --malloc glibc measures plain PyTorch.

The settings in force are printed with the results. --threads k sets
torch.set_num_threads(k) and, before torch loads, OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS (Debian's torch calls OpenBLAS through libblas.so.3).

USAGE
  training (default): tokens/s of Adam steps at batch 8 x 1024, V = 50257
    bench_torch.py --config lmu-55k|lmu-1m[,mixer=attn]|SPEC --threads K
    bench_torch.py --tf L,d,n_head --threads K          (GPT-2 transformer)
        [--batch 8] [--seq 1024] [--warmup 2] [--steps 3] [--max-seconds 60]
  generation: tokens/s at batch 1, one token at a time
    bench_torch.py --generate --config lmu-1m [--tokens 256] [--ctx 1024]
        LMU: per layer a q x d memory stepped by m = Abar m + Bbar u^T (O(1)
        per token; --ctx only sizes the KV cache of mixer attn)
    bench_torch.py --generate --tf L,d,h [--contexts 1024,4096,16384,65536]
        transformer with a KV cache: cost per token at each context length
        (the cache is filled with random keys/values: the cost does not
        depend on them)
  check: bench_torch.py --check   (float32 module == lmu_ref.py float64 on
        small models: loss, logits, gradients; exit 1 on mismatch)
SPEC is lmu_ref.py's config syntax (e.g. "lmu-55k,mixer=attn").
Output: `key: value` lines, among them tokens_per_s and peak_rss_mb
(resource.getrusage ru_maxrss); --json adds one JSON line.
"""
import argparse
import json
import math
import os
import platform
import resource
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch benchmark peer for lmu.h",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--config", default="lmu-55k", help="lmu_ref.py config SPEC (default lmu-55k)")
    ap.add_argument("--mixer", choices=("ffn", "attn"), help="override the mixer")
    ap.add_argument("--tf", help="GPT-2 transformer as L,d,n_head (overrides --config)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps (the first allocates Adam state)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps (at most; see --max-seconds)")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="stop timing after this (>= 1 step)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ckpt", help="start from this checkpoint instead of a random init")
    ap.add_argument("--generate", action="store_true")
    ap.add_argument("--tokens", type=int, default=256, help="--generate: tokens to step")
    ap.add_argument("--ctx", type=int, default=1024, help="--generate (LMU attn mixer): context offset")
    ap.add_argument("--contexts", default="1024,4096,16384,65536", help="--generate --tf: context lengths")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--malloc", choices=("auto", "jemalloc", "glibc"), default="auto",
                    help="auto: jemalloc (decay off) when libjemalloc2 is installed")
    return ap.parse_args(argv)


JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"


def maybe_reexec(a):
    """Re-executes under jemalloc (see the docstring) unless already there."""
    want = a.malloc == "jemalloc" or (a.malloc == "auto" and os.path.exists(JEMALLOC))
    if a.check or not want or "libjemalloc" in os.environ.get("LD_PRELOAD", ""):
        return
    if not os.path.exists(JEMALLOC):
        sys.exit(f"bench_torch: {JEMALLOC} not found (apt-get install libjemalloc2)")
    env = dict(os.environ, LD_PRELOAD=(JEMALLOC + " " + os.environ.get("LD_PRELOAD", "")).strip())
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    maybe_reexec(ARGS)
    # thread pools read these when torch (and OpenBLAS) load
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
    os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# the float64 reference lives beside the tests that use it
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import lmu_ref  # noqa: E402  (config parsing, presets, Abar/Bbar/H in float64)


# ----------------------------------------------------------------------------
# the model, float32

class FFN(nn.Module):
    def __init__(self, d, inner):
        super().__init__()
        self.fc = nn.Linear(d, inner)
        self.proj = nn.Linear(inner, d)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class CausalSelfAttention(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, n, d = x.shape
        h, dh = self.n_head, d // self.n_head
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(B, n, h, dh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dh))
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).triu_(1)
        att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, n, d))

    def step(self, x, kc, vc, t):
        """x [1, d]; kc, vc [h, T_max, dh] caches; writes position t."""
        d = x.shape[-1]
        h, dh = self.n_head, d // self.n_head
        q, k, v = self.qkv(x).view(3, h, dh)
        kc[:, t] = k
        vc[:, t] = v
        att = torch.softmax((kc[:, :t + 1] @ q.unsqueeze(-1)).squeeze(-1) * (1.0 / math.sqrt(dh)), dim=-1)
        y = (att.unsqueeze(1) @ vc[:, :t + 1]).reshape(1, d)
        return self.proj(y)


class ImplicitAttention(nn.Module):
    """MODEL.md section 2; the convolution is a batched length-2n rfft/irfft
    along time (the last axis), with L applied to FFT(H) in frequency."""

    def __init__(self, d, q, qp, theta, n):
        super().__init__()
        self.d, self.q, self.qp = d, q, qp
        self.L = nn.Parameter(torch.randn(3, qp, q) / math.sqrt(q))
        self.b = nn.Parameter(torch.zeros(3, qp))
        self.p = nn.Parameter(torch.randn(qp) / math.sqrt(qp))
        Abar, Bbar = lmu_ref.lmu_discrete(q, theta)
        self.register_buffer("Abar", Abar.float(), persistent=False)
        self.register_buffer("Bbar", Bbar.float(), persistent=False)
        self.theta = theta
        self._n = None
        self._fft_H(n)

    def _fft_H(self, n):
        if self._n == n:
            return
        FH = torch.fft.rfft(lmu_ref.lmu_H(self.q, self.theta, n), n=2 * n)  # float64, once per n
        self.register_buffer("FHr", FH.real.float().contiguous(), persistent=False)
        self.register_buffer("FHi", FH.imag.float().contiguous(), persistent=False)
        self._n = n

    def forward(self, u):
        B, n, d = u.shape
        self._fft_H(n)
        Lm = self.L.view(3 * self.qp, self.q)
        FHt = torch.complex(Lm @ self.FHr, Lm @ self.FHi)  # [3q', n+1]
        FU = torch.fft.rfft(u.transpose(1, 2), n=2 * n)  # [B, d, n+1]
        Z = torch.fft.irfft(FU.unsqueeze(1) * FHt[None, :, None, :], n=2 * n)[..., :n]  # [B, 3q', d, n]
        Z = Z.permute(0, 3, 1, 2).reshape(B, n, 3, self.qp, d) + self.b[:, :, None]
        Q, K, V = F.gelu(Z, approximate="tanh").unbind(2)  # [B, n, q', d]
        P = F.softmax((Q @ K.transpose(-2, -1)) * (1.0 / math.sqrt(d)), dim=-1)
        return torch.matmul(self.p, P @ V)  # [B, n, d]

    def step(self, u, m):
        """u [1, d], m [q, d] memory (updated in place) -> y [1, d]."""
        m.copy_(torch.addr(self.Abar @ m, self.Bbar, u[0]))
        Z = torch.addmm(self.b.view(-1, 1), self.L.view(-1, self.q), m).view(3, self.qp, self.d)
        Q, K, V = F.gelu(Z, approximate="tanh").unbind(0)
        P = torch.softmax((Q @ K.t()) * (1.0 / math.sqrt(self.d)), dim=-1)
        return (self.p @ (P @ V)).unsqueeze(0)


class Block(nn.Module):
    def __init__(self, cfg, n):
        super().__init__()
        d = cfg["d_model"]
        self.lmu_arch = cfg["arch"] == "lmu"
        self.ln_a = nn.LayerNorm(d, eps=1e-5)
        if not self.lmu_arch or cfg["mixer"] == "attn":
            self.attn = CausalSelfAttention(d, cfg["n_head"])
        else:
            self.ffn_pre = FFN(d, cfg["d_pre"])
        if self.lmu_arch:
            self.ln_b = nn.LayerNorm(d, eps=1e-5)
            self.lmu = ImplicitAttention(d, cfg["q"], cfg["q_prime"], cfg["theta"], n)
        self.ln_c = nn.LayerNorm(d, eps=1e-5)
        self.ffn_post = FFN(d, cfg["d_ff"])

    def forward(self, x):
        h = self.ln_a(x)
        x = x + (self.attn(h) if hasattr(self, "attn") else self.ffn_pre(h))
        if self.lmu_arch:
            x = x + self.lmu(self.ln_b(x))
        return x + self.ffn_post(self.ln_c(x))

    def step(self, x, state, t):
        h = self.ln_a(x)
        x = x + (self.attn.step(h, state["k"], state["v"], t) if hasattr(self, "attn") else self.ffn_pre(h))
        if self.lmu_arch:
            x = x + self.lmu.step(self.ln_b(x), state["m"])
        return x + self.ffn_post(self.ln_c(x))


class LM(nn.Module):
    def __init__(self, cfg, n):
        super().__init__()
        self.cfg = cfg
        d = cfg["d_model"]
        self.wte = nn.Parameter(0.02 * torch.randn(cfg["vocab_size"], d))
        if cfg["arch"] == "transformer":
            self.wpe = nn.Parameter(0.01 * torch.randn(cfg["n_ctx"], d))
        self.blocks = nn.ModuleList(Block(cfg, n) for _ in range(cfg["n_layer"]))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, idx, targets=None):
        x = F.embedding(idx, self.wte)
        if hasattr(self, "wpe"):
            x = x + self.wpe[: idx.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        logits = F.linear(self.ln_f(x), self.wte)
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))

    def new_state(self, max_t):
        cfg, st = self.cfg, []
        d = cfg["d_model"]
        for blk in self.blocks:
            s = {}
            if hasattr(blk, "attn"):
                h = cfg["n_head"]
                s["k"] = torch.zeros(h, max_t, d // h)
                s["v"] = torch.zeros(h, max_t, d // h)
            if blk.lmu_arch:
                s["m"] = torch.zeros(cfg["q"], d)
            st.append(s)
        return st

    def step(self, tok, state, t):
        """tok: int; t: its position -> logits [1, V]."""
        x = self.wte[tok].unsqueeze(0)
        if hasattr(self, "wpe"):
            x = x + self.wpe[t]
        for blk, s in zip(self.blocks, state):
            x = blk.step(x, s, t)
        return F.linear(self.ln_f(x), self.wte)


# ----------------------------------------------------------------------------

def build_config(a):
    if a.tf:
        L, d, h = (int(x) for x in a.tf.split(","))
        n_ctx = a.seq
        if a.generate:
            n_ctx = max(int(c) for c in a.contexts.split(",")) + a.tokens
        return lmu_ref.make_config(f"arch=transformer,L={L},d={d},h={h},V={a.vocab},n={n_ctx}")
    spec = a.config + (f",mixer={a.mixer}" if a.mixer else "")
    return lmu_ref.make_config(spec, vocab_size=a.vocab, n_ctx=max(a.seq, a.ctx + a.tokens))


def load_ckpt_into(model, path):
    cfg, P = lmu_ref.load_checkpoint(path)
    model.load_state_dict({k: v.float() for k, v in P.items()}, strict=True)


def settings(a):
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "threads": torch.get_num_threads(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        "malloc": ("jemalloc MALLOC_CONF=" + os.environ.get("MALLOC_CONF", "")
                   if "libjemalloc" in os.environ.get("LD_PRELOAD", "") else "glibc"),
        "torch": torch.__version__,
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "loadavg_1min": os.getloadavg()[0],  # other work on the machine skews tokens_per_s
    }


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def report(res, a):
    for k, v in res.items():
        print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    if a.json:
        print(json.dumps(res))


def bench_train(a, cfg):
    torch.manual_seed(a.seed)
    model = LM(cfg, a.seq)
    if a.ckpt:
        load_ckpt_into(model, a.ckpt)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)  # betas (0.9, 0.999), eps 1e-8
    g = torch.Generator().manual_seed(a.seed)
    data = torch.randint(0, cfg["vocab_size"], (a.batch, a.seq + 1), generator=g)
    x, y = data[:, :-1], data[:, 1:]

    def step():
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warmup):
        step()
    times, cpu, losses = [], [], []
    t_all = time.perf_counter()
    for _ in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(step())
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if time.perf_counter() - t_all > a.max_seconds:
            break
    tok = a.batch * a.seq
    res = {"mode": "train", "model": describe(cfg), "N": lmu_ref.count_params(cfg),
           "batch": a.batch, "seq": a.seq, "vocab": cfg["vocab_size"], "steps_timed": len(times),
           "s_per_step": sum(times) / len(times), "s_per_step_best": min(times),
           "tokens_per_s": tok * len(times) / sum(times),
           "cpu_s_per_step": sum(cpu) / len(cpu),  # user+sys of all threads: robust to a busy machine
           "tokens_per_cpu_s": tok * len(cpu) / sum(cpu), "loss_last": losses[-1],
           "peak_rss_mb": peak_rss_mb()}
    res.update(settings(a))
    return res


def describe(cfg):
    if cfg["arch"] == "transformer":
        return f"transformer L={cfg['n_layer']} d={cfg['d_model']} n_head={cfg['n_head']} d_ff={cfg['d_ff']}"
    s = (f"lmu d={cfg['d_model']} q={cfg['q']} q'={cfg['q_prime']} L={cfg['n_layer']} theta={cfg['theta']:g} "
         f"mixer={cfg['mixer']} d_ff={cfg['d_ff']}")
    return s + (f" d_pre={cfg['d_pre']}" if cfg["mixer"] == "ffn" else f" n_head={cfg['n_head']}")


@torch.inference_mode()
def gen_tokens(model, state, t0, T, tok=0):
    t_start = time.perf_counter()
    for i in range(T):
        tok = int(model.step(tok, state, t0 + i).argmax())
    return time.perf_counter() - t_start


def bench_generate(a, cfg):
    torch.manual_seed(a.seed)
    model = LM(cfg, 16).eval()
    if a.ckpt:
        load_ckpt_into(model, a.ckpt)
    res = {"mode": "generate", "model": describe(cfg), "N": lmu_ref.count_params(cfg), "batch": 1}
    if cfg["arch"] == "lmu":
        has_kv = cfg["mixer"] == "attn"
        state = model.new_state(a.ctx + a.tokens + 8 if has_kv else 1)
        for s in state:  # a warm memory; a KV cache as if ctx tokens came before
            s["m"].normal_()
            if has_kv:
                s["k"][:, : a.ctx].normal_()
                s["v"][:, : a.ctx].normal_()
        t0 = a.ctx if has_kv else 0
        gen_tokens(model, state, t0, 8)  # warm-up
        secs = gen_tokens(model, state, t0 + 8, a.tokens)
        res.update({"tokens": a.tokens, "ctx_offset": a.ctx if has_kv else "n/a (O(1) state)",
                    "tokens_per_s": a.tokens / secs, "ms_per_token": 1e3 * secs / a.tokens})
    else:
        maxc = max(int(c) for c in a.contexts.split(","))
        state = model.new_state(maxc + a.tokens + 8)
        for s in state:
            s["k"].normal_()
            s["v"].normal_()
        gen_tokens(model, state, 0, 4)
        per = {}
        for c in (int(c) for c in a.contexts.split(",")):
            secs = gen_tokens(model, state, c, a.tokens)
            per[c] = 1e3 * secs / a.tokens
            res[f"ms_per_token_at_{c}"] = per[c]
            res[f"tokens_per_s_at_{c}"] = a.tokens / secs
        res["tokens"] = a.tokens
    res["peak_rss_mb"] = peak_rss_mb()
    res.update(settings(a))
    return res


def check():
    """The float32 module against lmu_ref.py's float64 oracle."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bad = 0
    for spec in ("V=50,n=40,d=16,L=2,q=12,qp=3,theta=20.5,d_pre=24,d_ff=20",
                 "V=50,n=40,d=16,L=2,q=12,qp=3,theta=20.5,d_ff=20,mixer=attn,h=2",
                 "arch=transformer,V=50,n=40,d=16,L=2,h=2"):
        cfg = lmu_ref.make_config(spec)
        P32 = lmu_ref.init_params(cfg, seed=3, jitter=0.2)
        model = LM(cfg, 33)
        model.load_state_dict(P32, strict=True)
        tok = torch.randint(0, 50, (2, 34), generator=torch.Generator().manual_seed(9))
        logits, loss = model(tok[:, :-1], tok[:, 1:])
        loss.backward()
        ref_loss, ref_logits, ref_g = lmu_ref.compute_grads({k: v.double() for k, v in P32.items()}, cfg, tok, "fft")
        e_logit = ((logits.double() - ref_logits).abs().max() / ref_logits.abs().max()).item()
        e_grad = max(((p.grad.double() - ref_g[k]).abs().max() / ref_g[k].abs().max().clamp(min=1e-12)).item()
                     for k, p in model.named_parameters())
        e_loss = abs(loss.item() - ref_loss.item())
        # recurrent step of the bench module against its own parallel logits
        st = model.new_state(40)
        with torch.inference_mode():
            rec = torch.cat([model.step(int(tok[0, t]), st, t) for t in range(33)])
        e_rec = ((rec.double() - logits[0].detach().double()).abs().max() / ref_logits.abs().max()).item()
        ok = e_logit < 1e-5 and e_grad < 1e-3 and e_loss < 1e-5 and e_rec < 1e-5
        bad += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} bench model ({cfg['arch']}/{cfg.get('mixer', '-')}) vs lmu_ref float64: "
              f"loss {e_loss:.1e}, logits rel {e_logit:.1e}, grads rel {e_grad:.1e}, recurrent rel {e_rec:.1e}")
    return 1 if bad else 0


def main(a):
    if a.check:
        return check()
    torch.set_num_threads(a.threads)
    cfg = build_config(a)
    res = bench_generate(a, cfg) if a.generate else bench_train(a, cfg)
    report(res, a)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
