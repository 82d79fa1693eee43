/* bench_model_util.h - shared pieces of the model benchmarks (not part of
   lmu.h): a monotonic clock, peak RSS, and the FMA peak kernel that
   bench_fma prints and bench_train divides by for model FLOPs utilisation.

   Included by tools/bench_fma.c, bench_train.c and bench_generate.c after
   their feature-test macro (clock_gettime and getrusage need POSIX). */
#ifndef LMU_BENCH_MODEL_UTIL_H
#define LMU_BENCH_MODEL_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#define BENCH_UNUSED __attribute__((unused))
#else
#define BENCH_UNUSED
#endif

BENCH_UNUSED static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1-minute load average from /proc (0 where there is none): other work on
   the machine, printed beside every timing. */
BENCH_UNUSED static double bench_loadavg(void)
{
    double la = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &la) != 1) la = 0;
        fclose(f);
    }
    return la;
}

/* Peak resident set of this process so far, MB (ru_maxrss is KiB on Linux). */
BENCH_UNUSED static double bench_peak_rss_mb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (double)ru.ru_maxrss / 1024.0;
}

BENCH_UNUSED static void bench_set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    (void)n;
}

BENCH_UNUSED static int bench_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---------------------------------------------------------------------- */
/* FMA peak                                                                */
/* ---------------------------------------------------------------------- */
/* BENCH_FMA_CHAINS independent chains of x = x * a + b, each
   BENCH_FMA_LANES floats wide. An FMA has a latency of 4 cycles and a core
   issues two per cycle, so at least 8 vectors must be in flight; 12 leaves
   a margin and still fits the 32 vector registers with room for a and b.
   The fixed 192-float inner loop is what the vectorizer needs to keep every
   chain in a register: gcc -O3 -march=native turns it into 12
   vfmadd132ps on zmm per iteration (checked with objdump -d). fmaf, not
   x * a + b: in ISO C mode (-std=c99) gcc does not contract a multiply and
   an add into an FMA. The target attribute asks gcc for 512-bit vectors
   where its tuning for the CPU would prefer 256 (gcc 12 tunes this Zen 5
   as znver3). */
#define BENCH_FMA_LANES 16
#define BENCH_FMA_CHAINS 12
#define BENCH_FMA_FLOATS (BENCH_FMA_LANES * BENCH_FMA_CHAINS)

#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
__attribute__((target("prefer-vector-width=512")))
#endif
static float bench_fma_kernel(long iters, float a, float b, const float *init)
{
    float acc[BENCH_FMA_FLOATS], s = 0;
    long it;
    int i;
    for (i = 0; i < BENCH_FMA_FLOATS; i++) acc[i] = init[i];
    for (it = 0; it < iters; it++)
        for (i = 0; i < BENCH_FMA_FLOATS; i++) acc[i] = fmaf(acc[i], a, b);
    for (i = 0; i < BENCH_FMA_FLOATS; i++) s += acc[i];
    return s;
}

BENCH_UNUSED static double bench_thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads, user + sys). */
BENCH_UNUSED static double bench_process_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Where the chains' sums go, so that no compiler drops a kernel call whose
   result the caller ignores (the kernel is a pure function). */
BENCH_UNUSED static volatile double bench_fma_sink;

typedef struct bench_fma_result {
    double wall_gflops;     /* all threads together, per wall second */
    double core_gflops;     /* per CPU second a thread was running: the
                               per-core peak, blind to time-slicing */
} bench_fma_result;

/* `threads` threads run the kernel at once (an FMA counts 2 flops), best
   of `trials` runs of about `seconds` each. The best, not the mean: on a
   shared machine other work only ever slows a run down. Two rates: per
   wall second (what the threads got), and per CPU second of the threads
   (what a core does while it runs us; on this 2-core VM with load 5+ the
   wall rate is about half of it). */
BENCH_UNUSED static bench_fma_result bench_fma_gflops(int threads, double seconds, int trials)
{
    float init[BENCH_FMA_FLOATS];
    bench_fma_result best = {0, 0};
    long iters = 1 << 16;
    int i, tr;
#ifndef _OPENMP
    threads = 1;
#endif
    for (i = 0; i < BENCH_FMA_FLOATS; i++) init[i] = 1.0f + 1e-3f * (float)i;
    /* calibrate on one thread, on CPU time: a wall clock stretched by
       other processes would make the runs far too short */
    for (;;) {
        double c0 = bench_thread_cpu_now(), dt;
        bench_fma_sink += bench_fma_kernel(iters, 0.999999f, 1e-6f, init);
        dt = bench_thread_cpu_now() - c0;
        if (dt > 0.05 || iters > (1L << 40)) {
            iters = (long)((double)iters * seconds / dt) + 1;
            break;
        }
        iters *= 4;
    }
    for (tr = 0; tr < trials; tr++) {
        double t0, dt, flops = 2.0 * BENCH_FMA_FLOATS * (double)iters, cpu = 0, sum = 0;
        t0 = bench_now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : cpu, sum)
#endif
        {
            double c0 = bench_thread_cpu_now();
            sum += bench_fma_kernel(iters, 0.999999f, 1e-6f, init);
            cpu += bench_thread_cpu_now() - c0;
        }
        dt = bench_now() - t0;
        bench_fma_sink += sum;
        if (flops * threads / dt * 1e-9 > best.wall_gflops) best.wall_gflops = flops * threads / dt * 1e-9;
        if (cpu > 0 && flops * threads / cpu * 1e-9 > best.core_gflops)
            best.core_gflops = flops * threads / cpu * 1e-9;
    }
    return best;
}

/* Memory read bandwidth, the FMA peak's twin for memory-bound work (batch-1
   generation reads every weight once per token): `threads` threads sum
   disjoint parts of an `mbytes` MiB buffer (far beyond any cache), best of
   `trials` passes, in GB/s. 16 independent lanes so the loop vectorises
   without reassociating a float sum. */
BENCH_UNUSED static volatile float bench_read_sink;
BENCH_UNUSED static double bench_read_gbps(int threads, size_t mbytes, int trials)
{
    size_t n = (mbytes << 20) / sizeof(float), i;
    float *buf = (float *)malloc(n * sizeof(float));
    double best = 0;
    int tr;
    if (!buf) return 0;
    for (i = 0; i < n; i++) buf[i] = (float)(i & 1023) * 1e-3f; /* touch every page */
#ifndef _OPENMP
    threads = 1;
#endif
    for (tr = 0; tr < trials; tr++) {
        double t0 = bench_now(), dt;
        float total = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : total)
#endif
        {
            int t = 0, nt = 1, l;
            size_t a, e, k;
            float acc[16] = {0};
#ifdef _OPENMP
            t = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
            a = n / 16 * (size_t)t / (size_t)nt * 16, e = n / 16 * (size_t)(t + 1) / (size_t)nt * 16;
            for (k = a; k < e; k += 16)
                for (l = 0; l < 16; l++) acc[l] += buf[k + l];
            for (l = 0; l < 16; l++) total += acc[l];
        }
        dt = bench_now() - t0;
        bench_read_sink += total;
        if ((double)(n * sizeof(float)) / dt * 1e-9 > best) best = (double)(n * sizeof(float)) / dt * 1e-9;
    }
    free(buf);
    return best;
}

#endif
