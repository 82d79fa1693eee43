/* >>decl-begin gemm */
#ifndef LMU_PART_GEMM_H
#define LMU_PART_GEMM_H
#ifdef __cplusplus
extern "C" {
#endif

/* ====================================================================== */
/* >>gemm                                                                  */
/* ====================================================================== */
/* Single-precision matrix multiply, row-major like cblas_sgemm with
   CblasRowMajor:

       C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C

   op(A) = A (trans_a == 0, A stored M x K, lda >= K) or A^T (trans_a != 0,
   A stored K x M, lda >= M); likewise op(B) = B (K x N stored, ldb >= N) or
   B^T (N x K stored, ldb >= K); ldc >= N. For a linear layer y = x W^T with
   x:[T, in] and W:[out, in] (PyTorch layout):
       forward  y  = x W^T   lmu_sgemm(ws, 0, 1, T,   out, in, ...)   NT
       input    dx = dy W    lmu_sgemm(ws, 0, 0, T,   in,  out, ...)  NN
       weight   dW = dy^T x  lmu_sgemm(ws, 1, 0, out, in,  T, ...)    TN

   beta == 0 means C is write-only: whatever it held (NaN included) is
   ignored. alpha == 0 or K == 0 reads neither A nor B.

   The algorithm is the packed, register-blocked one of BLIS (Goto & van de
   Geijn): op(A) is packed into MR-row micro-panels and op(B) into
   NR-column micro-panels, so one micro-kernel serves all four transpose
   combinations. With -fopenmp, C is cut into one rectangle per thread; each
   thread packs its own panels into its slice of the workspace and owns its
   C elements. Every C element is summed in the same order (K is blocked
   the same way whatever the thread count), so results are bit-identical
   for any thread count, not merely for a fixed one.

   Micro-kernels: AVX-512F (14x32) when the compiler targets it, else
   AVX2+FMA (6x16), else portable C written for auto-vectorisation. Define
   LMU_NO_SIMD (globally) to force the portable C kernel. */

/* Packing buffers for lmu_sgemm: one 64-byte aligned slice per thread.
   Make it once (lmu_gemm_ws_create, or lmu_gemm_ws_init on memory you
   own) and reuse it: a call given a workspace never allocates. Not for two
   concurrent lmu_sgemm calls. */
typedef struct lmu_gemm_ws {
    float *buf;          /* nthreads slices of slice_floats floats */
    size_t slice_floats; /* per-thread slice, a multiple of 16 floats */
    int nthreads;        /* most threads a call with this workspace uses */
    int owned;           /* buf came from lmu_gemm_ws_create */
} lmu_gemm_ws;

/* Bytes a workspace for nthreads threads needs (nthreads <= 0: the
   OpenMP thread count, 1 without OpenMP). Independent of the shapes. */
LMUDEF size_t lmu_gemm_ws_bytes(int nthreads);

/* Allocates a workspace for nthreads threads (<= 0: the OpenMP thread
   count). Returns LMU_OK, LMU_ERR_ARG (ws NULL) or LMU_ERR_NOMEM.
   See also lmu_gemm_ws_destroy. */
LMUDEF lmu_result lmu_gemm_ws_create(lmu_gemm_ws *ws, int nthreads);

/* Places a workspace on caller memory (64-byte aligned, at least
   lmu_gemm_ws_bytes(nthreads) bytes), e.g. inside a model arena. The
   memory stays the caller's; lmu_gemm_ws_destroy does not free it.
   Returns LMU_OK or LMU_ERR_ARG (NULL, misaligned or too small). */
LMUDEF lmu_result lmu_gemm_ws_init(lmu_gemm_ws *ws, int nthreads, void *mem, size_t bytes);

/* Frees what lmu_gemm_ws_create allocated and zeroes *ws. NULL is fine. */
LMUDEF void lmu_gemm_ws_destroy(lmu_gemm_ws *ws);

/* C = alpha * op(A) * op(B) + beta * C (row-major, see above).
   [in, optional] ws       packing workspace; NULL allocates one for this
                           call and frees it (convenient, not for hot loops)
   [in]  trans_a, trans_b  0: as stored; non-zero: transposed
   [in]  M, N, K           op(A) is M x K, op(B) is K x N, C is M x N
   [in]  A, lda / B, ldb   row pitches in floats of A and B as stored
   [in, out] C, ldc        row pitch of C in floats, ldc >= N
   Uses min(ws->nthreads, OpenMP thread count) threads, fewer for small
   products. Returns LMU_OK, LMU_ERR_ARG (NULL pointer, leading dimension
   below the stored width, sizes overflowing size_t) or LMU_ERR_NOMEM (only
   when ws is NULL). */
LMUDEF lmu_result lmu_sgemm(lmu_gemm_ws *ws, int trans_a, int trans_b,
                            size_t M, size_t N, size_t K, float alpha,
                            const float *A, size_t lda, const float *B, size_t ldb,
                            float beta, float *C, size_t ldc);

#ifdef __cplusplus
}
#endif
#endif
/* >>decl-end gemm */

/* >>impl-begin gemm */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_PART_GEMM_IMPL_DONE)
#define LMU_PART_GEMM_IMPL_DONE

