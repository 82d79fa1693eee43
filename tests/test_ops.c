/* test_ops.c - every tape op against a double-precision reference.

   For each op and each float input: the float32 forward is compared with a
   plain-loop double forward, and the float32 analytic backward with central
   finite differences of the double forward of loss = sum(out * R), R a fixed
   random projection. Error = relative L2 error of the whole tensor,
   ||a - b|| / ||b||.

   build: cc -std=c99 -O3 -fopenmp -I. tests/test_ops.c -o test_ops -lm */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/lmu_test.h"

#define MAXIN 4

/* bounds: the float32 forward against double, and the float32 gradient
   against double finite differences (relative L2 over the whole tensor) */
#define FWD_BOUND 1e-6
#define GRAD_BOUND 1e-5

typedef struct op_case {
    const char *name;
    int nin;
    double *in[MAXIN];    /* double copies of the float inputs */
    size_t in_n[MAXIN];
    int has_grad[MAXIN];  /* this input's grad is checked */
    const float *grad[MAXIN]; /* analytic grads from the tape */
    size_t out_n;
    const int *ints;      /* ids / targets for the ops that take them */
    int d[8];             /* op dims */
    double dp[2];         /* op scalars */
    void (*ref)(const struct op_case *c, double *out);
} op_case;

static double *dalloc(size_t n) { return (double *)calloc(n ? n : 1, sizeof(double)); }

