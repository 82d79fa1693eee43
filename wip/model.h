/* >>decl-begin model */
#ifndef LMU_PART_MODEL_H
#define LMU_PART_MODEL_H
#ifdef __cplusplus
extern "C" {
#endif

/* ====================================================================== */
/* >>model                                                                 */
/* ====================================================================== */
/*
   THE LANGUAGE MODELS (MODEL.md sections 3 and 6)

       lmu_config c;  lmu_model *m;  float loss;
       lmu_config_preset(&c, "lmu-55k");
       lmu_model_create(&m, &c, 1234, err, sizeof err);
       for (step = 0; step < steps; step++) {
           lmu_model_forward(m, tokens, targets, B, T, &loss);  // (B, T) ids
           lmu_model_backward(m);
           lmu_model_step(m, lmu_lr_schedule(step, warm, steps, 1e-3f), 1.0f, NULL);
       }
       lmu_model_save(m, "model.safetensors", 1);
       lmu_model_free(m);

   The training path is the parallel one: the LMU memory is an FFT
   convolution over the whole sequence. Generation (>>generate) runs the
   same model as a recurrence with constant memory per token.

   Parameters are tape tensors named as in MODEL.md section 7, so the
   checkpoint names, lmu_tape_find() and the tests all use one naming.
   Every call returns lmu_result; m->err holds the detail of the last error.
*/

/* Tensor ids of one layer's parameters; -1 where the layer has none. */
typedef struct lmu_layer_ids {
    int ln_a_w, ln_a_b, ln_b_w, ln_b_b, ln_c_w, ln_c_b;
    int pre_fc_w, pre_fc_b, pre_proj_w, pre_proj_b; /* mixer ffn   */
    int qkv_w, qkv_b, attn_proj_w, attn_proj_b;     /* mixer attn, transformer */
    int lmu_L, lmu_b, lmu_p;                        /* implicit attention */
    int fc_w, fc_b, fc_proj_w, fc_proj_b;           /* post-FFN / MLP */
} lmu_layer_ids;

struct lmu_model;

/* A fused kernel wrapped as a tape op: the record's aux points here, and
   from here to the model that owns the FFT plan, spectra and scratch. */
typedef struct lmu__model_op {
    lmu_tape_custom base;
    struct lmu_model *model;
} lmu__model_op;

typedef struct lmu_model {
    lmu_config cfg;           /* resolved */
    lmu_tape tape;            /* parameters and the step's activations */
    lmu_adam adam;            /* optimizer state, same offsets as the params */
    lmu_gemm_ws gemm;         /* packing buffers for every matrix product */
    lmu_lti *lti;             /* LMU memory shared by every layer; NULL for
                                 the transformer */
    int wte, wpe, ln_f_w, ln_f_b; /* wpe: transformer only, else -1 */
    lmu_layer_ids *layer;     /* (n_layer) */
    float *scratch;           /* (scratch_cap) kernel scratch of one op */
    size_t scratch_cap;
    int *pos;                 /* (pos_cap) position ids for wpe */
    size_t pos_cap;
    int nparts;               /* parallel parts the kernels split into */
    int B, T;                 /* shape of the last forward */
    int loss;                 /* id of the last forward's loss, -1 none */
    int losses;               /* id of its per-position losses (B*T) */
    int backward_done;        /* grads of the last forward are in place */
    uint64_t data_pos;        /* the caller's place in its data, saved with
                                 the optimizer state so a resume continues */
    lmu__model_op op_ce, op_mha, op_conv, op_isa;
    char err[256];
} lmu_model;

/* Creates a model with freshly initialised parameters.
   [out] out   the model (NULL on failure)
   [in]  cfg   resolved or not: it is resolved here (zero fields = defaults)
   [in]  seed  initialisation seed
   [out, optional] err  one-line reason on failure
   Init: embeddings and linear weights N(0, 0.02); output projections of a
   residual branch (ffn_pre.proj, attn.proj, ffn_post.proj) and the
   implicit attention's p scaled by 1/sqrt(2 n_layer) as GPT-2 does; L
   N(0, 1/sqrt(q)) so L m keeps the memory's scale; biases 0; LayerNorm
   gains 1. wpe N(0, 0.01).
   Returns LMU_OK, LMU_ERR_ARG (bad config), LMU_ERR_NOMEM, LMU_ERR_RANGE
   (the LMU memory cannot be built for this q, theta, n_ctx). */
LMUDEF lmu_result lmu_model_create(lmu_model **out, const lmu_config *cfg, uint64_t seed,
                                   char *err, size_t errcap);
LMUDEF void lmu_model_free(lmu_model *m);

/* Forward pass and mean next-token loss (nats) on B sequences of T tokens.
   [in] tokens   (B, T) ids in 0..V-1
   [in] targets  (B, T) next-token ids in 0..V-1
   [in] B, T     1 <= T <= n_ctx
   [out, optional] loss
   The first call with a new (B, T) plans memory; later calls with the same
   or smaller shapes allocate nothing.
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_RANGE (an id out of range),
   LMU_ERR_SHAPE (T > n_ctx), LMU_ERR_NOMEM, LMU_ERR_NONFINITE (the loss
   is NaN or Inf: report it and skip the step). */
LMUDEF lmu_result lmu_model_forward(lmu_model *m, const int *tokens, const int *targets, int B,
                                    int T, float *loss);

/* Per-position losses of the last forward, (B, T) floats in nats, or NULL. */
LMUDEF const float *lmu_model_position_losses(lmu_model *m);

/* Zeroes the parameter grads and backpropagates the last forward's loss.
   Returns LMU_OK, LMU_ERR_STATE (no forward since the last backward). */
LMUDEF lmu_result lmu_model_backward(lmu_model *m);

/* One optimizer step: global-norm clipping (clip <= 0: none), then Adam
   with learning rate lr.
   [out, optional] grad_norm  the norm before clipping
   Returns LMU_OK, or LMU_ERR_NONFINITE when a gradient is NaN or Inf: the
   parameters and the optimizer state are then left as they were. */
LMUDEF lmu_result lmu_model_step(lmu_model *m, float lr, float clip, double *grad_norm);

/* Number of parameters as the paper counts them (see lmu_config_param_count). */
LMUDEF size_t lmu_model_param_count(const lmu_model *m);

/* >>safetensors (model checkpoints)
   Saves the parameters under MODEL.md section 7's names, the config in
   __metadata__ (keys: format, arch, vocab_size, n_ctx, d_model, n_layer,
   q, q_prime, theta, d_pre, d_ff, mixer, n_head), and with with_optim = 1
   the optimizer state as optim.m.<name>, optim.v.<name>, optim.step and
   optim.data_pos. Atomic: a temporary file renamed over path.
   Returns LMU_OK, LMU_ERR_IO (message in m->err). */
LMUDEF lmu_result lmu_model_save(lmu_model *m, const char *path, int with_optim);

/* Loads a checkpoint into a new model built from its metadata; optimizer
   state is restored when present. Every tensor is checked against the
   config (name, dtype, shape).
   Returns LMU_OK, LMU_ERR_IO, LMU_ERR_FORMAT, LMU_ERR_SHAPE, LMU_ERR_NOMEM,
   with the reason in err. */
LMUDEF lmu_result lmu_model_load(lmu_model **out, const char *path, char *err, size_t errcap);
LMUDEF lmu_result lmu_model_load_memory(lmu_model **out, const void *buf, size_t len, char *err,
                                        size_t errcap);

/* ====================================================================== */
/* >>generate                                                              */
/* ====================================================================== */
/*
   Generation runs the model one token at a time. An LMU layer keeps its
   q x d memory state and updates it with Abar and Bbar (MODEL.md section
   1), so memory per token is constant whatever the context. Mixer "attn"
   and the transformer keep a key/value cache of max_ctx positions: their
   memory grows with the context, and the transformer cannot go past n_ctx
   (its learned positions end there).
*/
struct lmu__cand;
typedef struct lmu_gen {
    const lmu_model *m;
    int max_ctx;       /* positions the KV cache holds (attention only) */
    int t;             /* tokens fed so far */
    float *state;      /* per layer: LMU memory (q, d) */
    float *state_tmp;  /* (q, d) */
    float *kv;         /* per layer: k, v caches (max_ctx, d) each */
    float *x, *h, *a, *big, *z, *y, *pc, *sc, *attn_scratch; /* work buffers */
    float *logits;     /* (V) after the last lmu_gen_feed */
    struct lmu__cand *cand; /* (V) sampling work */
    char err[256];
} lmu_gen;

/* [out] g  [in] m (must outlive g)  [in] max_ctx  KV positions (0: n_ctx)
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_gen_create(lmu_gen *g, const lmu_model *m, int max_ctx);
LMUDEF void lmu_gen_free(lmu_gen *g);
/* Forgets the context (state to zero, cache empty). */
LMUDEF void lmu_gen_reset(lmu_gen *g);
/* Feeds one token; g->logits then holds the next token's logits.
   Returns LMU_OK, LMU_ERR_RANGE (bad id), LMU_ERR_CAPACITY (KV cache or
   the transformer's n_ctx full). */
LMUDEF lmu_result lmu_gen_feed(lmu_gen *g, int token);

/* Samples from g->logits: temperature (<= 0: greedy), top_k (0: off),
   top_p (>= 1: off). Uses g's buffers, never allocates.
   Returns the token id. */
LMUDEF int lmu_gen_sample(lmu_gen *g, float temperature, int top_k, float top_p, lmu_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
/* >>decl-end model */

/* >>impl-begin model */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_PART_MODEL_IMPL_DONE)
#define LMU_PART_MODEL_IMPL_DONE

/* ---------------------------------------------------------------------- */
/* fused kernels as tape ops                                               */
/* ---------------------------------------------------------------------- */
/* Records of these ops: ip[] holds the dims, cache[] the saved tensors.
   Kernel scratch is the model's, sized before the forward starts. */

#define LMU__MODEL_OF(rec) (((const lmu__model_op *)(rec)->aux)->model)

LMU__PRIVATE lmu_result lmu__op_ce_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    lmu_model *m = LMU__MODEL_OF(rec);
    const float *dout = lmu__tape_g32(t, rec->out);
    size_t N = (size_t)rec->ip[0], d = (size_t)rec->ip[1], V = (size_t)rec->ip[2];
    float *dx = lmu__tape_g32(t, rec->in[0]), *dE = lmu__tape_g32(t, rec->in[1]);
    if (!dx && !dE) return LMU_OK;
    /* the kernel writes both grads; a frozen side goes to scratch-free
       dummies would cost memory, so both sides must want a grad */
    if (!dx || !dE) return lmu__tape_fail(t, LMU_ERR_STATE, "ce: both inputs need grads");
    lmu__ce_backward(dx, dE, dout[0], NULL, lmu__tape_f32(t, rec->in[0]),
                     lmu__tape_f32(t, rec->in[1]), (const int32_t *)lmu__tape_i32(t, rec->in[2]),
                     lmu__tape_f32(t, rec->cache[0]), N, d, V, &m->gemm, m->scratch);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__op_mha_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    lmu_model *m = LMU__MODEL_OF(rec);
    float *dqkv = lmu__tape_g32(t, rec->in[0]);
    if (!dqkv) return LMU_OK;
    lmu__mha_backward(dqkv, lmu__tape_g32(t, rec->out), lmu__tape_f32(t, rec->in[0]),
                      lmu__tape_f32(t, rec->out), lmu__tape_f32(t, rec->cache[0]),
                      (size_t)rec->ip[0], (size_t)rec->ip[1], (size_t)rec->ip[2],
                      (size_t)rec->ip[3], m->nparts, m->scratch);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__op_conv_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    lmu_model *m = LMU__MODEL_OF(rec);
    float *dU = lmu__tape_g32(t, rec->in[0]), *dL = lmu__tape_g32(t, rec->in[1]);
    float *db = lmu__tape_g32(t, rec->in[2]);
    if (!dU || !dL || !db) return lmu__tape_fail(t, LMU_ERR_STATE, "isa_conv: inputs need grads");
    lmu__isa_conv_backward(dU, dL, db, lmu__tape_g32(t, rec->out), lmu__tape_f32(t, rec->cache[0]),
                           m->lti->Hspec, (size_t)rec->ip[0], (size_t)rec->ip[1],
                           (size_t)rec->ip[2], (size_t)rec->ip[3], (size_t)rec->ip[4],
                           m->lti->plan, &m->gemm, m->nparts, m->scratch);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__op_isa_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    lmu_model *m = LMU__MODEL_OF(rec);
    float *dZ = lmu__tape_g32(t, rec->in[0]), *dp = lmu__tape_g32(t, rec->in[1]);
    if (!dZ || !dp) return lmu__tape_fail(t, LMU_ERR_STATE, "isa_attn: inputs need grads");
    lmu__isa_attn_backward(dZ, dp, lmu__tape_g32(t, rec->out), lmu__tape_f32(t, rec->in[0]),
                           lmu__tape_f32(t, rec->cache[0]), lmu__tape_f32(t, rec->in[1]),
                           (size_t)rec->ip[0], (size_t)rec->ip[1], (size_t)rec->ip[2], m->nparts,
                           m->scratch);
    return LMU_OK;
}

