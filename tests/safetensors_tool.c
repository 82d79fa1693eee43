/* safetensors_tool.c - the C side of tests/test_safetensors_py.sh.

     safetensors_tool write OUT   write the fixed sample file (see sample())
     safetensors_tool dump IN     load IN and print a canonical dump:
                                    T <name hex> <dtype> <d0,d1,..> <data hex>
                                    M <key hex> <value hex>
                                  tensors sorted by name bytes, metadata by
                                  key bytes; data hex is the little-endian
                                  bytes re-encoded from what lmu_st_read
                                  returned in host order (F32 also checked
                                  through lmu_st_read_f32)
     safetensors_tool load IN     exit 0 if IN loads, 1 (message on stderr)
                                  if it is refused

   build: cc -std=c99 -O2 -I. tests/safetensors_tool.c -o build/safetensors_tool -lm */
#define LMU_IMPLEMENTATION
#include "lmu.h"

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int sample(const char *out)
{
    static float w[12], lname[2] = {1.0f, 2.0f};
    static int64_t step[1] = {123456789012LL};
    static int32_t pos[6] = {-3, -2, -1, 0, 1, 2};
    static unsigned char mask[4] = {0, 1, 254, 255};
    static double d[2] = {0.1, -2.5};
    static int64_t big[3] = {INT64_MIN, -1, INT64_MAX};
    lmu_st_tensor t[8];
    lmu_st_meta m[2];
    char err[256];
    int i;
    for (i = 0; i < 12; i++) w[i] = (float)i * 0.25f - 1.5f;
    w[0] = bits_f(0x80000000u); /* -0.0 */
    w[1] = bits_f(0x00000001u); /* denormal */
    w[2] = bits_f(0x7F800000u); /* inf */
    w[3] = bits_f(0x7FC00001u); /* NaN with a payload */
    memset(t, 0, sizeof t);
    t[0].name = "w"; t[0].dtype = LMU_ST_F32; t[0].ndim = 2; t[0].shape[0] = 3; t[0].shape[1] = 4; t[0].data = w;
    t[1].name = "step"; t[1].dtype = LMU_ST_I64; t[1].ndim = 0; t[1].data = step;
    t[2].name = "pos"; t[2].dtype = LMU_ST_I32; t[2].ndim = 2; t[2].shape[0] = 2; t[2].shape[1] = 3; t[2].data = pos;
    t[3].name = "mask"; t[3].dtype = LMU_ST_U8; t[3].ndim = 1; t[3].shape[0] = 4; t[3].data = mask;
    t[4].name = "d"; t[4].dtype = LMU_ST_F64; t[4].ndim = 1; t[4].shape[0] = 2; t[4].data = d;
    t[5].name = "empty"; t[5].dtype = LMU_ST_F32; t[5].ndim = 2; t[5].shape[0] = 0; t[5].shape[1] = 3; t[5].data = NULL;
    t[6].name = "blocks.0.lmu.L \xe2\x9c\x93 \"q\""; t[6].dtype = LMU_ST_F32; t[6].ndim = 1; t[6].shape[0] = 2; t[6].data = lname;
    t[7].name = "big"; t[7].dtype = LMU_ST_I64; t[7].ndim = 1; t[7].shape[0] = 3; t[7].data = big;
    m[0].key = "config"; m[0].value = "{\"d\": 204}";
    m[1].key = "note \xf0\x9d\x84\x9e"; m[1].value = "h\xc3\xa9llo \"q\" \\ \n\t\x01 end";
    if (lmu_st_save_file(out, t, 8, m, 2, err, sizeof err) != LMU_OK) {
        fprintf(stderr, "write: %s\n", err);
        return 1;
    }
    return 0;
}

static void hex(const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    if (n == 0) printf("-");
    for (i = 0; i < n; i++) printf("%02x", b[i]);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const lmu_st_tensor *const *)a)->name, (*(const lmu_st_tensor *const *)b)->name);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(const lmu_st_meta *const *)a)->key, (*(const lmu_st_meta *const *)b)->key);
}

