/* bench_generate.c - recurrent generation tokens/s at batch 1, and how the
   per-token cost changes with the context already seen.

   make build/bench_generate && ./build/bench_generate lmu-1m

   bench_generate PRESET [--threads 1] [--tokens 256]
                         [--contexts 1024,4096,16384,65536]
                         [--feed-budget 90] [--json] [--weights fp32|bf16|int8]
                         [--set K=V,...]
   bench_generate --agree CKPT TOKENS [--agree-tokens 4096] [--threads 1]

   --weights: the copy of the output layer generation reads
   (lmu_gen_set_weights; default fp32, the model's own). --set: config
   fields over the preset (lmu_config_set_items): --set window=128.
   --agree: a trained checkpoint fed the token file's first N tokens
   (teacher forcing, the state reset every n_ctx tokens) by three
   generators, fp32, bf16 and int8: the share of positions where bf16's and
   int8's greedy (top-1) tokens agree with fp32's, and each one's ms per
   token over the same tokens.

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
   - Mixers attn and brt (the plain transformer's too): the KV cache (brt:
     its ring; its state stays as reset, the same size at any position) is filled with random keys
     and values and the position set to c ("jumped"), as the PyTorch peer
     does: attention over c cached positions costs the same whatever their
     values, and feeding 64k tokens one at a time would take minutes. The
     model is created with n_ctx = max context + tokens (the transformer's
     learned positions must reach that far).
   Each row says fed or jumped.

   The memory floor: a token reads every weight once (the tied output layer,
   V x d, is most of it), the LMU's memory state (read and written) and, with
   attention, the KV cache up to the context. Each row gives those bytes,
   the bandwidth they took, and its share of the read bandwidth measured in
   the same run with the same threads (bench_read_gbps): 100% would be
   generation at the speed of memory. An LMU also multiplies its q x d
   memory by the q x q Abar at every token (2 q^2 d flops a layer, on
   data in cache: arithmetic, not reading); the second share is of the
   floor with that added at the FMA peak measured in the run. Not a test: exits 0 unless the model
   fails. */
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

/* Bytes a token reads at context t: the weights (the transformer's learned
   positions but one row excluded), the LMU memory read and written, the
   KV cache of every attention layer up to t (bf16: the output layer at 2
   bytes a weight; int8: 1, and a float per row). The linear attention's
   state (n_head x features x head width) is left out: under 1% here. */
static double bytes_per_token(lmu_model *m, int t, lmu_gen_weights fmt)
{
    const lmu_config *c = lmu_model_config(m);
    size_t n = 0, wpe = 0;
    double b;
    int l;
    lmu_model_params(m, &n);
    if (lmu_model_param(m, "wpe", &wpe)) n -= wpe - (size_t)c->d_model;
    b = 4.0 * (double)n; /* then the output layer as fmt stores it */
    if (fmt == LMU_GEN_WEIGHTS_BF16) b -= 2.0 * c->vocab_size * c->d_model;
    if (fmt == LMU_GEN_WEIGHTS_INT8) b -= 3.0 * c->vocab_size * c->d_model - 4.0 * c->vocab_size;
    for (l = 0; l < c->n_layer; l++) {
        int mix = lmu_config_layer_mixer(c, l);
        if (c->arch == LMU_ARCH_LMU) b += 8.0 * lmu_config_layer_q(c, l) * c->d_model;
        /* the keys and values it reads: every position, or the window's */
        if (mix == LMU_MIXER_ATTN)
            b += 8.0 * (double)(t + 1 - lmu__mha_lo((size_t)t, (size_t)c->window)) * c->d_model;
    }
    return b;
}

