/* The language models end to end: recurrent generation against the parallel
   forward, checkpoints (round trip, malformed files), exact resume, no
   allocation after warm-up, and a model that memorises a batch.
   Gradients of every parameter are checked against the PyTorch reference
   in tests/test_model_ref.sh. */
#include <stdlib.h>

/* Counting allocator: every allocation the library makes goes through here,
   so a test can assert that a warmed-up training step makes none. */
static long lt_allocs;
static void *lt_malloc(size_t n) { lt_allocs++; return malloc(n); }
static void *lt_realloc(void *p, size_t n) { lt_allocs++; return realloc(p, n); }
#define LMU_MALLOC(sz) lt_malloc(sz)
#define LMU_REALLOC(p, sz) lt_realloc(p, sz)
#define LMU_FREE(p) free(p)

#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "lmu_test.h"

/* The tests that loop over k run once per model kind (lt_kinds in
   lmu_test.h: lmu/ffn, lmu/attn, transformer, lmu/ffn with our options),
   each on the suite's tiny model of that kind (lt_model_config). */

/* Deterministic token stream: batch `step` of a toy language with structure
   a model can learn (each token depends on the two before it). */
static void batch(int *tok, int *tg, int B, int T, int V, long step)
{
    int b, t;
    for (b = 0; b < B; b++) {
        unsigned s = (unsigned)(step * 131 + b * 17 + 1);
        int prev = (int)(s % (unsigned)V), prev2 = 0;
        for (t = 0; t <= T; t++) {
            int cur = (prev * 3 + prev2 + (int)((s >> (t % 7)) & 1)) % V;
            if (t < T) tok[b * T + t] = prev;
            if (t > 0) tg[b * T + t - 1] = prev;
            prev2 = prev;
            prev = cur;
        }
    }
}

/* The parallel path's logits: final LayerNorm output (the fused loss op's
   first input) times the tied embedding, in double. */
static void parallel_logits(lmu_model *m, int pos, double *out)
{
    lmu_tape *t = &m->tape;
    const lmu_tape_rec *ce = &t->recs[t->n_recs - 1];
    const float *h = lmu_tape_data(t, ce->in[0]) + (size_t)pos * (size_t)m->cfg.d_model;
    const float *E = lmu_tape_data(t, m->wte);
    int v, k, d = m->cfg.d_model;
    for (v = 0; v < m->cfg.vocab_size; v++) {
        double s = 0;
        for (k = 0; k < d; k++) s += (double)h[k] * E[(size_t)v * d + k];
        out[v] = s;
    }
}

/* lmu_gen_set_weights: the logits are the copy's own product (against
   double), within the documented bound of fp32's (bf16: 2^-8 sum |w h|;
   int8: s/2 sum |h|, and every weight within s/2 of its fp32 value), really
   differ from them, and fp32 gives fp32's bits back. */
static void gen_weights_check(lmu_model *m, const int *tok, int T, const char *name, lmu_gen_weights fmt)
{
    const lmu_config *c = lmu_model_config(m);
    const int V = c->vocab_size, d = c->d_model;
    const float *E = lmu_model_param(m, "wte", NULL);
    const char *fn = lmu_gen_weights_name(fmt);
    lmu_gen g, h;
    double kernel = 0, scale = 0, over = 0, qerr = 0;
    int t, v, j, differ = 0, same = 1;
    int ok = E && lmu_gen_create(&g, m, T) == LMU_OK && lmu_gen_create(&h, m, T) == LMU_OK &&
             lmu_gen_set_weights(&h, fmt) == LMU_OK && h.out_copy;
    LT_CHECK(ok, "%s: generators, one %s", name, fn);
    if (!ok) return;
    if (fmt == LMU_GEN_WEIGHTS_INT8)
        for (v = 0; v < V; v++) {
            float mx = 0, sv = h.out_scale[v];
            for (j = 0; j < d; j++) mx = fabsf(E[(size_t)v * d + j]) > mx ? fabsf(E[(size_t)v * d + j]) : mx;
            if (fabs(sv - mx / 127.0) > 1e-7 * mx) qerr = 1e30;
            for (j = 0; j < d; j++) {
                int8_t q = ((const int8_t *)h.out_copy)[(size_t)v * d + j];
                double e = fabs((double)sv * q - E[(size_t)v * d + j]) - 0.5 * sv * (1 + 1e-5);
                if (q < -127 || e > qerr) qerr = q < -127 ? 1e30 : e;
            }
        }
    for (t = 0; t < T; t++) {
        lmu_gen_feed(&g, tok[t]);
        lmu_gen_feed(&h, tok[t]);
        for (v = 0; v < V; v++) {
            double ref = 0, mag = 0, habs = 0, bound;
            for (j = 0; j < d; j++) {
                float w = E[(size_t)v * d + j], r;
                if (fmt == LMU_GEN_WEIGHTS_BF16) {
                    uint32_t u;
                    memcpy(&u, &w, 4);
                    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u; /* round to nearest even */
                    memcpy(&r, &u, 4);
                    ref += (double)r * h.h[j];
                } else {
                    ref += (double)((const int8_t *)h.out_copy)[(size_t)v * d + j] * h.h[j];
                }
                mag += fabs((double)w * h.h[j]);
                habs += fabs((double)h.h[j]);
            }
            if (fmt == LMU_GEN_WEIGHTS_INT8) ref *= h.out_scale[v];
            bound = fmt == LMU_GEN_WEIGHTS_BF16 ? ldexp(mag, -8) : 0.5 * h.out_scale[v] * habs;
            if (fabs(ref - h.logits[v]) > kernel) kernel = fabs(ref - h.logits[v]);
            if (fabs(ref) > scale) scale = fabs(ref);
            if (fabs((double)h.logits[v] - g.logits[v]) - (bound + 1e-6 * (1 + mag)) > over)
                over = fabs((double)h.logits[v] - g.logits[v]) - (bound + 1e-6 * (1 + mag));
            differ |= h.logits[v] != g.logits[v];
        }
    }
    if (fmt == LMU_GEN_WEIGHTS_INT8)
        LT_CHECK(qerr <= 0, "%s: int8 rows: scale max|w|/127, |q| <= 127, every s q within s/2 of w "
                 "(worst excess %.3g)", name, qerr);
    LT_CHECK(kernel <= 1e-5 * (scale > 1 ? scale : 1), "%s: %s logits = the copy's product (max diff %.3g)",
             name, fn, kernel);
    LT_CHECK(over <= 0, "%s: %s logits within %s of fp32's at every position (worst excess %.3g)", name, fn,
             fmt == LMU_GEN_WEIGHTS_BF16 ? "2^-8 sum |w h|" : "s/2 sum |h|", over);
    LT_CHECK(differ, "%s: the %s copy is used (some logit differs)", name, fn);
    lmu_gen_set_weights(&h, LMU_GEN_WEIGHTS_FP32);
    lmu_gen_reset(&g), lmu_gen_reset(&h);
    for (t = 0; t < T; t++) {
        lmu_gen_feed(&g, tok[t]), lmu_gen_feed(&h, tok[t]);
        same &= memcmp(g.logits, h.logits, (size_t)V * sizeof(float)) == 0;
    }
    LT_CHECK(same && !h.out_copy, "%s: lmu_gen_set_weights(g, fp32) after %s: fp32's bits again", name, fn);
    LT_CHECK(lmu_gen_set_weights(&h, LMU_GEN_WEIGHTS_COUNT) == LMU_ERR_ARG, "%s: a bad format refused", name);
    lmu_gen_free(&g);
    lmu_gen_free(&h);
}

