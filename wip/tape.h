/* >>decl-begin tape */
#ifndef LMU_PART_TAPE_H
#define LMU_PART_TAPE_H
#ifdef __cplusplus
extern "C" {
#endif

/* ====================================================================== */
/* >>tensor                                                                */
/* ====================================================================== */
/*
   TENSORS, THE PARAMETER STORE AND THE ACTIVATION ARENA

   A tensor is a row-major view (up to 4 dims, explicit strides in elements)
   into one of three blocks the tape owns:

     LMU_ARENA_PARAM  persistent parameters: one value block and one grad
                      block with the same offsets, sized once by
                      lmu_tape_params_alloc(). Adam's m and v use the same
                      offsets again.
     LMU_ARENA_ACT    float activations of one step. lmu_tape_reset() rewinds
                      it. Activations that need a gradient also get a slot in
                      a separate activation-grad block (own offsets, so caches
                      and no-grad tensors cost no grad memory).
     LMU_ARENA_INT    int32 inputs of one step (token ids, targets).

   A tensor is named by its integer id (its index in the tape's tensor table).
   Ids 0..n_params-1 are parameters and stay valid for the tape's life; the
   other ids are valid until the next lmu_tape_reset().

   MEMORY PLAN. The first step (warm-up) may grow every block and table; the
   first lmu_tape_reset() after anything was recorded then LOCKS the
   capacity, and from then on a step never allocates. A later step that needs
   more (a longer sequence than planned) fails with LMU_ERR_CAPACITY and a
   message in tape->err, unless growth was allowed with
   lmu_tape_set_growth(tape, 1). lmu_tape_reserve() plans capacity up front
   instead. While blocks may still grow, a float* from lmu_tape_data() is
   valid only until the next op is recorded; ids are always stable. Every
   matmul runs through lmu_sgemm with tape->gemm_ws: set it to a workspace
   before the first step, since lmu_sgemm allocates one per call without.

   THREADING. Activations split over rows, weight grads over output rows,
   column reductions (bias, LayerNorm gain, embedding scatter-add) over
   column blocks with rows walked in order: no float reduction depends on
   the thread count, so results are the same bits for any thread count.

   ERRORS. Every call that can fail returns lmu_result (shape mismatch:
   LMU_ERR_SHAPE; token id or target out of range: LMU_ERR_RANGE; capacity:
   LMU_ERR_CAPACITY; wrong order of calls: LMU_ERR_STATE) and writes a detail
   message into tape->err. After an error inside a step, call
   lmu_tape_reset() before recording again.
*/

#define LMU_TENSOR_MAX_DIMS 4
#define LMU_TENSOR_NAME_MAX 64
/* Every tensor starts on a 64-byte boundary (16 floats / ints). */
#define LMU_TENSOR_ALIGN 16
#define LMU_NO_GRAD ((size_t)-1)

typedef enum lmu_arena { LMU_ARENA_PARAM = 0, LMU_ARENA_ACT = 1, LMU_ARENA_INT = 2 } lmu_arena;

typedef struct lmu_tensor {
    char name[LMU_TENSOR_NAME_MAX]; /* parameters: checkpoint name; else "" */
    int ndim;                       /* 0 (scalar) .. LMU_TENSOR_MAX_DIMS */
    int shape[LMU_TENSOR_MAX_DIMS]; /* (ndim) */
    size_t stride[LMU_TENSOR_MAX_DIMS]; /* (ndim) elements; contiguous today */
    size_t size;                    /* elements, product of shape */
    size_t off;                     /* element offset into its arena */
    size_t goff;                    /* element offset into its grad block, or LMU_NO_GRAD */
    int arena;                      /* lmu_arena */
    int frozen;                     /* parameters only: no grad, no update (the LMU's H) */
} lmu_tensor;

/* ====================================================================== */
/* >>tape                                                                  */
/* ====================================================================== */
/*
   THE OP LIST. One X-macro gives the enum and lmu_op_name(); the
   implementation checks the name table against LMU_OP_COUNT at compile time.

   ADDING AN OP (a sequence mixer, a fused kernel from kernels.h):
     1. Add X(LMU_OP_FOO, "foo") to LMU__OPS below (before LMU_OP_CUSTOM).
     2. Write (or take from kernels.h) the two kernels on raw pointers, in
        llm.c's shape:
          lmu__foo_forward(out, cache..., inp, weights..., dims)
          lmu__foo_backward(dinp, dweight..., dout, inp, cache..., weights, dims)
        Backward ACCUMULATES (+=) and skips any d-pointer that is NULL (that
        input needs no gradient). No allocation; threads only over disjoint
        writes, schedule(static), no thread-count-dependent float reductions.
     3. Write the recording function lmu_tape_foo(tape, ins..., &out):
          - check shapes, else return lmu__tape_fail(t, LMU_ERR_SHAPE, ...);
          - copy every shape you need into locals (the tensor table may move);
          - lmu__tape_new_act(t, ndim, shape, lmu__tape_needs_grad(t, x), &y)
            for the output, and with needs_grad 0 for each cache (mean, rstd,
            softmax rows, FFT spectra of the input...);
          - lmu__tape_push(t, LMU_OP_FOO, y, &rec), then fill rec->in[],
            rec->cache[], rec->ip[] (dims, flags), rec->fp[] (scales, eps) and
            rec->aux (an object that never moves and outlives the step: an FFT
            plan or precomputed spectra owned by the model; not owned here);
          - fetch pointers NOW (lmu__tape_f32/lmu__tape_i32) and call the
            forward kernel.
     4. Add `case LMU_OP_FOO:` to the switch in lmu__tape_backward_rec(): fetch
        dout and each input's grad with lmu__tape_g32() (NULL = not needed) and
        call the backward kernel.
     5. Add a double-precision finite-difference check to tests/test_ops.c.
   For experiments outside the library, LMU_OP_CUSTOM (lmu_tape_custom) takes
   a backward callback instead of a switch case.
*/
#define LMU__OPS(X)                                                            \
    X(LMU_OP_NONE, "none")                                                     \
    X(LMU_OP_EMBEDDING, "embedding")                                           \
    X(LMU_OP_LINEAR, "linear")                                                 \
    X(LMU_OP_MATMUL, "matmul")                                                 \
    X(LMU_OP_ADD, "add")                                                       \
    X(LMU_OP_SCALE, "scale")                                                   \
    X(LMU_OP_LAYERNORM, "layernorm")                                           \
    X(LMU_OP_GELU, "gelu")                                                     \
    X(LMU_OP_SOFTMAX, "softmax")                                               \
    X(LMU_OP_CROSS_ENTROPY, "cross_entropy")                                   \
    X(LMU_OP_SUM, "sum")                                                       \
    X(LMU_OP_CUSTOM, "custom")

typedef enum lmu_op {
#define LMU__OP_ENUM_ITEM(name, text) name,
    LMU__OPS(LMU__OP_ENUM_ITEM)
#undef LMU__OP_ENUM_ITEM
    LMU_OP_COUNT
} lmu_op;

#define LMU_TAPE_MAX_IN 6
#define LMU_TAPE_MAX_CACHE 4
#define LMU_TAPE_MAX_IP 8
#define LMU_TAPE_MAX_FP 4

struct lmu_gemm_ws; /* >>gemm's packing workspace */

/* One recorded op. Only ids and plain numbers: the tables and arenas it
   refers to may move during warm-up. */
typedef struct lmu_tape_rec {
    int op;                        /* lmu_op */
    int out;                       /* output tensor id */
    int in[LMU_TAPE_MAX_IN];       /* input tensor ids, -1 if unused */
    int cache[LMU_TAPE_MAX_CACHE]; /* tensors saved for backward, -1 if unused */
    int ip[LMU_TAPE_MAX_IP];       /* op-specific ints: flags, dims */
    float fp[LMU_TAPE_MAX_FP];     /* op-specific floats: scale, eps */
    const void *aux;               /* never-moving object (FFT plan...), not owned */
} lmu_tape_rec;

typedef struct lmu_tape {
    lmu_tensor *tensors;  /* (cap_tensors) params first, then this step's tensors */
    int n_tensors, cap_tensors, n_params;
    lmu_tape_rec *recs;   /* (cap_recs) this step's ops in order */
    int n_recs, cap_recs;
    float *param;         /* (param_size) parameter values */
    float *param_grad;    /* (param_size) parameter grads, same offsets */
    size_t param_size;
    int params_ready;     /* lmu_tape_params_alloc() done */
    float *act;           /* (act_cap) activations; act_used in use */
    size_t act_used, act_cap;
    float *act_grad;      /* (grad_cap) activation grads; grad_used in use */
    size_t grad_used, grad_cap;
    int *ints;            /* (int_cap) int inputs; int_used in use */
    size_t int_used, int_cap;
    /* [optional] packing workspace handed to every matmul (lmu_sgemm); not
       owned. Set it before the first step: lmu_sgemm given NULL allocates a
       workspace per call, which breaks "no allocation after warm-up". */
    struct lmu_gemm_ws *gemm_ws;
    int locked;           /* capacity fixed: growing is LMU_ERR_CAPACITY */
    int allow_growth;     /* never lock */
    char err[256];        /* detail of the last error */
} lmu_tape;

/* Custom op for code outside the library. Embed this struct at the start of
   your own and cast rec->aux back to reach your data. */
typedef struct lmu_tape_custom {
    const char *name;
    /* Accumulates into the grads of rec->in[] (lmu_tape_grad may be NULL for
       an input that needs none). Returns LMU_OK or an error. */
    lmu_result (*backward)(lmu_tape *tape, const lmu_tape_rec *rec);
} lmu_tape_custom;

/* Returns the op's name ("linear"), or "unknown" for a bad value. */
LMUDEF const char *lmu_op_name(lmu_op op);

/* Initialises an empty tape; allocates nothing.
   [out] tape
   Returns LMU_OK, or LMU_ERR_ARG for NULL. */
LMUDEF lmu_result lmu_tape_init(lmu_tape *tape);

/* Frees everything the tape owns and zeroes it. NULL-safe. */
LMUDEF void lmu_tape_free(lmu_tape *tape);

/* Declares a parameter (before lmu_tape_params_alloc).
   [in]  name    up to LMU_TENSOR_NAME_MAX-1 chars, unique
   [in]  ndim    1..4
   [in]  shape   (ndim) positive
   [in]  frozen  1: never gets a grad or an update
   [out] id      its tensor id (stable for the tape's life)
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_SHAPE, LMU_ERR_STATE (already
   allocated), LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_tape_param(lmu_tape *tape, const char *name, int ndim, const int *shape,
                                 int frozen, int *id);

/* Allocates the parameter value and grad blocks once, both zeroed.
   Returns LMU_OK, LMU_ERR_STATE (twice), LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_tape_params_alloc(lmu_tape *tape);

/* Returns the id of the parameter called name, or -1. */
LMUDEF int lmu_tape_find(const lmu_tape *tape, const char *name);

/* Freezes (1) or unfreezes (0) a parameter. Takes effect for ops recorded
   afterwards and for the optimizer.
   Returns LMU_OK or LMU_ERR_ARG (not a parameter). */
LMUDEF lmu_result lmu_tape_set_frozen(lmu_tape *tape, int id, int frozen);

/* Plans capacity up front, so even the first step need not grow; never
   shrinks. Before the lock only (a locked tape answers LMU_ERR_CAPACITY when
   asked for more).
   [in] act_floats   activation arena, floats (each tensor padded to 16)
   [in] grad_floats  activation-grad arena, floats
   [in] ints         int arena, ints
   [in] tensors      tensor-table entries beyond the parameters
   [in] recs         op records
   0 leaves that one as is.
   Returns LMU_OK, LMU_ERR_CAPACITY (locked), LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_tape_reserve(lmu_tape *tape, size_t act_floats, size_t grad_floats,
                                   size_t ints, int tensors, int recs);

/* allow = 1: blocks may keep growing after warm-up (a step may then
   allocate); 0 (default): capacity locks at the first reset after a step. */
LMUDEF void lmu_tape_set_growth(lmu_tape *tape, int allow);

/* Rewinds the activation arenas and the op list for the next step. The
   first reset after anything was recorded locks the capacity (see MEMORY
   PLAN). Parameters and their grads are untouched. */
LMUDEF void lmu_tape_reset(lmu_tape *tape);

/* Copies int inputs (token ids, targets) into the step's int arena.
   [in]  data         (prod shape) values; range-checked by the op using them
   [in]  ndim, shape  1..4 dims
   [out] id
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_SHAPE, LMU_ERR_CAPACITY, LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_tape_input_ids(lmu_tape *tape, const int *data, int ndim,
                                     const int *shape, int *id);

/* A float activation leaf (an input, or a test's probe).
   [in, optional] data  (prod shape) initial values; NULL: zeros
   [in]  needs_grad     1: backward accumulates its grad (readable after)
   [out] id
   Returns as lmu_tape_input_ids. */
LMUDEF lmu_result lmu_tape_leaf(lmu_tape *tape, const float *data, int ndim, const int *shape,
                                int needs_grad, int *id);

/* Returns the tensor with this id, or NULL. The pointer is valid until the
   next op is recorded or the tape is reset. */
LMUDEF const lmu_tensor *lmu_tape_tensor(const lmu_tape *tape, int id);
/* Returns the float values of a tensor (NULL for an int tensor or bad id). */
LMUDEF float *lmu_tape_data(lmu_tape *tape, int id);
/* Returns the grad of a tensor, or NULL when it has none (frozen, int, no
   grad-requiring input upstream). */
LMUDEF float *lmu_tape_grad(lmu_tape *tape, int id);
/* Returns the int values of an int tensor, or NULL. */
LMUDEF int *lmu_tape_ints(lmu_tape *tape, int id);

/* A new view of x with another shape (same element count, no copy, shares
   the grad). No op is recorded.
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_SHAPE, LMU_ERR_CAPACITY. */
LMUDEF lmu_result lmu_tape_view(lmu_tape *tape, int x, int ndim, const int *shape, int *out);

/* Backward from a scalar loss: zeroes the used activation grads, seeds
   dloss = 1 and runs every recorded op's backward in reverse. Parameter
   grads ACCUMULATE (call lmu_tape_zero_grad between steps; skip it to
   accumulate micro-batches).
   [in] loss  id of a 1-element activation with a grad
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_STATE (loss needs no grad). */
LMUDEF lmu_result lmu_tape_backward(lmu_tape *tape, int loss);

/* As lmu_tape_backward, from any activation with a given upstream grad.
   [in, optional] seed  (size of out) dL/dout; NULL: all ones */
LMUDEF lmu_result lmu_tape_backward_seed(lmu_tape *tape, int out, const float *seed);

/* Zeroes every parameter grad (frozen ones included: they stay zero). */
LMUDEF void lmu_tape_zero_grad(lmu_tape *tape);

/* ====================================================================== */
/* >>ops                                                                   */
/* ====================================================================== */
/* Every op: [in] input ids, [out] out = id of the new activation.
   Shapes: "..." is any leading dims (flattened into rows), up to 4 in all.
   Each returns LMU_OK, LMU_ERR_ARG (bad id), LMU_ERR_SHAPE (with a message),
   LMU_ERR_RANGE (ids/targets), LMU_ERR_CAPACITY or LMU_ERR_NOMEM. */

/* out[..., C] = table[ids[...], :]. ids: int tensor, 1..3 dims; table (V, C).
   Backward scatter-adds into the table's grad. */
LMUDEF lmu_result lmu_tape_embedding(lmu_tape *tape, int ids, int table, int *out);

/* out = x W^T + b with x (..., K), W (N, K) as PyTorch's [out, in];
   w_in_out = 1 takes W as (K, N) instead: out = x W + b. b: (N) or -1. */
LMUDEF lmu_result lmu_tape_linear(lmu_tape *tape, int x, int w, int b, int w_in_out, int *out);

/* out = alpha op(a) op(b), batched over equal leading dims.
   a: (..., M, K), or (..., K, M) if trans_a; b: (..., K, N), or (..., N, K)
   if trans_b; out: (..., M, N). */
LMUDEF lmu_result lmu_tape_matmul(lmu_tape *tape, int a, int b, int trans_a, int trans_b,
                                  float alpha, int *out);

/* out = a + b. b has a's shape, or a's trailing dims (broadcast over the
   leading ones, e.g. a bias). */
LMUDEF lmu_result lmu_tape_add(lmu_tape *tape, int a, int b, int *out);

/* out = s x. */
LMUDEF lmu_result lmu_tape_scale(lmu_tape *tape, int x, float s, int *out);

/* LayerNorm over the last dim C: eps 1e-5, biased variance, gain g (C) and
   bias b (C). Caches mean and rstd per row. */
LMUDEF lmu_result lmu_tape_layernorm(lmu_tape *tape, int x, int g, int b, int *out);

/* gelu, tanh form (GPT-2). */
LMUDEF lmu_result lmu_tape_gelu(lmu_tape *tape, int x, int *out);

/* Softmax over the last dim. */
LMUDEF lmu_result lmu_tape_softmax(lmu_tape *tape, int x, int *out);

/* Reference cross-entropy: mean over rows of -log softmax(logits)[target],
   in nats. logits (..., V) float; targets: int tensor with one value per
   row, each in [0, V). out: scalar. Materialises nothing beyond a
   log-sum-exp per row; the fused kernel replaces it for large V. */
LMUDEF lmu_result lmu_tape_cross_entropy(lmu_tape *tape, int logits, int targets, int *out);

/* out = scale * sum(x), a scalar; lmu_tape_mean uses scale = 1/size. The
   forward sum runs serially in double (order fixed). */
LMUDEF lmu_result lmu_tape_sum(lmu_tape *tape, int x, float scale, int *out);
LMUDEF lmu_result lmu_tape_mean(lmu_tape *tape, int x, int *out);

/* Records a custom op: allocates out (ndim, shape) and records `op` (which
   must outlive the step) with inputs in[0..n_in-1]. The caller computes the
   forward into lmu_tape_data(tape, *out) right after. */
LMUDEF lmu_result lmu_tape_custom_op(lmu_tape *tape, const lmu_tape_custom *op, int n_in,
                                     const int *in, int ndim, const int *shape, int *out);

/* ====================================================================== */
/* >>optim                                                                 */
/* ====================================================================== */

/* Adam / AdamW. lmu_adam_init sets beta1 0.9, beta2 0.999, eps 1e-8,
   weight_decay 0 (MODEL.md section 5); change the fields after init.
   Decoupled weight decay (AdamW) applies to parameters of 2+ dims only. */
typedef struct lmu_adam {
    float beta1, beta2, eps, weight_decay;
    uint64_t step;   /* updates done; bias correction uses step+1 */
    size_t n;        /* = tape->param_size */
    float *m, *v;    /* (n) moments, same offsets as the parameter block */
} lmu_adam;

/* [out] opt  [in] tape (parameters allocated). Allocates zeroed m, v.
   Returns LMU_OK, LMU_ERR_STATE, LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_adam_init(lmu_adam *opt, const lmu_tape *tape);
LMUDEF void lmu_adam_free(lmu_adam *opt);

/* One update of every non-frozen parameter from its grad.
   [in] lr  this step's learning rate (see lmu_lr_schedule)
   Returns LMU_OK, LMU_ERR_ARG (sizes do not match the tape). */
LMUDEF lmu_result lmu_adam_step(lmu_adam *opt, lmu_tape *tape, float lr);

/* Copies the state out / in, for bit-exact resume.
   [out/in] step; [out/in, optional] m, v  (opt->n floats each) */
LMUDEF void lmu_adam_export(const lmu_adam *opt, uint64_t *step, float *m, float *v);
LMUDEF void lmu_adam_import(lmu_adam *opt, uint64_t step, const float *m, const float *v);

/* Returns the global L2 norm of the non-frozen parameter grads, summed in
   double in a fixed order (independent of the thread count). */
LMUDEF double lmu_tape_grad_norm(const lmu_tape *tape);

/* Scales all grads by max_norm / norm when the global norm exceeds max_norm.
   [out, optional] norm  the norm before clipping
   Returns LMU_OK, LMU_ERR_NONFINITE (a NaN/Inf grad: nothing is scaled),
   LMU_ERR_ARG (max_norm <= 0). */
LMUDEF lmu_result lmu_tape_clip_grad_norm(lmu_tape *tape, float max_norm, double *norm);

/* Linear warmup then cosine decay to zero; step counts from 0.
     step < warmup:  lr_max * (step + 1) / warmup
     else:           lr_max * 0.5 * (1 + cos(pi * p)),
                     p = (step - warmup) / (total - warmup), clamped to [0, 1]
   so the last warmup step reaches lr_max and step >= total gives 0. */
LMUDEF float lmu_lr_schedule(long step, long warmup, long total, float lr_max);

#ifdef __cplusplus
}
#endif
#endif
/* >>decl-end tape */