/* --agree: fp32 against bf16 and int8 on a trained model and a text. */
static int agree(const char *ckpt, const char *tokfile, long n)
{
    lmu_model *m = NULL;
    lmu_tokens tf;
    lmu_gen g[LMU_GEN_WEIGHTS_COUNT];
    char err[512];
    long i, same[LMU_GEN_WEIGHTS_COUNT] = {0};
    double sec[LMU_GEN_WEIGHTS_COUNT] = {0};
    int k, top[LMU_GEN_WEIGHTS_COUNT];
    if (lmu_model_load(&m, ckpt, err, sizeof err) != LMU_OK ||
        lmu_tokens_load_file(&tf, tokfile, err, sizeof err) != LMU_OK) {
        fprintf(stderr, "bench_generate: %s\n", err);
        return 1;
    }
    if ((long)tf.count < n) n = (long)tf.count;
    for (k = 0; k < LMU_GEN_WEIGHTS_COUNT; k++)
        if (lmu_gen_create(&g[k], m, 0) != LMU_OK || lmu_gen_set_weights(&g[k], (lmu_gen_weights)k) != LMU_OK) {
            fprintf(stderr, "bench_generate: cannot create the generators\n");
            return 1;
        }
    for (i = 0; i < n; i++)
        for (k = 0; k < LMU_GEN_WEIGHTS_COUNT; k++) {
            double t0 = bench_now();
            if (g[k].t >= lmu_model_config(m)->n_ctx) lmu_gen_reset(&g[k]);
            lmu_gen_feed(&g[k], tf.ids[i]);
            top[k] = lmu_gen_sample(&g[k], 0.0f, 0, 1.0f, NULL);
            sec[k] += bench_now() - t0;
            same[k] += top[0] == top[k];
        }
    printf("checkpoint: %s\ntext: %s, %ld tokens\nthreads: %d\n", ckpt, tokfile, n, bench_threads());
    printf("fp32: %.3f ms/token\n", 1e3 * sec[0] / n);
    for (k = 1; k < LMU_GEN_WEIGHTS_COUNT; k++)
        printf("%s: top1_agreement %.4f (%ld of %ld positions), %.3f ms/token (%.2fx)\n",
               lmu_gen_weights_name((lmu_gen_weights)k), (double)same[k] / (double)n, same[k], n,
               1e3 * sec[k] / n, sec[0] / sec[k]);
    for (k = 0; k < LMU_GEN_WEIGHTS_COUNT; k++) lmu_gen_free(&g[k]);
    lmu_tokens_free(&tf);
    lmu_model_free(m);
    return 0;
}

/* The LMU memory's flops per token: Abar (q x q) times m (q x d) per layer. */
static double memory_flops(lmu_model *m)
{
    const lmu_config *c = lmu_model_config(m);
    double f = 0;
    int l;
    for (l = 0; l < c->n_layer && c->arch == LMU_ARCH_LMU; l++)
        f += 2.0 * lmu_config_layer_q(c, l) * lmu_config_layer_q(c, l) * c->d_model;
    return f;
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
    for (l = 0; l < cfg->n_layer; l++)
        n += lmu_config_layer_mixer(cfg, l) == LMU_MIXER_ATTN ||
             lmu_config_layer_mixer(cfg, l) == LMU_MIXER_BRT;
    return n;
}

static void jump_to(lmu_gen *g, const lmu_config *cfg, int c)
{
    if (attn_layers(cfg) && c > g->t) {
        /* lmu__attn_gen_state's layout: R positions of keys (blocks of 16),
           then R of values; R every position, or a window's ring. The
           whole cache gets filler: no slot is read before it is written. */
        size_t d = (size_t)cfg->d_model, i, off = 0;
        size_t R = lmu__mha_cache_rows((size_t)g->max_ctx, (size_t)cfg->window);
        int l;
        for (l = 0; l < cfg->n_layer; off += lmu__layer_unit(cfg, l)->gen_state(cfg, (size_t)g->max_ctx), l++) {
            float *kc = g->kv + off; /* a brt layer's ring comes first: the state stays as reset */
            lmu_mixer x = lmu_config_layer_mixer(cfg, l);
            if (x != LMU_MIXER_ATTN && x != LMU_MIXER_BRT) continue;
            for (i = 0; i < 2 * R * d; i++) kc[i] = rand_normal();
        }
    }
    g->t = c;
}

