/* bench_fft.c - lmu_fft.h against FFTW (when installed): ns per transform.

   Build and run: make build/bench_fft && ./build/bench_fft
   (make links -DLMU_HAVE_FFTW -lfftw3f when Debian's libfftw3-dev is there.)
   Options: -q  quick (fewer trials).

   Every number is the minimum over trials of the mean over a timed loop, and
   lmu and FFTW alternate trial by trial so machine noise hits both. Single
   thread throughout, except the last row, which runs lmu's batched call with
   OpenMP next to FFTW's plan_many (FFTW single-threaded: libfftw3f has no
   threads here), for information. Not a test: it never fails on speed. */
#define _POSIX_C_SOURCE 200112L /* clock_gettime, posix_memalign */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define LMU_FFT_IMPLEMENTATION
#include "lmu_fft.h"
#ifdef LMU_HAVE_FFTW
#include <fftw3.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int trials = 15;
static double budget_ns = 2e6; /* per timed loop */

typedef void (*run_fn)(void *ctx);

/* Calls per loop so that one loop takes about budget_ns. */
static long calibrate(run_fn f, void *ctx)
{
    long reps = 1;
    for (;;) {
        double t0 = now_ns(), dt;
        long i;
        for (i = 0; i < reps; i++) f(ctx);
        dt = now_ns() - t0;
        if (dt > budget_ns / 4 || reps > (1L << 26)) return (long)((double)reps * budget_ns / (dt > 1 ? dt : 1)) + 1;
        reps *= 4;
    }
}

static double time_loop(run_fn f, void *ctx, long reps)
{
    double t0 = now_ns();
    long i;
    for (i = 0; i < reps; i++) f(ctx);
    return (now_ns() - t0) / (double)reps;
}

/* Min-of-trials of a and b, alternating. */
static void race(run_fn fa, void *ca, run_fn fb, void *cb, double *ta, double *tb)
{
    long ra = calibrate(fa, ca), rb = fb ? calibrate(fb, cb) : 0;
    int t;
    *ta = *tb = 1e300;
    for (t = 0; t < trials; t++) {
        double x = time_loop(fa, ca, ra);
        if (x < *ta) *ta = x;
        if (fb) {
            x = time_loop(fb, cb, rb);
            if (x < *tb) *tb = x;
        }
    }
}

/* ---- lmu runners -------------------------------------------------------- */

typedef struct {
    lmu_fft_plan *plan;
    float *in, *out, *scratch;
    size_t batch, is, os, scratch_floats;
} lmu_ctx;

static void lmu_fwd(void *c)
{
    lmu_ctx *x = (lmu_ctx *)c;
    lmu_fft_forward(x->plan, x->in, x->out, x->scratch);
}

/* forward then inverse of the batch (the model's step), one thread */
static void lmu_batch_fi(void *c)
{
    lmu_ctx *x = (lmu_ctx *)c;
    size_t b;
    for (b = 0; b < x->batch; b++)
        lmu_fft_forward(x->plan, x->in + b * x->is, x->out + b * x->os, x->scratch);
    for (b = 0; b < x->batch; b++)
        lmu_fft_inverse(x->plan, x->out + b * x->os, x->in + b * x->is, x->scratch);
}

static void lmu_batch_fi_omp(void *c)
{
    lmu_ctx *x = (lmu_ctx *)c;
    lmu_fft_forward_batch(x->plan, x->batch, x->in, x->is, x->out, x->os, x->scratch, x->scratch_floats);
    lmu_fft_inverse_batch(x->plan, x->batch, x->out, x->os, x->in, x->is, x->scratch, x->scratch_floats);
}

#ifdef LMU_HAVE_FFTW
typedef struct {
    fftwf_plan f, i;
} fftw_ctx;

static void fftw_fwd(void *c) { fftwf_execute(((fftw_ctx *)c)->f); }
static void fftw_fi(void *c)
{
    fftwf_execute(((fftw_ctx *)c)->f);
    fftwf_execute(((fftw_ctx *)c)->i);
}
#endif

static void fill(float *x, size_t len)
{
    size_t i;
    unsigned s = 12345u;
    for (i = 0; i < len; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

/* 64-byte aligned, as fftwf_malloc gives FFTW. */
static float *alloc_f(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float) + 64) != 0) {
        fprintf(stderr, "bench_fft: out of memory\n");
        exit(1);
    }
    return (float *)p;
}

