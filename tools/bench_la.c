/* bench_la.c - the linear attention op (mixers rebased, based): forward +
   backward time of its quadratic and chunked forms against the sequence
   length, to place the crossover (LMU__LA_CROSSOVER in lmu.h).

   make build/bench_la && ./build/bench_la [--F 16] [--hs 32] [--H 2] [--based]

   Batch 1; per n = 64, 128, ..., 4096 the best of 3 runs of each form
   (one thread: the forms split the same (batch, head) tasks, so threads
   scale both alike). Prints ms per step and the ratio quadratic / chunked. */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    size_t F = 16, hs = 32, H = 2, n, i;
    int based = 0, a, form, rep;
    lmu_rng rng;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--F") && a + 1 < argc) F = (size_t)atoi(argv[++a]);
        else if (!strcmp(argv[a], "--hs") && a + 1 < argc) hs = (size_t)atoi(argv[++a]);
        else if (!strcmp(argv[a], "--H") && a + 1 < argc) H = (size_t)atoi(argv[++a]);
        else if (!strcmp(argv[a], "--based")) based = 1;
        else {
            fprintf(stderr, "usage: bench_la [--F 16] [--hs 32] [--H 2] [--based]\n");
            return 2;
        }
    }
    lmu_rng_seed(&rng, 1);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    printf("linear attention (%s), F %lu, head width %lu, %lu heads, batch 1, 1 thread\n",
           based ? "based" : "rebased", (unsigned long)F, (unsigned long)hs, (unsigned long)H);
    printf("%6s %14s %14s %8s\n", "n", "quadratic ms", "chunked ms", "ratio");
    for (n = 64; n <= 4096; n *= 2) {
        size_t nq = n * F * H, nv = n * hs * H;
        float *q = malloc(nq * 4), *k = malloc(nq * 4), *v = malloc(nv * 4), *o = malloc(nv * 4);
        float *d = malloc(nv * 4), *dq = malloc(nq * 4), *dk = malloc(nq * 4), *dv = malloc(nv * 4);
        float *den = malloc(H * n * 4), *scr = malloc(lmu__la_chunk_floats(F, hs, based) * 4);
        double best[2] = {1e30, 1e30};
        if (!q || !k || !v || !o || !d || !dq || !dk || !dv || !den || !scr) return 1;
        for (i = 0; i < nq; i++) q[i] = lmu_rng_normal(&rng), k[i] = lmu_rng_normal(&rng);
        for (i = 0; i < nv; i++) v[i] = lmu_rng_normal(&rng), d[i] = lmu_rng_normal(&rng);
        for (form = 0; form < 2; form++)
            for (rep = 0; rep < 3; rep++) {
                double t0 = now(), t;
                memset(dq, 0, nq * 4), memset(dk, 0, nq * 4), memset(dv, 0, nv * 4);
                if (form == 0) {
                    lmu__la_forward(o, den, q, k, v, 1, n, H, F, hs * H, based, 1e-12f);
                    lmu__la_backward(dq, dk, dv, d, o, den, q, k, v, 1, n, H, F, hs * H, based);
                } else {
                    lmu__la_forward_chunked(o, den, q, k, v, 1, n, H, F, hs * H, based, 1e-12f, 1, scr);
                    lmu__la_backward_chunked(dq, dk, dv, d, o, den, q, k, v, 1, n, H, F, hs * H, based, 1, scr);
                }
                t = now() - t0;
                if (t < best[form]) best[form] = t;
            }
        printf("%6lu %14.3f %14.3f %8.2f\n", (unsigned long)n, 1e3 * best[0], 1e3 * best[1],
               best[0] / best[1]);
        free(q), free(k), free(v), free(o), free(d), free(dq), free(dk), free(dv), free(den), free(scr);
    }
    return 0;
}