/* Records a custom op and returns its record for the dims and caches. */
LMU__PRIVATE lmu_result lmu__model_record(lmu_model *m, lmu__model_op *op, int n_in, const int *in,
                                          int ndim, const int *shape, int *out,
                                          lmu_tape_rec **rec)
{
    lmu_result r = lmu_tape_custom_op(&m->tape, &op->base, n_in, in, ndim, shape, out);
    if (r != LMU_OK) return r;
    *rec = &m->tape.recs[m->tape.n_recs - 1];
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__model_cache(lmu_model *m, size_t n, int *id)
{
    int shape[1];
    if (n > 0x7fffffff) return lmu__tape_fail(&m->tape, LMU_ERR_CAPACITY, "cache too large");
    shape[0] = (int)n;
    return lmu__tape_new_act(&m->tape, 1, shape, 0, id);
}

/* loss = mean CE of (x E^T) against targets; x (B, T, d). */
LMU__PRIVATE lmu_result lmu__model_ce(lmu_model *m, int x, int E, int targets, int *loss)
{
    lmu_tape *t = &m->tape;
    const lmu_tensor *xt = &t->tensors[x];
    size_t N = xt->size / (size_t)m->cfg.d_model, d = (size_t)m->cfg.d_model;
    size_t V = (size_t)m->cfg.vocab_size;
    int in[3], lse, losses;
    lmu_tape_rec *rec;
    lmu_result r;
    in[0] = x, in[1] = E, in[2] = targets;
    if ((r = lmu__model_record(m, &m->op_ce, 3, in, 0, NULL, loss, &rec)) != LMU_OK) return r;
    if ((r = lmu__model_cache(m, N, &lse)) != LMU_OK) return r;
    if ((r = lmu__model_cache(m, N, &losses)) != LMU_OK) return r;
    rec = &t->recs[t->n_recs - 1];
    rec->ip[0] = (int)N, rec->ip[1] = (int)d, rec->ip[2] = (int)V;
    rec->cache[0] = lse, rec->cache[1] = losses;
    m->losses = losses;
    lmu__ce_forward(lmu__tape_f32(t, *loss), lmu__tape_f32(t, losses), lmu__tape_f32(t, lse),
                    lmu__tape_f32(t, x), lmu__tape_f32(t, E),
                    (const int32_t *)lmu__tape_i32(t, targets), N, d, V, &m->gemm, m->scratch);
    return LMU_OK;
}

/* out (B, T, d) = causal multi-head attention of qkv (B, T, 3d). */
LMU__PRIVATE lmu_result lmu__model_mha(lmu_model *m, int qkv, int B, int T, int *out)
{
    lmu_tape *t = &m->tape;
    int shape[3], lse, NH = m->cfg.n_head, d = m->cfg.d_model;
    lmu_tape_rec *rec;
    lmu_result r;
    shape[0] = B, shape[1] = T, shape[2] = d;
    if ((r = lmu__model_record(m, &m->op_mha, 1, &qkv, 3, shape, out, &rec)) != LMU_OK) return r;
    if ((r = lmu__model_cache(m, (size_t)B * (size_t)NH * (size_t)T, &lse)) != LMU_OK) return r;
    rec = &t->recs[t->n_recs - 1];
    rec->ip[0] = B, rec->ip[1] = T, rec->ip[2] = d, rec->ip[3] = NH;
    rec->cache[0] = lse;
    lmu__mha_forward(lmu__tape_f32(t, *out), lmu__tape_f32(t, lse), lmu__tape_f32(t, qkv),
                     (size_t)B, (size_t)T, (size_t)d, (size_t)NH, m->nparts, m->scratch);
    return LMU_OK;
}

/* Z (B, T, 3, q', d) = causal conv of U (B, T, d) with L H, plus b. */
LMU__PRIVATE lmu_result lmu__model_conv(lmu_model *m, int U, int L, int b, int B, int T, int *Z)
{
    lmu_tape *t = &m->tape;
    int shape[4], in[3], cache, d = m->cfg.d_model, q = m->cfg.q, qp = m->cfg.q_prime;
    lmu_tape_rec *rec;
    lmu_result r;
    shape[0] = B * T, shape[1] = 3, shape[2] = qp, shape[3] = d;
    in[0] = U, in[1] = L, in[2] = b;
    if ((r = lmu__model_record(m, &m->op_conv, 3, in, 4, shape, Z, &rec)) != LMU_OK) return r;
    r = lmu__model_cache(m, lmu__isa_conv_cache_floats((size_t)B, (size_t)d, (size_t)qp,
                                                       (size_t)m->lti->nfft), &cache);
    if (r != LMU_OK) return r;
    rec = &t->recs[t->n_recs - 1];
    rec->ip[0] = B, rec->ip[1] = T, rec->ip[2] = d, rec->ip[3] = q, rec->ip[4] = qp;
    rec->cache[0] = cache;
    lmu__isa_conv_forward(lmu__tape_f32(t, *Z), lmu__tape_f32(t, cache), lmu__tape_f32(t, U),
                          m->lti->Hspec, lmu__tape_f32(t, L), lmu__tape_f32(t, b), (size_t)B,
                          (size_t)T, (size_t)d, (size_t)q, (size_t)qp, m->lti->plan, &m->gemm,
                          m->nparts, m->scratch);
    return LMU_OK;
}

/* y (B, T, d) = per-position attention over gelu(Z), read out with p. */
LMU__PRIVATE lmu_result lmu__model_isa(lmu_model *m, int Z, int p, int B, int T, int *y)
{
    lmu_tape *t = &m->tape;
    int shape[3], in[2], pc, d = m->cfg.d_model, qp = m->cfg.q_prime;
    size_t P = (size_t)B * (size_t)T;
    lmu_tape_rec *rec;
    lmu_result r;
    shape[0] = B, shape[1] = T, shape[2] = d;
    in[0] = Z, in[1] = p;
    if ((r = lmu__model_record(m, &m->op_isa, 2, in, 3, shape, y, &rec)) != LMU_OK) return r;
    if ((r = lmu__model_cache(m, P * (size_t)qp * (size_t)qp, &pc)) != LMU_OK) return r;
    rec = &t->recs[t->n_recs - 1];
    rec->ip[0] = (int)P, rec->ip[1] = qp, rec->ip[2] = d;
    rec->cache[0] = pc;
    lmu__isa_attn_forward(lmu__tape_f32(t, *y), lmu__tape_f32(t, pc), lmu__tape_f32(t, Z),
                          lmu__tape_f32(t, p), P, (size_t)qp, (size_t)d, m->nparts, m->scratch);
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* parameters                                                              */
/* ---------------------------------------------------------------------- */

LMU__PRIVATE lmu_result lmu__model_param(lmu_model *m, int *id, int ndim, int d0, int d1, int d2,
                                         const char *fmt, int layer)
{
    char name[LMU_TENSOR_NAME_MAX];
    int shape[3];
    shape[0] = d0, shape[1] = d1, shape[2] = d2;
    snprintf(name, sizeof name, fmt, layer);
    return lmu_tape_param(&m->tape, name, ndim, shape, 0, id);
}

/* Declares every parameter in checkpoint order (MODEL.md section 7). */
LMU__PRIVATE lmu_result lmu__model_declare(lmu_model *m)
{
    const lmu_config *c = &m->cfg;
    int l, d = c->d_model, lmu = c->arch == LMU_ARCH_LMU;
    int attn = !lmu || c->mixer == LMU_MIXER_ATTN;
    lmu_result r = LMU_OK;
#define LMU__P(id, nd, a, b_, c_, fmt) \
    if (r == LMU_OK) r = lmu__model_param(m, &(id), nd, a, b_, c_, fmt, l)
    l = 0;
    m->wpe = -1;
    LMU__P(m->wte, 2, c->vocab_size, d, 0, "wte");
    if (!lmu) LMU__P(m->wpe, 2, c->n_ctx, d, 0, "wpe");
    for (l = 0; l < c->n_layer && r == LMU_OK; l++) {
        lmu_layer_ids *L = &m->layer[l];
        memset(L, 0xff, sizeof *L); /* every id -1 */
        LMU__P(L->ln_a_w, 1, d, 0, 0, "blocks.%d.ln_a.weight");
        LMU__P(L->ln_a_b, 1, d, 0, 0, "blocks.%d.ln_a.bias");
        if (attn) {
            LMU__P(L->qkv_w, 2, 3 * d, d, 0, "blocks.%d.attn.qkv.weight");
            LMU__P(L->qkv_b, 1, 3 * d, 0, 0, "blocks.%d.attn.qkv.bias");
            LMU__P(L->attn_proj_w, 2, d, d, 0, "blocks.%d.attn.proj.weight");
            LMU__P(L->attn_proj_b, 1, d, 0, 0, "blocks.%d.attn.proj.bias");
        } else {
            LMU__P(L->pre_fc_w, 2, c->d_pre, d, 0, "blocks.%d.ffn_pre.fc.weight");
            LMU__P(L->pre_fc_b, 1, c->d_pre, 0, 0, "blocks.%d.ffn_pre.fc.bias");
            LMU__P(L->pre_proj_w, 2, d, c->d_pre, 0, "blocks.%d.ffn_pre.proj.weight");
            LMU__P(L->pre_proj_b, 1, d, 0, 0, "blocks.%d.ffn_pre.proj.bias");
        }
        if (lmu) {
            LMU__P(L->ln_b_w, 1, d, 0, 0, "blocks.%d.ln_b.weight");
            LMU__P(L->ln_b_b, 1, d, 0, 0, "blocks.%d.ln_b.bias");
            LMU__P(L->lmu_L, 3, 3, c->q_prime, c->q, "blocks.%d.lmu.L");
            LMU__P(L->lmu_b, 2, 3, c->q_prime, 0, "blocks.%d.lmu.b");
            LMU__P(L->lmu_p, 1, c->q_prime, 0, 0, "blocks.%d.lmu.p");
        }
        LMU__P(L->ln_c_w, 1, d, 0, 0, "blocks.%d.ln_c.weight");
        LMU__P(L->ln_c_b, 1, d, 0, 0, "blocks.%d.ln_c.bias");
        LMU__P(L->fc_w, 2, c->d_ff, d, 0, "blocks.%d.ffn_post.fc.weight");
        LMU__P(L->fc_b, 1, c->d_ff, 0, 0, "blocks.%d.ffn_post.fc.bias");
        LMU__P(L->fc_proj_w, 2, d, c->d_ff, 0, "blocks.%d.ffn_post.proj.weight");
        LMU__P(L->fc_proj_b, 1, d, 0, 0, "blocks.%d.ffn_post.proj.bias");
    }
    l = 0;
    LMU__P(m->ln_f_w, 1, d, 0, 0, "ln_f.weight");
    LMU__P(m->ln_f_b, 1, d, 0, 0, "ln_f.bias");
#undef LMU__P
    return r;
}

LMU__PRIVATE void lmu__model_fill(lmu_model *m, int id, float mean, float std, lmu_rng *rng)
{
    const lmu_tensor *x;
    float *p;
    size_t i;
    if (id < 0) return;
    x = &m->tape.tensors[id];
    p = m->tape.param + x->off;
    for (i = 0; i < x->size; i++) p[i] = std > 0 ? mean + std * lmu_rng_normal(rng) : mean;
}

/* Parameters in declaration order, one rng stream: a seed gives the same
   model everywhere. */
LMU__PRIVATE void lmu__model_init(lmu_model *m, uint64_t seed)
{
    const lmu_config *c = &m->cfg;
    lmu_rng rng;
    int l;
    float res = 0.02f / sqrtf(2.0f * (float)c->n_layer);
    lmu_rng_seed(&rng, seed);
    lmu__model_fill(m, m->wte, 0, 0.02f, &rng);
    lmu__model_fill(m, m->wpe, 0, 0.01f, &rng);
    for (l = 0; l < c->n_layer; l++) {
        lmu_layer_ids *L = &m->layer[l];
        lmu__model_fill(m, L->ln_a_w, 1, 0, &rng);
        lmu__model_fill(m, L->ln_a_b, 0, 0, &rng);
        lmu__model_fill(m, L->qkv_w, 0, 0.02f, &rng);
        lmu__model_fill(m, L->qkv_b, 0, 0, &rng);
        lmu__model_fill(m, L->attn_proj_w, 0, res, &rng);
        lmu__model_fill(m, L->attn_proj_b, 0, 0, &rng);
        lmu__model_fill(m, L->pre_fc_w, 0, 0.02f, &rng);
        lmu__model_fill(m, L->pre_fc_b, 0, 0, &rng);
        lmu__model_fill(m, L->pre_proj_w, 0, res, &rng);
        lmu__model_fill(m, L->pre_proj_b, 0, 0, &rng);
        lmu__model_fill(m, L->ln_b_w, 1, 0, &rng);
        lmu__model_fill(m, L->ln_b_b, 0, 0, &rng);
        lmu__model_fill(m, L->lmu_L, 0, 1.0f / sqrtf((float)c->q), &rng);
        lmu__model_fill(m, L->lmu_b, 0, 0, &rng);
        lmu__model_fill(m, L->lmu_p, 0, 1.0f / sqrtf(2.0f * (float)c->n_layer), &rng);
        lmu__model_fill(m, L->ln_c_w, 1, 0, &rng);
        lmu__model_fill(m, L->ln_c_b, 0, 0, &rng);
        lmu__model_fill(m, L->fc_w, 0, 0.02f, &rng);
        lmu__model_fill(m, L->fc_b, 0, 0, &rng);
        lmu__model_fill(m, L->fc_proj_w, 0, res, &rng);
        lmu__model_fill(m, L->fc_proj_b, 0, 0, &rng);
    }
    lmu__model_fill(m, m->ln_f_w, 1, 0, &rng);
    lmu__model_fill(m, m->ln_f_b, 0, 0, &rng);
}

LMU__PRIVATE lmu_result lmu__model_fail(lmu_model *m, lmu_result r)
{
    if (r != LMU_OK && m->tape.err[0]) snprintf(m->err, sizeof m->err, "%s", m->tape.err);
    return r;
}

LMUDEF void lmu_model_free(lmu_model *m)
{
    if (!m) return;
    lmu_tape_free(&m->tape);
    lmu_adam_free(&m->adam);
    lmu_gemm_ws_destroy(&m->gemm);
    lmu_lti_free(m->lti);
    LMU_FREE(m->layer);
    lmu__free_aligned(m->scratch);
    LMU_FREE(m->pos);
    LMU_FREE(m);
}

LMUDEF lmu_result lmu_model_create(lmu_model **out, const lmu_config *cfg, uint64_t seed,
                                   char *err, size_t errcap)
{
    lmu_model *m;
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!out || !cfg) return LMU_ERR_ARG;
    *out = NULL;
    m = (lmu_model *)LMU_MALLOC(sizeof *m);
    if (!m) return LMU_ERR_NOMEM;
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->loss = m->losses = -1;
    if ((r = lmu_config_resolve(&m->cfg, err, errcap)) != LMU_OK) {
        LMU_FREE(m);
        return r;
    }
    m->op_ce.base.name = "cross_entropy_fused";
    m->op_ce.base.backward = lmu__op_ce_backward;
    m->op_mha.base.name = "causal_attention";
    m->op_mha.base.backward = lmu__op_mha_backward;
    m->op_conv.base.name = "lmu_conv";
    m->op_conv.base.backward = lmu__op_conv_backward;
    m->op_isa.base.name = "implicit_attention";
    m->op_isa.base.backward = lmu__op_isa_backward;
    m->op_ce.model = m->op_mha.model = m->op_conv.model = m->op_isa.model = m;
    lmu_tape_init(&m->tape);
    /* shapes may grow after the first step (a bigger evaluation batch); a
       step with shapes seen before never allocates */
    lmu_tape_set_growth(&m->tape, 1);
    m->layer = (lmu_layer_ids *)LMU_MALLOC((size_t)m->cfg.n_layer * sizeof(lmu_layer_ids));
    r = m->layer ? LMU_OK : LMU_ERR_NOMEM;
    if (r == LMU_OK) r = lmu__model_declare(m);
    if (r == LMU_OK) r = lmu_tape_params_alloc(&m->tape);
    if (r == LMU_OK) r = lmu_adam_init(&m->adam, &m->tape);
    if (r == LMU_OK) r = lmu_gemm_ws_create(&m->gemm, lmu__thread_count());
    if (r == LMU_OK) m->tape.gemm_ws = &m->gemm;
    if (r == LMU_OK && m->cfg.arch == LMU_ARCH_LMU)
        r = lmu_lti_create(&m->lti, m->cfg.q, m->cfg.theta, m->cfg.n_ctx);
    if (r != LMU_OK) {
        lmu__errf(err, errcap, "model: %s%s%s", lmu_strerror(r), m->tape.err[0] ? ": " : "",
                  m->tape.err);
        lmu_model_free(m);
        return r;
    }
    lmu__model_init(m, seed);
    *out = m;
    return LMU_OK;
}

LMUDEF size_t lmu_model_param_count(const lmu_model *m) { return lmu_config_param_count(&m->cfg); }

/* Kernel scratch for one (B, T): the largest any op of the step needs. */
LMU__PRIVATE lmu_result lmu__model_plan(lmu_model *m, int B, int T)
{
    const lmu_config *c = &m->cfg;
    size_t N = (size_t)B * (size_t)T, need, s;
    m->nparts = lmu__thread_count();
    need = lmu__ce_scratch_floats(N, (size_t)c->vocab_size);
    if (c->arch == LMU_ARCH_TRANSFORMER || c->mixer == LMU_MIXER_ATTN) {
        s = lmu__mha_scratch_floats((size_t)T, (size_t)c->d_model, m->nparts);
        if (s > need) need = s;
    }
    if (c->arch == LMU_ARCH_LMU) {
        s = lmu__isa_conv_scratch_floats(m->lti->plan, (size_t)c->q_prime, m->nparts);
        if (s > need) need = s;
        s = lmu__isa_attn_scratch_floats(N, (size_t)c->q_prime, (size_t)c->d_model, m->nparts);
        if (s > need) need = s;
    }
    if (need > m->scratch_cap) {
        float *p = (float *)lmu__alloc_aligned(need * sizeof(float));
        if (!p) return LMU_ERR_NOMEM;
        lmu__free_aligned(m->scratch);
        m->scratch = p;
        m->scratch_cap = need;
    }
    if (c->arch == LMU_ARCH_TRANSFORMER && N > m->pos_cap) {
        int *p = (int *)LMU_REALLOC(m->pos, N * sizeof(int));
        if (!p) return LMU_ERR_NOMEM;
        m->pos = p;
        m->pos_cap = N;
    }
    return LMU_OK;
}

/* x (B, T, d) + FFN(LN(x)) with the given weights; gelu inside. */
LMU__PRIVATE lmu_result lmu__model_ffn(lmu_tape *t, int x, int g, int gb, int w1, int b1, int w2,
                                       int b2, int *out)
{
    int h, a;
    lmu_result r;
    if ((r = lmu_tape_layernorm(t, x, g, gb, &h)) != LMU_OK) return r;
    if ((r = lmu_tape_linear(t, h, w1, b1, 0, &a)) != LMU_OK) return r;
    if ((r = lmu_tape_gelu(t, a, &a)) != LMU_OK) return r;
    if ((r = lmu_tape_linear(t, a, w2, b2, 0, &a)) != LMU_OK) return r;
    return lmu_tape_add(t, x, a, out);
}

LMUDEF lmu_result lmu_model_forward(lmu_model *m, const int *tokens, const int *targets, int B,
                                    int T, float *loss)
{
    const lmu_config *c;
    lmu_tape *t;
    int shape[2], ids, tg, x, h, a, l;
    lmu_result r;
    float lv;
    if (!m || !tokens || !targets || B < 1 || T < 1) return LMU_ERR_ARG;
    c = &m->cfg;
    t = &m->tape;
    m->err[0] = 0;
    m->loss = m->losses = -1;
    m->backward_done = 0;
    if (T > c->n_ctx) {
        snprintf(m->err, sizeof m->err, "forward: T = %d exceeds n_ctx = %d", T, c->n_ctx);
        return LMU_ERR_SHAPE;
    }
    if ((size_t)B * (size_t)T > 0x7fffffff / (size_t)(c->d_model * 4)) {
        snprintf(m->err, sizeof m->err, "forward: batch %d x %d too large", B, T);
        return LMU_ERR_CAPACITY;
    }
    if ((r = lmu__model_plan(m, B, T)) != LMU_OK) {
        snprintf(m->err, sizeof m->err, "forward: out of memory for kernel scratch");
        return r;
    }
    lmu_tape_reset(t);
    shape[0] = B, shape[1] = T;
    m->B = B, m->T = T;
#define LMU__TRY(call) \
    if ((r = (call)) != LMU_OK) return lmu__model_fail(m, r)
    LMU__TRY(lmu_tape_input_ids(t, tokens, 2, shape, &ids));
    LMU__TRY(lmu_tape_input_ids(t, targets, 2, shape, &tg));
    LMU__TRY(lmu_tape_embedding(t, ids, m->wte, &x));
    if (c->arch == LMU_ARCH_TRANSFORMER) {
        int pos, pe, b, i;
        for (b = 0; b < B; b++)
            for (i = 0; i < T; i++) m->pos[(size_t)b * (size_t)T + (size_t)i] = i;
        LMU__TRY(lmu_tape_input_ids(t, m->pos, 2, shape, &pos));
        LMU__TRY(lmu_tape_embedding(t, pos, m->wpe, &pe));
        LMU__TRY(lmu_tape_add(t, x, pe, &x));
    }
    for (l = 0; l < c->n_layer; l++) {
        const lmu_layer_ids *L = &m->layer[l];
        /* the mixer: the seam where new sequence mixers plug in */
        if (L->qkv_w >= 0) {
            LMU__TRY(lmu_tape_layernorm(t, x, L->ln_a_w, L->ln_a_b, &h));
            LMU__TRY(lmu_tape_linear(t, h, L->qkv_w, L->qkv_b, 0, &a));
            LMU__TRY(lmu__model_mha(m, a, B, T, &a));
            LMU__TRY(lmu_tape_linear(t, a, L->attn_proj_w, L->attn_proj_b, 0, &a));
            LMU__TRY(lmu_tape_add(t, x, a, &x));
        } else {
            LMU__TRY(lmu__model_ffn(t, x, L->ln_a_w, L->ln_a_b, L->pre_fc_w, L->pre_fc_b,
                                    L->pre_proj_w, L->pre_proj_b, &x));
        }
        if (L->lmu_L >= 0) {
            LMU__TRY(lmu_tape_layernorm(t, x, L->ln_b_w, L->ln_b_b, &h));
            LMU__TRY(lmu__model_conv(m, h, L->lmu_L, L->lmu_b, B, T, &a));
            LMU__TRY(lmu__model_isa(m, a, L->lmu_p, B, T, &a));
            LMU__TRY(lmu_tape_add(t, x, a, &x));
        }
        LMU__TRY(lmu__model_ffn(t, x, L->ln_c_w, L->ln_c_b, L->fc_w, L->fc_b, L->fc_proj_w,
                                L->fc_proj_b, &x));
    }
    LMU__TRY(lmu_tape_layernorm(t, x, m->ln_f_w, m->ln_f_b, &h));
    {
        /* the range check of the targets is the embedding op's for ids;
           the fused loss trusts its targets, so check them here */
        size_t i, n = (size_t)B * (size_t)T;
        for (i = 0; i < n; i++)
            if (targets[i] < 0 || targets[i] >= c->vocab_size) {
                snprintf(m->err, sizeof m->err, "forward: target %d at %lu outside 0..%d",
                         targets[i], (unsigned long)i, c->vocab_size - 1);
                return LMU_ERR_RANGE;
            }
    }
    LMU__TRY(lmu__model_ce(m, h, m->wte, tg, &m->loss));
#undef LMU__TRY
    lv = lmu_tape_data(t, m->loss)[0];
    if (loss) *loss = lv;
    if (!(lv == lv) || lv > FLT_MAX || lv < -FLT_MAX) {
        snprintf(m->err, sizeof m->err, "forward: loss is %g", (double)lv);
        return LMU_ERR_NONFINITE;
    }
    return LMU_OK;
}

LMUDEF const float *lmu_model_position_losses(lmu_model *m)
{
    if (!m || m->losses < 0) return NULL;
    return lmu_tape_data(&m->tape, m->losses);
}

LMUDEF lmu_result lmu_model_backward(lmu_model *m)
{
    lmu_result r;
    if (!m) return LMU_ERR_ARG;
    if (m->loss < 0 || m->backward_done) {
        snprintf(m->err, sizeof m->err, "backward: no forward since the last backward");
        return LMU_ERR_STATE;
    }
    lmu_tape_zero_grad(&m->tape);
    r = lmu_tape_backward(&m->tape, m->loss);
    if (r == LMU_OK) m->backward_done = 1;
    return lmu__model_fail(m, r);
}

LMUDEF lmu_result lmu_model_step(lmu_model *m, float lr, float clip, double *grad_norm)
{
    lmu_result r;
    double norm;
    if (!m) return LMU_ERR_ARG;
    if (!m->backward_done) {
        snprintf(m->err, sizeof m->err, "step: no backward since the last step");
        return LMU_ERR_STATE;
    }
    norm = lmu_tape_grad_norm(&m->tape);
    if (grad_norm) *grad_norm = norm;
    if (!(norm == norm) || norm > DBL_MAX) {
        snprintf(m->err, sizeof m->err, "step: gradient norm is %g; step skipped", norm);
        return LMU_ERR_NONFINITE;
    }
    if (clip > 0 && (r = lmu_tape_clip_grad_norm(&m->tape, clip, NULL)) != LMU_OK)
        return lmu__model_fail(m, r);
    m->backward_done = 0;
    return lmu__model_fail(m, lmu_adam_step(&m->adam, &m->tape, lr));
}

/* ---------------------------------------------------------------------- */
/* >>safetensors: checkpoints                                              */
/* ---------------------------------------------------------------------- */

#define LMU__META_KEYS 13
#define LMU__OPTIM_PREFIX_M "optim.m."
#define LMU__OPTIM_PREFIX_V "optim.v."

LMUDEF lmu_result lmu_model_save(lmu_model *m, const char *path, int with_optim)
{
    const lmu_config *c;
    lmu_tape *t;
    lmu_st_tensor *ts = NULL;
    lmu_st_meta meta[LMU__META_KEYS];
    char vals[LMU__META_KEYS][40], *names = NULL;
    int64_t step_pos[2];
    size_t i, n = 0, np, cap;
    lmu_result r;
    if (!m || !path) return LMU_ERR_ARG;
    c = &m->cfg;
    t = &m->tape;
    np = (size_t)t->n_params;
    cap = 3 * np + 2;
    ts = (lmu_st_tensor *)LMU_MALLOC(cap * sizeof *ts);
    names = (char *)LMU_MALLOC(2 * np * (LMU_TENSOR_NAME_MAX + 8));
    if (!ts || !names) {
        LMU_FREE(ts);
        LMU_FREE(names);
        return LMU_ERR_NOMEM;
    }
    memset(ts, 0, cap * sizeof *ts);
    for (i = 0; i < np; i++) {
        const lmu_tensor *x = &t->tensors[i];
        int k;
        ts[n].name = x->name;
        ts[n].dtype = LMU_ST_F32;
        ts[n].ndim = x->ndim;
        for (k = 0; k < x->ndim; k++) ts[n].shape[k] = (size_t)x->shape[k];
        ts[n].data = t->param + x->off;
        n++;
        if (with_optim && !x->frozen) {
            char *nm = names + 2 * i * (LMU_TENSOR_NAME_MAX + 8);
            char *nv = nm + LMU_TENSOR_NAME_MAX + 8;
            snprintf(nm, LMU_TENSOR_NAME_MAX + 8, "%s%s", LMU__OPTIM_PREFIX_M, x->name);
            snprintf(nv, LMU_TENSOR_NAME_MAX + 8, "%s%s", LMU__OPTIM_PREFIX_V, x->name);
            ts[n] = ts[n - 1];
            ts[n].name = nm;
            ts[n].data = m->adam.m + x->off;
            n++;
            ts[n] = ts[n - 2];
            ts[n].name = nv;
            ts[n].data = m->adam.v + x->off;
            n++;
        }
    }
    if (with_optim) {
        step_pos[0] = (int64_t)m->adam.step;
        step_pos[1] = (int64_t)m->data_pos;
        ts[n].name = "optim.step";
        ts[n].dtype = LMU_ST_I64;
        ts[n].ndim = 1;
        ts[n].shape[0] = 1;
        ts[n].data = &step_pos[0];
        n++;
        ts[n] = ts[n - 1];
        ts[n].name = "optim.data_pos";
        ts[n].data = &step_pos[1];
        n++;
    }
    i = 0;
#define LMU__META(k, ...)                                                      \
    do {                                                                       \
        snprintf(vals[i], sizeof vals[i], __VA_ARGS__);                        \
        meta[i].key = k;                                                       \
        meta[i].value = vals[i];                                               \
        i++;                                                                   \
    } while (0)
    LMU__META("format", "lmu");
    LMU__META("arch", "%s", lmu_arch_name(c->arch));
    LMU__META("vocab_size", "%d", c->vocab_size);
    LMU__META("n_ctx", "%d", c->n_ctx);
    LMU__META("d_model", "%d", c->d_model);
    LMU__META("n_layer", "%d", c->n_layer);
    LMU__META("d_ff", "%d", c->d_ff);
    LMU__META("n_head", "%d", c->n_head);
    if (c->arch == LMU_ARCH_LMU) {
        LMU__META("mixer", "%s", lmu_mixer_name(c->mixer));
        LMU__META("q", "%d", c->q);
        LMU__META("q_prime", "%d", c->q_prime);
        LMU__META("theta", "%.17g", c->theta);
        LMU__META("d_pre", "%d", c->d_pre);
    }
#undef LMU__META
    r = lmu_st_save_file(path, ts, n, meta, i, m->err, sizeof m->err);
    LMU_FREE(ts);
    LMU_FREE(names);
    return r;
}

/* A metadata integer: decimal digits only, in 0..2^31-1. */
LMU__PRIVATE lmu_result lmu__meta_int(const lmu_st_file *f, const char *key, int *out, char *err,
                                      size_t errcap)
{
    const char *v = lmu_st_meta_get(f, key);
    long x = 0;
    if (!v) {
        *out = 0;
        return LMU_OK; /* absent: the config default */
    }
    if (!*v) goto bad;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || x > 0x7fffffffL / 10) goto bad;
        x = x * 10 + (*v - '0');
    }
    if (x > 0x7fffffffL) goto bad;
    *out = (int)x;
    return LMU_OK;