static void test_recurrent_matches_parallel(void)
{
    /* T past LMU__LA_CROSSOVER: linear attention trains in its chunked form */
    enum { T = 800, V = 97 };
    static int tok[T], tg[T];
    static double ref[V];
    int k, t, v;
    LT_CHECK(T > LMU__LA_CROSSOVER, "T = %d runs linear attention's chunked form (crossover %d)", T,
             LMU__LA_CROSSOVER);
    for (k = 0; k < LT_N_KINDS; k++) {
        lmu_config c;
        lmu_model *m;
        lmu_gen g;
        char err[256];
        double worst = 0, scale = 0;
        lt_model_config(&c, k, V, T);
        if (!lt__check(lmu_model_create(&m, &c, 7, err, sizeof err) == LMU_OK, __FILE__, __LINE__,
                       "create tiny model"))
            return;
        batch(tok, tg, 1, T, V, 3);
        /* a few steps so the weights are not just their initialisation */
        for (t = 0; t < 3; t++) {
            lmu_model_forward(m, tok, tg, 1, T, NULL);
            lmu_model_backward(m);
            lmu_model_step(m, 1e-2f, 1.0f, NULL);
        }
        LT_CHECK(lmu_model_forward(m, tok, tg, 1, T, NULL) == LMU_OK, "%s forward", lt_kinds[k].name);
        {
            /* the public accessor gives the same logits as the double product */
            static float lg[V];
            double e = 0, sc = 0;
            LT_CHECK(lmu_model_logits(m, 0, T - 1, lg) == LMU_OK && lmu_model_logits(m, 1, 0, lg) == LMU_ERR_ARG &&
                         lmu_model_logits(m, 0, T, lg) == LMU_ERR_ARG && lmu_model_logits(m, 0, -1, lg) == LMU_ERR_ARG,
                     "%s: lmu_model_logits refuses positions outside the last forward", lt_kinds[k].name);
            lmu_model_logits(m, 0, T - 1, lg);
            parallel_logits(m, T - 1, ref);
            for (v = 0; v < V; v++) {
                if (fabs(ref[v] - lg[v]) > e) e = fabs(ref[v] - lg[v]);
                if (fabs(ref[v]) > sc) sc = fabs(ref[v]);
            }
            LT_CHECK(e <= 1e-5 * (sc > 1 ? sc : 1), "%s: lmu_model_logits = x E^T at the last position (max diff %.3g)",
                     lt_kinds[k].name, e);
        }
        LT_CHECK(lmu_gen_create(&g, m, T) == LMU_OK, "%s generator", lt_kinds[k].name);
        for (t = 0; t < T; t++) {
            lmu_gen_feed(&g, tok[t]);
            parallel_logits(m, t, ref);
            for (v = 0; v < V; v++) {
                double dlt = fabs(ref[v] - g.logits[v]);
                if (dlt > worst) worst = dlt;
                if (fabs(ref[v]) > scale) scale = fabs(ref[v]);
            }
        }
        /* float32 FFT convolution against a float32 recurrence over 800
           steps: agreement to a few ulps of the logits' scale */
        LT_CHECK(worst <= 1e-4 * (scale > 1 ? scale : 1),
                 "%s: recurrent logits = parallel logits at all %d positions (max diff %.3g, scale %.3g)",
                 lt_kinds[k].name, T, worst, scale);
        lmu_gen_free(&g);
        gen_weights_check(m, tok, T, lt_kinds[k].name, LMU_GEN_WEIGHTS_BF16);
        gen_weights_check(m, tok, T, lt_kinds[k].name, LMU_GEN_WEIGHTS_INT8);
        lmu_model_free(m);
    }
}

static void test_checkpoints(void)
{
    enum { B = 2, T = 16, V = 50 };
    int tok[B * T], tg[B * T], k;
    char path[64], path2[64];
    /* per-process names: two test runs at once must not share files */
    snprintf(path, sizeof path, "build/test_model_ckpt.%ld.safetensors", (long)getpid());
    snprintf(path2, sizeof path2, "build/test_model_ckpt2.%ld.safetensors", (long)getpid());
    for (k = 0; k < LT_N_KINDS; k++) {
        lmu_config c;
        lmu_model *m, *m2 = NULL;
        char err[256];
        unsigned char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0, cut;
        int bad = 0, i;
        lt_model_config(&c, k, V, T);
        lmu_model_create(&m, &c, 11, err, sizeof err);
        batch(tok, tg, B, T, V, 0);
        lmu_model_forward(m, tok, tg, B, T, NULL);
        lmu_model_backward(m);
        lmu_model_step(m, 1e-3f, 1.0f, NULL);
        m->data_pos = 12345;
        LT_CHECK(lmu_model_save(m, path, 1) == LMU_OK, "%s save: %s", lt_kinds[k].name, m->err);
        LT_CHECK(lmu_model_load(&m2, path, err, sizeof err) == LMU_OK, "%s load: %s", lt_kinds[k].name, err);
        if (!m2) continue;
        LT_CHECK(memcmp(m->tape.param, m2->tape.param, m->tape.param_size * sizeof(float)) == 0 &&
                     memcmp(m->adam.m, m2->adam.m, m->tape.param_size * sizeof(float)) == 0 &&
                     memcmp(m->adam.v, m2->adam.v, m->tape.param_size * sizeof(float)) == 0 &&
                     m2->adam.step == m->adam.step && m2->data_pos == 12345 &&
                     memcmp(&m->cfg, &m2->cfg, sizeof m->cfg) == 0,
                 "%s round trip is bit-exact (params, Adam moments, step, data position, config)",
                 lt_kinds[k].name);
        lmu_model_save(m2, path2, 1);
        a = lt_slurp(path, &la);
        b = lt_slurp(path2, &lb);
        LT_CHECK(la == lb && la > 0 && memcmp(a, b, la) == 0, "%s: re-saved file is byte-identical",
                 lt_kinds[k].name);
        lmu_model_free(m2);
        m2 = NULL;

        /* every truncation is refused with a message, never a crash */
        for (cut = 0; cut < la; cut += (cut < 256 ? 1 : la / 97 + 1)) {
            err[0] = 0;
            if (lmu_model_load_memory(&m2, a, cut, err, sizeof err) == LMU_OK || !err[0]) bad++;
            lmu_model_free(m2);
            m2 = NULL;
        }
        LT_CHECK(bad == 0, "%s: truncated files refused with a message (%d accepted)", lt_kinds[k].name, bad);

        /* oversized: a header length far past the end */
        memcpy(b, a, la);
        b[4] = 0x7f;
        err[0] = 0;
        LT_CHECK(lmu_model_load_memory(&m2, b, la, err, sizeof err) == LMU_ERR_FORMAT && err[0],
                 "%s: oversized header length refused: %s", lt_kinds[k].name, err);
        lmu_model_free(m2);
        m2 = NULL;
        if (k == 0) {
            /* a file with trailing junk after the data section */
            unsigned char *big = (unsigned char *)malloc(la + 64);
            memcpy(big, a, la);
            memset(big + la, 0xAB, 64);
            err[0] = 0;
            LT_CHECK(lmu_model_load_memory(&m2, big, la + 64, err, sizeof err) != LMU_OK && err[0],
                     "file longer than its tensors refused: %s", err);
            lmu_model_free(m2);
            m2 = NULL;
            free(big);
        }
        free(a);
        free(b);
        a = b = NULL;

        /* wrong dtype and wrong shape: rewrite the checkpoint with one
           tensor changed, through the safetensors writer itself */
        {
            lmu_st_file f;
            lmu_st_tensor *ts;
            lmu_st_meta *meta;
            size_t n, j;
            double *wide = NULL;
            memset(&f, 0, sizeof f);
            lmu_st_load_file(&f, path, err, sizeof err);
            n = f.n_tensors;
            ts = (lmu_st_tensor *)malloc(n * sizeof *ts);
            meta = (lmu_st_meta *)malloc(f.n_meta * sizeof *meta);
            memcpy(ts, f.tensors, n * sizeof *ts);
            memcpy(meta, f.meta, f.n_meta * sizeof *meta);
            for (i = 0; i < 3; i++) {
                memcpy(ts, f.tensors, n * sizeof *ts);
                for (j = 0; j < n; j++)
                    if (strcmp(ts[j].name, "ln_f.bias") == 0) break;
                if (i == 0) { /* F64 where F32 belongs */
                    size_t e, cnt = ts[j].nbytes / 4;
                    wide = (double *)malloc(cnt * sizeof(double));
                    for (e = 0; e < cnt; e++) wide[e] = ((const float *)ts[j].data)[e];
                    ts[j].dtype = LMU_ST_F64;
                    ts[j].data = wide;
                } else if (i == 1) { /* [d] stored as [d/2, 2] */
                    ts[j].ndim = 2;
                    ts[j].shape[0] = ts[j].shape[0] / 2;
                    ts[j].shape[1] = 2;
                } else { /* a tensor the model does not have */
                    ts[j].name = "blocks.9.ln_a.weight";
                }
                lmu_st_save_file(path2, ts, n, meta, f.n_meta, err, sizeof err);
                err[0] = 0;
                LT_CHECK(lmu_model_load(&m2, path2, err, sizeof err) != LMU_OK && err[0] &&
                             (i == 1 ? strstr(err, "ln_f.bias") != NULL : 1),
                         "%s: %s refused: %s", lt_kinds[k].name,
                         i == 0 ? "wrong dtype" : i == 1 ? "wrong shape" : "unknown tensor", err);
                lmu_model_free(m2);
                m2 = NULL;
            }
            /* a vocabulary the metadata disagrees with */
            for (j = 0; j < f.n_meta; j++)
                if (strcmp(meta[j].key, "vocab_size") == 0) meta[j].value = "51";
            memcpy(ts, f.tensors, n * sizeof *ts);
            lmu_st_save_file(path2, ts, n, meta, f.n_meta, err, sizeof err);
            err[0] = 0;
            LT_CHECK(lmu_model_load(&m2, path2, err, sizeof err) == LMU_ERR_SHAPE && strstr(err, "wte"),
                     "%s: checkpoint for another vocabulary refused: %s", lt_kinds[k].name, err);
            lmu_model_free(m2);
            m2 = NULL;
            free(wide);
            free(ts);
            free(meta);
            lmu_st_close(&f);
        }
        err[0] = 0;
        LT_CHECK(lmu_model_load(&m2, "build/no-such-checkpoint", err, sizeof err) == LMU_ERR_IO && err[0],
                 "missing file: %s", err);
        lmu_model_free(m);
    }
    remove(path);
    remove(path2);
}

