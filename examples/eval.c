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
   ffn_pre (ffn_pre.proj), ffn_post (ffn_post.proj); per layer, then in every
   layer at once (layer -1 in the JSON).
   Example: eval out/demo/model.safetensors --data data/brown --csv out/demo/positions.csv */
#define _POSIX_C_SOURCE 200809L
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "example_util.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage =
    "usage: eval CKPT (--data PREFIX | --tokens FILE) [--seq T] [--batch B] [--max-tokens N]\n"
    "            [--csv FILE] [--append FILE] [--ablate | --ablate-all] [--json FILE]\n"
    "            [--bytes | --vocab-dir DIR] [--threads N]\n"
    "       eval --help\n";

/* a whole-number option into a long */
static int count_arg(const char *s, double lo, double hi, long *out)
{
    double x;
    if (!ex_number(s, lo, hi, 1, &x)) return 0;
    *out = (long)x;
    return 1;
}

/* The parts --ablate switches off: the tensors that scale each branch's
   output (weight and bias of its output projection; the implicit
   attention's p, y = p M'), so that branch adds exactly zero. */
typedef struct part { const char *name, *w, *b; } part;
static const part parts[] = {
    {"implicit_attention", "blocks.%d.lmu.p", NULL},
    {"attn", "blocks.%d.attn.proj.weight", "blocks.%d.attn.proj.bias"},
    {"ffn_pre", "blocks.%d.ffn_pre.proj.weight", "blocks.%d.ffn_pre.proj.bias"},
    {"ffn_post", "blocks.%d.ffn_post.proj.weight", "blocks.%d.ffn_post.proj.bias"},
};
#define N_PARTS ((int)(sizeof parts / sizeof parts[0]))

/* Switches part k off (off = 1: saves the weights, writes zeros) or back on
   (off = 0: restores them) in layers lo..hi-1. Returns 0 when the model
   has no such part. The saved copies live in one buffer per call pair. */