bad:
    lmu__errf(err, errcap, "checkpoint: metadata %s = \"%s\" is not a count", key,
              lmu_st_meta_get(f, key));
    return LMU_ERR_FORMAT;
}

LMU__PRIVATE lmu_result lmu__model_from_file(lmu_model **out, lmu_st_file *f, char *err,
                                             size_t errcap)
{
    lmu_config c;
    lmu_model *m = NULL;
    lmu_tape *t;
    const char *v;
    const lmu_st_tensor *st;
    lmu_result r;
    size_t i, seen = 0;
    int has_optim;
    memset(&c, 0, sizeof c);
    v = lmu_st_meta_get(f, "format");
    if (!v || strcmp(v, "lmu") != 0) {
        lmu__errf(err, errcap, "checkpoint: metadata format is %s%s%s, want \"lmu\"", v ? "\"" : "",
                  v ? v : "missing", v ? "\"" : "");
        return LMU_ERR_FORMAT;
    }
    v = lmu_st_meta_get(f, "arch");
    if (v && strcmp(v, "transformer") == 0)
        c.arch = LMU_ARCH_TRANSFORMER;
    else if (!v || strcmp(v, "lmu") != 0) {
        lmu__errf(err, errcap, "checkpoint: unknown arch \"%s\"", v ? v : "");
        return LMU_ERR_FORMAT;
    }
    v = lmu_st_meta_get(f, "mixer");
    if (v && strcmp(v, "attn") == 0)
        c.mixer = LMU_MIXER_ATTN;
    else if (v && strcmp(v, "ffn") != 0) {
        lmu__errf(err, errcap, "checkpoint: unknown mixer \"%s\"", v);
        return LMU_ERR_FORMAT;
    }
    if ((r = lmu__meta_int(f, "vocab_size", &c.vocab_size, err, errcap)) != LMU_OK ||
        (r = lmu__meta_int(f, "n_ctx", &c.n_ctx, err, errcap)) != LMU_OK ||
        (r = lmu__meta_int(f, "d_model", &c.d_model, err, errcap)) != LMU_OK ||
        (r = lmu__meta_int(f, "n_layer", &c.n_layer, err, errcap)) != LMU_OK ||
        (r = lmu__meta_int(f, "q", &c.q, err, errcap)) != LMU_OK ||
        (r = lmu__meta_int(f, "q_prime", &c.q_prime, err, errcap)) != LMU_OK ||
        (r = lmu__meta_int(f, "d_pre", &c.d_pre, err, errcap)) != LMU_OK ||
        (r = lmu__meta_int(f, "d_ff", &c.d_ff, err, errcap)) != LMU_OK ||
        (r = lmu__meta_int(f, "n_head", &c.n_head, err, errcap)) != LMU_OK)
        return r;
    if ((v = lmu_st_meta_get(f, "theta")) != NULL) {
        char *end;
        c.theta = strtod(v, &end);
        if (end == v || *end) {
            lmu__errf(err, errcap, "checkpoint: metadata theta = \"%s\" is not a number", v);
            return LMU_ERR_FORMAT;
        }
    }
    if ((r = lmu_config_resolve(&c, err, errcap)) != LMU_OK) return LMU_ERR_FORMAT;
    if ((r = lmu_model_create(&m, &c, 0, err, errcap)) != LMU_OK) return r;
    t = &m->tape;
    has_optim = lmu_st_find(f, "optim.step") != NULL;
    for (i = 0; i < (size_t)t->n_params; i++) {
        const lmu_tensor *x = &t->tensors[i];
        size_t shape[LMU_TENSOR_MAX_DIMS];
        char name[LMU_TENSOR_NAME_MAX + 8];
        int k, pass;
        for (k = 0; k < x->ndim; k++) shape[k] = (size_t)x->shape[k];
        for (pass = 0; pass < (has_optim && !x->frozen ? 3 : 1); pass++) {
            float *dst = pass == 0 ? t->param : pass == 1 ? m->adam.m : m->adam.v;
            snprintf(name, sizeof name, "%s%s",
                     pass == 0 ? "" : pass == 1 ? LMU__OPTIM_PREFIX_M : LMU__OPTIM_PREFIX_V, x->name);
            st = lmu_st_find(f, name);
            if (!st) {
                lmu__errf(err, errcap, "checkpoint: tensor %s is missing", name);
                r = LMU_ERR_FORMAT;
                goto fail;
            }
            if (st->dtype != LMU_ST_F32) {
                lmu__errf(err, errcap, "checkpoint: tensor %s is %s, want F32", name,
                          lmu_st_dtype_name(st->dtype));
                r = LMU_ERR_FORMAT;
                goto fail;
            }
            r = lmu_st_read_f32(f, name, shape, x->ndim, dst + x->off, err, errcap);
            if (r != LMU_OK) goto fail;
            seen++;
        }
    }
    if (has_optim) {
        int64_t val;
        size_t one = 1;
        const char *keys[2] = {"optim.step", "optim.data_pos"};
        for (i = 0; i < 2; i++) {
            r = lmu_st_read(f, keys[i], LMU_ST_I64, &one, 1, &val, err, errcap);
            if (r != LMU_OK) goto fail;
            if (val < 0) {
                lmu__errf(err, errcap, "checkpoint: %s is negative", keys[i]);
                r = LMU_ERR_FORMAT;
                goto fail;
            }
            if (i == 0) m->adam.step = (uint64_t)val;
            else m->data_pos = (uint64_t)val;
            seen++;
        }
    }
    if (seen != f->n_tensors) {
        /* a tensor the config does not know: another model's checkpoint */
        for (i = 0; i < f->n_tensors; i++) {
            const char *nm = f->tensors[i].name;
            const char *base = strncmp(nm, "optim.", 6) == 0 && strlen(nm) > 8 ? nm + 8 : nm;
            if (lmu_tape_find(t, base) < 0 && strcmp(nm, "optim.step") != 0 &&
                strcmp(nm, "optim.data_pos") != 0) {
                lmu__errf(err, errcap, "checkpoint: unexpected tensor %s for this config", nm);
                break;
            }
        }
        if (i == f->n_tensors) lmu__errf(err, errcap, "checkpoint: unexpected tensors");
        r = LMU_ERR_FORMAT;
        goto fail;
    }
    *out = m;
    return LMU_OK;
fail:
    lmu_model_free(m);
    return r;
}

