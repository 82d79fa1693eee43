/* test_lti.c - the LTI memory (lmu.h >>lmu, MODEL.md section 1).

   Abar, Bbar against a Taylor-series expm in long double computed here
   (independent of the library's Pade code), the ZOH identity
   A Bbar = (Abar - I) B, the steady state for a constant input (e_0), and
   recurrence == convolution: double recurrence vs direct convolution with H
   vs the float FFT path (lmu_fft_conv_many over Hspec) vs the float step.

   Build: make build/test_lti   (or cc -std=c99 -O3 -I. tests/test_lti.c -lm) */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/lmu_test.h"

#ifdef _OPENMP
#define T_NOW() omp_get_wtime()
#else
#include <time.h>
#define T_NOW() ((double)clock() / CLOCKS_PER_SEC)
#endif

typedef long double ld;

/* LT_CHECK as an expression, so a failed precondition can end a test. */
#include <stdarg.h>
static int tcheck(int cond, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lt__check(cond, __FILE__, line, msg);
}
#define TCHECK(cond, ...) tcheck((cond) ? 1 : 0, __LINE__, __VA_ARGS__)

/* ---- independent reference: the block matrix and a Taylor expm ---- */

/* [[A, B], [0, 0]] of MODEL.md section 1, (q+1) x (q+1), long double. */
static void ref_block(int q, double theta, ld *M)
{
    int i, j, n1 = q + 1;
    for (i = 0; i < n1; i++)
        for (j = 0; j < n1; j++) {
            ld v = 0;
            if (i < q) {
                ld s = (ld)(2 * i + 1) / (ld)theta;
                if (j == q) v = (i % 2 == 0) ? s : -s;       /* B[i] */
                else if (i < j) v = -s;                        /* A, i < j */
                else v = ((i - j + 1) % 2 == 0) ? s : -s;      /* (-1)^(i-j+1) */
            }
            M[i * n1 + j] = v;
        }
}

static void ld_matmul(int n, const ld *X, const ld *Y, ld *Z)
{
    int i, j, k;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            ld s = 0;
            for (k = 0; k < n; k++) s += X[i * n + k] * Y[k * n + j];
            Z[i * n + j] = s;
        }
}

/* E = sum_{k<terms} (M/2^s)^k / k!, then squared s times. s = 0 is the
   plain series; otherwise s is chosen so ||M/2^s||_1 <= 1/4. */
static void ref_expm(int n, const ld *M, ld *E, int terms, int scale)
{
    size_t nn = (size_t)n * n;
    ld *X = (ld *)malloc(nn * sizeof(ld)), *T = (ld *)malloc(nn * sizeof(ld));
    ld *W = (ld *)malloc(nn * sizeof(ld)), norm = 0;
    int i, j, k, s = 0;
    for (j = 0; j < n; j++) {
        ld c = 0;
        for (i = 0; i < n; i++) c += fabsl(M[i * n + j]);
        if (c > norm) norm = c;
    }
    if (scale)
        while (norm > 0.25L) { norm /= 2; s++; }
    for (i = 0; i < (int)nn; i++) X[i] = ldexpl(M[i], -s);
    /* T = current term, E = sum. */
    for (i = 0; i < (int)nn; i++) E[i] = T[i] = 0;
    for (i = 0; i < n; i++) E[i * n + i] = T[i * n + i] = 1;
    for (k = 1; k < terms; k++) {
        ld_matmul(n, T, X, W);
        for (i = 0; i < (int)nn; i++) {
            T[i] = W[i] / k;
            E[i] += T[i];
        }
    }
    for (k = 0; k < s; k++) {
        ld_matmul(n, E, E, W);
        memcpy(E, W, nn * sizeof(ld));
    }
    free(X); free(T); free(W);
}

/* max |got - ref| / max |ref| over Abar (q x q) and Bbar (q). */
static void cmp_ab(int q, const double *Ab, const double *Bb, const ld *E, double *eA, double *eB)
{
    int i, j, n1 = q + 1;
    ld dA = 0, mA = 0, dB = 0, mB = 0;
    for (i = 0; i < q; i++) {
        for (j = 0; j < q; j++) {
            ld r = E[i * n1 + j], dd = fabsl((ld)Ab[i * q + j] - r);
            if (dd > dA) dA = dd;
            if (fabsl(r) > mA) mA = fabsl(r);
        }
        {
            ld r = E[i * n1 + q], dd = fabsl((ld)Bb[i] - r);
            if (dd > dB) dB = dd;
            if (fabsl(r) > mB) mB = fabsl(r);
        }
    }
    *eA = (double)(dA / mA);
    *eB = (double)(dB / mB);
}