/* N steps straight, or N/2 steps + save + load + N/2 steps: same losses,
   bit for bit. The data position travels in the checkpoint. */
static void test_resume(void)
{
    enum { B = 2, T = 32, V = 61, N = 8 };
    int tok[B * T], tg[B * T], k;
    char path[64];
    snprintf(path, sizeof path, "build/test_model_resume.%ld.safetensors", (long)getpid());
    for (k = 0; k < LT_N_KINDS; k++) {
        lmu_config c;
        lmu_model *m;
        char err[256];
        float straight[N], resumed[N];
        long s;
        lt_model_config(&c, k, V, T);
        lmu_model_create(&m, &c, 5, err, sizeof err);
        for (s = 0; s < N; s++) {
            batch(tok, tg, B, T, V, s);
            lmu_model_forward_backward(m, tok, tg, B, T, &straight[s]);
            lmu_model_step(m, lmu_lr_schedule(s, 2, N, 3e-3f), 1.0f, NULL);
        }
        lmu_model_free(m);
        lmu_model_create(&m, &c, 5, err, sizeof err);
        for (s = 0; s < N / 2; s++) {
            batch(tok, tg, B, T, V, s);
            lmu_model_forward_backward(m, tok, tg, B, T, &resumed[s]);
            lmu_model_step(m, lmu_lr_schedule(s, 2, N, 3e-3f), 1.0f, NULL);
            m->data_pos = (uint64_t)s + 1;
        }
        lmu_model_save(m, path, 1);
        lmu_model_free(m);
        m = NULL;
        LT_CHECK(lmu_model_load(&m, path, err, sizeof err) == LMU_OK, "%s resume load: %s", lt_kinds[k].name, err);
        if (!m) continue;
        for (s = (long)m->data_pos; s < N; s++) {
            batch(tok, tg, B, T, V, s);
            lmu_model_forward_backward(m, tok, tg, B, T, &resumed[s]);
            lmu_model_step(m, lmu_lr_schedule(s, 2, N, 3e-3f), 1.0f, NULL);
        }
        LT_CHECK(memcmp(straight, resumed, sizeof straight) == 0,
                 "%s: %d steps straight = %d + save/load + %d, bit for bit (last %.9g vs %.9g)",
                 lt_kinds[k].name, N, N / 2, N / 2, (double)straight[N - 1], (double)resumed[N - 1]);
        lmu_model_free(m);
    }
    remove(path);
}

/* lmu_model_forward_backward (loss-layer grads from its forward) against
   lmu_model_forward + lmu_model_backward (recomputed in backward): the same
   loss bits, every gradient equal to float rounding. */
static void test_forward_backward(void)
{
    enum { B = 2, T = 24, V = 53 };
    int tok[B * T], tg[B * T], k;
    for (k = 0; k < LT_N_KINDS; k++) {
        lmu_config c;
        lmu_model *m;
        char err[256];
        float l1 = 0, l2 = 0, *g1;
        double num = 0, den = 0;
        size_t i, n;
        lt_model_config(&c, k, V, T);
        if (lmu_model_create(&m, &c, 21, err, sizeof err) != LMU_OK) continue;
        n = m->tape.param_size;
        batch(tok, tg, B, T, V, 9);
        g1 = (float *)malloc(n * sizeof(float));
        lmu_model_forward(m, tok, tg, B, T, &l1);
        lmu_model_backward(m);
        memcpy(g1, m->tape.param_grad, n * sizeof(float));
        LT_CHECK(lmu_model_forward_backward(m, tok, tg, B, T, &l2) == LMU_OK, "%s forward_backward",
                 lt_kinds[k].name);
        for (i = 0; i < n; i++) {
            double dd = (double)g1[i] - m->tape.param_grad[i];
            num += dd * dd;
            den += (double)g1[i] * g1[i];
        }
        LT_CHECK(l1 == l2 && den > 0 && sqrt(num / den) < 1e-6,
                 "%s: forward_backward = forward + backward (loss %s, grads rel L2 %.2g, bound 1e-6)",
                 lt_kinds[k].name, l1 == l2 ? "same bits" : "DIFFERS", den > 0 ? sqrt(num / den) : -1.0);
        LT_CHECK(lmu_model_backward(m) == LMU_ERR_STATE, "%s: no second backward after forward_backward",
                 lt_kinds[k].name);
        free(g1);
        lmu_model_free(m);
    }
}

static void test_training(void)
{
    enum { B = 2, T = 32, V = 40 };
    int tok[B * T], tg[B * T], k;
    for (k = 0; k < LT_N_KINDS; k++) {
        lmu_config c;
        lmu_model *m;
        char err[256];
        float loss = 0, first = 0;
        long s, allocs = 0, steps = 0;
        lt_model_config(&c, k, V, T);
        lmu_model_create(&m, &c, 3, err, sizeof err);
        batch(tok, tg, B, T, V, 42);
        /* memorise one batch: a bounded number of Adam steps */
        for (s = 0; s < 400; s++) {
            long before = lt_allocs;
            float ev;
            if (lmu_model_forward_backward(m, tok, tg, B, T, &loss) != LMU_OK ||
                lmu_model_step(m, lmu_lr_schedule(s, 10, 400, 1e-2f), 1.0f, NULL) != LMU_OK)
                break;
            /* an evaluation forward between steps plans nothing new either */
            if (s % 7 == 3 && lmu_model_forward(m, tok, tg, B, T, &ev) != LMU_OK) break;
            if (s == 0) first = loss;
            if (s > 0) allocs += lt_allocs - before;
            steps++;
            if (loss < 0.05f) break;
        }
        LT_CHECK(loss < 0.05f, "%s memorises a %dx%d batch: loss %.3f -> %.4f in %ld steps (bound 400)",
                 lt_kinds[k].name, B, T, (double)first, (double)loss, steps);
        LT_CHECK(allocs == 0, "%s: no allocation in %ld warmed-up steps (%ld seen)", lt_kinds[k].name,
                 steps - 1, allocs);
        lmu_model_free(m);
    }
}

/* Mixed precision (lmu_model_set_precision): bf16 products in the linear
   layers and the output layer. The gemm's own test bounds each product;
   here: the model uses them (loss and grads move), by no more than bf16's
   rounding explains (loss 1e-3 relative, grads 5e-2 relative L2: the
   operands move by at most 2^-8 each, a product by 2^-7), fp32's bits come
   back when it is switched off, and training in bf16 learns and allocates
   nothing once warm. */
