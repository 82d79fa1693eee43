/* lmu_test.h - the tiny harness every tests/test_*.c uses.

   A test program counts checks, prints one line per failure (and per passed
   check with -v), and ends with "<name>: N passed, N failed". It exits non-zero
   when anything failed. tools/run_tests.sh sums the closing lines of all
   programs into the suite's closing line. Tests are programs, not library
   code, so the counters here are plain statics.

   Also here, shared by every test: the one finite-difference gradient
   check (lt_fd_check) and, where lmu.h is included, the table of model
   kinds that every model test loops over (lt_kinds). */
#ifndef LMU_TEST_H
#define LMU_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#if defined(__GNUC__) || defined(__clang__)
#define LT__UNUSED __attribute__((unused))
#else
#define LT__UNUSED
#endif

/* A whole file through the library's own reader (NUL-terminated; free it
   with LMU_FREE), or NULL with *n = 0 when it cannot be read. Only where
   the test has the implementation with stdio. */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_NO_STDIO)
static LT__UNUSED unsigned char *lt_slurp(const char *path, size_t *n)
{
    unsigned char *b;
    if (lmu__read_whole_file(path, "test", 0, &b, n, NULL, 0) != LMU_OK) return NULL;
    return b;
}
#endif

static int lt__passed, lt__failed, lt__verbose;
static const char *lt__name = "test";

LT__UNUSED static void lt_begin(const char *name, int argc, char **argv)
{
    int i;
    lt__name = name;
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "-v") == 0) lt__verbose = 1;
}

/* Records one check. Returns cond so callers can stop early on failure. */
LT__UNUSED static int lt__check(int cond, const char *file, int line, const char *what)
{
    if (cond) {
        lt__passed++;
        if (lt__verbose) printf("  ok   %s\n", what);
    } else {
        lt__failed++;
        printf("  FAIL %s (%s:%d)\n", what, file, line);
    }
    fflush(stdout);
    return cond;
}

/* LT_CHECK(cond, fmt, ...): the message names the check and its numbers. */
#define LT_CHECK(cond, ...)                                                    \
    do {                                                                       \
        char lt__msg[512];                                                     \
        int lt__ok = (cond) ? 1 : 0; /* before the message reads results */    \
        snprintf(lt__msg, sizeof lt__msg, __VA_ARGS__);                        \
        lt__check(lt__ok, __FILE__, __LINE__, lt__msg);                        \
    } while (0)

LT__UNUSED static int lt_end(void)
{
    printf("%s: %d passed, %d failed\n", lt__name, lt__passed, lt__failed);
    return lt__failed ? 1 : 0;
}

