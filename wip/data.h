/* >>decl-begin data */
#ifndef LMU_PART_DATA_H
#define LMU_PART_DATA_H
#ifdef __cplusplus
extern "C" {
#endif

/* ====================================================================== */
/* >>data                                                                  */
/* ====================================================================== */
/*
   TOKEN FILES (what examples/prepare.c writes and train/eval read)

       offset  size  field
       0       8     magic "LMUTOKS\0"
       8       4     u32 version, 1
       12      4     u32 vocab_size, 1..65536
       16      8     u64 count, the number of ids
       24      8     u64 reserved, 0
       32      2*count  the ids, u16 each; every id < vocab_size
   All integers little-endian. The file is exactly 32 + 2 * count bytes:
   anything shorter or longer is refused, as is any id >= vocab_size, so a
   loaded token file never needs checking again.

       lmu_tokens tf;
       if (lmu_tokens_load_file(&tf, "data/brown.train.tok", err, sizeof err))
           ... err says why ...
       for (i = 0; i < tf.count; i++) use(tf.ids[i]);
       lmu_tokens_free(&tf);

   MODEL CONFIG FILES (what train --config reads)

       # lmu-55k with a longer memory window
       preset   = lmu-55k      # first, if present: the rest overrides it
       theta    = 1000
       n_ctx    = 256

   One `key = value` per line; `#` starts a comment (anywhere on a line);
   blank lines are fine; keys are lmu_config's field names plus "preset";
   values are decimal integers (theta: a decimal number), arch
   lmu|transformer, mixer ffn|attn. An unknown key, a key given twice, a
   value that does not parse or is out of range is an error that names the
   line. The parser only sets fields: call lmu_config_resolve afterwards
   (after any overrides of your own) to fill defaults and validate.
*/

#define LMU_TOKENS_MAGIC "LMUTOKS" /* 7 chars + the terminating NUL = 8 bytes */
#define LMU_TOKENS_VERSION 1u
#define LMU_TOKENS_HEADER_BYTES 32
#define LMU_TOKENS_MAX_VOCAB 65536

typedef struct lmu_tokens {
    uint32_t version;    /* LMU_TOKENS_VERSION */
    uint32_t vocab_size; /* every id is below this */
    uint64_t count;      /* number of ids */
    uint16_t *ids;       /* (count) host order; owned, free with lmu_tokens_free */
} lmu_tokens;

/* Writes a token file atomically (a temporary file in the same folder,
   flushed, then renamed over path; on failure path is untouched).
   [in] path, ids[n] (each in 0..vocab_size-1), vocab_size in 1..65536
   [out, optional] err  one-line reason
   Returns LMU_OK, LMU_ERR_ARG (bad vocab_size, NULL), LMU_ERR_RANGE (an id
   out of range: nothing is written), LMU_ERR_NOMEM, LMU_ERR_IO. */
#ifndef LMU_NO_STDIO
LMUDEF lmu_result lmu_tokens_write_file(const char *path, const int32_t *ids, size_t n,
                                        int vocab_size, char *err, size_t errcap);
#endif

/* Builds the 32-byte header for vocab_size and count (for writers that
   stream the ids themselves). Returns LMU_OK or LMU_ERR_ARG. */
LMUDEF lmu_result lmu_tokens_header(unsigned char out[LMU_TOKENS_HEADER_BYTES], int vocab_size,
                                    uint64_t count);

/* Parses a token file held in memory (any bytes: everything is checked)
   into tf, which then owns a copy of the ids.
   [out] tf   zeroed on failure, needing no free
   [in]  buf, len
   [out, optional] err  the reason, with the byte offset where it applies
   Returns LMU_OK, LMU_ERR_FORMAT (bad magic, version, vocab_size, size,
   reserved field, or an id >= vocab_size), LMU_ERR_NOMEM, LMU_ERR_ARG. */
LMUDEF lmu_result lmu_tokens_load_memory(lmu_tokens *tf, const void *buf, size_t len, char *err,
                                         size_t errcap);
#ifndef LMU_NO_STDIO
/* Reads the file and parses it as above; LMU_ERR_IO names the path and
   the system's reason. */
LMUDEF lmu_result lmu_tokens_load_file(lmu_tokens *tf, const char *path, char *err,
                                       size_t errcap);
#endif
/* Frees the ids and zeroes tf; safe on a zeroed tf. */
LMUDEF void lmu_tokens_free(lmu_tokens *tf);

/* Sets one lmu_config field from text, as a config file line would.
   [in,out] c    fields are set, nothing is resolved
   [in] key, value  NUL-terminated; key "preset" loads a preset over c
   [out, optional] err
   Returns LMU_OK, LMU_ERR_ARG (unknown key), LMU_ERR_FORMAT (the value does
   not parse), LMU_ERR_RANGE (it parses but is out of range). */
LMUDEF lmu_result lmu_config_set(lmu_config *c, const char *key, const char *value, char *err,
                                 size_t errcap);

/* Parses a config file's text (see MODEL CONFIG FILES) into c, on top of
   what c holds. Errors read "line 3: unknown key 'dmodel'".
   Returns LMU_OK or the first error (lmu_config_set's codes, LMU_ERR_FORMAT
   for a malformed line). Call lmu_config_resolve afterwards. */
LMUDEF lmu_result lmu_config_parse(lmu_config *c, const char *text, size_t len, char *err,
                                   size_t errcap);

/* A program's own keys in the same file (training settings...): called
   for every key before lmu_config's own handling. Return 1 when the key
   was yours (consumed), 0 to let the config have it, or -1 for an error
   (write the reason, without the line number, into err). */
typedef int (*lmu_config_key_fn)(void *user, const char *key, const char *value, char *err,
                                 size_t errcap);
LMUDEF lmu_result lmu_config_parse_ex(lmu_config *c, const char *text, size_t len,
                                      lmu_config_key_fn fn, void *user, char *err,
                                      size_t errcap);

/* Writes c as config-file text that lmu_config_parse reads back to the same
   config (every field, one per line). Returns the length it needs (like
   snprintf); the output is NUL-terminated when cap > 0. */
LMUDEF size_t lmu_config_format(const lmu_config *c, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
/* >>decl-end data */

/* >>impl-begin data */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_PART_DATA_IMPL_DONE)
#define LMU_PART_DATA_IMPL_DONE

#if !defined(LMU_NO_STDIO) && (defined(__unix__) || defined(__unix) ||                      \
                               (defined(__APPLE__) && defined(__MACH__)))
