/* >>decl-begin kernels */
#ifndef LMU_PART_KERNELS_H
#define LMU_PART_KERNELS_H
#ifdef __cplusplus
extern "C" {
#endif

/* The fused kernels are private (lmu__): the tape wraps them as ops, so
   nothing here is public API. They only need the gemm workspace type,
   which wip/gemm.h defines; an incomplete declaration is enough here. */
struct lmu_gemm_ws;

#ifdef __cplusplus
}
#endif
#endif
/* >>decl-end kernels */

/* >>impl-begin kernels */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_PART_KERNELS_IMPL_DONE)
#define LMU_PART_KERNELS_IMPL_DONE

/* ====================================================================== */
/* >>ops  fused kernels: cross-entropy, causal attention, the implicit     */
/*        self-attention block's convolution and per-position attention    */
/* ====================================================================== */
/*
   Every kernel is a pure function on raw float pointers (llm.c's shape):
       lmu__<op>_forward(out, cache..., inp, weights..., dims..., scratch)
       lmu__<op>_backward(dinp, dweight..., dout, inp, cache..., weights...,
                          dims..., scratch)
   Backward ACCUMULATES (+=) into every gradient buffer. No kernel
   allocates: cache and scratch come from the caller, sized by the
   matching lmu__<op>_*_floats() query (counts of floats; give 64-byte
   aligned memory, e.g. lmu__alloc_aligned).

   Threading. A kernel that needs per-thread memory splits its work into
   `nparts` parts (OpenMP `for` over parts, schedule(static)); part p owns
   scratch slice p. nparts is a caller choice (lmu__thread_count() is the
   natural one), so memory never depends on how many threads OpenMP
   actually starts, and a result depends at most on nparts, never on the
   thread count. Which results depend on nparts is said per kernel.

   Large matrix products go through lmu__kern_gemm (the swap point for
   lmu_sgemm) and are called from serial code, since lmu_sgemm threads
   itself and one workspace serves one call at a time. Per-row and
   per-position products (attention rows, the q' x q' attention of the
   implicit block) run inside parallel loops and are written out here.
*/

/* ---------------------------------------------------------------------- */
/* shared helpers                                                          */
/* ---------------------------------------------------------------------- */

/* The element helpers below must inline into their loops, or the loops
   stay scalar (gcc's heuristics refuse once the exp grows past a few
   lines); the attribute is only a hint elsewhere. */
#if defined(__GNUC__) || defined(__clang__)
#define LMU__KERN_INLINE static __inline__ __attribute__((always_inline, unused))
#else
#define LMU__KERN_INLINE LMU__PRIVATE
#endif

/* The one place every large product goes through: row-major
   C = alpha op(A) op(B) + beta C, beta == 0 ignores C (NaN included),
   exactly lmu_sgemm's contract. When wip/gemm.h (or the spliced lmu.h
   gemm section) comes first, lmu_sgemm does the work; otherwise plain
   loops that each sum in one fixed order (bit-identical for any thread
   count, like lmu_sgemm). ws may be NULL; lmu_sgemm then allocates per
   call, so hot callers should pass one. */
