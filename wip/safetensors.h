/* >>decl-begin safetensors */
#ifndef LMU_PART_SAFETENSORS_H
#define LMU_PART_SAFETENSORS_H
#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------- */
/* >>safetensors                                                           */
/* ---------------------------------------------------------------------- */
/* Checkpoints in the safetensors format, read and written safely.

   FILE LAYOUT
       u64 N (little-endian) | N bytes of JSON header | data section
   The header maps each tensor name to
       {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
   with offsets relative to the start of the data section, plus an optional
   "__metadata__": {"key": "value", ...} of strings. Tensor bytes are
   little-endian.

   WRITING (lmu_st_write, lmu_st_save_memory, lmu_st_save_file)
       - "__metadata__" comes first (when n_meta > 0), then the tensors in the
         order given; their data follows in that same order with contiguous
         offsets. Put 8-byte dtypes first if you want every tensor naturally
         aligned in the file (the data section starts 8-byte aligned).
       - The header is padded with spaces so the data section starts at a
         multiple of 8, as the reference writer does.
       - Tensor data is taken in host byte order and written little-endian:
         raw on little-endian hosts, byte-swapped otherwise (detected at run
         time). Floats are assumed IEEE-754 with the integers' byte order.
       - Names, keys and values must be valid UTF-8; names must be unique and
         not "__metadata__", keys unique. Breaking a rule returns LMU_ERR_ARG
         before anything is written.
       - lmu_st_save_file is atomic: it writes PATH.tmp.<pid>.<k> in the same
         folder, flushes and fsyncs it (POSIX), then rename()s it over PATH.
         On any failure the temporary file is removed and PATH is untouched.
         Without POSIX (detected by __unix__ / __APPLE__) it uses stdio with
         fflush only, and where rename() cannot replace a file (Windows) it
         removes PATH first, which is not atomic.

   READING (lmu_st_load_memory, lmu_st_load_file)
       Everything in the file is checked before any of it is used; a bad file
       returns LMU_ERR_FORMAT with a message naming the header byte offset
       and the tensor. The rules:
       - the file has at least 8 bytes; N <= file size - 8 and N <= 100 MB;
       - the header is one JSON object (RFC 8259: strings with all escapes,
         \uXXXX surrogate pairs checked, UTF-8 checked, no control
         characters), optionally surrounded by JSON whitespace (the writer's
         space padding); anything after it is refused;
       - each tensor entry is an object with exactly one "dtype" (a known
         name), "shape" (at most LMU_ST_MAX_DIMS non-negative integers) and
         "data_offsets" (two non-negative integers, begin <= end); unknown
         fields are skipped (as the reference reader does), JSON nested
         deeper than 64 levels is refused;
       - numbers are plain integers: no sign, fraction, exponent or leading
         zero, and they must fit in size_t;
       - prod(shape) * dtype size (overflow-checked) == end - begin;
       - end <= data section size, and the tensors, sorted by offset, cover
         the data section exactly: no overlap, no hole, no trailing bytes
         (the reference reader refuses the same files);
       - names are unique; a name, key or value may not contain U+0000;
       - "__metadata__" appears at most once, is an object, and its values
         are strings with unique keys.
       Memory is proportional to the number of tensors: the header is parsed
       twice, once to count and check, once to fill arrays sized by the first
       pass (cgltf's count-then-fill, without a token array).

   ERRORS
       Every fallible function takes (char *err, size_t errcap) and writes a
       NUL-terminated message there on failure; err may be NULL. */

#define LMU_ST_MAX_DIMS 8

/* name, header string, element size in bytes */
#define LMU__ST_DTYPES(X)                                                      \
    X(LMU_ST_BOOL, "BOOL", 1)                                                  \
    X(LMU_ST_U8, "U8", 1)                                                      \
    X(LMU_ST_I8, "I8", 1)                                                      \
    X(LMU_ST_F8_E5M2, "F8_E5M2", 1)                                            \
    X(LMU_ST_F8_E4M3, "F8_E4M3", 1)                                            \
    X(LMU_ST_I16, "I16", 2)                                                    \
    X(LMU_ST_U16, "U16", 2)                                                    \
    X(LMU_ST_F16, "F16", 2)                                                    \
    X(LMU_ST_BF16, "BF16", 2)                                                  \
    X(LMU_ST_I32, "I32", 4)                                                    \
    X(LMU_ST_U32, "U32", 4)                                                    \
    X(LMU_ST_F32, "F32", 4)                                                    \
    X(LMU_ST_I64, "I64", 8)                                                    \
    X(LMU_ST_U64, "U64", 8)                                                    \
    X(LMU_ST_F64, "F64", 8)

typedef enum lmu_st_dtype {
    LMU_ST_INVALID = 0,
#define LMU__ST_DTYPE_ENUM(e, s, sz) e,
    LMU__ST_DTYPES(LMU__ST_DTYPE_ENUM)
#undef LMU__ST_DTYPE_ENUM
    LMU_ST_DTYPE_COUNT
} lmu_st_dtype;

/* One tensor. Writer input: name, dtype, ndim, shape, data (host byte order,
   element type matching dtype: float for F32, int64_t for I64, ...); nbytes
   and offset are ignored. Reader output: all fields set; data points at the
   tensor's little-endian bytes inside the loaded buffer, possibly
   unaligned, so read it through lmu_st_read_f32 / lmu_st_read. */
typedef struct lmu_st_tensor {
    const char *name;
    lmu_st_dtype dtype;
    int ndim;                       /* 0 (scalar) .. LMU_ST_MAX_DIMS */
    size_t shape[LMU_ST_MAX_DIMS];  /* shape[0..ndim-1] */
    const void *data;
    size_t nbytes;                  /* reader: prod(shape) * dtype size */
    size_t offset;                  /* reader: begin in the data section */
} lmu_st_tensor;

typedef struct lmu_st_meta {
    const char *key;
    const char *value;
} lmu_st_meta;

/* Where lmu_st_write sends bytes. write returns 0 on success and non-zero
   on failure (the writer then stops and returns LMU_ERR_IO). */
typedef struct lmu_st_sink {
    int (*write)(void *user, const void *bytes, size_t n);
    void *user;
} lmu_st_sink;

/* A loaded file. Zero it or let a loader fill it; free with lmu_st_close.
   tensors and meta are in header order; their strings live in the file
   object; tensor data lives in the buffer (lmu_st_load_memory borrows the
   caller's buffer, which must outlive the object). */
typedef struct lmu_st_file {
    size_t n_tensors;
    const lmu_st_tensor *tensors;
    size_t n_meta;
    const lmu_st_meta *meta;
    const unsigned char *data; /* the data section */
    size_t data_len;
    size_t header_len;         /* N */
    /* private */
    void *lmu__block;          /* arrays, name index and strings */
    void *lmu__owned;          /* file contents read by lmu_st_load_file */
    const size_t *lmu__by_name;   /* tensor indices sorted by name */
    const size_t *lmu__meta_by_key;
} lmu_st_file;

/* Element size in bytes (0 for an invalid dtype), header name ("?" for an
   invalid dtype), and the reverse (LMU_ST_INVALID when unknown). */
LMUDEF size_t lmu_st_dtype_size(lmu_st_dtype d);
LMUDEF const char *lmu_st_dtype_name(lmu_st_dtype d);
LMUDEF lmu_st_dtype lmu_st_dtype_from_name(const char *name);

/* Writes a whole file to a sink.
   [in] sink, tensors[n_tensors], meta[n_meta] (meta may be NULL if n_meta
   is 0); [out, optional] err[errcap].
   Returns LMU_OK, LMU_ERR_ARG (bad description, nothing written),
   LMU_ERR_NOMEM, LMU_ERR_IO (the sink failed).
   See also lmu_st_save_memory, lmu_st_save_file. */
LMUDEF lmu_result lmu_st_write(const lmu_st_sink *sink, const lmu_st_tensor *tensors,
                               size_t n_tensors, const lmu_st_meta *meta, size_t n_meta,
                               char *err, size_t errcap);

/* Like lmu_st_write into one LMU_MALLOC'd buffer.
   [out] *out (free with lmu_st_free_memory), *out_len. */
LMUDEF lmu_result lmu_st_save_memory(const lmu_st_tensor *tensors, size_t n_tensors,
                                     const lmu_st_meta *meta, size_t n_meta,
                                     unsigned char **out, size_t *out_len,
                                     char *err, size_t errcap);
LMUDEF void lmu_st_free_memory(void *p);

/* Parses and validates a file held in memory; buf is borrowed (not copied)
   and must outlive f. On failure f is left zeroed and needs no close.
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_FORMAT, LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_st_load_memory(lmu_st_file *f, const void *buf, size_t len,
                                     char *err, size_t errcap);

#ifndef LMU_NO_STDIO
/* Atomic save (see WRITING). Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_NOMEM,
   LMU_ERR_IO; on failure PATH keeps its old contents and no temporary file
   remains. */
LMUDEF lmu_result lmu_st_save_file(const char *path, const lmu_st_tensor *tensors,
                                   size_t n_tensors, const lmu_st_meta *meta,
                                   size_t n_meta, char *err, size_t errcap);
/* Reads the whole file and calls lmu_st_load_memory on it (the object owns
   the bytes). Returns LMU_ERR_IO when it cannot be read. */
