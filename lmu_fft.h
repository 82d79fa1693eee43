/* lmu_fft.h - v0.1 - power-of-two FFTs and causal convolution - MIT licence
                                                            (see end of file)

   Do this:
       #define LMU_FFT_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the
   implementation. Every other file includes it without the define.
   lmu.h's LMU_IMPLEMENTATION implies LMU_FFT_IMPLEMENTATION. The header needs
   nothing but libm; add -fopenmp to run the batched calls in parallel.

   TABLE OF CONTENTS (search for the anchors)
       // >>api        public declarations
       // >>config     compile-time options, allocator, OpenMP glue
       // >>plan       plan sizing, creation, twiddle tables
       // >>kernels    radix-4 / radix-2 Stockham passes, portable C99
       // >>simd       the same passes with AVX-512 intrinsics (optional)
       // >>exec       complex and real transforms, batched calls
       // >>conv       causal convolution and correlation helpers

   COMPILE-TIME OPTIONS
       LMU_FFT_STATIC / LMU_STATIC   (globally) every public function static
       LMU_FFT_MALLOC(sz), LMU_FFT_FREE(p)
                                     (implementation file) define both or
                                     neither; default malloc/free, or lmu.h's
                                     LMU_MALLOC/LMU_FREE when those exist.
       LMU_FFT_NO_SIMD               (implementation file) use only the
                                     portable C99 passes even where the
                                     compiler targets AVX-512 (__AVX512F__,
                                     e.g. -march=native). Results of the two
                                     paths agree to rounding, not bit for bit;
                                     test both (build test_fft once more with
                                     -DLMU_FFT_NO_SIMD).

   QUICK START (compile for example as `cc -std=c99 -O3 -march=native x.c -lm`)

       #define LMU_FFT_IMPLEMENTATION
       #include "lmu_fft.h"
       ...
       lmu_fft_plan *p;
       float x[1024], X[1024 + 2], *scratch;
       if (lmu_fft_plan_create(&p, 1024, LMU_FFT_REAL) != LMU_FFT_OK) ...
       scratch = (float *)malloc(lmu_fft_scratch_floats(p) * sizeof(float));
       lmu_fft_forward(p, x, X, scratch);       // X: 513 bins, re,im pairs
       lmu_fft_inverse(p, X, x, scratch);       // x is now 1024 * x
       lmu_fft_plan_destroy(p);
       free(scratch);

   CONVENTIONS
       Sizes: every transform length n is a power of two (1, 2, 4, ...).
           lmu_fft_next_pow2() rounds up to one. Anything else is
           LMU_FFT_ERR_SIZE.
       Complex data: interleaved float pairs, x[2k] = Re x_k, x[2k+1] = Im x_k.
           A complex plan of size n reads and writes 2n floats.
       Real data: a real plan of size n maps n floats to n/2+1 bins, stored as
           n+2 interleaved floats: bin 0 (DC) at X[0],X[1], bin n/2 (Nyquist)
           at X[n],X[n+1]; both have zero imaginary part. The inverse reads
           n+2 floats, ignores Im of DC and Nyquist, writes n floats.
           (n = 1 is the one exception: a single bin, X[0] = x[0], X[1] = 0.)
       Sign and scaling (FFTW's and kissfft's convention):
           forward  X_k = sum_j x_j exp(-2 pi i j k / n)      (unscaled)
           inverse  x_j = sum_k X_k exp(+2 pi i j k / n)      (unscaled)
           so inverse(forward(x)) = n x. The convolution helpers take care of
           the 1/n themselves.
       In place: in == out is allowed for every transform (the real forward
           then needs an n+2 float buffer). Partial overlap is not.

   MEMORY
       A plan is one block: lmu_fft_plan_create() allocates it, or
       lmu_fft_plan_init() builds it in caller memory of
       lmu_fft_plan_bytes() bytes (8-byte aligned; the plan holds pointers
       into that block, so do not move it afterwards). Execution never
       allocates: the caller passes scratch of lmu_fft_scratch_floats(plan)
       floats per calling thread.

   THREADING
       A plan is immutable once built, so any number of threads may execute
       one plan at the same time, each with its own scratch. The batched calls
       run the batch in parallel (OpenMP, schedule(static)) when compiled with
       -fopenmp, slicing the scratch they are given per thread; see
       lmu_fft_forward_batch(). Every signal is transformed by the same code
       whatever thread runs it, so results are bit-identical for any thread
       count.

   ALGORITHM
       Iterative Stockham autosort FFT (the Cooley-Tukey radix-2 family in a
       self-sorting form): radix-4 decimation-in-frequency passes plus one
       radix-2 pass when log2 n is odd, on split re/im arrays in scratch so the
       compiler can vectorise every pass. Stockham's ping-pong between two
       buffers puts the output in natural order, so no bit-reversal pass or
       table is needed. Twiddles are computed in double and stored per pass
       as contiguous float arrays. The inverse is the forward with re and im
       swapped on input and output (no second table). The real transform of
       size n is a complex transform of size n/2 on the even/odd samples plus
       one post-twiddle pass (and the inverse one pre-twiddle pass).
       The portable passes give every operand its own unit-stride stream so
       gcc and clang vectorise them. Under __AVX512F__ the same passes are
       written with intrinsics: the first pass (stride 1) and the second
       (stride 4), whose outputs interleave below the vector width, then
       transpose in registers, and de/interleaving of complex data is fused
       into the first and last passes. Sizes below 64 (complex) or 128 (real)
       always take the portable path.
*/
#ifndef LMU_FFT_H
#define LMU_FFT_H

#include <stddef.h>

/* >>api */
#if defined(LMU_FFT_STATIC) || defined(LMU_STATIC)
#if defined(__GNUC__) || defined(__clang__)
#define LMU_FFT_DEF static __attribute__((unused))
#else
#define LMU_FFT_DEF static
#endif
#else
#define LMU_FFT_DEF extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Results of every call that can fail. */
#define LMU_FFT__RESULTS(X)                                                    \
    X(LMU_FFT_OK, "ok")                                                        \
    X(LMU_FFT_ERR_SIZE, "size is zero, not a power of two, or too small")     \
    X(LMU_FFT_ERR_NULL, "NULL argument")                                       \
    X(LMU_FFT_ERR_NOMEM, "out of memory")                                      \
    X(LMU_FFT_ERR_KIND, "wrong plan kind for this call")                       \
    X(LMU_FFT_ERR_SCRATCH, "scratch too small")

#define LMU_FFT__ENUM(name, msg) name,
typedef enum lmu_fft_result {
    LMU_FFT__RESULTS(LMU_FFT__ENUM)
    LMU_FFT_RESULT_COUNT
} lmu_fft_result;
#undef LMU_FFT__ENUM

/* Plan kinds. */
enum { LMU_FFT_COMPLEX = 0, LMU_FFT_REAL = 1 };

typedef struct lmu_fft_plan lmu_fft_plan;

/* Message for a result code; never NULL (unknown codes give "unknown"). */
LMU_FFT_DEF const char *lmu_fft_strerror(int result);

/* Smallest power of two >= n (1 for n = 0); 0 if that overflows size_t. */
LMU_FFT_DEF size_t lmu_fft_next_pow2(size_t n);

/* Builds a plan for transforms of length n.
     [out] out   receives the plan (NULL on failure)
     [in]  n     power of two >= 1
     [in]  kind  LMU_FFT_COMPLEX or LMU_FFT_REAL
   Returns LMU_FFT_OK, LMU_FFT_ERR_SIZE, LMU_FFT_ERR_KIND, LMU_FFT_ERR_NULL or
   LMU_FFT_ERR_NOMEM. See also lmu_fft_plan_destroy, lmu_fft_plan_init. */
LMU_FFT_DEF int lmu_fft_plan_create(lmu_fft_plan **out, size_t n, int kind);

/* Frees a plan from lmu_fft_plan_create (NULL is ignored; plans built with
   lmu_fft_plan_init are not freed, their memory belongs to the caller). */
LMU_FFT_DEF void lmu_fft_plan_destroy(lmu_fft_plan *plan);

/* Bytes a plan of this size and kind needs in caller memory.
     [out] bytes  the size
   Returns LMU_FFT_OK, LMU_FFT_ERR_SIZE, LMU_FFT_ERR_KIND or LMU_FFT_ERR_NULL. */
LMU_FFT_DEF int lmu_fft_plan_bytes(size_t n, int kind, size_t *bytes);

/* Builds a plan inside mem (lenmem bytes, 8-byte aligned, at least
   lmu_fft_plan_bytes()). The plan lives as long as mem; no destroy needed.
   Returns as lmu_fft_plan_create, or LMU_FFT_ERR_SCRATCH if lenmem is short. */
LMU_FFT_DEF int lmu_fft_plan_init(lmu_fft_plan **out, size_t n, int kind,
                                  void *mem, size_t lenmem);

/* Length n and kind of a plan (0 and -1 for NULL). */
LMU_FFT_DEF size_t lmu_fft_plan_n(const lmu_fft_plan *plan);
LMU_FFT_DEF int lmu_fft_plan_kind(const lmu_fft_plan *plan);

