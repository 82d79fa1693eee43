/* test_tape.c - the whole tape on a tiny two-layer model:

     x = E[tokens]
     2 x:  x = x + proj(gelu(fc(LN(x))))
     logits = LN_f(x) E^T        (tied: linear with E as [out=V, in=d])
     loss = mean cross-entropy

   Checks: gradient of every parameter against double-precision finite
   differences of the same model in double; the tied embedding gets both
   contributions; memorisation with Adam; zero allocations after warm-up;
   freezing; determinism (same seed, and 1 thread vs many); bit-exact resume
   from exported optimizer state; LR schedule; clipping; capacity errors.

   build: cc -std=c99 -O3 -fopenmp -I. tests/test_tape.c -o test_tape -lm */
#include <stdlib.h>

/* Counting allocator: every allocation of the library goes through these. */
static long g_n_malloc, g_n_realloc, g_n_free;
static void *count_malloc(size_t n) { g_n_malloc++; return malloc(n); }
static void *count_realloc(void *p, size_t n) { g_n_realloc++; return realloc(p, n); }
static void count_free(void *p) { if (p) g_n_free++; free(p); }
#define LMU_MALLOC(sz) count_malloc(sz)
#define LMU_REALLOC(p, sz) count_realloc(p, sz)
#define LMU_FREE(p) count_free(p)

#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/lmu_test.h"

#define NL 2 /* layers */

/* bounds */
#define GRAD_BOUND 1e-5   /* rel L2 per parameter tensor, float vs double FD */
#define MEMO_STEPS 100    /* loss must fall below MEMO_LOSS within this many */
#define MEMO_LOSS 0.05

typedef struct tiny {
    int V, d, F, B, T, tied;
    lmu_tape t;
    int wte, wout; /* wout = wte when tied */
    int ln_w[NL], ln_b[NL], fc_w[NL], fc_b[NL], pr_w[NL], pr_b[NL], lnf_w, lnf_b;
    int loss, logits; /* ids of the last forward */
    lmu_gemm_ws ws; /* once >>gemm is in: lmu_sgemm(NULL, ...) would allocate per call */
} tiny;

static void tiny_init(tiny *m, int V, int d, int F, int B, int T, int tied)
{
    int l, sVd[2] = {V, d}, sFd[2] = {F, d}, sdF[2] = {d, F};
    char nm[64];
    memset(m, 0, sizeof *m);
    m->V = V, m->d = d, m->F = F, m->B = B, m->T = T, m->tied = tied;
    lmu_tape_init(&m->t);
    lmu_gemm_ws_create(&m->ws, 0);
    m->t.gemm_ws = &m->ws;
    lmu_tape_param(&m->t, "wte", 2, sVd, 0, &m->wte);
    m->wout = m->wte;
    if (!tied) lmu_tape_param(&m->t, "wout", 2, sVd, 0, &m->wout);
    for (l = 0; l < NL; l++) {
#define P(field, suffix, nd, shp)                                                                  \
    snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix);                                            \
    lmu_tape_param(&m->t, nm, nd, shp, 0, &m->field[l]);
        P(ln_w, "ln_c.weight", 1, &d)
        P(ln_b, "ln_c.bias", 1, &d)
        P(fc_w, "ffn_post.fc.weight", 2, sFd)
        P(fc_b, "ffn_post.fc.bias", 1, &F)
        P(pr_w, "ffn_post.proj.weight", 2, sdF)
        P(pr_b, "ffn_post.proj.bias", 1, &d)
#undef P
    }
    lmu_tape_param(&m->t, "ln_f.weight", 1, &d, 0, &m->lnf_w);
    lmu_tape_param(&m->t, "ln_f.bias", 1, &d, 0, &m->lnf_b);
    lmu_tape_params_alloc(&m->t);
}

static void tiny_free(tiny *m)
{
    lmu_tape_free(&m->t);
    lmu_gemm_ws_destroy(&m->ws);
}

/* Random values everywhere (gradcheck: every path non-trivial), or a
   standard init (gain 1, bias 0, small weights) for training. */