#define LMU__DATA_POSIX 1
#include <unistd.h>
#include <fcntl.h>
#else
#define LMU__DATA_POSIX 0
#endif
#ifndef LMU_NO_STDIO
#include <errno.h>
#endif

LMU__PRIVATE uint32_t lmu__data_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

LMU__PRIVATE uint64_t lmu__data_get64(const unsigned char *p)
{
    return (uint64_t)lmu__data_get32(p) | (uint64_t)lmu__data_get32(p + 4) << 32;
}

LMU__PRIVATE void lmu__data_put32(unsigned char *p, uint32_t v)
{
    int i;
    for (i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

LMU__PRIVATE void lmu__data_put64(unsigned char *p, uint64_t v)
{
    lmu__data_put32(p, (uint32_t)v);
    lmu__data_put32(p + 4, (uint32_t)(v >> 32));
}

LMUDEF lmu_result lmu_tokens_header(unsigned char out[LMU_TOKENS_HEADER_BYTES], int vocab_size,
                                    uint64_t count)
{
    if (!out || vocab_size < 1 || vocab_size > LMU_TOKENS_MAX_VOCAB) return LMU_ERR_ARG;
    memset(out, 0, LMU_TOKENS_HEADER_BYTES);
    memcpy(out, LMU_TOKENS_MAGIC, 8); /* the literal's NUL is byte 7 */
    lmu__data_put32(out + 8, LMU_TOKENS_VERSION);
    lmu__data_put32(out + 12, (uint32_t)vocab_size);
    lmu__data_put64(out + 16, count);
    return LMU_OK;
}

LMUDEF void lmu_tokens_free(lmu_tokens *tf)
{
    if (!tf) return;
    LMU_FREE(tf->ids);
    memset(tf, 0, sizeof *tf);
}

LMUDEF lmu_result lmu_tokens_load_memory(lmu_tokens *tf, const void *buf, size_t len, char *err,
                                         size_t errcap)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint32_t version, vocab;
    uint64_t count, reserved;
    size_t i, n, bytes;
    uint16_t *ids;
    if (err && errcap) err[0] = 0;
    if (!tf) return LMU_ERR_ARG;
    memset(tf, 0, sizeof *tf);
    if (!p && len) return LMU_ERR_ARG;
    if (len < LMU_TOKENS_HEADER_BYTES) {
        lmu__errf(err, errcap, "token file: %lu bytes, shorter than the %d-byte header",
                  (unsigned long)len, LMU_TOKENS_HEADER_BYTES);
        return LMU_ERR_FORMAT;
    }
    if (memcmp(p, LMU_TOKENS_MAGIC, 8) != 0) {
        lmu__errf(err, errcap, "token file: bad magic (not a token file; want \"LMUTOKS\")");
        return LMU_ERR_FORMAT;
    }
    version = lmu__data_get32(p + 8);
    vocab = lmu__data_get32(p + 12);
    count = lmu__data_get64(p + 16);
    reserved = lmu__data_get64(p + 24);
    if (version != LMU_TOKENS_VERSION) {
        lmu__errf(err, errcap, "token file: version %lu, this reader knows version %u",
                  (unsigned long)version, LMU_TOKENS_VERSION);
        return LMU_ERR_FORMAT;
    }
    if (vocab < 1 || vocab > LMU_TOKENS_MAX_VOCAB) {
        lmu__errf(err, errcap, "token file: vocab_size %lu outside 1..%d", (unsigned long)vocab,
                  LMU_TOKENS_MAX_VOCAB);
        return LMU_ERR_FORMAT;
    }
    if (reserved != 0) {
        lmu__errf(err, errcap, "token file: reserved header field (byte 24) is not 0");
        return LMU_ERR_FORMAT;
    }
    /* count must match the size exactly; compare without overflowing */
    bytes = len - LMU_TOKENS_HEADER_BYTES;
    if ((bytes & 1) || count != (uint64_t)(bytes / 2)) {
        lmu__errf(err, errcap, "token file: header says %llu tokens (%llu data bytes) but %lu "
                  "data bytes follow the header", (unsigned long long)count,
                  (unsigned long long)(count > ((uint64_t)-1) / 2 ? (uint64_t)-1 : count * 2),
                  (unsigned long)bytes);
        return LMU_ERR_FORMAT;
    }
    n = bytes / 2;
    ids = (uint16_t *)LMU_MALLOC(n ? n * sizeof(uint16_t) : 1);
    if (!ids) {
        lmu__errf(err, errcap, "token file: out of memory for %lu tokens", (unsigned long)n);
        return LMU_ERR_NOMEM;
    }
    p += LMU_TOKENS_HEADER_BYTES;
    for (i = 0; i < n; i++) {
        uint32_t id = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
        if (id >= vocab) {
            lmu__errf(err, errcap, "token file: id %lu at token %lu (byte %lu) is not below "
                      "vocab_size %lu", (unsigned long)id, (unsigned long)i,
                      (unsigned long)(LMU_TOKENS_HEADER_BYTES + 2 * i), (unsigned long)vocab);
            LMU_FREE(ids);
            return LMU_ERR_FORMAT;
        }
        ids[i] = (uint16_t)id;
    }
    tf->version = version;
    tf->vocab_size = vocab;
    tf->count = (uint64_t)n;
    tf->ids = ids;
    return LMU_OK;
}

#ifndef LMU_NO_STDIO

/* Reads a whole file into LMU_MALLOC'd memory (a NUL after the end, not
   counted, so text parsers may rely on it). */
LMU__PRIVATE lmu_result lmu__data_read_file(const char *path, unsigned char **out, size_t *len,
                                            const char *what, char *err, size_t errcap)
{
    FILE *f;
    unsigned char *b = NULL, *nb;
    size_t cap = 0, n = 0, got;
    *out = NULL;
    *len = 0;
    f = fopen(path, "rb");
    if (!f) {
        lmu__errf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        return LMU_ERR_IO;
    }
    for (;;) {
        if (cap - n < 65536) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            if (nc < cap) goto nomem;
            nb = (unsigned char *)LMU_REALLOC(b, nc + 1);
            if (!nb) goto nomem;
            b = nb;
            cap = nc;
        }
        got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        lmu__errf(err, errcap, "cannot read %s (%s): %s", path, what, strerror(errno));
        fclose(f);
        LMU_FREE(b);
        return LMU_ERR_IO;
    }
    fclose(f);
    b[n] = 0;
    *out = b;
    *len = n;
    return LMU_OK;
nomem:
    fclose(f);
    LMU_FREE(b);
    lmu__errf(err, errcap, "out of memory reading %s", path);
    return LMU_ERR_NOMEM;
}

