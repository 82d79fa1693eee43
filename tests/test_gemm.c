/* test_gemm.c - lmu_sgemm against a double-precision triple loop.

   make build/test_gemm && ./build/test_gemm [-v]

   Covers all four transpose combinations on edge-heavy shapes, alpha/beta
   variants (beta 0 over NaN), padded leading dimensions, the SIMD and the
   portable micro-kernel, with and without a workspace, bit-identical
   results run to run and across thread counts, and argument errors.

   Error bound. Each C element is a float dot product of length K summed in
   k blocks of at most 256 with FMA (or mul+add) chains, then scaled by
   alpha and combined with beta*C. Against the double reference we require

       |c - ref| <= 4 * FLT_EPSILON * (sqrt(K) + 2) * scale,
       scale = |alpha| * sum_p |a_ip * b_pj| + |beta * c_ij|

   i.e. the statistical (random-walk) growth of rounding error with a
   safety factor of 4, not the worst-case K * eps bound, which would hide
   a lost term.

   bf16 products (ws->bf16). Bit for bit, they must equal the fp32
   product of operands rounded to bf16 beforehand (the rounding is checked
   on its own against a definition by exact comparison in double). Against
   the double product of the unrounded operands, each rounding moves an
   operand by at most u = 2^-8 relative (8 significant bits, nearest), so
   one product moves by at most (2u + u^2) |a b|; the fp32 sums add the
   bound above:

       |c - ref| <= (2u + u^2) |alpha| sum_p |a_ip b_pj|
                    + 4 * FLT_EPSILON * (sqrt(K) + 2) * scale (1 + 2u + u^2) */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/lmu_test.h"

#include <float.h>
#include <math.h>

typedef lmu_result (*gemm_fn)(lmu_gemm_ws *, int, int, size_t, size_t, size_t, float,
                              const float *, size_t, const float *, size_t, float, float *,
                              size_t);

static void fill(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = (float)lt_uniform();
}

/* Largest error relative to the per-element bound; > 1 fails. Also fails
   on any non-finite output. */
static double max_err_ratio(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                            const float *A, size_t lda, const float *B, size_t ldb, float beta,
                            const float *C0, const float *C, size_t ldc)
{
    size_t i, j, p;
    double worst = 0.0;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = 0.0, mag = 0.0, ref, bound, e;
            for (p = 0; p < K; p++) {
                double a = ta ? A[p * lda + i] : A[i * lda + p];
                double b = tb ? B[j * ldb + p] : B[p * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            ref = (double)alpha * s;
            mag = fabs((double)alpha) * mag;
            if (beta != 0.0f) {
                ref += (double)beta * C0[i * ldc + j];
                mag += fabs((double)beta * C0[i * ldc + j]);
            }
            bound = 4.0 * FLT_EPSILON * (sqrt((double)K) + 2.0) * mag + 1e-30;
            if (!isfinite(C[i * ldc + j])) return INFINITY;
            e = fabs((double)C[i * ldc + j] - ref) / bound;
            if (e > worst) worst = e;
        }
    return worst;
}

/* Elements of C outside the M x N window (the ldc padding) must survive. */
static int padding_intact(const float *C, const float *C0, size_t M, size_t N, size_t ldc)
{
    size_t i, j;
    for (i = 0; i < M; i++)
        for (j = N; j < ldc; j++)
            if (memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(float)) != 0) return 0;
    return 1;
}

static double g_worst[2];

/* One case: random A, B, C with padded leading dimensions; returns 1 if
   it passed. */
