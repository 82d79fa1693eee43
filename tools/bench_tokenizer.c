/* bench_tokenizer.c - GPT-2 encode throughput on the Brown corpus (about
   6 MB of English), one thread and all OpenMP threads, then tiktoken's
   (npm, under node) on the same file in the same run.

   build: make build/bench_tokenizer      (run from the repository root)
   usage: build/bench_tokenizer [TEXT] [-n RUNS]

   Fetches what it needs with tools/fetch_tokenizer.sh (GPT-2's files, the
   corpus, npm tiktoken); without node it reports lmu's numbers only. Writes
   our ids to build/bench_tokenizer_ids.bin so tools/bench_tokenizer.js can
   check that tiktoken's are the same. Not a test: numbers only. */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

int main(int argc, char **argv)
{
    const char *path = "data/brown.txt";
    int runs = 5, i, have_tools;
    FILE *f;
    char *text, err[256];
    long sz;
    size_t n = 0, np = 0;
    int32_t *ids, *pids;
    lmu_tokenizer *tok;
    double best1 = 1e30, bestp = 1e30, mb;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) runs = atoi(argv[++i]);
        else path = argv[i];
    }
    have_tools = system("tools/fetch_tokenizer.sh tiktoken brown") == 0;
    if (lmu_tokenizer_load_files(&tok, "data/gpt2/encoder.json", "data/gpt2/vocab.bpe", err, sizeof err) != LMU_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "bench_tokenizer: cannot open %s\n", path); return 1; }
    fseek(f, 0, SEEK_END);
    sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = (char *)malloc((size_t)sz + 1);
    ids = (int32_t *)malloc(((size_t)sz + 1) * sizeof *ids);
    pids = (int32_t *)malloc(((size_t)sz + 1) * sizeof *pids);
    if (!text || !ids || !pids || fread(text, 1, (size_t)sz, f) != (size_t)sz) { fprintf(stderr, "bench_tokenizer: read failed\n"); return 1; }
    fclose(f);
    mb = (double)sz / 1e6;

    for (i = 0; i < runs; i++) {
        double t0 = now_s(), dt;
        lmu_encode(tok, text, (size_t)sz, 0, ids, (size_t)sz, &n);
        dt = now_s() - t0;
        if (dt < best1) best1 = dt;
    }
    for (i = 0; i < runs; i++) {
        double t0 = now_s(), dt;
        lmu_encode_parallel(tok, text, (size_t)sz, 0, pids, (size_t)sz, &np);
        dt = now_s() - t0;
        if (dt < bestp) bestp = dt;
    }
    printf("lmu (C, -O3, Unicode %s), %s: %.2f MB, %lu ids\n", lmu_tokenizer_unicode_version(), path, mb, (unsigned long)n);
    printf("lmu: 1 thread:   %7.2f MB/s  (best of %d: %.1f ms)\n", mb / best1, runs, best1 * 1e3);
    printf("lmu: %d threads: %7.2f MB/s  (best of %d: %.1f ms; ids %s the serial encode's)\n", lmu__thread_count(),
           mb / bestp, runs, bestp * 1e3, (np == n && memcmp(ids, pids, n * sizeof *ids) == 0) ? "equal" : "DIFFER from");
    {
        size_t w = 100000, m = 0;
        char *word = (char *)malloc(w);
        double t0, dt;
        memset(word, 'a', w);
        t0 = now_s();
        lmu_encode(tok, word, w, 0, pids, w, &m);
        dt = now_s() - t0;
        printf("lmu: one 100 KB word (\"a\" * 100000): %.1f ms\n", dt * 1e3);
        free(word);
    }
    fflush(stdout);
    /* our ids for tiktoken's comparison, little-endian u32 */
    if ((f = fopen("build/bench_tokenizer_ids.bin", "wb")) != NULL) {
        size_t k;
        for (k = 0; k < n; k++) {
            unsigned char b[4];
            uint32_t v = (uint32_t)ids[k];
            b[0] = (unsigned char)v; b[1] = (unsigned char)(v >> 8); b[2] = (unsigned char)(v >> 16); b[3] = (unsigned char)(v >> 24);
            fwrite(b, 1, 4, f);
        }
        fclose(f);
    }
    if (have_tools) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "node tools/bench_tokenizer.js '%s' build/bench_tokenizer_ids.bin 3", path);
        if (system(cmd) != 0) printf("tiktoken: comparison run failed\n");
    } else {
        printf("tiktoken: not available (tools/fetch_tokenizer.sh failed); lmu's numbers only\n");
    }
    free(text);
    free(ids);
    free(pids);
    lmu_tokenizer_free(tok);
    return 0;
}