LMUDEF lmu_result lmu_model_load_memory(lmu_model **out, const void *buf, size_t len, char *err,
                                        size_t errcap)
{
    lmu_st_file f;
    lmu_result r;
    if (!out) return LMU_ERR_ARG;
    *out = NULL;
    memset(&f, 0, sizeof f);
    if ((r = lmu_st_load_memory(&f, buf, len, err, errcap)) != LMU_OK) return r;
    r = lmu__model_from_file(out, &f, err, errcap);
    lmu_st_close(&f);
    return r;
}

#ifndef LMU_NO_STDIO
LMUDEF lmu_result lmu_model_load(lmu_model **out, const char *path, char *err, size_t errcap)
{
    lmu_st_file f;
    lmu_result r;
    if (!out || !path) return LMU_ERR_ARG;
    *out = NULL;
    memset(&f, 0, sizeof f);
    if ((r = lmu_st_load_file(&f, path, err, errcap)) != LMU_OK) return r;
    r = lmu__model_from_file(out, &f, err, errcap);
    lmu_st_close(&f);
    return r;
}
#endif

/* ---------------------------------------------------------------------- */
/* >>generate (implementation)                                             */
/* ---------------------------------------------------------------------- */

typedef struct lmu__cand {
    float p;
    int id;
} lmu__cand;