static void tiny_fill(tiny *m, uint64_t seed, int standard)
{
    lmu_rng rng;
    int p;
    lmu_rng_seed(&rng, seed);
    for (p = 0; p < m->t.n_params; p++) {
        const lmu_tensor *x = lmu_tape_tensor(&m->t, p);
        float *v = lmu_tape_data(&m->t, p);
        int is_gain = strstr(x->name, "ln") && strstr(x->name, "weight");
        size_t i;
        for (i = 0; i < x->size; i++) {
            float r = lmu_rng_normal(&rng);
            if (standard)
                v[i] = is_gain ? 1.0f : (x->ndim == 1 ? 0.0f : 0.3f * r);
            else
                v[i] = is_gain ? 1.0f + 0.3f * r : 0.4f * r;
        }
    }
}

/* Records one forward on the tape. Returns the status of the first failure. */
static lmu_result tiny_forward(tiny *m, const int *tokens, const int *targets, int T)
{
    lmu_tape *t = &m->t;
    int s2[2] = {m->B, T}, ids, tg, x, h, l;
    lmu_result r;
    lmu_tape_reset(t);
#define TRY(call) if ((r = (call)) != LMU_OK) return r
    TRY(lmu_tape_input_ids(t, tokens, 2, s2, &ids));
    TRY(lmu_tape_input_ids(t, targets, 2, s2, &tg));
    TRY(lmu_tape_embedding(t, ids, m->wte, &x));
    for (l = 0; l < NL; l++) {
        TRY(lmu_tape_layernorm(t, x, m->ln_w[l], m->ln_b[l], &h));
        TRY(lmu_tape_linear(t, h, m->fc_w[l], m->fc_b[l], 0, &h));
        TRY(lmu_tape_gelu(t, h, &h));
        TRY(lmu_tape_linear(t, h, m->pr_w[l], m->pr_b[l], 0, &h));
        TRY(lmu_tape_add(t, x, h, &x));
    }
    TRY(lmu_tape_layernorm(t, x, m->lnf_w, m->lnf_b, &h));
    TRY(lmu_tape_linear(t, h, m->wout, -1, 0, &m->logits));
    TRY(lmu_tape_cross_entropy(t, m->logits, tg, &m->loss));
#undef TRY
    return LMU_OK;
}

/* ---- the same model in double, reading parameters at the tape's offsets
   from a double copy P of the parameter block ---- */
static const double *dp(const tiny *m, const double *P, int id) { return P + m->t.tensors[id].off; }

static void d_layernorm(double *y, const double *x, const double *g, const double *b, int N, int C)
{
    int n, c;
    for (n = 0; n < N; n++) {
        double mu = 0, var = 0, s;
        for (c = 0; c < C; c++) mu += x[n * C + c];
        mu /= C;
        for (c = 0; c < C; c++) var += (x[n * C + c] - mu) * (x[n * C + c] - mu);
        var /= C;
        s = 1 / sqrt(var + 1e-5);
        for (c = 0; c < C; c++) y[n * C + c] = (x[n * C + c] - mu) * s * g[c] + b[c];
    }
}
static void d_linear(double *y, const double *x, const double *W, const double *b, int N, int K, int M)
{
    int n, o, k;
    for (n = 0; n < N; n++)
        for (o = 0; o < M; o++) {
            double s = b ? b[o] : 0;
            for (k = 0; k < K; k++) s += x[n * K + k] * W[o * K + k];
            y[n * M + o] = s;
        }
}
static double d_gelu(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}