LMU__PRIVATE void lmu__kern_gemm(struct lmu_gemm_ws *ws, int trans_a, int trans_b,
                                 size_t M, size_t N, size_t K, float alpha,
                                 const float *A, size_t lda, const float *B, size_t ldb,
                                 float beta, float *C, size_t ldc)
{
#ifdef LMU_PART_GEMM_H
    lmu_result r = lmu_sgemm(ws, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    LMU_ASSERT(r == LMU_OK);
    (void)r;
#else
    long i;
    (void)ws;
    LMU__OMP(omp parallel for schedule(static) if (M * N * K > 65536))
    for (i = 0; i < (long)M; i++) {
        float *c_i = C + (size_t)i * ldc;
        size_t j, k;
        for (j = 0; j < N; j++) c_i[j] = beta == 0.0f ? 0.0f : beta * c_i[j];
        if (alpha == 0.0f) continue;
        if (!trans_b) {
            /* axpy form: the j loop is contiguous in B and C, so it vectorises */
            for (k = 0; k < K; k++) {
                float a = alpha * (trans_a ? A[k * lda + (size_t)i] : A[(size_t)i * lda + k]);
                const float *b_k = B + k * ldb;
                for (j = 0; j < N; j++) c_i[j] += a * b_k[j];
            }
        } else {
            for (j = 0; j < N; j++) {
                const float *b_j = B + j * ldb;
                float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s;
                int l;
                for (k = 0; k + 8 <= K; k += 8)
                    for (l = 0; l < 8; l++)
                        acc[l] += (trans_a ? A[(k + (size_t)l) * lda + (size_t)i]
                                           : A[(size_t)i * lda + k + (size_t)l]) * b_j[k + (size_t)l];
                for (; k < K; k++)
                    acc[0] += (trans_a ? A[k * lda + (size_t)i] : A[(size_t)i * lda + k]) * b_j[k];
                s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
                c_i[j] += alpha * s;
            }
        }
    }
#endif
}

/* exp(x) = 2^k e^r, |r| <= ln2/2, degree-7 Taylor (relative error about
   2e-7). Branch-free, so the loops that call it vectorise; libm's expf
   does not without -ffast-math, and softmax over 50257 logits per row
   makes exp as costly as the matrix product. Above 88 (never reached by
   softmax or gelu) it saturates at e^88 until the true result overflows. */
LMU__KERN_INLINE float lmu__kern_expf(float x)
{
    float xc = x > 88.0f ? 88.0f : x, kf, r, p, s;
    int32_t ki;
    uint32_t bits;
    xc = xc < -87.0f ? -87.0f : xc;
    /* round to nearest by the 1.5 * 2^23 trick: floorf would not vectorise
       under the default -ftrapping-math */
    kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    kf = kf == kf ? kf : 0.0f; /* NaN: keep the cast defined; p carries the NaN */
    r = xc - kf * 0.693145751953125f;
    r = r - kf * 1.428606820309417232e-6f;
    p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    ki = (int32_t)kf + 127;
    bits = (uint32_t)ki << 23;
    memcpy(&s, &bits, sizeof s);
    p *= s;
    p = x < -87.0f ? 0.0f : p;
    p = x > 88.72f ? (float)HUGE_VAL : p;
    return p;
}

/* Dot product with 16 independent partial sums (vectorisable without
   reassociation flags, and two vectors deep so the add latency hides)
   combined in one fixed order. */
LMU__KERN_INLINE float lmu__kern_dot(const float *a, const float *b, size_t n)
{
    float acc[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t k;
    int l;
    for (k = 0; k + 16 <= n; k += 16)
        for (l = 0; l < 16; l++) acc[l] += a[k + (size_t)l] * b[k + (size_t)l];
    for (l = 0; l < (int)(n - k); l++) acc[l] += a[k + (size_t)l] * b[k + (size_t)l];
    for (l = 0; l < 8; l++) acc[l] += acc[l + 8];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

LMU__KERN_INLINE float lmu__kern_max(const float *x, size_t n)
{
    float m[16];
    size_t j;
    int l;
    for (l = 0; l < 16; l++) m[l] = -(float)HUGE_VAL;
    for (j = 0; j + 16 <= n; j += 16)
        for (l = 0; l < 16; l++) m[l] = x[j + (size_t)l] > m[l] ? x[j + (size_t)l] : m[l];
    for (l = 0; l < (int)(n - j); l++) m[l] = x[j + (size_t)l] > m[l] ? x[j + (size_t)l] : m[l];
    for (l = 1; l < 16; l++) m[0] = m[l] > m[0] ? m[l] : m[0];
    return m[0];
}

/* sum_j exp(x[j] - m) in 16 lanes, lanes added in a fixed order. */
LMU__KERN_INLINE float lmu__kern_sumexp(const float *x, size_t n, float m)
{
    float acc[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, s = 0.0f;
    size_t j;
    int l;
    for (j = 0; j + 16 <= n; j += 16)
        for (l = 0; l < 16; l++) acc[l] += lmu__kern_expf(x[j + (size_t)l] - m);
    for (l = 0; l < (int)(n - j); l++) acc[l] += lmu__kern_expf(x[j + (size_t)l] - m);
    for (l = 0; l < 16; l++) s += acc[l];
    return s;
}

/* gelu, tanh form (MODEL.md), with tanh(u) = 1 - 2/(e^{2u}+1) through the
   vectorisable exp. Also returns gelu'(x) when dg is not NULL. */
LMU__KERN_INLINE float lmu__kern_gelu(float x, float *dg)
{
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    float x2 = x * x, u = c * (x + 0.044715f * x2 * x);
    float th = 1.0f - 2.0f / (lmu__kern_expf(2.0f * u) + 1.0f);
    if (dg) *dg = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * c * (1.0f + 3.0f * 0.044715f * x2);
    return 0.5f * x * (1.0f + th);
}

LMU__PRIVATE size_t lmu__kern_round16(size_t x) { return (x + 15) & ~(size_t)15; }

/* ---------------------------------------------------------------------- */
/* fused logits + softmax + cross-entropy (tied embedding)                 */
/* ---------------------------------------------------------------------- */
/* N = positions, d = channels, V = vocabulary.
   x [N, d] (after the final LayerNorm), E [V, d] (tied embedding),
   targets [N] in 0..V-1. The N x V logits never exist: rows go in chunks
   of rb and the vocabulary in blocks of vb, so one rb x vb tile is all the
   logit memory there is; only the per-row logsumexp lse [N] is kept for
   backward, which recomputes each tile (one more product, no N x V).
   The tile is large on purpose (2048 x 2048 by default): the three
   products per tile are then big enough for the threaded gemm to run at
   full speed, and 16 MB is small next to the activations.
   Deterministic and independent of the thread count: every product sums
   in a fixed order, dx sums the vocabulary blocks in order, dE the row
   chunks in order, and the mean loss is a serial sum in double. */
#define LMU__CE_ROWS 2048
#define LMU__CE_COLS 2048

LMU__PRIVATE size_t lmu__ce_scratch_floats_tiled(size_t N, size_t V, size_t rb, size_t vb)
{
    if (rb > N) rb = N;
    if (vb > V) vb = V;
    return lmu__kern_round16(rb * vb) + 3 * lmu__kern_round16(rb);
}

LMU__PRIVATE size_t lmu__ce_scratch_floats(size_t N, size_t V)
{
    return lmu__ce_scratch_floats_tiled(N, V, LMU__CE_ROWS, LMU__CE_COLS);
}

/* [out] loss             mean over the N rows, nats
   [out, optional] losses [N] per-position losses
   [out] lse              [N] logsumexp per row (cache for backward) */
LMU__PRIVATE void lmu__ce_forward_tiled(float *loss, float *losses, float *lse,
                                        const float *x, const float *E, const int32_t *targets,
                                        size_t N, size_t d, size_t V, struct lmu_gemm_ws *ws,
                                        float *scratch, size_t rb, size_t vb)
{
    size_t r0, v0;
    double total = 0.0;
    float *tile, *m, *s, *tl;
    if (rb > N) rb = N;
    if (vb > V) vb = V;
    tile = scratch;                         /* (rb, vb) */
    m = tile + lmu__kern_round16(rb * vb);  /* (rb) running max */
    s = m + lmu__kern_round16(rb);          /* (rb) running sum of exp(l - m) */
    tl = s + lmu__kern_round16(rb);         /* (rb) logit of the target */
    for (r0 = 0; r0 < N; r0 += rb) {
        size_t rn = N - r0 < rb ? N - r0 : rb, i;
        for (i = 0; i < rn; i++) {
            m[i] = -(float)HUGE_VAL;
            s[i] = 0.0f;
            tl[i] = 0.0f;
        }
        for (v0 = 0; v0 < V; v0 += vb) {
            size_t vn = V - v0 < vb ? V - v0 : vb;
            long ii;
            lmu__kern_gemm(ws, 0, 1, rn, vn, d, 1.0f, x + r0 * d, d, E + v0 * d, d, 0.0f, tile, vb);
            LMU__OMP(omp parallel for schedule(static))
            for (ii = 0; ii < (long)rn; ii++) {
                const float *l_i = tile + (size_t)ii * vb;
                size_t t = (size_t)targets[r0 + (size_t)ii];
                float bm = lmu__kern_max(l_i, vn), mn;
                if (t >= v0 && t < v0 + vn) tl[ii] = l_i[t - v0];
                /* online logsumexp: rescale the old sum only when the max moves */
                mn = bm > m[ii] ? bm : m[ii];
                s[ii] = s[ii] * lmu__kern_expf(m[ii] - mn) + lmu__kern_sumexp(l_i, vn, mn);
                m[ii] = mn;
            }
        }
        for (i = 0; i < rn; i++) {
            float li;
            LMU_ASSERT(targets[r0 + i] >= 0 && (size_t)targets[r0 + i] < V);
            lse[r0 + i] = m[i] + logf(s[i]);
            li = lse[r0 + i] - tl[i];
            if (losses) losses[r0 + i] = li;
            total += li;
        }
    }
    *loss = N ? (float)(total / (double)N) : 0.0f;
}

LMU__PRIVATE void lmu__ce_forward(float *loss, float *losses, float *lse, const float *x,
                                  const float *E, const int32_t *targets, size_t N, size_t d,
                                  size_t V, struct lmu_gemm_ws *ws, float *scratch)
{
    lmu__ce_forward_tiled(loss, losses, lse, x, E, targets, N, d, V, ws, scratch,
                          LMU__CE_ROWS, LMU__CE_COLS);
}

/* dloss: gradient of the mean loss; dlosses [N] (optional): gradients of
   the per-position losses. Row i's logits get
   (softmax - onehot) * (dloss / N + dlosses[i]).
   dx [N, d] += dlogits E,  dE [V, d] += dlogits^T x. */
LMU__PRIVATE void lmu__ce_backward_tiled(float *dx, float *dE, float dloss, const float *dlosses,
                                         const float *x, const float *E, const int32_t *targets,
                                         const float *lse, size_t N, size_t d, size_t V,
                                         struct lmu_gemm_ws *ws, float *scratch, size_t rb,
                                         size_t vb)
{
    size_t r0, v0;
    float *tile = scratch; /* (rb, vb) */
    float gmean = N ? dloss / (float)N : 0.0f;
    if (rb > N) rb = N;
    if (vb > V) vb = V;
    for (r0 = 0; r0 < N; r0 += rb) {
        size_t rn = N - r0 < rb ? N - r0 : rb;
        for (v0 = 0; v0 < V; v0 += vb) {
            size_t vn = V - v0 < vb ? V - v0 : vb;
            long ii;
            lmu__kern_gemm(ws, 0, 1, rn, vn, d, 1.0f, x + r0 * d, d, E + v0 * d, d, 0.0f, tile, vb);
            LMU__OMP(omp parallel for schedule(static))
            for (ii = 0; ii < (long)rn; ii++) {
                float *l_i = tile + (size_t)ii * vb;
                size_t r = r0 + (size_t)ii, j, t = (size_t)targets[r];
                float g = gmean + (dlosses ? dlosses[r] : 0.0f), ls = lse[r];
                for (j = 0; j < vn; j++) l_i[j] = lmu__kern_expf(l_i[j] - ls) * g;
                if (t >= v0 && t < v0 + vn) l_i[t - v0] -= g;
            }
            lmu__kern_gemm(ws, 0, 0, rn, d, vn, 1.0f, tile, vb, E + v0 * d, d, 1.0f, dx + r0 * d, d);
            lmu__kern_gemm(ws, 1, 0, vn, d, rn, 1.0f, tile, vb, x + r0 * d, d, 1.0f, dE + v0 * d, d);
        }
    }
}

LMU__PRIVATE void lmu__ce_backward(float *dx, float *dE, float dloss, const float *dlosses,
                                   const float *x, const float *E, const int32_t *targets,
                                   const float *lse, size_t N, size_t d, size_t V,
                                   struct lmu_gemm_ws *ws, float *scratch)
{
    lmu__ce_backward_tiled(dx, dE, dloss, dlosses, x, E, targets, lse, N, d, V, ws, scratch,
                           LMU__CE_ROWS, LMU__CE_COLS);
}

/* Generation: logits [V] = E x for one position x [d]. */
LMU__PRIVATE void lmu__ce_logits(float *logits, const float *x, const float *E, size_t d,
                                 size_t V, struct lmu_gemm_ws *ws)
{
    lmu__kern_gemm(ws, 0, 1, 1, V, d, 1.0f, x, d, E, d, 0.0f, logits, V);
}

/* ---------------------------------------------------------------------- */
/* causal multi-head self-attention (GPT-2), fused, O(T) memory per row    */
/* ---------------------------------------------------------------------- */
/* B = batch, T = positions, C = channels (d), NH = heads, hs = C / NH.
   qkv [B, T, 3C] = q | k | v, head h in columns h*hs .. h*hs+hs-1 of each.
   out [B, T, C] heads concatenated. lse [B, NH, T] per-row logsumexp of
   the scaled scores: all backward needs to rebuild any probability, so no
   T x T matrix is ever stored. One row at a time, with its T scores in
   per-part scratch (two passes over the keys beat an online rescale: the
   exponentials are computed once and vectorise).
   Forward: parallel over (b, h, t) rows. Backward: parallel over (b, h),
   each part owning its heads' dk, dv, so no two parts write one float.
   Both independent of nparts and of the thread count. */

LMU__PRIVATE size_t lmu__mha_scratch_floats(size_t T, size_t C, int nparts)
{
    return (size_t)(nparts < 1 ? 1 : nparts) * lmu__kern_round16(2 * T + C);
}

/* One query row against nk keys: o [hs] = softmax(q K^T * scale) V.
   Keys and values are rows of stride kstride / vstride. sc: nk floats.
   Returns the row's logsumexp. Shared by the full forward and the decode
   step, which therefore agree bit for bit. */
LMU__PRIVATE float lmu__mha_row(float *o, float *sc, const float *q, const float *k,
                                size_t kstride, const float *v, size_t vstride, size_t nk,
                                size_t hs, float scale)
{
    size_t s, c;
    float m, sum, inv;
    for (s = 0; s < nk; s++) sc[s] = lmu__kern_dot(q, k + s * kstride, hs) * scale;
    m = lmu__kern_max(sc, nk);
    sum = 0.0f;
    for (s = 0; s < nk; s++) {
        sc[s] = lmu__kern_expf(sc[s] - m);
        sum += sc[s];
    }
    inv = 1.0f / sum;
    for (c = 0; c < hs; c++) o[c] = 0.0f;
    for (s = 0; s < nk; s++) {
        const float *v_s = v + s * vstride;
        float w = sc[s] * inv;
        for (c = 0; c < hs; c++) o[c] += w * v_s[c];
    }
    return m + logf(sum);
}

LMU__PRIVATE void lmu__mha_forward(float *out, float *lse, const float *qkv, size_t B, size_t T,
                                   size_t C, size_t NH, int nparts, float *scratch)
{
    size_t hs = C / NH, C3 = 3 * C, rows = B * NH * T;
    float scale = 1.0f / sqrtf((float)hs);
    long p;
    LMU_ASSERT(hs * NH == C);
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *sc = scratch + (size_t)p * lmu__kern_round16(2 * T + C);
        size_t row, lo = rows * (size_t)p / (size_t)nparts, hi = rows * (size_t)(p + 1) / (size_t)nparts;
        /* row = (b * NH + h) * T + t, matching lse's layout */
        for (row = lo; row < hi; row++) {
            size_t t = row % T, bh = row / T, h = bh % NH, b = bh / NH;
            const float *base = qkv + b * T * C3;
            lse[row] = lmu__mha_row(out + (b * T + t) * C + h * hs, sc, base + t * C3 + h * hs,
                                    base + C + h * hs, C3, base + 2 * C + h * hs, C3, t + 1, hs,
                                    scale);
        }
    }
}

/* dqkv [B, T, 3C] += ..., given dout [B, T, C] and the forward's out, lse. */
LMU__PRIVATE void lmu__mha_backward(float *dqkv, const float *dout, const float *qkv,
                                    const float *out, const float *lse, size_t B, size_t T,
                                    size_t C, size_t NH, int nparts, float *scratch)
{
    size_t hs = C / NH, C3 = 3 * C, tasks = B * NH;
    float scale = 1.0f / sqrtf((float)hs);
    long p;
    LMU_ASSERT(hs * NH == C);
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        /* pv (T) probabilities, ds (T) dS * scale, acc (hs) dq_t: one row */
        float *pv = scratch + (size_t)p * lmu__kern_round16(2 * T + C), *ds = pv + T, *acc = ds + T;
        size_t task, lo = tasks * (size_t)p / (size_t)nparts,
                     hi = tasks * (size_t)(p + 1) / (size_t)nparts;
        for (task = lo; task < hi; task++) {
            size_t b = task / NH, h = task % NH, t, s, c;
            const float *q = qkv + b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
            float *dqb = dqkv + b * T * C3 + h * hs, *dk = dqb + C, *dv = dqb + 2 * C;
            const float *lse_bh = lse + task * T;
            for (t = 0; t < T; t++) {
                const float *q_t = q + t * C3, *do_t = dout + (b * T + t) * C + h * hs;
                const float *o_t = out + (b * T + t) * C + h * hs;
                float *dq_t = dqb + t * C3;
                /* dS = P o (dP - rowsum(dO o O)); that rowsum equals sum_s P dP */
                float D = lmu__kern_dot(do_t, o_t, hs), ls = lse_bh[t];
                for (s = 0; s <= t; s++) {
                    float pr = lmu__kern_expf(lmu__kern_dot(q_t, k + s * C3, hs) * scale - ls);
                    float dp = lmu__kern_dot(do_t, v + s * C3, hs);
                    pv[s] = pr;
                    ds[s] = pr * (dp - D) * scale;
                }
                for (c = 0; c < hs; c++) acc[c] = 0.0f;
                for (s = 0; s <= t; s++) {
                    float *dk_s = dk + s * C3, *dv_s = dv + s * C3;
                    const float *k_s = k + s * C3;
                    float d_s = ds[s], p_s = pv[s];
                    for (c = 0; c < hs; c++) {
                        acc[c] += d_s * k_s[c];
                        dk_s[c] += d_s * q_t[c];
                        dv_s[c] += p_s * do_t[c];
                    }
                }
                for (c = 0; c < hs; c++) dq_t[c] += acc[c];
            }
        }
    }
}

/* Generation: one new position t with qkv_t [3C]; appends its k and v to
   kcache, vcache [t_max, C] (row t) and attends over rows 0..t.
   out [C]; sc: t+1 floats of scratch. */
LMU__PRIVATE void lmu__mha_decode(float *out, float *kcache, float *vcache, const float *qkv_t,
                                  size_t t, size_t C, size_t NH, float *sc)
{
    size_t hs = C / NH, h;
    float scale = 1.0f / sqrtf((float)hs);
    memcpy(kcache + t * C, qkv_t + C, C * sizeof(float));
    memcpy(vcache + t * C, qkv_t + 2 * C, C * sizeof(float));
    for (h = 0; h < NH; h++)
        (void)lmu__mha_row(out + h * hs, sc, qkv_t + h * hs, kcache + h * hs, C, vcache + h * hs,
                           C, t + 1, hs, scale);
}

/* ---------------------------------------------------------------------- */
/* implicit self-attention: the convolution (MODEL.md section 2)           */
/* ---------------------------------------------------------------------- */
/* B = batch, n = positions, d = channels, q = LMU order, qp = q',
   N = nfft (plan length, power of two >= 2n), S = N + 2 floats per
   spectrum (N/2+1 interleaved complex bins, lmu_fft's real layout), and
   ir = i * qp + r indexes the 3 qp kernel rows (i in q, k, v).

   U     [B, n, d]          input, position-major like every activation
   Hspec [q, S]             spectra of H's rows, zero-padded to N (frozen;
                            lmu_fft_conv_spectrum of each row of H)
   L     [3, qp, q]         learned; bias [3, qp]
   Z     [B, n, 3, qp, d]   output, i.e. [b][t][i][r][c]: one position's
                            3 qp x d block is contiguous, which is what the
                            per-position attention reads (lmu__isa_attn_*),
                            and the channel is fastest so rows of d floats
                            are written whole.
   cache: Uspec [B, d, S] (channel spectra) then Htil [3 qp, S] = L Hspec,
          both reused by backward.

   The FFT length N >= 2n makes the circular products exact linear ones:
   a causal convolution (lag 0 included) forward, and in backward a
   correlation (multiply by the conjugate spectrum), since every lag t - j
   of either sign lands in the zero padding or in 0..n-1.
   Forward: parallel over (b, ir); results do not depend on nparts.
   Backward: parallel over (b, 16-channel block); dU is owned per task,
   dL and db are summed per part and reduced in part order, so they
   depend on nparts (not on the thread count). */
#define LMU__ISA_CB 16

LMU__PRIVATE size_t lmu__isa_conv_cache_floats(size_t B, size_t d, size_t qp, size_t nfft)
{
    return B * d * (nfft + 2) + 3 * qp * (nfft + 2);
}

/* Per part: channel-block spectra (2 CB S), the FFT's own scratch, and for
   backward the part's dL spectrum sum (3 qp S) and db (3 qp). */
LMU__PRIVATE size_t lmu__isa_conv_part_floats(const lmu_fft_plan *plan, size_t qp)
{
    size_t S = lmu_fft_plan_n(plan) + 2;
    return lmu__kern_round16(2 * LMU__ISA_CB * S) + lmu_fft_scratch_floats(plan) +
           lmu__kern_round16(3 * qp * S) + lmu__kern_round16(3 * qp);
}

LMU__PRIVATE size_t lmu__isa_conv_scratch_floats(const lmu_fft_plan *plan, size_t qp, int nparts)
{
    return (size_t)(nparts < 1 ? 1 : nparts) * lmu__isa_conv_part_floats(plan, qp);
}

LMU__PRIVATE void lmu__isa_conv_forward(float *Z, float *cache, const float *U, const float *Hspec,
                                        const float *L, const float *bias, size_t B, size_t n,
                                        size_t d, size_t q, size_t qp, const lmu_fft_plan *plan,
                                        struct lmu_gemm_ws *ws, int nparts, float *scratch)
{
    size_t N = lmu_fft_plan_n(plan), S = N + 2, nb = N / 2 + 1, R = 3 * qp;
    size_t part = lmu__isa_conv_part_floats(plan, qp);
    float *Uspec = cache, *Htil = cache + B * d * S, invN = 1.0f / (float)N;
    long p;
    LMU_ASSERT(N >= 2 * n && lmu_fft_plan_kind(plan) == LMU_FFT_REAL);
    if (nparts < 1) nparts = 1;
    /* The FFT is linear, so the kernel spectra are L times H's spectra:
       one (3 qp x q) by (q x S) product on the interleaved floats. */
    lmu__kern_gemm(ws, 0, 0, R, S, q, 1.0f, L, q, Hspec, S, 0.0f, Htil, S);
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *buf = scratch + (size_t)p * part, *fs = buf + lmu__kern_round16(2 * LMU__ISA_CB * S);
        size_t tasks = B * d, task, t;
        size_t lo = tasks * (size_t)p / (size_t)nparts, hi = tasks * (size_t)(p + 1) / (size_t)nparts;
        for (task = lo; task < hi; task++) {
            size_t b = task / d, c = task % d;
            for (t = 0; t < n; t++) buf[t] = U[(b * n + t) * d + c];
            for (; t < N; t++) buf[t] = 0.0f;
            lmu_fft_forward(plan, buf, Uspec + task * S, fs);
        }
    }
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *buf = scratch + (size_t)p * part, *fs = buf + lmu__kern_round16(2 * LMU__ISA_CB * S);
        size_t tasks = B * R, task;
        size_t lo = tasks * (size_t)p / (size_t)nparts, hi = tasks * (size_t)(p + 1) / (size_t)nparts;
        for (task = lo; task < hi; task++) {
            size_t b = task / R, ir = task % R, c0;
            const float *h = Htil + ir * S;
            float bir = bias[ir];
            for (c0 = 0; c0 < d; c0 += LMU__ISA_CB) {
                size_t cn = d - c0 < LMU__ISA_CB ? d - c0 : LMU__ISA_CB, cc, t, f;
                for (cc = 0; cc < cn; cc++) {
                    const float *u = Uspec + (b * d + c0 + cc) * S;
                    float *y = buf + cc * S;
                    for (f = 0; f < nb; f++) {
                        float ur = u[2 * f], ui = u[2 * f + 1], hr = h[2 * f], hi_ = h[2 * f + 1];
                        y[2 * f] = ur * hr - ui * hi_;
                        y[2 * f + 1] = ur * hi_ + ui * hr;
                    }
                    lmu_fft_inverse(plan, y, y, fs);
                }
                for (t = 0; t < n; t++) {
                    float *z = Z + ((b * n + t) * R + ir) * d + c0;
                    for (cc = 0; cc < cn; cc++) z[cc] = buf[cc * S + t] * invN + bir;
                }
            }
        }
    }
}

