/* prepare.c - text files in, token files out (train and validation splits).

   build: cc -O3 -march=native -fopenmp -I. examples/prepare.c -o build/prepare $(pkg-config --cflags --libs stb) -lm

   usage: prepare [options] FILE...
     -o, --out PREFIX   write PREFIX.train.tok, PREFIX.val.tok (and with
                        --test, PREFIX.test.tok); default: the first FILE
                        without its extension
     --bytes            byte-level tokenizer (vocabulary 257: bytes + end of text)
     --vocab-dir DIR    GPT-2's encoder.json and vocab.bpe (default data/gpt2)
     --val FRAC         share of documents for validation (default 0.1; 0: none)
     --test FRAC        share of documents for a test split (default 0: none)
     --threads N        encode on N threads
     -h, --help

   Every FILE holds one document, or several separated by the text
   "<|endoftext|>". Each document goes out as <|endoftext|> followed by its
   tokens, so documents stay separable and a model learns where they begin.
   Whole documents go to validation, spread evenly through the corpus (every
   10th with --val 0.1); with a single document its last FRAC of tokens do.
   --test takes its documents the same way, half a period later (with
   --val 0.1 --test 0.1: documents 9, 19, ... validate, 4, 14, ... test), so
   adding a test split leaves the validation split as it was. A test split
   is for the numbers you report: choose nothing on it (examples/eval.c,
   tools/experiment.py).
   The token file format is in lmu.h (>>data).
   Example: prepare --bytes -o data/tiny notes.txt */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "example_util.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
    const char *out, *vocab_dir;
    double val, test;
    long threads;
    int bytes;
} opts;

#define F(f) EX_FIELD(opts, f)
static const ex_opt options[] = {
    {"out", 'o', EX_ARG, F(out), 0, 0, 0, "PREFIX",
     "outputs PREFIX.train.tok, PREFIX.val.tok (default: the first\n"
     "                           FILE without its extension)"},
    {"bytes", 0, EX_FLAG, F(bytes), 0, 0, 0, NULL, "byte-level tokenizer, vocabulary 257 (needs no files)"},
    {"vocab_dir", 0, EX_ARG, F(vocab_dir), 0, 0, 0, "DIR", "GPT-2 encoder.json + vocab.bpe (default data/gpt2)"},
    {"val", 0, EX_DBL, F(val), 0, 0, 0.5, "FRAC", "share of documents kept for validation (default 0.1)"},
    {"test", 0, EX_DBL, F(test), 0, 0, 0.5, "FRAC", "share of documents kept for a test split (default 0)"},
    {"threads", 0, EX_LONG, F(threads), 0, 1, 1024, "N", "encoding threads (default: all)"},
};

static const ex_opts prepare_cli = {
    "prepare",
    "usage: prepare [-o PREFIX] [--bytes | --vocab-dir DIR] [--val FRAC] [--test FRAC]\n"
    "               [--threads N] FILE...\n"
    "  text files in (documents separated by <|endoftext|>), PREFIX.train.tok and\n"
    "  PREFIX.val.tok out. --help for more.\n",
    options, EX_COUNT(options), NULL};

/* growable int32 array */
typedef struct { int32_t *v; size_t n, cap; } ivec;
static void ivec_push(ivec *a, const int32_t *x, size_t n)
{
    if (a->n + n > a->cap) {
        size_t nc = a->cap ? a->cap : 1024;
        while (nc < a->n + n) nc *= 2;
        a->v = (int32_t *)realloc(a->v, nc * sizeof(int32_t));
        if (!a->v) ex_die("out of memory");
        a->cap = nc;
    }
    memcpy(a->v + a->n, x, n * sizeof(int32_t));
    a->n += n;
}