static double tiny_loss_double(const tiny *m, const double *P, const int *tokens, const int *targets)
{
    int N = m->B * m->T, d = m->d, F = m->F, V = m->V, n, c, l;
    double *x = (double *)malloc(sizeof(double) * N * d), *h = (double *)malloc(sizeof(double) * N * d);
    double *f = (double *)malloc(sizeof(double) * N * F), *z = (double *)malloc(sizeof(double) * N * V);
    double *o = (double *)malloc(sizeof(double) * N * d), loss = 0;
    for (n = 0; n < N; n++)
        for (c = 0; c < d; c++) x[n * d + c] = dp(m, P, m->wte)[tokens[n] * d + c];
    for (l = 0; l < NL; l++) {
        d_layernorm(h, x, dp(m, P, m->ln_w[l]), dp(m, P, m->ln_b[l]), N, d);
        d_linear(f, h, dp(m, P, m->fc_w[l]), dp(m, P, m->fc_b[l]), N, d, F);
        for (c = 0; c < N * F; c++) f[c] = d_gelu(f[c]);
        d_linear(o, f, dp(m, P, m->pr_w[l]), dp(m, P, m->pr_b[l]), N, F, d);
        for (c = 0; c < N * d; c++) x[c] += o[c];
    }
    d_layernorm(h, x, dp(m, P, m->lnf_w), dp(m, P, m->lnf_b), N, d);
    d_linear(z, h, dp(m, P, m->wout), NULL, N, d, V);
    for (n = 0; n < N; n++) {
        double mx = z[n * V], s = 0;
        for (c = 1; c < V; c++) mx = z[n * V + c] > mx ? z[n * V + c] : mx;
        for (c = 0; c < V; c++) s += exp(z[n * V + c] - mx);
        loss += mx + log(s) - z[n * V + targets[n]];
    }
    free(x), free(h), free(f), free(z), free(o);
    return loss / N;
}

/* The double loss as a function of a double copy P of the parameters,
   for lt_fd_check. */
typedef struct {
    const tiny *m;
    const double *P;
    const int *tokens, *targets;
} tiny_loss_ctx;

static double tiny_loss_fd(void *ctx)
{
    const tiny_loss_ctx *c = (const tiny_loss_ctx *)ctx;
    return tiny_loss_double(c->m, c->P, c->tokens, c->targets);
}

static void make_batch(int *tokens, int *targets, int n, int V, unsigned long long seed)
{
    int i;
    lt_seed(seed);
    for (i = 0; i < n; i++) {
        tokens[i] = (int)((lt_uniform() + 1) * 0.5 * V) % V;
        /* the tiny model has no sequence mixer, so a target must be a
           function of its own input token to be learnable */
        targets[i] = (5 * tokens[i] + 3) % V;
    }
}