static void test_discretize(void)
{
    int q;
    double *Ab = (double *)malloc(32 * 32 * sizeof(double)), *Bb = (double *)malloc(32 * sizeof(double));
    ld *M = (ld *)malloc(33 * 33 * sizeof(ld)), *E = (ld *)malloc(33 * 33 * sizeof(ld));
    double eA, eB, worstA = 0, worstB = 0;

    /* q = 4, theta = 10: ||M||_1 = 1.6, a 60-term plain series converges. */
    TCHECK(lmu_lti_discretize(4, 10.0, Ab, Bb) == LMU_OK, "discretize(4, 10)");
    ref_block(4, 10.0, M);
    ref_expm(5, M, E, 60, 0);
    cmp_ab(4, Ab, Bb, E, &eA, &eB);
    TCHECK(eA < 1e-13 && eB < 1e-13, "q=4 theta=10 vs 60-term Taylor (long double): Abar %.2e Bbar %.2e (tol 1e-13)", eA, eB);

    /* q = 1..8, random theta in [2, 60]: Taylor with its own scaling. */
    lt_seed(11);
    for (q = 1; q <= 8; q++) {
        double theta = 31.0 + 29.0 * lt_uniform();
        if (lmu_lti_discretize(q, theta, Ab, Bb) != LMU_OK) {
            TCHECK(0, "discretize(%d, %g)", q, theta);
            continue;
        }
        ref_block(q, theta, M);
        ref_expm(q + 1, M, E, 30, 1);
        cmp_ab(q, Ab, Bb, E, &eA, &eB);
        if (eA > worstA) worstA = eA;
        if (eB > worstB) worstB = eB;
        TCHECK(eA < 1e-13 && eB < 1e-13, "q=%d theta=%.3f vs scaled Taylor: Abar %.2e Bbar %.2e (tol 1e-13)", q, theta, eA, eB);
    }
    printf("  q=1..8 random theta: worst Abar %.2e, Bbar %.2e\n", worstA, worstB);

    /* Small theta, q = 1..8: ||M||_1 up to 64/0.5, several squarings. */
    for (q = 1; q <= 8; q++) {
        double theta = 0.5 + 0.25 * (lt_uniform() + 1.0);
        TCHECK(lmu_lti_discretize(q, theta, Ab, Bb) == LMU_OK, "discretize(%d, %g)", q, theta);
        ref_block(q, theta, M);
        ref_expm(q + 1, M, E, 30, 1);
        cmp_ab(q, Ab, Bb, E, &eA, &eB);
        TCHECK(eA < 1e-12 && eB < 1e-12, "q=%d theta=%.3f (large norm) vs scaled Taylor: Abar %.2e Bbar %.2e (tol 1e-12)", q, theta, eA, eB);
    }

    /* q = 32, theta = 1: ||M||_1 = 1024, 8 squarings in the library. */
    TCHECK(lmu_lti_discretize(32, 1.0, Ab, Bb) == LMU_OK, "discretize(32, 1)");
    ref_block(32, 1.0, M);
    ref_expm(33, M, E, 30, 1);
    cmp_ab(32, Ab, Bb, E, &eA, &eB);
    TCHECK(eA < 2e-12 && eB < 2e-12, "q=32 theta=1 vs scaled Taylor (long double): Abar %.2e Bbar %.2e (tol 2e-12)", eA, eB);

    /* ZOH identity A Bbar = (Abar - I) B, residual relative to the terms. */
    {
        ld res = 0, scale = 0;
        int i, j;
        for (i = 0; i < 32; i++) {
            ld l = 0, r = 0, sl = 0, sr = 0;
            for (j = 0; j < 32; j++) {
                ld a = M[i * 33 + j], ab = (ld)Ab[i * 32 + j] - (i == j ? 1 : 0);
                l += a * (ld)Bb[j];
                r += ab * M[j * 33 + 32];
                sl += fabsl(a * (ld)Bb[j]);
                sr += fabsl(ab * M[j * 33 + 32]);
            }
            if (fabsl(l - r) > res) res = fabsl(l - r);
            if (sl > scale) scale = sl;
            if (sr > scale) scale = sr;
        }
        TCHECK((double)(res / scale) < 1e-13, "q=32 theta=1: |A Bbar - (Abar - I) B| / sum|terms| = %.2e (tol 1e-13)", (double)(res / scale));
    }

    /* expm(M) expm(-M) = I through the private expm (q = 8, theta = 4, so
       expm(-M) stays moderate). */
    {
        int n1 = 9, i;
        double *Md = (double *)malloc(2 * 81 * sizeof(double)), *E1 = (double *)malloc(3 * 81 * sizeof(double));
        double *E2 = E1 + 81, *P = E2 + 81, err = 0, big = 0;
        ref_block(8, 4.0, M);
        for (i = 0; i < 81; i++) { Md[i] = (double)M[i]; Md[81 + i] = -(double)M[i]; }
        TCHECK(lmu__lti_expm(n1, Md, E1) == LMU_OK && lmu__lti_expm(n1, Md + 81, E2) == LMU_OK, "expm(+-M)");
        lmu__lti_matmul(n1, E1, E2, P);
        for (i = 0; i < 81; i++) {
            double dd = fabs(P[i] - (i % 10 == 0 ? 1.0 : 0.0));
            if (dd > err) err = dd;
            if (fabs(E2[i]) > big) big = fabs(E2[i]);
        }
        TCHECK(err < 1e-12 * big, "expm(M) expm(-M) = I (q=8 theta=4): max err %.2e (tol 1e-12 * max|expm(-M)| = %.2e)", err, 1e-12 * big);
        free(Md); free(E1);
    }

    free(Ab); free(Bb); free(M); free(E);
}