static void test_precision(void)
{
    enum { B = 2, T = 24, V = 53 };
    int tok[B * T], tg[B * T], k;
    lmu_precision p = LMU_PRECISION_FP32;
    LT_CHECK(lmu_precision_parse("bf16", &p) == LMU_OK && p == LMU_PRECISION_BF16 &&
                 !strcmp(lmu_precision_name(p), "bf16") &&
                 lmu_precision_parse("fp16", &p) == LMU_ERR_ARG && p == LMU_PRECISION_BF16 &&
                 lmu_precision_parse(NULL, &p) == LMU_ERR_ARG &&
                 !strcmp(lmu_precision_name(LMU_PRECISION_COUNT), "?"),
             "precision names: bf16 parses, fp16 and NULL do not");
    {
        lmu_gen_weights w = LMU_GEN_WEIGHTS_FP32;
        LT_CHECK(lmu_gen_weights_parse("int8", &w) == LMU_OK && w == LMU_GEN_WEIGHTS_INT8 &&
                     lmu_gen_weights_parse("int4", &w) == LMU_ERR_ARG && w == LMU_GEN_WEIGHTS_INT8 &&
                     lmu_gen_weights_parse(NULL, &w) == LMU_ERR_ARG &&
                     !strcmp(lmu_gen_weights_name(LMU_GEN_WEIGHTS_BF16), "bf16"),
                 "generation weight formats: int8 parses, int4 and NULL do not");
    }
    for (k = 0; k < LT_N_KINDS; k++) {
        lmu_config c;
        lmu_model *m;
        char err[256];
        float l32 = 0, l16 = 0, l16e = 0, lback = 0, first = 0, loss = 0;
        float *g32;
        double num = 0, den = 0, rel;
        size_t i, n;
        long s, allocs = 0;
        lt_model_config(&c, k, V, T);
        if (lmu_model_create(&m, &c, 21, err, sizeof err) != LMU_OK) continue;
        n = m->tape.param_size;
        batch(tok, tg, B, T, V, 5);
        g32 = (float *)malloc(n * sizeof(float));
        LT_CHECK(lmu_model_precision(m) == LMU_PRECISION_FP32 &&
                     lmu_model_set_precision(m, LMU_PRECISION_COUNT) == LMU_ERR_ARG &&
                     lmu_model_set_precision(NULL, LMU_PRECISION_BF16) == LMU_ERR_ARG,
                 "%s: fp32 by default; a bad precision refused", lt_kinds[k].name);
        lmu_model_forward_backward(m, tok, tg, B, T, &l32);
        memcpy(g32, m->tape.param_grad, n * sizeof(float));
        lmu_model_set_precision(m, LMU_PRECISION_BF16);
        lmu_model_forward(m, tok, tg, B, T, &l16e);
        lmu_model_forward_backward(m, tok, tg, B, T, &l16);
        for (i = 0; i < n; i++) {
            double dd = (double)g32[i] - m->tape.param_grad[i];
            num += dd * dd;
            den += (double)g32[i] * g32[i];
        }
        rel = den > 0 ? sqrt(num / den) : -1;
        LT_CHECK(lmu_model_precision(m) == LMU_PRECISION_BF16 && l16 != l32 &&
                     fabs((double)l16 - l32) <= 1e-3 * l32 && rel > 0 && rel <= 5e-2,
                 "%s: bf16 loss %.6f vs fp32 %.6f (bound 1e-3 relative), grads rel L2 %.2g (bound 5e-2)",
                 lt_kinds[k].name, (double)l16, (double)l32, rel);
        LT_CHECK(l16e == l16, "%s: bf16 forward alone = forward_backward's loss, same bits",
                 lt_kinds[k].name);
        lmu_model_set_precision(m, LMU_PRECISION_FP32);
        lmu_model_forward_backward(m, tok, tg, B, T, &lback);
        LT_CHECK(lback == l32 && !memcmp(g32, m->tape.param_grad, n * sizeof(float)),
                 "%s: back to fp32: fp32's loss and gradients, same bits", lt_kinds[k].name);
        lmu_model_set_precision(m, LMU_PRECISION_BF16);
        for (s = 0; s < 60; s++) {
            long before = lt_allocs;
            if (lmu_model_forward_backward(m, tok, tg, B, T, &loss) != LMU_OK ||
                lmu_model_step(m, 1e-2f, 1.0f, NULL) != LMU_OK)
                break;
            if (s == 0) first = loss;
            if (s > 0) allocs += lt_allocs - before;
        }
        LT_CHECK(s == 60 && loss < 0.5f * first && allocs == 0,
                 "%s: 60 bf16 steps on one batch: loss %.3f -> %.3f (bound half), %ld allocations "
                 "after the first", lt_kinds[k].name, (double)first, (double)loss, allocs);
        free(g32);
        lmu_model_free(m);
    }
}

static void test_errors(void)
{
    lmu_config c;
    lmu_model *m;
    char err[256];
    int tok[8] = {0, 1, 2, 3, 4, 5, 6, 7}, tg[8] = {1, 2, 3, 4, 5, 6, 7, 99};
    lt_model_config(&c, LT_LMU_FFN, 50, 4);
    lmu_model_create(&m, &c, 1, err, sizeof err);
    LT_CHECK(lmu_model_forward(m, tok, tg, 1, 8, NULL) == LMU_ERR_SHAPE && m->err[0],
             "T > n_ctx refused: %s", m->err);
    LT_CHECK(lmu_model_forward(m, tok, tg, 2, 4, NULL) == LMU_ERR_RANGE && m->err[0],
             "target out of range refused: %s", m->err);
    tok[0] = -1;
    LT_CHECK(lmu_model_forward(m, tok, tok + 4, 1, 4, NULL) == LMU_ERR_RANGE && m->err[0],
             "token out of range refused: %s", m->err);
    LT_CHECK(lmu_model_backward(m) == LMU_ERR_STATE, "backward without a forward refused");
    lmu_model_free(m);
    c.q_prime = 99;
    LT_CHECK(lmu_model_create(&m, &c, 1, err, sizeof err) == LMU_ERR_ARG && err[0] && !m,
             "config that does not fit refused: %s", err);
}

/* Our options (docs/EXPERIMENTS.md): theta_last gives each layer its own
   window, geometric from theta to theta_last; iattn_init = delay makes row r
   of each L read the input lag_r = 0, 1, 2, 4, ... steps back, so that
   (L H)[r, .] peaks at lag_r. */
static void test_layer_theta_and_delay_init(void)
{
    lmu_config c;
    lmu_model *m;
    char err[256];
    int l, r, w;
    lt_model_config(&c, LT_LMU_LAYERS, 64, 64);
    c.n_layer = 3;
    c.theta = 8;
    c.theta_last = 128;
    LT_CHECK(lmu_model_create(&m, &c, 5, err, sizeof err) == LMU_OK, "create: %s", err);
    if (!m) return;
    LT_CHECK(lmu_config_layer_theta(&m->cfg, 0) == 8 && fabs(lmu_config_layer_theta(&m->cfg, 1) - 32) < 1e-9 &&
                 lmu_config_layer_theta(&m->cfg, 2) == 128,
             "layer windows 8, %g, %g (want 8, 32, 128)", lmu_config_layer_theta(&m->cfg, 1),
             lmu_config_layer_theta(&m->cfg, 2));
    for (l = 0; l < 3; l++)
        LT_CHECK(m->lti_layer[l]->theta == lmu_config_layer_theta(&m->cfg, l),
                 "layer %d's memory is built for its window", l);
    for (l = 0; l < 3; l++) {
        const float *L = lmu_tape_data(&m->tape, m->layer[l].lmu_L);
        const lmu_lti *lti = m->lti_layer[l];
        int lag = 0, q = c.q, n = lti->n, bad = 0;
        for (r = 0; r < c.q_prime; r++) {
            int best = 0, k, i;
            double peak = -1e9, hk;
            lag = r < 3 ? r : 2 * lag;
            for (k = 0; k < n; k++) {
                for (i = 0, hk = 0; i < q; i++) hk += (double)L[(size_t)2 * c.q_prime * q + (size_t)r * q + i] * lti->H[(size_t)i * n + k];
                if (hk > peak) peak = hk, best = k;
            }
            for (w = 0; w < 3; w++) /* q, k, v rows alike */
                if (memcmp(L + (size_t)w * c.q_prime * q + (size_t)r * q, L + (size_t)r * q, (size_t)q * sizeof(float)))
                    bad++;
            /* how sharp the peak can be depends on theta / q: a window
               of up to 2q steps resolves single steps (peak near 1) */
            LT_CHECK(best == lag && (lti->theta > 2 * q || peak > 0.8),
                     "layer %d (theta %g): row %d of L_v H peaks at lag %d (%.2f; want lag %d)",
                     l, lti->theta, r, best, peak, lag);
        }
        LT_CHECK(bad == 0, "layer %d: L_q, L_k, L_v start equal", l);
    }
    lmu_model_free(m);
    {   /* iattn_lr: the first Adam step moves each weight by about lr (the
           bias-corrected m / sqrt(v) is +-1), so L, b and p move iattn_lr
           times as far as with iattn_lr off, and everything else the same */
        lmu_model *a, *b;
        int tok[16], tg[16], i, ids[2];
        double ratio[2];
        for (i = 0; i < 16; i++) tok[i] = (i * 7) % 64, tg[i] = (i * 5 + 1) % 64;
        lt_model_config(&c, LT_LMU_LAYERS, 64, 64);
        c.iattn_lr = 0;
        lmu_model_create(&a, &c, 9, err, sizeof err);
        c.iattn_lr = 3;
        lmu_model_create(&b, &c, 9, err, sizeof err);
        ids[0] = a->layer[0].lmu_p, ids[1] = a->layer[0].fc_w;
        for (w = 0; w < 2; w++) {
            lmu_model *mm = w ? b : a;
            lmu_model_forward_backward(mm, tok, tg, 1, 16, NULL);
        }
        {
            float *p0a = (float *)malloc(a->tape.param_size * sizeof(float));
            float *p0b = (float *)malloc(b->tape.param_size * sizeof(float));
            memcpy(p0a, a->tape.param, a->tape.param_size * sizeof(float));
            memcpy(p0b, b->tape.param, b->tape.param_size * sizeof(float));
            lmu_model_step(a, 1e-3f, 0, NULL);
            lmu_model_step(b, 1e-3f, 0, NULL);
            for (i = 0; i < 2; i++) {
                const lmu_tensor *x = &a->tape.tensors[ids[i]];
                double da = 0, db = 0;
                size_t k;
                for (k = 0; k < x->size; k++) {
                    da += fabs(a->tape.param[x->off + k] - p0a[x->off + k]);
                    db += fabs(b->tape.param[x->off + k] - p0b[x->off + k]);
                }
                ratio[i] = da > 0 ? db / da : 0;
            }
            free(p0a);
            free(p0b);
        }
        LT_CHECK(fabs(ratio[0] - 3) < 1e-3 && fabs(ratio[1] - 1) < 1e-6,
                 "iattn_lr = 3: lmu.p moves %.4fx as far, ffn_post.fc.weight %.6fx", ratio[0], ratio[1]);
        lmu_model_free(a);
        lmu_model_free(b);
    }
    /* every layer's window must be buildable: q^2 n_ctx is capped per window */
    lt_model_config(&c, LT_LMU_LAYERS, 64, 64);
    c.theta_last = -1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "theta_last"),
             "negative theta_last refused: %s", err);
    lt_model_config(&c, LT_LMU_LAYERS, 64, 64);
    c.theta_last = c.theta;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.theta_last == 0,
             "theta_last = theta resolves to 0 (one spelling of off)");
}