static double rel_l2(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* What the finite differences differentiate: sum(ref(inputs) * R). */
typedef struct {
    const op_case *c;
    const double *R;
    double *out;
} proj_ctx;

static double proj(void *ctx)
{
    const proj_ctx *p = (const proj_ctx *)ctx;
    double s = 0;
    size_t i;
    p->c->ref(p->c, p->out);
    for (i = 0; i < p->c->out_n; i++) s += p->out[i] * p->R[i];
    return s;
}

/* Checks the float forward `y` against the double forward and every input's
   analytic grad against finite differences; returns the worst grad error. */
static double check_case(op_case *c, const float *y, const double *R, double grad_bound)
{
    double *out = dalloc(c->out_n), *yd = dalloc(c->out_n), worst = 0, e;
    proj_ctx p;
    size_t i;
    int k;
    c->ref(c, out);
    for (i = 0; i < c->out_n; i++) yd[i] = y[i];
    e = rel_l2(yd, out, c->out_n);
    LT_CHECK(e < FWD_BOUND, "%s forward: rel L2 %.2e < %.0e", c->name, e, FWD_BOUND);
    p.c = c;
    p.R = R;
    p.out = out;
    for (k = 0; k < c->nin; k++) {
        if (!c->has_grad[k]) continue;
        e = lt_fd_check(proj, &p, c->in[k], c->in_n[k], LT_FD_H, c->grad[k], 0.0f, NULL);
        if (e > worst) worst = e;
        LT_CHECK(e < grad_bound, "%s grad of input %d: rel L2 %.2e < %.0e", c->name, k, e,
                 grad_bound);
    }
    free(out);
    free(yd);
    return worst;
}

/* ---- random data ---- */
static void rand_f(float *x, size_t n, double scale)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = (float)(scale * lt_uniform());
}
static double *to_d(const float *x, size_t n)
{
    double *d = dalloc(n);
    size_t i;
    for (i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static double *rand_R(size_t n)
{
    double *R = dalloc(n);
    size_t i;
    for (i = 0; i < n; i++) R[i] = lt_uniform();
    return R;
}
static float *seed_of(const double *R, size_t n)
{
    float *s = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) s[i] = (float)R[i];
    return s;
}
static void free_case(op_case *c)
{
    int k;
    for (k = 0; k < c->nin; k++) free(c->in[k]);
}

/* A tape with the given parameters declared and allocated. */
static void tape_with_params(lmu_tape *t, int np, const char **names, const int *ndims,
                             int (*shapes)[4], int *ids)
{
    int i;
    lmu_tape_init(t);
    for (i = 0; i < np; i++) lmu_tape_param(t, names[i], ndims[i], shapes[i], 0, &ids[i]);
    lmu_tape_params_alloc(t);
}

static double g_worst_grad = 0, g_worst_fwd = 0;
static void note(double e) { if (e > g_worst_grad) g_worst_grad = e; }

/* Runs backward with seed R (the grad of sum(out * R)) and checks. */
static void run_check(lmu_tape *t, op_case *c, int y, double bound)
{
    double *R = rand_R(c->out_n);
    float *seed = seed_of(R, c->out_n);
    lmu_result r = lmu_tape_backward_seed(t, y, seed);
    LT_CHECK(r == LMU_OK, "%s backward: %s %s", c->name, lmu_strerror(r), t->err);
    note(check_case(c, lmu_tape_data(t, y), R, bound));
    free(R);
    free(seed);
}

/* ===================================================================== */
/* embedding: out[n, c] = W[ids[n], c]                                    */
static void ref_embedding(const op_case *c, double *out)
{
    int n, j, N = c->d[0], C = c->d[1];
    for (n = 0; n < N; n++)
        for (j = 0; j < C; j++) out[n * C + j] = c->in[0][c->ints[n] * C + j];
}

static void test_embedding(void)
{
    enum { V = 7, C = 5, B = 2, T = 6 };
    int ids[B * T] = {1, 3, 3, 0, 6, 1, 2, 3, 1, 1, 5, 3}; /* repeats: scatter-add */
    const char *names[1] = {"wte"};
    int nd[1] = {2}, sh[1][4] = {{V, C}}, w, x, y, shape[2] = {B, T};
    float wv[V * C];
    lmu_tape t;
    op_case c;
    lmu_result r;
    memset(&c, 0, sizeof c);
    tape_with_params(&t, 1, names, nd, sh, &w);
    rand_f(wv, V * C, 1.0);
    memcpy(lmu_tape_data(&t, w), wv, sizeof wv);
    lmu_tape_input_ids(&t, ids, 2, shape, &x);
    r = lmu_tape_embedding(&t, x, w, &y);
    LT_CHECK(r == LMU_OK, "embedding records: %s", t.err);
    LT_CHECK(lmu_tape_tensor(&t, y)->ndim == 3 && lmu_tape_tensor(&t, y)->shape[2] == C,
             "embedding output is (B, T, C)");
    c.name = "embedding";
    c.nin = 1;
    c.in[0] = to_d(wv, V * C);
    c.in_n[0] = V * C;
    c.has_grad[0] = 1;
    c.grad[0] = lmu_tape_grad(&t, w);
    c.out_n = B * T * C;
    c.ints = ids;
    c.d[0] = B * T;
    c.d[1] = C;
    c.ref = ref_embedding;
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    /* out-of-range id is an error, not a crash */
    lmu_tape_reset(&t);
    ids[4] = V;
    lmu_tape_input_ids(&t, ids, 2, shape, &x);
    r = lmu_tape_embedding(&t, x, w, &y);
    LT_CHECK(r == LMU_ERR_RANGE && t.err[0], "embedding id out of range -> LMU_ERR_RANGE (%s)", t.err);
    lmu_tape_free(&t);
}

/* ===================================================================== */
/* linear: out[n, m] = sum_k x[n, k] W(m, k) + b[m]                       */
static void ref_linear(const op_case *c, double *out)
{
    int n, m, k, N = c->d[0], K = c->d[1], M = c->d[2], io = c->d[3], hasb = c->d[4];
    for (n = 0; n < N; n++)
        for (m = 0; m < M; m++) {
            double s = hasb ? c->in[2][m] : 0;
            for (k = 0; k < K; k++)
                s += c->in[0][n * K + k] * (io ? c->in[1][k * M + m] : c->in[1][m * K + k]);
            out[n * M + m] = s;
        }
}

static void test_linear(int w_in_out, int with_bias)
{
    enum { B = 2, T = 3, K = 5, M = 4 };
    const char *names[2] = {"W", "b"};
    int nd[2] = {2, 1}, sh[2][4], ids[2], x, y, xs[3] = {B, T, K};
    float xv[B * T * K], wv[M * K], bv[M];
    lmu_tape t;
    op_case c;
    lmu_result r;
    char nm[64];
    memset(&c, 0, sizeof c);
    sh[0][0] = w_in_out ? K : M;
    sh[0][1] = w_in_out ? M : K;
    sh[1][0] = M;
    tape_with_params(&t, 2, names, nd, sh, ids);
    rand_f(xv, sizeof xv / 4, 1.0);
    rand_f(wv, sizeof wv / 4, 0.5);
    rand_f(bv, M, 0.5);
    memcpy(lmu_tape_data(&t, ids[0]), wv, sizeof wv);
    memcpy(lmu_tape_data(&t, ids[1]), bv, sizeof bv);
    lmu_tape_leaf(&t, xv, 3, xs, 1, &x);
    r = lmu_tape_linear(&t, x, ids[0], with_bias ? ids[1] : -1, w_in_out, &y);
    LT_CHECK(r == LMU_OK, "linear records: %s", t.err);
    snprintf(nm, sizeof nm, "linear[%s%s]", w_in_out ? "W in,out" : "W out,in",
             with_bias ? ", bias" : ", no bias");
    c.name = nm;
    c.nin = 3;
    c.in[0] = to_d(xv, B * T * K);
    c.in[1] = to_d(wv, M * K);
    c.in[2] = to_d(bv, M);
    c.in_n[0] = B * T * K;
    c.in_n[1] = M * K;
    c.in_n[2] = M;
    c.has_grad[0] = c.has_grad[1] = 1;
    c.has_grad[2] = with_bias;
    c.grad[0] = lmu_tape_grad(&t, x);
    c.grad[1] = lmu_tape_grad(&t, ids[0]);
    c.grad[2] = lmu_tape_grad(&t, ids[1]);
    c.out_n = B * T * M;
    c.d[0] = B * T;
    c.d[1] = K;
    c.d[2] = M;
    c.d[3] = w_in_out;
    c.d[4] = with_bias;
    c.ref = ref_linear;
    run_check(&t, &c, y, GRAD_BOUND);
    if (!with_bias) {
        const float *gb = lmu_tape_grad(&t, ids[1]);
        LT_CHECK(gb[0] == 0 && gb[M - 1] == 0, "linear without bias leaves the unused bias grad alone");
    }
    free_case(&c);
    /* wrong inner size: LMU_ERR_SHAPE with a message */
    lmu_tape_reset(&t);
    xs[2] = K + 1;
    lmu_tape_leaf(&t, NULL, 3, xs, 1, &x);
    t.err[0] = 0;
    r = lmu_tape_linear(&t, x, ids[0], ids[1], w_in_out, &y);
    LT_CHECK(r == LMU_ERR_SHAPE && t.err[0], "linear shape mismatch -> LMU_ERR_SHAPE (%s)", t.err);
    lmu_tape_free(&t);
}

/* ===================================================================== */
/* matmul: out[p] = alpha op(a[p]) op(b[p])                               */
static void ref_matmul(const op_case *c, double *out)
{
    int p, i, j, k, P = c->d[0], M = c->d[1], N = c->d[2], K = c->d[3], ta = c->d[4], tb = c->d[5];
    for (p = 0; p < P; p++)
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                const double *a = c->in[0] + p * M * K, *b = c->in[1] + p * K * N;
                double s = 0;
                for (k = 0; k < K; k++)
                    s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
                out[p * M * N + i * N + j] = c->dp[0] * s;
            }
}