/* Floats of scratch one thread needs for any single-signal call on this plan
   (transforms and, for real plans, the convolution helpers). A multiple of
   16, so per-thread slices stay 64-byte aligned if the base is. 0 for NULL. */
LMU_FFT_DEF size_t lmu_fft_scratch_floats(const lmu_fft_plan *plan);

/* Forward / inverse transform of one signal (see CONVENTIONS for layout).
     [in]  plan     complex or real plan
     [in]  in       complex: 2n floats; real forward: n; real inverse: n+2
     [out] out      complex: 2n floats; real forward: n+2; real inverse: n
     [in]  scratch  lmu_fft_scratch_floats(plan) floats, this thread only
   Returns LMU_FFT_OK or LMU_FFT_ERR_NULL. */
LMU_FFT_DEF int lmu_fft_forward(const lmu_fft_plan *plan, const float *in,
                                float *out, float *scratch);
LMU_FFT_DEF int lmu_fft_inverse(const lmu_fft_plan *plan, const float *in,
                                float *out, float *scratch);

/* Batched transforms: signal b reads in + b*in_stride and writes
   out + b*out_stride (strides in floats). With OpenMP the batch is split
   over min(omp_get_max_threads(), scratch_floats / lmu_fft_scratch_floats,
   batch) threads, each using its own slice of scratch; give
   lmu_fft_batch_scratch_floats(plan, nthreads) floats to allow nthreads.
     [in]  scratch_floats  length of scratch; at least one thread's worth
   Returns LMU_FFT_OK, LMU_FFT_ERR_NULL or LMU_FFT_ERR_SCRATCH. */
LMU_FFT_DEF int lmu_fft_forward_batch(const lmu_fft_plan *plan, size_t batch,
                                      const float *in, size_t in_stride,
                                      float *out, size_t out_stride,
                                      float *scratch, size_t scratch_floats);
LMU_FFT_DEF int lmu_fft_inverse_batch(const lmu_fft_plan *plan, size_t batch,
                                      const float *in, size_t in_stride,
                                      float *out, size_t out_stride,
                                      float *scratch, size_t scratch_floats);

/* Scratch for a batched call that may use up to nthreads threads
   (nthreads <= 0: omp_get_max_threads(), or 1 without OpenMP). */
LMU_FFT_DEF size_t lmu_fft_batch_scratch_floats(const lmu_fft_plan *plan,
                                                int nthreads);

/* >>conv  Causal linear convolution of length n through a REAL plan of size
   N >= 2n (lmu_fft_conv_len(n) is the smallest). Both inputs are zero-padded
   to N, so nothing wraps around; outputs keep the first n samples.

       conv:  y[t] = sum_{j=0..t}     h[t-j] u[j]      t = 0..n-1
       corr:  g[j] = sum_{t=j..n-1}   h[t-j] d[t]      j = 0..n-1

   corr is the adjoint of conv in u: if y = conv(u, h) then dL/du =
   corr(dL/dy, h). It is also the kernel gradient: dL/dh = corr(dL/dy, u).
   In the frequency domain conv is U.H and corr is D.conj(H). Spectra are
   N/2+1 bins (N+2 floats) and unscaled; lmu_fft_conv_finish applies 1/N. */

/* FFT length for a causal convolution of length n: next_pow2(2n), or 0 when
   n is 0 or that overflows. */
LMU_FFT_DEF size_t lmu_fft_conv_len(size_t n);

/* One-shot y = conv(u, h) (u, h, y: n floats; y may alias u or h).
   Returns LMU_FFT_OK, LMU_FFT_ERR_NULL, LMU_FFT_ERR_KIND (not a real plan)
   or LMU_FFT_ERR_SIZE (n = 0 or plan shorter than 2n). */
LMU_FFT_DEF int lmu_fft_causal_conv(const lmu_fft_plan *plan, const float *u,
                                    const float *h, size_t n, float *y,
                                    float *scratch);

/* One-shot g = corr(d, h) (the adjoint above). Same returns. */
LMU_FFT_DEF int lmu_fft_causal_corr(const lmu_fft_plan *plan, const float *d,
                                    const float *h, size_t n, float *g,
                                    float *scratch);

/* Spectrum of x (n floats) zero-padded to the plan's N: X gets N+2 floats.
   Use it once per kernel (kernels are reused every step) and once per
   signal. Same returns. */
LMU_FFT_DEF int lmu_fft_conv_spectrum(const lmu_fft_plan *plan, const float *x,
                                      size_t n, float *X, float *scratch);

/* acc += a * b            (conj_b = 0: builds a convolution)
   acc += a * conj(b)      (conj_b = 1: builds a correlation)
   over nbins complex bins (N/2+1 for the conv spectra). Pure arithmetic,
   no plan. Accumulating several terms and finishing once gives a sum of
   convolutions or correlations for the price of one inverse. */
LMU_FFT_DEF void lmu_fft_spectrum_mac(size_t nbins, float *acc, const float *a,
                                      const float *b, int conj_b);

/* y = first n samples of inverse(S) / N, where S (N+2 floats, not modified)
   came from lmu_fft_spectrum_mac. Same returns. */
LMU_FFT_DEF int lmu_fft_conv_finish(const lmu_fft_plan *plan, const float *S,
                                    size_t n, float *y, float *scratch);

/* One signal spectrum U against nk kernel spectra (lmu.h's model runs its
   own batched form of this, lmu__iattn_conv_signals, with the kernel
   spectra already mixed by L).
   y + k*y_stride = conv(u, h_k) for k < nk, where H + k*h_stride is the
   spectrum of h_k from lmu_fft_conv_spectrum. Same returns. */
