/* >>decl-begin tokenizer */
#ifndef LMU_PART_TOKENIZER_H
#define LMU_PART_TOKENIZER_H
#ifdef __cplusplus
extern "C" {
#endif

/* ====================================================================== */
/* >>tokenizer                                                             */
/* ====================================================================== */
/* GPT-2's byte-level BPE, id for id what OpenAI's tiktoken gives for its
   "gpt2" encoding, loaded from GPT-2's own encoder.json + vocab.bpe; and a
   byte-level fallback (ids 0..255 are the bytes, 256 is <|endoftext|>) that
   needs no files at all.

   Encoding, step by step:
   1. With allow_special, the text is first cut at each "<|endoftext|>"; each
      occurrence becomes the end-of-text id and the pieces between are
      encoded on their own. Without it the string is plain text.
   2. Pre-tokenisation splits text like GPT-2's pattern
        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
      (leftmost-first alternation), with \p{L}, \p{N} from Unicode's general
      categories and \s = the White_Space property. The tables are generated
      from Debian's unicode-data (LMU_TOKENIZER_UNICODE_VERSION). The matcher
      is hand-written: no regex library.
   3. Each piece that is itself a token is that token; any other piece is
      merged from single bytes, always merging the adjacent pair whose
      concatenation has the lowest merge rank (the leftmost on ties), until
      no adjacent pair concatenates to a token. That is tiktoken's rule.
   Any byte string encodes, invalid UTF-8 and NUL bytes included:
   an invalid byte is a character of its own that is neither letter, number
   nor space (like punctuation), and decode(encode(x)) == x always.

   THREADING: a loaded tokenizer is read-only. lmu_encode, lmu_decode and
   the decoder may run on one tokenizer from many threads at once; each call
   allocates its own scratch. lmu_encode_parallel spreads one text over the
   OpenMP threads and returns the same ids as lmu_encode. */

typedef struct lmu_tokenizer lmu_tokenizer; /* opaque */

/* Loads GPT-2's vocabulary from memory: `encoder_json` (the token -> id JSON
   object) and `vocab_bpe` (the merges, "#version" line optional, one "A B"
   pair per line, in rank order).
       [out] out          the tokenizer, to free with lmu_tokenizer_free;
                          NULL on failure
       [in]  encoder_json, json_len; vocab_bpe, bpe_len  the two files' bytes
                          (not NUL-terminated; not kept after the call)
       [out, optional] err, errcap  on failure, a message naming the file and
                          the line / byte offset of the problem
   Checks everything (JSON syntax and escapes, UTF-8, token characters in
   GPT-2's byte alphabet, unique keys, ids exactly 0..n-1, every byte has a
   token, every merge names tokens made by earlier merges and makes a token of
   encoder.json exactly once, every token but <|endoftext|> is a byte or a
   merge result); untrusted input never crashes or overreads.
   Returns LMU_OK, LMU_ERR_FORMAT (bad data), LMU_ERR_NOMEM, LMU_ERR_ARG.
   See also lmu_tokenizer_load_files, lmu_tokenizer_bytes. */
LMUDEF lmu_result lmu_tokenizer_load_memory(lmu_tokenizer **out, const char *encoder_json,
                                            size_t json_len, const char *vocab_bpe,
                                            size_t bpe_len, char *err, size_t errcap);

#ifndef LMU_NO_STDIO
/* Reads the two files and calls lmu_tokenizer_load_memory. Also returns
   LMU_ERR_IO (the message names the path). Compiled out by LMU_NO_STDIO. */
LMUDEF lmu_result lmu_tokenizer_load_files(lmu_tokenizer **out, const char *encoder_json_path,
                                           const char *vocab_bpe_path, char *err,
                                           size_t errcap);
#endif

/* The fallback: 257 ids, id b < 256 is the byte b, id 256 <|endoftext|>.
       [out] out  the tokenizer (free with lmu_tokenizer_free)
   Returns LMU_OK or LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_tokenizer_bytes(lmu_tokenizer **out);

/* Frees a tokenizer; NULL is fine. */
LMUDEF void lmu_tokenizer_free(lmu_tokenizer *tok);

/* Number of ids (50257 for GPT-2, 257 for the byte tokenizer). */
LMUDEF int32_t lmu_tokenizer_vocab_size(const lmu_tokenizer *tok);
/* Id of <|endoftext|>, or -1 when the vocabulary has none. */
LMUDEF int32_t lmu_tokenizer_eot(const lmu_tokenizer *tok);
/* Length of the longest token in bytes (sizes the decoder's output). */
LMUDEF size_t lmu_tokenizer_max_token_bytes(const lmu_tokenizer *tok);
/* The bytes of token `id` (not NUL-terminated) and their count in *len;
   NULL for an id out of range. The special token reads "<|endoftext|>". */
LMUDEF const char *lmu_tokenizer_token(const lmu_tokenizer *tok, int32_t id, size_t *len);

/* Encodes text[0..len) (any bytes) into ids.
       [in]  tok, text, len
       [in]  allow_special  nonzero: "<|endoftext|>" in the text becomes the
                            end-of-text id; zero: it is plain text
       [out, optional] ids, cap  room for cap ids. len ids always suffice
                            (a token is at least one byte).
       [out] n_out          the number of ids of the whole text
   Returns LMU_OK; LMU_ERR_CAPACITY when cap < *n_out (ids then holds the
   first cap ids: call with ids NULL, cap 0 to size); LMU_ERR_NOMEM; LMU_ERR_ARG.
   Thread-safe on a shared tokenizer. See also lmu_encode_parallel. */
LMUDEF lmu_result lmu_encode(const lmu_tokenizer *tok, const char *text, size_t len,
                             int allow_special, int32_t *ids, size_t cap, size_t *n_out);

/* lmu_encode for big texts, over the OpenMP threads: the text is cut into
   chunks only where pre-tokenisation provably restarts (an ASCII space,
   tab or newline right after an ASCII non-space byte), the chunks are
   encoded in parallel and joined in order, so the ids are exactly
   lmu_encode's. Same arguments and results; with cap >= len it encodes in
   place in ids, otherwise it allocates 4*len bytes of scratch. Runs serially
   without -fopenmp or for small texts. */
LMUDEF lmu_result lmu_encode_parallel(const lmu_tokenizer *tok, const char *text, size_t len,
                                      int allow_special, int32_t *ids, size_t cap,
                                      size_t *n_out);

/* Decodes ids into bytes (the concatenation of the tokens' bytes; it may be
   invalid UTF-8, e.g. when a multi-byte character is cut between ids).
       [out, optional] out, cap  room for cap bytes; n * max_token_bytes
                                 always suffices
       [out] n_out               the number of bytes of the whole output
   Returns LMU_OK; LMU_ERR_RANGE for an id outside 0..vocab_size-1 (nothing
   useful in out); LMU_ERR_CAPACITY when cap < *n_out (out holds the first
   cap bytes). */
LMUDEF lmu_result lmu_decode(const lmu_tokenizer *tok, const int32_t *ids, size_t n, char *out,
                             size_t cap, size_t *n_out);

/* Streaming decode for generation: push ids as they come, get back the bytes
   that end in complete UTF-8 characters; a character cut between tokens is
   held (at most 3 bytes) until the token that completes it arrives. Bytes
   that cannot become valid UTF-8 are passed through at once, so the
   concatenated output of all pushes plus the final flush equals lmu_decode.
   A caller-owned value: `lmu_decoder d; lmu_decoder_init(&d);`. */
typedef struct lmu_decoder {
    unsigned char pending[4]; /* incomplete UTF-8 tail carried between tokens */
    unsigned n_pending;
} lmu_decoder;

LMUDEF void lmu_decoder_init(lmu_decoder *d);
/* Decodes one id.
       [in, out] d
       [in]  tok, id
       [out] out, cap  room for the output; max_token_bytes + 3 suffices
       [out] n_out     bytes written (may be 0)
   Returns LMU_OK; LMU_ERR_RANGE (bad id) or LMU_ERR_CAPACITY (cap too small;
   *n_out is the room needed), both leaving d unchanged. */
LMUDEF lmu_result lmu_decoder_push(lmu_decoder *d, const lmu_tokenizer *tok, int32_t id,
                                   char *out, size_t cap, size_t *n_out);
/* Emits the held-back bytes (an incomplete character at the end) and resets
   d. cap >= 3 suffices. Returns LMU_OK or LMU_ERR_CAPACITY. */
LMUDEF lmu_result lmu_decoder_flush(lmu_decoder *d, char *out, size_t cap, size_t *n_out);

/* The Unicode version of the character tables, e.g. "15.0.0". */
LMUDEF const char *lmu_tokenizer_unicode_version(void);

#ifdef __cplusplus
}
#endif
#endif
/* >>decl-end tokenizer */