static void test_matmul(int ta, int tb)
{
    enum { P = 3, M = 4, N = 5, K = 6 };
    int as[3] = {P, ta ? K : M, ta ? M : K}, bs[3] = {P, tb ? N : K, tb ? K : N};
    float av[P * M * K], bv[P * K * N];
    int a, b, y;
    lmu_tape t;
    op_case c;
    lmu_result r;
    char nm[64];
    memset(&c, 0, sizeof c);
    lmu_tape_init(&t);
    lmu_tape_params_alloc(&t);
    rand_f(av, sizeof av / 4, 1.0);
    rand_f(bv, sizeof bv / 4, 1.0);
    lmu_tape_leaf(&t, av, 3, as, 1, &a);
    lmu_tape_leaf(&t, bv, 3, bs, 1, &b);
    r = lmu_tape_matmul(&t, a, b, ta, tb, 0.7f, &y);
    LT_CHECK(r == LMU_OK, "matmul records: %s", t.err);
    snprintf(nm, sizeof nm, "matmul[ta=%d tb=%d]", ta, tb);
    c.name = nm;
    c.nin = 2;
    c.in[0] = to_d(av, P * M * K);
    c.in[1] = to_d(bv, P * K * N);
    c.in_n[0] = P * M * K;
    c.in_n[1] = P * K * N;
    c.has_grad[0] = c.has_grad[1] = 1;
    c.grad[0] = lmu_tape_grad(&t, a);
    c.grad[1] = lmu_tape_grad(&t, b);
    c.out_n = P * M * N;
    c.d[0] = P;
    c.d[1] = M;
    c.d[2] = N;
    c.d[3] = K;
    c.d[4] = ta;
    c.d[5] = tb;
    c.dp[0] = 0.7f; /* the float alpha, exactly */
    c.ref = ref_matmul;
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    lmu_tape_reset(&t);
    bs[0] = P + 1;
    lmu_tape_leaf(&t, NULL, 3, as, 1, &a);
    lmu_tape_leaf(&t, NULL, 3, bs, 1, &b);
    r = lmu_tape_matmul(&t, a, b, ta, tb, 1.0f, &y);
    LT_CHECK(r == LMU_ERR_SHAPE, "matmul batch mismatch -> LMU_ERR_SHAPE (%s)", t.err);
    lmu_tape_free(&t);
}