LMU_FFT_DEF int lmu_fft_conv_many(const lmu_fft_plan *plan, const float *U,
                                  size_t nk, const float *H, size_t h_stride,
                                  size_t n, float *y, size_t y_stride,
                                  float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* LMU_FFT_H */

/* ======================================================================== */
#if defined(LMU_FFT_IMPLEMENTATION) || defined(LMU_IMPLEMENTATION)
#ifndef LMU_FFT_IMPLEMENTATION_DONE
#define LMU_FFT_IMPLEMENTATION_DONE

/* >>config */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(LMU_FFT_MALLOC) != defined(LMU_FFT_FREE)
#error "lmu_fft.h: define both LMU_FFT_MALLOC and LMU_FFT_FREE, or neither"
#endif
#ifndef LMU_FFT_MALLOC
#if defined(LMU_MALLOC) && defined(LMU_FREE)
#define LMU_FFT_MALLOC(sz) LMU_MALLOC(sz)
#define LMU_FFT_FREE(p) LMU_FREE(p)
#else
#define LMU_FFT_MALLOC(sz) malloc(sz)
#define LMU_FFT_FREE(p) free(p)
#endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LMU_FFT__PRIVATE static __attribute__((unused))
#else
#define LMU_FFT__PRIVATE static
#endif

#ifdef __cplusplus
#define LMU_FFT__RESTRICT __restrict
#else
#define LMU_FFT__RESTRICT restrict
#endif
#define LMU_FFT__R LMU_FFT__RESTRICT

#ifdef _OPENMP
#define LMU_FFT__OMP(x) _Pragma(#x)
#else
#define LMU_FFT__OMP(x)
#endif

/* M_PI is POSIX, not C99. */
#define LMU_FFT__PI 3.14159265358979323846264338327950288

struct lmu_fft_plan {
    size_t n;      /* transform length */
    size_t nc;     /* complex length: n, or n/2 for real plans */
    int kind;      /* LMU_FFT_COMPLEX or LMU_FFT_REAL */
    int owned;     /* 1 when lmu_fft_plan_create allocated the block */
    float *tw;     /* pass twiddles: per radix-4 pass of length L, m = L/4,
                      six arrays of m floats: w1r w1i w2r w2i w3r w3i */
    float *rtw;    /* real plans: cos, sin of 2 pi k / n, k < nc (2 nc) */
    float *tw4;    /* nc >= 16: the second pass's six arrays again, each
                      entry repeated 4 times, so the SIMD pass with s = 4
                      loads them as whole vectors (6 * nc/4 floats) */
};

/* >>plan */

LMU_FFT_DEF const char *lmu_fft_strerror(int result)
{
#define LMU_FFT__MSG(name, msg) msg,
    static const char *const msgs[] = { LMU_FFT__RESULTS(LMU_FFT__MSG) };
#undef LMU_FFT__MSG
    if (result < 0 || result >= (int)LMU_FFT_RESULT_COUNT) return "unknown";
    return msgs[result];
}

LMU_FFT_DEF size_t lmu_fft_next_pow2(size_t n)
{
    size_t p = 1;
    while (p < n) {
        if (p > ((size_t)-1) / 2) return 0;
        p <<= 1;
    }
    return p;
}

LMU_FFT__PRIVATE int lmu_fft__is_pow2(size_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

/* Floats of pass twiddles for a complex transform of length nc. */
LMU_FFT__PRIVATE size_t lmu_fft__tw_floats(size_t nc)
{
    size_t L, total = 0;
    for (L = nc; L >= 4; L /= 4) total += 6 * (L / 4);
    return total;
}

LMU_FFT__PRIVATE size_t lmu_fft__round16(size_t x) { return (x + 15) & ~(size_t)15; }

LMU_FFT__PRIVATE int lmu_fft__check(size_t n, int kind)
{
    if (kind != LMU_FFT_COMPLEX && kind != LMU_FFT_REAL) return LMU_FFT_ERR_KIND;
    /* The bound keeps every size product below in range. */
    if (!lmu_fft__is_pow2(n) || n > ((size_t)-1) / 64) return LMU_FFT_ERR_SIZE;
    return LMU_FFT_OK;
}

LMU_FFT_DEF int lmu_fft_plan_bytes(size_t n, int kind, size_t *bytes)
{
    int r;
    size_t nc, floats;
    if (!bytes) return LMU_FFT_ERR_NULL;
    *bytes = 0;
    r = lmu_fft__check(n, kind);
    if (r != LMU_FFT_OK) return r;
    nc = kind == LMU_FFT_REAL ? (n > 1 ? n / 2 : 1) : n;
    floats = lmu_fft__tw_floats(nc) + (kind == LMU_FFT_REAL ? 2 * nc : 0) +
             (nc >= 16 ? 6 * (nc / 4) : 0);
    /* header rounded to 64 bytes so the tables start on a cache line when
       the block does */
    *bytes = ((sizeof(struct lmu_fft_plan) + 63) & ~(size_t)63) + floats * sizeof(float);
    return LMU_FFT_OK;
}

LMU_FFT_DEF int lmu_fft_plan_init(lmu_fft_plan **out, size_t n, int kind,
                                  void *mem, size_t lenmem)
{
    size_t bytes = 0, L, nc, k;
    int r;
    lmu_fft_plan *p;
    float *tw;
    if (!out) return LMU_FFT_ERR_NULL;
    *out = NULL;
    if (!mem) return LMU_FFT_ERR_NULL;
    r = lmu_fft_plan_bytes(n, kind, &bytes);
    if (r != LMU_FFT_OK) return r;
    if (lenmem < bytes) return LMU_FFT_ERR_SCRATCH;
    p = (lmu_fft_plan *)mem;
    nc = kind == LMU_FFT_REAL ? (n > 1 ? n / 2 : 1) : n;
    p->n = n;
    p->nc = nc;
    p->kind = kind;
    p->owned = 0;
    p->tw = (float *)((char *)mem + ((sizeof(struct lmu_fft_plan) + 63) & ~(size_t)63));
    p->rtw = kind == LMU_FFT_REAL ? p->tw + lmu_fft__tw_floats(nc) : NULL;
    p->tw4 = nc >= 16 ? p->tw + lmu_fft__tw_floats(nc) + (p->rtw ? 2 * nc : 0) : NULL;
    /* Twiddles in double, reduced mod L before scaling so large n keeps
       full accuracy in the angle. */
    tw = p->tw;
    for (L = nc; L >= 4; L /= 4) {
        size_t m = L / 4, j;
        for (j = 0; j < m; j++) {
            int t;
            for (t = 1; t <= 3; t++) {
                size_t e = ((size_t)t * j) % L;
                double a = -2.0 * LMU_FFT__PI * (double)e / (double)L;
                tw[(size_t)(2 * (t - 1)) * m + j] = (float)cos(a);
                tw[(size_t)(2 * (t - 1) + 1) * m + j] = (float)sin(a);
            }
        }
        tw += 6 * m;
    }
    if (p->tw4) {
        const float *t2 = p->tw + 6 * (nc / 4); /* second pass: m = nc/16 */
        size_t m2 = nc / 16, j;
        int t;
        for (t = 0; t < 6; t++)
            for (j = 0; j < 4 * m2; j++) p->tw4[(size_t)t * 4 * m2 + j] = t2[(size_t)t * m2 + j / 4];
    }
    if (p->rtw) {
        for (k = 0; k < nc; k++) {
            double a = 2.0 * LMU_FFT__PI * (double)k / (double)n;
            p->rtw[k] = (float)cos(a);
            p->rtw[nc + k] = (float)sin(a);
        }
    }
    *out = p;
    return LMU_FFT_OK;
}

LMU_FFT_DEF int lmu_fft_plan_create(lmu_fft_plan **out, size_t n, int kind)
{
    size_t bytes = 0;
    void *mem;
    int r;
    if (!out) return LMU_FFT_ERR_NULL;
    *out = NULL;
    r = lmu_fft_plan_bytes(n, kind, &bytes);
    if (r != LMU_FFT_OK) return r;
    mem = LMU_FFT_MALLOC(bytes);
    if (!mem) return LMU_FFT_ERR_NOMEM;
    r = lmu_fft_plan_init(out, n, kind, mem, bytes);
    if (r != LMU_FFT_OK) {
        LMU_FFT_FREE(mem);
        return r;
    }
    (*out)->owned = 1;
    return LMU_FFT_OK;
}

LMU_FFT_DEF void lmu_fft_plan_destroy(lmu_fft_plan *plan)
{
    if (plan && plan->owned) LMU_FFT_FREE(plan);
}

LMU_FFT_DEF size_t lmu_fft_plan_n(const lmu_fft_plan *plan) { return plan ? plan->n : 0; }
LMU_FFT_DEF int lmu_fft_plan_kind(const lmu_fft_plan *plan) { return plan ? plan->kind : -1; }

LMU_FFT_DEF size_t lmu_fft_scratch_floats(const lmu_fft_plan *plan)
{
    if (!plan) return 0;
    /* complex: two split buffers of 2 nc floats (Stockham ping-pong).
       real: the same for nc = n/2, plus the convolution helpers' three
       n+2 float buffers. */
    if (plan->kind == LMU_FFT_COMPLEX) return lmu_fft__round16(4 * plan->nc) + 16;
    return lmu_fft__round16(4 * plan->nc) + 3 * lmu_fft__round16(plan->n + 2) + 16;
}

LMU_FFT_DEF size_t lmu_fft_batch_scratch_floats(const lmu_fft_plan *plan, int nthreads)
{
    if (nthreads <= 0) {
#ifdef _OPENMP
        nthreads = omp_get_max_threads();
#else
        nthreads = 1;
#endif
    }
    return lmu_fft_scratch_floats(plan) * (size_t)nthreads;
}

/* >>kernels
   One Stockham DIF radix-4 pass on split arrays. The current sub-transform
   length is L = 4m, and s = nc/L independent sub-transforms sit interleaved
   at stride s:
       in:  x[q + s*(p + k*m)]   k = 0..3, p < m, q < s
       out: y[q + s*(4p + k)]    = w^(kp) * (k-th radix-4 output)
   so reads are contiguous in q and the output lands already sorted. */

/* One column block of a pass: s butterflies sharing twiddles w1..w3, every
   operand its own unit-stride stream, which is the shape compilers
   vectorise without help. */
LMU_FFT__PRIVATE void lmu_fft__r4_col(size_t s,
                                      const float *LMU_FFT__R ar, const float *LMU_FFT__R ai,
                                      const float *LMU_FFT__R br, const float *LMU_FFT__R bi,
                                      const float *LMU_FFT__R cr, const float *LMU_FFT__R ci,
                                      const float *LMU_FFT__R dr, const float *LMU_FFT__R di,
                                      float *LMU_FFT__R y0r, float *LMU_FFT__R y0i,
                                      float *LMU_FFT__R y1r, float *LMU_FFT__R y1i,
                                      float *LMU_FFT__R y2r, float *LMU_FFT__R y2i,
                                      float *LMU_FFT__R y3r, float *LMU_FFT__R y3i,
                                      const float *w)
{
    const float w1r = w[0], w1i = w[1], w2r = w[2], w2i = w[3], w3r = w[4], w3i = w[5];
    size_t q;
    for (q = 0; q < s; q++) {
        float s0r = ar[q] + cr[q], s0i = ai[q] + ci[q];
        float d0r = ar[q] - cr[q], d0i = ai[q] - ci[q];
        float s1r = br[q] + dr[q], s1i = bi[q] + di[q];
        float d1r = br[q] - dr[q], d1i = bi[q] - di[q];
        /* X1 = (a-c) - i(b-d), X3 = (a-c) + i(b-d) */
        float t1r = d0r + d1i, t1i = d0i - d1r;
        float t2r = s0r - s1r, t2i = s0i - s1i;
        float t3r = d0r - d1i, t3i = d0i + d1r;
        y0r[q] = s0r + s1r;
        y0i[q] = s0i + s1i;
        y1r[q] = w1r * t1r - w1i * t1i;
        y1i[q] = w1r * t1i + w1i * t1r;
        y2r[q] = w2r * t2r - w2i * t2i;
        y2i[q] = w2r * t2i + w2i * t2r;
        y3r[q] = w3r * t3r - w3i * t3i;
        y3i[q] = w3r * t3i + w3i * t3r;
    }
}

/* s >= 4: one column block per p. */
LMU_FFT__PRIVATE void lmu_fft__r4_pass(size_t s, size_t m, const float *tw,
                                       const float *xr, const float *xi, float *yr, float *yi)
{
    size_t p, sm = s * m;
    for (p = 0; p < m; p++) {
        const float *a_r = xr + s * p, *a_i = xi + s * p;
        float *o_r = yr + 4 * s * p, *o_i = yi + 4 * s * p;
        float w[6];
        w[0] = tw[p]; w[1] = tw[m + p];
        w[2] = tw[2 * m + p]; w[3] = tw[3 * m + p];
        w[4] = tw[4 * m + p]; w[5] = tw[5 * m + p];
        lmu_fft__r4_col(s, a_r, a_i, a_r + sm, a_i + sm, a_r + 2 * sm, a_i + 2 * sm,
                        a_r + 3 * sm, a_i + 3 * sm, o_r, o_i, o_r + s, o_i + s,
                        o_r + 2 * s, o_i + 2 * s, o_r + 3 * s, o_i + 3 * s, w);
    }
}

/* s = 1 (the first pass): vectorise over p; the four outputs of one
   butterfly are adjacent, which the compiler turns into interleaving
   stores. */
LMU_FFT__PRIVATE void lmu_fft__r4_first(size_t m, const float *LMU_FFT__R tw,
                                        const float *LMU_FFT__R xr, const float *LMU_FFT__R xi,
                                        float *LMU_FFT__R yr, float *LMU_FFT__R yi)
{
    size_t p;
    for (p = 0; p < m; p++) {
        float a_r = xr[p], a_i = xi[p];
        float b_r = xr[p + m], b_i = xi[p + m];
        float c_r = xr[p + 2 * m], c_i = xi[p + 2 * m];
        float d_r = xr[p + 3 * m], d_i = xi[p + 3 * m];
        float w1r = tw[p], w1i = tw[m + p];
        float w2r = tw[2 * m + p], w2i = tw[3 * m + p];
        float w3r = tw[4 * m + p], w3i = tw[5 * m + p];
        float s0r = a_r + c_r, s0i = a_i + c_i;
        float d0r = a_r - c_r, d0i = a_i - c_i;
        float s1r = b_r + d_r, s1i = b_i + d_i;
        float d1r = b_r - d_r, d1i = b_i - d_i;
        float t1r = d0r + d1i, t1i = d0i - d1r;
        float t2r = s0r - s1r, t2i = s0i - s1i;
        float t3r = d0r - d1i, t3i = d0i + d1r;
        yr[4 * p] = s0r + s1r;
        yi[4 * p] = s0i + s1i;
        yr[4 * p + 1] = w1r * t1r - w1i * t1i;
        yi[4 * p + 1] = w1r * t1i + w1i * t1r;
        yr[4 * p + 2] = w2r * t2r - w2i * t2i;
        yi[4 * p + 2] = w2r * t2i + w2i * t2r;
        yr[4 * p + 3] = w3r * t3r - w3i * t3i;
        yi[4 * p + 3] = w3r * t3i + w3i * t3r;
    }
}

/* Last radix-4 pass (m = 1): twiddles are all one. Operands as separate
   streams, as in lmu_fft__r4_col. */
LMU_FFT__PRIVATE void lmu_fft__r4_last_col(size_t s,
                                           const float *LMU_FFT__R ar, const float *LMU_FFT__R ai,
                                           const float *LMU_FFT__R br, const float *LMU_FFT__R bi,
                                           const float *LMU_FFT__R cr, const float *LMU_FFT__R ci,
                                           const float *LMU_FFT__R dr, const float *LMU_FFT__R di,
                                           float *LMU_FFT__R y0r, float *LMU_FFT__R y0i,
                                           float *LMU_FFT__R y1r, float *LMU_FFT__R y1i,
                                           float *LMU_FFT__R y2r, float *LMU_FFT__R y2i,
                                           float *LMU_FFT__R y3r, float *LMU_FFT__R y3i)
{
    size_t q;
    for (q = 0; q < s; q++) {
        float s0r = ar[q] + cr[q], s0i = ai[q] + ci[q];
        float d0r = ar[q] - cr[q], d0i = ai[q] - ci[q];
        float s1r = br[q] + dr[q], s1i = bi[q] + di[q];
        float d1r = br[q] - dr[q], d1i = bi[q] - di[q];
        y0r[q] = s0r + s1r;
        y0i[q] = s0i + s1i;
        y1r[q] = d0r + d1i;
        y1i[q] = d0i - d1r;
        y2r[q] = s0r - s1r;
        y2i[q] = s0i - s1i;
        y3r[q] = d0r - d1i;
        y3i[q] = d0i + d1r;
    }
}

LMU_FFT__PRIVATE void lmu_fft__r4_last(size_t s, const float *xr, const float *xi,
                                       float *yr, float *yi)
{
    lmu_fft__r4_last_col(s, xr, xi, xr + s, xi + s, xr + 2 * s, xi + 2 * s, xr + 3 * s,
                         xi + 3 * s, yr, yi, yr + s, yi + s, yr + 2 * s, yi + 2 * s,
                         yr + 3 * s, yi + 3 * s);
}

/* Last pass when log2 nc is odd: radix-2, L = 2, twiddle-free. */
LMU_FFT__PRIVATE void lmu_fft__r2_last_col(size_t s,
                                           const float *LMU_FFT__R ar, const float *LMU_FFT__R ai,
                                           const float *LMU_FFT__R br, const float *LMU_FFT__R bi,
                                           float *LMU_FFT__R y0r, float *LMU_FFT__R y0i,
                                           float *LMU_FFT__R y1r, float *LMU_FFT__R y1i)
{
    size_t q;
    for (q = 0; q < s; q++) {
        y0r[q] = ar[q] + br[q];
        y0i[q] = ai[q] + bi[q];
        y1r[q] = ar[q] - br[q];
        y1i[q] = ai[q] - bi[q];
    }
}

LMU_FFT__PRIVATE void lmu_fft__r2_last(size_t s, const float *xr, const float *xi,
                                       float *yr, float *yi)
{
    lmu_fft__r2_last_col(s, xr, xi, xr + s, xi + s, yr, yi, yr + s, yi + s);
}

/* Complex forward FFT of length nc on split data. (xr, xi) holds the input
   and is clobbered, (wr, wi) is the other half of the ping-pong; *rr, *ri
   get whichever pair holds the result. */
LMU_FFT__PRIVATE void lmu_fft__cfft_split(const lmu_fft_plan *plan, size_t nc,
                                          float *xr, float *xi, float *wr, float *wi,
                                          float **rr, float **ri)
{
    const float *tw = plan->tw;
    size_t L = nc, s = 1;
    float *ar = xr, *ai = xi, *br = wr, *bi = wi, *t;
    while (L >= 8) {
        size_t m = L / 4;
        if (s == 1)
            lmu_fft__r4_first(m, tw, ar, ai, br, bi);
        else
            lmu_fft__r4_pass(s, m, tw, ar, ai, br, bi);
        tw += 6 * m;
        L = m;
        s *= 4;
        t = ar; ar = br; br = t;
        t = ai; ai = bi; bi = t;
    }
    if (L == 4) {
        lmu_fft__r4_last(s, ar, ai, br, bi);
        t = ar; ar = br; br = t;
        t = ai; ai = bi; bi = t;
    } else if (L == 2) {
        lmu_fft__r2_last(s, ar, ai, br, bi);
        t = ar; ar = br; br = t;
        t = ai; ai = bi; bi = t;
    }
    *rr = ar;
    *ri = ai;
}

/* >>simd  AVX-512 versions of the passes (16 floats per vector), used for
   nc >= 64 unless LMU_FFT_NO_SIMD is defined. Same algorithm and data
   layout as the portable passes above; what changes is that the first pass
   (s = 1) and the second (s = 4), whose outputs are interleaved at a stride
   below the vector width, transpose in registers instead of leaving that to
   the compiler, and the de/interleaving of complex input and output is fused
   into the first and last passes. */
#if defined(__AVX512F__) && !defined(LMU_FFT_NO_SIMD)
#define LMU_FFT__AVX512 1
#include <immintrin.h>

#if defined(__GNUC__) || defined(__clang__)
#define LMU_FFT__INLINE static inline __attribute__((always_inline, unused))
#else
#define LMU_FFT__INLINE static inline
#endif

typedef __m512 lmu_fft__v;

/* Radix-4 DIF butterfly without twiddles; the passes multiply outputs
   1..3 afterwards (LMU_FFT__CMUL), and the last pass does not. */
#define LMU_FFT__BFLY4(ar, ai, br, bi, cr, ci, dr, di, y0r, y0i, y1r, y1i, y2r, y2i, y3r, y3i) \
    do {                                                                                        \
        __m512 s0r_ = _mm512_add_ps(ar, cr), s0i_ = _mm512_add_ps(ai, ci);                      \
        __m512 d0r_ = _mm512_sub_ps(ar, cr), d0i_ = _mm512_sub_ps(ai, ci);                      \
        __m512 s1r_ = _mm512_add_ps(br, dr), s1i_ = _mm512_add_ps(bi, di);                      \
        __m512 d1r_ = _mm512_sub_ps(br, dr), d1i_ = _mm512_sub_ps(bi, di);                      \
        y0r = _mm512_add_ps(s0r_, s1r_);                                                        \
        y0i = _mm512_add_ps(s0i_, s1i_);                                                        \
        y1r = _mm512_add_ps(d0r_, d1i_);                                                        \
        y1i = _mm512_sub_ps(d0i_, d1r_);                                                        \
        y2r = _mm512_sub_ps(s0r_, s1r_);                                                        \
        y2i = _mm512_sub_ps(s0i_, s1i_);                                                        \
        y3r = _mm512_sub_ps(d0r_, d1i_);                                                        \
        y3i = _mm512_add_ps(d0i_, d1r_);                                                        \
    } while (0)

/* (xr + i xi) *= (wr + i wi) */
#define LMU_FFT__CMUL(xr, xi, wr, wi)                                         \
    do {                                                                      \
        __m512 t_ = _mm512_mul_ps(xi, wi);                                    \
        __m512 u_ = _mm512_mul_ps(xr, wi);                                    \
        xr = _mm512_fmsub_ps(xr, wr, t_);                                     \
        xi = _mm512_fmadd_ps(xi, wr, u_);                                     \
    } while (0)

/* 4x4 transpose of 128-bit lanes: out_v = [y0.v, y1.v, y2.v, y3.v]. */
#define LMU_FFT__TR128(y0, y1, y2, y3)                                        \
    do {                                                                      \
        __m512 a0_ = _mm512_shuffle_f32x4(y0, y1, 0x44);                      \
        __m512 a1_ = _mm512_shuffle_f32x4(y0, y1, 0xEE);                      \
        __m512 a2_ = _mm512_shuffle_f32x4(y2, y3, 0x44);                      \
        __m512 a3_ = _mm512_shuffle_f32x4(y2, y3, 0xEE);                      \
        y0 = _mm512_shuffle_f32x4(a0_, a2_, 0x88);                            \
        y1 = _mm512_shuffle_f32x4(a0_, a2_, 0xDD);                            \
        y2 = _mm512_shuffle_f32x4(a1_, a3_, 0x88);                            \
        y3 = _mm512_shuffle_f32x4(a1_, a3_, 0xDD);                            \
    } while (0)

/* out[4j + k] = yk[j]: a full 4-way interleave (4x4 inside lanes, then
   across lanes). */
#define LMU_FFT__IL4(y0, y1, y2, y3)                                          \
    do {                                                                      \
        __m512 t0_ = _mm512_unpacklo_ps(y0, y2), t1_ = _mm512_unpackhi_ps(y0, y2); \
        __m512 t2_ = _mm512_unpacklo_ps(y1, y3), t3_ = _mm512_unpackhi_ps(y1, y3); \
        y0 = _mm512_unpacklo_ps(t0_, t2_);                                    \
        y1 = _mm512_unpackhi_ps(t0_, t2_);                                    \
        y2 = _mm512_unpacklo_ps(t1_, t3_);                                    \
        y3 = _mm512_unpackhi_ps(t1_, t3_);                                    \
        LMU_FFT__TR128(y0, y1, y2, y3);                                       \
    } while (0)

LMU_FFT__INLINE void lmu_fft__ld_il(const float *p, __m512 *re, __m512 *im)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
    *re = _mm512_permutex2var_ps(a, ev, b);
    *im = _mm512_permutex2var_ps(a, od, b);
}

LMU_FFT__INLINE void lmu_fft__st_il(float *p, __m512 re, __m512 im)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_storeu_ps(p, _mm512_permutex2var_ps(re, lo, im));
    _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(re, hi, im));
}