/* ====================================================================== */
static void test_gradcheck(void)
{
    enum { V = 11, D = 8, F = 12, B = 2, T = 5 };
    int tokens[B * T], targets[B * T], p;
    tiny m;
    double *P, loss_d, worst = 0;
    tiny_loss_ctx lc;
    lmu_result r;
    size_t i;
    tiny_init(&m, V, D, F, B, T, 1);
    tiny_fill(&m, 7, 0);
    make_batch(tokens, targets, B * T, V, 99);
    targets[3] = 0; /* some targets not a function of the token: the loss is not near 0 */
    r = tiny_forward(&m, tokens, targets, T);
    LT_CHECK(r == LMU_OK, "gradcheck forward: %s", m.t.err);
    lmu_tape_zero_grad(&m.t);
    r = lmu_tape_backward(&m.t, m.loss);
    LT_CHECK(r == LMU_OK, "gradcheck backward: %s", m.t.err);
    { /* intermediates are readable: each row of dlogits = (softmax - onehot) / N sums to 0 */
        const float *gz = lmu_tape_grad(&m.t, m.logits), *z = lmu_tape_data(&m.t, m.logits);
        double worst_row = 0;
        int n, v;
        for (n = 0; n < B * T; n++) {
            double s = 0;
            for (v = 0; v < V; v++) s += gz[n * V + v];
            if (fabs(s) > worst_row) worst_row = fabs(s);
        }
        LT_CHECK(z != NULL && gz != NULL && worst_row < 1e-7 && gz[targets[0]] < 0,
                 "intermediate logits value and grad readable; rows of dlogits sum to 0 (%.1e)", worst_row);
    }
    P = (double *)malloc(sizeof(double) * m.t.param_size);
    for (i = 0; i < m.t.param_size; i++) P[i] = m.t.param[i];
    loss_d = tiny_loss_double(&m, P, tokens, targets);
    LT_CHECK(fabs(loss_d - lmu_tape_data(&m.t, m.loss)[0]) < 1e-5 * fabs(loss_d),
             "tiny model float loss %.7f vs double %.7f", lmu_tape_data(&m.t, m.loss)[0], loss_d);
    lc.m = &m;
    lc.P = P;
    lc.tokens = tokens;
    lc.targets = targets;
    for (p = 0; p < m.t.n_params; p++) {
        const lmu_tensor *x = lmu_tape_tensor(&m.t, p);
        double norm = 0, e;
        e = lt_fd_check(tiny_loss_fd, &lc, P + x->off, x->size, LT_FD_H, lmu_tape_grad(&m.t, p), 0.0f, &norm);
        if (e > worst) worst = e;
        LT_CHECK(e < GRAD_BOUND && norm > 0, "grad of %-28s rel L2 %.2e (|g| %.2e)", x->name, e, norm);
    }
    printf("tiny model: worst parameter-gradient rel L2 error %.2e (bound %.0e)\n", worst, GRAD_BOUND);
    free(P);

    /* Tied embedding: the same model untied (wout a copy of wte) must give
       grad(wte tied) = grad(wte untied) + grad(wout untied), both non-zero. */
    {
        tiny u;
        int q;
        double num = 0, den = 0, n_in = 0, n_out = 0;
        const float *gt, *gi, *go;
        tiny_init(&u, V, D, F, B, T, 0);
        for (q = 0; q < m.t.n_params; q++) { /* same names -> copy values */
            int uq = lmu_tape_find(&u.t, m.t.tensors[q].name);
            memcpy(lmu_tape_data(&u.t, uq), lmu_tape_data(&m.t, q), m.t.tensors[q].size * sizeof(float));
        }
        memcpy(lmu_tape_data(&u.t, u.wout), lmu_tape_data(&m.t, m.wte), (size_t)V * D * sizeof(float));
        tiny_forward(&u, tokens, targets, T);
        lmu_tape_zero_grad(&u.t);
        lmu_tape_backward(&u.t, u.loss);
        gt = lmu_tape_grad(&m.t, m.wte);
        gi = lmu_tape_grad(&u.t, u.wte);
        go = lmu_tape_grad(&u.t, u.wout);
        for (i = 0; i < (size_t)V * D; i++) {
            double s = (double)gi[i] + go[i];
            num += (gt[i] - s) * (gt[i] - s);
            den += s * s;
            n_in += (double)gi[i] * gi[i];
            n_out += (double)go[i] * go[i];
        }
        LT_CHECK(sqrt(num / den) < 1e-6 && n_in > 0 && n_out > 0,
                 "tied wte grad = embedding part (|%.2e|) + output part (|%.2e|): rel L2 %.2e",
                 sqrt(n_in), sqrt(n_out), sqrt(num / den));
        tiny_free(&u);
    }
    tiny_free(&m);
}

/* ====================================================================== */
/* training */
enum { TV = 16, TD = 16, TF = 32, TB = 2, TT = 8 };

/* One full step; returns the loss (NaN on failure). */
static float train_step(tiny *m, lmu_adam *opt, const int *tok, const int *tgt, long step, long total)
{
    lmu_result r;
    float loss;
    if ((r = tiny_forward(m, tok, tgt, m->T)) != LMU_OK) return NAN;
    loss = lmu_tape_data(&m->t, m->loss)[0];
    lmu_tape_zero_grad(&m->t);
    if (lmu_tape_backward(&m->t, m->loss) != LMU_OK) return NAN;
    if (lmu_tape_clip_grad_norm(&m->t, 1.0f, NULL) != LMU_OK) return NAN;
    if (lmu_adam_step(opt, &m->t, lmu_lr_schedule(step, 10, total, 2e-2f)) != LMU_OK) return NAN;
    return loss;
}