LMUDEF lmu_result lmu_st_load_file(lmu_st_file *f, const char *path, char *err, size_t errcap);
#endif

/* Frees what a loader allocated and zeroes f. Safe on a zeroed object. */
LMUDEF void lmu_st_close(lmu_st_file *f);

/* Lookup by exact name / key (binary search); NULL when absent. */
LMUDEF const lmu_st_tensor *lmu_st_find(const lmu_st_file *f, const char *name);
LMUDEF const char *lmu_st_meta_get(const lmu_st_file *f, const char *key);

/* Copies tensor NAME into dst as float32, after checking that its shape is
   exactly shape[0..ndim-1]. F32 is copied bit-exactly; F64, F16 and BF16 are
   converted (round to nearest). dst holds prod(shape) floats.
   Returns LMU_OK, LMU_ERR_FORMAT (missing, or a dtype that is not a float),
   LMU_ERR_SHAPE (message shows both shapes), LMU_ERR_ARG. */
LMUDEF lmu_result lmu_st_read_f32(const lmu_st_file *f, const char *name,
                                  const size_t *shape, int ndim, float *dst,
                                  char *err, size_t errcap);

/* Copies tensor NAME into dst in host byte order, requiring exactly this
   dtype and shape (dst holds prod(shape) * lmu_st_dtype_size(dtype) bytes).
   For step counters (I64), token positions (I32/I64), flags (U8)... */
LMUDEF lmu_result lmu_st_read(const lmu_st_file *f, const char *name, lmu_st_dtype dtype,
                              const size_t *shape, int ndim, void *dst,
                              char *err, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
/* >>decl-end safetensors */

/* >>impl-begin safetensors */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_PART_SAFETENSORS_IMPL_DONE)
#define LMU_PART_SAFETENSORS_IMPL_DONE

/* POSIX gives open(O_EXCL)/fsync for the atomic save. unistd.h declares them
   even under strict -std=c99 (glibc, macOS), so no feature macro is needed
   and none is defined: one here would come too late after lmu.h's own
   includes anyway. LMU_ST_NO_POSIX forces the plain-stdio fallback (for
   testing it on a POSIX machine). */
#if !defined(LMU_NO_STDIO) && !defined(LMU_ST_NO_POSIX) &&                      \
    (defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__)))
#define LMU__ST_POSIX 1
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#else
#define LMU__ST_POSIX 0
#endif

#define LMU__ST_MAX_HEADER ((size_t)100000000) /* the reference reader's cap */
#define LMU__ST_MAX_DEPTH 64

/* ---- dtypes ----------------------------------------------------------- */

LMUDEF size_t lmu_st_dtype_size(lmu_st_dtype d)
{
    switch (d) {
#define LMU__ST_DTYPE_SIZE(e, s, sz)                                           \
    case e: return sz;
        LMU__ST_DTYPES(LMU__ST_DTYPE_SIZE)
#undef LMU__ST_DTYPE_SIZE
    default: return 0;
    }
}

LMUDEF const char *lmu_st_dtype_name(lmu_st_dtype d)
{
    switch (d) {
#define LMU__ST_DTYPE_NAME(e, s, sz)                                           \
    case e: return s;
        LMU__ST_DTYPES(LMU__ST_DTYPE_NAME)
#undef LMU__ST_DTYPE_NAME
    default: return "?";
    }
}

/* name need not be NUL-terminated: len bytes are compared. */
LMU__PRIVATE lmu_st_dtype lmu__st_dtype_lookup(const char *name, size_t len)
{
    int d;
    for (d = 1; d < (int)LMU_ST_DTYPE_COUNT; d++) {
        const char *s = lmu_st_dtype_name((lmu_st_dtype)d);
        if (strlen(s) == len && memcmp(s, name, len) == 0) return (lmu_st_dtype)d;
    }
    return LMU_ST_INVALID;
}

LMUDEF lmu_st_dtype lmu_st_dtype_from_name(const char *name)
{
    if (!name) return LMU_ST_INVALID;
    return lmu__st_dtype_lookup(name, strlen(name));
}

/* ---- small helpers ---------------------------------------------------- */

/* Byte order probed through memcpy, never through a pointer cast. */
LMU__PRIVATE int lmu__st_host_le(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

LMU__PRIVATE uint64_t lmu__st_get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    while (n--) v = (v << 8) | p[n];
    return v;
}

/* Reverses each size-byte element of src into dst (count elements). */
LMU__PRIVATE void lmu__st_swap(unsigned char *dst, const unsigned char *src, size_t count,
                               size_t size)
{
    size_t i, k;
    for (i = 0; i < count; i++)
        for (k = 0; k < size; k++) dst[i * size + k] = src[i * size + size - 1 - k];
}

/* Length (1..4) of the valid UTF-8 sequence at s, or 0 if it is invalid
   (overlong forms, UTF-16 surrogates and code points past U+10FFFF are). */