/* ===================================================================== */
/* add (b broadcast over leading dims), scale, gelu, softmax, layernorm   */
static void ref_add(const op_case *c, double *out)
{
    size_t i, nb = c->in_n[1];
    for (i = 0; i < c->out_n; i++) out[i] = c->in[0][i] + c->in[1][i % nb];
}
static void ref_scale(const op_case *c, double *out)
{
    size_t i;
    for (i = 0; i < c->out_n; i++) out[i] = c->dp[0] * c->in[0][i];
}
static double gelu_d(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}
static void ref_gelu(const op_case *c, double *out)
{
    size_t i;
    for (i = 0; i < c->out_n; i++) out[i] = gelu_d(c->in[0][i]);
}
static void ref_softmax(const op_case *c, double *out)
{
    int n, j, N = c->d[0], C = c->d[1];
    for (n = 0; n < N; n++) {
        const double *x = c->in[0] + n * C;
        double mx = x[0], s = 0;
        for (j = 1; j < C; j++) mx = x[j] > mx ? x[j] : mx;
        for (j = 0; j < C; j++) s += exp(x[j] - mx);
        for (j = 0; j < C; j++) out[n * C + j] = exp(x[j] - mx) / s;
    }
}
static void ref_layernorm(const op_case *c, double *out)
{
    int n, j, N = c->d[0], C = c->d[1];
    for (n = 0; n < N; n++) {
        const double *x = c->in[0] + n * C;
        double m = 0, v = 0, s;
        for (j = 0; j < C; j++) m += x[j];
        m /= C;
        for (j = 0; j < C; j++) v += (x[j] - m) * (x[j] - m);
        v /= C;
        s = 1 / sqrt(v + 1e-5);
        for (j = 0; j < C; j++) out[n * C + j] = (x[j] - m) * s * c->in[1][j] + c->in[2][j];
    }
}