/* >>impl-begin tokenizer */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_PART_TOKENIZER_IMPL_DONE)
#define LMU_PART_TOKENIZER_IMPL_DONE

/* stb_ds only in here and without short names, so arrput/hmget never become
   macros in user code. The loader keeps its maps in stb_ds (token text -> id,
   (left, right) -> merge); encode never touches them: after loading they are
   flattened into tables that are only read, so no lookup writes shared state
   (stb_ds's non-_ts lookups write a temp into the map header), and GCC's
   -std=c99 lacks the `typeof` that stb_ds's hmput/hmgeti need for rvalue
   keys, so only hmputs and shgeti/shput are used. libstb (-lstb) provides the functions unless the user
   asks for them here with LMU_STB_DS_IMPLEMENTATION. */
#ifndef STBDS_NO_SHORT_NAMES
#define STBDS_NO_SHORT_NAMES
#endif
#ifdef LMU_STB_DS_IMPLEMENTATION
#define STBDS_REALLOC(ctx, p, sz) LMU_REALLOC(p, sz)
#define STBDS_FREE(ctx, p) LMU_FREE(p)
#define STB_DS_IMPLEMENTATION
#endif
#include <stb_ds.h>

#include "unicode_tables.h" /* spliced in here: >>impl-begin unicode_tables */

#define LMU__TOK_SPECIAL "<|endoftext|>"
#define LMU__TOK_SPECIAL_LEN 13
#define LMU__NO_RANK INT32_MAX

/* Merge table as the loader builds it (stb_ds hash map): (left id, right
   id) -> (rank, merged id) for every split of every merge result into two
   mergeable tokens. */
typedef struct lmu__pair {
    int32_t a, b;
} lmu__pair;
typedef struct lmu__merge {
    int32_t rank, id;
} lmu__merge;
typedef struct lmu__merge_kv {
    lmu__pair key;
    lmu__merge value;
} lmu__merge_kv;

/* What encode reads, built once after loading and never written again (so
   any number of threads may read): two open-addressing tables sized for a
   load factor under 1/2, one cache line visit per lookup in the common case.
   Pairs: key (a << 32 | b), value (rank, id); empty slots have id -1. */
typedef struct lmu__pslot {
    uint64_t key;
    int32_t rank, id;
} lmu__pslot;

/* Whole-piece table, bytes -> id of a mergeable token. `head` holds the
   first 8 bytes (zero-padded) and `tag` the hash's high 24 bits over the
   length, so pieces up to 8 bytes compare without touching the token bytes. */
typedef struct lmu__wslot {
    uint64_t head;
    uint32_t tag;
    int32_t id; /* -1: empty */
} lmu__wslot;

struct lmu_tokenizer {
    int32_t n_vocab;
    int32_t eot;         /* -1: none */
    int byte_level;      /* the fallback: ids are bytes */
    size_t max_token_bytes;
    int32_t byte_id[256]; /* id of each single byte */
    uint32_t *tok_off;    /* (n_vocab + 1) offsets into tok_bytes */
    unsigned char *tok_bytes;
    lmu__wslot *whole; /* (whole_mask + 1) slots; NULL for the fallback */
    uint32_t whole_mask;
    lmu__pslot *pairs; /* (pair_mask + 1) slots */
    uint32_t pair_mask;
};

LMUDEF const char *lmu_tokenizer_unicode_version(void) { return LMU__UNICODE_VERSION; }

/* ---------------------------------------------------------------------- */
/* characters                                                             */
/* ---------------------------------------------------------------------- */

enum { LMU__CC_OTHER = 0, LMU__CC_LETTER = 1, LMU__CC_NUMBER = 2, LMU__CC_SPACE = 3 };