/* ---- constant input: the memory converges to e_0 ---- */

static void test_steady_state(void)
{
    const int q = 6, n = 4000;
    const double theta = 10.0;
    lmu_lti *L;
    double *m = (double *)calloc(q, sizeof(double)), *m2 = (double *)calloc(q, sizeof(double));
    double one = 1.0, err = 0, errH = 0;
    int t, i;
    if (!TCHECK(lmu_lti_create(&L, q, theta, n) == LMU_OK, "create(6, 10, 4000)")) return;
    for (t = 0; t < n; t++) {
        double *tmp;
        lmu_lti_step_d(L, 1, t ? m : NULL, &one, m2);
        tmp = m; m = m2; m2 = tmp;
    }
    for (i = 0; i < q; i++) {
        double dd = fabs(m[i] - (i == 0 ? 1.0 : 0.0));
        if (dd > err) err = dd;
    }
    TCHECK(err < 1e-12, "ones through the double recurrence, %d steps: max |m - e_0| = %.2e (tol 1e-12)", n, err);
    for (i = 0; i < q; i++) {
        double s = 0;
        for (t = 0; t < n; t++) s += L->H[(size_t)i * n + t];
        if (fabs(s - (i == 0 ? 1.0 : 0.0)) > errH) errH = fabs(s - (i == 0 ? 1.0 : 0.0));
    }
    /* H is float: each of the n terms carries a rounding of 2^-24 relative,
       so the sum is good to about 1e-6 here. */
    TCHECK(errH < 2e-6, "ones as the sum of H's %d columns (float H): max |sum - e_0| = %.2e (tol 2e-6)", n, errH);
    lmu_lti_free(L);
    free(m); free(m2);
}

/* ---- recurrence == convolution ---- */

static double rel_rms(size_t count, const double *got, const double *ref)
{
    double num = 0, den = 0;
    size_t k;
    for (k = 0; k < count; k++) {
        num += (got[k] - ref[k]) * (got[k] - ref[k]);
        den += ref[k] * ref[k];
    }
    return sqrt(num / den);
}

