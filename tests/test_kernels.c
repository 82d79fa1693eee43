/* test_kernels.c - the fused kernels of lmu.h (>>ops) against plain
   double-precision references written here (direct sums, materialised
   softmax, no FFT), gradients against central differences of those
   references, plus causality, decode-vs-full, determinism.

   Every gradient check is "loss = sum(W o out)" with random W: backward
   gets dout = W, into gradient buffers pre-filled with a constant that is
   subtracted afterwards (so += is checked too). Errors are relative L2:
   |got - want| / |want|. */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/lmu_test.h"

#ifdef _OPENMP
#define KT_THREADS(n) omp_set_num_threads(n)
#else
#define KT_THREADS(n) ((void)0)
#endif

#define KT_PREFILL 0.25f

static void *kt_alloc(size_t floats)
{
    void *p = lmu__alloc_aligned((floats ? floats : 1) * sizeof(float));
    if (!p) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

static float *kt_rand(size_t n, double scale)
{
    float *p = (float *)kt_alloc(n);
    size_t i;
    for (i = 0; i < n; i++) p[i] = (float)(scale * lt_uniform());
    return p;
}

static float *kt_fill(size_t n, float v)
{
    float *p = (float *)kt_alloc(n);
    size_t i;
    for (i = 0; i < n; i++) p[i] = v;
    return p;
}

static double *kt_dcopy(const float *a, size_t n)
{
    double *p = (double *)malloc((n ? n : 1) * sizeof(double));
    size_t i;
    if (!p) exit(2);
    for (i = 0; i < n; i++) p[i] = a[i];
    return p;
}

/* |a - pre - b| / |b|: a is a float gradient buffer that started at pre. */
static double kt_relerr(const float *a, float pre, const double *b, size_t n)
{
    double num = 0, den = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double e = ((double)a[i] - pre) - b[i];
        num += e * e;
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double kt_maxrel(double worst, double e) { return e > worst ? e : worst; }

/* Gradients against finite differences: lt_fd_check (lmu_test.h), of
   the double references below. */

static double kt_wsum(const double *w, const double *y, size_t n)
{
    double s = 0;
    size_t i;
    for (i = 0; i < n; i++) s += w[i] * y[i];
    return s;
}

/* ====================================================================== */
/* cross-entropy                                                           */
/* ====================================================================== */

/* Materialised reference: mean loss; per-row losses into losses. */
static double ref_ce(const double *x, const double *E, const int32_t *tg, size_t N, size_t d,
                     size_t V, double *losses, double *dx, double *dE, double dloss)
{
    double total = 0, *l = (double *)malloc(V * sizeof(double));
    size_t i, v, k, n = 0;
    for (i = 0; i < N; i++) n += tg[i] >= 0; /* LMU_TARGET_IGNORE rows do not count */
    for (i = 0; i < N; i++) {
        double m = -1e300, s = 0, lse;
        if (tg[i] < 0) {
            if (losses) losses[i] = 0;
            continue;
        }
        for (v = 0; v < V; v++) {
            double a = 0;
            for (k = 0; k < d; k++) a += x[i * d + k] * E[v * d + k];
            l[v] = a;
            if (a > m) m = a;
        }
        for (v = 0; v < V; v++) s += exp(l[v] - m);
        lse = m + log(s);
        if (losses) losses[i] = lse - l[tg[i]];
        total += lse - l[tg[i]];
        if (dx) {
            for (v = 0; v < V; v++) {
                double g = (exp(l[v] - lse) - (v == (size_t)tg[i])) * dloss / (double)n;
                for (k = 0; k < d; k++) {
                    dx[i * d + k] += g * E[v * d + k];
                    dE[v * d + k] += g * x[i * d + k];
                }
            }
        }
    }
    free(l);
    return n ? total / (double)n : 0;
}

typedef struct {
    double *x, *E;
    const int32_t *tg;
    size_t N, d, V;
    double dloss; /* the upstream gradient of the mean loss */
} kt_ce_ctx;

static double kt_ce_loss(void *c)
{
    kt_ce_ctx *k = (kt_ce_ctx *)c;
    return k->dloss * ref_ce(k->x, k->E, k->tg, k->N, k->d, k->V, NULL, NULL, NULL, 0);
}

static int32_t *kt_targets(size_t N, size_t V)
{
    int32_t *t = (int32_t *)malloc(N * sizeof(int32_t));
    size_t i;
    for (i = 0; i < N; i++) t[i] = (int32_t)((lt_uniform() + 1.0) * 0.5 * (double)V) % (int32_t)V;
    return t;
}

/* Forward and backward of the fused kernel against the materialised
   reference (analytic double gradient), tiles rb x vb; also FD when fd. */
static void test_ce_case(size_t N, size_t d, size_t V, size_t rb, size_t vb, int fd, double xs,
                         int ignore)
{
    float *x = kt_rand(N * d, xs), *E = kt_rand(V * d, 1.0);
    int32_t *tg = kt_targets(N, V);
    double *xd = kt_dcopy(x, N * d), *Ed = kt_dcopy(E, V * d);
    double *lref = (double *)malloc(N * sizeof(double));
    double *dxr = (double *)calloc(N * d, sizeof(double)), *dEr = (double *)calloc(V * d, sizeof(double));
    float *lse = (float *)kt_alloc(N), *losses = (float *)kt_alloc(N), loss;
    float *scr = (float *)kt_alloc(lmu__ce_scratch_floats_tiled(N, V, d, rb, vb, rb));
    float *dx1 = (float *)kt_alloc(N * d), *dE1 = (float *)kt_alloc(V * d), loss1;
    /* at these sizes the gradients are far below KT_PREFILL, whose rounding
       would swamp them: += is checked by the FD cases */
    float pre = fd ? KT_PREFILL : 0.0f;
    float *dx = kt_fill(N * d, pre), *dE = kt_fill(V * d, pre);
    double mref, e, el, eg1, eg2;
    const double dloss = 1.7;
    size_t i;
    for (i = 0; ignore == 1 && i < N; i += 3) tg[i] = LMU_TARGET_IGNORE; /* every third row scores nothing */
    for (i = 0; ignore == 2 && i < N; i++) /* one row counts, the others get no logits */
        if (i != N / 2) tg[i] = LMU_TARGET_IGNORE;
    for (i = 0; ignore == 3 && i < N; i++) tg[i] = LMU_TARGET_IGNORE; /* nothing counts */
    mref = ref_ce(xd, Ed, tg, N, d, V, lref, dxr, dEr, dloss);
    lmu__ce_forward_tiled(&loss, losses, lse, NULL, NULL, x, E, tg, N, d, V, NULL, scr, rb);
    e = ignore == 3 ? fabs(loss) : fabs(loss - mref) / fabs(mref);
    el = 0;
    for (i = 0; i < N; i++) el = kt_maxrel(el, fabs(losses[i] - lref[i]) / fabs(lref[i] + 1e-3));
    LT_CHECK(e < 2e-6 && el < 2e-5, "ce fwd N=%zu d=%zu V=%zu tile %zux%zu%s: mean rel %.2e, row max rel %.2e",
             N, d, V, rb, vb,
             ignore == 1 ? ", every 3rd target ignored" : ignore == 2 ? ", all targets but one ignored"
             : ignore == 3 ? ", every target ignored" : "", e, el);
    lmu__ce_backward_tiled(dx, dE, (float)dloss, NULL, x, E, tg, lse, N, d, V, NULL, scr, rb, vb);
    eg1 = kt_relerr(dx, pre, dxr, N * d);
    eg2 = kt_relerr(dE, pre, dEr, V * d);
    LT_CHECK(eg1 < 1e-5 && eg2 < 1e-5, "ce bwd vs materialised N=%zu V=%zu: dx %.2e dE %.2e", N, V, eg1, eg2);
    /* the eager form: gradients of the mean loss from the forward itself */
    lmu__ce_forward_tiled(&loss1, NULL, lse, dx1, dE1, x, E, tg, N, d, V, NULL, scr, rb);
    for (i = 0; i < N * d; i++) dx1[i] *= (float)dloss;
    for (i = 0; i < V * d; i++) dE1[i] *= (float)dloss;
    eg1 = kt_relerr(dx1, 0.0f, dxr, N * d);
    eg2 = kt_relerr(dE1, 0.0f, dEr, V * d);
    LT_CHECK(loss1 == loss && eg1 < 1e-5 && eg2 < 1e-5,
             "ce eager fwd grads N=%zu V=%zu chunk %zu: loss %s, dx %.2e dE %.2e", N, V, rb,
             loss1 == loss ? "same bits" : "DIFFERS", eg1, eg2);
    if (fd) {
        kt_ce_ctx c;
        c.x = xd; c.E = Ed; c.tg = tg; c.N = N; c.d = d; c.V = V; c.dloss = dloss;
        eg1 = lt_fd_check(kt_ce_loss, &c, xd, N * d, LT_FD_H, dx, KT_PREFILL, NULL);
        eg2 = lt_fd_check(kt_ce_loss, &c, Ed, V * d, LT_FD_H, dE, KT_PREFILL, NULL);
        LT_CHECK(eg1 < 1e-5 && eg2 < 1e-5, "ce grad vs FD N=%zu d=%zu V=%zu: dx %.2e dE %.2e", N, d, V, eg1, eg2);
    }
    lmu__free_aligned(x); lmu__free_aligned(E); lmu__free_aligned(lse); lmu__free_aligned(losses);
    lmu__free_aligned(scr); lmu__free_aligned(dx); lmu__free_aligned(dE);
    lmu__free_aligned(dx1); lmu__free_aligned(dE1);
    free(tg); free(xd); free(Ed); free(lref); free(dxr); free(dEr);
}

/* Per-position upstream gradients (dlosses) and the generation gemv. */
static void test_ce_extras(void)
{
    size_t N = 9, d = 6, V = 37, i, v, k;
    float *x = kt_rand(N * d, 1.0), *E = kt_rand(V * d, 1.0), *dl = kt_rand(N, 1.0);
    int32_t *tg = kt_targets(N, V);
    double *xd = kt_dcopy(x, N * d), *Ed = kt_dcopy(E, V * d);
    double *dxr = (double *)calloc(N * d, sizeof(double)), *dEr = (double *)calloc(V * d, sizeof(double));
    float *lse = (float *)kt_alloc(N), *scr = (float *)kt_alloc(lmu__ce_scratch_floats(N, V, d)), loss;
    float *dx = kt_fill(N * d, KT_PREFILL), *dE = kt_fill(V * d, KT_PREFILL), *lg = (float *)kt_alloc(V);
    double e1, e2, worst = 0;
    /* reference: sum_i dl_i * loss_i, FD-free analytic, via N runs of ref_ce
       with one row each (mean of one row = that row's loss) */
    for (i = 0; i < N; i++) {
        double *dxi = (double *)calloc(d, sizeof(double));
        ref_ce(xd + i * d, Ed, tg + i, 1, d, V, NULL, dxi, dEr, dl[i]);
        for (k = 0; k < d; k++) dxr[i * d + k] += dxi[k];
        free(dxi);
    }
    lmu__ce_forward(&loss, NULL, lse, NULL, NULL, x, E, tg, N, d, V, NULL, scr);
    lmu__ce_backward(dx, dE, 0.0f, dl, x, E, tg, lse, N, d, V, NULL, scr);
    e1 = kt_relerr(dx, KT_PREFILL, dxr, N * d);
    e2 = kt_relerr(dE, KT_PREFILL, dEr, V * d);
    LT_CHECK(e1 < 1e-5 && e2 < 1e-5, "ce per-position dlosses: dx %.2e dE %.2e", e1, e2);
    lmu__gemv(lg, E, x + 2 * d, NULL, V, d);
    for (v = 0; v < V; v++) {
        double a = 0;
        for (k = 0; k < d; k++) a += xd[2 * d + k] * Ed[v * d + k];
        worst = kt_maxrel(worst, fabs(lg[v] - a));
    }
    LT_CHECK(worst < 1e-5, "ce generation logits: max abs err %.2e", worst);
    lmu__free_aligned(x); lmu__free_aligned(E); lmu__free_aligned(dl); lmu__free_aligned(lse);
    lmu__free_aligned(scr); lmu__free_aligned(dx); lmu__free_aligned(dE); lmu__free_aligned(lg);
    free(tg); free(xd); free(Ed); free(dxr); free(dEr);
}

/* Same bits twice, and with 1 and 2 threads (CE is thread-count free). */
static void test_ce_determinism(void)
{
    size_t N = 70, d = 12, V = 301, rb = 16, vb = 64, t;
    float *x = kt_rand(N * d, 1.0), *E = kt_rand(V * d, 1.0);
    int32_t *tg = kt_targets(N, V);
    float *scr = (float *)kt_alloc(lmu__ce_scratch_floats_tiled(N, V, d, rb, vb, rb));
    float *lse[3], *dx[3], *dE[3], *dx1[3], *dE1[3], loss[3];
    int same = 1;
    for (t = 0; t < 3; t++) {
        KT_THREADS(t == 2 ? 1 : 2);
        lse[t] = (float *)kt_alloc(N);
        dx[t] = kt_fill(N * d, 0.0f);
        dE[t] = kt_fill(V * d, 0.0f);
        dx1[t] = (float *)kt_alloc(N * d);
        dE1[t] = (float *)kt_alloc(V * d);
        lmu__ce_forward_tiled(&loss[t], NULL, lse[t], NULL, NULL, x, E, tg, N, d, V, NULL, scr, rb);
        lmu__ce_backward_tiled(dx[t], dE[t], 1.0f, NULL, x, E, tg, lse[t], N, d, V, NULL, scr, rb, vb);
        lmu__ce_forward_tiled(&loss[t], NULL, lse[t], dx1[t], dE1[t], x, E, tg, N, d, V, NULL, scr, rb);
    }
    KT_THREADS(2);
    for (t = 1; t < 3; t++)
        same &= loss[t] == loss[0] && !memcmp(lse[t], lse[0], N * 4) &&
                !memcmp(dx[t], dx[0], N * d * 4) && !memcmp(dE[t], dE[0], V * d * 4) &&
                !memcmp(dx1[t], dx1[0], N * d * 4) && !memcmp(dE1[t], dE1[0], V * d * 4);
    LT_CHECK(same, "ce bit-identical twice and with 1 vs 2 threads");
    for (t = 0; t < 3; t++) {
        lmu__free_aligned(lse[t]); lmu__free_aligned(dx[t]); lmu__free_aligned(dE[t]);
        lmu__free_aligned(dx1[t]); lmu__free_aligned(dE1[t]);
    }
    lmu__free_aligned(x); lmu__free_aligned(E); lmu__free_aligned(scr); free(tg);
}

static void test_ce(void)
{
    size_t N = 3, d = 16, V = 50257, i;
    float *x, *E, *lse, *losses, *scr, loss;
    int32_t *tg;
    double *lref, *xd, *Ed, mref, el = 0;
    test_ce_case(6, 5, 11, 4, 3, 1, 1.0, 0);     /* FD, tiles cut rows and vocab */
    test_ce_case(5, 7, 23, 64, 64, 1, 2.0, 0);   /* FD, one tile */
    test_ce_case(101, 13, 1003, 24, 100, 0, 1.0, 0); /* odd sizes, ragged tile edges */
    test_ce_case(97, 9, 999, 2048, 2048, 0, 3.0, 0); /* default tiles, one block */
    test_ce_case(300, 11, 517, 256, 2048, 0, 1.0, 0); /* forward chunks of 256 rows, ragged last */
    test_ce_case(7, 5, 11, 4, 3, 1, 1.0, 1);     /* LMU_TARGET_IGNORE, FD */
    test_ce_case(300, 11, 517, 256, 2048, 0, 1.0, 1); /* ... over chunks, gathered */
    test_ce_case(9, 5, 13, 4, 3, 1, 1.0, 2);     /* one counted row, FD */
    test_ce_case(40, 16, 301, 8, 64, 0, 40.0, 2); /* logits past exp's range in the ignored rows */
    test_ce_case(12, 5, 17, 4, 5, 0, 1.0, 3);    /* none counted: loss and gradients 0 */
    test_ce_extras();
    test_ce_determinism();
    /* the real vocabulary, default tiles (ragged last block of 50257) */
    x = kt_rand(N * d, 0.5);
    E = kt_rand(V * d, 0.5);
    tg = kt_targets(N, V);
    tg[0] = 50256;
    lse = (float *)kt_alloc(N);
    losses = (float *)kt_alloc(N);
    scr = (float *)kt_alloc(lmu__ce_scratch_floats(N, V, d));
    xd = kt_dcopy(x, N * d);
    Ed = kt_dcopy(E, V * d);
    lref = (double *)malloc(N * sizeof(double));
    mref = ref_ce(xd, Ed, tg, N, d, V, lref, NULL, NULL, 0);
    lmu__ce_forward(&loss, losses, lse, NULL, NULL, x, E, tg, N, d, V, NULL, scr);
    for (i = 0; i < N; i++) el = kt_maxrel(el, fabs(losses[i] - lref[i]) / lref[i]);
    LT_CHECK(el < 1e-5 && fabs(loss - mref) < 1e-5 * mref && fabs(mref - log((double)V)) < 1.0,
             "ce V=50257: loss %.6f (ref %.6f, log V %.3f), row max rel %.2e", loss, mref,
             log((double)V), el);
    lmu__free_aligned(x); lmu__free_aligned(E); lmu__free_aligned(lse); lmu__free_aligned(losses);
    lmu__free_aligned(scr); free(tg); free(xd); free(Ed); free(lref);
}

/* ====================================================================== */
/* causal multi-head attention                                             */
/* ====================================================================== */

/* the first key position t sees with window W: blocks t / W - 1 and t / W */
static size_t kt_win_lo(size_t t, size_t W) { return W == 0 || t < 2 * W ? 0 : (t / W - 1) * W; }

static void ref_mha(const double *qkv, size_t B, size_t T, size_t C, size_t NH, size_t W, double *out)
{
    size_t hs = C / NH, b, h, t, s, c;
    double *P = (double *)malloc(T * sizeof(double)), scale = 1.0 / sqrt((double)hs);
    for (b = 0; b < B; b++)
        for (h = 0; h < NH; h++)
            for (t = 0; t < T; t++) {
                const double *q = qkv + (b * T + t) * 3 * C + h * hs;
                double m = -1e300, sum = 0;
                for (s = 0; s < T; s++) {
                    const double *k = qkv + (b * T + s) * 3 * C + C + h * hs;
                    double a = 0;
                    for (c = 0; c < hs; c++) a += q[c] * k[c];
                    /* the causal (and window) mask, materialised */
                    P[s] = s <= t && s >= kt_win_lo(t, W) ? a * scale : -1e300;
                    if (P[s] > m) m = P[s];
                }
                for (s = 0; s < T; s++) {
                    P[s] = s <= t && s >= kt_win_lo(t, W) ? exp(P[s] - m) : 0.0;
                    sum += P[s];
                }
                for (c = 0; c < hs; c++) {
                    double a = 0;
                    for (s = 0; s < T; s++) a += P[s] / sum * qkv[(b * T + s) * 3 * C + 2 * C + h * hs + c];
                    out[(b * T + t) * C + h * hs + c] = a;
                }
            }
    free(P);
}

typedef struct {
    double *qkv, *w, *out;
    size_t B, T, C, NH, W;
} kt_mha_ctx;

static double kt_mha_loss(void *c)
{
    kt_mha_ctx *k = (kt_mha_ctx *)c;
    ref_mha(k->qkv, k->B, k->T, k->C, k->NH, k->W, k->out);
    return kt_wsum(k->w, k->out, k->B * k->T * k->C);
}

static void test_mha_case(size_t B, size_t T, size_t C, size_t NH, size_t W, int fd, int nparts)
{
    size_t n3 = B * T * 3 * C, no = B * T * C;
    float *qkv = kt_rand(n3, 1.5), *w = kt_rand(no, 1.0);
    float *out = (float *)kt_alloc(no), *lse = (float *)kt_alloc(B * NH * T);
    float *scr = (float *)kt_alloc(lmu__mha_scratch_floats(T, nparts));
    float *dqkv = kt_fill(n3, KT_PREFILL);
    double *qd = kt_dcopy(qkv, n3), *wd = kt_dcopy(w, no), *od = (double *)malloc(no * sizeof(double));
    double e;
    lmu_gemm_ws ws;
    LT_CHECK(lmu_gemm_ws_create(&ws, nparts) == LMU_OK, "mha gemm workspace");
    lmu__mha_forward(out, lse, qkv, B, T, C, NH, W, &ws, nparts, scr);
    ref_mha(qd, B, T, C, NH, W, od);
    e = kt_relerr(out, 0.0f, od, no);
    LT_CHECK(e < 2e-6, "mha fwd B=%zu T=%zu C=%zu NH=%zu W=%zu parts=%d: rel %.2e", B, T, C, NH, W, nparts, e);
    if (fd) {
        kt_mha_ctx c;
        c.qkv = qd; c.w = wd; c.out = od; c.B = B; c.T = T; c.C = C; c.NH = NH; c.W = W;
        lmu__mha_backward(dqkv, w, qkv, out, lse, B, T, C, NH, W, &ws, nparts, scr);
        e = lt_fd_check(kt_mha_loss, &c, qd, n3, LT_FD_H, dqkv, KT_PREFILL, NULL);
        LT_CHECK(e < 1e-5, "mha grad vs FD B=%zu T=%zu C=%zu NH=%zu W=%zu: dqkv %.2e", B, T, C, NH, W, e);
    }
    lmu__free_aligned(qkv); lmu__free_aligned(w); lmu__free_aligned(out); lmu__free_aligned(lse);
    lmu__free_aligned(scr); lmu__free_aligned(dqkv); free(qd); free(wd); free(od);
    lmu_gemm_ws_destroy(&ws);
}

/* The backward written out in double: dqkv = d(sum w o out)/d qkv for
   B = 1, through dS = P o (dP - rowsum(P o dP)) / sqrt(hs). */
static void ref_mha_bwd(const double *qkv, const double *w, size_t T, size_t C, size_t NH,
                        size_t W, double *dqkv)
{
    size_t hs = C / NH, C3 = 3 * C, h, t, s, c;
    double *P = (double *)malloc(T * sizeof(double)), *dP = (double *)malloc(T * sizeof(double));
    double scale = 1.0 / sqrt((double)hs);
    for (t = 0; t < T * C3; t++) dqkv[t] = 0.0;
    for (h = 0; h < NH; h++)
        for (t = 0; t < T; t++) {
            const double *q = qkv + t * C3 + h * hs, *wt = w + t * C + h * hs;
            double m = -1e300, sum = 0, D = 0;
            size_t lo = kt_win_lo(t, W);
            for (s = lo; s <= t; s++) {
                double a = 0;
                for (c = 0; c < hs; c++) a += q[c] * qkv[s * C3 + C + h * hs + c];
                P[s] = a * scale;
                if (P[s] > m) m = P[s];
            }
            for (s = lo; s <= t; s++) sum += P[s] = exp(P[s] - m);
            for (s = lo; s <= t; s++) {
                double a = 0;
                P[s] /= sum;
                for (c = 0; c < hs; c++) a += wt[c] * qkv[s * C3 + 2 * C + h * hs + c];
                dP[s] = a;
                D += P[s] * a;
            }
            for (s = lo; s <= t; s++) {
                double ds = P[s] * (dP[s] - D) * scale;
                for (c = 0; c < hs; c++) {
                    dqkv[t * C3 + h * hs + c] += ds * qkv[s * C3 + C + h * hs + c];
                    dqkv[s * C3 + C + h * hs + c] += ds * q[c];
                    dqkv[s * C3 + 2 * C + h * hs + c] += P[s] * wt[c];
                }
            }
        }
    free(P);
    free(dP);
}

/* Past LMU__MHA_KCH keys (the chunked P V), past LMU__MHA_KB keys (the
   backward's key chunks) and over several row blocks: forward and
   backward against the references, decode == forward bit for bit, and
   the backward's bits for 1 and 2 parts (2 parts with 3 heads: one head
   split across the team). With a window W, the decode step's cache is the
   ring of lmu__mha_cache_rows positions. */
static void test_mha_long(size_t T, size_t C, size_t NH, size_t W)
{
    size_t B = 1, n3 = B * T * 3 * C, no = B * T * C, t, R = lmu__mha_cache_rows(T, W);
    float *qkv = kt_rand(n3, 1.5), *out = (float *)kt_alloc(no), *lse = (float *)kt_alloc(NH * T);
    float *scr = (float *)kt_alloc(lmu__mha_scratch_floats(T, 2)), *w = kt_rand(no, 1.0);
    float *kc = (float *)kt_alloc(R * C), *vc = (float *)kt_alloc(R * C), *o1 = (float *)kt_alloc(C);
    float *dq1 = kt_fill(n3, KT_PREFILL), *dq2 = kt_fill(n3, KT_PREFILL);
    double *qd = kt_dcopy(qkv, n3), *od = (double *)malloc(no * sizeof(double)), e;
    double *wd = kt_dcopy(w, no), *gd = (double *)malloc(n3 * sizeof(double));
    lmu_gemm_ws ws;
    int ok = 1;
    LT_CHECK(lmu_gemm_ws_create(&ws, 2) == LMU_OK, "mha gemm workspace");
    lmu__mha_forward(out, lse, qkv, B, T, C, NH, W, &ws, 2, scr);
    ref_mha(qd, B, T, C, NH, W, od);
    e = kt_relerr(out, 0.0f, od, no);
    LT_CHECK(e < 2e-6, "mha fwd T=%zu C=%zu NH=%zu W=%zu: rel %.2e", T, C, NH, W, e);
    for (t = 0; t < T; t++) {
        lmu__mha_decode(o1, kc, vc, qkv + t * 3 * C, t, C, NH, W, R, 2, scr);
        ok &= !memcmp(o1, out + t * C, C * 4);
    }
    LT_CHECK(ok, "mha decode == forward bitwise, T=%zu C=%zu NH=%zu W=%zu (cache of %zu positions)", T, C,
             NH, W, R);
    KT_THREADS(2);
    lmu__mha_backward(dq1, w, qkv, out, lse, B, T, C, NH, W, &ws, 2, scr);
    lmu__mha_backward(dq2, w, qkv, out, lse, B, T, C, NH, W, &ws, 1, scr);
    ref_mha_bwd(qd, wd, T, C, NH, W, gd);
    e = kt_relerr(dq1, KT_PREFILL, gd, n3);
    LT_CHECK(e < 1e-5 && !memcmp(dq1, dq2, n3 * 4),
             "mha grad vs double reference T=%zu C=%zu NH=%zu W=%zu: dqkv %.2e, parts 1 == 2", T, C, NH, W, e);
    lmu__free_aligned(qkv); lmu__free_aligned(out); lmu__free_aligned(lse); lmu__free_aligned(scr);
    lmu__free_aligned(kc); lmu__free_aligned(vc); lmu__free_aligned(o1); lmu__free_aligned(w);
    lmu__free_aligned(dq1); lmu__free_aligned(dq2);
    free(qd); free(od); free(wd); free(gd);
    lmu_gemm_ws_destroy(&ws);
}

/* The decode step past LMU__MHA_DECODE_PAR keys x channels runs on the
   thread team: the same bits as on one thread. */
static void test_mha_decode_team(void)
{
    const size_t T = 4200, C = 66, NH = 2;
    float *kc = kt_rand(lmu__kern_round16(T) * C, 1.0), *vc = kt_rand(lmu__kern_round16(T) * C, 1.0);
    float *qkv = kt_rand(3 * C, 1.5);
    float *scr = (float *)kt_alloc(lmu__mha_decode_floats(T, C, NH));
    float *o1 = (float *)kt_alloc(C), *o2 = (float *)kt_alloc(C);
    size_t t;
    int ok = 1;
    LT_CHECK(T * C >= LMU__MHA_DECODE_PAR, "the case reaches the parallel path");
    KT_THREADS(2);
    for (t = 3999; t < T; t += 200) {
        lmu__mha_decode(o1, kc, vc, qkv, t, C, NH, 0, lmu__kern_round16(T), 1, scr);
        lmu__mha_decode(o2, kc, vc, qkv, t, C, NH, 0, lmu__kern_round16(T), 2, scr);
        ok &= !memcmp(o1, o2, C * 4);
    }
    LT_CHECK(ok, "mha decode at %zu keys: 2 threads == 1 thread bitwise", T);
    lmu__free_aligned(kc); lmu__free_aligned(vc); lmu__free_aligned(qkv);
    lmu__free_aligned(scr); lmu__free_aligned(o1); lmu__free_aligned(o2);
}

static void test_mha(void)
{
    static const size_t Ts[] = {1, 2, 17, 64, 100};
    size_t i, B = 2, T = 23, C = 12, NH = 3, n3 = B * T * 3 * C, no = B * T * C, t, t0 = 9;
    float *qkv, *out, *out2, *lse, *lse2, *scr, *kc, *vc, *o1, *dq[3], *w;
    int ok;
    lmu_gemm_ws ws;
    for (i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        test_mha_case(2, Ts[i], 8, 1, 0, 0, 3);
        test_mha_case(2, Ts[i], 12, 3, 0, 0, 2);
        test_mha_case(1, Ts[i], 16, 4, 0, 0, 1);
        test_mha_case(2, Ts[i], 12, 3, 7, 0, 2); /* window 7: blocks cut the row blocks */
    }
    test_mha_case(2, 5, 6, 2, 0, 1, 3);
    test_mha_case(2, 17, 12, 3, 0, 1, 4);
    test_mha_case(1, 1, 4, 1, 0, 1, 1);
    test_mha_case(3, 9, 10, 1, 0, 1, 2);
    test_mha_case(2, 17, 12, 3, 3, 1, 4); /* windows: FD through the masks */
    test_mha_case(1, 29, 6, 2, 1, 1, 2);
    test_mha_long(900, 12, 3, 0);
    test_mha_long(600, 66, 2, 0); /* hs 33, as transformer-1m */
    test_mha_long(900, 12, 3, 100); /* a ring of 224 positions, rows see 100 to 199 keys */
    test_mha_long(1300, 12, 3, 300); /* windows past the P V chunk (KCH) and the backward's KB */
    test_mha_long(700, 66, 2, 40);
    test_mha_decode_team();

    /* causality: change every input of position t0; rows before it keep their bits */
    qkv = kt_rand(n3, 1.0);
    w = kt_rand(no, 1.0);
    out = (float *)kt_alloc(no); out2 = (float *)kt_alloc(no);
    lse = (float *)kt_alloc(B * NH * T); lse2 = (float *)kt_alloc(B * NH * T);
    scr = (float *)kt_alloc(lmu__mha_scratch_floats(T, 4));
    LT_CHECK(lmu_gemm_ws_create(&ws, 4) == LMU_OK, "mha gemm workspace");
    lmu__mha_forward(out, lse, qkv, B, T, C, NH, 0, &ws, 3, scr);
    {
        float *q2 = (float *)kt_alloc(n3);
        size_t b, ok1 = 1, changed = 0;
        memcpy(q2, qkv, n3 * 4);
        for (b = 0; b < B; b++)
            for (i = 0; i < 3 * C; i++) q2[(b * T + t0) * 3 * C + i] += 0.5f;
        lmu__mha_forward(out2, lse2, q2, B, T, C, NH, 0, NULL, 3, scr);
        for (b = 0; b < B; b++) {
            ok1 &= !memcmp(out + b * T * C, out2 + b * T * C, t0 * C * 4);
            changed += memcmp(out + (b * T + t0) * C, out2 + (b * T + t0) * C, (T - t0) * C * 4) != 0;
        }
        LT_CHECK(ok1 && changed == B, "mha causal: rows < t0 bit-identical, later rows change");
        /* window 3: rows t with t / 3 >= t0 / 3 + 2 no longer see t0 */
        {
            size_t W = 3, far = (t0 / W + 2) * W, near_changed = 0;
            float *o3 = (float *)kt_alloc(no), *o4 = (float *)kt_alloc(no);
            lmu__mha_forward(o3, lse2, qkv, B, T, C, NH, W, NULL, 3, scr);
            lmu__mha_forward(o4, lse2, q2, B, T, C, NH, W, NULL, 3, scr);
            ok1 = 1;
            for (b = 0; b < B; b++) {
                ok1 &= !memcmp(o3 + b * T * C, o4 + b * T * C, t0 * C * 4);
                ok1 &= !memcmp(o3 + (b * T + far) * C, o4 + (b * T + far) * C, (T - far) * C * 4);
                near_changed += memcmp(o3 + (b * T + t0) * C, o4 + (b * T + t0) * C, (far - t0) * C * 4) != 0;
            }
            LT_CHECK(ok1 && near_changed == B,
                     "mha window 3: rows < t0 and rows >= %zu bit-identical, rows %zu..%zu change", far, t0, far - 1);
            /* a window of T or more is no window: the same bits as W = 0 */
            lmu__mha_forward(o3, lse2, qkv, B, T, C, NH, T, NULL, 3, scr);
            lmu__mha_forward(o4, lse2, qkv, B, T, C, NH, 0, NULL, 3, scr);
            LT_CHECK(!memcmp(o3, o4, no * 4), "mha window T = no window, bitwise");
            lmu__free_aligned(o3); lmu__free_aligned(o4);
        }
        lmu__free_aligned(q2);
    }
    /* decode with a KV cache == the full forward row by row, bit for bit */
    kc = (float *)kt_alloc(lmu__kern_round16(T) * C); vc = (float *)kt_alloc(lmu__kern_round16(T) * C);
    o1 = (float *)kt_alloc(C);
    ok = 1;
    for (t = 0; t < T; t++) {
        lmu__mha_decode(o1, kc, vc, qkv + (1 * T + t) * 3 * C, t, C, NH, 0, lmu__kern_round16(T), 2, scr);
        ok &= !memcmp(o1, out + (1 * T + t) * C, C * 4);
    }
    LT_CHECK(ok, "mha decode step == full forward, every row, bitwise");
    /* determinism: same bits twice; nparts 1 vs 4 and 1 vs 2 threads */
    for (i = 0; i < 3; i++) {
        int parts = i == 1 ? 1 : 4;
        KT_THREADS(i == 2 ? 1 : 2);
        dq[i] = kt_fill(n3, 0.0f);
        lmu__mha_forward(out2, lse2, qkv, B, T, C, NH, 0, &ws, parts, scr);
        lmu__mha_backward(dq[i], w, qkv, out2, lse2, B, T, C, NH, 0, &ws, parts, scr);
    }
    KT_THREADS(2);
    LT_CHECK(!memcmp(out, out2, no * 4) && !memcmp(dq[0], dq[1], n3 * 4) && !memcmp(dq[0], dq[2], n3 * 4),
             "mha bit-identical across runs, nparts and thread counts");
    for (i = 0; i < 3; i++) lmu__free_aligned(dq[i]);
    lmu__free_aligned(qkv); lmu__free_aligned(w); lmu__free_aligned(out); lmu__free_aligned(out2);
    lmu__free_aligned(lse); lmu__free_aligned(lse2); lmu__free_aligned(scr);
    lmu__free_aligned(kc); lmu__free_aligned(vc); lmu__free_aligned(o1);
    lmu_gemm_ws_destroy(&ws);
}

/* ====================================================================== */
/* implicit self-attention: convolution                                    */
/* ====================================================================== */

/* Z[b,t,ir,c] = sum_{j<=t} sum_k L[ir,k] H[k,t-j] U[b,j,c] + bias[ir] */
static void ref_conv(const double *U, const double *H, const double *L, const double *bias,
                     size_t B, size_t n, size_t d, size_t q, size_t qp, double *Z)
{
    size_t R = 3 * qp, b, t, j, ir, k, c;
    double *Ht = (double *)calloc(R * n, sizeof(double));
    for (ir = 0; ir < R; ir++)
        for (k = 0; k < q; k++)
            for (t = 0; t < n; t++) Ht[ir * n + t] += L[ir * q + k] * H[k * n + t];
    for (b = 0; b < B; b++)
        for (t = 0; t < n; t++)
            for (ir = 0; ir < R; ir++)
                for (c = 0; c < d; c++) {
                    double a = bias[ir];
                    for (j = 0; j <= t; j++) a += Ht[ir * n + t - j] * U[(b * n + j) * d + c];
                    Z[((b * n + t) * R + ir) * d + c] = a;
                }
    free(Ht);
}

typedef struct {
    double *U, *H, *L, *b, *w, *Z;
    size_t B, n, d, q, qp;
} kt_conv_ctx;

static double kt_conv_loss(void *c)
{
    kt_conv_ctx *k = (kt_conv_ctx *)c;
    ref_conv(k->U, k->H, k->L, k->b, k->B, k->n, k->d, k->q, k->qp, k->Z);
    return kt_wsum(k->w, k->Z, k->B * k->n * 3 * k->qp * k->d);
}

typedef struct {
    size_t B, n, d, q, qp, N, S, nz;
    lmu_fft_plan *plan;
    float *U, *H, *Hs, *L, *b, *cache;
} kt_conv;

static void kt_conv_make(kt_conv *k, size_t B, size_t n, size_t d, size_t q, size_t qp, size_t N)
{
    size_t i;
    float *fs;
    k->B = B; k->n = n; k->d = d; k->q = q; k->qp = qp;
    k->N = N ? N : lmu_fft_conv_len(n);
    k->S = k->N + 2;
    k->nz = B * n * 3 * qp * d;
    if (lmu_fft_plan_create(&k->plan, k->N, LMU_FFT_REAL) != LMU_FFT_OK) exit(3);
    k->U = kt_rand(B * n * d, 1.0);
    /* H decays along the lag, like an LTI impulse response */
    k->H = (float *)kt_alloc(q * n);
    for (i = 0; i < q * n; i++) k->H[i] = (float)(lt_uniform() * exp(-0.05 * (double)(i % n)));
    k->L = kt_rand(3 * qp * q, 0.7);
    k->b = kt_rand(3 * qp, 0.5);
    k->Hs = (float *)kt_alloc(q * k->S);
    fs = (float *)kt_alloc(lmu_fft_scratch_floats(k->plan));
    for (i = 0; i < q; i++) lmu_fft_conv_spectrum(k->plan, k->H + i * n, n, k->Hs + i * k->S, fs);
    lmu__free_aligned(fs);
    k->cache = (float *)kt_alloc(lmu__iattn_conv_cache_floats(B, d, qp, k->N));
}

static void kt_conv_free(kt_conv *k)
{
    lmu_fft_plan_destroy(k->plan);
    lmu__free_aligned(k->U); lmu__free_aligned(k->H); lmu__free_aligned(k->L);
    lmu__free_aligned(k->b); lmu__free_aligned(k->Hs); lmu__free_aligned(k->cache);
}

/* The convolution's forward as the model op runs it: kernel spectra, then
   the signals. */
static void kt_conv_forward(float *Z, float *cache, const float *U, const float *Hspec,
                            const float *L, const float *bias, size_t B, size_t n, size_t d,
                            size_t q, size_t qp, const lmu_fft_plan *plan, struct lmu_gemm_ws *ws,
                            int nparts, float *scratch)
{
    lmu__iattn_conv_htil(cache, Hspec, L, B, d, q, qp, plan, ws);
    lmu__iattn_conv_signals(Z, cache, U, bias, B, n, d, qp, plan, nparts, scratch);
}

static void test_conv_case(size_t B, size_t n, size_t d, size_t q, size_t qp, size_t N, int nparts)
{
    kt_conv k;
    size_t nz, nu, nl, R = 3 * qp;
    float *Z, *w, *scr, *dU, *dL, *db;
    double *Zr, e, e1, e2, e3;
    kt_conv_ctx c;
    kt_conv_make(&k, B, n, d, q, qp, N);
    nz = k.nz; nu = B * n * d; nl = R * q;
    Z = (float *)kt_alloc(nz);
    w = kt_rand(nz, 1.0);
    scr = (float *)kt_alloc(lmu__iattn_conv_scratch_floats(k.plan, qp, nparts));
    dU = kt_fill(nu, KT_PREFILL); dL = kt_fill(nl, KT_PREFILL); db = kt_fill(R, KT_PREFILL);
    c.U = kt_dcopy(k.U, nu); c.H = kt_dcopy(k.H, q * n); c.L = kt_dcopy(k.L, nl);
    c.b = kt_dcopy(k.b, R); c.w = kt_dcopy(w, nz); c.Z = Zr = (double *)malloc(nz * sizeof(double));
    c.B = B; c.n = n; c.d = d; c.q = q; c.qp = qp;
    kt_conv_forward(Z, k.cache, k.U, k.Hs, k.L, k.b, B, n, d, q, qp, k.plan, NULL, nparts, scr);
    ref_conv(c.U, c.H, c.L, c.b, B, n, d, q, qp, Zr);
    e = kt_relerr(Z, 0.0f, Zr, nz);
    LT_CHECK(e < 1e-5, "conv fwd vs direct sum B=%zu n=%zu d=%zu q=%zu q'=%zu nfft=%zu: rel %.2e",
             B, n, d, q, qp, k.N, e);
    lmu__iattn_conv_backward(dU, dL, db, w, k.cache, k.Hs, B, n, d, q, qp, k.plan, NULL, nparts, scr);
    e1 = lt_fd_check(kt_conv_loss, &c, c.U, nu, LT_FD_H, dU, KT_PREFILL, NULL);
    e2 = lt_fd_check(kt_conv_loss, &c, c.L, nl, LT_FD_H, dL, KT_PREFILL, NULL);
    e3 = lt_fd_check(kt_conv_loss, &c, c.b, R, LT_FD_H, db, KT_PREFILL, NULL);
    LT_CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5,
             "conv grad vs FD n=%zu d=%zu q=%zu q'=%zu nfft=%zu: dU %.2e dL %.2e db %.2e", n, d, q, qp, k.N,
             e1, e2, e3);
    free(c.U); free(c.H); free(c.L); free(c.b); free(c.w); free(Zr);
    lmu__free_aligned(Z); lmu__free_aligned(w); lmu__free_aligned(scr);
    lmu__free_aligned(dU); lmu__free_aligned(dL); lmu__free_aligned(db);
    kt_conv_free(&k);
}

static void test_conv(void)
{
    kt_conv k;
    size_t B = 2, n = 40, d = 19, q = 7, qp = 3, R = 9, j0 = 25, b, c, t, i;
    float *Z, *Z2, *U2, *scr, *w, *dU[3], *dL[3], *db[3];
    double big = 0, later = 0, scale = 0;
    int same;
    test_conv_case(1, 1, 1, 1, 1, 0, 1);
    test_conv_case(2, 3, 2, 3, 2, 0, 2);
    test_conv_case(2, 16, 3, 5, 2, 0, 3);
    test_conv_case(1, 16, 17, 4, 1, 64, 2); /* nfft = 4n, 2 channel blocks */
    test_conv_case(2, 100, 3, 6, 2, 0, 4);
    test_conv_case(1, 40, 40, 3, 2, 0, 2);  /* 16 x 16 transposes, partial blocks both ways */
    test_conv_case(1, 5, 260, 2, 1, 0, 2);  /* more channels than one forward group */

    /* causality. Through an FFT, rounding spreads over every output, so
       earlier outputs are unchanged only to rounding (a direct sum would
       keep their bits): they must move less than 1e-6 of the output scale
       while later ones move by O(1). */
    kt_conv_make(&k, B, n, d, q, qp, 0);
    Z = (float *)kt_alloc(k.nz); Z2 = (float *)kt_alloc(k.nz);
    scr = (float *)kt_alloc(lmu__iattn_conv_scratch_floats(k.plan, qp, 3));
    kt_conv_forward(Z, k.cache, k.U, k.Hs, k.L, k.b, B, n, d, q, qp, k.plan, NULL, 3, scr);
    U2 = (float *)kt_alloc(B * n * d);
    memcpy(U2, k.U, B * n * d * 4);
    for (b = 0; b < B; b++)
        for (c = 0; c < d; c++) U2[(b * n + j0) * d + c] += 1.0f;
    kt_conv_forward(Z2, k.cache, U2, k.Hs, k.L, k.b, B, n, d, q, qp, k.plan, NULL, 3, scr);
    for (b = 0; b < B; b++)
        for (t = 0; t < n; t++)
            for (i = 0; i < R * d; i++) {
                size_t o = (b * n + t) * R * d + i;
                double dz = fabs((double)Z2[o] - Z[o]);
                if (t < j0) big = dz > big ? dz : big;
                else later = dz > later ? dz : later;
                scale = fabs(Z[o]) > scale ? fabs(Z[o]) : scale;
            }
    LT_CHECK(big < 1e-6 * scale && later > 0.1, "conv causal: earlier |dZ| %.2e (scale %.2f), later %.2f",
             big, scale, later);
    /* determinism: same bits twice and with 1 vs 2 threads at fixed nparts;
       nparts changes only the summation order of dL and db */
    w = kt_rand(k.nz, 1.0);
    for (i = 0; i < 3; i++) {
        KT_THREADS(i == 2 ? 1 : 2);
        dU[i] = kt_fill(B * n * d, 0.0f); dL[i] = kt_fill(R * q, 0.0f); db[i] = kt_fill(R, 0.0f);
        kt_conv_forward(Z2, k.cache, k.U, k.Hs, k.L, k.b, B, n, d, q, qp, k.plan, NULL, 3, scr);
        lmu__iattn_conv_backward(dU[i], dL[i], db[i], w, k.cache, k.Hs, B, n, d, q, qp, k.plan, NULL, 3, scr);
    }
    KT_THREADS(2);
    same = !memcmp(Z, Z2, k.nz * 4);
    for (i = 1; i < 3; i++)
        same &= !memcmp(dU[i], dU[0], B * n * d * 4) && !memcmp(dL[i], dL[0], R * q * 4) &&
                !memcmp(db[i], db[0], R * 4);
    LT_CHECK(same, "conv bit-identical twice and with 1 vs 2 threads (nparts 3)");
    for (i = 0; i < 3; i++) {
        lmu__free_aligned(dU[i]); lmu__free_aligned(dL[i]); lmu__free_aligned(db[i]);
    }
    lmu__free_aligned(Z); lmu__free_aligned(Z2); lmu__free_aligned(U2); lmu__free_aligned(scr);
    lmu__free_aligned(w);
    kt_conv_free(&k);
}

/* ====================================================================== */
/* implicit self-attention: per-position attention (gelu fused)           */
/* ====================================================================== */

static double ref_gelu(double x)
{
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

static void ref_iattn_attn(const double *Z, const double *p, size_t npos, size_t qp, size_t d, double *y)
{
    size_t m = 3 * qp * d, t, r, s, c;
    double *X = (double *)malloc(m * sizeof(double)), *A = (double *)malloc(qp * qp * sizeof(double));
    for (t = 0; t < npos; t++) {
        const double *Q = X, *K = X + qp * d, *V = X + 2 * qp * d;
        for (r = 0; r < m; r++) X[r] = ref_gelu(Z[t * m + r]);
        for (r = 0; r < qp; r++) {
            double mx = -1e300, sum = 0;
            for (s = 0; s < qp; s++) {
                double a = 0;
                for (c = 0; c < d; c++) a += Q[r * d + c] * K[s * d + c];
                A[r * qp + s] = a / sqrt((double)d);
                if (A[r * qp + s] > mx) mx = A[r * qp + s];
            }
            for (s = 0; s < qp; s++) sum += (A[r * qp + s] = exp(A[r * qp + s] - mx));
            for (s = 0; s < qp; s++) A[r * qp + s] /= sum;
        }
        /* y = p M', M' = A V, literally */
        for (c = 0; c < d; c++) {
            double yc = 0;
            for (r = 0; r < qp; r++) {
                double mrc = 0;
                for (s = 0; s < qp; s++) mrc += A[r * qp + s] * V[s * d + c];
                yc += p[r] * mrc;
            }
            y[t * d + c] = yc;
        }
    }
    free(X);
    free(A);
}

typedef struct {
    double *Z, *p, *w, *y;
    size_t npos, qp, d;
} kt_iattn_ctx;

static double kt_iattn_loss(void *c)
{
    kt_iattn_ctx *k = (kt_iattn_ctx *)c;
    ref_iattn_attn(k->Z, k->p, k->npos, k->qp, k->d, k->y);
    return kt_wsum(k->w, k->y, k->npos * k->d);
}

static void test_iattn_case(size_t npos, size_t qp, size_t d, int nparts, double zs)
{
    size_t m = 3 * qp * d, nz = npos * m, ny = npos * d;
    float *Z = kt_rand(nz, zs), *p = kt_rand(qp, 1.0), *w = kt_rand(ny, 1.0);
    float *y = (float *)kt_alloc(ny), *Pc = (float *)kt_alloc(npos * qp * qp);
    float *scr = (float *)kt_alloc(lmu__iattn_attn_scratch_floats(npos, qp, d, nparts));
    float *dZ = kt_fill(nz, KT_PREFILL), *dp = kt_fill(qp, KT_PREFILL);
    double e, e1, e2;
    kt_iattn_ctx c;
    c.Z = kt_dcopy(Z, nz); c.p = kt_dcopy(p, qp); c.w = kt_dcopy(w, ny);
    c.y = (double *)malloc(ny * sizeof(double)); c.npos = npos; c.qp = qp; c.d = d;
    lmu__iattn_attn_forward(y, Pc, Z, p, npos, qp, d, nparts, scr);
    ref_iattn_attn(c.Z, c.p, npos, qp, d, c.y);
    e = kt_relerr(y, 0.0f, c.y, ny);
    LT_CHECK(e < 2e-6, "iattn attn fwd npos=%zu q'=%zu d=%zu: rel %.2e", npos, qp, d, e);
    lmu__iattn_attn_backward(dZ, dp, w, Z, Pc, p, npos, qp, d, nparts, scr, 1);
    e1 = lt_fd_check(kt_iattn_loss, &c, c.Z, nz, LT_FD_H, dZ, KT_PREFILL, NULL);
    e2 = lt_fd_check(kt_iattn_loss, &c, c.p, qp, LT_FD_H, dp, KT_PREFILL, NULL);
    LT_CHECK(e1 < 1e-5 && e2 < 1e-5, "iattn attn grad vs FD npos=%zu q'=%zu d=%zu: dZ %.2e dp %.2e", npos,
             qp, d, e1, e2);
    free(c.Z); free(c.p); free(c.w); free(c.y);
    lmu__free_aligned(Z); lmu__free_aligned(p); lmu__free_aligned(w); lmu__free_aligned(y);
    lmu__free_aligned(Pc); lmu__free_aligned(scr); lmu__free_aligned(dZ); lmu__free_aligned(dp);
}

static void test_iattn_attn(void)
{
    size_t npos = 37, qp = 5, d = 11, m = 3 * qp * d, i;
    float *Z, *p, *w, *y[3], *Pc, *scr, *dZ[3], *dp[3];
    int same = 1;
    test_iattn_case(4, 3, 7, 2, 1.0);
    test_iattn_case(3, 1, 5, 1, 1.0);
    test_iattn_case(6, 4, 16, 3, 2.0);
    test_iattn_case(2, 7, 3, 4, 3.0);
    test_iattn_case(3, 6, 70, 2, 1.5);  /* 64-channel product blocks and a tail */
    test_iattn_case(2, 5, 130, 1, 1.0);
    /* determinism: twice, nparts 1 vs 4, 1 vs 2 threads: all bit-identical */
    Z = kt_rand(npos * m, 1.5); p = kt_rand(qp, 1.0); w = kt_rand(npos * d, 1.0);
    Pc = (float *)kt_alloc(npos * qp * qp);
    scr = (float *)kt_alloc(lmu__iattn_attn_scratch_floats(npos, qp, d, 4));
    for (i = 0; i < 3; i++) {
        int parts = i == 1 ? 1 : 4;
        KT_THREADS(i == 2 ? 1 : 2);
        y[i] = (float *)kt_alloc(npos * d); dZ[i] = kt_fill(npos * m, 0.0f); dp[i] = kt_fill(qp, 0.0f);
        lmu__iattn_attn_forward(y[i], Pc, Z, p, npos, qp, d, parts, scr);
        lmu__iattn_attn_backward(dZ[i], dp[i], w, Z, Pc, p, npos, qp, d, parts, scr, 1);
    }
    KT_THREADS(2);
    for (i = 1; i < 3; i++)
        same &= !memcmp(y[i], y[0], npos * d * 4) && !memcmp(dZ[i], dZ[0], npos * m * 4) &&
                !memcmp(dp[i], dp[0], qp * 4);
    LT_CHECK(same, "iattn attn bit-identical across runs, nparts and thread counts");
    /* the model op's mode: dZ written over (garbage before), streamed out a
       position late; the same values as accumulating into zeros */
    for (i = 0; i < 3; i++) {
        int parts = i == 1 ? 1 : 3;
        size_t j;
        float *dZo = kt_fill(npos * m, NAN), *dpo = kt_fill(qp, 0.0f);
        KT_THREADS(i == 2 ? 1 : 2);
        lmu__iattn_attn_forward(y[i], Pc, Z, p, npos, qp, d, parts, scr);
        lmu__iattn_attn_backward(dZo, dpo, w, Z, Pc, p, npos, qp, d, parts, scr, 0);
        for (j = 0; j < npos * m; j++) same &= dZo[j] == dZ[0][j];
        same &= !memcmp(dpo, dp[0], qp * 4);
        lmu__free_aligned(dZo); lmu__free_aligned(dpo);
    }
    KT_THREADS(2);
    LT_CHECK(same, "iattn attn written-over dZ equals accumulated, any nparts and thread count");
    for (i = 0; i < 3; i++) {
        lmu__free_aligned(y[i]); lmu__free_aligned(dZ[i]); lmu__free_aligned(dp[i]);
    }
    lmu__free_aligned(Z); lmu__free_aligned(p); lmu__free_aligned(w); lmu__free_aligned(Pc);
    lmu__free_aligned(scr);
}

/* ====================================================================== */

static void test_helpers(void)
{
    double worst = 0, x;
    float gw = 0;
    for (x = -87.0; x <= 88.0; x += 0.01) {
        double r = fabs(lmu__kern_expf((float)x) - exp((double)(float)x)) / exp((double)(float)x);
        worst = r > worst ? r : worst;
    }
    for (x = -12.0; x <= 12.0; x += 0.001)
        gw = fmaxf(gw, (float)fabs(lmu__kern_gelu((float)x, NULL) - ref_gelu((double)(float)x)));
    LT_CHECK(worst < 5e-7 && lmu__kern_expf(-100.0f) == 0.0f && lmu__kern_expf(-(float)HUGE_VAL) == 0.0f &&
                 lmu__kern_expf(100.0f) > 1e38f && lmu__kern_expf(NAN) != lmu__kern_expf(NAN),
             "kernel exp: max rel err %.2e on [-87, 88], 0 below, inf above, NaN kept", worst);
    LT_CHECK(gw < 1e-6f, "kernel gelu: max abs err %.2e on [-12, 12]", gw);
    {
        /* the attention's own gelu and gelu' (SIMD lanes and the tail) */
        size_t n = 24001, j;
        float *z = (float *)kt_alloc(n + 3), *g = (float *)kt_alloc(n + 3), *dg = (float *)kt_alloc(n + 3);
        double e1 = 0, e2 = 0;
        for (j = 0; j < n; j++) z[j] = (float)(-12.0 + 0.001 * (double)j);
        z[n] = NAN, z[n + 1] = -1e30f, z[n + 2] = 1e30f;
        /* compared with z[n + 2], not the literal: where FLT_EVAL_METHOD is 1
           (s390x) 1e30f keeps double precision and is not the stored float */
        lmu__iattn_gelu_rows(g, dg, z, n + 3, NULL);
        for (j = 0; j < n; j++) {
            double x = (double)z[j], c = 0.7978845608028654, t = tanh(c * (x + 0.044715 * x * x * x));
            double d1 = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
            e1 = fmax(e1, fabs(g[j] - ref_gelu(x)));
            e2 = fmax(e2, fabs(dg[j] - d1));
        }
        LT_CHECK(e1 < 1e-6 && e2 < 1e-6 && g[n] != g[n] && fabs(g[n + 1]) < 1e-4f && g[n + 2] == z[n + 2],
                 "iattn gelu: max abs err %.2e, gelu' %.2e on [-12, 12]; NaN kept, +-1e30 saturate", e1, e2);
        lmu__free_aligned(z); lmu__free_aligned(g); lmu__free_aligned(dg);
    }
}

/* ---- linear attention (ReBased, Based) ------------------------------------ */

/* The definition, in double: out_i = sum_{j<=i} phi(q_i.k_j/sqrt F) v_j /
   (sum_{j<=i} phi(.) + eps), per head. */
static void ref_la(const double *q, const double *k, const double *v, size_t B, size_t T, size_t H,
                   size_t F, size_t C, int based, double eps, double *out)
{
    size_t b, h, i, j, c, a, FH = F * H, hs = C / H;
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (i = 0; i < T; i++) {
                double den = eps, *o = out + (b * T + i) * C + h * hs;
                for (c = 0; c < hs; c++) o[c] = 0;
                for (j = 0; j <= i; j++) {
                    double x = 0, s;
                    for (a = 0; a < F; a++) x += q[(b * T + i) * FH + h * F + a] * k[(b * T + j) * FH + h * F + a];
                    x /= sqrt((double)F);
                    s = based ? 1 + x + x * x / 2 : x * x;
                    den += s;
                    for (c = 0; c < hs; c++) o[c] += s * v[(b * T + j) * C + h * hs + c];
                }
                for (c = 0; c < hs; c++) o[c] /= den;
            }
}

typedef struct {
    double *q, *k, *v, *w, *out;
    size_t B, T, H, F, C;
    int based;
} kt_la_ctx;

static double kt_la_loss(void *p)
{
    kt_la_ctx *c = (kt_la_ctx *)p;
    ref_la(c->q, c->k, c->v, c->B, c->T, c->H, c->F, c->C, c->based, 1e-12, c->out);
    return kt_wsum(c->w, c->out, c->B * c->T * c->C);
}

static void test_la_case(size_t B, size_t T, size_t H, size_t F, size_t C, int based)
{
    size_t nq = B * T * F * H, nv = B * T * C, i;
    float *q = kt_rand(nq, 1.0), *k = kt_rand(nq, 1.0), *v = kt_rand(nv, 1.0), *w = kt_rand(nv, 1.0);
    float *out = (float *)kt_alloc(nv), *out2 = (float *)kt_alloc(nv), *den = (float *)kt_alloc(B * H * T);
    float *dq = kt_fill(nq, KT_PREFILL), *dk = kt_fill(nq, KT_PREFILL), *dv = kt_fill(nv, KT_PREFILL);
    const char *name = based ? "based" : "rebased";
    double e, e1, e2, e3, fdn;
    int causal = 1;
    kt_la_ctx c;
    c.q = kt_dcopy(q, nq), c.k = kt_dcopy(k, nq), c.v = kt_dcopy(v, nv), c.w = kt_dcopy(w, nv);
    c.out = (double *)malloc(nv * sizeof(double));
    c.B = B, c.T = T, c.H = H, c.F = F, c.C = C, c.based = based;
    lmu__la_forward(out, den, q, k, v, B, T, H, F, C, based, 1e-12f);
    ref_la(c.q, c.k, c.v, B, T, H, F, C, based, 1e-12, c.out);
    e = kt_relerr(out, 0.0f, c.out, nv);
    LT_CHECK(e < 1e-5, "%s fwd B=%zu T=%zu H=%zu F=%zu C=%zu vs float64: rel %.2e", name, B, T, H, F, C, e);
    lmu__la_backward(dq, dk, dv, w, out, den, q, k, v, B, T, H, F, C, based);
    e1 = lt_fd_check(kt_la_loss, &c, c.q, nq, LT_FD_H, dq, KT_PREFILL, &fdn);
    e2 = lt_fd_check(kt_la_loss, &c, c.k, nq, LT_FD_H, dk, KT_PREFILL, NULL);
    e3 = lt_fd_check(kt_la_loss, &c, c.v, nv, LT_FD_H, dv, KT_PREFILL, NULL);
    LT_CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5 && fdn > 0,
             "%s grad vs FD (float64): dq %.2e dk %.2e dv %.2e", name, e1, e2, e3);
    /* causality: a later position's q, k, v never reach an earlier output */
    for (i = 0; i < F * H; i++) q[(T - 1) * F * H + i] += 1, k[(T - 1) * F * H + i] -= 1;
    for (i = 0; i < C; i++) v[(T - 1) * C + i] *= 3;
    lmu__la_forward(out2, den, q, k, v, B, T, H, F, C, based, 1e-12f);
    for (i = 0; i < (T - 1) * C; i++) causal &= out2[i] == out[i];
    LT_CHECK(causal, "%s: changing position %zu leaves positions 0..%zu bit for bit", name, T - 1, T - 2);
    free(c.q), free(c.k), free(c.v), free(c.w), free(c.out);
    lmu__free_aligned(q), lmu__free_aligned(k), lmu__free_aligned(v), lmu__free_aligned(w);
    lmu__free_aligned(out), lmu__free_aligned(out2), lmu__free_aligned(den);
    lmu__free_aligned(dq), lmu__free_aligned(dk), lmu__free_aligned(dv);
}

/* The recurrence of generation (state S, z per head) against the parallel
   form, position by position. */
static void test_la_decode(int based)
{
    enum { T = 9, F = 4, HS = 5 };
    float *q = kt_rand(T * F, 1.0), *k = kt_rand(T * F, 1.0), *v = kt_rand(T * HS, 1.0);
    float out[T * HS], den[T], o[HS], S[(F * F + 1 + F) * (HS + 1)], fq[F * F + 1 + F], fk[F * F + 1 + F];
    size_t nf = lmu__la_features(F, based), t, c;
    double worst = 0, scale = 0;
    memset(S, 0, sizeof S);
    lmu__la_forward(out, den, q, k, v, 1, T, 1, F, HS, based, 1e-12f);
    for (t = 0; t < T * HS; t++) scale = fmax(scale, fabs(out[t]));
    for (t = 0; t < T; t++) {
        lmu__la_decode(o, S, S + nf * HS, q + t * F, k + t * F, v + t * HS, F, HS, based, 1e-12f, fq, fk);
        for (c = 0; c < HS; c++) worst = fmax(worst, fabs(o[c] - out[t * HS + c]) / scale);
    }
    LT_CHECK(worst < 1e-5, "%s: the recurrence (state %zu x %d per head) = the parallel form at every "
             "position (max diff %.1e of the largest output)", based ? "based" : "rebased", nf, HS + 1, worst);
    lmu__free_aligned(q), lmu__free_aligned(k), lmu__free_aligned(v);
}

/* The chunked form (positions past LMU__LA_CHUNK go through the state)
   against the quadratic one and against finite differences in double. */
static void test_la_chunked(size_t B, size_t T, size_t H, size_t F, size_t C, int based, int fd)
{
    size_t nq = B * T * F * H, nv = B * T * C, hs = C / H;
    float *q = kt_rand(nq, 1.0), *k = kt_rand(nq, 1.0), *v = kt_rand(nv, 1.0), *w = kt_rand(nv, 1.0);
    float *o1 = (float *)kt_alloc(nv), *o2 = (float *)kt_alloc(nv), *den = (float *)kt_alloc(B * H * T);
    float *g1[3], *g2[3], *scr = (float *)kt_alloc(3 * lmu__la_chunk_floats(F, hs, based));
    const char *name = based ? "based" : "rebased";
    double e = 1, eg = 0, e1 = 0, e2 = 0, e3 = 0;
    size_t n[3], i;
    kt_la_ctx c;
    n[0] = n[1] = nq, n[2] = nv;
    for (i = 0; i < 3; i++) g1[i] = kt_fill(n[i], KT_PREFILL), g2[i] = kt_fill(n[i], KT_PREFILL);
    lmu__la_forward(o1, den, q, k, v, B, T, H, F, C, based, 1e-12f);
    lmu__la_backward(g1[0], g1[1], g1[2], w, o1, den, q, k, v, B, T, H, F, C, based);
    lmu__la_forward_chunked(o2, den, q, k, v, B, T, H, F, C, based, 1e-12f, 3, scr);
    lmu__la_backward_chunked(g2[0], g2[1], g2[2], w, o2, den, q, k, v, B, T, H, F, C, based, 3, scr);
    c.q = kt_dcopy(q, nq), c.k = kt_dcopy(k, nq), c.v = kt_dcopy(v, nv), c.w = kt_dcopy(w, nv);
    c.out = (double *)malloc(nv * sizeof(double));
    c.B = B, c.T = T, c.H = H, c.F = F, c.C = C, c.based = based;
    for (i = 0; i < 4; i++) {
        double *ref = kt_dcopy(i < 3 ? g1[i] : o1, i < 3 ? n[i] : nv);
        if (i < 3) eg = kt_maxrel(eg, kt_relerr(g2[i], 0.0f, ref, n[i]));
        else e = kt_relerr(o2, 0.0f, ref, nv);
        free(ref);
    }
    LT_CHECK(e < 1e-5 && eg < 1e-5, "%s chunked (T=%zu, chunks of %d) = quadratic: out rel %.1e, grads rel %.1e",
             name, T, LMU__LA_CHUNK, e, eg);
    if (fd) {
        e1 = lt_fd_check(kt_la_loss, &c, c.q, nq, LT_FD_H, g2[0], KT_PREFILL, NULL);
        e2 = lt_fd_check(kt_la_loss, &c, c.k, nq, LT_FD_H, g2[1], KT_PREFILL, NULL);
        e3 = lt_fd_check(kt_la_loss, &c, c.v, nv, LT_FD_H, g2[2], KT_PREFILL, NULL);
        LT_CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5, "%s chunked grad vs FD (float64): dq %.1e dk %.1e dv %.1e",
                 name, e1, e2, e3);
    }
    free(c.q), free(c.k), free(c.v), free(c.w), free(c.out);
    for (i = 0; i < 3; i++) lmu__free_aligned(g1[i]), lmu__free_aligned(g2[i]);
    lmu__free_aligned(q), lmu__free_aligned(k), lmu__free_aligned(v), lmu__free_aligned(w);
    lmu__free_aligned(o1), lmu__free_aligned(o2), lmu__free_aligned(den), lmu__free_aligned(scr);
}

