/* eval.c - validation loss of a checkpoint, in nats per token and bits per
   byte, and the loss at each position of the context (the paper's Figure 4).

   build: cc -O3 -march=native -fopenmp -I. examples/eval.c -o build/eval $(pkg-config --cflags --libs stb) -lm

   usage: eval CKPT (--data PREFIX | --tokens FILE) [options]
     --data PREFIX       evaluate PREFIX.val.tok
     --tokens FILE       evaluate this token file
     --seq T             context length (default: the model's n_ctx)
     --batch B           windows per forward pass (default 8)
     --max-tokens N      evaluate at most N tokens (default: all)
     --csv FILE          per-position loss: position,loss,count (mean nats)
     --append FILE       add a summary row (checkpoint,params,params_total,
                         tokens,loss,bpb,seq) to FILE, for the scaling plot
     --ablate            also the loss with each part switched off: what each
                         part of the model contributes (see below)
     --ablate-all        the same, but only with each part off in every
                         layer at once (one pass per part)
     --carry             block-recurrent models (mixer brt): the windows as B
                         streams of consecutive windows, each starting from
                         the state the one before it ended with, as train
                         --carry trains; also prints the loss with every
                         window from state0 (the same windows): the
                         difference is what the carried state contributes
     --json FILE         everything printed, as one JSON object
     --bytes | --vocab-dir DIR   the tokenizer that counts bytes for bpb
     --threads N
   The tokens are cut into back-to-back windows of T+1 (consecutive windows
   share one token), so every token but the first is predicted once, from
   the start of its window: position p's loss is the loss with p tokens of
   context. bpb = (total nats / ln 2) / bytes those targets decode to,
   <|endoftext|> counting 0 bytes. The loss is also printed per bucket of
   context length (1, 2-3, 4-7, ... tokens): a model that uses its memory
   keeps improving in the later buckets; one that does not is flat there.

   --ablate switches each part's output off in turn and evaluates again: the
   loss increase is what that part contributes. A part is switched off by
   zeroing the weights that scale its branch of the residual stream, so its
   output is exactly zero: implicit_attention (lmu.p), attn (attn.proj),
   rebased, based (their o), ffn_pre (ffn_pre.proj), ffn_post
   (ffn_post.proj), conv's gate (conv.proj; its + h stays) and brt_state,
   what a block-recurrent layer's tokens read from its state (brt.proj2;
   its windowed attention is attn); per layer,
   then in every layer at once (layer -1 in the JSON).
   Example: eval out/demo/model.safetensors --data data/brown --csv out/demo/positions.csv */
#define _POSIX_C_SOURCE 200809L /* isatty */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "example_util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
    const char *data, *tokens, *csv, *append, *json, *vocab_dir;
    long seq, batch, max_tokens, threads;
    int ablate, ablate_all, bytes, carry;
} opts;

#define F(f) EX_FIELD(opts, f)
static const ex_opt options[] = {
    {"data", 0, EX_ARG, F(data), 0, 0, 0, "PREFIX", "evaluate PREFIX.val.tok"},
    {"tokens", 0, EX_ARG, F(tokens), 0, 0, 0, "FILE", "evaluate this token file"},
    {"seq", 0, EX_LONG, F(seq), 0, 1, 1 << 20, "T", "context length (default: the model's n_ctx)"},
    {"batch", 0, EX_LONG, F(batch), 0, 1, 65536, "B", "windows per forward pass (default 8)"},
    {"max_tokens", 0, EX_LONG, F(max_tokens), 0, 2, 1e15, "N", "at most N tokens (default: all)"},
    {"csv", 0, EX_ARG, F(csv), 0, 0, 0, "FILE", "per-position loss: position,loss,count"},
    {"carry", 0, EX_FLAG, F(carry), 0, 0, 0, NULL, "carry the block-recurrent state from window to window"},
    {"append", 0, EX_ARG, F(append), 0, 0, 0, "FILE", "add checkpoint,params,params_total,tokens,loss,bpb,seq"},
    {"ablate", 0, EX_FLAG, F(ablate), 0, 0, 0, NULL,
     "the loss with each part off in turn (implicit attention,\n"
     "                           attention, FFNs), per layer and in all layers at once"},
    {"ablate_all", 0, EX_FLAG, F(ablate_all), 0, 0, 0, NULL, "the same, in all layers at once only (cheaper)"},
    {"json", 0, EX_ARG, F(json), 0, 0, 0, "FILE", "the results as one JSON object (written atomically)"},
    {"bytes", 0, EX_FLAG, F(bytes), 0, 0, 0, NULL, "byte-level tokenizer for bpb (automatic for vocab 257)"},
    {"vocab_dir", 0, EX_ARG, F(vocab_dir), 0, 0, 0, "DIR", "GPT-2 encoder.json + vocab.bpe (default data/gpt2)"},
    {"threads", 0, EX_LONG, F(threads), 0, 1, 1024, "N", "OpenMP threads"},
};