static int run_case(gemm_fn fn, const char *path, lmu_gemm_ws *ws, int ta, int tb, size_t M,
                    size_t N, size_t K, float alpha, float beta, size_t pad)
{
    size_t arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    size_t lda = acols + pad, ldb = bcols + pad, ldc = N + pad;
    float *A = (float *)malloc((arows * lda + 1) * sizeof(float));
    float *B = (float *)malloc((brows * ldb + 1) * sizeof(float));
    float *C0 = (float *)malloc((M * ldc + 1) * sizeof(float));
    float *C = (float *)malloc((M * ldc + 1) * sizeof(float));
    double r;
    lmu_result res;
    int ok;
    size_t i;
    fill(A, arows * lda);
    fill(B, brows * ldb);
    fill(C0, M * ldc);
    if (beta == 0.0f)
        for (i = 0; i < M * ldc; i++)
            if (i % ldc < N) C0[i] = NAN; /* must not leak through beta = 0 */
    memcpy(C, C0, M * ldc * sizeof(float));
    res = fn(ws, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    r = max_err_ratio(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, C, ldc);
    ok = res == LMU_OK && r <= 1.0 && padding_intact(C, C0, M, N, ldc);
    if (r > g_worst[path[0] == 'g']) g_worst[path[0] == 'g'] = r;
    /* Cases are counted in one summary check; each failure is named. */
    if (!ok || lt__verbose)
        printf("  %s %s %c%c M=%zu N=%zu K=%zu alpha=%g beta=%g pad=%zu ws=%d: err/bound %.3g\n",
               ok ? "ok  " : "FAIL", path, ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, (double)alpha,
               (double)beta, pad, ws != NULL, r);
    free(A);
    free(B);
    free(C0);
    free(C);
    return ok;
}

static void test_shapes(lmu_gemm_ws *ws)
{
    static const size_t dims[] = {1, 3, 17, 64, 204};
    static const size_t big[][3] = {{1023, 17, 204}, {17, 1023, 64}, {64, 204, 1023},
                                    {1023, 1023, 3}, {205, 33, 600}, {29, 1023, 517}};
    static const float alphas[] = {1.0f, -0.75f};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    size_t nd = sizeof dims / sizeof dims[0], a, b, c;
    int path, t, fails = 0, cases = 0, idx = 0;
    for (path = 0; path < 2; path++) {
        gemm_fn fn = path == 0 ? lmu_sgemm : lmu__sgemm_generic;
        const char *name = path == 0 ? "best" : "generic";
        for (t = 0; t < 4; t++) {
            int ta = t >> 1, tb = t & 1;
            for (a = 0; a < nd; a++)
                for (b = 0; b < nd; b++)
                    for (c = 0; c < nd; c++, idx++) {
                        /* Cycle the variants through the shapes so every
                           combination of them meets small and large dims. */
                        float alpha = alphas[idx % 2], beta = betas[(idx / 2) % 3];
                        size_t pad = (size_t)(idx % 5 == 0 ? 7 : 0);
                        lmu_gemm_ws *w = (idx / 3) % 2 ? ws : NULL;
                        cases++;
                        fails += !run_case(fn, name, w, ta, tb, dims[a], dims[b], dims[c], alpha,
                                           beta, pad);
                    }
            for (a = 0; a < sizeof big / sizeof big[0]; a++, idx++) {
                float alpha = alphas[idx % 2], beta = betas[idx % 3];
                cases++;
                fails += !run_case(fn, name, idx % 2 ? ws : NULL, ta, tb, big[a][0], big[a][1],
                                   big[a][2], alpha, beta, (size_t)(a % 2 ? 5 : 0));
            }
        }
    }
    LT_CHECK(fails == 0, "%d of %d sgemm cases within bound (worst err/bound: best %.3f, generic %.3f)",
             cases - fails, cases, g_worst[0], g_worst[1]);
}

/* Same inputs -> same bits: twice in a row, with 1 and 2 threads, with a
   one-thread workspace, and with no workspace. Asserted because the design
   fixes each element's summation order independently of the split. */
static void test_determinism(lmu_gemm_ws *ws)
{
    static const size_t shapes[][4] = {
        /* M, N, K, trans code: M split, N split (small M), multi k-block */
        {1023, 204, 204, 1}, {29, 1023, 517, 2}, {204, 816, 1100, 0}, {300, 301, 302, 3}};
    size_t s;
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int ta = (int)(shapes[s][3] >> 1), tb = (int)(shapes[s][3] & 1);
        size_t lda = ta ? M : K, ldb = tb ? K : N;
        float *A = (float *)malloc(M * K * sizeof(float));
        float *B = (float *)malloc(K * N * sizeof(float));
        float *C[4];
        lmu_gemm_ws ws1;
        int i, same12, same13, same14;
        fill(A, M * K);
        fill(B, K * N);
        for (i = 0; i < 4; i++) {
            C[i] = (float *)malloc(M * N * sizeof(float));
            fill(C[i], M * N);
            if (i) memcpy(C[i], C[0], M * N * sizeof(float));
        }
        LT_CHECK(lmu_gemm_ws_create(&ws1, 1) == LMU_OK, "one-thread workspace");
        lmu_sgemm(ws, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C[0], N);
        lmu_sgemm(ws, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C[1], N);
        lmu_sgemm(&ws1, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C[2], N);
#ifdef _OPENMP
        {
            int saved = omp_get_max_threads();
            omp_set_num_threads(1);
            lmu_sgemm(NULL, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C[3], N);
            omp_set_num_threads(saved);
        }
#else
        lmu_sgemm(NULL, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C[3], N);
#endif
        same12 = memcmp(C[0], C[1], M * N * sizeof(float)) == 0;
        same13 = memcmp(C[0], C[2], M * N * sizeof(float)) == 0;
        same14 = memcmp(C[0], C[3], M * N * sizeof(float)) == 0;
        LT_CHECK(same12, "determinism M=%zu N=%zu K=%zu: same bits twice (%d threads)", M, N, K,
                 ws->nthreads);
        LT_CHECK(same13 && same14,
                 "determinism M=%zu N=%zu K=%zu: %d-thread bits == 1-thread bits (ws %d, omp %d)",
                 M, N, K, ws->nthreads, same13, same14);
        lmu_gemm_ws_destroy(&ws1);
        for (i = 0; i < 4; i++) free(C[i]);
        free(A);
        free(B);
    }
}

