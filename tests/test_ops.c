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

/* ===================================================================== */
/* qk_norm: q, k per head to unit length, q times |scale_h| mult           */
static void ref_qknorm(const op_case *c, double *out)
{
    const int N = c->d[0], C = c->d[1], d = c->d[2], H = c->d[3], dh = d / H;
    int n, g, h, k;
    for (n = 0; n < N; n++)
        for (g = 0; g < C / d; g++)
            for (h = 0; h < H; h++) {
                const double *x = c->in[0] + n * C + g * d + h * dh;
                double ss = 0, m = g == 0 ? fabs(c->in[1][h]) * c->dp[0] : 1;
                for (k = 0; k < dh; k++) ss += x[k] * x[k];
                for (k = 0; k < dh; k++)
                    out[n * C + g * d + h * dh + k] = g == 2 ? x[k] : x[k] * m / sqrt(ss + 1e-6);
            }
}

static void test_qknorm(int C3)
{
    enum { N = 5, d = 6, H = 2 };
    const int C = C3 ? 3 * d : d;
    lmu_tape t;
    op_case c;
    int ids[1], shape[2] = {N, C}, x, y;
    const char *names[1] = {"scale"};
    int ndims[1] = {1}, shapes[1][4] = {{H}};
    tape_with_params(&t, 1, names, ndims, shapes, ids);
    lmu_tape_data(&t, ids[0])[0] = 1.7f, lmu_tape_data(&t, ids[0])[1] = -0.6f; /* |.| of either sign */
    lmu_tape_leaf(&t, NULL, 2, shape, 1, &x);
    rand_f(lmu_tape_data(&t, x), (size_t)N * C, 1.0);
    LT_CHECK(lmu__tape_qknorm(&t, x, ids[0], d, H, 1.3f, &y) == LMU_OK, "qk_norm records: %s", t.err);
    memset(&c, 0, sizeof c);
    c.name = C3 ? "qk_norm (q, k, v)" : "qk_norm (q)";
    c.nin = 2, c.out_n = (size_t)N * C, c.ref = ref_qknorm;
    c.d[0] = N, c.d[1] = C, c.d[2] = d, c.d[3] = H, c.dp[0] = 1.3;
    c.in[0] = to_d(lmu_tape_data(&t, x), (size_t)N * C), c.in_n[0] = (size_t)N * C;
    c.in[1] = to_d(lmu_tape_data(&t, ids[0]), H), c.in_n[1] = H;
    c.has_grad[0] = c.has_grad[1] = 1;
    c.grad[0] = lmu_tape_grad(&t, x), c.grad[1] = lmu_tape_grad(&t, ids[0]);
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    lmu_tape_free(&t);
}

/* block_cross_attention: tokens of block g attend to block g's G rows   */
static void ref_block_xattn(const op_case *c, double *out)
{
    const int B = c->d[0], T = c->d[1], d = c->d[2], H = c->d[3], W = c->d[4], G = c->d[5];
    const int nb = (T + W - 1) / W, dh = d / H;
    int b, t, h, j, k;
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++)
            for (h = 0; h < H; h++) {
                const double *q = c->in[0] + (b * T + t) * d + h * dh;
                const double *kv = c->in[1] + ((size_t)(b * nb + t / W) * G) * 2 * d;
                double s[16], mx = -1e300, sum = 0;
                for (j = 0; j < G; j++) {
                    for (s[j] = 0, k = 0; k < dh; k++) s[j] += q[k] * kv[j * 2 * d + h * dh + k];
                    if (s[j] > mx) mx = s[j];
                }
                for (j = 0; j < G; j++) sum += (s[j] = exp(s[j] - mx));
                for (k = 0; k < dh; k++) {
                    double o = 0;
                    for (j = 0; j < G; j++) o += s[j] / sum * kv[j * 2 * d + d + h * dh + k];
                    out[(b * T + t) * d + h * dh + k] = o;
                }
            }
}