static int part_switch(lmu_model *m, int k, int lo, int hi, int off)
{
    static float *saved; /* a program, not the library: one buffer is fine */
    static size_t cap;
    size_t used = 0;
    int l, s;
    for (l = lo; l < hi; l++)
        for (s = 0; s < 2; s++) {
            const char *fmt = s ? parts[k].b : parts[k].w;
            char name[96];
            int id;
            size_t nel;
            float *x;
            if (!fmt) continue;
            snprintf(name, sizeof name, fmt, l);
            id = lmu_tape_find(&m->tape, name);
            if (id < 0) return 0;
            nel = m->tape.tensors[id].size;
            x = lmu_tape_data(&m->tape, id);
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
    return 1;
}

/* One pass over the nw windows of T+1 tokens, B at a time: adds each
   position's loss into sum[T] and, with a tokenizer, the bytes the targets
   decode to into *n_bytes. Returns the total loss in nats. */
static double eval_pass(lmu_model *m, const lmu_tokens *tf, long T, long nw, int B, int *tk,
                        int *tg, double *sum, const lmu_tokenizer *tok, double *n_bytes,
                        const char *what)
{
    double total = 0;
    long w, j;
    for (w = 0; w < nw; w += B) {
        int nb = (int)(nw - w < B ? nw - w : B), b;
        const float *pl;
        float loss;
        lmu_result r;
        for (b = 0; b < nb; b++) {
            const uint16_t *src = tf->ids + (size_t)(w + b) * (size_t)T;
            for (j = 0; j < T; j++) {
                tk[(long)b * T + j] = src[j];
                tg[(long)b * T + j] = src[j + 1];
            }
        }
        r = lmu_model_forward(m, tk, tg, nb, (int)T, &loss);
        if (r != LMU_OK) ex_die("forward failed: %s (%s)", lmu_strerror(r), m->err);
        pl = lmu_model_position_losses(m);
        for (b = 0; b < nb; b++)
            for (j = 0; j < T; j++) {
                sum[j] += pl[(long)b * T + j];
                total += pl[(long)b * T + j];
                if (tok) {
                    size_t len = 0;
                    int32_t id = tg[(long)b * T + j];
                    if (id != lmu_tokenizer_eot(tok)) lmu_tokenizer_token(tok, id, &len);
                    *n_bytes += (double)len;
                }
            }
        if (isatty(2) && nw > B) fprintf(stderr, "\r%s: %ld/%ld windows", what, w + nb, nw);
    }
    if (isatty(2) && nw > B) fprintf(stderr, "\r%40s\r", "");
    return total;
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
        if (lo == hi) printf(" %ld: %.3f", lo, s);
        else printf(" %ld-%ld: %.3f", lo, hi, s);
        if (js)
            fprintf(js, "%s{\"lo\": %ld, \"hi\": %ld, \"loss\": %.6f, \"count\": %.0f}",
                    lo == 1 ? "" : ", ", lo, hi, s, (double)(hi - lo + 1) * (double)nw);
    }
    printf("\n");
    if (js) fprintf(js, "]");
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

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *data = NULL, *tokens = NULL, *csv = NULL, *append = NULL, *json = NULL;
    char json_tmp[1100];
    const char *dir = "data/gpt2";
    char path[1100], err[512];
    long seq = 0, batch = 8, max_tokens = 0, nw, T, j;
    int bytes = 0, ablate = 0, i, B;
    lmu_model *m;
    lmu_tokens tf;
    lmu_tokenizer *tok = NULL;
    lmu_result r;
    double *sum, total = 0, n_bytes = 0;
    int *tk, *tg;

    ex_prog = "eval";
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", usage);
            printf("\n  --data PREFIX      evaluate PREFIX.val.tok\n"
                   "  --tokens FILE      evaluate this token file\n"
                   "  --seq T            context length (default: the model's n_ctx)\n"
                   "  --batch B          windows per forward pass (default 8)\n"
                   "  --max-tokens N     at most N tokens (default: all)\n"
                   "  --csv FILE         per-position loss: position,loss,count\n"
                   "  --append FILE      add checkpoint,params,params_total,tokens,loss,bpb,seq\n"
                   "  --ablate           loss with each part switched off (implicit attention,\n"
                   "                     attention, FFNs), per layer and in all layers at once\n"
                   "  --ablate-all       the same, in all layers at once only (cheaper)\n"
                   "  --json FILE        the results as one JSON object (written atomically)\n"
                   "  --bytes            byte-level tokenizer for bpb (automatic for vocab 257)\n"
                   "  --vocab-dir DIR    GPT-2 encoder.json + vocab.bpe (default data/gpt2)\n"
                   "  --threads N        OpenMP threads\n");
            return 0;
        } else if (!strcmp(a, "--data") && more) data = argv[++i];
        else if (!strcmp(a, "--tokens") && more) tokens = argv[++i];
        else if (!strcmp(a, "--csv") && more) csv = argv[++i];
        else if (!strcmp(a, "--append") && more) append = argv[++i];
        else if (!strcmp(a, "--json") && more) json = argv[++i];
        else if (!strcmp(a, "--ablate")) ablate = 1;
        else if (!strcmp(a, "--ablate-all")) ablate = 2;
        else if (!strcmp(a, "--vocab-dir") && more) dir = argv[++i];
        else if (!strcmp(a, "--bytes")) bytes = 1;
        else if (!strcmp(a, "--seq") && more) {
            if (!count_arg(argv[++i], 1, 1 << 20, &seq)) ex_die("--seq wants 1..%d, not '%s'", 1 << 20, argv[i]);
        } else if (!strcmp(a, "--batch") && more) {
            if (!count_arg(argv[++i], 1, 65536, &batch)) ex_die("--batch wants 1..65536, not '%s'", argv[i]);
        } else if (!strcmp(a, "--max-tokens") && more) {
            if (!count_arg(argv[++i], 2, 1e15, &max_tokens)) ex_die("--max-tokens wants a count >= 2, not '%s'", argv[i]);
        } else if (!strcmp(a, "--threads") && more) {
            long t;
            if (!count_arg(argv[++i], 1, 1024, &t)) ex_die("--threads wants 1..1024, not '%s'", argv[i]);
#ifdef _OPENMP
            omp_set_num_threads((int)t);
#endif
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "eval: unknown option '%s' (or it needs a value)\n%s", a, usage);
            return 2;
        } else if (!ckpt) ckpt = a;
        else {
            fprintf(stderr, "eval: unexpected argument '%s'\n%s", a, usage);
            return 2;
        }
    }
    if (!ckpt || (!data && !tokens)) {
        fprintf(stderr, "eval: %s\n%s", !ckpt ? "no checkpoint given" : "no data: --data or --tokens",
                usage);
        return 2;
    }
    if (data && tokens) ex_die("give --data or --tokens, not both");
    if (json) {
        if (strlen(json) > 1000) ex_die("path too long: %s", json);
        sprintf(json_tmp, "%s.tmp", json);
    }
    if (data) {
        if (strlen(data) > 1000) ex_die("path too long: %s", data);
        sprintf(path, "%s.val.tok", data);
        tokens = path;
    }
    if (lmu_tokens_load_file(&tf, tokens, err, sizeof err) != LMU_OK) ex_die("%s", err);
    r = lmu_model_load(&m, ckpt, err, sizeof err);
    if (r != LMU_OK) ex_die("cannot load %s", err[0] ? err : lmu_strerror(r));
    if ((uint32_t)m->cfg.vocab_size != tf.vocab_size)
        ex_die("checkpoint %s has vocab_size %d but %s has %u", ckpt, m->cfg.vocab_size, tokens,
            tf.vocab_size);
    if (tf.count < 2) ex_die("%s has %llu tokens; at least 2 are needed", tokens,
                          (unsigned long long)tf.count);
    T = seq ? seq : m->cfg.n_ctx;
    if (T > m->cfg.n_ctx) ex_die("--seq %ld exceeds the model's n_ctx %d", T, m->cfg.n_ctx);
    if (max_tokens && (uint64_t)max_tokens < tf.count) tf.count = (uint64_t)max_tokens;
    if ((uint64_t)T + 1 > tf.count) T = (long)tf.count - 1;
    nw = (long)((tf.count - 1) / (uint64_t)T);

    if (bytes || m->cfg.vocab_size == 257) r = lmu_tokenizer_bytes(&tok);
    else {
        char enc[1100], bpe[1100];
        if (strlen(dir) > 1000) ex_die("path too long: %s", dir);
        sprintf(enc, "%s/encoder.json", dir);
        sprintf(bpe, "%s/vocab.bpe", dir);
        r = lmu_tokenizer_load_files(&tok, enc, bpe, err, sizeof err);
        if (r != LMU_OK) {
            fprintf(stderr, "eval: no bits per byte: %s\n", err);
            tok = NULL;
        }
    }
    if (tok && lmu_tokenizer_vocab_size(tok) != m->cfg.vocab_size) {
        fprintf(stderr, "eval: no bits per byte: the tokenizer has %d ids, the model %d\n",
                (int)lmu_tokenizer_vocab_size(tok), m->cfg.vocab_size);
        lmu_tokenizer_free(tok);
        tok = NULL;
    }

    B = (int)(batch < nw ? batch : nw);
    sum = (double *)calloc((size_t)T, sizeof(double));
    tk = (int *)malloc((size_t)B * (size_t)T * sizeof(int));
    tg = (int *)malloc((size_t)B * (size_t)T * sizeof(int));
    if (!sum || !tk || !tg) ex_die("out of memory");
    total = eval_pass(m, &tf, T, nw, B, tk, tg, sum, tok, &n_bytes, "eval");
    {
        double n = (double)nw * (double)T, loss = total / n;
        double bpb = tok && n_bytes > 0 ? total / log(2.0) / n_bytes : -1;
        FILE *js = NULL;
        printf("eval: %s on %s: %.0f tokens in %ld windows of %ld\n", ckpt, tokens, n, nw, T);
        printf("eval: loss %.4f nats/token (perplexity %.2f)", loss, exp(loss));
        if (bpb >= 0) printf(", %.4f bits/byte (%.0f bytes, %.2f bytes/token)", bpb, n_bytes, n_bytes / n);
        printf("\n");
        if (json) {
            js = fopen(json_tmp, "wb");
            if (!js) ex_die("cannot write %s: %s", json_tmp, strerror(errno));
            fprintf(js, "{\"checkpoint\": ");
            json_str(js, ckpt);
            fprintf(js, ", \"data\": ");
            json_str(js, tokens);
            fprintf(js, ", \"arch\": \"%s\", \"mixer\": \"%s\", \"tokens\": %.0f, \"seq\": %ld, "
                    "\"params\": %lu, \"params_total\": %lu, \"loss\": %.6f, \"bpb\": ",
                    lmu_arch_name(m->cfg.arch), lmu_mixer_name(m->cfg.mixer), n, T,
                    (unsigned long)lmu_model_param_count(m),
                    (unsigned long)lmu_config_param_count_total(&m->cfg), loss);
            if (bpb >= 0) fprintf(js, "%.6f", bpb);
            else fprintf(js, "null");
        }
        print_buckets(sum, T, nw, js);
        if (csv) {
            FILE *f = fopen(csv, "wb");
            if (!f) ex_die("cannot write %s: %s", csv, strerror(errno));
            fprintf(f, "position,loss,count\n");
            for (j = 0; j < T; j++) fprintf(f, "%ld,%.6f,%ld\n", j, sum[j] / (double)nw, nw);
            if (fclose(f) != 0) ex_die("cannot write %s: %s", csv, strerror(errno));
            printf("eval: per-position loss in %s\n", csv);
        }
        if (ablate) {
            /* contributions need no bpb: skip the byte count */
            double *tmp = (double *)calloc((size_t)T, sizeof(double));
            int k, l, first = 1;
            if (!tmp) ex_die("out of memory");
            printf("eval: contribution of each part (loss with it switched off, minus %.4f):\n", loss);
            printf("  %-20s %6s %10s %10s\n", "part", "layer", "loss", "delta");
            if (js) fprintf(js, ", \"ablations\": [");
            for (k = 0; k < N_PARTS; k++) {
                for (l = -1; l < (ablate == 2 ? 0 : m->cfg.n_layer); l++) {
                    double nb = 0, lk;
                    int lo = l < 0 ? 0 : l, hi = l < 0 ? m->cfg.n_layer : l + 1;
                    if (!part_switch(m, k, lo, hi, 1)) continue;
                    memset(tmp, 0, (size_t)T * sizeof(double));
                    lk = eval_pass(m, &tf, T, nw, B, tk, tg, tmp, NULL, &nb, parts[k].name) / n;
                    part_switch(m, k, lo, hi, 0);
                    if (l < 0) printf("  %-20s %6s %10.4f %+10.4f\n", parts[k].name, "all", lk, lk - loss);
                    else printf("  %-20s %6d %10.4f %+10.4f\n", parts[k].name, l, lk, lk - loss);
                    if (js) {
                        fprintf(js, "%s{\"part\": \"%s\", \"layer\": %d, \"loss\": %.6f, \"delta\": %.6f}",
                                first ? "" : ", ", parts[k].name, l, lk, lk - loss);
                        first = 0;
                    }
                }
            }
            if (js) fprintf(js, "]");
            free(tmp);
        }
        if (js) {
            fprintf(js, "}\n");
            if (fclose(js) != 0 || rename(json_tmp, json) != 0)
                ex_die("cannot write %s: %s", json, strerror(errno));
            printf("eval: summary in %s\n", json);
        }
        if (append) {
            FILE *f = fopen(append, "ab");
            if (!f) ex_die("cannot write %s: %s", append, strerror(errno));
            if (ftell(f) == 0) fprintf(f, "checkpoint,params,params_total,tokens,loss,bpb,seq\n");
            fprintf(f, "%s,%lu,%lu,%.0f,%.6f,", ckpt, (unsigned long)lmu_model_param_count(m),
                    (unsigned long)lmu_config_param_count_total(&m->cfg), n, loss);
            if (bpb >= 0) fprintf(f, "%.6f", bpb);
            fprintf(f, ",%ld\n", T);
            if (fclose(f) != 0) ex_die("cannot write %s: %s", append, strerror(errno));
            printf("eval: summary added to %s\n", append);
        }
    }
    free(sum);
    free(tk);
    free(tg);
    lmu_tokens_free(&tf);
    lmu_tokenizer_free(tok);
    lmu_model_free(m);
    return 0;
}