/* Register block MR x NR and cache blocks. The A block (MC x KC) is meant
   to stay in L2 while B micro-panels (KC x NR) are reused from L1 across
   the MR-row panels; the B block (KC x NC) lives in L3. Packing buffers
   are shared by every kernel of one build, so the portable kernel uses the
   same MR x NR as the SIMD one and tests can swap them freely. */
#if !defined(LMU_NO_SIMD) && defined(__AVX512F__)
#define LMU__GEMM_AVX512 1
#define LMU__GEMM_MR 14
#define LMU__GEMM_NR 32
#elif !defined(LMU_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define LMU__GEMM_AVX2 1
#define LMU__GEMM_MR 6
#define LMU__GEMM_NR 16
#else
#define LMU__GEMM_MR 6
#define LMU__GEMM_NR 16
#endif
#ifndef LMU__GEMM_KC
#define LMU__GEMM_KC 256
#endif
#ifndef LMU__GEMM_MC
#define LMU__GEMM_MC (LMU__GEMM_MR * 12)
#endif
#ifndef LMU__GEMM_NC
#define LMU__GEMM_NC 4096
#endif

#if defined(LMU__GEMM_AVX512) || defined(LMU__GEMM_AVX2)
#include <immintrin.h>
#endif

/* The portable kernel fuses multiply-add only where that is a single
   instruction; a libm fmaf() call per element would be far slower than
   the rounding difference is worth. */
#ifdef FP_FAST_FMAF
#define LMU__GEMM_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define LMU__GEMM_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* One micro-kernel call: C[MR x w] (pitch ldc) = alpha * Ap * Bp +
   beta * C, where Ap is an MR x kc micro-panel (column by column) and Bp a
   kc x w micro-panel (row by row), w = NR for the full kernel and NR/2 for
   the half one. beta == 0 never reads C. */
typedef void (*lmu__gemm_kernel_fn)(size_t kc, const float *ap, const float *bp,
                                    float *c, size_t ldc, float alpha, float beta);

/* A full-width kernel and a half-width one for the last B panel: N = 204
   or N = 48 would otherwise waste up to half a panel of FMAs (48 = 32 +
   16). Both sum each element in the same order, so which one produced an
   element never changes its bits. */
typedef void (*lmu__gemm_pack_fn)(int trans, const float *X, size_t ldx, size_t r0, size_t rn,
                                  size_t c0, size_t cn, float *dst);
typedef struct lmu__gemm_kernels {
    lmu__gemm_kernel_fn full, half;
    lmu__gemm_pack_fn pack_a, pack_b;
} lmu__gemm_kernels;

#define LMU__GEMM_NRH (LMU__GEMM_NR / 2)

/* Portable kernels. The accumulator tile is a local array with
   compile-time bounds so gcc/clang keep it in vector registers and
   vectorise the j loop. The update formulas are the SIMD kernels' ones, so
   both paths round alike where the hardware fuses. */
#define LMU__GEMM_GENERIC(name, W)                                                              \
    LMU__PRIVATE void name(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,   \
                           float alpha, float beta)                                             \
    {                                                                                           \
        float acc[LMU__GEMM_MR][W];                                                             \
        size_t p;                                                                               \
        int i, j;                                                                               \
        for (i = 0; i < LMU__GEMM_MR; i++)                                                      \
            for (j = 0; j < (W); j++) acc[i][j] = 0.0f;                                         \
        for (p = 0; p < kc; p++) {                                                              \
            const float *a = ap + p * LMU__GEMM_MR, *b = bp + p * (W);                          \
            for (i = 0; i < LMU__GEMM_MR; i++) {                                                \
                float ai = a[i];                                                                \
                for (j = 0; j < (W); j++) acc[i][j] = LMU__GEMM_FMA(ai, b[j], acc[i][j]);       \
            }                                                                                   \
        }                                                                                       \
        for (i = 0; i < LMU__GEMM_MR; i++) {                                                    \
            float *ci = c + (size_t)i * ldc;                                                    \
            if (beta == 0.0f)                                                                   \
                for (j = 0; j < (W); j++) ci[j] = alpha * acc[i][j];                            \
            else if (beta == 1.0f)                                                              \
                for (j = 0; j < (W); j++) ci[j] = LMU__GEMM_FMA(alpha, acc[i][j], ci[j]);       \
            else                                                                                \
                for (j = 0; j < (W); j++) ci[j] = LMU__GEMM_FMA(beta, ci[j], alpha * acc[i][j]); \
        }                                                                                       \
    }
LMU__GEMM_GENERIC(lmu__gemm_kernel_generic, LMU__GEMM_NR)
LMU__GEMM_GENERIC(lmu__gemm_kernel_generic_h, LMU__GEMM_NRH)


/* SIMD kernels, written once for any vector width: the type, the floats
   per register (VW) and the intrinsics come in through macros. Row i of C
   uses accumulators c<i>0 and, in the full kernel, c<i>1. */