/* out (M) = W (M, K) x + b: batch-1 products read each weight once, so a
   row-parallel dot product is as fast as the memory allows. */
LMU__PRIVATE void lmu__gemv(float *out, const float *W, const float *x, const float *b, size_t M,
                            size_t K)
{
    long i;
    LMU__OMP(omp parallel for schedule(static) if (M * K > 65536))
    for (i = 0; i < (long)M; i++) {
        const float *w = W + (size_t)i * K;
        float acc = b ? b[i] : 0.0f;
        size_t k;
        for (k = 0; k < K; k++) acc += w[k] * x[k];
        out[i] = acc;
    }
}

LMU__PRIVATE void lmu__gen_ln(const lmu_model *m, float *out, const float *x, int g, int b)
{
    float mean, rstd;
    const float *P = m->tape.param;
    lmu__layernorm_forward(out, &mean, &rstd, x, P + m->tape.tensors[g].off,
                           P + m->tape.tensors[b].off, 1, (size_t)m->cfg.d_model, 1e-5f);
}

#define LMU__GP(id) (m->tape.param + m->tape.tensors[id].off)

LMUDEF void lmu_gen_free(lmu_gen *g)
{
    if (!g) return;
    lmu__free_aligned(g->state);
    LMU_FREE(g->cand);
    memset(g, 0, sizeof *g);
}