/* First pass, s = 1, L = nc. Input interleaved (in != NULL, re/im swapped
   when swap) or split (xr, xi). */
LMU_FFT__PRIVATE void lmu_fft__v_first(size_t m, const float *tw, const float *in, int swap,
                                       const float *xr, const float *xi, float *yr, float *yi)
{
    size_t p;
    for (p = 0; p < m; p += 16) {
        __m512 ar, ai, br, bi, cr, ci, dr, di, y0r, y0i, y1r, y1i, y2r, y2i, y3r, y3i;
        if (in) {
            if (swap) {
                lmu_fft__ld_il(in + 2 * p, &ai, &ar);
                lmu_fft__ld_il(in + 2 * (p + m), &bi, &br);
                lmu_fft__ld_il(in + 2 * (p + 2 * m), &ci, &cr);
                lmu_fft__ld_il(in + 2 * (p + 3 * m), &di, &dr);
            } else {
                lmu_fft__ld_il(in + 2 * p, &ar, &ai);
                lmu_fft__ld_il(in + 2 * (p + m), &br, &bi);
                lmu_fft__ld_il(in + 2 * (p + 2 * m), &cr, &ci);
                lmu_fft__ld_il(in + 2 * (p + 3 * m), &dr, &di);
            }
        } else {
            ar = _mm512_loadu_ps(xr + p); ai = _mm512_loadu_ps(xi + p);
            br = _mm512_loadu_ps(xr + p + m); bi = _mm512_loadu_ps(xi + p + m);
            cr = _mm512_loadu_ps(xr + p + 2 * m); ci = _mm512_loadu_ps(xi + p + 2 * m);
            dr = _mm512_loadu_ps(xr + p + 3 * m); di = _mm512_loadu_ps(xi + p + 3 * m);
        }
        LMU_FFT__BFLY4(ar, ai, br, bi, cr, ci, dr, di, y0r, y0i, y1r, y1i, y2r, y2i, y3r, y3i);
        LMU_FFT__CMUL(y1r, y1i, _mm512_loadu_ps(tw + p), _mm512_loadu_ps(tw + m + p));
        LMU_FFT__CMUL(y2r, y2i, _mm512_loadu_ps(tw + 2 * m + p), _mm512_loadu_ps(tw + 3 * m + p));
        LMU_FFT__CMUL(y3r, y3i, _mm512_loadu_ps(tw + 4 * m + p), _mm512_loadu_ps(tw + 5 * m + p));
        LMU_FFT__IL4(y0r, y1r, y2r, y3r);
        LMU_FFT__IL4(y0i, y1i, y2i, y3i);
        _mm512_storeu_ps(yr + 4 * p, y0r);
        _mm512_storeu_ps(yr + 4 * p + 16, y1r);
        _mm512_storeu_ps(yr + 4 * p + 32, y2r);
        _mm512_storeu_ps(yr + 4 * p + 48, y3r);
        _mm512_storeu_ps(yi + 4 * p, y0i);
        _mm512_storeu_ps(yi + 4 * p + 16, y1i);
        _mm512_storeu_ps(yi + 4 * p + 32, y2i);
        _mm512_storeu_ps(yi + 4 * p + 48, y3i);
    }
}

