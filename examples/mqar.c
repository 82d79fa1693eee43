/* mqar.c - multi-query associative recall (MQAR; Arora et al. 2023, the
   benchmark of ReBased, Aksenov et al. 2024): can a model recall, at a
   query, the value that followed that key earlier in its context?

   build: cc -O3 -march=native -fopenmp -I. examples/mqar.c -o build/mqar $(pkg-config --cflags --libs stb) -lm

   usage: mqar [--preset NAME] [--set key=value,...] [options]
     --preset NAME    the model (default lmu-55k; none: the library's
                      defaults), then --set overrides its lmu_config
                      fields: --set d_model=64,mixer=rebased
     --vocab V        vocabulary (default 8192)      --seq L   length (256)
     --kv K           key-value pairs (default 16 at L <= 128, else L/4)
     --offset G       every query at least 2 G positions after the pairs
                      (default 0: the reference's task); with G = W a
                      model that sees only the last 2 W positions cannot
                      answer (the long-gap recall test)
     --train N        training examples (default 2000)   --test N (300)
     --epochs E       passes over the training set (default 8)
     --batch B (32)   --lr 1e-3   --wd 0.1 (AdamW)   --seed S (1)
     --target A       stop once test accuracy reaches A (default 0.99)
     --eval-every S   steps between evaluations (default: once an epoch)
     --json FILE      the result as one JSON object   --threads N
     --check          check the generated data (every structural property
                      below, and the gap distribution) and exit

   The task as the reference generates it (zoology's multiquery_ar, also
   corl-team/rebased): keys are K distinct ids from [1, V/2), values K
   distinct ids from [V/2, V); the sequence starts k1 v1 ... kK vK; key i
   is asked once, at position 2K + 2 (G + g_i), with the gaps g_i drawn
   without replacement from 0 .. (L - 2K)/2 - G - 1 (G = --offset, 0 in
   the reference) with probability proportional to
   (g + 1)^(a - 1), a = 0.01 (near queries are likelier); the target there
   is its value. Every other position holds a random id in [0, V) and has
   no target (LMU_TARGET_IGNORE): loss and accuracy count the queries
   only. Training examples come from --seed, test examples from seed + 10.
   AdamW with a linear warmup (5% of the steps) and cosine decay.
   Example: mqar --preset lmu-55k-rebased --set d_model=64 --seq 128 */
#define _POSIX_C_SOURCE 200809L /* isatty */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "example_util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
    const char *preset, *set, *json;
    long vocab, seq, kv, offset, train, test, epochs, batch, seed, eval_every, threads;
    int check;
    double lr, wd, target;
} opts;

#define F(f) EX_FIELD(opts, f)
static const ex_opt options[] = {
    {"preset", 0, EX_ARG, F(preset), 0, 0, 0, "NAME", "the model (default lmu-55k)"},
    {"set", 0, EX_ARG, F(set), 0, 0, 0, "K=V,...", "lmu_config fields over the preset"},
    {"vocab", 0, EX_LONG, F(vocab), 0, 16, 65536, "V", "vocabulary (default 8192)"},
    {"seq", 0, EX_LONG, F(seq), 0, 8, 1 << 16, "L", "sequence length, even (default 256)"},
    {"kv", 0, EX_LONG, F(kv), 0, 1, 1 << 14, "K", "key-value pairs (default 16 at L <= 128, else L/4)"},
    {"offset", 0, EX_LONG, F(offset), 0, 0, 1 << 15, "G", "queries at least 2 G positions after the pairs (default 0)"},
    {"train", 0, EX_LONG, F(train), 0, 1, 1e8, "N", "training examples (default 2000)"},
    {"test", 0, EX_LONG, F(test), 0, 1, 1e7, "N", "test examples (default 300)"},
    {"epochs", 0, EX_LONG, F(epochs), 0, 1, 1e6, "E", "passes over the training set (default 8)"},
    {"batch", 'b', EX_LONG, F(batch), 0, 1, 65536, "B", "examples per step (default 32)"},
    {"lr", 0, EX_DBL, F(lr), EX_OPEN_LO, 0, 10, "LR", "peak learning rate (default 1e-3)"},
    {"wd", 0, EX_DBL, F(wd), 0, 0, 10, "WD", "AdamW weight decay (default 0.1)"},
    {"seed", 's', EX_LONG, F(seed), 0, 0, 1e15, "S", "data and model seed (default 1)"},
    {"target", 0, EX_DBL, F(target), 0, 0, 1, "A", "stop at this test accuracy (default 0.99)"},
    {"eval_every", 0, EX_LONG, F(eval_every), 0, 1, 1e9, "S", "steps between evaluations"},
    {"json", 0, EX_ARG, F(json), 0, 0, 0, "FILE", "the result as one JSON object"},
    {"threads", 0, EX_LONG, F(threads), 0, 1, 4096, "N", "OpenMP threads"},
    {"check", 0, EX_FLAG, F(check), 0, 0, 0, NULL, "check the generated data and exit"},
};
static const ex_opts table = {"mqar", "usage: mqar [--preset NAME] [--set K=V,...] [options] (--help)\n",
                              options, EX_COUNT(options), NULL};

