/* >>decl-begin config */
#ifndef LMU_PART_CONFIG_H
#define LMU_PART_CONFIG_H
#ifdef __cplusplus
extern "C" {
#endif

typedef enum lmu_arch { LMU_ARCH_LMU = 0, LMU_ARCH_TRANSFORMER = 1 } lmu_arch;

/* The sequence mixer that opens each LMU layer (MODEL.md section 3). New
   mixers get a value here, a name in lmu__mixer_names, their parameters in
   the layer's parameter list and one forward/backward op pair. */
typedef enum lmu_mixer { LMU_MIXER_FFN = 0, LMU_MIXER_ATTN = 1, LMU_MIXER_COUNT } lmu_mixer;

/* A model's shape. Zero means "default" for every field, so
       lmu_config c = {0}; c.d_model = 96; lmu_config_resolve(&c, err, sizeof err);
   gives a complete, validated config. */
typedef struct lmu_config {
    lmu_arch arch;    /* LMU (default) or the transformer baseline           */
    lmu_mixer mixer;  /* LMU only: ffn (default) or attn                      */
    int vocab_size;   /* V, default 50257 (GPT-2)                             */
    int n_ctx;        /* longest sequence the model sees, default 1024        */
    int d_model;      /* d, default 48                                        */
    int n_layer;      /* default 3                                            */
    int q;            /* LMU memory order, default d                          */
    int q_prime;      /* q', reduced order of the implicit attention, def q/10 */
    double theta;     /* LMU window, default 350                              */
    int d_pre;        /* pre-FFN inner width, default round(1.5 d)            */
    int d_ff;         /* post-FFN / MLP inner width; LMU default 2 d,
                         transformer default 4 d                              */
    int n_head;       /* mixer attn and transformer: default from d           */
} lmu_config;

/* Fills `c` with a named preset: "lmu-55k", "lmu-100k", "lmu-200k",
   "lmu-300k", "lmu-500k", "lmu-1m" (MODEL.md section 4, mixer ffn), the same
   names with "-attn" appended (mixer attn, post-FFN re-solved), and
   "transformer-55k" ... "transformer-1m" (GPT-2 baseline of equal N).
   Returns LMU_ERR_ARG for an unknown name. */
LMUDEF lmu_result lmu_config_preset(lmu_config *c, const char *name);

/* Number of presets and the i-th name, for listing them in tools. */
LMUDEF int lmu_config_preset_count(void);
LMUDEF const char *lmu_config_preset_name(int i);

/* Fills defaults (fields left 0) and validates. On error returns
   LMU_ERR_ARG and writes a one-line reason into err (may be NULL). */
LMUDEF lmu_result lmu_config_resolve(lmu_config *c, char *err, size_t errcap);

/* N as the paper counts it: trainable, non-embedding parameters (wte, wpe,
   A, B and H excluded). `c` must be resolved. */
LMUDEF size_t lmu_config_param_count(const lmu_config *c);

/* All parameters that are stored, embeddings included. */
LMUDEF size_t lmu_config_param_count_total(const lmu_config *c);

/* Forward FLOPs per token at sequence length n (multiply-adds count 2),
   output layer included; training costs about 3x this. The LMU convolution
   counts as the FFT path runs it (n log n, amortised per token), global
   attention as n/2 keys per query on average. */
LMUDEF double lmu_config_flops_per_token(const lmu_config *c, int n);

LMUDEF const char *lmu_mixer_name(lmu_mixer m);
LMUDEF const char *lmu_arch_name(lmu_arch a);

#ifdef __cplusplus
}
#endif
#endif
/* >>decl-end config */

/* >>impl-begin config */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_PART_CONFIG_IMPL_DONE)
#define LMU_PART_CONFIG_IMPL_DONE

LMUDEF const char *lmu_mixer_name(lmu_mixer m)
{
    switch (m) {
    case LMU_MIXER_FFN: return "ffn";
    case LMU_MIXER_ATTN: return "attn";
    default: return "?";
    }
}

LMUDEF const char *lmu_arch_name(lmu_arch a)
{
    return a == LMU_ARCH_TRANSFORMER ? "transformer" : "lmu";
}

