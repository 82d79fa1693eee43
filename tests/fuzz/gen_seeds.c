/* gen_seeds.c - writes the fuzzers' seed corpora from small valid files made
   by the library itself: OUT/<target>/<name> for every target.
   Usage: gen_seeds OUT   (tests/test_fuzz.sh and tools/fuzz.sh run it) */
#define LMU_STB_DS_IMPLEMENTATION
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "fuzz_vocab.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *g_out;
static int g_n;

static void put(const char *target, const char *name, const void *b, size_t n)
{
    char p[1024];
    FILE *f;
    snprintf(p, sizeof p, "%s/%s", g_out, target);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", g_out, target, name);
    f = fopen(p, "wb");
    if (!f || fwrite(b, 1, n, f) != n) {
        fprintf(stderr, "gen_seeds: cannot write %s\n", p);
        exit(1);
    }
    fclose(f);
    g_n++;
}

static void st_seeds(void)
{
    static float f32[6] = {1, -2, 0.5f, 3, 4, 5};
    static int64_t i64[2] = {7, -1};
    static unsigned char u8[3] = {1, 2, 3};
    static unsigned short h[4] = {0x3C00, 0xC000, 0x7E00, 0};
    lmu_st_tensor t[4];
    lmu_st_meta meta[2] = {{"format", "pt"}, {"note", "\xc3\xa9t\xc3\xa9 \"q\""}};
    unsigned char *out;
    size_t n;
    memset(t, 0, sizeof t);
    t[0].name = "w"; t[0].dtype = LMU_ST_F32; t[0].ndim = 2; t[0].shape[0] = 2; t[0].shape[1] = 3; t[0].data = f32;
    t[1].name = "step"; t[1].dtype = LMU_ST_I64; t[1].ndim = 1; t[1].shape[0] = 2; t[1].data = i64;
    t[2].name = "b\xc3\xa9"; t[2].dtype = LMU_ST_U8; t[2].ndim = 0; t[2].data = u8;
    t[3].name = "half"; t[3].dtype = LMU_ST_F16; t[3].ndim = 3; t[3].shape[0] = 1; t[3].shape[1] = 2; t[3].shape[2] = 2; t[3].data = h;
    if (lmu_st_save_memory(t, 4, meta, 2, &out, &n, NULL, 0) == LMU_OK) {
        put("st_load", "four_tensors", out, n);
        lmu_st_free_memory(out);
    }
    if (lmu_st_save_memory(t, 1, NULL, 0, &out, &n, NULL, 0) == LMU_OK) {
        put("st_load", "one_tensor", out, n);
        lmu_st_free_memory(out);
    }
    if (lmu_st_save_memory(NULL, 0, meta, 1, &out, &n, NULL, 0) == LMU_OK) {
        put("st_load", "meta_only", out, n);
        lmu_st_free_memory(out);
    }
    t[0].shape[0] = 0; /* an empty tensor */
    if (lmu_st_save_memory(t, 2, NULL, 0, &out, &n, NULL, 0) == LMU_OK) {
        put("st_load", "empty_tensor", out, n);
        lmu_st_free_memory(out);
    }
    /* a hand-written header with escapes and spacing the writer never makes */
    {
        const char hj[] = "{ \"__metadata__\" : {\"k\\u00e9\":\"v\\n\"}, \"a\\\"b\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4], \"x\": [1, {\"y\": null}]}}";
        unsigned char buf[512];
        size_t hl = sizeof hj - 1, k;
        for (k = 0; k < 8; k++) buf[k] = (unsigned char)(hl >> (8 * k));
        memcpy(buf + 8, hj, hl);
        memcpy(buf + 8 + hl, f32, 4);
        put("st_load", "hand_written", buf, 8 + hl + 4);
    }
}