/* Trains from seed for n steps, writing each step's loss. */
static void train_run(float *losses, int n, uint64_t seed)
{
    tiny m;
    lmu_adam opt;
    int tok[TB * TT], tgt[TB * TT], s;
    make_batch(tok, tgt, TB * TT, TV, 5);
    tiny_init(&m, TV, TD, TF, TB, TT, 1);
    tiny_fill(&m, seed, 1);
    lmu_adam_init(&opt, &m.t);
    for (s = 0; s < n; s++) losses[s] = train_step(&m, &opt, tok, tgt, s, MEMO_STEPS);
    lmu_adam_free(&opt);
    tiny_free(&m);
}

static void test_training(void)
{
    tiny m;
    lmu_adam opt;
    int tok[TB * TT], tgt[TB * TT], s, reached = -1, frz;
    long a0 = 0, r0 = 0, f0 = 0;
    float loss = 0, first = 0, *frozen_before;
    const float *fg;
    size_t fsz, i;
    int grad_zero = 1, others_moved;
    make_batch(tok, tgt, TB * TT, TV, 5);
    tiny_init(&m, TV, TD, TF, TB, TT, 1);
    tiny_fill(&m, 1, 1);
    lmu_adam_init(&opt, &m.t);
    /* freeze one tensor (as the LMU's H will be) before training */
    frz = lmu_tape_find(&m.t, "blocks.0.ffn_post.fc.weight");
    lmu_tape_set_frozen(&m.t, frz, 1);
    fsz = m.t.tensors[frz].size;
    frozen_before = (float *)malloc(fsz * sizeof(float));
    memcpy(frozen_before, lmu_tape_data(&m.t, frz), fsz * sizeof(float));
    for (s = 0; s < MEMO_STEPS; s++) {
        if (s == 1) a0 = g_n_malloc, r0 = g_n_realloc, f0 = g_n_free;
        loss = train_step(&m, &opt, tok, tgt, s, MEMO_STEPS);
        if (s == 0) first = loss;
        if (loss != loss) break;
        if (reached < 0 && loss < MEMO_LOSS) reached = s;
    }
    LT_CHECK(g_n_malloc == a0 && g_n_realloc == r0 && g_n_free == f0,
             "zero allocations in steps 2..%d (malloc +%ld, realloc +%ld, free +%ld)", MEMO_STEPS,
             g_n_malloc - a0, g_n_realloc - r0, g_n_free - f0);
    LT_CHECK(reached >= 0, "memorises: loss %.4f -> %.4f, below %.2f at step %d (bound %d)", first,
             loss, MEMO_LOSS, reached, MEMO_STEPS);
    fg = lmu_tape_grad(&m.t, frz);
    LT_CHECK(fg == NULL, "frozen tensor exposes no grad");
    for (i = 0; i < fsz; i++)
        if (m.t.param_grad[m.t.tensors[frz].off + i] != 0.0f) grad_zero = 0;
    LT_CHECK(memcmp(frozen_before, lmu_tape_data(&m.t, frz), fsz * sizeof(float)) == 0 && grad_zero,
             "frozen tensor: value unchanged after %d steps, grad block untouched (zero)", MEMO_STEPS);
    others_moved = m.t.param[m.t.tensors[lmu_tape_find(&m.t, "blocks.0.ffn_post.proj.weight")].off] != 0;
    LT_CHECK(others_moved && opt.m[m.t.tensors[frz].off] == 0.0f, "frozen tensor has no Adam moments");
    LT_CHECK(lmu_tape_grad_norm(&m.t) > 0, "grad norm excludes frozen, is positive");

    /* capacity: locked after warm-up; a longer sequence is an error */
    {
        enum { T2 = 64 };
        int tok2[TB * T2], tgt2[TB * T2];
        lmu_result r;
        make_batch(tok2, tgt2, TB * T2, TV, 6);
        r = tiny_forward(&m, tok2, tgt2, T2);
        LT_CHECK(r == LMU_ERR_CAPACITY && m.t.err[0], "longer sequence after warm-up -> LMU_ERR_CAPACITY (%s)", m.t.err);
        lmu_tape_set_growth(&m.t, 1);
        m.B = TB, m.T = T2;
        r = tiny_forward(&m, tok2, tgt2, T2);
        LT_CHECK(r == LMU_OK && lmu_tape_backward(&m.t, m.loss) == LMU_OK,
                 "after lmu_tape_set_growth(1) it grows: %s", m.t.err);
    }
    free(frozen_before);
    lmu_adam_free(&opt);
    tiny_free(&m);
}