int main(int argc, char **argv)
{
    opts o;
    const char *out, *dir;
    const char **files;
    int n_files, bytes, i;
    double val, test;
    char err[512], prefix[1024], path_train[1100], path_val[1100], path_test[1100];
    lmu_tokenizer *tok = NULL;
    lmu_result r;
    ivec train = {0}, valid = {0}, testv = {0};
    size_t n_docs = 0, n_val_docs = 0, n_test_docs = 0, total_bytes = 0, k;
    int32_t eot;

    ex_prog = "prepare";
    memset(&o, 0, sizeof o);
    o.vocab_dir = "data/gpt2", o.val = 0.1;
    files = (const char **)calloc((size_t)argc, sizeof *files);
    if (!files) ex_die("out of memory");
    n_files = ex_parse(&prepare_cli, argc, argv, &o, NULL, files, argc);
    if (n_files == 0) ex_usage_error(&prepare_cli, "no input files");
    ex_threads(o.threads);
    out = o.out, dir = o.vocab_dir, bytes = o.bytes, val = o.val, test = o.test;
    if (!out) { /* first file minus its extension */
        const char *slash = strrchr(files[0], '/'), *dot = strrchr(files[0], '.');
        size_t len = dot && (!slash || dot > slash + 1) ? (size_t)(dot - files[0]) : strlen(files[0]);
        if (len >= sizeof prefix) ex_die("path too long: %s", files[0]);
        memcpy(prefix, files[0], len);
        prefix[len] = 0;
        out = prefix;
    }
    if (strlen(out) > 1000) ex_die("path too long: %s", out);
    sprintf(path_train, "%s.train.tok", out);
    sprintf(path_val, "%s.val.tok", out);
    sprintf(path_test, "%s.test.tok", out);
    if (val + test > 0.5) ex_die("--val %g and --test %g leave less than half for training", val, test);

    if (bytes) r = lmu_tokenizer_bytes(&tok);
    else {
        char enc[1100], bpe[1100];
        if (strlen(dir) > 1000) ex_die("path too long: %s", dir);
        sprintf(enc, "%s/encoder.json", dir);
        sprintf(bpe, "%s/vocab.bpe", dir);
        r = lmu_tokenizer_load_files(&tok, enc, bpe, err, sizeof err);
        if (r != LMU_OK)
            ex_die("%s (run tools/fetch_data.sh, or use --bytes)", err);
    }
    if (r != LMU_OK) ex_die("cannot make the tokenizer: %s", lmu_strerror(r));
    eot = lmu_tokenizer_eot(tok);

    /* encode every file; cut into documents at end-of-text ids */
    {
        ivec docs_tok = {0};            /* all documents, each prefixed by eot */
        size_t *starts = NULL, cap_s = 0;
        for (i = 0; i < n_files; i++) {
            size_t len, n_ids, a, b;
            char *text = ex_read_file(files[i], &len);
            if (!text) ex_die("cannot open %s: %s", files[i], strerror(errno));
            int32_t *ids = (int32_t *)malloc((len ? len : 1) * sizeof(int32_t));
            if (!ids) ex_die("out of memory");
            total_bytes += len;
            r = lmu_encode_parallel(tok, text, len, 1, ids, len, &n_ids);
            if (r != LMU_OK) ex_die("encoding %s failed: %s", files[i], lmu_strerror(r));
            free(text);
            for (a = 0; a <= n_ids; a = b + 1) {
                for (b = a; b < n_ids && ids[b] != eot; b++) {}
                if (b == a) continue; /* empty document */
                if (n_docs == cap_s) {
                    cap_s = cap_s ? 2 * cap_s : 256;
                    starts = (size_t *)realloc(starts, (cap_s + 1) * sizeof *starts);
                    if (!starts) ex_die("out of memory");
                }
                starts[n_docs++] = docs_tok.n;
                ivec_push(&docs_tok, &eot, 1);
                ivec_push(&docs_tok, ids + a, b - a);
            }
            free(ids);
        }
        if (n_docs == 0)
            ex_die("empty corpus: no text in %s", n_files == 1 ? files[0] : "the input files");
        if (starts) starts[n_docs] = docs_tok.n;
        if ((val > 0 || test > 0) && n_docs >= 2) {
            /* doc k is validation when the running share crosses an integer;
               test the same, shifted by half a period so the two never
               pick the same documents at equal shares */
            for (k = 0; k < n_docs; k++) {
                ivec *dst = &train;
                if ((size_t)((double)(k + 1) * val) > (size_t)((double)k * val)) dst = &valid;
                else if ((size_t)((double)(k + 1) * test + 0.5) > (size_t)((double)k * test + 0.5))
                    dst = &testv;
                ivec_push(dst, docs_tok.v + starts[k], starts[k + 1] - starts[k]);
                if (dst == &valid) n_val_docs++;
                if (dst == &testv) n_test_docs++;
            }
        }
        if ((val > 0 || test > 0) &&
            (n_docs < 2 || (val > 0 && n_val_docs == 0) || (test > 0 && n_test_docs == 0) ||
             train.n == 0)) {
            /* too few documents to split whole ones: cut the token stream,
               train | validation | test */
            size_t nv = (size_t)((double)docs_tok.n * val), nt = (size_t)((double)docs_tok.n * test);
            size_t cut;
            train.n = valid.n = testv.n = 0;
            n_val_docs = n_test_docs = 0;
            if (val > 0 && nv == 0) nv = 1;
            if (test > 0 && nt == 0) nt = 1;
            if (nv + nt + 1 > docs_tok.n)
                ex_die("corpus of %lu tokens is too small to split", (unsigned long)docs_tok.n);
            cut = docs_tok.n - nv - nt;
            ivec_push(&train, docs_tok.v, cut);
            ivec_push(&valid, docs_tok.v + cut, nv);
            ivec_push(&testv, docs_tok.v + cut + nv, nt);
            fprintf(stderr, "prepare: %lu document%s: validation and test are the last %.0f%% and "
                    "%.0f%% of the tokens\n",
                    (unsigned long)n_docs, n_docs == 1 ? "" : "s", val * 100, test * 100);
        } else if (val == 0 && test == 0)
            ivec_push(&train, docs_tok.v, docs_tok.n);
        free(docs_tok.v);
        free(starts);
    }

    r = lmu_tokens_write_file(path_train, train.v, train.n, lmu_tokenizer_vocab_size(tok), err,
                              sizeof err);
    if (r != LMU_OK) ex_die("%s", err);
    if (val == 0) remove(path_val); /* a stale split would be trained against */
    if (val > 0) {
        r = lmu_tokens_write_file(path_val, valid.v, valid.n, lmu_tokenizer_vocab_size(tok), err,
                                  sizeof err);
        if (r != LMU_OK) ex_die("%s", err);
    }
    if (test == 0) remove(path_test);
    if (test > 0) {
        r = lmu_tokens_write_file(path_test, testv.v, testv.n, lmu_tokenizer_vocab_size(tok), err,
                                  sizeof err);
        if (r != LMU_OK) ex_die("%s", err);
    }
    printf("prepare: %d file%s, %lu bytes, %lu documents -> %lu tokens (%.2f bytes/token, "
           "vocab %d)\n",
           n_files, n_files == 1 ? "" : "s", (unsigned long)total_bytes, (unsigned long)n_docs,
           (unsigned long)(train.n + valid.n + testv.n),
           (double)total_bytes /
               (double)(train.n + valid.n + testv.n ? train.n + valid.n + testv.n : 1),
           (int)lmu_tokenizer_vocab_size(tok));
    printf("prepare: %s  %lu tokens\n", path_train, (unsigned long)train.n);
    if (val > 0 && n_val_docs)
        printf("prepare: %s  %lu tokens (%lu documents)\n", path_val, (unsigned long)valid.n,
               (unsigned long)n_val_docs);
    else if (val > 0)
        printf("prepare: %s  %lu tokens (the end of the token stream)\n", path_val,
               (unsigned long)valid.n);
    if (test > 0 && n_test_docs)
        printf("prepare: %s  %lu tokens (%lu documents)\n", path_test, (unsigned long)testv.n,
               (unsigned long)n_test_docs);
    else if (test > 0)
        printf("prepare: %s  %lu tokens (the end of the token stream)\n", path_test,
               (unsigned long)testv.n);
    free(train.v);
    free(valid.v);
    free(testv.v);
    free(files);
    lmu_tokenizer_free(tok);
    return 0;
}