LMUDEF lmu_result lmu_tokens_load_file(lmu_tokens *tf, const char *path, char *err,
                                       size_t errcap)
{
    unsigned char *buf;
    size_t len;
    char msg[256];
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!tf || !path) return LMU_ERR_ARG;
    memset(tf, 0, sizeof *tf);
    if ((r = lmu__data_read_file(path, &buf, &len, "token file", err, errcap)) != LMU_OK) return r;
    r = lmu_tokens_load_memory(tf, buf, len, msg, sizeof msg);
    LMU_FREE(buf);
    /* "token file: ..." becomes "PATH: ..." */
    if (r != LMU_OK)
        lmu__errf(err, errcap, "%s: %s", path,
                  strncmp(msg, "token file: ", 12) == 0 ? msg + 12 : msg);
    return r;
}

/* Writes chunks to a temporary file beside path and renames it over path:
   a reader sees the old file or the new one, never half of one. With
   POSIX the data and the rename are fsync'ed; elsewhere it is stdio with
   fflush, and remove-then-rename where rename cannot replace a file. */
LMU__PRIVATE lmu_result lmu__write_atomic(const char *path, const void *const *chunks,
                                          const size_t *sizes, int n_chunks, char *err,
                                          size_t errcap)
{
    size_t plen = strlen(path);
    char *tmp;
    FILE *f = NULL;
    int i, attempt, ok = 1;
    if (!*path) {
        lmu__errf(err, errcap, "empty output path");
        return LMU_ERR_ARG;
    }
    if (plen > (size_t)-1 - 64 || !(tmp = (char *)LMU_MALLOC(plen + 64))) {
        lmu__errf(err, errcap, "out of memory");
        return LMU_ERR_NOMEM;
    }
    for (attempt = 0; attempt < 100 && !f; attempt++) {
#if LMU__DATA_POSIX
        int fd;
        sprintf(tmp, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            break;
        }
        f = fdopen(fd, "wb");
        if (!f) {
            close(fd);
            remove(tmp);
            break;
        }
#else
        FILE *probe;
        sprintf(tmp, "%s.tmp.%lu.%d", path, (unsigned long)(((size_t)&f) >> 4), attempt);
        if ((probe = fopen(tmp, "rb")) != NULL) {
            fclose(probe);
            continue;
        }
        f = fopen(tmp, "wb");
        if (!f) break;
#endif
    }
    if (!f) {
        lmu__errf(err, errcap, "cannot create %s: %s", tmp, strerror(errno));
        LMU_FREE(tmp);
        return LMU_ERR_IO;
    }
    for (i = 0; i < n_chunks && ok; i++)
        if (sizes[i] && fwrite(chunks[i], 1, sizes[i], f) != sizes[i]) ok = 0;
    if (ok && fflush(f) != 0) ok = 0;
#if LMU__DATA_POSIX
    if (ok && fsync(fileno(f)) != 0) ok = 0;
#endif
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        lmu__errf(err, errcap, "cannot write %s: %s", tmp, strerror(errno));
        remove(tmp);
        LMU_FREE(tmp);
        return LMU_ERR_IO;
    }
    if (rename(tmp, path) != 0) {
#if !LMU__DATA_POSIX
        if (!(remove(path) == 0 && rename(tmp, path) == 0))
#endif
        {
            lmu__errf(err, errcap, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
            remove(tmp);
            LMU_FREE(tmp);
            return LMU_ERR_IO;
        }
    }
#if LMU__DATA_POSIX
    { /* make the rename durable (best effort) */
        char *slash = strrchr(strcpy(tmp, path), '/');
        int dfd;
        if (!slash) strcpy(tmp, ".");
        else slash[slash == tmp ? 1 : 0] = 0;
        dfd = open(tmp, O_RDONLY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
#endif
    LMU_FREE(tmp);
    return LMU_OK;
}

LMUDEF lmu_result lmu_tokens_write_file(const char *path, const int32_t *ids, size_t n,
                                        int vocab_size, char *err, size_t errcap)
{
    unsigned char hdr[LMU_TOKENS_HEADER_BYTES], *body;
    const void *chunks[2];
    size_t sizes[2], i, bytes;
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!path || (!ids && n)) return LMU_ERR_ARG;
    if (lmu_tokens_header(hdr, vocab_size, (uint64_t)n) != LMU_OK) {
        lmu__errf(err, errcap, "%s: vocab_size %d outside 1..%d", path, vocab_size,
                  LMU_TOKENS_MAX_VOCAB);
        return LMU_ERR_ARG;
    }
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size) {
            lmu__errf(err, errcap, "%s: id %ld at token %lu outside 0..%d", path, (long)ids[i],
                      (unsigned long)i, vocab_size - 1);
            return LMU_ERR_RANGE;
        }
    if (!lmu__mul_size(n, 2, &bytes) || !(body = (unsigned char *)LMU_MALLOC(bytes ? bytes : 1))) {
        lmu__errf(err, errcap, "%s: out of memory", path);
        return LMU_ERR_NOMEM;
    }
    for (i = 0; i < n; i++) {
        body[2 * i] = (unsigned char)(ids[i] & 0xff);
        body[2 * i + 1] = (unsigned char)(ids[i] >> 8);
    }
    chunks[0] = hdr, sizes[0] = sizeof hdr;
    chunks[1] = body, sizes[1] = bytes;
    r = lmu__write_atomic(path, chunks, sizes, 2, err, errcap);
    LMU_FREE(body);
    return r;
}

