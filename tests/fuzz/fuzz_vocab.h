/* fuzz_vocab.h - a small, valid GPT-2-style vocabulary built in memory, for
   the fuzz targets, their seed corpora and tests/test_strict.sh.

   encoder.json holds the 256 byte tokens in GPT-2's byte alphabet (printable
   bytes stand for themselves, the other 68 are moved to U+0100...), written
   half as raw UTF-8 and half as \u escapes so both paths of the JSON parser
   are seeded; then FV_NMERGES merge results; then <|endoftext|>. vocab.bpe
   lists the merges in rank order. Plain C99, no library calls but snprintf,
   so it builds under the strict flags too. */
#ifndef LMU_FUZZ_VOCAB_H
#define LMU_FUZZ_VOCAB_H

#include <stdio.h>
#include <string.h>

#define FV_JSON_CAP 8192
#define FV_BPE_CAP 1024

/* left + right -> their concatenation, in rank order (bytes, not GPT-2 chars) */
static const char *const fv_merges[][2] = {
    {"a", "b"},  {"b", "a"},    {" ", "a"},     {"ab", "c"}, {" a", "b"},
    {"e", "r"},  {" ", "t"},    {" t", "h"},    {" th", "e"}, {"\n", "\n"},
    {"\xc3", "\xa9"}, {"er", "er"}, {"0", "0"}, {"00", "00"},
};
#define FV_NMERGES ((int)(sizeof fv_merges / sizeof fv_merges[0]))

static int fv_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

/* GPT-2's character for byte b. */
static unsigned fv_char(int b)
{
    int k = 0, i;
    if (fv_printable(b)) return (unsigned)b;
    for (i = 0; i < b; i++)
        if (!fv_printable(i)) k++;
    return 256u + (unsigned)k;
}

/* Appends cp as UTF-8 (cp < 0x800 here). */
static size_t fv_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    o[0] = (char)(0xC0u | (cp >> 6));
    o[1] = (char)(0x80u | (cp & 0x3Fu));
    return 2;
}

/* A JSON string body for the bytes s[0..n): raw UTF-8, or \u escapes. */
static size_t fv_json_str(char *o, const char *s, size_t n, int escape)
{
    size_t k = 0, i;
    for (i = 0; i < n; i++) {
        unsigned cp = fv_char((unsigned char)s[i]);
        if (cp == '"' || cp == '\\') {
            o[k++] = '\\';
            o[k++] = (char)cp;
        } else if (cp >= 0x80 && escape) {
            k += (size_t)snprintf(o + k, 8, "\\u%04x", cp);
        } else {
            k += fv_utf8(o + k, cp);
        }
    }
    return k;
}

static size_t fv_bpe_str(char *o, const char *s)
{
    size_t k = 0;
    for (; *s; s++) k += fv_utf8(o + k, fv_char((unsigned char)*s));
    return k;
}

/* Fills js (FV_JSON_CAP) and bpe (FV_BPE_CAP); returns the vocab size. */
static int fv_make(char *js, size_t *jn, char *bpe, size_t *bn)
{
    size_t k = 0, m = 0;
    int b, pass, id = 0, i;
    js[k++] = '{';
    for (pass = 0; pass < 2; pass++) /* GPT-2's order: printable bytes first */
        for (b = 0; b < 256; b++) {
            char c = (char)b;
            if (fv_printable(b) != (pass == 0)) continue;
            k += (size_t)snprintf(js + k, 4, "%s\"", id ? ", " : "");
            k += fv_json_str(js + k, &c, 1, b & 1);
            k += (size_t)snprintf(js + k, 16, "\": %d", id++);
        }
    m += (size_t)snprintf(bpe, 32, "#version: 0.2\n");
    for (i = 0; i < FV_NMERGES; i++) {
        char both[16];
        size_t nb = (size_t)snprintf(both, sizeof both, "%s%s", fv_merges[i][0], fv_merges[i][1]);
        k += (size_t)snprintf(js + k, 8, ",\n \"");
        k += fv_json_str(js + k, both, nb, i & 1);
        k += (size_t)snprintf(js + k, 16, "\": %d", id++);
        m += fv_bpe_str(bpe + m, fv_merges[i][0]);
        bpe[m++] = ' ';
        m += fv_bpe_str(bpe + m, fv_merges[i][1]);
        bpe[m++] = '\n';
    }
    k += (size_t)snprintf(js + k, 40, ",\n \"<|endoftext|>\": %d}\n", id++);
    *jn = k;
    *bn = m;
    return id;
}

#endif