static void test_la(void)
{
    int based;
    for (based = 0; based < 2; based++) {
        test_la_case(1, 5, 1, 3, 4, based);
        test_la_case(2, 7, 2, 4, 6, based);
        test_la_case(1, 6, 3, 2, 9, based);
        test_la_decode(based);
        test_la_chunked(1, 150, 2, 3, 4, based, 1);
        test_la_chunked(2, 300, 2, 16, 64, based, 0);
    }
}

/* ---- short convolution gate (mixer conv) --------------------------------- */

/* The definition, in double: y = (b + sum_j w_j u_{t-K+1+j}) p + u. */
static void ref_short_conv(const double *u, const double *w, const double *b, const double *p,
                           size_t B, size_t T, size_t C, size_t K, double *y)
{
    size_t n, t, c, j;
    for (n = 0; n < B; n++)
        for (t = 0; t < T; t++)
            for (c = 0; c < C; c++) {
                double a = b[c];
                for (j = 0; j < K; j++)
                    if (t + j + 1 >= K) a += w[c * K + j] * u[(n * T + t + j + 1 - K) * C + c];
                y[(n * T + t) * C + c] = a * p[(n * T + t) * C + c] + u[(n * T + t) * C + c];
            }
}

typedef struct {
    double *u, *w, *b, *p, *g, *y;
    size_t B, T, C, K;
} kt_sc_ctx;