#endif /* LMU_NO_STDIO */

/* ---- config files ------------------------------------------------------ */

/* Decimal integer, digits only (a leading '+' or '-' is refused: every
   field is a count), in lo..hi. */
LMU__PRIVATE lmu_result lmu__data_int(const char *key, const char *v, long lo, long hi, int *out,
                                      char *err, size_t errcap)
{
    long x = 0;
    const char *s = v;
    if (!*s) goto bad;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') goto bad;
        x = x * 10 + (*s - '0');
        if (x > hi) x = hi + 1; /* stays small: no overflow on long inputs */
    }
    if (x < lo || x > hi) {
        lmu__errf(err, errcap, "%s = %s is outside %ld..%ld", key, v, lo, hi);
        return LMU_ERR_RANGE;
    }
    *out = (int)x;
    return LMU_OK;
bad:
    lmu__errf(err, errcap, "%s = '%.40s' is not a whole number", key, v);
    return LMU_ERR_FORMAT;
}

LMUDEF lmu_result lmu_config_set(lmu_config *c, const char *key, const char *v, char *err,
                                 size_t errcap)
{
    /* int fields: name, offset, range (the same limits as lmu_config_resolve) */
    static const struct {
        const char *name;
        size_t off;
        long lo, hi;
    } ints[] = {
        {"vocab_size", offsetof(lmu_config, vocab_size), 2, 1L << 24},
        {"n_ctx", offsetof(lmu_config, n_ctx), 1, 1L << 20},
        {"d_model", offsetof(lmu_config, d_model), 1, 1L << 16},
        {"n_layer", offsetof(lmu_config, n_layer), 1, 1024},
        {"q", offsetof(lmu_config, q), 1, 4096},
        {"q_prime", offsetof(lmu_config, q_prime), 1, 4096},
        {"d_pre", offsetof(lmu_config, d_pre), 1, 1L << 16},
        {"d_ff", offsetof(lmu_config, d_ff), 1, 1L << 16},
        {"n_head", offsetof(lmu_config, n_head), 1, 1L << 16},
    };
    size_t i;
    if (err && errcap) err[0] = 0;
    if (!c || !key || !v) return LMU_ERR_ARG;
    for (i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(key, ints[i].name) == 0)
            return lmu__data_int(key, v, ints[i].lo, ints[i].hi,
                                 (int *)(void *)((char *)c + ints[i].off), err, errcap);
    if (strcmp(key, "theta") == 0) {
        /* strtod on a bounded copy: digits, one '.', an exponent; no
           hex, inf or nan, which strtod would take */
        char buf[64], *end;
        double x;
        size_t k, n = strlen(v);
        if (n == 0 || n >= sizeof buf) goto bad_theta;
        for (k = 0; k < n; k++)
            if (!strchr("0123456789.eE+-", v[k])) goto bad_theta;
        memcpy(buf, v, n + 1);
        x = strtod(buf, &end);
        if (end != buf + n) goto bad_theta;
        if (!(x > 0) || x > 1e9) {
            lmu__errf(err, errcap, "theta = %s must be in (0, 1e9]", v);
            return LMU_ERR_RANGE;
        }
        c->theta = x;
        return LMU_OK;
    bad_theta:
        lmu__errf(err, errcap, "theta = '%.40s' is not a number", v);
        return LMU_ERR_FORMAT;
    }
    if (strcmp(key, "arch") == 0) {
        if (strcmp(v, "lmu") == 0) c->arch = LMU_ARCH_LMU;
        else if (strcmp(v, "transformer") == 0) c->arch = LMU_ARCH_TRANSFORMER;
        else {
            lmu__errf(err, errcap, "arch = '%.40s': want lmu or transformer", v);
            return LMU_ERR_FORMAT;
        }
        return LMU_OK;
    }
    if (strcmp(key, "mixer") == 0) {
        int k;
        for (k = 0; k < (int)LMU_MIXER_COUNT; k++)
            if (strcmp(v, lmu_mixer_name((lmu_mixer)k)) == 0) {
                c->mixer = (lmu_mixer)k;
                return LMU_OK;
            }
        lmu__errf(err, errcap, "mixer = '%.40s': want ffn or attn", v);
        return LMU_ERR_FORMAT;
    }
    if (strcmp(key, "preset") == 0) {
        lmu_config p;
        if (lmu_config_preset(&p, v) != LMU_OK) {
            lmu__errf(err, errcap, "unknown preset '%.40s' (lmu-55k ... lmu-1m, lmu-55k-attn ..., "
                      "transformer-55k ...)", v);
            return LMU_ERR_FORMAT;
        }
        *c = p;
        return LMU_OK;
    }
    lmu__errf(err, errcap, "unknown key '%.40s'", key);
    return LMU_ERR_ARG;
}