/* MODEL.md section 4: the paper's Table 3. d_ff is solved, not listed. */
typedef struct lmu__preset_row {
    const char *size; /* "55k" */
    long target;      /* the named N */
    int d, q, q_prime, n_layer;
} lmu__preset_row;

static const lmu__preset_row lmu__presets[] = {
    {"55k", 55000L, 48, 50, 5, 3},      {"100k", 100000L, 65, 65, 7, 3},
    {"200k", 200000L, 91, 90, 9, 3},    {"300k", 300000L, 112, 110, 13, 3},
    {"500k", 500000L, 144, 150, 15, 3}, {"1m", 1000000L, 204, 220, 22, 3},
};
#define LMU__PRESET_ROWS ((int)(sizeof lmu__presets / sizeof lmu__presets[0]))

/* head width in 16..64 closest to 32; 1 head where no divisor fits */
LMU__PRIVATE int lmu__default_heads(int d)
{
    int h, best = 1, best_gap = 1 << 30;
    for (h = 1; h <= d; h++) {
        int w, gap;
        if (d % h) continue;
        w = d / h;
        if (w < 16 || w > 64) continue;
        gap = w > 32 ? w - 32 : 32 - w;
        if (gap < best_gap) best_gap = gap, best = h;
    }
    return best;
}

LMUDEF size_t lmu_config_param_count(const lmu_config *c)
{
    size_t d = (size_t)c->d_model, per = 0;
    if (c->arch == LMU_ARCH_TRANSFORMER) {
        per = 4 * d                                   /* ln_a, ln_c        */
            + 3 * d * d + 3 * d + d * d + d           /* attn qkv, proj    */
            + 2 * d * (size_t)c->d_ff + (size_t)c->d_ff + d; /* mlp        */
    } else {
        size_t qp = (size_t)c->q_prime, q = (size_t)c->q;
        per = 6 * d + 3 * qp * q + 3 * qp + qp + 2 * d * (size_t)c->d_ff + (size_t)c->d_ff + d;
        if (c->mixer == LMU_MIXER_ATTN)
            per += 4 * d * d + 4 * d;
        else
            per += 2 * d * (size_t)c->d_pre + (size_t)c->d_pre + d;
    }
    return (size_t)c->n_layer * per + 2 * d; /* + ln_f */
}

LMUDEF size_t lmu_config_param_count_total(const lmu_config *c)
{
    size_t emb = (size_t)c->vocab_size * (size_t)c->d_model;
    if (c->arch == LMU_ARCH_TRANSFORMER) emb += (size_t)c->n_ctx * (size_t)c->d_model;
    return lmu_config_param_count(c) + emb;
}

/* The d_ff that puts N closest to target: N is affine in d_ff, so solve and
   check the integer neighbours. */
LMU__PRIVATE int lmu__solve_d_ff(lmu_config *c, long target)
{
    lmu_config t = *c;
    long n0, n1, best_gap = -1;
    int k, guess, best = 1;
    t.d_ff = 0;
    n0 = (long)lmu_config_param_count(&t);
    t.d_ff = 1;
    n1 = (long)lmu_config_param_count(&t);
    guess = (int)((double)(target - n0) / (double)(n1 - n0));
    for (k = guess - 1; k <= guess + 1; k++) {
        long gap;
        if (k < 1) continue;
        t.d_ff = k;
        gap = labs((long)lmu_config_param_count(&t) - target);
        if (best_gap < 0 || gap < best_gap) best_gap = gap, best = k;
    }
    return best;
}

/* Transformer baseline of equal N (MODEL.md section 6): same depth as the
   LMU presets, MLP 4 d, and among the d that split into heads of width
   16..64 the one whose exact count is closest to the target. */
LMU__PRIVATE void lmu__transformer_for(lmu_config *c, long target, int n_layer)
{
    int d, best = 8;
    long best_gap = -1;
    for (d = 16; d <= 4096; d++) {
        lmu_config t;
        long gap;
        int w = d / lmu__default_heads(d);
        if (w < 16 || w > 64) continue;
        memset(&t, 0, sizeof t);
        t.arch = LMU_ARCH_TRANSFORMER;
        t.d_model = d;
        t.n_layer = n_layer;
        t.d_ff = 4 * d;
        gap = labs((long)lmu_config_param_count(&t) - target);
        if (best_gap < 0 || gap < best_gap) best_gap = gap, best = d;
    }
    c->arch = LMU_ARCH_TRANSFORMER;
    c->d_model = best;
    c->n_layer = n_layer;
    c->d_ff = 4 * best;
    c->n_head = lmu__default_heads(best);
}