static const ex_opts eval_cli = {
    "eval",
    "usage: eval CKPT (--data PREFIX | --tokens FILE) [--seq T] [--batch B] [--max-tokens N]\n"
    "            [--csv FILE] [--append FILE] [--ablate | --ablate-all] [--json FILE]\n"
    "            [--bytes | --vocab-dir DIR] [--threads N]\n"
    "       eval --help\n",
    options, EX_COUNT(options), NULL};

/* The parts --ablate switches off: the tensors that scale each branch's
   output (weight and bias of its output projection; the implicit
   attention's p, y = p M'), so that branch adds exactly zero. */
typedef struct part { const char *name, *w, *b; } part;
static const part parts[] = {
    {"implicit_attention", "blocks.%d.lmu.p", NULL},
    {"attn", "blocks.%d.attn.proj.weight", "blocks.%d.attn.proj.bias"},
    {"rebased", "blocks.%d.rebased.o.weight", NULL},
    {"based", "blocks.%d.based.o.weight", NULL},
    {"conv", "blocks.%d.conv.proj.weight", "blocks.%d.conv.proj.bias"}, /* its gate; + h stays */
    {"brt_state", "blocks.%d.brt.proj2.weight", NULL}, /* the tokens' read of the state */
    {"ffn_pre", "blocks.%d.ffn_pre.proj.weight", "blocks.%d.ffn_pre.proj.bias"},
    {"ffn_post", "blocks.%d.ffn_post.proj.weight", "blocks.%d.ffn_post.proj.bias"},
};
#define N_PARTS EX_COUNT(parts)

/* Switches part k off (off = 1: saves the weights, writes zeros) or back on
   (off = 0: restores them) in those of layers lo..hi-1 that have it (a
   layer stack mixes kinds). Returns how many layers have it. The saved
   copies live in one buffer per call pair. */
static int part_switch(lmu_model *m, int k, int lo, int hi, int off)
{
    static float *saved; /* a program, not the library: one buffer is fine */
    static size_t cap;
    size_t used = 0;
    int l, s, n = 0;
    char name[96];
    for (l = lo; l < hi; l++) {
        snprintf(name, sizeof name, parts[k].w, l);
        if (!lmu_model_param(m, name, NULL)) continue;
        n++;
        for (s = 0; s < 2; s++) {
            const char *fmt = s ? parts[k].b : parts[k].w;
            size_t nel;
            float *x;
            if (!fmt) continue;
            snprintf(name, sizeof name, fmt, l);
            if (!(x = lmu_model_param(m, name, &nel))) ex_die("%s without %s", parts[k].w, name);
            if (off) {
                if (used + nel > cap) {
                    float *p = (float *)realloc(saved, (used + nel) * sizeof(float));
                    if (!p) ex_die("out of memory");
                    saved = p, cap = used + nel;
                }
                memcpy(saved + used, x, nel * sizeof(float));
                memset(x, 0, nel * sizeof(float));
            } else
                memcpy(x, saved + used, nel * sizeof(float));
            used += nel;
        }
    }
    return n;
}

/* What one pass reads: nw windows of T+1 tokens, B at a time. With a
   carry (B rows of carry floats), row b of forward k reads window
   b (nw / B) + k and starts from the state row b's last window ended
   with: B streams of consecutive windows (nw a multiple of B). */
typedef struct windows {
    const lmu_tokens *tf;
    long T, nw;
    int B, *tk, *tg;
    float *carry;
} windows;

/* One pass over the windows: adds each position's loss into sum[T] and,
   with a tokenizer, the bytes the targets decode to into *n_bytes.
   Returns the total loss in nats. */
