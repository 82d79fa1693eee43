/* bench_generate.c - recurrent generation tokens/s at batch 1, and how the
   per-token cost changes with the context already seen.

   make build/bench_generate && ./build/bench_generate lmu-1m

   bench_generate PRESET [--threads 1] [--tokens 256]
                         [--contexts 1024,4096,16384,65536]
                         [--feed-budget 90] [--json]

   Greedy generation with lmu_gen_feed + lmu_gen_sample (each token fed is
   the argmax of the last logits, as tools/bench_torch.py --generate does).
   For each context c, the time of `tokens` tokens at positions c .. c +
   tokens - 1; printed as ms per token and tokens/s.

   How the context is reached:
   - LMU with mixer ffn: by generating every token before it ("fed"), as
     long as that fits in --feed-budget seconds (estimated from the first
     tokens). Contexts beyond the budget are reached by setting the
     generator's position without feeding ("jumped"): the state is q x d
     floats whatever the position and lmu_gen_feed does the same work at
     every t, so the jump changes no cost; the fed contexts show it.
   - Other mixers without a KV cache (rebased, based, conv, in either
     arch): as the LMU, their state is the same size at every position.
   - Mixer attn (the plain transformer's too): the KV cache is filled with random keys
     and values and the position set to c ("jumped"), as the PyTorch peer
     does: attention over c cached positions costs the same whatever their
     values, and feeding 64k tokens one at a time would take minutes. The
     model is created with n_ctx = max context + tokens (the transformer's
     learned positions must reach that far).
   Each row says fed or jumped. Not a test: exits 0 unless the model fails. */
#define _POSIX_C_SOURCE 200809L
#define LMU_IMPLEMENTATION
#include "lmu.h"

#include "bench_model_util.h"

#define MAX_CTX_ROWS 16

static int parse_contexts(const char *s, int *out)
{
    int n = 0;
    while (*s && n < MAX_CTX_ROWS) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > (1L << 22)) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static uint64_t bench_rng_state = 99;
static float rand_normal(void)
{
    /* sum of uniforms: cheap and good enough for cache filler */
    float s = 0;
    int i;
    for (i = 0; i < 4; i++) {
        bench_rng_state = bench_rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
        s += (float)(bench_rng_state >> 40) / (float)(1 << 24);
    }
    return s - 2.0f;
}

/* Generates `n` tokens greedily from *tok; returns the wall seconds. */
static double gen_run(lmu_gen *g, int n, int *tok, int *fail)
{
    double t0 = bench_now();
    int i;
    lmu_result r;
    for (i = 0; i < n; i++) {
        if ((r = lmu_gen_feed(g, *tok)) != LMU_OK) {
            fprintf(stderr, "bench_generate: feed at t = %d: %s (%s)\n", g->t, lmu_strerror(r), g->err);
            *fail = 1;
            return 0;
        }
        *tok = lmu_gen_sample(g, 0.0f, 0, 1.0f, NULL);
    }
    return bench_now() - t0;
}

/* Positions the generator of a model with config cfg at t = c without
   feeding; with a KV cache, the first c positions of every layer's cache
   get random keys and values. */
static int attn_layers(const lmu_config *cfg)
{
    int l, n = 0;
    for (l = 0; l < cfg->n_layer; l++) n += lmu_config_layer_mixer(cfg, l) == LMU_MIXER_ATTN;
    return n;
}

static void jump_to(lmu_gen *g, const lmu_config *cfg, int c)
{
    if (attn_layers(cfg) && c > g->t) {
        size_t d = (size_t)cfg->d_model, l, i;
        for (l = 0; l < (size_t)cfg->n_layer; l++) {
            float *kc = g->kv + l * 2 * (size_t)g->max_ctx * d, *vc = kc + (size_t)g->max_ctx * d;
            for (i = (size_t)g->t * d; i < (size_t)c * d; i++) kc[i] = rand_normal(), vc[i] = rand_normal();
        }
    }
    g->t = c;
}