LMU__PRIVATE size_t lmu__st_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t len, i;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (avail < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

LMU__PRIVATE int lmu__st_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t k = lmu__st_utf8_len(p + i, n - i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

/* prod(shape) * esize into *out; 0 on overflow. A zero dimension makes the
   product 0 whatever the others are. */
LMU__PRIVATE int lmu__st_nbytes(const size_t *shape, int ndim, size_t esize, size_t *out)
{
    size_t n = esize;
    int i;
    for (i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            *out = 0;
            return 1;
        }
    for (i = 0; i < ndim; i++)
        if (!lmu__mul_size(n, shape[i], &n)) return 0;
    *out = n;
    return 1;
}

/* Formats "[2, 3]" into buf (truncating safely). */
LMU__PRIVATE void lmu__st_shape_str(char *buf, size_t cap, const size_t *shape, int ndim)
{
    size_t used = 0;
    int i;
    if (cap == 0) return;
    buf[0] = 0;
    for (i = -1; i <= ndim && used + 1 < cap; i++) {
        int w;
        if (i == -1) w = snprintf(buf + used, cap - used, "[");
        else if (i == ndim) w = snprintf(buf + used, cap - used, "]");
        else
            w = snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "",
                         (unsigned long long)shape[i]);
        if (w < 0) break;
        used += (size_t)w;
        if (used >= cap) used = cap - 1;
    }
}

/* ====================================================================== */
/* Writer                                                                  */
/* ====================================================================== */

/* The header is produced twice: once with buf == NULL to measure it, once
   into a buffer of exactly that size. */
typedef struct lmu__st_out {
    char *buf;
    size_t len;
} lmu__st_out;

LMU__PRIVATE void lmu__st_put(lmu__st_out *o, const char *s, size_t n)
{
    if (o->buf) memcpy(o->buf + o->len, s, n);
    o->len += n;
}

LMU__PRIVATE void lmu__st_puts(lmu__st_out *o, const char *s) { lmu__st_put(o, s, strlen(s)); }

LMU__PRIVATE void lmu__st_put_uint(lmu__st_out *o, size_t v)
{
    char tmp[3 * sizeof(size_t) + 1];
    size_t n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    lmu__st_put(o, tmp + sizeof tmp - n, n);
}

/* A JSON string literal; s is valid UTF-8 (checked earlier). */
LMU__PRIVATE void lmu__st_put_str(lmu__st_out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    lmu__st_put(o, "\"", 1);
    for (; *p; p++) {
        char e[6];
        if (*p == '"') lmu__st_put(o, "\\\"", 2);
        else if (*p == '\\') lmu__st_put(o, "\\\\", 2);
        else if (*p == '\n') lmu__st_put(o, "\\n", 2);
        else if (*p == '\t') lmu__st_put(o, "\\t", 2);
        else if (*p == '\r') lmu__st_put(o, "\\r", 2);
        else if (*p < 0x20) {
            e[0] = '\\'; e[1] = 'u'; e[2] = '0'; e[3] = '0';
            e[4] = hex[*p >> 4]; e[5] = hex[*p & 15];
            lmu__st_put(o, e, 6);
        } else
            lmu__st_put(o, (const char *)p, 1);
    }
    lmu__st_put(o, "\"", 1);
}

LMU__PRIVATE int lmu__st_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks the description; on success *data_len is the data section size. */
LMU__PRIVATE lmu_result lmu__st_check_desc(const lmu_st_tensor *t, size_t nt,
                                           const lmu_st_meta *m, size_t nm,
                                           size_t *data_len, char *err, size_t errcap)
{
    size_t i, total = 0, nmax = nt > nm ? nt : nm;
    const char **names;
    lmu_result r = LMU_OK;
    if ((nt && !t) || (nm && !m)) {
        lmu__errf(err, errcap, "safetensors write: NULL tensor or metadata array");
        return LMU_ERR_ARG;
    }
    for (i = 0; i < nt; i++) {
        size_t nb, es = lmu_st_dtype_size(t[i].dtype);
        if (!t[i].name) {
            lmu__errf(err, errcap, "safetensors write: tensor %llu has no name", (unsigned long long)i);
            return LMU_ERR_ARG;
        }
        if (!lmu__st_utf8_valid(t[i].name) || strcmp(t[i].name, "__metadata__") == 0) {
            lmu__errf(err, errcap, "safetensors write: tensor %llu: name '%.64s' is not valid UTF-8 or is reserved",
                      (unsigned long long)i, t[i].name);
            return LMU_ERR_ARG;
        }
        if (strlen(t[i].name) > LMU__ST_MAX_HEADER / 8) {
            lmu__errf(err, errcap, "safetensors write: tensor %llu: name too long", (unsigned long long)i);
            return LMU_ERR_ARG;
        }
        if (es == 0) {
            lmu__errf(err, errcap, "safetensors write: tensor '%.64s': invalid dtype %d", t[i].name,
                      (int)t[i].dtype);
            return LMU_ERR_ARG;
        }
        if (t[i].ndim < 0 || t[i].ndim > LMU_ST_MAX_DIMS) {
            lmu__errf(err, errcap, "safetensors write: tensor '%.64s': ndim %d not in 0..%d",
                      t[i].name, t[i].ndim, LMU_ST_MAX_DIMS);
            return LMU_ERR_ARG;
        }
        if (!lmu__st_nbytes(t[i].shape, t[i].ndim, es, &nb) || total > (size_t)-1 - nb) {
            lmu__errf(err, errcap, "safetensors write: tensor '%.64s': size overflows size_t", t[i].name);
            return LMU_ERR_ARG;
        }
        if (nb && !t[i].data) {
            lmu__errf(err, errcap, "safetensors write: tensor '%.64s': data is NULL", t[i].name);
            return LMU_ERR_ARG;
        }
        total += nb;
    }
    for (i = 0; i < nm; i++) {
        if (!m[i].key || !m[i].value || !lmu__st_utf8_valid(m[i].key) ||
            !lmu__st_utf8_valid(m[i].value) || strlen(m[i].key) > LMU__ST_MAX_HEADER / 8 ||
            strlen(m[i].value) > LMU__ST_MAX_HEADER / 8) {
            lmu__errf(err, errcap, "safetensors write: metadata %llu: key or value NULL, too long or not valid UTF-8",
                      (unsigned long long)i);
            return LMU_ERR_ARG;
        }
    }
    /* uniqueness: sort copies of the pointers */
    if (nmax > 1) {
        size_t bytes;
        names = lmu__mul_size(nmax, sizeof *names, &bytes) ? (const char **)LMU_MALLOC(bytes) : NULL;
        if (!names) {
            lmu__errf(err, errcap, "safetensors write: out of memory");
            return LMU_ERR_NOMEM;
        }
        for (i = 0; i < nt; i++) names[i] = t[i].name;
        qsort((void *)names, nt, sizeof *names, lmu__st_cmp_str);
        for (i = 1; i < nt && r == LMU_OK; i++)
            if (strcmp(names[i - 1], names[i]) == 0) {
                lmu__errf(err, errcap, "safetensors write: duplicate tensor name '%.64s'", names[i]);
                r = LMU_ERR_ARG;
            }
        for (i = 0; i < nm; i++) names[i] = m[i].key;
        qsort((void *)names, nm, sizeof *names, lmu__st_cmp_str);
        for (i = 1; i < nm && r == LMU_OK; i++)
            if (strcmp(names[i - 1], names[i]) == 0) {
                lmu__errf(err, errcap, "safetensors write: duplicate metadata key '%.64s'", names[i]);
                r = LMU_ERR_ARG;
            }
        LMU_FREE((void *)names);
    }
    *data_len = total;
    return r;
}

/* Emits the JSON header (unpadded). Returns 0 when it passes the cap. */
LMU__PRIVATE int lmu__st_emit_header(lmu__st_out *o, const lmu_st_tensor *t, size_t nt,
                                     const lmu_st_meta *m, size_t nm)
{
    size_t i, off = 0;
    int d, first = 1;
    lmu__st_puts(o, "{");
    if (nm) {
        lmu__st_puts(o, "\"__metadata__\":{");
        for (i = 0; i < nm; i++) {
            if (i) lmu__st_puts(o, ",");
            lmu__st_put_str(o, m[i].key);
            lmu__st_puts(o, ":");
            lmu__st_put_str(o, m[i].value);
            if (o->len > LMU__ST_MAX_HEADER) return 0;
        }
        lmu__st_puts(o, "}");
        first = 0;
    }
    for (i = 0; i < nt; i++) {
        size_t nb = 0;
        lmu__st_nbytes(t[i].shape, t[i].ndim, lmu_st_dtype_size(t[i].dtype), &nb);
        if (!first) lmu__st_puts(o, ",");
        first = 0;
        lmu__st_put_str(o, t[i].name);
        lmu__st_puts(o, ":{\"dtype\":\"");
        lmu__st_puts(o, lmu_st_dtype_name(t[i].dtype));
        lmu__st_puts(o, "\",\"shape\":[");
        for (d = 0; d < t[i].ndim; d++) {
            if (d) lmu__st_puts(o, ",");
            lmu__st_put_uint(o, t[i].shape[d]);
        }
        lmu__st_puts(o, "],\"data_offsets\":[");
        lmu__st_put_uint(o, off);
        lmu__st_puts(o, ",");
        lmu__st_put_uint(o, off + nb);
        lmu__st_puts(o, "]}");
        off += nb;
        if (o->len > LMU__ST_MAX_HEADER) return 0;
    }
    lmu__st_puts(o, "}");
    return o->len <= LMU__ST_MAX_HEADER;
}

/* Builds "u64 N | header | padding" in one allocation. */
LMU__PRIVATE lmu_result lmu__st_build_header(const lmu_st_tensor *t, size_t nt,
                                             const lmu_st_meta *m, size_t nm,
                                             unsigned char **out, size_t *out_len,
                                             size_t *data_len, char *err, size_t errcap)
{
    lmu__st_out o;
    size_t n, padded, i;
    unsigned char *buf;
    lmu_result r = lmu__st_check_desc(t, nt, m, nm, data_len, err, errcap);
    if (r != LMU_OK) return r;
    o.buf = NULL;
    o.len = 0;
    if (!lmu__st_emit_header(&o, t, nt, m, nm) || o.len > LMU__ST_MAX_HEADER - 8) {
        lmu__errf(err, errcap, "safetensors write: header would exceed the %llu-byte limit",
                  (unsigned long long)LMU__ST_MAX_HEADER);
        return LMU_ERR_ARG;
    }
    n = o.len;
    padded = (n + 7) & ~(size_t)7;
    buf = (unsigned char *)LMU_MALLOC(8 + padded);
    if (!buf) {
        lmu__errf(err, errcap, "safetensors write: out of memory for a %llu-byte header",
                  (unsigned long long)padded);
        return LMU_ERR_NOMEM;
    }
    for (i = 0; i < 8; i++) buf[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xFF);
    o.buf = (char *)buf + 8;
    o.len = 0;
    lmu__st_emit_header(&o, t, nt, m, nm);
    LMU_ASSERT(o.len == n);
    memset(buf + 8 + n, ' ', padded - n);
    *out = buf;
    *out_len = 8 + padded;
    return LMU_OK;
}

/* host_le is a parameter so tests can drive the byte-swapping path on a
   little-endian machine. */
LMU__PRIVATE lmu_result lmu__st_write_ex(const lmu_st_sink *sink, const lmu_st_tensor *t,
                                         size_t nt, const lmu_st_meta *m, size_t nm,
                                         int host_le, char *err, size_t errcap)
{
    unsigned char *hdr = NULL;
    size_t hdr_len = 0, data_len = 0, done, i;
    lmu_result r;
    if (!sink || !sink->write) {
        lmu__errf(err, errcap, "safetensors write: no sink");
        return LMU_ERR_ARG;
    }
    r = lmu__st_build_header(t, nt, m, nm, &hdr, &hdr_len, &data_len, err, errcap);
    if (r != LMU_OK) return r;
    if (sink->write(sink->user, hdr, hdr_len) != 0) {
        LMU_FREE(hdr);
        lmu__errf(err, errcap, "safetensors write: sink failed writing the %llu-byte header",
                  (unsigned long long)hdr_len);
        return LMU_ERR_IO;
    }
    LMU_FREE(hdr);
    done = hdr_len;
    for (i = 0; i < nt; i++) {
        size_t es = lmu_st_dtype_size(t[i].dtype), nb = 0;
        const unsigned char *src = (const unsigned char *)t[i].data;
        int ok = 1;
        lmu__st_nbytes(t[i].shape, t[i].ndim, es, &nb);
        if (nb == 0) continue;
        if (host_le || es == 1) {
            ok = sink->write(sink->user, src, nb) == 0;
            if (ok) done += nb;
        } else {
            unsigned char chunk[4096]; /* a multiple of every element size */
            size_t pos = 0;
            while (ok && pos < nb) {
                size_t k = nb - pos < sizeof chunk ? nb - pos : sizeof chunk;
                lmu__st_swap(chunk, src + pos, k / es, es);
                ok = sink->write(sink->user, chunk, k) == 0;
                if (ok) {
                    pos += k;
                    done += k;
                }
            }
        }
        if (!ok) {
            lmu__errf(err, errcap,
                      "safetensors write: sink failed writing tensor '%.64s' (after %llu of %llu bytes)",
                      t[i].name, (unsigned long long)done, (unsigned long long)(hdr_len + data_len));
            return LMU_ERR_IO;
        }
    }
    return LMU_OK;
}

LMUDEF lmu_result lmu_st_write(const lmu_st_sink *sink, const lmu_st_tensor *tensors,
                               size_t n_tensors, const lmu_st_meta *meta, size_t n_meta,
                               char *err, size_t errcap)
{
    return lmu__st_write_ex(sink, tensors, n_tensors, meta, n_meta, lmu__st_host_le(), err,
                            errcap);
}

typedef struct lmu__st_memsink {
    unsigned char *buf;
    size_t len, cap;
} lmu__st_memsink;

LMU__PRIVATE int lmu__st_memsink_write(void *user, const void *bytes, size_t n)
{
    lmu__st_memsink *ms = (lmu__st_memsink *)user;
    if (n > ms->cap - ms->len) return 1;
    memcpy(ms->buf + ms->len, bytes, n);
    ms->len += n;
    return 0;
}

LMUDEF lmu_result lmu_st_save_memory(const lmu_st_tensor *tensors, size_t n_tensors,
                                     const lmu_st_meta *meta, size_t n_meta,
                                     unsigned char **out, size_t *out_len,
                                     char *err, size_t errcap)
{
    unsigned char *hdr = NULL;
    size_t hdr_len = 0, data_len = 0;
    lmu__st_memsink ms;
    lmu_st_sink sink;
    lmu_result r;
    if (!out || !out_len) {
        lmu__errf(err, errcap, "safetensors write: NULL output pointer");
        return LMU_ERR_ARG;
    }
    *out = NULL;
    *out_len = 0;
    /* Sized first (the header build is cheap next to the data copy). */
    r = lmu__st_build_header(tensors, n_tensors, meta, n_meta, &hdr, &hdr_len, &data_len, err,
                             errcap);
    if (r != LMU_OK) return r;
    LMU_FREE(hdr);
    if (data_len > (size_t)-1 - hdr_len) {
        lmu__errf(err, errcap, "safetensors write: file size overflows size_t");
        return LMU_ERR_ARG;
    }
    ms.cap = hdr_len + data_len;
    ms.len = 0;
    ms.buf = (unsigned char *)LMU_MALLOC(ms.cap ? ms.cap : 1);
    if (!ms.buf) {
        lmu__errf(err, errcap, "safetensors write: out of memory for %llu bytes",
                  (unsigned long long)ms.cap);
        return LMU_ERR_NOMEM;
    }
    sink.write = lmu__st_memsink_write;
    sink.user = &ms;
    r = lmu_st_write(&sink, tensors, n_tensors, meta, n_meta, err, errcap);
    if (r != LMU_OK) {
        LMU_FREE(ms.buf);
        return r;
    }
    *out = ms.buf;
    *out_len = ms.len;
    return LMU_OK;
}

LMUDEF void lmu_st_free_memory(void *p)
{
    if (p) LMU_FREE(p);
}

#ifndef LMU_NO_STDIO

/* Fault injection for tests (private): make the file save fail as a full
   disk, a failed fsync/close or a failed rename would. */
typedef struct lmu__st_fault {
    size_t fail_write_at; /* write fails once this many bytes are out; (size_t)-1: never */
    int fail_sync;
    int fail_rename;
} lmu__st_fault;

typedef struct lmu__st_filesink {
#if LMU__ST_POSIX
    int fd;
#else
    FILE *fp;
#endif
    size_t written, fail_at;
    int err_no; /* errno of the failing call, 0 if simulated */
} lmu__st_filesink;

LMU__PRIVATE int lmu__st_filesink_write(void *user, const void *bytes, size_t n)
{
    lmu__st_filesink *fs = (lmu__st_filesink *)user;
    const unsigned char *p = (const unsigned char *)bytes;
    int fail = 0;
    if (n > fs->fail_at - fs->written) { /* simulated full disk: a short write */
        n = fs->fail_at - fs->written;
        fail = 1;
    }
#if LMU__ST_POSIX
    while (n > 0) {
        size_t k = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(fs->fd, p, k);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            fs->err_no = w < 0 ? errno : 0;
            return 1;
        }
        p += (size_t)w;
        n -= (size_t)w;
        fs->written += (size_t)w;
    }
#else
    if (n > 0 && fwrite(p, 1, n, fs->fp) != n) {
        fs->err_no = 0;
        return 1;
    }
    fs->written += n;
#endif
    if (fail) fs->err_no = 0;
    return fail;
}

