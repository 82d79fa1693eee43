/* Helper of tests/test_model_ref.sh: writes a tiny model, a batch and the C
   loss and gradients (dump), then compares them with what the PyTorch
   reference (tests/lmu_ref.py) computed from the same files (compare).

     model_ref_tool dump KIND DIR       KIND: ffn | attn | rebased | based | conv | transformer |
                                        layers | stack | trrebased | trstack | trwindow |
                                        trbrt | trbrtlstm | trbrtcarry | hier | trhier | hier2
     model_ref_tool compare KIND DIR    prints one line per check
     model_ref_tool init KIND DIR       DIR/init.safetensors: the model as
                                        created, L as iattn_init = delay made it
                                        (q' = 8 there: lags 0, 1, 2, 4, ... 64)
   KIND layers is mixer ffn with a window per layer (theta 6 to theta_last
   100 over 3 layers); KIND stack a layer stack of 3 (mixers attn, ffn,
   ffn; q 12, 20, 12; q' 2, 3, 2; theta 8, 30, 30: layers 0 and 2 differ
   in theta, 1 and 2 in q, so no two share an H). KIND conv is the LMU with
   mixer conv; trrebased the transformer with mixer rebased, trstack the
   transformer with a layer stack of 3 (mixers conv, based, rebased),
   trwindow the transformer with attention window 5, trbrt and trbrtlstm
   a block-recurrent layer below or above windowed attention, trbrtcarry
   two of them starting from a given carried state (truncated backprop:
   the batch file's "carry"), whose states after the last block
   ("carry_out") are compared too. hier and trhier are multi-scale
   stacks (hier_k 5 over LMU layers ffn, attn, ffn; hier_k 3 over
   transformer layers attn | conv, brt | attn); hier2 one of two levels
   (LMU layers ffn | conv | attn | ffn, k 2 then 3).
*/
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "lmu_test.h"

enum { B = 2, T = 24, V = 67 };

static void config_for(lmu_config *c, const char *kind)
{
    memset(c, 0, sizeof *c);
    c->arch = strcmp(kind, "transformer") == 0 || strncmp(kind, "tr", 2) == 0 ? LMU_ARCH_TRANSFORMER
                                                                              : LMU_ARCH_LMU;
    /* FFN is 0, which for the transformer means its default, attn */
    c->mixer = strcmp(kind, "attn") == 0                                       ? LMU_MIXER_ATTN
               : strcmp(kind, "rebased") == 0 || strcmp(kind, "trrebased") == 0 ? LMU_MIXER_REBASED
               : strcmp(kind, "based") == 0                                    ? LMU_MIXER_BASED
               : strcmp(kind, "conv") == 0                                     ? LMU_MIXER_CONV
                                                                               : LMU_MIXER_FFN;
    c->feature_dim = 6;
    c->vocab_size = V;
    c->n_ctx = T;
    c->d_model = 32;
    c->n_layer = 2;
    c->q = 20;
    c->q_prime = 3;
    c->theta = 12.5;
    c->d_pre = 40;
    c->d_ff = 56;
    c->n_head = 2;
    if (strcmp(kind, "layers") == 0) {
        c->n_layer = 3;
        c->theta = 6;
        c->theta_last = 100;
    }
    if (strcmp(kind, "stack") == 0) {
        c->n_layer = 3;
        if (lmu_config_set(c, "mixer", "attn,ffn,ffn", NULL, 0) ||
            lmu_config_set(c, "q", "12,20,12", NULL, 0) ||
            lmu_config_set(c, "q_prime", "2,3,2", NULL, 0) ||
            lmu_config_set(c, "theta", "8,30,30", NULL, 0))
            abort();
    }
    if (strcmp(kind, "trstack") == 0) {
        c->n_layer = 3;
        if (lmu_config_set(c, "mixer", "conv,based,rebased", NULL, 0)) abort();
    }
    if (strcmp(kind, "trwindow") == 0) c->window = 5; /* 24 positions: blocks 0..4, the last cut */
    /* the block-recurrent layer: 5 blocks (the last cut), the state after
       the first four; fixed gates and the state MLP, or LSTM gates without */
    if (strcmp(kind, "trbrt") == 0 &&
        lmu_config_set_items(c, "mixer=brt,attn,window=5,n_state=3,qk_norm=1", NULL, 0))
        abort();
    if (strcmp(kind, "trbrtcarry") == 0 && /* 24 positions: 6 whole blocks */
        lmu_config_set_items(c, "mixer=brt,brt,window=4,n_state=3,qk_norm=1", NULL, 0))
        abort();
    /* the multi-scale stack: k 5 on 24 positions (5 coarse ones, the
       last partly past the end), the coarse layer's window in coarse
       steps; and a transformer with two coarse layers (conv, brt) */
    if (strcmp(kind, "hier") == 0 &&
        lmu_config_set_items(c, "n_layer=3,mixer=ffn,attn,ffn,theta=8,4,30,hier_k=5", NULL, 0))
        abort();
    if (strcmp(kind, "trhier") == 0 &&
        lmu_config_set_items(c, "n_layer=4,mixer=attn,conv,brt,attn,window=2,n_state=2,qk_norm=1,"
                             "hier_k=3,hier_coarse=2", NULL, 0))
        abort();
    if (strcmp(kind, "hier2") == 0 && /* two levels: 12 coarse, 4 coarser positions */
        lmu_config_set_items(c, "n_layer=4,mixer=ffn,conv,attn,ffn,theta=8,4,2,30,hier_k=2,hier_coarse=2,"
                             "hier_k2=3,hier_bottom2=1", NULL, 0))
        abort();
    if (strcmp(kind, "trbrtlstm") == 0 &&
        lmu_config_set_items(c, "mixer=attn,brt,window=4,n_state=2,brt_gate=lstm,brt_skip=1", NULL, 0))
        abort();
}