LMUDEF lmu_result lmu_gen_create(lmu_gen *g, const lmu_model *m, int max_ctx)
{
    const lmu_config *c;
    size_t d, q, qp, L, kv, big, state, total, V, sc, as;
    int attn;
    float *p;
    if (!g || !m) return LMU_ERR_ARG;
    memset(g, 0, sizeof *g);
    c = &m->cfg;
    if (max_ctx <= 0) max_ctx = c->n_ctx;
    if (c->arch == LMU_ARCH_TRANSFORMER && max_ctx > c->n_ctx) max_ctx = c->n_ctx;
    attn = c->arch == LMU_ARCH_TRANSFORMER || c->mixer == LMU_MIXER_ATTN;
    d = (size_t)c->d_model, q = (size_t)c->q, qp = (size_t)c->q_prime, L = (size_t)c->n_layer;
    V = (size_t)c->vocab_size;
    state = c->arch == LMU_ARCH_LMU ? L * q * d : 0;
    kv = attn ? L * 2 * (size_t)max_ctx * d : 0;
    big = 3 * d;
    if ((size_t)c->d_ff > big) big = (size_t)c->d_ff;
    if ((size_t)c->d_pre > big) big = (size_t)c->d_pre;
    sc = attn ? (size_t)max_ctx : 0;
    as = c->arch == LMU_ARCH_LMU ? lmu__isa_attn_scratch_floats(1, qp, d, 1) : 0;
    /* one block: every buffer 16-float aligned */
#define LMU__R(n) (((n) + 15) & ~(size_t)15)
    total = LMU__R(state) + LMU__R(q * d) + LMU__R(kv) + 5 * LMU__R(d) + LMU__R(big) +
            LMU__R(3 * qp * d) + LMU__R(qp * qp) + LMU__R(sc) + LMU__R(as) + LMU__R(V);
    g->state = (float *)lmu__alloc_aligned(total * sizeof(float));
    g->cand = (lmu__cand *)LMU_MALLOC(V * sizeof(lmu__cand));
    if (!g->state || !g->cand) {
        lmu_gen_free(g);
        return LMU_ERR_NOMEM;
    }
    p = g->state + LMU__R(state);
    g->state_tmp = p, p += LMU__R(q * d);
    g->kv = p, p += LMU__R(kv);
    g->x = p, p += LMU__R(d);
    g->h = p, p += LMU__R(d);
    g->a = p, p += LMU__R(d);
    g->y = p, p += LMU__R(d);
    p += LMU__R(d);
    g->big = p, p += LMU__R(big);
    g->z = p, p += LMU__R(3 * qp * d);
    g->pc = p, p += LMU__R(qp * qp);
    g->sc = p, p += LMU__R(sc);
    g->attn_scratch = p, p += LMU__R(as);
    g->logits = p;
#undef LMU__R
    g->m = m;
    g->max_ctx = max_ctx;
    lmu_gen_reset(g);
    return LMU_OK;
}