/* A checkpoint written by lmu.h 0.1.0, before iattn_init and theta_last
   existed (tests/fixtures/v0.1.0-lmu-tiny.safetensors: lmu/ffn, V 64, d 16,
   2 layers, q 12, q' 3, theta 20, 3 Adam steps from seed 7): it loads, as
   iattn_init = random with one window, and computes what 0.1.0 computed on
   the same batch (3.74061108 there, on x86-64 with AVX-512). */
static void test_old_checkpoint(void)
{
    lmu_model *m;
    char err[256];
    int tok[32], tg[32], i;
    float loss = 0;
    for (i = 0; i < 32; i++) tok[i] = (i * 11 + 3) % 64, tg[i] = (i * 5 + 1) % 64;
    LT_CHECK(lmu_model_load(&m, "tests/fixtures/v0.1.0-lmu-tiny.safetensors", err, sizeof err) == LMU_OK,
             "0.1.0 checkpoint loads: %s", err);
    if (!m) return;
    LT_CHECK(m->cfg.iattn_init == LMU_IATTN_INIT_RANDOM && m->cfg.theta_last == 0 && m->cfg.iattn_lr == 0 &&
                 m->cfg.theta == 20 && m->adam.step == 3,
             "0.1.0 checkpoint: iattn_init random, one window, Adam step 3");
    LT_CHECK(lmu_model_forward(m, tok, tg, 2, 16, &loss) == LMU_OK && fabs(loss - 3.74061108) < 1e-5 * 3.74,
             "0.1.0 checkpoint: the loss 0.1.0 computed (%.9g, want 3.74061108)", loss);
    lmu_model_free(m);
}

/* A checkpoint of 0.1.x after the option was added and before its rename
   names it isa_init: that key still reads (an unknown key would not fail,
   and the file would load as random, how files without the key were made). */
static void test_renamed_key(void)
{
    lmu_config c;
    lmu_model *m, *m2 = NULL;
    char err[256], path[] = "build/test_model_isa.safetensors";
    unsigned char *buf;
    size_t n, i, hits = 0;
    FILE *f;
    lt_model_config(&c, LT_LMU_ATTN, 31, 16);
    c.iattn_lr = 2;
    if (lmu_model_create(&m, &c, 3, err, sizeof err) != LMU_OK || lmu_model_save(m, path, 0) != LMU_OK) {
        LT_CHECK(0, "renamed key: model: %s", err);
        return;
    }
    buf = lt_slurp(path, &n);
    for (i = 0; buf && i + 12 < n; i++) /* same length: "iattn_X" -> "isa_X"  (JSON space) */
        if (memcmp(buf + i, "\"iattn_init\"", 12) == 0) memcpy(buf + i, "\"isa_init\"  ", 12), hits++;
        else if (memcmp(buf + i, "\"iattn_lr\"", 10) == 0) memcpy(buf + i, "\"isa_lr\"  ", 10), hits++;
    f = fopen(path, "wb");
    if (f) fwrite(buf, 1, n, f), fclose(f);
    LT_CHECK(hits == 2 && lmu_model_load(&m2, path, err, sizeof err) == LMU_OK &&
                 m2->cfg.iattn_init == LMU_IATTN_INIT_DELAY && m2->cfg.iattn_lr == 2,
             "metadata keys isa_init, isa_lr of 0.1.x read as iattn_init, iattn_lr (%lu renamed): %s",
             (unsigned long)hits, err);
    free(buf);
    lmu_model_free(m);
    lmu_model_free(m2);
    remove(path);
}

/* Transformer checkpoints before the transformer took a mixer have no
   "mixer" key: they load as attention, with the same loss. */
static void test_transformer_without_mixer_key(void)
{
    lmu_config c;
    lmu_model *m, *m2 = NULL;
    char err[256], path[] = "build/test_model_tr_nomixer.safetensors";
    int tok[16], tg[16], i;
    float l1 = 0, l2 = -1;
    unsigned char *buf;
    size_t n, j, hits = 0;
    FILE *f;
    lt_model_config(&c, LT_TRANSFORMER, 31, 16);
    for (i = 0; i < 16; i++) tok[i] = (i * 7) % 31, tg[i] = (i * 11 + 3) % 31;
    if (lmu_model_create(&m, &c, 5, err, sizeof err) != LMU_OK || lmu_model_save(m, path, 0) != LMU_OK ||
        lmu_model_forward(m, tok, tg, 1, 16, &l1) != LMU_OK) {
        LT_CHECK(0, "transformer without mixer key: model: %s", err);
        return;
    }
    buf = lt_slurp(path, &n);
    for (j = 0; buf && j + 7 < n; j++) /* an unknown key of the same length is ignored */
        if (memcmp(buf + j, "\"mixer\"", 7) == 0) memcpy(buf + j, "\"mixex\"", 7), hits++;
    f = fopen(path, "wb");
    if (f) fwrite(buf, 1, n, f), fclose(f);
    LT_CHECK(hits == 1 && lmu_model_load(&m2, path, err, sizeof err) == LMU_OK &&
                 lmu_config_layer_mixer(lmu_model_config(m2), 0) == LMU_MIXER_ATTN &&
                 lmu_model_forward(m2, tok, tg, 1, 16, &l2) == LMU_OK && l1 == l2,
             "a transformer checkpoint without \"mixer\" (%lu removed) loads as attn, loss %.7g = %.7g: %s",
             (unsigned long)hits, l1, l2, err);
    free(buf);
    lmu_model_free(m);
    lmu_model_free(m2);
    remove(path);
}

/* An LMU runs past the context it was made for (lmu_model_set_n_ctx):
   the first positions' losses stay what they were, longer sequences run,
   and the recurrence still matches the parallel path out there; the
   transformer refuses (its learned positions end), in training and in
   generation, whatever its mixer. With an attention window the cache is a
   ring: a generator for 16 positions takes 40 and gives the same bits. */