/* One float input x of shape (B, T, C), plus optional params. */
static void test_unary(const char *name, int which)
{
    enum { B = 2, T = 3, C = 7 };
    int xs[3] = {B, T, C}, x, y = -1, ids[2] = {-1, -1};
    float xv[B * T * C], gv[C], bv[C];
    const char *names[2] = {"g", "b"};
    int nd[2] = {1, 1}, sh[2][4] = {{C}, {C}};
    lmu_tape t;
    op_case c;
    lmu_result r = LMU_OK;
    memset(&c, 0, sizeof c);
    tape_with_params(&t, which == 3 ? 2 : 0, names, nd, sh, ids);
    rand_f(xv, sizeof xv / 4, which == 2 ? 3.0 : 1.5); /* gelu: cover the tails */
    rand_f(gv, C, 1.0);
    rand_f(bv, C, 1.0);
    for (x = 0; x < C; x++) gv[x] += 1.0f;
    lmu_tape_leaf(&t, xv, 3, xs, 1, &x);
    c.name = name;
    c.nin = 1;
    c.in[0] = to_d(xv, B * T * C);
    c.in_n[0] = B * T * C;
    c.has_grad[0] = 1;
    c.out_n = B * T * C;
    c.d[0] = B * T;
    c.d[1] = C;
    switch (which) {
    case 0: r = lmu_tape_scale(&t, x, -1.3f, &y); c.dp[0] = -1.3f; c.ref = ref_scale; break;
    case 1: r = lmu_tape_softmax(&t, x, &y); c.ref = ref_softmax; break;
    case 2: r = lmu_tape_gelu(&t, x, &y); c.ref = ref_gelu; break;
    case 3:
        memcpy(lmu_tape_data(&t, ids[0]), gv, sizeof gv);
        memcpy(lmu_tape_data(&t, ids[1]), bv, sizeof bv);
        r = lmu_tape_layernorm(&t, x, ids[0], ids[1], &y);
        c.ref = ref_layernorm;
        c.nin = 3;
        c.in[1] = to_d(gv, C);
        c.in[2] = to_d(bv, C);
        c.in_n[1] = c.in_n[2] = C;
        c.has_grad[1] = c.has_grad[2] = 1;
        c.grad[1] = lmu_tape_grad(&t, ids[0]);
        c.grad[2] = lmu_tape_grad(&t, ids[1]);
        break;
    }
    LT_CHECK(r == LMU_OK, "%s records: %s", name, t.err);
    c.grad[0] = lmu_tape_grad(&t, x);
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    lmu_tape_free(&t);
}

static void test_add(int broadcast)
{
    enum { B = 2, T = 3, C = 5 };
    int as[3] = {B, T, C}, bs[3] = {B, T, C}, a, b, y;
    float av[B * T * C], bv[B * T * C];
    size_t nb = broadcast ? C : B * T * C;
    lmu_tape t;
    op_case c;
    lmu_result r;
    memset(&c, 0, sizeof c);
    lmu_tape_init(&t);
    lmu_tape_params_alloc(&t);
    rand_f(av, sizeof av / 4, 1.0);
    rand_f(bv, nb, 1.0);
    lmu_tape_leaf(&t, av, 3, as, 1, &a);
    if (broadcast)
        lmu_tape_leaf(&t, bv, 1, &bs[2], 1, &b);
    else
        lmu_tape_leaf(&t, bv, 3, bs, 1, &b);
    r = lmu_tape_add(&t, a, b, &y);
    LT_CHECK(r == LMU_OK, "add records: %s", t.err);
    c.name = broadcast ? "add[broadcast (C)]" : "add";
    c.nin = 2;
    c.in[0] = to_d(av, B * T * C);
    c.in[1] = to_d(bv, nb);
    c.in_n[0] = B * T * C;
    c.in_n[1] = nb;
    c.has_grad[0] = c.has_grad[1] = 1;
    c.grad[0] = lmu_tape_grad(&t, a);
    c.grad[1] = lmu_tape_grad(&t, b);
    c.out_n = B * T * C;
    c.ref = ref_add;
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    lmu_tape_reset(&t);
    bs[2] = C + 1;
    lmu_tape_leaf(&t, NULL, 3, as, 1, &a);
    lmu_tape_leaf(&t, NULL, 1, &bs[2], 1, &b);
    r = lmu_tape_add(&t, a, b, &y);
    LT_CHECK(r == LMU_ERR_SHAPE, "add shape mismatch -> LMU_ERR_SHAPE (%s)", t.err);
    lmu_tape_free(&t);
}