/* >>impl-begin tape */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_PART_TAPE_IMPL_DONE)
#define LMU_PART_TAPE_IMPL_DONE

static const char *const lmu__op_names[] = {
#define LMU__OP_NAME_ITEM(name, text) text,
    LMU__OPS(LMU__OP_NAME_ITEM)
#undef LMU__OP_NAME_ITEM
};
/* C99 has no static_assert: a negative array size stops the build if the
   name table and the enum ever disagree. */
typedef char lmu__op_names_match_enum[(sizeof(lmu__op_names) / sizeof(lmu__op_names[0]) ==
                                       (size_t)LMU_OP_COUNT) ? 1 : -1];

LMUDEF const char *lmu_op_name(lmu_op op)
{
    if ((int)op < 0 || (int)op >= (int)LMU_OP_COUNT) return "unknown";
    return lmu__op_names[op];
}

/* ---------------------------------------------------------------------- */
/* matmul routing                                                          */
/* ---------------------------------------------------------------------- */

/* Row-major C[M x N] = alpha op(A) op(B) + beta C; beta == 0 ignores C.
   The oracle and fallback for the packed gemm. Each C row belongs to one
   thread and sums in a fixed order, so results do not depend on the thread
   count. */
LMU__PRIVATE lmu_result lmu__tape_gemm_naive(struct lmu_gemm_ws *ws, int trans_a, int trans_b,
                                             size_t M, size_t N, size_t K, float alpha,
                                             const float *A, size_t lda, const float *B,
                                             size_t ldb, float beta, float *C, size_t ldc)
{
    long i;
    (void)ws;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)M; i++) {
        float *c_i = C + (size_t)i * ldc;
        size_t j, k;
        if (beta == 0.0f)
            for (j = 0; j < N; j++) c_i[j] = 0.0f;
        else if (beta != 1.0f)
            for (j = 0; j < N; j++) c_i[j] *= beta;
        if (!trans_b) {
            for (k = 0; k < K; k++) {
                const float *b_k = B + k * ldb;
                float a_ik = alpha * (trans_a ? A[k * lda + (size_t)i] : A[(size_t)i * lda + k]);
                for (j = 0; j < N; j++) c_i[j] += a_ik * b_k[j];
            }
        } else {
            for (j = 0; j < N; j++) {
                const float *b_j = B + j * ldb;
                float s = 0.0f;
                if (trans_a)
                    for (k = 0; k < K; k++) s += A[k * lda + (size_t)i] * b_j[k];
                else
                    for (k = 0; k < K; k++) s += A[(size_t)i * lda + k] * b_j[k];
                c_i[j] += alpha * s;
            }
        }
    }
    return LMU_OK;
}