/* Second pass, s = 4: lanes are (p, q) pairs, i = q + 4p, with the
   twiddles pre-expanded in plan->tw4; outputs y[16p + 4k + q] need a
   128-bit transpose. */
LMU_FFT__PRIVATE void lmu_fft__v_s4(size_t m, const float *tw4, const float *xr, const float *xi,
                                    float *yr, float *yi)
{
    size_t i, sm = 4 * m;
    for (i = 0; i < sm; i += 16) {
        __m512 ar = _mm512_loadu_ps(xr + i), ai = _mm512_loadu_ps(xi + i);
        __m512 br = _mm512_loadu_ps(xr + i + sm), bi = _mm512_loadu_ps(xi + i + sm);
        __m512 cr = _mm512_loadu_ps(xr + i + 2 * sm), ci = _mm512_loadu_ps(xi + i + 2 * sm);
        __m512 dr = _mm512_loadu_ps(xr + i + 3 * sm), di = _mm512_loadu_ps(xi + i + 3 * sm);
        __m512 y0r, y0i, y1r, y1i, y2r, y2i, y3r, y3i;
        LMU_FFT__BFLY4(ar, ai, br, bi, cr, ci, dr, di, y0r, y0i, y1r, y1i, y2r, y2i, y3r, y3i);
        LMU_FFT__CMUL(y1r, y1i, _mm512_loadu_ps(tw4 + i), _mm512_loadu_ps(tw4 + sm + i));
        LMU_FFT__CMUL(y2r, y2i, _mm512_loadu_ps(tw4 + 2 * sm + i), _mm512_loadu_ps(tw4 + 3 * sm + i));
        LMU_FFT__CMUL(y3r, y3i, _mm512_loadu_ps(tw4 + 4 * sm + i), _mm512_loadu_ps(tw4 + 5 * sm + i));
        LMU_FFT__TR128(y0r, y1r, y2r, y3r);
        LMU_FFT__TR128(y0i, y1i, y2i, y3i);
        /* lanes of this vector are p = i/4 .. i/4+3: outputs start at 16 p */
        _mm512_storeu_ps(yr + 4 * i, y0r);
        _mm512_storeu_ps(yr + 4 * i + 16, y1r);
        _mm512_storeu_ps(yr + 4 * i + 32, y2r);
        _mm512_storeu_ps(yr + 4 * i + 48, y3r);
        _mm512_storeu_ps(yi + 4 * i, y0i);
        _mm512_storeu_ps(yi + 4 * i + 16, y1i);
        _mm512_storeu_ps(yi + 4 * i + 32, y2i);
        _mm512_storeu_ps(yi + 4 * i + 48, y3i);
    }
}

