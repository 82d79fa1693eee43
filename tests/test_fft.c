/* test_fft.c - lmu_fft.h against a naive double-precision DFT and direct sums.

   Build: make build/test_fft (or cc -std=c99 -O3 -I. tests/test_fft.c -lm).
   The portable path is checked by building the same file with
   -DLMU_FFT_NO_SIMD; with -fopenmp the batched calls also run with 1 and 2
   threads and must agree bit for bit.

   The reference DFT is exact O(n^2) for n <= 4096. For n >= 8192 it checks
   a subset of the output: DC, Nyquist and 64 random bins (random samples for
   the real inverse), each against the full double-precision sum, so the
   whole program stays within a few seconds. Round trips always compare every
   sample. */
#define LMU_FFT_IMPLEMENTATION
#include "lmu_fft.h"
#include "tests/lmu_test.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define TWO_PI 6.283185307179586476925286766559

/* ---- reference ---------------------------------------------------------- */

/* cos/sin(2 pi j / n) for j < n, so the DFT is a table lookup at (j*k mod n). */
static double *ref_cos, *ref_sin;
static size_t ref_n;

static void ref_table(size_t n)
{
    size_t j;
    free(ref_cos);
    free(ref_sin);
    ref_cos = (double *)malloc(n * sizeof(double));
    ref_sin = (double *)malloc(n * sizeof(double));
    for (j = 0; j < n; j++) {
        ref_cos[j] = cos(TWO_PI * (double)j / (double)n);
        ref_sin[j] = sin(TWO_PI * (double)j / (double)n);
    }
    ref_n = n;
}

/* One output bin of the complex DFT of x (interleaved, n points), sign -1
   forward, +1 inverse (unscaled). */
static void ref_bin(const float *x, size_t n, size_t k, int sign, double *re, double *im)
{
    size_t j, idx = 0;
    double sr = 0, si = 0;
    for (j = 0; j < n; j++) {
        double c = ref_cos[idx], s = sign * ref_sin[idx];
        double xr = x[2 * j], xi = x[2 * j + 1];
        sr += xr * c - xi * s;
        si += xr * s + xi * c;
        idx += k;
        if (idx >= n) idx -= n;
    }
    *re = sr;
    *im = si;
}

/* Sample j of the real inverse of a half spectrum X (n/2+1 bins). */
static double ref_c2r(const float *X, size_t n, size_t j)
{
    size_t k, idx, h = n / 2;
    double s;
    if (n == 1) return X[0];
    s = X[0] + ((j & 1) ? -X[n] : X[n]);
    idx = j % n;
    for (k = 1; k < h; k++) {
        s += 2.0 * (X[2 * k] * ref_cos[idx] - X[2 * k + 1] * ref_sin[idx]);
        idx += j;
        if (idx >= n) idx -= n;
    }
    return s;
}

/* Bins to check: all for n <= 4096, else DC, Nyquist and 64 random ones. */
static size_t pick_bins(size_t n, size_t limit, size_t *bins)
{
    size_t i, cnt = 0;
    if (n <= 4096) {
        for (i = 0; i < limit; i++) bins[cnt++] = i;
        return cnt;
    }
    bins[cnt++] = 0;
    bins[cnt++] = n / 2 < limit ? n / 2 : limit - 1;
    for (i = 0; i < 64; i++) bins[cnt++] = (size_t)((lt_uniform() * 0.5 + 0.5) * (double)limit) % limit;
    return cnt;
}