static double eval_pass(lmu_model *m, const windows *w, double *sum, const lmu_tokenizer *tok,
                        double *n_bytes, const char *what)
{
    double total = 0;
    long T = w->T, i, j;
    int show = ex_tty() && w->nw > w->B;
    for (i = 0; i < w->nw; i += w->B) {
        int nb = (int)(w->nw - i < w->B ? w->nw - i : w->B), b;
        const float *pl;
        float loss;
        lmu_result r;
        for (b = 0; b < nb; b++) {
            long win = w->carry ? b * (w->nw / w->B) + i / w->B : i + b;
            const uint16_t *src = w->tf->ids + (size_t)win * (size_t)T;
            for (j = 0; j < T; j++) {
                w->tk[(long)b * T + j] = src[j];
                w->tg[(long)b * T + j] = src[j + 1];
            }
        }
        if (w->carry)
            r = lmu_model_forward_carry(m, w->tk, w->tg, nb, (int)T, i ? w->carry : NULL, w->carry,
                                        &loss);
        else
            r = lmu_model_forward(m, w->tk, w->tg, nb, (int)T, &loss);
        if (r != LMU_OK) ex_die("forward failed: %s (%s)", lmu_strerror(r), lmu_model_error(m));
        pl = lmu_model_position_losses(m);
        for (b = 0; b < nb; b++)
            for (j = 0; j < T; j++) {
                sum[j] += pl[(long)b * T + j];
                total += pl[(long)b * T + j];
                if (tok) {
                    size_t len = 0;
                    int32_t id = w->tg[(long)b * T + j];
                    if (id != lmu_tokenizer_eot(tok)) lmu_tokenizer_token(tok, id, &len);
                    *n_bytes += (double)len;
                }
            }
        if (show) fprintf(stderr, "\r%s: %ld/%ld windows", what, i + nb, w->nw);
    }
    if (show) fprintf(stderr, "\r%40s\r", "");
    return total;
}

/* The tokenizer that counts bytes for bpb, or NULL (then no bpb). */
static lmu_tokenizer *bpb_tokenizer(const opts *o, const lmu_config *c)
{
    lmu_tokenizer *tok = NULL;
    char err[512] = "";
    if (ex_tokenizer(&tok, o->bytes || c->vocab_size == 257, o->vocab_dir, err, sizeof err) != LMU_OK) {
        fprintf(stderr, "eval: no bits per byte: %s\n", err);
        return NULL;
    }
    if (lmu_tokenizer_vocab_size(tok) != c->vocab_size) {
        fprintf(stderr, "eval: no bits per byte: the tokenizer has %d ids, the model %d\n",
                (int)lmu_tokenizer_vocab_size(tok), c->vocab_size);
        lmu_tokenizer_free(tok);
        return NULL;
    }
    return tok;
}

/* Mean loss per bucket of context length: position p sees p + 1 tokens,
   buckets 1, 2-3, 4-7, ... (the last one may be cut short by T). */
static void print_buckets(const double *sum, long T, long nw, FILE *js)
{
    long lo, hi, p;
    printf("eval: loss by tokens of context:");
    if (js) fprintf(js, ", \"buckets\": [");
    for (lo = 1; lo <= T; lo *= 2) {
        double s = 0;
        hi = 2 * lo - 1 < T ? 2 * lo - 1 : T;
        for (p = lo - 1; p < hi; p++) s += sum[p];
        s /= (double)(hi - lo + 1) * (double)nw;
        if (lo == hi) printf(" %ld: %.6f", lo, s);
        else printf(" %ld-%ld: %.6f", lo, hi, s);
        if (js)
            fprintf(js, "%s{\"lo\": %ld, \"hi\": %ld, \"loss\": %.6f, \"count\": %.0f}",
                    lo == 1 ? "" : ", ", lo, hi, s, (double)(hi - lo + 1) * (double)nw);
    }
    printf("\n");
    if (js) fprintf(js, "]");
}

/* The loss with each part off in turn (all_only: only in every layer at
   once), against the full model's loss. */
static void print_ablations(lmu_model *m, const windows *w, double loss, int all_only, FILE *js)
{
    double *tmp = (double *)malloc((size_t)w->T * sizeof(double)), n = (double)w->nw * (double)w->T;
    int k, l, first = 1, L = lmu_model_config(m)->n_layer;
    if (!tmp) ex_die("out of memory");
    printf("eval: contribution of each part (loss with it switched off, minus %.6f):\n", loss);
    printf("  %-20s %6s %10s %10s\n", "part", "layer", "loss", "delta");
    if (js) fprintf(js, ", \"ablations\": [");
    for (k = 0; k < N_PARTS; k++)
        for (l = -1; l < (all_only ? 0 : L); l++) {
            double nb = 0, lk;
            int lo = l < 0 ? 0 : l, hi = l < 0 ? L : l + 1;
            if (!part_switch(m, k, lo, hi, 1)) continue;
            memset(tmp, 0, (size_t)w->T * sizeof(double));
            lk = eval_pass(m, w, tmp, NULL, &nb, parts[k].name) / n; /* no bpb: no byte count */
            part_switch(m, k, lo, hi, 0);
            if (l < 0) printf("  %-20s %6s %10.6f %+10.6f\n", parts[k].name, "all", lk, lk - loss);
            else printf("  %-20s %6d %10.6f %+10.6f\n", parts[k].name, l, lk, lk - loss);
            if (js) {
                fprintf(js, "%s{\"part\": \"%s\", \"layer\": %d, \"loss\": %.6f, \"delta\": %.6f}",
                        first ? "" : ", ", parts[k].name, l, lk, lk - loss);
                first = 0;
            }
        }
    if (js) fprintf(js, "]");
    free(tmp);
}