static void test_rec_conv(int q, double theta, int n, int d, double tol_fft, double tol_step)
{
    lmu_lti *L;
    size_t qd = (size_t)q * d, t, j;
    double *xd, *rec, *cur, *prev, *got, *ref, e_direct, e_fft, e_step;
    float *xf, *U, *Y, *scr, *mf, *mf2;
    int c, i;
    size_t cnt = 0;

    if (!TCHECK(lmu_lti_create(&L, q, theta, n) == LMU_OK, "create(%d, %g, %d)", q, theta, n)) return;
    TCHECK(L->nfft == (int)lmu_fft_conv_len((size_t)n) && L->nfft >= 2 * n && L->nbins == L->nfft / 2 + 1,
             "nfft %d for n %d", L->nfft, n);
    xd = (double *)malloc((size_t)n * d * sizeof(double));
    xf = (float *)malloc((size_t)n * d * sizeof(float));
    rec = (double *)calloc((size_t)n * qd, sizeof(double)); /* (n, q, d) */
    got = (double *)calloc((size_t)n * qd, sizeof(double));
    ref = (double *)calloc((size_t)n * qd, sizeof(double));
    U = (float *)malloc(((size_t)L->nfft + 2) * sizeof(float));
    Y = (float *)malloc((size_t)q * n * sizeof(float));
    scr = (float *)malloc(lmu_fft_scratch_floats(L->plan) * sizeof(float));
    mf = (float *)malloc(qd * sizeof(float));
    mf2 = (float *)malloc(qd * sizeof(float));

    /* Inputs exactly representable in float, so both paths see the same x. */
    lt_seed((unsigned long long)(q * 1000 + n));
    for (t = 0; t < (size_t)n * d; t++) {
        xf[t] = (float)lt_uniform();
        xd[t] = xf[t];
    }

    /* Double recurrence: rec[t] = m_t, (q, d). */
    for (t = 0; t < (size_t)n; t++) {
        prev = t ? rec + (t - 1) * qd : NULL;
        cur = rec + t * qd;
        lmu_lti_step_d(L, d, prev, xd + t * d, cur);
    }

    /* Direct convolution with the float H, accumulated in double, at a
       sample of positions (all of them for small n). */
    {
        size_t stride = n <= 256 ? 1 : 37;
        for (t = 0; t < (size_t)n; t = (t + stride < (size_t)n || t == (size_t)n - 1) ? t + stride : (size_t)n - 1)
            for (i = 0; i < q; i++)
                for (c = 0; c < d; c++) {
                    double s = 0;
                    const float *h = L->H + (size_t)i * n;
                    for (j = 0; j <= t; j++) s += (double)h[t - j] * xd[j * d + c];
                    got[cnt] = s;
                    ref[cnt] = rec[t * qd + (size_t)i * d + c];
                    cnt++;
                }
        e_direct = rel_rms(cnt, got, ref);
    }
    /* The float H alone costs ~2^-24 relative per term. */
    TCHECK(e_direct < 1e-6, "(q %d, theta %g, n %d) double recurrence vs direct convolution with H: rel RMS %.2e (tol 1e-6, %zu values)", q, theta, n, e_direct, cnt);

    /* FFT path: U = spectrum of channel c, y_i = conv with Hspec row i. */
    for (c = 0; c < d; c++) {
        for (t = 0; t < (size_t)n; t++) Y[t] = xf[t * d + c]; /* borrow Y's first row */
        TCHECK(lmu_fft_conv_spectrum(L->plan, Y, (size_t)n, U, scr) == LMU_FFT_OK, "conv_spectrum");
        TCHECK(lmu_fft_conv_many(L->plan, U, (size_t)q, L->Hspec, L->spec_stride, (size_t)n, Y, (size_t)n, scr) == LMU_FFT_OK, "conv_many");
        for (t = 0; t < (size_t)n; t++)
            for (i = 0; i < q; i++) got[t * qd + (size_t)i * d + c] = Y[(size_t)i * n + t];
    }
    e_fft = rel_rms((size_t)n * qd, got, rec);
    TCHECK(e_fft < tol_fft, "(q %d, theta %g, n %d) double recurrence vs float FFT convolution (Hspec): rel RMS %.2e (tol %.0e)", q, theta, n, e_fft, tol_fft);

    /* Float step, n steps from zero. */
    for (t = 0; t < (size_t)n; t++) {
        float *tmp;
        lmu_lti_step(L, d, t ? mf : NULL, xf + t * d, mf2);
        tmp = mf; mf = mf2; mf2 = tmp;
        for (j = 0; j < qd; j++) got[t * qd + j] = mf[j];
    }
    e_step = rel_rms((size_t)n * qd, got, rec);
    TCHECK(e_step < tol_step, "(q %d, theta %g, n %d, d %d) double recurrence vs float step: rel RMS %.2e (tol %.0e)", q, theta, n, d, e_step, tol_step);

    lmu_lti_free(L);
    free(xd); free(xf); free(rec); free(got); free(ref); free(U); free(Y); free(scr); free(mf); free(mf2);
}