static void test_special(void)
{
    float A[12], B[12], C[9];
    int i, ok = 1;
    fill(A, 12);
    fill(B, 12);
    /* alpha == 0 and K == 0 read neither A nor B; beta == 0 clears NaN. */
    A[0] = NAN;
    for (i = 0; i < 9; i++) C[i] = NAN;
    LT_CHECK(lmu_sgemm(NULL, 0, 0, 3, 3, 4, 0.0f, A, 4, B, 3, 0.0f, C, 3) == LMU_OK, "alpha 0 ok");
    for (i = 0; i < 9; i++) ok &= C[i] == 0.0f;
    LT_CHECK(ok, "alpha 0, beta 0 over NaN gives zeros");
    for (i = 0; i < 9; i++) C[i] = 2.0f;
    LT_CHECK(lmu_sgemm(NULL, 0, 0, 3, 3, 0, 1.0f, A, 1, B, 3, 0.5f, C, 3) == LMU_OK, "K 0 ok");
    for (ok = 1, i = 0; i < 9; i++) ok &= C[i] == 1.0f;
    LT_CHECK(ok, "K 0 scales C by beta");
    LT_CHECK(lmu_sgemm(NULL, 0, 0, 0, 3, 4, 1.0f, A, 4, B, 3, 0.0f, C, 3) == LMU_OK, "M 0 ok");
}