/* Middle passes, s >= 16: plain vectors over q, twiddles broadcast. */
LMU_FFT__PRIVATE void lmu_fft__v_mid(size_t s, size_t m, const float *tw, const float *xr,
                                     const float *xi, float *yr, float *yi)
{
    size_t p, q, sm = s * m;
    for (p = 0; p < m; p++) {
        const __m512 w1r = _mm512_set1_ps(tw[p]), w1i = _mm512_set1_ps(tw[m + p]);
        const __m512 w2r = _mm512_set1_ps(tw[2 * m + p]), w2i = _mm512_set1_ps(tw[3 * m + p]);
        const __m512 w3r = _mm512_set1_ps(tw[4 * m + p]), w3i = _mm512_set1_ps(tw[5 * m + p]);
        const float *ar_ = xr + s * p, *ai_ = xi + s * p;
        float *or_ = yr + 4 * s * p, *oi_ = yi + 4 * s * p;
        for (q = 0; q < s; q += 16) {
            __m512 ar = _mm512_loadu_ps(ar_ + q), ai = _mm512_loadu_ps(ai_ + q);
            __m512 br = _mm512_loadu_ps(ar_ + q + sm), bi = _mm512_loadu_ps(ai_ + q + sm);
            __m512 cr = _mm512_loadu_ps(ar_ + q + 2 * sm), ci = _mm512_loadu_ps(ai_ + q + 2 * sm);
            __m512 dr = _mm512_loadu_ps(ar_ + q + 3 * sm), di = _mm512_loadu_ps(ai_ + q + 3 * sm);
            __m512 y0r, y0i, y1r, y1i, y2r, y2i, y3r, y3i;
            LMU_FFT__BFLY4(ar, ai, br, bi, cr, ci, dr, di, y0r, y0i, y1r, y1i, y2r, y2i, y3r, y3i);
            LMU_FFT__CMUL(y1r, y1i, w1r, w1i);
            LMU_FFT__CMUL(y2r, y2i, w2r, w2i);
            LMU_FFT__CMUL(y3r, y3i, w3r, w3i);
            _mm512_storeu_ps(or_ + q, y0r);
            _mm512_storeu_ps(oi_ + q, y0i);
            _mm512_storeu_ps(or_ + q + s, y1r);
            _mm512_storeu_ps(oi_ + q + s, y1i);
            _mm512_storeu_ps(or_ + q + 2 * s, y2r);
            _mm512_storeu_ps(oi_ + q + 2 * s, y2i);
            _mm512_storeu_ps(or_ + q + 3 * s, y3r);
            _mm512_storeu_ps(oi_ + q + 3 * s, y3i);
        }
    }
}

/* Last pass, twiddle-free radix-4 (L = 4) or radix-2 (L = 2), output split
   or interleaved (out != NULL, re/im swapped when swap). */
LMU_FFT__PRIVATE void lmu_fft__v_last(int radix, size_t s, const float *xr, const float *xi,
                                      float *yr, float *yi, float *out, int swap)
{
    size_t q;
    for (q = 0; q < s; q += 16) {
        __m512 y[8];
        int k;
        if (radix == 4) {
            __m512 ar = _mm512_loadu_ps(xr + q), ai = _mm512_loadu_ps(xi + q);
            __m512 br = _mm512_loadu_ps(xr + q + s), bi = _mm512_loadu_ps(xi + q + s);
            __m512 cr = _mm512_loadu_ps(xr + q + 2 * s), ci = _mm512_loadu_ps(xi + q + 2 * s);
            __m512 dr = _mm512_loadu_ps(xr + q + 3 * s), di = _mm512_loadu_ps(xi + q + 3 * s);
            LMU_FFT__BFLY4(ar, ai, br, bi, cr, ci, dr, di, y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7]);
        } else {
            __m512 ar = _mm512_loadu_ps(xr + q), ai = _mm512_loadu_ps(xi + q);
            __m512 br = _mm512_loadu_ps(xr + q + s), bi = _mm512_loadu_ps(xi + q + s);
            y[0] = _mm512_add_ps(ar, br);
            y[1] = _mm512_add_ps(ai, bi);
            y[2] = _mm512_sub_ps(ar, br);
            y[3] = _mm512_sub_ps(ai, bi);
        }
        for (k = 0; k < radix; k++) {
            __m512 re = y[2 * k], im = y[2 * k + 1];
            if (out) {
                if (swap)
                    lmu_fft__st_il(out + 2 * (q + (size_t)k * s), im, re);
                else
                    lmu_fft__st_il(out + 2 * (q + (size_t)k * s), re, im);
            } else {
                _mm512_storeu_ps(yr + q + (size_t)k * s, re);
                _mm512_storeu_ps(yi + q + (size_t)k * s, im);
            }
        }
    }
}

/* Complex FFT, nc >= 64. Input: interleaved in (swap: as (im, re)) or, if
   in is NULL, split in (ar, ai). Output: interleaved out (swap likewise),
   or if out is NULL split, with *rr, *ri pointing at it. (ar, ai) and
   (br, bi) are the ping-pong buffers, nc floats each. */
LMU_FFT__PRIVATE void lmu_fft__v_cfft(const lmu_fft_plan *plan, size_t nc, const float *in,
                                      int in_swap, float *ar, float *ai, float *br, float *bi,
                                      float *out, int out_swap, float **rr, float **ri)
{
    const float *tw = plan->tw;
    size_t L = nc, s = 1;
    float *t;
    while (L >= 8) {
        size_t m = L / 4;
        if (s == 1)
            lmu_fft__v_first(m, tw, in, in_swap, ar, ai, br, bi);
        else if (s == 4)
            lmu_fft__v_s4(m, plan->tw4, ar, ai, br, bi);
        else
            lmu_fft__v_mid(s, m, tw, ar, ai, br, bi);
        tw += 6 * m;
        L = m;
        s *= 4;
        t = ar; ar = br; br = t;
        t = ai; ai = bi; bi = t;
    }
    lmu_fft__v_last(L == 4 ? 4 : 2, s, ar, ai, br, bi, out, out_swap);
    *rr = br;
    *ri = bi;
}

/* Real forward post-pass for bins 16..nc-1 (the scalar loop does 1..15,
   so every vector reads Z_nc-k without wrapping). Formulas as in
   lmu_fft__real_fwd; Z_nc-k is loaded as a block and lane-reversed. */
LMU_FFT__PRIVATE void lmu_fft__v_rpost(size_t nc, const float *zr, const float *zi,
                                       const float *cs, const float *sn, float *out)
{
    const __m512i rev = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512 half = _mm512_set1_ps(0.5f);
    size_t k;
    for (k = 16; k < nc; k += 16) {
        __m512 ar = _mm512_loadu_ps(zr + k), ai = _mm512_loadu_ps(zi + k);
        __m512 br = _mm512_permutexvar_ps(rev, _mm512_loadu_ps(zr + nc - k - 15));
        __m512 bi = _mm512_permutexvar_ps(rev, _mm512_loadu_ps(zi + nc - k - 15));
        __m512 c = _mm512_loadu_ps(cs + k), s = _mm512_loadu_ps(sn + k);
        __m512 er = _mm512_mul_ps(half, _mm512_add_ps(ar, br));
        __m512 ei = _mm512_mul_ps(half, _mm512_sub_ps(ai, bi));
        __m512 or_ = _mm512_mul_ps(half, _mm512_add_ps(ai, bi));
        __m512 oi = _mm512_mul_ps(half, _mm512_sub_ps(br, ar));
        __m512 xr = _mm512_fmadd_ps(c, or_, _mm512_fmadd_ps(s, oi, er));
        __m512 xi = _mm512_fmadd_ps(c, oi, _mm512_fnmadd_ps(s, or_, ei));
        lmu_fft__st_il(out + 2 * k, xr, xi);
    }
}

