/* tokenize.c - text to GPT-2 token ids and back.

   build: cc -std=c99 -O2 -I. examples/tokenize.c -o build/tokenize $(pkg-config --cflags --libs stb) -lm

   usage: tokenize [-d] [-s] [-b] [-v DIR] [FILE]
     (default)  read text (FILE or stdin), print ids, one line, space-separated
     -d         decode: read ids (any white space between them), write the text
     -s         "<|endoftext|>" in the text is the end-of-text id (encode)
     -b         the byte-level tokenizer (ids 0..255 are bytes, 256 end of text)
     -v DIR     GPT-2's encoder.json and vocab.bpe are in DIR (default data/gpt2;
                tools/fetch_tokenizer.sh puts them there)
   Example: echo "Hello world" | tokenize | tokenize -d */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_all(FILE *f, size_t *n)
{
    size_t cap = 1 << 16, len = 0, got;
    char *b = (char *)malloc(cap);
    while (b && (got = fread(b + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *nb = (char *)realloc(b, cap *= 2);
            if (!nb) { free(b); return NULL; }
            b = nb;
        }
    }
    if (b) b[len] = 0; /* len < cap here: room for a terminator */
    *n = len;
    return b;
}

int main(int argc, char **argv)
{
    int decode = 0, special = 0, bytes = 0, i;
    const char *dir = "data/gpt2", *file = NULL;
    char enc_path[1024], bpe_path[1024], err[256];
    lmu_tokenizer *tok;
    lmu_result r;
    FILE *in = stdin;
    char *text;
    size_t n;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-d") == 0) decode = 1;
        else if (strcmp(argv[i], "-s") == 0) special = 1;
        else if (strcmp(argv[i], "-b") == 0) bytes = 1;
        else if (strcmp(argv[i], "-v") == 0 && i + 1 < argc) dir = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) { fprintf(stderr, "usage: %s [-d] [-s] [-b] [-v DIR] [FILE]\n", argv[0]); return 2; }
        else file = argv[i];
    }
    if (bytes) r = lmu_tokenizer_bytes(&tok);
    else {
        snprintf(enc_path, sizeof enc_path, "%s/encoder.json", dir);
        snprintf(bpe_path, sizeof bpe_path, "%s/vocab.bpe", dir);
        r = lmu_tokenizer_load_files(&tok, enc_path, bpe_path, err, sizeof err);
    }
    if (r != LMU_OK) { fprintf(stderr, "tokenize: %s: %s\n", lmu_strerror(r), err); return 1; }
    if (file && !(in = fopen(file, "rb"))) { fprintf(stderr, "tokenize: cannot open %s\n", file); return 1; }
    text = read_all(in, &n);
    if (in != stdin) fclose(in);
    if (!text) { fprintf(stderr, "tokenize: out of memory\n"); return 1; }

    if (!decode) {
        int32_t *ids = (int32_t *)malloc((n + 1) * sizeof *ids);
        size_t k, m = 0;
        r = ids ? lmu_encode_parallel(tok, text, n, special, ids, n, &m) : LMU_ERR_NOMEM;
        if (r != LMU_OK) { fprintf(stderr, "tokenize: %s\n", lmu_strerror(r)); return 1; }
        for (k = 0; k < m; k++) printf(k ? " %ld" : "%ld", (long)ids[k]);
        printf("\n");
        free(ids);
    } else {
        /* ids stream through the decoder, as in generation */
        lmu_decoder d;
        char *out = (char *)malloc(lmu_tokenizer_max_token_bytes(tok) + 4), *p = text, *end;
        size_t w;
        lmu_decoder_init(&d);
        while (p < text + n) {
            long v;
            while (p < text + n && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',')) p++;
            if (p >= text + n) break;
            v = strtol(p, &end, 10);
            if (end == p) { fprintf(stderr, "tokenize: not an id at byte %ld\n", (long)(p - text)); return 1; }
            p = end;
            r = lmu_decoder_push(&d, tok, (int32_t)v, out, lmu_tokenizer_max_token_bytes(tok) + 4, &w);
            if (r != LMU_OK) { fprintf(stderr, "tokenize: id %ld: %s\n", v, lmu_strerror(r)); return 1; }
            fwrite(out, 1, w, stdout);
        }
        lmu_decoder_flush(&d, out, 4, &w);
        fwrite(out, 1, w, stdout);
        free(out);
    }
    free(text);
    lmu_tokenizer_free(tok);
    return 0;
}