/* n examples of MQAR: tokens and targets (n, L). */
static void mqar_make(int *tok, int *tg, long n, long L, long K, long G, long V, uint64_t seed)
{
    long space = (L - 2 * K) / 2 - G, e, i, j;
    double *p = (double *)malloc((size_t)space * sizeof(double));
    int *used = (int *)calloc((size_t)V, sizeof(int)), *gap = (int *)malloc((size_t)K * sizeof(int));
    lmu_rng rng;
    if (!p || !used || !gap) ex_die("out of memory");
    lmu_rng_seed(&rng, seed);
    for (e = 0; e < n; e++) {
        int *t = tok + e * L, *g = tg + e * L;
        double left = 0;
        for (i = 0; i < space; i++) left += p[i] = 0.01 * pow((double)(i + 1), 0.01 - 1.0);
        for (i = 0; i < L; i++) t[i] = (int)(lmu_rng_u64(&rng) % (uint64_t)V), g[i] = LMU_TARGET_IGNORE;
        for (i = 0; i < K; i++) { /* distinct keys and values */
            int k, v;
            do k = 1 + (int)(lmu_rng_u64(&rng) % (uint64_t)(V / 2 - 1)); while (used[k]);
            do v = (int)(V / 2 + (long)(lmu_rng_u64(&rng) % (uint64_t)(V - V / 2))); while (used[v]);
            used[k] = used[v] = 1;
            t[2 * i] = k, t[2 * i + 1] = v;
        }
        for (i = 0; i < K; i++) { /* gaps without replacement, p ~ (g+1)^(a-1) */
            double u = lmu_rng_uniform(&rng) * left, acc = 0;
            for (j = 0; j < space - 1 && (p[j] == 0 || (acc += p[j]) <= u); j++) {}
            while (p[j] == 0) j--; /* rounding at the end of the table */
            gap[i] = (int)j, left -= p[j], p[j] = 0;
        }
        for (i = 0; i < K; i++) {
            long q = 2 * K + 2 * (G + gap[i]);
            t[q] = t[2 * i];
            g[q] = t[2 * i + 1];
        }
        for (i = 0; i < 2 * K; i++) used[t[i]] = 0;
    }
    free(p), free(used), free(gap);
}

/* Every property the task promises, on n examples; exits 1 on the first
   that fails. Also the share of queries in the nearest tenth of the gaps
   (the power law puts most of them there). */
static void mqar_check(const int *tok, const int *tg, long n, long L, long K, long G, long V)
{
    long e, i, j, near = 0, q = 0, space = (L - 2 * K) / 2 - G;
    for (e = 0; e < n; e++) {
        const int *t = tok + e * L, *g = tg + e * L;
        long nq = 0;
        for (i = 0; i < K; i++) {
            if (t[2 * i] < 1 || t[2 * i] >= V / 2 || t[2 * i + 1] < V / 2 || t[2 * i + 1] >= V)
                ex_die("check: example %ld pair %ld (%d, %d) outside the key / value ranges", e, i, t[2 * i], t[2 * i + 1]);
            for (j = 0; j < i; j++)
                if (t[2 * j] == t[2 * i] || t[2 * j + 1] == t[2 * i + 1]) ex_die("check: example %ld repeats a key or value", e);
        }
        for (i = 0; i < L; i++) {
            if (i < 2 * (K + G) && g[i] != LMU_TARGET_IGNORE)
                ex_die("check: example %ld has a target before position 2 (K + G) = %ld", e, 2 * (K + G));
            if (t[i] < 0 || t[i] >= V) ex_die("check: example %ld token %d out of range", e, t[i]);
            if (g[i] == LMU_TARGET_IGNORE) continue;
            for (j = 0; j < K && t[2 * j] != t[i]; j++) {}
            if (j == K || g[i] != t[2 * j + 1] || (i - 2 * K) % 2)
                ex_die("check: example %ld position %ld: target %d is not its key's value", e, i, g[i]);
            nq++, q++;
            near += (i - 2 * K) / 2 - G < (space + 9) / 10;
        }
        if (nq != K) ex_die("check: example %ld has %ld queries, want %ld", e, nq, K);
    }
    printf("mqar: data ok: %ld examples, V %ld, L %ld, K %ld, offset %ld; %.1f%% of the queries in the "
           "nearest tenth of the %ld gaps\n", n, V, L, K, G, 100.0 * (double)near / (double)q, space);
}

