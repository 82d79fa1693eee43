/* test_safetensors.c - the safetensors reader and writer (lmu.h >>safetensors).

   Round trips (bit-exact, every dtype path, forced byte swapping), the
   atomic save under injected and real write failures, every truncation of a
   valid file, a list of hand-made corrupt headers, and seeded random
   mutations. Run it under -fsanitize=address,undefined as well: every
   buffer handed to the loader is an exact-size allocation, so an overread
   is caught.

   build: cc -std=c99 -O2 -I. tests/test_safetensors.c -o build/test_safetensors -lm */
#if !defined(_POSIX_C_SOURCE) && (defined(__unix__) || defined(__APPLE__))
#define _POSIX_C_SOURCE 200809L /* mkdtemp, opendir, setrlimit: test only */
#endif
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64 /* readdir on 32-bit hosts with 64-bit inodes */
#endif
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/lmu_test.h"

#if defined(__unix__) || defined(__APPLE__)
#define TST_POSIX 1
#include <dirent.h>
#include <unistd.h>
#include <signal.h>
#include <sys/resource.h>
#else
#define TST_POSIX 0
#endif

static char g_err[256];

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Exact-size heap copy so ASan sees any read past the end. */
static unsigned char *dup_exact(const unsigned char *p, size_t n)
{
    unsigned char *q = (unsigned char *)malloc(n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

/* ---- fixture: a file with every kind of content ------------------------ */

#define FX_A 7
#define FX_B 13
static float fx_w[FX_A * FX_B];
static float fx_scalar[1];
static int64_t fx_i64[5];
static int32_t fx_i32[4];
static unsigned char fx_u8[5];
static double fx_f64[4];
static uint16_t fx_f16[5], fx_bf16[2];
static lmu_st_tensor fx_t[10];
static lmu_st_meta fx_m[4];
static const char *NAME_WEIRD = "weird \"quoted\"\\ name\n\t\x01 \xe2\x9c\x93 \xf0\x9d\x84\x9e";

static void fixture(void)
{
    int i;
    static const uint32_t special[] = {
        0x80000000u, /* -0.0 */
        0x00000001u, /* smallest denormal */
        0x807FFFFFu, /* largest negative denormal */
        0x7F800000u, 0xFF800000u, /* +-inf */
        0x7FC00001u, 0x7F800001u, 0xFFC12345u, 0x7FFFFFFFu, /* NaN payloads, signalling too */
        0x7F7FFFFFu, 0x00800000u /* FLT_MAX, FLT_MIN */
    };
    lt_seed(42);
    for (i = 0; i < FX_A * FX_B; i++) fx_w[i] = (float)(lt_uniform() * 1e3);
    for (i = 0; i < (int)(sizeof special / sizeof *special); i++) fx_w[i * 7] = u2f(special[i]);
    fx_scalar[0] = 3.25f;
    fx_i64[0] = INT64_MIN; fx_i64[1] = -1; fx_i64[2] = (int64_t)1 << 40; fx_i64[3] = INT64_MAX; fx_i64[4] = 0;
    fx_i32[0] = INT32_MIN; fx_i32[1] = -7; fx_i32[2] = 123456789; fx_i32[3] = INT32_MAX;
    for (i = 0; i < 5; i++) fx_u8[i] = (unsigned char)(i * 63);
    fx_f64[0] = 0.1; fx_f64[1] = 1e300; fx_f64[2] = -1e-50; fx_f64[3] = 3.4028234663852886e38;
    fx_f16[0] = 0x3C00; fx_f16[1] = 0xC000; fx_f16[2] = 0x0001; fx_f16[3] = 0x7C00; fx_f16[4] = 0x7BFF;
    fx_bf16[0] = 0x3F80; fx_bf16[1] = 0xC2F7;
    memset(fx_t, 0, sizeof fx_t);
    fx_t[0].name = "blocks.0.ffn_pre.fc.weight"; fx_t[0].dtype = LMU_ST_F32; fx_t[0].ndim = 2;
    fx_t[0].shape[0] = FX_A; fx_t[0].shape[1] = FX_B; fx_t[0].data = fx_w;
    fx_t[1].name = "optim.step"; fx_t[1].dtype = LMU_ST_I64; fx_t[1].ndim = 1; fx_t[1].shape[0] = 5; fx_t[1].data = fx_i64;
    fx_t[2].name = "scalar"; fx_t[2].dtype = LMU_ST_F32; fx_t[2].ndim = 0; fx_t[2].data = fx_scalar;
    fx_t[3].name = "empty"; fx_t[3].dtype = LMU_ST_F32; fx_t[3].ndim = 2; fx_t[3].shape[0] = 0; fx_t[3].shape[1] = 5; fx_t[3].data = NULL;
    fx_t[4].name = "pos"; fx_t[4].dtype = LMU_ST_I32; fx_t[4].ndim = 2; fx_t[4].shape[0] = 2; fx_t[4].shape[1] = 2; fx_t[4].data = fx_i32;
    fx_t[5].name = "flags"; fx_t[5].dtype = LMU_ST_U8; fx_t[5].ndim = 1; fx_t[5].shape[0] = 5; fx_t[5].data = fx_u8;
    fx_t[6].name = "f64"; fx_t[6].dtype = LMU_ST_F64; fx_t[6].ndim = 1; fx_t[6].shape[0] = 4; fx_t[6].data = fx_f64;
    fx_t[7].name = "f16"; fx_t[7].dtype = LMU_ST_F16; fx_t[7].ndim = 1; fx_t[7].shape[0] = 5; fx_t[7].data = fx_f16;
    fx_t[8].name = "bf16"; fx_t[8].dtype = LMU_ST_BF16; fx_t[8].ndim = 1; fx_t[8].shape[0] = 2; fx_t[8].data = fx_bf16;
    fx_t[9].name = NAME_WEIRD; fx_t[9].dtype = LMU_ST_F32; fx_t[9].ndim = 1; fx_t[9].shape[0] = 1; fx_t[9].data = fx_scalar;
    fx_m[0].key = "config"; fx_m[0].value = "{\"d\": 204, \"mixer\": \"lmu\", \"path\": \"a\\\\b\"}";
    fx_m[1].key = "unicode \xc3\xa9"; fx_m[1].value = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9d\x84\x9e \x01\x1f\n\t\r\\\"/";
    fx_m[2].key = "empty"; fx_m[2].value = "";
    fx_m[3].key = "__metadata__"; fx_m[3].value = "a key may be anything";
}

static int has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* ---- round trip -------------------------------------------------------- */

static void test_roundtrip(void)
{
    unsigned char *buf = NULL, *copy;
    size_t len = 0, i, nt = sizeof fx_t / sizeof *fx_t;
    lmu_st_file f;
    lmu_result r;
    uint64_t hdr;
    r = lmu_st_save_memory(fx_t, nt, fx_m, 4, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_OK, "save_memory ok (%s)", g_err);
    if (r != LMU_OK) return;
    hdr = 0;
    for (i = 0; i < 8; i++) hdr |= (uint64_t)buf[i] << (8 * i);
    LT_CHECK(hdr % 8 == 0 && buf[8 + hdr - 1] != '\t', "header length %llu is a multiple of 8", (unsigned long long)hdr);
    LT_CHECK(buf[8] == '{', "header starts with '{'");
    copy = dup_exact(buf, len);
    r = lmu_st_load_memory(&f, copy, len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_OK, "load_memory of our own file (%s)", g_err);
    if (r == LMU_OK) {
        LT_CHECK(f.n_tensors == nt && f.n_meta == 4, "counts %llu tensors %llu meta", (unsigned long long)f.n_tensors, (unsigned long long)f.n_meta);
        for (i = 0; i < nt && i < f.n_tensors; i++) {
            const lmu_st_tensor *t = &f.tensors[i];
            size_t nb = lmu_st_dtype_size(fx_t[i].dtype), d;
            int same = strcmp(t->name, fx_t[i].name) == 0 && t->dtype == fx_t[i].dtype && t->ndim == fx_t[i].ndim;
            for (d = 0; d < (size_t)t->ndim; d++) {
                same = same && t->shape[d] == fx_t[i].shape[d];
                nb *= fx_t[i].shape[d];
            }
            if (same && t->nbytes == nb && nb) { /* file bytes == host data encoded little-endian */
                unsigned char *le = (unsigned char *)malloc(nb);
                size_t es = lmu_st_dtype_size(fx_t[i].dtype);
                if (lmu__st_host_le()) memcpy(le, fx_t[i].data, nb);
                else lmu__st_swap(le, (const unsigned char *)fx_t[i].data, nb / es, es);
                same = memcmp(t->data, le, nb) == 0;
                free(le);
            } else
                same = same && t->nbytes == nb;
            LT_CHECK(same, "tensor %llu in header order, bit-exact", (unsigned long long)i);
            LT_CHECK(lmu_st_find(&f, fx_t[i].name) == t, "find tensor %llu by name", (unsigned long long)i);
        }
        for (i = 0; i < 4; i++) {
            const char *v = lmu_st_meta_get(&f, fx_m[i].key);
            LT_CHECK(v && strcmp(v, fx_m[i].value) == 0, "metadata '%s' round trips", fx_m[i].key);
        }
        LT_CHECK(lmu_st_find(&f, "nope") == NULL && lmu_st_meta_get(&f, "nope") == NULL, "absent names give NULL");
        {
            float w[FX_A * FX_B];
            size_t shp[2] = {FX_A, FX_B}, bad[2] = {FX_B, FX_A};
            int ok = 1;
            r = lmu_st_read_f32(&f, fx_t[0].name, shp, 2, w, g_err, sizeof g_err);
            for (i = 0; i < FX_A * FX_B; i++) ok = ok && f2u(w[i]) == f2u(fx_w[i]);
            LT_CHECK(r == LMU_OK && ok, "read_f32 bit-exact incl -0, denormals, inf, NaN payloads");
            r = lmu_st_read_f32(&f, fx_t[0].name, bad, 2, w, g_err, sizeof g_err);
            LT_CHECK(r == LMU_ERR_SHAPE && has(g_err, "[7, 13]") && has(g_err, "[13, 7]"), "shape mismatch -> SHAPE: %s", g_err);
            r = lmu_st_read_f32(&f, fx_t[0].name, shp, 1, w, g_err, sizeof g_err);
            LT_CHECK(r == LMU_ERR_SHAPE, "ndim mismatch -> SHAPE: %s", g_err);
            r = lmu_st_read_f32(&f, "missing.weight", shp, 2, w, g_err, sizeof g_err);
            LT_CHECK(r == LMU_ERR_FORMAT && has(g_err, "missing.weight"), "missing -> FORMAT: %s", g_err);
            r = lmu_st_read_f32(&f, "optim.step", shp, 1, w, g_err, sizeof g_err);
            LT_CHECK(r == LMU_ERR_SHAPE || r == LMU_ERR_FORMAT, "I64 as f32 refused");
            shp[0] = 5;
            r = lmu_st_read_f32(&f, "optim.step", shp, 1, w, g_err, sizeof g_err);
            LT_CHECK(r == LMU_ERR_FORMAT && has(g_err, "I64"), "I64 via read_f32 -> FORMAT: %s", g_err);
            r = lmu_st_read_f32(&f, "scalar", NULL, 0, w, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK && w[0] == 3.25f, "scalar (ndim 0)");
            shp[0] = 0; shp[1] = 5;
            r = lmu_st_read_f32(&f, "empty", shp, 2, NULL, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK, "zero-size tensor with NULL dst");
        }
        {
            int64_t v64[5];
            int32_t v32[4];
            unsigned char v8[5];
            float fv[5];
            size_t s5[1] = {5}, s22[2] = {2, 2}, s4[1] = {4}, s2[1] = {2};
            r = lmu_st_read(&f, "optim.step", LMU_ST_I64, s5, 1, v64, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK && memcmp(v64, fx_i64, sizeof v64) == 0, "I64 round trip");
            r = lmu_st_read(&f, "pos", LMU_ST_I32, s22, 2, v32, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK && memcmp(v32, fx_i32, sizeof v32) == 0, "I32 round trip");
            r = lmu_st_read(&f, "flags", LMU_ST_U8, s5, 1, v8, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK && memcmp(v8, fx_u8, 5) == 0, "U8 round trip");
            r = lmu_st_read(&f, "pos", LMU_ST_I64, s22, 2, v64, g_err, sizeof g_err);
            LT_CHECK(r == LMU_ERR_FORMAT && has(g_err, "I32"), "wrong dtype -> FORMAT: %s", g_err);
            r = lmu_st_read_f32(&f, "f64", s4, 1, fv, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK && fv[0] == (float)0.1 && isinf(fv[1]) && fv[1] > 0 &&
                         fv[2] == 0 && signbit(fv[2]) && fv[3] == FLT_MAX,
                     "F64 -> f32 rounds, overflows to inf, keeps -0");
            r = lmu_st_read_f32(&f, "f16", s5, 1, fv, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK && fv[0] == 1.0f && fv[1] == -2.0f && fv[2] == ldexpf(1.0f, -24) &&
                         isinf(fv[3]) && fv[4] == 65504.0f,
                     "F16 -> f32 incl subnormal and inf");
            r = lmu_st_read_f32(&f, "bf16", s2, 1, fv, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK && fv[0] == 1.0f && fv[1] == u2f(0xC2F70000u), "BF16 -> f32");
        }
        lmu_st_close(&f);
        LT_CHECK(f.tensors == NULL && f.n_tensors == 0, "close zeroes the object");
        lmu_st_close(&f);
    }
    free(copy);

    /* Byte-swapping paths, driven on this (little-endian) host. */
    if (lmu__st_host_le()) {
        float sw[FX_A * FX_B];
        int64_t sw64[5];
        int32_t sw32[4];
        double swd[4];
        uint16_t sw16[5], swb[2];
        lmu_st_tensor ts[10];
        unsigned char *buf2 = NULL;
        size_t len2 = 0;
        lmu__st_memsink ms;
        lmu_st_sink sink;
        memcpy(ts, fx_t, sizeof ts);
        lmu__st_swap((unsigned char *)sw, (const unsigned char *)fx_w, FX_A * FX_B, 4); ts[0].data = sw;
        lmu__st_swap((unsigned char *)sw64, (const unsigned char *)fx_i64, 5, 8); ts[1].data = sw64;
        lmu__st_swap((unsigned char *)sw32, (const unsigned char *)fx_i32, 4, 4); ts[4].data = sw32;
        lmu__st_swap((unsigned char *)swd, (const unsigned char *)fx_f64, 4, 8); ts[6].data = swd;
        lmu__st_swap((unsigned char *)sw16, (const unsigned char *)fx_f16, 5, 2); ts[7].data = sw16;
        lmu__st_swap((unsigned char *)swb, (const unsigned char *)fx_bf16, 2, 2); ts[8].data = swb;
        {
            float s1;
            lmu__st_swap((unsigned char *)&s1, (const unsigned char *)fx_scalar, 1, 4);
            ts[2].data = &s1; /* scalar and the weird one share fx_scalar */
            ts[9].data = &s1;
            ms.cap = len; ms.len = 0; ms.buf = (unsigned char *)malloc(len);
            sink.write = lmu__st_memsink_write; sink.user = &ms;
            r = lmu__st_write_ex(&sink, ts, nt, fx_m, 4, 0, g_err, sizeof g_err);
        }
        LT_CHECK(r == LMU_OK && ms.len == len && memcmp(ms.buf, buf, len) == 0,
                 "big-endian writer path (forced) gives the same bytes");
        free(ms.buf);
        (void)buf2; (void)len2;
        if (lmu_st_load_memory(&f, buf, len, g_err, sizeof g_err) == LMU_OK) {
            float a[FX_A * FX_B], b[FX_A * FX_B];
            int64_t x[5], y[5];
            size_t shp[2] = {FX_A, FX_B}, s5[1] = {5};
            r = lmu__st_read_f32_ex(&f, fx_t[0].name, shp, 2, a, 0, g_err, sizeof g_err);
            lmu_st_read_f32(&f, fx_t[0].name, shp, 2, b, g_err, sizeof g_err);
            LT_CHECK(r == LMU_OK && memcmp(a, b, sizeof a) == 0, "byte-assembling f32 reader path agrees");
            r = lmu__st_read_ex(&f, "optim.step", LMU_ST_I64, s5, 1, x, 0, g_err, sizeof g_err);
            lmu__st_swap((unsigned char *)y, (const unsigned char *)fx_i64, 5, 8);
            LT_CHECK(r == LMU_OK && memcmp(x, y, sizeof x) == 0, "big-endian reader path (forced) swaps I64");
            lmu_st_close(&f);
        }
    }

#ifndef LMU_NO_STDIO
    {
        /* the file functions give the same bytes as the memory ones */
        char path[] = "build/test_safetensors_rt.safetensors";
        FILE *fp;
        unsigned char *back;
        size_t got;
        r = lmu_st_save_file(path, fx_t, nt, fx_m, 4, g_err, sizeof g_err);
        LT_CHECK(r == LMU_OK, "save_file (%s)", g_err);
        back = (unsigned char *)malloc(len + 16);
        fp = fopen(path, "rb");
        got = fp ? fread(back, 1, len + 16, fp) : 0;
        if (fp) fclose(fp);
        LT_CHECK(got == len && memcmp(back, buf, len) == 0, "file bytes == memory bytes");
        free(back);
        r = lmu_st_load_file(&f, path, g_err, sizeof g_err);
        LT_CHECK(r == LMU_OK && f.n_tensors == nt && lmu_st_meta_get(&f, "config") != NULL, "load_file (%s)", g_err);
        lmu_st_close(&f);
        remove(path);
        r = lmu_st_load_file(&f, "build/does/not/exist.safetensors", g_err, sizeof g_err);
        LT_CHECK(r == LMU_ERR_IO && g_err[0], "missing file -> IO: %s", g_err);
    }
#endif
    lmu_st_free_memory(buf);
}

/* ---- writer argument checks -------------------------------------------- */

static void test_writer_args(void)
{
    lmu_st_tensor t[2];
    lmu_st_meta m[2];
    unsigned char *buf;
    size_t len;
    float x[2] = {1, 2};
    lmu_result r;
    memset(t, 0, sizeof t);
    t[0].name = "a"; t[0].dtype = LMU_ST_F32; t[0].ndim = 1; t[0].shape[0] = 2; t[0].data = x;
    t[1] = t[0];
    r = lmu_st_save_memory(t, 2, NULL, 0, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG && has(g_err, "duplicate"), "duplicate names -> ARG: %s", g_err);
    t[1].name = "__metadata__";
    r = lmu_st_save_memory(t, 2, NULL, 0, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG, "tensor named __metadata__ -> ARG: %s", g_err);
    t[1].name = "bad\xff";
    r = lmu_st_save_memory(t, 2, NULL, 0, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG, "invalid UTF-8 name -> ARG: %s", g_err);
    t[1].name = "b"; t[1].ndim = LMU_ST_MAX_DIMS + 1;
    r = lmu_st_save_memory(t, 2, NULL, 0, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG, "ndim too large -> ARG: %s", g_err);
    t[1].ndim = 1; t[1].data = NULL;
    r = lmu_st_save_memory(t, 2, NULL, 0, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG, "NULL data -> ARG: %s", g_err);
    t[1].data = x; t[1].dtype = (lmu_st_dtype)99;
    r = lmu_st_save_memory(t, 2, NULL, 0, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG, "bad dtype -> ARG: %s", g_err);
    t[1].dtype = LMU_ST_F32; t[1].ndim = 3;
    t[1].shape[0] = (size_t)1 << (sizeof(size_t) * 4); t[1].shape[1] = t[1].shape[0]; t[1].shape[2] = 2;
    r = lmu_st_save_memory(t, 2, NULL, 0, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG && has(g_err, "overflow"), "size overflow -> ARG: %s", g_err);
    t[1].ndim = 1; t[1].shape[0] = 2;
    m[0].key = "k"; m[0].value = "v"; m[1] = m[0];
    r = lmu_st_save_memory(t, 2, m, 2, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG && has(g_err, "duplicate metadata"), "duplicate keys -> ARG: %s", g_err);
    m[1].key = "k2"; m[1].value = NULL;
    r = lmu_st_save_memory(t, 2, m, 2, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_ERR_ARG, "NULL metadata value -> ARG: %s", g_err);
    m[1].value = "v2";
    r = lmu_st_save_memory(t, 2, m, 2, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_OK, "valid description saves (%s)", g_err);
    if (r == LMU_OK) lmu_st_free_memory(buf);
    r = lmu_st_save_memory(NULL, 0, NULL, 0, &buf, &len, g_err, sizeof g_err);
    LT_CHECK(r == LMU_OK && len == 16 && memcmp(buf + 8, "{}      ", 8) == 0, "empty file is '{}' + padding");
    if (r == LMU_OK) {
        lmu_st_file f;
        LT_CHECK(lmu_st_load_memory(&f, buf, len, g_err, sizeof g_err) == LMU_OK && f.n_tensors == 0, "empty file loads");
        lmu_st_close(&f);
        lmu_st_free_memory(buf);
    }
    {
        /* a sink that fails */
        struct { int n; } st = {0};
        lmu_st_sink s;
        lmu__st_memsink ms;
        unsigned char small[40];
        ms.buf = small; ms.cap = sizeof small; ms.len = 0;
        s.write = lmu__st_memsink_write; s.user = &ms;
        r = lmu_st_write(&s, t, 2, m, 2, g_err, sizeof g_err);
        LT_CHECK(r == LMU_ERR_IO && g_err[0], "failing sink -> IO: %s", g_err);
        (void)st;
    }
}

/* ---- atomic save ------------------------------------------------------- */

#if TST_POSIX && !defined(LMU_NO_STDIO)
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_atomic(void)
{
    char dir[] = "/tmp/lmu_st_XXXXXX", path[128];
    unsigned char *old_bytes, *new_mem = NULL, *now;
    size_t old_len = 0, new_len = 0, now_len = 0, k;
    lmu_st_tensor t[3];
    float a[3] = {1, 2, 3}, b[64];
    lmu__st_fault fault;
    lmu_result r;
    int bad_result = 0, bad_file = 0, bad_dir = 0, bad_msg = 0, i, tries = 0;
    if (!mkdtemp(dir)) {
        LT_CHECK(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    memset(t, 0, sizeof t);
    t[0].name = "old"; t[0].dtype = LMU_ST_F32; t[0].ndim = 1; t[0].shape[0] = 3; t[0].data = a;
    r = lmu_st_save_file(path, t, 1, NULL, 0, g_err, sizeof g_err);
    LT_CHECK(r == LMU_OK, "first save (%s)", g_err);
    old_bytes = lt_slurp(path, &old_len);
    for (i = 0; i < 64; i++) b[i] = (float)i * 0.5f;
    t[0].name = "new.weight"; t[0].shape[0] = 64; t[0].data = b;
    t[1].name = "new.bias"; t[1].dtype = LMU_ST_F32; t[1].ndim = 1; t[1].shape[0] = 3; t[1].data = a;
    lmu_st_save_memory(t, 2, fx_m, 2, &new_mem, &new_len, g_err, sizeof g_err);
    /* a failure after every byte count from 0 to the whole file */
    for (k = 0; k < new_len; k++) {
        memset(&fault, 0, sizeof fault);
        fault.fail_write_at = k;
        g_err[0] = 0;
        r = lmu__st_save_file_ex(path, t, 2, fx_m, 2, &fault, g_err, sizeof g_err);
        tries++;
        if (r != LMU_ERR_IO) bad_result++;
        if (!g_err[0]) bad_msg++;
        now = lt_slurp(path, &now_len);
        if (!now || now_len != old_len || memcmp(now, old_bytes, old_len) != 0) bad_file++;
        free(now);
        if (count_entries(dir) != 1) bad_dir++;
    }
    LT_CHECK(bad_result == 0, "%d injected write failures all return IO (%d wrong)", tries, bad_result);
    LT_CHECK(bad_msg == 0, "every failure has a message (e.g. '%s')", g_err);
    LT_CHECK(bad_file == 0, "old file byte-identical after every failure (%d differ)", bad_file);
    LT_CHECK(bad_dir == 0, "no temporary file left behind (%d times one was)", bad_dir);
    memset(&fault, 0, sizeof fault);
    fault.fail_write_at = (size_t)-1;
    fault.fail_sync = 1;
    r = lmu__st_save_file_ex(path, t, 2, fx_m, 2, &fault, g_err, sizeof g_err);
    now = lt_slurp(path, &now_len);
    LT_CHECK(r == LMU_ERR_IO && now_len == old_len && memcmp(now, old_bytes, old_len) == 0 && count_entries(dir) == 1,
             "fsync failure: IO, old file kept, no temp (%s)", g_err);
    free(now);
    fault.fail_sync = 0;
    fault.fail_rename = 1;
    r = lmu__st_save_file_ex(path, t, 2, fx_m, 2, &fault, g_err, sizeof g_err);
    now = lt_slurp(path, &now_len);
    LT_CHECK(r == LMU_ERR_IO && now_len == old_len && memcmp(now, old_bytes, old_len) == 0 && count_entries(dir) == 1,
             "rename failure: IO, old file kept, no temp (%s)", g_err);
    free(now);
#ifdef RLIMIT_FSIZE
    {
        /* A real short write: the kernel refuses to grow the file past the
           limit (EFBIG once SIGXFSZ is ignored). */
        struct rlimit old_lim, lim;
        void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
        if (getrlimit(RLIMIT_FSIZE, &old_lim) == 0) {
            lim = old_lim;
            lim.rlim_cur = 100;
            if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
                r = lmu_st_save_file(path, t, 2, fx_m, 2, g_err, sizeof g_err);
                setrlimit(RLIMIT_FSIZE, &old_lim);
                now = lt_slurp(path, &now_len);
                LT_CHECK(r == LMU_ERR_IO && now_len == old_len && memcmp(now, old_bytes, old_len) == 0 &&
                             count_entries(dir) == 1,
                         "real write failure (RLIMIT_FSIZE): IO, old file kept: %s", g_err);
                free(now);
            }
        }
        signal(SIGXFSZ, old_sig);
    }
#endif
    /* an unwritable place */
    {
        char p2[160];
        snprintf(p2, sizeof p2, "%s/no/such/dir/x.safetensors", dir);
        r = lmu_st_save_file(p2, t, 2, NULL, 0, g_err, sizeof g_err);
        LT_CHECK(r == LMU_ERR_IO && has(g_err, "cannot create"), "missing folder -> IO: %s", g_err);
    }
    /* and finally a save that succeeds replaces the file */
    r = lmu_st_save_file(path, t, 2, fx_m, 2, g_err, sizeof g_err);
    now = lt_slurp(path, &now_len);
    LT_CHECK(r == LMU_OK && now_len == new_len && memcmp(now, new_mem, new_len) == 0 && count_entries(dir) == 1,
             "successful save replaces the file (%s)", g_err);
    free(now);
    free(old_bytes);
    lmu_st_free_memory(new_mem);
    remove(path);
    rmdir(dir);
}
#endif

/* ---- truncation and header length -------------------------------------- */

static void test_truncation(void)
{
    unsigned char *buf = NULL, *c;
    size_t len = 0, k;
    int bad = 0, nomsg = 0;
    lmu_st_file f;
    lmu_st_save_memory(fx_t, 10, fx_m, 4, &buf, &len, g_err, sizeof g_err);
    for (k = 0; k < len; k++) {
        lmu_result r;
        c = dup_exact(buf, k);
        g_err[0] = 0;
        r = lmu_st_load_memory(&f, c, k, g_err, sizeof g_err);
        if (r != LMU_ERR_FORMAT) {
            bad++;
            if (r == LMU_OK) lmu_st_close(&f);
        }
        if (!g_err[0]) nomsg++;
        free(c);
    }
    LT_CHECK(bad == 0 && nomsg == 0, "all %llu truncations refused with a message (%d accepted, %d silent)",
             (unsigned long long)len, bad, nomsg);
    /* the header length field itself */
    {
        unsigned char h[24];
        lmu_result r;
        memcpy(h, buf, 24);
        memset(h, 0xFF, 8);
        r = lmu_st_load_memory(&f, h, sizeof h, g_err, sizeof g_err);
        LT_CHECK(r == LMU_ERR_FORMAT && has(g_err, "past the end"), "header length 2^64-1: %s", g_err);
        memset(h, 0, 8);
        h[0] = 17;
        r = lmu_st_load_memory(&f, h, sizeof h, g_err, sizeof g_err);
        LT_CHECK(r == LMU_ERR_FORMAT && has(g_err, "past the end"), "header length one past EOF: %s", g_err);
        memset(h, 0, 8);
        r = lmu_st_load_memory(&f, h, 8, g_err, sizeof g_err);
        LT_CHECK(r == LMU_ERR_FORMAT && g_err[0], "header length 0: %s", g_err);
    }
    {
        size_t big = (size_t)100000000 + 64;
        unsigned char *h = (unsigned char *)calloc(big, 1);
        if (h) {
            uint64_t n = 100000001;
            int i;
            for (i = 0; i < 8; i++) h[i] = (unsigned char)(n >> (8 * i));
            LT_CHECK(lmu_st_load_memory(&f, h, big, g_err, sizeof g_err) == LMU_ERR_FORMAT && has(g_err, "limit"),
                     "header length over the 100 MB cap: %s", g_err);
            free(h);
        }
    }
    LT_CHECK(lmu_st_load_memory(&f, NULL, 0, g_err, sizeof g_err) == LMU_ERR_FORMAT, "empty buffer: %s", g_err);
    lmu_st_free_memory(buf);
}

/* ---- hand-made headers ------------------------------------------------- */

/* file = u64 len | header | data_len zero bytes */
static unsigned char *mk(const char *header, size_t hlen, size_t data_len, size_t *out_len)
{
    size_t n = 8 + hlen + data_len, i;
    unsigned char *b = (unsigned char *)calloc(n ? n : 1, 1);
    for (i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, header, hlen);
    *out_len = n;
    return b;
}

typedef struct bad_case {
    const char *header;
    size_t data_len;
    const char *expect; /* substring of the message, or NULL */
} bad_case;

#define T1 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"

static void test_bad_headers(void)
{
    static const bad_case cases[] = {
        {"", 0, "expected '{'"},
        {" ", 0, "end of header"},
        {"[]", 0, "JSON object"},
        {"{\"a\":" T1, 4, "',' or '}'"},
        {"{\"a", 4, "unterminated string"},
        {"{\"a\\q\":" T1 "}", 4, "invalid escape"},
        {"{\"a\\", 4, "unterminated escape"},
        {"{\"\\u12G4\":" T1 "}", 4, "4 hex digits"},
        {"{\"\\u12\":" T1 "}", 4, "4 hex digits"},
        {"{\"\\ud800\":" T1 "}", 4, "high surrogate"},
        {"{\"\\ud800\\u0041\":" T1 "}", 4, "high surrogate"},
        {"{\"\\udc00x\":" T1 "}", 4, "low surrogate"},
        {"{\"\\u0000\":" T1 "}", 4, "U+0000"},
        {"{\"a\nb\":" T1 "}", 4, "control character"},
        {"{\"\xff\":" T1 "}", 4, "UTF-8"},
        {"{\"\xc0\x80\":" T1 "}", 4, "UTF-8"},
        {"{\"\xed\xa0\x80\":" T1 "}", 4, "UTF-8"},
        {"{\"\xf4\x90\x80\x80\":" T1 "}", 4, "UTF-8"},
        {"{\"\xe2\x9c\":" T1 "}", 4, "UTF-8"},
        {"{\"a\":" T1 "} x", 4, "after the header"},
        {"{\"a\":" T1 "}}", 4, "after the header"},
        {"{\"a\":" T1 ",}", 4, "a string"},
        {"{\"a\"" T1 "}", 4, "':'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":"
         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
         4, "nested too deeply"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "fraction"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, "exponent"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zero"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999999],\"data_offsets\":[0,4]}}", 4, "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", 4, "integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "'['"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
         NULL}, /* product overflow, or (32-bit size_t) a number too large */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[65536,65536,65536,65536,65536],\"data_offsets\":[0,4]}}", 4, "overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, "past the 4-byte data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "begin > end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "exactly 2"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "2 entries"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 6, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "hole"},
        {"{\"a\":" T1 "}", 8, "cover only 4"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"F33\""},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"FLOAT32_LONG_NAME_X\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8 bytes"},
        {"{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "needs 8 bytes"},
        {"{\"a\":" T1 ",\"a\":" T1 "}", 4, "duplicate tensor name 'a'"},
        {"{\"a\":" T1 ",\"\\u0061\":" T1 "}", 4, "duplicate tensor name"},
        {"{\"__metadata__\":{\"k\":1},\"a\":" T1 "}", 4, "not a string"},
        {"{\"__metadata__\":{\"k\":null},\"a\":" T1 "}", 4, "not a string"},
        {"{\"__metadata__\":[],\"a\":" T1 "}", 4, "object"},
        {"{\"__metadata__\":\"x\",\"a\":" T1 "}", 4, "object"},
        {"{\"__metadata__\":{},\"__metadata__\":{},\"a\":" T1 "}", 4, "twice"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"},\"a\":" T1 "}", 4, "duplicate metadata key"},
        {"{\"__metadata__\":{\"k\":\"a\\u0000b\"},\"a\":" T1 "}", 4, "U+0000"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing \"data_offsets\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "twice"},
        {"{\"a\":5}", 4, "an object"},
        {"{\"a\":" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":tru}}", 4, "literal"},
        {"{\"a\":{\"x\":-,\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "number"},
        {"{\"a\":{\"x\":1.,\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "number"},
        {"{\"a\":{\"x\":1e,\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "number"},
        {"{\"a\":{\"x\":{\"y\" 1},\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "':'"},
        {"{\"a\":{\"x\":[1 2],\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "',' or ']'"},
        {"{\"a\":{\"x\":@,\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unexpected character"},
    };
    size_t i, n = sizeof cases / sizeof *cases;
    for (i = 0; i < n; i++) {
        size_t len, hl = strlen(cases[i].header);
        unsigned char *b;
        lmu_st_file f;
        lmu_result r;
        b = mk(cases[i].header, hl, cases[i].data_len, &len);
        g_err[0] = 0;
        r = lmu_st_load_memory(&f, b, len, g_err, sizeof g_err);
        LT_CHECK(r == LMU_ERR_FORMAT && g_err[0] && (!cases[i].expect || has(g_err, cases[i].expect)),
                 "bad header %llu refused (%s): %s", (unsigned long long)i, cases[i].expect ? cases[i].expect : "", g_err);
        if (r == LMU_OK) lmu_st_close(&f);
        free(b);
    }
    { /* NUL padding instead of spaces */
        static const char h[] = "{\"a\":" T1 "}\0\0\0";
        size_t len;
        unsigned char *b = mk(h, sizeof h - 1, 4, &len);
        lmu_st_file f;
        lmu_result r = lmu_st_load_memory(&f, b, len, g_err, sizeof g_err);
        LT_CHECK(r == LMU_ERR_FORMAT && has(g_err, "after the header"), "NUL padding refused: %s", g_err);
        free(b);
    }
}

static void test_good_headers(void)
{
    static const struct {
        const char *header;
        size_t data_len;
        size_t n_tensors;
    } cases[] = {
        {"{}", 0, 0},
        {" \t\r\n{ \t\r\n} \t\r\n", 0, 0},
        {"{\"__metadata__\":{}}", 0, 0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
         "\"extra\":{\"x\":[1,-2.5e-3,0,0.0,1E+2,true,false,null,\"s\\n\",{},[]]}}}", 4, 1},
        {"{ \"a\" : { \"d\\u0074ype\" : \"F\\u00332\" , \"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 4 ] } }", 4, 1},
        {"{\"\\ud834\\udd1e\":" T1 "}", 4, 1},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},\"c\":" T1 ","
         "\"z\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[4,5]},"
         "\"e\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[5,5]}}", 5, 5},
        {"{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},\"a\":" T1 "}", 8, 2},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[65536,65536,65536,0],\"data_offsets\":[0,0]}}", 0, 1},
    };
    size_t i, n = sizeof cases / sizeof *cases;
    for (i = 0; i < n; i++) {
        size_t len;
        unsigned char *b = mk(cases[i].header, strlen(cases[i].header), cases[i].data_len, &len);
        lmu_st_file f;
        lmu_result r = lmu_st_load_memory(&f, b, len, g_err, sizeof g_err);
        LT_CHECK(r == LMU_OK && f.n_tensors == cases[i].n_tensors, "good header %llu loads (%s)",
                 (unsigned long long)i, r == LMU_OK ? "" : g_err);
        if (r == LMU_OK) {
            if (i == 4) LT_CHECK(lmu_st_find(&f, "a") && lmu_st_find(&f, "a")->dtype == LMU_ST_F32, "escaped field names decode");
            if (i == 5) LT_CHECK(lmu_st_find(&f, "\xf0\x9d\x84\x9e") != NULL, "surrogate pair decodes to UTF-8");
            if (i == 7) LT_CHECK(f.tensors[0].offset == 4 && strcmp(f.tensors[0].name, "b") == 0, "header order kept, offsets any order");
            lmu_st_close(&f);
        }
        free(b);
    }
}

/* ---- random mutations -------------------------------------------------- */

static void exercise(const lmu_st_file *f)
{
    size_t i;
    for (i = 0; i < f->n_tensors; i++) {
        const lmu_st_tensor *t = &f->tensors[i];
        if (t->nbytes <= 1 << 16) {
            unsigned char *dst = (unsigned char *)malloc(t->nbytes * 2 + 8);
            lmu_st_read_f32(f, t->name, t->shape, t->ndim, (float *)(void *)dst, g_err, sizeof g_err);
            lmu_st_read(f, t->name, t->dtype, t->shape, t->ndim, dst, g_err, sizeof g_err);
            free(dst);
        }
        (void)lmu_st_find(f, t->name);
    }
    for (i = 0; i < f->n_meta; i++) (void)lmu_st_meta_get(f, f->meta[i].key);
}

static void test_fuzz(void)
{
    static const unsigned char interesting[] = {'"', '\\', '{', '}', '[', ']', ',', ':', '0', '1', '9',
                                                '-', '.', 'e', 'u', ' ', 0x00, 0xFF, 0x80, 0xC3, 0xED};
    unsigned char *good = NULL;
    size_t len = 0;
    int it, ok = 0, refused = 0, silent = 0, wrong = 0;
    lmu_st_tensor t[4];
    memcpy(t, fx_t + 1, sizeof t); /* small tensors: mutations mostly hit the header */
    lmu_st_save_memory(t, 4, fx_m, 3, &good, &len, g_err, sizeof g_err);
    lt_seed(1234);
    for (it = 0; it < 5000; it++) {
        size_t n = len, k, nmut;
        unsigned char *b = dup_exact(good, len), *c;
        lmu_st_file f;
        lmu_result r;
        nmut = 1 + (size_t)((lt_uniform() + 1) * 2);
        for (k = 0; k < nmut; k++) {
            double u = (lt_uniform() + 1) * 0.5;
            size_t pos = (size_t)((lt_uniform() + 1) * 0.5 * (double)n);
            if (n < 9) break;
            if (pos >= n) pos = n - 1;
            if (u < 0.35) b[pos] = (unsigned char)(b[pos] ^ (1u << (it % 8)));
            else if (u < 0.75) b[pos] = interesting[(size_t)((lt_uniform() + 1) * 0.5 * sizeof interesting) % sizeof interesting];
            else if (u < 0.85) b[pos] = (unsigned char)((lt_uniform() + 1) * 128);
            else if (u < 0.92) b[(size_t)(it % 8)] = (unsigned char)((lt_uniform() + 1) * 128); /* header length */
            else n = pos; /* truncate */
        }
        c = dup_exact(b, n);
        free(b);
        g_err[0] = 0;
        r = lmu_st_load_memory(&f, c, n, g_err, sizeof g_err);
        if (r == LMU_OK) {
            ok++;
            exercise(&f);
            lmu_st_close(&f);
        } else {
            refused++;
            if (!g_err[0]) silent++;
            if (r != LMU_ERR_FORMAT && r != LMU_ERR_NOMEM) wrong++;
        }
        free(c);
    }
    LT_CHECK(silent == 0 && wrong == 0, "5000 mutations: %d loaded, %d refused, %d without message, %d wrong code",
             ok, refused, silent, wrong);
    LT_CHECK(refused > 2500 && ok > 0, "mutations exercise both outcomes (%d ok, %d refused)", ok, refused);
    lmu_st_free_memory(good);
}

int main(int argc, char **argv)
{
    lt_begin("test_safetensors", argc, argv);
    fixture();
    test_roundtrip();
    test_writer_args();
#if TST_POSIX && !defined(LMU_NO_STDIO)
    test_atomic();
#endif
    test_truncation();
    test_bad_headers();
    test_good_headers();
    test_fuzz();
    return lt_end();
}