static double kt_sc_loss(void *v)
{
    kt_sc_ctx *c = (kt_sc_ctx *)v;
    ref_short_conv(c->u, c->w, c->b, c->p, c->B, c->T, c->C, c->K, c->y);
    return kt_wsum(c->g, c->y, c->B * c->T * c->C);
}

static void test_short_conv(size_t B, size_t T, size_t C, size_t K)
{
    size_t n = B * T * C, i;
    float *u = kt_rand(n, 1.0), *w = kt_rand(C * K, 1.0), *b = kt_rand(C, 1.0), *p = kt_rand(n, 1.0);
    float *g = kt_rand(n, 1.0), *y = (float *)kt_alloc(n), *y2 = (float *)kt_alloc(n), *f = (float *)kt_alloc(n);
    float *du = kt_fill(n, KT_PREFILL), *dw = kt_fill(C * K, KT_PREFILL), *db = kt_fill(C, KT_PREFILL);
    float *dp = kt_fill(n, KT_PREFILL);
    double e, e1, e2, e3, e4, fdn;
    int causal = 1;
    kt_sc_ctx c;
    c.u = kt_dcopy(u, n), c.w = kt_dcopy(w, C * K), c.b = kt_dcopy(b, C), c.p = kt_dcopy(p, n);
    c.g = kt_dcopy(g, n), c.y = (double *)malloc(n * sizeof(double));
    c.B = B, c.T = T, c.C = C, c.K = K;
    lmu__short_conv_forward(y, f, u, w, b, p, B, T, C, K);
    ref_short_conv(c.u, c.w, c.b, c.p, B, T, C, K, c.y);
    e = kt_relerr(y, 0.0f, c.y, n);
    LT_CHECK(e < 1e-6, "short_conv fwd B=%zu T=%zu C=%zu K=%zu vs float64: rel %.2e", B, T, C, K, e);
    lmu__short_conv_backward(du, dw, db, dp, g, f, u, w, p, B, T, C, K);
    e1 = lt_fd_check(kt_sc_loss, &c, c.u, n, LT_FD_H, du, KT_PREFILL, &fdn);
    e2 = lt_fd_check(kt_sc_loss, &c, c.w, C * K, LT_FD_H, dw, KT_PREFILL, NULL);
    e3 = lt_fd_check(kt_sc_loss, &c, c.b, C, LT_FD_H, db, KT_PREFILL, NULL);
    e4 = lt_fd_check(kt_sc_loss, &c, c.p, n, LT_FD_H, dp, KT_PREFILL, NULL);
    LT_CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5 && e4 < 1e-5 && fdn > 0,
             "short_conv grad vs FD (float64): du %.2e dw %.2e db %.2e dp %.2e", e1, e2, e3, e4);
    /* causality: the last position's u and p reach no earlier output */
    for (i = 0; i < C; i++) u[(T - 1) * C + i] += 1, p[(T - 1) * C + i] -= 1;
    lmu__short_conv_forward(y2, f, u, w, b, p, B, T, C, K);
    for (i = 0; i < (T - 1) * C; i++) causal &= y2[i] == y[i];
    LT_CHECK(causal, "short_conv: changing position %zu leaves positions 0..%zu bit for bit", T - 1, T - 2);
    free(c.u), free(c.w), free(c.b), free(c.p), free(c.g), free(c.y);
    lmu__free_aligned(u), lmu__free_aligned(w), lmu__free_aligned(b), lmu__free_aligned(p);
    lmu__free_aligned(g), lmu__free_aligned(y), lmu__free_aligned(y2), lmu__free_aligned(f);
    lmu__free_aligned(du), lmu__free_aligned(dw), lmu__free_aligned(db), lmu__free_aligned(dp);
}

int main(int argc, char **argv)
{
    lt_begin("test_kernels", argc, argv);
    lt_seed(12345);
    KT_THREADS(2);
    test_helpers();
    test_ce();
    test_mha();
    test_conv();
    test_iattn_attn();
    test_la();
    test_short_conv(2, 7, 5, 3);
    test_short_conv(1, 2, 4, 3); /* shorter than the filter */
    test_short_conv(1, 6, 3, 1);
    return lt_end();
}