/* The model as lmu_model_create made it (no jitter): for the reference's
   check of the delay initialisation. */
static int init(const char *kind, const char *dir)
{
    lmu_config c;
    lmu_model *m;
    char err[256], path[512];
    config_for(&c, kind);
    c.iattn_init = LMU_IATTN_INIT_DELAY;
    /* rows enough for the doubling lags (4, 8, ...) and the cap below the
       window (theta 6 and 12.5: 5 and 12) */
    lmu_config_set(&c, "q_prime", strcmp(kind, "stack") == 0 ? "8,10,6" : "8", NULL, 0);
    if (lmu_model_create(&m, &c, 5, err, sizeof err) != LMU_OK) {
        fprintf(stderr, "create: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/init.safetensors", dir);
    if (lmu_model_save(m, path, 0) != LMU_OK) {
        fprintf(stderr, "save: %s\n", m->err);
        return 1;
    }
    lmu_model_free(m);
    return 0;
}

static int dump(const char *kind, const char *dir)
{
    lmu_config c;
    lmu_model *m;
    lmu_rng rng;
    char err[256], path[512];
    int tok[B * (T + 1)], in[B * T], tg[B * T], b, t, i;
    float loss;
    lmu_st_tensor *ts;
    size_t k, np;
    float *g2, *carry = NULL, *carry_out = NULL;
    size_t cf = 0;
    config_for(&c, kind);
    if (lmu_model_create(&m, &c, 99, err, sizeof err) != LMU_OK) {
        fprintf(stderr, "create: %s\n", err);
        return 1;
    }
    /* jitter every parameter so no bias or gain sits at a value that hides
       a wrong gradient (0 or 1) */
    lmu_rng_seed(&rng, 4);
    for (k = 0; k < m->tape.param_size; k++) m->tape.param[k] += 0.05f * lmu_rng_normal(&rng);
    for (b = 0; b < B; b++)
        for (t = 0; t <= T; t++) tok[b * (T + 1) + t] = (int)(lmu_rng_u64(&rng) % V);
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) {
            in[b * T + t] = tok[b * (T + 1) + t];
            tg[b * T + t] = tok[b * (T + 1) + t + 1];
        }
    if (strcmp(kind, "trbrtcarry") == 0) {
        cf = lmu_model_carry_floats(m);
        carry = (float *)malloc(B * cf * sizeof(float));
        carry_out = (float *)malloc(B * cf * sizeof(float));
        for (k = 0; k < B * cf; k++) carry[k] = lmu_rng_normal(&rng);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (lmu_model_save(m, path, 0) != LMU_OK) {
        fprintf(stderr, "save: %s\n", m->err);
        return 1;
    }
    {
        lmu_st_tensor bt[2];
        memset(bt, 0, sizeof bt);
        bt[0].name = "tokens";
        bt[0].dtype = LMU_ST_I32;
        bt[0].ndim = 2;
        bt[0].shape[0] = B;
        bt[0].shape[1] = T + 1;
        bt[0].data = tok;
        bt[1].name = "carry";
        bt[1].dtype = LMU_ST_F32;
        bt[1].ndim = 2;
        bt[1].shape[0] = B;
        bt[1].shape[1] = cf;
        bt[1].data = carry;
        snprintf(path, sizeof path, "%s/batch.safetensors", dir);
        if (lmu_st_save_file(path, bt, carry ? 2 : 1, NULL, 0, err, sizeof err) != LMU_OK) {
            fprintf(stderr, "batch: %s\n", err);
            return 1;
        }
    }
    if (lmu_model_forward_carry(m, in, tg, B, T, carry, NULL, &loss) != LMU_OK ||
        lmu_model_backward(m) != LMU_OK) {
        fprintf(stderr, "forward/backward: %s\n", m->err);
        return 1;
    }
    /* the training call's gradients too (the loss layer's come from its
       forward there): "grad2.*", checked against the same reference */
    g2 = (float *)malloc(m->tape.param_size * sizeof(float));
    memcpy(g2, m->tape.param_grad, m->tape.param_size * sizeof(float));
    if (lmu_model_forward_backward_carry(m, in, tg, B, T, carry, carry_out, &loss) != LMU_OK) {
        fprintf(stderr, "forward_backward: %s\n", m->err);
        return 1;
    }
    np = (size_t)m->tape.n_params;
    ts = (lmu_st_tensor *)calloc(2 * np + 2, sizeof *ts);
    {
        static char names[512][80];
        double lossd = loss;
        for (k = 0; k < 2 * np; k++) {
            const lmu_tensor *x = &m->tape.tensors[k % np];
            snprintf(names[k], sizeof names[k], "%s.%s", k < np ? "grad" : "grad2", x->name);
            ts[k].name = names[k];
            ts[k].dtype = LMU_ST_F32;
            ts[k].ndim = x->ndim;
            for (i = 0; i < x->ndim; i++) ts[k].shape[i] = (size_t)x->shape[i];
            ts[k].data = k < np ? g2 + x->off : lmu_tape_grad(&m->tape, (int)(k - np));
        }
        ts[2 * np].name = "loss";
        ts[2 * np].dtype = LMU_ST_F64;
        ts[2 * np].ndim = 1;
        ts[2 * np].shape[0] = 1;
        ts[2 * np].data = &lossd;
        ts[2 * np + 1].name = "carry_out";
        ts[2 * np + 1].dtype = LMU_ST_F32;
        ts[2 * np + 1].ndim = 2;
        ts[2 * np + 1].shape[0] = B;
        ts[2 * np + 1].shape[1] = cf;
        ts[2 * np + 1].data = carry_out;
        snprintf(path, sizeof path, "%s/c.safetensors", dir);
        if (lmu_st_save_file(path, ts, 2 * np + (carry ? 2 : 1), NULL, 0, err, sizeof err) != LMU_OK) {
            fprintf(stderr, "grads: %s\n", err);
            return 1;
        }
    }
    free(ts);
    free(g2);
    free(carry);
    free(carry_out);
    lmu_model_free(m);
    return 0;
}

static int compare(const char *kind, const char *dir, int argc, char **argv)
{
    lmu_st_file c, r;
    char err[256], path[512], name[64];
    size_t k;
    double lc, lr, worst = 0;
    const char *worst_name = "";
    lt_begin("test_model_ref", argc, argv);
    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    if (lmu_st_load_file(&c, path, err, sizeof err) != LMU_OK) {
        printf("  FAIL %s: %s\n", kind, err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    if (lmu_st_load_file(&r, path, err, sizeof err) != LMU_OK) {
        printf("  FAIL %s: %s\n", kind, err);
        return 1;
    }
    lmu_st_read(&c, "loss", LMU_ST_F64, (size_t[]){1}, 1, &lc, NULL, 0);
    lmu_st_read(&r, "loss", LMU_ST_F64, (size_t[]){1}, 1, &lr, NULL, 0);
    LT_CHECK(fabs(lc - lr) <= 1e-5 * fabs(lr), "%s: loss C %.9f vs PyTorch float64 %.9f (rel %.2g, bound 1e-5)",
             kind, lc, lr, fabs(lc - lr) / fabs(lr));
    if (lmu_st_find(&c, "carry_out")) { /* truncated backprop: the states passed on */
        const lmu_st_tensor *tc = lmu_st_find(&c, "carry_out");
        size_t n = tc->nbytes / 4, e;
        float *a = (float *)malloc(n * 4), *bb = (float *)malloc(n * 4);
        double num = 0, den = 0;
        lmu_st_read_f32(&c, "carry_out", tc->shape, tc->ndim, a, NULL, 0);
        if (lmu_st_read_f32(&r, "carry_out", tc->shape, tc->ndim, bb, err, sizeof err) != LMU_OK)
            LT_CHECK(0, "%s: reference carry_out: %s", kind, err);
        else {
            for (e = 0; e < n; e++) {
                num += ((double)a[e] - bb[e]) * ((double)a[e] - bb[e]);
                den += (double)bb[e] * bb[e];
            }
            LT_CHECK(den > 0 && sqrt(num / den) <= 1e-5,
                     "%s: the states after the last block match (rel L2 %.2g, bound 1e-5)", kind,
                     sqrt(num / (den > 0 ? den : 1)));
        }
        free(a), free(bb);
    }
    for (k = 0; k < c.n_tensors; k++) {
        const lmu_st_tensor *tc = &c.tensors[k], *tr;
        size_t n, e;
        float *a, *bb;
        double num = 0, den = 0, rel;
        int two = strncmp(tc->name, "grad2.", 6) == 0;
        const char *pname = tc->name + (two ? 6 : 5);
        char rname[96];
        if (!two && strncmp(tc->name, "grad.", 5) != 0) continue;
        snprintf(rname, sizeof rname, "grad.%s", pname);
        tr = lmu_st_find(&r, rname);
        if (!tr) {
            LT_CHECK(0, "%s: reference has no %s", kind, tc->name);
            continue;
        }
        n = tc->nbytes / 4;
        a = (float *)malloc(n * 4);
        bb = (float *)malloc(n * 4);
        lmu_st_read_f32(&c, tc->name, tc->shape, tc->ndim, a, NULL, 0);
        if (lmu_st_read_f32(&r, rname, tc->shape, tc->ndim, bb, err, sizeof err) != LMU_OK) {
            LT_CHECK(0, "%s: %s", kind, err);
            free(a), free(bb);
            continue;
        }
        for (e = 0; e < n; e++) {
            num += ((double)a[e] - bb[e]) * ((double)a[e] - bb[e]);
            den += (double)bb[e] * bb[e];
        }
        rel = den > 0 ? sqrt(num / den) : sqrt(num);
        snprintf(name, sizeof name, "%s", pname);
        if (rel > worst) worst = rel, worst_name = tc->name;
        if (lmu_st_find(&c, "carry_out") && strstr(pname, "state0")) /* unused when carried */
            LT_CHECK(num == 0 && den == 0, "%s: d loss / d %s is 0 on both sides%s (C's rms %.2g)",
                     kind, name, two ? " (forward_backward)" : "", sqrt(num / (double)n));
        else
            LT_CHECK(rel <= 1e-3 && den > 0, "%s: d loss / d %s matches%s (rel L2 %.2g, bound 1e-3)",
                     kind, name, two ? " (forward_backward)" : "", rel);
        free(a), free(bb);
    }
    printf("  %s: worst gradient %s, rel L2 %.2g\n", kind, worst_name, worst);
    lmu_st_close(&c);
    lmu_st_close(&r);
    return lt_end();
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "dump") == 0) return dump(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "compare") == 0) return compare(argv[2], argv[3], argc - 3, argv + 3);
    if (argc >= 4 && strcmp(argv[1], "init") == 0) return init(argv[2], argv[3]);
    fprintf(stderr, "usage: model_ref_tool dump|compare|init "
                    "ffn|attn|rebased|based|conv|transformer|layers|stack|trrebased|trstack|trwindow DIR\n");
    return 2;
}