static void test_bad_args(lmu_gemm_ws *ws)
{
    float A[64], B[64], C[64];
    unsigned char *raw;
    lmu_gemm_ws w;
    size_t bytes;
    memset(A, 0, sizeof A);
    memset(B, 0, sizeof B);
    memset(C, 0, sizeof C);
    LT_CHECK(lmu_sgemm(ws, 0, 0, 4, 4, 4, 1.0f, NULL, 4, B, 4, 0.0f, C, 4) == LMU_ERR_ARG, "NULL A");
    LT_CHECK(lmu_sgemm(ws, 0, 0, 4, 4, 4, 1.0f, A, 4, NULL, 4, 0.0f, C, 4) == LMU_ERR_ARG, "NULL B");
    LT_CHECK(lmu_sgemm(ws, 0, 0, 4, 4, 4, 1.0f, A, 4, B, 4, 0.0f, NULL, 4) == LMU_ERR_ARG, "NULL C");
    LT_CHECK(lmu_sgemm(ws, 0, 0, 4, 5, 3, 1.0f, A, 2, B, 5, 0.0f, C, 5) == LMU_ERR_ARG, "lda < K (N)");
    LT_CHECK(lmu_sgemm(ws, 1, 0, 4, 5, 3, 1.0f, A, 3, B, 5, 0.0f, C, 5) == LMU_ERR_ARG, "lda < M (T)");
    LT_CHECK(lmu_sgemm(ws, 0, 0, 4, 5, 3, 1.0f, A, 3, B, 4, 0.0f, C, 5) == LMU_ERR_ARG, "ldb < N (N)");
    LT_CHECK(lmu_sgemm(ws, 0, 1, 4, 5, 3, 1.0f, A, 3, B, 2, 0.0f, C, 5) == LMU_ERR_ARG, "ldb < K (T)");
    LT_CHECK(lmu_sgemm(ws, 0, 0, 4, 5, 3, 1.0f, A, 3, B, 5, 0.0f, C, 4) == LMU_ERR_ARG, "ldc < N");
    LT_CHECK(lmu_sgemm(ws, 0, 0, 4, 5, 3, 1.0f, A, 3, B, 5, 0.0f, C, 5) == LMU_OK, "valid call ok");
    LT_CHECK(lmu_sgemm(ws, 0, 0, (size_t)1 << 40, 5, 3, 1.0f, A, 3, B, 5, 0.0f, C, (size_t)1 << 40) ==
                 LMU_ERR_ARG, "M * ldc overflowing size_t");
    LT_CHECK(lmu_gemm_ws_create(NULL, 1) == LMU_ERR_ARG, "ws_create(NULL)");
    bytes = lmu_gemm_ws_bytes(1);
    raw = (unsigned char *)lmu__alloc_aligned(bytes + 64);
    LT_CHECK(lmu_gemm_ws_init(&w, 1, raw + 4, bytes) == LMU_ERR_ARG, "ws_init misaligned");
    LT_CHECK(lmu_gemm_ws_init(&w, 1, raw, bytes - 1) == LMU_ERR_ARG, "ws_init too small");
    LT_CHECK(lmu_gemm_ws_init(&w, 1, raw, bytes) == LMU_OK, "ws_init on caller memory");
    LT_CHECK(lmu_sgemm(&w, 1, 1, 4, 5, 3, 1.0f, A, 4, B, 3, 0.0f, C, 5) == LMU_OK,
             "call with caller-memory workspace");
    lmu_gemm_ws_destroy(&w); /* must not free caller memory */
    lmu__free_aligned(raw);
}

/* The reference is also the documented fallback: check it on one case. */
static void test_ref(void)
{
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, -1, 2, 0.5f, 1}, C[4] = {1, 1, 1, 1};
    /* op(A) = [[1,2,3],[4,5,6]], op(B) = B stored 3x2 */
    lmu__sgemm_ref(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 2.0f, C, 2);
    LT_CHECK(C[0] == 2.5f && C[1] == 9 && C[2] == 4 && C[3] == 18,
             "lmu__sgemm_ref on a hand-computed 2x2 (got %g %g %g %g)", (double)C[0],
             (double)C[1], (double)C[2], (double)C[3]);
}

/* nearest bf16 to x by exact comparison in double (ties to an even last
   bit), NaN quietened, as the definition lmu__gemm_round_bf16 must meet */