/* dZ [B, n, 3, qp, d] -> dU [B, n, d] +=, dL [3, qp, q] +=, dbias [3, qp] +=.
   dU = corr(dZ, Htil) summed over ir: one inverse FFT per channel.
   dL[ir, k] = sum_{t<n, c} dZ[t, ir, c] (H_k * U_c)[t]. By Parseval, for
   real length-N signals a, b: sum_t a_t b_t = (1/N) sum_f A_f conj(B_f)
   over all N bins; on the N/2+1 stored bins the conjugate-symmetric half
   counts twice, DC and Nyquist once:
       = (1/N) sum_{f=0..N/2} w_f Re(A_f conj(B_f)), w = 1, 2, ..., 2, 1.
   With A = FFT(dZ_ir,c) and B = Hspec_k Uspec_c,
       dL[ir, k] = sum_f (w_f / N) Re(G_ir(f) conj(Hspec_k(f))),
       G_ir(f) = sum_{b, c} FFT(dZ_ir,c)(f) conj(Uspec_c(f)),
   and Re(g conj(h)) = gr hr + gi hi is a plain dot product of the
   interleaved floats: dL += Gw Hspec^T, one gemm. */
LMU__PRIVATE void lmu__isa_conv_backward(float *dU, float *dL, float *dbias, const float *dZ,
                                         const float *cache, const float *Hspec, size_t B,
                                         size_t n, size_t d, size_t q, size_t qp,
                                         const lmu_fft_plan *plan, struct lmu_gemm_ws *ws,
                                         int nparts, float *scratch)
{
    size_t N = lmu_fft_plan_n(plan), S = N + 2, nb = N / 2 + 1, R = 3 * qp;
    size_t part = lmu__isa_conv_part_floats(plan, qp);
    size_t ncb = (d + LMU__ISA_CB - 1) / LMU__ISA_CB, tasks = B * ncb;
    size_t off_G = lmu__kern_round16(2 * LMU__ISA_CB * S) + lmu_fft_scratch_floats(plan);
    size_t off_db = off_G + lmu__kern_round16(R * S);
    const float *Uspec = cache, *Htil = cache + B * d * S;
    float invN = 1.0f / (float)N;
    long p, e;
    LMU_ASSERT(N >= 2 * n && lmu_fft_plan_kind(plan) == LMU_FFT_REAL);
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *base = scratch + (size_t)p * part;
        float *acc = base;                         /* (CB, S) dU spectra of the block */
        float *y = base + LMU__ISA_CB * S;         /* (CB, S) dZ spectra, one ir */
        float *fs = base + lmu__kern_round16(2 * LMU__ISA_CB * S);
        float *G = base + off_G, *db = base + off_db; /* (R, S), (R) */
        size_t task, lo = tasks * (size_t)p / (size_t)nparts,
                     hi = tasks * (size_t)(p + 1) / (size_t)nparts;
        memset(G, 0, R * S * sizeof(float));
        memset(db, 0, R * sizeof(float));
        for (task = lo; task < hi; task++) {
            size_t b = task / ncb, c0 = (task % ncb) * LMU__ISA_CB, ir, cc, t;
            size_t cn = d - c0 < LMU__ISA_CB ? d - c0 : LMU__ISA_CB;
            memset(acc, 0, cn * S * sizeof(float));
            for (ir = 0; ir < R; ir++) {
                double dbs = 0.0;
                for (t = 0; t < n; t++) {
                    const float *g = dZ + ((b * n + t) * R + ir) * d + c0;
                    for (cc = 0; cc < cn; cc++) {
                        y[cc * S + t] = g[cc];
                        dbs += g[cc];
                    }
                }
                db[ir] += (float)dbs;
                for (cc = 0; cc < cn; cc++) {
                    float *y_c = y + cc * S;
                    for (t = n; t < N; t++) y_c[t] = 0.0f;
                    lmu_fft_forward(plan, y_c, y_c, fs);
                    lmu_fft_spectrum_mac(nb, acc + cc * S, y_c, Htil + ir * S, 1);
                    lmu_fft_spectrum_mac(nb, G + ir * S, y_c, Uspec + (b * d + c0 + cc) * S, 1);
                }
            }
            for (cc = 0; cc < cn; cc++) {
                float *a_c = acc + cc * S;
                lmu_fft_inverse(plan, a_c, a_c, fs);
                for (t = 0; t < n; t++) dU[(b * n + t) * d + c0 + cc] += a_c[t] * invN;
            }
        }
    }
    /* Reduce the parts in part order into part 0, applying the bin weights. */
    LMU__OMP(omp parallel for schedule(static))
    for (e = 0; e < (long)(R * S); e++) {
        size_t f = ((size_t)e % S) / 2;
        float sum = scratch[off_G + (size_t)e], w = (f == 0 || f == nb - 1) ? invN : 2.0f * invN;
        int pp;
        for (pp = 1; pp < nparts; pp++) sum += scratch[(size_t)pp * part + off_G + (size_t)e];
        scratch[off_G + (size_t)e] = sum * w;
    }
    lmu__kern_gemm(ws, 0, 1, R, q, S, 1.0f, scratch + off_G, S, Hspec, S, 1.0f, dL, q);
    for (e = 0; e < (long)R; e++) {
        int pp;
        for (pp = 0; pp < nparts; pp++) dbias[e] += scratch[(size_t)pp * part + off_db + (size_t)e];
    }
}

