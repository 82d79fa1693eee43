/* sample.c - generate text from a checkpoint, streaming it as it comes.

   build: cc -O3 -march=native -fopenmp -I. examples/sample.c -o build/sample $(pkg-config --cflags --libs stb) -lm

   usage: sample CKPT [options]
     -p, --prompt TEXT      text to continue (default: start a new document)
     --prompt-file FILE     the prompt from a file
     -n, --tokens N         tokens to generate (default 200)
     -t, --temp T           temperature (default 0.8; 0: greedy)
     -k, --top-k K          keep the K most likely tokens (default 40; 0: off)
     --top-p P              keep the smallest set with probability >= P (default 0.95; 1: off)
     -s, --seed S           sampling seed (default: the time)
     --bytes                byte-level tokenizer (automatic for vocabulary 257)
     --vocab-dir DIR        GPT-2 encoder.json + vocab.bpe (default data/gpt2)
     --parallel             re-run the parallel (training) forward over the
                            context for each token instead of the recurrence
     --stop-at-eot          stop at <|endoftext|>
     --threads N
   The model runs as a recurrence by default: one token in, the LMU's memory
   updated, constant work and memory per token whatever the context length.
   Example: sample out/demo/model.safetensors -p "The jury said" -n 100 */
#define _POSIX_C_SOURCE 200809L
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "example_util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct opts {
    const char *prompt, *prompt_file, *vocab_dir;
    long tokens, top_k, threads;
    double temp, top_p;
    uint64_t seed;
    int bytes, parallel, stop_at_eot;
    char weights[8];
} opts;

#define F(f) EX_FIELD(opts, f)
static const ex_opt options[] = {
    {"prompt", 'p', EX_ARG, F(prompt), 0, 0, 0, "TEXT", "text to continue (default: a new document)"},
    {"prompt_file", 0, EX_ARG, F(prompt_file), 0, 0, 0, "FILE", "the prompt from a file"},
    {"tokens", 'n', EX_LONG, F(tokens), 0, 0, 1e9, "N", "tokens to generate (default 200)"},
    {"temp", 't', EX_DBL, F(temp), 0, 0, 100, "T", "temperature (default 0.8; 0: greedy)"},
    {"top_k", 'k', EX_LONG, F(top_k), 0, 0, 1e9, "K", "sample among the K most likely (default 40; 0: all)"},
    {"top_p", 0, EX_DBL, F(top_p), EX_OPEN_LO, 0, 1, "P", "nucleus: smallest set with probability >= P (default 0.95)"},
    {"seed", 's', EX_U64, F(seed), 0, 0, 1.8e19, "S", "sampling seed (default: the time)"},
    {"bytes", 0, EX_FLAG, F(bytes), 0, 0, 0, NULL, "byte-level tokenizer (automatic for vocabulary 257)"},
    {"vocab_dir", 0, EX_ARG, F(vocab_dir), 0, 0, 0, "DIR", "GPT-2 encoder.json + vocab.bpe (default data/gpt2)"},
    {"parallel", 0, EX_FLAG, F(parallel), 0, 0, 0, NULL,
     "the parallel forward over the context for each token (slow;\n"
     "                           the recurrence is the default)"},
    {"stop_at_eot", 0, EX_FLAG, F(stop_at_eot), 0, 0, 0, NULL, "stop at <|endoftext|>"},
    {"weights", 0, EX_STR, F(weights), 0, 0, 0, "fp32|bf16|int8", "the output layer as generation reads it: bf16 or int8\n"
     "                           (per-row scales) are faster, logits move slightly (default fp32)"},
    {"threads", 0, EX_LONG, F(threads), 0, 1, 1024, "N", "OpenMP threads"},
};

static const ex_opts sample_cli = {
    "sample",
    "usage: sample CKPT [-p PROMPT | --prompt-file FILE] [-n N] [-t TEMP] [-k TOPK] [--top-p P]\n"
    "              [-s SEED] [--bytes | --vocab-dir DIR] [--parallel] [--stop-at-eot]\n"
    "       sample --help\n",
    options, EX_COUNT(options), NULL};

/* The context for --parallel: the latest n_ctx tokens. */
typedef struct window {
    int *ids, *tgt, n, cap;
} window;

static void window_push(window *w, int id)
{
    if (w->n == w->cap) { /* slide */
        memmove(w->ids, w->ids + 1, (size_t)(w->n - 1) * sizeof(int));
        w->n--;
    }
    w->ids[w->n++] = id;
}

/* Logits of the next token from the parallel forward over the window. */
static void parallel_logits(lmu_model *m, window *w, float *logits)
{
    float loss;
    lmu_result r;
    memset(w->tgt, 0, (size_t)w->n * sizeof(int)); /* any valid targets: only the logits are used */
    r = lmu_model_forward(m, w->ids, w->tgt, 1, w->n, &loss);
    if (r != LMU_OK && r != LMU_ERR_NONFINITE) ex_die("forward failed: %s", lmu_model_error(m));
    if (lmu_model_logits(m, 0, w->n - 1, logits) != LMU_OK) ex_die("logits: %s", lmu_model_error(m));
}

/* The prompt's tokens after an <|endoftext|>: every context starts at a
   document boundary, as training saw them. */
static int32_t *encode_prompt(lmu_tokenizer *tok, const char *text, size_t len, size_t *n)
{
    int32_t *ids = (int32_t *)malloc((len + 1) * sizeof(int32_t));
    lmu_result r;
    if (!ids) ex_die("out of memory");
    ids[0] = lmu_tokenizer_eot(tok);
    *n = 0;
    if (len && (r = lmu_encode(tok, text, len, 1, ids + 1, len, n)) != LMU_OK)
        ex_die("cannot encode the prompt: %s", lmu_strerror(r));
    ++*n;
    return ids;
}