static void row(size_t n, int kind)
{
    lmu_ctx c;
    double tl, tf = 0, dummy;
    size_t len = 2 * n + 2;
    memset(&c, 0, sizeof c);
    if (lmu_fft_plan_create(&c.plan, n, kind) != LMU_FFT_OK) return;
    c.in = alloc_f(len);
    c.out = alloc_f(len);
    c.scratch = alloc_f(lmu_fft_scratch_floats(c.plan));
    fill(c.in, len);
#ifdef LMU_HAVE_FFTW
    {
        fftw_ctx f;
        float *fi = (float *)fftwf_malloc(len * sizeof(float));
        float *fo = (float *)fftwf_malloc(len * sizeof(float));
        if (kind == LMU_FFT_COMPLEX)
            f.f = fftwf_plan_dft_1d((int)n, (fftwf_complex *)fi, (fftwf_complex *)fo, FFTW_FORWARD, FFTW_MEASURE);
        else
            f.f = fftwf_plan_dft_r2c_1d((int)n, fi, (fftwf_complex *)fo, FFTW_MEASURE);
        fill(fi, len);
        race(lmu_fwd, &c, fftw_fwd, &f, &tl, &tf);
        fftwf_destroy_plan(f.f);
        fftwf_free(fi);
        fftwf_free(fo);
    }
#else
    race(lmu_fwd, &c, NULL, NULL, &tl, &dummy);
#endif
    (void)dummy;
    if (tf > 0)
        printf("%6zu  %-7s  %10.1f  %10.1f  %6.2f\n", n, kind == LMU_FFT_COMPLEX ? "complex" : "real", tl, tf, tl / tf);
    else
        printf("%6zu  %-7s  %10.1f  %10s  %6s\n", n, kind == LMU_FFT_COMPLEX ? "complex" : "real", tl, "-", "-");
    fflush(stdout);
    free(c.in);
    free(c.out);
    free(c.scratch);
    lmu_fft_plan_destroy(c.plan);
}

/* The model's case: d channels of an n-point real forward, then inverse. */
static void batch_rows(size_t n, size_t d)
{
    lmu_ctx c;
    double tl, tf = 0, to, dummy = 0;
    size_t is = n + 2, os = n + 2; /* in place-friendly layout, as the model keeps it */
    memset(&c, 0, sizeof c);
    lmu_fft_plan_create(&c.plan, n, LMU_FFT_REAL);
    c.batch = d;
    c.is = is;
    c.os = os;
    c.in = alloc_f(d * is);
    c.out = alloc_f(d * os);
    c.scratch_floats = lmu_fft_batch_scratch_floats(c.plan, 0);
    c.scratch = alloc_f(c.scratch_floats);
    fill(c.in, d * is);
#ifdef LMU_HAVE_FFTW
    {
        fftw_ctx f;
        int nn = (int)n;
        float *fi = (float *)fftwf_malloc(d * is * sizeof(float));
        float *fo = (float *)fftwf_malloc(d * os * sizeof(float));
        f.f = fftwf_plan_many_dft_r2c(1, &nn, (int)d, fi, NULL, 1, (int)is, (fftwf_complex *)fo, NULL, 1,
                                      (int)(os / 2), FFTW_MEASURE);
        f.i = fftwf_plan_many_dft_c2r(1, &nn, (int)d, (fftwf_complex *)fo, NULL, 1, (int)(os / 2), fi, NULL,
                                      1, (int)is, FFTW_MEASURE | FFTW_DESTROY_INPUT);
        fill(fi, d * is);
        race(lmu_batch_fi, &c, fftw_fi, &f, &tl, &tf);
        fftwf_destroy_plan(f.f);
        fftwf_destroy_plan(f.i);
        fftwf_free(fi);
        fftwf_free(fo);
    }
#else
    race(lmu_batch_fi, &c, NULL, NULL, &tl, &dummy);
#endif
    race(lmu_batch_fi_omp, &c, NULL, NULL, &to, &dummy);
    printf("\nbatched: %zu channels x %zu-point real forward then inverse (the model's step)\n", d, n);
    printf("  lmu  1 thread      %10.1f us  (%.1f ns per transform)\n", tl / 1e3, tl / (double)(2 * d));
    if (tf > 0) {
        printf("  FFTW plan_many     %10.1f us  (%.1f ns per transform)\n", tf / 1e3, tf / (double)(2 * d));
        printf("  ratio lmu/FFTW     %10.2f\n", tl / tf);
    }
#ifdef _OPENMP
    printf("  lmu batched call, %d OpenMP threads: %.1f us\n", omp_get_max_threads(), to / 1e3);
#else
    printf("  lmu batched call (no OpenMP): %.1f us\n", to / 1e3);
#endif
    free(c.in);
    free(c.out);
    free(c.scratch);
    lmu_fft_plan_destroy(c.plan);
}

int main(int argc, char **argv)
{
    size_t n;
    int i;
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "-q") == 0) { trials = 5; budget_ns = 5e5; }
#ifdef LMU_HAVE_FFTW
    printf("lmu_fft vs FFTW %s (FFTW_MEASURE, single thread); ns per transform, min of %d trials\n",
           fftwf_version, trials);
#else
    printf("lmu_fft (FFTW not installed: no comparison); ns per transform, min of %d trials\n", trials);
#endif
    printf("%6s  %-7s  %10s  %10s  %6s\n", "n", "kind", "lmu ns", "FFTW ns", "ratio");
    for (n = 256; n <= 32768; n *= 2) {
        row(n, LMU_FFT_COMPLEX);
        row(n, LMU_FFT_REAL);
    }
    batch_rows(2048, 204);
    return 0;
}
