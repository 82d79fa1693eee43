/* bench_gemm.c - lmu_sgemm GFLOP/s beside OpenBLAS on the model's shapes.

   make build/bench_gemm && ./build/bench_gemm [reps-scale]

   Built by the Makefile with -std=c99 -O3 -march=native -fopenmp, plus
   -DLMU_HAVE_OPENBLAS and OpenBLAS's flags when it is installed. Not a
   test: it prints a table and exits 0.

   Shapes: the linear layers of the model with T = 8192 rows, each in its
   three forms (y = x W^T forward is NT, dx = dy W is NN, dW = dy^T x is
   TN): 204->816, 816->204, 204->50257 (LM head), 48->50257. Timing is the
   minimum over trials (CLOCK_MONOTONIC), lmu and OpenBLAS alternating so
   machine noise hits both; single thread and 2 threads. */
#ifdef LMU_HAVE_OPENBLAS
#define _GNU_SOURCE /* cblas.h names cpu_set_t */
#else
#define _POSIX_C_SOURCE 200809L
#endif
#define LMU_IMPLEMENTATION
#include "lmu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h> /* execv */
#ifdef LMU_HAVE_OPENBLAS
#include <cblas.h>
#endif

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU seconds of the whole process (all threads, spin-waits included): on
   a machine shared with other work, a second view that leaves out the time
   other programs held our cores. */
static double cpu(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
#ifdef LMU_HAVE_OPENBLAS
    openblas_set_num_threads(n);
#endif
    (void)n;
}

/* Idle threads of one library spin for a while after a call (OpenMP's
   spin-wait, OpenBLAS's yield loop); on 2 cores that steals time from the
   other library's next run, so let them fall asleep first. */
static void settle(void)
{
    struct timespec ts = {0, 30000000L};
    nanosleep(&ts, NULL);
}

typedef struct shape {
    const char *layer, *form;
    size_t M, N, K;
    int ta, tb;
} shape;

int main(int argc, char **argv)
{
    enum { T = 8192 };
    static const struct { const char *name; size_t in, out; } layers[] = {
        {"204->816", 204, 816}, {"816->204", 816, 204},
        {"204->50257", 204, 50257}, {"48->50257", 48, 50257}};
    shape sh[12];
    size_t ns = 0, l, s, big = 0, i;
    float *X, *W, *Y, *O;
    lmu_gemm_ws ws;
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    int threads[2] = {1, 2}, ti, maxthreads = 1;

#ifdef LMU_HAVE_OPENBLAS
    /* The environment may pin OpenBLAS to an older kernel set
       (OPENBLAS_CORETYPE=Haswell = AVX2). Compare against its best: drop
       the override and start again, since OpenBLAS reads it at load. */
    /* The two libraries run interleaved, each with its own threads: a
       thread still spinning after its library's call steals a core from
       the other's next call (OpenMP's active wait, OpenBLAS's spin before
       sleeping). Both idle threads sleep at once, so neither pays for the
       other; the settings are printed below. */
    if (getenv("OPENBLAS_CORETYPE") || !getenv("OMP_WAIT_POLICY") ||
        !getenv("OPENBLAS_THREAD_TIMEOUT")) {
        if (getenv("OPENBLAS_CORETYPE"))
            fprintf(stderr, "bench_gemm: unsetting OPENBLAS_CORETYPE=%s\n", getenv("OPENBLAS_CORETYPE"));
        unsetenv("OPENBLAS_CORETYPE");
        setenv("OMP_WAIT_POLICY", "passive", 0);
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
        fprintf(stderr, "bench_gemm: re-executing with OMP_WAIT_POLICY=%s OPENBLAS_THREAD_TIMEOUT=%s\n",
                getenv("OMP_WAIT_POLICY"), getenv("OPENBLAS_THREAD_TIMEOUT"));
        execv("/proc/self/exe", argv);
        execv(argv[0], argv);
        perror("bench_gemm: execv");
        return 1;
    }
#endif
#ifdef _OPENMP
    maxthreads = omp_get_num_procs();
#endif
    if (maxthreads < 2) threads[1] = 1;
    if (scale <= 0) scale = 1.0;

    for (l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        size_t in = layers[l].in, out = layers[l].out;
        shape f = {layers[l].name, "NT y=xW^T", T, out, in, 0, 1};
        shape d = {layers[l].name, "NN dx=dyW", T, in, out, 0, 0};
        shape g = {layers[l].name, "TN dW=dy^Tx", out, in, T, 1, 0};
        sh[ns++] = f;
        sh[ns++] = d;
        sh[ns++] = g;
        if (T * out > big) big = T * out;
    }
    /* One allocation per role, reused by every shape: x [T, in], W
       [out, in], y/dy [T, out] (1.6 GB for the LM head) and O for the
       outputs of NN and TN. NT writes y, which NN and TN then read as dy,
       so inputs stay bounded run after run. */
    X = (float *)lmu__alloc_aligned((size_t)T * 816 * sizeof(float));
    W = (float *)lmu__alloc_aligned((size_t)50257 * 816 * sizeof(float));
    Y = (float *)lmu__alloc_aligned(big * sizeof(float));
    O = (float *)lmu__alloc_aligned((size_t)50257 * 816 * sizeof(float));
    if (!X || !W || !Y || !O || lmu_gemm_ws_create(&ws, maxthreads) != LMU_OK) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        return 1;
    }
    {
        lmu_rng rng;
        lmu_rng_seed(&rng, 1);
        for (i = 0; i < (size_t)T * 816; i++) X[i] = lmu_rng_uniform(&rng) - 0.5f;
        for (i = 0; i < (size_t)50257 * 816; i++) W[i] = lmu_rng_uniform(&rng) - 0.5f;
        for (i = 0; i < big; i++) Y[i] = (float)(i % 1013) * (1.0f / 1013.0f) - 0.5f;
    }

    printf("lmu:      kernel %s (MR x NR = %d x %d, MC %d, KC %d, NC %d), %s, compiled by %s\n",
           LMU__GEMM_SIMD_NAME, LMU__GEMM_MR, LMU__GEMM_NR, LMU__GEMM_MC, LMU__GEMM_KC, LMU__GEMM_NC,
#ifdef _OPENMP
           "OpenMP, omp_set_num_threads(t)",
#else
           "no OpenMP (1 thread)",
#endif
#ifdef __clang__
           "clang " __clang_version__
#elif defined(__GNUC__)
           "gcc " __VERSION__
#else
           "?"
#endif
    );