static double rel_rms_f(const float *a, const float *b, size_t len)
{
    double num = 0, den = 0;
    size_t i;
    for (i = 0; i < len; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void fill(float *x, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) x[i] = (float)lt_uniform();
}

static float *scratch_for(const lmu_fft_plan *p)
{
    return (float *)malloc(lmu_fft_scratch_floats(p) * sizeof(float));
}

/* ---- accuracy against the naive DFT ------------------------------------- */

static void test_accuracy(void)
{
    size_t n;
    size_t *bins = (size_t *)malloc(70000 * sizeof(size_t));
    double worst_c = 0, worst_ci = 0, worst_r = 0, worst_ri = 0, worst_rt = 0, worst_rrt = 0;
    for (n = 1; n <= 65536; n *= 2) {
        lmu_fft_plan *pc = NULL, *pr = NULL;
        float *x = (float *)malloc((2 * n + 2) * sizeof(float));
        float *X = (float *)malloc((2 * n + 2) * sizeof(float));
        float *y = (float *)malloc((2 * n + 2) * sizeof(float));
        float *sc, *sr;
        size_t nb, i;
        double num, den, e;
        LT_CHECK(lmu_fft_plan_create(&pc, n, LMU_FFT_COMPLEX) == LMU_FFT_OK, "complex plan n=%zu", n);
        LT_CHECK(lmu_fft_plan_create(&pr, n, LMU_FFT_REAL) == LMU_FFT_OK, "real plan n=%zu", n);
        if (!pc || !pr) { free(x); free(X); free(y); continue; }
        sc = scratch_for(pc);
        sr = scratch_for(pr);
        ref_table(n);

        /* complex forward */
        fill(x, 2 * n);
        lmu_fft_forward(pc, x, X, sc);
        nb = pick_bins(n, n, bins);
        num = den = 0;
        for (i = 0; i < nb; i++) {
            double rr, ri, k = (double)bins[i];
            ref_bin(x, n, bins[i], -1, &rr, &ri);
            num += pow(X[2 * bins[i]] - rr, 2) + pow(X[2 * bins[i] + 1] - ri, 2);
            den += rr * rr + ri * ri;
            (void)k;
        }
        e = sqrt(num / den);
        if (e > worst_c) worst_c = e;
        LT_CHECK(e <= 2e-6, "complex forward n=%zu rel rms %.3g", n, e);

        /* complex inverse against the naive inverse of a random spectrum */
        fill(X, 2 * n);
        lmu_fft_inverse(pc, X, y, sc);
        num = den = 0;
        for (i = 0; i < nb; i++) {
            double rr, ri;
            ref_bin(X, n, bins[i], +1, &rr, &ri);
            num += pow(y[2 * bins[i]] - rr, 2) + pow(y[2 * bins[i] + 1] - ri, 2);
            den += rr * rr + ri * ri;
        }
        e = sqrt(num / den);
        if (e > worst_ci) worst_ci = e;
        LT_CHECK(e <= 2e-6, "complex inverse n=%zu rel rms %.3g", n, e);

        /* complex round trip, every sample */
        lmu_fft_forward(pc, x, X, sc);
        lmu_fft_inverse(pc, X, y, sc);
        for (i = 0; i < 2 * n; i++) y[i] /= (float)n;
        e = rel_rms_f(y, x, 2 * n);
        if (e > worst_rt) worst_rt = e;
        LT_CHECK(e <= 1e-6, "complex round trip n=%zu rel rms %.3g", n, e);

        /* real forward: bins 0..n/2 of the complex DFT of (x_j, 0) */
        fill(x, n);
        lmu_fft_forward(pr, x, X, sr);
        {
            float *xc = (float *)malloc(2 * n * sizeof(float));
            for (i = 0; i < n; i++) { xc[2 * i] = x[i]; xc[2 * i + 1] = 0; }
            nb = pick_bins(n, n / 2 + 1, bins);
            num = den = 0;
            for (i = 0; i < nb; i++) {
                double rr, ri;
                ref_bin(xc, n, bins[i], -1, &rr, &ri);
                num += pow(X[2 * bins[i]] - rr, 2) + pow(X[2 * bins[i] + 1] - ri, 2);
                den += rr * rr + ri * ri;
            }
            free(xc);
        }
        e = sqrt(num / den);
        if (e > worst_r) worst_r = e;
        LT_CHECK(e <= 2e-6, "real forward n=%zu rel rms %.3g", n, e);
        LT_CHECK(X[1] == 0.0f && (n == 1 || X[n + 1] == 0.0f),
                 "real forward n=%zu: DC and Nyquist imaginary parts are zero", n);

        /* real inverse of a random half spectrum (Im of DC/Nyquist ignored) */
        fill(X, n + 2);
        lmu_fft_inverse(pr, X, y, sr);
        nb = pick_bins(n, n, bins);
        num = den = 0;
        for (i = 0; i < nb; i++) {
            double r = ref_c2r(X, n, bins[i]);
            num += pow(y[bins[i]] - r, 2);
            den += r * r;
        }
        e = sqrt(num / den);
        if (e > worst_ri) worst_ri = e;
        LT_CHECK(e <= 2e-6, "real inverse n=%zu rel rms %.3g", n, e);

        /* real round trip */
        lmu_fft_forward(pr, x, X, sr);
        lmu_fft_inverse(pr, X, y, sr);
        for (i = 0; i < n; i++) y[i] /= (float)n;
        e = rel_rms_f(y, x, n);
        if (e > worst_rrt) worst_rrt = e;
        LT_CHECK(e <= 1e-6, "real round trip n=%zu rel rms %.3g", n, e);

        free(sc); free(sr); free(x); free(X); free(y);
        lmu_fft_plan_destroy(pc);
        lmu_fft_plan_destroy(pr);
    }
    printf("  worst rel rms over n=1..65536: complex fwd %.3g inv %.3g, real fwd %.3g inv %.3g,"
           " round trip complex %.3g real %.3g\n",
           worst_c, worst_ci, worst_r, worst_ri, worst_rt, worst_rrt);
    free(bins);
}

/* ---- algebraic properties ----------------------------------------------- */

static void test_properties(void)
{
    size_t n;
    for (n = 1; n <= 4096; n *= 4) {
        lmu_fft_plan *pc = NULL, *pr = NULL;
        float *x = (float *)malloc((2 * n + 2) * sizeof(float));
        float *z = (float *)malloc((2 * n + 2) * sizeof(float));
        float *w = (float *)malloc((2 * n + 2) * sizeof(float));
        float *X = (float *)malloc((2 * n + 2) * sizeof(float));
        float *Z = (float *)malloc((2 * n + 2) * sizeof(float));
        float *W = (float *)malloc((2 * n + 2) * sizeof(float));
        float *sc, *sr;
        size_t i, k0;
        double a = 0.75, b = -1.25, ex, eX, e;
        int ok;
        lmu_fft_plan_create(&pc, n, LMU_FFT_COMPLEX);
        lmu_fft_plan_create(&pr, n, LMU_FFT_REAL);
        sc = scratch_for(pc);
        sr = scratch_for(pr);

        /* linearity: F(a x + b z) = a F(x) + b F(z) */
        fill(x, 2 * n);
        fill(z, 2 * n);
        for (i = 0; i < 2 * n; i++) w[i] = (float)(a * x[i] + b * z[i]);
        lmu_fft_forward(pc, x, X, sc);
        lmu_fft_forward(pc, z, Z, sc);
        lmu_fft_forward(pc, w, W, sc);
        for (i = 0; i < 2 * n; i++) Z[i] = (float)(a * X[i] + b * Z[i]);
        e = rel_rms_f(W, Z, 2 * n);
        LT_CHECK(e <= 1e-6, "linearity complex n=%zu rel rms %.3g", n, e);

        /* Parseval (unscaled forward): n sum |x|^2 = sum |X|^2 */
        ex = eX = 0;
        for (i = 0; i < 2 * n; i++) { ex += (double)x[i] * x[i]; eX += (double)X[i] * X[i]; }
        e = fabs(eX - (double)n * ex) / ((double)n * ex);
        LT_CHECK(e <= 1e-6, "Parseval complex n=%zu rel err %.3g", n, e);
        lmu_fft_forward(pr, x, X, sr);
        ex = 0;
        for (i = 0; i < n; i++) ex += (double)x[i] * x[i];
        eX = (double)X[0] * X[0];
        if (n > 1) eX += (double)X[n] * X[n];
        for (i = 1; i < n / 2; i++) eX += 2.0 * ((double)X[2 * i] * X[2 * i] + (double)X[2 * i + 1] * X[2 * i + 1]);
        e = fabs(eX - (double)n * ex) / ((double)n * ex);
        LT_CHECK(e <= 1e-6, "Parseval real n=%zu rel err %.3g", n, e);

        /* delta at 0 -> all ones, exactly */
        memset(x, 0, (2 * n + 2) * sizeof(float));
        x[0] = 1.0f;
        lmu_fft_forward(pc, x, X, sc);
        ok = 1;
        for (i = 0; i < n; i++) ok &= X[2 * i] == 1.0f && X[2 * i + 1] == 0.0f;
        LT_CHECK(ok, "complex delta -> all ones n=%zu", n);
        lmu_fft_forward(pr, x, X, sr);
        ok = 1;
        for (i = 0; i <= n / 2; i++) ok &= X[2 * i] == 1.0f && X[2 * i + 1] == 0.0f;
        LT_CHECK(ok, "real delta -> all ones n=%zu", n);

        /* a sinusoid lands in its bin */
        if (n >= 4) {
            double leak = 0;
            k0 = n >= 16 ? n / 4 - 1 : 1;
            for (i = 0; i < n; i++) {
                double ph = TWO_PI * (double)((i * k0) % n) / (double)n;
                x[2 * i] = (float)cos(ph);
                x[2 * i + 1] = (float)sin(ph);
            }
            lmu_fft_forward(pc, x, X, sc);
            for (i = 0; i < n; i++)
                if (i != k0) leak = fmax(leak, hypot(X[2 * i], X[2 * i + 1]));
            LT_CHECK(fabs(X[2 * k0] - (double)n) <= 1e-5 * n && fabs(X[2 * k0 + 1]) <= 1e-5 * n &&
                         leak <= 1e-5 * n,
                     "complex exp(2 pi i %zu j/n) -> n at bin %zu, n=%zu (got %g%+gi, leak %g)",
                     k0, k0, n, X[2 * k0], X[2 * k0 + 1], leak);
            for (i = 0; i < n; i++) z[i] = (float)cos(TWO_PI * (double)((i * k0) % n) / (double)n);
            lmu_fft_forward(pr, z, X, sr);
            leak = 0;
            for (i = 0; i <= n / 2; i++)
                if (i != k0) leak = fmax(leak, hypot(X[2 * i], X[2 * i + 1]));
            LT_CHECK(fabs(X[2 * k0] - (double)n / 2) <= 1e-5 * n && fabs(X[2 * k0 + 1]) <= 1e-5 * n &&
                         leak <= 1e-5 * n,
                     "real cos(2 pi %zu j/n) -> n/2 at bin %zu, n=%zu (got %g%+gi, leak %g)",
                     k0, k0, n, X[2 * k0], X[2 * k0 + 1], leak);
        }

        /* real transform = complex transform of the same real data */
        fill(z, n);
        for (i = 0; i < n; i++) { x[2 * i] = z[i]; x[2 * i + 1] = 0.0f; }
        lmu_fft_forward(pc, x, X, sc);
        lmu_fft_forward(pr, z, W, sr);
        e = rel_rms_f(W, X, n + 2 > 2 * n ? 2 * n : n + 2);
        LT_CHECK(e <= 1e-6, "real forward = complex forward of real data n=%zu rel rms %.3g", n, e);

        /* in place equals out of place */
        fill(x, 2 * n);
        lmu_fft_forward(pc, x, X, sc);
        memcpy(w, x, 2 * n * sizeof(float));
        lmu_fft_forward(pc, w, w, sc);
        LT_CHECK(memcmp(w, X, 2 * n * sizeof(float)) == 0, "complex forward in place n=%zu", n);
        lmu_fft_inverse(pc, x, X, sc);
        memcpy(w, x, 2 * n * sizeof(float));
        lmu_fft_inverse(pc, w, w, sc);
        LT_CHECK(memcmp(w, X, 2 * n * sizeof(float)) == 0, "complex inverse in place n=%zu", n);
        lmu_fft_forward(pr, x, X, sr);
        memcpy(w, x, n * sizeof(float));
        lmu_fft_forward(pr, w, w, sr);
        LT_CHECK(memcmp(w, X, (n + 2) * sizeof(float)) == 0, "real forward in place n=%zu", n);
        lmu_fft_inverse(pr, x, X, sr);
        memcpy(w, x, (n + 2) * sizeof(float));
        lmu_fft_inverse(pr, w, w, sr);
        LT_CHECK(memcmp(w, X, n * sizeof(float)) == 0, "real inverse in place n=%zu", n);

        free(sc); free(sr); free(x); free(z); free(w); free(X); free(Z); free(W);
        lmu_fft_plan_destroy(pc);
        lmu_fft_plan_destroy(pr);
    }
}

/* ---- batched and strided ------------------------------------------------ */

static void batch_case(size_t n, int kind, int inv, size_t batch)
{
    lmu_fft_plan *p = NULL;
    size_t ilen, olen, is, os, b, per, i;
    float *in, *out, *ref, *sc, *big;
    int ok = 1, nt;
    lmu_fft_plan_create(&p, n, kind);
    if (kind == LMU_FFT_COMPLEX) ilen = olen = 2 * n;
    else if (inv) { ilen = n + 2; olen = n; }
    else { ilen = n; olen = n + 2; }
    is = ilen + 5;  /* odd strides: signals are not aligned and have gaps */
    os = olen + 3;
    in = (float *)malloc(batch * is * sizeof(float));
    out = (float *)malloc(batch * os * sizeof(float));
    ref = (float *)malloc(batch * os * sizeof(float));
    fill(in, batch * is);
    per = lmu_fft_scratch_floats(p);
    sc = (float *)malloc(per * sizeof(float));
    for (i = 0; i < batch * os; i++) ref[i] = -7.0f;
    for (b = 0; b < batch; b++)
        (inv ? lmu_fft_inverse : lmu_fft_forward)(p, in + b * is, ref + b * os, sc);
    big = (float *)malloc(lmu_fft_batch_scratch_floats(p, 4) * sizeof(float));
    for (nt = 1; nt <= 4; nt++) {
        int r;
#ifdef _OPENMP
        omp_set_num_threads(nt);
#endif
        for (i = 0; i < batch * os; i++) out[i] = -7.0f;
        r = (inv ? lmu_fft_inverse_batch : lmu_fft_forward_batch)(p, batch, in, is, out, os, big,
                                                                   lmu_fft_batch_scratch_floats(p, 4));
        ok &= r == LMU_FFT_OK;
        ok &= memcmp(out, ref, batch * os * sizeof(float)) == 0;
#ifndef _OPENMP
        break;
#endif
    }
    LT_CHECK(ok, "batched %s %s n=%zu batch=%zu = one by one, bit exact, gaps untouched, 1..4 threads",
             kind == LMU_FFT_COMPLEX ? "complex" : "real", inv ? "inverse" : "forward", n, batch);
    /* scratch for one thread only still works (runs serially) */
    for (i = 0; i < batch * os; i++) out[i] = -7.0f;
    LT_CHECK((inv ? lmu_fft_inverse_batch : lmu_fft_forward_batch)(p, batch, in, is, out, os, sc, per) ==
                     LMU_FFT_OK &&
                 memcmp(out, ref, batch * os * sizeof(float)) == 0,
             "batched with one thread's scratch n=%zu", n);
    LT_CHECK(lmu_fft_forward_batch(p, batch, in, is, out, os, sc, per - 1) == LMU_FFT_ERR_SCRATCH,
             "batched with too little scratch -> LMU_FFT_ERR_SCRATCH");
    /* determinism: a second run is identical */
    lmu_fft_forward_batch(p, batch, in, is, ref, os, big, lmu_fft_batch_scratch_floats(p, 4));
    lmu_fft_forward_batch(p, batch, in, is, out, os, big, lmu_fft_batch_scratch_floats(p, 4));
    LT_CHECK(memcmp(out, ref, batch * os * sizeof(float)) == 0, "batched runs are deterministic n=%zu", n);
    free(in); free(out); free(ref); free(sc); free(big);
    lmu_fft_plan_destroy(p);
#ifdef _OPENMP
    omp_set_num_threads(omp_get_num_procs());
#endif
}

static void test_batch(void)
{
    batch_case(2048, LMU_FFT_REAL, 0, 37);
    batch_case(2048, LMU_FFT_REAL, 1, 37);
    batch_case(256, LMU_FFT_COMPLEX, 0, 9);
    batch_case(512, LMU_FFT_COMPLEX, 1, 9);
    batch_case(2, LMU_FFT_REAL, 0, 5);
    batch_case(1, LMU_FFT_COMPLEX, 1, 3);
}

/* ---- scratch bounds ------------------------------------------------------ */

/* Every call stays inside lmu_fft_scratch_floats(plan) floats whatever the
   alignment of the base, and the result does not depend on that alignment. */
static void test_scratch_bounds(void)
{
    static const size_t ns[] = { 1, 2, 16, 64, 128, 2048, 4096 };
    size_t t;
    int kind;
    for (t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        for (kind = 0; kind < 2; kind++) {
            size_t n = ns[t], per, off, i, half = n > 1 ? n / 2 : 1;
            lmu_fft_plan *p = NULL;
            float *buf, *x, *X, *X0, *y0, *y;
            int ok = 1;
            lmu_fft_plan_create(&p, n, kind);
            per = lmu_fft_scratch_floats(p);
            buf = (float *)malloc((per + 64) * sizeof(float));
            x = (float *)malloc((2 * n + 2) * sizeof(float));
            X = (float *)malloc((2 * n + 2) * sizeof(float));
            X0 = (float *)malloc((2 * n + 2) * sizeof(float));
            y = (float *)malloc((2 * n + 2) * sizeof(float));
            y0 = (float *)malloc((2 * n + 2) * sizeof(float));
            fill(x, 2 * n + 2);
            for (off = 0; off < 16; off++) {
                float *sc = buf + off;
                for (i = 0; i < per + 64 - off; i++) sc[i] = 1234.5f;
                lmu_fft_forward(p, x, X, sc);
                lmu_fft_inverse(p, X, y, sc);
                if (kind == LMU_FFT_REAL && n >= 2) {
                    lmu_fft_causal_conv(p, x, x + half, half, y + n, sc);
                    lmu_fft_causal_corr(p, x, x + half, half, y + n, sc);
                    lmu_fft_conv_many(p, X, 1, X, 0, half, y + n, half, sc);
                }
                for (i = per; i < per + 64 - off; i++) ok &= sc[i] == 1234.5f;
                if (off == 0) {
                    memcpy(X0, X, (2 * n + 2) * sizeof(float));
                    memcpy(y0, y, (2 * n + 2) * sizeof(float));
                } else {
                    ok &= memcmp(X0, X, (kind == LMU_FFT_REAL ? n + 2 : 2 * n) * sizeof(float)) == 0;
                    ok &= memcmp(y0, y, (kind == LMU_FFT_REAL ? n : 2 * n) * sizeof(float)) == 0;
                }
            }
            LT_CHECK(ok, "%s n=%zu: scratch_floats (%zu) is enough at every alignment, same results",
                     kind == LMU_FFT_REAL ? "real" : "complex", n, per);
            free(buf); free(x); free(X); free(X0); free(y); free(y0);
            lmu_fft_plan_destroy(p);
        }
    }
}

/* ---- plans in caller memory --------------------------------------------- */

static void test_plan_init(void)
{
    size_t bytes = 0, n = 1024;
    lmu_fft_plan *a = NULL, *b = NULL;
    void *mem;
    float x[1024], X1[1026], X2[1026], *sc;
    LT_CHECK(lmu_fft_plan_bytes(n, LMU_FFT_REAL, &bytes) == LMU_FFT_OK && bytes > 0,
             "plan_bytes(1024, real) = %zu", bytes);
    mem = malloc(bytes);
    LT_CHECK(lmu_fft_plan_init(&b, n, LMU_FFT_REAL, mem, bytes - 1) == LMU_FFT_ERR_SCRATCH && !b,
             "plan_init with short memory -> LMU_FFT_ERR_SCRATCH");
    LT_CHECK(lmu_fft_plan_init(&b, n, LMU_FFT_REAL, mem, bytes) == LMU_FFT_OK && b,
             "plan_init in caller memory");
    lmu_fft_plan_create(&a, n, LMU_FFT_REAL);
    sc = scratch_for(a);
    fill(x, n);
    lmu_fft_forward(a, x, X1, sc);
    lmu_fft_forward(b, x, X2, sc);
    LT_CHECK(memcmp(X1, X2, sizeof X1) == 0, "plan in caller memory = allocated plan");
    LT_CHECK(lmu_fft_plan_n(b) == n && lmu_fft_plan_kind(b) == LMU_FFT_REAL, "plan_n / plan_kind");
    lmu_fft_plan_destroy(b); /* not owned: must not free mem */
    lmu_fft_plan_destroy(a);
    free(mem);
    free(sc);
}

/* ---- convolution helpers ------------------------------------------------ */

static void direct_conv(const float *u, const float *h, size_t n, double *y)
{
    size_t t, j;
    for (t = 0; t < n; t++) {
        double s = 0;
        for (j = 0; j <= t; j++) s += (double)h[t - j] * u[j];
        y[t] = s;
    }
}

static void direct_corr(const float *d, const float *h, size_t n, double *g)
{
    size_t t, j;
    for (j = 0; j < n; j++) {
        double s = 0;
        for (t = j; t < n; t++) s += (double)h[t - j] * d[t];
        g[j] = s;
    }
}

/* max |a - ref| / max |ref|: "within 1e-5 relative" */
static double rel_max(const float *a, const double *ref, size_t n)
{
    double m = 0, r = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        m = fmax(m, fabs(a[i] - ref[i]));
        r = fmax(r, fabs(ref[i]));
    }
    return r > 0 ? m / r : m;
}