int main(int argc, char **argv)
{
    opts o;
    const char *pos[1] = {NULL}, *ckpt, *text = "";
    char err[512] = "", *file_text = NULL, *buf;
    size_t text_len = 0, n_prompt, k, cap, n_out;
    lmu_model *m;
    const lmu_config *c;
    lmu_tokenizer *tok;
    lmu_gen g;
    lmu_rng rng;
    lmu_decoder dec;
    lmu_result r;
    int32_t *ids, eot;
    window w;

    ex_prog = "sample";
    memset(&o, 0, sizeof o);
    o.tokens = 200, o.temp = 0.8, o.top_k = 40, o.top_p = 0.95, o.seed = (uint64_t)time(NULL);
    strcpy(o.weights, "fp32");
    o.vocab_dir = "data/gpt2";
    if (ex_parse(&sample_cli, argc, argv, &o, NULL, pos, 1) < 1)
        ex_usage_error(&sample_cli, "no checkpoint given");
    ckpt = pos[0];
    if (o.prompt && o.prompt_file) ex_die("give --prompt or --prompt-file, not both");
    ex_threads(o.threads);

    /* the model and its tokenizer */
    r = lmu_model_load(&m, ckpt, err, sizeof err);
    if (r != LMU_OK) ex_die("cannot load %s", err[0] ? err : lmu_strerror(r));
    c = lmu_model_config(m);
    r = ex_tokenizer(&tok, o.bytes || c->vocab_size == 257, o.vocab_dir, err, sizeof err);
    if (r != LMU_OK) ex_die("%s (run tools/fetch_data.sh)", err[0] ? err : lmu_strerror(r));
    if (lmu_tokenizer_vocab_size(tok) != c->vocab_size)
        ex_die("%s has vocab_size %d but the tokenizer has %d%s", ckpt, c->vocab_size,
               (int)lmu_tokenizer_vocab_size(tok), o.bytes ? "" : " (a byte-level model? try --bytes)");
    eot = lmu_tokenizer_eot(tok);

    /* the prompt */
    if (o.prompt_file) {
        if (!(file_text = ex_read_file(o.prompt_file, &text_len)))
            ex_die("cannot open %s: %s", o.prompt_file, strerror(errno));
        text = file_text;
    } else if (o.prompt)
        text = o.prompt, text_len = strlen(o.prompt);
    ids = encode_prompt(tok, text, text_len, &n_prompt);

    /* room for the whole text: attention caches that many positions (an
       LMU's memory is constant; the transformer stops at its n_ctx) */
    if ((r = lmu_gen_create(&g, m, (int)(n_prompt + (size_t)o.tokens < 0x7fffffff ? n_prompt + (size_t)o.tokens : 0x7fffffff))) != LMU_OK)
        ex_die("cannot start generation: %s", lmu_strerror(r));
    {
        lmu_gen_weights fmt = LMU_GEN_WEIGHTS_FP32; /* the option's choices are the library's names */
        if (lmu_gen_weights_parse(o.weights, &fmt) != LMU_OK) ex_die("--weights %s: not a format", o.weights);
        if ((r = lmu_gen_set_weights(&g, fmt)) != LMU_OK) ex_die("--weights: %s", lmu_strerror(r));
    }
    lmu_rng_seed(&rng, o.seed);
    cap = lmu_tokenizer_max_token_bytes(tok) + 8;
    buf = (char *)malloc(cap);
    memset(&w, 0, sizeof w);
    if (o.parallel) {
        w.cap = c->n_ctx;
        w.ids = (int *)malloc((size_t)w.cap * sizeof(int));
        w.tgt = (int *)malloc((size_t)w.cap * sizeof(int));
        if (!w.ids || !w.tgt) ex_die("out of memory");
    }
    if (!buf) ex_die("out of memory");
    lmu_decoder_init(&dec);

    /* echo the prompt and feed it, then generate: sample, print, feed */
    fwrite(text, 1, text_len, stdout);
    fflush(stdout);
    for (k = 0; k < n_prompt; k++) {
        if (o.parallel) window_push(&w, ids[k]);
        else if (lmu_gen_feed(&g, ids[k]) != LMU_OK) ex_die("%s", g.err);
    }
    for (k = 0; k < (size_t)o.tokens; k++) {
        int32_t next;
        if (o.parallel) parallel_logits(m, &w, g.logits);
        next = (int32_t)lmu_gen_sample(&g, (float)o.temp, (int)o.top_k, (float)o.top_p, &rng);
        if (next == eot) {
            if (o.stop_at_eot) break;
            fputs("\n\n", stdout); /* a new document begins */
        } else {
            if (lmu_decoder_push(&dec, tok, next, buf, cap, &n_out) != LMU_OK)
                ex_die("cannot decode token %d", (int)next);
            fwrite(buf, 1, n_out, stdout);
        }
        fflush(stdout);
        if (k + 1 == (size_t)o.tokens) break;
        if (o.parallel) window_push(&w, next);
        else if (lmu_gen_feed(&g, next) != LMU_OK) {
            /* attention models: the KV cache is full */
            fprintf(stderr, "\nsample: %s; stopping\n", g.err);
            break;
        }
    }
    if (lmu_decoder_flush(&dec, buf, cap, &n_out) == LMU_OK) fwrite(buf, 1, n_out, stdout);
    fputc('\n', stdout);
    free(buf);
    free(ids);
    free(file_text);
    free(w.ids);
    free(w.tgt);
    lmu_gen_free(&g);
    lmu_tokenizer_free(tok);
    lmu_model_free(m);
    return 0;
}