/* Every matmul of the tape goes through here, with tape->gemm_ws. When
   >>gemm is spliced in, the body becomes
       return lmu_sgemm(ws, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
   (struct lmu_gemm_ws is gemm's typedef'd struct, so the types agree). */
LMU__PRIVATE lmu_result lmu__tape_sgemm(struct lmu_gemm_ws *ws, int trans_a, int trans_b,
                                        size_t M, size_t N, size_t K, float alpha,
                                        const float *A, size_t lda, const float *B, size_t ldb,
                                        float beta, float *C, size_t ldc)
{
#ifdef LMU_PART_GEMM_H
    return lmu_sgemm(ws, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    return lmu__tape_gemm_naive(ws, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                ldc);
#endif
}

/* ---------------------------------------------------------------------- */
/* kernels: one forward, one backward per op (raw pointers, += backward)   */
/* ---------------------------------------------------------------------- */
/* Dims: N = rows (all leading dims flattened), C = channels (last dim),
   V = vocabulary, K = linear input width, M = linear output width. */

/* Column sums dst[c] += sum_r src[r, c]. Threads own blocks of 16 columns
   and walk the rows in order: parallel, yet the same bits for any thread
   count. Accumulates in double because N (rows) can be large. */
LMU__PRIVATE void lmu__colsum_acc(float *dst, const float *src, size_t N, size_t C)
{
    long cb;
    long nblk = (long)((C + 15) / 16);
    LMU__OMP(omp parallel for schedule(static))
    for (cb = 0; cb < nblk; cb++) {
        double acc[16];
        size_t c0 = (size_t)cb * 16, c1 = c0 + 16 < C ? c0 + 16 : C, c, r;
        for (c = c0; c < c1; c++) acc[c - c0] = 0.0;
        for (r = 0; r < N; r++) {
            const float *s_r = src + r * C;
            for (c = c0; c < c1; c++) acc[c - c0] += s_r[c];
        }
        for (c = c0; c < c1; c++) dst[c] += (float)acc[c - c0];
    }
}

LMU__PRIVATE void lmu__embedding_forward(float *out, const int *ids, const float *wte, size_t N,
                                         size_t C)
{
    long n;
    LMU__OMP(omp parallel for schedule(static))
    for (n = 0; n < (long)N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)ids[n] * C, C * sizeof(float));
}

/* Scatter-add: rows with the same id hit the same table row, so threads
   split the columns instead of the rows and each walks the rows in order. */
LMU__PRIVATE void lmu__embedding_backward(float *dwte, const float *dout, const int *ids, size_t N,
                                          size_t C)
{
    long cb;
    long nblk = (long)((C + 15) / 16);
    LMU__OMP(omp parallel for schedule(static))
    for (cb = 0; cb < nblk; cb++) {
        size_t c0 = (size_t)cb * 16, c1 = c0 + 16 < C ? c0 + 16 : C, c, n;
        for (n = 0; n < N; n++) {
            float *dw_row = dwte + (size_t)ids[n] * C;
            const float *dout_n = dout + n * C;
            for (c = c0; c < c1; c++) dw_row[c] += dout_n[c];
        }
    }
}

/* out (N, M) = inp (N, K) W^T + b, W (M, K); or W (K, M) if w_in_out. */
LMU__PRIVATE lmu_result lmu__linear_forward(struct lmu_gemm_ws *ws, float *out, const float *inp,
                                            const float *w, const float *b, size_t N, size_t K,
                                            size_t M, int w_in_out)
{
    float beta = 0.0f;
    if (b) {
        long n;
        LMU__OMP(omp parallel for schedule(static))
        for (n = 0; n < (long)N; n++) memcpy(out + (size_t)n * M, b, M * sizeof(float));
        beta = 1.0f;
    }
    return lmu__tape_sgemm(ws, 0, !w_in_out, N, M, K, 1.0f, inp, K, w, w_in_out ? M : K, beta,
                           out, M);
}

LMU__PRIVATE lmu_result lmu__linear_backward(struct lmu_gemm_ws *ws, float *dinp, float *dw,
                                             float *db, const float *dout, const float *inp,
                                             const float *w, size_t N, size_t K, size_t M,
                                             int w_in_out)
{
    lmu_result r = LMU_OK;
    if (dinp) /* dinp (N, K) += dout (N, M) W (M, K), or dout W^T for (K, M) */
        r = lmu__tape_sgemm(ws, 0, w_in_out, N, K, M, 1.0f, dout, M, w, w_in_out ? M : K, 1.0f,
                            dinp, K);
    if (dw && r == LMU_OK) {
        if (!w_in_out) /* dW (M, K) += dout^T inp: threads own output rows */
            r = lmu__tape_sgemm(ws, 1, 0, M, K, N, 1.0f, dout, M, inp, K, 1.0f, dw, K);
        else /* dW (K, M) += inp^T dout */
            r = lmu__tape_sgemm(ws, 1, 0, K, M, N, 1.0f, inp, K, dout, M, 1.0f, dw, M);
    }
    if (db) lmu__colsum_acc(db, dout, N, M);
    return r;
}

/* Batched out (P, M, N) = alpha op(a) op(b); a is (P, M, K) or (P, K, M),
   b is (P, K, N) or (P, N, K). */
LMU__PRIVATE lmu_result lmu__matmul_forward(struct lmu_gemm_ws *ws, float *out, const float *a,
                                            const float *b, size_t P, size_t M, size_t N,
                                            size_t K, int ta, int tb, float alpha)
{
    size_t p, lda = ta ? M : K, ldb = tb ? K : N;
    lmu_result r = LMU_OK;
    for (p = 0; p < P && r == LMU_OK; p++)
        r = lmu__tape_sgemm(ws, ta, tb, M, N, K, alpha, a + p * M * K, lda, b + p * K * N, ldb,
                            0.0f, out + p * M * N, N);
    return r;
}

LMU__PRIVATE lmu_result lmu__matmul_backward(struct lmu_gemm_ws *ws, float *da, float *db,
                                             const float *dout, const float *a, const float *b,
                                             size_t P, size_t M, size_t N, size_t K, int ta, int tb,
                                             float alpha)
{
    size_t p, lda = ta ? M : K, ldb = tb ? K : N;
    lmu_result r = LMU_OK;
    for (p = 0; p < P && r == LMU_OK; p++) {
        const float *a_p = a + p * M * K, *b_p = b + p * K * N, *dout_p = dout + p * M * N;
        if (da) {
            if (!ta) /* dA (M, K) += alpha dout op(b)^T */
                r = lmu__tape_sgemm(ws, 0, !tb, M, K, N, alpha, dout_p, N, b_p, ldb, 1.0f,
                                da + p * M * K, K);
            else /* dA (K, M) += alpha op(b) dout^T */
                r = lmu__tape_sgemm(ws, tb, 1, K, M, N, alpha, b_p, ldb, dout_p, N, 1.0f,
                                da + p * M * K, M);
        }
        if (db && r == LMU_OK) {
            if (!tb) /* dB (K, N) += alpha op(a)^T dout */
                r = lmu__tape_sgemm(ws, !ta, 0, K, N, M, alpha, a_p, lda, dout_p, N, 1.0f,
                                db + p * K * N, N);
            else /* dB (N, K) += alpha dout^T op(a) */
                r = lmu__tape_sgemm(ws, 1, ta, N, K, M, alpha, dout_p, N, a_p, lda, 1.0f,
                                db + p * K * N, K);
        }
    }
    return r;
}

/* out (n) = a (n) + b (nb), b repeated n / nb times. */
LMU__PRIVATE void lmu__add_forward(float *out, const float *a, const float *b, size_t n, size_t nb)
{
    long i;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)n; i++) out[i] = a[i] + b[(size_t)i % nb];
}

LMU__PRIVATE void lmu__add_backward(float *da, float *db, const float *dout, size_t n, size_t nb)
{
    long i;
    if (da) {
        LMU__OMP(omp parallel for schedule(static))
        for (i = 0; i < (long)n; i++) da[i] += dout[i];
    }
    if (db) {
        if (nb == n) {
            LMU__OMP(omp parallel for schedule(static))
            for (i = 0; i < (long)n; i++) db[i] += dout[i];
        } else {
            lmu__colsum_acc(db, dout, n / nb, nb);
        }
    }
}

LMU__PRIVATE void lmu__scale_forward(float *out, const float *inp, float s, size_t n)
{
    long i;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)n; i++) out[i] = s * inp[i];
}

LMU__PRIVATE void lmu__scale_backward(float *dinp, const float *dout, float s, size_t n)
{
    long i;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)n; i++) dinp[i] += s * dout[i];
}

