/* gemm_probe.c - time one sgemm shape, lmu beside OpenBLAS (a tuning aid,
   not built by make).

   cc -std=c99 -O3 -march=native -fopenmp -I. tools/gemm_probe.c -o /tmp/gemm_probe \
      -DLMU_HAVE_OPENBLAS $(pkg-config --cflags --libs openblas) -lm
   env -u OPENBLAS_CORETYPE /tmp/gemm_probe M N K ta tb threads reps [lmu-only]

   Times by process CPU time (PROBE_WALL=1: wall clock): on a shared,
   oversubscribed machine that leaves out the time other programs held the
   core, which is what tuning a kernel needs. */
#define _GNU_SOURCE
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef LMU_HAVE_OPENBLAS
#include <cblas.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(getenv("PROBE_WALL") ? CLOCK_MONOTONIC : CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    size_t M, N, K, i, na, nb;
    int ta, tb, nt, reps, r, only;
    float *A, *B, *C;
    double fl, bl = 1e30, bo = 1e30;
    lmu_gemm_ws ws;
    if (argc < 8) return 1;
    M = (size_t)atol(argv[1]); N = (size_t)atol(argv[2]); K = (size_t)atol(argv[3]);
    ta = atoi(argv[4]); tb = atoi(argv[5]); nt = atoi(argv[6]); reps = atoi(argv[7]);
    only = argc > 8;
    na = M * K; nb = K * N;
    A = (float *)lmu__alloc_aligned(na * 4); B = (float *)lmu__alloc_aligned(nb * 4);
    C = (float *)lmu__alloc_aligned(M * N * 4);
    for (i = 0; i < na; i++) A[i] = (float)(i % 17) * 0.1f - 0.8f;
    for (i = 0; i < nb; i++) B[i] = (float)(i % 13) * 0.1f - 0.6f;
    for (i = 0; i < M * N; i++) C[i] = 0;
#ifdef _OPENMP
    omp_set_num_threads(nt);
#endif
#ifdef LMU_HAVE_OPENBLAS
    openblas_set_num_threads(nt);
#endif
    lmu_gemm_ws_create(&ws, nt);
    fl = 2.0 * (double)M * (double)N * (double)K;
    for (r = 0; r < reps; r++) {
        double t = now();
        lmu_sgemm(&ws, ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
        t = now() - t;
        if (t < bl) bl = t;
#ifdef LMU_HAVE_OPENBLAS
        if (!only) {
            t = now();
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        (int)M, (int)N, (int)K, 1.0f, A, ta ? (int)M : (int)K, B, tb ? (int)K : (int)N,
                        0.0f, C, (int)N);
            t = now() - t;
            if (t < bo) bo = t;
        }
#endif
    }
    if (only)
        printf("%zu %zu %zu %c%c thr %d: lmu %.1f\n", M, N, K, ta ? 'T' : 'N', tb ? 'T' : 'N', nt,
               fl / bl * 1e-9);
    else
        printf("%zu %zu %zu %c%c thr %d: lmu %.1f  openblas %.1f  ratio %.0f%%\n", M, N, K,
               ta ? 'T' : 'N', tb ? 'T' : 'N', nt, fl / bl * 1e-9, fl / bo * 1e-9, 100 * bo / bl);
    lmu_gemm_ws_destroy(&ws);
    return 0;
}