#define LMU__KV_DECL2(i) LMU__V c##i##0 = LMU__VZERO(), c##i##1 = LMU__VZERO();
#define LMU__KV_DECL1(i) LMU__V c##i##0 = LMU__VZERO();
#define LMU__KV_FMA2(i)                                                        \
    {                                                                          \
        LMU__V a_ = LMU__VBCAST(ap + i);                                       \
        c##i##0 = LMU__VFMA(a_, b0, c##i##0);                                  \
        c##i##1 = LMU__VFMA(a_, b1, c##i##1);                                  \
    }
#define LMU__KV_FMA1(i) c##i##0 = LMU__VFMA(LMU__VBCAST(ap + i), b0, c##i##0);
#define LMU__KV_C(i, h) (c + (size_t)(i)*ldc + (h)*LMU__VW)
#define LMU__KV_ST0(i, h) LMU__VSTU(LMU__KV_C(i, h), LMU__VMUL(va, c##i##h));
#define LMU__KV_ST1(i, h)                                                      \
    LMU__VSTU(LMU__KV_C(i, h), LMU__VFMA(va, c##i##h, LMU__VLDU(LMU__KV_C(i, h))));
#define LMU__KV_STB(i, h)                                                      \
    LMU__VSTU(LMU__KV_C(i, h), LMU__VFMA(vb, LMU__VLDU(LMU__KV_C(i, h)), LMU__VMUL(va, c##i##h)));
#define LMU__KV_ST0_2(i) LMU__KV_ST0(i, 0) LMU__KV_ST0(i, 1)
#define LMU__KV_ST1_2(i) LMU__KV_ST1(i, 0) LMU__KV_ST1(i, 1)
#define LMU__KV_STB_2(i) LMU__KV_STB(i, 0) LMU__KV_STB(i, 1)
#define LMU__KV_ST0_1(i) LMU__KV_ST0(i, 0)
#define LMU__KV_ST1_1(i) LMU__KV_ST1(i, 0)
#define LMU__KV_STB_1(i) LMU__KV_STB(i, 0)
/* C is touched only after the k loop; asking for its rows first lets the
   misses (rows are far apart for large N) overlap the arithmetic. */
#define LMU__KV_PF(i) _mm_prefetch((const char *)LMU__KV_C(i, 0), _MM_HINT_T0);
#define LMU__KV_LDB2                                                           \
    LMU__V b0 = LMU__VLD(bp), b1 = LMU__VLD(bp + LMU__VW);
#define LMU__KV_LDB1 LMU__V b0 = LMU__VLD(bp);

/* NV = 2 (full, NR = 2 registers per row) or 1 (half). */
#define LMU__GEMM_SIMD(name, NV)                                                                \
    LMU__PRIVATE void name(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,   \
                           float alpha, float beta)                                             \
    {                                                                                           \
        LMU__V va, vb;                                                                          \
        size_t p;                                                                               \
        LMU__GEMM_ROWS(LMU__KV_DECL##NV)                                                        \
        if (beta != 0.0f) {                                                                     \
            LMU__GEMM_ROWS(LMU__KV_PF)                                                          \
        }                                                                                       \
        for (p = 0; p < kc; p++) {                                                              \
            LMU__KV_LDB##NV                                                                     \
            LMU__GEMM_ROWS(LMU__KV_FMA##NV)                                                     \
            ap += LMU__GEMM_MR;                                                                 \
            bp += NV * LMU__VW;                                                                 \
        }                                                                                       \
        va = LMU__VSET1(alpha);                                                                 \
        vb = LMU__VSET1(beta);                                                                  \
        if (beta == 0.0f) {                                                                     \
            LMU__GEMM_ROWS(LMU__KV_ST0_##NV)                                                    \
        } else if (beta == 1.0f) {                                                              \
            LMU__GEMM_ROWS(LMU__KV_ST1_##NV)                                                    \
        } else {                                                                                \
            LMU__GEMM_ROWS(LMU__KV_STB_##NV)                                                    \
        }                                                                                       \
        (void)vb;                                                                               \
    }

#if defined(LMU__GEMM_AVX512)
/* 14 x 32: 28 zmm accumulators cover the FMA latency of two FMA pipes with
   room to spare and leave registers for 2 B vectors and the broadcast. Per
   k step 2 B loads and 14 broadcasts feed 28 FMAs. */
#define LMU__V __m512
#define LMU__VW 16
#define LMU__VZERO() _mm512_setzero_ps()
#define LMU__VBCAST(p) _mm512_set1_ps(*(p))
#define LMU__VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define LMU__VMUL(a, b) _mm512_mul_ps(a, b)
#define LMU__VLD(p) _mm512_load_ps(p)
#define LMU__VLDU(p) _mm512_loadu_ps(p)
#define LMU__VSTU(p, v) _mm512_storeu_ps(p, v)
#define LMU__VSET1(x) _mm512_set1_ps(x)
#define LMU__GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define LMU__GEMM_SIMD_NAME "avx512"
#elif defined(LMU__GEMM_AVX2)
/* 6 x 16 with ymm: 12 accumulators, 2 B registers, 1 broadcast. */
#define LMU__V __m256
#define LMU__VW 8
#define LMU__VZERO() _mm256_setzero_ps()
#define LMU__VBCAST(p) _mm256_broadcast_ss(p)
#define LMU__VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define LMU__VMUL(a, b) _mm256_mul_ps(a, b)
#define LMU__VLD(p) _mm256_load_ps(p)
#define LMU__VLDU(p) _mm256_loadu_ps(p)
#define LMU__VSTU(p, v) _mm256_storeu_ps(p, v)
#define LMU__VSET1(x) _mm256_set1_ps(x)
#define LMU__GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define LMU__GEMM_SIMD_NAME "avx2+fma"
#endif

#ifdef LMU__GEMM_ROWS
LMU__GEMM_SIMD(lmu__gemm_kernel_simd, 2)
LMU__GEMM_SIMD(lmu__gemm_kernel_simd_h, 1)
#else
#define LMU__GEMM_SIMD_NAME "portable"
#endif

/* Sizes in floats of the three parts of one thread's slice: one MR x NR
   tile for edges, the A block and the B block. Each is a multiple of 16 floats
   so every part starts 64-byte aligned. */
#define LMU__GEMM_ROUND16(x) (((x) + 15u) & ~(size_t)15u)

LMU__PRIVATE size_t lmu__gemm_slice_floats(size_t mc, size_t kc, size_t nc)
{
    return LMU__GEMM_ROUND16((size_t)LMU__GEMM_MR * LMU__GEMM_NR) + LMU__GEMM_ROUND16(mc * kc) +
           LMU__GEMM_ROUND16(kc * nc);
}

LMU__PRIVATE int lmu__gemm_threads(int nthreads)
{
    if (nthreads <= 0) nthreads = lmu__thread_count();
    return nthreads < 1 ? 1 : nthreads;
}

LMUDEF size_t lmu_gemm_ws_bytes(int nthreads)
{
    size_t slice = lmu__gemm_slice_floats(LMU__GEMM_MC, LMU__GEMM_KC, LMU__GEMM_NC);
    return (size_t)lmu__gemm_threads(nthreads) * slice * sizeof(float);
}

LMUDEF lmu_result lmu_gemm_ws_init(lmu_gemm_ws *ws, int nthreads, void *mem, size_t bytes)
{
    if (!ws || !mem || ((uintptr_t)mem & 63u) != 0) return LMU_ERR_ARG;
    nthreads = lmu__gemm_threads(nthreads);
    if (bytes < lmu_gemm_ws_bytes(nthreads)) return LMU_ERR_ARG;
    ws->buf = (float *)mem;
    ws->slice_floats = lmu__gemm_slice_floats(LMU__GEMM_MC, LMU__GEMM_KC, LMU__GEMM_NC);
    ws->nthreads = nthreads;
    ws->owned = 0;
    return LMU_OK;
}

LMUDEF lmu_result lmu_gemm_ws_create(lmu_gemm_ws *ws, int nthreads)
{
    size_t bytes;
    void *mem;
    if (!ws) return LMU_ERR_ARG;
    /* A failed create leaves a workspace that destroy accepts. */
    ws->buf = NULL;
    ws->slice_floats = 0;
    ws->nthreads = 0;
    ws->owned = 0;
    nthreads = lmu__gemm_threads(nthreads);
    bytes = lmu_gemm_ws_bytes(nthreads);
    mem = lmu__alloc_aligned(bytes);
    if (!mem) return LMU_ERR_NOMEM;
    lmu_gemm_ws_init(ws, nthreads, mem, bytes);
    ws->owned = 1;
    return LMU_OK;
}

LMUDEF void lmu_gemm_ws_destroy(lmu_gemm_ws *ws)
{
    if (!ws) return;
    if (ws->owned) lmu__free_aligned(ws->buf);
    ws->buf = NULL;
    ws->slice_floats = 0;
    ws->nthreads = 0;
    ws->owned = 0;
}

/* Packs rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into MR-row
   micro-panels, each stored k-major (MR consecutive floats per k), rows
   past the edge zero so the kernel never needs a short variant. */
LMU__PRIVATE void lmu__gemm_pack_a_c(int trans, const float *A, size_t lda, size_t i0,
                                   size_t mc, size_t p0, size_t kc, float *ap)
{
    const size_t MR = LMU__GEMM_MR;
    size_t ip, p, i;
    for (ip = 0; ip < mc; ip += MR) {
        size_t m = mc - ip < MR ? mc - ip : MR;
        float *dst = ap + ip * kc;
        if (trans) {
            /* A^T stored K x M: each k gives MR contiguous floats. */
            const float *src = A + p0 * lda + i0 + ip;
            if (m == MR) {
                for (p = 0; p < kc; p++)
                    for (i = 0; i < MR; i++) dst[p * MR + i] = src[p * lda + i];
            } else {
                for (p = 0; p < kc; p++)
                    for (i = 0; i < MR; i++) dst[p * MR + i] = i < m ? src[p * lda + i] : 0.0f;
            }
        } else {
            /* A stored M x K: MR rows read side by side, each sequentially,
               so every cache line fetched is used whole. */
            const float *src = A + (i0 + ip) * lda + p0;
            if (m == MR) {
                for (p = 0; p < kc; p++)
                    for (i = 0; i < MR; i++) dst[p * MR + i] = src[i * lda + p];
            } else {
                for (p = 0; p < kc; p++)
                    for (i = 0; i < MR; i++) dst[p * MR + i] = i < m ? src[i * lda + p] : 0.0f;
            }
        }
    }
}

/* Packs rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into k-major
   micro-panels of NR columns; a last panel of at most NR/2 columns is
   packed NR/2 wide for the half kernel. Columns past the edge are zero. */
LMU__PRIVATE void lmu__gemm_pack_b_c(int trans, const float *B, size_t ldb, size_t p0,
                                   size_t kc, size_t j0, size_t nc, float *bp)
{
    size_t jp, p, j;
    for (jp = 0; jp < nc; jp += LMU__GEMM_NR) {
        size_t n = nc - jp < LMU__GEMM_NR ? nc - jp : LMU__GEMM_NR;
        size_t w = n <= LMU__GEMM_NRH ? LMU__GEMM_NRH : LMU__GEMM_NR;
        float *dst = bp + jp * kc;
        if (trans) {
            /* B^T stored N x K (a PyTorch weight): transpose in blocks of
               8 k so the w source rows are each read a line at a time. */
            const float *src = B + (j0 + jp) * ldb + p0;
            for (p = 0; p + 8 <= kc; p += 8) {
                size_t q;
                for (j = 0; j < n; j++)
                    for (q = 0; q < 8; q++) dst[(p + q) * w + j] = src[j * ldb + p + q];
                for (; j < w; j++)
                    for (q = 0; q < 8; q++) dst[(p + q) * w + j] = 0.0f;
            }
            for (; p < kc; p++)
                for (j = 0; j < w; j++) dst[p * w + j] = j < n ? src[j * ldb + p] : 0.0f;
        } else {
            const float *src = B + p0 * ldb + j0 + jp;
            if (n == w) {
                for (p = 0; p < kc; p++)
                    for (j = 0; j < w; j++) dst[p * w + j] = src[p * ldb + j];
            } else {
                for (p = 0; p < kc; p++)
                    for (j = 0; j < w; j++) dst[p * w + j] = j < n ? src[p * ldb + j] : 0.0f;
            }
        }
    }
}

#ifdef LMU__GEMM_AVX512
/* Transposes a 16 x 16 block: rows [0, nrows) of s (pitch ld, 16 floats
   each; missing rows read as zero) become the 16 stores d + q * ldd, each
   masked to `keep` lanes. Three shuffle stages (4-byte pairs, 8-byte
   pairs, 128-bit lanes twice) instead of 256 scalar moves: this is what
   makes packing a transposed operand cheap next to the kernel. */
LMU__PRIVATE void lmu__gemm_tr16(const float *s, size_t ld, size_t nrows, float *d, size_t ldd,
                                 __mmask16 keep)
{
    const __mmask16 all = 0xFFFF;
    __m512 r[16], t[16];
    size_t i;
    for (i = 0; i < 16; i++) r[i] = i < nrows ? _mm512_loadu_ps(s + i * ld) : _mm512_setzero_ps();
    /* The masked forms with an all-ones mask compile to the plain
       instructions; the unmasked intrinsics make g++ 12 warn inside its own
       header (GCC bug 105593). */
    for (i = 0; i < 16; i += 2) {
        t[i] = _mm512_mask_unpacklo_ps(r[i], all, r[i], r[i + 1]);
        t[i + 1] = _mm512_mask_unpackhi_ps(r[i], all, r[i], r[i + 1]);
    }
    for (i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (i = 0; i < 4; i++) {
        t[i] = _mm512_mask_shuffle_f32x4(r[i], all, r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_mask_shuffle_f32x4(r[i], all, r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_mask_shuffle_f32x4(r[i], all, r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_mask_shuffle_f32x4(r[i], all, r[i + 8], r[i + 12], 0xDD);
    }
    for (i = 0; i < 4; i++) {
        r[i] = _mm512_mask_shuffle_f32x4(t[i], all, t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_mask_shuffle_f32x4(t[i], all, t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_mask_shuffle_f32x4(t[i], all, t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_mask_shuffle_f32x4(t[i], all, t[i + 4], t[i + 12], 0xDD);
    }
    for (i = 0; i < 16; i++) _mm512_mask_storeu_ps(d + i * ldd, keep, r[i]);
}

/* lmu__gemm_pack_a_c with AVX-512 moves; same layout, same zeros. */
LMU__PRIVATE void lmu__gemm_pack_a_simd(int trans, const float *A, size_t lda, size_t i0,
                                        size_t mc, size_t p0, size_t kc, float *ap)
{
    const size_t MR = LMU__GEMM_MR;
    const __mmask16 all = (__mmask16)((1u << LMU__GEMM_MR) - 1u);
    size_t ip, p, i;
    for (ip = 0; ip < mc; ip += MR) {
        size_t m = mc - ip < MR ? mc - ip : MR;
        float *dst = ap + ip * kc;
        if (trans) {
            /* One masked load and store per k: never reads past row m. */
            const float *src = A + p0 * lda + i0 + ip;
            __mmask16 rows = (__mmask16)((1u << m) - 1u);
            for (p = 0; p < kc; p++)
                _mm512_mask_storeu_ps(dst + p * MR, all, _mm512_maskz_loadu_ps(rows, src + p * lda));
        } else {
            const float *src = A + (i0 + ip) * lda + p0;
            for (p = 0; p + 16 <= kc; p += 16) lmu__gemm_tr16(src + p, lda, m, dst + p * MR, MR, all);
            for (; p < kc; p++)
                for (i = 0; i < MR; i++) dst[p * MR + i] = i < m ? src[i * lda + p] : 0.0f;
        }
    }
}

/* lmu__gemm_pack_b_c with AVX-512 moves; same layout, same zeros. */
LMU__PRIVATE void lmu__gemm_pack_b_simd(int trans, const float *B, size_t ldb, size_t p0,
                                        size_t kc, size_t j0, size_t nc, float *bp)
{
    size_t jp, p, j;
    for (jp = 0; jp < nc; jp += LMU__GEMM_NR) {
        size_t n = nc - jp < LMU__GEMM_NR ? nc - jp : LMU__GEMM_NR;
        size_t w = n <= LMU__GEMM_NRH ? LMU__GEMM_NRH : LMU__GEMM_NR;
        float *dst = bp + jp * kc;
        if (trans) {
            const float *src = B + (j0 + jp) * ldb + p0;
            for (p = 0; p + 16 <= kc; p += 16) {
                lmu__gemm_tr16(src + p, ldb, n < 16 ? n : 16, dst + p * w, w, 0xFFFF);
                if (w == 32) lmu__gemm_tr16(src + 16 * ldb + p, ldb, n - 16, dst + p * w + 16, w, 0xFFFF);
            }
            for (; p < kc; p++)
                for (j = 0; j < w; j++) dst[p * w + j] = j < n ? src[j * ldb + p] : 0.0f;
        } else {
            const float *src = B + p0 * ldb + j0 + jp;
            __mmask16 lo = (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
            __mmask16 hi = (__mmask16)(n >= 32 ? 0xFFFFu : n > 16 ? (1u << (n - 16)) - 1u : 0u);
            if (w == 32) {
                for (p = 0; p < kc; p++) {
                    _mm512_store_ps(dst + p * 32, _mm512_maskz_loadu_ps(lo, src + p * ldb));
                    _mm512_store_ps(dst + p * 32 + 16, _mm512_maskz_loadu_ps(hi, src + p * ldb + 16));
                }
            } else {
                for (p = 0; p < kc; p++) _mm512_store_ps(dst + p * 16, _mm512_maskz_loadu_ps(lo, src + p * ldb));
            }
        }
    }
}
#endif

/* Kernel sets: the portable one (scalar packing, so one test binary also
   checks that), and the best this build has. */
static const lmu__gemm_kernels lmu__gemm_generic_kernels = {
    lmu__gemm_kernel_generic, lmu__gemm_kernel_generic_h, lmu__gemm_pack_a_c, lmu__gemm_pack_b_c};
#if defined(LMU__GEMM_AVX512)
static const lmu__gemm_kernels lmu__gemm_best_kernels = {
    lmu__gemm_kernel_simd, lmu__gemm_kernel_simd_h, lmu__gemm_pack_a_simd, lmu__gemm_pack_b_simd};
#elif defined(LMU__GEMM_ROWS)
static const lmu__gemm_kernels lmu__gemm_best_kernels = {
    lmu__gemm_kernel_simd, lmu__gemm_kernel_simd_h, lmu__gemm_pack_a_c, lmu__gemm_pack_b_c};
#else
static const lmu__gemm_kernels lmu__gemm_best_kernels = {
    lmu__gemm_kernel_generic, lmu__gemm_kernel_generic_h, lmu__gemm_pack_a_c, lmu__gemm_pack_b_c};
#endif

/* The k block size depends on K alone (never on the thread split): the
   blocks are what fixes each element's summation order. Balanced blocks
   avoid a thin last one (K = 816 -> 4 x 204, not 3 x 256 + 48). */
LMU__PRIVATE size_t lmu__gemm_kc(size_t K)
{
    size_t nb = (K + LMU__GEMM_KC - 1) / LMU__GEMM_KC;
    return (K + nb - 1) / nb;
}

typedef struct lmu__gemm_args {
    const lmu__gemm_kernels *kern;
    int trans_a, trans_b;
    size_t M, N, K;
    float alpha, beta;
    const float *A;
    size_t lda;
    const float *B;
    size_t ldb;
    float *C;
    size_t ldc;
} lmu__gemm_args;

/* One thread's share: C rows [m0, m1) x columns [n0, n1), the whole K,
   with the thread's own packing slice. */
LMU__PRIVATE void lmu__gemm_block(const lmu__gemm_args *g, size_t m0, size_t m1, size_t n0,
                                  size_t n1, float *slice)
{
    const size_t MR = LMU__GEMM_MR, NR = LMU__GEMM_NR, ldc = g->ldc;
    size_t kcmax = lmu__gemm_kc(g->K);
    /* B block last: its size is the only one that varies with the shape. */
    float *tile = slice;
    float *ap = tile + LMU__GEMM_ROUND16((size_t)LMU__GEMM_MR * LMU__GEMM_NR);
    float *bp = ap + LMU__GEMM_ROUND16((size_t)LMU__GEMM_MC * kcmax);
    size_t jc, pc, ic, jr, ir, i;
    /* The kernel reads all of the edge tile when beta != 0; only the valid
       part is ever copied in, so start from defined values. */
    for (i = 0; i < MR * NR; i++) tile[i] = 0.0f;
    for (jc = n0; jc < n1; jc += LMU__GEMM_NC) {
        size_t nc = n1 - jc < LMU__GEMM_NC ? n1 - jc : LMU__GEMM_NC;
        for (pc = 0; pc < g->K; pc += kcmax) {
            size_t kc = g->K - pc < kcmax ? g->K - pc : kcmax;
            /* Later k blocks add onto what the first one wrote. */
            float beta = pc == 0 ? g->beta : 1.0f;
            g->kern->pack_b(g->trans_b, g->B, g->ldb, pc, kc, jc, nc, bp);
            for (ic = m0; ic < m1; ic += LMU__GEMM_MC) {
                size_t mc = m1 - ic < LMU__GEMM_MC ? m1 - ic : LMU__GEMM_MC;
                g->kern->pack_a(g->trans_a, g->A, g->lda, ic, mc, pc, kc, ap);
                for (jr = 0; jr < nc; jr += NR) {
                    size_t n = nc - jr < NR ? nc - jr : NR;
                    size_t w = n <= LMU__GEMM_NRH ? LMU__GEMM_NRH : NR;
                    lmu__gemm_kernel_fn kern = w == NR ? g->kern->full : g->kern->half;
                    const float *bpj = bp + jr * kc;
                    for (ir = 0; ir < mc; ir += MR) {
                        size_t m = mc - ir < MR ? mc - ir : MR;
                        const float *api = ap + ir * kc;
                        float *c = g->C + (ic + ir) * ldc + jc + jr;
                        if (m == MR && n == w) {
                            kern(kc, api, bpj, c, ldc, g->alpha, beta);
                        } else {
                            /* Edge: the same kernel on a full tile, valid
                               part copied, so edge elements round exactly
                               like interior ones. */
                            if (beta != 0.0f)
                                for (i = 0; i < m; i++) memcpy(tile + i * w, c + i * ldc, n * sizeof(float));
                            kern(kc, api, bpj, tile, w, g->alpha, beta);
                            for (i = 0; i < m; i++) memcpy(c + i * ldc, tile + i * w, n * sizeof(float));
                        }
                    }
                }
            }
        }
    }
}

/* Splits C into tm x tn rectangles (tm * tn = nt) along MR/NR tile
   boundaries, picking the split whose busiest thread has the fewest tiles;
   ties go to splitting M, which keeps each thread's B panels wide. */
LMU__PRIVATE void lmu__gemm_grid(size_t M, size_t N, int nt, int *tm, int *tn)
{
    size_t mt = (M + LMU__GEMM_MR - 1) / LMU__GEMM_MR, ntl = (N + LMU__GEMM_NR - 1) / LMU__GEMM_NR;
    size_t best = (size_t)-1;
    int a;
    *tm = nt;
    *tn = 1;
    for (a = nt; a >= 1; a--) {
        size_t cost;
        int b;
        if (nt % a) continue;
        b = nt / a;
        cost = ((mt + (size_t)a - 1) / (size_t)a) * ((ntl + (size_t)b - 1) / (size_t)b);
        if (cost < best) {
            best = cost;
            *tm = a;
            *tn = b;
        }
    }
}

/* Half-open range of part `i` out of `parts` over `tiles` tiles of `w`
   elements each, clipped to `len`. */
LMU__PRIVATE void lmu__gemm_range(size_t len, size_t w, size_t i, size_t parts, size_t *lo, size_t *hi)
{
    size_t tiles = (len + w - 1) / w;
    size_t a = tiles * i / parts, b = tiles * (i + 1) / parts;
    *lo = a * w < len ? a * w : len;
    *hi = b * w < len ? b * w : len;
}

/* beta * C for the cases that need no product (K == 0 or alpha == 0). */
LMU__PRIVATE void lmu__gemm_scale(size_t M, size_t N, float beta, float *C, size_t ldc)
{
    size_t i, j;
    for (i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (j = 0; j < N; j++) c[j] *= beta;
    }
}

/* lmu_sgemm with a chosen micro-kernel; tests call it to check the
   portable kernel in a SIMD build. */
LMU__PRIVATE lmu_result lmu__sgemm_with(const lmu__gemm_kernels *kern, lmu_gemm_ws *ws, int trans_a,
                                        int trans_b, size_t M, size_t N, size_t K, float alpha,
                                        const float *A, size_t lda, const float *B, size_t ldb,
                                        float beta, float *C, size_t ldc)
{
    lmu__gemm_args g;
    lmu_gemm_ws tmp;
    size_t arows = trans_a ? K : M, acols = trans_a ? M : K;
    size_t brows = trans_b ? N : K, bcols = trans_b ? K : N;
    size_t work, t, need;
    int nt, tm, tn;
    if (!A || !B || !C) return LMU_ERR_ARG;
    if (lda < acols || ldb < bcols || ldc < N || lda == 0 || ldb == 0 || ldc == 0) return LMU_ERR_ARG;
    /* Every element offset below is < rows * ld, so checking that product
       once makes all later size_t arithmetic safe. */
    if (!lmu__mul_size(arows, lda, &t) || !lmu__mul_size(brows, ldb, &t) ||
        !lmu__mul_size(M, ldc, &t))
        return LMU_ERR_ARG;
    if (ws && (!ws->buf || ws->nthreads < 1)) return LMU_ERR_ARG;
    if (M == 0 || N == 0) return LMU_OK;
    if (K == 0 || alpha == 0.0f) {
        lmu__gemm_scale(M, N, beta, C, ldc);
        return LMU_OK;
    }

    nt = ws ? ws->nthreads : lmu__thread_count();
    if (nt > lmu__thread_count()) nt = lmu__thread_count();
    /* Below ~64^3 flops a fork/join costs more than it saves. */
    work = (M < 1024 ? M : 1024) * (N < 1024 ? N : 1024) * (K < 1024 ? K : 1024);
    if (work < (size_t)1 << 18) nt = 1;
    if (nt < 1) nt = 1;
    lmu__gemm_grid(M, N, nt, &tm, &tn);
    nt = tm * tn;

    {
        /* What lmu__gemm_block touches: tile, A block, B block (the last
           one no wider than N needs). */
        size_t kc = lmu__gemm_kc(K);
        size_t nc = (N + LMU__GEMM_NR - 1) / LMU__GEMM_NR * LMU__GEMM_NR;
        if (nc > LMU__GEMM_NC) nc = LMU__GEMM_NC;
        need = lmu__gemm_slice_floats(LMU__GEMM_MC, kc, nc);
    }
    if (!ws) {
        size_t bytes;
        if (!lmu__mul_size(need * sizeof(float), (size_t)nt, &bytes)) return LMU_ERR_NOMEM;
        tmp.buf = (float *)lmu__alloc_aligned(bytes);
        if (!tmp.buf) return LMU_ERR_NOMEM;
        tmp.slice_floats = need;
        tmp.nthreads = nt;
        tmp.owned = 1;
        ws = &tmp;
    } else if (ws->slice_floats < need) {
        return LMU_ERR_ARG;
    }

    g.kern = kern;
    g.trans_a = trans_a;
    g.trans_b = trans_b;
    g.M = M;
    g.N = N;
    g.K = K;
    g.alpha = alpha;
    g.beta = beta;
    g.A = A;
    g.lda = lda;
    g.B = B;
    g.ldb = ldb;
    g.C = C;
    g.ldc = ldc;
    if (nt == 1) {
        lmu__gemm_block(&g, 0, M, 0, N, ws->buf);
    } else {
        int part;
        /* Slices are indexed by the part, not the thread id, so a team
           smaller than asked for still never shares a slice. */
        LMU__OMP(omp parallel for schedule(static) num_threads(nt))
        for (part = 0; part < nt; part++) {
            size_t m0, m1, n0, n1;
            lmu__gemm_range(M, LMU__GEMM_MR, (size_t)(part / tn), (size_t)tm, &m0, &m1);
            lmu__gemm_range(N, LMU__GEMM_NR, (size_t)(part % tn), (size_t)tn, &n0, &n1);
            if (m0 < m1 && n0 < n1)
                lmu__gemm_block(&g, m0, m1, n0, n1, ws->buf + (size_t)part * ws->slice_floats);
        }
    }
    if (ws == &tmp) lmu__free_aligned(tmp.buf);
    return LMU_OK;
}

LMUDEF lmu_result lmu_sgemm(lmu_gemm_ws *ws, int trans_a, int trans_b, size_t M, size_t N,
                            size_t K, float alpha, const float *A, size_t lda, const float *B,
                            size_t ldb, float beta, float *C, size_t ldc)
{
    return lmu__sgemm_with(&lmu__gemm_best_kernels, ws, trans_a, trans_b, M, N, K, alpha, A, lda, B,
                           ldb, beta, C, ldc);
}

/* The portable path in any build: test oracle for the SIMD kernels. */
LMU__PRIVATE lmu_result lmu__sgemm_generic(lmu_gemm_ws *ws, int trans_a, int trans_b, size_t M,
                                           size_t N, size_t K, float alpha, const float *A,
                                           size_t lda, const float *B, size_t ldb, float beta,
                                           float *C, size_t ldc)
{
    return lmu__sgemm_with(&lmu__gemm_generic_kernels, ws, trans_a, trans_b, M, N, K, alpha, A, lda,
                           B, ldb, beta, C, ldc);
}

/* Naive triple loop: the readable definition and a fallback. Sums in
   double, so it is also the accuracy reference. No arguments checks beyond
   lmu_sgemm's contract: callers pass valid shapes. */
LMU__PRIVATE void lmu__sgemm_ref(int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                 float alpha, const float *A, size_t lda, const float *B,
                                 size_t ldb, float beta, float *C, size_t ldc)
{
    size_t i, j, p;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = 0.0;
            for (p = 0; p < K; p++) {
                float a = trans_a ? A[p * lda + i] : A[i * lda + p];
                float b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                s += (double)a * (double)b;
            }
            s *= alpha;
            if (beta != 0.0f) s += (double)beta * (double)C[i * ldc + j];
            C[i * ldc + j] = (float)s;
        }
}

#endif
/* >>impl-end gemm */