/* out (N, C) = (inp - mean) * rstd * g + b; mean, rstd (N) cached. */
LMU__PRIVATE void lmu__layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                         const float *g, const float *b, size_t N, size_t C,
                                         float eps)
{
    long n;
    LMU__OMP(omp parallel for schedule(static))
    for (n = 0; n < (long)N; n++) {
        const float *x_n = inp + (size_t)n * C;
        float *out_n = out + (size_t)n * C;
        float m = 0.0f, v = 0.0f, s;
        size_t c;
        for (c = 0; c < C; c++) m += x_n[c];
        m /= (float)C;
        /* two passes: the one-pass E[x^2] - m^2 cancels badly */
        for (c = 0; c < C; c++) v += (x_n[c] - m) * (x_n[c] - m);
        v /= (float)C;
        s = 1.0f / sqrtf(v + eps);
        for (c = 0; c < C; c++) out_n[c] = (x_n[c] - m) * s * g[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

LMU__PRIVATE void lmu__layernorm_backward(float *dinp, float *dg, float *db, const float *dout,
                                          const float *inp, const float *mean, const float *rstd,
                                          const float *g, size_t N, size_t C)
{
    if (dinp) {
        long n;
        LMU__OMP(omp parallel for schedule(static))
        for (n = 0; n < (long)N; n++) {
            const float *x_n = inp + (size_t)n * C, *dout_n = dout + (size_t)n * C;
            float *dinp_n = dinp + (size_t)n * C;
            float m = mean[n], s = rstd[n], dnorm_mean = 0.0f, dnorm_xhat_mean = 0.0f;
            size_t c;
            for (c = 0; c < C; c++) {
                float xhat = (x_n[c] - m) * s, dnorm = g[c] * dout_n[c];
                dnorm_mean += dnorm;
                dnorm_xhat_mean += dnorm * xhat;
            }
            dnorm_mean /= (float)C;
            dnorm_xhat_mean /= (float)C;
            for (c = 0; c < C; c++) {
                float xhat = (x_n[c] - m) * s, dnorm = g[c] * dout_n[c];
                dinp_n[c] += s * (dnorm - dnorm_mean - xhat * dnorm_xhat_mean);
            }
        }
    }
    if (db) lmu__colsum_acc(db, dout, N, C);
    if (dg) { /* dg[c] += sum_n dout * xhat, column blocks as in lmu__colsum_acc */
        long cb;
        long nblk = (long)((C + 15) / 16);
        LMU__OMP(omp parallel for schedule(static))
        for (cb = 0; cb < nblk; cb++) {
            double acc[16];
            size_t c0 = (size_t)cb * 16, c1 = c0 + 16 < C ? c0 + 16 : C, c, n;
            for (c = c0; c < c1; c++) acc[c - c0] = 0.0;
            for (n = 0; n < N; n++) {
                const float *x_n = inp + n * C, *dout_n = dout + n * C;
                for (c = c0; c < c1; c++) acc[c - c0] += dout_n[c] * ((x_n[c] - mean[n]) * rstd[n]);
            }
            for (c = c0; c < c1; c++) dg[c] += (float)acc[c - c0];
        }
    }
}

#define LMU__GELU_S 0.7978845608028654f /* sqrt(2/pi) */

LMU__PRIVATE void lmu__gelu_forward(float *out, const float *inp, size_t n)
{
    long i;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(LMU__GELU_S * (x + 0.044715f * x * x * x)));
    }
}

LMU__PRIVATE void lmu__gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    long i;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)n; i++) {
        float x = inp[i];
        float th = tanhf(LMU__GELU_S * (x + 0.044715f * x * x * x));
        float du = LMU__GELU_S * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du);
    }
}

LMU__PRIVATE void lmu__softmax_forward(float *out, const float *inp, size_t N, size_t C)
{
    long n;
    LMU__OMP(omp parallel for schedule(static))
    for (n = 0; n < (long)N; n++) {
        const float *x_n = inp + (size_t)n * C;
        float *y_n = out + (size_t)n * C;
        float mx = -FLT_MAX, s = 0.0f;
        size_t c;
        for (c = 0; c < C; c++) mx = x_n[c] > mx ? x_n[c] : mx;
        for (c = 0; c < C; c++) s += (y_n[c] = expf(x_n[c] - mx));
        s = 1.0f / s;
        for (c = 0; c < C; c++) y_n[c] *= s;
    }
}

/* Needs only the output: dx = y (dy - sum(dy y)). */
LMU__PRIVATE void lmu__softmax_backward(float *dinp, const float *dout, const float *out, size_t N,
                                        size_t C)
{
    long n;
    LMU__OMP(omp parallel for schedule(static))
    for (n = 0; n < (long)N; n++) {
        const float *y_n = out + (size_t)n * C, *dy_n = dout + (size_t)n * C;
        float *dx_n = dinp + (size_t)n * C;
        float dot = 0.0f;
        size_t c;
        for (c = 0; c < C; c++) dot += dy_n[c] * y_n[c];
        for (c = 0; c < C; c++) dx_n[c] += y_n[c] * (dy_n[c] - dot);
    }
}

/* loss = mean_n (lse_n - logits[n, t_n]); lse (N) cached for backward. The
   rows run in parallel, the mean is summed serially in double. */
LMU__PRIVATE void lmu__cross_entropy_forward(float *loss, float *lse, const float *logits,
                                             const int *targets, size_t N, size_t V)
{
    long n;
    double total = 0.0;
    size_t r;
    LMU__OMP(omp parallel for schedule(static))
    for (n = 0; n < (long)N; n++) {
        const float *z_n = logits + (size_t)n * V;
        float mx = -FLT_MAX, s = 0.0f;
        size_t v;
        for (v = 0; v < V; v++) mx = z_n[v] > mx ? z_n[v] : mx;
        for (v = 0; v < V; v++) s += expf(z_n[v] - mx);
        lse[n] = mx + logf(s);
    }
    for (r = 0; r < N; r++) total += (double)lse[r] - (double)logits[r * V + (size_t)targets[r]];
    *loss = (float)(total / (double)N);
}

LMU__PRIVATE void lmu__cross_entropy_backward(float *dlogits, const float *dloss,
                                              const float *logits, const float *lse,
                                              const int *targets, size_t N, size_t V)
{
    long n;
    float d = dloss[0] / (float)N;
    LMU__OMP(omp parallel for schedule(static))
    for (n = 0; n < (long)N; n++) {
        const float *z_n = logits + (size_t)n * V;
        float *dz_n = dlogits + (size_t)n * V;
        float l = lse[n];
        size_t v;
        for (v = 0; v < V; v++) dz_n[v] += d * expf(z_n[v] - l);
        dz_n[targets[n]] -= d;
    }
}

LMU__PRIVATE void lmu__sum_forward(float *out, const float *inp, float scale, size_t n)
{
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += inp[i];
    *out = (float)(s * scale);
}

LMU__PRIVATE void lmu__sum_backward(float *dinp, const float *dout, float scale, size_t n)
{
    long i;
    float d = dout[0] * scale;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)n; i++) dinp[i] += d;
}

/* ---------------------------------------------------------------------- */
/* tape internals                                                          */
/* ---------------------------------------------------------------------- */

LMU__PRIVATE lmu_result lmu__tape_fail(lmu_tape *t, lmu_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    return r;
}

LMU__PRIVATE size_t lmu__tape_pad(size_t n)
{
    return (n + (LMU_TENSOR_ALIGN - 1)) / LMU_TENSOR_ALIGN * LMU_TENSOR_ALIGN;
}

LMU__PRIVATE int lmu__tape_valid(const lmu_tape *t, int id)
{
    return t && id >= 0 && id < t->n_tensors;
}

LMU__PRIVATE float *lmu__tape_f32(lmu_tape *t, int id)
{
    const lmu_tensor *x = &t->tensors[id];
    if (x->arena == LMU_ARENA_PARAM) return t->param + x->off;
    if (x->arena == LMU_ARENA_ACT) return t->act + x->off;
    return NULL;
}

LMU__PRIVATE int *lmu__tape_i32(lmu_tape *t, int id)
{
    const lmu_tensor *x = &t->tensors[id];
    return x->arena == LMU_ARENA_INT ? t->ints + x->off : NULL;
}

/* Grad pointer, or NULL when this tensor takes no gradient (now). */
LMU__PRIVATE float *lmu__tape_g32(lmu_tape *t, int id)
{
    const lmu_tensor *x;
    if (id < 0) return NULL;
    x = &t->tensors[id];
    if (x->goff == LMU_NO_GRAD) return NULL;
    if (x->arena == LMU_ARENA_PARAM) return x->frozen ? NULL : t->param_grad + x->goff;
    if (x->arena == LMU_ARENA_ACT) return t->act_grad + x->goff;
    return NULL;
}

LMU__PRIVATE int lmu__tape_needs_grad(const lmu_tape *t, int id)
{
    const lmu_tensor *x = &t->tensors[id];
    if (x->arena == LMU_ARENA_PARAM) return !x->frozen;
    return x->goff != LMU_NO_GRAD;
}

/* Grows an aligned block to hold `need` elements, keeping the first `used`.
   Geometric growth keeps the warm-up step to a few copies. */
LMU__PRIVATE lmu_result lmu__tape_grow(lmu_tape *t, void **p, size_t *cap, size_t need,
                                       size_t used, size_t elem, const char *what)
{
    size_t ncap, bytes;
    void *np;
    if (need <= *cap) return LMU_OK;
    if (t->locked)
        return lmu__tape_fail(t, LMU_ERR_CAPACITY,
                              "%s: needs %lu elements, planned %lu at the first step "
                              "(lmu_tape_reserve or lmu_tape_set_growth)",
                              what, (unsigned long)need, (unsigned long)*cap);
    ncap = *cap * 2 > need ? *cap * 2 : need;
    if (ncap < 1024) ncap = 1024;
    if (!lmu__mul_size(ncap, elem, &bytes)) return lmu__tape_fail(t, LMU_ERR_NOMEM, "%s: size overflow", what);
    np = lmu__alloc_aligned(bytes);
    if (!np) return lmu__tape_fail(t, LMU_ERR_NOMEM, "%s: out of memory (%lu bytes)", what, (unsigned long)bytes);
    if (*p && used) memcpy(np, *p, used * elem);
    lmu__free_aligned(*p);
    *p = np;
    *cap = ncap;
    return LMU_OK;
}

/* Tables (tensors, records) use plain realloc: they are indexed, never
   pointed into across calls. */