#ifdef LMU_HAVE_OPENBLAS
    printf("openblas: %s, core %s, OPENBLAS_CORETYPE %s, OPENBLAS_THREAD_TIMEOUT %s, "
           "openblas_set_num_threads(t)\n",
           openblas_get_config(), openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset",
           getenv("OPENBLAS_THREAD_TIMEOUT") ? getenv("OPENBLAS_THREAD_TIMEOUT") : "unset");
    printf("both: OMP_WAIT_POLICY %s\n", getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "unset");
#else
    printf("openblas: not built in (install libopenblas-dev; make adds -DLMU_HAVE_OPENBLAS)\n");
#endif
    printf("min of trials; GFLOP/s = 2*M*N*K / time\n");
    printf("GFLOP/s by wall clock; ratio = lmu/openblas speed by wall clock, cpu-ratio the same\n"
           "by process CPU seconds (all threads, spinning included)\n\n");
    printf("%-11s %-12s %6s %6s %6s %3s %9s %9s %7s %9s\n", "layer", "form", "M", "N", "K", "thr",
           "lmu", "openblas", "ratio", "cpu-ratio");

    for (ti = 0; ti < 2; ti++) {
        int nt = threads[ti];
        if (ti == 1 && threads[1] == threads[0]) break;
        set_threads(nt);
        for (s = 0; s < ns; s++) {
            const shape *p = &sh[s];
            const float *A, *B;
            float *C;
            size_t lda, ldb, ldc = p->N;
            double flops = 2.0 * (double)p->M * (double)p->N * (double)p->K;
            double best_l = 1e30, best_o = 1e30, cpu_l = 1e30, cpu_o = 1e30;
            int reps, r;
            /* Pick operands by form; all are dense (ld = stored width). */
            if (!p->ta && p->tb) { /* y[T,out] = x[T,in] W[out,in]^T */
                A = X; lda = p->K;
                B = W; ldb = p->K;
                C = Y;
            } else if (!p->ta) { /* dx[T,in] = dy[T,out] W[out,in] */
                A = Y; lda = p->K;
                B = W; ldb = p->N;
                C = O;
            } else { /* dW[out,in] = dy[T,out]^T x[T,in] */
                A = Y; lda = p->M;
                B = X; ldb = p->N;
                C = O;
            }
            /* ~1 s of lmu work per shape at 150 GFLOP/s per thread, 2 to 8
               trials: the 168-GFLOP LM-head products get 2. */
            reps = (int)(scale * 1.0 * 150e9 * nt / flops);
            if (reps < 2) reps = 2;
            if (reps > 8) reps = 8;
            for (r = 0; r < reps; r++) {
                double t0, c0;
                settle();
                c0 = cpu();
                t0 = now();
                lmu_sgemm(&ws, p->ta, p->tb, p->M, p->N, p->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
                t0 = now() - t0;
                c0 = cpu() - c0;
                if (t0 < best_l) best_l = t0;
                if (c0 < cpu_l) cpu_l = c0;
#ifdef LMU_HAVE_OPENBLAS
                settle();
                c0 = cpu();
                t0 = now();
                cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                            p->tb ? CblasTrans : CblasNoTrans, (int)p->M, (int)p->N, (int)p->K,
                            1.0f, A, (int)lda, B, (int)ldb, 0.0f, C, (int)ldc);
                t0 = now() - t0;
                c0 = cpu() - c0;
                if (t0 < best_o) best_o = t0;
                if (c0 < cpu_o) cpu_o = c0;
#endif
            }
#ifdef LMU_HAVE_OPENBLAS
            printf("%-11s %-12s %6zu %6zu %6zu %3d %9.1f %9.1f %6.0f%% %8.0f%%\n", p->layer, p->form,
                   p->M, p->N, p->K, nt, flops / best_l * 1e-9, flops / best_o * 1e-9,
                   100.0 * best_o / best_l, 100.0 * cpu_o / cpu_l);
#else
            (void)best_o;
            (void)cpu_o;
            printf("%-11s %-12s %6zu %6zu %6zu %3d %9.1f %9s %7s\n", p->layer, p->form, p->M,
                   p->N, p->K, nt, flops / best_l * 1e-9, "-", "-");
#endif
            fflush(stdout);
        }
        printf("\n");
    }
    lmu_gemm_ws_destroy(&ws);
    lmu__free_aligned(X);
    lmu__free_aligned(W);
    lmu__free_aligned(Y);
    lmu__free_aligned(O);
    return 0;
}