/* The float step must agree with the double step on one step from a random
   state, for tile edges in both directions. */
static void test_step_shapes(void)
{
    static const int qs[3] = {1, 7, 33}, ds[4] = {1, 31, 32, 70};
    int a, b;
    double worst = 0;
    for (a = 0; a < 3; a++) {
        lmu_lti *L;
        if (!TCHECK(lmu_lti_create(&L, qs[a], 5.0, 8) == LMU_OK, "create(%d, 5, 8)", qs[a])) continue;
        for (b = 0; b < 4; b++) {
            int q = qs[a], d = ds[b];
            size_t qd = (size_t)q * d, k;
            float *mf = (float *)malloc(qd * sizeof(float)), *of = (float *)malloc(qd * sizeof(float));
            float *xf = (float *)malloc((size_t)d * sizeof(float));
            double *md = (double *)malloc(qd * sizeof(double)), *od = (double *)malloc(qd * sizeof(double));
            double *xd = (double *)malloc((size_t)d * sizeof(double)), num = 0, den = 0;
            for (k = 0; k < qd; k++) { mf[k] = (float)lt_uniform(); md[k] = mf[k]; }
            for (k = 0; k < (size_t)d; k++) { xf[k] = (float)lt_uniform(); xd[k] = xf[k]; }
            lmu_lti_step(L, d, mf, xf, of);
            lmu_lti_step_d(L, d, md, xd, od);
            for (k = 0; k < qd; k++) { num += (of[k] - od[k]) * (of[k] - od[k]); den += od[k] * od[k]; }
            if (sqrt(num / den) > worst) worst = sqrt(num / den);
            TCHECK(sqrt(num / den) < 1e-6, "one float step q=%d d=%d: rel RMS %.2e (tol 1e-6)", q, d, sqrt(num / den));
            free(mf); free(of); free(xf); free(md); free(od); free(xd);
        }
        lmu_lti_free(L);
    }
    printf("  one float step, q in {1,7,33} x d in {1,31,32,70}: worst rel RMS %.2e\n", worst);
}

static void test_args(void)
{
    lmu_lti *L = (lmu_lti *)&L; /* must be reset to NULL on failure */
    double Ab[4], Bb[2], inf = HUGE_VAL, nan_ = 0.0;
    float m[8] = {0}, x[4] = {0};
    double md[8] = {0}, xd[4] = {0};
    nan_ = nan_ / nan_;

    TCHECK(lmu_lti_create(NULL, 4, 10.0, 8) == LMU_ERR_ARG, "create(NULL out)");
    TCHECK(lmu_lti_create(&L, 0, 10.0, 8) == LMU_ERR_ARG && L == NULL, "create q=0");
    TCHECK(lmu_lti_create(&L, -3, 10.0, 8) == LMU_ERR_ARG, "create q<0");
    TCHECK(lmu_lti_create(&L, 4, 0.0, 8) == LMU_ERR_ARG, "create theta=0");
    TCHECK(lmu_lti_create(&L, 4, -1.0, 8) == LMU_ERR_ARG, "create theta<0");
    TCHECK(lmu_lti_create(&L, 4, nan_, 8) == LMU_ERR_ARG, "create theta=NaN");
    TCHECK(lmu_lti_create(&L, 4, inf, 8) == LMU_ERR_ARG, "create theta=inf");
    TCHECK(lmu_lti_create(&L, 4, 10.0, 0) == LMU_ERR_ARG, "create n=0");
    TCHECK(lmu_lti_create(&L, 4, 10.0, -5) == LMU_ERR_ARG, "create n<0");
    TCHECK(lmu_lti_create(&L, LMU_LTI_MAX_Q + 1, 10.0, 8) == LMU_ERR_RANGE, "create q > max");
    TCHECK(lmu_lti_create(&L, 4, 10.0, LMU_LTI_MAX_N + 1) == LMU_ERR_RANGE, "create n > max");
    TCHECK(lmu_lti_create(&L, 2048, 10.0, 1 << 20) == LMU_ERR_RANGE, "create q*n > max elems");
    TCHECK(lmu_lti_create(&L, 4, 1e-300, 8) == LMU_ERR_RANGE && L == NULL, "create theta=1e-300 (expm out of range)");
    TCHECK(lmu_lti_discretize(0, 1.0, Ab, Bb) == LMU_ERR_ARG, "discretize q=0");
    TCHECK(lmu_lti_discretize(2, 1.0, NULL, Bb) == LMU_ERR_ARG, "discretize NULL");
    TCHECK(lmu_lti_discretize(2, -2.0, Ab, Bb) == LMU_ERR_ARG, "discretize theta<0");

    if (TCHECK(lmu_lti_create(&L, 2, 3.0, 5) == LMU_OK, "create(2, 3, 5)")) {
        TCHECK(lmu_lti_matches(L, 2, 3.0, 5) == 1, "matches same key");
        TCHECK(!lmu_lti_matches(L, 3, 3.0, 5) && !lmu_lti_matches(L, 2, 3.5, 5) &&
                 !lmu_lti_matches(L, 2, 3.0, 6) && !lmu_lti_matches(NULL, 2, 3.0, 5), "matches other keys");
        TCHECK(lmu_lti_step(NULL, 4, m, x, m) == LMU_ERR_ARG, "step NULL lti");
        TCHECK(lmu_lti_step(L, 0, NULL, x, m) == LMU_ERR_ARG, "step d=0");
        TCHECK(lmu_lti_step(L, 4, NULL, NULL, m) == LMU_ERR_ARG, "step NULL x");
        TCHECK(lmu_lti_step(L, 4, NULL, x, NULL) == LMU_ERR_ARG, "step NULL out");
        TCHECK(lmu_lti_step(L, 4, m, x, m) == LMU_ERR_ARG, "step in place");
        TCHECK(lmu_lti_step(L, 2, m, x, m + 2) == LMU_ERR_ARG, "step partial overlap");
        TCHECK(lmu_lti_step(L, 2, m, x, m + 4) == LMU_OK, "step adjacent buffers");
        TCHECK(lmu_lti_step_d(L, 4, md, xd, md) == LMU_ERR_ARG, "step_d in place");
        TCHECK(lmu_lti_step_d(L, -1, NULL, xd, md) == LMU_ERR_ARG, "step_d d<0");
        TCHECK(lmu_lti_step_d(L, 4, NULL, xd, md) == LMU_OK, "step_d from zero");
        lmu_lti_free(L);
    }
    lmu_lti_free(NULL);
}