/* accuracy on the test set: argmax of the logits at every query */
static double mqar_accuracy(lmu_model *m, const int *tok, const int *tg, long n, long L, long B,
                            float *logits, double *loss)
{
    long e0, b, i, hit = 0, total = 0, V = lmu_model_config(m)->vocab_size;
    double lsum = 0;
    for (e0 = 0; e0 < n; e0 += B) {
        long nb = n - e0 < B ? n - e0 : B;
        float l;
        if (lmu_model_forward(m, tok + e0 * L, tg + e0 * L, (int)nb, (int)L, &l) != LMU_OK)
            ex_die("forward: %s", lmu_model_error(m));
        lsum += l * (double)nb;
        for (b = 0; b < nb; b++)
            for (i = 0; i < L; i++) {
                long v, best = 0;
                if (tg[(e0 + b) * L + i] < 0) continue;
                lmu_model_logits(m, (int)b, (int)i, logits);
                for (v = 1; v < V; v++)
                    if (logits[v] > logits[best]) best = v;
                hit += best == tg[(e0 + b) * L + i], total++;
            }
    }
    *loss = lsum / (double)n;
    return total ? (double)hit / (double)total : 0;
}

int main(int argc, char **argv)
{
    opts o = {"lmu-55k", NULL, NULL, 8192, 256, 0, 0, 2000, 300, 8, 32, 1, 0, 0, 0, 1e-3, 0.1, 0.99};
    lmu_config c;
    lmu_model *m;
    char err[256];
    int *tr_tok, *tr_tg, *te_tok, *te_tg, *bt, *bg;
    float *logits;
    long step, steps, per_epoch, warm, k, best_step = 0;
    double acc = 0, best = 0, tl = 0, t0;
    FILE *js;
    ex_prog = "mqar";
    ex_parse(&table, argc, argv, &o, NULL, NULL, 0);
    ex_threads(o.threads);
    if (o.seq % 2) ex_die("--seq %ld: must be even", o.seq);
    if (!o.kv) o.kv = o.seq <= 128 ? 16 : o.seq / 4;
    if (4 * o.kv > o.seq) ex_die("--kv %ld: 4 K must fit in --seq %ld", o.kv, o.seq);
    if (4 * o.kv + 2 * o.offset > o.seq) /* K gaps to draw from (L - 2K)/2 - G */
        ex_die("--offset %ld: 4 K + 2 G = %ld must fit in --seq %ld", o.offset, 4 * o.kv + 2 * o.offset, o.seq);
    if (o.vocab <= o.seq || o.vocab / 2 - 1 < o.kv) ex_die("--vocab %ld: too small for L %ld, K %ld", o.vocab, o.seq, o.kv);
    memset(&c, 0, sizeof c);
    if (strcmp(o.preset, "none") && lmu_config_preset(&c, o.preset) != LMU_OK) ex_die("unknown preset '%s'", o.preset);
    if (o.set && lmu_config_set_items(&c, o.set, err, sizeof err) != LMU_OK) ex_die("--set: %s", err);
    c.vocab_size = (int)o.vocab, c.n_ctx = (int)o.seq;
    if (o.check) {
        long n = o.train > o.test ? o.train : o.test;
        int *t = (int *)malloc((size_t)(n * o.seq) * sizeof(int)), *g = (int *)malloc((size_t)(n * o.seq) * sizeof(int));
        if (!t || !g) ex_die("out of memory");
        mqar_make(t, g, n, o.seq, o.kv, o.offset, o.vocab, (uint64_t)o.seed);
        mqar_check(t, g, n, o.seq, o.kv, o.offset, o.vocab);
        free(t), free(g);
        return 0;
    }
    if (lmu_model_create(&m, &c, (uint64_t)o.seed, err, sizeof err) != LMU_OK) ex_die("model: %s", err);
    lmu_model_optimizer(m)->weight_decay = (float)o.wd;

    tr_tok = (int *)malloc((size_t)(o.train * o.seq) * sizeof(int));
    tr_tg = (int *)malloc((size_t)(o.train * o.seq) * sizeof(int));
    te_tok = (int *)malloc((size_t)(o.test * o.seq) * sizeof(int));
    te_tg = (int *)malloc((size_t)(o.test * o.seq) * sizeof(int));
    bt = (int *)malloc((size_t)(o.batch * o.seq) * sizeof(int));
    bg = (int *)malloc((size_t)(o.batch * o.seq) * sizeof(int));
    logits = (float *)malloc((size_t)o.vocab * sizeof(float));
    if (!tr_tok || !tr_tg || !te_tok || !te_tg || !bt || !bg || !logits) ex_die("out of memory");
    mqar_make(tr_tok, tr_tg, o.train, o.seq, o.kv, o.offset, o.vocab, (uint64_t)o.seed);
    mqar_make(te_tok, te_tg, o.test, o.seq, o.kv, o.offset, o.vocab, (uint64_t)o.seed + 10);

    per_epoch = (o.train + o.batch - 1) / o.batch;
    steps = per_epoch * o.epochs;
    warm = steps / 20 > 0 ? steps / 20 : 1;
    if (!o.eval_every) o.eval_every = per_epoch;
    {
        const lmu_config *c = lmu_model_config(m);
        char mixers[256] = "";
        int l;
        for (l = 0; l < c->n_layer && strlen(mixers) < sizeof mixers - 16; l++)
            snprintf(mixers + strlen(mixers), sizeof mixers - strlen(mixers), "%s%s", l ? "," : "",
                     lmu_mixer_name(lmu_config_layer_mixer(c, l)));
        printf("mqar: %s (%s %s, N = %lu), V %ld, L %ld, K %ld, offset %ld, %ld train / %ld test "
               "examples, %ld steps of %ld\n", o.preset, lmu_arch_name(c->arch), mixers,
               (unsigned long)lmu_model_param_count(m), o.vocab, o.seq, o.kv, o.offset, o.train, o.test,
               steps, o.batch);
    }
    t0 = ex_now();
    for (step = 0; step < steps; step++) {
        float loss;
        long e0 = (step % per_epoch) * o.batch, nb = o.train - e0 < o.batch ? o.train - e0 : o.batch;
        for (k = 0; k < nb * o.seq; k++) bt[k] = tr_tok[e0 * o.seq + k], bg[k] = tr_tg[e0 * o.seq + k];
        if (lmu_model_forward_backward(m, bt, bg, (int)nb, (int)o.seq, &loss) != LMU_OK ||
            lmu_model_step(m, lmu_lr_schedule(step, warm, steps, (float)o.lr), 1.0f, NULL) != LMU_OK)
            ex_die("step %ld: %s", step, lmu_model_error(m));
        if ((step + 1) % o.eval_every == 0 || step + 1 == steps) {
            acc = mqar_accuracy(m, te_tok, te_tg, o.test, o.seq, o.batch, logits, &tl);
            if (acc > best) best = acc, best_step = step + 1;
            printf("step %ld/%ld  train loss %.4f  test loss %.4f  accuracy %.4f  (%.0f s)\n", step + 1,
                   steps, loss, tl, acc, ex_now() - t0);
            fflush(stdout);
            if (acc >= o.target) break;
        }
    }
    printf("mqar: accuracy %.4f (best %.4f at step %ld), %.0f s\n", acc, best, best_step, ex_now() - t0);
    if (o.json) {
        if (!(js = fopen(o.json, "wb"))) ex_die("cannot write %s: %s", o.json, strerror(errno));
        fprintf(js, "{\"preset\": \"%s\", \"set\": \"%s\", \"mixer\": \"%s\", \"params\": %lu, \"vocab\": %ld, "
                    "\"seq\": %ld, \"kv\": %ld, \"offset\": %ld, \"train\": %ld, \"test\": %ld, \"lr\": %g, \"seed\": %ld, "
                    "\"steps\": %ld, \"accuracy\": %.6f, \"best_accuracy\": %.6f, \"test_loss\": %.6f, \"seconds\": %.1f}\n",
                o.preset, o.set ? o.set : "", lmu_mixer_name(lmu_config_layer_mixer(lmu_model_config(m), 0)),
                (unsigned long)lmu_model_param_count(m), o.vocab, o.seq, o.kv, o.offset, o.train, o.test, o.lr,
                o.seed, step < steps ? step + 1 : steps, acc, best, tl, ex_now() - t0);
        if (fclose(js) != 0) ex_die("cannot write %s: %s", o.json, strerror(errno));
    }
    free(tr_tok), free(tr_tg), free(te_tok), free(te_tg), free(bt), free(bg), free(logits);
    lmu_model_free(m);
    return 0;
}