/* s as a JSON string (paths: escape quotes, backslashes, control bytes) */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void write_csv(const char *path, const double *sum, long T, long nw)
{
    long j;
    FILE *f = fopen(path, "wb");
    if (!f) ex_die("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "position,loss,count\n");
    for (j = 0; j < T; j++) fprintf(f, "%ld,%.6f,%ld\n", j, sum[j] / (double)nw, nw);
    if (fclose(f) != 0) ex_die("cannot write %s: %s", path, strerror(errno));
    printf("eval: per-position loss in %s\n", path);
}

/* A row for the scaling plot (tools/plot.sh scaling). */
static void append_row(const char *path, const char *ckpt, lmu_model *m, double n, double loss, double bpb,
                       long T)
{
    FILE *f = fopen(path, "ab");
    if (!f) ex_die("cannot write %s: %s", path, strerror(errno));
    if (ftell(f) == 0) fprintf(f, "checkpoint,params,params_total,tokens,loss,bpb,seq\n");
    fprintf(f, "%s,%lu,%lu,%.0f,%.6f,", ckpt, (unsigned long)lmu_model_param_count(m),
            (unsigned long)lmu_config_param_count_total(lmu_model_config(m)), n, loss);
    if (bpb >= 0) fprintf(f, "%.6f", bpb);
    fprintf(f, ",%ld\n", T);
    if (fclose(f) != 0) ex_die("cannot write %s: %s", path, strerror(errno));
    printf("eval: summary added to %s\n", path);
}

int main(int argc, char **argv)
{
    opts o;
    const char *pos[1] = {NULL}, *ckpt, *tokens;
    char json_tmp[1100], path[1100], err[512] = "";
    lmu_model *m;
    const lmu_config *c;
    lmu_tokens tf;
    lmu_tokenizer *tok;
    lmu_result r;
    windows w;
    double *sum, total, n_bytes = 0, n, loss, bpb;
    FILE *js = NULL;

    ex_prog = "eval";
    memset(&o, 0, sizeof o);
    o.batch = 8, o.vocab_dir = "data/gpt2";
    if (ex_parse(&eval_cli, argc, argv, &o, NULL, pos, 1) < 1) ex_usage_error(&eval_cli, "no checkpoint given");
    ckpt = pos[0], tokens = o.tokens;
    if (!o.data && !o.tokens) ex_usage_error(&eval_cli, "no data: --data or --tokens");
    if (o.data && o.tokens) ex_die("give --data or --tokens, not both");
    if (o.json && strlen(o.json) > 1000) ex_die("path too long: %s", o.json);
    if (o.json) sprintf(json_tmp, "%s.tmp", o.json);
    if (o.data) {
        if (strlen(o.data) > 1000) ex_die("path too long: %s", o.data);
        sprintf(path, "%s.val.tok", o.data);
        tokens = path;
    }
    ex_threads(o.threads);

    /* the tokens, the model, the windows */
    if (lmu_tokens_load_file(&tf, tokens, err, sizeof err) != LMU_OK) ex_die("%s", err);
    r = lmu_model_load(&m, ckpt, err, sizeof err);
    if (r != LMU_OK) ex_die("cannot load %s", err[0] ? err : lmu_strerror(r));
    c = lmu_model_config(m);
    if ((uint32_t)c->vocab_size != tf.vocab_size)
        ex_die("checkpoint %s has vocab_size %d but %s has %u", ckpt, c->vocab_size, tokens, tf.vocab_size);
    if (tf.count < 2) ex_die("%s has %llu tokens; at least 2 are needed", tokens, (unsigned long long)tf.count);
    w.T = o.seq ? o.seq : c->n_ctx;
    if (w.T > c->n_ctx) { /* an LMU has no positional limit: rebuild its memory longer */
        int trained = c->n_ctx;
        if (lmu_model_set_n_ctx(m, (int)w.T) != LMU_OK)
            ex_die("--seq %ld exceeds the model's n_ctx %d: %s", w.T, trained, lmu_model_error(m));
        fprintf(stderr, "eval: --seq %ld is beyond the model's n_ctx %d (an LMU's memory runs on)\n",
                w.T, trained);
    }
    if (o.max_tokens && (uint64_t)o.max_tokens < tf.count) tf.count = (uint64_t)o.max_tokens;
    if ((uint64_t)w.T + 1 > tf.count) w.T = (long)tf.count - 1;
    w.tf = &tf;
    w.nw = (long)((tf.count - 1) / (uint64_t)w.T);
    w.B = (int)(o.batch < w.nw ? o.batch : w.nw);
    w.carry = NULL;
    if (o.carry) {
        size_t cf = lmu_model_carry_floats(m);
        if (!cf) ex_die("--carry: %s has no block-recurrent state (mixer brt with n_state >= 1)", ckpt);
        if (w.T % c->window) ex_die("--carry: --seq %ld must be a multiple of the window %d", w.T, c->window);
        w.nw -= w.nw % w.B; /* whole streams */
        if (!(w.carry = (float *)malloc((size_t)w.B * cf * sizeof(float)))) ex_die("out of memory");
    }
    tok = bpb_tokenizer(&o, c);
    sum = (double *)calloc((size_t)w.T, sizeof(double));
    w.tk = (int *)malloc((size_t)w.B * (size_t)w.T * sizeof(int));
    w.tg = (int *)malloc((size_t)w.B * (size_t)w.T * sizeof(int));
    if (!sum || !w.tk || !w.tg) ex_die("out of memory");

    /* the loss, in nats per token and bits per byte */
    total = eval_pass(m, &w, sum, tok, &n_bytes, "eval");
    n = (double)w.nw * (double)w.T, loss = total / n;
    bpb = tok && n_bytes > 0 ? total / log(2.0) / n_bytes : -1;
    printf("eval: %s on %s: %.0f tokens in %ld windows of %ld%s\n", ckpt, tokens, n, w.nw, w.T,
           w.carry ? ", the state carried along streams" : "");
    printf("eval: loss %.6f nats/token (perplexity %.2f)", loss, exp(loss));
    if (bpb >= 0) printf(", %.6f bits/byte (%.0f bytes, %.2f bytes/token)", bpb, n_bytes, n_bytes / n);
    printf("\n");
    if (o.json) {
        if (!(js = fopen(json_tmp, "wb"))) ex_die("cannot write %s: %s", json_tmp, strerror(errno));
        fprintf(js, "{\"checkpoint\": ");
        json_str(js, ckpt);
        fprintf(js, ", \"data\": ");
        json_str(js, tokens);
        fprintf(js, ", \"arch\": \"%s\", \"mixer\": \"%s\", \"tokens\": %.0f, \"seq\": %ld, "
                "\"params\": %lu, \"params_total\": %lu, \"loss\": %.6f, \"bpb\": ",
                lmu_arch_name(c->arch), lmu_mixer_name(c->mixer), n, w.T,
                (unsigned long)lmu_model_param_count(m), (unsigned long)lmu_config_param_count_total(c),
                loss);
        if (bpb >= 0) fprintf(js, "%.6f", bpb);
        else fprintf(js, "null");
    }

    /* by position: buckets of context length, the CSV; then the ablations */
    print_buckets(sum, w.T, w.nw, js);
    if (o.csv) write_csv(o.csv, sum, w.T, w.nw);
    if (w.carry) { /* the same windows, each from state0 */
        double *sum0 = (double *)calloc((size_t)w.T, sizeof(double)), l0;
        float *keep = w.carry;
        if (!sum0) ex_die("out of memory");
        w.carry = NULL;
        l0 = eval_pass(m, &w, sum0, NULL, NULL, "eval, fresh") / n;
        w.carry = keep;
        printf("eval: every window from state0: loss %.6f; the carried state contributes %+.6f nats/token\n",
               l0, l0 - loss);
        if (js) fprintf(js, ", \"carry\": true, \"loss_fresh\": %.6f", l0);
        free(sum0);
    }
    if (o.ablate || o.ablate_all) print_ablations(m, &w, loss, o.ablate_all, js);
    if (js) {
        fprintf(js, "}\n");
        if (fclose(js) != 0 || rename(json_tmp, o.json) != 0)
            ex_die("cannot write %s: %s", o.json, strerror(errno));
        printf("eval: summary in %s\n", o.json);
    }
    if (o.append) append_row(o.append, ckpt, m, n, loss, bpb, w.T);
    free(sum);
    free(w.tk);
    free(w.tg);
    free(w.carry);
    lmu_tokens_free(&tf);
    lmu_tokenizer_free(tok);
    lmu_model_free(m);
    return 0;
}