LMUDEF void lmu_gen_reset(lmu_gen *g)
{
    const lmu_config *c = &g->m->cfg;
    g->t = 0;
    if (c->arch == LMU_ARCH_LMU)
        memset(g->state, 0, (size_t)c->n_layer * (size_t)c->q * (size_t)c->d_model * sizeof(float));
}

/* x += FFN(LN(x)) for one position. */
LMU__PRIVATE void lmu__gen_ffn(lmu_gen *g, int lg, int lb, int w1, int b1, int w2, int b2)
{
    const lmu_model *m = g->m;
    size_t d = (size_t)m->cfg.d_model, k, inner = (size_t)m->tape.tensors[w1].shape[0];
    lmu__gen_ln(m, g->h, g->x, lg, lb);
    lmu__gemv(g->big, LMU__GP(w1), g->h, LMU__GP(b1), inner, d);
    lmu__gelu_forward(g->big, g->big, inner);
    lmu__gemv(g->a, LMU__GP(w2), g->big, LMU__GP(b2), d, inner);
    for (k = 0; k < d; k++) g->x[k] += g->a[k];
}

LMUDEF lmu_result lmu_gen_feed(lmu_gen *g, int token)
{
    const lmu_model *m;
    const lmu_config *c;
    size_t d, q, qp, k, l;
    if (!g || !g->m) return LMU_ERR_ARG;
    m = g->m;
    c = &m->cfg;
    d = (size_t)c->d_model, q = (size_t)c->q, qp = (size_t)c->q_prime;
    if (token < 0 || token >= c->vocab_size) {
        snprintf(g->err, sizeof g->err, "generate: token %d outside 0..%d", token, c->vocab_size - 1);
        return LMU_ERR_RANGE;
    }
    if ((c->arch == LMU_ARCH_TRANSFORMER || c->mixer == LMU_MIXER_ATTN) && g->t >= g->max_ctx) {
        snprintf(g->err, sizeof g->err, "generate: context full (%d positions)", g->max_ctx);
        return LMU_ERR_CAPACITY;
    }
    memcpy(g->x, LMU__GP(m->wte) + (size_t)token * d, d * sizeof(float));
    if (m->wpe >= 0) {
        const float *pe = LMU__GP(m->wpe) + (size_t)g->t * d;
        for (k = 0; k < d; k++) g->x[k] += pe[k];
    }
    for (l = 0; l < (size_t)c->n_layer; l++) {
        const lmu_layer_ids *L = &m->layer[l];
        if (L->qkv_w >= 0) {
            float *kc = g->kv + l * 2 * (size_t)g->max_ctx * d, *vc = kc + (size_t)g->max_ctx * d;
            lmu__gen_ln(m, g->h, g->x, L->ln_a_w, L->ln_a_b);
            lmu__gemv(g->big, LMU__GP(L->qkv_w), g->h, LMU__GP(L->qkv_b), 3 * d, d);
            lmu__mha_decode(g->y, kc, vc, g->big, (size_t)g->t, d, (size_t)c->n_head, g->sc);
            lmu__gemv(g->a, LMU__GP(L->attn_proj_w), g->y, LMU__GP(L->attn_proj_b), d, d);
            for (k = 0; k < d; k++) g->x[k] += g->a[k];
        } else {
            lmu__gen_ffn(g, L->ln_a_w, L->ln_a_b, L->pre_fc_w, L->pre_fc_b, L->pre_proj_w,
                         L->pre_proj_b);
        }
        if (L->lmu_L >= 0) {
            float *st = g->state + l * q * d;
            const float *bias = LMU__GP(L->lmu_b);
            size_t r;
            lmu__gen_ln(m, g->h, g->x, L->ln_b_w, L->ln_b_b);
            lmu_lti_step(m->lti, (int)d, st, g->h, g->state_tmp);
            memcpy(st, g->state_tmp, q * d * sizeof(float));
            /* Z = L m + b: the convolution with L H at this position */
            for (r = 0; r < 3 * qp; r++) {
                const float *Lr = LMU__GP(L->lmu_L) + r * q;
                float *z = g->z + r * d;
                size_t j;
                for (k = 0; k < d; k++) z[k] = bias[r];
                for (j = 0; j < q; j++) {
                    const float *s_j = st + j * d;
                    float w = Lr[j];
                    for (k = 0; k < d; k++) z[k] += w * s_j[k];
                }
            }
            lmu__isa_attn_forward(g->y, g->pc, g->z, LMU__GP(L->lmu_p), 1, qp, d, 1,
                                  g->attn_scratch);
            for (k = 0; k < d; k++) g->x[k] += g->y[k];
        }
        lmu__gen_ffn(g, L->ln_c_w, L->ln_c_b, L->fc_w, L->fc_b, L->fc_proj_w, L->fc_proj_b);
    }
    lmu__gen_ln(m, g->h, g->x, m->ln_f_w, m->ln_f_b);
    lmu__gemv(g->logits, LMU__GP(m->wte), g->h, NULL, (size_t)c->vocab_size, d);
    g->t++;
    return LMU_OK;
}