LMUDEF int lmu_config_preset_count(void) { return 3 * LMU__PRESET_ROWS; }

LMUDEF const char *lmu_config_preset_name(int i)
{
    static const char *const names[] = {
        "lmu-55k",        "lmu-100k",        "lmu-200k",        "lmu-300k",
        "lmu-500k",       "lmu-1m",          "lmu-55k-attn",    "lmu-100k-attn",
        "lmu-200k-attn",  "lmu-300k-attn",   "lmu-500k-attn",   "lmu-1m-attn",
        "transformer-55k", "transformer-100k", "transformer-200k", "transformer-300k",
        "transformer-500k", "transformer-1m",
    };
    if (i < 0 || i >= 3 * LMU__PRESET_ROWS) return NULL;
    return names[i];
}

LMUDEF lmu_result lmu_config_preset(lmu_config *c, const char *name)
{
    int i;
    if (!c || !name) return LMU_ERR_ARG;
    for (i = 0; i < LMU__PRESET_ROWS; i++) {
        const lmu__preset_row *r = &lmu__presets[i];
        char lmu_name[32], attn_name[32], tr_name[40];
        snprintf(lmu_name, sizeof lmu_name, "lmu-%s", r->size);
        snprintf(attn_name, sizeof attn_name, "lmu-%s-attn", r->size);
        snprintf(tr_name, sizeof tr_name, "transformer-%s", r->size);
        memset(c, 0, sizeof *c);
        if (strcmp(name, tr_name) == 0) {
            lmu__transformer_for(c, r->target, r->n_layer);
            return lmu_config_resolve(c, NULL, 0);
        }
        if (strcmp(name, lmu_name) != 0 && strcmp(name, attn_name) != 0) continue;
        c->arch = LMU_ARCH_LMU;
        c->mixer = strcmp(name, attn_name) == 0 ? LMU_MIXER_ATTN : LMU_MIXER_FFN;
        c->d_model = r->d;
        c->q = r->q;
        c->q_prime = r->q_prime;
        c->n_layer = r->n_layer;
        c->theta = 350.0;
        c->d_pre = (3 * r->d + 1) / 2; /* round(1.5 d), halves up */
        if (c->mixer == LMU_MIXER_ATTN) c->n_head = lmu__default_heads(r->d);
        c->d_ff = lmu__solve_d_ff(c, r->target);
        return lmu_config_resolve(c, NULL, 0);
    }
    memset(c, 0, sizeof *c);
    return LMU_ERR_ARG;
}