static void test_block_xattn(void)
{
    enum { B = 2, T = 7, d = 4, H = 2, W = 3, G = 5, NB = (T + W - 1) / W };
    lmu_tape t;
    op_case c;
    int qs[3] = {B, T, d}, ks[4] = {B, NB, G, 2 * d}, q, kv, y;
    lmu_gemm_ws ws;
    tape_with_params(&t, 0, NULL, NULL, NULL, NULL);
    lmu_gemm_ws_create(&ws, 0);
    t.gemm_ws = &ws;
    lmu_tape_leaf(&t, NULL, 3, qs, 1, &q);
    lmu_tape_leaf(&t, NULL, 4, ks, 1, &kv);
    rand_f(lmu_tape_data(&t, q), (size_t)B * T * d, 2.0);
    rand_f(lmu_tape_data(&t, kv), (size_t)B * NB * G * 2 * d, 1.0);
    LT_CHECK(lmu__tape_block_xattn(&t, q, kv, H, W, &y) == LMU_OK, "block_xattn records: %s", t.err);
    memset(&c, 0, sizeof c);
    c.name = "block_cross_attention (last block short)";
    c.nin = 2, c.out_n = (size_t)B * T * d, c.ref = ref_block_xattn;
    c.d[0] = B, c.d[1] = T, c.d[2] = d, c.d[3] = H, c.d[4] = W, c.d[5] = G;
    c.in[0] = to_d(lmu_tape_data(&t, q), (size_t)B * T * d), c.in_n[0] = (size_t)B * T * d;
    c.in[1] = to_d(lmu_tape_data(&t, kv), (size_t)B * NB * G * 2 * d);
    c.in_n[1] = (size_t)B * NB * G * 2 * d;
    c.has_grad[0] = c.has_grad[1] = 1;
    c.grad[0] = lmu_tape_grad(&t, q), c.grad[1] = lmu_tape_grad(&t, kv);
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    lmu_tape_free(&t);
    lmu_gemm_ws_destroy(&ws);
}

/* block_recurrent_state: the recurrence over blocks, its own double
   forward below (written from the math of >>mixer-brt, not the C), the
   gradient of every weight and of the tokens' k, v through all blocks. */
typedef struct brt_ref {
    const lmu_model *m;
    const double *P;   /* the model's parameters, double */
    const double *x;   /* tokens' qkv (B, T, 3 d) */
    int B, T;
    double *out;       /* (B, nblk, S, 2 d) */
    const double *R;
    const double *s_in; /* (B, S, d) the first states, NULL: state0 */
    double *s_out;      /* (B, S, d) the states after the last block, or NULL */
} brt_ref;

static const double *brt_w(const brt_ref *r, int id)
{
    return id < 0 ? NULL : r->P + r->m->tape.tensors[id].off;
}

static double sig_d(double x) { return 1 / (1 + exp(-x)); }

static void ln_d(double *y, const double *x, const double *g, const double *b, int d)
{
    double m = 0, v = 0;
    int k;
    for (k = 0; k < d; k++) m += x[k] / d;
    for (k = 0; k < d; k++) v += (x[k] - m) * (x[k] - m) / d;
    for (k = 0; k < d; k++) y[k] = (x[k] - m) / sqrt(v + 1e-5) * g[k] + b[k];
}

/* y (M) = W (M, K) x (+ b) */
static void mv_d(double *y, const double *W, const double *x, const double *b, int M, int K)
{
    int i, k;
    for (i = 0; i < M; i++) {
        double s = b ? b[i] : 0;
        for (k = 0; k < K; k++) s += W[i * K + k] * x[k];
        y[i] = s;
    }
}

/* unit length per head, times |scale_h| when scale is given */
static void norm_d(double *x, const double *scale, int d, int H)
{
    int h, k, dh = d / H;
    for (h = 0; h < H; h++) {
        double ss = 0;
        for (k = 0; k < dh; k++) ss += x[h * dh + k] * x[h * dh + k];
        for (k = 0; k < dh; k++) x[h * dh + k] *= (scale ? fabs(scale[h]) : 1) / sqrt(ss + 1e-6);
    }
}