LMU__PRIVATE int lmu__cand_cmp(const void *a, const void *b)
{
    const lmu__cand *x = (const lmu__cand *)a, *y = (const lmu__cand *)b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

LMUDEF int lmu_gen_sample(lmu_gen *g, float temperature, int top_k, float top_p, lmu_rng *rng)
{
    int V = g->m->cfg.vocab_size, i, n, best = 0;
    float mx = g->logits[0];
    double sum = 0, acc, u;
    for (i = 1; i < V; i++)
        if (g->logits[i] > mx) mx = g->logits[i], best = i;
    if (!(temperature > 0)) return best;
    for (i = 0; i < V; i++) {
        g->cand[i].p = expf((g->logits[i] - mx) / temperature);
        g->cand[i].id = i;
        sum += g->cand[i].p;
    }
    n = V;
    if ((top_k > 0 && top_k < V) || top_p < 1.0f) {
        /* sort only what can matter: candidates within a factor 1e-9 of
           the best carry all but a negligible mass */
        int m = 0;
        for (i = 0; i < V; i++)
            if (g->cand[i].p > 1e-9f) g->cand[m++] = g->cand[i];
        qsort(g->cand, (size_t)m, sizeof *g->cand, lmu__cand_cmp);
        n = m;
        if (top_k > 0 && top_k < n) n = top_k;
        if (top_p < 1.0f) {
            acc = 0;
            for (i = 0; i < n; i++) {
                acc += g->cand[i].p / sum;
                if (acc >= top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
        sum = 0;
        for (i = 0; i < n; i++) sum += g->cand[i].p;
    }
    u = (double)lmu_rng_uniform(rng) * sum;
    acc = 0;
    for (i = 0; i < n; i++) {
        acc += g->cand[i].p;
        if (u < acc) return g->cand[i].id;
    }
    return g->cand[n - 1].id;
}
#undef LMU__GP

#endif
/* >>impl-end model */