static int dump(const char *in)
{
    lmu_st_file f;
    char err[256];
    size_t i, k;
    const lmu_st_tensor **ts;
    const lmu_st_meta **ms;
    int bad = 0;
    if (lmu_st_load_file(&f, in, err, sizeof err) != LMU_OK) {
        fprintf(stderr, "dump: %s\n", err);
        return 1;
    }
    ts = (const lmu_st_tensor **)malloc((f.n_tensors + 1) * sizeof *ts);
    ms = (const lmu_st_meta **)malloc((f.n_meta + 1) * sizeof *ms);
    for (i = 0; i < f.n_tensors; i++) ts[i] = &f.tensors[i];
    for (i = 0; i < f.n_meta; i++) ms[i] = &f.meta[i];
    qsort((void *)ts, f.n_tensors, sizeof *ts, cmp_name); /* strcmp = byte order */
    qsort((void *)ms, f.n_meta, sizeof *ms, cmp_key);
    for (i = 0; i < f.n_tensors; i++) {
        const lmu_st_tensor *t = ts[i];
        size_t es = lmu_st_dtype_size(t->dtype), count = t->nbytes / es;
        unsigned char *host = (unsigned char *)malloc(t->nbytes + 1);
        int d;
        if (lmu_st_read(&f, t->name, t->dtype, t->shape, t->ndim, host, err, sizeof err) != LMU_OK) {
            fprintf(stderr, "dump: %s\n", err);
            bad = 1;
        }
        if (t->dtype == LMU_ST_F32) { /* the float path must agree bit for bit */
            float *fl = (float *)malloc(t->nbytes + 4);
            if (lmu_st_read_f32(&f, t->name, t->shape, t->ndim, fl, err, sizeof err) != LMU_OK ||
                (t->nbytes && memcmp(fl, host, t->nbytes) != 0)) {
                fprintf(stderr, "dump: read_f32 disagrees for '%s'\n", t->name);
                bad = 1;
            }
            free(fl);
        }
        printf("T ");
        hex(t->name, strlen(t->name));
        printf(" %s ", lmu_st_dtype_name(t->dtype));
        if (t->ndim == 0) printf("-");
        for (d = 0; d < t->ndim; d++) printf("%s%lu", d ? "," : "", (unsigned long)t->shape[d]);
        printf(" ");
        if (count == 0) printf("-");
        for (k = 0; k < count; k++) { /* host value -> little-endian bytes */
            uint64_t v = 0;
            size_t j;
            if (es == 1) v = host[k];
            else if (es == 2) { uint16_t x; memcpy(&x, host + k * 2, 2); v = x; }
            else if (es == 4) { uint32_t x; memcpy(&x, host + k * 4, 4); v = x; }
            else memcpy(&v, host + k * 8, 8);
            for (j = 0; j < es; j++) printf("%02x", (unsigned)((v >> (8 * j)) & 0xFF));
        }
        printf("\n");
        free(host);
    }
    for (i = 0; i < f.n_meta; i++) {
        printf("M ");
        hex(ms[i]->key, strlen(ms[i]->key));
        printf(" ");
        hex(ms[i]->value, strlen(ms[i]->value));
        printf("\n");
    }
    free(ts);
    free(ms);
    lmu_st_close(&f);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "write") == 0) return sample(argv[2]);
    if (argc == 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2]);
    if (argc == 3 && strcmp(argv[1], "load") == 0) {
        lmu_st_file f;
        char err[256];
        if (lmu_st_load_file(&f, argv[2], err, sizeof err) != LMU_OK) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        lmu_st_close(&f);
        return 0;
    }
    fprintf(stderr, "usage: safetensors_tool write OUT | dump IN | load IN\n");
    return 2;
}