static void test_longer_context(void)
{
    int k;
    for (k = 0; k < LT_N_KINDS; k++) {
        lmu_config c;
        lmu_model *m = NULL;
        lmu_gen g;
        char err[256];
        int tok[40], tg[40], t, v, worst_v = 0;
        float l16, l16b, l40;
        double logit[64], worst = 0;
        lt_model_config(&c, k, 64, 16);
        if (lmu_model_create(&m, &c, 3, err, sizeof err) != LMU_OK) {
            LT_CHECK(0, "%s: create: %s", lt_kinds[k].name, err);
            continue;
        }
        batch(tok, tg, 1, 40, 64, 5);
        lmu_model_forward(m, tok, tg, 1, 16, &l16);
        if (c.arch == LMU_ARCH_TRANSFORMER) {
            LT_CHECK(lmu_model_set_n_ctx(m, 40) == LMU_ERR_RANGE && strstr(lmu_model_error(m), "positions"),
                     "%s: n_ctx 40 refused: %s", lt_kinds[k].name, lmu_model_error(m));
            if (lmu_gen_create(&g, m, 0) == LMU_OK) {
                int fed = 1;
                for (t = 0; t < 16; t++) fed &= lmu_gen_feed(&g, tok[t]) == LMU_OK;
                LT_CHECK(fed && lmu_gen_feed(&g, tok[16]) == LMU_ERR_CAPACITY && strstr(g.err, "positions"),
                         "%s: generation takes 16 positions and refuses the 17th: %s", lt_kinds[k].name, g.err);
                lmu_gen_free(&g);
            }
            lmu_model_free(m);
            continue;
        }
        LT_CHECK(lmu_model_set_n_ctx(m, 40) == LMU_OK && lmu_model_config(m)->n_ctx == 40,
                 "%s: n_ctx 16 -> 40: %s", lt_kinds[k].name, lmu_model_error(m));
        LT_CHECK(lmu_model_forward(m, tok, tg, 1, 16, &l16b) == LMU_OK && fabsf(l16b - l16) < 1e-5f * l16,
                 "%s: the first 16 positions' loss is unchanged (%.7f, %.7f)", lt_kinds[k].name, l16, l16b);
        LT_CHECK(lmu_model_forward(m, tok, tg, 1, 40, &l40) == LMU_OK,
                 "%s: a 40-token sequence runs: %s", lt_kinds[k].name, lmu_model_error(m));
        LT_CHECK(lmu_gen_create(&g, m, 40) == LMU_OK, "%s: generator", lt_kinds[k].name);
        for (t = 0; t < 40; t++) lmu_gen_feed(&g, tok[t]);
        parallel_logits(m, 39, logit);
        for (v = 0; v < 64; v++)
            if (fabs(g.logits[v] - logit[v]) > worst) worst = fabs(g.logits[v] - logit[v]), worst_v = v;
        LT_CHECK(worst < 2e-4, "%s: recurrent = parallel at position 39 (worst %.2g at %d)",
                 lt_kinds[k].name, worst, worst_v);
        if (c.window) {
            lmu_gen g2;
            int fed = 1;
            LT_CHECK(lmu_gen_create(&g2, m, 16) == LMU_OK, "%s: generator for 16 positions", lt_kinds[k].name);
            for (t = 0; t < 40; t++) fed &= lmu_gen_feed(&g2, tok[t]) == LMU_OK;
            LT_CHECK(fed && !memcmp(g2.logits, g.logits, 64 * sizeof(float)),
                     "%s: a window's ring: 40 positions through a 16-position generator, the same bits", lt_kinds[k].name);
            lmu_gen_free(&g2);
        }
        lmu_gen_free(&g);
        lmu_model_free(m);
    }
}

/* For every preset (every mixer, the transformer): the parameter count
   that lmu_config_param_count reports is what the model declares, the
   embeddings aside, and every tensor is named as the checkpoint names it. */
static void test_param_count_matches_declared(void)
{
    int i;
    for (i = 0; i < lmu_config_preset_count(); i++) {
        const char *name = lmu_config_preset_name(i);
        lmu_config c;
        lmu_model *m = NULL;
        char err[256];
        size_t declared = 0, emb, k;
        int t, named = 1;
        LT_CHECK(lmu_config_preset(&c, name) == LMU_OK, "%s: preset", name);
        c.vocab_size = 64, c.n_ctx = 32; /* cheap; N does not depend on them */
        if (lmu_model_create(&m, &c, 1, err, sizeof err) != LMU_OK) {
            LT_CHECK(0, "%s: create: %s", name, err);
            continue;
        }
        for (t = 0; t < m->tape.n_params; t++) {
            const char *nm = m->tape.tensors[t].name;
            declared += m->tape.tensors[t].size;
            if (strncmp(nm, "blocks.", 7) && strcmp(nm, "wte") && strcmp(nm, "wpe") &&
                strncmp(nm, "ln_f.", 5))
                named = 0;
        }
        emb = (size_t)c.vocab_size * (size_t)c.d_model;
        if (c.arch == LMU_ARCH_TRANSFORMER) emb += (size_t)c.n_ctx * (size_t)c.d_model;
        k = lmu_model_param_count(m);
        LT_CHECK(declared == k + emb && lmu_config_param_count_total(lmu_model_config(m)) == declared,
                 "%s: N %lu + embeddings %lu = the %lu floats declared", name, (unsigned long)k,
                 (unsigned long)emb, (unsigned long)declared);
        LT_CHECK(named, "%s: every parameter has a checkpoint name", name);
        lmu_model_free(m);
    }
}

/* The block-recurrent layer without a state is windowed attention with
   qk_norm, bit for bit (the same weights by name); with one, the state
   changes the logits and stays causal: changing token p moves no logit
   before p, and does move logits two blocks later (through the state, not
   the window). */
static void test_brt(void)
{
    enum { T = 40, V = 97, P = 17 };
    static int tok[T], tg[T];
    static double la[V];
    lmu_config ca, cb, cs;
    lmu_model *a = NULL, *b = NULL, *s = NULL;
    char err[256];
    float loss_a = 0, loss_b = 0;
    int i, missing = 0, moved_before = 0, moved_after = 0, pos;
    lt_model_config(&ca, LT_TRANSFORMER, V, T);
    lmu_config_set_items(&ca, "mixer=brt,attn,window=5,qk_norm=1", NULL, 0);
    cb = ca, cs = ca;
    lmu_config_set(&cb, "mixer", "attn", NULL, 0);
    lmu_config_set(&cs, "n_state", "3", NULL, 0);
    LT_CHECK(lmu_model_create(&a, &ca, 5, err, sizeof err) == LMU_OK, "brt n_state 0: %s", err);
    LT_CHECK(lmu_model_create(&b, &cb, 6, err, sizeof err) == LMU_OK, "attn window 5 qk_norm: %s", err);
    LT_CHECK(lmu_model_create(&s, &cs, 5, err, sizeof err) == LMU_OK, "brt n_state 3: %s", err);
    if (!a || !b || !s) goto done;
    LT_CHECK(a->tape.n_params == b->tape.n_params &&
                 lmu_config_param_count(&a->cfg) == lmu_config_param_count(&b->cfg),
             "brt with n_state 0 has windowed attention's parameters (%d, %d tensors)",
             a->tape.n_params, b->tape.n_params);
    for (i = 0; i < a->tape.n_params; i++) {
        int j = lmu_tape_find(&b->tape, a->tape.tensors[i].name);
        if (j < 0 || b->tape.tensors[j].size != a->tape.tensors[i].size) {
            missing++;
            continue;
        }
        memcpy(lmu_tape_data(&a->tape, i), lmu_tape_data(&b->tape, j),
               a->tape.tensors[i].size * sizeof(float));
    }
    LT_CHECK(missing == 0, "every brt (n_state 0) weight has attn's by name (%d missing)", missing);
    batch(tok, tg, 1, T, V, 9);
    lmu_model_forward(a, tok, tg, 1, T, &loss_a);
    lmu_model_forward(b, tok, tg, 1, T, &loss_b);
    LT_CHECK(memcmp(&loss_a, &loss_b, sizeof loss_a) == 0,
             "brt with n_state 0 = windowed attention: loss %.9g vs %.9g, same bits",
             (double)loss_a, (double)loss_b);
    /* causality with a state: perturb token P, logits before P stay */
    lmu_model_forward(s, tok, tg, 1, T, NULL);
    {
        static double before[T][V];
        for (pos = 0; pos < T; pos++) parallel_logits(s, pos, before[pos]);
        tok[P] = (tok[P] + 1) % V;
        lmu_model_forward(s, tok, tg, 1, T, NULL);
        for (pos = 0; pos < T; pos++) {
            parallel_logits(s, pos, la);
            for (i = 0; i < V; i++)
                if (la[i] != before[pos][i]) {
                    if (pos < P) moved_before++;
                    else if (pos >= 30) moved_after++; /* blocks 6, 7: past the window of P */
                    break;
                }
        }
    }
    LT_CHECK(moved_before == 0, "brt n_state 3: token %d moves no logit before it (%d moved)", P,
             moved_before);
    LT_CHECK(moved_after == 10, "brt n_state 3: it moves the logits of positions 30..39, which its "
             "window does not reach, through the state (%d of 10)", moved_after);
done:
    lmu_model_free(a);
    lmu_model_free(b);
    lmu_model_free(s);
}

/* Truncated backpropagation: a carried state equal to state0 is the
   fresh forward (same loss bits, same grads but state0's, which is then
   unused: 0); in place equals out of place; a sequence's state after its
   last block is its own (the other sequence's tokens do not move it); a
   model without a state and a T off the blocks are refused. */