/* ---------------------------------------------------------------------- */
/* implicit self-attention: the per-position q' x q' attention             */
/* ---------------------------------------------------------------------- */
/* P = positions (B n flattened: positions are independent here), qp = q',
   d = channels. Z [P, 3, qp, d] is the convolution's output BEFORE gelu:
   the gelu is fused in (Q, K, V = gelu(Z_q), gelu(Z_k), gelu(Z_v)) so no
   second n x 3 q' x d tensor is stored, and backward returns dZ.
   Per position t: S = Q K^T / sqrt(d), A = softmax rows of S (cache
   Pc [P, qp, qp]), y_t = p A V [d]. Since y_t = (A^T p) V, the q' x d
   matrix M' is never formed. Parallel over positions; dp is summed per
   position into scratch and reduced serially in position order, so every
   result is independent of nparts and the thread count. */

LMU__PRIVATE size_t lmu__isa_attn_scratch_floats(size_t npos, size_t qp, size_t d, int nparts)
{
    return lmu__kern_round16(npos * qp) +
           (size_t)(nparts < 1 ? 1 : nparts) * lmu__kern_round16(9 * qp * d + 4 * qp);
}

/* X [3 qp d] = gelu(Z_t); also gelu'(Z_t) into dg when not NULL. */
LMU__PRIVATE void lmu__isa_attn_gelu(float *X, float *dg, const float *Zt, size_t m)
{
    size_t j;
    if (dg)
        for (j = 0; j < m; j++) X[j] = lmu__kern_gelu(Zt[j], dg + j);
    else
        for (j = 0; j < m; j++) X[j] = lmu__kern_gelu(Zt[j], NULL);
}