static void test_determinism(void)
{
    enum { N = 40 };
    float a[N], b[N];
    train_run(a, N, 3);
    train_run(b, N, 3);
    LT_CHECK(memcmp(a, b, sizeof a) == 0, "same seed -> bitwise identical losses over %d steps", N);
#ifdef _OPENMP
    {
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        train_run(b, N, 3);
        omp_set_num_threads(nt > 2 ? nt : 3);
        train_run(a, N, 3);
        omp_set_num_threads(nt);
        LT_CHECK(memcmp(a, b, sizeof a) == 0, "1 thread and %d threads give bitwise identical losses",
                 nt > 2 ? nt : 3);
    }
#endif
}

/* Resume: export after 10 steps, import into a fresh optimizer and tape. */
static void test_resume(void)
{
    tiny m, m2;
    lmu_adam opt, opt2;
    int tok[TB * TT], tgt[TB * TT], s;
    float l1[5], l2[5], *pm, *pv, *params;
    uint64_t step;
    make_batch(tok, tgt, TB * TT, TV, 5);
    tiny_init(&m, TV, TD, TF, TB, TT, 1);
    tiny_fill(&m, 11, 1);
    lmu_adam_init(&opt, &m.t);
    for (s = 0; s < 10; s++) train_step(&m, &opt, tok, tgt, s, 100);
    pm = (float *)malloc(opt.n * sizeof(float));
    pv = (float *)malloc(opt.n * sizeof(float));
    params = (float *)malloc(m.t.param_size * sizeof(float));
    lmu_adam_export(&opt, &step, pm, pv);
    memcpy(params, m.t.param, m.t.param_size * sizeof(float));
    for (s = 10; s < 15; s++) l1[s - 10] = train_step(&m, &opt, tok, tgt, s, 100);

    tiny_init(&m2, TV, TD, TF, TB, TT, 1);
    memcpy(m2.t.param, params, m2.t.param_size * sizeof(float));
    lmu_adam_init(&opt2, &m2.t);
    lmu_adam_import(&opt2, step, pm, pv);
    for (s = 10; s < 15; s++) l2[s - 10] = train_step(&m2, &opt2, tok, tgt, s, 100);
    LT_CHECK(step == 10 && memcmp(l1, l2, sizeof l1) == 0 &&
                 memcmp(m.t.param, m2.t.param, m.t.param_size * sizeof(float)) == 0,
             "resume from exported Adam state is bit-exact (losses and parameters)");
    free(pm), free(pv), free(params);
    lmu_adam_free(&opt), lmu_adam_free(&opt2);
    tiny_free(&m), tiny_free(&m2);
}

static void test_schedule(void)
{
    const long W = 10, T = 110;
    const double pi = 3.14159265358979323846;
    struct { long step; double want; } c[] = {
        {0, 0.1},     /* warmup start: (0+1)/W */
        {4, 0.5},     /* warmup middle */
        {9, 1.0},     /* warmup end */
        {10, 1.0},    /* decay start */
        {35, 0.5 * (1 + cos(pi * 0.25))},
        {60, 0.5},    /* decay middle */
        {110, 0.0},   /* end */
        {500, 0.0},   /* beyond */
    };
    size_t i;
    for (i = 0; i < sizeof c / sizeof c[0]; i++) {
        double got = lmu_lr_schedule(c[i].step, W, T, 3e-3f) / 3e-3;
        LT_CHECK(fabs(got - c[i].want) < 1e-6, "lr schedule step %ld: %.7f vs %.7f", c[i].step, got,
                 c[i].want);
    }
}