/* o (d) = attention of query q over n keys at k[j ldk], values v[j ldv] */
static void att_d(double *o, const double *q, const double *k, const double *v, int ldk, int n,
                  int d, int H)
{
    int h, j, c, dh = d / H;
    for (h = 0; h < H; h++) {
        double mx = -1e300, sum = 0, s;
        for (j = 0; j < n; j++) {
            for (s = 0, c = 0; c < dh; c++) s += q[h * dh + c] * k[j * ldk + h * dh + c];
            if (s > mx) mx = s;
        }
        for (c = 0; c < dh; c++) o[h * dh + c] = 0;
        for (j = 0; j < n; j++) {
            for (s = 0, c = 0; c < dh; c++) s += q[h * dh + c] * k[j * ldk + h * dh + c];
            s = exp(s - mx);
            sum += s;
            for (c = 0; c < dh; c++) o[h * dh + c] += s * v[j * ldk + h * dh + c];
        }
        for (c = 0; c < dh; c++) o[h * dh + c] /= sum;
    }
}

/* s (d) = gate(s, y; hidden a of width na), fixed (gb) or lstm */
static void gate_d(double *s, const double *y, const double *a, int na, const double *gb,
                   const double *fw, const double *fb, const double *iw, const double *ib, int d)
{
    double f[64], in[64];
    int c;
    if (gb) {
        for (c = 0; c < d; c++) s[c] = s[c] * sig_d(gb[c]) + y[c] * (1 - sig_d(gb[c]));
        return;
    }
    mv_d(f, fw, a, fb, d, na);
    mv_d(in, iw, a, ib, d, na);
    for (c = 0; c < d; c++) s[c] = s[c] * sig_d(f[c] + 1) + y[c] * sig_d(in[c] - 1);
}

static void brt_ref_forward(const brt_ref *r)
{
    const lmu_config *c = &r->m->cfg;
    const lmu_layer_ids *L = &r->m->layer[0];
    const int d = c->d_model, H = c->n_head, S = c->n_state, W = c->window, F = c->d_ff;
    const int nb = (r->T + W - 1) / W;
    enum { MX = 64 };
    double s[8][MX], u[MX], q[8][MX], k[8][MX], v[8][MX], q2[8][MX], cat[MX], y[MX], hid[MX], z[MX];
    int b, g, i, j, e;
    for (b = 0; b < r->B; b++) {
        for (i = 0; i < S; i++)
            memcpy(s[i], r->s_in ? r->s_in + ((size_t)b * S + i) * d : brt_w(r, L->brt_s0) + i * d,
                   d * sizeof(double));
        for (g = 0; g < nb; g++) {
            int k0 = g > 0 ? (g - 1) * W : 0, k1 = (g + 1) * W < r->T ? (g + 1) * W : r->T;
            double qkv[3 * MX];
            for (i = 0; i < S; i++) {
                ln_d(u, s[i], brt_w(r, L->brt_ln_s_w), brt_w(r, L->brt_ln_s_b), d);
                for (e = 0; e < d; e++) u[e] += brt_w(r, L->brt_spos)[i * d + e];
                mv_d(qkv, brt_w(r, L->brt_sqkv_w), u, NULL, 3 * d, d);
                memcpy(q[i], qkv, d * sizeof(double));
                memcpy(k[i], qkv + d, d * sizeof(double));
                memcpy(v[i], qkv + 2 * d, d * sizeof(double));
                norm_d(q[i], brt_w(r, L->brt_s_scale), d, H);
                norm_d(k[i], NULL, d, H);
                mv_d(q2[i], brt_w(r, L->brt_sq2_w), u, NULL, d, d);
                norm_d(q2[i], brt_w(r, L->brt_s_scale2), d, H);
                for (e = 0; e < d; e++) {
                    r->out[(((size_t)b * nb + g) * S + i) * 2 * d + e] = k[i][e];
                    r->out[(((size_t)b * nb + g) * S + i) * 2 * d + d + e] = v[i][e];
                }
            }
            if (g + 1 == nb && !r->s_out) break;
            for (i = 0; i < S; i++) {
                double kk[8 * MX], vv[8 * MX];
                const double *tk = r->x + ((size_t)b * r->T + k0) * 3 * d;
                for (j = 0; j < S; j++)
                    memcpy(kk + j * d, k[j], d * sizeof(double)), memcpy(vv + j * d, v[j], d * sizeof(double));
                att_d(cat, q[i], kk, vv, d, S, d, H);
                att_d(cat + d, q2[i], tk + d, tk + 2 * d, 3 * d, k1 - k0, d, H);
                mv_d(y, brt_w(r, L->brt_sproj_w), cat, brt_w(r, L->brt_sproj_b), d, 2 * d);
                gate_d(s[i], y, cat, 2 * d, brt_w(r, L->brt_g_b), brt_w(r, L->brt_gf_w),
                       brt_w(r, L->brt_gf_b), brt_w(r, L->brt_gi_w), brt_w(r, L->brt_gi_b), d);
                if (c->brt_skip) continue;
                ln_d(u, s[i], brt_w(r, L->brt_ln_f_w), brt_w(r, L->brt_ln_f_b), d);
                mv_d(hid, brt_w(r, L->brt_fc_w), u, brt_w(r, L->brt_fc_b), F, d);
                for (e = 0; e < F; e++) hid[e] = 0.5 * hid[e] * (1 + tanh(0.7978845608028654 * (hid[e] + 0.044715 * hid[e] * hid[e] * hid[e])));
                mv_d(z, brt_w(r, L->brt_fcp_w), hid, brt_w(r, L->brt_fcp_b), d, F);
                gate_d(s[i], z, hid, F, brt_w(r, L->brt_g2_b), brt_w(r, L->brt_g2f_w),
                       brt_w(r, L->brt_g2f_b), brt_w(r, L->brt_g2i_w), brt_w(r, L->brt_g2i_b), d);
            }
        }
        if (r->s_out)
            for (i = 0; i < S; i++) memcpy(r->s_out + ((size_t)b * S + i) * d, s[i], d * sizeof(double));
    }
}