/* Real inverse pre-pass for bins 16..nc-1, as lmu_fft__real_inv. */
LMU_FFT__PRIVATE void lmu_fft__v_rpre(size_t nc, const float *in, const float *cs,
                                      const float *sn, float *xr, float *xi)
{
    const __m512i rev = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    size_t k;
    for (k = 16; k < nc; k += 16) {
        __m512 ar, ai, br, bi, c, s, er, ei, dr, di, or_, oi;
        lmu_fft__ld_il(in + 2 * k, &ar, &ai);
        lmu_fft__ld_il(in + 2 * (nc - k - 15), &br, &bi);
        br = _mm512_permutexvar_ps(rev, br);
        bi = _mm512_permutexvar_ps(rev, bi);
        c = _mm512_loadu_ps(cs + k);
        s = _mm512_loadu_ps(sn + k);
        er = _mm512_add_ps(ar, br);
        ei = _mm512_sub_ps(ai, bi);
        dr = _mm512_sub_ps(ar, br);
        di = _mm512_add_ps(ai, bi);
        or_ = _mm512_fmsub_ps(dr, c, _mm512_mul_ps(di, s));
        oi = _mm512_fmadd_ps(dr, s, _mm512_mul_ps(di, c));
        _mm512_storeu_ps(xr + k, _mm512_sub_ps(er, oi));
        _mm512_storeu_ps(xi + k, _mm512_add_ps(ei, or_));
    }
}
#endif /* LMU_FFT__AVX512 */

/* >>exec */

/* Aligns scratch to 64 bytes inside the 16 spare floats scratch_floats
   reserves. */
LMU_FFT__PRIVATE float *lmu_fft__align(float *p)
{
    size_t mis = ((size_t)p & 63) / sizeof(float);
    return mis ? p + (16 - mis) : p;
}

/* Complex transform of interleaved in -> interleaved out. inv swaps re and
   im on the way in and out: IDFT(x) = swap(DFT(swap(x))). */
LMU_FFT__PRIVATE void lmu_fft__complex(const lmu_fft_plan *plan, const float *in,
                                       float *out, float *scratch, int inv)
{
    size_t nc = plan->nc, k;
    float *s = lmu_fft__align(scratch);
    float *xr = s, *xi = s + nc, *wr = s + 2 * nc, *wi = s + 3 * nc, *rr, *ri;
#ifdef LMU_FFT__AVX512
    if (nc >= 64) {
        lmu_fft__v_cfft(plan, nc, in, inv, xr, xi, wr, wi, out, inv, &rr, &ri);
        return;
    }
#endif
    for (k = 0; k < nc; k++) {
        xr[k] = in[2 * k];
        xi[k] = in[2 * k + 1];
    }
    if (inv)
        lmu_fft__cfft_split(plan, nc, xi, xr, wi, wr, &ri, &rr);
    else
        lmu_fft__cfft_split(plan, nc, xr, xi, wr, wi, &rr, &ri);
    for (k = 0; k < nc; k++) {
        out[2 * k] = rr[k];
        out[2 * k + 1] = ri[k];
    }
}

/* Real forward: z_k = x_2k + i x_2k+1, Z = DFT_nc(z), then for k = 0..nc
       X_k = E_k + w^k O_k,  E_k = (Z_k + conj Z_nc-k)/2,
                             O_k = (Z_k - conj Z_nc-k)/(2i),  w = e^(-2 pi i/n) */
LMU_FFT__PRIVATE void lmu_fft__real_fwd(const lmu_fft_plan *plan, const float *in,
                                        float *out, float *scratch)
{
    size_t nc = plan->nc, k, kend = nc;
    float *s = lmu_fft__align(scratch);
    float *xr = s, *xi = s + nc, *wr = s + 2 * nc, *wi = s + 3 * nc, *zr, *zi;
    const float *cs = plan->rtw, *sn = plan->rtw + nc;
    float z0r, z0i;
    if (plan->n == 1) {
        float v = in[0];
        out[0] = v;
        out[1] = 0.0f;
        return;
    }
#ifdef LMU_FFT__AVX512
    if (nc >= 64)
        lmu_fft__v_cfft(plan, nc, in, 0, xr, xi, wr, wi, NULL, 0, &zr, &zi);
    else
#endif
    {
        for (k = 0; k < nc; k++) {
            xr[k] = in[2 * k];
            xi[k] = in[2 * k + 1];
        }
        lmu_fft__cfft_split(plan, nc, xr, xi, wr, wi, &zr, &zi);
    }
    z0r = zr[0];
    z0i = zi[0];
#ifdef LMU_FFT__AVX512
    if (nc >= 64) {
        lmu_fft__v_rpost(nc, zr, zi, cs, sn, out);
        kend = 16;
    }
#endif
    for (k = 1; k < kend; k++) {
        float ar = zr[k], ai = zi[k], br = zr[nc - k], bi = zi[nc - k];
        float er = 0.5f * (ar + br), ei = 0.5f * (ai - bi);
        float or_ = 0.5f * (ai + bi), oi = 0.5f * (br - ar);
        float c = cs[k], sv = sn[k];
        /* w^k = c - i sv */
        out[2 * k] = er + c * or_ + sv * oi;
        out[2 * k + 1] = ei + c * oi - sv * or_;
    }
    out[0] = z0r + z0i;
    out[1] = 0.0f;
    out[2 * nc] = z0r - z0i;
    out[2 * nc + 1] = 0.0f;
}

/* Real inverse: Z_k = (X_k + conj X_nc-k) + i (X_k - conj X_nc-k) conj(w^k),
   which is 2x the forward's Z, so the unscaled nc-point inverse gives
   n/2 * 2 = n times the signal, as the convention says. */
LMU_FFT__PRIVATE void lmu_fft__real_inv(const lmu_fft_plan *plan, const float *in,
                                        float *out, float *scratch)
{
    size_t nc = plan->nc, k, kend = nc;
    float *s = lmu_fft__align(scratch);
    float *xr = s, *xi = s + nc, *wr = s + 2 * nc, *wi = s + 3 * nc, *zr, *zi;
    const float *cs = plan->rtw, *sn = plan->rtw + nc;
    float x0, xn;
    if (plan->n == 1) {
        out[0] = in[0];
        return;
    }
    x0 = in[0];
    xn = in[2 * nc];
#ifdef LMU_FFT__AVX512
    if (nc >= 64) {
        lmu_fft__v_rpre(nc, in, cs, sn, xr, xi);
        kend = 16;
    }
#endif
    for (k = 1; k < kend; k++) {
        float ar = in[2 * k], ai = in[2 * k + 1];
        float br = in[2 * (nc - k)], bi = in[2 * (nc - k) + 1];
        float er = ar + br, ei = ai - bi;  /* X_k + conj X_nc-k */
        float dr = ar - br, di = ai + bi;  /* X_k - conj X_nc-k */
        float c = cs[k], sv = sn[k];
        /* o = d * conj(w^k) = d * (c + i sv) */
        float or_ = dr * c - di * sv, oi = dr * sv + di * c;
        xr[k] = er - oi;
        xi[k] = ei + or_;
    }
    xr[0] = x0 + xn;
    xi[0] = x0 - xn;
    /* inverse via swap: feed (im, re), read the result back as (im, re) */
#ifdef LMU_FFT__AVX512
    if (nc >= 64) {
        lmu_fft__v_cfft(plan, nc, NULL, 0, xi, xr, wi, wr, out, 1, &zi, &zr);
        return;
    }
#endif
    lmu_fft__cfft_split(plan, nc, xi, xr, wi, wr, &zi, &zr);
    for (k = 0; k < nc; k++) {
        out[2 * k] = zr[k];
        out[2 * k + 1] = zi[k];
    }
}

LMU_FFT__PRIVATE void lmu_fft__exec(const lmu_fft_plan *plan, const float *in,
                                    float *out, float *scratch, int inv)
{
    if (plan->kind == LMU_FFT_COMPLEX)
        lmu_fft__complex(plan, in, out, scratch, inv);
    else if (inv)
        lmu_fft__real_inv(plan, in, out, scratch);
    else
        lmu_fft__real_fwd(plan, in, out, scratch);
}

LMU_FFT_DEF int lmu_fft_forward(const lmu_fft_plan *plan, const float *in,
                                float *out, float *scratch)
{
    if (!plan || !in || !out || !scratch) return LMU_FFT_ERR_NULL;
    lmu_fft__exec(plan, in, out, scratch, 0);
    return LMU_FFT_OK;
}

LMU_FFT_DEF int lmu_fft_inverse(const lmu_fft_plan *plan, const float *in,
                                float *out, float *scratch)
{
    if (!plan || !in || !out || !scratch) return LMU_FFT_ERR_NULL;
    lmu_fft__exec(plan, in, out, scratch, 1);
    return LMU_FFT_OK;
}

LMU_FFT__PRIVATE int lmu_fft__batch(const lmu_fft_plan *plan, size_t batch,
                                    const float *in, size_t is, float *out, size_t os,
                                    float *scratch, size_t scratch_floats, int inv)
{
    size_t per, nt;
    if (!plan || !scratch || (batch && (!in || !out))) return LMU_FFT_ERR_NULL;
    per = lmu_fft_scratch_floats(plan);
    nt = scratch_floats / per;
    if (nt == 0) return LMU_FFT_ERR_SCRATCH;
#ifdef _OPENMP
    {
        size_t mt = (size_t)omp_get_max_threads();
        if (nt > mt) nt = mt;
        if (nt > batch) nt = batch;
    }
    if (nt > 1) {
        long b, nb = (long)batch;
        LMU_FFT__OMP(omp parallel num_threads((int)nt))
        {
            float *sc = scratch + (size_t)omp_get_thread_num() * per;
            LMU_FFT__OMP(omp for schedule(static))
            for (b = 0; b < nb; b++)
                lmu_fft__exec(plan, in + (size_t)b * is, out + (size_t)b * os, sc, inv);
        }
        return LMU_FFT_OK;
    }
#endif
    {
        size_t b;
        for (b = 0; b < batch; b++)
            lmu_fft__exec(plan, in + b * is, out + b * os, scratch, inv);
    }
    return LMU_FFT_OK;
}