static float bf16_def(float x)
{
    uint32_t u, lo, hi;
    float fl, fh;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        u = (u | 0x00400000u) & 0xffff0000u;
        memcpy(&x, &u, 4);
        return x;
    }
    lo = u & 0xffff0000u, hi = lo + 0x10000u; /* same sign, next magnitude up */
    memcpy(&fl, &lo, 4);
    memcpy(&fh, &hi, 4);
    if ((lo & 0x7fffffffu) == 0x7f800000u) return fl; /* an infinity */
    {
        /* past the largest bf16 the next one up is 2^128: nearer rounds
           to the infinity */
        double dh = isinf(fh) ? ldexp(1.0, 128) - fabs((double)x) : fabs((double)fh - (double)x);
        double dl = fabs((double)x - (double)fl);
        if (dl < dh) return fl;
        if (dh < dl) return fh;
        return (lo & 0x10000u) ? fh : fl;
    }
}

static void test_bf16_round(void)
{
    static const uint32_t special[] = {
        0x00000000u, 0x80000000u, 0x3f800000u, 0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu,
        0x7f7fffffu, 0x7f7f7fffu, 0x7f7f8000u, 0xff7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u,
        0x7f800001u, 0xff812345u, 0x00000001u, 0x00008000u, 0x00018000u, 0x807fffffu, 0x00ff8000u};
    size_t n = sizeof special / sizeof special[0], i, bad = 0, total = 0;
    float x[64], y;
    for (i = 0; i < n + 200000; i++) {
        uint32_t u = i < n ? special[i] : (uint32_t)((lt_uniform() + 1.0) * 2147483648.0) ^
                                               (uint32_t)((lt_uniform() + 1.0) * 32768.0);
        float want, got;
        uint32_t a, b;
        memcpy(x, &u, 4);
        y = x[0];
        lmu__gemm_round_bf16(x, 1);
        got = x[0];
        want = bf16_def(y);
        memcpy(&a, &got, 4);
        memcpy(&b, &want, 4);
        if (a != b || lmu__bf16_round(y) != (uint16_t)(a >> 16)) {
            if (bad++ < 5) printf("  bf16 of 0x%08x: got 0x%08x, definition 0x%08x\n", u, a, b);
        }
        total++;
    }
    LT_CHECK(bad == 0, "bf16 rounding (nearest, ties to even, NaN quiet, overflow to inf) on %zu "
             "values (%zu special): %zu differ from the definition", total, n, bad);
}

/* One bf16 case: bits == fp32 product of pre-rounded operands; within the
   bound above; and not the fp32 product (the rounding is not skipped). */