static double brt_ref_loss(void *ctx)
{
    const brt_ref *r = (const brt_ref *)ctx;
    const lmu_config *c = &r->m->cfg;
    size_t i, n = (size_t)r->B * ((r->T + c->window - 1) / c->window) * c->n_state * 2 * c->d_model;
    double s = 0;
    brt_ref_forward(r);
    for (i = 0; i < n; i++) s += r->out[i] * r->R[i];
    return s;
}

/* carry: the segment starts from given states (no grad reaches them or
   state0) and returns the states after its last block */
static void test_brt_state(int lstm, int skip, int carry)
{
    enum { B = 2, d = 8, H = 2 };
    const int T = carry ? 12 : 11;
    lmu_config c;
    lmu_model *m;
    lmu_tape *t;
    brt_ref rf;
    char err[256], name[96];
    int xs[3] = {B, T, 3 * d}, x, y, nb;
    size_t i, n_out, n_st;
    double *P, *X, *R, e1, e2, ef, es = 0, *sin_d = NULL, *sout_d;
    float *seed, *s_in = NULL, *s_out = NULL;
    memset(&c, 0, sizeof c);
    c.arch = LMU_ARCH_TRANSFORMER, c.mixer = LMU_MIXER_BRT, c.vocab_size = 5, c.n_ctx = T;
    c.d_model = d, c.n_layer = 1, c.n_head = H, c.d_ff = 5, c.window = 4, c.n_state = 3;
    c.brt_gate = lstm ? LMU_BRT_GATE_LSTM : LMU_BRT_GATE_FIXED, c.brt_skip = skip;
    snprintf(name, sizeof name, "brt_state gate %s%s, 3 blocks (%s)", lmu_brt_gate_name(c.brt_gate),
             skip ? ", no state MLP" : "", carry ? "carried state in and out" : "the last short");
    if (lmu_model_create(&m, &c, 3, err, sizeof err) != LMU_OK) {
        LT_CHECK(0, "%s: create: %s", name, err);
        return;
    }
    t = &m->tape;
    for (i = 0; i < t->param_size; i++) t->param[i] += (float)(0.3 * lt_uniform()); /* off the init */
    nb = (T + c.window - 1) / c.window;
    n_out = (size_t)B * nb * c.n_state * 2 * d;
    lmu_tape_leaf(t, NULL, 3, xs, 1, &x);
    rand_f(lmu_tape_data(t, x), (size_t)B * T * 3 * d, 1.0);
    n_st = (size_t)B * c.n_state * d;
    if (carry) {
        s_in = (float *)malloc(n_st * sizeof(float)), s_out = (float *)malloc(n_st * sizeof(float));
        rand_f(s_in, n_st, 1.0);
        sin_d = to_d(s_in, n_st);
    }
    LT_CHECK(lmu__tape_brt_state(t, x, &m->layer[0], &m->cfg, s_in, s_out, (size_t)c.n_state * d,
                                 &y) == LMU_OK,
             "%s records: %s", name, t->err);
    R = rand_R(n_out);
    seed = seed_of(R, n_out);
    lmu_tape_zero_grad(t);
    LT_CHECK(lmu_tape_backward_seed(t, y, seed) == LMU_OK, "%s backward: %s", name, t->err);
    P = to_d(t->param, t->param_size);
    X = to_d(lmu_tape_data(t, x), (size_t)B * T * 3 * d);
    rf.m = m, rf.P = P, rf.x = X, rf.B = B, rf.T = T, rf.out = dalloc(n_out), rf.R = R;
    rf.s_in = sin_d, rf.s_out = sout_d = carry ? dalloc(n_st) : NULL;
    brt_ref_forward(&rf);
    {
        double *yd = to_d(lmu_tape_data(t, y), n_out);
        ef = rel_l2(yd, rf.out, n_out);
        free(yd);
        if (carry) {
            double *sd = to_d(s_out, n_st);
            es = rel_l2(sd, rf.s_out, n_st);
            free(sd);
        }
    }
    rf.s_out = NULL; /* the loss reads out only: no grad flows through the carry */
    e1 = lt_fd_check(brt_ref_loss, &rf, P, t->param_size, LT_FD_H, t->param_grad, 0.0f, NULL);
    e2 = lt_fd_check(brt_ref_loss, &rf, X, (size_t)B * T * 3 * d, LT_FD_H, lmu_tape_grad(t, x), 0.0f,
                     NULL);
    note(e1), note(e2);
    LT_CHECK(ef < FWD_BOUND, "%s forward: rel L2 %.2e", name, ef);
    LT_CHECK(e1 < GRAD_BOUND, "%s: every weight's grad, rel L2 %.2e", name, e1);
    LT_CHECK(e2 < GRAD_BOUND, "%s: the tokens' grad, rel L2 %.2e", name, e2);
    if (carry) {
        const float *g0 = lmu_tape_grad(t, m->layer[0].brt_s0);
        double mx = 0;
        for (i = 0; i < (size_t)c.n_state * d; i++) mx = fmax(mx, fabs((double)g0[i]));
        LT_CHECK(es < FWD_BOUND, "%s: the state after the last block, rel L2 %.2e", name, es);
        LT_CHECK(mx == 0, "%s: state0 unused, its grad is 0 (max |g| %.2e)", name, mx);
    }
    free(P), free(X), free(R), free(seed), free(rf.out), free(sin_d), free(sout_d), free(s_in), free(s_out);
    lmu_model_free(m);
}