static void test_clip(void)
{
    tiny m;
    int tok[TB * TT], tgt[TB * TT];
    double n0, n1, nb;
    float *g0;
    lmu_result r;
    make_batch(tok, tgt, TB * TT, TV, 5);
    tiny_init(&m, TV, TD, TF, TB, TT, 1);
    tiny_fill(&m, 2, 1);
    tiny_forward(&m, tok, tgt, TT);
    lmu_tape_zero_grad(&m.t);
    lmu_tape_backward(&m.t, m.loss);
    g0 = (float *)malloc(m.t.param_size * sizeof(float));
    memcpy(g0, m.t.param_grad, m.t.param_size * sizeof(float));
    n0 = lmu_tape_grad_norm(&m.t);
    r = lmu_tape_clip_grad_norm(&m.t, (float)(10 * n0), &nb);
    LT_CHECK(r == LMU_OK && nb == n0 && memcmp(g0, m.t.param_grad, m.t.param_size * sizeof(float)) == 0,
             "clip below the max leaves grads alone");
    r = lmu_tape_clip_grad_norm(&m.t, (float)(n0 / 3), &nb);
    n1 = lmu_tape_grad_norm(&m.t);
    LT_CHECK(r == LMU_OK && fabs(n1 - (float)(n0 / 3)) < 1e-6 * n1,
             "after clipping the global norm %.6e equals the max %.6e (was %.6e)", n1, (float)(n0 / 3), n0);
    m.t.param_grad[3] = NAN;
    r = lmu_tape_clip_grad_norm(&m.t, 1.0f, &nb);
    LT_CHECK(r == LMU_ERR_NONFINITE, "NaN grad -> LMU_ERR_NONFINITE");
    free(g0);
    tiny_free(&m);
}

static void test_api_errors(void)
{
    lmu_tape t;
    int sh[2] = {3, 4}, id, x, r;
    lmu_tape_init(&t);
    r = lmu_tape_leaf(&t, NULL, 2, sh, 1, &x);
    LT_CHECK(r == LMU_ERR_STATE, "activation before lmu_tape_params_alloc -> LMU_ERR_STATE");
    lmu_tape_param(&t, "w", 2, sh, 0, &id);
    r = lmu_tape_param(&t, "w", 2, sh, 0, &id);
    LT_CHECK(r == LMU_ERR_ARG, "duplicate parameter name -> LMU_ERR_ARG");
    sh[1] = 0;
    r = lmu_tape_param(&t, "z", 2, sh, 0, &id);
    LT_CHECK(r == LMU_ERR_SHAPE, "zero dim -> LMU_ERR_SHAPE");
    lmu_tape_params_alloc(&t);
    r = lmu_tape_param(&t, "late", 1, sh, 0, &id);
    LT_CHECK(r == LMU_ERR_STATE, "parameter after allocation -> LMU_ERR_STATE");
    sh[1] = 4;
    lmu_tape_leaf(&t, NULL, 2, sh, 0, &x);
    lmu_tape_gelu(&t, x, &id);
    r = lmu_tape_backward(&t, id);
    LT_CHECK(r == LMU_ERR_ARG, "backward from a non-scalar -> LMU_ERR_ARG");
    r = lmu_tape_backward_seed(&t, id, NULL);
    LT_CHECK(r == LMU_ERR_STATE, "backward from a tensor without grad -> LMU_ERR_STATE");
    lmu_tape_free(&t);
    lmu_tape_free(&t); /* twice is fine */
}

int main(int argc, char **argv)
{
    lt_begin("test_tape", argc, argv);
    test_api_errors();
    test_gradcheck();
    test_schedule();
    test_clip();
    test_training();
    test_determinism();
    test_resume();
    LT_CHECK(g_n_malloc + g_n_realloc > 0, "allocation counter saw the library (%ld mallocs, %ld reallocs, %ld frees)",
             g_n_malloc, g_n_realloc, g_n_free);
    return lt_end();
}