LMU__PRIVATE lmu_result lmu__tape_grow_table(lmu_tape *t, void **p, int *cap, int need,
                                             size_t elem, const char *what)
{
    int ncap;
    void *np;
    if (need <= *cap) return LMU_OK;
    if (t->locked)
        return lmu__tape_fail(t, LMU_ERR_CAPACITY,
                              "%s: needs %d entries, planned %d at the first step", what, need,
                              *cap);
    ncap = *cap * 2 > need ? *cap * 2 : need;
    if (ncap < 64) ncap = 64;
    np = LMU_REALLOC(*p, (size_t)ncap * elem);
    if (!np) return lmu__tape_fail(t, LMU_ERR_NOMEM, "%s: out of memory", what);
    *p = np;
    *cap = ncap;
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_shape(lmu_tape *t, lmu_tensor *x, int ndim, const int *shape)
{
    int i;
    size_t n = 1;
    if (ndim < 0 || ndim > LMU_TENSOR_MAX_DIMS || (ndim > 0 && !shape))
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "ndim %d not in 0..%d", ndim, LMU_TENSOR_MAX_DIMS);
    for (i = 0; i < ndim; i++) {
        if (shape[i] <= 0) return lmu__tape_fail(t, LMU_ERR_SHAPE, "shape[%d] = %d", i, shape[i]);
        if (!lmu__mul_size(n, (size_t)shape[i], &n))
            return lmu__tape_fail(t, LMU_ERR_SHAPE, "shape product overflows");
    }
    x->ndim = ndim;
    x->size = n;
    for (i = LMU_TENSOR_MAX_DIMS - 1; i >= 0; i--) {
        x->shape[i] = i < ndim ? shape[i] : 1;
        x->stride[i] = 0;
    }
    for (i = ndim - 1, n = 1; i >= 0; i--) {
        x->stride[i] = n;
        n *= (size_t)shape[i];
    }
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_new_entry(lmu_tape *t, int *id)
{
    lmu_result r = lmu__tape_grow_table(t, (void **)&t->tensors, &t->cap_tensors,
                                        t->n_tensors + 1, sizeof(lmu_tensor), "tensor table");
    if (r != LMU_OK) return r;
    *id = t->n_tensors;
    memset(&t->tensors[*id], 0, sizeof(lmu_tensor));
    t->tensors[*id].goff = LMU_NO_GRAD;
    return LMU_OK;
}

/* A new activation (arena LMU_ARENA_ACT) or int tensor of this step. */
LMU__PRIVATE lmu_result lmu__tape_new(lmu_tape *t, int arena, int ndim, const int *shape,
                                      int needs_grad, int *out)
{
    lmu_tensor x;
    lmu_result r;
    size_t pad;
    int id;
    memset(&x, 0, sizeof x);
    if (!t->params_ready)
        return lmu__tape_fail(t, LMU_ERR_STATE, "lmu_tape_params_alloc() must come first");
    if ((r = lmu__tape_shape(t, &x, ndim, shape)) != LMU_OK) return r;
    pad = lmu__tape_pad(x.size);
    x.arena = arena;
    x.goff = LMU_NO_GRAD;
    if (arena == LMU_ARENA_INT) {
        r = lmu__tape_grow(t, (void **)&t->ints, &t->int_cap, t->int_used + pad, t->int_used,
                           sizeof(int), "int arena");
        if (r != LMU_OK) return r;
        x.off = t->int_used;
    } else {
        r = lmu__tape_grow(t, (void **)&t->act, &t->act_cap, t->act_used + pad, t->act_used,
                           sizeof(float), "activation arena");
        if (r != LMU_OK) return r;
        x.off = t->act_used;
        if (needs_grad) {
            /* grads are zeroed at backward, so their old contents need no copy */
            r = lmu__tape_grow(t, (void **)&t->act_grad, &t->grad_cap, t->grad_used + pad, 0,
                               sizeof(float), "activation grad arena");
            if (r != LMU_OK) return r;
            x.goff = t->grad_used;
        }
    }
    if ((r = lmu__tape_new_entry(t, &id)) != LMU_OK) return r;
    if (arena == LMU_ARENA_INT)
        t->int_used += pad;
    else {
        t->act_used += pad;
        if (needs_grad) t->grad_used += pad;
    }
    t->tensors[id] = x;
    t->n_tensors++;
    *out = id;
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_new_act(lmu_tape *t, int ndim, const int *shape, int needs_grad,
                                          int *out)
{
    return lmu__tape_new(t, LMU_ARENA_ACT, ndim, shape, needs_grad, out);
}

LMU__PRIVATE lmu_result lmu__tape_push(lmu_tape *t, lmu_op op, int out, lmu_tape_rec **rec)
{
    lmu_tape_rec *r;
    int i;
    lmu_result res = lmu__tape_grow_table(t, (void **)&t->recs, &t->cap_recs, t->n_recs + 1,
                                          sizeof(lmu_tape_rec), "op records");
    if (res != LMU_OK) return res;
    r = &t->recs[t->n_recs++];
    memset(r, 0, sizeof *r);
    r->op = (int)op;
    r->out = out;
    for (i = 0; i < LMU_TAPE_MAX_IN; i++) r->in[i] = -1;
    for (i = 0; i < LMU_TAPE_MAX_CACHE; i++) r->cache[i] = -1;
    *rec = r;
    return LMU_OK;
}

/* A float tensor id, or an error naming the op and argument. */
LMU__PRIVATE lmu_result lmu__tape_arg(lmu_tape *t, int id, const char *op, const char *arg)
{
    if (!lmu__tape_valid(t, id))
        return lmu__tape_fail(t, LMU_ERR_ARG, "%s: %s is not a tensor id (%d)", op, arg, id);
    if (t->tensors[id].arena == LMU_ARENA_INT)
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "%s: %s must be float, not int", op, arg);
    return LMU_OK;
}

LMU__PRIVATE size_t lmu__tape_last(const lmu_tensor *x)
{
    return x->ndim ? (size_t)x->shape[x->ndim - 1] : 1;
}

/* ---------------------------------------------------------------------- */
/* tape API                                                                */
/* ---------------------------------------------------------------------- */

LMUDEF lmu_result lmu_tape_init(lmu_tape *tape)
{
    if (!tape) return LMU_ERR_ARG;
    memset(tape, 0, sizeof *tape);
    return LMU_OK;
}

LMUDEF void lmu_tape_free(lmu_tape *tape)
{
    if (!tape) return;
    LMU_FREE(tape->tensors);
    LMU_FREE(tape->recs);
    lmu__free_aligned(tape->param);
    lmu__free_aligned(tape->param_grad);
    lmu__free_aligned(tape->act);
    lmu__free_aligned(tape->act_grad);
    lmu__free_aligned(tape->ints);
    memset(tape, 0, sizeof *tape);
}

LMUDEF lmu_result lmu_tape_param(lmu_tape *tape, const char *name, int ndim, const int *shape,
                                 int frozen, int *id)
{
    lmu_tensor x;
    lmu_result r;
    int i;
    if (!tape || !name || !id) return LMU_ERR_ARG;
    if (tape->params_ready)
        return lmu__tape_fail(tape, LMU_ERR_STATE, "param %s: parameters already allocated", name);
    if (strlen(name) >= LMU_TENSOR_NAME_MAX)
        return lmu__tape_fail(tape, LMU_ERR_ARG, "param name too long: %s", name);
    if (ndim < 1) return lmu__tape_fail(tape, LMU_ERR_SHAPE, "param %s: ndim %d", name, ndim);
    if (lmu_tape_find(tape, name) >= 0)
        return lmu__tape_fail(tape, LMU_ERR_ARG, "param %s declared twice", name);
    memset(&x, 0, sizeof x);
    if ((r = lmu__tape_shape(tape, &x, ndim, shape)) != LMU_OK) return r;
    memcpy(x.name, name, strlen(name) + 1);
    x.arena = LMU_ARENA_PARAM;
    x.frozen = frozen ? 1 : 0;
    x.off = x.goff = tape->param_size;
    tape->param_size += lmu__tape_pad(x.size);
    if ((r = lmu__tape_new_entry(tape, &i)) != LMU_OK) return r;
    tape->tensors[i] = x;
    tape->n_tensors++;
    tape->n_params++;
    *id = i;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_params_alloc(lmu_tape *tape)
{
    size_t bytes;
    if (!tape) return LMU_ERR_ARG;
    if (tape->params_ready)
        return lmu__tape_fail(tape, LMU_ERR_STATE, "parameters already allocated");
    if (!lmu__mul_size(tape->param_size ? tape->param_size : 1, sizeof(float), &bytes))
        return lmu__tape_fail(tape, LMU_ERR_NOMEM, "parameter block overflows");
    tape->param = (float *)lmu__alloc_aligned(bytes);
    tape->param_grad = (float *)lmu__alloc_aligned(bytes);
    if (!tape->param || !tape->param_grad) {
        lmu__free_aligned(tape->param);
        lmu__free_aligned(tape->param_grad);
        tape->param = tape->param_grad = NULL;
        return lmu__tape_fail(tape, LMU_ERR_NOMEM, "parameter block: %lu bytes",
                              (unsigned long)bytes);
    }
    memset(tape->param, 0, bytes);
    memset(tape->param_grad, 0, bytes);
    tape->params_ready = 1;
    return LMU_OK;
}

LMUDEF int lmu_tape_find(const lmu_tape *tape, const char *name)
{
    int i;
    if (!tape || !name) return -1;
    for (i = 0; i < tape->n_params; i++)
        if (strcmp(tape->tensors[i].name, name) == 0) return i;
    return -1;
}

LMUDEF lmu_result lmu_tape_set_frozen(lmu_tape *tape, int id, int frozen)
{
    if (!tape || id < 0 || id >= tape->n_params) return LMU_ERR_ARG;
    tape->tensors[id].frozen = frozen ? 1 : 0;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_reserve(lmu_tape *tape, size_t act_floats, size_t grad_floats,
                                   size_t ints, int tensors, int recs)
{
    lmu_result r;
    if (!tape) return LMU_ERR_ARG;
    if ((r = lmu__tape_grow(tape, (void **)&tape->act, &tape->act_cap, act_floats,
                            tape->act_used, sizeof(float), "activation arena")) != LMU_OK ||
        (r = lmu__tape_grow(tape, (void **)&tape->act_grad, &tape->grad_cap, grad_floats, 0,
                            sizeof(float), "activation grad arena")) != LMU_OK ||
        (r = lmu__tape_grow(tape, (void **)&tape->ints, &tape->int_cap, ints, tape->int_used,
                            sizeof(int), "int arena")) != LMU_OK ||
        (r = lmu__tape_grow_table(tape, (void **)&tape->tensors, &tape->cap_tensors,
                                  tape->n_params + tensors, sizeof(lmu_tensor),
                                  "tensor table")) != LMU_OK ||
        (r = lmu__tape_grow_table(tape, (void **)&tape->recs, &tape->cap_recs, recs,
                                  sizeof(lmu_tape_rec), "op records")) != LMU_OK)
        return r;
    return LMU_OK;
}

LMUDEF void lmu_tape_set_growth(lmu_tape *tape, int allow)
{
    if (!tape) return;
    tape->allow_growth = allow ? 1 : 0;
    if (allow) tape->locked = 0;
}

LMUDEF void lmu_tape_reset(lmu_tape *tape)
{
    if (!tape) return;
    if (!tape->allow_growth && (tape->n_recs > 0 || tape->n_tensors > tape->n_params))
        tape->locked = 1;
    tape->n_tensors = tape->n_params;
    tape->n_recs = 0;
    tape->act_used = tape->grad_used = tape->int_used = 0;
}

LMUDEF lmu_result lmu_tape_input_ids(lmu_tape *tape, const int *data, int ndim,
                                     const int *shape, int *id)
{
    lmu_result r;
    if (!tape || !data || !id) return LMU_ERR_ARG;
    if (ndim < 1) return lmu__tape_fail(tape, LMU_ERR_SHAPE, "input_ids: ndim %d", ndim);
    if ((r = lmu__tape_new(tape, LMU_ARENA_INT, ndim, shape, 0, id)) != LMU_OK) return r;
    memcpy(lmu__tape_i32(tape, *id), data, tape->tensors[*id].size * sizeof(int));
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_leaf(lmu_tape *tape, const float *data, int ndim, const int *shape,
                                int needs_grad, int *id)
{
    lmu_result r;
    if (!tape || !id) return LMU_ERR_ARG;
    if ((r = lmu__tape_new_act(tape, ndim, shape, needs_grad, id)) != LMU_OK) return r;
    if (data)
        memcpy(lmu__tape_f32(tape, *id), data, tape->tensors[*id].size * sizeof(float));
    else
        memset(lmu__tape_f32(tape, *id), 0, tape->tensors[*id].size * sizeof(float));
    return LMU_OK;
}

LMUDEF const lmu_tensor *lmu_tape_tensor(const lmu_tape *tape, int id)
{
    return lmu__tape_valid(tape, id) ? &tape->tensors[id] : NULL;
}

LMUDEF float *lmu_tape_data(lmu_tape *tape, int id)
{
    if (!lmu__tape_valid(tape, id) || (tape->tensors[id].arena == LMU_ARENA_PARAM && !tape->param))
        return NULL;
    return lmu__tape_f32(tape, id);
}

LMUDEF float *lmu_tape_grad(lmu_tape *tape, int id)
{
    if (!lmu__tape_valid(tape, id) || (tape->tensors[id].arena == LMU_ARENA_PARAM && !tape->param))
        return NULL;
    return lmu__tape_g32(tape, id);
}

LMUDEF int *lmu_tape_ints(lmu_tape *tape, int id)
{
    return lmu__tape_valid(tape, id) ? lmu__tape_i32(tape, id) : NULL;
}

LMUDEF lmu_result lmu_tape_view(lmu_tape *tape, int x, int ndim, const int *shape, int *out)
{
    lmu_tensor v;
    lmu_result r;
    int id;
    if (!tape || !out) return LMU_ERR_ARG;
    if (!lmu__tape_valid(tape, x))
        return lmu__tape_fail(tape, LMU_ERR_ARG, "view: bad tensor id %d", x);
    v = tape->tensors[x];
    if ((r = lmu__tape_shape(tape, &v, ndim, shape)) != LMU_OK) return r;
    if (v.size != tape->tensors[x].size)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "view: %lu elements cannot view %lu",
                              (unsigned long)v.size, (unsigned long)tape->tensors[x].size);
    v.name[0] = '\0';
    if ((r = lmu__tape_new_entry(tape, &id)) != LMU_OK) return r;
    tape->tensors[id] = v;
    tape->n_tensors++;
    *out = id;
    return LMU_OK;
}

LMUDEF void lmu_tape_zero_grad(lmu_tape *tape)
{
    if (!tape || !tape->param_grad) return;
    memset(tape->param_grad, 0, tape->param_size * sizeof(float));
}

/* The one switch: each case fetches pointers by id and calls the op's
   backward kernel. A NULL grad pointer means "not needed". */
LMU__PRIVATE lmu_result lmu__tape_backward_rec(lmu_tape *t, const lmu_tape_rec *rec)
{
    float *dout = lmu__tape_g32(t, rec->out);
    const lmu_tensor *o = &t->tensors[rec->out];
    if (!dout) return LMU_OK; /* nothing upstream wants a gradient */
    switch ((lmu_op)rec->op) {
    case LMU_OP_EMBEDDING: {
        const lmu_tensor *ids = &t->tensors[rec->in[0]];
        float *dw = lmu__tape_g32(t, rec->in[1]);
        if (dw)
            lmu__embedding_backward(dw, dout, lmu__tape_i32(t, rec->in[0]), ids->size,
                                    lmu__tape_last(o));
    } break;
    case LMU_OP_LINEAR: {
        size_t K = (size_t)rec->ip[1], M = lmu__tape_last(o), N = o->size / M;
        lmu_result r = lmu__linear_backward(
            t->gemm_ws, lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]),
            lmu__tape_g32(t, rec->in[2]), dout, lmu__tape_f32(t, rec->in[0]),
            lmu__tape_f32(t, rec->in[1]), N, K, M, rec->ip[0]);
        if (r != LMU_OK) return lmu__tape_fail(t, r, "linear backward: matmul failed");
    } break;
    case LMU_OP_MATMUL: {
        lmu_result r = lmu__matmul_backward(
            t->gemm_ws, lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]), dout,
            lmu__tape_f32(t, rec->in[0]), lmu__tape_f32(t, rec->in[1]), (size_t)rec->ip[2],
            (size_t)rec->ip[3], (size_t)rec->ip[4], (size_t)rec->ip[5], rec->ip[0], rec->ip[1],
            rec->fp[0]);
        if (r != LMU_OK) return lmu__tape_fail(t, r, "matmul backward: matmul failed");
    } break;
    case LMU_OP_ADD:
        lmu__add_backward(lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]), dout,
                          o->size, t->tensors[rec->in[1]].size);
        break;
    case LMU_OP_SCALE: {
        float *dx = lmu__tape_g32(t, rec->in[0]);
        if (dx) lmu__scale_backward(dx, dout, rec->fp[0], o->size);
    } break;
    case LMU_OP_LAYERNORM: {
        size_t C = lmu__tape_last(o);
        lmu__layernorm_backward(lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]),
                                lmu__tape_g32(t, rec->in[2]), dout, lmu__tape_f32(t, rec->in[0]),
                                lmu__tape_f32(t, rec->cache[0]), lmu__tape_f32(t, rec->cache[1]),
                                lmu__tape_f32(t, rec->in[1]), o->size / C, C);
    } break;
    case LMU_OP_GELU: {
        float *dx = lmu__tape_g32(t, rec->in[0]);
        if (dx) lmu__gelu_backward(dx, dout, lmu__tape_f32(t, rec->in[0]), o->size);
    } break;
    case LMU_OP_SOFTMAX: {
        float *dx = lmu__tape_g32(t, rec->in[0]);
        size_t C = lmu__tape_last(o);
        if (dx) lmu__softmax_backward(dx, dout, lmu__tape_f32(t, rec->out), o->size / C, C);
    } break;
    case LMU_OP_CROSS_ENTROPY: {
        const lmu_tensor *z = &t->tensors[rec->in[0]];
        float *dz = lmu__tape_g32(t, rec->in[0]);
        size_t V = lmu__tape_last(z);
        if (dz)
            lmu__cross_entropy_backward(dz, dout, lmu__tape_f32(t, rec->in[0]),
                                        lmu__tape_f32(t, rec->cache[0]),
                                        lmu__tape_i32(t, rec->in[1]), z->size / V, V);
    } break;
    case LMU_OP_SUM: {
        float *dx = lmu__tape_g32(t, rec->in[0]);
        if (dx) lmu__sum_backward(dx, dout, rec->fp[0], t->tensors[rec->in[0]].size);
    } break;
    case LMU_OP_CUSTOM: {
        const lmu_tape_custom *op = (const lmu_tape_custom *)rec->aux;
        return op->backward(t, rec);
    }
    case LMU_OP_NONE:
    case LMU_OP_COUNT:
    default:
        return lmu__tape_fail(t, LMU_ERR_STATE, "backward: bad op %d", rec->op);
    }
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_backward_seed(lmu_tape *tape, int out, const float *seed)
{
    float *g;
    size_t n, i;
    int k;
    lmu_result r;
    if (!tape) return LMU_ERR_ARG;
    if (!lmu__tape_valid(tape, out) || tape->tensors[out].arena != LMU_ARENA_ACT)
        return lmu__tape_fail(tape, LMU_ERR_ARG, "backward: %d is not an activation", out);
    if (tape->tensors[out].goff == LMU_NO_GRAD)
        return lmu__tape_fail(tape, LMU_ERR_STATE,
                              "backward: tensor %d depends on no trainable tensor", out);
    if (tape->grad_used) memset(tape->act_grad, 0, tape->grad_used * sizeof(float));
    g = lmu__tape_g32(tape, out);
    n = tape->tensors[out].size;
    for (i = 0; i < n; i++) g[i] = seed ? seed[i] : 1.0f;
    for (k = tape->n_recs - 1; k >= 0; k--)
        if ((r = lmu__tape_backward_rec(tape, &tape->recs[k])) != LMU_OK) return r;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_backward(lmu_tape *tape, int loss)
{
    if (!tape) return LMU_ERR_ARG;
    if (!lmu__tape_valid(tape, loss) || tape->tensors[loss].size != 1)
        return lmu__tape_fail(tape, LMU_ERR_ARG, "backward: loss %d is not a scalar", loss);
    return lmu_tape_backward_seed(tape, loss, NULL);
}

/* ---------------------------------------------------------------------- */
/* op recording                                                            */
/* ---------------------------------------------------------------------- */

LMUDEF lmu_result lmu_tape_embedding(lmu_tape *tape, int ids, int table, int *out)
{
    lmu_tensor ti, tw;
    lmu_tape_rec *rec;
    lmu_result r;
    int shape[LMU_TENSOR_MAX_DIMS], i, y;
    size_t n;
    const int *idp;
    if (!tape || !out) return LMU_ERR_ARG;
    if (!lmu__tape_valid(tape, ids) || tape->tensors[ids].arena != LMU_ARENA_INT)
        return lmu__tape_fail(tape, LMU_ERR_ARG, "embedding: ids must be an int tensor");
    if ((r = lmu__tape_arg(tape, table, "embedding", "table")) != LMU_OK) return r;
    ti = tape->tensors[ids];
    tw = tape->tensors[table];
    if (tw.ndim != 2 || ti.ndim > 3)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "embedding: table must be (V, C), ids 1..3 dims");
    idp = lmu__tape_i32(tape, ids);
    for (n = 0; n < ti.size; n++)
        if (idp[n] < 0 || idp[n] >= tw.shape[0])
            return lmu__tape_fail(tape, LMU_ERR_RANGE, "embedding: id %d at %lu not in [0, %d)",
                                  idp[n], (unsigned long)n, tw.shape[0]);
    for (i = 0; i < ti.ndim; i++) shape[i] = ti.shape[i];
    shape[ti.ndim] = tw.shape[1];
    if ((r = lmu__tape_new_act(tape, ti.ndim + 1, shape, lmu__tape_needs_grad(tape, table), &y)) != LMU_OK ||
        (r = lmu__tape_push(tape, LMU_OP_EMBEDDING, y, &rec)) != LMU_OK)
        return r;
    rec->in[0] = ids;
    rec->in[1] = table;
    lmu__embedding_forward(lmu__tape_f32(tape, y), lmu__tape_i32(tape, ids),
                           lmu__tape_f32(tape, table), ti.size, (size_t)tw.shape[1]);
    *out = y;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_linear(lmu_tape *tape, int x, int w, int b, int w_in_out, int *out)
{
    lmu_tensor tx, tw;
    lmu_tape_rec *rec;
    lmu_result r;
    int shape[LMU_TENSOR_MAX_DIMS], i, y, ng;
    size_t K, M;
    if (!tape || !out) return LMU_ERR_ARG;
    if ((r = lmu__tape_arg(tape, x, "linear", "x")) != LMU_OK ||
        (r = lmu__tape_arg(tape, w, "linear", "W")) != LMU_OK ||
        (b >= 0 && (r = lmu__tape_arg(tape, b, "linear", "b")) != LMU_OK))
        return r;
    tx = tape->tensors[x];
    tw = tape->tensors[w];
    if (tx.ndim < 1 || tw.ndim != 2)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "linear: x needs 1+ dims, W 2 dims");
    K = lmu__tape_last(&tx);
    M = (size_t)(w_in_out ? tw.shape[1] : tw.shape[0]);
    if ((size_t)(w_in_out ? tw.shape[0] : tw.shape[1]) != K)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE,
                              "linear: x has %lu features, W is (%d, %d)%s", (unsigned long)K,
                              tw.shape[0], tw.shape[1], w_in_out ? " [in, out]" : " [out, in]");
    if (b >= 0 && (tape->tensors[b].ndim != 1 || (size_t)tape->tensors[b].shape[0] != M))
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "linear: bias must be (%lu)", (unsigned long)M);
    for (i = 0; i < tx.ndim; i++) shape[i] = tx.shape[i];
    shape[tx.ndim - 1] = (int)M;
    ng = lmu__tape_needs_grad(tape, x) || lmu__tape_needs_grad(tape, w) ||
         (b >= 0 && lmu__tape_needs_grad(tape, b));
    if ((r = lmu__tape_new_act(tape, tx.ndim, shape, ng, &y)) != LMU_OK ||
        (r = lmu__tape_push(tape, LMU_OP_LINEAR, y, &rec)) != LMU_OK)
        return r;
    rec->in[0] = x;
    rec->in[1] = w;
    rec->in[2] = b;
    rec->ip[0] = w_in_out ? 1 : 0;
    rec->ip[1] = (int)K;
    r = lmu__linear_forward(tape->gemm_ws, lmu__tape_f32(tape, y), lmu__tape_f32(tape, x),
                            lmu__tape_f32(tape, w), b >= 0 ? lmu__tape_f32(tape, b) : NULL,
                            tx.size / K, K, M, rec->ip[0]);
    if (r != LMU_OK) return lmu__tape_fail(tape, r, "linear: matmul failed");
    *out = y;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_matmul(lmu_tape *tape, int a, int b, int trans_a, int trans_b,
                                  float alpha, int *out)
{
    lmu_tensor ta, tb;
    lmu_tape_rec *rec;
    lmu_result r;
    int shape[LMU_TENSOR_MAX_DIMS], i, y, nd;
    size_t M, N, K, Kb, P = 1;
    if (!tape || !out) return LMU_ERR_ARG;
    if ((r = lmu__tape_arg(tape, a, "matmul", "a")) != LMU_OK ||
        (r = lmu__tape_arg(tape, b, "matmul", "b")) != LMU_OK)
        return r;
    ta = tape->tensors[a];
    tb = tape->tensors[b];
    nd = ta.ndim;
    if (nd < 2 || tb.ndim != nd)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "matmul: a and b need the same ndim >= 2 (%d, %d)",
                              ta.ndim, tb.ndim);
    for (i = 0; i < nd - 2; i++) {
        if (ta.shape[i] != tb.shape[i])
            return lmu__tape_fail(tape, LMU_ERR_SHAPE, "matmul: batch dim %d differs (%d, %d)", i,
                                  ta.shape[i], tb.shape[i]);
        P *= (size_t)ta.shape[i];
        shape[i] = ta.shape[i];
    }
    M = (size_t)ta.shape[nd - (trans_a ? 1 : 2)];
    K = (size_t)ta.shape[nd - (trans_a ? 2 : 1)];
    Kb = (size_t)tb.shape[nd - (trans_b ? 1 : 2)];
    N = (size_t)tb.shape[nd - (trans_b ? 2 : 1)];
    if (K != Kb)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "matmul: inner dims %lu and %lu differ",
                              (unsigned long)K, (unsigned long)Kb);
    shape[nd - 2] = (int)M;
    shape[nd - 1] = (int)N;
    if ((r = lmu__tape_new_act(tape, nd, shape,
                               lmu__tape_needs_grad(tape, a) || lmu__tape_needs_grad(tape, b),
                               &y)) != LMU_OK ||
        (r = lmu__tape_push(tape, LMU_OP_MATMUL, y, &rec)) != LMU_OK)
        return r;
    rec->in[0] = a;
    rec->in[1] = b;
    rec->ip[0] = trans_a ? 1 : 0;
    rec->ip[1] = trans_b ? 1 : 0;
    rec->ip[2] = (int)P;
    rec->ip[3] = (int)M;
    rec->ip[4] = (int)N;
    rec->ip[5] = (int)K;
    rec->fp[0] = alpha;
    r = lmu__matmul_forward(tape->gemm_ws, lmu__tape_f32(tape, y), lmu__tape_f32(tape, a),
                            lmu__tape_f32(tape, b), P, M, N, K, rec->ip[0], rec->ip[1], alpha);
    if (r != LMU_OK) return lmu__tape_fail(tape, r, "matmul: matmul failed");
    *out = y;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_add(lmu_tape *tape, int a, int b, int *out)
{
    lmu_tensor ta, tb;
    lmu_tape_rec *rec;
    lmu_result r;
    int i, y;
    if (!tape || !out) return LMU_ERR_ARG;
    if ((r = lmu__tape_arg(tape, a, "add", "a")) != LMU_OK ||
        (r = lmu__tape_arg(tape, b, "add", "b")) != LMU_OK)
        return r;
    ta = tape->tensors[a];
    tb = tape->tensors[b];
    if (tb.ndim > ta.ndim)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "add: b has more dims than a");
    for (i = 0; i < tb.ndim; i++)
        if (tb.shape[tb.ndim - 1 - i] != ta.shape[ta.ndim - 1 - i])
            return lmu__tape_fail(tape, LMU_ERR_SHAPE,
                                  "add: b's dims must equal a's trailing dims (dim -%d: %d vs %d)",
                                  i + 1, tb.shape[tb.ndim - 1 - i], ta.shape[ta.ndim - 1 - i]);
    if ((r = lmu__tape_new_act(tape, ta.ndim, ta.shape,
                               lmu__tape_needs_grad(tape, a) || lmu__tape_needs_grad(tape, b),
                               &y)) != LMU_OK ||
        (r = lmu__tape_push(tape, LMU_OP_ADD, y, &rec)) != LMU_OK)
        return r;
    rec->in[0] = a;
    rec->in[1] = b;
    lmu__add_forward(lmu__tape_f32(tape, y), lmu__tape_f32(tape, a), lmu__tape_f32(tape, b),
                     ta.size, tb.size);
    *out = y;
    return LMU_OK;
}

