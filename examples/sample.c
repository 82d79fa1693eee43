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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *usage =
    "usage: sample CKPT [-p PROMPT | --prompt-file FILE] [-n N] [-t TEMP] [-k TOPK] [--top-p P]\n"
    "              [-s SEED] [--bytes | --vocab-dir DIR] [--parallel] [--stop-at-eot]\n"
    "       sample --help\n";

/* Logits of the next token from the parallel forward over ctx[0..n). */
static void parallel_logits(lmu_model *m, const int *ctx, int n, int *tgt, float *logits)
{
    float loss;
    lmu_result r;
    memset(tgt, 0, (size_t)n * sizeof(int)); /* any valid targets: only the logits are used */
    r = lmu_model_forward(m, ctx, tgt, 1, n, &loss);
    if (r != LMU_OK && r != LMU_ERR_NONFINITE) ex_die("forward failed: %s", m->err);
    if (lmu_model_logits(m, 0, n - 1, logits) != LMU_OK) ex_die("logits: %s", m->err);
}

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *prompt = NULL, *prompt_file = NULL, *dir = "data/gpt2";
    long n_gen = 200;
    double temp = 0.8, top_p = 0.95, x;
    int top_k = 40, bytes = 0, parallel = 0, stop_eot = 0, i;
    uint64_t seed = (uint64_t)time(NULL);
    char err[512], *text = NULL;
    size_t text_len = 0, n_prompt = 0, k;
    lmu_model *m;
    lmu_tokenizer *tok;
    lmu_gen g;
    lmu_rng rng;
    lmu_decoder dec;
    lmu_result r;
    int32_t *ids, eot;
    int *ctx = NULL, *tgt = NULL, n_ctx_used = 0;
    char *buf;
    size_t cap;

    ex_prog = "sample";
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", usage);
            printf("\n  -p, --prompt TEXT   text to continue (default: a new document)\n"
                   "  --prompt-file FILE  the prompt from a file\n"
                   "  -n, --tokens N      tokens to generate (default 200)\n"
                   "  -t, --temp T        temperature (default 0.8; 0: greedy)\n"
                   "  -k, --top-k K       sample among the K most likely (default 40; 0: all)\n"
                   "  --top-p P           nucleus: smallest set with probability >= P (default 0.95)\n"
                   "  -s, --seed S        sampling seed (default: the time)\n"
                   "  --bytes             byte-level tokenizer (automatic for vocabulary 257)\n"
                   "  --vocab-dir DIR     GPT-2 encoder.json + vocab.bpe (default data/gpt2)\n"
                   "  --parallel          parallel forward over the context per token (slow;\n"
                   "                      the recurrence is the default)\n"
                   "  --stop-at-eot       stop at <|endoftext|>\n"
                   "  --threads N         OpenMP threads\n");
            return 0;
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && more) prompt = argv[++i];
        else if (!strcmp(a, "--prompt-file") && more) prompt_file = argv[++i];
        else if ((!strcmp(a, "-n") || !strcmp(a, "--tokens")) && more) {
            if (!ex_number(argv[++i], 0, 1e9, 1, &x)) ex_die("-n wants a count, not '%s'", argv[i]);
            n_gen = (long)x;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--temp")) && more) {
            if (!ex_number(argv[++i], 0, 100, 0, &temp)) ex_die("--temp wants 0..100, not '%s'", argv[i]);
        } else if ((!strcmp(a, "-k") || !strcmp(a, "--top-k")) && more) {
            if (!ex_number(argv[++i], 0, 1e9, 1, &x)) ex_die("--top-k wants a count, not '%s'", argv[i]);
            top_k = (int)x;
        } else if (!strcmp(a, "--top-p") && more) {
            if (!ex_number(argv[++i], 0, 1, 0, &top_p) || top_p <= 0) ex_die("--top-p wants (0, 1], not '%s'", argv[i]);
        } else if ((!strcmp(a, "-s") || !strcmp(a, "--seed")) && more) {
            if (!ex_number(argv[++i], 0, 1.8e19, 0, &x) || x != (double)(uint64_t)x) ex_die("--seed wants a whole number, not '%s'", argv[i]);
            seed = (uint64_t)x;
        } else if (!strcmp(a, "--bytes")) bytes = 1;
        else if (!strcmp(a, "--vocab-dir") && more) dir = argv[++i];
        else if (!strcmp(a, "--parallel")) parallel = 1;
        else if (!strcmp(a, "--stop-at-eot")) stop_eot = 1;
        else if (!strcmp(a, "--threads") && more) {
            if (!ex_number(argv[++i], 1, 1024, 1, &x)) ex_die("--threads wants 1..1024, not '%s'", argv[i]);
#ifdef _OPENMP
            omp_set_num_threads((int)x);
#endif
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "sample: unknown option '%s' (or it needs a value)\n%s", a, usage);
            return 2;
        } else if (!ckpt) ckpt = a;
        else {
            fprintf(stderr, "sample: unexpected argument '%s'\n%s", a, usage);
            return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "sample: no checkpoint given\n%s", usage);
        return 2;
    }
    if (prompt && prompt_file) ex_die("give --prompt or --prompt-file, not both");

    r = lmu_model_load(&m, ckpt, err, sizeof err);
    if (r != LMU_OK) ex_die("cannot load %s", err[0] ? err : lmu_strerror(r));
    if (bytes || m->cfg.vocab_size == 257) r = lmu_tokenizer_bytes(&tok);
    else {
        char enc[1100], bpe[1100];
        if (strlen(dir) > 1000) ex_die("path too long: %s", dir);
        sprintf(enc, "%s/encoder.json", dir);
        sprintf(bpe, "%s/vocab.bpe", dir);
        r = lmu_tokenizer_load_files(&tok, enc, bpe, err, sizeof err);
        if (r != LMU_OK) ex_die("%s (run tools/fetch_data.sh)", err);
    }
    if (r != LMU_OK) ex_die("cannot make the tokenizer: %s", lmu_strerror(r));
    if (lmu_tokenizer_vocab_size(tok) != m->cfg.vocab_size)
        ex_die("%s has vocab_size %d but the tokenizer has %d%s", ckpt, m->cfg.vocab_size,
            (int)lmu_tokenizer_vocab_size(tok),
            bytes ? "" : " (a byte-level model? try --bytes)");
    eot = lmu_tokenizer_eot(tok);

    if (prompt_file && !(text = ex_read_file(prompt_file, &text_len)))
        ex_die("cannot open %s: %s", prompt_file, strerror(errno));
    else if (prompt) text_len = strlen(prompt);
    ids = (int32_t *)malloc((text_len + 1) * sizeof(int32_t));
    if (!ids) ex_die("out of memory");
    /* every context starts at a document boundary, as training saw them */
    ids[0] = eot;
    if (text_len) {
        r = lmu_encode(tok, prompt_file ? text : prompt, text_len, 1, ids + 1, text_len, &n_prompt);
        if (r != LMU_OK) ex_die("cannot encode the prompt: %s", lmu_strerror(r));
    }
    n_prompt++;

    if ((r = lmu_gen_create(&g, m, 0)) != LMU_OK) ex_die("cannot start generation: %s", lmu_strerror(r));
    lmu_rng_seed(&rng, seed);
    cap = lmu_tokenizer_max_token_bytes(tok) + 8;
    buf = (char *)malloc(cap);
    if (parallel) {
        ctx = (int *)malloc((size_t)m->cfg.n_ctx * sizeof(int));
        tgt = (int *)malloc((size_t)m->cfg.n_ctx * sizeof(int));
        if (!ctx || !tgt) ex_die("out of memory");
    }
    if (!buf) ex_die("out of memory");
    lmu_decoder_init(&dec);

    /* the prompt: echo it, feed it */
    if (text_len) {
        fwrite(prompt_file ? text : prompt, 1, text_len, stdout);
        fflush(stdout);
    }
    for (k = 0; k < n_prompt; k++) {
        if (parallel) {
            if (n_ctx_used == m->cfg.n_ctx) { /* slide: keep the latest n_ctx tokens */
                memmove(ctx, ctx + 1, (size_t)(n_ctx_used - 1) * sizeof(int));
                n_ctx_used--;
            }
            ctx[n_ctx_used++] = ids[k];
        } else if ((r = lmu_gen_feed(&g, ids[k])) != LMU_OK)
            ex_die("%s", g.err);
    }
    for (k = 0; k < (size_t)n_gen; k++) {
        int32_t next;
        size_t n_out;
        if (parallel) parallel_logits(m, ctx, n_ctx_used, tgt, g.logits);
        next = (int32_t)lmu_gen_sample(&g, (float)temp, top_k, (float)top_p, &rng);
        if (next == eot) {
            if (stop_eot) break;
            fputs("\n\n", stdout); /* a new document begins */
        } else {
            if (lmu_decoder_push(&dec, tok, next, buf, cap, &n_out) != LMU_OK)
                ex_die("cannot decode token %d", (int)next);
            fwrite(buf, 1, n_out, stdout);
        }
        fflush(stdout);
        if (k + 1 == (size_t)n_gen) break;
        if (parallel) {
            if (n_ctx_used == m->cfg.n_ctx) {
                memmove(ctx, ctx + 1, (size_t)(n_ctx_used - 1) * sizeof(int));
                n_ctx_used--;
            }
            ctx[n_ctx_used++] = next;
        } else if ((r = lmu_gen_feed(&g, next)) != LMU_OK) {
            /* attention models: the KV cache is full */
            fprintf(stderr, "\nsample: %s; stopping\n", g.err);
            break;
        }
    }
    {
        size_t n_out;
        if (lmu_decoder_flush(&dec, buf, cap, &n_out) == LMU_OK) fwrite(buf, 1, n_out, stdout);
    }
    fputc('\n', stdout);
    free(buf);
    free(ids);
    free(text);
    free(ctx);
    free(tgt);
    lmu_gen_free(&g);
    lmu_tokenizer_free(tok);
    lmu_model_free(m);
    return 0;
}
