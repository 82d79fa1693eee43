/* bench_fma.c - the machine's FMA peak, GFLOP/s per core, 1 and 2 threads.

   make build/bench_fma && ./build/bench_fma [--threads K] [--seconds S] [--json]

   The denominator of model FLOPs utilisation (bench_train, bench_model.sh):
   independent chains of fused multiply-adds on the widest vectors gcc
   gives (zmm under -march=native on AVX-512; check with
   objdump -d build/bench_fma | grep vfmadd). The kernel lives in
   tools/bench_model_util.h so bench_train can call it too.

   Two rates per thread count: per wall second, and per CPU second the
   threads actually ran. The second is the per-core peak even when other
   work shares the cores (on this project's 2-core VM at load 5 the wall
   rate is about half of it). The number other tools use is the per-core
   CPU-time rate of the 1-thread run. Best of several trials.
   Not a test: it prints and exits 0. */
#define _POSIX_C_SOURCE 200809L
#include "bench_model_util.h"

int main(int argc, char **argv)
{
    int i, k, maxt = 2, json = 0, trials = 5;
    double seconds = 0.25;
    bench_fma_result r[64];
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) maxt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--trials") && i + 1 < argc) trials = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: bench_fma [--threads K (2)] [--seconds S (0.25)] [--trials N (5)] [--json]\n");
            return 2;
        }
    }
    if (maxt < 1) maxt = 1;
    if (maxt > 64) maxt = 64;
    if (trials < 1) trials = 1;
#ifndef _OPENMP
    maxt = 1;
#endif
    for (k = 1; k <= maxt; k++) r[k - 1] = bench_fma_gflops(k, seconds, trials);
    printf("fma peak: %d chains x %d floats of fmaf, best of %d x %.2f s, loadavg %.1f\n",
           BENCH_FMA_CHAINS, BENCH_FMA_LANES, trials, seconds, bench_loadavg());
    for (k = 1; k <= maxt; k++)
        printf("threads %d: %7.1f GFLOP/s per wall second (all threads), %7.1f per core per CPU second\n",
               k, r[k - 1].wall_gflops, r[k - 1].core_gflops);
    /* the number bench_model.sh feeds to bench_train --peak */
    printf("fma_gflops_per_core: %.1f\n", r[0].core_gflops);
    if (json) {
        printf("{\"fma_gflops_per_core\": %.2f", r[0].core_gflops);
        for (k = 1; k <= maxt; k++)
            printf(", \"wall_gflops_%dt\": %.2f, \"core_gflops_%dt\": %.2f", k, r[k - 1].wall_gflops, k,
                   r[k - 1].core_gflops);
        printf("}\n");
    }
    return 0;
}