LMU__PRIVATE void lmu__isa_attn_forward(float *y, float *Pc, const float *Z, const float *pw,
                                        size_t npos, size_t qp, size_t d, int nparts,
                                        float *scratch)
{
    size_t m = 3 * qp * d, stride = lmu__kern_round16(9 * qp * d + 4 * qp);
    float scale = 1.0f / sqrtf((float)d);
    long p;
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *X = scratch + lmu__kern_round16(npos * qp) + (size_t)p * stride; /* (3, qp, d) */
        float *a = X + m;                                                        /* (qp) */
        size_t pos, lo = npos * (size_t)p / (size_t)nparts,
                    hi = npos * (size_t)(p + 1) / (size_t)nparts;
        for (pos = lo; pos < hi; pos++) {
            const float *Q, *K, *Vv;
            float *A = Pc + pos * qp * qp, *y_t = y + pos * d;
            size_t r, s, c;
            lmu__isa_attn_gelu(X, NULL, Z + pos * m, m);
            Q = X;
            K = X + qp * d;
            Vv = X + 2 * qp * d;
            for (r = 0; r < qp; r++) {
                float *A_r = A + r * qp, mx, sum;
                for (s = 0; s < qp; s++) A_r[s] = lmu__kern_dot(Q + r * d, K + s * d, d) * scale;
                mx = lmu__kern_max(A_r, qp);
                sum = 0.0f;
                for (s = 0; s < qp; s++) {
                    A_r[s] = lmu__kern_expf(A_r[s] - mx);
                    sum += A_r[s];
                }
                for (s = 0; s < qp; s++) A_r[s] /= sum;
            }
            for (s = 0; s < qp; s++) {
                float acc = 0.0f;
                for (r = 0; r < qp; r++) acc += pw[r] * A[r * qp + s];
                a[s] = acc;
            }
            for (c = 0; c < d; c++) y_t[c] = 0.0f;
            for (s = 0; s < qp; s++) {
                const float *v_s = Vv + s * d;
                float a_s = a[s];
                for (c = 0; c < d; c++) y_t[c] += a_s * v_s[c];
            }
        }
    }
}