LMU__PRIVATE lmu_result lmu__st_save_file_ex(const char *path, const lmu_st_tensor *t, size_t nt,
                                             const lmu_st_meta *m, size_t nm,
                                             const lmu__st_fault *fault, char *err,
                                             size_t errcap)
{
    lmu__st_filesink fs;
    lmu_st_sink sink;
    lmu_result r;
    char *tmp;
    size_t plen, d, i;
    int opened = 0, attempt;
    char msg[256];
    if (!path || !*path) {
        lmu__errf(err, errcap, "safetensors save: empty path");
        return LMU_ERR_ARG;
    }
    /* Check the description before touching the disk. */
    r = lmu__st_check_desc(t, nt, m, nm, &d, err, errcap);
    if (r != LMU_OK) return r;
    plen = strlen(path);
    if (plen > (size_t)-1 - 64) return LMU_ERR_ARG;
    tmp = (char *)LMU_MALLOC(plen + 64);
    if (!tmp) {
        lmu__errf(err, errcap, "safetensors save: out of memory");
        return LMU_ERR_NOMEM;
    }
    memset(&fs, 0, sizeof fs);
    fs.fail_at = fault ? fault->fail_write_at : (size_t)-1;
    for (attempt = 0; attempt < 100 && !opened; attempt++) {
#if LMU__ST_POSIX
        sprintf(tmp, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        fs.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fs.fd >= 0) opened = 1;
        else if (errno != EEXIST) break;
#else
        FILE *probe;
        sprintf(tmp, "%s.tmp.%llu.%d", path, (unsigned long long)(((size_t)&fs) >> 4), attempt);
        probe = fopen(tmp, "rb"); /* no O_EXCL in C99: check, then create */
        if (probe) {
            fclose(probe);
            continue;
        }
        fs.fp = fopen(tmp, "wb");
        if (fs.fp) opened = 1;
        else break;
#endif
    }
    if (!opened) {
#if LMU__ST_POSIX
        lmu__errf(err, errcap, "safetensors save: cannot create '%.200s': %s", tmp, strerror(errno));
#else
        lmu__errf(err, errcap, "safetensors save: cannot create '%.200s'", tmp);
#endif
        LMU_FREE(tmp);
        return LMU_ERR_IO;
    }
    sink.write = lmu__st_filesink_write;
    sink.user = &fs;
    r = lmu_st_write(&sink, t, nt, m, nm, msg, sizeof msg);
    if (r != LMU_OK) {
        lmu__errf(err, errcap, "%s%s%s (temporary '%.200s' removed, '%.200s' untouched)", msg,
                  fs.err_no ? ": " : "", fs.err_no ? strerror(fs.err_no) : "", tmp, path);
        r = LMU_ERR_IO;
    }
#if LMU__ST_POSIX
    if (r == LMU_OK && (fsync(fs.fd) != 0 || (fault && fault->fail_sync))) {
        lmu__errf(err, errcap, "safetensors save: fsync of '%.200s' failed: %s", tmp,
                  (fault && fault->fail_sync) ? "simulated" : strerror(errno));
        r = LMU_ERR_IO;
    }
    if (close(fs.fd) != 0 && r == LMU_OK) {
        lmu__errf(err, errcap, "safetensors save: close of '%.200s' failed: %s", tmp, strerror(errno));
        r = LMU_ERR_IO;
    }
#else
    if (r == LMU_OK && (fflush(fs.fp) != 0 || (fault && fault->fail_sync))) {
        lmu__errf(err, errcap, "safetensors save: flushing '%.200s' failed", tmp);
        r = LMU_ERR_IO;
    }
    if (fclose(fs.fp) != 0 && r == LMU_OK) {
        lmu__errf(err, errcap, "safetensors save: closing '%.200s' failed", tmp);
        r = LMU_ERR_IO;
    }
#endif
    if (r == LMU_OK) {
        int ok = !(fault && fault->fail_rename) && rename(tmp, path) == 0;
#if !LMU__ST_POSIX
        /* Where rename() will not replace a file (Windows), fall back to
           remove-then-rename: not atomic, and if the second step fails the
           complete temporary file is the only copy, so it is kept. */
        if (!ok && !(fault && fault->fail_rename) && remove(path) == 0) {
            ok = rename(tmp, path) == 0;
            if (!ok) {
                lmu__errf(err, errcap, "safetensors save: replaced '%.200s' but could not rename '%.200s' to it; the new checkpoint is in '%.200s'",
                          path, tmp, tmp);
                LMU_FREE(tmp);
                return LMU_ERR_IO;
            }
        }
#endif
        if (!ok) {
            lmu__errf(err, errcap, "safetensors save: rename '%.200s' -> '%.200s' failed", tmp, path);
            r = LMU_ERR_IO;
        }
    }
    if (r != LMU_OK) remove(tmp);
#if LMU__ST_POSIX
    else {
        /* Make the rename itself durable: fsync the folder (best effort;
           some systems refuse to open a folder or fsync it). */
        char *dir = tmp;
        int dfd;
        memcpy(dir, path, plen + 1);
        for (i = plen; i > 0 && dir[i - 1] != '/'; i--) {}
        if (i == 0) strcpy(dir, ".");
        else dir[i == 1 ? 1 : i - 1] = 0;
        dfd = open(dir, O_RDONLY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
#endif
    (void)i;
    LMU_FREE(tmp);
    return r;
}

LMUDEF lmu_result lmu_st_save_file(const char *path, const lmu_st_tensor *tensors,
                                   size_t n_tensors, const lmu_st_meta *meta, size_t n_meta,
                                   char *err, size_t errcap)
{
    return lmu__st_save_file_ex(path, tensors, n_tensors, meta, n_meta, NULL, err, errcap);
}

#endif /* LMU_NO_STDIO */

/* ====================================================================== */
/* Reader                                                                  */
/* ====================================================================== */

typedef struct lmu__st_parser {
    const unsigned char *s; /* header */
    size_t n, pos;
    size_t data_len;
    const unsigned char *data;
    int fill;               /* 0: counting pass, 1: filling pass */
    lmu_st_tensor *t;       /* fill pass only */
    lmu_st_meta *m;
    char *pool;
    size_t pool_cap;
    size_t nt, nm, npool;   /* counts (pass 1) / cursors (pass 2) */
    int seen_meta;
    char *err;
    size_t errcap;
} lmu__st_parser;

/* Reports an error at the current header position. */
LMU__PRIVATE int lmu__st_fail(lmu__st_parser *p, const char *what, const char *name)
{
    if (name)
        lmu__errf(p->err, p->errcap,
                  "safetensors: header byte %llu (file byte %llu): tensor '%s': %s",
                  (unsigned long long)p->pos, (unsigned long long)(p->pos + 8), name, what);
    else
        lmu__errf(p->err, p->errcap, "safetensors: header byte %llu (file byte %llu): %s",
                  (unsigned long long)p->pos, (unsigned long long)(p->pos + 8), what);
    return 0;
}

LMU__PRIVATE void lmu__st_ws(lmu__st_parser *p)
{
    while (p->pos < p->n) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* Skips whitespace and consumes c. */
LMU__PRIVATE int lmu__st_expect(lmu__st_parser *p, char c, const char *what, const char *name)
{
    lmu__st_ws(p);
    if (p->pos >= p->n || p->s[p->pos] != (unsigned char)c) {
        char msg[96];
        if (p->pos >= p->n) snprintf(msg, sizeof msg, "expected %s, got end of header", what);
        else if (p->s[p->pos] >= 0x20 && p->s[p->pos] < 0x7F)
            snprintf(msg, sizeof msg, "expected %s, got '%c'", what, p->s[p->pos]);
        else snprintf(msg, sizeof msg, "expected %s, got byte 0x%02x", what, p->s[p->pos]);
        return lmu__st_fail(p, msg, name);
    }
    p->pos++;
    return 1;
}

LMU__PRIVATE int lmu__st_hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

/* Parses the JSON string at p->pos (after whitespace). Up to cap decoded
   bytes go to out (may be NULL); *len gets the full decoded length; *nul is
   set when it decodes a U+0000. */
LMU__PRIVATE int lmu__st_string(lmu__st_parser *p, char *out, size_t cap, size_t *len, int *nul,
                                const char *name)
{
    size_t k = 0, start;
    lmu__st_ws(p);
    start = p->pos;
    if (p->pos >= p->n || p->s[p->pos] != '"') return lmu__st_expect(p, '"', "a string", name);
    p->pos++;
    *nul = 0;
    for (;;) {
        unsigned char c, enc[4];
        size_t ne = 0, i;
        if (p->pos >= p->n) {
            char msg[96];
            snprintf(msg, sizeof msg, "unterminated string (it starts at header byte %llu)",
                     (unsigned long long)start);
            return lmu__st_fail(p, msg, name);
        }
        c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return lmu__st_fail(p, "control character inside a string", name);
        if (c == '\\') {
            unsigned cp;
            if (p->pos + 1 >= p->n) {
                p->pos++;
                return lmu__st_fail(p, "unterminated escape", name);
            }
            c = p->s[p->pos + 1];
            switch (c) {
            case '"': case '\\': case '/': enc[ne++] = c; break;
            case 'b': enc[ne++] = '\b'; break;
            case 'f': enc[ne++] = '\f'; break;
            case 'n': enc[ne++] = '\n'; break;
            case 'r': enc[ne++] = '\r'; break;
            case 't': enc[ne++] = '\t'; break;
            case 'u': break;
            default: return lmu__st_fail(p, "invalid escape sequence", name);
            }
            if (c != 'u') {
                p->pos += 2;
            } else {
                if (p->n - p->pos < 6 || !lmu__st_hex4(p->s + p->pos + 2, &cp))
                    return lmu__st_fail(p, "\\u must be followed by 4 hex digits", name);
                p->pos += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    p->pos -= 6;
                    return lmu__st_fail(p, "unpaired low surrogate in \\u escape", name);
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (p->n - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                        !lmu__st_hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return lmu__st_fail(p, "high surrogate not followed by a \\u low surrogate",
                                            name);
                    p->pos += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0) *nul = 1;
                if (cp < 0x80) enc[ne++] = (unsigned char)cp;
                else if (cp < 0x800) {
                    enc[ne++] = (unsigned char)(0xC0 | (cp >> 6));
                    enc[ne++] = (unsigned char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    enc[ne++] = (unsigned char)(0xE0 | (cp >> 12));
                    enc[ne++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    enc[ne++] = (unsigned char)(0x80 | (cp & 0x3F));
                } else {
                    enc[ne++] = (unsigned char)(0xF0 | (cp >> 18));
                    enc[ne++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                    enc[ne++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    enc[ne++] = (unsigned char)(0x80 | (cp & 0x3F));
                }
            }
        } else {
            ne = lmu__st_utf8_len(p->s + p->pos, p->n - p->pos);
            if (ne == 0) return lmu__st_fail(p, "invalid UTF-8 in a string", name);
            memcpy(enc, p->s + p->pos, ne);
            p->pos += ne;
        }
        for (i = 0; i < ne; i++, k++)
            if (out && k < cap) out[k] = (char)enc[i];
    }
    *len = k;
    return 1;
}

/* A non-negative JSON integer that fits size_t. */
LMU__PRIVATE int lmu__st_uint(lmu__st_parser *p, size_t *out, const char *name)
{
    size_t v = 0;
    unsigned char c;
    lmu__st_ws(p);
    if (p->pos >= p->n) return lmu__st_fail(p, "expected an integer, got end of header", name);
    c = p->s[p->pos];
    if (c == '-') return lmu__st_fail(p, "negative number where a size or offset is expected", name);
    if (c < '0' || c > '9') return lmu__st_fail(p, "expected a non-negative integer", name);
    if (c == '0' && p->pos + 1 < p->n && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')
        return lmu__st_fail(p, "number with a leading zero", name);
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        size_t dgt = (size_t)(p->s[p->pos] - '0');
        if (v > ((size_t)-1 - dgt) / 10) return lmu__st_fail(p, "number too large for size_t", name);
        v = v * 10 + dgt;
        p->pos++;
    }
    if (p->pos < p->n && (p->s[p->pos] == '.' || p->s[p->pos] == 'e' || p->s[p->pos] == 'E'))
        return lmu__st_fail(p, "expected an integer, got a fraction or exponent", name);
    *out = v;
    return 1;
}

/* Skips any JSON value (for unknown fields), depth-capped. */
LMU__PRIVATE int lmu__st_skip(lmu__st_parser *p, int depth, const char *name)
{
    size_t len;
    int nul;
    unsigned char c;
    lmu__st_ws(p);
    if (depth > LMU__ST_MAX_DEPTH) return lmu__st_fail(p, "JSON nested too deeply", name);
    if (p->pos >= p->n) return lmu__st_fail(p, "expected a value, got end of header", name);
    c = p->s[p->pos];
    if (c == '"') return lmu__st_string(p, NULL, 0, &len, &nul, name);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p->pos++;
        lmu__st_ws(p);
        if (p->pos < p->n && p->s[p->pos] == (unsigned char)close) {
            p->pos++;
            return 1;
        }
        for (;;) {
            if (c == '{') {
                if (!lmu__st_string(p, NULL, 0, &len, &nul, name)) return 0;
                if (!lmu__st_expect(p, ':', "':'", name)) return 0;
            }
            if (!lmu__st_skip(p, depth + 1, name)) return 0;
            lmu__st_ws(p);
            if (p->pos < p->n && p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            return lmu__st_expect(p, close, c == '{' ? "',' or '}'" : "',' or ']'", name);
        }
    }
    if (c == 't' || c == 'f' || c == 'n') {
        const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t l = strlen(lit);
        if (p->n - p->pos < l || memcmp(p->s + p->pos, lit, l) != 0)
            return lmu__st_fail(p, "invalid literal", name);
        p->pos += l;
        return 1;
    }
    if (c == '-' || (c >= '0' && c <= '9')) { /* RFC 8259 number grammar */
        size_t digits;
        if (c == '-') p->pos++;
        if (p->pos < p->n && p->s[p->pos] == '0') p->pos++;
        else {
            for (digits = 0; p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'; digits++)
                p->pos++;
            if (!digits) return lmu__st_fail(p, "invalid number", name);
        }
        if (p->pos < p->n && p->s[p->pos] == '.') {
            p->pos++;
            for (digits = 0; p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'; digits++)
                p->pos++;
            if (!digits) return lmu__st_fail(p, "invalid number", name);
        }
        if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
            p->pos++;
            if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
            for (digits = 0; p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'; digits++)
                p->pos++;
            if (!digits) return lmu__st_fail(p, "invalid number", name);
        }
        return 1;
    }
    return lmu__st_fail(p, "unexpected character", name);
}

/* Decodes a string into the pool (fill pass) or counts it (count pass). */
LMU__PRIVATE int lmu__st_pool_string(lmu__st_parser *p, const char **dst, const char *name,
                                     const char *what)
{
    size_t len;
    int nul;
    char *out = p->fill ? p->pool + p->npool : NULL;
    size_t cap = p->fill ? p->pool_cap - p->npool : 0;
    size_t start;
    lmu__st_ws(p);
    start = p->pos;
    if (!lmu__st_string(p, out, cap, &len, &nul, name)) return 0;
    if (nul) {
        char msg[96];
        p->pos = start;
        snprintf(msg, sizeof msg, "%s contains U+0000", what);
        return lmu__st_fail(p, msg, name);
    }
    if (p->fill) {
        if (len >= cap) return lmu__st_fail(p, "internal: string pool too small", name);
        out[len] = 0;
        *dst = out;
    }
    p->npool += len + 1;
    return 1;
}

LMU__PRIVATE int lmu__st_metadata(lmu__st_parser *p)
{
    lmu__st_ws(p);
    if (p->seen_meta) return lmu__st_fail(p, "\"__metadata__\" appears twice", NULL);
    p->seen_meta = 1;
    if (!lmu__st_expect(p, '{', "an object for \"__metadata__\"", NULL)) return 0;
    lmu__st_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') {
        p->pos++;
        return 1;
    }
    for (;;) {
        lmu_st_meta e;
        char label[80];
        size_t len;
        int nul;
        size_t kpos;
        e.key = e.value = NULL;
        lmu__st_ws(p);
        kpos = p->pos;
        if (!lmu__st_string(p, label, sizeof label - 1, &len, &nul, NULL)) return 0;
        label[len < sizeof label - 1 ? len : sizeof label - 1] = 0;
        p->pos = kpos;
        if (!lmu__st_pool_string(p, &e.key, NULL, "metadata key")) return 0;
        if (!lmu__st_expect(p, ':', "':'", NULL)) return 0;
        lmu__st_ws(p);
        if (p->pos >= p->n || p->s[p->pos] != '"') {
            char msg[160];
            snprintf(msg, sizeof msg, "metadata value for key '%s' is not a string", label);
            return lmu__st_fail(p, msg, NULL);
        }
        if (!lmu__st_pool_string(p, &e.value, NULL, "metadata value")) return 0;
        if (p->fill) p->m[p->nm] = e;
        p->nm++;
        lmu__st_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        return lmu__st_expect(p, '}', "',' or '}' in \"__metadata__\"", NULL);
    }
}

/* One tensor entry; name (for messages) is the decoded name, maybe cut. */
LMU__PRIVATE int lmu__st_tensor_entry(lmu__st_parser *p, lmu_st_tensor *t, const char *name)
{
    int have_dtype = 0, have_shape = 0, have_off = 0;
    size_t begin = 0, end = 0, es, nb;
    size_t entry_pos;
    lmu__st_ws(p);
    entry_pos = p->pos;
    if (!lmu__st_expect(p, '{', "an object {\"dtype\", \"shape\", \"data_offsets\"}", name))
        return 0;
    lmu__st_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') p->pos++;
    else
        for (;;) {
            char field[16];
            size_t flen;
            int nul;
            if (!lmu__st_string(p, field, sizeof field, &flen, &nul, name)) return 0;
            if (!lmu__st_expect(p, ':', "':'", name)) return 0;
            lmu__st_ws(p);
            if (flen == 5 && memcmp(field, "dtype", 5) == 0) {
                char dt[16];
                size_t dlen;
                size_t vpos = p->pos;
                if (have_dtype++) return lmu__st_fail(p, "\"dtype\" given twice", name);
                if (!lmu__st_string(p, dt, sizeof dt, &dlen, &nul, name)) return 0;
                t->dtype = dlen < sizeof dt ? lmu__st_dtype_lookup(dt, dlen) : LMU_ST_INVALID;
                if (t->dtype == LMU_ST_INVALID) {
                    char msg[80];
                    p->pos = vpos;
                    snprintf(msg, sizeof msg, "unknown dtype \"%.*s\"",
                             (int)(dlen < sizeof dt ? dlen : sizeof dt), dt);
                    return lmu__st_fail(p, msg, name);
                }
            } else if (flen == 5 && memcmp(field, "shape", 5) == 0) {
                if (have_shape++) return lmu__st_fail(p, "\"shape\" given twice", name);
                if (!lmu__st_expect(p, '[', "'[' starting \"shape\"", name)) return 0;
                lmu__st_ws(p);
                t->ndim = 0;
                if (p->pos < p->n && p->s[p->pos] == ']') p->pos++;
                else
                    for (;;) {
                        if (t->ndim == LMU_ST_MAX_DIMS) {
                            char msg[64];
                            snprintf(msg, sizeof msg, "more than %d dimensions", LMU_ST_MAX_DIMS);
                            return lmu__st_fail(p, msg, name);
                        }
                        if (!lmu__st_uint(p, &t->shape[t->ndim], name)) return 0;
                        t->ndim++;
                        lmu__st_ws(p);
                        if (p->pos < p->n && p->s[p->pos] == ',') {
                            p->pos++;
                            continue;
                        }
                        if (!lmu__st_expect(p, ']', "',' or ']' in \"shape\"", name)) return 0;
                        break;
                    }
            } else if (flen == 12 && memcmp(field, "data_offsets", 12) == 0) {
                if (have_off++) return lmu__st_fail(p, "\"data_offsets\" given twice", name);
                if (!lmu__st_expect(p, '[', "'[' starting \"data_offsets\"", name)) return 0;
                if (!lmu__st_uint(p, &begin, name)) return 0;
                if (!lmu__st_expect(p, ',', "',' (data_offsets has 2 entries)", name)) return 0;
                if (!lmu__st_uint(p, &end, name)) return 0;
                if (!lmu__st_expect(p, ']', "']' (data_offsets has exactly 2 entries)", name))
                    return 0;
            } else if (!lmu__st_skip(p, 3, name))
                return 0;
            lmu__st_ws(p);
            if (p->pos < p->n && p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (!lmu__st_expect(p, '}', "',' or '}' in the tensor entry", name)) return 0;
            break;
        }
    {
        /* semantic checks, reported at the entry's start */
        size_t here = p->pos;
        char msg[200];
        p->pos = entry_pos;
        if (!have_dtype || !have_shape || !have_off) {
            snprintf(msg, sizeof msg, "missing %s", !have_dtype ? "\"dtype\"" : !have_shape ? "\"shape\"" : "\"data_offsets\"");
            return lmu__st_fail(p, msg, name);
        }
        es = lmu_st_dtype_size(t->dtype);
        if (begin > end) {
            snprintf(msg, sizeof msg, "data_offsets [%llu, %llu] has begin > end",
                     (unsigned long long)begin, (unsigned long long)end);
            return lmu__st_fail(p, msg, name);
        }
        if (end > p->data_len) {
            snprintf(msg, sizeof msg, "data_offsets [%llu, %llu] run past the %llu-byte data section",
                     (unsigned long long)begin, (unsigned long long)end, (unsigned long long)p->data_len);
            return lmu__st_fail(p, msg, name);
        }
        if (!lmu__st_nbytes(t->shape, t->ndim, es, &nb)) return lmu__st_fail(p, "shape size overflows size_t", name);
        if (nb != end - begin) {
            char sh[96];
            lmu__st_shape_str(sh, sizeof sh, t->shape, t->ndim);
            snprintf(msg, sizeof msg, "shape %s of %s needs %llu bytes but data_offsets [%llu, %llu] hold %llu",
                     sh, lmu_st_dtype_name(t->dtype), (unsigned long long)nb, (unsigned long long)begin,
                     (unsigned long long)end, (unsigned long long)(end - begin));
            return lmu__st_fail(p, msg, name);
        }
        p->pos = here;
    }
    t->nbytes = nb;
    t->offset = begin;
    t->data = p->data + begin;
    return 1;
}

LMU__PRIVATE int lmu__st_root(lmu__st_parser *p)
{
    p->pos = 0;
    p->nt = p->nm = p->npool = 0;
    p->seen_meta = 0;
    if (!lmu__st_expect(p, '{', "'{' (the header is a JSON object)", NULL)) return 0;
    lmu__st_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') p->pos++;
    else
        for (;;) {
            char label[80];
            size_t len, kpos;
            int nul;
            lmu__st_ws(p);
            kpos = p->pos;
            if (!lmu__st_string(p, label, sizeof label - 1, &len, &nul, NULL)) return 0;
            if (len >= sizeof label - 1) memcpy(label + sizeof label - 4, "...", 4);
            else label[len] = 0;
            if (len == 12 && memcmp(label, "__metadata__", 12) == 0) {
                if (!lmu__st_expect(p, ':', "':'", NULL)) return 0;
                if (!lmu__st_metadata(p)) return 0;
            } else {
                lmu_st_tensor t;
                memset(&t, 0, sizeof t);
                p->pos = kpos;
                if (!lmu__st_pool_string(p, &t.name, label, "tensor name")) return 0;
                if (!lmu__st_expect(p, ':', "':'", label)) return 0;
                if (!lmu__st_tensor_entry(p, &t, label)) return 0;
                if (p->fill) p->t[p->nt] = t;
                p->nt++;
            }
            lmu__st_ws(p);
            if (p->pos < p->n && p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (!lmu__st_expect(p, '}', "',' or '}' after a header entry", NULL)) return 0;
            break;
        }
    lmu__st_ws(p);
    if (p->pos != p->n) return lmu__st_fail(p, "unexpected bytes after the header object", NULL);
    return 1;
}

/* qsort has no context argument, so the loader sorts pointers to the
   entries and turns them back into indices. */
LMU__PRIVATE int lmu__st_cmp_tensor_name(const void *a, const void *b)
{
    const lmu_st_tensor *x = *(const lmu_st_tensor *const *)a, *y = *(const lmu_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

LMU__PRIVATE int lmu__st_cmp_tensor_off(const void *a, const void *b)
{
    const lmu_st_tensor *x = *(const lmu_st_tensor *const *)a, *y = *(const lmu_st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

LMU__PRIVATE int lmu__st_cmp_meta_key(const void *a, const void *b)
{
    const lmu_st_meta *x = *(const lmu_st_meta *const *)a, *y = *(const lmu_st_meta *const *)b;
    return strcmp(x->key, y->key);
}

LMU__PRIVATE size_t lmu__st_round16(size_t v) { return (v + 15) & ~(size_t)15; }

LMUDEF lmu_result lmu_st_load_memory(lmu_st_file *f, const void *buf, size_t len, char *err,
                                     size_t errcap)
{
    const unsigned char *b = (const unsigned char *)buf;
    lmu__st_parser p;
    uint64_t n64;
    size_t N, i, sz_t, sz_m, sz_i, sz_j, sz_ptr, total;
    unsigned char *block;
    const lmu_st_tensor **tptr;
    const lmu_st_meta **mptr;
    size_t *by_name, *meta_by_key;
    if (!f) {
        lmu__errf(err, errcap, "safetensors: NULL file object");
        return LMU_ERR_ARG;
    }
    memset(f, 0, sizeof *f);
    if (!b && len) {
        lmu__errf(err, errcap, "safetensors: NULL buffer");
        return LMU_ERR_ARG;
    }
    if (len < 8) {
        lmu__errf(err, errcap, "safetensors: file is %llu bytes, shorter than the 8-byte header length",
                  (unsigned long long)len);
        return LMU_ERR_FORMAT;
    }
    n64 = lmu__st_get_le(b, 8);
    if (n64 > (uint64_t)(len - 8)) {
        lmu__errf(err, errcap,
                  "safetensors: header length %llu runs past the end of the file (%llu bytes follow it)",
                  (unsigned long long)n64, (unsigned long long)(len - 8));
        return LMU_ERR_FORMAT;
    }
    if (n64 > (uint64_t)LMU__ST_MAX_HEADER) {
        lmu__errf(err, errcap, "safetensors: header length %llu exceeds the %llu-byte limit",
                  (unsigned long long)n64, (unsigned long long)LMU__ST_MAX_HEADER);
        return LMU_ERR_FORMAT;
    }
    N = (size_t)n64;
    memset(&p, 0, sizeof p);
    p.s = b + 8;
    p.n = N;
    p.data = b + 8 + N;
    p.data_len = len - 8 - N;
    p.err = err;
    p.errcap = errcap;
    /* pass 1: validate and count */
    if (!lmu__st_root(&p)) return LMU_ERR_FORMAT;
    /* one block: tensors | meta | by_name | meta_by_key | sort scratch | strings */
    sz_t = lmu__st_round16(p.nt * sizeof(lmu_st_tensor));
    sz_m = lmu__st_round16(p.nm * sizeof(lmu_st_meta));
    sz_i = lmu__st_round16(p.nt * sizeof(size_t));
    sz_j = lmu__st_round16(p.nm * sizeof(size_t));
    sz_ptr = lmu__st_round16((p.nt > p.nm ? p.nt : p.nm) *
                             (sizeof(lmu_st_tensor *) > sizeof(lmu_st_meta *) ? sizeof(lmu_st_tensor *)
                                                                              : sizeof(lmu_st_meta *)));
    /* counts are bounded by the 100 MB header, so these sums cannot wrap */
    total = sz_t + sz_m + sz_i + sz_j + sz_ptr + p.npool + 1;
    block = (unsigned char *)LMU_MALLOC(total);
    if (!block) {
        lmu__errf(err, errcap, "safetensors: out of memory (%llu bytes for %llu tensors)",
                  (unsigned long long)total, (unsigned long long)p.nt);
        return LMU_ERR_NOMEM;
    }
    p.t = (lmu_st_tensor *)(void *)block;
    p.m = (lmu_st_meta *)(void *)(block + sz_t);
    by_name = (size_t *)(void *)(block + sz_t + sz_m);
    meta_by_key = (size_t *)(void *)(block + sz_t + sz_m + sz_i);
    tptr = (const lmu_st_tensor **)(void *)(block + sz_t + sz_m + sz_i + sz_j);
    mptr = (const lmu_st_meta **)(void *)(block + sz_t + sz_m + sz_i + sz_j); /* reused */
    p.pool = (char *)(block + sz_t + sz_m + sz_i + sz_j + sz_ptr);
    p.pool_cap = p.npool + 1;
    p.fill = 1;
    /* pass 2: same parse, filling the arrays */
    if (!lmu__st_root(&p)) {
        LMU_FREE(block);
        return LMU_ERR_FORMAT;
    }
    /* duplicate names */
    for (i = 0; i < p.nt; i++) tptr[i] = &p.t[i];
    qsort((void *)tptr, p.nt, sizeof *tptr, lmu__st_cmp_tensor_name);
    for (i = 0; i < p.nt; i++) {
        by_name[i] = (size_t)(tptr[i] - p.t);
        if (i && strcmp(p.t[by_name[i - 1]].name, p.t[by_name[i]].name) == 0) {
            lmu__errf(err, errcap, "safetensors: duplicate tensor name '%.80s'", p.t[by_name[i]].name);
            LMU_FREE(block);
            return LMU_ERR_FORMAT;
        }
    }
    /* exact coverage of the data section, as the reference reader demands */
    qsort((void *)tptr, p.nt, sizeof *tptr, lmu__st_cmp_tensor_off);
    {
        size_t cursor = 0;
        for (i = 0; i < p.nt; i++) {
            const lmu_st_tensor *t = tptr[i];
            if (t->offset != cursor) {
                if (t->offset < cursor)
                    lmu__errf(err, errcap,
                              "safetensors: tensor '%.80s' at data bytes [%llu, %llu] overlaps the tensor before it (which ends at %llu)",
                              t->name, (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes),
                              (unsigned long long)cursor);
                else
                    lmu__errf(err, errcap,
                              "safetensors: hole in the data section: bytes [%llu, %llu] belong to no tensor (next is '%.80s')",
                              (unsigned long long)cursor, (unsigned long long)t->offset, t->name);
                LMU_FREE(block);
                return LMU_ERR_FORMAT;
            }
            cursor = t->offset + t->nbytes;
        }
        if (cursor != p.data_len) {
            lmu__errf(err, errcap,
                      "safetensors: data section is %llu bytes but the tensors cover only %llu (trailing bytes or truncated header)",
                      (unsigned long long)p.data_len, (unsigned long long)cursor);
            LMU_FREE(block);
            return LMU_ERR_FORMAT;
        }
    }
    /* metadata keys */
    for (i = 0; i < p.nm; i++) mptr[i] = &p.m[i];
    qsort((void *)mptr, p.nm, sizeof *mptr, lmu__st_cmp_meta_key);
    for (i = 0; i < p.nm; i++) {
        meta_by_key[i] = (size_t)(mptr[i] - p.m);
        if (i && strcmp(p.m[meta_by_key[i - 1]].key, p.m[meta_by_key[i]].key) == 0) {
            lmu__errf(err, errcap, "safetensors: duplicate metadata key '%.80s'", p.m[meta_by_key[i]].key);
            LMU_FREE(block);
            return LMU_ERR_FORMAT;
        }
    }
    f->n_tensors = p.nt;
    f->tensors = p.t;
    f->n_meta = p.nm;
    f->meta = p.m;
    f->data = p.data;
    f->data_len = p.data_len;
    f->header_len = N;
    f->lmu__block = block;
    f->lmu__by_name = by_name;
    f->lmu__meta_by_key = meta_by_key;
    return LMU_OK;
}

#ifndef LMU_NO_STDIO
LMUDEF lmu_result lmu_st_load_file(lmu_st_file *f, const char *path, char *err, size_t errcap)
{
    FILE *fp;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    lmu_result r = LMU_OK;
    long hint;
    if (!f || !path) {
        lmu__errf(err, errcap, "safetensors: NULL file object or path");
        if (f) memset(f, 0, sizeof *f);
        return LMU_ERR_ARG;
    }
    memset(f, 0, sizeof *f);
    fp = fopen(path, "rb");
    if (!fp) {
        lmu__errf(err, errcap, "safetensors: cannot open '%.200s'", path);
        return LMU_ERR_IO;
    }
    /* The size is only a hint (ftell is a long); reading goes on to EOF. */
    if (fseek(fp, 0, SEEK_END) == 0 && (hint = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        (unsigned long long)hint < (unsigned long long)((size_t)-1 / 2))
        cap = (size_t)hint + 1;
    else
        rewind(fp);
    if (cap < 4096) cap = 4096;
    for (;;) {
        size_t got;
        if (len == cap || !buf) {
            unsigned char *nb;
            if (buf) {
                if (cap > (size_t)-1 / 2) {
                    r = LMU_ERR_NOMEM;
                    break;
                }
                cap *= 2;
            }
            nb = (unsigned char *)LMU_REALLOC(buf, cap);
            if (!nb) {
                r = LMU_ERR_NOMEM;
                break;
            }
            buf = nb;
        }
        got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (len < cap) { /* a short read: end of file or an error */
            r = ferror(fp) ? LMU_ERR_IO : LMU_OK;
            break;
        }
    }
    fclose(fp);
    if (r != LMU_OK) {
        lmu__errf(err, errcap, r == LMU_ERR_IO ? "safetensors: read error in '%.200s'"
                                               : "safetensors: out of memory reading '%.200s'",
                  path);
        LMU_FREE(buf);
        return r;
    }
    r = lmu_st_load_memory(f, buf, len, err, errcap);
    if (r != LMU_OK) {
        LMU_FREE(buf);
        return r;
    }
    f->lmu__owned = buf;
    return LMU_OK;
}
#endif

LMUDEF void lmu_st_close(lmu_st_file *f)
{
    if (!f) return;
    if (f->lmu__block) LMU_FREE(f->lmu__block);
    if (f->lmu__owned) LMU_FREE(f->lmu__owned);
    memset(f, 0, sizeof *f);
}

LMUDEF const lmu_st_tensor *lmu_st_find(const lmu_st_file *f, const char *name)
{
    size_t lo = 0, hi;
    if (!f || !name || !f->lmu__by_name) return NULL;
    hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const lmu_st_tensor *t = &f->tensors[f->lmu__by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

LMUDEF const char *lmu_st_meta_get(const lmu_st_file *f, const char *key)
{
    size_t lo = 0, hi;
    if (!f || !key || !f->lmu__meta_by_key) return NULL;
    hi = f->n_meta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const lmu_st_meta *m = &f->meta[f->lmu__meta_by_key[mid]];
        int c = strcmp(m->key, key);
        if (c == 0) return m->value;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Finds NAME and checks its shape. */
LMU__PRIVATE lmu_result lmu__st_lookup(const lmu_st_file *f, const char *name, const size_t *shape,
                                       int ndim, const lmu_st_tensor **out, char *err,
                                       size_t errcap)
{
    const lmu_st_tensor *t;
    int i, same;
    if (!f || !name || ndim < 0 || ndim > LMU_ST_MAX_DIMS || (ndim > 0 && !shape)) {
        lmu__errf(err, errcap, "safetensors read: bad arguments (file, name, shape or ndim %d)", ndim);
        return LMU_ERR_ARG;
    }
    t = lmu_st_find(f, name);
    if (!t) {
        lmu__errf(err, errcap, "safetensors read: no tensor named '%.120s' in the file", name);
        return LMU_ERR_FORMAT;
    }
    same = t->ndim == ndim;
    for (i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[128], b[128];
        lmu__st_shape_str(a, sizeof a, t->shape, t->ndim);
        lmu__st_shape_str(b, sizeof b, shape, ndim);
        lmu__errf(err, errcap, "safetensors read: tensor '%.120s' has shape %s, expected %s", name, a, b);
        return LMU_ERR_SHAPE;
    }
    *out = t;
    return LMU_OK;
}

/* IEEE half -> float, exact (every half is a float), NaN payloads kept. */
LMU__PRIVATE float lmu__st_half_to_f32(unsigned h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF, bits;
    float f;
    if (e == 0x1F) bits = sign | 0x7F800000u | (m << 13);
    else if (e != 0) bits = sign | ((e + 112) << 23) | (m << 13);
    else if (m == 0) bits = sign;
    else { /* subnormal half: normalize */
        e = 113;
        while (!(m & 0x400)) {
            m <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((m & 0x3FF) << 13);
    }
    memcpy(&f, &bits, 4);
    return f;
}

/* double -> float without the undefined behaviour of an out-of-range cast. */
LMU__PRIVATE float lmu__st_f64_to_f32(double d)
{
    /* FLT_MAX plus half an ulp: from here on, round-to-nearest gives inf */
    const double lim = 3.4028235677973366e38;
    if (d >= lim) return HUGE_VALF;
    if (d <= -lim) return -HUGE_VALF;
    if (d > FLT_MAX) return FLT_MAX;
    if (d < -FLT_MAX) return -FLT_MAX;
    return (float)d;
}

LMU__PRIVATE lmu_result lmu__st_read_f32_ex(const lmu_st_file *f, const char *name,
                                            const size_t *shape, int ndim, float *dst,
                                            int host_le, char *err, size_t errcap)
{
    const lmu_st_tensor *t = NULL;
    const unsigned char *s;
    size_t i, count;
    lmu_result r = lmu__st_lookup(f, name, shape, ndim, &t, err, errcap);
    if (r != LMU_OK) return r;
    if (t->dtype != LMU_ST_F32 && t->dtype != LMU_ST_F64 && t->dtype != LMU_ST_F16 &&
        t->dtype != LMU_ST_BF16) {
        lmu__errf(err, errcap, "safetensors read: tensor '%.120s' has dtype %s, not a float type",
                  name, lmu_st_dtype_name(t->dtype));
        return LMU_ERR_FORMAT;
    }
    if (t->nbytes && !dst) {
        lmu__errf(err, errcap, "safetensors read: NULL destination for '%.120s'", name);
        return LMU_ERR_ARG;
    }
    s = (const unsigned char *)t->data;
    count = t->nbytes / lmu_st_dtype_size(t->dtype);
    switch (t->dtype) {
    case LMU_ST_F32:
        if (host_le) {
            if (t->nbytes) memcpy(dst, s, t->nbytes);
        } else
            for (i = 0; i < count; i++) {
                uint32_t bits = (uint32_t)lmu__st_get_le(s + 4 * i, 4);
                memcpy(dst + i, &bits, 4);
            }
        break;
    case LMU_ST_F64:
        for (i = 0; i < count; i++) {
            uint64_t bits = lmu__st_get_le(s + 8 * i, 8);
            double d;
            memcpy(&d, &bits, 8);
            dst[i] = lmu__st_f64_to_f32(d);
        }
        break;
    case LMU_ST_F16:
        for (i = 0; i < count; i++) dst[i] = lmu__st_half_to_f32((unsigned)lmu__st_get_le(s + 2 * i, 2));
        break;
    default: /* BF16: the top half of a float */
        for (i = 0; i < count; i++) {
            uint32_t bits = (uint32_t)lmu__st_get_le(s + 2 * i, 2) << 16;
            memcpy(dst + i, &bits, 4);
        }
        break;
    }
    return LMU_OK;
}

LMUDEF lmu_result lmu_st_read_f32(const lmu_st_file *f, const char *name, const size_t *shape,
                                  int ndim, float *dst, char *err, size_t errcap)
{
    return lmu__st_read_f32_ex(f, name, shape, ndim, dst, lmu__st_host_le(), err, errcap);
}

LMU__PRIVATE lmu_result lmu__st_read_ex(const lmu_st_file *f, const char *name, lmu_st_dtype dtype,
                                        const size_t *shape, int ndim, void *dst, int host_le,
                                        char *err, size_t errcap)
{
    const lmu_st_tensor *t = NULL;
    size_t es;
    lmu_result r = lmu__st_lookup(f, name, shape, ndim, &t, err, errcap);
    if (r != LMU_OK) return r;
    if (t->dtype != dtype) {
        lmu__errf(err, errcap, "safetensors read: tensor '%.120s' has dtype %s, expected %s", name,
                  lmu_st_dtype_name(t->dtype), lmu_st_dtype_name(dtype));
        return LMU_ERR_FORMAT;
    }
    if (t->nbytes && !dst) {
        lmu__errf(err, errcap, "safetensors read: NULL destination for '%.120s'", name);
        return LMU_ERR_ARG;
    }
    es = lmu_st_dtype_size(dtype);
    if (host_le || es == 1) {
        if (t->nbytes) memcpy(dst, t->data, t->nbytes);
    } else
        lmu__st_swap((unsigned char *)dst, (const unsigned char *)t->data, t->nbytes / es, es);
    return LMU_OK;
}

LMUDEF lmu_result lmu_st_read(const lmu_st_file *f, const char *name, lmu_st_dtype dtype,
                              const size_t *shape, int ndim, void *dst, char *err, size_t errcap)
{
    return lmu__st_read_ex(f, name, dtype, shape, ndim, dst, lmu__st_host_le(), err, errcap);
}

#endif
/* >>impl-end safetensors */