LMU__PRIVATE int lmu__data_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

LMUDEF lmu_result lmu_config_parse_ex(lmu_config *c, const char *text, size_t len,
                                      lmu_config_key_fn fn, void *user, char *err, size_t errcap)
{
    /* keys seen so far, so a repeated key is an error (a typo'd duplicate
       would otherwise silently win) */
    static const char *const known[] = {"preset", "arch",  "mixer", "vocab_size", "n_ctx",
                                        "d_model", "n_layer", "q",  "q_prime",  "theta",
                                        "d_pre",  "d_ff",  "n_head"};
    int seen[sizeof known / sizeof known[0]];
    size_t pos = 0;
    long line = 0;
    int n_keys = 0;
    char msg[200];
    if (err && errcap) err[0] = 0;
    if (!c || (!text && len)) return LMU_ERR_ARG;
    memset(seen, 0, sizeof seen);
    while (pos < len) {
        char key[64], val[128];
        size_t a = pos, b, e, k, eq;
        int handled = 0;
        lmu_result r;
        line++;
        while (pos < len && text[pos] != '\n') pos++;
        e = pos; /* line is text[a..e) */
        if (pos < len) pos++;
        for (k = a; k < e; k++) {
            if (text[k] == '#') break;
            if (text[k] == 0) {
                lmu__errf(err, errcap, "line %ld: NUL byte", line);
                return LMU_ERR_FORMAT;
            }
        }
        e = k; /* comment dropped */
        while (a < e && lmu__data_space(text[a])) a++;
        while (e > a && lmu__data_space(text[e - 1])) e--;
        if (a == e) continue;
        for (eq = a; eq < e && text[eq] != '='; eq++) {}
        if (eq == e) {
            lmu__errf(err, errcap, "line %ld: expected 'key = value'", line);
            return LMU_ERR_FORMAT;
        }
        b = eq;
        while (b > a && lmu__data_space(text[b - 1])) b--;
        if (b == a || b - a >= sizeof key) {
            lmu__errf(err, errcap, "line %ld: %s key", line, b == a ? "missing" : "overlong");
            return LMU_ERR_FORMAT;
        }
        memcpy(key, text + a, b - a);
        key[b - a] = 0;
        for (k = 0; key[k]; k++)
            if (!(key[k] == '_' || key[k] == '-' || key[k] == '.' ||
                  (key[k] >= 'a' && key[k] <= 'z') || (key[k] >= 'A' && key[k] <= 'Z') ||
                  (key[k] >= '0' && key[k] <= '9'))) {
                lmu__errf(err, errcap, "line %ld: bad character in key", line);
                return LMU_ERR_FORMAT;
            }
        a = eq + 1;
        while (a < e && lmu__data_space(text[a])) a++;
        if (a == e || e - a >= sizeof val) {
            lmu__errf(err, errcap, "line %ld: %s value for '%s'", line,
                      a == e ? "missing" : "overlong", key);
            return LMU_ERR_FORMAT;
        }
        memcpy(val, text + a, e - a);
        val[e - a] = 0;
        if (fn) {
            msg[0] = 0;
            handled = fn(user, key, val, msg, sizeof msg);
            if (handled < 0) {
                lmu__errf(err, errcap, "line %ld: %s", line, msg[0] ? msg : "bad setting");
                return LMU_ERR_ARG;
            }
        }
        if (handled) continue;
        for (k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(key, known[k]) == 0) break;
        if (k < sizeof known / sizeof known[0]) {
            if (seen[k]) {
                lmu__errf(err, errcap, "line %ld: '%s' already set on line %d", line, key, seen[k]);
                return LMU_ERR_FORMAT;
            }
            if (k == 0 && n_keys > 0) {
                lmu__errf(err, errcap, "line %ld: 'preset' must come before other keys", line);
                return LMU_ERR_FORMAT;
            }
            seen[k] = line > 0x7fffffffL ? 0x7fffffff : (int)line;
        }
        n_keys++;
        if ((r = lmu_config_set(c, key, val, msg, sizeof msg)) != LMU_OK) {
            lmu__errf(err, errcap, "line %ld: %s", line, msg);
            return r;
        }
    }
    return LMU_OK;
}

