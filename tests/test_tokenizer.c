/* test_tokenizer.c - the GPT-2 / byte-level tokenizer without tiktoken:
   round trips on random bytes, BPE against a naive reference, the parallel
   encoder against the serial one, streaming decode, capacities, pathological
   words in linear-ish time, and malformed vocabulary files (each refused with
   a message). tests/test_tiktoken.sh compares ids with tiktoken itself.

   Run from the repository root (make test does): GPT-2's files come from
   tools/fetch_tokenizer.sh into data/gpt2/, fetched here when missing.
   build: make build/test_tokenizer */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/lmu_test.h"
#include <time.h>

#define ENC_PATH "data/gpt2/encoder.json"
#define BPE_PATH "data/gpt2/vocab.bpe"

static double now_s(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

static unsigned rnd_u(unsigned n) { return (unsigned)((lt_uniform() + 1.0) * 0.5 * n) % (n ? n : 1); }

/* random bytes, biased towards the interesting ones */
static void random_bytes(unsigned char *b, size_t n)
{
    static const unsigned char pool[] = {' ', ' ', ' ', '\n', '\t', '\r', 'a', 'e', 't', 'S', '\'', 's', '1',
                                         '.', 0, 0x80, 0xC3, 0xA9, 0xE2, 0x80, 0x99, 0xF0, 0x9F, 0x98,
                                         0x80, 0xFF, 0xC0, '<', '|', '>'};
    size_t i;
    for (i = 0; i < n; i++) b[i] = rnd_u(3) ? pool[rnd_u(sizeof pool)] : (unsigned char)rnd_u(256);
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static int roundtrip(const lmu_tokenizer *t, const unsigned char *s, size_t n, int special)
{
    int32_t *ids = (int32_t *)malloc((n + 1) * sizeof *ids);
    char *out = (char *)malloc(n + 1);
    size_t ni = 0, no = 0;
    int ok = lmu_encode(t, (const char *)s, n, special, ids, n + 1, &ni) == LMU_OK &&
             lmu_decode(t, ids, ni, out, n + 1, &no) == LMU_OK && no == n && memcmp(out, s, n) == 0;
    free(ids);
    free(out);
    return ok;
}

static void test_bytes_tokenizer(void)
{
    lmu_tokenizer *t;
    unsigned char buf[600];
    int32_t ids[64];
    size_t n, i, bad = 0;
    LT_CHECK(lmu_tokenizer_bytes(&t) == LMU_OK, "byte tokenizer: create");
    LT_CHECK(lmu_tokenizer_vocab_size(t) == 257 && lmu_tokenizer_eot(t) == 256, "byte tokenizer: 257 ids, eot 256");
    for (i = 0; i < 300; i++) {
        size_t len = rnd_u(600);
        random_bytes(buf, len);
        if (!roundtrip(t, buf, len, (int)(i & 1))) bad++;
    }
    LT_CHECK(bad == 0, "byte tokenizer: 300 random byte strings round-trip (%lu bad)", (unsigned long)bad);
    lmu_encode(t, "a<|endoftext|>b", 15, 1, ids, 64, &n);
    LT_CHECK(n == 3 && ids[0] == 'a' && ids[1] == 256 && ids[2] == 'b', "byte tokenizer: special allowed -> a, 256, b");
    lmu_encode(t, "a<|endoftext|>b", 15, 0, ids, 64, &n);
    LT_CHECK(n == 15 && ids[1] == '<', "byte tokenizer: special not allowed -> 15 byte ids");
    lmu_tokenizer_free(t);
}

/* Naive reference BPE with tiktoken's rule, by concatenation lookups only
   (independent of the merge table): merge the leftmost adjacent pair whose
   concatenation is the lowest-ranked token. Ranks are GPT-2's ids. */
static size_t ref_bpe(const lmu_tokenizer *t, const unsigned char *p, size_t m, int32_t *out)
{
    size_t *start = (size_t *)malloc((m + 1) * sizeof *start), np = m, i, k;
    for (i = 0; i <= m; i++) start[i] = i;
    for (;;) {
        int32_t best = INT32_MAX;
        size_t bi = 0;
        for (i = 0; i + 1 < np; i++) {
            int32_t id = lmu__whole_get(t, p + start[i], start[i + 2] - start[i]);
            if (id >= 0 && id < best) { best = id; bi = i; }
        }
        if (best == INT32_MAX) break;
        for (i = bi + 1; i < np; i++) start[i] = start[i + 1];
        np--;
    }
    for (k = 0; k < np; k++) out[k] = lmu__whole_get(t, p + start[k], start[k + 1] - start[k]);
    free(start);
    return np;
}

static void test_bpe_reference(const lmu_tokenizer *t)
{
    static const char *alpha[] = {"abcdefghijklmnopqrstuvwxyz", "etaoinshr", "ab", "aeiou", "0123456789"};
    unsigned char w[400];
    int32_t got[400], want[400];
    size_t i, bad = 0, nbig = 0;
    for (i = 0; i < 600; i++) {
        const char *a = alpha[i % 5];
        size_t m = 2 + rnd_u(i < 300 ? 40 : 380), k, ng, nw;
        lmu__sink o;
        lmu__bpe_scratch sc = {NULL, 0, NULL};
        for (k = 0; k < m; k++) w[k] = (unsigned char)a[rnd_u((unsigned)strlen(a))];
        if (i % 7 == 0) w[0] = ' ';
        o.ids = got; o.cap = 400; o.n = 0;
        if (m > LMU__BPE_SMALL) { nbig++; lmu__bpe_large(t, w, m, &o, &sc); }
        else lmu__bpe_small(t, w, m, &o);
        free(sc.mem);
        ng = o.n;
        nw = ref_bpe(t, w, m, want);
        if (!ids_equal(got, ng, want, nw)) {
            if (bad++ < 3) printf("    BPE differs on \"%.*s\"\n", (int)m, w);
        }
        /* and the large path on a short word too */
        o.n = 0;
        sc.mem = NULL; sc.cap = 0; sc.cache = NULL;
        lmu__bpe_large(t, w, m, &o, &sc);
        free(sc.mem);
        if (!ids_equal(got, ng, o.ids, o.n)) bad++;
    }
    LT_CHECK(bad == 0, "BPE: small and heap merges equal a naive reference on 600 words (%lu long; %lu bad)",
             (unsigned long)nbig, (unsigned long)bad);
}

static void test_known_ids(const lmu_tokenizer *t)
{
    static const int32_t plain[] = {27, 91, 437, 1659, 5239, 91, 29};
    static const int32_t contr[] = {836, 470, 44934, 6, 50, 220, 220, 628, 220, 2124};
    static const int32_t uni[] = {66, 1878, 2634, 30325, 222, 17031};
    const char *s = " don't STOP'S  \n\n  x";
    int32_t ids[64];
    size_t n = 0;
    lmu_encode(t, "Hello world", 11, 0, ids, 64, &n);
    LT_CHECK(n == 2 && ids[0] == 15496 && ids[1] == 995, "\"Hello world\" -> 15496 995");
    lmu_encode(t, "<|endoftext|>", 13, 1, ids, 64, &n);
    LT_CHECK(n == 1 && ids[0] == 50256, "<|endoftext|> allowed -> 50256");
    lmu_encode(t, "<|endoftext|>", 13, 0, ids, 64, &n);
    LT_CHECK(ids_equal(ids, n, plain, 7), "<|endoftext|> as plain text -> tiktoken's 7 ids");
    lmu_encode(t, s, strlen(s), 0, ids, 64, &n);
    LT_CHECK(ids_equal(ids, n, contr, 10), "contractions, 'S and white-space runs");
    lmu_encode(t, "caf\xC3\xA9 \xF0\x9F\x98\x80 123", 14, 0, ids, 64, &n);
    LT_CHECK(ids_equal(ids, n, uni, 6), "\"caf\\u00e9 \\U0001F600 123\"");
    LT_CHECK(lmu_tokenizer_vocab_size(t) == 50257 && lmu_tokenizer_eot(t) == 50256 &&
             lmu_tokenizer_max_token_bytes(t) == 128, "vocab 50257, eot 50256, longest token 128 bytes");
}

static void test_roundtrip_random(const lmu_tokenizer *t)
{
    unsigned char buf[2048];
    size_t i, bad = 0;
    for (i = 0; i < 2000; i++) {
        size_t len = rnd_u(i < 1000 ? 64 : 2048);
        random_bytes(buf, len);
        if (!roundtrip(t, buf, len, (int)(i % 3 == 0))) {
            if (bad++ < 3) printf("    round trip fails on a %lu-byte string\n", (unsigned long)len);
        }
    }
    LT_CHECK(bad == 0, "decode(encode(x)) == x on 2000 random byte strings (%lu bad)", (unsigned long)bad);
    {
        unsigned char all[256];
        for (i = 0; i < 256; i++) all[i] = (unsigned char)i;
        LT_CHECK(roundtrip(t, all, 256, 0), "all 256 byte values in one string round-trip");
    }
}

static void test_capacity_and_decode(const lmu_tokenizer *t)
{
    const char *s = "The quick brown fox jumps over the lazy dog.";
    int32_t ids[64], few[3];
    size_t n = 0, n2 = 0, nd = 0;
    char out[128];
    lmu_result r;
    lmu_encode(t, s, strlen(s), 0, ids, 64, &n);
    r = lmu_encode(t, s, strlen(s), 0, NULL, 0, &n2);
    LT_CHECK(r == LMU_ERR_CAPACITY && n2 == n && n == 10, "size query: LMU_ERR_CAPACITY with the count (%lu)", (unsigned long)n2);
    r = lmu_encode(t, s, strlen(s), 0, few, 3, &n2);
    LT_CHECK(r == LMU_ERR_CAPACITY && n2 == n && few[0] == ids[0] && few[2] == ids[2], "small cap: first ids written");
    r = lmu_decode(t, ids, n, out, 10, &nd);
    LT_CHECK(r == LMU_ERR_CAPACITY && nd == strlen(s) && memcmp(out, s, 10) == 0, "decode small cap: LMU_ERR_CAPACITY, needed size");
    ids[3] = 50257;
    r = lmu_decode(t, ids, n, out, sizeof out, &nd);
    LT_CHECK(r == LMU_ERR_RANGE, "decode id 50257 -> LMU_ERR_RANGE");
    ids[3] = -1;
    LT_CHECK(lmu_decode(t, ids, n, out, sizeof out, &nd) == LMU_ERR_RANGE, "decode id -1 -> LMU_ERR_RANGE");
    LT_CHECK(lmu_encode(t, "", 0, 1, NULL, 0, &n) == LMU_OK && n == 0, "empty text -> no ids");
    LT_CHECK(lmu_encode(NULL, s, 1, 0, ids, 64, &n) == LMU_ERR_ARG, "NULL tokenizer -> LMU_ERR_ARG");
}

/* Streaming decode: pieces end on character boundaries for valid text, and
   all pieces together are the text. */
static void test_stream(const lmu_tokenizer *t)
{
    const char *s = "h\xC3\xA9llo \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 "
                    "\xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D\xE0\xA4\xA6\xE0\xA5\x80 \xFF\x80 end";
    int32_t ids[128];
    size_t n = 0, i, w, total = 0, bad_pieces = 0;
    char out[256], piece[160];
    lmu_decoder d;
    lmu_encode(t, s, strlen(s), 0, ids, 128, &n);
    lmu_decoder_init(&d);
    for (i = 0; i < n; i++) {
        lmu_result r = lmu_decoder_push(&d, t, ids[i], piece, sizeof piece, &w);
        size_t k = 0;
        if (r != LMU_OK) bad_pieces++;
        /* every emitted piece of valid text is whole characters */
        while (k < w) {
            uint32_t cp;
            size_t l = lmu__utf8_len((unsigned char *)piece + k, w - k, &cp);
            if (!l) {
                if ((unsigned char)piece[k] != 0xFF && (unsigned char)piece[k] != 0x80) bad_pieces++;
                l = 1;
            }
            k += l;
        }
        memcpy(out + total, piece, w);
        total += w;
    }
    lmu_decoder_flush(&d, out + total, 8, &w);
    total += w;
    LT_CHECK(bad_pieces == 0 && total == strlen(s) && memcmp(out, s, total) == 0,
             "streaming decode of %lu ids: whole characters, same bytes", (unsigned long)n);
    /* a character cut across tokens is held, then completed */
    {
        int32_t e2 = t->byte_id[0xE2], x80 = t->byte_id[0x80], x99 = t->byte_id[0x99];
        size_t w1, w2, w3;
        lmu_decoder_init(&d);
        lmu_decoder_push(&d, t, e2, piece, sizeof piece, &w1);
        lmu_decoder_push(&d, t, x80, piece, sizeof piece, &w2);
        lmu_decoder_push(&d, t, x99, piece, sizeof piece, &w3);
        LT_CHECK(w1 == 0 && w2 == 0 && w3 == 3 && memcmp(piece, "\xE2\x80\x99", 3) == 0, "E2 80 99 in three tokens -> held, held, U+2019");
        lmu_decoder_push(&d, t, e2, piece, sizeof piece, &w1);
        LT_CHECK(lmu_decoder_push(&d, t, ids[0], piece, 1, &w2) == LMU_ERR_CAPACITY && d.n_pending == 1,
                 "decoder: LMU_ERR_CAPACITY leaves the state alone");
        lmu_decoder_push(&d, t, t->byte_id['a'], piece, sizeof piece, &w2);
        LT_CHECK(w2 == 2 && (unsigned char)piece[0] == 0xE2 && piece[1] == 'a', "decoder: a broken sequence is passed through");
    }
}

/* Text for the parallel test: words, numbers, every kind of white space,
   specials, invalid bytes. */
static size_t make_corpus(unsigned char *b, size_t cap)
{
    static const char *frag[] = {"the", " quick", " brown", " fox", "'s", " 123", "  ", "\n", "\n\n", "\t",
                                 " \n", "\r\n", ".", ",", " don't", " IT'S", "<|endoftext|>", " caf\xC3\xA9",
                                 " \xE4\xB8\xAD\xE6\x96\x87", "\xC2\xA0", "\xE3\x80\x80", "\xFF", "\x80",
                                 " \xF0\x9F\x98\x80", "    ", "()", " x", "y", "\v", "\f"};
    size_t n = 0;
    while (n + 32 < cap) {
        const char *f = frag[rnd_u(sizeof frag / sizeof *frag)];
        size_t l = strlen(f);
        memcpy(b + n, f, l);
        n += l;
    }
    return n;
}

static void test_parallel(const lmu_tokenizer *t)
{
    size_t cap = (size_t)6 << 20, n, na = 0, nb = 0;
    unsigned char *b = (unsigned char *)malloc(cap);
    int32_t *a = (int32_t *)malloc(cap * sizeof *a), *p = (int32_t *)malloc(cap * sizeof *p), *small;
    int special, bad = 0;
    n = make_corpus(b, cap);
    for (special = 0; special < 2; special++) {
        lmu_encode(t, (const char *)b, n, special, a, n, &na);
        lmu_encode_parallel(t, (const char *)b, n, special, p, n, &nb);
        LT_CHECK(ids_equal(a, na, p, nb), "parallel encode == serial encode on %lu bytes, special %d (%lu ids, %d threads)",
                 (unsigned long)n, special, (unsigned long)na, lmu__thread_count());
    }
    /* the copy path (cap < len) and its capacity error */
    small = (int32_t *)malloc(na * sizeof *small);
    LT_CHECK(lmu_encode_parallel(t, (const char *)b, n, 1, small, na, &nb) == LMU_OK && ids_equal(a, na, small, nb),
             "parallel encode with cap == count (scratch path)");
    LT_CHECK(lmu_encode_parallel(t, (const char *)b, n, 1, small, na - 1, &nb) == LMU_ERR_CAPACITY && nb == na,
             "parallel encode: LMU_ERR_CAPACITY with the count");
    /* many threads encoding at once on the shared tokenizer */
    {
        long k;
        LMU__OMP(omp parallel for schedule(static) reduction(+ : bad))
        for (k = 0; k < 64; k++) {
            size_t off = (size_t)k * (n / 64), len = n / 64, m = 0;
            int32_t *mine = (int32_t *)malloc(len * sizeof *mine);
            lmu_encode(t, (const char *)b + off, len, 1, mine, len, &m);
            if (!roundtrip(t, b + off, len, 1)) bad++;
            free(mine);
        }
    }
    LT_CHECK(bad == 0, "64 concurrent encodes on one tokenizer round-trip");
    free(small);
    free(b);
    free(a);
    free(p);
}

static void test_pathological(const lmu_tokenizer *t)
{
    size_t n = 100000, i, m = 0;
    unsigned char *w = (unsigned char *)malloc(n);
    int32_t *ids = (int32_t *)malloc(n * sizeof *ids);
    static const char *kinds[] = {"a", "ab", "random letters", "digits", "punctuation"};
    int k;
    for (k = 0; k < 5; k++) {
        double t0, dt;
        for (i = 0; i < n; i++) {
            switch (k) {
            case 0: w[i] = 'a'; break;
            case 1: w[i] = (unsigned char)("ab"[i & 1]); break;
            case 2: w[i] = (unsigned char)('a' + rnd_u(26)); break;
            case 3: w[i] = (unsigned char)('0' + rnd_u(10)); break;
            default: w[i] = (unsigned char)("!?.,;:-"[rnd_u(7)]); break;
            }
        }
        t0 = now_s();
        lmu_encode(t, (const char *)w, n, 0, ids, n, &m);
        dt = now_s() - t0;
        LT_CHECK(dt < 2.0 && roundtrip(t, w, n, 0), "one 100 KB word (%s): %lu ids in %.1f ms", kinds[k], (unsigned long)m, dt * 1e3);
    }
    free(w);
    free(ids);
}

/* ---- malformed files ---- */

/* A small valid vocabulary: the 256 byte tokens in GPT-2's order and
   alphabet (non-ASCII written as \u escapes), merges "a b", "ab c",
   "Ġ ab", the end-of-text token. */
static char small_json[16384], small_bpe[256];

static void make_small(void)
{
    int b, id = 0, moved = 0;
    char *o = small_json;
    o += sprintf(o, "{");
    /* GPT-2's order: the printable bytes first, then the 68 moved ones */
    for (b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (!printable) continue;
        if (b == '"' || b == '\\') o += sprintf(o, "\"\\%c\": %d, ", b, id++);
        else if (b < 128) o += sprintf(o, "\"%c\": %d, ", b, id++);
        else o += sprintf(o, "\"\\u%04x\": %d, ", b, id++);
    }
    for (b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (printable) continue;
        o += sprintf(o, "\"\\u%04X\": %d, ", 256 + moved++, id++);
    }
    o += sprintf(o, "\"ab\": 256,\n \"abc\": 257,\n \"\\u0120ab\": 258,\n \"<|endoftext|>\": 259}\n");
    /* vocab.bpe is not JSON: the last merge names "Ġ" (U+0120) in UTF-8 */
    sprintf(small_bpe, "#version: 0.2\na b\nab c\n\xC4\xA0 ab\n");
}

/* Replaces the first occurrence of `from` in src with `to`, into dst. */
static const char *edit(char *dst, const char *src, const char *from, const char *to)
{
    const char *p = strstr(src, from);
    if (!p) { strcpy(dst, src); return dst; }
    memcpy(dst, src, (size_t)(p - src));
    strcpy(dst + (p - src), to);
    strcat(dst, p + strlen(from));
    return dst;
}

static void expect_refused(const char *js, size_t jn, const char *bpe, size_t bn, const char *want, const char *what)
{
    lmu_tokenizer *t = NULL;
    char err[256];
    lmu_result r = lmu_tokenizer_load_memory(&t, js, jn, bpe, bn, err, sizeof err);
    LT_CHECK(r == LMU_ERR_FORMAT && t == NULL && strstr(err, want) != NULL, "refuses %s: \"%s\"", what, err);
    lmu_tokenizer_free(t);
}

/* small_json / small_bpe with one edit, refused with a message holding `want` */
static void refuse_json(const char *from, const char *to, const char *want, const char *what)
{
    static char js[20000];
    edit(js, small_json, from, to);
    expect_refused(js, strlen(js), small_bpe, strlen(small_bpe), want, what);
}

static void refuse_bpe(const char *from, const char *to, const char *want, const char *what)
{
    static char bp[512];
    edit(bp, small_bpe, from, to);
    expect_refused(small_json, strlen(small_json), bp, strlen(bp), want, what);
}

static void test_malformed(void)
{
    static char js[20000], bp[512];
    lmu_tokenizer *t = NULL;
    char err[256];
    int32_t ids[16];
    size_t n = 0, jn, bn;
    make_small();
    jn = strlen(small_json);
    bn = strlen(small_bpe);
    LT_CHECK(lmu_tokenizer_load_memory(&t, small_json, jn, small_bpe, bn, err, sizeof err) == LMU_OK,
             "small vocabulary loads (%s)", err);
    if (t) {
        lmu_encode(t, " abc ab<|endoftext|>", 20, 1, ids, 16, &n);
        LT_CHECK(n == 4 && ids[0] == t->byte_id[' '] && ids[1] == 257 && ids[2] == 258 && ids[3] == 259,
                 "small vocabulary: \" abc ab<|endoftext|>\" -> \u0120, abc, \u0120ab, eot (%lu ids)", (unsigned long)n);
        lmu_tokenizer_free(t);
    }
    expect_refused(small_json, jn / 2, small_bpe, bn, "line", "truncated encoder.json");
    expect_refused(small_json, jn - 3, small_bpe, bn, "truncated", "encoder.json cut before '}'");
    refuse_json("\"\\u00a1\"", "\"\\q\"", "invalid escape", "escape \\q");
    refuse_json("\"\\u00a1\"", "\"\\u00G1\"", "4 hex", "\\u with a non-hex digit");
    refuse_json("\"\\u00a1\"", "\"\\ud800\"", "surrogate", "lone high surrogate");
    refuse_json("\"\\u00a1\"", "\"\\udc00x\"", "surrogate", "lone low surrogate");
    refuse_json("\"\\u00a1\"", "\"\\ud83d\\ude00\"", "alphabet", "a valid surrogate pair outside the byte alphabet");
    refuse_json("\"\\u00a1\"", "\"\\u0000\"", "u0000", "\\u0000");
    refuse_json("\"\\u00a1\"", "\"\xC3\"", "UTF-8", "invalid UTF-8 in a key");
    refuse_json("\"\\u00a1\"", "\"\x01\"", "control", "a raw control character");
    refuse_json("\"ab\": 256", "\"abc\": 256", "duplicate key", "a duplicate key");
    refuse_json("\"ab\": 256", "\"ab\": 257", "twice", "a duplicate id");
    refuse_json("\"ab\": 256", "\"ab\": 9999", "out of range", "an id out of range");
    refuse_json("\"ab\": 256", "\"ab\": -1", "non-negative", "a negative id");
    refuse_json("\"ab\": 256", "\"ab\": 256.5", "integer", "a fractional id");
    refuse_json("\"ab\": 256", "\"ab\": 99999999999", "too large", "a huge id");
    refuse_json("\"ab\": 256,", "\"ab\" 256,", "':'", "a missing colon");
    refuse_json("\"ab\": 256,", "\"ab\": 256", "','", "a missing comma");
    refuse_json("\"ab\": 256,", "\"\": 256,", "empty token", "an empty key");
    refuse_json("\"ab\": 256,", "\"a\\u4e00\": 256,", "alphabet", "a key outside the byte alphabet");
    refuse_json("\"!\": 0, ", "", "out of range", "a missing byte token (ids then have a gap)");
    refuse_json("\"!\": 0, ", "\"!!\": 0, ", "byte 0x21 has no token", "a byte without a token");
    strcpy(js, small_json); strcat(js, "x");
    expect_refused(js, strlen(js), small_bpe, bn, "after the object", "trailing data");
    expect_refused("{}", 2, small_bpe, bn, "empty", "an empty object");
    expect_refused("", 0, small_bpe, bn, "'{'", "an empty file");
    expect_refused("[1, 2]", 6, small_bpe, bn, "'{'", "a JSON array");
    /* vocab.bpe */
    refuse_bpe("ab c\n", "ab zz\n", "unknown token", "a merge naming an unknown token");
    refuse_bpe("ab c\n", "ab c d\n", "two tokens", "a merge line with three fields");
    refuse_bpe("ab c\n", "abc\n", "two tokens", "a merge line with one field");
    refuse_bpe("ab c\n", "ab c\nb c\n", "not in encoder.json", "a merge whose result is no token");
    refuse_bpe("ab c\n", "ab c\na b\n", "duplicate merge", "a duplicate merge");
    refuse_bpe("a b\nab c\n", "ab c\na b\n", "earlier merge", "a merge using a later merge's token");
    refuse_bpe("ab c\n", "<|endoftext|> c\n", "earlier merge", "a merge naming the special token");
    expect_refused(small_json, jn, small_bpe, bn - 6, "no merge makes", "a truncated vocab.bpe");
    /* the real files, truncated at many places */
    {
        FILE *f = fopen(ENC_PATH, "rb"), *g = fopen(BPE_PATH, "rb");
        char *rj = NULL, *rb = NULL;
        long sj = 0, sb = 0;
        int k, bad = 0;
        if (f && g) {
            fseek(f, 0, SEEK_END); sj = ftell(f); fseek(f, 0, SEEK_SET);
            fseek(g, 0, SEEK_END); sb = ftell(g); fseek(g, 0, SEEK_SET);
            rj = (char *)malloc((size_t)sj); rb = (char *)malloc((size_t)sb);
            if (fread(rj, 1, (size_t)sj, f) != (size_t)sj || fread(rb, 1, (size_t)sb, g) != (size_t)sb) bad = 1000;
            for (k = 0; k < 12; k++) {
                size_t cj = (size_t)(k == 0 ? sj - 1 : rnd_u((unsigned)sj)), cb = (size_t)(k == 0 ? sb - 30 : rnd_u((unsigned)sb));
                lmu_tokenizer *tt = NULL;
                if (lmu_tokenizer_load_memory(&tt, rj, cj, rb, (size_t)sb, err, sizeof err) != LMU_ERR_FORMAT || !strstr(err, "encoder.json")) bad++;
                lmu_tokenizer_free(tt);
                tt = NULL;
                if (lmu_tokenizer_load_memory(&tt, rj, (size_t)sj, rb, cb, err, sizeof err) != LMU_ERR_FORMAT || !strstr(err, "vocab.bpe")) bad++;
                lmu_tokenizer_free(tt);
            }
        } else bad = 1000;
        LT_CHECK(bad == 0, "GPT-2's real files cut at 12 places each are refused (%d not)", bad);
        if (f) fclose(f);
        if (g) fclose(g);
        free(rj);
        free(rb);
    }
    /* random damage: never a crash, always a clean result */
    {
        int k, odd = 0;
        for (k = 0; k < 3000; k++) {
            lmu_tokenizer *tt = NULL;
            lmu_result r;
            int e, nedit = 1 + (int)rnd_u(4);
            memcpy(js, small_json, jn);
            memcpy(bp, small_bpe, bn);
            for (e = 0; e < nedit; e++) {
                if (k & 1) bp[rnd_u((unsigned)bn)] = (char)rnd_u(256);
                else js[rnd_u((unsigned)jn)] = (char)"\"\\u{}:,0 9aG\xC3\x80"[rnd_u(15)];
            }
            r = lmu_tokenizer_load_memory(&tt, js, jn - (k % 5 == 0 ? rnd_u((unsigned)jn) : 0), bp, bn, err, sizeof err);
            if (!(r == LMU_OK || (r == LMU_ERR_FORMAT && err[0]))) odd++;
            if (tt) {
                unsigned char txt[64];
                random_bytes(txt, 64);
                if (!roundtrip(tt, txt, 64, 1)) odd++;
            }
            lmu_tokenizer_free(tt);
        }
        LT_CHECK(odd == 0, "3000 randomly damaged vocabularies: loaded (and round-trip) or refused with a message (%d odd)", odd);
    }
#ifndef LMU_NO_STDIO
    LT_CHECK(lmu_tokenizer_load_files(&t, "data/gpt2/no-such-file.json", BPE_PATH, err, sizeof err) == LMU_ERR_IO &&
             strstr(err, "no-such-file") != NULL, "missing file -> LMU_ERR_IO naming the path");
#endif
}

int main(int argc, char **argv)
{
    lmu_tokenizer *t = NULL;
    char err[256];
    FILE *f;
    lmu_result r;
    lt_begin("tokenizer", argc, argv);
    lt_seed(20240611);
    test_bytes_tokenizer();
    /* GPT-2's files first: test_malformed cuts them too */
    if (!(f = fopen(ENC_PATH, "rb")) && system("tools/fetch_tokenizer.sh") != 0) printf("    tools/fetch_tokenizer.sh failed\n");
    if (f) fclose(f);
    test_malformed();
    r = lmu_tokenizer_load_files(&t, ENC_PATH, BPE_PATH, err, sizeof err);
    LT_CHECK(r == LMU_OK, "load GPT-2's encoder.json + vocab.bpe (%s)", err);
    if (r == LMU_OK) {
        test_known_ids(t);
        test_bpe_reference(t);
        test_roundtrip_random(t);
        test_capacity_and_decode(t);
        test_stream(t);
        test_parallel(t);
        test_pathological(t);
    }
    lmu_tokenizer_free(t);
    return lt_end();
}