/* dy [P, d] -> dZ [P, 3, qp, d] +=, dp [qp] +=. */
LMU__PRIVATE void lmu__isa_attn_backward(float *dZ, float *dp, const float *dy, const float *Z,
                                         const float *Pc, const float *pw, size_t npos, size_t qp,
                                         size_t d, int nparts, float *scratch)
{
    size_t m = 3 * qp * d, stride = lmu__kern_round16(9 * qp * d + 4 * qp), pos;
    float scale = 1.0f / sqrtf((float)d), *dpp = scratch; /* (npos, qp) */
    long p;
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *X = scratch + lmu__kern_round16(npos * qp) + (size_t)p * stride; /* (3, qp, d) */
        float *dg = X + m, *dX = dg + m;  /* (3, qp, d) gelu', d(loss)/dX */
        float *a = dX + m, *da = a + qp, *dS = da + qp; /* (qp) (qp) (qp) one row */
        size_t pp, lo = npos * (size_t)p / (size_t)nparts,
                   hi = npos * (size_t)(p + 1) / (size_t)nparts;
        for (pp = lo; pp < hi; pp++) {
            const float *A = Pc + pp * qp * qp, *dy_t = dy + pp * d, *Q, *K, *Vv;
            float *dQ = dX, *dK = dX + qp * d, *dV = dX + 2 * qp * d, *dZ_t = dZ + pp * m;
            size_t r, s, c, j;
            lmu__isa_attn_gelu(X, dg, Z + pp * m, m);
            Q = X;
            K = X + qp * d;
            Vv = X + 2 * qp * d;
            memset(dX, 0, 2 * qp * d * sizeof(float));
            for (s = 0; s < qp; s++) {
                float acc = 0.0f;
                for (r = 0; r < qp; r++) acc += pw[r] * A[r * qp + s];
                a[s] = acc;
                da[s] = lmu__kern_dot(dy_t, Vv + s * d, d);
                for (c = 0; c < d; c++) dV[s * d + c] = acc * dy_t[c];
            }
            for (r = 0; r < qp; r++) {
                /* dA[r, s] = p_r da_s; softmax backward row by row */
                const float *A_r = A + r * qp;
                float dot = 0.0f, pr = pw[r], g = 0.0f;
                for (s = 0; s < qp; s++) {
                    dot += A_r[s] * pr * da[s];
                    g += A_r[s] * da[s];
                }
                dpp[pp * qp + r] = g;
                for (s = 0; s < qp; s++) dS[s] = A_r[s] * (pr * da[s] - dot) * scale;
                for (s = 0; s < qp; s++) {
                    const float *k_s = K + s * d, *q_r = Q + r * d;
                    float *dq_r = dQ + r * d, *dk_s = dK + s * d, w = dS[s];
                    for (c = 0; c < d; c++) {
                        dq_r[c] += w * k_s[c];
                        dk_s[c] += w * q_r[c];
                    }
                }
            }
            for (j = 0; j < m; j++) dZ_t[j] += dX[j] * dg[j];
        }
    }
    for (pos = 0; pos < npos; pos++) {
        size_t r;
        for (r = 0; r < qp; r++) dp[r] += dpp[pos * qp + r];
    }
}

#endif
/* >>impl-end kernels */