LMUDEF lmu_result lmu_config_resolve(lmu_config *c, char *err, size_t errcap)
{
#define LMU__CFG_FAIL(...)                                                     \
    do {                                                                       \
        lmu__errf(err, errcap, __VA_ARGS__);                                   \
        return LMU_ERR_ARG;                                                    \
    } while (0)
    /* Caps keep every size product far from overflow and every buffer a
       machine can hold; they are limits of sanity, not of the math. */
    const int big = 1 << 16;
    if (!c) return LMU_ERR_ARG;
    if (err && errcap) err[0] = 0;
    if (c->arch != LMU_ARCH_LMU && c->arch != LMU_ARCH_TRANSFORMER)
        LMU__CFG_FAIL("config: unknown arch %d", (int)c->arch);
    if ((int)c->mixer < 0 || c->mixer >= LMU_MIXER_COUNT)
        LMU__CFG_FAIL("config: unknown mixer %d", (int)c->mixer);
    if (c->vocab_size == 0) c->vocab_size = 50257;
    if (c->n_ctx == 0) c->n_ctx = 1024;
    if (c->d_model == 0) c->d_model = 48;
    if (c->n_layer == 0) c->n_layer = 3;
    if (c->vocab_size < 2 || c->vocab_size > (1 << 24))
        LMU__CFG_FAIL("config: vocab_size %d outside 2..%d", c->vocab_size, 1 << 24);
    if (c->n_ctx < 1 || c->n_ctx > (1 << 20))
        LMU__CFG_FAIL("config: n_ctx %d outside 1..%d", c->n_ctx, 1 << 20);
    if (c->d_model < 1 || c->d_model > big)
        LMU__CFG_FAIL("config: d_model %d outside 1..%d", c->d_model, big);
    if (c->n_layer < 1 || c->n_layer > 1024)
        LMU__CFG_FAIL("config: n_layer %d outside 1..1024", c->n_layer);
    if (c->arch == LMU_ARCH_TRANSFORMER) {
        if (c->d_ff == 0) c->d_ff = 4 * c->d_model;
        if (c->n_head == 0) c->n_head = lmu__default_heads(c->d_model);
        c->q = c->q_prime = c->d_pre = 0;
        c->theta = 0;
        c->mixer = LMU_MIXER_FFN;
    } else {
        if (c->q == 0) c->q = c->d_model;
        if (c->q_prime == 0) c->q_prime = c->q / 10 > 0 ? c->q / 10 : 1;
        if (c->theta == 0) c->theta = 350.0;
        if (c->d_pre == 0) c->d_pre = (3 * c->d_model + 1) / 2;
        if (c->d_ff == 0) c->d_ff = 2 * c->d_model;
        if (c->mixer == LMU_MIXER_ATTN && c->n_head == 0) c->n_head = lmu__default_heads(c->d_model);
        if (c->mixer == LMU_MIXER_FFN) c->n_head = 0;
        if (c->q < 1 || c->q > 4096) LMU__CFG_FAIL("config: q %d outside 1..4096", c->q);
        if (c->q_prime < 1 || c->q_prime > c->q)
            LMU__CFG_FAIL("config: q_prime %d outside 1..q (q = %d)", c->q_prime, c->q);
        if (!(c->theta > 0) || c->theta > 1e9)
            LMU__CFG_FAIL("config: theta %g must be positive and finite", c->theta);
        if (c->d_pre < 1 || c->d_pre > big)
            LMU__CFG_FAIL("config: d_pre %d outside 1..%d", c->d_pre, big);
    }
    if (c->d_ff < 1 || c->d_ff > big) LMU__CFG_FAIL("config: d_ff %d outside 1..%d", c->d_ff, big);
    if (c->arch == LMU_ARCH_TRANSFORMER || c->mixer == LMU_MIXER_ATTN) {
        if (c->n_head < 1 || c->d_model % c->n_head != 0)
            LMU__CFG_FAIL("config: n_head %d does not divide d_model %d", c->n_head, c->d_model);
    }
    return LMU_OK;
#undef LMU__CFG_FAIL
}

LMUDEF double lmu_config_flops_per_token(const lmu_config *c, int n)
{
    double d = c->d_model, fl = 0, L = c->n_layer, nn = n > 0 ? n : 1;
    double V = c->vocab_size, dff = c->d_ff, attn;
    /* causal attention: on average n/2 keys per query, scores + weighted sum */
    attn = 2.0 * 2.0 * (nn + 1) / 2.0 * d;
    if (c->arch == LMU_ARCH_TRANSFORMER) {
        fl = L * (2 * (4 * d * d) + 2 * (2 * d * dff) + attn);
    } else {
        double qp = c->q_prime, q = c->q, nfft = 1, conv;
        while (nfft < 2 * nn) nfft *= 2;
        /* per token: d forward real FFTs and 3 q' d inverse ones of length
           nfft (about 2.5 nfft log2 nfft flops each, shared by n tokens),
           the spectral products (3 q' d bins x 6 flops) and L_i applied to
           the spectrum of H (3 q' q bins x 2 x 2, per sequence). */
        conv = ((d + 3 * qp * d) * 2.5 * nfft * log2(nfft) + 3 * qp * d * (nfft / 2 + 1) * 6 +
                3 * qp * q * (nfft / 2 + 1) * 4) / nn;
        fl = L * (conv + 4 * qp * qp * d + 2 * qp * d + 2 * (2 * d * dff));
        fl += L * (c->mixer == LMU_MIXER_ATTN ? 2 * (4 * d * d) + attn : 2 * (2 * d * c->d_pre));
    }
    return fl + 2 * d * V;
}

#endif
/* >>impl-end config */