LMU_FFT_DEF int lmu_fft_forward_batch(const lmu_fft_plan *plan, size_t batch,
                                      const float *in, size_t in_stride,
                                      float *out, size_t out_stride,
                                      float *scratch, size_t scratch_floats)
{
    return lmu_fft__batch(plan, batch, in, in_stride, out, out_stride, scratch,
                          scratch_floats, 0);
}

LMU_FFT_DEF int lmu_fft_inverse_batch(const lmu_fft_plan *plan, size_t batch,
                                      const float *in, size_t in_stride,
                                      float *out, size_t out_stride,
                                      float *scratch, size_t scratch_floats)
{
    return lmu_fft__batch(plan, batch, in, in_stride, out, out_stride, scratch,
                          scratch_floats, 1);
}

/* >>conv (implementation)
   Scratch layout for a real plan of size N: the transform's 2N floats, then
   three N+2 float buffers A, B, C (each rounded to 16 floats). */

LMU_FFT_DEF size_t lmu_fft_conv_len(size_t n)
{
    if (n == 0 || n > ((size_t)-1) / 4) return 0;
    return lmu_fft_next_pow2(2 * n);
}

LMU_FFT__PRIVATE int lmu_fft__conv_check(const lmu_fft_plan *plan, size_t n)
{
    if (plan->kind != LMU_FFT_REAL) return LMU_FFT_ERR_KIND;
    if (n == 0 || plan->n < 2 * n) return LMU_FFT_ERR_SIZE;
    return LMU_FFT_OK;
}

/* The three conv buffers, after the transform's part of scratch (both
   measured from the same 64-byte aligned base, which eats at most 15 of
   the 16 spare floats). */
LMU_FFT__PRIVATE float *lmu_fft__conv_buf(const lmu_fft_plan *plan, float *scratch, int i)
{
    float *base = lmu_fft__align(scratch) + lmu_fft__round16(4 * plan->nc);
    return base + (size_t)i * lmu_fft__round16(plan->n + 2);
}

/* X = forward(x zero-padded to N); X may be any n+2 float buffer. */
LMU_FFT__PRIVATE void lmu_fft__padded_fwd(const lmu_fft_plan *plan, const float *x, size_t n,
                                          float *X, float *scratch)
{
    float *pad = lmu_fft__conv_buf(plan, scratch, 2);
    memcpy(pad, x, n * sizeof(float));
    memset(pad + n, 0, (plan->n - n) * sizeof(float));
    lmu_fft__real_fwd(plan, pad, X, scratch);
}

/* y = first n of inverse(S) / N; S is left unmodified. */
LMU_FFT__PRIVATE void lmu_fft__finish(const lmu_fft_plan *plan, const float *S, size_t n,
                                      float *y, float *scratch)
{
    float *full = lmu_fft__conv_buf(plan, scratch, 2);
    float scale = 1.0f / (float)plan->n;
    size_t t;
    lmu_fft__real_inv(plan, S, full, scratch);
    for (t = 0; t < n; t++) y[t] = full[t] * scale;
}

LMU_FFT_DEF void lmu_fft_spectrum_mac(size_t nbins, float *acc, const float *a,
                                      const float *b, int conj_b)
{
    size_t k;
    if (!acc || !a || !b) return;
    if (conj_b) {
        for (k = 0; k < nbins; k++) {
            float ar = a[2 * k], ai = a[2 * k + 1], br = b[2 * k], bi = b[2 * k + 1];
            acc[2 * k] += ar * br + ai * bi;
            acc[2 * k + 1] += ai * br - ar * bi;
        }
    } else {
        for (k = 0; k < nbins; k++) {
            float ar = a[2 * k], ai = a[2 * k + 1], br = b[2 * k], bi = b[2 * k + 1];
            acc[2 * k] += ar * br - ai * bi;
            acc[2 * k + 1] += ai * br + ar * bi;
        }
    }
}

LMU_FFT_DEF int lmu_fft_conv_spectrum(const lmu_fft_plan *plan, const float *x,
                                      size_t n, float *X, float *scratch)
{
    int r;
    if (!plan || !x || !X || !scratch) return LMU_FFT_ERR_NULL;
    r = lmu_fft__conv_check(plan, n);
    if (r != LMU_FFT_OK) return r;
    lmu_fft__padded_fwd(plan, x, n, X, scratch);
    return LMU_FFT_OK;
}

LMU_FFT_DEF int lmu_fft_conv_finish(const lmu_fft_plan *plan, const float *S,
                                    size_t n, float *y, float *scratch)
{
    int r;
    if (!plan || !S || !y || !scratch) return LMU_FFT_ERR_NULL;
    r = lmu_fft__conv_check(plan, n);
    if (r != LMU_FFT_OK) return r;
    lmu_fft__finish(plan, S, n, y, scratch);
    return LMU_FFT_OK;
}

LMU_FFT__PRIVATE int lmu_fft__oneshot(const lmu_fft_plan *plan, const float *a,
                                      const float *h, size_t n, float *y,
                                      float *scratch, int conj_b)
{
    int r;
    float *A, *B;
    size_t nb;
    if (!plan || !a || !h || !y || !scratch) return LMU_FFT_ERR_NULL;
    r = lmu_fft__conv_check(plan, n);
    if (r != LMU_FFT_OK) return r;
    A = lmu_fft__conv_buf(plan, scratch, 0);
    B = lmu_fft__conv_buf(plan, scratch, 1);
    nb = plan->n / 2 + 1;
    lmu_fft__padded_fwd(plan, a, n, A, scratch);
    lmu_fft__padded_fwd(plan, h, n, B, scratch);
    {
        /* A <- A * B (or A * conj B), in place */
        size_t k;
        for (k = 0; k < nb; k++) {
            float ar = A[2 * k], ai = A[2 * k + 1], br = B[2 * k], bi = B[2 * k + 1];
            if (conj_b) bi = -bi;
            A[2 * k] = ar * br - ai * bi;
            A[2 * k + 1] = ai * br + ar * bi;
        }
    }
    lmu_fft__finish(plan, A, n, y, scratch);
    return LMU_FFT_OK;
}

LMU_FFT_DEF int lmu_fft_causal_conv(const lmu_fft_plan *plan, const float *u,
                                    const float *h, size_t n, float *y,
                                    float *scratch)
{
    return lmu_fft__oneshot(plan, u, h, n, y, scratch, 0);
}

LMU_FFT_DEF int lmu_fft_causal_corr(const lmu_fft_plan *plan, const float *d,
                                    const float *h, size_t n, float *g,
                                    float *scratch)
{
    return lmu_fft__oneshot(plan, d, h, n, g, scratch, 1);
}

LMU_FFT_DEF int lmu_fft_conv_many(const lmu_fft_plan *plan, const float *U,
                                  size_t nk, const float *H, size_t h_stride,
                                  size_t n, float *y, size_t y_stride,
                                  float *scratch)
{
    int r;
    size_t k, j, nb;
    float *P;
    if (!plan || !U || !scratch || (nk && (!H || !y))) return LMU_FFT_ERR_NULL;
    r = lmu_fft__conv_check(plan, n);
    if (r != LMU_FFT_OK) return r;
    P = lmu_fft__conv_buf(plan, scratch, 0);
    nb = plan->n / 2 + 1;
    for (k = 0; k < nk; k++) {
        const float *Hk = H + k * h_stride;
        for (j = 0; j < nb; j++) {
            float ar = U[2 * j], ai = U[2 * j + 1], br = Hk[2 * j], bi = Hk[2 * j + 1];
            P[2 * j] = ar * br - ai * bi;
            P[2 * j + 1] = ai * br + ar * bi;
        }
        lmu_fft__finish(plan, P, n, y + k * y_stride, scratch);
    }
    return LMU_FFT_OK;
}

#endif /* LMU_FFT_IMPLEMENTATION_DONE */
#endif /* LMU_FFT_IMPLEMENTATION */

/*
   MIT License. Copyright (c) 2026 The lmu.h authors. Permission is hereby
   granted, free of charge, to any person obtaining a copy of this software
   and associated documentation files (the "Software"), to deal in the
   Software without restriction, including without limitation the rights to
   use, copy, modify, merge, publish, distribute, sublicense, and/or sell
   copies of the Software, and to permit persons to whom the Software is
   furnished to do so, subject to the following conditions: The above
   copyright notice and this permission notice shall be included in all
   copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED
   "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
   NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
   PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT
   HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
   ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
   CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
*/