int main(int argc, char **argv)
{
    const char *preset = NULL, *agree_ckpt = NULL, *agree_text = NULL, *set = NULL;
    long agree_n = 4096;
    lmu_gen_weights fmt = LMU_GEN_WEIGHTS_FP32;
    int threads = 1, tokens = 256, json = 0, ctx[MAX_CTX_ROWS], nctx, i, k, tok = 0, fail = 0, attn;
    int maxc = 0, fed[MAX_CTX_ROWS];
    double budget = 90, ms[MAX_CTX_ROWS], est_ms, rss0, bw, peak;
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
        else if (!strcmp(a, "--weights") && more) {
            if (lmu_gen_weights_parse(argv[++i], &fmt) != LMU_OK) nctx = -1;
        }
        else if (!strcmp(a, "--agree") && i + 2 < argc) agree_ckpt = argv[++i], agree_text = argv[++i];
        else if (!strcmp(a, "--agree-tokens") && more) agree_n = atol(argv[++i]);
        else if (!strcmp(a, "--set") && more) set = argv[++i];
        else nctx = -1;
        if (nctx < 1) {
            fprintf(stderr, "usage: bench_generate PRESET [--threads 1] [--tokens 256] "
                            "[--contexts 1024,4096,16384,65536] [--feed-budget 90] [--json]\n"
                            "                      [--weights fp32|bf16|int8] [--set K=V,...]\n"
                            "       bench_generate --agree CKPT TOKENS [--agree-tokens 4096] [--threads 1]\n");
            return 2;
        }
    }
    if (agree_ckpt) {
        bench_set_threads(threads);
        return agree(agree_ckpt, agree_text, agree_n > 0 ? agree_n : 1);
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
    if (set && lmu_config_set_items(&c, set, err, sizeof err) != LMU_OK) {
        fprintf(stderr, "bench_generate: --set: %s\n", err);
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
    if ((r = lmu_gen_set_weights(&g, fmt)) != LMU_OK) {
        fprintf(stderr, "bench_generate: --weights: %s\n", lmu_strerror(r));
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
    bw = bench_read_gbps(bench_threads(), 512, 5);
    peak = bench_fma_gflops(bench_threads(), 0.2, 3).wall_gflops;
    printf("preset: %s%s\nthreads: %d\nbatch: 1\ntokens_per_context: %d\n", preset,
           fmt == LMU_GEN_WEIGHTS_BF16 ? " (output layer in bf16)"
           : fmt == LMU_GEN_WEIGHTS_INT8 ? " (output layer in int8)" : "", bench_threads(), tokens);
    printf("read_bandwidth_gbps: %.2f (512 MiB summed by %d thread%s, best of 5, this run)\n", bw,
           bench_threads(), bench_threads() == 1 ? "" : "s");
    printf("fma_peak_gflops: %.1f (%d thread%s, this run); LMU memory %.1f MFLOP/token = %.3f ms at it\n",
           peak, bench_threads(), bench_threads() == 1 ? "" : "s", 1e-6 * memory_flops(m),
           1e-6 * memory_flops(m) / peak);
    printf("state: %s\n", attn && c.window ? "KV cache, a ring of the window's 2 W positions (constant)"
                           : attn ? "KV cache (grows with the context)"
                                  : "recurrent (LMU memory, linear-attention state: constant)");
    for (k = 0; k < nctx; k++) {
        double mb = 1e-6 * bytes_per_token(m, ctx[k] + tokens / 2, fmt), gbps = mb / ms[k];
        double floor_ms = (bw > 0 ? mb / bw : 0) + (peak > 0 ? 1e-6 * memory_flops(m) / peak : 0);
        printf("context %6d: %8.3f ms/token  %8.1f tokens/s  (%s)  %.2f MB/token, %.2f GB/s = %.0f%% of "
               "the memory floor, %.0f%% with the arithmetic\n", ctx[k], ms[k], 1e3 / ms[k],
               fed[k] ? "fed" : "jumped", mb, gbps, bw > 0 ? 100 * gbps / bw : 0.0, 100 * floor_ms / ms[k]);
    }
    printf("ratio_last_to_first: %.3f\n", ms[nctx - 1] / ms[0]);
    printf("peak_rss_mb: %.1f\nrss_after_create_mb: %.1f\nloadavg_1min: %.2f\n", bench_peak_rss_mb(), rss0,
           bench_loadavg());
    if (json) {
        printf("{\"preset\": \"%s\", \"threads\": %d, \"tokens\": %d", preset, bench_threads(), tokens);
        for (k = 0; k < nctx; k++)
            printf(", \"ms_per_token_at_%d\": %.4f, \"fed_%d\": %d, \"mb_per_token_at_%d\": %.3f", ctx[k],
                   ms[k], ctx[k], fed[k], ctx[k], 1e-6 * bytes_per_token(m, ctx[k] + tokens / 2, fmt));
        printf(", \"read_bandwidth_gbps\": %.3f", bw);
        printf(", \"peak_rss_mb\": %.1f}\n", bench_peak_rss_mb());
    }
    lmu_gen_free(&g);
    lmu_model_free(m);
    return 0;
}