static void test_conv(void)
{
    static const size_t ns[] = { 1, 2, 3, 7, 64, 1000, 2048 };
    size_t t;
    for (t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t n = ns[t], N = lmu_fft_conv_len(n), i, k, nk = 3, nb;
        lmu_fft_plan *p = NULL;
        float *u = (float *)malloc(n * sizeof(float)), *h = (float *)malloc(nk * n * sizeof(float));
        float *y = (float *)malloc(nk * n * sizeof(float)), *y2 = (float *)malloc(n * sizeof(float));
        float *U, *H, *S, *sc;
        double *ref = (double *)malloc(n * sizeof(double)), *acc = (double *)malloc(n * sizeof(double));
        double e;
        int ok;
        LT_CHECK(N >= 2 * n && (N & (N - 1)) == 0, "conv_len(%zu) = %zu", n, N);
        lmu_fft_plan_create(&p, N, LMU_FFT_REAL);
        sc = scratch_for(p);
        nb = N / 2 + 1;
        U = (float *)malloc(2 * nb * sizeof(float));
        S = (float *)malloc(2 * nb * sizeof(float));
        H = (float *)malloc(nk * 2 * nb * sizeof(float));
        fill(u, n);
        fill(h, nk * n);

        LT_CHECK(lmu_fft_causal_conv(p, u, h, n, y, sc) == LMU_FFT_OK, "causal_conv n=%zu ok", n);
        direct_conv(u, h, n, ref);
        e = rel_max(y, ref, n);
        LT_CHECK(e <= 1e-5, "causal_conv n=%zu vs direct sum: rel err %.3g", n, e);

        /* causality: perturbing u[j] leaves y[0..j-1] unchanged */
        if (n >= 2) {
            size_t j = n / 2;
            float keep = u[j];
            u[j] += 10.0f;
            lmu_fft_causal_conv(p, u, h, n, y2, sc);
            u[j] = keep;
            direct_conv(u, h, n, ref);
            ok = 1;
            /* FFT rounding is global, so "unchanged" means within rounding of
               the unperturbed result, while y[j] itself must move by ~10 h[0] */
            for (i = 0; i < j; i++) ok &= fabs(y2[i] - ref[i]) <= 1e-5 * (1.0 + fabs(ref[i])) * 10;
            LT_CHECK(ok && fabs((y2[j] - y[j]) - 10.0f * h[0]) <= 1e-3,
                     "causal_conv n=%zu: output before t=%zu ignores a change at input %zu", n, j, j);
        }

        LT_CHECK(lmu_fft_causal_corr(p, u, h, n, y, sc) == LMU_FFT_OK, "causal_corr n=%zu ok", n);
        direct_corr(u, h, n, ref);
        e = rel_max(y, ref, n);
        LT_CHECK(e <= 1e-5, "causal_corr n=%zu vs direct sum: rel err %.3g", n, e);

        /* anti-causality of corr: perturbing d[j] leaves g[j+1..] unchanged */
        if (n >= 2) {
            size_t j = n / 2;
            float keep = u[j];
            u[j] -= 10.0f;
            lmu_fft_causal_corr(p, u, h, n, y2, sc);
            direct_corr(u, h, n, ref);
            u[j] = keep;
            ok = 1;
            for (i = j + 1; i < n; i++) ok &= fabs(y2[i] - ref[i]) <= 1e-4 * (1.0 + fabs(ref[i]));
            LT_CHECK(ok, "causal_corr n=%zu: g after %zu ignores a change at d[%zu]", n, j, j);
        }

        /* the model's form: one signal spectrum, nk kernel spectra */
        LT_CHECK(lmu_fft_conv_spectrum(p, u, n, U, sc) == LMU_FFT_OK, "conv_spectrum n=%zu", n);
        for (k = 0; k < nk; k++) lmu_fft_conv_spectrum(p, h + k * n, n, H + k * 2 * nb, sc);
        LT_CHECK(lmu_fft_conv_many(p, U, nk, H, 2 * nb, n, y, n, sc) == LMU_FFT_OK, "conv_many n=%zu", n);
        e = 0;
        for (k = 0; k < nk; k++) {
            direct_conv(u, h + k * n, n, ref);
            e = fmax(e, rel_max(y + k * n, ref, n));
        }
        LT_CHECK(e <= 1e-5, "conv_many n=%zu, %zu kernels vs direct sums: rel err %.3g", n, nk, e);

        /* backward form: du = sum_k corr(dy_k, h_k), one inverse for all */
        {
            float *D = (float *)malloc(2 * nb * sizeof(float));
            float *dy = (float *)malloc(nk * n * sizeof(float));
            fill(dy, nk * n);
            memset(S, 0, 2 * nb * sizeof(float));
            for (i = 0; i < n; i++) acc[i] = 0;
            for (k = 0; k < nk; k++) {
                lmu_fft_conv_spectrum(p, dy + k * n, n, D, sc);
                lmu_fft_spectrum_mac(nb, S, D, H + k * 2 * nb, 1);
                direct_corr(dy + k * n, h + k * n, n, ref);
                for (i = 0; i < n; i++) acc[i] += ref[i];
            }
            LT_CHECK(lmu_fft_conv_finish(p, S, n, y, sc) == LMU_FFT_OK, "conv_finish n=%zu", n);
            e = rel_max(y, acc, n);
            LT_CHECK(e <= 1e-5, "sum of %zu correlations via spectrum_mac(conj) n=%zu: rel err %.3g",
                     nk, n, e);
            /* and the non-conjugate mac is a sum of convolutions */
            memset(S, 0, 2 * nb * sizeof(float));
            for (i = 0; i < n; i++) acc[i] = 0;
            for (k = 0; k < nk; k++) {
                lmu_fft_conv_spectrum(p, dy + k * n, n, D, sc);
                lmu_fft_spectrum_mac(nb, S, D, H + k * 2 * nb, 0);
                direct_conv(dy + k * n, h + k * n, n, ref);
                for (i = 0; i < n; i++) acc[i] += ref[i];
            }
            lmu_fft_conv_finish(p, S, n, y, sc);
            e = rel_max(y, acc, n);
            LT_CHECK(e <= 1e-5, "sum of %zu convolutions via spectrum_mac n=%zu: rel err %.3g", nk, n, e);
            free(D);
            free(dy);
        }

        /* a plan longer than needed works too */
        if (n == 64) {
            lmu_fft_plan *big = NULL;
            float *sb;
            lmu_fft_plan_create(&big, 4 * N, LMU_FFT_REAL);
            sb = scratch_for(big);
            lmu_fft_causal_conv(big, u, h, n, y, sb);
            direct_conv(u, h, n, ref);
            e = rel_max(y, ref, n);
            LT_CHECK(e <= 1e-5, "causal_conv with a 4x longer plan: rel err %.3g", e);
            LT_CHECK(lmu_fft_causal_conv(p, u, h, N, y, sc) == LMU_FFT_ERR_SIZE,
                     "causal_conv with a plan shorter than 2n -> LMU_FFT_ERR_SIZE");
            free(sb);
            lmu_fft_plan_destroy(big);
        }
        free(u); free(h); free(y); free(y2); free(U); free(S); free(H); free(sc); free(ref); free(acc);
        lmu_fft_plan_destroy(p);
    }
}