static void bench_step(void)
{
    const int q = 220, d = 204, reps = 50;
    lmu_lti *L;
    float *m, *m2, *x;
    double t0, t1;
    int r;
    size_t k;
    if (!TCHECK(lmu_lti_create(&L, q, 350.0, 1024) == LMU_OK, "create(220, 350, 1024)")) return;
    m = (float *)malloc((size_t)q * d * sizeof(float));
    m2 = (float *)malloc((size_t)q * d * sizeof(float));
    x = (float *)malloc((size_t)d * sizeof(float));
    for (k = 0; k < (size_t)q * d; k++) m[k] = (float)lt_uniform();
    for (k = 0; k < (size_t)d; k++) x[k] = (float)lt_uniform();
    lmu_lti_step(L, d, m, x, m2);
    t0 = T_NOW();
    for (r = 0; r < reps; r++) {
        float *tmp;
        lmu_lti_step(L, d, m, x, m2);
        tmp = m; m = m2; m2 = tmp;
    }
    t1 = T_NOW();
    printf("  float step q=%d d=%d: %.1f us/step, %.1f GFLOP/s (%d threads)\n", q, d,
           1e6 * (t1 - t0) / reps, 2.0 * q * q * d * reps / (t1 - t0) * 1e-9, lmu__thread_count());
    TCHECK(m[0] == m[0], "bench state finite");
    lmu_lti_free(L);
    free(m); free(m2); free(x);
}

int main(int argc, char **argv)
{
    double t0 = T_NOW();
    lt_begin("test_lti", argc, argv);
    test_discretize();
    test_steady_state();
    test_step_shapes();
    /* Measured (gcc 12, AVX-512): FFT 1.3e-7 / 1.7e-7 / 1.9e-7, float step
       1.0e-7 / 1.6e-6 / 4.6e-6 (its error grows with n and q). */
    test_rec_conv(4, 10.0, 64, 3, 2e-6, 2e-6);
    test_rec_conv(50, 350.0, 1024, 37, 2e-6, 2e-5);
    test_rec_conv(256, 1024.0, 2048, 2, 2e-6, 5e-5);
    test_args();
    bench_step();
    printf("  (%.2f s)\n", T_NOW() - t0);
    return lt_end();
}