/* ===================================================================== */
/* cross-entropy (mean over rows, nats) and sum/mean                       */
static void ref_ce(const op_case *c, double *out)
{
    int n, v, N = c->d[0], V = c->d[1];
    double tot = 0;
    for (n = 0; n < N; n++) {
        const double *z = c->in[0] + n * V;
        double mx = z[0], s = 0;
        for (v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (v = 0; v < V; v++) s += exp(z[v] - mx);
        tot += mx + log(s) - z[c->ints[n]];
    }
    out[0] = tot / N;
}
static void ref_sum(const op_case *c, double *out)
{
    size_t i;
    double s = 0;
    for (i = 0; i < c->in_n[0]; i++) s += c->in[0][i];
    out[0] = c->dp[0] * s;
}

static void test_cross_entropy(void)
{
    enum { B = 2, T = 4, V = 9 };
    int zs[3] = {B, T, V}, ts[2] = {B, T}, z, tg, y;
    int targets[B * T] = {0, 8, 3, 3, 5, 1, 7, 2};
    float zv[B * T * V];
    lmu_tape t;
    op_case c;
    lmu_result r;
    memset(&c, 0, sizeof c);
    lmu_tape_init(&t);
    lmu_tape_params_alloc(&t);
    rand_f(zv, sizeof zv / 4, 3.0);
    lmu_tape_leaf(&t, zv, 3, zs, 1, &z);
    lmu_tape_input_ids(&t, targets, 2, ts, &tg);
    r = lmu_tape_cross_entropy(&t, z, tg, &y);
    LT_CHECK(r == LMU_OK, "cross_entropy records: %s", t.err);
    c.name = "cross_entropy";
    c.nin = 1;
    c.in[0] = to_d(zv, B * T * V);
    c.in_n[0] = B * T * V;
    c.has_grad[0] = 1;
    c.grad[0] = lmu_tape_grad(&t, z);
    c.out_n = 1;
    c.ints = targets;
    c.d[0] = B * T;
    c.d[1] = V;
    c.ref = ref_ce;
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    /* uniform logits: loss = log V exactly */
    lmu_tape_reset(&t);
    memset(zv, 0, sizeof zv);
    lmu_tape_leaf(&t, zv, 3, zs, 1, &z);
    lmu_tape_input_ids(&t, targets, 2, ts, &tg);
    lmu_tape_cross_entropy(&t, z, tg, &y);
    LT_CHECK(fabs(lmu_tape_data(&t, y)[0] - log((double)V)) < 1e-6, "cross_entropy of zeros = log V");
    lmu_tape_reset(&t);
    targets[3] = -1;
    lmu_tape_leaf(&t, zv, 3, zs, 1, &z);
    lmu_tape_input_ids(&t, targets, 2, ts, &tg);
    r = lmu_tape_cross_entropy(&t, z, tg, &y);
    LT_CHECK(r == LMU_ERR_RANGE, "cross_entropy target out of range -> LMU_ERR_RANGE (%s)", t.err);
    lmu_tape_free(&t);
}

static void test_sum(int mean)
{
    enum { N = 3, C = 11 };
    int xs[2] = {N, C}, x, y;
    float xv[N * C];
    lmu_tape t;
    op_case c;
    lmu_result r;
    memset(&c, 0, sizeof c);
    lmu_tape_init(&t);
    lmu_tape_params_alloc(&t);
    rand_f(xv, sizeof xv / 4, 1.0);
    lmu_tape_leaf(&t, xv, 2, xs, 1, &x);
    r = mean ? lmu_tape_mean(&t, x, &y) : lmu_tape_sum(&t, x, 2.5f, &y);
    LT_CHECK(r == LMU_OK, "sum records: %s", t.err);
    c.name = mean ? "mean" : "sum";
    c.nin = 1;
    c.in[0] = to_d(xv, N * C);
    c.in_n[0] = N * C;
    c.has_grad[0] = 1;
    c.grad[0] = lmu_tape_grad(&t, x);
    c.out_n = 1;
    c.dp[0] = mean ? (double)(float)(1.0 / (N * C)) : 2.5;
    c.ref = ref_sum;
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    lmu_tape_free(&t);
}

/* ===================================================================== */
/* the extension seam: a custom op (elementwise square) with its own
   backward callback, chained with built-in ops through a view */
static lmu_result square_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    float *dx = lmu_tape_grad(t, rec->in[0]);
    const float *x = lmu_tape_data(t, rec->in[0]), *dy = lmu_tape_grad(t, rec->out);
    size_t i, n = lmu_tape_tensor(t, rec->out)->size;
    if (dx)
        for (i = 0; i < n; i++) dx[i] += 2.0f * x[i] * dy[i];
    return LMU_OK;
}
static void ref_square_then_scale(const op_case *c, double *out)
{
    size_t i;
    for (i = 0; i < c->out_n; i++) out[i] = 0.5 * c->in[0][i] * c->in[0][i];
}