/* ---- errors -------------------------------------------------------------- */

static void test_errors(void)
{
    lmu_fft_plan *p = (lmu_fft_plan *)&p, *pc = NULL;
    float buf[64], sc[4096];
    size_t bytes = 1;
    LT_CHECK(lmu_fft_plan_create(&p, 0, LMU_FFT_COMPLEX) == LMU_FFT_ERR_SIZE && p == NULL, "n=0 -> ERR_SIZE, plan NULL");
    LT_CHECK(lmu_fft_plan_create(&p, 3, LMU_FFT_REAL) == LMU_FFT_ERR_SIZE && p == NULL, "n=3 -> ERR_SIZE");
    LT_CHECK(lmu_fft_plan_create(&p, 12, LMU_FFT_COMPLEX) == LMU_FFT_ERR_SIZE && p == NULL, "n=12 -> ERR_SIZE");
    LT_CHECK(lmu_fft_plan_create(&p, (size_t)-1, LMU_FFT_COMPLEX) == LMU_FFT_ERR_SIZE, "n=SIZE_MAX -> ERR_SIZE");
    LT_CHECK(lmu_fft_plan_create(&p, 8, 7) == LMU_FFT_ERR_KIND, "bad kind -> ERR_KIND");
    LT_CHECK(lmu_fft_plan_create(NULL, 8, LMU_FFT_REAL) == LMU_FFT_ERR_NULL, "NULL out -> ERR_NULL");
    LT_CHECK(lmu_fft_plan_bytes(12, LMU_FFT_REAL, &bytes) == LMU_FFT_ERR_SIZE && bytes == 0, "plan_bytes(12)");
    LT_CHECK(lmu_fft_plan_init(&p, 8, LMU_FFT_REAL, NULL, 100) == LMU_FFT_ERR_NULL, "plan_init NULL mem");
    LT_CHECK(lmu_fft_forward(NULL, buf, buf, sc) == LMU_FFT_ERR_NULL, "forward NULL plan -> ERR_NULL");
    LT_CHECK(lmu_fft_inverse(NULL, buf, buf, sc) == LMU_FFT_ERR_NULL, "inverse NULL plan -> ERR_NULL");
    lmu_fft_plan_create(&pc, 16, LMU_FFT_COMPLEX);
    LT_CHECK(lmu_fft_forward(pc, NULL, buf, sc) == LMU_FFT_ERR_NULL, "forward NULL in -> ERR_NULL");
    LT_CHECK(lmu_fft_forward(pc, buf, NULL, sc) == LMU_FFT_ERR_NULL, "forward NULL out -> ERR_NULL");
    LT_CHECK(lmu_fft_inverse(pc, buf, buf, NULL) == LMU_FFT_ERR_NULL, "inverse NULL scratch -> ERR_NULL");
    LT_CHECK(lmu_fft_forward_batch(NULL, 2, buf, 32, buf, 32, sc, 4096) == LMU_FFT_ERR_NULL, "batch NULL plan");
    LT_CHECK(lmu_fft_forward_batch(pc, 2, NULL, 32, buf, 32, sc, 4096) == LMU_FFT_ERR_NULL, "batch NULL in");
    LT_CHECK(lmu_fft_causal_conv(pc, buf, buf, 8, buf, sc) == LMU_FFT_ERR_KIND, "conv on a complex plan -> ERR_KIND");
    LT_CHECK(lmu_fft_causal_conv(NULL, buf, buf, 8, buf, sc) == LMU_FFT_ERR_NULL, "conv NULL plan");
    lmu_fft_plan_destroy(pc);
    pc = NULL;
    lmu_fft_plan_create(&pc, 16, LMU_FFT_REAL);
    LT_CHECK(lmu_fft_causal_conv(pc, buf, buf, 0, buf, sc) == LMU_FFT_ERR_SIZE, "conv n=0 -> ERR_SIZE");
    LT_CHECK(lmu_fft_causal_corr(pc, buf, NULL, 8, buf, sc) == LMU_FFT_ERR_NULL, "corr NULL kernel");
    LT_CHECK(lmu_fft_conv_many(pc, NULL, 1, buf, 0, 8, buf, 8, sc) == LMU_FFT_ERR_NULL, "conv_many NULL U");
    LT_CHECK(lmu_fft_conv_finish(pc, buf, 9, buf, sc) == LMU_FFT_ERR_SIZE, "finish n=9 on a 16 plan");
    lmu_fft_plan_destroy(pc);
    lmu_fft_plan_destroy(NULL);
    LT_CHECK(lmu_fft_scratch_floats(NULL) == 0, "scratch_floats(NULL) = 0");
    LT_CHECK(lmu_fft_next_pow2(0) == 1 && lmu_fft_next_pow2(1) == 1 && lmu_fft_next_pow2(5) == 8 &&
                 lmu_fft_next_pow2(1024) == 1024 && lmu_fft_next_pow2(((size_t)-1) / 2 + 2) == 0,
             "next_pow2");
    LT_CHECK(lmu_fft_conv_len(0) == 0 && lmu_fft_conv_len(1) == 2 && lmu_fft_conv_len(1000) == 2048,
             "conv_len");
    LT_CHECK(strcmp(lmu_fft_strerror(LMU_FFT_OK), "ok") == 0 &&
                 strcmp(lmu_fft_strerror(-3), "unknown") == 0 &&
                 strcmp(lmu_fft_strerror(LMU_FFT_RESULT_COUNT), "unknown") == 0 &&
                 strlen(lmu_fft_strerror(LMU_FFT_ERR_SIZE)) > 0,
             "strerror");
}

int main(int argc, char **argv)
{
    lt_begin("test_fft", argc, argv);
    lt_seed(12345);
    test_errors();
    test_accuracy();
    test_properties();
    test_batch();
    test_plan_init();
    test_scratch_bounds();
    test_conv();
    free(ref_cos);
    free(ref_sin);
    (void)ref_n;
    return lt_end();
}
