/* tokenize.c - text to GPT-2 token ids and back.

   build: cc -std=c99 -O2 -I. examples/tokenize.c -o build/tokenize $(pkg-config --cflags --libs stb) -lm

   usage: tokenize [-d] [-s] [-b] [-v DIR] [FILE]
     (default)            read text (FILE or stdin), print ids, one line, space-separated
     -d, --decode         read ids (any white space or commas between them), write the text
     -s, --special        "<|endoftext|>" in the text is the end-of-text id (encode)
     -b, --bytes          the byte-level tokenizer (ids 0..255 are bytes, 256 end of text)
     -v, --vocab-dir DIR  GPT-2's encoder.json and vocab.bpe are in DIR (default
                          data/gpt2; tools/fetch_tokenizer.sh puts them there)
   Plain C99 (no POSIX), like the library.
   Example: echo "Hello world" | tokenize | tokenize -d */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "example_util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
    int decode, special, bytes;
    const char *vocab_dir;
} opts;

#define F(f) EX_FIELD(opts, f)
static const ex_opt options[] = {
    {"decode", 'd', EX_FLAG, F(decode), 0, 0, 0, NULL, "ids in (white space or commas between), text out"},
    {"special", 's', EX_FLAG, F(special), 0, 0, 0, NULL, "\"<|endoftext|>\" in the text is the end-of-text id"},
    {"bytes", 'b', EX_FLAG, F(bytes), 0, 0, 0, NULL, "byte-level tokenizer (ids 0..255 bytes, 256 end of text)"},
    {"vocab_dir", 'v', EX_ARG, F(vocab_dir), 0, 0, 0, "DIR", "GPT-2 encoder.json + vocab.bpe (default data/gpt2)"},
};

static const ex_opts tokenize_cli = {
    "tokenize",
    "usage: tokenize [-d] [-s] [-b] [-v DIR] [FILE]\n"
    "  text (FILE or stdin) in, token ids out, one line; -d: ids in, text out\n",
    options, EX_COUNT(options), NULL};

/* text -> ids, one line */
static void encode(const lmu_tokenizer *tok, const char *text, size_t n, int special)
{
    int32_t *ids = (int32_t *)malloc((n + 1) * sizeof *ids);
    size_t k, m = 0;
    lmu_result r = ids ? lmu_encode_parallel(tok, text, n, special, ids, n, &m) : LMU_ERR_NOMEM;
    if (r != LMU_OK) ex_die("%s", lmu_strerror(r));
    for (k = 0; k < m; k++) printf(k ? " %ld" : "%ld", (long)ids[k]);
    printf("\n");
    free(ids);
}

/* ids -> text: they stream through the decoder, as in generation */
static void decode(const lmu_tokenizer *tok, const char *text, size_t n)
{
    lmu_decoder d;
    size_t cap = lmu_tokenizer_max_token_bytes(tok) + 4, w;
    char *out = (char *)malloc(cap), *end;
    const char *p = text;
    lmu_result r;
    if (!out) ex_die("out of memory");
    lmu_decoder_init(&d);
    while (p < text + n) {
        long v;
        while (p < text + n && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',')) p++;
        if (p >= text + n) break;
        v = strtol(p, &end, 10);
        if (end == p) ex_die("not an id at byte %ld", (long)(p - text));
        p = end;
        if ((r = lmu_decoder_push(&d, tok, (int32_t)v, out, cap, &w)) != LMU_OK)
            ex_die("id %ld: %s", v, lmu_strerror(r));
        fwrite(out, 1, w, stdout);
    }
    lmu_decoder_flush(&d, out, cap, &w);
    fwrite(out, 1, w, stdout);
    free(out);
}

int main(int argc, char **argv)
{
    opts o;
    const char *file = NULL;
    char err[512] = "", *text;
    lmu_tokenizer *tok;
    lmu_result r;
    size_t n;

    ex_prog = "tokenize";
    memset(&o, 0, sizeof o);
    o.vocab_dir = "data/gpt2";
    ex_parse(&tokenize_cli, argc, argv, &o, NULL, &file, 1);
    r = ex_tokenizer(&tok, o.bytes, o.vocab_dir, err, sizeof err);
    if (r != LMU_OK) ex_die("%s", err[0] ? err : lmu_strerror(r));
    if (file) {
        if (!(text = ex_read_file(file, &n))) ex_die("cannot open %s: %s", file, strerror(errno));
    } else
        text = ex_read_stream(stdin, "stdin", &n);
    if (o.decode) decode(tok, text, n);
    else encode(tok, text, n, o.special);
    free(text);
    lmu_tokenizer_free(tok);
    return 0;
}