/* Deterministic test data without touching the library's RNG. */
static unsigned long long lt__rng = 0x9E3779B97F4A7C15ULL;
LT__UNUSED static void lt_seed(unsigned long long s) { lt__rng = s ? s : 1; }
LT__UNUSED static double lt_uniform(void) /* in [-1, 1) */
{
    lt__rng ^= lt__rng << 13;
    lt__rng ^= lt__rng >> 7;
    lt__rng ^= lt__rng << 17;
    return (double)(lt__rng >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* ---- finite differences ---------------------------------------------
   The suite's one gradient check: an analytic gradient (float, as the
   library computes it) against central differences of a double-precision
   function, all in double:

       fd_i = (f(x + h e_i) - f(x - h e_i)) / (2 h),   i = 0 .. n-1.

   f(ctx) computes the scalar in double from x, the caller's double copy of
   the input being differentiated, which it reaches through ctx; x[i] is
   put back exactly after each coordinate. grad[i] is the analytic
   gradient; a buffer that accumulates (+=) and started at `pre` has pre
   subtracted first (pass 0 otherwise). Returns the relative L2 error of the
   whole tensor, ||grad - pre - fd|| / ||fd|| (the absolute error when fd
   is all zero); *fd_norm (may be NULL) gets ||fd||, so that a caller can
   also insist the gradient is not trivially zero. */
#define LT_FD_H 1e-5 /* the step every caller uses */
typedef double (*lt_fd_fn)(void *ctx);
LT__UNUSED static double lt_fd_check(lt_fd_fn f, void *ctx, double *x, size_t n, double h,
                                     const float *grad, float pre, double *fd_norm)
{
    double num = 0, den = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double x0 = x[i], fp, fm, fd, e;
        x[i] = x0 + h;
        fp = f(ctx);
        x[i] = x0 - h;
        fm = f(ctx);
        x[i] = x0;
        fd = (fp - fm) / (2 * h);
        e = ((double)grad[i] - pre) - fd;
        num += e * e;
        den += fd * fd;
    }
    if (fd_norm) *fd_norm = sqrt(den);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- the model kinds -------------------------------------------------
   Every model test (test_model, test_faults, test_config) loops over this
   table: a new mixer, or a new option worth running through every test,
   is one more line here. Per line:
     X(id, name, preset family (a printf format of the size, "lmu-%s";
       NULL when the kind has no presets), arch, mixer, iattn_init,
       theta, theta_last (both 0: one window, the test's theta),
       iattn_lr (0: 1), per-layer lists ("key=v,v;key=v,v" through
       lmu_config_set, for the test's 2 layers; NULL: none)) */
#ifdef LMU_H
#define LT_MODEL_KINDS(X)                                                                                                   \
    X(LT_LMU_FFN, "lmu/ffn iattn_init=random", "lmu-%s", LMU_ARCH_LMU, LMU_MIXER_FFN, LMU_IATTN_INIT_RANDOM, 0, 0, 0, NULL)           \
    X(LT_LMU_ATTN, "lmu/attn", "lmu-%s-attn", LMU_ARCH_LMU, LMU_MIXER_ATTN, LMU_IATTN_INIT_DELAY, 0, 0, 0, NULL)                    \
    X(LT_TRANSFORMER, "transformer", "transformer-%s", LMU_ARCH_TRANSFORMER, LMU_MIXER_ATTN, LMU_IATTN_INIT_DELAY, 0, 0, 0, NULL)   \
    X(LT_LMU_LAYERS, "lmu/ffn theta_last iattn_init=delay", NULL, LMU_ARCH_LMU, LMU_MIXER_FFN, LMU_IATTN_INIT_DELAY, 6, 100, 3, NULL) \
    X(LT_LMU_REBASED, "lmu/rebased", "lmu-%s-rebased", LMU_ARCH_LMU, LMU_MIXER_REBASED, LMU_IATTN_INIT_DELAY, 0, 0, 0, NULL) \
    X(LT_LMU_BASED, "lmu/based", "lmu-%s-based", LMU_ARCH_LMU, LMU_MIXER_BASED, LMU_IATTN_INIT_DELAY, 0, 0, 0, NULL) \
    X(LT_LMU_STACK, "lmu stack ffn,attn q 24,16", NULL, LMU_ARCH_LMU, LMU_MIXER_FFN, LMU_IATTN_INIT_DELAY, 0, 0, 0, "mixer=ffn,attn;q=24,16;q_prime=3,2;theta=40,100") \
    X(LT_TRANSFORMER_REBASED, "transformer/rebased", "transformer-%s-rebased", LMU_ARCH_TRANSFORMER, LMU_MIXER_REBASED, LMU_IATTN_INIT_DELAY, 0, 0, 0, NULL) \
    X(LT_TRANSFORMER_CONV, "transformer stack conv,based", NULL, LMU_ARCH_TRANSFORMER, LMU_MIXER_CONV, LMU_IATTN_INIT_DELAY, 0, 0, 0, "mixer=conv,based") \
    X(LT_LMU_CONV, "lmu/conv", "lmu-%s-conv", LMU_ARCH_LMU, LMU_MIXER_CONV, LMU_IATTN_INIT_DELAY, 0, 0, 0, NULL) \
    X(LT_TRANSFORMER_WINDOW, "transformer window 4", NULL, LMU_ARCH_TRANSFORMER, LMU_MIXER_ATTN, LMU_IATTN_INIT_DELAY, 0, 0, 0, "window=4") \
    X(LT_LMU_ATTN_WINDOW, "lmu/attn window 3", NULL, LMU_ARCH_LMU, LMU_MIXER_ATTN, LMU_IATTN_INIT_DELAY, 0, 0, 0, "window=3") \
    X(LT_TRANSFORMER_BRT, "transformer stack attn,brt W 4 S 3", NULL, LMU_ARCH_TRANSFORMER, LMU_MIXER_ATTN, LMU_IATTN_INIT_DELAY, 0, 0, 0, "mixer=attn,brt;window=4;n_state=3;qk_norm=1") \
    X(LT_TRANSFORMER_BRT_LSTM, "transformer stack brt,attn lstm W 3 S 2", NULL, LMU_ARCH_TRANSFORMER, LMU_MIXER_ATTN, LMU_IATTN_INIT_DELAY, 0, 0, 0, "mixer=brt,attn;window=3;n_state=2;brt_gate=lstm") \
    X(LT_LMU_BRT_SKIP, "lmu stack brt,ffn skip W 5 S 4", NULL, LMU_ARCH_LMU, LMU_MIXER_FFN, LMU_IATTN_INIT_DELAY, 0, 0, 0, "mixer=brt,ffn;window=5;n_state=4;brt_skip=1") \
    X(LT_TRANSFORMER_HIER, "transformer multi-scale k 3: attn W 4, coarse brt S 3", NULL, LMU_ARCH_TRANSFORMER, LMU_MIXER_ATTN, LMU_IATTN_INIT_DELAY, 0, 0, 0, "mixer=attn,brt;window=4;n_state=3;hier_k=3") \
    X(LT_LMU_HIER, "lmu multi-scale k 4: ffn, coarse attn theta 40,100", NULL, LMU_ARCH_LMU, LMU_MIXER_FFN, LMU_IATTN_INIT_DELAY, 0, 0, 0, "mixer=ffn,attn;theta=40,100;hier_k=4")

typedef struct lt_kind {
    const char *name, *preset;
    lmu_arch arch;
    lmu_mixer mixer;
    lmu_iattn_init iattn_init;
    double theta, theta_last, iattn_lr;
    const char *layers;
} lt_kind;

#define LT__KIND_ID(id, name, preset, arch, mixer, init, th, thl, lr, layers) id,
#define LT__KIND_ROW(id, name, preset, arch, mixer, init, th, thl, lr, layers) \
    {name, preset, arch, mixer, init, th, thl, lr, layers},
enum { LT_MODEL_KINDS(LT__KIND_ID) LT_N_KINDS };
static const lt_kind lt_kinds[LT_N_KINDS] LT__UNUSED = {LT_MODEL_KINDS(LT__KIND_ROW)};
#undef LT__KIND_ID
#undef LT__KIND_ROW

/* Makes c a model of kind k, keeping the sizes the test chose: arch,
   mixer, iattn_init and iattn_lr always, theta and theta_last when the kind
   has a window per layer (give it n_layer >= 2 for them to differ), the
   kind's lists (they need n_layer = 2). */
LT__UNUSED static void lt_kind_apply(lmu_config *c, int k)
{
    const lt_kind *t = &lt_kinds[k];
    c->arch = t->arch;
    c->mixer = t->mixer;
    c->iattn_init = t->iattn_init;
    c->iattn_lr = t->iattn_lr;
    if (t->theta_last > 0) {
        c->theta = t->theta;
        c->theta_last = t->theta_last;
    }
    if (t->layers) {
        char buf[256], *item = buf, *end, *eq;
        snprintf(buf, sizeof buf, "%s", t->layers);
        for (; item; item = end) {
            if ((end = strchr(item, ';')) != NULL) *end++ = 0;
            eq = strchr(item, '=');
            *eq = 0;
            if (lmu_config_set(c, item, eq + 1, NULL, 0) != LMU_OK) {
                fprintf(stderr, "lt_kind_apply: %s: bad list '%s'\n", t->name, eq + 1);
                abort();
            }
        }
    }
}

/* The suite's tiny model of kind k: d 32, 2 layers, q 24, q' 3, theta 100,
   d_pre 40, d_ff 48, 2 heads. */
LT__UNUSED static void lt_model_config(lmu_config *c, int k, int vocab, int n_ctx)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = vocab;
    c->n_ctx = n_ctx;
    c->d_model = 32;
    c->n_layer = 2;
    c->q = 24;
    c->q_prime = 3;
    c->theta = 100;
    c->d_pre = 40;
    c->d_ff = 48;
    c->n_head = 2;
    lt_kind_apply(c, k);
}
#endif /* LMU_H */

#endif