/* Shared by the one-input, same-shape ops. */
LMU__PRIVATE lmu_result lmu__tape_unary(lmu_tape *tape, lmu_op op, int x, const char *name,
                                        int *out, lmu_tape_rec **rec)
{
    lmu_tensor tx;
    lmu_result r;
    if (!tape || !out) return LMU_ERR_ARG;
    if ((r = lmu__tape_arg(tape, x, name, "x")) != LMU_OK) return r;
    tx = tape->tensors[x];
    if ((r = lmu__tape_new_act(tape, tx.ndim, tx.shape, lmu__tape_needs_grad(tape, x), out)) != LMU_OK ||
        (r = lmu__tape_push(tape, op, *out, rec)) != LMU_OK)
        return r;
    (*rec)->in[0] = x;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_scale(lmu_tape *tape, int x, float s, int *out)
{
    lmu_tape_rec *rec;
    lmu_result r = lmu__tape_unary(tape, LMU_OP_SCALE, x, "scale", out, &rec);
    if (r != LMU_OK) return r;
    rec->fp[0] = s;
    lmu__scale_forward(lmu__tape_f32(tape, *out), lmu__tape_f32(tape, x), s,
                       tape->tensors[x].size);
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_gelu(lmu_tape *tape, int x, int *out)
{
    lmu_tape_rec *rec;
    lmu_result r = lmu__tape_unary(tape, LMU_OP_GELU, x, "gelu", out, &rec);
    if (r != LMU_OK) return r;
    lmu__gelu_forward(lmu__tape_f32(tape, *out), lmu__tape_f32(tape, x), tape->tensors[x].size);
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_softmax(lmu_tape *tape, int x, int *out)
{
    lmu_tape_rec *rec;
    size_t C;
    lmu_result r = lmu__tape_unary(tape, LMU_OP_SOFTMAX, x, "softmax", out, &rec);
    if (r != LMU_OK) return r;
    C = lmu__tape_last(&tape->tensors[x]);
    lmu__softmax_forward(lmu__tape_f32(tape, *out), lmu__tape_f32(tape, x),
                         tape->tensors[x].size / C, C);
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_layernorm(lmu_tape *tape, int x, int g, int b, int *out)
{
    lmu_tensor tx;
    lmu_tape_rec *rec;
    lmu_result r;
    int rows, y, mean, rstd;
    size_t C;
    if (!tape || !out) return LMU_ERR_ARG;
    if ((r = lmu__tape_arg(tape, x, "layernorm", "x")) != LMU_OK ||
        (r = lmu__tape_arg(tape, g, "layernorm", "gain")) != LMU_OK ||
        (r = lmu__tape_arg(tape, b, "layernorm", "bias")) != LMU_OK)
        return r;
    tx = tape->tensors[x];
    C = lmu__tape_last(&tx);
    if (tx.ndim < 1 || tape->tensors[g].size != C || tape->tensors[b].size != C ||
        tape->tensors[g].ndim != 1 || tape->tensors[b].ndim != 1)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "layernorm: gain and bias must be (%lu)",
                              (unsigned long)C);
    rows = (int)(tx.size / C);
    if ((r = lmu__tape_new_act(tape, tx.ndim, tx.shape,
                               lmu__tape_needs_grad(tape, x) || lmu__tape_needs_grad(tape, g) ||
                                   lmu__tape_needs_grad(tape, b),
                               &y)) != LMU_OK ||
        (r = lmu__tape_new_act(tape, 1, &rows, 0, &mean)) != LMU_OK ||
        (r = lmu__tape_new_act(tape, 1, &rows, 0, &rstd)) != LMU_OK ||
        (r = lmu__tape_push(tape, LMU_OP_LAYERNORM, y, &rec)) != LMU_OK)
        return r;
    rec->in[0] = x;
    rec->in[1] = g;
    rec->in[2] = b;
    rec->cache[0] = mean;
    rec->cache[1] = rstd;
    rec->fp[0] = 1e-5f;
    lmu__layernorm_forward(lmu__tape_f32(tape, y), lmu__tape_f32(tape, mean),
                           lmu__tape_f32(tape, rstd), lmu__tape_f32(tape, x),
                           lmu__tape_f32(tape, g), lmu__tape_f32(tape, b), (size_t)rows, C,
                           rec->fp[0]);
    *out = y;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_cross_entropy(lmu_tape *tape, int logits, int targets, int *out)
{
    lmu_tensor tz, tt;
    lmu_tape_rec *rec;
    lmu_result r;
    int rows, y, lse;
    size_t V, n;
    const int *tp;
    if (!tape || !out) return LMU_ERR_ARG;
    if ((r = lmu__tape_arg(tape, logits, "cross_entropy", "logits")) != LMU_OK) return r;
    if (!lmu__tape_valid(tape, targets) || tape->tensors[targets].arena != LMU_ARENA_INT)
        return lmu__tape_fail(tape, LMU_ERR_ARG, "cross_entropy: targets must be an int tensor");
    tz = tape->tensors[logits];
    tt = tape->tensors[targets];
    V = lmu__tape_last(&tz);
    if (tz.ndim < 1 || tt.size != tz.size / V)
        return lmu__tape_fail(tape, LMU_ERR_SHAPE, "cross_entropy: %lu targets for %lu rows",
                              (unsigned long)tt.size, (unsigned long)(tz.size / V));
    tp = lmu__tape_i32(tape, targets);
    for (n = 0; n < tt.size; n++)
        if (tp[n] < 0 || (size_t)tp[n] >= V)
            return lmu__tape_fail(tape, LMU_ERR_RANGE, "cross_entropy: target %d at %lu not in [0, %lu)",
                                  tp[n], (unsigned long)n, (unsigned long)V);
    rows = (int)tt.size;
    if ((r = lmu__tape_new_act(tape, 0, NULL, lmu__tape_needs_grad(tape, logits), &y)) != LMU_OK ||
        (r = lmu__tape_new_act(tape, 1, &rows, 0, &lse)) != LMU_OK ||
        (r = lmu__tape_push(tape, LMU_OP_CROSS_ENTROPY, y, &rec)) != LMU_OK)
        return r;
    rec->in[0] = logits;
    rec->in[1] = targets;
    rec->cache[0] = lse;
    lmu__cross_entropy_forward(lmu__tape_f32(tape, y), lmu__tape_f32(tape, lse),
                               lmu__tape_f32(tape, logits), lmu__tape_i32(tape, targets),
                               (size_t)rows, V);
    *out = y;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_sum(lmu_tape *tape, int x, float scale, int *out)
{
    lmu_tape_rec *rec;
    lmu_result r;
    int y = -1;
    if (!tape || !out) return LMU_ERR_ARG;
    if ((r = lmu__tape_arg(tape, x, "sum", "x")) != LMU_OK) return r;
    if ((r = lmu__tape_new_act(tape, 0, NULL, lmu__tape_needs_grad(tape, x), &y)) != LMU_OK ||
        (r = lmu__tape_push(tape, LMU_OP_SUM, y, &rec)) != LMU_OK)
        return r;
    rec->in[0] = x;
    rec->fp[0] = scale;
    lmu__sum_forward(lmu__tape_f32(tape, y), lmu__tape_f32(tape, x), scale, tape->tensors[x].size);
    *out = y;
    return LMU_OK;
}

LMUDEF lmu_result lmu_tape_mean(lmu_tape *tape, int x, int *out)
{
    if (!tape) return LMU_ERR_ARG;
    if (!lmu__tape_valid(tape, x)) return lmu__tape_fail(tape, LMU_ERR_ARG, "mean: bad id %d", x);
    return lmu_tape_sum(tape, x, (float)(1.0 / (double)tape->tensors[x].size), out);
}

LMUDEF lmu_result lmu_tape_custom_op(lmu_tape *tape, const lmu_tape_custom *op, int n_in,
                                     const int *in, int ndim, const int *shape, int *out)
{
    lmu_tape_rec *rec;
    lmu_result r;
    int i, ng = 0, y;
    if (!tape || !op || !op->backward || !out || n_in < 0 || n_in > LMU_TAPE_MAX_IN ||
        (n_in > 0 && !in))
        return LMU_ERR_ARG;
    for (i = 0; i < n_in; i++) {
        if (!lmu__tape_valid(tape, in[i]))
            return lmu__tape_fail(tape, LMU_ERR_ARG, "custom %s: bad input id %d",
                                  op->name ? op->name : "", in[i]);
        if (tape->tensors[in[i]].arena != LMU_ARENA_INT && lmu__tape_needs_grad(tape, in[i])) ng = 1;
    }
    if ((r = lmu__tape_new_act(tape, ndim, shape, ng, &y)) != LMU_OK ||
        (r = lmu__tape_push(tape, LMU_OP_CUSTOM, y, &rec)) != LMU_OK)
        return r;
    for (i = 0; i < n_in; i++) rec->in[i] = in[i];
    rec->aux = op;
    *out = y;
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* >>optim (implementation)                                                */
/* ---------------------------------------------------------------------- */

LMUDEF lmu_result lmu_adam_init(lmu_adam *opt, const lmu_tape *tape)
{
    size_t bytes;
    if (!opt || !tape) return LMU_ERR_ARG;
    memset(opt, 0, sizeof *opt);
    if (!tape->params_ready) return LMU_ERR_STATE;
    opt->beta1 = 0.9f;
    opt->beta2 = 0.999f;
    opt->eps = 1e-8f;
    opt->weight_decay = 0.0f;
    opt->n = tape->param_size;
    if (!lmu__mul_size(opt->n ? opt->n : 1, sizeof(float), &bytes)) return LMU_ERR_NOMEM;
    opt->m = (float *)lmu__alloc_aligned(bytes);
    opt->v = (float *)lmu__alloc_aligned(bytes);
    if (!opt->m || !opt->v) {
        lmu_adam_free(opt);
        return LMU_ERR_NOMEM;
    }
    memset(opt->m, 0, bytes);
    memset(opt->v, 0, bytes);
    return LMU_OK;
}

LMUDEF void lmu_adam_free(lmu_adam *opt)
{
    if (!opt) return;
    lmu__free_aligned(opt->m);
    lmu__free_aligned(opt->v);
    opt->m = opt->v = NULL;
    opt->n = 0;
}

LMUDEF lmu_result lmu_adam_step(lmu_adam *opt, lmu_tape *tape, float lr)
{
    int p;
    float b1, b2, eps, bc1, bc2;
    if (!opt || !tape || !opt->m || opt->n != tape->param_size) return LMU_ERR_ARG;
    opt->step++;
    b1 = opt->beta1;
    b2 = opt->beta2;
    eps = opt->eps;
    bc1 = (float)(1.0 - pow((double)b1, (double)opt->step));
    bc2 = (float)(1.0 - pow((double)b2, (double)opt->step));
    for (p = 0; p < tape->n_params; p++) {
        const lmu_tensor *x = &tape->tensors[p];
        float *w = tape->param + x->off, *g = tape->param_grad + x->off;
        float *m = opt->m + x->off, *v = opt->v + x->off;
        float wd = x->ndim >= 2 ? opt->weight_decay : 0.0f;
        long i;
        if (x->frozen) continue;
        LMU__OMP(omp parallel for schedule(static))
        for (i = 0; i < (long)x->size; i++) {
            float gi = g[i];
            float mi = b1 * m[i] + (1.0f - b1) * gi;
            float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            w[i] -= lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + wd * w[i]);
        }
    }
    return LMU_OK;
}

LMUDEF void lmu_adam_export(const lmu_adam *opt, uint64_t *step, float *m, float *v)
{
    if (!opt) return;
    if (step) *step = opt->step;
    if (m && opt->m) memcpy(m, opt->m, opt->n * sizeof(float));
    if (v && opt->v) memcpy(v, opt->v, opt->n * sizeof(float));
}

LMUDEF void lmu_adam_import(lmu_adam *opt, uint64_t step, const float *m, const float *v)
{
    if (!opt) return;
    opt->step = step;
    if (m && opt->m) memcpy(opt->m, m, opt->n * sizeof(float));
    if (v && opt->v) memcpy(opt->v, v, opt->n * sizeof(float));
}

LMUDEF double lmu_tape_grad_norm(const lmu_tape *tape)
{
    double s = 0.0;
    int p;
    if (!tape || !tape->param_grad) return 0.0;
    for (p = 0; p < tape->n_params; p++) {
        const lmu_tensor *x = &tape->tensors[p];
        const float *g = tape->param_grad + x->off;
        size_t i;
        if (x->frozen) continue;
        for (i = 0; i < x->size; i++) s += (double)g[i] * (double)g[i];
    }
    return sqrt(s);
}

LMUDEF lmu_result lmu_tape_clip_grad_norm(lmu_tape *tape, float max_norm, double *norm)
{
    double nrm;
    int p;
    if (!tape || !(max_norm > 0.0f)) return LMU_ERR_ARG;
    nrm = lmu_tape_grad_norm(tape);
    if (norm) *norm = nrm;
    if (nrm != nrm || nrm > DBL_MAX)
        return lmu__tape_fail(tape, LMU_ERR_NONFINITE, "grad norm is not finite");
    if (nrm <= (double)max_norm) return LMU_OK;
    for (p = 0; p < tape->n_params; p++) {
        const lmu_tensor *x = &tape->tensors[p];
        float *g = tape->param_grad + x->off;
        float s = (float)((double)max_norm / nrm);
        long i;
        if (x->frozen) continue;
        LMU__OMP(omp parallel for schedule(static))
        for (i = 0; i < (long)x->size; i++) g[i] *= s;
    }
    return LMU_OK;
}

LMUDEF float lmu_lr_schedule(long step, long warmup, long total, float lr_max)
{
    double p;
    if (step < 0) step = 0;
    if (step < warmup) return (float)((double)lr_max * (double)(step + 1) / (double)warmup);
    if (total <= warmup) return step < total ? lr_max : 0.0f;
    p = (double)(step - warmup) / (double)(total - warmup);
    if (p > 1.0) p = 1.0;
    return (float)((double)lr_max * 0.5 * (1.0 + cos(3.14159265358979323846 * p)));
}

#endif
/* >>impl-end tape */