static int bf16_case(gemm_fn fn, lmu_gemm_ws *ws, int ta, int tb, size_t M, size_t N, size_t K,
                     float alpha, float beta, double *worst, size_t *differ)
{
    size_t arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    size_t lda = acols, ldb = bcols, i, j, p;
    float *A = (float *)malloc(arows * lda * sizeof(float)), *B = (float *)malloc(brows * ldb * sizeof(float));
    float *Ar = (float *)malloc(arows * lda * sizeof(float)), *Br = (float *)malloc(brows * ldb * sizeof(float));
    float *C0 = (float *)malloc(M * N * sizeof(float)), *C = (float *)malloc(M * N * sizeof(float));
    float *Cr = (float *)malloc(M * N * sizeof(float)), *Cf = (float *)malloc(M * N * sizeof(float));
    const double u = 1.0 / 256.0;
    int ok = 1, saved = ws->bf16;
    fill(A, arows * lda);
    fill(B, brows * ldb);
    fill(C0, M * N);
    memcpy(Ar, A, arows * lda * sizeof(float));
    memcpy(Br, B, brows * ldb * sizeof(float));
    lmu__gemm_round_bf16(Ar, arows * lda);
    lmu__gemm_round_bf16(Br, brows * ldb);
    memcpy(C, C0, M * N * sizeof(float));
    memcpy(Cr, C0, M * N * sizeof(float));
    memcpy(Cf, C0, M * N * sizeof(float));
    ws->bf16 = 1;
    ok &= fn(ws, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, N) == LMU_OK;
    ws->bf16 = 0;
    ok &= fn(ws, ta, tb, M, N, K, alpha, Ar, lda, Br, ldb, beta, Cr, N) == LMU_OK;
    ok &= fn(ws, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cf, N) == LMU_OK;
    ws->bf16 = saved;
    ok &= memcmp(C, Cr, M * N * sizeof(float)) == 0;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = 0.0, mag = 0.0, bound, e;
            for (p = 0; p < K; p++) {
                double a = ta ? A[p * lda + i] : A[i * lda + p];
                double b = tb ? B[j * ldb + p] : B[p * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            s = alpha * s + (double)beta * C0[i * N + j];
            mag *= fabs((double)alpha);
            bound = (2 * u + u * u) * mag +
                    4.0 * FLT_EPSILON * (sqrt((double)K) + 2.0) *
                        (mag * (1 + 2 * u + u * u) + fabs((double)beta * C0[i * N + j])) + 1e-30;
            e = fabs((double)C[i * N + j] - s) / bound;
            if (!(e <= 1.0)) ok = 0;
            if (e > *worst) *worst = e;
            *differ += C[i * N + j] != Cf[i * N + j];
        }
    free(A), free(B), free(Ar), free(Br), free(C0), free(C), free(Cr), free(Cf);
    return ok;
}

static void test_bf16(lmu_gemm_ws *ws)
{
    static const size_t shapes[][3] = {{1, 1, 1},    {3, 17, 64},    {17, 3, 204},  {64, 204, 17},
                                       {204, 64, 3}, {1023, 17, 48}, {29, 517, 1023}, {97, 33, 600}};
    static const float ab[][2] = {{1.0f, 0.0f}, {-0.75f, 1.0f}, {0.5f, 0.5f}};
    size_t s, differ = 0, elems = 0;
    int path, t, fails = 0, cases = 0;
    double worst = 0.0;
    for (path = 0; path < 2; path++)
        for (t = 0; t < 4; t++)
            for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                gemm_fn fn = path == 0 ? lmu_sgemm : lmu__sgemm_generic;
                const float *v = ab[(s + (size_t)t) % 3];
                cases++;
                elems += shapes[s][0] * shapes[s][1];
                if (!bf16_case(fn, ws, t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2], v[0],
                               v[1], &worst, &differ)) {
                    fails++;
                    printf("  FAIL bf16 %s %c%c M=%zu N=%zu K=%zu\n", path ? "generic" : "best",
                           t >> 1 ? 'T' : 'N', t & 1 ? 'T' : 'N', shapes[s][0], shapes[s][1],
                           shapes[s][2]);
                }
            }
    LT_CHECK(fails == 0, "bf16 products, %d of %d cases (both kernels, 4 transposes): the fp32 "
             "product of the rounded operands bit for bit, within (2u+u^2) sum|ab| + the fp32 "
             "bound (worst err/bound %.3f)", cases - fails, cases, worst);
    LT_CHECK(differ > elems / 2, "bf16 products differ from fp32 ones in %zu of %zu elements "
             "(the rounding is applied)", differ, elems);
    {
        lmu_gemm_ws w;
        LT_CHECK(lmu_gemm_ws_create(&w, 1) == LMU_OK && w.bf16 == 0, "a new workspace is fp32");
        lmu_gemm_ws_destroy(&w);
    }
}

int main(int argc, char **argv)
{
    lmu_gemm_ws ws;
    lt_begin("test_gemm", argc, argv);
    lt_seed(12345);
    if (lmu_gemm_ws_create(&ws, 0) != LMU_OK) {
        LT_CHECK(0, "lmu_gemm_ws_create");
        return lt_end();
    }
    printf("  kernel %s, MR x NR = %d x %d, workspace %d threads, %.1f MiB\n",
           LMU__GEMM_SIMD_NAME, LMU__GEMM_MR, LMU__GEMM_NR, ws.nthreads,
           (double)lmu_gemm_ws_bytes(ws.nthreads) / 1048576.0);
    test_ref();
    test_special();
    test_bad_args(&ws);
    test_shapes(&ws);
    test_determinism(&ws);
    test_bf16_round();
    test_bf16(&ws);
    lmu_gemm_ws_destroy(&ws);
    return lt_end();
}