static void test_brt_carry(void)
{
    enum { B = 2, T = 40, V = 97 };
    static int tok[B * T], tg[B * T];
    lmu_config c, cw;
    lmu_model *m = NULL, *w = NULL;
    char err[256];
    float l0 = 0, l1 = 0, *g0 = NULL, *carry = NULL, *out1 = NULL, *out2 = NULL;
    size_t n = 0, i, cf, off, badg = 0, bads = 0, moved = 0;
    int s0, k;
    lt_model_config(&c, LT_TRANSFORMER, V, T);
    lmu_config_set_items(&c, "n_layer=3,mixer=brt,attn,brt,window=5,qk_norm=1,n_state=3", NULL, 0);
    cw = c;
    lmu_config_set(&cw, "n_state", "0", NULL, 0);
    LT_CHECK(lmu_model_create(&m, &c, 7, err, sizeof err) == LMU_OK, "brt carry model: %s", err);
    LT_CHECK(lmu_model_create(&w, &cw, 7, err, sizeof err) == LMU_OK, "brt n_state 0: %s", err);
    if (!m || !w) goto done;
    cf = lmu_model_carry_floats(m);
    LT_CHECK(cf == 2 * 3 * (size_t)c.d_model, "carry floats: %lu = 2 layers x S 3 x d %d",
             (unsigned long)cf, c.d_model);
    LT_CHECK(lmu_model_carry_floats(w) == 0, "no state, nothing to carry (%lu)",
             (unsigned long)lmu_model_carry_floats(w));
    carry = (float *)malloc(B * cf * sizeof(float));
    out1 = (float *)malloc(B * cf * sizeof(float));
    out2 = (float *)malloc(B * cf * sizeof(float));
    batch(tok, tg, B, T, V, 11);
    LT_CHECK(lmu_model_forward_backward(m, tok, tg, B, T, &l0) == LMU_OK, "fresh forward: %s",
             lmu_model_error(m));
    g0 = (float *)malloc(m->tape.param_size * sizeof(float));
    lmu_model_grads(m, &n);
    memcpy(g0, lmu_model_grads(m, NULL), n * sizeof(float));
    for (k = 0; k < c.n_layer; k++) { /* every layer's state0 as the carried state */
        if (m->layer[k].brt_s0 < 0) continue;
        off = k == 0 ? 0 : cf / 2;
        for (i = 0; i < (size_t)B; i++)
            memcpy(carry + i * cf + off, lmu_tape_data(&m->tape, m->layer[k].brt_s0),
                   cf / 2 * sizeof(float));
    }
    LT_CHECK(lmu_model_forward_backward_carry(m, tok, tg, B, T, carry, out1, &l1) == LMU_OK,
             "carried forward: %s", lmu_model_error(m));
    LT_CHECK(memcmp(&l0, &l1, sizeof l0) == 0, "carrying state0 = the fresh forward: %.9g vs %.9g",
             (double)l0, (double)l1);
    for (i = 0; i < n; i++) {
        int in_s0 = 0;
        for (k = 0; k < c.n_layer; k++) {
            s0 = m->layer[k].brt_s0;
            if (s0 >= 0 && i >= m->tape.tensors[s0].off &&
                i < m->tape.tensors[s0].off + m->tape.tensors[s0].size)
                in_s0 = 1;
        }
        if (in_s0 ? lmu_model_grads(m, NULL)[i] != 0 : lmu_model_grads(m, NULL)[i] != g0[i])
            in_s0 ? bads++ : badg++;
    }
    LT_CHECK(badg == 0, "carrying state0: every grad but state0's the same bits (%lu differ)",
             (unsigned long)badg);
    LT_CHECK(bads == 0, "carrying: no grad reaches state0 (%lu nonzero)", (unsigned long)bads);
    lmu_model_forward_carry(m, tok, tg, B, T, carry, carry, NULL); /* in place */
    LT_CHECK(memcmp(carry, out1, B * cf * sizeof(float)) == 0, "carry in place = out of place");
    /* the next segment from out1, then again with sequence 0's tokens changed */
    lmu_model_forward_carry(m, tok, tg, B, T, out1, carry, NULL);
    for (i = 0; i < T; i++) tok[i] = (tok[i] + 1) % V;
    lmu_model_forward_carry(m, tok, tg, B, T, out1, out2, NULL);
    for (i = 0; i < cf; i++) moved += out2[i] != carry[i];
    LT_CHECK(memcmp(out2 + cf, carry + cf, cf * sizeof(float)) == 0,
             "a sequence's carried state is its own: sequence 1's the same bits when 0's tokens change");
    LT_CHECK(moved > 0, "sequence 0's tokens move its state (%lu of %lu floats)", (unsigned long)moved,
             (unsigned long)cf);
    { /* truncated backprop's steps allocate nothing once warm */
        long before;
        int st, bad = 0;
        lmu_model_forward_backward_carry(m, tok, tg, B, T, NULL, carry, NULL);
        before = lt_allocs;
        for (st = 0; st < 4; st++)
            bad |= lmu_model_forward_backward_carry(m, tok, tg, B, T, carry, carry, NULL) != LMU_OK ||
                   lmu_model_step(m, 1e-3f, 1.0f, NULL) != LMU_OK;
        LT_CHECK(!bad && lt_allocs == before, "4 carried steps: no allocation (%ld seen)",
                 lt_allocs - before);
    }
    LT_CHECK(lmu_model_forward_carry(w, tok, tg, B, T, carry, NULL, NULL) == LMU_ERR_ARG &&
                 strstr(lmu_model_error(w), "n_state"),
             "carrying without a state is refused: %s", lmu_model_error(w));
    LT_CHECK(lmu_model_forward_carry(m, tok, tg, B, T - 1, NULL, carry, NULL) == LMU_ERR_SHAPE &&
                 strstr(lmu_model_error(m), "multiple of window"),
             "a carry with T off the blocks is refused: %s", lmu_model_error(m));
done:
    free(g0), free(carry), free(out1), free(out2);
    lmu_model_free(m);
    lmu_model_free(w);
}


/* ---- the multi-scale stack (hier_k) ---- */

/* Causality by perturbation: run(ctx, p, rows) fills rows (T, width) with
   input p changed (p < 0: unchanged); counts the positions before and
   after p whose row moved by more than 1e-5 (1 + |value|): the LMU's FFT
   convolution spreads rounding noise of about 1e-7 over every position,
   a read of the future moves a row by the size of its input. */
typedef void (*rows_fn)(void *ctx, int p, double *rows);
static void perturb_counts(rows_fn run, void *ctx, int T, int width, int p, int *before, int *after)
{
    double *a = (double *)malloc((size_t)T * width * sizeof(double));
    double *b = (double *)malloc((size_t)T * width * sizeof(double));
    int pos, i;
    *before = *after = 0;
    run(ctx, -1, a);
    run(ctx, p, b);
    for (pos = 0; pos < T; pos++)
        for (i = 0; i < width; i++)
            if (fabs(a[(size_t)pos * width + i] - b[(size_t)pos * width + i]) >
                1e-5 * (1 + fabs(a[(size_t)pos * width + i]))) {
                if (pos < p) ++*before;
                else ++*after;
                break;
            }
    free(a);
    free(b);
}

typedef struct {
    lmu_model *m;
    const int *tok, *tg;
    int T;
} model_rows;

static void model_rows_run(void *ctx, int p, double *rows)
{
    model_rows *r = (model_rows *)ctx;
    int *tok = (int *)malloc((size_t)r->T * sizeof(int)), t, V = r->m->cfg.vocab_size;
    memcpy(tok, r->tok, (size_t)r->T * sizeof(int));
    if (p >= 0) tok[p] = (tok[p] + 1) % V;
    lmu_model_forward(r->m, tok, r->tg, 1, r->T, NULL);
    for (t = 0; t < r->T; t++) parallel_logits(r->m, t, rows + (size_t)t * V);
    free(tok);
}

/* the negative control: x + unpool(pool(x)) on a bare tape, pooled with
   the model's shift (k - 1) or with none */
typedef struct {
    lmu_tape t;
    const float *x;
    int T, C, k, shift;
} pool_rows;

static void pool_rows_run(void *ctx, int p, double *rows)
{
    pool_rows *r = (pool_rows *)ctx;
    int shape[3], x, y, o, i;
    shape[0] = 1, shape[1] = r->T, shape[2] = r->C;
    lmu_tape_reset(&r->t);
    lmu_tape_leaf(&r->t, r->x, 3, shape, 0, &x);
    if (p >= 0) lmu_tape_data(&r->t, x)[p * r->C] += 1.0f;
    lmu__tape_pool(&r->t, x, r->k, r->shift, &y);
    lmu__tape_unpool_add(&r->t, x, y, r->k, &o);
    for (i = 0; i < r->T * r->C; i++) rows[i] = lmu_tape_data(&r->t, o)[i];
}