/* A fused op (cross_entropy_tied, as the model records it) on a bare tape:
   refused until the owner reserves its scratch, then the same loss and
   gradients as the composite matmul + cross_entropy. */
static void test_fused_op(void)
{
    enum { N = 6, D = 8, V = 11 };
    int es[2] = {V, D}, xs[2] = {N, D}, tgt[N], E, x, tg, loss, losses, logits, loss2, i;
    float xv[N * D], dx[N * D], dE[V * D], l1;
    double worst = 0;
    lmu_gemm_ws ws;
    lmu_tape t;
    lmu_tape_init(&t);
    lmu_tape_param(&t, "E", 2, es, 0, &E);
    lmu_tape_params_alloc(&t);
    rand_f(lmu_tape_data(&t, E), V * D, 1.0);
    rand_f(xv, N * D, 1.0);
    for (i = 0; i < N; i++) tgt[i] = (i * 7) % V;
    lmu_gemm_ws_create(&ws, 1);
    t.gemm_ws = &ws;
    lmu_tape_leaf(&t, xv, 2, xs, 1, &x);
    lmu_tape_input_ids(&t, tgt, 1, xs, &tg);
    LT_CHECK(lmu__tape_ce_tied(&t, x, E, tg, 0, &loss, &losses) == LMU_ERR_STATE && strstr(t.err, "scratch"),
             "a fused op refuses a tape without its scratch: %s", t.err);
    t.scratch_floats = lmu__ce_scratch_floats(N, V, D);
    t.scratch = (float *)malloc(t.scratch_floats * sizeof(float));
    t.nparts = 1;
    LT_CHECK(lmu__tape_ce_tied(&t, x, E, tg, 0, &loss, &losses) == LMU_OK &&
                 t.recs[t.n_recs - 1].op == LMU_OP_CE_TIED &&
                 strcmp(lmu_op_name(LMU_OP_CE_TIED), "cross_entropy_tied") == 0,
             "recorded as the named op cross_entropy_tied: %s", t.err);
    l1 = lmu_tape_data(&t, loss)[0];
    lmu_tape_backward(&t, loss);
    memcpy(dx, lmu_tape_grad(&t, x), sizeof dx);
    memcpy(dE, lmu_tape_grad(&t, E), sizeof dE);
    lmu_tape_zero_grad(&t);
    lmu_tape_matmul(&t, x, E, 0, 1, 1.0f, &logits);
    lmu_tape_cross_entropy(&t, logits, tg, &loss2);
    lmu_tape_backward(&t, loss2);
    for (i = 0; i < N * D; i++) worst = fmax(worst, fabs(dx[i] - lmu_tape_grad(&t, x)[i]));
    for (i = 0; i < V * D; i++) worst = fmax(worst, fabs(dE[i] - lmu_tape_grad(&t, E)[i]));
    LT_CHECK(fabs(l1 - lmu_tape_data(&t, loss2)[0]) < 1e-5 && worst < 1e-5,
             "cross_entropy_tied = matmul + cross_entropy: loss %.6f vs %.6f, grads within %.1e",
             l1, lmu_tape_data(&t, loss2)[0], worst);
    free(t.scratch);
    lmu_gemm_ws_destroy(&ws);
    lmu_tape_free(&t);
}