static void model_seeds(const char *tmpdir)
{
    static const struct { lmu_arch a; lmu_mixer m; int optim; const char *name; } kinds[] = {
        {LMU_ARCH_LMU, LMU_MIXER_FFN, 0, "lmu_ffn"},
        {LMU_ARCH_LMU, LMU_MIXER_ATTN, 1, "lmu_attn_optim"},
        {LMU_ARCH_TRANSFORMER, LMU_MIXER_FFN, 0, "transformer"},
    };
    size_t i, n;
    char p[1024];
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        lmu_config c;
        lmu_model *m = NULL;
        unsigned char *b;
        memset(&c, 0, sizeof c);
        c.arch = kinds[i].a;
        c.mixer = kinds[i].m;
        c.vocab_size = 8;
        c.n_ctx = 4;
        c.d_model = 4;
        c.n_layer = 1;
        c.d_ff = 4;
        c.d_pre = 4;
        c.q = 2;
        if (lmu_model_create(&m, &c, 1, NULL, 0) != LMU_OK) {
            fprintf(stderr, "gen_seeds: model %s\n", kinds[i].name);
            exit(1);
        }
        snprintf(p, sizeof p, "%s/seed_model.safetensors", tmpdir);
        if (lmu_model_save(m, p, kinds[i].optim) != LMU_OK || lmu__read_whole_file(p, "seed", 0, &b, &n, NULL, 0) != LMU_OK) {
            fprintf(stderr, "gen_seeds: save %s: %s\n", kinds[i].name, m->err);
            exit(1);
        }
        put("model_load", kinds[i].name, b, n);
        put("st_load", kinds[i].name, b, n);
        free(b);
        remove(p);
        lmu_model_free(m);
    }
}

static void tokenizer_seeds(void)
{
    static char js[FV_JSON_CAP], bpe[FV_BPE_CAP], buf[FV_JSON_CAP + FV_BPE_CAP + 2];
    size_t jn, bn;
    fv_make(js, &jn, bpe, &bn);
    buf[0] = (char)(jn & 255);
    buf[1] = (char)(jn >> 8);
    memcpy(buf + 2, js, jn);
    memcpy(buf + 2 + jn, bpe, bn);
    put("tokenizer_load", "small_vocab", buf, 2 + jn + bn);
}

static void encode_seeds(void)
{
    static const char *texts[] = {
        "Hello world, it's 2024! The abc ab ba er\n\n  \t x",
        "<|endoftext|>the <|endoftext|><|endo",
        "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xff\xfe\x80 \xc3",
        "I'll we've they're you'd   \n\n\n   0000 123456",
        "\xc2\xa0 \xe2\x80\x83 tab\tend \r\n",
    };
    size_t i, sel;
    char buf[256];
    for (i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (sel = 0; sel < 6; sel++) {
            char name[32];
            size_t n = strlen(texts[i]);
            buf[0] = (char)sel;
            memcpy(buf + 1, texts[i], n);
            snprintf(name, sizeof name, "text%lu_sel%lu", (unsigned long)i, (unsigned long)sel);
            put("encode", name, buf, n + 1);
        }
}

static void tokens_seeds(void)
{
    unsigned char buf[32 + 2 * 8];
    int i;
    if (lmu_tokens_header(buf, 50257, 8) != LMU_OK) exit(1);
    for (i = 0; i < 8; i++) {
        unsigned v = (unsigned)(i * 6007 % 50257);
        buf[32 + 2 * i] = (unsigned char)v;
        buf[33 + 2 * i] = (unsigned char)(v >> 8);
    }
    put("tokens_load", "eight_ids", buf, sizeof buf);
    if (lmu_tokens_header(buf, 1, 0) != LMU_OK) exit(1);
    put("tokens_load", "empty", buf, 32);
}

static void config_seeds(void)
{
    static const char *texts[] = {
        "# lmu-55k with a longer memory window\npreset   = lmu-55k      # first\ntheta    = 1000\nn_ctx    = 256\n",
        "arch = transformer\nd_model = 64\nn_head = 4\nn_layer = 2\nvocab_size = 257\n",
        "mixer = attn\nq = 12\nq_prime = 3\ntheta = 12.5e1\n\n\n",
        "preset = lmu-1m-attn\n",
        "n_layer = 3\nmixer = ffn, attn, ffn\nq = 16,32,16\ntheta = 32, 128.5, 512\n",
        "n_layer = 2\nq = 40,20\nq_prime = 4,2\nn_ctx = 64\n",
    };
    size_t i;
    char name[32], buf[1024];
    lmu_config c;
    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        snprintf(name, sizeof name, "text%lu", (unsigned long)i);
        put("config_parse", name, texts[i], strlen(texts[i]));
    }
    lmu_config_preset(&c, "transformer-100k");
    put("config_parse", "formatted", buf, lmu_config_format(&c, buf, sizeof buf));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gen_seeds OUT\n");
        return 2;
    }
    g_out = argv[1];
    mkdir(g_out, 0755);
    st_seeds();
    model_seeds(g_out);
    tokenizer_seeds();
    encode_seeds();
    tokens_seeds();
    config_seeds();
    printf("gen_seeds: %d seed files in %s\n", g_n, g_out);
    return 0;
}