LMU__PRIVATE int lmu__uc_class(uint32_t cp)
{
    size_t lo = 0, hi = LMU__UC_RANGE_COUNT;
    if (cp < 128) return lmu__uc_ascii[cp];
    while (lo < hi) { /* first range whose last code point >= cp */
        size_t mid = lo + (hi - lo) / 2;
        if ((lmu__uc_ranges[mid][1] >> 2) < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < LMU__UC_RANGE_COUNT && lmu__uc_ranges[lo][0] <= cp) return (int)(lmu__uc_ranges[lo][1] & 3);
    return LMU__CC_OTHER;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if it is not
   one (overlong, surrogate, > U+10FFFF, cut short, stray continuation). */
LMU__PRIVATE size_t lmu__utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned b = s[0];
    if (b < 0x80) { *cp = b; return 1; }
    if (b >= 0xC2 && b <= 0xDF) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (b >= 0xE0 && b <= 0xEF) {
        unsigned lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
        if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        unsigned lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
        if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        *cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
              ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* Class and byte length of the character at s[0..n), n >= 1. An invalid
   byte is one character of class OTHER, so every byte string splits. */
LMU__PRIVATE int lmu__char_at(const unsigned char *s, size_t n, size_t *len)
{
    uint32_t cp;
    size_t l;
    if (s[0] < 0x80) { *len = 1; return lmu__uc_ascii[s[0]]; }
    l = lmu__utf8_len(s, n, &cp);
    if (!l) { *len = 1; return LMU__CC_OTHER; }
    *len = l;
    return lmu__uc_class(cp);
}

/* End of the run of class `cls` characters starting at i. */
LMU__PRIVATE size_t lmu__run_end(const unsigned char *s, size_t n, size_t i, int cls)
{
    while (i < n) {
        size_t l;
        if (s[i] < 0x80) {
            if (lmu__uc_ascii[s[i]] != cls) break;
            i++;
            continue;
        }
        if (lmu__char_at(s + i, n - i, &l) != cls) break;
        i += l;
    }
    return i;
}

/* Length of the pre-token starting at s[0] (n >= 1): GPT-2's pattern, its
   branches tried in order, as a backtracking regex engine would. */
LMU__PRIVATE size_t lmu__pretoken(const unsigned char *s, size_t n)
{
    size_t l, j, last;
    int c;
    if (s[0] == '\'' && n >= 2) { /* 's|'t|'re|'ve|'m|'ll|'d */
        unsigned char a = s[1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if (n >= 3) {
            unsigned char b = s[2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
        }
    }
    if (s[0] == ' ' && n >= 2) { /* " ?" before a letter, number or other run */
        c = lmu__char_at(s + 1, n - 1, &l);
        if (c != LMU__CC_SPACE) return lmu__run_end(s, n, 1 + l, c);
    }
    c = lmu__char_at(s, n, &l);
    if (c != LMU__CC_SPACE) return lmu__run_end(s, n, l, c);
    /* \s+(?!\S) then \s+: a white-space run followed by a non-space gives up
       its last character (which then starts the next piece), unless that
       leaves nothing. */
    last = 0;
    j = l;
    while (j < n) {
        if (lmu__char_at(s + j, n - j, &l) != LMU__CC_SPACE) break;
        last = j;
        j += l;
    }
    if (j == n || last == 0) return j;
    return last;
}

/* ---------------------------------------------------------------------- */
/* lookups                                                                */
/* ---------------------------------------------------------------------- */

/* First min(n, 8) bytes of p as a zero-padded 64-bit word. */
LMU__PRIVATE uint64_t lmu__head8(const unsigned char *p, size_t n)
{
    uint64_t w = 0;
    if (n >= 8) memcpy(&w, p, 8);
    else memcpy(&w, p, n);
    return w;
}

LMU__PRIVATE uint32_t lmu__hash_bytes(const unsigned char *p, size_t n, uint64_t head)
{
    uint64_t h = (head ^ ((uint64_t)n << 56)) * 0x9E3779B97F4A7C15ULL;
    size_t i;
    for (i = 8; i < n; i += 8) {
        uint64_t w = lmu__head8(p + i, n - i);
        h = (h ^ (h >> 29) ^ w) * 0xBF58476D1CE4E5B9ULL;
    }
    h ^= h >> 32;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 29;
    return (uint32_t)h;
}

LMU__PRIVATE uint32_t lmu__whole_tag(uint32_t h, size_t n) { return (h & 0xFFFFFF00u) | (uint32_t)(n & 0xFF); }

/* Id of the mergeable token whose bytes are p[0..n), or -1; head and h are
   lmu__head8 and lmu__hash_bytes of the piece. */
LMU__PRIVATE int32_t lmu__whole_find(const lmu_tokenizer *tok, const unsigned char *p, size_t n,
                                     uint64_t head, uint32_t h)
{
    uint32_t tag = lmu__whole_tag(h, n), i = h & tok->whole_mask;
    for (;; i = (i + 1) & tok->whole_mask) {
        const lmu__wslot *s = &tok->whole[i];
        if (s->id < 0) return -1;
        if (s->tag == tag && s->head == head) {
            uint32_t o = tok->tok_off[s->id];
            if (n <= 8) return s->id; /* the length is in the tag */
            if (tok->tok_off[s->id + 1] - o == n && memcmp(tok->tok_bytes + o + 8, p + 8, n - 8) == 0)
                return s->id;
        }
    }
}

LMU__PRIVATE int32_t lmu__whole_get(const lmu_tokenizer *tok, const unsigned char *p, size_t n)
{
    uint64_t head = lmu__head8(p, n);
    return lmu__whole_find(tok, p, n, head, lmu__hash_bytes(p, n, head));
}

LMU__PRIVATE uint32_t lmu__pair_hash(uint64_t key)
{
    key *= 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(key >> 32);
}

LMU__PRIVATE lmu__merge lmu__merge_get(const lmu_tokenizer *tok, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = lmu__pair_hash(key) & tok->pair_mask;
    lmu__merge m;
    for (;; i = (i + 1) & tok->pair_mask) {
        const lmu__pslot *s = &tok->pairs[i];
        if (s->key == key && s->id >= 0) { m.rank = s->rank; m.id = s->id; return m; }
        if (s->id < 0) { m.rank = LMU__NO_RANK; m.id = -1; return m; }
    }
}

/* ---------------------------------------------------------------------- */
/* BPE                                                                    */
/* ---------------------------------------------------------------------- */

typedef struct lmu__sink {
    int32_t *ids;
    size_t cap, n;
} lmu__sink;

LMU__PRIVATE void lmu__sink_put(lmu__sink *o, int32_t id)
{
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

typedef struct lmu__heap_ent {
    int32_t rank, id;
    uint32_t pos, llen, rlen;
} lmu__heap_ent;

/* Per-call scratch, freed by the caller: memory for long pieces (grown on
   demand), and for long texts a small direct-mapped cache of whole-piece
   lookups of pieces up to 8 bytes (id, or -2 for "not a token"), which
   keeps the frequent words in L1/L2 instead of probing the big table. */
#define LMU__WCACHE_BITS 12
typedef struct lmu__bpe_scratch {
    void *mem;
    size_t cap; /* in piece bytes */
    lmu__wslot *cache; /* 1 << LMU__WCACHE_BITS slots, or NULL */
} lmu__bpe_scratch;

#define LMU__BPE_SMALL 48 /* pieces up to this many bytes use the simple loop */

/* Simple BPE for short pieces: rescans all pairs for the lowest rank,
   O(m^2) in the worst case but tiny m and no allocation. */
LMU__PRIVATE void lmu__bpe_small(const lmu_tokenizer *tok, const unsigned char *p, size_t m,
                                 lmu__sink *out)
{
    int32_t id[LMU__BPE_SMALL];
    lmu__merge pr[LMU__BPE_SMALL];
    size_t np = m, i, best;
    for (i = 0; i < m; i++) id[i] = tok->byte_id[p[i]];
    for (i = 0; i + 1 < m; i++) pr[i] = lmu__merge_get(tok, id[i], id[i + 1]);
    for (;;) {
        int32_t r = LMU__NO_RANK;
        best = 0;
        for (i = 0; i + 1 < np; i++)
            if (pr[i].rank < r) { r = pr[i].rank; best = i; }
        if (r == LMU__NO_RANK) break;
        id[best] = pr[best].id;
        for (i = best + 1; i + 1 < np; i++) { id[i] = id[i + 1]; pr[i] = pr[i + 1]; }
        np--;
        if (best + 1 < np) pr[best] = lmu__merge_get(tok, id[best], id[best + 1]);
        if (best > 0) pr[best - 1] = lmu__merge_get(tok, id[best - 1], id[best]);
    }
    for (i = 0; i < np; i++) lmu__sink_put(out, id[i]);
}

LMU__PRIVATE int lmu__heap_less(const lmu__heap_ent *x, const lmu__heap_ent *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

LMU__PRIVATE void lmu__heap_push(lmu__heap_ent *h, size_t *n, lmu__heap_ent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!lmu__heap_less(&e, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = e;
}

LMU__PRIVATE lmu__heap_ent lmu__heap_pop(lmu__heap_ent *h, size_t *n)
{
    lmu__heap_ent top = h[0], e = h[--*n];
    size_t i = 0, k = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= k) break;
        if (c + 1 < k && lmu__heap_less(&h[c + 1], &h[c])) c++;
        if (!lmu__heap_less(&h[c], &e)) break;
        h[i] = h[c];
        i = c;
    }
    if (k) h[i] = e;
    return top;
}

/* BPE for long pieces in O(m log m): symbols are a linked list over byte
   positions (a symbol is named by its first byte), candidate pairs wait in a
   min-heap keyed by (rank, position), so the pop order is exactly "lowest
   rank, leftmost first". Entries made stale by a merge are recognised on pop
   (a symbol's identity is its start and length) and dropped. */
LMU__PRIVATE lmu_result lmu__bpe_large(const lmu_tokenizer *tok, const unsigned char *p, size_t m,
                                       lmu__sink *out, lmu__bpe_scratch *sc)
{
    int32_t *sid;
    uint32_t *slen, *prev;
    lmu__heap_ent *heap;
    size_t nh = 0, i, per = 3 * sizeof(uint32_t) + 3 * sizeof(lmu__heap_ent);
    if (m >= 0xFFFFFFFFu / 4) return LMU_ERR_RANGE;
    if (sc->cap < m) {
        size_t bytes;
        if (!lmu__mul_size(m, per, &bytes)) return LMU_ERR_NOMEM;
        LMU_FREE(sc->mem);
        sc->mem = LMU_MALLOC(bytes);
        sc->cap = sc->mem ? m : 0;
        if (!sc->mem) return LMU_ERR_NOMEM;
    }
    heap = (lmu__heap_ent *)sc->mem; /* 3m entries: m-1 at start, <= 2 per merge */
    sid = (int32_t *)(heap + 3 * m);
    slen = (uint32_t *)(sid + m);
    prev = slen + m;
    for (i = 0; i < m; i++) {
        sid[i] = tok->byte_id[p[i]];
        slen[i] = 1;
        prev[i] = (uint32_t)i - 1;
    }
    for (i = 0; i + 1 < m; i++) {
        lmu__merge g = lmu__merge_get(tok, sid[i], sid[i + 1]);
        if (g.rank != LMU__NO_RANK) {
            lmu__heap_ent e;
            e.rank = g.rank; e.id = g.id; e.pos = (uint32_t)i; e.llen = 1; e.rlen = 1;
            lmu__heap_push(heap, &nh, e);
        }
    }
    while (nh) {
        lmu__heap_ent e = lmu__heap_pop(heap, &nh);
        uint32_t q = e.pos + e.llen, nx;
        if (slen[e.pos] != e.llen || q >= m || slen[q] != e.rlen) continue; /* stale */
        sid[e.pos] = e.id;
        slen[e.pos] = e.llen + e.rlen;
        slen[q] = 0;
        nx = e.pos + slen[e.pos];
        if (nx < m) {
            lmu__merge g = lmu__merge_get(tok, sid[e.pos], sid[nx]);
            prev[nx] = e.pos;
            if (g.rank != LMU__NO_RANK) {
                lmu__heap_ent f;
                f.rank = g.rank; f.id = g.id; f.pos = e.pos; f.llen = slen[e.pos]; f.rlen = slen[nx];
                lmu__heap_push(heap, &nh, f);
            }
        }
        if (e.pos > 0) {
            uint32_t pv = prev[e.pos];
            lmu__merge g = lmu__merge_get(tok, sid[pv], sid[e.pos]);
            if (g.rank != LMU__NO_RANK) {
                lmu__heap_ent f;
                f.rank = g.rank; f.id = g.id; f.pos = pv; f.llen = slen[pv]; f.rlen = slen[e.pos];
                lmu__heap_push(heap, &nh, f);
            }
        }
    }
    for (i = 0; i < m; i += slen[i]) lmu__sink_put(out, sid[i]);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__encode_piece(const lmu_tokenizer *tok, const unsigned char *p,
                                          size_t m, lmu__sink *out, lmu__bpe_scratch *sc)
{
    int32_t id;
    uint64_t head;
    uint32_t h;
    if (m == 1) { lmu__sink_put(out, tok->byte_id[p[0]]); return LMU_OK; }
    head = lmu__head8(p, m);
    h = lmu__hash_bytes(p, m, head);
    if (sc->cache && m <= 8) {
        lmu__wslot *c = &sc->cache[h & ((1u << LMU__WCACHE_BITS) - 1)];
        uint32_t tag = lmu__whole_tag(h, m);
        if (c->tag == tag && c->head == head && c->id != -1) {
            id = c->id;
        } else {
            id = lmu__whole_find(tok, p, m, head, h);
            c->tag = tag;
            c->head = head;
            c->id = id >= 0 ? id : -2;
        }
    } else {
        id = lmu__whole_find(tok, p, m, head, h);
    }
    if (id >= 0) { lmu__sink_put(out, id); return LMU_OK; }
    if (m <= LMU__BPE_SMALL) { lmu__bpe_small(tok, p, m, out); return LMU_OK; }
    return lmu__bpe_large(tok, p, m, out, sc);
}

/* Plain text, no special tokens. */
LMU__PRIVATE lmu_result lmu__encode_ordinary(const lmu_tokenizer *tok, const unsigned char *s,
                                             size_t n, lmu__sink *out, lmu__bpe_scratch *sc)
{
    size_t i = 0;
    if (tok->byte_level) {
        for (i = 0; i < n; i++) lmu__sink_put(out, s[i]);
        return LMU_OK;
    }
    while (i < n) {
        size_t l = lmu__pretoken(s + i, n - i);
        lmu_result r = lmu__encode_piece(tok, s + i, l, out, sc);
        if (r != LMU_OK) return r;
        i += l;
    }
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__encode_sink(const lmu_tokenizer *tok, const unsigned char *s,
                                         size_t n, int allow_special, lmu__sink *out)
{
    lmu__bpe_scratch sc;
    lmu_result r = LMU_OK;
    size_t i = 0, from = 0;
    sc.mem = NULL;
    sc.cap = 0;
    sc.cache = NULL;
    if (n >= ((size_t)1 << 14) && !tok->byte_level) {
        size_t k, slots = (size_t)1 << LMU__WCACHE_BITS;
        sc.cache = (lmu__wslot *)LMU_MALLOC(slots * sizeof *sc.cache);
        if (sc.cache)
            for (k = 0; k < slots; k++) { sc.cache[k].tag = 0; sc.cache[k].head = 0; sc.cache[k].id = -1; }
    }
    if (allow_special && tok->eot >= 0) {
        while (n >= LMU__TOK_SPECIAL_LEN && i <= n - LMU__TOK_SPECIAL_LEN) {
            const unsigned char *lt = (const unsigned char *)memchr(s + i, '<', n - LMU__TOK_SPECIAL_LEN + 1 - i);
            if (!lt) break;
            i = (size_t)(lt - s);
            if (memcmp(lt, LMU__TOK_SPECIAL, LMU__TOK_SPECIAL_LEN) != 0) { i++; continue; }
            r = lmu__encode_ordinary(tok, s + from, i - from, out, &sc);
            if (r != LMU_OK) break;
            lmu__sink_put(out, tok->eot);
            i += LMU__TOK_SPECIAL_LEN;
            from = i;
        }
    }
    if (r == LMU_OK) r = lmu__encode_ordinary(tok, s + from, n - from, out, &sc);
    LMU_FREE(sc.mem);
    LMU_FREE(sc.cache);
    return r;
}

LMUDEF lmu_result lmu_encode(const lmu_tokenizer *tok, const char *text, size_t len,
                             int allow_special, int32_t *ids, size_t cap, size_t *n_out)
{
    lmu__sink o;
    lmu_result r;
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!text && len) || (!ids && cap)) return LMU_ERR_ARG;
    o.ids = ids;
    o.cap = cap;
    o.n = 0;
    r = lmu__encode_sink(tok, (const unsigned char *)text, len, allow_special, &o);
    *n_out = o.n;
    if (r != LMU_OK) return r;
    return o.n > cap ? LMU_ERR_CAPACITY : LMU_OK;
}

/* A chunk may start at p when s[p] is ASCII white space and s[p-1] an ASCII
   byte that is not: no branch of the pattern matches across a non-space ->
   space boundary (only \s runs hold spaces, and " ?" only leads), so a piece
   ends at p in the whole text; the piece before p does not end in a
   white-space run, so \s+(?!\S) cannot see past it; and matching from p
   onward never looks back. "<|endoftext|>" holds no space, so it never
   straddles p either. ASCII bytes are never part of a multi-byte character
   (nor of an invalid sequence: those are split byte by byte). */
LMU__PRIVATE int lmu__safe_cut(const unsigned char *s, size_t p)
{
    unsigned a = s[p - 1], b = s[p];
    int bs = b == ' ' || b == '\n' || b == '\t' || b == '\r';
    return bs && a < 0x80 && lmu__uc_ascii[a] != LMU__CC_SPACE;
}

LMUDEF lmu_result lmu_encode_parallel(const lmu_tokenizer *tok, const char *text, size_t len,
                                      int allow_special, int32_t *ids, size_t cap,
                                      size_t *n_out)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t *cut = NULL, *cnt = NULL, nchunks, k, target, total = 0;
    int32_t *buf;
    lmu_result r = LMU_OK;
    int nt = lmu__thread_count();
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!text && len) || (!ids && cap)) return LMU_ERR_ARG;
    if (nt <= 1 || len < ((size_t)1 << 16)) return lmu_encode(tok, text, len, allow_special, ids, cap, n_out);
    /* Many more chunks than threads for balance, none below 64 KB. */
    target = len / ((size_t)nt * 8);
    if (target < ((size_t)1 << 16)) target = (size_t)1 << 16;
    nchunks = len / target + 1;
    cut = (size_t *)LMU_MALLOC((nchunks + 1) * sizeof *cut);
    cnt = (size_t *)LMU_MALLOC(nchunks * sizeof *cnt);
    if (!cut || !cnt) { LMU_FREE(cut); LMU_FREE(cnt); return LMU_ERR_NOMEM; }
    cut[0] = 0;
    k = 1;
    while (k < nchunks) {
        size_t p = k * target;
        if (p <= cut[k - 1]) p = cut[k - 1] + 1;
        while (p < len && !lmu__safe_cut(s, p)) p++;
        if (p >= len) break;
        cut[k++] = p;
    }
    nchunks = k;
    cut[nchunks] = len;
    /* A chunk of b bytes gives at most b ids: encode chunk k in place at
       ids + cut[k] when the caller's array has len room, then close the gaps. */
    buf = cap >= len ? ids : (int32_t *)LMU_MALLOC((len ? len : 1) * sizeof(int32_t));
    if (!buf) { LMU_FREE(cut); LMU_FREE(cnt); return LMU_ERR_NOMEM; }
    {
        long kk, nk = (long)nchunks;
        int fail = 0;
        /* dynamic: chunks differ in cost; each chunk's ids do not depend on
           the schedule, so the result is the same for any thread count. */
        LMU__OMP(omp parallel for schedule(dynamic, 1) reduction(| : fail))
        for (kk = 0; kk < nk; kk++) {
            lmu__sink o;
            lmu_result rr;
            o.ids = buf + cut[kk];
            o.cap = cut[kk + 1] - cut[kk];
            o.n = 0;
            rr = lmu__encode_sink(tok, s + cut[kk], cut[kk + 1] - cut[kk], allow_special, &o);
            cnt[kk] = o.n;
            if (rr != LMU_OK) fail |= 1 << (int)rr;
        }
        if (fail) r = (fail & (1 << LMU_ERR_NOMEM)) ? LMU_ERR_NOMEM : LMU_ERR_RANGE;
    }
    if (r == LMU_OK) {
        for (k = 0; k < nchunks; k++) {
            size_t c = cnt[k];
            if (buf != ids) {
                if (total < cap) memcpy(ids + total, buf + cut[k], (total + c <= cap ? c : cap - total) * sizeof(int32_t));
            } else if (total != cut[k]) {
                memmove(ids + total, ids + cut[k], c * sizeof(int32_t));
            }
            total += c;
        }
        *n_out = total;
        if (total > cap) r = LMU_ERR_CAPACITY;
    }
    if (buf != ids) LMU_FREE(buf);
    LMU_FREE(cut);
    LMU_FREE(cnt);
    return r;
}

/* ---------------------------------------------------------------------- */
/* decode                                                                 */
/* ---------------------------------------------------------------------- */

LMUDEF int32_t lmu_tokenizer_vocab_size(const lmu_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
LMUDEF int32_t lmu_tokenizer_eot(const lmu_tokenizer *tok) { return tok ? tok->eot : -1; }
LMUDEF size_t lmu_tokenizer_max_token_bytes(const lmu_tokenizer *tok) { return tok ? tok->max_token_bytes : 0; }

LMUDEF const char *lmu_tokenizer_token(const lmu_tokenizer *tok, int32_t id, size_t *len)
{
    if (len) *len = 0;
    if (!tok || id < 0 || id >= tok->n_vocab) return NULL;
    if (len) *len = tok->tok_off[id + 1] - tok->tok_off[id];
    return (const char *)tok->tok_bytes + tok->tok_off[id];
}

LMUDEF lmu_result lmu_decode(const lmu_tokenizer *tok, const int32_t *ids, size_t n, char *out,
                             size_t cap, size_t *n_out)
{
    size_t i, w = 0;
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!ids && n) || (!out && cap)) return LMU_ERR_ARG;
    for (i = 0; i < n; i++) {
        uint32_t o, l;
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) return LMU_ERR_RANGE;
        o = tok->tok_off[ids[i]];
        l = tok->tok_off[ids[i] + 1] - o;
        if (w < cap) memcpy(out + w, tok->tok_bytes + o, cap - w < l ? cap - w : l);
        w += l;
    }
    *n_out = w;
    return w > cap ? LMU_ERR_CAPACITY : LMU_OK;
}

LMUDEF void lmu_decoder_init(lmu_decoder *d)
{
    if (d) memset(d, 0, sizeof *d);
}

/* How many bytes at the end of s[0..n) are the start of a UTF-8 character
   that more bytes could still complete (0..3). */
LMU__PRIVATE size_t lmu__utf8_open_tail(const unsigned char *s, size_t n)
{
    size_t k;
    for (k = 1; k <= 3 && k <= n; k++) {
        unsigned b = s[n - k];
        size_t need, j;
        if ((b & 0xC0) == 0x80) continue; /* continuation: look further back */
        need = (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3 : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
        if (need <= k) return 0; /* ASCII, invalid lead, or already complete */
        for (j = 1; j < k; j++) {
            unsigned c = s[n - k + j];
            unsigned lo = 0x80, hi = 0xBF;
            if (j == 1) {
                if (b == 0xE0) lo = 0xA0;
                else if (b == 0xED) hi = 0x9F;
                else if (b == 0xF0) lo = 0x90;
                else if (b == 0xF4) hi = 0x8F;
            }
            if (c < lo || c > hi) return 0;
        }
        return k;
    }
    return 0;
}

LMUDEF lmu_result lmu_decoder_push(lmu_decoder *d, const lmu_tokenizer *tok, int32_t id,
                                   char *out, size_t cap, size_t *n_out)
{
    size_t l, total, keep;
    const char *t;
    if (n_out) *n_out = 0;
    if (!d || !tok || !n_out || (!out && cap) || d->n_pending > 3) return LMU_ERR_ARG;
    t = lmu_tokenizer_token(tok, id, &l);
    if (!t) return LMU_ERR_RANGE;
    total = d->n_pending + l;
    if (cap < total) { *n_out = total; return LMU_ERR_CAPACITY; }
    memcpy(out, d->pending, d->n_pending);
    memcpy(out + d->n_pending, t, l);
    keep = lmu__utf8_open_tail((const unsigned char *)out, total);
    memcpy(d->pending, out + total - keep, keep);
    d->n_pending = (unsigned)keep;
    *n_out = total - keep;
    return LMU_OK;
}

LMUDEF lmu_result lmu_decoder_flush(lmu_decoder *d, char *out, size_t cap, size_t *n_out)
{
    if (n_out) *n_out = 0;
    if (!d || !n_out || (!out && cap) || d->n_pending > 3) return LMU_ERR_ARG;
    if (cap < d->n_pending) { *n_out = d->n_pending; return LMU_ERR_CAPACITY; }
    memcpy(out, d->pending, d->n_pending);
    *n_out = d->n_pending;
    d->n_pending = 0;
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* loading                                                                */
/* ---------------------------------------------------------------------- */

LMUDEF void lmu_tokenizer_free(lmu_tokenizer *tok)
{
    if (!tok) return;
    LMU_FREE(tok->tok_off);
    LMU_FREE(tok->tok_bytes);
    LMU_FREE(tok->whole);
    LMU_FREE(tok->pairs);
    LMU_FREE(tok);
}

LMUDEF lmu_result lmu_tokenizer_bytes(lmu_tokenizer **out)
{
    lmu_tokenizer *t;
    int i;
    if (!out) return LMU_ERR_ARG;
    *out = NULL;
    t = (lmu_tokenizer *)LMU_MALLOC(sizeof *t);
    if (!t) return LMU_ERR_NOMEM;
    memset(t, 0, sizeof *t);
    t->n_vocab = 257;
    t->eot = 256;
    t->byte_level = 1;
    t->max_token_bytes = LMU__TOK_SPECIAL_LEN;
    t->tok_off = (uint32_t *)LMU_MALLOC(258 * sizeof(uint32_t));
    t->tok_bytes = (unsigned char *)LMU_MALLOC(256 + LMU__TOK_SPECIAL_LEN);
    if (!t->tok_off || !t->tok_bytes) { lmu_tokenizer_free(t); return LMU_ERR_NOMEM; }
    for (i = 0; i < 256; i++) {
        t->byte_id[i] = i;
        t->tok_off[i] = (uint32_t)i;
        t->tok_bytes[i] = (unsigned char)i;
    }
    t->tok_off[256] = 256;
    t->tok_off[257] = 256 + LMU__TOK_SPECIAL_LEN;
    memcpy(t->tok_bytes + 256, LMU__TOK_SPECIAL, LMU__TOK_SPECIAL_LEN);
    *out = t;
    return LMU_OK;
}

/* GPT-2 writes each byte as a printable character: bytes 33..126, 161..172
   and 174..255 as themselves, the other 68 bytes as U+0100.. in byte order.
   Returns the byte for code point cp, or -1 if cp is not in that alphabet. */
LMU__PRIVATE int lmu__gpt2_byte(uint32_t cp)
{
    static const unsigned char lmu__gpt2_moved[68] = {
        0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  15,  16,
        17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  32,  127,
        128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144,
        145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 173};
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp >= 256 && cp < 256 + 68) return lmu__gpt2_moved[cp - 256];
    return -1;
}

typedef struct lmu__strmap { /* stb_ds string map: token as written in the files -> id */
    char *key;
    int32_t value;
} lmu__strmap;

typedef struct lmu__loader {
    const unsigned char *s;
    size_t n, i;
    char *err;
    size_t errcap;
    lmu__strmap *map;        /* key text -> entry index */
    unsigned char *keybuf;   /* decoded key (UTF-8), json_len + 1 bytes */
    int32_t *ent_id;         /* stb_ds arrays, one element per JSON entry */
    uint32_t *ent_off;       /* entry's bytes: ent_bytes[ent_off[e] .. ent_off[e+1]) */
    unsigned char *ent_bytes;
} lmu__loader;

LMU__PRIVATE lmu_result lmu__json_fail(lmu__loader *L, size_t at, const char *what, const char *detail)
{
    size_t k, line = 1;
    for (k = 0; k < at && k < L->n; k++) line += L->s[k] == '\n';
    lmu__errf(L->err, L->errcap, "encoder.json: line %lu, byte %lu: %s%s", (unsigned long)line,
              (unsigned long)at, what, detail ? detail : "");
    return LMU_ERR_FORMAT;
}

LMU__PRIVATE void lmu__json_ws(lmu__loader *L)
{
    while (L->i < L->n && (L->s[L->i] == ' ' || L->s[L->i] == '\t' || L->s[L->i] == '\n' || L->s[L->i] == '\r'))
        L->i++;
}

LMU__PRIVATE int lmu__hex4(const unsigned char *s, uint32_t *v)
{
    int k;
    *v = 0;
    for (k = 0; k < 4; k++) {
        unsigned c = s[k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        *v = (*v << 4) | d;
    }
    return 1;
}

LMU__PRIVATE size_t lmu__utf8_put(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses the JSON string at L->i (which is '"') into L->keybuf as UTF-8,
   NUL-terminated; *klen is its length. Decoded text is never longer than
   its JSON spelling, so keybuf (json_len + 1 bytes) always has room. */
LMU__PRIVATE lmu_result lmu__json_string(lmu__loader *L, size_t *klen)
{
    size_t w = 0, start = L->i;
    L->i++;
    for (;;) {
        unsigned c;
        if (L->i >= L->n) return lmu__json_fail(L, start, "unterminated string", NULL);
        c = L->s[L->i];
        if (c == '"') { L->i++; break; }
        if (c < 0x20) return lmu__json_fail(L, L->i, "control character in a string", NULL);
        if (c == '\\') {
            uint32_t cp;
            if (L->i + 1 >= L->n) return lmu__json_fail(L, L->i, "unterminated escape", NULL);
            c = L->s[L->i + 1];
            switch (c) {
            case '"': case '\\': case '/': L->keybuf[w++] = (unsigned char)c; L->i += 2; continue;
            case 'b': L->keybuf[w++] = '\b'; L->i += 2; continue;
            case 'f': L->keybuf[w++] = '\f'; L->i += 2; continue;
            case 'n': L->keybuf[w++] = '\n'; L->i += 2; continue;
            case 'r': L->keybuf[w++] = '\r'; L->i += 2; continue;
            case 't': L->keybuf[w++] = '\t'; L->i += 2; continue;
            case 'u': break;
            default: return lmu__json_fail(L, L->i, "bad escape", NULL);
            }
            if (L->n - L->i < 6 || !lmu__hex4(L->s + L->i + 2, &cp))
                return lmu__json_fail(L, L->i, "bad \\u escape (needs 4 hex digits)", NULL);
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return lmu__json_fail(L, L->i, "lone low surrogate in \\u escape", NULL);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (L->n - L->i < 12 || L->s[L->i + 6] != '\\' || L->s[L->i + 7] != 'u' ||
                    !lmu__hex4(L->s + L->i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return lmu__json_fail(L, L->i, "high surrogate not followed by a \\u low surrogate", NULL);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                L->i += 6;
            }
            if (cp == 0) return lmu__json_fail(L, L->i, "\\u0000 in a string", NULL);
            w += lmu__utf8_put(L->keybuf + w, cp);
            L->i += 6;
            continue;
        }
        if (c >= 0x80) {
            uint32_t cp;
            size_t l = lmu__utf8_len(L->s + L->i, L->n - L->i, &cp);
            if (!l) return lmu__json_fail(L, L->i, "invalid UTF-8", NULL);
            memcpy(L->keybuf + w, L->s + L->i, l);
            w += l;
            L->i += l;
            continue;
        }
        L->keybuf[w++] = (unsigned char)c;
        L->i++;
    }
    L->keybuf[w] = 0;
    *klen = w;
    return LMU_OK;
}

/* encoder.json: one object of "token": id members. */
LMU__PRIVATE lmu_result lmu__parse_encoder(lmu__loader *L)
{
    L->i = 0;
    if (L->n >= 3 && L->s[0] == 0xEF && L->s[1] == 0xBB && L->s[2] == 0xBF) L->i = 3; /* BOM */
    lmu__json_ws(L);
    if (L->i >= L->n || L->s[L->i] != '{') return lmu__json_fail(L, L->i, "expected '{'", NULL);
    L->i++;
    lmu__json_ws(L);
    if (L->i < L->n && L->s[L->i] == '}') return lmu__json_fail(L, L->i, "empty object", NULL);
    for (;;) {
        size_t klen, at, k;
        uint32_t cp;
        uint64_t v = 0;
        lmu_result r;
        lmu__json_ws(L);
        at = L->i;
        if (L->i >= L->n || L->s[L->i] != '"') return lmu__json_fail(L, L->i, "expected a string key", NULL);
        if ((r = lmu__json_string(L, &klen)) != LMU_OK) return r;
        if (klen == 0) return lmu__json_fail(L, at, "empty token", NULL);
        if (stbds_shgeti(L->map, (char *)L->keybuf) >= 0)
            return lmu__json_fail(L, at, "duplicate key ", (const char *)L->keybuf);
        /* the token's bytes, from GPT-2's byte alphabet */
        for (k = 0; k < klen;) {
            size_t l = lmu__utf8_len(L->keybuf + k, klen - k, &cp);
            int b = l ? lmu__gpt2_byte(cp) : -1;
            if (b < 0) return lmu__json_fail(L, at, "character outside GPT-2's byte alphabet in key ", (const char *)L->keybuf);
            stbds_arrput(L->ent_bytes, (unsigned char)b);
            k += l;
        }
        if (stbds_arrlenu(L->ent_bytes) > 0xFFFFFFF0u) return lmu__json_fail(L, at, "too many token bytes", NULL);
        stbds_arrput(L->ent_off, (uint32_t)stbds_arrlenu(L->ent_bytes));
        stbds_shput(L->map, (char *)L->keybuf, (int32_t)stbds_arrlen(L->ent_id));
        lmu__json_ws(L);
        if (L->i >= L->n || L->s[L->i] != ':') return lmu__json_fail(L, L->i, "expected ':'", NULL);
        L->i++;
        lmu__json_ws(L);
        at = L->i;
        if (L->i >= L->n || L->s[L->i] < '0' || L->s[L->i] > '9')
            return lmu__json_fail(L, at, "expected a non-negative integer id", NULL);
        if (L->s[L->i] == '0' && L->i + 1 < L->n && L->s[L->i + 1] >= '0' && L->s[L->i + 1] <= '9')
            return lmu__json_fail(L, at, "leading zero in a number", NULL);
        while (L->i < L->n && L->s[L->i] >= '0' && L->s[L->i] <= '9') {
            v = v * 10 + (uint64_t)(L->s[L->i++] - '0');
            if (v > 0x7FFFFFFF) return lmu__json_fail(L, at, "id too large", NULL);
        }
        if (L->i < L->n && (L->s[L->i] == '.' || L->s[L->i] == 'e' || L->s[L->i] == 'E'))
            return lmu__json_fail(L, at, "id is not an integer", NULL);
        stbds_arrput(L->ent_id, (int32_t)v);
        if (stbds_arrlen(L->ent_id) >= 0x7FFFFFFF) return lmu__json_fail(L, at, "too many tokens", NULL);
        lmu__json_ws(L);
        if (L->i >= L->n) return lmu__json_fail(L, L->i, "unexpected end of file (truncated?)", NULL);
        if (L->s[L->i] == ',') { L->i++; continue; }
        if (L->s[L->i] == '}') { L->i++; break; }
        return lmu__json_fail(L, L->i, "expected ',' or '}'", NULL);
    }
    lmu__json_ws(L);
    if (L->i != L->n) return lmu__json_fail(L, L->i, "data after the object", NULL);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__bpe_fail(char *err, size_t errcap, size_t line, const char *what,
                                      const char *a, size_t alen)
{
    if (alen > 200) alen = 200;
    lmu__errf(err, errcap, "vocab.bpe: line %lu: %s%.*s%s", (unsigned long)line, what, (int)alen,
              a ? a : "", a ? "\"" : "");
    return LMU_ERR_FORMAT;
}

LMU__PRIVATE lmu_result lmu__load(lmu_tokenizer *t, lmu__loader *L, const unsigned char *bpe,
                                  size_t bpe_len)
{
    int32_t n, e, *ent_of_id = NULL, *rank = NULL, *made_line = NULL;
    lmu__merge_kv *merges = NULL; /* stb_ds hash map */
    size_t i, line = 0, nmerges = 0, total, nslots;
    unsigned char *tmp = NULL;
    lmu_result r;

    if ((r = lmu__parse_encoder(L)) != LMU_OK) return r;
    n = (int32_t)stbds_arrlen(L->ent_id);
    /* ids must be exactly 0..n-1, each once */
    ent_of_id = (int32_t *)LMU_MALLOC((size_t)n * sizeof(int32_t));
    rank = (int32_t *)LMU_MALLOC((size_t)n * sizeof(int32_t));
    made_line = (int32_t *)LMU_MALLOC((size_t)n * sizeof(int32_t));
    tmp = (unsigned char *)LMU_MALLOC(bpe_len + 2);
    t->tok_off = (uint32_t *)LMU_MALLOC(((size_t)n + 1) * sizeof(uint32_t));
    t->tok_bytes = (unsigned char *)LMU_MALLOC(stbds_arrlenu(L->ent_bytes) + 1);
    if (!ent_of_id || !rank || !made_line || !tmp || !t->tok_off || !t->tok_bytes) { r = LMU_ERR_NOMEM; goto done; }
    for (e = 0; e < n; e++) { ent_of_id[e] = -1; rank[e] = LMU__NO_RANK; made_line[e] = 0; }
    for (e = 0; e < n; e++) {
        int32_t id = L->ent_id[e];
        if (id >= n) {
            lmu__errf(L->err, L->errcap, "encoder.json: id %ld out of range: %ld tokens need ids 0..%ld",
                      (long)id, (long)n, (long)n - 1);
            r = LMU_ERR_FORMAT; goto done;
        }
        if (ent_of_id[id] >= 0) {
            lmu__errf(L->err, L->errcap, "encoder.json: id %ld appears twice", (long)id);
            r = LMU_ERR_FORMAT; goto done;
        }
        ent_of_id[id] = e;
    }
    /* token bytes by id */
    t->n_vocab = n;
    t->eot = -1;
    total = 0;
    for (e = 0; e < n; e++) {
        int32_t en = ent_of_id[e];
        uint32_t o0 = en ? L->ent_off[en - 1] : 0, o1 = L->ent_off[en];
        t->tok_off[e] = (uint32_t)total;
        memcpy(t->tok_bytes + total, L->ent_bytes + o0, o1 - o0);
        total += o1 - o0;
        if (o1 - o0 > t->max_token_bytes) t->max_token_bytes = o1 - o0;
        if (o1 - o0 == LMU__TOK_SPECIAL_LEN && memcmp(L->ent_bytes + o0, LMU__TOK_SPECIAL, LMU__TOK_SPECIAL_LEN) == 0)
            t->eot = e;
    }
    t->tok_off[n] = (uint32_t)total;
    for (i = 0; i < 256; i++) t->byte_id[i] = -1;
    for (e = 0; e < n; e++)
        if (t->tok_off[e + 1] - t->tok_off[e] == 1) t->byte_id[t->tok_bytes[t->tok_off[e]]] = e;
    for (i = 0; i < 256; i++)
        if (t->byte_id[i] < 0) {
            lmu__errf(L->err, L->errcap, "encoder.json: byte 0x%02X has no token", (unsigned)i);
            r = LMU_ERR_FORMAT; goto done;
        }

    /* vocab.bpe: merge k (0-based) makes a token of rank k */
    i = 0;
    while (i < bpe_len) {
        size_t end = i, sp, b0, alen, blen;
        ptrdiff_t ia, ib, ic;
        int32_t a, b, c;
        while (end < bpe_len && bpe[end] != '\n') end++;
        line++;
        sp = end;
        if (sp > i && bpe[sp - 1] == '\r') sp--;
        alen = sp - i; /* the line without its end */
        if (alen == 0 || (line == 1 && alen >= 8 && memcmp(bpe + i, "#version", 8) == 0)) { i = end + 1; continue; }
        memcpy(tmp, bpe + i, alen);
        tmp[alen] = 0;
        for (sp = 0; sp < alen && tmp[sp] != ' '; sp++) {}
        if (sp == 0 || sp + 1 >= alen || memchr(tmp + sp + 1, ' ', alen - sp - 1) || memchr(tmp, 0, alen)) {
            r = lmu__bpe_fail(L->err, L->errcap, line, "expected two tokens separated by one space: \"", (const char *)tmp, alen);
            goto done;
        }
        b0 = sp + 1;
        blen = alen - b0;
        tmp[sp] = 0;
        ia = stbds_shgeti(L->map, (char *)tmp);
        ib = stbds_shgeti(L->map, (char *)tmp + b0);
        if (ia < 0 || ib < 0) {
            r = lmu__bpe_fail(L->err, L->errcap, line, "unknown token \"", (const char *)tmp + (ia < 0 ? 0 : b0),
                              ia < 0 ? sp : blen);
            goto done;
        }
        a = L->ent_id[L->map[ia].value];
        b = L->ent_id[L->map[ib].value];
        if ((t->tok_off[a + 1] - t->tok_off[a] > 1 && !made_line[a]) ||
            (t->tok_off[b + 1] - t->tok_off[b] > 1 && !made_line[b])) {
            r = lmu__bpe_fail(L->err, L->errcap, line, "token not made by an earlier merge: \"",
                              (const char *)tmp + (made_line[a] || t->tok_off[a + 1] - t->tok_off[a] == 1 ? b0 : 0),
                              made_line[a] || t->tok_off[a + 1] - t->tok_off[a] == 1 ? blen : sp);
            goto done;
        }
        memmove(tmp + sp, tmp + b0, blen + 1); /* "a b" -> "ab" */
        ic = stbds_shgeti(L->map, (char *)tmp);
        if (ic < 0) { r = lmu__bpe_fail(L->err, L->errcap, line, "merge result is not in encoder.json: \"", (const char *)tmp, alen - 1); goto done; }
        c = L->ent_id[L->map[ic].value];
        if (made_line[c]) {
            char what[96];
            snprintf(what, sizeof what, "duplicate merge (made on line %ld too): \"", (long)made_line[c]);
            r = lmu__bpe_fail(L->err, L->errcap, line, what, (const char *)tmp, alen - 1);
            goto done;
        }
        if (nmerges >= 0x7FFFFFF0u) { r = lmu__bpe_fail(L->err, L->errcap, line, "too many merges", NULL, 0); goto done; }
        made_line[c] = (int32_t)line;
        rank[c] = (int32_t)nmerges++;
        i = end + 1;
    }
    /* tiktoken's consistency check: every token is a byte, a merge result or
       the special token (a cut vocab.bpe fails here) */
    for (e = 0; e < n; e++)
        if (t->tok_off[e + 1] - t->tok_off[e] > 1 && !made_line[e] && e != t->eot) {
            lmu__errf(L->err, L->errcap, "vocab.bpe: no merge makes token id %ld (of %ld; the file may be truncated after %lu merges)",
                      (long)e, (long)n, (unsigned long)nmerges);
            r = LMU_ERR_FORMAT; goto done;
        }

    /* whole-piece table over the mergeable tokens */
    for (nslots = 16; nslots < 2 * (size_t)n; nslots *= 2) {}
    t->whole = (lmu__wslot *)LMU_MALLOC(nslots * sizeof(lmu__wslot));
    if (!t->whole) { r = LMU_ERR_NOMEM; goto done; }
    t->whole_mask = (uint32_t)(nslots - 1);
    for (i = 0; i < nslots; i++) { t->whole[i].id = -1; t->whole[i].tag = 0; t->whole[i].head = 0; }
    for (e = 0; e < n; e++) {
        const unsigned char *p = t->tok_bytes + t->tok_off[e];
        size_t l = t->tok_off[e + 1] - t->tok_off[e];
        uint64_t head = lmu__head8(p, l);
        uint32_t h, s;
        if (l > 1 && !made_line[e]) continue;
        h = lmu__hash_bytes(p, l, head);
        for (s = h & t->whole_mask; t->whole[s].id >= 0; s = (s + 1) & t->whole_mask) {}
        t->whole[s].head = head;
        t->whole[s].tag = lmu__whole_tag(h, l);
        t->whole[s].id = e;
    }
    /* merge table: every split of a merge result into two mergeable tokens
       (tiktoken ranks a pair by its concatenation, not by the merge line) */
    for (e = 0; e < n; e++) {
        const unsigned char *p = t->tok_bytes + t->tok_off[e];
        size_t l = t->tok_off[e + 1] - t->tok_off[e], k;
        if (!made_line[e]) continue;
        for (k = 1; k < l; k++) {
            int32_t x = lmu__whole_get(t, p, k), y;
            lmu__merge_kv kv;
            if (x < 0) continue;
            y = lmu__whole_get(t, p + k, l - k);
            if (y < 0) continue;
            kv.key.a = x;
            kv.key.b = y;
            kv.value.rank = rank[e];
            kv.value.id = e;
            stbds_hmputs(merges, kv);
        }
    }
    /* ... flattened into the read-only table encode uses */
    for (nslots = 16; nslots < 2 * (size_t)stbds_hmlenu(merges); nslots *= 2) {}
    t->pairs = (lmu__pslot *)LMU_MALLOC(nslots * sizeof(lmu__pslot));
    if (!t->pairs) { r = LMU_ERR_NOMEM; goto done; }
    t->pair_mask = (uint32_t)(nslots - 1);
    for (i = 0; i < nslots; i++) { t->pairs[i].key = 0; t->pairs[i].rank = LMU__NO_RANK; t->pairs[i].id = -1; }
    for (i = 0; i < stbds_hmlenu(merges); i++) {
        uint64_t key = ((uint64_t)(uint32_t)merges[i].key.a << 32) | (uint32_t)merges[i].key.b;
        uint32_t s;
        for (s = lmu__pair_hash(key) & t->pair_mask; t->pairs[s].id >= 0; s = (s + 1) & t->pair_mask) {}
        t->pairs[s].key = key;
        t->pairs[s].rank = merges[i].value.rank;
        t->pairs[s].id = merges[i].value.id;
    }
    r = LMU_OK;
done:
    stbds_hmfree(merges);
    LMU_FREE(ent_of_id);
    LMU_FREE(rank);
    LMU_FREE(made_line);
    LMU_FREE(tmp);
    return r;
}

LMUDEF lmu_result lmu_tokenizer_load_memory(lmu_tokenizer **out, const char *encoder_json,
                                            size_t json_len, const char *vocab_bpe,
                                            size_t bpe_len, char *err, size_t errcap)
{
    lmu__loader L;
    lmu_tokenizer *t;
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!out) return LMU_ERR_ARG;
    *out = NULL;
    if ((!encoder_json && json_len) || (!vocab_bpe && bpe_len)) return LMU_ERR_ARG;
    memset(&L, 0, sizeof L);
    L.s = (const unsigned char *)encoder_json;
    L.n = json_len;
    L.err = err;
    L.errcap = errcap;
    t = (lmu_tokenizer *)LMU_MALLOC(sizeof *t);
    L.keybuf = (unsigned char *)LMU_MALLOC(json_len + 1);
    if (!t || !L.keybuf) { LMU_FREE(t); LMU_FREE(L.keybuf); return LMU_ERR_NOMEM; }
    memset(t, 0, sizeof *t);
    stbds_sh_new_arena(L.map);
    r = lmu__load(t, &L, (const unsigned char *)vocab_bpe, bpe_len);
    stbds_shfree(L.map);
    stbds_arrfree(L.ent_id);
    stbds_arrfree(L.ent_off);
    stbds_arrfree(L.ent_bytes);
    LMU_FREE(L.keybuf);
    if (r != LMU_OK) {
        if (r == LMU_ERR_NOMEM) lmu__errf(err, errcap, "out of memory loading the tokenizer");
        lmu_tokenizer_free(t);
        return r;
    }
    *out = t;
    return LMU_OK;
}

#ifndef LMU_NO_STDIO
/* Whole file into memory; files over 1 GiB are refused. */
LMU__PRIVATE lmu_result lmu__read_file(const char *path, char **data, size_t *len, char *err, size_t errcap)
{
    FILE *f;
    long sz;
    *data = NULL;
    *len = 0;
    f = fopen(path, "rb");
    if (!f) { lmu__errf(err, errcap, "%s: cannot open", path); return LMU_ERR_IO; }
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        lmu__errf(err, errcap, "%s: cannot seek", path);
        return LMU_ERR_IO;
    }
    if (sz > (1L << 30)) { fclose(f); lmu__errf(err, errcap, "%s: larger than 1 GiB", path); return LMU_ERR_FORMAT; }
    *data = (char *)LMU_MALLOC((size_t)sz + 1);
    if (!*data) { fclose(f); return LMU_ERR_NOMEM; }
    if (fread(*data, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        LMU_FREE(*data);
        *data = NULL;
        lmu__errf(err, errcap, "%s: read error", path);
        return LMU_ERR_IO;
    }
    fclose(f);
    *len = (size_t)sz;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tokenizer_load_files(lmu_tokenizer **out, const char *encoder_json_path,
                                           const char *vocab_bpe_path, char *err, size_t errcap)
{
    char *js = NULL, *bpe = NULL;
    size_t jn = 0, bn = 0;
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!out || !encoder_json_path || !vocab_bpe_path) return LMU_ERR_ARG;
    *out = NULL;
    r = lmu__read_file(encoder_json_path, &js, &jn, err, errcap);
    if (r == LMU_OK) r = lmu__read_file(vocab_bpe_path, &bpe, &bn, err, errcap);
    if (r == LMU_OK) r = lmu_tokenizer_load_memory(out, js, jn, bpe, bn, err, errcap);
    LMU_FREE(js);
    LMU_FREE(bpe);
    return r;
}
#endif

#endif
/* >>impl-end tokenizer */