int main(int argc, char **argv)
{
    const char *preset = NULL;
    int threads = 1, tokens = 256, json = 0, ctx[MAX_CTX_ROWS], nctx, i, k, tok = 0, fail = 0, attn;
    int maxc = 0, fed[MAX_CTX_ROWS];
    double budget = 90, ms[MAX_CTX_ROWS], est_ms, rss0;
    lmu_config c;
    lmu_model *m = NULL;
    lmu_gen g;
    lmu_result r;
    char err[256];
    nctx = parse_contexts("1024,4096,16384,65536", ctx);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (a[0] != '-' && !preset) preset = a;
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--tokens") && more) tokens = atoi(argv[++i]);
        else if (!strcmp(a, "--feed-budget") && more) budget = atof(argv[++i]);
        else if (!strcmp(a, "--contexts") && more) nctx = parse_contexts(argv[++i], ctx);
        else if (!strcmp(a, "--json")) json = 1;
        else nctx = -1;
        if (nctx < 1) {
            fprintf(stderr, "usage: bench_generate PRESET [--threads 1] [--tokens 256] "
                            "[--contexts 1024,4096,16384,65536] [--feed-budget 90] [--json]\n");
            return 2;
        }
    }
    if (!preset) {
        /* make bench runs every bench binary bare: something short */
        preset = "lmu-55k", tokens = 64;
        nctx = parse_contexts("256,1024", ctx);
        printf("(no preset given: a short lmu-55k run; see the usage in the source)\n");
    }
    if (tokens < 1 || threads < 1) return 2;
    for (k = 0; k < nctx; k++) {
        if (k > 0 && ctx[k] <= ctx[k - 1]) {
            fprintf(stderr, "bench_generate: --contexts must increase\n");
            return 2;
        }
        maxc = ctx[k];
    }
    bench_set_threads(threads);
    if (lmu_config_preset(&c, preset) != LMU_OK) {
        fprintf(stderr, "bench_generate: unknown preset '%s'\n", preset);
        return 2;
    }
    attn = attn_layers(&c) > 0;
    if (attn && attn_layers(&c) != c.n_layer) {
        fprintf(stderr, "bench_generate: %s mixes attn with other mixers; jumping its KV cache "
                        "is not supported\n", preset);
        return 2;
    }
    /* the LMU's H is only for training: keep it small; attention needs the
       positions (transformer: learned ones up to n_ctx) */
    c.n_ctx = c.arch == LMU_ARCH_TRANSFORMER ? maxc + tokens + 16 : 1024;
    if ((r = lmu_model_create(&m, &c, 1234, err, sizeof err)) != LMU_OK) {
        fprintf(stderr, "bench_generate: create: %s (%s)\n", lmu_strerror(r), err);
        return 1;
    }
    rss0 = bench_peak_rss_mb();
    if ((r = lmu_gen_create(&g, m, attn ? maxc + tokens + 16 : 0)) != LMU_OK) {
        fprintf(stderr, "bench_generate: gen_create: %s\n", lmu_strerror(r));
        return 1;
    }
    /* warm-up, and the estimate of a token's cost for the feed budget */
    est_ms = 1e3 * gen_run(&g, 32, &tok, &fail) / 32;
    if (fail) return 1;
    lmu_gen_reset(&g);
    tok = 0;
    for (k = 0; k < nctx; k++) {
        double need = (double)(ctx[k] - g.t) * est_ms * 1e-3;
        int can_feed = !attn && need <= budget;
        if (can_feed) {
            budget -= need + (double)tokens * est_ms * 1e-3;
            if (ctx[k] > g.t) gen_run(&g, ctx[k] - g.t, &tok, &fail);
        } else {
            jump_to(&g, lmu_model_config(m), ctx[k]);
        }
        fed[k] = can_feed;
        if (fail) return 1;
        ms[k] = 1e3 * gen_run(&g, tokens, &tok, &fail) / tokens;
        if (fail) return 1;
    }
    printf("preset: %s\nthreads: %d\nbatch: 1\ntokens_per_context: %d\n", preset, bench_threads(), tokens);
    printf("state: %s\n", attn ? "KV cache (grows with the context)"
                               : "recurrent (LMU memory, linear-attention state: constant)");
    for (k = 0; k < nctx; k++)
        printf("context %6d: %8.3f ms/token  %8.1f tokens/s  (%s)\n", ctx[k], ms[k], 1e3 / ms[k],
               fed[k] ? "fed" : "jumped");
    printf("ratio_last_to_first: %.3f\n", ms[nctx - 1] / ms[0]);
    printf("peak_rss_mb: %.1f\nrss_after_create_mb: %.1f\nloadavg_1min: %.2f\n", bench_peak_rss_mb(), rss0,
           bench_loadavg());
    if (json) {
        printf("{\"preset\": \"%s\", \"threads\": %d, \"tokens\": %d", preset, bench_threads(), tokens);
        for (k = 0; k < nctx; k++)
            printf(", \"ms_per_token_at_%d\": %.4f, \"fed_%d\": %d", ctx[k], ms[k], ctx[k], fed[k]);
        printf(", \"peak_rss_mb\": %.1f}\n", bench_peak_rss_mb());
    }
    lmu_gen_free(&g);
    lmu_model_free(m);
    return 0;
}