LMUDEF lmu_result lmu_config_parse(lmu_config *c, const char *text, size_t len, char *err,
                                   size_t errcap)
{
    return lmu_config_parse_ex(c, text, len, NULL, NULL, err, errcap);
}

LMUDEF size_t lmu_config_format(const lmu_config *c, char *buf, size_t cap)
{
    char tmp[1024];
    int n;
    if (!c) return 0;
    n = snprintf(tmp, sizeof tmp, "arch = %s\nmixer = %s\n", lmu_arch_name(c->arch),
                 lmu_mixer_name(c->mixer));
    /* zero fields (defaults, or unused by this arch) are left out: the
       parser refuses 0 and resolve gives the same value back */
#define LMU__FMT_INT(name)                                                     \
    if (c->name > 0 && n > 0 && (size_t)n < sizeof tmp)                        \
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, #name " = %d\n", c->name);
    LMU__FMT_INT(vocab_size)
    LMU__FMT_INT(n_ctx)
    LMU__FMT_INT(d_model)
    LMU__FMT_INT(n_layer)
    LMU__FMT_INT(q)
    LMU__FMT_INT(q_prime)
    LMU__FMT_INT(d_pre)
    LMU__FMT_INT(d_ff)
    LMU__FMT_INT(n_head)
#undef LMU__FMT_INT
    if (c->theta > 0 && n > 0 && (size_t)n < sizeof tmp)
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, "theta = %.17g\n", c->theta);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof tmp) n = (int)sizeof tmp - 1;
    if (buf && cap) {
        size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
        memcpy(buf, tmp, k);
        buf[k] = 0;
    }
    return (size_t)n;
}

#endif
/* >>impl-end data */