/* causal_pool and unpool_add (the multi-scale stack): y_j = (1/k) sum_i
   x_{jk+i-shift}, and x + y repeated k times. T = 7 is not a multiple of
   k = 3, so the last coarse position is partly past the end. */
static void ref_pool(const op_case *c, double *out)
{
    const int B = c->d[0], T = c->d[1], C = c->d[2], k = c->d[3], s = c->d[4], Tc = (T + k - 1) / k;
    int b, j, i, ch;
    for (b = 0; b < B; b++)
        for (j = 0; j < Tc; j++)
            for (ch = 0; ch < C; ch++) {
                double a = 0;
                for (i = 0; i < k; i++) {
                    int src = j * k + i - s;
                    if (src >= 0 && src < T) a += c->in[0][(b * T + src) * C + ch];
                }
                out[(b * Tc + j) * C + ch] = a / k;
            }
}

static void ref_unpool_add(const op_case *c, double *out)
{
    const int B = c->d[0], T = c->d[1], C = c->d[2], k = c->d[3], Tc = (T + k - 1) / k;
    int b, t, ch;
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++)
            for (ch = 0; ch < C; ch++)
                out[(b * T + t) * C + ch] =
                    c->in[0][(b * T + t) * C + ch] + c->in[1][(b * Tc + t / k) * C + ch];
}