static void test_custom(void)
{
    static const lmu_tape_custom square = {"square", square_backward};
    enum { N = 4, C = 6 };
    int xs[2] = {N, C}, flat = N * C, x, sq, v, y;
    float xv[N * C];
    size_t i;
    lmu_tape t;
    op_case c;
    lmu_result r;
    memset(&c, 0, sizeof c);
    lmu_tape_init(&t);
    lmu_tape_params_alloc(&t);
    rand_f(xv, sizeof xv / 4, 1.0);
    lmu_tape_leaf(&t, xv, 2, xs, 1, &x);
    r = lmu_tape_custom_op(&t, &square, 1, &x, 2, xs, &sq);
    LT_CHECK(r == LMU_OK, "custom op records: %s", t.err);
    for (i = 0; i < (size_t)(N * C); i++) lmu_tape_data(&t, sq)[i] = xv[i] * xv[i];
    r = lmu_tape_view(&t, sq, 1, &flat, &v);
    LT_CHECK(r == LMU_OK, "view records: %s", t.err);
    lmu_tape_scale(&t, v, 0.5f, &y);
    c.name = "custom(square)+view+scale";
    c.nin = 1;
    c.in[0] = to_d(xv, N * C);
    c.in_n[0] = N * C;
    c.has_grad[0] = 1;
    c.grad[0] = lmu_tape_grad(&t, x);
    c.out_n = N * C;
    c.ref = ref_square_then_scale;
    run_check(&t, &c, y, GRAD_BOUND);
    LT_CHECK(strcmp(lmu_op_name(LMU_OP_CUSTOM), "custom") == 0 &&
                 strcmp(lmu_op_name(LMU_OP_LAYERNORM), "layernorm") == 0 &&
                 strcmp(lmu_op_name(LMU_OP_COUNT), "unknown") == 0,
             "op name table");
    free_case(&c);
    flat = N * C + 1;
    r = lmu_tape_view(&t, sq, 1, &flat, &v);
    LT_CHECK(r == LMU_ERR_SHAPE, "view with another size -> LMU_ERR_SHAPE");
    lmu_tape_free(&t);
}

/* the naive gemm against a double loop, every transpose, alpha/beta */
static void test_gemm(void)
{
    enum { M = 7, N = 9, K = 5 };
    float A[M * K], B[K * N], C[M * N], C0[M * N];
    int ta, tb, i, j, k;
    rand_f(A, M * K, 1);
    rand_f(B, K * N, 1);
    rand_f(C0, M * N, 1);
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++) {
            double err = 0;
            memcpy(C, C0, sizeof C);
            lmu__tape_sgemm(NULL, 0, ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 2.0f, C, N);
            for (i = 0; i < M; i++)
                for (j = 0; j < N; j++) {
                    double s = 0;
                    for (k = 0; k < K; k++)
                        s += (double)(ta ? A[k * M + i] : A[i * K + k]) *
                             (tb ? B[j * K + k] : B[k * N + j]);
                    s = 0.5 * s + 2.0 * C0[i * N + j];
                    if (fabs(s - C[i * N + j]) > err) err = fabs(s - C[i * N + j]);
                }
            LT_CHECK(err < 1e-5, "gemm ta=%d tb=%d alpha/beta: max err %.1e", ta, tb, err);
        }
    for (i = 0; i < M * N; i++) C[i] = NAN;
    lmu__tape_sgemm(NULL, 0, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    LT_CHECK(C[0] == C[0] && C[M * N - 1] == C[M * N - 1], "gemm beta=0 ignores NaN in C");
}

int main(int argc, char **argv)
{
    int a, b;
    lt_begin("test_ops", argc, argv);
    lt_seed(12345);
    test_gemm();
    test_embedding();
    for (a = 0; a < 2; a++)
        for (b = 0; b < 2; b++) test_linear(a, b);
    for (a = 0; a < 2; a++)
        for (b = 0; b < 2; b++) test_matmul(a, b);
    test_add(0);
    test_add(1);
    test_unary("scale", 0);
    test_unary("softmax", 1);
    test_unary("gelu", 2);
    test_unary("layernorm", 3);
    test_cross_entropy();
    test_sum(0);
    test_sum(1);
    test_custom();
    test_fused_op();
    printf("worst gradient rel L2 error over all ops: %.2e (bound %.0e)\n", g_worst_grad, GRAD_BOUND);
    (void)g_worst_fwd;
    return lt_end();
}
