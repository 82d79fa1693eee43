/* Token files and config files (lmu.h >>data): round trips, the exact header
   layout, every truncation, every bad header field, ids out of range,
   random mutations (no crash, and whatever loads is consistent), atomic
   writes, and the config parser's good and bad lines with their numbers. */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "lmu_test.h"

#define TMP "build/test_data_tmp.tok"

static int file_exists(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* A valid file in memory: header + n ids. */
static size_t make_file(unsigned char *buf, const int32_t *ids, size_t n, int vocab)
{
    size_t i;
    lmu_tokens_header(buf, vocab, n);
    for (i = 0; i < n; i++) {
        buf[32 + 2 * i] = (unsigned char)(ids[i] & 255);
        buf[33 + 2 * i] = (unsigned char)(ids[i] >> 8);
    }
    return 32 + 2 * n;
}

static void test_round_trip(void)
{
    static const int vocabs[] = {1, 2, 257, 50257, 65536};
    int32_t ids[1000];
    size_t k, i, n = 0;
    char err[256];
    for (k = 0; k < sizeof vocabs / sizeof vocabs[0]; k++) {
        int v = vocabs[k], ok = 1;
        lmu_tokens tf;
        unsigned char *raw;
        for (i = 0; i < 1000; i++) ids[i] = (int32_t)((lt_uniform() + 1) * 0.5 * v) % v;
        ids[0] = v - 1;
        ids[1] = 0;
        LT_CHECK(lmu_tokens_write_file(TMP, ids, 1000, v, err, sizeof err) == LMU_OK,
                 "write vocab %d: %s", v, err);
        raw = lt_slurp(TMP, &n);
        LT_CHECK(raw && n == 32 + 2000, "file size %lu", (unsigned long)n);
        if (raw) {
            LT_CHECK(memcmp(raw, "LMUTOKS\0", 8) == 0 && raw[8] == 1 && !raw[9] && !raw[10] &&
                         !raw[11],
                     "magic and version bytes");
            LT_CHECK((raw[12] | raw[13] << 8 | raw[14] << 16 | raw[15] << 24) == v,
                     "vocab little-endian");
            LT_CHECK(raw[16] == (1000 & 255) && raw[17] == 1000 >> 8 && !raw[18] && !raw[23],
                     "count little-endian");
            for (i = 24; i < 32; i++) ok &= raw[i] == 0;
            LT_CHECK(ok, "reserved zero");
            LT_CHECK(raw[32] == ((v - 1) & 255) && raw[33] == ((v - 1) >> 8), "first id LE");
            free(raw);
        }
        LT_CHECK(lmu_tokens_load_file(&tf, TMP, err, sizeof err) == LMU_OK, "load vocab %d: %s", v,
                 err);
        LT_CHECK(tf.count == 1000 && tf.vocab_size == (uint32_t)v && tf.version == 1,
                 "header fields back");
        ok = 1;
        for (i = 0; i < 1000 && tf.ids; i++) ok &= tf.ids[i] == ids[i];
        LT_CHECK(ok, "ids back, vocab %d", v);
        lmu_tokens_free(&tf);
        LT_CHECK(tf.ids == NULL && tf.count == 0, "free zeroes");
        lmu_tokens_free(&tf); /* twice is fine */
    }
    {   /* empty file: a header and no ids */
        lmu_tokens tf;
        LT_CHECK(lmu_tokens_write_file(TMP, NULL, 0, 257, err, sizeof err) == LMU_OK, "write empty");
        LT_CHECK(lmu_tokens_load_file(&tf, TMP, err, sizeof err) == LMU_OK && tf.count == 0,
                 "load empty: %s", err);
        lmu_tokens_free(&tf);
    }
}

static void test_write_errors(void)
{
    int32_t ids[3] = {1, 2, 300};
    char err[256];
    remove(TMP);
    LT_CHECK(lmu_tokens_write_file(TMP, ids, 3, 257, err, sizeof err) == LMU_ERR_RANGE &&
                 strstr(err, "300"),
             "id >= vocab refused: %s", err);
    LT_CHECK(!file_exists(TMP), "nothing written for a bad id");
    ids[2] = -1;
    LT_CHECK(lmu_tokens_write_file(TMP, ids, 3, 257, err, sizeof err) == LMU_ERR_RANGE,
             "negative id refused");
    LT_CHECK(lmu_tokens_write_file(TMP, ids, 2, 0, err, sizeof err) == LMU_ERR_ARG, "vocab 0");
    LT_CHECK(lmu_tokens_write_file(TMP, ids, 2, 65537, err, sizeof err) == LMU_ERR_ARG,
             "vocab 65537");
    LT_CHECK(lmu_tokens_write_file("build/no/such/dir/x.tok", ids, 2, 257, err, sizeof err) ==
                     LMU_ERR_IO && strstr(err, "build/no/such/dir"),
             "missing folder: %s", err);
    LT_CHECK(lmu_tokens_write_file("", ids, 2, 257, err, sizeof err) != LMU_OK, "empty path");
    {   /* atomic replace: the old file is whole until the new one is */
        lmu_tokens tf;
        int32_t a[2] = {5, 6}, b[3] = {7, 8, 9};
        LT_CHECK(lmu_tokens_write_file(TMP, a, 2, 10, err, sizeof err) == LMU_OK, "write a");
        LT_CHECK(lmu_tokens_write_file(TMP, b, 3, 10, err, sizeof err) == LMU_OK, "replace by b");
        LT_CHECK(lmu_tokens_load_file(&tf, TMP, err, sizeof err) == LMU_OK && tf.count == 3 &&
                     tf.ids[2] == 9,
                 "replaced");
        lmu_tokens_free(&tf);
        LT_CHECK(system("ls build/test_data_tmp.tok.tmp.* >/dev/null 2>&1") != 0,
                 "no temporary file left behind");
    }
}

static lmu_result load(const unsigned char *buf, size_t n, char *err)
{
    lmu_tokens tf;
    lmu_result r = lmu_tokens_load_memory(&tf, buf, n, err, 256);
    if (r == LMU_OK) lmu_tokens_free(&tf);
    else if (tf.ids || tf.count) r = LMU_ERR_STATE; /* must be zeroed */
    return r;
}

static void test_bad_files(void)
{
    unsigned char good[32 + 2 * 10], bad[64];
    int32_t ids[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 256};
    size_t n = make_file(good, ids, 10, 257), len;
    char err[256];
    lmu_tokens tf;
    int i, all = 1;
    LT_CHECK(load(good, n, err) == LMU_OK, "the base file loads");
    for (len = 0; len < n; len++) all &= load(good, len, err) == LMU_ERR_FORMAT;
    LT_CHECK(all, "every truncation (0..%lu bytes) is LMU_ERR_FORMAT", (unsigned long)n - 1);
    LT_CHECK(load(good, 10, err) == LMU_ERR_FORMAT && strstr(err, "shorter"), "short: %s", err);
    LT_CHECK(load(good, 34, err) == LMU_ERR_FORMAT && strstr(err, "10 tokens"), "count: %s", err);
    memcpy(bad, good, n);
    bad[n] = 0;
    LT_CHECK(load(bad, n + 1, err) == LMU_ERR_FORMAT, "one byte too many");
    bad[n + 1] = 0;
    LT_CHECK(load(bad, n + 2, err) == LMU_ERR_FORMAT, "one token too many: %s", err);
    for (i = 0; i < 8; i++) {
        memcpy(bad, good, n);
        bad[i] ^= 0x20;
        all = load(bad, n, err) == LMU_ERR_FORMAT && strstr(err, "magic");
        if (!all) break;
    }
    LT_CHECK(all, "each magic byte is checked: %s", err);
    memcpy(bad, good, n);
    bad[8] = 2;
    LT_CHECK(load(bad, n, err) == LMU_ERR_FORMAT && strstr(err, "version 2"), "version: %s", err);
    memcpy(bad, good, n);
    bad[12] = bad[13] = 0;
    LT_CHECK(load(bad, n, err) == LMU_ERR_FORMAT && strstr(err, "vocab_size 0"), "vocab 0: %s", err);
    memcpy(bad, good, n);
    bad[12] = 1, bad[13] = 0, bad[14] = 1; /* 65537 */
    LT_CHECK(load(bad, n, err) == LMU_ERR_FORMAT && strstr(err, "65537"), "vocab 65537: %s", err);
    memcpy(bad, good, n);
    bad[30] = 1;
    LT_CHECK(load(bad, n, err) == LMU_ERR_FORMAT && strstr(err, "reserved"), "reserved: %s", err);
    memcpy(bad, good, n);
    bad[23] = 0x80; /* a count near 2^63: no overflow in the size check */
    LT_CHECK(load(bad, n, err) == LMU_ERR_FORMAT, "huge count: %s", err);
    memcpy(bad, good, n);
    bad[32 + 18] = 1, bad[32 + 19] = 1; /* last id 257 = vocab */
    LT_CHECK(load(bad, n, err) == LMU_ERR_FORMAT && strstr(err, "id 257 at token 9") &&
                 strstr(err, "byte 50"),
             "id == vocab_size: %s", err);
    memcpy(bad, good, n);
    bad[32] = 0xff, bad[33] = 0xff;
    LT_CHECK(load(bad, n, err) == LMU_ERR_FORMAT && strstr(err, "65535"), "id 65535: %s", err);
    LT_CHECK(lmu_tokens_load_memory(&tf, NULL, 5, err, sizeof err) == LMU_ERR_ARG, "NULL buffer");
    LT_CHECK(lmu_tokens_load_memory(NULL, good, n, err, sizeof err) == LMU_ERR_ARG, "NULL tf");
    LT_CHECK(lmu_tokens_load_file(&tf, "build/no-such-file.tok", err, sizeof err) == LMU_ERR_IO &&
                 strstr(err, "build/no-such-file.tok") && strstr(err, "No such file"),
             "missing file: %s", err);
    {   /* the file loader names the path */
        FILE *f = fopen(TMP, "wb");
        fwrite("LMUTOKX\0", 1, 8, f);
        fwrite(good + 8, 1, n - 8, f);
        fclose(f);
        LT_CHECK(lmu_tokens_load_file(&tf, TMP, err, sizeof err) == LMU_ERR_FORMAT &&
                     strncmp(err, TMP ": bad magic", strlen(TMP) + 11) == 0,
                 "file error names the path: %s", err);
    }
}

static void test_mutations(void)
{
    unsigned char good[32 + 2 * 16], buf[32 + 2 * 16 + 8];
    int32_t ids[16];
    size_t n, i;
    int k, loaded = 0, consistent = 1;
    char err[256];
    for (i = 0; i < 16; i++) ids[i] = (int32_t)i * 3;
    n = make_file(good, ids, 16, 50);
    lt_seed(42);
    for (k = 0; k < 20000; k++) {
        size_t len = n, j, flips = 1 + (size_t)((lt_uniform() + 1) * 2);
        lmu_tokens tf;
        memcpy(buf, good, n);
        for (j = 0; j < flips; j++) {
            size_t at = (size_t)((lt_uniform() + 1) * 0.5 * (double)n) % n;
            buf[at] = (unsigned char)((lt_uniform() + 1) * 128);
        }
        if (lt_uniform() > 0.8) len = (size_t)((lt_uniform() + 1) * 0.5 * (double)(n + 8));
        if (lmu_tokens_load_memory(&tf, buf, len, err, sizeof err) == LMU_OK) {
            loaded++;
            consistent &= tf.count == (len - 32) / 2 && tf.vocab_size >= 1 &&
                          tf.vocab_size <= 65536;
            for (i = 0; i < tf.count; i++) consistent &= tf.ids[i] < tf.vocab_size;
            lmu_tokens_free(&tf);
        } else
            consistent &= tf.ids == NULL && err[0] != 0;
    }
    LT_CHECK(consistent, "20000 mutated files: no crash; %d loaded, all consistent", loaded);
}

/* ---- config files ---------------------------------------------------- */

static int expect_err(const char *text, lmu_result want, const char *needle)
{
    lmu_config c;
    char err[256];
    lmu_result r;
    memset(&c, 0, sizeof c);
    r = lmu_config_parse(&c, text, strlen(text), err, sizeof err);
    LT_CHECK(r == want && strstr(err, needle), "'%s' -> %s (want %s), err '%s' has '%s'", text,
             lmu_strerror(r), lmu_strerror(want), err, needle);
    return r == want;
}

static int train_keys(void *user, const char *key, const char *value, char *err, size_t cap)
{
    int *batch = (int *)user;
    if (strcmp(key, "batch") != 0) return 0;
    if (atoi(value) < 1) {
        snprintf(err, cap, "batch must be positive");
        return -1;
    }
    *batch = atoi(value);
    return 1;
}

static void test_config(void)
{
    const char *good = "# a model\r\n"
                       "preset = lmu-100k   # the base\r\n"
                       "\n"
                       "   theta=1000\n"
                       "n_ctx\t=\t256\n"
                       "mixer = attn\n"
                       "vocab_size = 257"; /* no final newline */
    lmu_config c, p;
    char err[256], buf[1024];
    int i, batch = 0;
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_parse(&c, good, strlen(good), err, sizeof err) == LMU_OK, "good file: %s",
             err);
    lmu_config_preset(&p, "lmu-100k");
    LT_CHECK(c.d_model == p.d_model && c.q == p.q && c.theta == 1000 && c.n_ctx == 256 &&
                 c.mixer == LMU_MIXER_ATTN && c.vocab_size == 257,
             "values: d %d theta %g n_ctx %d", c.d_model, c.theta, c.n_ctx);
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK, "resolves: %s", err);
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_parse(&c, "", 0, err, sizeof err) == LMU_OK && c.d_model == 0,
             "empty file leaves defaults");
    LT_CHECK(lmu_config_parse(&c, "d_model = 32\narch = transformer\nn_head = 2\n", 42, err,
                              sizeof err) == LMU_OK &&
                 c.arch == LMU_ARCH_TRANSFORMER && c.n_head == 2 && c.d_model == 32,
             "transformer keys");

    expect_err("d_model = 48\ndmodel = 3\n", LMU_ERR_ARG, "line 2: unknown key 'dmodel'");
    expect_err("# c\n\nd_model = 48\nd_model = 64\n", LMU_ERR_FORMAT,
               "line 4: 'd_model' already set on line 3");
    expect_err("theta = 10\npreset = lmu-55k\n", LMU_ERR_FORMAT, "line 2: 'preset' must come before");
    expect_err("preset = lmu-77k\n", LMU_ERR_FORMAT, "line 1: unknown preset 'lmu-77k'");
    expect_err("\n\nd_model 48\n", LMU_ERR_FORMAT, "line 3: expected 'key = value'");
    expect_err("d_model =\n", LMU_ERR_FORMAT, "line 1: missing value");
    expect_err(" = 4\n", LMU_ERR_FORMAT, "line 1: missing key");
    expect_err("d_model = 4x\n", LMU_ERR_FORMAT, "line 1: d_model = '4x' is not a whole number");
    expect_err("d_model = -1\n", LMU_ERR_FORMAT, "not a whole number");
    expect_err("d_model = +1\n", LMU_ERR_FORMAT, "not a whole number");
    expect_err("d_model = 4.0\n", LMU_ERR_FORMAT, "not a whole number");
    expect_err("d_model = 65537\n", LMU_ERR_RANGE, "outside 1..65536 (0: the default)");
    expect_err("d_model = 99999999999999999999999999\n", LMU_ERR_RANGE, "outside");
    expect_err("n_layer = 1025\n", LMU_ERR_RANGE, "n_layer = 1025 is outside 1..1024");
    expect_err("vocab_size = 1\n", LMU_ERR_RANGE, "outside 2..");
    expect_err("theta = nan\n", LMU_ERR_FORMAT, "not a number");
    expect_err("theta = inf\n", LMU_ERR_FORMAT, "not a number");
    expect_err("theta = 0x10\n", LMU_ERR_FORMAT, "not a number");
    expect_err("theta = 1e.\n", LMU_ERR_FORMAT, "not a number");
    expect_err("theta = -5\n", LMU_ERR_RANGE, "(0, 1e9]");
    expect_err("theta = 1e400\n", LMU_ERR_RANGE, "(0, 1e9]");
    expect_err("arch = gpt\n", LMU_ERR_FORMAT, "want lmu or transformer");
    expect_err("mixer = mamba\n", LMU_ERR_FORMAT, "want ffn, attn, rebased, based, conv or brt");
    expect_err("d_mo del = 3\n", LMU_ERR_FORMAT, "bad character in key");
    expect_err("theta_last = 2e9\n", LMU_ERR_RANGE, "theta_last = 2e9 must be in (0, 1e9]");
    expect_err("theta_last = x\n", LMU_ERR_FORMAT, "theta_last = 'x' is not a number");
    expect_err("iattn_init = zero\n", LMU_ERR_FORMAT, "want delay or random");
    expect_err("iattn_lr = 1e7\n", LMU_ERR_RANGE, "iattn_lr = 1e7 must be in (0, 1e6]");
    expect_err("iattn_init = delay\niattn_init = delay\n", LMU_ERR_FORMAT, "'iattn_init' already set");
    expect_err("isa_init = delay\niattn_init = delay\n", LMU_ERR_FORMAT, "'iattn_init' already set");
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_parse(&c, "isa_init = random\nisa_lr = 2\n", 29, err, sizeof err) == LMU_OK &&
                 c.iattn_init == LMU_IATTN_INIT_RANDOM && c.iattn_lr == 2,
             "0.1.x keys isa_init, isa_lr read as iattn_init, iattn_lr: %s", err);
    {   /* 0 asks for the default, in every numeric field: the same config as
           leaving the key out */
        const char *t = "d_model = 0\nd_ff = 0\ntheta = 0\ntheta_last = 0\nq = 0\nn_head = 0\n";
        lmu_config dflt;
        memset(&c, 0, sizeof c);
        memset(&dflt, 0, sizeof dflt);
        LT_CHECK(lmu_config_parse(&c, t, strlen(t), err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&c, err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&dflt, NULL, 0) == LMU_OK &&
                     memcmp(&c, &dflt, sizeof c) == 0 && c.d_model == 48 && c.theta == 350,
                 "0 is the default (d_ff = 0, theta = 0 ...): %s", err);
    }
    {   /* our options (docs/EXPERIMENTS.md) parse, format and parse back */
        const char *t = "preset = lmu-55k\ntheta = 16\ntheta_last = 350\niattn_init = random\n"
                        "iattn_lr = 4\n";
        lmu_config q;
        size_t n;
        memset(&c, 0, sizeof c);
        LT_CHECK(lmu_config_parse(&c, t, strlen(t), err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.theta == 16 &&
                     c.theta_last == 350 && c.iattn_init == LMU_IATTN_INIT_RANDOM && c.iattn_lr == 4,
                 "theta_last and iattn_init parse: %s", err);
        n = lmu_config_format(&c, buf, sizeof buf);
        memset(&q, 0, sizeof q);
        LT_CHECK(strstr(buf, "theta_last = 350") && strstr(buf, "iattn_init = random") &&
                     strstr(buf, "iattn_lr = 4") &&
                     lmu_config_parse(&q, buf, n, err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&q, err, sizeof err) == LMU_OK && memcmp(&c, &q, sizeof c) == 0,
                 "theta_last and iattn_init: format/parse round trip (%s)", err);
    }
    {   /* per-layer lists (a layer stack) */
        static const struct { const char *text, *needle; } bad_lists[] = {
            {"n_layer = 3\nq = 16,32\n", "q lists 2 values for 3 layers"},
            {"n_layer = 2\ntheta = 32,64\ntheta_last = 500\n", "give one"},
            {"n_layer = 2\nq = 40,20\nq_prime = 4,30\n", "layer 1: q_prime 30 outside 1..q (q = 20)"},
            {"n_layer = 2\nq = 2048,2000\nq_prime = 8\nn_ctx = 2048\n", "summed over the windows"},
        };
        const char *t = "n_layer = 3\nmixer = ffn, attn,ffn\nq = 16, 32, 64\ntheta = 32,128,512\n";
        char many[512];
        lmu_config q;
        size_t n;
        expect_err("q = 32,,64\n", LMU_ERR_FORMAT, "line 1: q: entry 2 is empty");
        expect_err("q = 32,64,\n", LMU_ERR_FORMAT, "q: entry 3 is empty");
        expect_err("q = 32,0\n", LMU_ERR_RANGE, "q: entry 2 is 0");
        expect_err("mixer = ffn,mamba\n", LMU_ERR_FORMAT, "want ffn, attn, rebased, based, conv or brt");
        expect_err("theta = 10,x\n", LMU_ERR_FORMAT, "theta = 'x' is not a number");
        expect_err("d_model = 32,64\n", LMU_ERR_FORMAT, "not a whole number"); /* no list */
        for (n = 0, i = 0; i < 65; i++) n += (size_t)snprintf(many + n, sizeof many - n, "%s8", i ? "," : "q = ");
        expect_err(many, LMU_ERR_RANGE, "q lists more than 64 layers");
        for (i = 0; i < (int)(sizeof bad_lists / sizeof bad_lists[0]); i++) {
            memset(&c, 0, sizeof c);
            LT_CHECK(lmu_config_parse(&c, bad_lists[i].text, strlen(bad_lists[i].text), err, sizeof err) ==
                             LMU_OK &&
                         lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG &&
                         strstr(err, bad_lists[i].needle),
                     "resolve refuses '%s': %s", bad_lists[i].text, err);
        }
        memset(&c, 0, sizeof c);
        LT_CHECK(lmu_config_parse(&c, t, strlen(t), err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&c, err, sizeof err) == LMU_OK,
                 "a stack parses and resolves: %s", err);
        LT_CHECK(lmu_config_layer_mixer(&c, 1) == LMU_MIXER_ATTN && lmu_config_layer_mixer(&c, 2) == LMU_MIXER_FFN &&
                     lmu_config_layer_q(&c, 2) == 64 && lmu_config_layer_q_prime(&c, 0) == 1 &&
                     lmu_config_layer_q_prime(&c, 1) == 3 && lmu_config_layer_q_prime(&c, 2) == 6 &&
                     lmu_config_layer_theta(&c, 1) == 128 && c.q == 16 && c.n_head > 0,
                 "per-layer values; q' follows each q (q/10); the field holds layer 0's");
        n = lmu_config_format(&c, buf, sizeof buf);
        memset(&q, 0, sizeof q);
        LT_CHECK(strstr(buf, "mixer = ffn,attn,ffn") && strstr(buf, "q_prime = 1,3,6") &&
                     lmu_config_parse(&q, buf, n, err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&q, err, sizeof err) == LMU_OK && memcmp(&c, &q, sizeof c) == 0,
                 "a stack: format/parse round trip (%s)", err);
        memset(&c, 0, sizeof c);
        memset(&q, 0, sizeof q);
        LT_CHECK(lmu_config_parse(&c, "n_layer = 2\nq = 20,20\n", 22, err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.layers.n_q == 0 &&
                     c.layers.n_q_prime == 0 && c.q == 20 && c.q_prime == 2 &&
                     lmu_config_parse(&q, "n_layer = 2\nq = 20\n", 19, err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&q, err, sizeof err) == LMU_OK && memcmp(&c, &q, sizeof c) == 0,
                 "a uniform list is the field itself");
        memset(&c, 0, sizeof c);
        LT_CHECK(lmu_config_parse(&c, "arch = transformer\nn_layer = 2\nq = 8,16\n", 39, err, sizeof err) ==
                         LMU_OK &&
                     lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.layers.n_q == 0 && c.q == 0,
                 "the transformer has no LMU lists: %s", err);
        memset(&c, 0, sizeof c);
        LT_CHECK(lmu_config_set(&c, "q", "8,16", err, sizeof err) == LMU_OK && c.layers.n_q == 2 &&
                     lmu_config_set(&c, "q", "12", err, sizeof err) == LMU_OK && c.layers.n_q == 0 &&
                     c.q == 12,
                 "one value again clears a list");
    }
    {
        const char nul[] = "d_model = 4\nq = 3\0\n";
        memset(&c, 0, sizeof c);
        LT_CHECK(lmu_config_parse(&c, nul, sizeof nul - 1, err, sizeof err) == LMU_ERR_FORMAT &&
                     strstr(err, "line 2: NUL"),
                 "NUL byte: %s", err);
    }
    {   /* a program's own keys */
        const char *t = "batch = 16\nd_model = 32\nbatch = 0\n";
        memset(&c, 0, sizeof c);
        LT_CHECK(lmu_config_parse_ex(&c, t, 11, train_keys, &batch, err, sizeof err) == LMU_OK &&
                     batch == 16,
                 "callback takes its key");
        LT_CHECK(lmu_config_parse_ex(&c, t, strlen(t), train_keys, &batch, err, sizeof err) ==
                         LMU_ERR_ARG && strstr(err, "line 3: batch must be positive"),
                 "callback error has the line: %s", err);
        LT_CHECK(lmu_config_parse(&c, t, strlen(t), err, sizeof err) == LMU_ERR_ARG &&
                     strstr(err, "unknown key 'batch'"),
                 "without it, batch is unknown");
    }
    /* format -> parse -> the same config, for every preset */
    for (i = 0; i < lmu_config_preset_count(); i++) {
        lmu_config q;
        size_t n;
        lmu_config_preset(&p, lmu_config_preset_name(i));
        n = lmu_config_format(&p, buf, sizeof buf);
        memset(&q, 0, sizeof q);
        LT_CHECK(n < sizeof buf && lmu_config_parse(&q, buf, n, err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&q, err, sizeof err) == LMU_OK &&
                     memcmp(&p, &q, sizeof p) == 0,
                 "%s: format/parse round trip (%s)", lmu_config_preset_name(i), err);
    }
    LT_CHECK(lmu_config_format(&p, buf, 8) > 8 && strlen(buf) == 7, "format truncates safely");
    {   /* random bytes: any result, no crash, a message on error */
        char junk[300];
        int k, msgs = 1;
        lt_seed(7);
        for (k = 0; k < 20000; k++) {
            size_t j, len = (size_t)((lt_uniform() + 1) * 150);
            for (j = 0; j < len; j++) {
                double u = lt_uniform();
                junk[j] = u > 0.6 ? "=\n#q d_model theta 0123456789.e"[(int)((u - 0.6) * 77) % 30]
                                  : (char)(int)(u * 128);
            }
            memset(&c, 0, sizeof c);
            if (lmu_config_parse(&c, junk, len, err, sizeof err) != LMU_OK) msgs &= err[0] != 0;
        }
        LT_CHECK(msgs, "20000 random texts: no crash, every error has a message");
    }
}

/* lmu_tokens_batch: any run of windows is that run of the whole batch (a
   process's share equals its rows of one process's batch), each window is
   the data at one start with the targets one ahead, the batch depends on
   (seed, step) alone, and bad arguments are refused. lmu_tokens_digest
   tells two files apart. */
static void test_batch(void)
{
    enum { N = 500, B = 8, T = 16 };
    uint16_t ids[N];
    int all_tok[B * T], all_tgt[B * T], tok[B * T], tgt[B * T], b0, nb, i, ok = 1;
    lmu_tokens tf, tf2;
    for (i = 0; i < N; i++) ids[i] = (uint16_t)((i * 7919u) % 257u);
    memset(&tf, 0, sizeof tf);
    tf.vocab_size = 257, tf.count = N, tf.ids = ids;
    LT_CHECK(lmu_tokens_batch(&tf, 5, 3, B, T, 0, B, all_tok, all_tgt) == LMU_OK, "whole batch");
    for (b0 = 0; b0 < B; b0++)
        for (nb = 0; b0 + nb <= B; nb++) {
            lmu_tokens_batch(&tf, 5, 3, B, T, b0, nb, tok, tgt);
            if (memcmp(tok, all_tok + b0 * T, (size_t)nb * T * sizeof(int)) ||
                memcmp(tgt, all_tgt + b0 * T, (size_t)nb * T * sizeof(int)))
                ok = 0;
        }
    LT_CHECK(ok, "windows b0 .. b0 + nb - 1 are those rows of the whole batch, for every b0, nb");
    for (i = 0, ok = 1; i < B && ok; i++) {
        int s, t, found = 0;
        for (s = 0; s + T < N && !found; s++) {
            for (t = 0; t < T && all_tok[i * T + t] == ids[s + t] && all_tgt[i * T + t] == ids[s + t + 1]; t++) {}
            found = t == T;
        }
        ok = found;
    }
    LT_CHECK(ok, "every window is T tokens of the data at one start, the targets one ahead");
    lmu_tokens_batch(&tf, 5, 4, B, T, 0, B, tok, tgt);
    LT_CHECK(memcmp(tok, all_tok, sizeof tok) != 0, "another step, another batch");
    lmu_tokens_batch(&tf, 6, 3, B, T, 0, B, tok, tgt);
    LT_CHECK(memcmp(tok, all_tok, sizeof tok) != 0, "another seed, another batch");
    lmu_tokens_batch(&tf, 5, 3, B, T, 0, B, tok, tgt);
    LT_CHECK(memcmp(tok, all_tok, sizeof tok) == 0, "the same (seed, step), the same batch");
    LT_CHECK(lmu_tokens_batch(&tf, 5, 3, B, T, 4, 5, tok, tgt) == LMU_ERR_ARG, "b0 + nb > B refused");
    LT_CHECK(lmu_tokens_batch(&tf, 5, 3, B, N, 0, 1, tok, tgt) == LMU_ERR_ARG, "T + 1 > count refused");
    LT_CHECK(lmu_tokens_batch(NULL, 5, 3, B, T, 0, 1, tok, tgt) == LMU_ERR_ARG, "NULL refused");
    LT_CHECK(lmu_tokens_batch(&tf, 5, 3, 0, T, 0, 0, tok, tgt) == LMU_ERR_ARG, "B = 0 refused");
    {
        uint16_t copy[N];
        uint64_t h = lmu_tokens_digest(&tf);
        memcpy(copy, ids, sizeof copy);
        tf2 = tf, tf2.ids = copy;
        LT_CHECK(lmu_tokens_digest(&tf2) == h, "digest: equal data, equal digest");
        copy[N / 2] ^= 1;
        LT_CHECK(lmu_tokens_digest(&tf2) != h, "digest: one id changed, another digest");
        copy[N / 2] ^= 1;
    }
    tf2.ids = ids, tf2.count = N - 1;
    LT_CHECK(lmu_tokens_digest(&tf) != lmu_tokens_digest(&tf2), "digest: a shorter file differs");
}

/* lmu_tokens_segments: window b of step s + 1 starts where window b of
   step s ended (targets one ahead), until its stretch wraps back to its
   start; the B stretches are disjoint; a run of windows is that run of
   the whole batch; too little data and bad arguments are refused. */
static void test_segments(void)
{
    enum { N = 500, B = 3, T = 16 };
    const int per = (N - 1) / B / T; /* 10 segments a stretch */
    uint16_t ids[N];
    int tok[2][B * T], tgt[2][B * T], part[B * T], ptg[B * T], i, b, s, t, cont = 1, wrap = 1, cover = 1,
        okr = 1;
    lmu_tokens tf;
    for (i = 0; i < N; i++) ids[i] = (uint16_t)i % 257u;
    memset(&tf, 0, sizeof tf);
    tf.vocab_size = 257, tf.count = N, tf.ids = ids;
    for (s = 0; s < 2 * per; s++) {
        int *cur = tok[s & 1], *prev = tok[(s + 1) & 1];
        okr &= lmu_tokens_segments(&tf, (uint64_t)s, B, T, 0, B, cur, tgt[s & 1]) == LMU_OK;
        for (b = 0; b < B; b++) {
            const int start = (b * per + s % per) * T;
            for (t = 0; t < T; t++)
                if (cur[b * T + t] != ids[start + t] || tgt[s & 1][b * T + t] != ids[start + t + 1])
                    cover = 0;
            if (s > 0 && s % per != 0 && cur[b * T] != prev[b * T + T - 1] + 1) cont = 0;
            if (s > 0 && s % per == 0 && cur[b * T] != ids[b * per * T]) wrap = 0;
        }
    }
    LT_CHECK(okr, "segments of steps 0 .. %d", 2 * per - 1);
    LT_CHECK(cover, "window b of step s is segment s mod %d of stretch b, the targets one ahead", per);
    LT_CHECK(cont, "each window continues the one before it in its stream");
    LT_CHECK(wrap, "after %d segments a stream starts its stretch again", per);
    lmu_tokens_segments(&tf, 7, B, T, 0, B, tok[0], tgt[0]);
    lmu_tokens_segments(&tf, 7, B, T, 1, 2, part, ptg);
    LT_CHECK(!memcmp(part, tok[0] + T, 2 * T * sizeof(int)) && !memcmp(ptg, tgt[0] + T, 2 * T * sizeof(int)),
             "windows 1 .. 2 are those rows of the whole batch");
    LT_CHECK(lmu_tokens_segments(&tf, 0, 40, T, 0, 1, part, ptg) == LMU_ERR_RANGE,
             "fewer than B T + 1 ids refused (range)");
    LT_CHECK(lmu_tokens_segments(&tf, 0, B, T, 2, 2, part, ptg) == LMU_ERR_ARG, "b0 + nb > B refused");
    LT_CHECK(lmu_tokens_segments(NULL, 0, B, T, 0, 1, part, ptg) == LMU_ERR_ARG, "NULL refused");
}

int main(int argc, char **argv)
{
    lt_begin("test_data", argc, argv);
    test_round_trip();
    test_write_errors();
    test_bad_files();
    test_mutations();
    test_config();
    test_batch();
    test_segments();
    remove(TMP);
    return lt_end();
}