/* causality (with the negative control), lengths off the k grid,
   generation = parallel, the coarse memory's length, FLOPs, refusals */
static void test_hier(void)
{
    enum { T = 23, V = 61 }; /* 23: not a multiple of k = 3 or 4 */
    /* the split each resolves to: a, b, c, and a2, b2 of the second level */
    static const char *const sets[4] = {
        "n_layer=3,mixer=ffn,attn,ffn,theta=40,hier_k=4",
        "arch=transformer,n_layer=3,mixer=attn,brt,attn,window=4,n_state=3,hier_k=3",
        "n_layer=4,mixer=ffn,attn,conv,ffn,theta=40,hier_k=2,hier_coarse=2,hier_k2=3,hier_bottom2=1",
        "arch=transformer,n_layer=5,mixer=attn,conv,brt,attn,attn,window=2,n_state=2,hier_k=2,"
        "hier_k2=2,hier_coarse2=1"};
    static const int split[4][5] = {{1, 1, 1, 0, 0}, {1, 1, 1, 0, 0}, {1, 2, 1, 1, 1}, {1, 3, 1, 1, 1}};
    static int tok[T], tg[T];
    static double ref[V];
    int k, before, after, p;
    batch(tok, tg, 1, T, V, 5);
    for (k = 0; k < 4; k++) {
        lmu_config c, flat;
        lmu_model *m = NULL;
        lmu_gen g;
        model_rows mr;
        char err[256];
        double worst = 0, scale = 0;
        int t, v, moved_before = 0, fails = 0;
        lt_model_config(&c, LT_LMU_FFN, V, T);
        c.iattn_init = LMU_IATTN_INIT_DELAY;
        LT_CHECK(lmu_config_set_items(&c, sets[k], err, sizeof err) == LMU_OK &&
                     lmu_model_create(&m, &c, 11, err, sizeof err) == LMU_OK,
                 "multi-scale model %s: %s", sets[k], err[0] ? err : "created");
        if (!m) continue;
        LT_CHECK(m->cfg.hier_bottom == split[k][0] && m->cfg.hier_coarse == split[k][1] &&
                     m->cfg.hier_top == split[k][2] && m->cfg.hier_bottom2 == split[k][3] &&
                     m->cfg.hier_coarse2 == split[k][4],
                 "%s: the split is %d, %d, %d (second level %d, %d)", sets[k], split[k][0], split[k][1],
                 split[k][2], split[k][3], split[k][4]);
        for (t = 0; t < 3; t++) { /* weights away from their start */
            lmu_model_forward(m, tok, tg, 1, T, NULL);
            lmu_model_backward(m);
            lmu_model_step(m, 1e-2f, 1.0f, NULL);
        }
        mr.m = m, mr.tok = tok, mr.tg = tg, mr.T = T;
        for (p = 0; p < T; p += 5) {
            perturb_counts(model_rows_run, &mr, T, V, p, &before, &after);
            moved_before += before;
            fails += after != T - p;
        }
        LT_CHECK(moved_before == 0 && fails == 0, "%s: token p moves no logit before p and every one "
                 "from p on (p = 0, 5, ..., 20; %d moved before, %d p short after)", sets[k], moved_before, fails);
        lmu_model_forward(m, tok, tg, 1, T, NULL);
        LT_CHECK(lmu_gen_create(&g, m, T) == LMU_OK, "%s: generator", sets[k]);
        for (t = 0; t < T; t++) {
            lmu_gen_feed(&g, tok[t]);
            parallel_logits(m, t, ref);
            for (v = 0; v < V; v++) {
                if (fabs(ref[v] - g.logits[v]) > worst) worst = fabs(ref[v] - g.logits[v]);
                if (fabs(ref[v]) > scale) scale = fabs(ref[v]);
            }
        }
        LT_CHECK(worst <= 1e-5 * (scale > 1 ? scale : 1), "%s: generation = parallel at all %d positions, "
                 "the coarse layers stepped every k tokens (max diff %.3g)", sets[k], T, worst);
        lmu_gen_free(&g);
        if (k == 0)
            LT_CHECK(m->lti_layer[1]->n == (T + 3) / 4 && m->lti_layer[0]->n == T,
                     "the coarse layer's memory is built for ceil(n_ctx / k) = %d positions (%d), the "
                     "fine ones' for %d (%d)", (T + 3) / 4, m->lti_layer[1]->n, T, m->lti_layer[0]->n);
        if (k == 2)
            LT_CHECK(m->lti_layer[1]->n == 12 && m->lti_layer[2]->n == 4 && m->lti_layer[3]->n == T,
                     "two levels: memories for 12 (k 2) and 4 (k 2 x 3) positions (%d, %d), %d for the "
                     "top layer (%d)", m->lti_layer[1]->n, m->lti_layer[2]->n, T, m->lti_layer[3]->n);
        flat = m->cfg;
        flat.hier_k = flat.hier_bottom = flat.hier_coarse = flat.hier_top = 0;
        flat.hier_k2 = flat.hier_bottom2 = flat.hier_coarse2 = 0;
        { /* a coarse layer's activations are 1/k of a fine one's */
            lmu_model *f = NULL;
            size_t uh, uf;
            lmu_model_forward_backward(m, tok, tg, 1, T, NULL);
            uh = lmu_model_step_bytes_used(m);
            if (lmu_model_create(&f, &flat, 11, err, sizeof err) == LMU_OK)
                lmu_model_forward_backward(f, tok, tg, 1, T, NULL);
            uf = f ? lmu_model_step_bytes_used(f) : 0;
            LT_CHECK(uh > 0 && uh <= lmu_model_step_bytes(m) && uh < uf,
                     "%s: step memory used %lu bytes (capacity %lu), less than the full-resolution "
                     "stack's %lu", sets[k], (unsigned long)uh, (unsigned long)lmu_model_step_bytes(m),
                     (unsigned long)uf);
            lmu_model_free(f);
        }
        LT_CHECK(lmu_config_flops_per_token(&m->cfg, 1024) < lmu_config_flops_per_token(&flat, 1024) &&
                     lmu_config_param_count(&m->cfg) == lmu_config_param_count(&flat),
                 "%s: fewer FLOPs a token than the same stack at full resolution, the same parameters", sets[k]);
        if (k == 1) {
            float *carry = (float *)calloc(lmu_model_carry_floats(m) + 1, sizeof(float));
            LT_CHECK(lmu_model_forward_carry(m, tok, tg, 1, 12, carry, carry, NULL) == LMU_ERR_ARG &&
                         strstr(lmu_model_error(m), "hier_k"),
                     "a carried state across the pooling is refused: %s", lmu_model_error(m));
            free(carry);
        }
        lmu_model_free(m);
    }
    { /* the check itself: a pooling without its shift reads the future */
        enum { C = 3 };
        static float x[T * C];
        pool_rows pr;
        int s, leaks[2];
        for (p = 0; p < T * C; p++) x[p] = (float)lt_uniform();
        for (s = 0; s < 2; s++) {
            memset(&pr, 0, sizeof pr);
            lmu_tape_init(&pr.t);
            lmu_tape_params_alloc(&pr.t);
            lmu_tape_set_growth(&pr.t, 1);
            pr.x = x, pr.T = T, pr.C = C, pr.k = 4, pr.shift = s ? 3 : 0;
            leaks[s] = 0;
            for (p = 0; p < T; p++) {
                perturb_counts(pool_rows_run, &pr, T, C, p, &before, &after);
                leaks[s] += before;
            }
            lmu_tape_free(&pr.t);
        }
        LT_CHECK(leaks[0] > 0 && leaks[1] == 0, "negative control: the same perturbation check finds "
                 "positions that see their future when the pooling has no shift (%d) and none with "
                 "shift k - 1 (%d)", leaks[0], leaks[1]);
    }
}

int main(int argc, char **argv)
{
    lt_begin("test_model", argc, argv);
    test_errors();
    test_param_count_matches_declared();
    test_longer_context();
    test_recurrent_matches_parallel();
    test_layer_theta_and_delay_init();
    test_old_checkpoint();
    test_renamed_key();
    test_transformer_without_mixer_key();
    test_checkpoints();
    test_resume();
    test_forward_backward();
    test_training();
    test_precision();
    test_brt();
    test_brt_carry();
    test_hier();
    return lt_end();
}