static void test_pool(int unpool, int shift)
{
    enum { B = 2, T = 7, C = 3, K = 3, TC = (T + K - 1) / K };
    lmu_tape t;
    op_case c;
    int xs[3] = {B, T, C}, ys[3] = {B, TC, C}, x, u = -1, y, bad;
    tape_with_params(&t, 0, NULL, NULL, NULL, NULL);
    lmu_tape_leaf(&t, NULL, 3, xs, 1, &x);
    rand_f(lmu_tape_data(&t, x), (size_t)B * T * C, 1.0);
    memset(&c, 0, sizeof c);
    c.d[0] = B, c.d[1] = T, c.d[2] = C, c.d[3] = K, c.d[4] = shift;
    c.in[0] = to_d(lmu_tape_data(&t, x), (size_t)B * T * C), c.in_n[0] = (size_t)B * T * C;
    c.has_grad[0] = 1;
    if (unpool) {
        lmu_tape_leaf(&t, NULL, 3, ys, 1, &u);
        rand_f(lmu_tape_data(&t, u), (size_t)B * TC * C, 1.0);
        LT_CHECK(lmu__tape_unpool_add(&t, x, u, K, &y) == LMU_OK, "unpool_add records: %s", t.err);
        LT_CHECK(lmu__tape_unpool_add(&t, x, x, K, &bad) == LMU_ERR_SHAPE,
                 "unpool_add: a coarse input of the wrong length is refused");
        c.name = "unpool_add (T 7, k 3)";
        c.nin = 2, c.out_n = (size_t)B * T * C, c.ref = ref_unpool_add;
        c.in[1] = to_d(lmu_tape_data(&t, u), (size_t)B * TC * C), c.in_n[1] = (size_t)B * TC * C;
        c.has_grad[1] = 1;
        c.grad[1] = lmu_tape_grad(&t, u);
    } else {
        LT_CHECK(lmu__tape_pool(&t, x, K, shift, &y) == LMU_OK, "causal_pool records: %s", t.err);
        LT_CHECK(lmu__tape_pool(&t, x, K, K, &bad) == LMU_ERR_SHAPE, "causal_pool: shift k refused");
        c.name = shift ? "causal_pool (T 7, k 3, shift 2)" : "causal_pool (T 7, k 3, shift 0)";
        c.nin = 1, c.out_n = (size_t)B * TC * C, c.ref = ref_pool;
    }
    c.grad[0] = lmu_tape_grad(&t, x);
    run_check(&t, &c, y, GRAD_BOUND);
    free_case(&c);
    lmu_tape_free(&t);
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
    test_qknorm(0);
    test_qknorm(1);
    test_block_xattn();
    for (a = 0; a < 2; a++)
        for (b = 0; b < 2; b++) test_brt_state(a, b, 0);
    test_brt_state(0, 0, 1);
    test_brt_state(1, 0, 1);
    test_pool(0, 2);
    test_pool(0, 0);
    test_pool(1, 0);
    printf("worst gradient rel L2 error over all ops: %.2e (bound %.0e)\n", g_worst_grad, GRAD_BOUND);
    (void)g_worst_fwd;
    return lt_end();
}
