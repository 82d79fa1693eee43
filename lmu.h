/* lmu.h - Legendre Memory Unit language models in one C99 header. v0.1.0, MIT licence (end of file).

   Do this:
       #define LMU_IMPLEMENTATION
   before you include this file in *one* C file to create the implementation.
   lmu.h includes lmu_fft.h (keep both side by side); LMU_IMPLEMENTATION
   implies LMU_FFT_IMPLEMENTATION.

       // one file
       #define LMU_IMPLEMENTATION
       #include "lmu.h"
       // every other file
       #include "lmu.h"

   Build: cc -O3 -march=native [-fopenmp] app.c $(pkg-config --cflags --libs stb) -lm

   TABLE OF CONTENTS (search for the anchor; each part's declarations come
   first, in this order, and its implementation under "NAME (implementation)"
   after "IMPLEMENTATION" further down, in the same order)
       >>config        result codes, lmu_config, presets (docs/MODEL.md section 4)
       >>rng           the library's own seeded random numbers
       >>gemm          sgemm: packed panels, register-blocked micro-kernels
       >>tensor        tensors and the arenas they live in
       >>tape          reverse-mode autograd tape; how to add an op
       >>ops           every op: one forward, one backward; fused kernels
       >>optim         Adam/AdamW, gradient clipping, learning-rate schedule
       >>lmu           the LTI memory: A, B, Abar, Bbar, H and its spectrum
       >>safetensors   checkpoint files, read and written safely
       >>model         the LMU language model and the transformer baseline:
                       >>layers, one >>mixer-NAME per mixer, >>model-checkpoints
       >>generate      recurrent generation and sampling
       >>tokenizer     GPT-2 byte-level BPE (stb_ds hash maps), byte fallback
       >>data          token files and config files
       >>alloc         allocator macros, OpenMP glue: declared last and
                       implemented first, since every part uses them

   QUICK START (error checks left out; every call returns an lmu_result)
       lmu_config cfg;  lmu_model *m;  lmu_gen g;  lmu_rng rng;  char err[256];
       float loss;  int step, t, tok;
       lmu_config_preset(&cfg, "lmu-55k");             // or fill lmu_config
       lmu_model_create(&m, &cfg, 1234, err, sizeof err);
       for (step = 0; step < 1000; step++) {           // tokens, targets: B x T
           lmu_model_forward_backward(m, tokens, targets, B, T, &loss);
           lmu_model_step(m, lmu_lr_schedule(step, 100, 1000, 3e-3f), 1.0f, NULL);
       }
       lmu_model_save(m, "model.safetensors", 1);      // atomic, with Adam state
       lmu_gen_create(&g, m, 0);                       // constant memory per token
       lmu_rng_seed(&rng, 1);
       for (t = 0, tok = 50256; t < 100; t++) {
           lmu_gen_feed(&g, tok);
           tok = lmu_gen_sample(&g, 0.8f, 40, 0.95f, &rng);
       }
       lmu_gen_free(&g);
       lmu_model_free(m);

   MEMORY
       Parameters, gradients and Adam moments are one block each, sized at
       lmu_model_create. Activations live in an arena planned by the first
       step; later steps with the same shapes allocate nothing. The implicit
       attention never stores its n x 3q' x d tensor: it runs one sequence at
       a time and recomputes in backward, so training memory grows with the
       batch only through the d-wide activations.

   COMPILE-TIME OPTIONS
       LMU_STATIC                 (globally) every public function is static
       LMU_ASSERT(x)              (implementation file) internal invariants;
                                  default assert(). Never used on user input.
       LMU_MALLOC(sz) LMU_REALLOC(p,sz) LMU_FREE(p)
                                  (implementation file) all three or none
       LMU_NO_STDIO               (implementation file) no file I/O; the
                                  *_memory loaders remain
       LMU_STB_DS_IMPLEMENTATION  (implementation file) emit stb_ds's
                                  implementation here instead of linking
                                  Debian's libstb (-lstb). Only then do stb_ds
                                  allocations go through LMU_REALLOC/LMU_FREE:
                                  the prebuilt libstb uses realloc/free.

   ERRORS
       Every function that can fail returns an lmu_result. lmu_strerror()
       names the code; objects that parse outside data (tokenizer, checkpoint)
       also keep a detailed message (byte offset, tensor name) in their own
       `err` field, never in a global. The library never exits or aborts on bad
       input.

   THREADING
       No mutable global state. Objects are not locked: use one object from one
       thread at a time, or share the read-only ones (FFT plans, a loaded
       tokenizer's encode) as their documentation says. With -fopenmp the heavy
       loops run in parallel; results are deterministic for a fixed thread
       count.
*/
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_FFT_IMPLEMENTATION)
#define LMU_FFT_IMPLEMENTATION
#endif
#include "lmu_fft.h"

#ifndef LMU_H
#define LMU_H

#include <stddef.h>
#include <stdint.h>

/* ====================================================================== */
/* >>config                                                                */
/* ====================================================================== */

#define LMU_VERSION_MAJOR 0
#define LMU_VERSION_MINOR 1
#define LMU_VERSION_PATCH 0

#ifndef LMUDEF
#ifdef LMU_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define LMUDEF static __attribute__((unused)) /* unused ones stay quiet */
#else
#define LMUDEF static
#endif
#else
#define LMUDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* One list, so the enum and lmu_strerror() cannot drift apart. */
#define LMU__RESULTS(X)                                                        \
    X(LMU_OK, "ok")                                                            \
    X(LMU_ERR_ARG, "invalid argument")                                         \
    X(LMU_ERR_SHAPE, "shapes do not fit")                                      \
    X(LMU_ERR_NOMEM, "out of memory")                                          \
    X(LMU_ERR_IO, "input/output error")                                        \
    X(LMU_ERR_FORMAT, "malformed file or data")                                \
    X(LMU_ERR_RANGE, "value out of range")                                     \
    X(LMU_ERR_CAPACITY, "capacity exceeded")                                   \
    X(LMU_ERR_NONFINITE, "NaN or Inf encountered")                             \
    X(LMU_ERR_STATE, "object in the wrong state for this call")                \
    X(LMU_ERR_FFT, "FFT error")

typedef enum lmu_result {
#define LMU__ENUM_ITEM(name, text) name,
    LMU__RESULTS(LMU__ENUM_ITEM)
#undef LMU__ENUM_ITEM
    LMU_RESULT_COUNT
} lmu_result;

/* Returns a static string naming the result code; never NULL. */
LMUDEF const char *lmu_strerror(lmu_result r);

/* ---- model configuration ---------------------------------------------- */

/* The model families. */
#define LMU__ARCHS(X)                                                          \
    X(LMU, lmu)                                                                \
    X(TRANSFORMER, transformer)

/* The sequence mixer that opens each layer (docs/MODEL.md section 3):
   X(enum tail, name in config files and checkpoints, suffix of its
   presets, TR). TR 1: a transformer preset of it exists too
   ("transformer-55k-rebased"); the plain transformer presets are attn's.
   Every mixer but ffn may open a transformer layer (the transformer's MLP
   follows each one). A new mixer is one line here plus its own section of
   the implementation, >>mixer-NAME (see ADDING A MIXER there). */
#define LMU__MIXERS(X)                                                         \
    X(FFN, ffn, "", 0)                                                         \
    X(ATTN, attn, "-attn", 0)                                                  \
    X(REBASED, rebased, "-rebased", 1)                                         \
    X(BASED, based, "-based", 1)                                               \
    X(CONV, conv, "-conv", 0)                                                  \
    X(BRT, brt, "-brt", 1)

/* How the implicit attention's L_q, L_k, L_v start (ours, docs/MODEL.md
   section 8; the paper leaves it open). DELAY (the default): row r of each L decodes the memory's
   input lag_r steps ago (lags 0, 1, 2, 4, 8, ..., below theta) with the
   Legendre read-out of a delay, P_i(2 (lag + 1/2) / theta - 1), so the
   block starts as a weighted sum of the last few tokens. RANDOM:
   N(0, 1/sqrt(q)), a filter over the whole window the model must learn to
   sharpen; at 1.2M tokens of Brown it had not (the block was worth 0.008
   nats against 1.09 with DELAY; docs/EXPERIMENTS.md). Checkpoints made
   before the option load as RANDOM, which is how they were made. */
/* The parameters of a layer, one list per part, in checkpoint order
   (docs/MODEL.md section 7): X(id field, name after "blocks.<l>.", ndim, dims,
   init). Dims: D = d_model, D3 = 3 d, PRE = d_pre, FF = d_ff, Q = q,
   QP = q', FH = feature_dim n_head, THREE = 3, ONE = 1 (unused trailing
   dims). Init: ONE and ZERO
   constants, NORMAL N(0, 0.02), RESID N(0, 0.02 / sqrt(2 n_layer)) for
   the last projection of a residual branch (GPT-2's), L and P the
   implicit attention's (lmu_model_create says how), CONV U(-1/sqrt 3,
   1/sqrt 3), a width-3 filter's PyTorch default. From these lists come
   lmu_layer_ids, the declaration, the initialisation and the parameter
   count, so they cannot disagree. A layer is NORM_A, its mixer's list
   (LMU__PARAMS_<MIXER>), MEMORY (LMU models) and POST. */
#define LMU__PARAMS_NORM_A(X)                                                  \
    X(ln_a_w, "ln_a.weight", 1, D, ONE, ONE, ONE)                              \
    X(ln_a_b, "ln_a.bias", 1, D, ONE, ONE, ZERO)
#define LMU__PARAMS_FFN(X)                                                     \
    X(pre_fc_w, "ffn_pre.fc.weight", 2, PRE, D, ONE, NORMAL)                   \
    X(pre_fc_b, "ffn_pre.fc.bias", 1, PRE, ONE, ONE, ZERO)                     \
    X(pre_proj_w, "ffn_pre.proj.weight", 2, D, PRE, ONE, RESID)                \
    X(pre_proj_b, "ffn_pre.proj.bias", 1, D, ONE, ONE, ZERO)
#define LMU__PARAMS_ATTN_CORE(X)                                               \
    X(qkv_w, "attn.qkv.weight", 2, D3, D, ONE, NORMAL)                         \
    X(qkv_b, "attn.qkv.bias", 1, D3, ONE, ONE, ZERO)                           \
    X(attn_proj_w, "attn.proj.weight", 2, D, D, ONE, RESID)                    \
    X(attn_proj_b, "attn.proj.bias", 1, D, ONE, ONE, ZERO)
/* QKN: n_head with qk_norm, else 0 (a row of size 0 does not exist, so
   checkpoints made before the option load) */
#define LMU__PARAMS_ATTN(X)                                                    \
    LMU__PARAMS_ATTN_CORE(X)                                                   \
    X(attn_scale, "attn.scale", 1, QKN, ONE, ONE, QKSCALE)
/* The block-recurrent layer (>>mixer-brt): attn's core rows, then these.
   Symbols that are 0 drop a row: every state row with n_state 0 (SD, SH,
   S...), the gate rows of the other gate (GF fixed, GL lstm), the state
   MLP's with brt_skip (FS, FFS, GF2, GL2). Init S01 N(0, 0.1), S1 N(0, 1)
   (the reference's initial state, gate biases and state positions). */
#define LMU__PARAMS_BRT(X)                                                     \
    X(brt_scale, "attn.scale", 1, H, ONE, ONE, QKSCALE)                        \
    X(brt_q2_w, "brt.q2.weight", 2, SD, D, ONE, NORMAL)                        \
    X(brt_scale2, "brt.scale2", 1, SH, ONE, ONE, QKSCALE)                      \
    X(brt_proj2_w, "brt.proj2.weight", 2, D, SD, ONE, RESID)                   \
    X(brt_s0, "brt.state0", 2, S, D, ONE, S01)                                 \
    X(brt_spos, "brt.state_pos", 2, S, D, ONE, S1)                             \
    X(brt_ln_s_w, "brt.ln_s.weight", 1, SD, ONE, ONE, ONE)                     \
    X(brt_ln_s_b, "brt.ln_s.bias", 1, SD, ONE, ONE, ZERO)                      \
    X(brt_sqkv_w, "brt.s_qkv.weight", 2, SD3, D, ONE, NORMAL)                  \
    X(brt_sq2_w, "brt.s_q2.weight", 2, SD, D, ONE, NORMAL)                     \
    X(brt_s_scale, "brt.s_scale", 1, SH, ONE, ONE, QKSCALE)                    \
    X(brt_s_scale2, "brt.s_scale2", 1, SH, ONE, ONE, QKSCALE)                  \
    X(brt_sproj_w, "brt.s_proj.weight", 2, SD, D2, ONE, NORMAL)                \
    X(brt_sproj_b, "brt.s_proj.bias", 1, SD, ONE, ONE, ZERO)                   \
    X(brt_g_b, "brt.gate.bias", 1, GF, ONE, ONE, S01)                          \
    X(brt_gi_w, "brt.gate_i.weight", 2, GL, D2, ONE, NORMAL)                   \
    X(brt_gi_b, "brt.gate_i.bias", 1, GL, ONE, ONE, S01)                       \
    X(brt_gf_w, "brt.gate_f.weight", 2, GL, D2, ONE, NORMAL)                   \
    X(brt_gf_b, "brt.gate_f.bias", 1, GL, ONE, ONE, S01)                       \
    X(brt_ln_f_w, "brt.ln_sf.weight", 1, FS, ONE, ONE, ONE)                    \
    X(brt_ln_f_b, "brt.ln_sf.bias", 1, FS, ONE, ONE, ZERO)                     \
    X(brt_fc_w, "brt.s_fc.weight", 2, FFS, D, ONE, NORMAL)                     \
    X(brt_fc_b, "brt.s_fc.bias", 1, FFS, ONE, ONE, ZERO)                       \
    X(brt_fcp_w, "brt.s_fc_proj.weight", 2, FS, FF, ONE, NORMAL)               \
    X(brt_fcp_b, "brt.s_fc_proj.bias", 1, FS, ONE, ONE, ZERO)                  \
    X(brt_g2_b, "brt.gate2.bias", 1, GF2, ONE, ONE, S01)                       \
    X(brt_g2i_w, "brt.gate2_i.weight", 2, GL2, FF, ONE, NORMAL)                \
    X(brt_g2i_b, "brt.gate2_i.bias", 1, GL2, ONE, ONE, S01)                    \
    X(brt_g2f_w, "brt.gate2_f.weight", 2, GL2, FF, ONE, NORMAL)                \
    X(brt_g2f_b, "brt.gate2_f.bias", 1, GL2, ONE, ONE, S01)
/* each mixer's rows: its own list, brt's after attn's core */
#define LMU__ROWS_FFN LMU__PARAMS_FFN
#define LMU__ROWS_ATTN LMU__PARAMS_ATTN
#define LMU__ROWS_REBASED LMU__PARAMS_REBASED
#define LMU__ROWS_BASED LMU__PARAMS_BASED
#define LMU__ROWS_CONV LMU__PARAMS_CONV
#define LMU__ROWS_BRT(X) LMU__PARAMS_ATTN_CORE(X) LMU__PARAMS_BRT(X)
#define LMU__PARAMS_REBASED(X)                                                 \
    X(rb_q_w, "rebased.q.weight", 2, FH, D, ONE, NORMAL)                       \
    X(rb_k_w, "rebased.k.weight", 2, FH, D, ONE, NORMAL)                       \
    X(rb_v_w, "rebased.v.weight", 2, D, D, ONE, NORMAL)                        \
    X(rb_o_w, "rebased.o.weight", 2, D, D, ONE, RESID)                         \
    X(rb_lnq_w, "rebased.ln_q.weight", 1, FH, ONE, ONE, ONE)                   \
    X(rb_lnq_b, "rebased.ln_q.bias", 1, FH, ONE, ONE, ZERO)                    \
    X(rb_lnk_w, "rebased.ln_k.weight", 1, FH, ONE, ONE, ONE)                   \
    X(rb_lnk_b, "rebased.ln_k.bias", 1, FH, ONE, ONE, ZERO)
#define LMU__PARAMS_BASED(X)                                                   \
    X(bs_q_w, "based.q.weight", 2, FH, D, ONE, NORMAL)                         \
    X(bs_k_w, "based.k.weight", 2, FH, D, ONE, NORMAL)                         \
    X(bs_v_w, "based.v.weight", 2, D, D, ONE, NORMAL)                          \
    X(bs_o_w, "based.o.weight", 2, D, D, ONE, RESID)
#define LMU__PARAMS_CONV(X)                                                    \
    X(cv_w, "conv.weight", 2, D, THREE, ONE, CONV)                             \
    X(cv_b, "conv.bias", 1, D, ONE, ONE, ZERO)                                 \
    X(cv_proj_w, "conv.proj.weight", 2, D, D, ONE, NORMAL)                     \
    X(cv_proj_b, "conv.proj.bias", 1, D, ONE, ONE, ZERO)
#define LMU__PARAMS_MEMORY(X)                                                  \
    X(ln_b_w, "ln_b.weight", 1, D, ONE, ONE, ONE)                              \
    X(ln_b_b, "ln_b.bias", 1, D, ONE, ONE, ZERO)                               \
    X(lmu_L, "lmu.L", 3, THREE, QP, Q, L)                                      \
    X(lmu_b, "lmu.b", 2, THREE, QP, ONE, ZERO)                                 \
    X(lmu_p, "lmu.p", 1, QP, ONE, ONE, P)
#define LMU__PARAMS_POST(X)                                                    \
    X(ln_c_w, "ln_c.weight", 1, D, ONE, ONE, ONE)                              \
    X(ln_c_b, "ln_c.bias", 1, D, ONE, ONE, ZERO)                               \
    X(fc_w, "ffn_post.fc.weight", 2, FF, D, ONE, NORMAL)                       \
    X(fc_b, "ffn_post.fc.bias", 1, FF, ONE, ONE, ZERO)                         \
    X(fc_proj_w, "ffn_post.proj.weight", 2, D, FF, ONE, RESID)                 \
    X(fc_proj_b, "ffn_post.proj.bias", 1, D, ONE, ONE, ZERO)

#define LMU__IATTN_INITS(X)                                                    \
    X(DELAY, delay)                                                            \
    X(RANDOM, random)

/* How the block-recurrent layer's state takes its update y (the
   reference's gate_type "bias" and "lstm"): FIXED s' = s g + y (1 - g),
   g = sigmoid(b) a learned vector; LSTM s' = s f + y i with f =
   sigmoid(W_f a + b_f + 1), i = sigmoid(W_i a + b_i - 1) from the
   attention outputs a (or the state MLP's hidden layer). */
#define LMU__BRT_GATES(X)                                                      \
    X(FIXED, fixed)                                                            \
    X(LSTM, lstm)

typedef enum lmu_arch {
#define LMU__ARCH_ENUM(tail, name) LMU_ARCH_##tail,
    LMU__ARCHS(LMU__ARCH_ENUM)
#undef LMU__ARCH_ENUM
    LMU_ARCH_COUNT
} lmu_arch;

typedef enum lmu_mixer {
#define LMU__MIXER_ENUM(tail, name, suffix, tr) LMU_MIXER_##tail,
    LMU__MIXERS(LMU__MIXER_ENUM)
#undef LMU__MIXER_ENUM
    LMU_MIXER_COUNT
} lmu_mixer;

typedef enum lmu_brt_gate {
#define LMU__BRT_GATE_ENUM(tail, name) LMU_BRT_GATE_##tail,
    LMU__BRT_GATES(LMU__BRT_GATE_ENUM)
#undef LMU__BRT_GATE_ENUM
    LMU_BRT_GATE_COUNT
} lmu_brt_gate;

typedef enum lmu_iattn_init {
#define LMU__IATTN_INIT_ENUM(tail, name) LMU_IATTN_INIT_##tail,
    LMU__IATTN_INITS(LMU__IATTN_INIT_ENUM)
#undef LMU__IATTN_INIT_ENUM
    LMU_IATTN_INIT_COUNT
} lmu_iattn_init;

/* Every field of lmu_config, once: from this list come the struct,
   lmu_config_resolve's defaults and ranges, config-file parsing
   (lmu_config_set), lmu_config_format, and the checkpoint metadata.
       X(type, name, scope, lo, hi, default, help)
   type     INT, REAL, or the enum it holds (ARCH, MIXER, IATTN_INIT,
            BRT_GATE)
   scope    ALL; LMU (LMU models only: 0 for the transformer); HEADS
            (a layer with mixer attn, rebased, based or brt, in either
            arch); FEATURES (linear attention: mixers rebased, based); ATTN
            (a layer with mixer attn or brt); BRT (mixer brt); HIER (a
            multi-scale stack: hier_k set); HIER2 (its second level:
            hier_k2 set too)
   lo, hi   the range of a set value; 0 always means "the default"
   default  an expression of the fields before it, in `c`
   The ranges are caps of sanity that keep every size product far from
   overflow, not limits of the math. Fields marked "ours" are this
   library's additions to the paper's model. */
#define LMU__CONFIG_FIELDS(X)                                                  \
    X(ARCH, arch, ALL, 0, LMU_ARCH_COUNT - 1, LMU_ARCH_LMU,                    \
      "model family: lmu or transformer")                                      \
    X(MIXER, mixer, ALL, 0, LMU_MIXER_COUNT - 1,                               \
      c->arch == LMU_ARCH_TRANSFORMER ? LMU_MIXER_ATTN : LMU_MIXER_FFN,        \
      "sequence mixer of each layer (transformer: not ffn; 0 is attn)")        \
    X(INT, vocab_size, ALL, 2, 1L << 24, 50257, "vocabulary size V (GPT-2's)") \
    X(INT, n_ctx, ALL, 1, 1L << 20, 1024, "longest training sequence")        \
    X(INT, d_model, ALL, 1, 1L << 16, 48, "model width d")                     \
    X(INT, n_layer, ALL, 1, 1024, 3, "number of layers")                       \
    X(INT, q, LMU, 1, 4096, c->d_model, "LMU memory order (default d)")        \
    X(INT, q_prime, LMU, 1, 4096, c->q / 10 > 0 ? c->q / 10 : 1,               \
      "reduced order q' of the implicit attention (default q/10)")             \
    X(REAL, theta, LMU, 1e-9, 1e9, 350.0, "LMU window in tokens (layer 0's)")  \
    X(REAL, theta_last, LMU, 1e-9, 1e9, 0,                                     \
      "ours: the last layer's window, the layers between geometric; "          \
      "0: every layer uses theta")                                             \
    X(IATTN_INIT, iattn_init, LMU, 0, LMU_IATTN_INIT_COUNT - 1,                \
      LMU_IATTN_INIT_DELAY, "ours: how L starts, delay or random")             \
    X(REAL, iattn_lr, LMU, 1e-9, 1e6, 0,                                       \
      "ours: learning-rate multiplier of L, b, p (0: 1)")                      \
    X(INT, d_pre, LMU, 1, 1L << 16, (3 * c->d_model + 1) / 2,                 \
      "pre-FFN inner width (mixer ffn), default round(1.5 d)")                 \
    X(INT, d_ff, ALL, 1, 1L << 16, c->arch == LMU_ARCH_TRANSFORMER ? 4 * c->d_model : 2 * c->d_model, \
      "post-FFN / MLP inner width: LMU 2 d, transformer 4 d")                  \
    X(INT, n_head, HEADS, 1, 1L << 16, lmu__default_heads(c->d_model),         \
      "attention heads (default: head width nearest 32)")                      \
    X(INT, window, ATTN, 0, 1L << 20, 0,                                       \
      "attention window W (mixers attn, brt): a position sees its own block "  \
      "of W and the one before; 0: every position before it (brt: W >= 1)")    \
    X(INT, qk_norm, ATTN, 0, 1, 0,                                             \
      "1: attn layers L2-normalise q and k per head, logits times a learned "  \
      "per-head scale (brt layers always do)")                                 \
    X(INT, n_state, BRT, 0, 4096, 0,                                           \
      "state vectors S of a block-recurrent layer (mixer brt); 0: none, the "  \
      "layer is sliding-window attention")                                     \
    X(BRT_GATE, brt_gate, BRT, 0, LMU_BRT_GATE_COUNT - 1, LMU_BRT_GATE_FIXED,  \
      "how the state takes its update: fixed or lstm")                         \
    X(INT, brt_skip, BRT, 0, 1, 0,                                             \
      "1: no MLP on the state side (the reference's skip_ffn)")               \
    X(INT, feature_dim, FEATURES, 1, 256, 16,                                  \
      "width of q and k per head in linear attention (mixers rebased, based)") \
    X(REAL, la_eps, FEATURES, 1e-38, 1, 1e-12,                                 \
      "linear attention: eps added to the denominator")                        \
    X(INT, hier_k, ALL, 0, 4096, 0,                                            \
      "ours: multi-scale stack: the coarse layers run on the sequence pooled "  \
      "causally by k >= 2; 0: none")                                           \
    X(INT, hier_bottom, HIER, 1, 1024, 1,                                      \
      "multi-scale stack: fine layers before the pooling (a >= 1)")            \
    X(INT, hier_coarse, HIER, 1, 1024, lmu__hier_coarse_default(c),            \
      "multi-scale stack: coarse layers (b >= 1; default n_layer - a - 1)")   \
    X(INT, hier_top, HIER, 0, 1024, lmu__hier_top_default(c),                  \
      "multi-scale stack: fine layers after the coarse ones (c; default "      \
      "n_layer - a - b)")                                                      \
    X(INT, hier_k2, HIER, 0, 4096, 0,                                          \
      "multi-scale stack: a second level inside the coarse layers, pooled "    \
      "again by k2 >= 2; 0: none")                                             \
    X(INT, hier_bottom2, HIER2, 1, 1024, 1,                                    \
      "second level: coarse layers before its pooling (a2 >= 1)")              \
    X(INT, hier_coarse2, HIER2, 1, 1024, lmu__hier_coarse2_default(c),         \
      "second level: its layers (b2 >= 1; default hier_coarse - a2 - 1); the " \
      "rest of the coarse layers follow it")

#define LMU__CTYPE_INT int
#define LMU__CTYPE_REAL double
#define LMU__CTYPE_ARCH lmu_arch
#define LMU__CTYPE_MIXER lmu_mixer
#define LMU__CTYPE_IATTN_INIT lmu_iattn_init
#define LMU__CTYPE_BRT_GATE lmu_brt_gate

/* The fields a layer may set for itself (a layer stack): X(type, name),
   each one of LMU__CONFIG_FIELDS. A list has n_layer entries (at most
   LMU_LAYER_LIST_MAX); without one, every layer takes the field. */
#define LMU__LAYER_FIELDS(X)                                                   \
    X(MIXER, mixer)                                                            \
    X(INT, q)                                                                  \
    X(INT, q_prime)                                                            \
    X(REAL, theta)

#define LMU_LAYER_LIST_MAX 64

/* Per-layer values: n_NAME entries of NAME (0: no list). Resolved, a list
   is either absent or has n_layer entries, not all equal, and the field
   itself holds layer 0's value. */
typedef struct lmu_config_layers {
#define LMU__LAYER_MEMBER(type, name) int n_##name; LMU__CTYPE_##type name[LMU_LAYER_LIST_MAX];
    LMU__LAYER_FIELDS(LMU__LAYER_MEMBER)
#undef LMU__LAYER_MEMBER
} lmu_config_layers;

/* A model's shape (fields: LMU__CONFIG_FIELDS above). Zero means "default"
   for every field, so
       lmu_config c = {0}; c.d_model = 96; lmu_config_resolve(&c, err, sizeof err);
   gives a complete, validated config. */
typedef struct lmu_config {
#define LMU__CONFIG_MEMBER(type, name, scope, lo, hi, def, help) LMU__CTYPE_##type name;
    LMU__CONFIG_FIELDS(LMU__CONFIG_MEMBER)
#undef LMU__CONFIG_MEMBER
    lmu_config_layers layers; /* set through lmu_config_set ("q = 32,64,128") */
} lmu_config;

/* Fills `c` with a named preset: "lmu-55k", "lmu-100k", "lmu-200k",
   "lmu-300k", "lmu-500k", "lmu-1m" (docs/MODEL.md section 4, mixer ffn), the same
   names with each other mixer's suffix ("-attn": post-FFN re-solved),
   "transformer-55k" ... "transformer-1m" (GPT-2 baseline of equal N), and
   those with the suffix of a mixer marked TR in LMU__MIXERS
   ("transformer-55k-rebased": the ReBased LM of equal N).
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

/* Names of the enum values ("?" when out of range). */
LMUDEF const char *lmu_mixer_name(lmu_mixer m);
LMUDEF const char *lmu_arch_name(lmu_arch a);
LMUDEF const char *lmu_iattn_init_name(lmu_iattn_init i);
LMUDEF const char *lmu_brt_gate_name(lmu_brt_gate g);

/* Layer l's values (`c` resolved): its entry of the field's list, else
   the field. The window without a list: theta, or with theta_last set,
   theta (l = 0) to theta_last (l = n_layer - 1) in geometric steps. */
LMUDEF double lmu_config_layer_theta(const lmu_config *c, int l);
LMUDEF lmu_mixer lmu_config_layer_mixer(const lmu_config *c, int l);
LMUDEF int lmu_config_layer_q(const lmu_config *c, int l);
LMUDEF int lmu_config_layer_q_prime(const lmu_config *c, int l);

/*
   MODEL CONFIG FILES (what train --config reads)

       # lmu-55k with a longer memory window
       preset   = lmu-55k      # first, if present: the rest overrides it
       theta    = 1000
       n_ctx    = 256

   One `key = value` per line; `#` starts a comment (anywhere on a line);
   blank lines are fine; keys are lmu_config's field names plus "preset";
   values are decimal integers (theta, theta_last, iattn_lr: decimal
   numbers), arch lmu|transformer, mixer ffn|attn|rebased|based|conv|brt,
   iattn_init delay|random, brt_gate fixed|lstm; 0 asks for the default. mixer, q, q_prime and theta (LMU__LAYER_FIELDS)
   also take a list, one entry per layer, none of them 0:

       mixer = ffn, ffn, attn
       theta = 32, 128, 512      # layers with equal (q, theta) share one H

   Without q_prime, each layer's q' follows its own q (q/10). Without a
   preset line the file starts from the
   library's defaults (lmu_config_resolve's). An unknown key, a key given
   twice, a value that does not parse or is out of range is an error that
   names the line. The parser only sets fields: call lmu_config_resolve
   afterwards (after any overrides of your own) to fill defaults and
   validate.
*/

/* Sets one lmu_config field from text, as a config file line would.
   [in,out] c    fields are set, nothing is resolved
   [in] key, value  NUL-terminated; key "preset" loads a preset over c
   [out, optional] err
   Returns LMU_OK, LMU_ERR_ARG (unknown key), LMU_ERR_FORMAT (the value does
   not parse), LMU_ERR_RANGE (it parses but is out of range). */
LMUDEF lmu_result lmu_config_set(lmu_config *c, const char *key, const char *value, char *err,
                                 size_t errcap);

/* lmu_config_set for each item of "key=value,key=value" (a command line's
   --set): a comma starts the next item only where "key=" follows it, so
   a per-layer list keeps its commas ("mixer=conv,rebased,d_model=64").
   Stops at the first error (lmu_config_set's codes; an item without '='
   or over 1023 characters in all: LMU_ERR_FORMAT). */
LMUDEF lmu_result lmu_config_set_items(lmu_config *c, const char *items, char *err, size_t errcap);

/* Parses a config file's text (see MODEL CONFIG FILES) into c, on top of
   what c holds. Errors read "line 3: unknown key 'dmodel'".
   Returns LMU_OK or the first error (lmu_config_set's codes, LMU_ERR_FORMAT
   for a malformed line). Call lmu_config_resolve afterwards. */
LMUDEF lmu_result lmu_config_parse(lmu_config *c, const char *text, size_t len, char *err,
                                   size_t errcap);

/* A program's own keys in the same file (training settings...): called
   for every key before lmu_config's own handling. Return 1 when the key
   was yours (consumed), 0 to let the config have it, or -1 for an error
   (write the reason, without the line number, into err). */
typedef int (*lmu_config_key_fn)(void *user, const char *key, const char *value, char *err,
                                 size_t errcap);
LMUDEF lmu_result lmu_config_parse_ex(lmu_config *c, const char *text, size_t len,
                                      lmu_config_key_fn fn, void *user, char *err,
                                      size_t errcap);

/* Writes c as config-file text that lmu_config_parse reads back to the same
   config (every field its arch uses and that is set, one per line).
   Returns the length it needs (like snprintf); the output is NUL-terminated
   when cap > 0. */
LMUDEF size_t lmu_config_format(const lmu_config *c, char *buf, size_t cap);

/* Field i of lmu_config (i from 0 while it returns a name, NULL after):
   its name and help, for --help texts. */
LMUDEF const char *lmu_config_field(int i, const char **help);

/* ====================================================================== */
/* >>rng                                                                   */
/* ====================================================================== */

/* xoshiro256** seeded through splitmix64: small, fast, the same stream on
   every machine, so a seeded run is reproducible everywhere. */
typedef struct lmu_rng {
    uint64_t s[4];
} lmu_rng;

LMUDEF void lmu_rng_seed(lmu_rng *rng, uint64_t seed);
LMUDEF uint64_t lmu_rng_u64(lmu_rng *rng);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
LMUDEF float lmu_rng_uniform(lmu_rng *rng);
/* Standard normal (Box-Muller, one value per call, no cached state). */
LMUDEF float lmu_rng_normal(lmu_rng *rng);

/* ====================================================================== */
/* >>gemm                                                                  */
/* ====================================================================== */
/* Single-precision matrix multiply, row-major like cblas_sgemm with
   CblasRowMajor:

       C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C

   op(A) = A (trans_a == 0, A stored M x K, lda >= K) or A^T (trans_a != 0,
   A stored K x M, lda >= M); likewise op(B) = B (K x N stored, ldb >= N) or
   B^T (N x K stored, ldb >= K); ldc >= N. For a linear layer y = x W^T with
   x:[T, in] and W:[out, in] (PyTorch layout):
       forward  y  = x W^T   lmu_sgemm(ws, 0, 1, T,   out, in, ...)   NT
       input    dx = dy W    lmu_sgemm(ws, 0, 0, T,   in,  out, ...)  NN
       weight   dW = dy^T x  lmu_sgemm(ws, 1, 0, out, in,  T, ...)    TN

   beta == 0 means C is write-only: whatever it held (NaN included) is
   ignored. alpha == 0 or K == 0 reads neither A nor B.

   The algorithm is the packed, register-blocked one of BLIS (Goto & van de
   Geijn): op(A) is packed into MR-row micro-panels and op(B) into
   NR-column micro-panels, so one micro-kernel serves all four transpose
   combinations. With -fopenmp, C is cut into one rectangle per thread; each
   thread packs its own panels into its slice of the workspace and owns its
   C elements. Every C element is summed in the same order (K is blocked
   the same way whatever the thread count), so results are bit-identical
   for any thread count, not merely for a fixed one.

   Micro-kernels: AVX-512F (14x32) when the compiler targets it, else
   AVX2+FMA (6x16), else portable C written for auto-vectorisation. Define
   LMU_NO_SIMD (globally) to force the portable C kernel.

   bf16 products (ws->bf16): both operands are rounded to bf16 (to nearest
   even) as they are packed, then multiplied and summed in fp32 by the
   same kernels. A bf16 x bf16 product has at most 16 significant bits, so
   fp32 holds it exactly: the result is what a bf16 matrix unit with fp32
   accumulation computes, up to the order of the sums, on any CPU. Bit for
   bit it equals the fp32 product of the rounded operands. This build has
   no bf16 matrix-unit kernel (AMX, AVX512-BF16): the rounding costs a
   pass over the packed panels and saves nothing; it is the portable path
   that mixed-precision training (lmu_model_set_precision) runs on. */

/* Packing buffers for lmu_sgemm: one 64-byte aligned slice per thread.
   Make it once (lmu_gemm_ws_create, or lmu_gemm_ws_init on memory you
   own) and reuse it: a call given a workspace never allocates. Not for two
   concurrent lmu_sgemm calls. */
typedef struct lmu_gemm_ws {
    float *buf;          /* nthreads slices of slice_floats floats */
    size_t slice_floats; /* per-thread slice, a multiple of 16 floats */
    int nthreads;        /* most threads a call with this workspace uses */
    int owned;           /* buf came from lmu_gemm_ws_create */
    int bf16;            /* products with bf16-rounded operands (above);
                            0 after create and init */
} lmu_gemm_ws;

/* Bytes a workspace for nthreads threads needs (nthreads <= 0: the
   OpenMP thread count, 1 without OpenMP). Independent of the shapes. */
LMUDEF size_t lmu_gemm_ws_bytes(int nthreads);

/* Allocates a workspace for nthreads threads (<= 0: the OpenMP thread
   count). Returns LMU_OK, LMU_ERR_ARG (ws NULL) or LMU_ERR_NOMEM.
   See also lmu_gemm_ws_destroy. */
LMUDEF lmu_result lmu_gemm_ws_create(lmu_gemm_ws *ws, int nthreads);

/* Places a workspace on caller memory (64-byte aligned, at least
   lmu_gemm_ws_bytes(nthreads) bytes), e.g. inside a model arena. The
   memory stays the caller's; lmu_gemm_ws_destroy does not free it.
   Returns LMU_OK or LMU_ERR_ARG (NULL, misaligned or too small). */
LMUDEF lmu_result lmu_gemm_ws_init(lmu_gemm_ws *ws, int nthreads, void *mem, size_t bytes);

/* Frees what lmu_gemm_ws_create allocated and zeroes *ws. NULL is fine. */
LMUDEF void lmu_gemm_ws_destroy(lmu_gemm_ws *ws);

/* C = alpha * op(A) * op(B) + beta * C (row-major, see above).
   [in, optional] ws       packing workspace; NULL allocates one for this
                           call and frees it (convenient, not for hot loops)
   [in]  trans_a, trans_b  0: as stored; non-zero: transposed
   [in]  M, N, K           op(A) is M x K, op(B) is K x N, C is M x N
   [in]  A, lda / B, ldb   row pitches in floats of A and B as stored
   [in, out] C, ldc        row pitch of C in floats, ldc >= N
   Uses min(ws->nthreads, OpenMP thread count) threads, fewer for small
   products. Returns LMU_OK, LMU_ERR_ARG (NULL pointer, leading dimension
   below the stored width, sizes overflowing size_t) or LMU_ERR_NOMEM (only
   when ws is NULL). */
LMUDEF lmu_result lmu_sgemm(lmu_gemm_ws *ws, int trans_a, int trans_b,
                            size_t M, size_t N, size_t K, float alpha,
                            const float *A, size_t lda, const float *B, size_t ldb,
                            float beta, float *C, size_t ldc);

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
   lmu_tape_set_growth(tape, 1). While blocks may still grow, a float* from lmu_tape_data() is
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
    float lr_scale;                 /* parameters only: the optimizer's lr times this
                                       (0 means 1) */
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
     5. Kernel scratch: a function lmu__foo_scratch_floats(dims) beside the
        kernels; the op takes it from tape->scratch (refusing a tape whose
        scratch is smaller) and its owner's plan reserves the largest any op
        reports (lmu__model_plan). The fused ops cross_entropy_tied,
        causal_attention and implicit_attention are built this way.
     6. Add a double-precision finite-difference check to tests/test_ops.c.
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
    X(LMU_OP_CE_TIED, "cross_entropy_tied")                                    \
    X(LMU_OP_ATTENTION, "causal_attention")                                    \
    X(LMU_OP_IMPLICIT_ATTENTION, "implicit_attention")                         \
    X(LMU_OP_LINEAR_ATTENTION, "linear_attention")                             \
    X(LMU_OP_SHORT_CONV, "short_conv")                                         \
    X(LMU_OP_QK_NORM, "qk_norm")                                               \
    X(LMU_OP_BLOCK_XATTN, "block_cross_attention")                             \
    X(LMU_OP_BRT_STATE, "block_recurrent_state")                               \
    X(LMU_OP_POOL, "causal_pool")                                              \
    X(LMU_OP_UNPOOL_ADD, "unpool_add")                                         \
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
    /* [optional] kernel scratch of the fused ops (cross_entropy_tied,
       causal_attention, implicit_attention); not owned. Its owner sizes it
       before recording from what each op reports (the model's plan does),
       so no op allocates; too small is LMU_ERR_CAPACITY. */
    float *scratch;
    size_t scratch_floats;
    int nparts;           /* parallel parts of the fused kernels (>= 1) */
    /* linear layers and the tied output layer multiply bf16-rounded
       operands (lmu_gemm_ws.bf16), fp32 everywhere else; each op keeps the
       setting it was recorded with, so its backward matches its forward */
    int bf16;
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
   weight_decay 0 (docs/MODEL.md section 5); change the fields after init.
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

/* The fused kernels are private (lmu__): the tape wraps them as ops, so
   nothing here is public API. They only need the gemm workspace type,
   which >>gemm defines; an incomplete declaration is enough here. */
struct lmu_gemm_ws;

/* >>lmu  The LTI memory (docs/MODEL.md section 1).

   Order q, window theta (in steps), longest sequence n:

       A[i][j] = (2i+1)/theta * (-1 if i < j, else (-1)^(i-j+1))
       B[i]    = (2i+1) (-1)^i / theta
       Abar    = expm(A),  Bbar = A^{-1} (expm(A) - I) B      (ZOH, dt = 1)
       H[:, k] = Abar^k Bbar                                 k = 0..n-1

   Abar and Bbar come out of one expm of the (q+1)x(q+1) block matrix
   [[A, B], [0, 0]] (scaling and squaring with a Pade approximant, Higham
   2005, in double); no inverse of A is formed.

   Shapes (row-major):
       Abar, Abar_d       (q, q)
       Bbar, Bbar_d       (q)
       H                  (q, n)          H[i*n + k]
       Hspec              (q, nfft + 2)   row i = real FFT of H[i, :] zero-
                                          padded to nfft (lmu_fft.h layout:
                                          nfft/2+1 interleaved re,im bins,
                                          unscaled forward transform)
       memory state m     (q, d)          m[i*d + c]: coefficient i of
                                          channel c. The same layout as
                                          Q_t, K_t, V_t (q' x d) in the
                                          attention block, so Z = L m is a
                                          plain (q' x q)(q x d) product.

   nfft = next power of two >= 2n, so a product of spectra is a linear,
   causal convolution of length n (lmu_fft.h's >>conv notes; the model
   runs it in lmu__iattn_conv_signals). */

/* Limits on the arguments of lmu_lti_create(); beyond them it returns
   LMU_ERR_RANGE. MAX_ELEMS caps q*n (H alone is 4 q n bytes, Hspec about
   twice that). Define before the implementation to change them. */
#ifndef LMU_LTI_MAX_Q
#define LMU_LTI_MAX_Q 2048
#endif
#ifndef LMU_LTI_MAX_N
#define LMU_LTI_MAX_N (1 << 26)
#endif
#ifndef LMU_LTI_MAX_ELEMS
#define LMU_LTI_MAX_ELEMS ((size_t)1 << 28)
#endif

/* Everything that depends on (q, theta, n) only: frozen, read-only after
   lmu_lti_create(), so any number of layers and threads may share one.
   One allocation holds the struct, every array and the FFT plan. */
typedef struct lmu_lti {
    int q;              /* order */
    int n;              /* columns of H: the longest sequence */
    double theta;       /* window, in steps */
    int nfft;           /* FFT length: next power of two >= 2n */
    int nbins;          /* nfft/2 + 1 complex bins per row of Hspec */
    size_t spec_stride; /* floats per row of Hspec: nfft + 2 */
    double *Abar_d;     /* (q, q) */
    double *Bbar_d;     /* (q) */
    float *Abar;        /* (q, q) Abar_d rounded to float */
    float *Bbar;        /* (q) */
    float *H;           /* (q, n) computed in double, stored as float */
    float *Hspec;       /* (q, nfft + 2) spectra of the rows of H */
    lmu_fft_plan *plan; /* real plan of length nfft, lives inside this block */
} lmu_lti;

/* Abar and Bbar of order q and window theta, in double.
     [in]  q      1..LMU_LTI_MAX_Q
     [in]  theta  finite, > 0
     [out] Abar   q*q doubles, row-major
     [out] Bbar   q doubles
   Returns LMU_OK, LMU_ERR_ARG (NULL, q < 1, theta not finite or <= 0),
   LMU_ERR_RANGE (q too large, or theta so small that expm would need more
   than 64 squarings: ||A||_1 > 2^64 theta_13, about theta < q^2 1e-20),
   LMU_ERR_NOMEM.
   See also lmu_lti_create. */
LMUDEF lmu_result lmu_lti_discretize(int q, double theta, double *Abar, double *Bbar);

/* Builds the LTI memory for order q, window theta and sequences up to n:
   Abar, Bbar (double and float), H and its spectrum Hspec, and the real FFT
   plan of length nfft that made Hspec.
     [out] out    receives the object (NULL on failure)
     [in]  q      1..LMU_LTI_MAX_Q
     [in]  theta  finite, > 0
     [in]  n      1..LMU_LTI_MAX_N, and q*n <= LMU_LTI_MAX_ELEMS
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_RANGE, LMU_ERR_NOMEM or LMU_ERR_FFT.
   Cost: O(q^3) for expm, O(n q^2) for H, O(q nfft log nfft) for Hspec.
   See also lmu_lti_free, lmu_lti_matches. */
LMUDEF lmu_result lmu_lti_create(lmu_lti **out, int q, double theta, int n);

/* Frees an object from lmu_lti_create (NULL is ignored). */
LMUDEF void lmu_lti_free(lmu_lti *lti);

/* The sharing key: 1 if lti was built for exactly (q, theta, n), else 0
   (also 0 for NULL). theta is compared with ==, so callers must pass the
   same double, not a recomputed one. */
LMUDEF int lmu_lti_matches(const lmu_lti *lti, int q, double theta, int n);

/* One step of the recurrence for d channels at once, in float:
       m_out[i][c] = sum_j Abar[i][j] m_prev[j][c] + Bbar[i] x[c]
     [in]           lti     the memory
     [in]           d       channels, >= 1
     [in, optional] m_prev  (q, d) state m_{t-1}; NULL means zero (t = 0)
     [in]           x       (d) input x_t
     [out]          m_out   (q, d) state m_t; must not overlap m_prev or x
   O(d q^2); runs in parallel under OpenMP (disjoint tiles, so the result
   does not depend on the thread count).
   Returns LMU_OK, LMU_ERR_ARG (NULL, d < 1, overlapping buffers) or
   LMU_ERR_RANGE (q*d does not fit size_t).
   See also lmu_lti_step_d. */
LMUDEF lmu_result lmu_lti_step(const lmu_lti *lti, int d, const float *m_prev,
                               const float *x, float *m_out);

/* The same step in double with Abar_d, Bbar_d (reference and tests). */
LMUDEF lmu_result lmu_lti_step_d(const lmu_lti *lti, int d, const double *m_prev,
                                 const double *x, double *m_out);

/* ---------------------------------------------------------------------- */
/* >>safetensors                                                           */
/* ---------------------------------------------------------------------- */
/* Checkpoints in the safetensors format, read and written safely.

   FILE LAYOUT
       u64 N (little-endian) | N bytes of JSON header | data section
   The header maps each tensor name to
       {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
   with offsets relative to the start of the data section, plus an optional
   "__metadata__": {"key": "value", ...} of strings. Tensor bytes are
   little-endian.

   WRITING (lmu_st_write, lmu_st_save_memory, lmu_st_save_file)
       - "__metadata__" comes first (when n_meta > 0), then the tensors in the
         order given; their data follows in that same order with contiguous
         offsets. Put 8-byte dtypes first if you want every tensor naturally
         aligned in the file (the data section starts 8-byte aligned).
       - The header is padded with spaces so the data section starts at a
         multiple of 8, as the reference writer does.
       - Tensor data is taken in host byte order and written little-endian:
         raw on little-endian hosts, byte-swapped otherwise (detected at run
         time). Floats are assumed IEEE-754 with the integers' byte order.
       - Names, keys and values must be valid UTF-8; names must be unique and
         not "__metadata__", keys unique. Breaking a rule returns LMU_ERR_ARG
         before anything is written.
       - lmu_st_save_file is atomic: it writes PATH.tmp.<pid>.<k> in the same
         folder, flushes and fsyncs it (POSIX), then rename()s it over PATH.
         On any failure the temporary file is removed and PATH is untouched.
         Without POSIX (detected by __unix__ / __APPLE__) it uses stdio with
         fflush only, and where rename() cannot replace a file (Windows) it
         removes PATH first, which is not atomic.

   READING (lmu_st_load_memory, lmu_st_load_file)
       Everything in the file is checked before any of it is used; a bad file
       returns LMU_ERR_FORMAT with a message naming the header byte offset
       and the tensor. The rules:
       - the file has at least 8 bytes; N <= file size - 8 and N <= 100 MB;
       - the header is one JSON object (RFC 8259: strings with all escapes,
         \uXXXX surrogate pairs checked, UTF-8 checked, no control
         characters), optionally surrounded by JSON whitespace (the writer's
         space padding); anything after it is refused;
       - each tensor entry is an object with exactly one "dtype" (a known
         name), "shape" (at most LMU_ST_MAX_DIMS non-negative integers) and
         "data_offsets" (two non-negative integers, begin <= end); unknown
         fields are skipped (as the reference reader does), JSON nested
         deeper than 64 levels is refused;
       - numbers are plain integers: no sign, fraction, exponent or leading
         zero, and they must fit in size_t;
       - prod(shape) * dtype size (overflow-checked) == end - begin;
       - end <= data section size, and the tensors, sorted by offset, cover
         the data section exactly: no overlap, no hole, no trailing bytes
         (the reference reader refuses the same files);
       - names are unique; a name, key or value may not contain U+0000;
       - "__metadata__" appears at most once, is an object, and its values
         are strings with unique keys.
       Memory is proportional to the number of tensors: the header is parsed
       twice, once to count and check, once to fill arrays sized by the first
       pass (cgltf's count-then-fill, without a token array).

   ERRORS
       Every fallible function takes (char *err, size_t errcap) and writes a
       NUL-terminated message there on failure; err may be NULL. */

#define LMU_ST_MAX_DIMS 8

/* name, header string, element size in bytes */
#define LMU__ST_DTYPES(X)                                                      \
    X(LMU_ST_BOOL, "BOOL", 1)                                                  \
    X(LMU_ST_U8, "U8", 1)                                                      \
    X(LMU_ST_I8, "I8", 1)                                                      \
    X(LMU_ST_F8_E5M2, "F8_E5M2", 1)                                            \
    X(LMU_ST_F8_E4M3, "F8_E4M3", 1)                                            \
    X(LMU_ST_I16, "I16", 2)                                                    \
    X(LMU_ST_U16, "U16", 2)                                                    \
    X(LMU_ST_F16, "F16", 2)                                                    \
    X(LMU_ST_BF16, "BF16", 2)                                                  \
    X(LMU_ST_I32, "I32", 4)                                                    \
    X(LMU_ST_U32, "U32", 4)                                                    \
    X(LMU_ST_F32, "F32", 4)                                                    \
    X(LMU_ST_I64, "I64", 8)                                                    \
    X(LMU_ST_U64, "U64", 8)                                                    \
    X(LMU_ST_F64, "F64", 8)

typedef enum lmu_st_dtype {
    LMU_ST_INVALID = 0,
#define LMU__ST_DTYPE_ENUM(e, s, sz) e,
    LMU__ST_DTYPES(LMU__ST_DTYPE_ENUM)
#undef LMU__ST_DTYPE_ENUM
    LMU_ST_DTYPE_COUNT
} lmu_st_dtype;

/* One tensor. Writer input: name, dtype, ndim, shape, data (host byte order,
   element type matching dtype: float for F32, int64_t for I64, ...); nbytes
   and offset are ignored. Reader output: all fields set; data points at the
   tensor's little-endian bytes inside the loaded buffer, possibly
   unaligned, so read it through lmu_st_read_f32 / lmu_st_read. */
typedef struct lmu_st_tensor {
    const char *name;
    lmu_st_dtype dtype;
    int ndim;                       /* 0 (scalar) .. LMU_ST_MAX_DIMS */
    size_t shape[LMU_ST_MAX_DIMS];  /* shape[0..ndim-1] */
    const void *data;
    size_t nbytes;                  /* reader: prod(shape) * dtype size */
    size_t offset;                  /* reader: begin in the data section */
} lmu_st_tensor;

typedef struct lmu_st_meta {
    const char *key;
    const char *value;
} lmu_st_meta;

/* Where lmu_st_write sends bytes. write returns 0 on success and non-zero
   on failure (the writer then stops and returns LMU_ERR_IO). */
typedef struct lmu_st_sink {
    int (*write)(void *user, const void *bytes, size_t n);
    void *user;
} lmu_st_sink;

/* A loaded file. Zero it or let a loader fill it; free with lmu_st_close.
   tensors and meta are in header order; their strings live in the file
   object; tensor data lives in the buffer (lmu_st_load_memory borrows the
   caller's buffer, which must outlive the object). */
typedef struct lmu_st_file {
    size_t n_tensors;
    const lmu_st_tensor *tensors;
    size_t n_meta;
    const lmu_st_meta *meta;
    const unsigned char *data; /* the data section */
    size_t data_len;
    size_t header_len;         /* N */
    /* private */
    void *lmu__block;          /* arrays, name index and strings */
    void *lmu__owned;          /* file contents read by lmu_st_load_file */
    const size_t *lmu__by_name;   /* tensor indices sorted by name */
    const size_t *lmu__meta_by_key;
} lmu_st_file;

/* Element size in bytes (0 for an invalid dtype), header name ("?" for an
   invalid dtype), and the reverse (LMU_ST_INVALID when unknown). */
LMUDEF size_t lmu_st_dtype_size(lmu_st_dtype d);
LMUDEF const char *lmu_st_dtype_name(lmu_st_dtype d);
LMUDEF lmu_st_dtype lmu_st_dtype_from_name(const char *name);

/* Writes a whole file to a sink.
   [in] sink, tensors[n_tensors], meta[n_meta] (meta may be NULL if n_meta
   is 0); [out, optional] err[errcap].
   Returns LMU_OK, LMU_ERR_ARG (bad description, nothing written),
   LMU_ERR_NOMEM, LMU_ERR_IO (the sink failed).
   See also lmu_st_save_memory, lmu_st_save_file. */
LMUDEF lmu_result lmu_st_write(const lmu_st_sink *sink, const lmu_st_tensor *tensors,
                               size_t n_tensors, const lmu_st_meta *meta, size_t n_meta,
                               char *err, size_t errcap);

/* Like lmu_st_write into one LMU_MALLOC'd buffer.
   [out] *out (free with lmu_st_free_memory), *out_len. */
LMUDEF lmu_result lmu_st_save_memory(const lmu_st_tensor *tensors, size_t n_tensors,
                                     const lmu_st_meta *meta, size_t n_meta,
                                     unsigned char **out, size_t *out_len,
                                     char *err, size_t errcap);
LMUDEF void lmu_st_free_memory(void *p);

/* Parses and validates a file held in memory; buf is borrowed (not copied)
   and must outlive f. On failure f is left zeroed and needs no close.
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_FORMAT, LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_st_load_memory(lmu_st_file *f, const void *buf, size_t len,
                                     char *err, size_t errcap);

#ifndef LMU_NO_STDIO
/* Atomic save (see WRITING). Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_NOMEM,
   LMU_ERR_IO; on failure PATH keeps its old contents and no temporary file
   remains. */
LMUDEF lmu_result lmu_st_save_file(const char *path, const lmu_st_tensor *tensors,
                                   size_t n_tensors, const lmu_st_meta *meta,
                                   size_t n_meta, char *err, size_t errcap);
/* Reads the whole file and calls lmu_st_load_memory on it (the object owns
   the bytes). Returns LMU_ERR_IO when it cannot be read. */
LMUDEF lmu_result lmu_st_load_file(lmu_st_file *f, const char *path, char *err, size_t errcap);
#endif

/* Frees what a loader allocated and zeroes f. Safe on a zeroed object. */
LMUDEF void lmu_st_close(lmu_st_file *f);

/* Lookup by exact name / key (binary search); NULL when absent. */
LMUDEF const lmu_st_tensor *lmu_st_find(const lmu_st_file *f, const char *name);
LMUDEF const char *lmu_st_meta_get(const lmu_st_file *f, const char *key);

/* Copies tensor NAME into dst as float32, after checking that its shape is
   exactly shape[0..ndim-1]. F32 is copied bit-exactly; F64, F16 and BF16 are
   converted (round to nearest). dst holds prod(shape) floats.
   Returns LMU_OK, LMU_ERR_FORMAT (missing, or a dtype that is not a float),
   LMU_ERR_SHAPE (message shows both shapes), LMU_ERR_ARG. */
LMUDEF lmu_result lmu_st_read_f32(const lmu_st_file *f, const char *name,
                                  const size_t *shape, int ndim, float *dst,
                                  char *err, size_t errcap);

/* Copies tensor NAME into dst in host byte order, requiring exactly this
   dtype and shape (dst holds prod(shape) * lmu_st_dtype_size(dtype) bytes).
   For step counters (I64), token positions (I32/I64), flags (U8)... */
LMUDEF lmu_result lmu_st_read(const lmu_st_file *f, const char *name, lmu_st_dtype dtype,
                              const size_t *shape, int ndim, void *dst,
                              char *err, size_t errcap);

/* ====================================================================== */
/* >>model                                                                 */
/* ====================================================================== */
/*
   THE LANGUAGE MODELS (docs/MODEL.md sections 3 and 6)

       lmu_config c;  lmu_model *m;  float loss;
       lmu_config_preset(&c, "lmu-55k");
       lmu_model_create(&m, &c, 1234, err, sizeof err);
       for (step = 0; step < steps; step++) {
           lmu_model_forward_backward(m, tokens, targets, B, T, &loss);  // (B, T) ids
           lmu_model_step(m, lmu_lr_schedule(step, warm, steps, 1e-3f), 1.0f, NULL);
       }
       lmu_model_save(m, "model.safetensors", 1);
       lmu_model_free(m);

   What is computed, for tokens of one sequence (n positions, d channels):

       x = E[tokens]                                (n, d); no positions
       for each layer:                              (transformer: x += wpe)
           x = x + Mixer(LN_a(x))      ffn: gelu(x W1^T + b1) W2^T + b2,
                                       width d_pre = round(1.5 d);
                                       attn: causal multi-head attention
           x = x + ImplicitAttn(LN_b(x))            (LMU only)
           x = x + FFN_post(LN_c(x))                width d_ff
       loss = mean_t CE(LN_f(x_t) E^T, target_t)    tied output, nats

   ImplicitAttn(U), with H the LMU's q x n impulse response (>>lmu):
       Z_i[t, r, c] = sum_{j<=t} (L_i H)[r, t-j] U[j, c] + b_i[r]
                                                    i in {q, k, v}, r < q'
       Q_t, K_t, V_t = gelu(Z_{q,k,v}[t])           each (q', d)
       y_t = p softmax(Q_t K_t^T / sqrt(d)) V_t     (d)
   LayerNorm: eps 1e-5, biased variance. gelu: the tanh form. The
   transformer is GPT-2: learned positions, ln_a -> attention, ln_c -> MLP
   of width 4 d. N (lmu_config_param_count) counts neither E nor wpe.

   The training path is the parallel one: the convolution runs as an FFT of
   length 2n with L_i applied to H's spectrum. Generation (>>generate) runs
   the same model as a recurrence, m_t = Abar m_{t-1} + Bbar u_t and
   Z_i[t] = L_i m_t + b_i, with constant memory per token.

   Parameters are tape tensors named as in docs/MODEL.md section 7, so the
   checkpoint names, lmu_tape_find() and the tests all use one naming.
   Every call returns lmu_result; m->err holds the detail of the last error.
*/

/* Tensor ids of one layer's parameters; -1 where the layer has none. */
typedef struct lmu_layer_ids {
#define LMU__ID_FIELD(field, name, nd, d0, d1, d2, init) int field;
#define LMU__MIXER_IDS(tail, name, suffix, tr) LMU__PARAMS_##tail(LMU__ID_FIELD) /* brt: its own */
    LMU__PARAMS_NORM_A(LMU__ID_FIELD)
    LMU__MIXERS(LMU__MIXER_IDS)
    LMU__PARAMS_MEMORY(LMU__ID_FIELD)
    LMU__PARAMS_POST(LMU__ID_FIELD)
#undef LMU__MIXER_IDS
#undef LMU__ID_FIELD
} lmu_layer_ids;

struct lmu_model;

typedef struct lmu_model {
    lmu_config cfg;           /* resolved */
    lmu_tape tape;            /* parameters and the step's activations */
    lmu_adam adam;            /* optimizer state, same offsets as the params */
    lmu_gemm_ws gemm;         /* packing buffers for every matrix product */
    lmu_lti *lti;             /* layer 0's LMU memory (every layer's unless
                                 theta_last is set); NULL for the transformer */
    lmu_lti **lti_layer;      /* (n_layer) each layer's memory; layers of one
                                 theta share one; NULL for the transformer */
    int wte, wpe, ln_f_w, ln_f_b; /* wpe: transformer only, else -1 */
    lmu_layer_ids *layer;     /* (n_layer) */
    float *scratch;           /* (scratch_cap) the fused ops' scratch (the tape's) */
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
    const float *carry_in;    /* during a forward only: its carried state */
    float *carry_out;         /* (lmu_model_forward_carry), else NULL */
    char err[256];
} lmu_model;

/* Creates a model with freshly initialised parameters.
   [out] out   the model (NULL on failure)
   [in]  cfg   resolved or not: it is resolved here (zero fields = defaults)
   [in]  seed  initialisation seed
   [out, optional] err  one-line reason on failure
   Init: embeddings and linear weights N(0, 0.02); output projections of a
   residual branch (ffn_pre.proj, attn.proj, ffn_post.proj) and the
   implicit attention's p scaled by 1/sqrt(2 n_layer) as GPT-2 does; L as
   cfg->iattn_init says (default: delay read-outs; random: N(0, 1/sqrt(q)),
   so L m keeps the memory's scale); biases 0; LayerNorm gains 1.
   wpe N(0, 0.01).
   Returns LMU_OK, LMU_ERR_ARG (bad config), LMU_ERR_NOMEM, LMU_ERR_RANGE
   (the LMU memory cannot be built for this q, theta, n_ctx). */
LMUDEF lmu_result lmu_model_create(lmu_model **out, const lmu_config *cfg, uint64_t seed,
                                   char *err, size_t errcap);
LMUDEF void lmu_model_free(lmu_model *m);

/* A target that takes no part in the loss (synthetic tasks that score a
   few positions: MQAR's queries). */
#define LMU_TARGET_IGNORE (-1)

/* Forward pass and mean next-token loss (nats) on B sequences of T tokens.
   [in] tokens   (B, T) ids in 0..V-1
   [in] targets  (B, T) next-token ids in 0..V-1, or LMU_TARGET_IGNORE: the
                 loss is the mean over the other positions (0 when none is
                 left), an ignored position's own loss is 0
   [in] B, T     1 <= T <= n_ctx
   [out, optional] loss
   The first call with a new (B, T) plans memory; later calls with the same
   or smaller shapes allocate nothing.
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_RANGE (an id out of range),
   LMU_ERR_SHAPE (T > n_ctx), LMU_ERR_NOMEM, LMU_ERR_NONFINITE (the loss
   is NaN or Inf: report it and skip the step). */
LMUDEF lmu_result lmu_model_forward(lmu_model *m, const int *tokens, const int *targets, int B,
                                    int T, float *loss);

/* The training step's forward and backward in one call: the same loss and
   gradients as lmu_model_forward then lmu_model_backward (equal to
   rounding), faster, because the loss layer computes its gradients while
   it holds the logits instead of computing the 50257-wide product again
   in backward. Use lmu_model_forward alone where no backward follows
   (evaluation): there it is the cheaper one. Same arguments and results
   as lmu_model_forward, plus backward's; a LMU_ERR_NONFINITE loss
   returns before backward. */
LMUDEF lmu_result lmu_model_forward_backward(lmu_model *m, const int *tokens, const int *targets,
                                             int B, int T, float *loss);

/* Truncated backpropagation through time (layers of mixer brt with
   n_state >= 1): each sequence of the batch continues a sequence of the
   previous call, and starts from the state that one ended with instead
   of the learned state0. carry_in: (B, lmu_model_carry_floats) floats,
   the states to start from (NULL: state0, as lmu_model_forward); no
   gradient flows into them (nor into state0, unused then). carry_out
   (NULL: not wanted): the states after the last block, for the next
   call; it may be carry_in itself (after a failed call its contents are
   unspecified: start those sequences over). The token side does not carry: the
   first block of a call attends to itself alone, as at a sequence's
   start. Otherwise as lmu_model_forward / lmu_model_forward_backward.
   Returns their codes, and LMU_ERR_ARG (carry given to a model without
   a state), LMU_ERR_SHAPE (T not a multiple of window: a carried state
   must end on a block's end). */
LMUDEF lmu_result lmu_model_forward_carry(lmu_model *m, const int *tokens, const int *targets,
                                          int B, int T, const float *carry_in, float *carry_out,
                                          float *loss);
LMUDEF lmu_result lmu_model_forward_backward_carry(lmu_model *m, const int *tokens,
                                                   const int *targets, int B, int T,
                                                   const float *carry_in, float *carry_out,
                                                   float *loss);
/* floats a sequence carries (S d per brt layer with a state; 0: none) */
LMUDEF size_t lmu_model_carry_floats(const lmu_model *m);

/* Per-position losses of the last forward, (B, T) floats in nats, or NULL. */
LMUDEF const float *lmu_model_position_losses(lmu_model *m);

/* Next-token logits [V] at sequence b, position t of the last forward
   (the loss layer keeps no logits, so this is one V x d product).
   Returns LMU_OK, LMU_ERR_STATE (no forward), LMU_ERR_ARG (b or t outside
   the last forward's B x T, or NULL). */
LMUDEF lmu_result lmu_model_logits(lmu_model *m, int b, int t, float *logits);

/* Zeroes the parameter grads and backpropagates the last forward's loss.
   Returns LMU_OK, LMU_ERR_STATE (no forward since the last backward). */
LMUDEF lmu_result lmu_model_backward(lmu_model *m);

/* One optimizer step: global-norm clipping (clip <= 0: none), then Adam
   with learning rate lr.
   [out, optional] grad_norm  the norm before clipping
   Returns LMU_OK, or LMU_ERR_NONFINITE when a gradient is NaN or Inf: the
   parameters and the optimizer state are then left as they were. */
LMUDEF lmu_result lmu_model_step(lmu_model *m, float lr, float clip, double *grad_norm);

/* The model's optimizer: its hyper-parameters (beta1, beta2, eps,
   weight_decay) may be changed between steps (AdamW: weight_decay > 0). */
LMUDEF lmu_adam *lmu_model_optimizer(lmu_model *m);

/* MIXED PRECISION. X(enum tail, name) of the arithmetic the training
   step's large products use:
     fp32  every product in fp32 (the default)
     bf16  the linear layers (FFNs, projections, q k v) and the tied output
           layer, forward and backward, multiply operands rounded to bf16
           and sum in fp32 (lmu_gemm_ws.bf16); softmax, cross-entropy,
           LayerNorm, the LMU memory (its convolution and implicit
           attention), the attention mixers' scores, Adam and the weights
           themselves stay fp32. The bf16 weights are the fp32 master
           weights rounded as each product packs them, so they follow every
           optimizer step; checkpoints stay fp32 and carry no trace of it.
   This build multiplies the rounded operands with its fp32 kernels (the
   same numbers a bf16 matrix unit gives, no speed-up): see >>gemm. */
#define LMU__PRECISIONS(X)                                                     \
    X(FP32, fp32)                                                              \
    X(BF16, bf16)

typedef enum lmu_precision {
#define LMU__PRECISION_ENUM(tail, name) LMU_PRECISION_##tail,
    LMU__PRECISIONS(LMU__PRECISION_ENUM)
#undef LMU__PRECISION_ENUM
    LMU_PRECISION_COUNT
} lmu_precision;

/* "fp32", "bf16"; "?" out of range. */
LMUDEF const char *lmu_precision_name(lmu_precision p);
/* The precision named `name`. Returns LMU_OK or LMU_ERR_ARG (unknown name,
   NULL; *out is then unchanged). */
LMUDEF lmu_result lmu_precision_parse(const char *name, lmu_precision *out);
/* Sets the precision of the steps that follow (between steps: a forward
   already recorded keeps its own). Returns LMU_OK or LMU_ERR_ARG. */
LMUDEF lmu_result lmu_model_set_precision(lmu_model *m, lmu_precision p);
LMUDEF lmu_precision lmu_model_precision(const lmu_model *m);

/* Number of parameters as the paper counts them (see lmu_config_param_count). */
LMUDEF size_t lmu_model_param_count(const lmu_model *m);

/* Bytes the training step holds beyond the parameters, their grads and
   Adam's moments: the activations, their grads, the int inputs and the
   fused ops' scratch, at their planned capacity (the largest (B, T) so
   far). What "O(n) memory in training" is measured by. */
LMUDEF size_t lmu_model_step_bytes(const lmu_model *m);
/* The same bytes as the last step used them: the capacities above grow
   by doubling, so they can hide a difference of up to 2x between two
   models; this is the number to compare them by. */
LMUDEF size_t lmu_model_step_bytes_used(const lmu_model *m);

/* Sets the longest sequence the model takes. An LMU has no positional
   parameters, so it runs on sequences longer than it was trained with:
   the memory (H, its spectrum) is rebuilt for n_ctx, costing n_ctx q^2
   multiply-adds per window. The transformer's learned positions end at its
   n_ctx: a longer one is LMU_ERR_RANGE. A checkpoint saved afterwards
   records the new n_ctx.
   Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_RANGE, LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_model_set_n_ctx(lmu_model *m, int n_ctx);

/* Accessors, so callers need not reach into lmu_model. */
LMUDEF const lmu_config *lmu_model_config(const lmu_model *m); /* resolved */
/* The detail of the last failed call ("" after a success). */
LMUDEF const char *lmu_model_error(const lmu_model *m);
/* The caller's place in its data (a step count, a byte offset: the caller
   chooses); saved with the optimizer state, so a resume continues there. */
LMUDEF uint64_t lmu_model_data_pos(const lmu_model *m);
LMUDEF void lmu_model_set_data_pos(lmu_model *m, uint64_t pos);
/* Parameter NAME (docs/MODEL.md section 7's names) and its element count, or
   NULL when the model has no such tensor. Writable: for ablations and tests. */
LMUDEF float *lmu_model_param(lmu_model *m, const char *name, size_t *count);
/* The whole parameter block and its gradients (same offsets), n floats.

   DATA PARALLELISM (examples/train.c's MPI build; the library itself has
   no processes and no MPI). Every process holds the same model: the same
   config and seed, or the same checkpoint. Each step, process r of P
   takes its share of the global batch (lmu_tokens_batch with b0 = r B/P,
   nb = B/P) and calls lmu_model_forward_backward on it; then
     1. sum the n floats of lmu_model_grads over the processes,
     2. scale the sum by 1/P (1/S for S equal shares: it is then the
        gradient of the whole batch's mean loss),
     3. write it back into lmu_model_grads on every process, and
     4. call lmu_model_step on every process: the clipping and Adam read
        those gradients, so equal sums keep the models equal.
   The sum's order is the caller's: the same order on every process (and
   the same thread count) gives the same bits as one process summing its
   shards in that order. */
LMUDEF float *lmu_model_params(lmu_model *m, size_t *n);
LMUDEF float *lmu_model_grads(lmu_model *m, size_t *n);

/* >>model-checkpoints (the model's files, in safetensors)
   Saves the parameters under docs/MODEL.md section 7's names, the config in
   __metadata__ (keys: format, then each LMU__CONFIG_FIELDS field the
   model uses and that is set, as section 7's table lists them), and with
   with_optim = 1
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
   q x d memory state and updates it with Abar and Bbar (docs/MODEL.md section
   1), so memory per token is constant whatever the context. Mixer "attn"
   keeps a key/value cache of max_ctx positions: its memory grows with the
   context, up to max_ctx; with a window W (config `window`) the cache is
   a ring of about 2 W positions, so memory and time per token stay flat
   and the context has no end. The transformer cannot go past n_ctx (its
   learned positions end there), whatever its mixers.
*/
struct lmu__cand;
typedef struct lmu_gen {
    const lmu_model *m;
    int max_ctx;       /* positions the KV cache holds (attention only) */
    int t;             /* tokens fed so far */
    float *state;      /* per layer: LMU memory (q, d) */
    float *state_tmp;  /* (q, d) */
    float *kv;         /* per layer: k, v caches (max_ctx, d) each */
    float *x, *h, *a, *big, *z, *y, *pc, *attn_scratch; /* work buffers */
    /* multi-scale stack, per pooled level: the last k vectors of the
       stream below, oldest first (k, d), that stream's x, the level's
       last output */
    float *win[2], *fine[2], *up[2];
    float *logits;     /* (V) after the last lmu_gen_feed */
    void *out_copy;     /* (V, d) the output layer as out_weights says, or NULL (fp32) */
    float *out_scale;   /* (V) int8's row scales */
    int out_weights;    /* lmu_gen_weights */
    struct lmu__cand *cand; /* (V) sampling work */
    lmu_gemm_ws gemm;  /* packing for the LMU's products (m and L m) */
    int nparts;        /* threads the work buffers were sized for */
    char err[256];
} lmu_gen;

/* [out] g  [in] m (must outlive g)  [in] max_ctx  KV positions (0: n_ctx)
   Everything lmu_gen_feed needs is allocated here, packing buffers for
   the LMU's matrix products included: those products use at most the
   OpenMP thread count of this call (results are the same bits for any
   thread count). Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_gen_create(lmu_gen *g, const lmu_model *m, int max_ctx);
LMUDEF void lmu_gen_free(lmu_gen *g);
/* Forgets the context (state to zero, cache empty). */
LMUDEF void lmu_gen_reset(lmu_gen *g);
/* The copy of the output layer generation reads (the tied V x d
   embedding, most of the bytes a token reads: 41 of 45 MB for lmu-1m),
   X(enum tail, name, bytes per weight). Fewer bytes, faster tokens where
   generation is bound by memory bandwidth; each logit then moves from
   fp32's by at most
     bf16  2^-8 sum_k |w_k h_k|: round to nearest, 8 of fp32's 24
           significand bits
     int8  (s/2) sum_k |h_k|, s = max_k |w_k| / 127 the row's scale: w =
           s round(w / s), one float per row beside the V x d bytes
   which rarely changes the argmax (tools/bench_generate --agree measures it
   on a text; tests/test_model checks both bounds). */
#define LMU__GEN_WEIGHTS(X)                                                    \
    X(FP32, fp32, 4)                                                           \
    X(BF16, bf16, 2)                                                           \
    X(INT8, int8, 1)

typedef enum lmu_gen_weights {
#define LMU__GEN_WEIGHTS_ENUM(tail, name, bytes) LMU_GEN_WEIGHTS_##tail,
    LMU__GEN_WEIGHTS(LMU__GEN_WEIGHTS_ENUM)
#undef LMU__GEN_WEIGHTS_ENUM
    LMU_GEN_WEIGHTS_COUNT
} lmu_gen_weights;

/* "fp32", "bf16", "int8"; "?" out of range. */
LMUDEF const char *lmu_gen_weights_name(lmu_gen_weights w);
/* The format named `name`. Returns LMU_OK or LMU_ERR_ARG (unknown name,
   NULL; *out is then unchanged). */
LMUDEF lmu_result lmu_gen_weights_parse(const char *name, lmu_gen_weights *out);
/* Makes generation read the output layer in format w, a copy made from
   the model's weights at this call (fp32: the model's own, no copy).
   Everything else stays fp32. Returns LMU_OK, LMU_ERR_ARG, LMU_ERR_NOMEM
   (then fp32). */
LMUDEF lmu_result lmu_gen_set_weights(lmu_gen *g, lmu_gen_weights w);
/* Feeds one token; g->logits then holds the next token's logits.
   Returns LMU_OK, LMU_ERR_RANGE (bad id), LMU_ERR_CAPACITY (KV cache or
   the transformer's n_ctx full). */
LMUDEF lmu_result lmu_gen_feed(lmu_gen *g, int token);

/* Samples from g->logits: temperature (<= 0: greedy), top_k (0: off),
   top_p (>= 1: off). Uses g's buffers, never allocates.
   Returns the token id. */
LMUDEF int lmu_gen_sample(lmu_gen *g, float temperature, int top_k, float top_p, lmu_rng *rng);

/* ====================================================================== */
/* >>tokenizer                                                             */
/* ====================================================================== */
/* GPT-2's byte-level BPE, id for id what OpenAI's tiktoken gives for its
   "gpt2" encoding, loaded from GPT-2's own encoder.json + vocab.bpe; and a
   byte-level fallback (ids 0..255 are the bytes, 256 is <|endoftext|>) that
   needs no files at all.

   Encoding, step by step:
   1. With allow_special, the text is first cut at each "<|endoftext|>"; each
      occurrence becomes the end-of-text id and the pieces between are
      encoded on their own. Without it the string is plain text.
   2. Pre-tokenisation splits text like GPT-2's pattern
        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
      (leftmost-first alternation), with \p{L}, \p{N} from Unicode's general
      categories and \s = the White_Space property. The tables are generated
      from Debian's unicode-data (LMU_TOKENIZER_UNICODE_VERSION). The matcher
      is hand-written: no regex library.
   3. Each piece that is itself a token is that token; any other piece is
      merged from single bytes, always merging the adjacent pair whose
      concatenation has the lowest merge rank (the leftmost on ties), until
      no adjacent pair concatenates to a token. That is tiktoken's rule.
   Any byte string encodes, invalid UTF-8 and NUL bytes included:
   an invalid byte is a character of its own that is neither letter, number
   nor space (like punctuation), and decode(encode(x)) == x always.

   THREADING: a loaded tokenizer is read-only. lmu_encode, lmu_decode and
   the decoder may run on one tokenizer from many threads at once; each call
   allocates its own scratch. lmu_encode_parallel spreads one text over the
   OpenMP threads and returns the same ids as lmu_encode. */

typedef struct lmu_tokenizer lmu_tokenizer; /* opaque */

/* Loads GPT-2's vocabulary from memory: `encoder_json` (the token -> id JSON
   object) and `vocab_bpe` (the merges, "#version" line optional, one "A B"
   pair per line, in rank order).
       [out] out          the tokenizer, to free with lmu_tokenizer_free;
                          NULL on failure
       [in]  encoder_json, json_len; vocab_bpe, bpe_len  the two files' bytes
                          (not NUL-terminated; not kept after the call)
       [out, optional] err, errcap  on failure, a message naming the file and
                          the line / byte offset of the problem
   Checks everything (JSON syntax and escapes, UTF-8, token characters in
   GPT-2's byte alphabet, unique keys, ids exactly 0..n-1, every byte has a
   token, every merge names tokens made by earlier merges and makes a token of
   encoder.json exactly once, every token but <|endoftext|> is a byte or a
   merge result); untrusted input never crashes or overreads.
   Returns LMU_OK, LMU_ERR_FORMAT (bad data), LMU_ERR_NOMEM, LMU_ERR_ARG.
   See also lmu_tokenizer_load_files, lmu_tokenizer_bytes. */
LMUDEF lmu_result lmu_tokenizer_load_memory(lmu_tokenizer **out, const char *encoder_json,
                                            size_t json_len, const char *vocab_bpe,
                                            size_t bpe_len, char *err, size_t errcap);

#ifndef LMU_NO_STDIO
/* Reads the two files and calls lmu_tokenizer_load_memory. Also returns
   LMU_ERR_IO (the message names the path). Compiled out by LMU_NO_STDIO. */
LMUDEF lmu_result lmu_tokenizer_load_files(lmu_tokenizer **out, const char *encoder_json_path,
                                           const char *vocab_bpe_path, char *err,
                                           size_t errcap);
#endif

/* The fallback: 257 ids, id b < 256 is the byte b, id 256 <|endoftext|>.
       [out] out  the tokenizer (free with lmu_tokenizer_free)
   Returns LMU_OK or LMU_ERR_NOMEM. */
LMUDEF lmu_result lmu_tokenizer_bytes(lmu_tokenizer **out);

/* Frees a tokenizer; NULL is fine. */
LMUDEF void lmu_tokenizer_free(lmu_tokenizer *tok);

/* Number of ids (50257 for GPT-2, 257 for the byte tokenizer). */
LMUDEF int32_t lmu_tokenizer_vocab_size(const lmu_tokenizer *tok);
/* Id of <|endoftext|>, or -1 when the vocabulary has none. */
LMUDEF int32_t lmu_tokenizer_eot(const lmu_tokenizer *tok);
/* Length of the longest token in bytes (sizes the decoder's output). */
LMUDEF size_t lmu_tokenizer_max_token_bytes(const lmu_tokenizer *tok);
/* The bytes of token `id` (not NUL-terminated) and their count in *len;
   NULL for an id out of range. The special token reads "<|endoftext|>". */
LMUDEF const char *lmu_tokenizer_token(const lmu_tokenizer *tok, int32_t id, size_t *len);

/* Encodes text[0..len) (any bytes) into ids.
       [in]  tok, text, len
       [in]  allow_special  nonzero: "<|endoftext|>" in the text becomes the
                            end-of-text id; zero: it is plain text
       [out, optional] ids, cap  room for cap ids. len ids always suffice
                            (a token is at least one byte).
       [out] n_out          the number of ids of the whole text
   Returns LMU_OK; LMU_ERR_CAPACITY when cap < *n_out (ids then holds the
   first cap ids: call with ids NULL, cap 0 to size); LMU_ERR_NOMEM; LMU_ERR_ARG.
   Thread-safe on a shared tokenizer. See also lmu_encode_parallel. */
LMUDEF lmu_result lmu_encode(const lmu_tokenizer *tok, const char *text, size_t len,
                             int allow_special, int32_t *ids, size_t cap, size_t *n_out);

/* lmu_encode for big texts, over the OpenMP threads: the text is cut into
   chunks only where pre-tokenisation provably restarts (an ASCII space,
   tab or newline right after an ASCII non-space byte), the chunks are
   encoded in parallel and joined in order, so the ids are exactly
   lmu_encode's. Same arguments and results; with cap >= len it encodes in
   place in ids, otherwise it allocates 4*len bytes of scratch. Runs serially
   without -fopenmp or for small texts. */
LMUDEF lmu_result lmu_encode_parallel(const lmu_tokenizer *tok, const char *text, size_t len,
                                      int allow_special, int32_t *ids, size_t cap,
                                      size_t *n_out);

/* Decodes ids into bytes (the concatenation of the tokens' bytes; it may be
   invalid UTF-8, e.g. when a multi-byte character is cut between ids).
       [out, optional] out, cap  room for cap bytes; n * max_token_bytes
                                 always suffices
       [out] n_out               the number of bytes of the whole output
   Returns LMU_OK; LMU_ERR_RANGE for an id outside 0..vocab_size-1 (nothing
   useful in out); LMU_ERR_CAPACITY when cap < *n_out (out holds the first
   cap bytes). */
LMUDEF lmu_result lmu_decode(const lmu_tokenizer *tok, const int32_t *ids, size_t n, char *out,
                             size_t cap, size_t *n_out);

/* Streaming decode for generation: push ids as they come, get back the bytes
   that end in complete UTF-8 characters; a character cut between tokens is
   held (at most 3 bytes) until the token that completes it arrives. Bytes
   that cannot become valid UTF-8 are passed through at once, so the
   concatenated output of all pushes plus the final flush equals lmu_decode.
   A caller-owned value: `lmu_decoder d; lmu_decoder_init(&d);`. */
typedef struct lmu_decoder {
    unsigned char pending[4]; /* incomplete UTF-8 tail carried between tokens */
    unsigned n_pending;
} lmu_decoder;

LMUDEF void lmu_decoder_init(lmu_decoder *d);
/* Decodes one id.
       [in, out] d
       [in]  tok, id
       [out] out, cap  room for the output; max_token_bytes + 3 suffices
       [out] n_out     bytes written (may be 0)
   Returns LMU_OK; LMU_ERR_RANGE (bad id) or LMU_ERR_CAPACITY (cap too small;
   *n_out is the room needed), both leaving d unchanged. */
LMUDEF lmu_result lmu_decoder_push(lmu_decoder *d, const lmu_tokenizer *tok, int32_t id,
                                   char *out, size_t cap, size_t *n_out);
/* Emits the held-back bytes (an incomplete character at the end) and resets
   d. cap >= 3 suffices. Returns LMU_OK or LMU_ERR_CAPACITY. */
LMUDEF lmu_result lmu_decoder_flush(lmu_decoder *d, char *out, size_t cap, size_t *n_out);

/* The Unicode version of the character tables, e.g. "15.0.0". */
LMUDEF const char *lmu_tokenizer_unicode_version(void);

/* ====================================================================== */
/* >>data                                                                  */
/* ====================================================================== */
/*
   TOKEN FILES (what examples/prepare.c writes and train/eval read)

       offset  size  field
       0       8     magic "LMUTOKS\0"
       8       4     u32 version, 1
       12      4     u32 vocab_size, 1..65536
       16      8     u64 count, the number of ids
       24      8     u64 reserved, 0
       32      2*count  the ids, u16 each; every id < vocab_size
   All integers little-endian. The file is exactly 32 + 2 * count bytes:
   anything shorter or longer is refused, as is any id >= vocab_size, so a
   loaded token file never needs checking again.

       lmu_tokens tf;
       if (lmu_tokens_load_file(&tf, "data/brown.train.tok", err, sizeof err))
           ... err says why ...
       for (i = 0; i < tf.count; i++) use(tf.ids[i]);
       lmu_tokens_free(&tf);

*/

#define LMU_TOKENS_MAGIC "LMUTOKS" /* 7 chars + the terminating NUL = 8 bytes */
#define LMU_TOKENS_VERSION 1u
#define LMU_TOKENS_HEADER_BYTES 32
#define LMU_TOKENS_MAX_VOCAB 65536

typedef struct lmu_tokens {
    uint32_t version;    /* LMU_TOKENS_VERSION */
    uint32_t vocab_size; /* every id is below this */
    uint64_t count;      /* number of ids */
    uint16_t *ids;       /* (count) host order; owned, free with lmu_tokens_free */
} lmu_tokens;

/* Writes a token file atomically (a temporary file in the same folder,
   flushed, then renamed over path; on failure path is untouched).
   [in] path, ids[n] (each in 0..vocab_size-1), vocab_size in 1..65536
   [out, optional] err  one-line reason
   Returns LMU_OK, LMU_ERR_ARG (bad vocab_size, NULL), LMU_ERR_RANGE (an id
   out of range: nothing is written), LMU_ERR_NOMEM, LMU_ERR_IO. */
#ifndef LMU_NO_STDIO
LMUDEF lmu_result lmu_tokens_write_file(const char *path, const int32_t *ids, size_t n,
                                        int vocab_size, char *err, size_t errcap);
#endif

/* Builds the 32-byte header for vocab_size and count (for writers that
   stream the ids themselves). Returns LMU_OK or LMU_ERR_ARG. */
LMUDEF lmu_result lmu_tokens_header(unsigned char out[LMU_TOKENS_HEADER_BYTES], int vocab_size,
                                    uint64_t count);

/* Parses a token file held in memory (any bytes: everything is checked)
   into tf, which then owns a copy of the ids.
   [out] tf   zeroed on failure, needing no free
   [in]  buf, len
   [out, optional] err  the reason, with the byte offset where it applies
   Returns LMU_OK, LMU_ERR_FORMAT (bad magic, version, vocab_size, size,
   reserved field, or an id >= vocab_size), LMU_ERR_NOMEM, LMU_ERR_ARG. */
LMUDEF lmu_result lmu_tokens_load_memory(lmu_tokens *tf, const void *buf, size_t len, char *err,
                                         size_t errcap);
#ifndef LMU_NO_STDIO
/* Reads the file and parses it as above; LMU_ERR_IO names the path and
   the system's reason. */
LMUDEF lmu_result lmu_tokens_load_file(lmu_tokens *tf, const char *path, char *err,
                                       size_t errcap);
#endif
/* Frees the ids and zeroes tf; safe on a zeroed tf. */
LMUDEF void lmu_tokens_free(lmu_tokens *tf);

/* The training batch of step `step`: B windows of T + 1 tokens whose
   starts are drawn from (seed, step) alone, so every process, and every
   resume, sees the same batch whatever ran before. Writes the windows
   b0 .. b0 + nb - 1 of it: tok[nb][T] and the next-token targets
   tgt[nb][T]. A data-parallel driver gives rank r of P the windows
   b0 = r B / P, nb = B / P (examples/train.c: the shards of a step).
   Returns LMU_OK, LMU_ERR_ARG (NULL, B or T < 1, b0 + nb outside B, or
   fewer than T + 1 tokens). */
LMUDEF lmu_result lmu_tokens_batch(const lmu_tokens *tf, uint64_t seed, uint64_t step, int B, int T,
                                   int b0, int nb, int *tok, int *tgt);

/* The training batch of step `step` for a carried state
   (lmu_model_forward_carry): consecutive segments of B streams. The ids
   are cut into B equal stretches of whole T-token segments, stretch b
   for stream b; step s reads segment s mod (segments a stretch holds),
   so window b of step s + 1 continues window b of step s where the
   stretch does not wrap. Same layout as lmu_tokens_batch (windows b0 ..
   b0 + nb - 1); a function of step alone, as a resume needs.
   Returns LMU_OK, LMU_ERR_ARG (NULL, bad B, T, b0, nb), LMU_ERR_RANGE
   (fewer than B T + 1 ids: no stretch holds one segment). */
LMUDEF lmu_result lmu_tokens_segments(const lmu_tokens *tf, uint64_t step, int B, int T, int b0,
                                      int nb, int *tok, int *tgt);

/* A 64-bit digest of the ids (and vocab_size): equal files give equal
   digests, so processes can check that they train on the same data. */
LMUDEF uint64_t lmu_tokens_digest(const lmu_tokens *tf);

#ifdef __cplusplus
}
#endif

#endif /* LMU_H */

/* ====================================================================== */
/*                         IMPLEMENTATION                                  */
/* ====================================================================== */
#ifdef LMU_IMPLEMENTATION
#ifndef LMU_IMPLEMENTATION_DONE
#define LMU_IMPLEMENTATION_DONE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <float.h>

/* ---------------------------------------------------------------------- */
/* >>alloc                                                                 */
/* ---------------------------------------------------------------------- */

#if defined(LMU_MALLOC) && defined(LMU_REALLOC) && defined(LMU_FREE)
/* all three given */
#elif !defined(LMU_MALLOC) && !defined(LMU_REALLOC) && !defined(LMU_FREE)
#define LMU_MALLOC(sz) malloc(sz)
#define LMU_REALLOC(p, sz) realloc(p, sz)
#define LMU_FREE(p) free(p)
#else
#error "Define all of LMU_MALLOC, LMU_REALLOC and LMU_FREE, or none of them."
#endif

#ifndef LMU_ASSERT
#include <assert.h>
#define LMU_ASSERT(x) assert(x)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LMU__PRIVATE static __attribute__((unused))
#else
#define LMU__PRIVATE static
#endif

/* OpenMP through one macro, so builds without -fopenmp see no pragma at all
   and stay -Wunknown-pragmas clean. */
#ifdef _OPENMP
#include <omp.h>
#define LMU__OMP(x) _Pragma(#x)
#else
#define LMU__OMP(x)
#endif

LMU__PRIVATE int lmu__thread_count(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

LMU__PRIVATE int lmu__thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Writes a formatted detail message into an object's own error buffer. */
LMU__PRIVATE void lmu__errf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (!buf || cap == 0) return;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* a * b with overflow detection; sizes from files go through this. */
LMU__PRIVATE int lmu__mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > (size_t)-1 / a) return 0;
    *out = a * b;
    return 1;
}

/* 64-byte alignment for everything the vector kernels touch. The raw pointer
   is kept just before the aligned block so LMU_FREE gets what LMU_MALLOC
   returned. */
LMU__PRIVATE void *lmu__alloc_aligned(size_t bytes)
{
    unsigned char *raw, *p;
    if (bytes > (size_t)-1 - 64 - sizeof(void *)) return NULL;
    raw = (unsigned char *)LMU_MALLOC(bytes + 64 + sizeof(void *));
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (64 - ((uintptr_t)p & 63)) & 63;
    memcpy(p - sizeof(void *), &raw, sizeof(void *));
    return p;
}

LMU__PRIVATE void lmu__free_aligned(void *p)
{
    void *raw;
    if (!p) return;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    LMU_FREE(raw);
}

/* ---------------------------------------------------------------------- */
/* text: UTF-8 and a JSON scanner, shared by the checkpoint and vocabulary */
/* parsers                                                                 */
/* ---------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if it is not
   one (overlong, surrogate, > U+10FFFF, cut short, stray continuation). */
LMU__PRIVATE size_t lmu__utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned b = s[0];
    if (b < 0x80) { *cp = b; return 1; }
    if (b >= 0xC2 && b <= 0xDF) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (b >= 0xE0 && b <= 0xEF) {
        unsigned lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
        if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        unsigned lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
        if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        *cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
              ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

LMU__PRIVATE int lmu__hex4(const unsigned char *s, uint32_t *v)
{
    int k;
    *v = 0;
    for (k = 0; k < 4; k++) {
        unsigned c = s[k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        *v = (*v << 4) | d;
    }
    return 1;
}

/* Writes code point cp (<= U+10FFFF) as UTF-8; returns its length. */
LMU__PRIVATE size_t lmu__utf8_put(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A JSON text being read, for both JSON readers (safetensors headers and
   GPT-2's encoder.json). Each file keeps the wording of its messages, which
   users and tests know: a header's say the header and file byte and which
   tensor's entry was being read, encoder.json's say the line and byte. */
typedef struct lmu__json {
    const unsigned char *s;
    size_t n, i;      /* length, cursor */
    char *err;
    size_t errcap;
    int by_line;      /* 1: encoder.json's wording, 0: a safetensors header's */
    const char *name; /* a header's tensor being read, or NULL */
} lmu__json;

/* Reports what (then detail) at the cursor; returns 0. */
LMU__PRIVATE int lmu__json_fail(lmu__json *J, const char *what, const char *detail)
{
    size_t k, line = 1;
    if (!detail) detail = "";
    if (J->by_line) {
        for (k = 0; k < J->i && k < J->n; k++) line += J->s[k] == '\n';
        lmu__errf(J->err, J->errcap, "encoder.json: line %lu, byte %lu: %s%s", (unsigned long)line,
                  (unsigned long)J->i, what, detail);
    } else
        lmu__errf(J->err, J->errcap, "safetensors: header byte %llu (file byte %llu): %s%s%s%s%s",
                  (unsigned long long)J->i, (unsigned long long)(J->i + 8),
                  J->name ? "tensor '" : "", J->name ? J->name : "", J->name ? "': " : "", what,
                  detail);
    return 0;
}

/* Skips whitespace; returns the next byte, or -1 at the end. */
LMU__PRIVATE int lmu__json_ws(lmu__json *J)
{
    while (J->i < J->n && memchr(" \t\n\r", J->s[J->i], 4)) J->i++;
    return J->i < J->n ? J->s[J->i] : -1;
}

/* Skips whitespace and consumes c if it comes next. */
LMU__PRIVATE int lmu__json_eat(lmu__json *J, int c)
{
    if (lmu__json_ws(J) != c) return 0;
    J->i++;
    return 1;
}

/* Skips whitespace and consumes c, or reports "expected WHAT" (in a header,
   with what came instead). */
LMU__PRIVATE int lmu__json_expect(lmu__json *J, int c, const char *what)
{
    char msg[96];
    int got;
    if (lmu__json_eat(J, c)) return 1;
    got = lmu__json_ws(J);
    if (J->by_line) snprintf(msg, sizeof msg, "expected %s", what);
    else if (got < 0) snprintf(msg, sizeof msg, "expected %s, got end of header", what);
    else if (got >= 0x20 && got < 0x7F)
        snprintf(msg, sizeof msg, "expected %s, got '%c'", what, got);
    else snprintf(msg, sizeof msg, "expected %s, got byte 0x%02x", what, got);
    return lmu__json_fail(J, msg, NULL);
}

/* One character of a JSON string body: the cursor is inside the string and
   not at its closing quote. Writes the character as UTF-8 to enc (4 bytes
   room), its code point to *cp, moves past it and returns the byte count; or
   reports the offending byte and returns 0. A \u0000 decodes to cp 0: the
   caller decides whether a NUL is acceptable. */
LMU__PRIVATE size_t lmu__json_char(lmu__json *J, unsigned char *enc, uint32_t *cp)
{
    const unsigned char *s = J->s;
    size_t at = J->i, n = J->n, ne;
    unsigned c = s[at];
    *cp = c;
    if (c < 0x20) return (size_t)lmu__json_fail(J, "control character inside a string", NULL);
    if (c >= 0x80) {
        if (!(ne = lmu__utf8_len(s + at, n - at, cp)))
            return (size_t)lmu__json_fail(J, "invalid UTF-8 in a string", NULL);
        memcpy(enc, s + at, ne);
        J->i = at + ne;
        return ne;
    }
    if (c != '\\') {
        enc[0] = (unsigned char)c;
        J->i = at + 1;
        return 1;
    }
    if (at + 1 >= n) return (size_t)lmu__json_fail(J, "unterminated escape", NULL);
    switch (s[at + 1]) {
    case '"': case '\\': case '/': c = s[at + 1]; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': c = 0x100; break;
    default: return (size_t)lmu__json_fail(J, "invalid escape sequence", NULL);
    }
    if (c != 0x100) {
        enc[0] = (unsigned char)c;
        *cp = c;
        J->i = at + 2;
        return 1;
    }
    if (n - at < 6 || !lmu__hex4(s + at + 2, cp))
        return (size_t)lmu__json_fail(J, "\\u must be followed by 4 hex digits", NULL);
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return (size_t)lmu__json_fail(J, "unpaired low surrogate in \\u escape", NULL);
    J->i = at + 6;
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        uint32_t lo;
        if (n - at < 12 || s[at + 6] != '\\' || s[at + 7] != 'u' || !lmu__hex4(s + at + 8, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return (size_t)lmu__json_fail(J, "high surrogate not followed by a \\u low surrogate", NULL);
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
        J->i = at + 12;
    }
    return lmu__utf8_put(enc, *cp);
}

/* Reads the JSON string at the cursor (after whitespace): up to cap decoded
   bytes go to out (may be NULL), *len gets the full decoded length. A U+0000
   sets *nul, or is refused where it stands when nul is NULL. */
LMU__PRIVATE int lmu__json_string(lmu__json *J, char *out, size_t cap, size_t *len, int *nul)
{
    size_t k = 0, start;
    if (lmu__json_ws(J) != '"') return lmu__json_expect(J, '"', "a string");
    start = J->i++;
    if (nul) *nul = 0;
    for (;;) {
        unsigned char enc[4];
        uint32_t cp;
        size_t ne, e, at = J->i;
        if (J->i >= J->n) {
            char msg[96];
            snprintf(msg, sizeof msg, "unterminated string (it starts at header byte %llu)",
                     (unsigned long long)start);
            if (J->by_line) J->i = start;
            return lmu__json_fail(J, J->by_line ? "unterminated string" : msg, NULL);
        }
        if (J->s[J->i] == '"') break;
        if (!(ne = lmu__json_char(J, enc, &cp))) return 0;
        if (cp == 0 && !nul) {
            J->i = at;
            return lmu__json_fail(J, "\\u0000 in a string", NULL);
        }
        if (cp == 0) *nul = 1;
        for (e = 0; e < ne; e++, k++)
            if (out && k < cap) out[k] = (char)enc[e];
    }
    J->i++;
    *len = k;
    return 1;
}

/* A non-negative JSON integer up to max: no '-', leading zero, fraction or
   exponent. encoder.json reports a refusal at the number's start, a header
   at the byte that makes it. */
LMU__PRIVATE int lmu__json_uint(lmu__json *J, size_t max, size_t *out)
{
    static const char *const why[2][6] = {
        {"expected an integer, got end of header",
         "negative number where a size or offset is expected", "expected a non-negative integer",
         "number with a leading zero", "number too large for size_t",
         "expected an integer, got a fraction or exponent"},
        {"expected a non-negative integer id", "expected a non-negative integer id",
         "expected a non-negative integer id", "leading zero in a number", "id too large",
         "id is not an integer"}};
    size_t v = 0, start;
    int c = lmu__json_ws(J), e = -1;
    start = J->i;
    if (c < 0) e = 0;
    else if (c == '-') e = 1;
    else if (c < '0' || c > '9') e = 2;
    else if (c == '0' && J->i + 1 < J->n && J->s[J->i + 1] >= '0' && J->s[J->i + 1] <= '9')
        e = 3;
    for (; e < 0 && J->i < J->n && J->s[J->i] >= '0' && J->s[J->i] <= '9'; J->i++) {
        size_t d = (size_t)(J->s[J->i] - '0');
        if (v > (max - d) / 10) { e = 4; break; }
        v = v * 10 + d;
    }
    if (e < 0 && J->i < J->n && memchr(".eE", J->s[J->i], 3)) e = 5;
    if (e < 0) {
        *out = v;
        return 1;
    }
    if (J->by_line) J->i = start;
    return lmu__json_fail(J, why[J->by_line][e], NULL);
}

/* Skips decimal digits; returns how many. */
LMU__PRIVATE size_t lmu__json_digits(lmu__json *J)
{
    size_t from = J->i;
    while (J->i < J->n && J->s[J->i] >= '0' && J->s[J->i] <= '9') J->i++;
    return J->i - from;
}

/* Skips any JSON value (a header's unknown fields), at most depth more
   levels deep. Only headers skip, so the messages are theirs. */
LMU__PRIVATE int lmu__json_skip(lmu__json *J, int depth)
{
    size_t len;
    int nul, c = lmu__json_ws(J);
    if (depth < 0) return lmu__json_fail(J, "JSON nested too deeply", NULL);
    if (c < 0) return lmu__json_fail(J, "expected a value, got end of header", NULL);
    if (c == '"') return lmu__json_string(J, NULL, 0, &len, &nul);
    if (c == '{' || c == '[') {
        int close = c == '{' ? '}' : ']';
        J->i++;
        if (lmu__json_eat(J, close)) return 1;
        do {
            if (c == '{' && !lmu__json_string(J, NULL, 0, &len, &nul)) return 0;
            if (c == '{' && !lmu__json_expect(J, ':', "':'")) return 0;
            if (!lmu__json_skip(J, depth - 1)) return 0;
        } while (lmu__json_eat(J, ','));
        return lmu__json_expect(J, close, c == '{' ? "',' or '}'" : "',' or ']'");
    }
    if (c == 't' || c == 'f' || c == 'n') {
        const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t l = strlen(lit);
        if (J->n - J->i < l || memcmp(J->s + J->i, lit, l) != 0)
            return lmu__json_fail(J, "invalid literal", NULL);
        J->i += l;
        return 1;
    }
    if (c == '-' || (c >= '0' && c <= '9')) { /* RFC 8259 number grammar */
        if (c == '-') J->i++;
        if (J->i < J->n && J->s[J->i] == '0') J->i++;
        else if (!lmu__json_digits(J)) return lmu__json_fail(J, "invalid number", NULL);
        if (J->i < J->n && J->s[J->i] == '.') {
            J->i++;
            if (!lmu__json_digits(J)) return lmu__json_fail(J, "invalid number", NULL);
        }
        if (J->i < J->n && (J->s[J->i] == 'e' || J->s[J->i] == 'E')) {
            J->i++;
            if (J->i < J->n && (J->s[J->i] == '+' || J->s[J->i] == '-')) J->i++;
            if (!lmu__json_digits(J)) return lmu__json_fail(J, "invalid number", NULL);
        }
        return 1;
    }
    return lmu__json_fail(J, "unexpected character", NULL);
}

#ifndef LMU_NO_STDIO
#include <errno.h>
/* Reads a whole file into LMU_MALLOC'd memory, with a NUL after the end (not
   counted) so text parsers may rely on it. The size from ftell is only a
   first guess (it is a long, and some files lie); reading goes on to EOF.
   max_bytes (0: none) refuses larger files as LMU_ERR_FORMAT. Messages are
   "WHAT: cannot open PATH: reason" and the like. One reader serves the
   checkpoint, vocabulary and token-file loaders. */
LMU__PRIVATE lmu_result lmu__read_whole_file(const char *path, const char *what, size_t max_bytes,
                                             unsigned char **out, size_t *len, char *err,
                                             size_t errcap)
{
    FILE *f;
    unsigned char *b = NULL, *nb;
    size_t cap = 0, n = 0, got;
    long hint;
    *out = NULL;
    *len = 0;
    f = fopen(path, "rb");
    if (!f) {
        lmu__errf(err, errcap, "%s: cannot open %.200s: %s", what, path, strerror(errno));
        return LMU_ERR_IO;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (hint = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (unsigned long long)hint < (unsigned long long)((size_t)-1 / 4))
        cap = (size_t)hint + 1;
    else
        rewind(f);
    if (cap < 4096) cap = 4096;
    for (;;) {
        if (!b || n == cap) {
            if (b) {
                if (cap > (size_t)-1 / 4) goto nomem;
                cap *= 2;
            }
            nb = (unsigned char *)LMU_REALLOC(b, cap + 1);
            if (!nb) goto nomem;
            b = nb;
        }
        got = fread(b + n, 1, cap - n, f);
        n += got;
        if (max_bytes && n > max_bytes) {
            fclose(f);
            LMU_FREE(b);
            lmu__errf(err, errcap, "%s: %.200s is larger than %lu bytes", what, path,
                      (unsigned long)max_bytes);
            return LMU_ERR_FORMAT;
        }
        if (n < cap) break; /* a short read: end of file or an error */
    }
    if (ferror(f)) {
        lmu__errf(err, errcap, "%s: cannot read %.200s: %s", what, path, strerror(errno));
        fclose(f);
        LMU_FREE(b);
        return LMU_ERR_IO;
    }
    fclose(f);
    b[n] = 0;
    *out = b;
    *len = n;
    return LMU_OK;
nomem:
    fclose(f);
    LMU_FREE(b);
    lmu__errf(err, errcap, "%s: out of memory reading %.200s", what, path);
    return LMU_ERR_NOMEM;
}
#endif

/* ---------------------------------------------------------------------- */
/* >>config (implementation)                                               */
/* ---------------------------------------------------------------------- */

LMUDEF const char *lmu_strerror(lmu_result r)
{
    static const char *const names[] = {
#define LMU__NAME_ITEM(name, text) text,
        LMU__RESULTS(LMU__NAME_ITEM)
#undef LMU__NAME_ITEM
    };
    if ((int)r < 0 || (int)r >= (int)LMU_RESULT_COUNT) return "unknown result code";
    return names[r];
}

LMU__PRIVATE int lmu__mixer_has_heads(lmu_mixer x); /* >>layers */
LMU__PRIVATE int lmu__mixer_has_features(lmu_mixer x);

/* The name function of a list of X(tail, name) rows: one table, so the
   names cannot drift from the enum. */
#define LMU__NAME_ITEM(tail, name) #name,
#define LMU__NAME_FUNCTION(fn, type, LIST, count)                              \
    LMUDEF const char *fn(type v)                                              \
    {                                                                          \
        static const char *const names[] = {LIST(LMU__NAME_ITEM)};             \
        return (unsigned)v < (unsigned)(count) ? names[v] : "?";               \
    }
LMU__NAME_FUNCTION(lmu_arch_name, lmu_arch, LMU__ARCHS, LMU_ARCH_COUNT)
LMU__NAME_FUNCTION(lmu_iattn_init_name, lmu_iattn_init, LMU__IATTN_INITS, LMU_IATTN_INIT_COUNT)
LMU__NAME_FUNCTION(lmu_brt_gate_name, lmu_brt_gate, LMU__BRT_GATES, LMU_BRT_GATE_COUNT)

LMUDEF const char *lmu_mixer_name(lmu_mixer m)
{
    static const char *const names[] = {
#define LMU__MIXER_NAME(tail, name, suffix, tr) #name,
        LMU__MIXERS(LMU__MIXER_NAME)
#undef LMU__MIXER_NAME
    };
    return (unsigned)m < (unsigned)LMU_MIXER_COUNT ? names[m] : "?";
}


/* A multi-scale stack's default split: one fine layer below, one above,
   the rest coarse (at least one); a split that does not add up stays 0
   for lmu_config_resolve to name. */
LMU__PRIVATE int lmu__hier_coarse_default(const lmu_config *c)
{
    return c->n_layer - c->hier_bottom - 1 > 1 ? c->n_layer - c->hier_bottom - 1 : 1;
}
LMU__PRIVATE int lmu__hier_top_default(const lmu_config *c)
{
    return c->n_layer - c->hier_bottom - c->hier_coarse > 0 ? c->n_layer - c->hier_bottom - c->hier_coarse : 0;
}
LMU__PRIVATE int lmu__hier_coarse2_default(const lmu_config *c)
{
    return c->hier_coarse - c->hier_bottom2 - 1 > 1 ? c->hier_coarse - c->hier_bottom2 - 1 : 1;
}

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

/* LMU__CONFIG_FIELDS as data, for the code that walks every field. */
enum { LMU__KIND_INT, LMU__KIND_REAL, LMU__KIND_ENUM };
enum { LMU__SCOPE_ALL, LMU__SCOPE_LMU, LMU__SCOPE_HEADS, LMU__SCOPE_FEATURES, LMU__SCOPE_ATTN,
       LMU__SCOPE_BRT, LMU__SCOPE_HIER, LMU__SCOPE_HIER2 };
#define LMU__KIND_OF_INT LMU__KIND_INT
#define LMU__KIND_OF_REAL LMU__KIND_REAL
#define LMU__KIND_OF_ARCH LMU__KIND_ENUM
#define LMU__KIND_OF_MIXER LMU__KIND_ENUM
#define LMU__KIND_OF_IATTN_INIT LMU__KIND_ENUM
#define LMU__KIND_OF_BRT_GATE LMU__KIND_ENUM

LMU__PRIVATE const char *lmu__enum_name_INT(int v) { (void)v; return NULL; }
#define lmu__enum_name_REAL lmu__enum_name_INT
LMU__PRIVATE const char *lmu__enum_name_ARCH(int v) { return lmu_arch_name((lmu_arch)v); }
LMU__PRIVATE const char *lmu__enum_name_MIXER(int v) { return lmu_mixer_name((lmu_mixer)v); }
LMU__PRIVATE const char *lmu__enum_name_IATTN_INIT(int v)
{
    return lmu_iattn_init_name((lmu_iattn_init)v);
}
LMU__PRIVATE const char *lmu__enum_name_BRT_GATE(int v) { return lmu_brt_gate_name((lmu_brt_gate)v); }

typedef struct lmu__field {
    const char *name, *help;
    size_t off;
    int kind, scope;
    double lo, hi;                /* INT, REAL; ENUM: 0..count-1 */
    const char *hi_text;          /* hi as the list writes it */
    const char *(*names)(int v);  /* ENUM: a value's name */
} lmu__field;

static const lmu__field lmu__fields[] = {
#define LMU__FIELD_ROW(type, name, scope, lo, hi, def, help)                   \
    {#name, help, offsetof(lmu_config, name), LMU__KIND_OF_##type, LMU__SCOPE_##scope, \
     (double)(lo), (double)(hi), #hi, lmu__enum_name_##type},
    LMU__CONFIG_FIELDS(LMU__FIELD_ROW)
#undef LMU__FIELD_ROW
};
#define LMU__N_FIELDS ((int)(sizeof lmu__fields / sizeof lmu__fields[0]))

LMUDEF const char *lmu_config_field(int i, const char **help)
{
    if (i < 0 || i >= LMU__N_FIELDS) return NULL;
    if (help) *help = lmu__fields[i].help;
    return lmu__fields[i].name;
}

/* Does the model c describes use this field? c's arch and mixer valid. */
LMU__PRIVATE int lmu__scope_on(const lmu_config *c, int scope)
{
    if (scope == LMU__SCOPE_LMU) return c->arch == LMU_ARCH_LMU;
    if (scope == LMU__SCOPE_HIER) return c->hier_k != 0;
    if (scope == LMU__SCOPE_HIER2) return c->hier_k != 0 && c->hier_k2 != 0;
    if (scope == LMU__SCOPE_ATTN || scope == LMU__SCOPE_BRT) {
        int k, n = c->layers.n_mixer, on = 0;
        for (k = 0; k < (n ? n : 1); k++) {
            lmu_mixer x = n ? c->layers.mixer[k] : c->mixer;
            on |= x == LMU_MIXER_BRT || (scope == LMU__SCOPE_ATTN && x == LMU_MIXER_ATTN);
        }
        return on;
    }
    if (scope == LMU__SCOPE_HEADS || scope == LMU__SCOPE_FEATURES) {
        int (*has)(lmu_mixer) = scope == LMU__SCOPE_HEADS ? lmu__mixer_has_heads
                                                          : lmu__mixer_has_features;
        int k, on = has(c->mixer);
        for (k = 0; k < c->layers.n_mixer; k++) on |= has(c->layers.mixer[k]);
        return on;
    }
    return 1;
}

/* A value of a field's kind at p, as a double (every int and enum fits
   exactly), and back. */
LMU__PRIVATE double lmu__value_get(int kind, const void *p)
{
    if (kind == LMU__KIND_REAL) return *(const double *)p;
    if (kind == LMU__KIND_INT) return *(const int *)p;
    return (double)*(const lmu_arch *)p; /* every enum is an int-sized enum */
}

LMU__PRIVATE void lmu__value_put(int kind, void *p, double v)
{
    if (kind == LMU__KIND_REAL) *(double *)p = v;
    else if (kind == LMU__KIND_INT) *(int *)p = (int)v;
    else *(lmu_arch *)p = (lmu_arch)(int)v;
}

LMU__PRIVATE double lmu__field_get(const lmu_config *c, const lmu__field *f)
{
    return lmu__value_get(f->kind, (const char *)c + f->off);
}

LMU__PRIVATE void lmu__field_put(lmu_config *c, const lmu__field *f, double v)
{
    lmu__value_put(f->kind, (char *)c + f->off, v);
}

/* a field's index in lmu__fields, by name */
enum {
#define LMU__FIELD_INDEX(type, name, scope, lo, hi, def, help) LMU__FIELD_##name,
    LMU__CONFIG_FIELDS(LMU__FIELD_INDEX)
#undef LMU__FIELD_INDEX
    LMU__FIELD_COUNT
};

/* LMU__LAYER_FIELDS as data: where a field's per-layer list lives. */
typedef struct lmu__list {
    const lmu__field *f;
    size_t n_off, off, size; /* of layers.n_NAME, of layers.NAME, an entry's bytes */
} lmu__list;

static const lmu__list lmu__lists[] = {
#define LMU__LIST_ROW(type, name)                                              \
    {&lmu__fields[LMU__FIELD_##name], offsetof(lmu_config, layers.n_##name),     \
     offsetof(lmu_config, layers.name), sizeof(LMU__CTYPE_##type)},
    LMU__LAYER_FIELDS(LMU__LIST_ROW)
#undef LMU__LIST_ROW
};
#define LMU__N_LISTS ((int)(sizeof lmu__lists / sizeof lmu__lists[0]))
/* a list's text: 64 entries of up to 24 characters and a comma */
#define LMU__FIELD_TEXT_MAX (LMU_LAYER_LIST_MAX * 25 + 8)

/* field f's list, or NULL when it is one value for every layer */
LMU__PRIVATE const lmu__list *lmu__field_list(const lmu__field *f)
{
    int k;
    for (k = 0; k < LMU__N_LISTS; k++)
        if (lmu__lists[k].f == f) return &lmu__lists[k];
    return NULL;
}

LMU__PRIVATE int *lmu__list_n(const lmu_config *c, const lmu__list *L)
{
    return (int *)(void *)((char *)c + L->n_off);
}

LMU__PRIVATE double lmu__list_get(const lmu_config *c, const lmu__field *f, const lmu__list *L,
                                  int k)
{
    return lmu__value_get(f->kind, (const char *)c + L->off + (size_t)k * L->size);
}

/* No list: and no stale entries, so equal configs compare equal. */
LMU__PRIVATE void lmu__list_clear(lmu_config *c, const lmu__list *L)
{
    *lmu__list_n(c, L) = 0;
    memset((char *)c + L->off, 0, LMU_LAYER_LIST_MAX * L->size);
}

/* "a, b or c": an enum field's accepted values, for error messages. */
LMU__PRIVATE void lmu__field_choices(const lmu__field *f, char *buf, size_t cap)
{
    int k, n = (int)f->hi + 1;
    size_t len = 0;
    buf[0] = 0;
    for (k = 0; k < n && len < cap; k++) {
        int w = snprintf(buf + len, cap - len, "%s%s", k == 0 ? "" : k == n - 1 ? " or " : ", ",
                         f->names(k));
        if (w < 0) break;
        len += (size_t)w;
    }
}

/* Parses text into field f: decimal digits for INT (a sign is refused:
   every count is positive), a decimal number for REAL (no hex, inf or
   nan, which strtod would take), a value's name for ENUM. 0 is the
   default and always accepted. Returns LMU_OK, LMU_ERR_FORMAT,
   LMU_ERR_RANGE; the message starts with the field's name. */
LMU__PRIVATE lmu_result lmu__field_parse(const lmu__field *f, const char *v, double *out,
                                         char *err, size_t errcap)
{
    double x = 0;
    if (f->kind == LMU__KIND_ENUM) {
        char choices[160];
        int k;
        for (k = 0; k <= (int)f->hi; k++)
            if (strcmp(v, f->names(k)) == 0) {
                *out = k;
                return LMU_OK;
            }
        lmu__field_choices(f, choices, sizeof choices);
        lmu__errf(err, errcap, "%s = '%.40s': want %s", f->name, v, choices);
        return LMU_ERR_FORMAT;
    }
    if (f->kind == LMU__KIND_INT) {
        const char *s = v;
        if (!*s) goto bad_int;
        for (; *s; s++) {
            if (*s < '0' || *s > '9') goto bad_int;
            x = x * 10 + (*s - '0');
            if (x > f->hi) x = f->hi + 1; /* stays small on long inputs */
        }
    } else {
        char buf[64], *end;
        size_t k, n = strlen(v);
        if (n == 0 || n >= sizeof buf) goto bad_real;
        for (k = 0; k < n; k++)
            if (!strchr("0123456789.eE+-", v[k])) goto bad_real;
        memcpy(buf, v, n + 1);
        x = strtod(buf, &end);
        if (end != buf + n) goto bad_real;
    }
    if (x != 0 && !(x >= f->lo && x <= f->hi)) {
        if (f->kind == LMU__KIND_INT)
            lmu__errf(err, errcap, "%s = %s is outside %.0f..%.0f (0: the default)", f->name, v,
                      f->lo, f->hi);
        else
            lmu__errf(err, errcap, "%s = %s must be in (0, %s] (0: the default)", f->name, v,
                      f->hi_text);
        return LMU_ERR_RANGE;
    }
    *out = x;
    return LMU_OK;
bad_int:
    lmu__errf(err, errcap, "%s = '%.40s' is not a whole number", f->name, v);
    return LMU_ERR_FORMAT;
bad_real:
    lmu__errf(err, errcap, "%s = '%.40s' is not a number", f->name, v);
    return LMU_ERR_FORMAT;
}

/* Keys of 0.1.x that still read, in config files and checkpoint
   metadata: {old, field}. (The implicit attention's options were isa_*,
   which most readers take for "instruction set".) */
static const char *const lmu__field_aliases[][2] = {{"isa_init", "iattn_init"},
                                                    {"isa_lr", "iattn_lr"}};

LMU__PRIVATE int lmu__field_find(const char *name)
{
    int i, k;
    for (k = 0; k < (int)(sizeof lmu__field_aliases / sizeof lmu__field_aliases[0]); k++)
        if (strcmp(name, lmu__field_aliases[k][0]) == 0) name = lmu__field_aliases[k][1];
    for (i = 0; i < LMU__N_FIELDS; i++)
        if (strcmp(name, lmu__fields[i].name) == 0) return i;
    return -1;
}

/* field i's key of 0.1.x, or NULL */
LMU__PRIVATE const char *lmu__field_alias(int i)
{
    int k;
    for (k = 0; k < (int)(sizeof lmu__field_aliases / sizeof lmu__field_aliases[0]); k++)
        if (strcmp(lmu__fields[i].name, lmu__field_aliases[k][1]) == 0) return lmu__field_aliases[k][0];
    return NULL;
}

LMUDEF lmu_result lmu_config_resolve(lmu_config *c, char *err, size_t errcap)
{
#define LMU__CFG_FAIL(...)                                                     \
    do {                                                                       \
        lmu__errf(err, errcap, __VA_ARGS__);                                   \
        return LMU_ERR_ARG;                                                    \
    } while (0)
    int i = 0, k, l, qp_unset;
    if (!c) return LMU_ERR_ARG;
    if (err && errcap) err[0] = 0;
    qp_unset = c->q_prime == 0 && c->layers.n_q_prime == 0;
    /* A list's entries must be set and in range; the field holds layer 0's
       value, so the defaults below that use it see what layer 0 has. */
    for (k = 0; k < LMU__N_LISTS; k++) {
        const lmu__list *L = &lmu__lists[k];
        const lmu__field *f = L->f;
        int n = *lmu__list_n(c, L);
        if (n < 0 || n > LMU_LAYER_LIST_MAX)
            LMU__CFG_FAIL("config: %s list of %d entries (at most %d)", f->name, n,
                          LMU_LAYER_LIST_MAX);
        for (l = 0; l < n; l++) {
            double v = lmu__list_get(c, f, L, l);
            if (!(v >= (f->kind == LMU__KIND_ENUM ? 0 : f->lo) && v <= f->hi))
                LMU__CFG_FAIL("config: %s entry %d (%g) out of range", f->name, l + 1, v);
        }
        if (n > 0) lmu__field_put(c, f, lmu__list_get(c, f, L, 0));
    }
    /* In list order, so a default may use the fields before it: a field
       the model does not use is 0, an unset one takes its default, and
       then it must be in range. */
#define LMU__CFG_RESOLVE(type, fld, scope_, lo_, hi_, def, help_)             \
    {                                                                          \
        const lmu__field *f = &lmu__fields[i++];                               \
        double v;                                                              \
        if (!lmu__scope_on(c, LMU__SCOPE_##scope_)) c->fld = (LMU__CTYPE_##type)0; \
        else if (c->fld == 0) c->fld = (LMU__CTYPE_##type)(def);               \
        v = lmu__field_get(c, f);                                              \
        if (f->kind == LMU__KIND_ENUM && !(v >= f->lo && v <= f->hi))          \
            LMU__CFG_FAIL("config: unknown %s %d", f->name, (int)v);           \
        if (f->kind == LMU__KIND_INT && lmu__scope_on(c, f->scope) && !(v >= f->lo && v <= f->hi)) \
            LMU__CFG_FAIL("config: %s %.0f outside %.0f..%.0f", f->name, v, f->lo, f->hi); \
        if (f->kind == LMU__KIND_REAL && !(v == 0 || (v >= f->lo && v <= f->hi))) \
            LMU__CFG_FAIL("config: %s %g must be 0 (the default) or in (0, %g]", f->name, v, f->hi); \
    }
    LMU__CONFIG_FIELDS(LMU__CFG_RESOLVE)
#undef LMU__CFG_RESOLVE
    for (k = 0; k < LMU__N_LISTS; k++) {
        const lmu__list *L = &lmu__lists[k];
        int n = *lmu__list_n(c, L);
        if (!lmu__scope_on(c, L->f->scope)) lmu__list_clear(c, L);
        else if (n > 0 && n != c->n_layer)
            LMU__CFG_FAIL("config: %s lists %d values for %d layers", L->f->name, n, c->n_layer);
    }
    for (l = 0; c->arch == LMU_ARCH_TRANSFORMER && l < c->n_layer; l++)
        if (lmu_config_layer_mixer(c, l) == LMU_MIXER_FFN)
            LMU__CFG_FAIL("config: transformer layer %d: mixer ffn (its MLP follows every "
                          "mixer; want attn, rebased, based, conv or brt)", l);
    if (c->arch == LMU_ARCH_LMU) {
        double cost = 0;
        if (c->layers.n_q > 0 && qp_unset) { /* each layer's q' follows its own q */
            for (l = 0; l < c->n_layer; l++)
                c->layers.q_prime[l] = c->layers.q[l] / 10 > 0 ? c->layers.q[l] / 10 : 1;
            c->layers.n_q_prime = c->n_layer;
            c->q_prime = c->layers.q_prime[0];
        }
        for (l = 0; l < c->n_layer; l++)
            if (lmu_config_layer_q_prime(c, l) > lmu_config_layer_q(c, l))
                LMU__CFG_FAIL("config: layer %d: q_prime %d outside 1..q (q = %d)", l,
                              lmu_config_layer_q_prime(c, l), lmu_config_layer_q(c, l));
        if (c->theta_last == c->theta) c->theta_last = 0; /* one spelling of "off" */
        if (c->theta_last > 0 && c->layers.n_theta > 0)
            LMU__CFG_FAIL("config: theta lists the windows and theta_last sets them: give one");
        if (c->iattn_lr == 1) c->iattn_lr = 0;
        /* Building H costs n_ctx q^2 multiply-adds in double for each
           distinct (q, theta) when the model is created (or loaded): cap it
           near 10 s, so a small file cannot ask for hours (paper scale is
           q ~ 256 at n_ctx 64k, 4.3e9). */
        for (l = 0; l < c->n_layer; l++) {
            double q = lmu_config_layer_q(c, l), th = lmu_config_layer_theta(c, l);
            for (k = 0; k < l && !(lmu_config_layer_q(c, k) == q &&
                                   lmu_config_layer_theta(c, k) == th); k++) {}
            if (k == l) cost += q * q * (double)c->n_ctx;
        }
        if (cost > 8.6e9)
            LMU__CFG_FAIL("config: q^2 n_ctx summed over the windows is %.3g, over 8.6e9 "
                          "(building H would take minutes)", cost);
    }
    /* one spelling of a uniform stack: no list */
    for (k = 0; k < LMU__N_LISTS; k++) {
        const lmu__list *L = &lmu__lists[k];
        const lmu__field *f = L->f;
        int n = *lmu__list_n(c, L);
        for (l = 1; l < n && lmu__list_get(c, f, L, l) == lmu__list_get(c, f, L, 0); l++) {}
        if (n > 0 && l == n) lmu__list_clear(c, L);
    }
    if (c->n_head > 0 && c->d_model % c->n_head != 0)
        LMU__CFG_FAIL("config: n_head %d does not divide d_model %d", c->n_head, c->d_model);
    if (lmu__scope_on(c, LMU__SCOPE_BRT) && c->window < 1)
        LMU__CFG_FAIL("config: mixer brt works on blocks of W tokens: set window >= 1");
    if (c->hier_k == 1)
        LMU__CFG_FAIL("config: hier_k 1: a multi-scale stack pools by k >= 2 (0: none)");
    if (c->hier_k && c->hier_bottom + c->hier_coarse + c->hier_top != c->n_layer)
        LMU__CFG_FAIL("config: hier_bottom + hier_coarse + hier_top = %d + %d + %d, not the "
                      "%d layers (n_layer)", c->hier_bottom, c->hier_coarse, c->hier_top,
                      c->n_layer);
    if (c->hier_k > c->n_ctx)
        LMU__CFG_FAIL("config: hier_k %d exceeds n_ctx %d (the coarse layers would see one "
                      "position)", c->hier_k, c->n_ctx);
    if (c->hier_k2 == 1)
        LMU__CFG_FAIL("config: hier_k2 1: the second level pools by k2 >= 2 (0: none)");
    if (c->hier_k2 && c->hier_bottom2 + c->hier_coarse2 > c->hier_coarse)
        LMU__CFG_FAIL("config: hier_bottom2 + hier_coarse2 = %d + %d: more than the %d coarse "
                      "layers (hier_coarse)", c->hier_bottom2, c->hier_coarse2, c->hier_coarse);
    if (c->hier_k2 && (double)c->hier_k * c->hier_k2 > c->n_ctx)
        LMU__CFG_FAIL("config: hier_k x hier_k2 = %d x %d exceeds n_ctx %d", c->hier_k,
                      c->hier_k2, c->n_ctx);
    return LMU_OK;
#undef LMU__CFG_FAIL
}

LMUDEF lmu_result lmu_config_set(lmu_config *c, const char *key, const char *v, char *err,
                                 size_t errcap)
{
    const lmu__field *f;
    const lmu__list *L;
    double x;
    lmu_result r;
    int i;
    if (err && errcap) err[0] = 0;
    if (!c || !key || !v) return LMU_ERR_ARG;
    if (strcmp(key, "preset") == 0) {
        lmu_config p;
        if (lmu_config_preset(&p, v) != LMU_OK) {
            lmu__errf(err, errcap, "unknown preset '%.40s' (lmu-55k ... lmu-1m, lmu-55k-attn ..., "
                      "transformer-55k ...)", v);
            return LMU_ERR_FORMAT;
        }
        *c = p;
        return LMU_OK;
    }
    if ((i = lmu__field_find(key)) < 0) {
        lmu__errf(err, errcap, "unknown key '%.40s'", key);
        return LMU_ERR_ARG;
    }
    f = &lmu__fields[i];
    if ((L = lmu__field_list(f)) != NULL) lmu__list_clear(c, L);
    if (L && strchr(v, ',')) { /* one entry per layer; the field takes layer 0's */
        double x0 = 0;
        int n = 0;
        for (;;) {
            const char *e = strchr(v, ','), *b = v;
            char item[64];
            size_t len;
            while (*b == ' ' || *b == '\t') b++;
            len = e ? (size_t)(e - b) : strlen(b);
            while (len > 0 && (b[len - 1] == ' ' || b[len - 1] == '\t')) len--;
            if (len == 0 || len >= sizeof item) {
                lmu__errf(err, errcap, "%s: entry %d is %s", key, n + 1, len ? "too long" : "empty");
                lmu__list_clear(c, L);
                return LMU_ERR_FORMAT;
            }
            memcpy(item, b, len);
            item[len] = 0;
            if ((r = lmu__field_parse(f, item, &x, err, errcap)) == LMU_OK && n == LMU_LAYER_LIST_MAX) {
                lmu__errf(err, errcap, "%s lists more than %d layers", key, LMU_LAYER_LIST_MAX);
                r = LMU_ERR_RANGE;
            }
            if (r == LMU_OK && x == 0 && f->kind != LMU__KIND_ENUM) {
                lmu__errf(err, errcap, "%s: entry %d is 0; a list's entries are set", key, n + 1);
                r = LMU_ERR_RANGE;
            }
            if (r != LMU_OK) {
                lmu__list_clear(c, L);
                return r;
            }
            lmu__value_put(f->kind, (char *)c + L->off + (size_t)n * L->size, x);
            if (n++ == 0) x0 = x;
            if (!e) break;
            v = e + 1;
        }
        *lmu__list_n(c, L) = n;
        lmu__field_put(c, f, x0);
        return LMU_OK;
    }
    if ((r = lmu__field_parse(f, v, &x, err, errcap)) != LMU_OK) return r;
    lmu__field_put(c, f, x);
    return LMU_OK;
}

LMUDEF lmu_result lmu_config_set_items(lmu_config *c, const char *items, char *err, size_t errcap)
{
    char buf[1024], *item = buf, *next, *p, *eq;
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!c || !items) return LMU_ERR_ARG;
    if (strlen(items) >= sizeof buf) {
        lmu__errf(err, errcap, "longer than %d characters", (int)sizeof buf - 1);
        return LMU_ERR_FORMAT;
    }
    strcpy(buf, items);
    for (; item; item = next) {
        for (next = NULL, p = strchr(item, ','); p && !next; p = strchr(p + 1, ',')) {
            size_t k = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_0123456789");
            if (k && p[1 + k] == '=') *p = 0, next = p + 1;
        }
        if (!(eq = strchr(item, '='))) {
            lmu__errf(err, errcap, "'%.40s' is not key=value", item);
            return LMU_ERR_FORMAT;
        }
        *eq = 0;
        if ((r = lmu_config_set(c, item, eq + 1, err, errcap)) != LMU_OK) return r;
    }
    return LMU_OK;
}

/* One value's text (REAL: every digit, so it reads back to the same
   double). */
LMU__PRIVATE int lmu__value_text(const lmu__field *f, double v, char *buf, size_t cap)
{
    if (f->kind == LMU__KIND_ENUM) return snprintf(buf, cap, "%s", f->names((int)v));
    if (f->kind == LMU__KIND_INT) return snprintf(buf, cap, "%d", (int)v);
    return snprintf(buf, cap, "%.17g", v);
}

/* A field's "value" text: its list, comma-separated, where it has one.
   cap >= LMU__FIELD_TEXT_MAX holds every list. */
LMU__PRIVATE void lmu__field_text(const lmu_config *c, const lmu__field *f, char *buf, size_t cap)
{
    const lmu__list *L = lmu__field_list(f);
    int k, n = L ? *lmu__list_n(c, L) : 0;
    size_t len = 0;
    if (n == 0) {
        lmu__value_text(f, lmu__field_get(c, f), buf, cap);
        return;
    }
    buf[0] = 0;
    for (k = 0; k < n && len + 1 < cap; k++) {
        if (k) buf[len++] = ',', buf[len] = 0;
        len += (size_t)lmu__value_text(f, lmu__list_get(c, f, L, k), buf + len, cap - len);
    }
}

/* Is field f written out (config text, checkpoint metadata)? Those the
   model uses; numbers only when set, since 0 reads back as the default. */
LMU__PRIVATE int lmu__field_written(const lmu_config *c, const lmu__field *f)
{
    return lmu__scope_on(c, f->scope) && (f->kind == LMU__KIND_ENUM || lmu__field_get(c, f) != 0);
}

LMUDEF size_t lmu_config_format(const lmu_config *c, char *buf, size_t cap)
{
    char val[LMU__FIELD_TEXT_MAX];
    size_t n = 0;
    int i;
    if (!c) return 0;
    if (buf && cap) buf[0] = 0;
    for (i = 0; i < LMU__N_FIELDS; i++) {
        const lmu__field *f = &lmu__fields[i];
        int w;
        if (!lmu__field_written(c, f)) continue;
        lmu__field_text(c, f, val, sizeof val);
        w = snprintf(buf && n < cap ? buf + n : NULL, buf && n < cap ? cap - n : 0, "%s = %s\n",
                     f->name, val);
        if (w < 0) break;
        n += (size_t)w;
    }
    return n;
}

LMUDEF double lmu_config_layer_theta(const lmu_config *c, int l)
{
    if (l >= 0 && l < c->layers.n_theta) return c->layers.theta[l];
    if (!(c->theta_last > 0) || c->theta_last == c->theta || c->n_layer < 2 || l <= 0)
        return c->theta;
    if (l >= c->n_layer - 1) return c->theta_last;
    return c->theta * pow(c->theta_last / c->theta, (double)l / (double)(c->n_layer - 1));
}

LMUDEF lmu_mixer lmu_config_layer_mixer(const lmu_config *c, int l)
{
    return l >= 0 && l < c->layers.n_mixer ? c->layers.mixer[l] : c->mixer;
}

LMUDEF int lmu_config_layer_q(const lmu_config *c, int l)
{
    return l >= 0 && l < c->layers.n_q ? c->layers.q[l] : c->q;
}

LMUDEF int lmu_config_layer_q_prime(const lmu_config *c, int l)
{
    return l >= 0 && l < c->layers.n_q_prime ? c->layers.q_prime[l] : c->q_prime;
}

/* the largest q (prime = 0) or q' (prime = 1) of any layer: buffers
   shared by the layers are sized by it */
LMU__PRIVATE size_t lmu__max_q(const lmu_config *c, int prime)
{
    int l, v, best = 0;
    for (l = 0; l < c->n_layer; l++) {
        v = prime ? lmu_config_layer_q_prime(c, l) : lmu_config_layer_q(c, l);
        if (v > best) best = v;
    }
    return (size_t)best;
}

/* ---------------------------------------------------------------------- */
/* >>rng (implementation)                                                  */
/* ---------------------------------------------------------------------- */

LMU__PRIVATE uint64_t lmu__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

LMUDEF void lmu_rng_seed(lmu_rng *rng, uint64_t seed)
{
    int i;
    for (i = 0; i < 4; i++) rng->s[i] = lmu__splitmix64(&seed);
}

LMU__PRIVATE uint64_t lmu__rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

LMUDEF uint64_t lmu_rng_u64(lmu_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = lmu__rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lmu__rotl64(s[3], 45);
    return result;
}

LMUDEF float lmu_rng_uniform(lmu_rng *rng)
{
    return (float)(lmu_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

LMUDEF float lmu_rng_normal(lmu_rng *rng)
{
    /* u1 in (0, 1] so log() never sees zero. */
    double u1 = ((double)(lmu_rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(lmu_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2));
}

/* ---------------------------------------------------------------------- */
/* >>gemm (implementation)                                                 */
/* ---------------------------------------------------------------------- */

/* Register block MR x NR and cache blocks. The A block (MC x KC) is meant
   to stay in L2 while B micro-panels (KC x NR) are reused from L1 across
   the MR-row panels; the B block (KC x NC) lives in L3. Packing buffers
   are shared by every kernel of one build, so the portable kernel uses the
   same MR x NR as the SIMD one and tests can swap them freely. */
#if !defined(LMU_NO_SIMD) && defined(__AVX512F__)
#define LMU__GEMM_AVX512 1
#define LMU__GEMM_MR 14
#define LMU__GEMM_NR 32
#elif !defined(LMU_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define LMU__GEMM_AVX2 1
#define LMU__GEMM_MR 6
#define LMU__GEMM_NR 16
#else
#define LMU__GEMM_MR 6
#define LMU__GEMM_NR 16
#endif
/* Measured on Zen (48 KiB L1d, 1 MiB L2) over the model's shapes: KC 384
   beat 192/256/320/448/512 and MC 112 beat 84/140/168/336 (single thread,
   CPU time, 2-8% apart). */
#ifndef LMU__GEMM_KC
#define LMU__GEMM_KC 384
#endif
#ifndef LMU__GEMM_MC
#define LMU__GEMM_MC (LMU__GEMM_MR * 8)
#endif
#ifndef LMU__GEMM_NC
#define LMU__GEMM_NC 4096
#endif

#if defined(LMU__GEMM_AVX512) || defined(LMU__GEMM_AVX2)
#include <immintrin.h>
#endif

/* The portable kernel fuses multiply-add only where that is a single
   instruction; a libm fmaf() call per element would be far slower than
   the rounding difference is worth. */
#ifdef FP_FAST_FMAF
#define LMU__GEMM_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define LMU__GEMM_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* One micro-kernel call: C[MR x w] (pitch ldc) = alpha * Ap * Bp +
   beta * C, where Ap is an MR x kc micro-panel (column by column) and Bp a
   kc x w micro-panel (row by row), w = NR for the full kernel and NR/2 for
   the half one. beta == 0 never reads C. */
typedef void (*lmu__gemm_kernel_fn)(size_t kc, const float *ap, const float *bp,
                                    float *c, size_t ldc, float alpha, float beta);

/* A full-width kernel and a half-width one for the last B panel: N = 204
   or N = 48 would otherwise waste up to half a panel of FMAs (48 = 32 +
   16). Both sum each element in the same order, so which one produced an
   element never changes its bits. */
typedef void (*lmu__gemm_pack_fn)(int trans, const float *X, size_t ldx, size_t r0, size_t rn,
                                  size_t c0, size_t cn, float *dst);
typedef struct lmu__gemm_kernels {
    lmu__gemm_kernel_fn full, half;
    lmu__gemm_pack_fn pack_a, pack_b;
} lmu__gemm_kernels;

#define LMU__GEMM_NRH (LMU__GEMM_NR / 2)

/* Portable kernels. The accumulator tile is a local array with
   compile-time bounds so gcc/clang keep it in vector registers and
   vectorise the j loop. The update formulas are the SIMD kernels' ones, so
   both paths round alike where the hardware fuses. */
/* Unrolling the row loop is what makes gcc vectorise along j: left alone,
   gcc 12 vectorises across rows with shuffles for 16-wide tiles (~6
   GFLOP/s instead of ~170 on Zen) and clang keeps 14 x 32 in memory. */
#if (defined(__GNUC__) && __GNUC__ >= 8) || defined(__clang__)
#define LMU__GEMM_UNROLL _Pragma("GCC unroll 16")
#else
#define LMU__GEMM_UNROLL
#endif
#define LMU__GEMM_GENERIC(name, W)                                                              \
    LMU__PRIVATE void name(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,   \
                           float alpha, float beta)                                             \
    {                                                                                           \
        float acc[LMU__GEMM_MR][W];                                                             \
        size_t p;                                                                               \
        int i, j;                                                                               \
        for (i = 0; i < LMU__GEMM_MR; i++)                                                      \
            for (j = 0; j < (W); j++) acc[i][j] = 0.0f;                                         \
        for (p = 0; p < kc; p++) {                                                              \
            const float *a = ap + p * LMU__GEMM_MR, *b = bp + p * (W);                          \
            LMU__GEMM_UNROLL                                                                    \
            for (i = 0; i < LMU__GEMM_MR; i++) {                                                \
                float ai = a[i];                                                                \
                for (j = 0; j < (W); j++) acc[i][j] = LMU__GEMM_FMA(ai, b[j], acc[i][j]);       \
            }                                                                                   \
        }                                                                                       \
        for (i = 0; i < LMU__GEMM_MR; i++) {                                                    \
            float *ci = c + (size_t)i * ldc;                                                    \
            if (beta == 0.0f)                                                                   \
                for (j = 0; j < (W); j++) ci[j] = alpha * acc[i][j];                            \
            else if (beta == 1.0f)                                                              \
                for (j = 0; j < (W); j++) ci[j] = LMU__GEMM_FMA(alpha, acc[i][j], ci[j]);       \
            else                                                                                \
                for (j = 0; j < (W); j++) ci[j] = LMU__GEMM_FMA(beta, ci[j], alpha * acc[i][j]); \
        }                                                                                       \
    }
LMU__GEMM_GENERIC(lmu__gemm_kernel_generic, LMU__GEMM_NR)
LMU__GEMM_GENERIC(lmu__gemm_kernel_generic_h, LMU__GEMM_NRH)


/* SIMD kernels, written once for any vector width: the type, the floats
   per register (VW) and the intrinsics come in through macros. Row i of C
   uses accumulators c<i>0 and, in the full kernel, c<i>1. */
#define LMU__KV_DECL2(i) LMU__V c##i##0 = LMU__VZERO(), c##i##1 = LMU__VZERO();
#define LMU__KV_DECL1(i) LMU__V c##i##0 = LMU__VZERO();
#define LMU__KV_FMA2(i)                                                        \
    {                                                                          \
        LMU__V a_ = LMU__VBCAST(ap + i);                                       \
        c##i##0 = LMU__VFMA(a_, b0, c##i##0);                                  \
        c##i##1 = LMU__VFMA(a_, b1, c##i##1);                                  \
    }
#define LMU__KV_FMA1(i) c##i##0 = LMU__VFMA(LMU__VBCAST(ap + i), b0, c##i##0);
#define LMU__KV_C(i, h) (c + (size_t)(i)*ldc + (h)*LMU__VW)
#define LMU__KV_ST0(i, h) LMU__VSTU(LMU__KV_C(i, h), LMU__VMUL(va, c##i##h));
#define LMU__KV_ST1(i, h)                                                      \
    LMU__VSTU(LMU__KV_C(i, h), LMU__VFMA(va, c##i##h, LMU__VLDU(LMU__KV_C(i, h))));
#define LMU__KV_STB(i, h)                                                      \
    LMU__VSTU(LMU__KV_C(i, h), LMU__VFMA(vb, LMU__VLDU(LMU__KV_C(i, h)), LMU__VMUL(va, c##i##h)));
#define LMU__KV_ST0_2(i) LMU__KV_ST0(i, 0) LMU__KV_ST0(i, 1)
#define LMU__KV_ST1_2(i) LMU__KV_ST1(i, 0) LMU__KV_ST1(i, 1)
#define LMU__KV_STB_2(i) LMU__KV_STB(i, 0) LMU__KV_STB(i, 1)
#define LMU__KV_ST0_1(i) LMU__KV_ST0(i, 0)
#define LMU__KV_ST1_1(i) LMU__KV_ST1(i, 0)
#define LMU__KV_STB_1(i) LMU__KV_STB(i, 0)
/* C is touched only after the k loop; asking for its rows first lets the
   misses (rows are far apart for large N) overlap the arithmetic. */
#define LMU__KV_PF(i) _mm_prefetch((const char *)LMU__KV_C(i, 0), _MM_HINT_T0);
#define LMU__KV_LDB2                                                           \
    LMU__V b0 = LMU__VLD(bp), b1 = LMU__VLD(bp + LMU__VW);
#define LMU__KV_LDB1 LMU__V b0 = LMU__VLD(bp);

/* NV = 2 (full, NR = 2 registers per row) or 1 (half). */
#define LMU__GEMM_SIMD(name, NV)                                                                \
    LMU__PRIVATE void name(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,   \
                           float alpha, float beta)                                             \
    {                                                                                           \
        LMU__V va, vb;                                                                          \
        size_t p;                                                                               \
        LMU__GEMM_ROWS(LMU__KV_DECL##NV)                                                        \
        if (beta != 0.0f) {                                                                     \
            LMU__GEMM_ROWS(LMU__KV_PF)                                                          \
        }                                                                                       \
        for (p = 0; p < kc; p++) {                                                              \
            LMU__KV_LDB##NV                                                                     \
            LMU__GEMM_ROWS(LMU__KV_FMA##NV)                                                     \
            ap += LMU__GEMM_MR;                                                                 \
            bp += NV * LMU__VW;                                                                 \
        }                                                                                       \
        va = LMU__VSET1(alpha);                                                                 \
        vb = LMU__VSET1(beta);                                                                  \
        if (beta == 0.0f) {                                                                     \
            LMU__GEMM_ROWS(LMU__KV_ST0_##NV)                                                    \
        } else if (beta == 1.0f) {                                                              \
            LMU__GEMM_ROWS(LMU__KV_ST1_##NV)                                                    \
        } else {                                                                                \
            LMU__GEMM_ROWS(LMU__KV_STB_##NV)                                                    \
        }                                                                                       \
        (void)vb;                                                                               \
    }

#if defined(LMU__GEMM_AVX512)
/* 14 x 32: 28 zmm accumulators cover the FMA latency of two FMA pipes with
   room to spare and leave registers for 2 B vectors and the broadcast. Per
   k step 2 B loads and 14 broadcasts feed 28 FMAs. */
#define LMU__V __m512
#define LMU__VW 16
#define LMU__VZERO() _mm512_setzero_ps()
#define LMU__VBCAST(p) _mm512_set1_ps(*(p))
#define LMU__VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define LMU__VMUL(a, b) _mm512_mul_ps(a, b)
#define LMU__VLD(p) _mm512_load_ps(p)
#define LMU__VLDU(p) _mm512_loadu_ps(p)
#define LMU__VSTU(p, v) _mm512_storeu_ps(p, v)
#define LMU__VSET1(x) _mm512_set1_ps(x)
#define LMU__GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define LMU__GEMM_SIMD_NAME "avx512"
#elif defined(LMU__GEMM_AVX2)
/* 6 x 16 with ymm: 12 accumulators, 2 B registers, 1 broadcast. */
#define LMU__V __m256
#define LMU__VW 8
#define LMU__VZERO() _mm256_setzero_ps()
#define LMU__VBCAST(p) _mm256_broadcast_ss(p)
#define LMU__VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define LMU__VMUL(a, b) _mm256_mul_ps(a, b)
#define LMU__VLD(p) _mm256_load_ps(p)
#define LMU__VLDU(p) _mm256_loadu_ps(p)
#define LMU__VSTU(p, v) _mm256_storeu_ps(p, v)
#define LMU__VSET1(x) _mm256_set1_ps(x)
#define LMU__GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define LMU__GEMM_SIMD_NAME "avx2+fma"
#endif

#ifdef LMU__GEMM_ROWS
LMU__GEMM_SIMD(lmu__gemm_kernel_simd, 2)
LMU__GEMM_SIMD(lmu__gemm_kernel_simd_h, 1)
#else
#define LMU__GEMM_SIMD_NAME "portable"
#endif

/* Sizes in floats of the three parts of one thread's slice: one MR x NR
   tile for edges, the A block and the B block. Each is a multiple of 16 floats
   so every part starts 64-byte aligned. */
#define LMU__GEMM_ROUND16(x) (((x) + 15u) & ~(size_t)15u)

LMU__PRIVATE size_t lmu__gemm_slice_floats(size_t mc, size_t kc, size_t nc)
{
    return LMU__GEMM_ROUND16((size_t)LMU__GEMM_MR * LMU__GEMM_NR) + LMU__GEMM_ROUND16(mc * kc) +
           LMU__GEMM_ROUND16(kc * nc);
}

LMU__PRIVATE int lmu__gemm_threads(int nthreads)
{
    if (nthreads <= 0) nthreads = lmu__thread_count();
    return nthreads < 1 ? 1 : nthreads;
}

LMUDEF size_t lmu_gemm_ws_bytes(int nthreads)
{
    size_t slice = lmu__gemm_slice_floats(LMU__GEMM_MC, LMU__GEMM_KC, LMU__GEMM_NC);
    return (size_t)lmu__gemm_threads(nthreads) * slice * sizeof(float);
}

LMUDEF lmu_result lmu_gemm_ws_init(lmu_gemm_ws *ws, int nthreads, void *mem, size_t bytes)
{
    if (!ws || !mem || ((uintptr_t)mem & 63u) != 0) return LMU_ERR_ARG;
    nthreads = lmu__gemm_threads(nthreads);
    if (bytes < lmu_gemm_ws_bytes(nthreads)) return LMU_ERR_ARG;
    ws->buf = (float *)mem;
    ws->slice_floats = lmu__gemm_slice_floats(LMU__GEMM_MC, LMU__GEMM_KC, LMU__GEMM_NC);
    ws->nthreads = nthreads;
    ws->owned = 0;
    ws->bf16 = 0;
    return LMU_OK;
}

LMUDEF lmu_result lmu_gemm_ws_create(lmu_gemm_ws *ws, int nthreads)
{
    size_t bytes;
    void *mem;
    if (!ws) return LMU_ERR_ARG;
    /* A failed create leaves a workspace that destroy accepts. */
    ws->buf = NULL;
    ws->slice_floats = 0;
    ws->nthreads = 0;
    ws->owned = 0;
    ws->bf16 = 0;
    nthreads = lmu__gemm_threads(nthreads);
    bytes = lmu_gemm_ws_bytes(nthreads);
    mem = lmu__alloc_aligned(bytes);
    if (!mem) return LMU_ERR_NOMEM;
    lmu_gemm_ws_init(ws, nthreads, mem, bytes);
    ws->owned = 1;
    return LMU_OK;
}

LMUDEF void lmu_gemm_ws_destroy(lmu_gemm_ws *ws)
{
    if (!ws) return;
    if (ws->owned) lmu__free_aligned(ws->buf);
    ws->buf = NULL;
    ws->slice_floats = 0;
    ws->nthreads = 0;
    ws->owned = 0;
    ws->bf16 = 0;
}

/* Packs rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into MR-row
   micro-panels, each stored k-major (MR consecutive floats per k), rows
   past the edge zero so the kernel never needs a short variant. */
LMU__PRIVATE void lmu__gemm_pack_a_c(int trans, const float *A, size_t lda, size_t i0,
                                   size_t mc, size_t p0, size_t kc, float *ap)
{
    const size_t MR = LMU__GEMM_MR;
    size_t ip, p, i;
    for (ip = 0; ip < mc; ip += MR) {
        size_t m = mc - ip < MR ? mc - ip : MR;
        float *dst = ap + ip * kc;
        if (trans) {
            /* A^T stored K x M: each k gives MR contiguous floats. */
            const float *src = A + p0 * lda + i0 + ip;
            if (m == MR) {
                for (p = 0; p < kc; p++)
                    for (i = 0; i < MR; i++) dst[p * MR + i] = src[p * lda + i];
            } else {
                for (p = 0; p < kc; p++)
                    for (i = 0; i < MR; i++) dst[p * MR + i] = i < m ? src[p * lda + i] : 0.0f;
            }
        } else {
            /* A stored M x K: MR rows read side by side, each sequentially,
               so every cache line fetched is used whole. */
            const float *src = A + (i0 + ip) * lda + p0;
            if (m == MR) {
                for (p = 0; p < kc; p++)
                    for (i = 0; i < MR; i++) dst[p * MR + i] = src[i * lda + p];
            } else {
                for (p = 0; p < kc; p++)
                    for (i = 0; i < MR; i++) dst[p * MR + i] = i < m ? src[i * lda + p] : 0.0f;
            }
        }
    }
}

/* Packs rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into k-major
   micro-panels of NR columns; a last panel of at most NR/2 columns is
   packed NR/2 wide for the half kernel. Columns past the edge are zero. */
LMU__PRIVATE void lmu__gemm_pack_b_c(int trans, const float *B, size_t ldb, size_t p0,
                                   size_t kc, size_t j0, size_t nc, float *bp)
{
    size_t jp, p, j;
    for (jp = 0; jp < nc; jp += LMU__GEMM_NR) {
        size_t n = nc - jp < LMU__GEMM_NR ? nc - jp : LMU__GEMM_NR;
        size_t w = n <= LMU__GEMM_NRH ? LMU__GEMM_NRH : LMU__GEMM_NR;
        float *dst = bp + jp * kc;
        if (trans) {
            /* B^T stored N x K (a PyTorch weight): transpose in blocks of
               8 k so the w source rows are each read a line at a time. */
            const float *src = B + (j0 + jp) * ldb + p0;
            for (p = 0; p + 8 <= kc; p += 8) {
                size_t q;
                for (j = 0; j < n; j++)
                    for (q = 0; q < 8; q++) dst[(p + q) * w + j] = src[j * ldb + p + q];
                for (; j < w; j++)
                    for (q = 0; q < 8; q++) dst[(p + q) * w + j] = 0.0f;
            }
            for (; p < kc; p++)
                for (j = 0; j < w; j++) dst[p * w + j] = j < n ? src[j * ldb + p] : 0.0f;
        } else {
            const float *src = B + p0 * ldb + j0 + jp;
            if (n == w) {
                for (p = 0; p < kc; p++)
                    for (j = 0; j < w; j++) dst[p * w + j] = src[p * ldb + j];
            } else {
                for (p = 0; p < kc; p++)
                    for (j = 0; j < w; j++) dst[p * w + j] = j < n ? src[p * ldb + j] : 0.0f;
            }
        }
    }
}

#ifdef LMU__GEMM_AVX512
/* Transposes a 16 x 16 block: rows [0, nrows) of s (pitch ld, 16 floats
   each; missing rows read as zero) become the 16 stores d + q * ldd, each
   masked to `keep` lanes. Three shuffle stages (4-byte pairs, 8-byte
   pairs, 128-bit lanes twice) instead of 256 scalar moves: this is what
   makes packing a transposed operand cheap next to the kernel. */
LMU__PRIVATE void lmu__gemm_tr16(const float *s, size_t ld, size_t nrows, float *d, size_t ldd,
                                 __mmask16 keep)
{
    const __mmask16 all = 0xFFFF;
    __m512 r[16], t[16];
    size_t i;
    for (i = 0; i < 16; i++) r[i] = i < nrows ? _mm512_loadu_ps(s + i * ld) : _mm512_setzero_ps();
    /* The masked forms with an all-ones mask compile to the plain
       instructions; the unmasked intrinsics make g++ 12 warn inside its own
       header (GCC bug 105593). */
    for (i = 0; i < 16; i += 2) {
        t[i] = _mm512_mask_unpacklo_ps(r[i], all, r[i], r[i + 1]);
        t[i + 1] = _mm512_mask_unpackhi_ps(r[i], all, r[i], r[i + 1]);
    }
    for (i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (i = 0; i < 4; i++) {
        t[i] = _mm512_mask_shuffle_f32x4(r[i], all, r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_mask_shuffle_f32x4(r[i], all, r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_mask_shuffle_f32x4(r[i], all, r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_mask_shuffle_f32x4(r[i], all, r[i + 8], r[i + 12], 0xDD);
    }
    for (i = 0; i < 4; i++) {
        r[i] = _mm512_mask_shuffle_f32x4(t[i], all, t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_mask_shuffle_f32x4(t[i], all, t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_mask_shuffle_f32x4(t[i], all, t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_mask_shuffle_f32x4(t[i], all, t[i + 4], t[i + 12], 0xDD);
    }
    for (i = 0; i < 16; i++) _mm512_mask_storeu_ps(d + i * ldd, keep, r[i]);
}

/* lmu__gemm_pack_a_c with AVX-512 moves; same layout, same zeros. */
LMU__PRIVATE void lmu__gemm_pack_a_simd(int trans, const float *A, size_t lda, size_t i0,
                                        size_t mc, size_t p0, size_t kc, float *ap)
{
    const size_t MR = LMU__GEMM_MR;
    const __mmask16 all = (__mmask16)((1u << LMU__GEMM_MR) - 1u);
    size_t ip, p, i;
    for (ip = 0; ip < mc; ip += MR) {
        size_t m = mc - ip < MR ? mc - ip : MR;
        float *dst = ap + ip * kc;
        if (trans) {
            /* One masked load and store per k: never reads past row m. */
            const float *src = A + p0 * lda + i0 + ip;
            __mmask16 rows = (__mmask16)((1u << m) - 1u);
            for (p = 0; p < kc; p++)
                _mm512_mask_storeu_ps(dst + p * MR, all, _mm512_maskz_loadu_ps(rows, src + p * lda));
        } else {
            const float *src = A + (i0 + ip) * lda + p0;
            for (p = 0; p + 16 <= kc; p += 16) lmu__gemm_tr16(src + p, lda, m, dst + p * MR, MR, all);
            for (; p < kc; p++)
                for (i = 0; i < MR; i++) dst[p * MR + i] = i < m ? src[i * lda + p] : 0.0f;
        }
    }
}

/* lmu__gemm_pack_b_c with AVX-512 moves; same layout, same zeros. */
LMU__PRIVATE void lmu__gemm_pack_b_simd(int trans, const float *B, size_t ldb, size_t p0,
                                        size_t kc, size_t j0, size_t nc, float *bp)
{
    size_t jp, p, j;
    for (jp = 0; jp < nc; jp += LMU__GEMM_NR) {
        size_t n = nc - jp < LMU__GEMM_NR ? nc - jp : LMU__GEMM_NR;
        size_t w = n <= LMU__GEMM_NRH ? LMU__GEMM_NRH : LMU__GEMM_NR;
        float *dst = bp + jp * kc;
        if (trans) {
            const float *src = B + (j0 + jp) * ldb + p0;
            for (p = 0; p + 16 <= kc; p += 16) {
                lmu__gemm_tr16(src + p, ldb, n < 16 ? n : 16, dst + p * w, w, 0xFFFF);
                if (w == 32) lmu__gemm_tr16(src + 16 * ldb + p, ldb, n - 16, dst + p * w + 16, w, 0xFFFF);
            }
            for (; p < kc; p++)
                for (j = 0; j < w; j++) dst[p * w + j] = j < n ? src[j * ldb + p] : 0.0f;
        } else {
            const float *src = B + p0 * ldb + j0 + jp;
            __mmask16 lo = (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
            __mmask16 hi = (__mmask16)(n >= 32 ? 0xFFFFu : n > 16 ? (1u << (n - 16)) - 1u : 0u);
            if (w == 32) {
                for (p = 0; p < kc; p++) {
                    _mm512_store_ps(dst + p * 32, _mm512_maskz_loadu_ps(lo, src + p * ldb));
                    _mm512_store_ps(dst + p * 32 + 16, _mm512_maskz_loadu_ps(hi, src + p * ldb + 16));
                }
            } else {
                for (p = 0; p < kc; p++) _mm512_store_ps(dst + p * 16, _mm512_maskz_loadu_ps(lo, src + p * ldb));
            }
        }
    }
}
#endif

/* Kernel sets: the portable one (scalar packing, so one test binary also
   checks that), and the best this build has. */
static const lmu__gemm_kernels lmu__gemm_generic_kernels = {
    lmu__gemm_kernel_generic, lmu__gemm_kernel_generic_h, lmu__gemm_pack_a_c, lmu__gemm_pack_b_c};
#if defined(LMU__GEMM_AVX512)
static const lmu__gemm_kernels lmu__gemm_best_kernels = {
    lmu__gemm_kernel_simd, lmu__gemm_kernel_simd_h, lmu__gemm_pack_a_simd, lmu__gemm_pack_b_simd};
#elif defined(LMU__GEMM_ROWS)
static const lmu__gemm_kernels lmu__gemm_best_kernels = {
    lmu__gemm_kernel_simd, lmu__gemm_kernel_simd_h, lmu__gemm_pack_a_c, lmu__gemm_pack_b_c};
#else
static const lmu__gemm_kernels lmu__gemm_best_kernels = {
    lmu__gemm_kernel_generic, lmu__gemm_kernel_generic_h, lmu__gemm_pack_a_c, lmu__gemm_pack_b_c};
#endif

/* The k block size depends on K alone (never on the thread split): the
   blocks are what fixes each element's summation order. Balanced blocks
   avoid a thin last one (K = 816 -> 4 x 204, not 3 x 256 + 48). */
LMU__PRIVATE size_t lmu__gemm_kc(size_t K)
{
    size_t nb = (K + LMU__GEMM_KC - 1) / LMU__GEMM_KC;
    return (K + nb - 1) / nb;
}

/* Floats of one thread's slice that a product with this K and N (any M)
   touches: tile, A block, B block no wider than N needs. lmu_sgemm checks
   a workspace against it; a caller with fixed shapes (the generator) can
   size a workspace by it instead of by lmu_gemm_ws_bytes' worst case. */
LMU__PRIVATE size_t lmu__gemm_need(size_t K, size_t N)
{
    size_t nc = (N + LMU__GEMM_NR - 1) / LMU__GEMM_NR * LMU__GEMM_NR;
    if (nc > LMU__GEMM_NC) nc = LMU__GEMM_NC;
    return lmu__gemm_slice_floats(LMU__GEMM_MC, lmu__gemm_kc(K), nc);
}

typedef struct lmu__gemm_args {
    const lmu__gemm_kernels *kern;
    int trans_a, trans_b, bf16;
    size_t M, N, K;
    float alpha, beta;
    const float *A;
    size_t lda;
    const float *B;
    size_t ldb;
    float *C;
    size_t ldc;
} lmu__gemm_args;

/* Rounds n packed floats to bf16 in place (nearest even; a NaN stays a
   NaN, the packing's zeros stay zeros). Written on the bits so the
   compiler vectorises it; the packed panels are in cache, so this pass
   costs O(MK + KN) against the product's O(MNK). */
LMU__PRIVATE void lmu__gemm_round_bf16(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u, r;
        memcpy(&u, x + i, 4);
        r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        if ((u & 0x7fffffffu) > 0x7f800000u) r = (u | 0x00400000u) & 0xffff0000u;
        memcpy(x + i, &r, 4);
    }
}

/* Floats a packed B block of nc columns and kc rows occupies: full NR
   panels and a last one NR or NR/2 wide (lmu__gemm_pack_b_c). */
LMU__PRIVATE size_t lmu__gemm_packed_b(size_t kc, size_t nc)
{
    size_t full = nc / LMU__GEMM_NR * LMU__GEMM_NR, rest = nc - full;
    return kc * (full + (rest == 0 ? 0 : rest <= LMU__GEMM_NRH ? LMU__GEMM_NRH : LMU__GEMM_NR));
}

/* One thread's share: C rows [m0, m1) x columns [n0, n1), the whole K,
   with the thread's own packing slice. */
LMU__PRIVATE void lmu__gemm_block(const lmu__gemm_args *g, size_t m0, size_t m1, size_t n0,
                                  size_t n1, float *slice)
{
    const size_t MR = LMU__GEMM_MR, NR = LMU__GEMM_NR, ldc = g->ldc;
    size_t kcmax = lmu__gemm_kc(g->K);
    /* B block last: its size is the only one that varies with the shape. */
    float *tile = slice;
    float *ap = tile + LMU__GEMM_ROUND16((size_t)LMU__GEMM_MR * LMU__GEMM_NR);
    float *bp = ap + LMU__GEMM_ROUND16((size_t)LMU__GEMM_MC * kcmax);
    size_t jc, pc, ic, jr, ir, i;
    /* The kernel reads all of the edge tile when beta != 0; only the valid
       part is ever copied in, so start from defined values. */
    for (i = 0; i < MR * NR; i++) tile[i] = 0.0f;
    for (jc = n0; jc < n1; jc += LMU__GEMM_NC) {
        size_t nc = n1 - jc < LMU__GEMM_NC ? n1 - jc : LMU__GEMM_NC;
        for (pc = 0; pc < g->K; pc += kcmax) {
            size_t kc = g->K - pc < kcmax ? g->K - pc : kcmax;
            /* Later k blocks add onto what the first one wrote. */
            float beta = pc == 0 ? g->beta : 1.0f;
            g->kern->pack_b(g->trans_b, g->B, g->ldb, pc, kc, jc, nc, bp);
            if (g->bf16) lmu__gemm_round_bf16(bp, lmu__gemm_packed_b(kc, nc));
            for (ic = m0; ic < m1; ic += LMU__GEMM_MC) {
                size_t mc = m1 - ic < LMU__GEMM_MC ? m1 - ic : LMU__GEMM_MC;
                g->kern->pack_a(g->trans_a, g->A, g->lda, ic, mc, pc, kc, ap);
                if (g->bf16) lmu__gemm_round_bf16(ap, (mc + MR - 1) / MR * MR * kc);
                for (jr = 0; jr < nc; jr += NR) {
                    size_t n = nc - jr < NR ? nc - jr : NR;
                    size_t w = n <= LMU__GEMM_NRH ? LMU__GEMM_NRH : NR;
                    lmu__gemm_kernel_fn kern = w == NR ? g->kern->full : g->kern->half;
                    const float *bpj = bp + jr * kc;
                    for (ir = 0; ir < mc; ir += MR) {
                        size_t m = mc - ir < MR ? mc - ir : MR;
                        const float *api = ap + ir * kc;
                        float *c = g->C + (ic + ir) * ldc + jc + jr;
                        if (m == MR && n == w) {
                            kern(kc, api, bpj, c, ldc, g->alpha, beta);
                        } else {
                            /* Edge: the same kernel on a full tile, valid
                               part copied, so edge elements round exactly
                               like interior ones. */
                            if (beta != 0.0f)
                                for (i = 0; i < m; i++) memcpy(tile + i * w, c + i * ldc, n * sizeof(float));
                            kern(kc, api, bpj, tile, w, g->alpha, beta);
                            for (i = 0; i < m; i++) memcpy(c + i * ldc, tile + i * w, n * sizeof(float));
                        }
                    }
                }
            }
        }
    }
}

/* Splits C into tm x tn rectangles (tm * tn = nt) along MR/NR tile
   boundaries, picking the split whose busiest thread has the fewest tiles;
   ties go to splitting M, which keeps each thread's B panels wide. */
LMU__PRIVATE void lmu__gemm_grid(size_t M, size_t N, int nt, int *tm, int *tn)
{
    size_t mt = (M + LMU__GEMM_MR - 1) / LMU__GEMM_MR, ntl = (N + LMU__GEMM_NR - 1) / LMU__GEMM_NR;
    size_t best = (size_t)-1;
    int a;
    *tm = nt;
    *tn = 1;
    for (a = nt; a >= 1; a--) {
        size_t cost;
        int b;
        if (nt % a) continue;
        b = nt / a;
        cost = ((mt + (size_t)a - 1) / (size_t)a) * ((ntl + (size_t)b - 1) / (size_t)b);
        if (cost < best) {
            best = cost;
            *tm = a;
            *tn = b;
        }
    }
}

/* Half-open range of part `i` out of `parts` over `tiles` tiles of `w`
   elements each, clipped to `len`. */
LMU__PRIVATE void lmu__gemm_range(size_t len, size_t w, size_t i, size_t parts, size_t *lo, size_t *hi)
{
    size_t tiles = (len + w - 1) / w;
    size_t a = tiles * i / parts, b = tiles * (i + 1) / parts;
    *lo = a * w < len ? a * w : len;
    *hi = b * w < len ? b * w : len;
}

/* beta * C for the cases that need no product (K == 0 or alpha == 0). */
LMU__PRIVATE void lmu__gemm_scale(size_t M, size_t N, float beta, float *C, size_t ldc)
{
    size_t i, j;
    for (i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (j = 0; j < N; j++) c[j] *= beta;
    }
}

/* lmu_sgemm with a chosen micro-kernel and precision (bf16: operands
   rounded as packed, whatever ws->bf16 says); tests call it to check the
   portable kernel in a SIMD build. */
LMU__PRIVATE lmu_result lmu__sgemm_with(const lmu__gemm_kernels *kern, lmu_gemm_ws *ws, int bf16,
                                        int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                        float alpha,
                                        const float *A, size_t lda, const float *B, size_t ldb,
                                        float beta, float *C, size_t ldc)
{
    lmu__gemm_args g;
    lmu_gemm_ws tmp;
    size_t arows = trans_a ? K : M, acols = trans_a ? M : K;
    size_t brows = trans_b ? N : K, bcols = trans_b ? K : N;
    size_t work, t, need;
    int nt, tm, tn;
    if (!A || !B || !C) return LMU_ERR_ARG;
    if (lda < acols || ldb < bcols || ldc < N || lda == 0 || ldb == 0 || ldc == 0) return LMU_ERR_ARG;
    /* Every element offset below is < rows * ld, so checking that product
       once makes all later size_t arithmetic safe. */
    if (!lmu__mul_size(arows, lda, &t) || !lmu__mul_size(brows, ldb, &t) ||
        !lmu__mul_size(M, ldc, &t))
        return LMU_ERR_ARG;
    if (ws && (!ws->buf || ws->nthreads < 1)) return LMU_ERR_ARG;
    if (M == 0 || N == 0) return LMU_OK;
    if (K == 0 || alpha == 0.0f) {
        lmu__gemm_scale(M, N, beta, C, ldc);
        return LMU_OK;
    }

    nt = ws ? ws->nthreads : lmu__thread_count();
    if (nt > lmu__thread_count()) nt = lmu__thread_count();
    /* Below ~64^3 flops a fork/join costs more than it saves. */
    work = (M < 1024 ? M : 1024) * (N < 1024 ? N : 1024) * (K < 1024 ? K : 1024);
    if (work < (size_t)1 << 18) nt = 1;
    if (nt < 1) nt = 1;
    lmu__gemm_grid(M, N, nt, &tm, &tn);
    nt = tm * tn;

    need = lmu__gemm_need(K, N);
    if (!ws) {
        size_t bytes;
        if (!lmu__mul_size(need * sizeof(float), (size_t)nt, &bytes)) return LMU_ERR_NOMEM;
        tmp.buf = (float *)lmu__alloc_aligned(bytes);
        if (!tmp.buf) return LMU_ERR_NOMEM;
        tmp.slice_floats = need;
        tmp.nthreads = nt;
        tmp.owned = 1;
        tmp.bf16 = bf16;
        ws = &tmp;
    } else if (ws->slice_floats < need) {
        return LMU_ERR_ARG;
    }

    g.kern = kern;
    g.bf16 = bf16 != 0;
    g.trans_a = trans_a;
    g.trans_b = trans_b;
    g.M = M;
    g.N = N;
    g.K = K;
    g.alpha = alpha;
    g.beta = beta;
    g.A = A;
    g.lda = lda;
    g.B = B;
    g.ldb = ldb;
    g.C = C;
    g.ldc = ldc;
    if (nt == 1) {
        lmu__gemm_block(&g, 0, M, 0, N, ws->buf);
    } else {
        int part;
        /* Slices are indexed by the part, not the thread id, so a team
           smaller than asked for still never shares a slice. */
        LMU__OMP(omp parallel for schedule(static) num_threads(nt))
        for (part = 0; part < nt; part++) {
            size_t m0, m1, n0, n1;
            lmu__gemm_range(M, LMU__GEMM_MR, (size_t)(part / tn), (size_t)tm, &m0, &m1);
            lmu__gemm_range(N, LMU__GEMM_NR, (size_t)(part % tn), (size_t)tn, &n0, &n1);
            if (m0 < m1 && n0 < n1)
                lmu__gemm_block(&g, m0, m1, n0, n1, ws->buf + (size_t)part * ws->slice_floats);
        }
    }
    if (ws == &tmp) lmu__free_aligned(tmp.buf);
    return LMU_OK;
}

LMUDEF lmu_result lmu_sgemm(lmu_gemm_ws *ws, int trans_a, int trans_b, size_t M, size_t N,
                            size_t K, float alpha, const float *A, size_t lda, const float *B,
                            size_t ldb, float beta, float *C, size_t ldc)
{
    return lmu__sgemm_with(&lmu__gemm_best_kernels, ws, ws ? ws->bf16 : 0, trans_a, trans_b, M, N, K,
                           alpha, A, lda, B, ldb, beta, C, ldc);
}

/* The portable path in any build: test oracle for the SIMD kernels. */
LMU__PRIVATE lmu_result lmu__sgemm_generic(lmu_gemm_ws *ws, int trans_a, int trans_b, size_t M,
                                           size_t N, size_t K, float alpha, const float *A,
                                           size_t lda, const float *B, size_t ldb, float beta,
                                           float *C, size_t ldc)
{
    return lmu__sgemm_with(&lmu__gemm_generic_kernels, ws, ws ? ws->bf16 : 0, trans_a, trans_b, M, N,
                           K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Naive triple loop: the readable definition and a fallback. Sums in
   double, so it is also the accuracy reference. No arguments checks beyond
   lmu_sgemm's contract: callers pass valid shapes. */
LMU__PRIVATE void lmu__sgemm_ref(int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                 float alpha, const float *A, size_t lda, const float *B,
                                 size_t ldb, float beta, float *C, size_t ldc)
{
    size_t i, j, p;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = 0.0;
            for (p = 0; p < K; p++) {
                float a = trans_a ? A[p * lda + i] : A[i * lda + p];
                float b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                s += (double)a * (double)b;
            }
            s *= alpha;
            if (beta != 0.0f) s += (double)beta * (double)C[i * ldc + j];
            C[i * ldc + j] = (float)s;
        }
}

/* ---------------------------------------------------------------------- */
/* >>tensor (implementation): the arenas tensors live in                   */
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
                              "(allow growth with lmu_tape_set_growth)",
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

/* Records op with output y (B-shaped as given; it needs a grad when any
   float input does) and inputs in[0..n_in); returns the record to fill.
   The fused ops and lmu_tape_custom_op record this way. */
LMU__PRIVATE lmu_result lmu__tape_fused(lmu_tape *t, lmu_op op, int n_in, const int *in, int ndim,
                                        const int *shape, int *out, lmu_tape_rec **rec)
{
    lmu_result r;
    int i, ng = 0, y;
    for (i = 0; i < n_in; i++) {
        if (!lmu__tape_valid(t, in[i]))
            return lmu__tape_fail(t, LMU_ERR_ARG, "%s: bad input id %d", lmu_op_name(op), in[i]);
        if (t->tensors[in[i]].arena != LMU_ARENA_INT && lmu__tape_needs_grad(t, in[i])) ng = 1;
    }
    if ((r = lmu__tape_new_act(t, ndim, shape, ng, &y)) != LMU_OK ||
        (r = lmu__tape_push(t, op, y, rec)) != LMU_OK)
        return r;
    for (i = 0; i < n_in; i++) (*rec)->in[i] = in[i];
    *out = y;
    return LMU_OK;
}

/* A fused op's saved tensor of n floats (no grad). */
LMU__PRIVATE lmu_result lmu__tape_cache(lmu_tape *t, size_t n, int *id)
{
    int shape[1];
    if (n > 0x7fffffff) return lmu__tape_fail(t, LMU_ERR_CAPACITY, "cache of %lu floats", (unsigned long)n);
    shape[0] = (int)n;
    return lmu__tape_new_act(t, 1, shape, 0, id);
}

/* A fused op runs on the tape's gemm workspace and kernel scratch, which
   its owner reserved: refuse a tape without them. */
LMU__PRIVATE lmu_result lmu__tape_kernel_check(lmu_tape *t, size_t need, const char *op)
{
    if (!t->gemm_ws || t->nparts < 1 || need > t->scratch_floats || (need && !t->scratch))
        return lmu__tape_fail(t, LMU_ERR_STATE, "%s: needs gemm_ws and %lu floats of scratch "
                              "(tape has %lu)", op, (unsigned long)need,
                              (unsigned long)t->scratch_floats);
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
/* >>tape (implementation)                                                 */
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

/* the op list's backwards, one switch (>>ops) */
LMU__PRIVATE lmu_result lmu__tape_backward_rec(lmu_tape *t, const lmu_tape_rec *rec);


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

/* ====================================================================== */
/* >>ops (implementation): the op list, each op's kernels and recording    */
/* ====================================================================== */

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

/* Every matmul of the tape goes through here, with tape->gemm_ws: one
   place to route products (a BLAS, a counter) for experiments. bf16: the
   operands rounded to bf16 (lmu_gemm_ws.bf16), for the linear layers of a
   model trained in mixed precision. */
LMU__PRIVATE lmu_result lmu__tape_sgemm(struct lmu_gemm_ws *ws, int bf16, int trans_a, int trans_b,
                                        size_t M, size_t N, size_t K, float alpha,
                                        const float *A, size_t lda, const float *B, size_t ldb,
                                        float beta, float *C, size_t ldc)
{
    return lmu__sgemm_with(&lmu__gemm_best_kernels, ws, bf16, trans_a, trans_b, M, N, K, alpha, A,
                           lda, B, ldb, beta, C, ldc);
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
LMU__PRIVATE lmu_result lmu__linear_forward(struct lmu_gemm_ws *ws, int bf16, float *out,
                                            const float *inp, const float *w, const float *b,
                                            size_t N, size_t K, size_t M, int w_in_out)
{
    float beta = 0.0f;
    if (b) {
        long n;
        LMU__OMP(omp parallel for schedule(static))
        for (n = 0; n < (long)N; n++) memcpy(out + (size_t)n * M, b, M * sizeof(float));
        beta = 1.0f;
    }
    return lmu__tape_sgemm(ws, bf16, 0, !w_in_out, N, M, K, 1.0f, inp, K, w, w_in_out ? M : K, beta,
                           out, M);
}

LMU__PRIVATE lmu_result lmu__linear_backward(struct lmu_gemm_ws *ws, int bf16, float *dinp, float *dw,
                                             float *db, const float *dout, const float *inp,
                                             const float *w, size_t N, size_t K, size_t M,
                                             int w_in_out)
{
    lmu_result r = LMU_OK;
    if (dinp) /* dinp (N, K) += dout (N, M) W (M, K), or dout W^T for (K, M) */
        r = lmu__tape_sgemm(ws, bf16, 0, w_in_out, N, K, M, 1.0f, dout, M, w, w_in_out ? M : K, 1.0f,
                            dinp, K);
    if (dw && r == LMU_OK) {
        if (!w_in_out) /* dW (M, K) += dout^T inp: threads own output rows */
            r = lmu__tape_sgemm(ws, bf16, 1, 0, M, K, N, 1.0f, dout, M, inp, K, 1.0f, dw, K);
        else /* dW (K, M) += inp^T dout */
            r = lmu__tape_sgemm(ws, bf16, 1, 0, K, M, N, 1.0f, inp, K, dout, M, 1.0f, dw, M);
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
        r = lmu__tape_sgemm(ws, 0, ta, tb, M, N, K, alpha, a + p * M * K, lda, b + p * K * N, ldb,
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
                r = lmu__tape_sgemm(ws, 0, 0, !tb, M, K, N, alpha, dout_p, N, b_p, ldb, 1.0f,
                                da + p * M * K, K);
            else /* dA (K, M) += alpha op(b) dout^T */
                r = lmu__tape_sgemm(ws, 0, tb, 1, K, M, N, alpha, b_p, ldb, dout_p, N, 1.0f,
                                da + p * M * K, M);
        }
        if (db && r == LMU_OK) {
            if (!tb) /* dB (K, N) += alpha op(a)^T dout */
                r = lmu__tape_sgemm(ws, 0, !ta, 0, K, N, M, alpha, a_p, lda, dout_p, N, 1.0f,
                                db + p * K * N, N);
            else /* dB (N, K) += alpha dout^T op(a) */
                r = lmu__tape_sgemm(ws, 0, 1, ta, N, K, M, alpha, dout_p, N, a_p, lda, 1.0f,
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
    /* one row (generation) is not worth waking a thread team */
    LMU__OMP(omp parallel for schedule(static) if (N > 1))
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

/* ---------------------------------------------------------------------- */
/* kernel helpers (here and in the fused kernels below)                    */
/* ---------------------------------------------------------------------- */

/* The element helpers below must inline into their loops, or the loops
   stay scalar (gcc's heuristics refuse once the exp grows past a few
   lines); the attribute is only a hint elsewhere. */
#if defined(__GNUC__) || defined(__clang__)
#define LMU__KERN_INLINE static __inline__ __attribute__((always_inline, unused))
#else
#define LMU__KERN_INLINE LMU__PRIVATE
#endif

/* The one place every large product goes through: row-major
   C = alpha op(A) op(B) + beta C, beta == 0 ignores C (NaN included),
   exactly lmu_sgemm's contract. The kernels only pass arguments they
   checked, so an error here is a bug (asserted). ws may be NULL; lmu_sgemm
   then allocates per call, so hot callers pass one. */
LMU__PRIVATE void lmu__kern_gemm(struct lmu_gemm_ws *ws, int trans_a, int trans_b,
                                 size_t M, size_t N, size_t K, float alpha,
                                 const float *A, size_t lda, const float *B, size_t ldb,
                                 float beta, float *C, size_t ldc)
{
    lmu_result r = lmu_sgemm(ws, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    LMU_ASSERT(r == LMU_OK);
    (void)r;
}

/* e^x for x already in [-87, 88]: 2^k e^r, |r| <= ln2/2, degree-7 Taylor
   (relative error about 2e-7). Branch-free, so the loops that call it
   vectorise; libm's expf does not without -ffast-math, and softmax over
   50257 logits per row makes exp as costly as the matrix product. */
LMU__KERN_INLINE float lmu__kern_exp_core(float xc)
{
    float kf, r, p, s;
    int32_t ki;
    uint32_t bits;
    /* round to nearest by the 1.5 * 2^23 trick: floorf would not vectorise
       under the default -ftrapping-math. Two statements: the assignment
       drops excess precision where FLT_EVAL_METHOD != 0 (s390x, x87), which
       would otherwise keep the fraction and make exp(1) = 2. */
    kf = xc * 1.44269504088896341f + 12582912.0f;
    kf = kf - 12582912.0f;
    kf = kf == kf ? kf : 0.0f; /* NaN: keep the cast defined; p carries the NaN */
    r = xc - kf * 0.693145751953125f;
    r = r - kf * 1.428606820309417232e-6f;
    p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    ki = (int32_t)kf + 127;
    bits = (uint32_t)ki << 23;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

/* exp(x) for any x: 0 below -87; above 88 (never reached by softmax) it
   saturates at e^88 until the true result overflows. */
LMU__KERN_INLINE float lmu__kern_expf(float x)
{
    float xc = x > 88.0f ? 88.0f : x, p;
    xc = xc < -87.0f ? -87.0f : xc;
    p = lmu__kern_exp_core(xc);
    p = x < -87.0f ? 0.0f : p;
    p = x > 88.72f ? (float)HUGE_VAL : p;
    return p;
}

/* Dot product with 16 independent partial sums (vectorisable without
   reassociation flags, and two vectors deep so the add latency hides)
   combined in one fixed order. */
LMU__KERN_INLINE float lmu__kern_dot(const float *a, const float *b, size_t n)
{
    float acc[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t k;
    int l;
    for (k = 0; k + 16 <= n; k += 16)
        for (l = 0; l < 16; l++) acc[l] += a[k + (size_t)l] * b[k + (size_t)l];
    for (l = 0; l < (int)(n - k); l++) acc[l] += a[k + (size_t)l] * b[k + (size_t)l];
    for (l = 0; l < 8; l++) acc[l] += acc[l + 8];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

LMU__KERN_INLINE float lmu__kern_max(const float *x, size_t n)
{
    float m[16];
    size_t j;
    int l;
    for (l = 0; l < 16; l++) m[l] = -(float)HUGE_VAL;
    for (j = 0; j + 16 <= n; j += 16)
        for (l = 0; l < 16; l++) m[l] = x[j + (size_t)l] > m[l] ? x[j + (size_t)l] : m[l];
    for (l = 0; l < (int)(n - j); l++) m[l] = x[j + (size_t)l] > m[l] ? x[j + (size_t)l] : m[l];
    for (l = 1; l < 16; l++) m[0] = m[l] > m[0] ? m[l] : m[0];
    return m[0];
}

/* The one exp-and-sum of the library (softmax, cross-entropy, attention):
   returns sum_j exp(x[j] - m), and writes each exp(x[j] - m) to out[j]
   when out is not NULL (out may be x). 16 lanes by index, folded in a
   fixed order, so every caller -- the training forward and the decode step
   among them -- rounds alike. */
LMU__KERN_INLINE float lmu__kern_expsum(const float *x, float *out, size_t n, float m)
{
    float acc[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t j;
    int l;
    if (out) {
        for (j = 0; j + 16 <= n; j += 16)
            for (l = 0; l < 16; l++) acc[l] += out[j + (size_t)l] = lmu__kern_expf(x[j + (size_t)l] - m);
        for (l = 0; l < (int)(n - j); l++) acc[l] += out[j + (size_t)l] = lmu__kern_expf(x[j + (size_t)l] - m);
    } else {
        for (j = 0; j + 16 <= n; j += 16)
            for (l = 0; l < 16; l++) acc[l] += lmu__kern_expf(x[j + (size_t)l] - m);
        for (l = 0; l < (int)(n - j); l++) acc[l] += lmu__kern_expf(x[j + (size_t)l] - m);
    }
    for (l = 0; l < 8; l++) acc[l] += acc[l + 8];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* gelu as docs/MODEL.md's tanh form, written as a sigmoid:
       0.5 x (1 + tanh u) = x s,  s = 1 / (1 + e),  e = exp(-2u),
       gelu' = s + 2 x e s^2 u'   (1 - s = e s, so nothing cancels).
   Clamping -2u to [-40, 80], where s is 1 or 0 to float precision (the
   error is below |x| 2e-35), leaves exp no overflow, underflow or infinity
   to handle. NaN still propagates, since x multiplies the result. Also
   returns gelu'(x) when dg is not NULL. */
LMU__KERN_INLINE float lmu__kern_gelu(float x, float *dg)
{
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    float x2 = x * x, w = -2.0f * c * (x + 0.044715f * x2 * x), e, sg;
    w = w < -40.0f ? -40.0f : w;
    w = w > 80.0f ? 80.0f : w;
    e = lmu__kern_exp_core(w);
    sg = 1.0f / (1.0f + e);
    if (dg) *dg = sg + 2.0f * c * x * e * sg * sg * (1.0f + 3.0f * 0.044715f * x2);
    return x * sg;
}

LMU__PRIVATE size_t lmu__kern_round16(size_t x) { return (x + 15) & ~(size_t)15; }

/* gelu through lmu__kern_gelu: libm's tanhf keeps these loops scalar, and
   the FFN activations are large enough for that to show in a step. */
LMU__PRIVATE void lmu__gelu_forward(float *out, const float *inp, size_t n)
{
    long i;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)n; i++) out[i] = lmu__kern_gelu(inp[i], NULL);
}

LMU__PRIVATE void lmu__gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    long i;
    LMU__OMP(omp parallel for schedule(static))
    for (i = 0; i < (long)n; i++) {
        float dg;
        (void)lmu__kern_gelu(inp[i], &dg);
        dinp[i] += dout[i] * dg;
    }
}

LMU__PRIVATE void lmu__softmax_forward(float *out, const float *inp, size_t N, size_t C)
{
    long n;
    LMU__OMP(omp parallel for schedule(static))
    for (n = 0; n < (long)N; n++) {
        const float *x_n = inp + (size_t)n * C;
        float *y_n = out + (size_t)n * C;
        float s = 1.0f / lmu__kern_expsum(x_n, y_n, C, lmu__kern_max(x_n, C));
        size_t c;
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
        float mx = lmu__kern_max(z_n, V);
        lse[n] = mx + logf(lmu__kern_expsum(z_n, NULL, V, mx));
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
        for (v = 0; v < V; v++) dz_n[v] += d * lmu__kern_expf(z_n[v] - l);
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
    rec->ip[2] = tape->bf16 != 0;
    r = lmu__linear_forward(tape->gemm_ws, rec->ip[2], lmu__tape_f32(tape, y), lmu__tape_f32(tape, x),
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
    if (!tape || !op || !op->backward || !out || n_in < 0 || n_in > LMU_TAPE_MAX_IN ||
        (n_in > 0 && !in))
        return LMU_ERR_ARG;
    *out = -1;
    if ((r = lmu__tape_fused(tape, LMU_OP_CUSTOM, n_in, in, ndim, shape, out, &rec)) != LMU_OK)
        return r;
    rec->aux = op;
    return LMU_OK;
}

/* the fused ops' backwards, beside their kernels below */
LMU__PRIVATE lmu_result lmu__tape_ce_tied_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_attention_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_iattn_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_linear_attention_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_short_conv_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_qknorm_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_block_xattn_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_brt_state_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_pool_backward(lmu_tape *t, const lmu_tape_rec *rec);
LMU__PRIVATE lmu_result lmu__tape_unpool_add_backward(lmu_tape *t, const lmu_tape_rec *rec);

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
            t->gemm_ws, rec->ip[2], lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]),
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
    case LMU_OP_CE_TIED: return lmu__tape_ce_tied_backward(t, rec);
    case LMU_OP_ATTENTION: return lmu__tape_attention_backward(t, rec);
    case LMU_OP_IMPLICIT_ATTENTION: return lmu__tape_iattn_backward(t, rec);
    case LMU_OP_LINEAR_ATTENTION: return lmu__tape_linear_attention_backward(t, rec);
    case LMU_OP_SHORT_CONV: return lmu__tape_short_conv_backward(t, rec);
    case LMU_OP_QK_NORM: return lmu__tape_qknorm_backward(t, rec);
    case LMU_OP_BLOCK_XATTN: return lmu__tape_block_xattn_backward(t, rec);
    case LMU_OP_BRT_STATE: return lmu__tape_brt_state_backward(t, rec);
    case LMU_OP_POOL: return lmu__tape_pool_backward(t, rec);
    case LMU_OP_UNPOOL_ADD: return lmu__tape_unpool_add_backward(t, rec);
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

/* ---------------------------------------------------------------------- */
/* fused kernels (>>ops): cross-entropy, causal attention, the implicit    */
/* self-attention block's convolution and per-position attention           */
/* ---------------------------------------------------------------------- */
/*
   Every kernel is a pure function on raw float pointers (llm.c's shape):
       lmu__<op>_forward(out, cache..., inp, weights..., dims..., scratch)
       lmu__<op>_backward(dinp, dweight..., dout, inp, cache..., weights...,
                          dims..., scratch)
   Backward ACCUMULATES (+=) into every gradient buffer. No kernel
   allocates: cache and scratch come from the caller, sized by the
   matching lmu__<op>_*_floats() query (counts of floats; give 64-byte
   aligned memory, e.g. lmu__alloc_aligned).

   Threading. A kernel that needs per-thread memory splits its work into
   `nparts` parts (OpenMP `for` over parts, schedule(static)); part p owns
   scratch slice p. nparts is a caller choice (lmu__thread_count() is the
   natural one), so memory never depends on how many threads OpenMP
   actually starts, and a result depends at most on nparts, never on the
   thread count. Which results depend on nparts is said per kernel.

   Large matrix products go through lmu__kern_gemm (the swap point for
   lmu_sgemm) and are called from serial code, since lmu_sgemm threads
   itself and one workspace serves one call at a time. Per-row and
   per-position products (attention rows, the q' x q' attention of the
   implicit block) run inside parallel loops and are written out here.
*/


/* ---------------------------------------------------------------------- */
/* fused logits + softmax + cross-entropy (tied embedding)                 */
/* ---------------------------------------------------------------------- */
/* N = positions, d = channels, V = vocabulary.
   x [N, d] (after the final LayerNorm), E [V, d] (tied embedding),
   targets [N] in 0..V-1, or LMU_TARGET_IGNORE: no loss, no gradient, and
   the mean over the other rows. The N x V logits never exist whole.
   Forward takes the rows in chunks of rb with their full rb x V logits
   (one product), so each row's logsumexp comes from one max and one sum
   over its own 200 KB of logits, no online rescaling. Only lse [N] is kept.
   Training knows backward will follow, so forward can finish the job
   while it holds the logits (the "eager" form, dx1 and dE1 non-NULL): it
   turns each chunk into exp(l - max) in place and runs the two gradient
   products at once. The output layer then costs three products, the
   model's FLOPs, instead of four; backward only scales dx1, dE1 by dloss.
   The other form, lmu__ce_backward_tiled, recomputes the logits in
   rb x vb tiles from lse, for a forward that did not know (evaluation
   followed by an unplanned backward).
   Deterministic and independent of the thread count: every product sums
   in a fixed order, dE sums the row chunks in order, the one-hot terms
   are applied serially, and the mean loss is a serial sum in double. */
#define LMU__CE_ROWS 2048 /* lazy backward tiles: big enough for full-speed gemms */
#define LMU__CE_COLS 2048
#define LMU__CE_CHUNK 256 /* forward rows per chunk: 51 MB of logits at V = 50257 */

LMU__PRIVATE size_t lmu__ce_scratch_floats_tiled(size_t N, size_t V, size_t d, size_t rb,
                                                 size_t vb, size_t chunk)
{
    size_t back, fwd;
    if (rb > N) rb = N;
    if (vb > V) vb = V;
    if (chunk > N) chunk = N;
    back = lmu__kern_round16(rb * vb);
    fwd = lmu__kern_round16(chunk * V) + 3 * lmu__kern_round16(chunk) +
          2 * lmu__kern_round16(chunk * d);
    return back > fwd ? back : fwd;
}

/* the rows that count (targets not LMU_TARGET_IGNORE) */
LMU__PRIVATE size_t lmu__ce_count(const int32_t *targets, size_t N)
{
    size_t r, n = 0;
    for (r = 0; r < N; r++) n += targets[r] >= 0;
    return n;
}

LMU__PRIVATE size_t lmu__ce_scratch_floats(size_t N, size_t V, size_t d)
{
    return lmu__ce_scratch_floats_tiled(N, V, d, LMU__CE_ROWS, LMU__CE_COLS, LMU__CE_CHUNK);
}


/* [out] loss                    mean over the N rows, nats
   [out, optional] losses        [N] per-position losses
   [out] lse                     [N] logsumexp per row
   [out, optional] dx1, dE1      [N, d], [V, d]: the gradients of the mean
                                 loss (dloss = 1), overwritten; both or neither
   chunk                         rows per product (LMU__CE_CHUNK; tests vary it) */
LMU__PRIVATE void lmu__ce_forward_tiled(float *loss, float *losses, float *lse, float *dx1,
                                        float *dE1, const float *x, const float *E,
                                        const int32_t *targets, size_t N, size_t d, size_t V,
                                        struct lmu_gemm_ws *ws, float *scratch, size_t chunk)
{
    size_t pos = 0, i, k, n_valid = lmu__ce_count(targets, N), done = 0;
    double total = 0.0;
    float g = n_valid ? 1.0f / (float)n_valid : 0.0f;
    float *tile, *li, *cs, *xs, *dxc;
    int32_t *row;
    int eager = dx1 && dE1;
    if (chunk > N) chunk = N;
    tile = scratch;                               /* (chunk, V) logits, then exp(l - max) */
    li = tile + lmu__kern_round16(chunk * V);     /* (chunk) row losses */
    cs = li + lmu__kern_round16(chunk);           /* (chunk) g / sum exp: the row scales */
    xs = cs + lmu__kern_round16(chunk);           /* (chunk, d) gathered x rows, then times their scale */
    dxc = xs + lmu__kern_round16(chunk * d);      /* (chunk, d) P E before the row scale */
    row = (int32_t *)(void *)(dxc + lmu__kern_round16(chunk * d)); /* (chunk) the rows' positions */
    /* An ignored row gets no logits at all: with a loss on a few positions
       (MQAR's queries, a prompt mask) the V x d products shrink with it.
       A chunk is the next `chunk` counted rows, read in place when they
       are consecutive (every plain LM batch), gathered into xs when not. */
    while (pos < N) {
        size_t rn = 0;
        const float *xc;
        long ii;
        for (; pos < N && rn < chunk; pos++) {
            LMU_ASSERT(targets[pos] >= LMU_TARGET_IGNORE && targets[pos] < (int32_t)V);
            if (targets[pos] >= 0) {
                row[rn++] = (int32_t)pos;
                continue;
            }
            lse[pos] = 0.0f; /* no logits: the lazy backward skips the row */
            if (losses) losses[pos] = 0.0f;
            if (eager) memset(dx1 + pos * d, 0, d * sizeof(float));
        }
        if (!rn) break;
        if ((size_t)(row[rn - 1] - row[0]) + 1 == rn) {
            xc = x + (size_t)row[0] * d;
        } else {
            for (i = 0; i < rn; i++) memcpy(xs + i * d, x + (size_t)row[i] * d, d * sizeof(float));
            xc = xs;
        }
        lmu__kern_gemm(ws, 0, 1, rn, V, d, 1.0f, xc, d, E, d, 0.0f, tile, V);
        LMU__OMP(omp parallel for schedule(static))
        for (ii = 0; ii < (long)rn; ii++) {
            float *l_i = tile + (size_t)ii * V, mx, s;
            size_t r = (size_t)row[ii], c;
            float lt = l_i[targets[r]];
            mx = lmu__kern_max(l_i, V);
            s = lmu__kern_expsum(l_i, eager ? l_i : NULL, V, mx);
            lse[r] = mx + logf(s);
            li[ii] = lse[r] - lt;
            if (!eager) continue;
            /* softmax = exp(l - max) / s: the 1/s goes into the products'
               operands (rows of x, rows of the dx result), not the tile */
            cs[ii] = g / s;
            for (c = 0; c < d; c++) xs[(size_t)ii * d + c] = cs[ii] * xc[(size_t)ii * d + c];
        }
        for (i = 0; i < rn; i++) {
            if (losses) losses[row[i]] = li[i];
            total += li[i];
        }
        if (!eager) continue;
        /* dlogits = g (softmax - onehot): dx = dlogits E, dE = dlogits^T x */
        lmu__kern_gemm(ws, 0, 0, rn, d, V, 1.0f, tile, V, E, d, 0.0f, dxc, d);
        lmu__kern_gemm(ws, 1, 0, V, d, rn, 1.0f, tile, V, xs, d, done ? 1.0f : 0.0f, dE1, d);
        done = 1;
        for (i = 0; i < rn; i++) {
            size_t r = (size_t)row[i], t = (size_t)targets[r];
            const float *e_t = E + t * d, *x_r = x + r * d;
            float *o = dx1 + r * d, *de = dE1 + t * d;
            for (k = 0; k < d; k++) {
                o[k] = cs[i] * dxc[i * d + k] - g * e_t[k];
                de[k] -= g * x_r[k];
            }
        }
    }
    if (eager && !done) memset(dE1, 0, V * d * sizeof(float)); /* nothing counted */
    *loss = n_valid ? (float)(total / (double)n_valid) : 0.0f;
}

LMU__PRIVATE void lmu__ce_forward(float *loss, float *losses, float *lse, float *dx1, float *dE1,
                                  const float *x, const float *E, const int32_t *targets,
                                  size_t N, size_t d, size_t V, struct lmu_gemm_ws *ws,
                                  float *scratch)
{
    lmu__ce_forward_tiled(loss, losses, lse, dx1, dE1, x, E, targets, N, d, V, ws, scratch,
                          LMU__CE_CHUNK);
}

/* dloss: gradient of the mean loss; dlosses [N] (optional): gradients of
   the per-position losses. Row i's logits get
   (softmax - onehot) * (dloss / N + dlosses[i]).
   dx [N, d] += dlogits E,  dE [V, d] += dlogits^T x. */
LMU__PRIVATE void lmu__ce_backward_tiled(float *dx, float *dE, float dloss, const float *dlosses,
                                         const float *x, const float *E, const int32_t *targets,
                                         const float *lse, size_t N, size_t d, size_t V,
                                         struct lmu_gemm_ws *ws, float *scratch, size_t rb,
                                         size_t vb)
{
    size_t r0, v0, n_valid = lmu__ce_count(targets, N);
    float *tile = scratch; /* (rb, vb) */
    float gmean = n_valid ? dloss / (float)n_valid : 0.0f;
    if (rb > N) rb = N;
    if (vb > V) vb = V;
    for (r0 = 0; r0 < N; r0 += rb) {
        size_t rn = N - r0 < rb ? N - r0 : rb;
        for (v0 = 0; v0 < V; v0 += vb) {
            size_t vn = V - v0 < vb ? V - v0 : vb;
            long ii;
            lmu__kern_gemm(ws, 0, 1, rn, vn, d, 1.0f, x + r0 * d, d, E + v0 * d, d, 0.0f, tile, vb);
            LMU__OMP(omp parallel for schedule(static))
            for (ii = 0; ii < (long)rn; ii++) {
                float *l_i = tile + (size_t)ii * vb;
                size_t r = r0 + (size_t)ii, j, t = (size_t)targets[r];
                float g = targets[r] < 0 ? 0.0f : gmean + (dlosses ? dlosses[r] : 0.0f), ls = lse[r];
                if (targets[r] < 0) { /* the forward computed no lse for it */
                    memset(l_i, 0, vn * sizeof(float));
                    continue;
                }
                for (j = 0; j < vn; j++) l_i[j] = lmu__kern_expf(l_i[j] - ls) * g;
                if (targets[r] >= 0 && t >= v0 && t < v0 + vn) l_i[t - v0] -= g;
            }
            lmu__kern_gemm(ws, 0, 0, rn, d, vn, 1.0f, tile, vb, E + v0 * d, d, 1.0f, dx + r0 * d, d);
            lmu__kern_gemm(ws, 1, 0, vn, d, rn, 1.0f, tile, vb, x + r0 * d, d, 1.0f, dE + v0 * d, d);
        }
    }
}

LMU__PRIVATE void lmu__ce_backward(float *dx, float *dE, float dloss, const float *dlosses,
                                   const float *x, const float *E, const int32_t *targets,
                                   const float *lse, size_t N, size_t d, size_t V,
                                   struct lmu_gemm_ws *ws, float *scratch)
{
    lmu__ce_backward_tiled(dx, dE, dloss, dlosses, x, E, targets, lse, N, d, V, ws, scratch,
                           LMU__CE_ROWS, LMU__CE_COLS);
}

/* The tied-embedding loss as a tape op: loss = mean CE of (x E^T) against
   targets; x (..., d) rows, E (V, d), targets int (rows); *losses (rows)
   keeps each position's. eager: a backward follows at once
   (lmu_model_forward_backward), so the grads of the mean loss come out of
   the same pass over the logits and backward only scales them. */
LMU__PRIVATE lmu_result lmu__tape_ce_tied(lmu_tape *t, int x, int E, int targets, int eager,
                                          int *loss, int *losses)
{
    size_t N, d, V;
    int in[3], lse, dx1 = -1, dE1 = -1;
    lmu_tape_rec *rec;
    lmu_gemm_ws ws;
    lmu_result r;
    if (!lmu__tape_valid(t, x) || !lmu__tape_valid(t, E) || !lmu__tape_valid(t, targets))
        return lmu__tape_fail(t, LMU_ERR_ARG, "cross_entropy_tied: bad id");
    d = (size_t)t->tensors[E].shape[1], V = (size_t)t->tensors[E].shape[0];
    N = t->tensors[x].size / d;
    if (t->tensors[E].ndim != 2 || N * d != t->tensors[x].size || t->tensors[targets].size != N)
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "cross_entropy_tied: x, E, targets do not fit");
    if ((r = lmu__tape_kernel_check(t, lmu__ce_scratch_floats(N, V, d), "cross_entropy_tied")))
        return r;
    in[0] = x, in[1] = E, in[2] = targets;
    if ((r = lmu__tape_fused(t, LMU_OP_CE_TIED, 3, in, 0, NULL, loss, &rec)) != LMU_OK ||
        (r = lmu__tape_cache(t, N, &lse)) != LMU_OK || (r = lmu__tape_cache(t, N, losses)) != LMU_OK ||
        (eager && ((r = lmu__tape_cache(t, N * d, &dx1)) != LMU_OK ||
                   (r = lmu__tape_cache(t, V * d, &dE1)) != LMU_OK)))
        return r;
    rec->ip[0] = (int)N, rec->ip[1] = (int)d, rec->ip[2] = (int)V, rec->ip[3] = t->bf16 != 0;
    rec->cache[0] = lse, rec->cache[1] = *losses, rec->cache[2] = dx1, rec->cache[3] = dE1;
    ws = *t->gemm_ws, ws.bf16 = rec->ip[3]; /* the same buffers, this op's precision */
    lmu__ce_forward(lmu__tape_f32(t, *loss), lmu__tape_f32(t, *losses), lmu__tape_f32(t, lse),
                    dx1 >= 0 ? lmu__tape_f32(t, dx1) : NULL, dE1 >= 0 ? lmu__tape_f32(t, dE1) : NULL,
                    lmu__tape_f32(t, x), lmu__tape_f32(t, E),
                    (const int32_t *)lmu__tape_i32(t, targets), N, d, V, &ws, t->scratch);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_ce_tied_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    const float *dout = lmu__tape_g32(t, rec->out);
    size_t N = (size_t)rec->ip[0], d = (size_t)rec->ip[1], V = (size_t)rec->ip[2];
    float *dx = lmu__tape_g32(t, rec->in[0]), *dE = lmu__tape_g32(t, rec->in[1]);
    lmu_gemm_ws ws;
    if (!dx && !dE) return LMU_OK;
    /* the kernel writes both grads; a frozen side goes to scratch-free
       dummies would cost memory, so both sides must want a grad */
    if (!dx || !dE) return lmu__tape_fail(t, LMU_ERR_STATE, "ce: both inputs need grads");
    if (rec->cache[2] >= 0) {
        /* the eager forward already has the grads of the mean loss */
        const float *dx1 = lmu__tape_f32(t, rec->cache[2]), *dE1 = lmu__tape_f32(t, rec->cache[3]);
        float s = dout[0];
        long i;
        LMU__OMP(omp parallel for schedule(static))
        for (i = 0; i < (long)(N * d); i++) dx[i] += s * dx1[i];
        LMU__OMP(omp parallel for schedule(static))
        for (i = 0; i < (long)(V * d); i++) dE[i] += s * dE1[i];
        return LMU_OK;
    }
    ws = *t->gemm_ws, ws.bf16 = rec->ip[3];
    lmu__ce_backward(dx, dE, dout[0], NULL, lmu__tape_f32(t, rec->in[0]),
                     lmu__tape_f32(t, rec->in[1]), (const int32_t *)lmu__tape_i32(t, rec->in[2]),
                     lmu__tape_f32(t, rec->cache[0]), N, d, V, &ws, t->scratch);
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* causal multi-head self-attention (GPT-2), blocked on the gemm           */
/* ---------------------------------------------------------------------- */
/* B = batch, T = positions, C = channels (d), NH = heads, hs = C / NH.
   qkv [B, T, 3C] = q | k | v, head h in columns h*hs .. h*hs+hs-1 of each.
   out [B, T, C] heads concatenated. lse [B, NH, T] per-row logsumexp of
   the scaled scores: all backward needs to rebuild any probability, so no
   T x T matrix is kept across the op.
   Per (b, h) and block of query rows [r0, r1), with the heads addressed in
   place (row pitch 3C), everything of size hs goes through the gemm:
     forward   S = Q_blk K[0:r1]^T scale, P = causal softmax(S), O = P V
     backward  P = exp(S - lse), dP = dO V^T, dS = P o (dP - D) scale with
               D = rowsum(dO o O) (= sum_s P dP), dQ_blk += dS K,
               dK[0:r1] += dS^T Q_blk, dV[0:r1] += P^T dO.
   Row dot products of length hs (33 for transformer-1m) cannot keep the
   FMA pipes busy; these products can. Scratch per part: BR x T floats
   (forward), 2 BR x KB (backward), so T = 16384 still fits.
   Tasks (forward: (b, h, block); backward: (b, h), which owns its heads'
   dk, dv) go to OpenMP threads, each with its own scratch and gemm slice,
   the products running single-threaded inside the region. A task's
   arithmetic is the same whoever runs it, and the gemm's bits never
   depend on its split, so results are independent of nparts and of the
   thread count. */

/* Query rows per block: a multiple of both micro-kernel heights (14 for
   AVX-512, 6 otherwise). Measured on Zen 4 at T = 1024, hs = 33. */
#ifndef LMU__MHA_BR
#define LMU__MHA_BR 84
#endif
/* Keys per P V product: at most one gemm k block, so each product sums a
   chunk in one fused chain from zero and the decode step can repeat it. */
#define LMU__MHA_KCH LMU__GEMM_KC
/* Keys per backward chunk: BR x KB floats of P and of dS stay in L2. A
   multiple of 16. */
#ifndef LMU__MHA_KB
#define LMU__MHA_KB 512
#endif
/* Their row pitch: not a power of two, which would map a column of P to
   few cache sets. */
#define LMU__MHA_LDB (LMU__MHA_KB + 16)

/* The fused multiply-add the gemm micro-kernel performs, for the decode
   step's copy of its arithmetic: the SIMD kernels always fuse. */
#if defined(LMU__GEMM_AVX512) || defined(LMU__GEMM_AVX2)
#define LMU__MHA_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define LMU__MHA_FMA(a, b, c) LMU__GEMM_FMA(a, b, c)
#endif

/* Per part: the forward's S (BR rows of T) and 1 / sum, and the
   backward's P and dS (BR x LMU__MHA_LDB each). Two parts together also
   hold P and dS with whole rows (pitch round16(T) + 16), for the heads
   the threads share. */
LMU__PRIVATE size_t lmu__mha_part_floats(size_t T)
{
    size_t fwd = (T < LMU__MHA_BR ? T : LMU__MHA_BR) * (lmu__kern_round16(T) + 16) + LMU__MHA_BR;
    size_t bwd = 2 * LMU__MHA_BR * LMU__MHA_LDB;
    return lmu__kern_round16(fwd > bwd ? fwd : bwd);
}

LMU__PRIVATE size_t lmu__mha_scratch_floats(size_t T, int nparts)
{
    return (size_t)(nparts < 1 ? 1 : nparts) * lmu__mha_part_floats(T);
}

/* Parts that run at once: each needs a slice of ws of its own. */
LMU__PRIVATE int lmu__mha_parts(const struct lmu_gemm_ws *ws, int nparts)
{
    if (nparts < 1) nparts = 1;
    if (ws && nparts > ws->nthreads) nparts = ws->nthreads;
    return nparts < 1 ? 1 : nparts;
}

/* Part `id`'s single-thread view of ws (NULL stays NULL: gemm allocates). */
LMU__PRIVATE struct lmu_gemm_ws *lmu__mha_part_ws(struct lmu_gemm_ws *ws, int id,
                                                  struct lmu_gemm_ws *mine)
{
    if (!ws) return NULL;
    *mine = *ws;
    mine->buf = ws->buf + (size_t)id * ws->slice_floats;
    mine->nthreads = 1;
    mine->owned = 0;
    return mine;
}

/* Causal softmax of one row of scores in place, unnormalised: p[0, nv)
   becomes exp(p - max), p[nv, n) zero; *inv gets 1 / sum, applied to the
   row's output instead (hs multiplies, not nv). Returns the row's
   logsumexp. 16 lanes by index, added in a fixed order: the forward block
   and the decode step both call this, so they round alike. */
LMU__PRIVATE float lmu__mha_softmax(float *p, size_t nv, size_t n, float *inv)
{
    float m = lmu__kern_max(p, nv), sum = lmu__kern_expsum(p, p, nv, m);
    size_t j;
    *inv = 1.0f / sum;
    for (j = nv; j < n; j++) p[j] = 0.0f;
    return m + logf(sum);
}

/* The first key position t sees: with a window W > 0, its own block of W
   positions and the one before (the Block-Recurrent Transformer's local
   attention: blocks t / W - 1 and t / W); W = 0: position 0. */
LMU__KERN_INLINE size_t lmu__mha_lo(size_t t, size_t W)
{
    return W && t / W > 1 ? (t / W - 1) * W : 0;
}

/* Key chunks of the P V products start at multiples of LMU__MHA_KCH (the
   first at the rows' lowest key): the decode step cuts its keys the same
   way, and a chunk a row cannot see adds its exact zeros. */
LMU__KERN_INLINE size_t lmu__mha_chunk_end(size_t j0, size_t end)
{
    size_t j1 = (j0 / LMU__MHA_KCH + 1) * LMU__MHA_KCH;
    return j1 < end ? j1 : end;
}

/* Forward of query rows [r0, r1) of one (b, h): q, k, v point at the
   head's columns of the sequence (pitch 3C), o at its output columns
   (pitch C), lse at the head's T floats; window W (0: none). S: BR x
   round16(r1) floats, inv: BR. Column j of S is key klo + j, klo the
   block's lowest visible key; a row's keys before its own lowest are
   zeros in S. */
LMU__PRIVATE void lmu__mha_fwd_block(float *o, float *lse, const float *q, const float *k,
                                     const float *v, size_t C, size_t hs, size_t r0, size_t r1,
                                     size_t W, float scale, struct lmu_gemm_ws *ws, float *S,
                                     float *inv)
{
    size_t C3 = 3 * C, n = r1 - r0, klo = lmu__mha_lo(r0, W), nk = r1 - klo;
    size_t ld = lmu__kern_round16(nk), i, j0, j1, c;
    lmu__kern_gemm(ws, 0, 1, n, nk, hs, scale, q + r0 * C3, C3, k + klo * C3, C3, 0.0f, S, ld);
    for (i = 0; i < n; i++) {
        size_t t = r0 + i, off = lmu__mha_lo(t, W) - klo, j;
        float *row = S + i * ld;
        for (j = 0; j < off; j++) row[j] = 0.0f;
        lse[t] = lmu__mha_softmax(row + off, t + 1 - klo - off, nk - off, inv + i);
    }
    /* Chunk j0 only for the rows that reach it (t >= j0): exactly the
       chunks the decode step of row t sums. */
    for (j0 = klo; j0 < r1; j0 = j1) {
        size_t i0 = j0 > r0 ? j0 - r0 : 0;
        j1 = lmu__mha_chunk_end(j0, r1);
        lmu__kern_gemm(ws, 0, 0, n - i0, hs, j1 - j0, 1.0f, S + i0 * ld + (j0 - klo), ld,
                       v + j0 * C3, C3, j0 > klo ? 1.0f : 0.0f, o + (r0 + i0) * C, C);
    }
    for (i = 0; i < n; i++)
        for (c = 0; c < hs; c++) o[(r0 + i) * C + c] *= inv[i];
}

LMU__PRIVATE void lmu__mha_forward(float *out, float *lse, const float *qkv, size_t B, size_t T,
                                   size_t C, size_t NH, size_t W, struct lmu_gemm_ws *ws,
                                   int nparts, float *scratch)
{
    size_t hs = C / NH, C3 = 3 * C, nb = (T + LMU__MHA_BR - 1) / LMU__MHA_BR, BH = B * NH;
    size_t tasks = BH * nb, part = lmu__mha_part_floats(T);
    float scale = 1.0f / sqrtf((float)hs);
    int np = lmu__mha_parts(ws, nparts);
    LMU_ASSERT(hs * NH == C);
    if ((size_t)np > tasks) np = tasks ? (int)tasks : 1;
    LMU__OMP(omp parallel num_threads(np))
    {
        int id = lmu__thread_id();
        struct lmu_gemm_ws mine, *pws = lmu__mha_part_ws(ws, id, &mine);
        size_t br = T < LMU__MHA_BR ? T : LMU__MHA_BR;
        float *S = scratch + (size_t)id * part, *inv = S + br * lmu__kern_round16(T);
        long task;
        /* Longest blocks (the last rows) first, so the dynamic schedule
           ends with short ones. Which thread runs a task changes nothing. */
        LMU__OMP(omp for schedule(dynamic, 1))
        for (task = 0; task < (long)tasks; task++) {
            size_t blk = nb - 1 - (size_t)task / BH, bh = (size_t)task % BH;
            size_t b = bh / NH, h = bh % NH, r0 = blk * LMU__MHA_BR;
            size_t r1 = r0 + LMU__MHA_BR < T ? r0 + LMU__MHA_BR : T;
            const float *q = qkv + b * T * C3 + h * hs;
            lmu__mha_fwd_block(out + b * T * C + h * hs, lse + bh * T, q, q + C, q + 2 * C, C, hs,
                               r0, r1, W, scale, pws, S, inv);
        }
    }
}

/* Part of one block's backward: query rows [r0, r0 + n) against keys
   [k0, k1) of one (b, h). q, dq point at the head's columns of the
   sequence in qkv, dqkv (pitch 3C; k, v and dk, dv follow C apart), dob,
   ob at its columns of dout, out (pitch C); window W. Writes P and dS for
   those keys at columns 0 .. k1 - k0 of P, dS (pitch ld) and adds their
   dk, dv rows. */
LMU__PRIVATE void lmu__mha_bwd_keys(float *dq, const float *q, const float *dob, const float *ob,
                                    const float *lse_bh, size_t C, size_t hs, size_t W,
                                    float scale, size_t r0, size_t n, size_t k0, size_t k1,
                                    struct lmu_gemm_ws *ws, float *P, float *dS, size_t ld)
{
    const size_t C3 = 3 * C, w = k1 - k0;
    size_t i, s;
    lmu__kern_gemm(ws, 0, 1, n, w, hs, scale, q + r0 * C3, C3, q + C + k0 * C3, C3, 0.0f, P, ld);
    lmu__kern_gemm(ws, 0, 1, n, w, hs, 1.0f, dob + r0 * C, C, q + 2 * C + k0 * C3, C3, 0.0f, dS,
                   ld);
    for (i = 0; i < n; i++) {
        /* columns b <= s < e are keys t may see */
        size_t t = r0 + i, e = t + 1 <= k0 ? 0 : t + 1 - k0 < w ? t + 1 - k0 : w;
        size_t lo = lmu__mha_lo(t, W), b = lo <= k0 ? 0 : lo - k0 < e ? lo - k0 : e;
        float *pr = P + i * ld, *dr = dS + i * ld;
        float D = lmu__kern_dot(dob + t * C, ob + t * C, hs), ls = lse_bh[t];
        for (s = 0; s < b; s++) pr[s] = dr[s] = 0.0f;
        for (; s < e; s++) {
            float pv = lmu__kern_expf(pr[s] - ls);
            pr[s] = pv;
            dr[s] = pv * (dr[s] - D) * scale;
        }
        for (; s < w; s++) pr[s] = dr[s] = 0.0f;
    }
    lmu__kern_gemm(ws, 1, 0, w, hs, n, 1.0f, dS, ld, q + r0 * C3, C3, 1.0f, dq + C + k0 * C3, C3);
    lmu__kern_gemm(ws, 1, 0, w, hs, n, 1.0f, P, ld, dob + r0 * C, C, 1.0f, dq + 2 * C + k0 * C3,
                   C3);
}

/* Backward of one (b, h) (pointers as for lmu__mha_bwd_keys) by thread
   `id` of `nt` working on it together. dq_blk += dS K goes over the keys
   in chunks of LMU__MHA_KB. Alone (nt = 1), each chunk is done whole
   before the next, so P and dS (BR x LMU__MHA_LDB each) stay in L2
   whatever T. Together (the heads left over once the rest are shared out
   one per thread), P and dS hold whole rows (pitch ld, at least r1), the
   threads split the keys of a block, meet, then split its rows for dq:
   two barriers a block, not two a chunk, since a barrier that puts a
   thread to sleep costs a system call. Either way each element comes
   from the same product with the same depth, so the bits do not depend
   on nt. */
LMU__PRIVATE void lmu__mha_bwd_head(float *dq, const float *q, const float *dob, const float *ob,
                                    const float *lse_bh, size_t T, size_t C, size_t hs, size_t W,
                                    float scale, struct lmu_gemm_ws *ws, int id, int nt, float *P,
                                    float *dS, size_t ld)
{
    const size_t C3 = 3 * C;
    size_t r0, r1, j0, j1;
    for (r0 = 0; r0 < T; r0 = r1) {
        size_t n, i0, i1, klo = lmu__mha_lo(r0, W); /* the block's lowest key */
        r1 = T - r0 < LMU__MHA_BR ? T : r0 + LMU__MHA_BR;
        n = r1 - r0;
        if (nt == 1) {
            for (j0 = klo; j0 < r1; j0 = j1) {
                j1 = r1 - j0 < LMU__MHA_KB ? r1 : j0 + LMU__MHA_KB;
                lmu__mha_bwd_keys(dq, q, dob, ob, lse_bh, C, hs, W, scale, r0, n, j0, j1, ws, P,
                                  dS, ld);
                lmu__kern_gemm(ws, 0, 0, n, hs, j1 - j0, 1.0f, dS, ld, q + C + j0 * C3, C3, 1.0f,
                               dq + r0 * C3, C3);
            }
            continue;
        }
        {
            /* this thread's keys [c0, c1) of [klo, r1): whole 16-float groups */
            size_t g = (r1 - klo + 15) / 16, c0 = klo + g * (size_t)id / (size_t)nt * 16;
            size_t c1 = klo + g * (size_t)(id + 1) / (size_t)nt * 16;
            c1 = c1 < r1 ? c1 : r1;
            if (c0 < c1)
                lmu__mha_bwd_keys(dq, q, dob, ob, lse_bh, C, hs, W, scale, r0, n, c0, c1, ws,
                                  P + c0, dS + c0, ld);
        }
        LMU__OMP(omp barrier)
        i0 = n * (size_t)id / (size_t)nt, i1 = n * (size_t)(id + 1) / (size_t)nt;
        for (j0 = klo; j0 < r1 && i0 < i1; j0 = j1) {
            j1 = r1 - j0 < LMU__MHA_KB ? r1 : j0 + LMU__MHA_KB;
            lmu__kern_gemm(ws, 0, 0, i1 - i0, hs, j1 - j0, 1.0f, dS + i0 * ld + j0, ld,
                           q + C + j0 * C3, C3, 1.0f, dq + (r0 + i0) * C3, C3);
        }
        LMU__OMP(omp barrier) /* P, dS are rewritten next block */
    }
}

/* dqkv [B, T, 3C] += ..., given dout [B, T, C] and the forward's out, lse. */
LMU__PRIVATE void lmu__mha_backward(float *dqkv, const float *dout, const float *qkv,
                                    const float *out, const float *lse, size_t B, size_t T,
                                    size_t C, size_t NH, size_t W, struct lmu_gemm_ws *ws,
                                    int nparts, float *scratch)
{
    size_t hs = C / NH, C3 = 3 * C, tasks = B * NH, part = lmu__mha_part_floats(T), npar;
    size_t br = T < LMU__MHA_BR ? T : LMU__MHA_BR, ldt = lmu__kern_round16(T) + 16;
    float scale = 1.0f / sqrtf((float)hs);
    int np = lmu__mha_parts(ws, nparts);
    LMU_ASSERT(hs * NH == C);
    /* Heads are equal work: one per thread while every thread has one,
       then the last tasks % np each with the whole team, not 3 heads on
       one thread and 2 on the other (batch 1, 5 heads, 2 threads). */
    npar = np > 1 ? tasks / (size_t)np * (size_t)np : tasks;
    LMU__OMP(omp parallel num_threads(np))
    {
        int id = lmu__thread_id(), nt = 1;
        struct lmu_gemm_ws mine, *pws = np > 1 ? lmu__mha_part_ws(ws, id, &mine) : ws;
        float *P = scratch + (size_t)id * part;
        long tk;
        LMU__OMP(omp for schedule(dynamic, 1))
        for (tk = 0; tk < (long)npar; tk++) {
            size_t b = (size_t)tk / NH, h = (size_t)tk % NH;
            lmu__mha_bwd_head(dqkv + b * T * C3 + h * hs, qkv + b * T * C3 + h * hs,
                              dout + b * T * C + h * hs, out + b * T * C + h * hs,
                              lse + (size_t)tk * T, T, C, hs, W, scale, pws, 0, 1, P,
                              P + LMU__MHA_BR * LMU__MHA_LDB, LMU__MHA_LDB);
        }
#ifdef _OPENMP
        nt = omp_get_num_threads();
#endif
        /* the leftover heads, on whole rows of P, dS: the first two
           parts' scratch (np >= 2 here) */
        for (tk = (long)npar; tk < (long)tasks; tk++) {
            size_t b = (size_t)tk / NH, h = (size_t)tk % NH;
            lmu__mha_bwd_head(dqkv + b * T * C3 + h * hs, qkv + b * T * C3 + h * hs,
                              dout + b * T * C + h * hs, out + b * T * C + h * hs,
                              lse + (size_t)tk * T, T, C, hs, W, scale, pws, id, nt, scratch,
                              scratch + br * ldt, ldt);
        }
    }
}

/* Keys x channels from which the decode step runs on the thread team (1 MB
   of keys: below it a team costs more than it saves). */
#define LMU__MHA_DECODE_PAR ((size_t)1 << 18)

/* Scratch of the decode step over at most `span` keys: every head's
   scores and 1 / sum, one partial output per chunk of LMU__MHA_KCH keys
   (a span cut at multiples of it: at most span / KCH + 2). */
LMU__PRIVATE size_t lmu__mha_decode_floats(size_t span, size_t C, size_t NH)
{
    return NH * lmu__kern_round16(span + 1) + NH + (span / LMU__MHA_KCH + 2) * C;
}

/* Positions the decode step's cache holds: every one up to t_max, or with
   a window W the last round16(2 W) + 16, a ring (whatever t_max: a window
   has no end of context). A multiple of 16, so a block of 16 positions
   stays whole; the extra 16 keep the block of the oldest key a position
   sees apart from the block being written. */
LMU__PRIVATE size_t lmu__mha_cache_rows(size_t t_max, size_t W)
{
    return W ? lmu__kern_round16(2 * W) + 16 : lmu__kern_round16(t_max);
}

/* Generation: one new position t with qkv_t [3C]; appends its key to
   kcache and its value to vcache, then attends over positions
   lmu__mha_lo(t, W) .. t with every head at once; out [C], sc:
   lmu__mha_decode_floats(t + 1, C, NH) floats (or 2 W). The cache holds R
   positions (lmu__mha_cache_rows), position s in row s % R. The keys are
   kept in blocks of 16 positions, each block [C][16] (channel-major), so
   each head's 16 chains run on unit-stride vectors read straight from the
   cache; the values are rows [R][C]. Both are read in one stream for all
   heads, not head by head across them: at long contexts reading the
   cache is the cost. The arithmetic is the forward block's for that row
   (each score as the gemm micro-kernel forms it: a fused chain from zero
   per k block, then times alpha; the shared softmax from the same first
   key; E V chunk by chunk at the same multiples of LMU__MHA_KCH, added in
   order, times 1 / sum), so generation equals the parallel forward bit
   for bit, and the blocks and chunks shared out over np threads change
   no bit. */
LMU__PRIVATE void lmu__mha_decode(float *out, float *kcache, float *vcache, const float *qkv_t,
                                  size_t t, size_t C, size_t NH, size_t W, size_t R, int np,
                                  float *sc)
{
    const size_t hs = C / NH, lo = lmu__mha_lo(t, W), nk = t + 1 - lo, ld = lmu__kern_round16(nk);
    const size_t kcb = lmu__gemm_kc(hs), b0 = lo / 16, nblk = t / 16 + 1 - b0;
    const size_t nch = (t / LMU__MHA_KCH) - (lo / LMU__MHA_KCH) + 1;
    const float scale = 1.0f / sqrtf((float)hs), *q = qkv_t;
    float *invp = sc + NH * ld, *part = invp + NH, *kb = kcache + (t % R) / 16 * 16 * C;
    long i;
    int par;
    size_t p;
    LMU_ASSERT(R % 16 == 0 && (R >= t + 1 || (W && R >= t + 1 - lo + 16)));
    if (np > lmu__thread_count()) np = lmu__thread_count(); /* the caller's setting now */
    par = nk * C >= LMU__MHA_DECODE_PAR && np > 1;
    if (t % 16 == 0) memset(kb, 0, 16 * C * sizeof(float)); /* a new block: no stale lanes */
    (void)par; /* read only by the OpenMP pragma */
    for (p = 0; p < C; p++) kb[p * 16 + t % 16] = qkv_t[C + p];
    memcpy(vcache + (t % R) * C, qkv_t + 2 * C, C * sizeof(float));
    /* scores: blocks of 16 keys (lanes before lo or past t are computed,
       never kept: older keys of the ring, or zeros) */
    LMU__OMP(omp parallel for schedule(static) num_threads(np) if (par))
    for (i = 0; i < (long)nblk; i++) {
        size_t s = (b0 + (size_t)i) * 16, l, l0 = s < lo ? lo - s : 0, l1, p0, p1, h, pp;
        const float *kt = kcache + s % R * C;
        l1 = t + 1 - s < 16 ? t + 1 - s : 16;
        for (h = 0; h < NH; h++) {
            float acc[16], x[16];
            for (p0 = 0; p0 < hs; p0 = p1) {
                p1 = hs - p0 < kcb ? hs : p0 + kcb;
                for (l = 0; l < 16; l++) acc[l] = 0.0f;
                for (pp = p0; pp < p1; pp++) {
                    const float *kp = kt + (h * hs + pp) * 16;
                    float qp = q[h * hs + pp];
                    for (l = 0; l < 16; l++) acc[l] = LMU__MHA_FMA(qp, kp[l], acc[l]);
                }
                for (l = 0; l < 16; l++) x[l] = p0 == 0 ? scale * acc[l] : LMU__MHA_FMA(scale, acc[l], x[l]);
            }
            for (l = l0; l < l1; l++) sc[h * ld + s + l - lo] = x[l];
        }
    }
    for (i = 0; i < (long)NH; i++) (void)lmu__mha_softmax(sc + (size_t)i * ld, nk, nk, invp + i);
    /* E V: each chunk of keys' sum for every channel, then the chunks in order */
    LMU__OMP(omp parallel for schedule(static) num_threads(np) if (par))
    for (i = 0; i < (long)nch; i++) {
        size_t c0 = (lo / LMU__MHA_KCH + (size_t)i) * LMU__MHA_KCH, s, h, c;
        size_t j0 = c0 > lo ? c0 : lo, j1 = lmu__mha_chunk_end(j0, t + 1);
        float *acc = part + (size_t)i * C;
        for (c = 0; c < C; c++) acc[c] = 0.0f;
        for (s = j0; s < j1; s++) {
            const float *vs = vcache + s % R * C;
            for (h = 0; h < NH; h++) {
                float w = sc[h * ld + s - lo];
                for (c = h * hs; c < (h + 1) * hs; c++) acc[c] = LMU__MHA_FMA(w, vs[c], acc[c]);
            }
        }
    }
    for (i = 0; i < (long)C; i++) {
        size_t ch;
        float o = part[i];
        for (ch = 1; ch < nch; ch++) o += part[ch * C + (size_t)i];
        out[i] = o * invp[(size_t)i / hs];
    }
}

/* out (B, T, d) = causal multi-head attention of qkv (B, T, 3d) as a
   tape op, window W (0: none); lse is its cache. */
LMU__PRIVATE lmu_result lmu__tape_attention(lmu_tape *t, int qkv, int n_head, int window, int *out)
{
    const lmu_tensor *x;
    int shape[3], lse, B, T, d;
    lmu_tape_rec *rec;
    lmu_result r;
    if (!lmu__tape_valid(t, qkv)) return lmu__tape_fail(t, LMU_ERR_ARG, "causal_attention: bad id");
    x = &t->tensors[qkv];
    B = x->shape[0], T = x->shape[1], d = x->shape[2] / 3;
    if (x->ndim != 3 || x->shape[2] != 3 * d || n_head < 1 || d % n_head)
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "causal_attention: qkv must be (B, T, 3d), d %% n_head = 0");
    if (window < 0) return lmu__tape_fail(t, LMU_ERR_ARG, "causal_attention: window %d < 0", window);
    if ((r = lmu__tape_kernel_check(t, lmu__mha_scratch_floats((size_t)T, t->nparts),
                                    "causal_attention")))
        return r;
    shape[0] = B, shape[1] = T, shape[2] = d;
    if ((r = lmu__tape_fused(t, LMU_OP_ATTENTION, 1, &qkv, 3, shape, out, &rec)) != LMU_OK ||
        (r = lmu__tape_cache(t, (size_t)B * (size_t)n_head * (size_t)T, &lse)) != LMU_OK)
        return r;
    rec->ip[0] = B, rec->ip[1] = T, rec->ip[2] = d, rec->ip[3] = n_head, rec->ip[4] = window;
    rec->cache[0] = lse;
    lmu__mha_forward(lmu__tape_f32(t, *out), lmu__tape_f32(t, lse), lmu__tape_f32(t, qkv),
                     (size_t)B, (size_t)T, (size_t)d, (size_t)n_head, (size_t)window, t->gemm_ws,
                     t->nparts, t->scratch);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_attention_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    float *dqkv = lmu__tape_g32(t, rec->in[0]);
    if (!dqkv) return LMU_OK;
    lmu__mha_backward(dqkv, lmu__tape_g32(t, rec->out), lmu__tape_f32(t, rec->in[0]),
                      lmu__tape_f32(t, rec->out), lmu__tape_f32(t, rec->cache[0]),
                      (size_t)rec->ip[0], (size_t)rec->ip[1], (size_t)rec->ip[2],
                      (size_t)rec->ip[3], (size_t)rec->ip[4], t->gemm_ws, t->nparts, t->scratch);
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* linear attention with a polynomial kernel (ReBased, Based)              */
/* ---------------------------------------------------------------------- */
/* B = batch, T = positions, H = heads, F = feature width per head,
   C = channels (d), hs = C / H. q, k [B, T, F H] (head h in columns
   h F .. h F + F - 1), v, out [B, T, C]. Per head, for i >= j,
       x_ij = q_i . k_j / sqrt(F),  s_ij = phi(x_ij),
       out_i = sum_j s_ij v_j / (sum_j s_ij + eps)
   with phi(x) = x^2 (ReBased, Aksenov et al. 2024) or 1 + x + x^2 / 2
   (Based, the second-order Taylor form of exp). Both are positive, so the
   denominator is. This is the quadratic (parallel) form: each (b, h) is a
   task of its own, its sums in a fixed order, so the bits do not depend on
   the thread count. den [B, H, T] is cached; backward rebuilds s:
       g_i = dout_i / den_i,  ds_ij = g_i . v_j - g_i . out_i,
       dv_j += s_ij g_i,  dx_ij = ds_ij phi'(x_ij) / sqrt(F),
       dq_i += dx_ij k_j,  dk_j += dx_ij q_i. */
LMU__KERN_INLINE float lmu__la_phi(float x, int based, float *dphi)
{
    if (based) {
        if (dphi) *dphi = 1.0f + x;
        return 1.0f + x + 0.5f * x * x;
    }
    if (dphi) *dphi = 2.0f * x;
    return x * x;
}

/* o (hs) += sum_{j = j0..i} s_ij v_j for one query row qi; returns the
   sum of those s_ij (kb, vb: the head's first key and value rows). */
LMU__PRIVATE float lmu__la_row(float *o, const float *qi, const float *kb, const float *vb,
                               size_t j0, size_t i, size_t F, size_t FH, size_t C, size_t hs,
                               int based)
{
    const float scale = 1.0f / sqrtf((float)F);
    float sum = 0.0f;
    size_t j, c;
    for (j = j0; j <= i; j++) {
        const float s = lmu__la_phi(lmu__kern_dot(qi, kb + j * FH, F) * scale, based, NULL);
        const float *vj = vb + j * C;
        sum += s;
        for (c = 0; c < hs; c++) o[c] += s * vj[c];
    }
    return sum;
}

LMU__PRIVATE void lmu__la_forward(float *out, float *den, const float *q, const float *k,
                                  const float *v, size_t B, size_t T, size_t H, size_t F,
                                  size_t C, int based, float eps)
{
    const size_t FH = F * H, hs = C / H;
    long task;
    LMU__OMP(omp parallel for schedule(static))
    for (task = 0; task < (long)(B * H); task++) {
        const size_t b = (size_t)task / H, h = (size_t)task % H;
        const float *qb = q + b * T * FH + h * F, *kb = k + b * T * FH + h * F;
        const float *vb = v + b * T * C + h * hs;
        float *ob = out + b * T * C + h * hs, *dn = den + (size_t)task * T;
        size_t i, c;
        for (i = 0; i < T; i++) {
            float *o = ob + i * C;
            for (c = 0; c < hs; c++) o[c] = 0.0f;
            dn[i] = lmu__la_row(o, qb + i * FH, kb, vb, 0, i, F, FH, C, hs, based) + eps;
            for (c = 0; c < hs; c++) o[c] /= dn[i];
        }
    }
}

/* One (b, h) task's pairs j <= i with j in i's block of `block`
   positions (0: every j), backward: accumulates into dq, dk, dv (any may
   be NULL: not needed). */
LMU__PRIVATE void lmu__la_backward_pairs(float *dq, float *dk, float *dv, const float *dout,
                                         const float *out, const float *den, const float *q,
                                         const float *k, const float *v, size_t task, size_t T,
                                         size_t H, size_t F, size_t C, int based, size_t block)
{
    const size_t FH = F * H, hs = C / H, b = task / H, h = task % H;
    const size_t qo = b * T * FH + h * F, vo = b * T * C + h * hs;
    const float scale = 1.0f / sqrtf((float)F), *dn = den + task * T;
    size_t i, j, c, a;
    for (i = 0; i < T; i++) {
        const float *qi = q + qo + i * FH, *doi = dout + vo + i * C, *oi = out + vo + i * C;
        const float inv = 1.0f / dn[i];
        float go = 0.0f;
        for (c = 0; c < hs; c++) go += doi[c] * oi[c];
        go *= inv;
        for (j = block ? i / block * block : 0; j <= i; j++) {
            const float *kj = k + qo + j * FH, *vj = v + vo + j * C;
            float dphi, gv = 0.0f, s, dx;
            s = lmu__la_phi(lmu__kern_dot(qi, kj, F) * scale, based, &dphi);
            for (c = 0; c < hs; c++) gv += doi[c] * vj[c];
            if (dv)
                for (c = 0; c < hs; c++) dv[vo + j * C + c] += s * inv * doi[c];
            dx = (gv * inv - go) * dphi * scale;
            if (dq)
                for (a = 0; a < F; a++) dq[qo + i * FH + a] += dx * kj[a];
            if (dk)
                for (a = 0; a < F; a++) dk[qo + j * FH + a] += dx * qi[a];
        }
    }
}

LMU__PRIVATE void lmu__la_backward(float *dq, float *dk, float *dv, const float *dout,
                                   const float *out, const float *den, const float *q,
                                   const float *k, const float *v, size_t B, size_t T, size_t H,
                                   size_t F, size_t C, int based)
{
    long task;
    LMU__OMP(omp parallel for schedule(static))
    for (task = 0; task < (long)(B * H); task++)
        lmu__la_backward_pairs(dq, dk, dv, dout, out, den, q, k, v, (size_t)task, T, H, F, C, based, 0);
}

/* The chunked, linear-time form of the same function (for long T): the
   positions go in chunks of LMU__LA_CHUNK; inside a chunk the quadratic
   form, across chunks the state S = sum_j f(k_j) v_j^T, z = sum_j f(k_j)
   of the keys before it (f, nf: the feature map below, phi(x . y / sqrt F)
   = f(x) . f(y)):
       num_i = f(q_i)^T S + sum_{chunk j <= i} s_ij v_j,
       den_i = f(q_i) . z + sum_{chunk j <= i} s_ij + eps.
   Backward in two passes without storing a state per chunk: forward order
   rebuilds S, z before each chunk for d f(q_i) = S g_i + z dden_i; reverse
   order sums dS = sum f(q_i) g_i^T, dz = sum f(q_i) dden_i over the later
   chunks for d f(k_j) = dS v_j + dz and dv_j += dS^T f(k_j). Scratch per
   part: lmu__la_chunk_floats. */
#ifndef LMU__LA_CHUNK
#define LMU__LA_CHUNK 64
#endif
LMU__PRIVATE size_t lmu__la_features(size_t F, int based);
LMU__PRIVATE void lmu__la_feature_map(float *f, const float *x, size_t F, int based);

/* dx += J_f(x)^T df */
LMU__PRIVATE void lmu__la_feature_backward(float *dx, const float *df, const float *x, size_t F,
                                           int based)
{
    const float s = based ? 1.0f / sqrtf(2.0f * (float)F) : 1.0f / sqrtf((float)F);
    size_t a, c, o = 0;
    if (based) {
        const float r = 1.0f / sqrtf(sqrtf((float)F));
        for (a = 0; a < F; a++) dx[a] += r * df[1 + a];
        o = 1 + F;
    }
    for (a = 0; a < F; a++) {
        float acc = 0.0f;
        for (c = 0; c < F; c++) acc += (df[o + a * F + c] + df[o + c * F + a]) * x[c];
        dx[a] += s * acc;
    }
}

LMU__PRIVATE size_t lmu__la_chunk_floats(size_t F, size_t hs, int based)
{
    const size_t nf = lmu__la_features(F, based);
    return 2 * nf * (hs + 1) + 2 * nf + 16;
}

LMU__PRIVATE void lmu__la_forward_chunked(float *out, float *den, const float *q, const float *k,
                                          const float *v, size_t B, size_t T, size_t H, size_t F,
                                          size_t C, int based, float eps, int nparts, float *scratch)
{
    const size_t FH = F * H, hs = C / H, nf = lmu__la_features(F, based);
    const size_t per = lmu__la_chunk_floats(F, hs, based);
    long task;
    (void)nparts; /* without OpenMP */
    LMU__OMP(omp parallel for schedule(static) num_threads(nparts))
    for (task = 0; task < (long)(B * H); task++) {
        const size_t b = (size_t)task / H, h = (size_t)task % H;
        const float *qb = q + b * T * FH + h * F, *kb = k + b * T * FH + h * F;
        const float *vb = v + b * T * C + h * hs;
        float *ob = out + b * T * C + h * hs, *dn = den + (size_t)task * T;
        float *S = scratch + (size_t)lmu__thread_id() * per, *z = S + nf * hs, *f = z + nf;
        size_t c0, i, j, c, r;
        memset(S, 0, nf * (hs + 1) * sizeof(float));
        for (c0 = 0; c0 < T; c0 += LMU__LA_CHUNK) {
            const size_t c1 = c0 + LMU__LA_CHUNK < T ? c0 + LMU__LA_CHUNK : T;
            for (i = c0; i < c1; i++) {
                float *o = ob + i * C, sum = 0.0f;
                lmu__la_feature_map(f, qb + i * FH, F, based);
                for (c = 0; c < hs; c++) o[c] = 0.0f;
                for (r = 0; r < nf; r++) {
                    const float *Sr = S + r * hs;
                    sum += f[r] * z[r];
                    for (c = 0; c < hs; c++) o[c] += f[r] * Sr[c];
                }
                dn[i] = sum + lmu__la_row(o, qb + i * FH, kb, vb, c0, i, F, FH, C, hs, based) + eps;
                for (c = 0; c < hs; c++) o[c] /= dn[i];
            }
            for (j = c0; j < c1; j++) { /* the chunk's keys join the state */
                const float *vj = vb + j * C;
                lmu__la_feature_map(f, kb + j * FH, F, based);
                for (r = 0; r < nf; r++) {
                    float *Sr = S + r * hs;
                    z[r] += f[r];
                    for (c = 0; c < hs; c++) Sr[c] += f[r] * vj[c];
                }
            }
        }
    }
}

LMU__PRIVATE void lmu__la_backward_chunked(float *dq, float *dk, float *dv, const float *dout,
                                           const float *out, const float *den, const float *q,
                                           const float *k, const float *v, size_t B, size_t T,
                                           size_t H, size_t F, size_t C, int based, int nparts,
                                           float *scratch)
{
    const size_t FH = F * H, hs = C / H, nf = lmu__la_features(F, based);
    const size_t per = lmu__la_chunk_floats(F, hs, based), nchunk = (T + LMU__LA_CHUNK - 1) / LMU__LA_CHUNK;
    long task;
    (void)nparts; /* without OpenMP */
    LMU__OMP(omp parallel for schedule(static) num_threads(nparts))
    for (task = 0; task < (long)(B * H); task++) {
        const size_t b = (size_t)task / H, h = (size_t)task % H;
        const size_t qo = b * T * FH + h * F, vo = b * T * C + h * hs;
        const float *dn = den + (size_t)task * T;
        float *S = scratch + (size_t)lmu__thread_id() * per, *z = S + nf * hs;
        float *dS = z + nf, *dz = dS + nf * hs, *f = dz + nf, *df = f + nf;
        size_t ch, i, j, c, r;
        /* the quadratic part inside each chunk */
        lmu__la_backward_pairs(dq, dk, dv, dout, out, den, q, k, v, (size_t)task, T, H, F, C, based,
                               LMU__LA_CHUNK);
        /* queries against the state of the chunks before theirs */
        memset(S, 0, nf * (hs + 1) * sizeof(float));
        for (ch = 0; ch < nchunk; ch++) {
            const size_t c0 = ch * LMU__LA_CHUNK, c1 = c0 + LMU__LA_CHUNK < T ? c0 + LMU__LA_CHUNK : T;
            for (i = c0; dq && ch > 0 && i < c1; i++) {
                const float *doi = dout + vo + i * C, *oi = out + vo + i * C;
                const float inv = 1.0f / dn[i];
                float dden = 0.0f;
                for (c = 0; c < hs; c++) dden -= doi[c] * oi[c];
                dden *= inv;
                for (r = 0; r < nf; r++) {
                    const float *Sr = S + r * hs;
                    float acc = z[r] * dden;
                    for (c = 0; c < hs; c++) acc += Sr[c] * doi[c] * inv;
                    df[r] = acc;
                }
                lmu__la_feature_backward(dq + qo + i * FH, df, q + qo + i * FH, F, based);
            }
            for (j = c0; j < c1; j++) {
                const float *vj = v + vo + j * C;
                lmu__la_feature_map(f, k + qo + j * FH, F, based);
                for (r = 0; r < nf; r++) {
                    float *Sr = S + r * hs;
                    z[r] += f[r];
                    for (c = 0; c < hs; c++) Sr[c] += f[r] * vj[c];
                }
            }
        }
        /* keys against the queries of the chunks after theirs */
        memset(dS, 0, nf * (hs + 1) * sizeof(float));
        for (ch = nchunk; ch-- > 0;) {
            const size_t c0 = ch * LMU__LA_CHUNK, c1 = c0 + LMU__LA_CHUNK < T ? c0 + LMU__LA_CHUNK : T;
            for (j = c0; ch + 1 < nchunk && j < c1; j++) {
                const float *vj = v + vo + j * C;
                lmu__la_feature_map(f, k + qo + j * FH, F, based);
                for (r = 0; r < nf; r++) {
                    const float *dSr = dS + r * hs;
                    float acc = dz[r];
                    for (c = 0; c < hs; c++) acc += dSr[c] * vj[c];
                    df[r] = acc;
                    if (dv)
                        for (c = 0; c < hs; c++) dv[vo + j * C + c] += f[r] * dSr[c];
                }
                if (dk) lmu__la_feature_backward(dk + qo + j * FH, df, k + qo + j * FH, F, based);
            }
            for (i = c0; i < c1; i++) {
                const float *doi = dout + vo + i * C, *oi = out + vo + i * C;
                const float inv = 1.0f / dn[i];
                float dden = 0.0f;
                for (c = 0; c < hs; c++) dden -= doi[c] * oi[c];
                dden *= inv;
                lmu__la_feature_map(f, q + qo + i * FH, F, based);
                for (r = 0; r < nf; r++) {
                    float *dSr = dS + r * hs;
                    dz[r] += f[r] * dden;
                    for (c = 0; c < hs; c++) dSr[c] += f[r] * doi[c] * inv;
                }
            }
        }
    }
}

/* Above this length the chunked form is the faster (tools/bench_la). */
#ifndef LMU__LA_CROSSOVER
#define LMU__LA_CROSSOVER 768
#endif

/* scratch of the op at length T: the chunked form's states, per part */
LMU__PRIVATE size_t lmu__la_scratch_floats(size_t T, size_t F, size_t hs, int based, int nparts)
{
    return T > LMU__LA_CROSSOVER ? (size_t)nparts * lmu__la_chunk_floats(F, hs, based) : 0;
}

/* out (B, T, C) = the linear attention of q, k (B, T, F n_head) and
   v (B, T, C) as a tape op (based: phi of Based, else ReBased's); the
   quadratic form up to LMU__LA_CROSSOVER positions, the chunked one above. */
LMU__PRIVATE lmu_result lmu__tape_linear_attention(lmu_tape *t, int q, int k, int v, int n_head,
                                                   int based, float eps, int *out)
{
    const lmu_tensor *tq, *tk, *tv;
    int in[3], den, B, T, F, C, chunked;
    lmu_tape_rec *rec;
    lmu_result r;
    in[0] = q, in[1] = k, in[2] = v;
    if (!lmu__tape_valid(t, q) || !lmu__tape_valid(t, k) || !lmu__tape_valid(t, v))
        return lmu__tape_fail(t, LMU_ERR_ARG, "linear_attention: bad id");
    tq = &t->tensors[q], tk = &t->tensors[k], tv = &t->tensors[v];
    B = tq->shape[0], T = tq->shape[1], C = tv->shape[2];
    F = n_head > 0 ? tq->shape[2] / n_head : 0;
    if (tq->ndim != 3 || tk->ndim != 3 || tv->ndim != 3 || n_head < 1 || F < 1 ||
        F * n_head != tq->shape[2] || C % n_head || tk->shape[0] != B || tk->shape[1] != T ||
        tk->shape[2] != tq->shape[2] || tv->shape[0] != B || tv->shape[1] != T || !(eps > 0))
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "linear_attention: q, k (B, T, F n_head) and "
                              "v (B, T, C) with n_head | C, eps > 0");
    chunked = T > LMU__LA_CROSSOVER;
    if (chunked && (r = lmu__tape_kernel_check(t, lmu__la_scratch_floats((size_t)T, (size_t)F,
                                                    (size_t)(C / n_head), based, t->nparts),
                                               "linear_attention")) != LMU_OK)
        return r;
    if ((r = lmu__tape_fused(t, LMU_OP_LINEAR_ATTENTION, 3, in, 3, tv->shape, out, &rec)) != LMU_OK ||
        (r = lmu__tape_cache(t, (size_t)B * (size_t)n_head * (size_t)T, &den)) != LMU_OK)
        return r;
    rec->ip[0] = B, rec->ip[1] = T, rec->ip[2] = n_head, rec->ip[3] = F, rec->ip[4] = C;
    rec->ip[5] = based, rec->ip[6] = chunked;
    rec->cache[0] = den;
    if (chunked)
        lmu__la_forward_chunked(lmu__tape_f32(t, *out), lmu__tape_f32(t, den), lmu__tape_f32(t, q),
                                lmu__tape_f32(t, k), lmu__tape_f32(t, v), (size_t)B, (size_t)T,
                                (size_t)n_head, (size_t)F, (size_t)C, based, eps, t->nparts,
                                t->scratch);
    else
        lmu__la_forward(lmu__tape_f32(t, *out), lmu__tape_f32(t, den), lmu__tape_f32(t, q),
                        lmu__tape_f32(t, k), lmu__tape_f32(t, v), (size_t)B, (size_t)T,
                        (size_t)n_head, (size_t)F, (size_t)C, based, eps);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_linear_attention_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    if (rec->ip[6]) {
        lmu__la_backward_chunked(lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]),
                                 lmu__tape_g32(t, rec->in[2]), lmu__tape_g32(t, rec->out),
                                 lmu__tape_f32(t, rec->out), lmu__tape_f32(t, rec->cache[0]),
                                 lmu__tape_f32(t, rec->in[0]), lmu__tape_f32(t, rec->in[1]),
                                 lmu__tape_f32(t, rec->in[2]), (size_t)rec->ip[0],
                                 (size_t)rec->ip[1], (size_t)rec->ip[2], (size_t)rec->ip[3],
                                 (size_t)rec->ip[4], rec->ip[5], t->nparts, t->scratch);
        return LMU_OK;
    }
    lmu__la_backward(lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]),
                     lmu__tape_g32(t, rec->in[2]), lmu__tape_g32(t, rec->out),
                     lmu__tape_f32(t, rec->out), lmu__tape_f32(t, rec->cache[0]),
                     lmu__tape_f32(t, rec->in[0]), lmu__tape_f32(t, rec->in[1]),
                     lmu__tape_f32(t, rec->in[2]), (size_t)rec->ip[0], (size_t)rec->ip[1],
                     (size_t)rec->ip[2], (size_t)rec->ip[3], (size_t)rec->ip[4], rec->ip[5]);
    return LMU_OK;
}

/* Generation's form, a recurrence in constant memory: phi(q . k / sqrt F)
   = f(q) . f(k) with f(x) = vec(x x^T) / sqrt(F) (ReBased), or
   [1, x / F^(1/4), vec(x x^T) / sqrt(2 F)] (Based). Per head the state is
   S = sum_j f(k_j) v_j^T (nf x hs) and z = sum_j f(k_j) (nf). */
LMU__PRIVATE size_t lmu__la_features(size_t F, int based) { return F * F + (based ? 1 + F : 0); }

LMU__PRIVATE void lmu__la_feature_map(float *f, const float *x, size_t F, int based)
{
    const float s = based ? 1.0f / sqrtf(2.0f * (float)F) : 1.0f / sqrtf((float)F);
    size_t a, c, n = 0;
    if (based) {
        const float r = 1.0f / sqrtf(sqrtf((float)F));
        f[n++] = 1.0f;
        for (a = 0; a < F; a++) f[n++] = x[a] * r;
    }
    for (a = 0; a < F; a++)
        for (c = 0; c < F; c++) f[n++] = x[a] * x[c] * s;
}

/* One position of one head: S, z updated with (k, v), then out (hs) for
   q. fq, fk: nf floats of scratch each. */
LMU__PRIVATE void lmu__la_decode(float *out, float *S, float *z, const float *q, const float *k,
                                 const float *v, size_t F, size_t hs, int based, float eps,
                                 float *fq, float *fk)
{
    const size_t nf = lmu__la_features(F, based);
    size_t r, c;
    float den = 0.0f;
    lmu__la_feature_map(fk, k, F, based);
    lmu__la_feature_map(fq, q, F, based);
    for (c = 0; c < hs; c++) out[c] = 0.0f;
    for (r = 0; r < nf; r++) {
        float *Sr = S + r * hs;
        z[r] += fk[r];
        den += fq[r] * z[r];
        for (c = 0; c < hs; c++) {
            Sr[c] += fk[r] * v[c];
            out[c] += fq[r] * Sr[c];
        }
    }
    den += eps;
    for (c = 0; c < hs; c++) out[c] /= den;
}

/* ---------------------------------------------------------------------- */
/* short convolution gate (the mixer conv; Based's BaseConv)               */
/* ---------------------------------------------------------------------- */
/* y = (b + sum_j w_j u_{t-K+1+j}) * p + u per channel: a causal depthwise
   filter of width K (zeros before the start), gating p = u W + b' (a
   linear the caller records), plus u itself. u, p, y (B, T, C), w (C, K),
   b (C). The filtered signal is cached for backward's dp. */
LMU__PRIVATE void lmu__short_conv_forward(float *y, float *f, const float *u, const float *w,
                                          const float *b, const float *p, size_t B, size_t T,
                                          size_t C, size_t K)
{
    size_t n, t, c, j;
    for (n = 0; n < B; n++)
        for (t = 0; t < T; t++) {
            const size_t o = (n * T + t) * C;
            for (c = 0; c < C; c++) {
                float a = b[c];
                for (j = t + 1 >= K ? 0 : K - 1 - t; j < K; j++)
                    a += w[c * K + j] * u[o + c - (K - 1 - j) * C];
                f[o + c] = a;
                y[o + c] = a * p[o + c] + u[o + c];
            }
        }
}

LMU__PRIVATE void lmu__short_conv_backward(float *du, float *dw, float *db, float *dp,
                                           const float *dy, const float *f, const float *u,
                                           const float *w, const float *p, size_t B, size_t T,
                                           size_t C, size_t K)
{
    size_t n, t, c, j;
    for (n = 0; n < B; n++)
        for (t = 0; t < T; t++) {
            const size_t o = (n * T + t) * C;
            for (c = 0; c < C; c++) {
                const float g = dy[o + c] * p[o + c]; /* d(filtered) */
                if (dp) dp[o + c] += dy[o + c] * f[o + c];
                if (du) du[o + c] += dy[o + c];
                if (db) db[c] += g;
                for (j = t + 1 >= K ? 0 : K - 1 - t; j < K; j++) {
                    const size_t at = o + c - (K - 1 - j) * C;
                    if (dw) dw[c * K + j] += g * u[at];
                    if (du) du[at] += g * w[c * K + j];
                }
            }
        }
}

/* y (B, T, C) = the short convolution gate of u with w (C, K), b (C) and
   the gate p (B, T, C) as a tape op. */
LMU__PRIVATE lmu_result lmu__tape_short_conv(lmu_tape *t, int u, int w, int b, int p, int *y)
{
    const lmu_tensor *tu, *tw, *tp;
    int in[4], shape[3], f, k, K;
    lmu_tape_rec *rec;
    lmu_result r;
    in[0] = u, in[1] = w, in[2] = b, in[3] = p;
    for (k = 0; k < 4; k++)
        if ((r = lmu__tape_arg(t, in[k], "short_conv", "an input")) != LMU_OK) return r;
    tu = &t->tensors[u], tw = &t->tensors[w], tp = &t->tensors[p];
    if (tu->ndim != 3 || tw->ndim != 2 || tw->shape[0] != tu->shape[2] || tw->shape[1] < 1 ||
        t->tensors[b].size != (size_t)tu->shape[2] || tp->size != tu->size || tp->ndim != 3 ||
        tp->shape[2] != tu->shape[2])
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "short_conv: u, p (B, T, C), w (C, K), b (C)");
    /* copied out: the new entries below may move the tensor table */
    shape[0] = tu->shape[0], shape[1] = tu->shape[1], shape[2] = tu->shape[2], K = tw->shape[1];
    if ((r = lmu__tape_fused(t, LMU_OP_SHORT_CONV, 4, in, 3, shape, y, &rec)) != LMU_OK ||
        (r = lmu__tape_cache(t, t->tensors[u].size, &f)) != LMU_OK)
        return r;
    rec->ip[0] = shape[0], rec->ip[1] = shape[1], rec->ip[2] = shape[2], rec->ip[3] = K;
    rec->cache[0] = f;
    lmu__short_conv_forward(lmu__tape_f32(t, *y), lmu__tape_f32(t, f), lmu__tape_f32(t, u),
                            lmu__tape_f32(t, w), lmu__tape_f32(t, b), lmu__tape_f32(t, p),
                            (size_t)shape[0], (size_t)shape[1], (size_t)shape[2], (size_t)K);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_short_conv_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    lmu__short_conv_backward(lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]),
                             lmu__tape_g32(t, rec->in[2]), lmu__tape_g32(t, rec->in[3]),
                             lmu__tape_g32(t, rec->out), lmu__tape_f32(t, rec->cache[0]),
                             lmu__tape_f32(t, rec->in[0]), lmu__tape_f32(t, rec->in[1]),
                             lmu__tape_f32(t, rec->in[3]), (size_t)rec->ip[0], (size_t)rec->ip[1],
                             (size_t)rec->ip[2], (size_t)rec->ip[3]);
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* causal pooling and its inverse (the multi-scale stack, >>model)        */
/* ---------------------------------------------------------------------- */
/* y (B, Tc, C), Tc = ceil(T / k): y_j = (1/k) sum_{i<k} x_{jk + i - shift},
   zeros outside 0..T-1. The model pools with shift k - 1, so y_j is the
   mean of x_{jk-k+1} .. x_{jk}: every position it summarises lies at or
   before jk, the first fine position that reads it (lmu__unpool_add).
   shift 0 reads x_{jk} .. x_{jk+k-1}, the future of position jk: as a
   tape op only the causality test's negative control records it;
   generation calls the kernel so on its window of the last k vectors,
   all of them in the past. */
LMU__PRIVATE void lmu__pool_forward(float *y, const float *x, size_t B, size_t T, size_t C,
                                    size_t k, size_t shift)
{
    const size_t Tc = (T + k - 1) / k;
    const float inv = 1.0f / (float)k;
    size_t b, j, i, c;
    for (b = 0; b < B; b++)
        for (j = 0; j < Tc; j++) {
            float *o = y + (b * Tc + j) * C;
            for (c = 0; c < C; c++) o[c] = 0.0f;
            for (i = 0; i < k; i++) {
                const size_t at = j * k + i; /* the source position plus shift */
                if (at < shift || at - shift >= T) continue;
                for (c = 0; c < C; c++) o[c] += x[(b * T + at - shift) * C + c];
            }
            for (c = 0; c < C; c++) o[c] *= inv;
        }
}

LMU__PRIVATE void lmu__pool_backward(float *dx, const float *dy, size_t B, size_t T, size_t C,
                                     size_t k, size_t shift)
{
    const size_t Tc = (T + k - 1) / k;
    const float inv = 1.0f / (float)k;
    size_t b, j, i, c;
    for (b = 0; b < B; b++)
        for (j = 0; j < Tc; j++) {
            const float *g = dy + (b * Tc + j) * C;
            for (i = 0; i < k; i++) {
                const size_t at = j * k + i;
                if (at < shift || at - shift >= T) continue;
                for (c = 0; c < C; c++) dx[(b * T + at - shift) * C + c] += inv * g[c];
            }
        }
}

/* out (B, T, C) = x + y upsampled by repetition: position t adds y_{t/k}
   of y (B, Tc, C). */
LMU__PRIVATE void lmu__unpool_add_forward(float *out, const float *x, const float *y, size_t B,
                                          size_t T, size_t C, size_t k)
{
    const size_t Tc = (T + k - 1) / k;
    size_t b, t, c;
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) {
            const float *u = y + (b * Tc + t / k) * C;
            const size_t o = (b * T + t) * C;
            for (c = 0; c < C; c++) out[o + c] = x[o + c] + u[c];
        }
}

LMU__PRIVATE void lmu__unpool_add_backward(float *dx, float *dy, const float *dout, size_t B,
                                           size_t T, size_t C, size_t k)
{
    const size_t Tc = (T + k - 1) / k;
    size_t b, t, c;
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) {
            const size_t o = (b * T + t) * C;
            if (dx)
                for (c = 0; c < C; c++) dx[o + c] += dout[o + c];
            if (dy) {
                float *u = dy + (b * Tc + t / k) * C;
                for (c = 0; c < C; c++) u[c] += dout[o + c];
            }
        }
}

/* y (B, ceil(T / k), C) = the causal mean pooling of x (B, T, C) by k
   with the given shift, as a tape op. */
LMU__PRIVATE lmu_result lmu__tape_pool(lmu_tape *t, int x, int k, int shift, int *y)
{
    lmu_tape_rec *rec = NULL;
    lmu_result r;
    int shape[3];
    if ((r = lmu__tape_arg(t, x, "causal_pool", "x")) != LMU_OK) return r;
    if (t->tensors[x].ndim != 3 || k < 1 || shift < 0 || shift >= k)
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "causal_pool: x (B, T, C), k >= 1, 0 <= shift < k");
    shape[0] = t->tensors[x].shape[0], shape[1] = (t->tensors[x].shape[1] + k - 1) / k;
    shape[2] = t->tensors[x].shape[2];
    if ((r = lmu__tape_fused(t, LMU_OP_POOL, 1, &x, 3, shape, y, &rec)) != LMU_OK) return r;
    rec->ip[0] = t->tensors[x].shape[0], rec->ip[1] = t->tensors[x].shape[1];
    rec->ip[2] = shape[2], rec->ip[3] = k, rec->ip[4] = shift;
    lmu__pool_forward(lmu__tape_f32(t, *y), lmu__tape_f32(t, x), (size_t)rec->ip[0],
                      (size_t)rec->ip[1], (size_t)shape[2], (size_t)k, (size_t)shift);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_pool_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    float *dx = lmu__tape_g32(t, rec->in[0]);
    if (dx)
        lmu__pool_backward(dx, lmu__tape_g32(t, rec->out), (size_t)rec->ip[0], (size_t)rec->ip[1],
                           (size_t)rec->ip[2], (size_t)rec->ip[3], (size_t)rec->ip[4]);
    return LMU_OK;
}

/* out (B, T, C) = x + y repeated k times along T, y (B, ceil(T / k), C),
   as a tape op. */
LMU__PRIVATE lmu_result lmu__tape_unpool_add(lmu_tape *t, int x, int y, int k, int *out)
{
    const lmu_tensor *tx, *ty;
    lmu_tape_rec *rec;
    lmu_result r;
    int shape[3], in[2];
    in[0] = x, in[1] = y;
    if ((r = lmu__tape_arg(t, x, "unpool_add", "x")) != LMU_OK ||
        (r = lmu__tape_arg(t, y, "unpool_add", "y")) != LMU_OK)
        return r;
    tx = &t->tensors[x], ty = &t->tensors[y];
    if (tx->ndim != 3 || ty->ndim != 3 || k < 1 || ty->shape[0] != tx->shape[0] ||
        ty->shape[1] != (tx->shape[1] + k - 1) / k || ty->shape[2] != tx->shape[2])
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "unpool_add: x (B, T, C), y (B, ceil(T / k), C)");
    shape[0] = tx->shape[0], shape[1] = tx->shape[1], shape[2] = tx->shape[2];
    if ((r = lmu__tape_fused(t, LMU_OP_UNPOOL_ADD, 2, in, 3, shape, out, &rec)) != LMU_OK) return r;
    rec->ip[0] = shape[0], rec->ip[1] = shape[1], rec->ip[2] = shape[2], rec->ip[3] = k;
    lmu__unpool_add_forward(lmu__tape_f32(t, *out), lmu__tape_f32(t, x), lmu__tape_f32(t, y),
                            (size_t)shape[0], (size_t)shape[1], (size_t)shape[2], (size_t)k);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_unpool_add_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    lmu__unpool_add_backward(lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]),
                             lmu__tape_g32(t, rec->out), (size_t)rec->ip[0], (size_t)rec->ip[1],
                             (size_t)rec->ip[2], (size_t)rec->ip[3]);
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* q, k normalisation and dense attention without a mask (>>mixer-brt)     */
/* ---------------------------------------------------------------------- */
/* x (N, C), C = d (a query) or 3 d (q, k, v of a row): every head's slice
   of q and k becomes x / sqrt(|x|^2 + 1e-6) (the reference's
   normalize_kq), q's then times |scale_h| mult; v is copied. The logits
   q.k are then |scale_h| mult cos(q, k). Backward rebuilds the norms from
   x: with r = (|x|^2 + eps)^(-1/2), xhat = x r and y = c xhat,
       dx += c r (dy - xhat (xhat . dy)),  dscale_h += sign(scale_h) mult
   xhat . dy (q's slices). */
#define LMU__QKNORM_EPS 1e-6f

LMU__PRIVATE void lmu__qknorm_forward(float *y, const float *x, const float *scale, float mult,
                                      size_t N, size_t C, size_t d, size_t H)
{
    const size_t dh = d / H;
    long n;
    LMU__OMP(omp parallel for schedule(static) if (N > 1))
    for (n = 0; n < (long)N; n++) {
        const float *xn = x + (size_t)n * C;
        float *yn = y + (size_t)n * C;
        size_t g, h, k;
        for (g = 0; g < C / d; g++)
            for (h = 0; h < H; h++) {
                const float *xs = xn + g * d + h * dh;
                float *ys = yn + g * d + h * dh, ss = 0.0f, c;
                if (g == 2) {
                    memcpy(ys, xs, dh * sizeof(float));
                    continue;
                }
                for (k = 0; k < dh; k++) ss += xs[k] * xs[k];
                c = (g == 0 ? fabsf(scale[h]) * mult : 1.0f) / sqrtf(ss + LMU__QKNORM_EPS);
                for (k = 0; k < dh; k++) ys[k] = xs[k] * c;
            }
    }
}

LMU__PRIVATE void lmu__qknorm_backward(float *dx, float *dscale, const float *dy, const float *x,
                                       const float *scale, float mult, size_t N, size_t C,
                                       size_t d, size_t H)
{
    const size_t dh = d / H;
    long n;
    if (dx) {
        LMU__OMP(omp parallel for schedule(static) if (N > 1))
        for (n = 0; n < (long)N; n++) {
            size_t g, h, k;
            for (g = 0; g < C / d; g++)
                for (h = 0; h < H; h++) {
                    const size_t o = (size_t)n * C + g * d + h * dh;
                    float ss = 0.0f, r, c, dot = 0.0f;
                    if (g == 2) {
                        for (k = 0; k < dh; k++) dx[o + k] += dy[o + k];
                        continue;
                    }
                    for (k = 0; k < dh; k++) ss += x[o + k] * x[o + k];
                    r = 1.0f / sqrtf(ss + LMU__QKNORM_EPS);
                    c = g == 0 ? fabsf(scale[h]) * mult : 1.0f;
                    for (k = 0; k < dh; k++) dot += x[o + k] * r * dy[o + k];
                    for (k = 0; k < dh; k++) dx[o + k] += c * r * (dy[o + k] - x[o + k] * r * dot);
                }
        }
    }
    if (dscale) /* one sum per head, rows in order */
        for (n = 0; n < (long)N; n++) {
            size_t h, k;
            for (h = 0; h < H; h++) {
                const size_t o = (size_t)n * C + h * dh;
                float ss = 0.0f, dot = 0.0f;
                for (k = 0; k < dh; k++) ss += x[o + k] * x[o + k];
                for (k = 0; k < dh; k++) dot += x[o + k] * dy[o + k];
                dscale[h] += (scale[h] < 0 ? -mult : mult) * dot / sqrtf(ss + LMU__QKNORM_EPS);
            }
        }
}

/* out_i (nq rows, d) = sum_j softmax_j(q_i . k_j) v_j per head, every key
   to every query (q is already scaled); rows at strides lq, lk, lv, lo;
   lse (nq, H) the log-sum-exp of each row's logits, cached. nk = 0: out 0
   (attending to nothing, as the reference's safe softmax does). Two
   passes over the keys (max, then the sum) rather than a scores buffer. */
LMU__PRIVATE void lmu__xattn_forward(float *out, size_t lo, float *lse, const float *q, size_t lq,
                                     const float *k, size_t lk, const float *v, size_t lv,
                                     size_t nq, size_t nk, size_t d, size_t H)
{
    const size_t dh = d / H;
    size_t i, h, j, c;
    for (i = 0; i < nq; i++)
        for (h = 0; h < H; h++) {
            const float *qi = q + i * lq + h * dh;
            float *oi = out + i * lo + h * dh, mx = -INFINITY, sum = 0.0f;
            for (c = 0; c < dh; c++) oi[c] = 0.0f;
            if (nk == 0) {
                lse[i * H + h] = 0.0f;
                continue;
            }
            for (j = 0; j < nk; j++) {
                const float *kj = k + j * lk + h * dh;
                float s = 0.0f;
                for (c = 0; c < dh; c++) s += qi[c] * kj[c];
                if (s > mx) mx = s;
            }
            for (j = 0; j < nk; j++) {
                const float *kj = k + j * lk + h * dh, *vj = v + j * lv + h * dh;
                float s = 0.0f, e;
                for (c = 0; c < dh; c++) s += qi[c] * kj[c];
                e = expf(s - mx);
                sum += e;
                for (c = 0; c < dh; c++) oi[c] += e * vj[c];
            }
            for (c = 0; c < dh; c++) oi[c] /= sum;
            lse[i * H + h] = mx + logf(sum);
        }
}

/* p_ij = exp(q_i . k_j - lse_i), D_i = dout_i . out_i, ds_ij = p_ij
   (dout_i . v_j - D_i): dq_i += ds_ij k_j, dk_j += ds_ij q_i, dv_j +=
   p_ij dout_i (NULL: not wanted). Serial: the caller runs disjoint calls
   in parallel. */
LMU__PRIVATE void lmu__xattn_backward(float *dq, float *dk, float *dv, const float *dout,
                                      size_t ldo, const float *out, const float *lse,
                                      const float *q, size_t lq, const float *k, size_t lk,
                                      const float *v, size_t lv, size_t nq, size_t nk, size_t d,
                                      size_t H)
{
    const size_t dh = d / H;
    size_t i, h, j, c;
    if (nk == 0) return;
    for (i = 0; i < nq; i++)
        for (h = 0; h < H; h++) {
            const float *qi = q + i * lq + h * dh, *gi = dout + i * ldo + h * dh;
            const float *oi = out + i * ldo + h * dh;
            float D = 0.0f, L = lse[i * H + h];
            for (c = 0; c < dh; c++) D += gi[c] * oi[c];
            for (j = 0; j < nk; j++) {
                const float *kj = k + j * lk + h * dh, *vj = v + j * lv + h * dh;
                float s = 0.0f, dp = 0.0f, p, ds;
                for (c = 0; c < dh; c++) s += qi[c] * kj[c], dp += gi[c] * vj[c];
                p = expf(s - L);
                ds = p * (dp - D);
                if (dq)
                    for (c = 0; c < dh; c++) dq[i * lq + h * dh + c] += ds * kj[c];
                if (dk)
                    for (c = 0; c < dh; c++) dk[j * lk + h * dh + c] += ds * qi[c];
                if (dv)
                    for (c = 0; c < dh; c++) dv[j * lv + h * dh + c] += p * gi[c];
            }
        }
}

/* y = qknorm(x) on the tape: x (..., C), C = d or 3 d (see the kernel),
   scale (H). */
LMU__PRIVATE lmu_result lmu__tape_qknorm(lmu_tape *t, int x, int scale, int d, int n_head,
                                         float mult, int *out)
{
    const lmu_tensor *tx;
    int in[2], shape[LMU_TENSOR_MAX_DIMS], nd, k;
    size_t C;
    lmu_tape_rec *rec = NULL;
    lmu_result r;
    in[0] = x, in[1] = scale;
    for (k = 0; k < 2; k++)
        if ((r = lmu__tape_arg(t, in[k], "qk_norm", k ? "scale" : "x")) != LMU_OK) return r;
    tx = &t->tensors[x];
    C = lmu__tape_last(tx);
    if (n_head < 1 || d % n_head || (C != (size_t)d && C != 3 * (size_t)d) ||
        t->tensors[scale].size != (size_t)n_head)
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "qk_norm: x (..., d or 3 d), scale (n_head)");
    nd = tx->ndim;
    for (k = 0; k < nd; k++) shape[k] = tx->shape[k];
    if ((r = lmu__tape_fused(t, LMU_OP_QK_NORM, 2, in, nd, shape, out, &rec)) != LMU_OK) return r;
    rec->ip[0] = d, rec->ip[1] = n_head, rec->fp[0] = mult;
    lmu__qknorm_forward(lmu__tape_f32(t, *out), lmu__tape_f32(t, x), lmu__tape_f32(t, scale), mult,
                        t->tensors[x].size / C, C, (size_t)d, (size_t)n_head);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_qknorm_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    const lmu_tensor *tx = &t->tensors[rec->in[0]];
    size_t C = lmu__tape_last(tx);
    lmu__qknorm_backward(lmu__tape_g32(t, rec->in[0]), lmu__tape_g32(t, rec->in[1]),
                         lmu__tape_g32(t, rec->out), lmu__tape_f32(t, rec->in[0]),
                         lmu__tape_f32(t, rec->in[1]), rec->fp[0], tx->size / C, C,
                         (size_t)rec->ip[0], (size_t)rec->ip[1]);
    return LMU_OK;
}

/* out (B, T, d): the queries q (B, T, d) of block g (rows g W .. g W + W -
   1, the last block may be short) attend to the G rows of kv (B, nblk,
   G, 2 d), k then v, of that block; nblk = ceil(T / W). The tokens' cross
   attention to the state. */
LMU__PRIVATE lmu_result lmu__tape_block_xattn(lmu_tape *t, int q, int kv, int n_head, int W,
                                              int *out)
{
    const lmu_tensor *tq, *tk;
    int in[2], shape[3], B, T, d, G, nblk, lse, k;
    lmu_tape_rec *rec;
    lmu_result r;
    long bg;
    in[0] = q, in[1] = kv;
    for (k = 0; k < 2; k++)
        if ((r = lmu__tape_arg(t, in[k], "block_xattn", k ? "kv" : "q")) != LMU_OK) return r;
    tq = &t->tensors[q], tk = &t->tensors[kv];
    B = tq->shape[0], T = tq->shape[1], d = tq->shape[2];
    nblk = W > 0 ? (T + W - 1) / W : 0;
    G = tk->ndim == 4 ? tk->shape[2] : 0;
    if (tq->ndim != 3 || W < 1 || n_head < 1 || d % n_head || tk->ndim != 4 ||
        tk->shape[0] != B || tk->shape[1] != nblk || tk->shape[3] != 2 * d)
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "block_xattn: q (B, T, d), kv (B, ceil(T/W), G, 2 d)");
    shape[0] = B, shape[1] = T, shape[2] = d;
    if ((r = lmu__tape_fused(t, LMU_OP_BLOCK_XATTN, 2, in, 3, shape, out, &rec)) != LMU_OK ||
        (r = lmu__tape_cache(t, (size_t)B * (size_t)T * (size_t)n_head, &lse)) != LMU_OK)
        return r;
    rec->ip[0] = B, rec->ip[1] = T, rec->ip[2] = d, rec->ip[3] = n_head, rec->ip[4] = W;
    rec->ip[5] = G, rec->cache[0] = lse;
    {
        float *o = lmu__tape_f32(t, *out), *ls = lmu__tape_f32(t, lse);
        const float *qp = lmu__tape_f32(t, q), *kp = lmu__tape_f32(t, kv);
        const size_t D = (size_t)d, H = (size_t)n_head;
        LMU__OMP(omp parallel for schedule(static))
        for (bg = 0; bg < (long)B * nblk; bg++) {
            const size_t b = (size_t)bg / (size_t)nblk, g = (size_t)bg % (size_t)nblk;
            const size_t t0 = g * (size_t)W, nq = (size_t)T - t0 < (size_t)W ? (size_t)T - t0 : (size_t)W;
            const size_t row = b * (size_t)T + t0;
            const float *kb = kp + ((size_t)bg * (size_t)G) * 2 * D;
            lmu__xattn_forward(o + row * D, D, ls + row * H, qp + row * D, D, kb, 2 * D, kb + D,
                               2 * D, nq, (size_t)G, D, H);
        }
    }
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_block_xattn_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    const int B = rec->ip[0], T = rec->ip[1], W = rec->ip[4], G = rec->ip[5];
    const int nblk = (T + W - 1) / W;
    const size_t D = (size_t)rec->ip[2], H = (size_t)rec->ip[3];
    float *dq = lmu__tape_g32(t, rec->in[0]), *dkv = lmu__tape_g32(t, rec->in[1]);
    const float *dout = lmu__tape_g32(t, rec->out), *o = lmu__tape_f32(t, rec->out);
    const float *qp = lmu__tape_f32(t, rec->in[0]), *kp = lmu__tape_f32(t, rec->in[1]);
    const float *ls = lmu__tape_f32(t, rec->cache[0]);
    long bg;
    LMU__OMP(omp parallel for schedule(static))
    for (bg = 0; bg < (long)B * nblk; bg++) {
        const size_t b = (size_t)bg / (size_t)nblk, g = (size_t)bg % (size_t)nblk;
        const size_t t0 = g * (size_t)W, nq = (size_t)T - t0 < (size_t)W ? (size_t)T - t0 : (size_t)W;
        const size_t row = b * (size_t)T + t0, ko = (size_t)bg * (size_t)G * 2 * D;
        lmu__xattn_backward(dq ? dq + row * D : NULL, dkv ? dkv + ko : NULL,
                            dkv ? dkv + ko + D : NULL, dout + row * D, D, o + row * D,
                            ls + row * H, qp + row * D, D, kp + ko, 2 * D, kp + ko + D, 2 * D, nq,
                            (size_t)G, D, H);
    }
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* the block-recurrent state (>>mixer-brt): the recurrence over blocks     */
/* ---------------------------------------------------------------------- */
/* B sequences, each T tokens in nblk = ceil(T / W) blocks; S state
   vectors of width d, H heads, F the state MLP's width. s_0 = state0 for
   every sequence; block g reads s_g (its "head": u = LN_s(s_g) + pos,
   r = u Wqkv^T, r2 = u Wq2^T, both qk-normalised: q k v and the cross
   query q2) and, but for the last block, updates it (the reference's
   transformer_layer with the recurrent tbase):
       a   = [attend(q, k, v of the state), attend(q2, k, v of the tokens
             of blocks g - 1 and g)]                            (S, 2 d)
       y   = a Wo^T + bo
       s'  = gate(s_g, y; a)
       s_{g+1} = gate2(s', MLP(LN_f s'); hidden)   (s' with brt_skip)
   The op's output is each block's k, v of s_g (B, nblk, S, 2 d), which
   the block's tokens cross-attend to (lmu__tape_block_xattn). Every
   intermediate of a block is kept (lmu__brt_buf) and backward runs the
   blocks in reverse: BPTT over the whole sequence. The last block's
   update is never computed in training: no token reads its result. */
typedef struct lmu__brt_dims {
    size_t B, T, d, H, S, F, W, nblk;
    int lstm, mlp;
} lmu__brt_dims;

/* a layer's state-side weights, values or grads (NULL: none wanted):
   X(member, id field of lmu_layer_ids) */
#define LMU__BRT_WEIGHTS(X)                                                    \
    X(s0, brt_s0) X(spos, brt_spos) X(ln_w, brt_ln_s_w) X(ln_b, brt_ln_s_b)     \
    X(sqkv, brt_sqkv_w) X(sq2, brt_sq2_w) X(sc, brt_s_scale) X(sc2, brt_s_scale2) \
    X(proj_w, brt_sproj_w) X(proj_b, brt_sproj_b) X(g_b, brt_g_b)             \
    X(gi_w, brt_gi_w) X(gi_b, brt_gi_b) X(gf_w, brt_gf_w) X(gf_b, brt_gf_b)     \
    X(lnf_w, brt_ln_f_w) X(lnf_b, brt_ln_f_b) X(fc_w, brt_fc_w) X(fc_b, brt_fc_b) \
    X(fcp_w, brt_fcp_w) X(fcp_b, brt_fcp_b) X(g2_b, brt_g2_b) X(g2i_w, brt_g2i_w) \
    X(g2i_b, brt_g2i_b) X(g2f_w, brt_g2f_w) X(g2f_b, brt_g2f_b)

typedef struct lmu__brt_w {
#define LMU__BRT_W_MEMBER(member, id) float *member;
    LMU__BRT_WEIGHTS(LMU__BRT_W_MEMBER)
#undef LMU__BRT_W_MEMBER
} lmu__brt_w;

/* A block's intermediates, each (R = B S rows, its width), one after the
   other: X(member, width in units of d, of F, of H, plain floats). */
#define LMU__BRT_BUFS(X)                                                       \
    X(s, 1, 0, 0, 0) X(mu1, 0, 0, 0, 1) X(rs1, 0, 0, 0, 1) X(u, 1, 0, 0, 0)     \
    X(r, 3, 0, 0, 0) X(r2, 1, 0, 0, 0) X(rn, 3, 0, 0, 0) X(r2n, 1, 0, 0, 0)     \
    X(lse1, 0, 0, 1, 0) X(lse2, 0, 0, 1, 0) X(cat, 2, 0, 0, 0) X(yo, 1, 0, 0, 0) \
    X(gf, 1, 0, 0, 0) X(gi, 1, 0, 0, 0) X(s1, 1, 0, 0, 0) X(mu2, 0, 0, 0, 1)    \
    X(rs2, 0, 0, 0, 1) X(v0, 1, 0, 0, 0) X(hp, 0, 1, 0, 0) X(hh, 0, 1, 0, 0)    \
    X(z, 1, 0, 0, 0) X(g2f, 1, 0, 0, 0) X(g2i, 1, 0, 0, 0)
/* backward's work for one block, the same way */
#define LMU__BRT_GRADS(X)                                                      \
    X(ds, 1, 0, 0, 0) X(dsn, 1, 0, 0, 0) X(ds1, 1, 0, 0, 0) X(dyo, 1, 0, 0, 0)  \
    X(dcat, 2, 0, 0, 0) X(dpf, 1, 0, 0, 0) X(dpi, 1, 0, 0, 0) X(dz, 1, 0, 0, 0)  \
    X(dhh, 0, 1, 0, 0) X(dhp, 0, 1, 0, 0) X(dv0, 1, 0, 0, 0) X(drn, 3, 0, 0, 0)  \
    X(dr2n, 1, 0, 0, 0) X(dr, 3, 0, 0, 0) X(dr2, 1, 0, 0, 0) X(du, 1, 0, 0, 0)

typedef struct lmu__brt_buf {
#define LMU__BRT_BUF_MEMBER(member, nd, nf, nh, n1) float *member;
    LMU__BRT_BUFS(LMU__BRT_BUF_MEMBER)
    LMU__BRT_GRADS(LMU__BRT_BUF_MEMBER)
#undef LMU__BRT_BUF_MEMBER
} lmu__brt_buf;

/* floats per state row of a block's intermediates (grads: its work) */
LMU__PRIVATE size_t lmu__brt_row_floats(const lmu__brt_dims *D, int grads)
{
    size_t n = 0;
#define LMU__BRT_BUF_SIZE(member, nd, nf, nh, n1) n += nd * D->d + nf * D->F + nh * D->H + n1;
    if (!grads) {
        LMU__BRT_BUFS(LMU__BRT_BUF_SIZE)
    } else {
        LMU__BRT_GRADS(LMU__BRT_BUF_SIZE)
    }
#undef LMU__BRT_BUF_SIZE
    return n;
}

/* points b's intermediates (or its grads) into p, R rows each */
LMU__PRIVATE void lmu__brt_buf_at(lmu__brt_buf *b, float *p, const lmu__brt_dims *D, size_t R,
                                  int grads)
{
#define LMU__BRT_BUF_AT(member, nd, nf, nh, n1)                                \
    b->member = p, p += R * (nd * D->d + nf * D->F + nh * D->H + n1);
    if (!grads) {
        LMU__BRT_BUFS(LMU__BRT_BUF_AT)
    } else {
        LMU__BRT_GRADS(LMU__BRT_BUF_AT)
    }
#undef LMU__BRT_BUF_AT
}

LMU__KERN_INLINE float lmu__sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* a block's head: from b->s (R rows) its q, k, v and q2 (rn, r2n) */
LMU__PRIVATE lmu_result lmu__brt_head(struct lmu_gemm_ws *ws, const lmu__brt_w *w,
                                      const lmu__brt_dims *D, size_t R, lmu__brt_buf *b)
{
    const size_t d = D->d;
    size_t i, c;
    lmu_result r;
    lmu__layernorm_forward(b->u, b->mu1, b->rs1, b->s, w->ln_w, w->ln_b, R, d, 1e-5f);
    for (i = 0; i < R; i++)
        for (c = 0; c < d; c++) b->u[i * d + c] += w->spos[(i % D->S) * d + c];
    if ((r = lmu__linear_forward(ws, 0, b->r, b->u, w->sqkv, NULL, R, d, 3 * d, 0)) != LMU_OK ||
        (r = lmu__linear_forward(ws, 0, b->r2, b->u, w->sq2, NULL, R, d, d, 0)) != LMU_OK)
        return r;
    lmu__qknorm_forward(b->rn, b->r, w->sc, 1.0f, R, 3 * d, d, D->H);
    lmu__qknorm_forward(b->r2n, b->r2, w->sc2, 1.0f, R, d, d, D->H);
    return LMU_OK;
}

/* keys of block g's update: the tokens of blocks g - 1 and g */
LMU__PRIVATE void lmu__brt_keys(const lmu__brt_dims *D, size_t g, size_t *k0, size_t *k1)
{
    *k0 = g > 0 ? (g - 1) * D->W : 0;
    *k1 = (g + 1) * D->W < D->T ? (g + 1) * D->W : D->T;
}

/* a block's update: b->s and its head to snext (R rows); tok (B, T, 3 d)
   the tokens' normalised q, k, v (row b T + t), tokT = T (the rows a
   sequence has in tok: T in training, the ring's 2 W in generation,
   where k0, k1 index the ring) */
LMU__PRIVATE lmu_result lmu__brt_update(struct lmu_gemm_ws *ws, const lmu__brt_w *w,
                                        const lmu__brt_dims *D, size_t R, lmu__brt_buf *b,
                                        const float *tok, size_t tokT, size_t k0, size_t k1,
                                        float *snext)
{
    const size_t d = D->d, S = D->S, H = D->H, F = D->F;
    size_t i, c;
    long n;
    lmu_result r;
    LMU__OMP(omp parallel for schedule(static) if (R > S))
    for (n = 0; n < (long)(R / S); n++) {
        const size_t o = (size_t)n * S;
        const float *kt = tok + ((size_t)n * tokT + k0) * 3 * d;
        lmu__xattn_forward(b->cat + o * 2 * d, 2 * d, b->lse1 + o * H, b->rn + o * 3 * d, 3 * d,
                           b->rn + o * 3 * d + d, 3 * d, b->rn + o * 3 * d + 2 * d, 3 * d, S, S, d,
                           H);
        lmu__xattn_forward(b->cat + o * 2 * d + d, 2 * d, b->lse2 + o * H, b->r2n + o * d, d,
                           kt + d, 3 * d, kt + 2 * d, 3 * d, S, k1 - k0, d, H);
    }
    if ((r = lmu__linear_forward(ws, 0, b->yo, b->cat, w->proj_w, w->proj_b, R, 2 * d, d, 0)) !=
        LMU_OK)
        return r;
    if (D->lstm) {
        if ((r = lmu__linear_forward(ws, 0, b->gf, b->cat, w->gf_w, w->gf_b, R, 2 * d, d, 0)) !=
                LMU_OK ||
            (r = lmu__linear_forward(ws, 0, b->gi, b->cat, w->gi_w, w->gi_b, R, 2 * d, d, 0)) !=
                LMU_OK)
            return r;
        for (i = 0; i < R * d; i++) { /* biased to remember, the reference's +1, -1 */
            b->gf[i] = lmu__sigmoid(b->gf[i] + 1.0f), b->gi[i] = lmu__sigmoid(b->gi[i] - 1.0f);
            b->s1[i] = b->s[i] * b->gf[i] + b->yo[i] * b->gi[i];
        }
    } else
        for (i = 0; i < R; i++)
            for (c = 0; c < d; c++) {
                const float g = lmu__sigmoid(w->g_b[c]);
                b->s1[i * d + c] = b->s[i * d + c] * g + b->yo[i * d + c] * (1.0f - g);
            }
    if (!D->mlp) {
        memcpy(snext, b->s1, R * d * sizeof(float));
        return LMU_OK;
    }
    lmu__layernorm_forward(b->v0, b->mu2, b->rs2, b->s1, w->lnf_w, w->lnf_b, R, d, 1e-5f);
    if ((r = lmu__linear_forward(ws, 0, b->hp, b->v0, w->fc_w, w->fc_b, R, d, F, 0)) != LMU_OK)
        return r;
    lmu__gelu_forward(b->hh, b->hp, R * F);
    if ((r = lmu__linear_forward(ws, 0, b->z, b->hh, w->fcp_w, w->fcp_b, R, F, d, 0)) != LMU_OK)
        return r;
    if (D->lstm) {
        if ((r = lmu__linear_forward(ws, 0, b->g2f, b->hh, w->g2f_w, w->g2f_b, R, F, d, 0)) !=
                LMU_OK ||
            (r = lmu__linear_forward(ws, 0, b->g2i, b->hh, w->g2i_w, w->g2i_b, R, F, d, 0)) !=
                LMU_OK)
            return r;
        for (i = 0; i < R * d; i++) {
            b->g2f[i] = lmu__sigmoid(b->g2f[i] + 1.0f), b->g2i[i] = lmu__sigmoid(b->g2i[i] - 1.0f);
            snext[i] = b->s1[i] * b->g2f[i] + b->z[i] * b->g2i[i];
        }
    } else
        for (i = 0; i < R; i++)
            for (c = 0; c < d; c++) {
                const float g = lmu__sigmoid(w->g2_b[c]);
                snext[i * d + c] = b->s1[i * d + c] * g + b->z[i * d + c] * (1.0f - g);
            }
    return LMU_OK;
}

/* d of a gate s_out = s g + y (1 - g) (fixed; dgb += ... per column) or
   s f + y i (lstm: dpf, dpi the pre-sigmoid grads); ds, dy += */
LMU__PRIVATE void lmu__brt_gate_backward(float *ds, float *dy, float *dgb, float *dpf, float *dpi,
                                         const float *dout, const float *s, const float *y,
                                         const float *gb, const float *f, const float *ig,
                                         size_t R, size_t d, int lstm)
{
    size_t i, c;
    if (lstm) {
        for (i = 0; i < R * d; i++) {
            ds[i] += dout[i] * f[i];
            dy[i] += dout[i] * ig[i];
            dpf[i] = dout[i] * s[i] * f[i] * (1.0f - f[i]);
            dpi[i] = dout[i] * y[i] * ig[i] * (1.0f - ig[i]);
        }
        return;
    }
    for (i = 0; i < R; i++)
        for (c = 0; c < d; c++) {
            const float g = lmu__sigmoid(gb[c]), o = dout[i * d + c];
            ds[i * d + c] += o * g;
            dy[i * d + c] += o * (1.0f - g);
            if (dgb) dgb[c] += o * (s[i * d + c] - y[i * d + c]) * g * (1.0f - g);
        }
}

/* backward of lmu__brt_update: b->dsn (grad of snext) into b->ds, b->drn,
   b->dr2n (all +=), dtok (+=, NULL: not wanted), gw the weights' grads */
LMU__PRIVATE lmu_result lmu__brt_update_backward(struct lmu_gemm_ws *ws, const lmu__brt_w *w,
                                                 const lmu__brt_w *gw, const lmu__brt_dims *D,
                                                 size_t R, lmu__brt_buf *b, const float *tok,
                                                 float *dtok, size_t k0, size_t k1)
{
    const size_t d = D->d, S = D->S, H = D->H, F = D->F;
    long n;
    lmu_result r = LMU_OK;
    memset(b->ds1, 0, R * d * sizeof(float));
    memset(b->dyo, 0, R * d * sizeof(float));
    memset(b->dcat, 0, R * 2 * d * sizeof(float));
    if (D->mlp) {
        memset(b->dz, 0, R * d * sizeof(float));
        memset(b->dhh, 0, R * F * sizeof(float));
        memset(b->dhp, 0, R * F * sizeof(float));
        memset(b->dv0, 0, R * d * sizeof(float));
        lmu__brt_gate_backward(b->ds1, b->dz, gw->g2_b, b->dpf, b->dpi, b->dsn, b->s1, b->z,
                               w->g2_b, b->g2f, b->g2i, R, d, D->lstm);
        if (D->lstm &&
            ((r = lmu__linear_backward(ws, 0, b->dhh, gw->g2f_w, gw->g2f_b, b->dpf, b->hh,
                                       w->g2f_w, R, F, d, 0)) != LMU_OK ||
             (r = lmu__linear_backward(ws, 0, b->dhh, gw->g2i_w, gw->g2i_b, b->dpi, b->hh,
                                       w->g2i_w, R, F, d, 0)) != LMU_OK))
            return r;
        if ((r = lmu__linear_backward(ws, 0, b->dhh, gw->fcp_w, gw->fcp_b, b->dz, b->hh, w->fcp_w,
                                      R, F, d, 0)) != LMU_OK)
            return r;
        lmu__gelu_backward(b->dhp, b->dhh, b->hp, R * F);
        if ((r = lmu__linear_backward(ws, 0, b->dv0, gw->fc_w, gw->fc_b, b->dhp, b->v0, w->fc_w, R,
                                      d, F, 0)) != LMU_OK)
            return r;
        lmu__layernorm_backward(b->ds1, gw->lnf_w, gw->lnf_b, b->dv0, b->s1, b->mu2, b->rs2,
                                w->lnf_w, R, d);
    } else
        memcpy(b->ds1, b->dsn, R * d * sizeof(float));
    lmu__brt_gate_backward(b->ds, b->dyo, gw->g_b, b->dpf, b->dpi, b->ds1, b->s, b->yo, w->g_b,
                           b->gf, b->gi, R, d, D->lstm);
    if (D->lstm &&
        ((r = lmu__linear_backward(ws, 0, b->dcat, gw->gf_w, gw->gf_b, b->dpf, b->cat, w->gf_w, R,
                                   2 * d, d, 0)) != LMU_OK ||
         (r = lmu__linear_backward(ws, 0, b->dcat, gw->gi_w, gw->gi_b, b->dpi, b->cat, w->gi_w, R,
                                   2 * d, d, 0)) != LMU_OK))
        return r;
    if ((r = lmu__linear_backward(ws, 0, b->dcat, gw->proj_w, gw->proj_b, b->dyo, b->cat,
                                  w->proj_w, R, 2 * d, d, 0)) != LMU_OK)
        return r;
    /* a sequence's rows (its state, its tokens) are its own: parallel */
    LMU__OMP(omp parallel for schedule(static) if (R > S))
    for (n = 0; n < (long)(R / S); n++) {
        const size_t o = (size_t)n * S, to = ((size_t)n * D->T + k0) * 3 * d;
        lmu__xattn_backward(b->drn + o * 3 * d, b->drn + o * 3 * d + d, b->drn + o * 3 * d + 2 * d,
                            b->dcat + o * 2 * d, 2 * d, b->cat + o * 2 * d, b->lse1 + o * H,
                            b->rn + o * 3 * d, 3 * d, b->rn + o * 3 * d + d, 3 * d,
                            b->rn + o * 3 * d + 2 * d, 3 * d, S, S, d, H);
        lmu__xattn_backward(b->dr2n + o * d, dtok ? dtok + to + d : NULL,
                            dtok ? dtok + to + 2 * d : NULL, b->dcat + o * 2 * d + d, 2 * d,
                            b->cat + o * 2 * d + d, b->lse2 + o * H, b->r2n + o * d, d,
                            tok + to + d, 3 * d, tok + to + 2 * d, 3 * d, S, k1 - k0, d, H);
    }
    return LMU_OK;
}

/* backward of lmu__brt_head: b->drn, b->dr2n into b->ds (+=) */
LMU__PRIVATE lmu_result lmu__brt_head_backward(struct lmu_gemm_ws *ws, const lmu__brt_w *w,
                                               const lmu__brt_w *gw, const lmu__brt_dims *D,
                                               size_t R, lmu__brt_buf *b)
{
    const size_t d = D->d;
    size_t i, c;
    lmu_result r;
    memset(b->dr, 0, R * 3 * d * sizeof(float));
    memset(b->dr2, 0, R * d * sizeof(float));
    memset(b->du, 0, R * d * sizeof(float));
    lmu__qknorm_backward(b->dr, gw->sc, b->drn, b->r, w->sc, 1.0f, R, 3 * d, d, D->H);
    lmu__qknorm_backward(b->dr2, gw->sc2, b->dr2n, b->r2, w->sc2, 1.0f, R, d, d, D->H);
    if ((r = lmu__linear_backward(ws, 0, b->du, gw->sqkv, NULL, b->dr, b->u, w->sqkv, R, d, 3 * d,
                                  0)) != LMU_OK ||
        (r = lmu__linear_backward(ws, 0, b->du, gw->sq2, NULL, b->dr2, b->u, w->sq2, R, d, d, 0)) !=
            LMU_OK)
        return r;
    if (gw->spos)
        for (i = 0; i < R; i++)
            for (c = 0; c < d; c++) gw->spos[(i % D->S) * d + c] += b->du[i * d + c];
    lmu__layernorm_backward(b->ds, gw->ln_w, gw->ln_b, b->du, b->s, b->mu1, b->rs1, w->ln_w, R, d);
    return LMU_OK;
}

/* the weights' values (grad 0) or grads (1) on the tape */
LMU__PRIVATE void lmu__brt_weights(lmu_tape *t, const lmu_layer_ids *L, int grad, lmu__brt_w *w)
{
#define LMU__BRT_W_GET(member, id)                                             \
    w->member = L->id < 0 ? NULL : grad ? lmu__tape_g32(t, L->id) : lmu__tape_f32(t, L->id);
    LMU__BRT_WEIGHTS(LMU__BRT_W_GET)
#undef LMU__BRT_W_GET
}

LMU__PRIVATE void lmu__brt_dims_of(lmu__brt_dims *D, const lmu_config *c, size_t B, size_t T)
{
    D->B = B, D->T = T, D->d = (size_t)c->d_model, D->H = (size_t)c->n_head;
    D->S = (size_t)c->n_state, D->F = (size_t)c->d_ff, D->W = (size_t)c->window;
    D->nblk = (T + D->W - 1) / D->W;
    D->lstm = c->brt_gate == LMU_BRT_GATE_LSTM, D->mlp = !c->brt_skip;
}

/* kv (B, nblk, S, 2 d) = every block's incoming state's k, v from the
   tokens' qk-normalised qkv (B, T, 3 d); L the layer's ids (never
   moves: the model's), c its config. Truncated backpropagation: s_in
   (NULL: state0) is sequence n's first state at s_in + n ld, (S, d), a
   constant (no grad reaches it, nor state0); s_out (NULL: not wanted)
   gets the state after the last block the same way, which needs T a
   multiple of W (the caller checks). s_in may equal s_out. */
LMU__PRIVATE lmu_result lmu__tape_brt_state(lmu_tape *t, int qkv, const lmu_layer_ids *L,
                                            const lmu_config *c, const float *s_in, float *s_out,
                                            size_t ld, int *out)
{
    const lmu_tensor *x;
    lmu__brt_dims D;
    lmu__brt_w w;
    lmu__brt_buf b;
    int in[2], shape[4], cache, work;
    size_t R, g, n, s, chunk;
    lmu_tape_rec *rec;
    lmu_result r;
    if ((r = lmu__tape_arg(t, qkv, "brt_state", "qkv")) != LMU_OK) return r;
    x = &t->tensors[qkv];
    if (x->ndim != 3 || x->shape[2] != 3 * c->d_model || c->n_state < 1 || c->window < 1)
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "brt_state: qkv (B, T, 3 d), n_state, window >= 1");
    lmu__brt_dims_of(&D, c, (size_t)x->shape[0], (size_t)x->shape[1]);
    R = D.B * D.S;
    chunk = R * lmu__brt_row_floats(&D, 0);
    in[0] = qkv, in[1] = L->brt_s0;
    shape[0] = (int)D.B, shape[1] = (int)D.nblk, shape[2] = (int)D.S, shape[3] = 2 * (int)D.d;
    if ((r = lmu__tape_fused(t, LMU_OP_BRT_STATE, 2, in, 4, shape, out, &rec)) != LMU_OK ||
        (r = lmu__tape_cache(t, D.nblk * chunk, &cache)) != LMU_OK ||
        (r = lmu__tape_cache(t, R * lmu__brt_row_floats(&D, 1), &work)) != LMU_OK)
        return r;
    if (!t->gemm_ws) return lmu__tape_fail(t, LMU_ERR_STATE, "brt_state: needs gemm_ws");
    rec->cache[0] = cache, rec->cache[1] = work, rec->aux = L;
    rec->ip[0] = (int)D.B, rec->ip[1] = (int)D.T;
    rec->ip[2] = c->d_model, rec->ip[3] = c->n_head, rec->ip[4] = c->n_state;
    rec->ip[5] = c->window, rec->ip[6] = c->d_ff;
    rec->ip[7] = (int)D.lstm | (int)D.mlp << 1 | (s_in != NULL) << 2;
    lmu__brt_weights(t, L, 0, &w);
    for (g = 0; g < D.nblk; g++) {
        float *kv = lmu__tape_f32(t, *out);
        lmu__brt_buf_at(&b, lmu__tape_f32(t, cache) + g * chunk, &D, R, 0);
        if (g == 0)
            for (n = 0; n < D.B; n++)
                memcpy(b.s + n * D.S * D.d, s_in ? s_in + n * ld : w.s0, D.S * D.d * sizeof(float));
        if ((r = lmu__brt_head(t->gemm_ws, &w, &D, R, &b)) != LMU_OK)
            return lmu__tape_fail(t, r, "brt_state: matmul failed");
        for (n = 0; n < D.B; n++)
            for (s = 0; s < D.S; s++)
                memcpy(kv + ((n * D.nblk + g) * D.S + s) * 2 * D.d, b.rn + (n * D.S + s) * 3 * D.d + D.d,
                       2 * D.d * sizeof(float));
        if (g + 1 < D.nblk) {
            size_t k0, k1;
            float *next = lmu__tape_f32(t, cache) + (g + 1) * chunk; /* its s comes first */
            lmu__brt_keys(&D, g, &k0, &k1);
            if ((r = lmu__brt_update(t->gemm_ws, &w, &D, R, &b, lmu__tape_f32(t, qkv), D.T, k0, k1,
                                     next)) != LMU_OK)
                return lmu__tape_fail(t, r, "brt_state: matmul failed");
        } else if (s_out) { /* the next segment's: into backward's work, unused until then */
            size_t k0, k1;
            lmu__brt_buf wb;
            lmu__brt_buf_at(&wb, lmu__tape_f32(t, work), &D, R, 1);
            lmu__brt_keys(&D, g, &k0, &k1);
            if ((r = lmu__brt_update(t->gemm_ws, &w, &D, R, &b, lmu__tape_f32(t, qkv), D.T, k0, k1,
                                     wb.ds)) != LMU_OK)
                return lmu__tape_fail(t, r, "brt_state: matmul failed");
            for (n = 0; n < D.B; n++)
                memcpy(s_out + n * ld, wb.ds + n * D.S * D.d, D.S * D.d * sizeof(float));
        }
    }
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_brt_state_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    const lmu_layer_ids *L = (const lmu_layer_ids *)rec->aux;
    const float *dkv = lmu__tape_g32(t, rec->out), *tok = lmu__tape_f32(t, rec->in[0]);
    float *dtok = lmu__tape_g32(t, rec->in[0]), *cache = lmu__tape_f32(t, rec->cache[0]);
    lmu__brt_dims D;
    lmu__brt_w w, gw;
    lmu__brt_buf b, wb;
    size_t R, chunk, g, n, s, c, k0, k1;
    lmu_result r;
    D.B = (size_t)rec->ip[0], D.T = (size_t)rec->ip[1], D.d = (size_t)rec->ip[2];
    D.H = (size_t)rec->ip[3], D.S = (size_t)rec->ip[4], D.W = (size_t)rec->ip[5];
    D.F = (size_t)rec->ip[6], D.lstm = rec->ip[7] & 1, D.mlp = rec->ip[7] >> 1 & 1;
    D.nblk = (D.T + D.W - 1) / D.W;
    R = D.B * D.S, chunk = R * lmu__brt_row_floats(&D, 0);
    lmu__brt_weights(t, L, 0, &w);
    lmu__brt_weights(t, L, 1, &gw);
    lmu__brt_buf_at(&wb, lmu__tape_f32(t, rec->cache[1]), &D, R, 1);
    memset(wb.dsn, 0, R * D.d * sizeof(float));
    for (g = D.nblk; g-- > 0;) {
        lmu__brt_buf_at(&b, cache + g * chunk, &D, R, 0);
#define LMU__BRT_GRAD_COPY(member, nd, nf, nh, n1) b.member = wb.member;
        LMU__BRT_GRADS(LMU__BRT_GRAD_COPY)
#undef LMU__BRT_GRAD_COPY
        memset(b.ds, 0, R * D.d * sizeof(float));
        memset(b.drn, 0, R * 3 * D.d * sizeof(float));
        memset(b.dr2n, 0, R * D.d * sizeof(float));
        if (g + 1 < D.nblk) {
            lmu__brt_keys(&D, g, &k0, &k1);
            if ((r = lmu__brt_update_backward(t->gemm_ws, &w, &gw, &D, R, &b, tok, dtok, k0, k1)) !=
                LMU_OK)
                return lmu__tape_fail(t, r, "brt_state backward: matmul failed");
        }
        for (n = 0; n < D.B; n++) /* the tokens' cross attention read k, v */
            for (s = 0; s < D.S; s++) {
                const float *src = dkv + ((n * D.nblk + g) * D.S + s) * 2 * D.d;
                float *dst = b.drn + (n * D.S + s) * 3 * D.d + D.d;
                for (c = 0; c < 2 * D.d; c++) dst[c] += src[c];
            }
        if ((r = lmu__brt_head_backward(t->gemm_ws, &w, &gw, &D, R, &b)) != LMU_OK)
            return lmu__tape_fail(t, r, "brt_state backward: matmul failed");
        memcpy(wb.dsn, b.ds, R * D.d * sizeof(float));
    }
    if (gw.s0 && !(rec->ip[7] & 4)) /* every sequence started from state0 */
        for (n = 0; n < D.B; n++)
            for (c = 0; c < D.S * D.d; c++) gw.s0[c] += wb.dsn[n * D.S * D.d + c];
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* implicit self-attention: the convolution (docs/MODEL.md section 2)           */
/* ---------------------------------------------------------------------- */
/* B = batch, n = positions, d = channels, q = LMU order, qp = q',
   N = nfft (plan length, power of two >= 2n), S = N + 2 floats per
   spectrum (N/2+1 interleaved complex bins, lmu_fft's real layout), and
   ir = i * qp + r indexes the 3 qp kernel rows (i in q, k, v).

   U     [B, n, d]          input, position-major like every activation
   Hspec [q, S]             spectra of H's rows, zero-padded to N (frozen;
                            lmu_fft_conv_spectrum of each row of H)
   L     [3, qp, q]         learned; bias [3, qp]
   Z     [B, n, 3, qp, d]   output, i.e. [b][t][i][r][c]: one position's
                            3 qp x d block is contiguous, which is what the
                            per-position attention reads (lmu__iattn_attn_*),
                            and the channel is fastest so rows of d floats
                            are written whole.
   cache: Uspec [B, d, S] (channel spectra) then Htil [3 qp, S] = L Hspec,
          both reused by backward.

   The FFT length N >= 2n makes the circular products exact linear ones:
   a causal convolution (lag 0 included) forward, and in backward a
   correlation (multiply by the conjugate spectrum), since every lag t - j
   of either sign lands in the zero padding or in 0..n-1.
   Forward: parallel over (b, ir); results do not depend on nparts.
   Backward: parallel over (b, channel), in blocks of up to 16 channels;
   dU is owned per channel, dL and db are summed per part and reduced in
   part order, so they depend on nparts (not on the thread count).
   Z is position-major and an FFT works on one signal at a time, so both
   directions transpose 16 x 16 blocks between the two (SIMD builds). */
#define LMU__IATTN_CB 16

#if defined(LMU__GEMM_AVX512)
#define LMU__ISA_AVX512 1
#endif

/* Forward's channel group: the signals transposed into Z together. With
   SIMD, wide enough that Z's rows are written in long runs; the portable
   loop keeps to 16 rows at a time, which its caches handle best. */
#ifndef LMU__IATTN_CW
#ifdef LMU__ISA_AVX512
#define LMU__IATTN_CW 64
#else
#define LMU__IATTN_CW 16
#endif
#endif

#ifdef LMU__ISA_AVX512
/* v[j] lane i <- v[i] lane j: a 16 x 16 transpose in registers (32-bit,
   64-bit, then two 128-bit interleaves). The position-major Z and the
   FFT's signal-major rows meet here; done one float at a time, these
   transposes took about a sixth of the convolution. */
LMU__KERN_INLINE void lmu__iattn_tr16(__m512 *v)
{
    __m512 t[16], u[16];
    int i, k;
    for (i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    /* u[4g + k], 128-bit lane l: column 4l + k of rows 4g..4g+3 */
    for (i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        __m512d c = _mm512_castps_pd(t[4 * i + 1]), e = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, e));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, e));
    }
    for (k = 0; k < 4; k++) {
        __m512 v1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88);
        __m512 v2 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xDD);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);
        __m512 w2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xDD);
        v[k] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        v[4 + k] = _mm512_shuffle_f32x4(v2, w2, 0x88);
        v[8 + k] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
        v[12 + k] = _mm512_shuffle_f32x4(v2, w2, 0xDD);
    }
}

#ifdef _MM_HINT_ET0
#define LMU__IATTN_PREFETCHW _MM_HINT_ET0
#else
#define LMU__IATTN_PREFETCHW _MM_HINT_T0
#endif

LMU__KERN_INLINE __mmask16 lmu__iattn_mask(size_t n)
{
    return (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
}
#endif

/* z[t zs + c] = blk[c pitch + t] sc + bias for t < n, c < cn: a group of
   signals (one kernel row, cn channels) into Z's position-major rows.
   Each position's cn floats are written together, so rows of Z are
   written in runs, not in 64-byte pieces that each cost a line fetch. */
LMU__PRIVATE void lmu__iattn_conv_scatter(float *z, size_t zs, const float *blk, size_t pitch,
                                        size_t n, size_t cn, float sc, float bias)
{
    size_t t = 0, c;
#ifdef LMU__ISA_AVX512
    __m512 vs = _mm512_set1_ps(sc), vb = _mm512_set1_ps(bias);
    for (; t + 16 <= n; t += 16) {
        size_t c0;
        for (c0 = 0; c0 < cn; c0 += 16) {
            size_t w = cn - c0 < 16 ? cn - c0 : 16;
            __mmask16 km = lmu__iattn_mask(w);
            __m512 v[16];
            int j;
            for (j = 0; j < 16; j++)
                v[j] = (size_t)j < w ? _mm512_loadu_ps(blk + (c0 + (size_t)j) * pitch + t)
                                     : _mm512_setzero_ps();
            lmu__iattn_tr16(v);
            for (j = 0; j < 16; j++) {
                float *o = z + (t + (size_t)j) * zs + c0;
                v[j] = _mm512_fmadd_ps(v[j], vs, vb);
                if (w == 16)
                    _mm512_storeu_ps(o, v[j]);
                else
                    _mm512_mask_storeu_ps(o, km, v[j]);
            }
            /* Z's rows are 3 q' d floats apart, a stride the hardware
               prefetchers do not follow far enough ahead: fetch the lines
               of the block two ahead for writing now. */
            if (t + 48 <= n)
                for (j = 0; j < 16; j++) {
                    const char *pa = (const char *)(z + (t + 32 + (size_t)j) * zs + c0);
                    _mm_prefetch(pa, LMU__IATTN_PREFETCHW);
                    _mm_prefetch(pa + 63, LMU__IATTN_PREFETCHW);
                }
        }
    }
#endif
    for (; t < n; t++)
        for (c = 0; c < cn; c++) z[t * zs + c] = blk[c * pitch + t] * sc + bias;
}

/* The adjoint: y[cc S + t] = g[t gs + cc] for t < n, cc < cn <= 16.
   Returns the sum of what it moved (the bias gradient's share), in
   double across blocks of 16 positions. */
LMU__PRIVATE double lmu__iattn_conv_gather(float *y, size_t S, const float *g, size_t gs, size_t n,
                                         size_t cn)
{
    double sum = 0.0;
    size_t t = 0, cc;
#ifdef LMU__ISA_AVX512
    __mmask16 km = lmu__iattn_mask(cn);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    double lanes[8];
    int l;
    for (; t + 16 <= n; t += 16) {
        __m512 v[16], h8[8], h;
        __m256 hi;
        int j;
        if (cn == 16)
            for (j = 0; j < 16; j++) v[j] = _mm512_loadu_ps(g + (t + (size_t)j) * gs);
        else
            for (j = 0; j < 16; j++) v[j] = _mm512_maskz_loadu_ps(km, g + (t + (size_t)j) * gs);
        /* as in the scatter: the rows 4 blocks ahead */
        if (t + 80 <= n)
            for (j = 0; j < 16; j++) {
                const char *pa = (const char *)(g + (t + 64 + (size_t)j) * gs);
                _mm_prefetch(pa, _MM_HINT_T0);
                _mm_prefetch(pa + 63, _MM_HINT_T0);
            }
        for (j = 0; j < 8; j++) h8[j] = _mm512_add_ps(v[2 * j], v[2 * j + 1]);
        for (j = 0; j < 4; j++) h8[j] = _mm512_add_ps(h8[2 * j], h8[2 * j + 1]);
        h = _mm512_add_ps(_mm512_add_ps(h8[0], h8[1]), _mm512_add_ps(h8[2], h8[3]));
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(h)));
        hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(h), 1));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(hi));
        lmu__iattn_tr16(v);
        for (j = 0; (size_t)j < cn; j++) _mm512_storeu_ps(y + (size_t)j * S + t, v[j]);
    }
    _mm512_storeu_pd(lanes, _mm512_add_pd(s0, s1));
    for (l = 0; l < 8; l++) sum += lanes[l];
#endif
    for (; t < n; t++)
        for (cc = 0; cc < cn; cc++) sum += (y[cc * S + t] = g[t * gs + cc]);
    return sum;
}

#ifdef LMU__ISA_AVX512
/* a b and y conj(u) on 8 interleaved complex bins:
   a b:       even lanes ar br - ai bi, odd ar bi + ai br;
   y conj(u): even yi ui + yr ur,       odd yi ur - yr ui. */
LMU__KERN_INLINE __m512 lmu__iattn_cmul16(__m512 a, __m512 b)
{
    __m512 t = _mm512_mul_ps(_mm512_movehdup_ps(a), _mm512_permute_ps(b, 0xB1));
    return _mm512_fmaddsub_ps(_mm512_moveldup_ps(a), b, t);
}

LMU__KERN_INLINE __m512 lmu__iattn_cmulc16(__m512 y, __m512 u)
{
    __m512 t = _mm512_mul_ps(_mm512_moveldup_ps(y), u);
    return _mm512_fmsubadd_ps(_mm512_movehdup_ps(y), _mm512_permute_ps(u, 0xB1), t);
}
#endif

/* y = a b over nb interleaved complex bins (the convolution's spectra).
   (Masked loads and stores are slow on some AVX-512 cores: only the last
   partial vector takes them, here and below.) */
LMU__PRIVATE void lmu__iattn_conv_cmul(float *y, const float *a, const float *b, size_t nb)
{
    size_t f = 0;
#ifdef LMU__ISA_AVX512
    for (; f + 16 <= 2 * nb; f += 16)
        _mm512_storeu_ps(y + f, lmu__iattn_cmul16(_mm512_loadu_ps(a + f), _mm512_loadu_ps(b + f)));
    if (f < 2 * nb) {
        __mmask16 k = lmu__iattn_mask(2 * nb - f);
        _mm512_mask_storeu_ps(y + f, k, lmu__iattn_cmul16(_mm512_maskz_loadu_ps(k, a + f),
                                                        _mm512_maskz_loadu_ps(k, b + f)));
        f = 2 * nb;
    }
#endif
    for (f /= 2; f < nb; f++) {
        float ar = a[2 * f], ai = a[2 * f + 1], br = b[2 * f], bi = b[2 * f + 1];
        y[2 * f] = ar * br - ai * bi;
        y[2 * f + 1] = ar * bi + ai * br;
    }
}

/* acc += y conj(h) and G += y conj(u) over nb bins: backward's two uses
   of one dZ spectrum in one pass. */
LMU__PRIVATE void lmu__iattn_conv_cmac2(float *acc, const float *h, float *G, const float *u,
                                      const float *y, size_t nb)
{
#ifdef LMU__ISA_AVX512
    size_t f;
    for (f = 0; f + 16 <= 2 * nb; f += 16) {
        __m512 yv = _mm512_loadu_ps(y + f);
        _mm512_storeu_ps(acc + f, _mm512_add_ps(_mm512_loadu_ps(acc + f),
                                                lmu__iattn_cmulc16(yv, _mm512_loadu_ps(h + f))));
        _mm512_storeu_ps(G + f, _mm512_add_ps(_mm512_loadu_ps(G + f),
                                              lmu__iattn_cmulc16(yv, _mm512_loadu_ps(u + f))));
    }
    if (f < 2 * nb) {
        __mmask16 k = lmu__iattn_mask(2 * nb - f);
        __m512 yv = _mm512_maskz_loadu_ps(k, y + f);
        _mm512_mask_storeu_ps(acc + f, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, acc + f),
                              lmu__iattn_cmulc16(yv, _mm512_maskz_loadu_ps(k, h + f))));
        _mm512_mask_storeu_ps(G + f, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, G + f),
                              lmu__iattn_cmulc16(yv, _mm512_maskz_loadu_ps(k, u + f))));
    }
#else
    lmu_fft_spectrum_mac(nb, acc, y, h, 1);
    lmu_fft_spectrum_mac(nb, G, y, u, 1);
#endif
}

LMU__PRIVATE size_t lmu__iattn_conv_cache_floats(size_t B, size_t d, size_t qp, size_t nfft)
{
    return B * d * (nfft + 2) + 3 * qp * (nfft + 2);
}

/* Row pitch of the transposition buffers, whose rows are FFT signals (up
   to N + 2 floats): 16 more than N keeps the 16 rows of one transposed
   block out of a single cache set (a pitch of exactly 8 KiB, or 8 bytes
   more, would put them all in one). */
LMU__PRIVATE size_t lmu__iattn_conv_pitch(size_t N) { return N + 16; }

/* Per part, a work area: forward a channel group's spectra, transformed
   in place (CW rows), backward the block's dU spectra (CB S), its dZ
   signals zero-padded to N (CB rows) and one spectrum; then the FFT's own
   scratch, and for backward the part's dL spectrum sum (3 qp S) and db
   (3 qp). */
LMU__PRIVATE size_t lmu__iattn_conv_work_floats(size_t N)
{
    size_t S = N + 2;
    size_t fwd = LMU__IATTN_CW * lmu__iattn_conv_pitch(N);
    size_t bwd = lmu__kern_round16(LMU__IATTN_CB * S) + LMU__IATTN_CB * lmu__iattn_conv_pitch(N) +
                 lmu__kern_round16(S);
    return lmu__kern_round16(fwd > bwd ? fwd : bwd);
}

LMU__PRIVATE size_t lmu__iattn_conv_part_floats(const lmu_fft_plan *plan, size_t qp)
{
    size_t N = lmu_fft_plan_n(plan), S = N + 2;
    return lmu__iattn_conv_work_floats(N) + lmu_fft_scratch_floats(plan) +
           lmu__kern_round16(3 * qp * S) + lmu__kern_round16(3 * qp);
}

LMU__PRIVATE size_t lmu__iattn_conv_scratch_floats(const lmu_fft_plan *plan, size_t qp, int nparts)
{
    return (size_t)(nparts < 1 ? 1 : nparts) * lmu__iattn_conv_part_floats(plan, qp);
}

/* The kernel spectra into the cache: Htil = L Hspec. The FFT is linear,
   so the spectra of the kernels L H are L times H's spectra: one
   (3 qp x q) by (q x S) product on the interleaved floats. They depend on
   L only, so the model op makes them once for all its sequences. */
LMU__PRIVATE void lmu__iattn_conv_htil(float *cache, const float *Hspec, const float *L, size_t B,
                                     size_t d, size_t q, size_t qp, const lmu_fft_plan *plan,
                                     struct lmu_gemm_ws *ws)
{
    size_t S = lmu_fft_plan_n(plan) + 2;
    lmu__kern_gemm(ws, 0, 0, 3 * qp, S, q, 1.0f, L, q, Hspec, S, 0.0f, cache + B * d * S, S);
}

/* The convolution's forward after lmu__iattn_conv_htil: the channel spectra
   into the cache and Z. */
LMU__PRIVATE void lmu__iattn_conv_signals(float *Z, float *cache, const float *U, const float *bias,
                                        size_t B, size_t n, size_t d, size_t qp,
                                        const lmu_fft_plan *plan, int nparts, float *scratch)
{
    size_t N = lmu_fft_plan_n(plan), S = N + 2, nb = N / 2 + 1, R = 3 * qp;
    size_t part = lmu__iattn_conv_part_floats(plan, qp), work = lmu__iattn_conv_work_floats(N);
    size_t pitch = lmu__iattn_conv_pitch(N);
    float *Uspec = cache, *Htil = cache + B * d * S, invN = 1.0f / (float)N;
    long p;
    LMU_ASSERT(N >= 2 * n && lmu_fft_plan_kind(plan) == LMU_FFT_REAL);
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *buf = scratch + (size_t)p * part, *fs = buf + work;
        size_t tasks = B * d, task, t;
        size_t lo = tasks * (size_t)p / (size_t)nparts, hi = tasks * (size_t)(p + 1) / (size_t)nparts;
        for (task = lo; task < hi; task++) {
            size_t b = task / d, c = task % d;
            for (t = 0; t < n; t++) buf[t] = U[(b * n + t) * d + c];
            for (; t < N; t++) buf[t] = 0.0f;
            lmu_fft_forward(plan, buf, Uspec + task * S, fs);
        }
    }
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *blk = scratch + (size_t)p * part, *fs = blk + work;
        size_t tasks = B * R, task;
        size_t lo = tasks * (size_t)p / (size_t)nparts, hi = tasks * (size_t)(p + 1) / (size_t)nparts;
        for (task = lo; task < hi; task++) {
            size_t b = task / R, ir = task % R, g0;
            const float *h = Htil + ir * S;
            float bir = bias[ir];
            for (g0 = 0; g0 < d; g0 += LMU__IATTN_CW) {
                size_t gn = d - g0 < LMU__IATTN_CW ? d - g0 : LMU__IATTN_CW, cc;
                for (cc = 0; cc < gn; cc++) {
                    float *y = blk + cc * pitch;
                    lmu__iattn_conv_cmul(y, Uspec + (b * d + g0 + cc) * S, h, nb);
                    lmu_fft_inverse(plan, y, y, fs);
                }
                lmu__iattn_conv_scatter(Z + (b * n * R + ir) * d + g0, R * d, blk, pitch, n, gn,
                                      invN, bir);
            }
        }
    }
}

/* dZ [B, n, 3, qp, d] -> dU [B, n, d] +=, dL [3, qp, q] +=, dbias [3, qp] +=.
   dU = corr(dZ, Htil) summed over ir: one inverse FFT per channel.
   dL[ir, k] = sum_{t<n, c} dZ[t, ir, c] (H_k * U_c)[t]. By Parseval, for
   real length-N signals a, b: sum_t a_t b_t = (1/N) sum_f A_f conj(B_f)
   over all N bins; on the N/2+1 stored bins the conjugate-symmetric half
   counts twice, DC and Nyquist once:
       = (1/N) sum_{f=0..N/2} w_f Re(A_f conj(B_f)), w = 1, 2, ..., 2, 1.
   With A = FFT(dZ_ir,c) and B = Hspec_k Uspec_c,
       dL[ir, k] = sum_f (w_f / N) Re(G_ir(f) conj(Hspec_k(f))),
       G_ir(f) = sum_{b, c} FFT(dZ_ir,c)(f) conj(Uspec_c(f)),
   and Re(g conj(h)) = gr hr + gi hi is a plain dot product of the
   interleaved floats: dL += Gw Hspec^T, one gemm. */
LMU__PRIVATE void lmu__iattn_conv_backward(float *dU, float *dL, float *dbias, const float *dZ,
                                         const float *cache, const float *Hspec, size_t B,
                                         size_t n, size_t d, size_t q, size_t qp,
                                         const lmu_fft_plan *plan, struct lmu_gemm_ws *ws,
                                         int nparts, float *scratch)
{
    size_t N = lmu_fft_plan_n(plan), S = N + 2, nb = N / 2 + 1, R = 3 * qp;
    size_t part = lmu__iattn_conv_part_floats(plan, qp);
    size_t off_G = lmu__iattn_conv_work_floats(N) + lmu_fft_scratch_floats(plan);
    size_t off_db = off_G + lmu__kern_round16(R * S), pitch = lmu__iattn_conv_pitch(N);
    const float *Uspec = cache, *Htil = cache + B * d * S;
    float invN = 1.0f / (float)N;
    long p, e;
    LMU_ASSERT(N >= 2 * n && lmu_fft_plan_kind(plan) == LMU_FFT_REAL);
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *base = scratch + (size_t)p * part;
        float *acc = base;                                     /* (CB, S) dU spectra */
        float *x = acc + lmu__kern_round16(LMU__IATTN_CB * S);    /* (CB, pitch) dZ rows */
        float *y = x + LMU__IATTN_CB * pitch;                    /* (S) one spectrum */
        float *fs = base + lmu__iattn_conv_work_floats(N);
        float *G = base + off_G, *db = base + off_db; /* (R, S), (R) */
        size_t e0, cc, cn, t, lo = B * d * (size_t)p / (size_t)nparts,
                              hi = B * d * (size_t)(p + 1) / (size_t)nparts;
        memset(G, 0, R * S * sizeof(float));
        memset(db, 0, R * sizeof(float));
        /* the gather fills 0..n-1 of each row; the zero padding stays */
        for (cc = 0; cc < LMU__IATTN_CB; cc++)
            for (t = n; t < N; t++) x[cc * pitch + t] = 0.0f;
        /* the part's (b, c) range in blocks of up to CB channels of one b:
           equal shares (6 x 16 + 6 channels a part, not 6 x 16 and
           6 x 16 + 12, for d = 204 on 2 threads); a channel's result does
           not depend on the block it falls in */
        for (e0 = lo; e0 < hi; e0 += cn) {
            size_t b = e0 / d, c0 = e0 % d, ir;
            cn = hi - e0 < d - c0 ? hi - e0 : d - c0;
            cn = cn < LMU__IATTN_CB ? cn : LMU__IATTN_CB;
            memset(acc, 0, cn * S * sizeof(float));
            for (ir = 0; ir < R; ir++) {
                db[ir] += (float)lmu__iattn_conv_gather(x, pitch, dZ + (b * n * R + ir) * d + c0,
                                                      R * d, n, cn);
                for (cc = 0; cc < cn; cc++) {
                    lmu_fft_forward(plan, x + cc * pitch, y, fs);
                    lmu__iattn_conv_cmac2(acc + cc * S, Htil + ir * S, G + ir * S,
                                        Uspec + (b * d + c0 + cc) * S, y, nb);
                }
            }
            for (cc = 0; cc < cn; cc++) {
                float *a_c = acc + cc * S;
                lmu_fft_inverse(plan, a_c, a_c, fs);
                for (t = 0; t < n; t++) dU[(b * n + t) * d + c0 + cc] += a_c[t] * invN;
            }
        }
    }
    /* Reduce the parts in part order into part 0, applying the bin weights. */
    LMU__OMP(omp parallel for schedule(static))
    for (e = 0; e < (long)(R * S); e++) {
        size_t f = ((size_t)e % S) / 2;
        float sum = scratch[off_G + (size_t)e], w = (f == 0 || f == nb - 1) ? invN : 2.0f * invN;
        int pp;
        for (pp = 1; pp < nparts; pp++) sum += scratch[(size_t)pp * part + off_G + (size_t)e];
        scratch[off_G + (size_t)e] = sum * w;
    }
    lmu__kern_gemm(ws, 0, 1, R, q, S, 1.0f, scratch + off_G, S, Hspec, S, 1.0f, dL, q);
    for (e = 0; e < (long)R; e++) {
        int pp;
        for (pp = 0; pp < nparts; pp++) dbias[e] += scratch[(size_t)pp * part + off_db + (size_t)e];
    }
}

/* ---------------------------------------------------------------------- */
/* implicit self-attention: the per-position q' x q' attention             */
/* ---------------------------------------------------------------------- */
/* P = positions (B n flattened: positions are independent here), qp = q',
   d = channels. Z [P, 3, qp, d] is the convolution's output BEFORE gelu:
   the gelu is fused in (Q, K, V = gelu(Z_q), gelu(Z_k), gelu(Z_v)) so no
   second n x 3 q' x d tensor is stored, and backward returns dZ.
   Per position t: S = Q K^T / sqrt(d), A = softmax rows of S (cache
   Pc [P, qp, qp]), y_t = p A V [d]. Since y_t = (A^T p) V, the q' x d
   matrix M' is never formed. Backward: dV = (A^T p) dy^T, and with
   dS = softmax'(p_r (V dy)_s) / sqrt(d): dQ = dS K, dK = dS^T Q, two
   q' x q' by q' x d products with gelu' applied on the way out.
   Parallel over positions; dp is summed per position into scratch and
   reduced serially in position order, so every result is independent of
   nparts and the thread count. */

/* Per part: X = gelu(Z_t), dg = gelu'(Z_t) and two dX, the dZ of this
   position and of the one before (3 qp d each), dS and dS^T (qp qp each),
   a and da (qp each), one row of d for the portable product. */
LMU__PRIVATE size_t lmu__iattn_attn_part_floats(size_t qp, size_t d)
{
    return 4 * lmu__kern_round16(3 * qp * d) + 2 * lmu__kern_round16(qp * qp) +
           2 * lmu__kern_round16(qp) + lmu__kern_round16(d);
}

LMU__PRIVATE size_t lmu__iattn_attn_scratch_floats(size_t npos, size_t qp, size_t d, int nparts)
{
    return lmu__kern_round16(npos * qp) +
           (size_t)(nparts < 1 ? 1 : nparts) * lmu__iattn_attn_part_floats(qp, d);
}

#ifdef LMU__ISA_AVX512
/* lmu__kern_gelu on 16 lanes. Written out because gcc, left to vectorise
   the scalar form, specialises the clamped lanes and runs the polynomial
   and the division two and three times over. vmaxps returns its second
   operand for NaN, so w is never NaN here; x still carries it. */
LMU__KERN_INLINE __m512 lmu__iattn_gelu16(__m512 x, __m512 *dg)
{
    const float c = 0.7978845608028654f;
    __m512 x2 = _mm512_mul_ps(x, x), w, kf, r, p, e, sg;
    w = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), x2), x, x);
    w = _mm512_mul_ps(_mm512_set1_ps(-2.0f * c), w);
    w = _mm512_min_ps(_mm512_max_ps(w, _mm512_set1_ps(-40.0f)), _mm512_set1_ps(80.0f));
    kf = _mm512_roundscale_ps(_mm512_mul_ps(w, _mm512_set1_ps(1.44269504088896341f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0.693145751953125f), w);
    r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(1.428606820309417232e-6f), r);
    p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    e = _mm512_scalef_ps(p, kf);
    sg = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    if (dg) {
        __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f * c), x), e), du;
        t = _mm512_mul_ps(t, _mm512_mul_ps(sg, sg));
        du = _mm512_fmadd_ps(_mm512_set1_ps(3.0f * 0.044715f), x2, _mm512_set1_ps(1.0f));
        *dg = _mm512_fmadd_ps(t, du, sg);
    }
    return _mm512_mul_ps(x, sg);
}
#endif

/* X = gelu(Z) over m floats, and dg = gelu'(Z) when dg is not NULL.
   pf (m floats, the next position's Z, or NULL) is prefetched meanwhile:
   Z streams from memory, and the rest of a position's work would
   otherwise leave the memory idle while the gelu waits on it. */
LMU__PRIVATE void lmu__iattn_gelu_rows(float *X, float *dg, const float *Z, size_t m, const float *pf)
{
    size_t j = 0;
#ifdef LMU__ISA_AVX512
    if (!pf) pf = Z;
    if (dg)
        for (; j + 16 <= m; j += 16) {
            __m512 g;
            _mm_prefetch((const char *)(pf + j), _MM_HINT_T0);
            _mm512_storeu_ps(X + j, lmu__iattn_gelu16(_mm512_loadu_ps(Z + j), &g));
            _mm512_storeu_ps(dg + j, g);
        }
    else
        for (; j + 16 <= m; j += 16) {
            _mm_prefetch((const char *)(pf + j), _MM_HINT_T0);
            _mm512_storeu_ps(X + j, lmu__iattn_gelu16(_mm512_loadu_ps(Z + j), NULL));
        }
    if (j < m) {
        __mmask16 k = lmu__iattn_mask(m - j);
        __m512 g, v = lmu__iattn_gelu16(_mm512_maskz_loadu_ps(k, Z + j), dg ? &g : NULL);
        _mm512_mask_storeu_ps(X + j, k, v);
        if (dg) _mm512_mask_storeu_ps(dg + j, k, g);
        j = m;
    }
#else
    (void)pf;
#endif
    if (dg)
        for (; j < m; j++) X[j] = lmu__kern_gelu(Z[j], dg + j);
    else
        for (; j < m; j++) X[j] = lmu__kern_gelu(Z[j], NULL);
}

#ifdef LMU__ISA_AVX512
/* Lane i of the result = the sum of a[i]'s 16 lanes. */
LMU__KERN_INLINE __m512 lmu__iattn_hsum16(const __m512 *a)
{
    __m512 x[8], y[4], u01, u23;
    int i;
    for (i = 0; i < 8; i++)
        x[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    /* y[g], 128-bit lane l: the lane-l partial sums of a[4g..4g+3] */
    for (i = 0; i < 4; i++) {
        __m512d lo = _mm512_castps_pd(x[2 * i]), hi = _mm512_castps_pd(x[2 * i + 1]);
        y[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi)));
    }
    u01 = _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], 0x44),
                        _mm512_shuffle_f32x4(y[0], y[1], 0xEE));
    u23 = _mm512_add_ps(_mm512_shuffle_f32x4(y[2], y[3], 0x44),
                        _mm512_shuffle_f32x4(y[2], y[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u01, u23, 0x88),
                         _mm512_shuffle_f32x4(u01, u23, 0xDD));
}
#endif

/* S[r][s] = scale Q_r . K_s for r, s < qp (rows of d floats). With SIMD,
   4 x 4 blocks: each pair of loads feeds 4 FMAs instead of 1, and one
   reduction finishes 16 dot products. Rows past qp repeat the last row
   and are dropped, so every entry is summed the same way wherever its
   block falls. */
LMU__PRIVATE void lmu__iattn_attn_qkt(float *S, const float *Q, const float *K, size_t qp, size_t d,
                                    float scale)
{
#ifdef LMU__ISA_AVX512
    size_t r0, s0, c, dv = d & ~(size_t)15;
    __mmask16 kt = lmu__iattn_mask(d & 15);
    for (r0 = 0; r0 < qp; r0 += 4)
        for (s0 = 0; s0 < qp; s0 += 4) {
            const float *qr[4], *ks[4];
            __m512 acc[16];
            float out[16];
            int i, j;
            for (i = 0; i < 4; i++) {
                qr[i] = Q + (r0 + (size_t)i < qp ? r0 + (size_t)i : qp - 1) * d;
                ks[i] = K + (s0 + (size_t)i < qp ? s0 + (size_t)i : qp - 1) * d;
            }
            for (i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
            for (c = 0; c < dv; c += 16) {
                __m512 qv[4], kv[4];
                for (i = 0; i < 4; i++) {
                    qv[i] = _mm512_loadu_ps(qr[i] + c);
                    kv[i] = _mm512_loadu_ps(ks[i] + c);
                }
                for (i = 0; i < 4; i++)
                    for (j = 0; j < 4; j++)
                        acc[4 * i + j] = _mm512_fmadd_ps(qv[i], kv[j], acc[4 * i + j]);
            }
            if (kt) {
                __m512 qv[4], kv[4];
                for (i = 0; i < 4; i++) {
                    qv[i] = _mm512_maskz_loadu_ps(kt, qr[i] + dv);
                    kv[i] = _mm512_maskz_loadu_ps(kt, ks[i] + dv);
                }
                for (i = 0; i < 4; i++)
                    for (j = 0; j < 4; j++)
                        acc[4 * i + j] = _mm512_fmadd_ps(qv[i], kv[j], acc[4 * i + j]);
            }
            _mm512_storeu_ps(out, lmu__iattn_hsum16(acc));
            for (i = 0; i < 4 && r0 + (size_t)i < qp; i++)
                for (j = 0; j < 4 && s0 + (size_t)j < qp; j++)
                    S[(r0 + (size_t)i) * qp + s0 + (size_t)j] = out[4 * i + j] * scale;
        }
#else
    size_t r, s;
    for (r = 0; r < qp; r++)
        for (s = 0; s < qp; s++) S[r * qp + s] = lmu__kern_dot(Q + r * d, K + s * d, d) * scale;
#endif
}

/* out[r][c] = dg[r][c] sum_s M[r][s] B[s][c] for r < qp, c < d: dQ = dS K
   and dK = dS^T Q with gelu' applied on the way out. row: d floats of
   scratch (portable path). */
LMU__PRIVATE void lmu__iattn_attn_mm(float *out, const float *M, const float *B, const float *dg,
                                   size_t qp, size_t d, float *row)
{
#ifdef LMU__ISA_AVX512
    size_t r0, c0, s, d64 = d & ~(size_t)63;
    (void)row;
    for (r0 = 0; r0 < qp; r0 += 4) {
        const float *mr[4];
        size_t rn = qp - r0 < 4 ? qp - r0 : 4;
        int i, v;
        for (i = 0; i < 4; i++) mr[i] = M + (r0 + (size_t)i < qp ? r0 + (size_t)i : qp - 1) * qp;
        /* 4 rows x 64 channels: 16 accumulators, 4 loads and 4 broadcasts
           per 16 FMAs */
        for (c0 = 0; c0 < d64; c0 += 64) {
            __m512 acc[4][4];
            for (i = 0; i < 4; i++)
                for (v = 0; v < 4; v++) acc[i][v] = _mm512_setzero_ps();
            for (s = 0; s < qp; s++) {
                const float *b = B + s * d + c0;
                __m512 bv[4];
                for (v = 0; v < 4; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
                for (i = 0; i < 4; i++) {
                    __m512 w = _mm512_set1_ps(mr[i][s]);
                    for (v = 0; v < 4; v++) acc[i][v] = _mm512_fmadd_ps(w, bv[v], acc[i][v]);
                }
            }
            for (i = 0; (size_t)i < rn; i++)
                for (v = 0; v < 4; v++) {
                    size_t o = (r0 + (size_t)i) * d + c0 + 16 * (size_t)v;
                    _mm512_storeu_ps(out + o, _mm512_mul_ps(acc[i][v], _mm512_loadu_ps(dg + o)));
                }
        }
        /* the last d mod 64 channels, one vector at a time */
        for (c0 = d64; c0 < d; c0 += 16) {
            __mmask16 k = lmu__iattn_mask(d - c0);
            __m512 acc[4];
            for (i = 0; i < 4; i++) acc[i] = _mm512_setzero_ps();
            for (s = 0; s < qp; s++) {
                __m512 bv = _mm512_maskz_loadu_ps(k, B + s * d + c0);
                for (i = 0; i < 4; i++)
                    acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(mr[i][s]), bv, acc[i]);
            }
            for (i = 0; (size_t)i < rn; i++) {
                size_t o = (r0 + (size_t)i) * d + c0;
                _mm512_mask_storeu_ps(out + o, k,
                                      _mm512_mul_ps(acc[i], _mm512_maskz_loadu_ps(k, dg + o)));
            }
        }
    }
#else
    size_t r, s, c;
    for (r = 0; r < qp; r++) {
        const float *g = dg + r * d;
        float *o = out + r * d;
        for (c = 0; c < d; c++) row[c] = 0.0f;
        for (s = 0; s < qp; s++) {
            const float *b = B + s * d;
            float w = M[r * qp + s];
            for (c = 0; c < d; c++) row[c] += w * b[c];
        }
        for (c = 0; c < d; c++) o[c] = row[c] * g[c];
    }
#endif
}

LMU__PRIVATE void lmu__iattn_attn_forward(float *y, float *Pc, const float *Z, const float *pw,
                                        size_t npos, size_t qp, size_t d, int nparts,
                                        float *scratch)
{
    size_t m = 3 * qp * d, stride = lmu__iattn_attn_part_floats(qp, d);
    float scale = 1.0f / sqrtf((float)d);
    long p;
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *X = scratch + lmu__kern_round16(npos * qp) + (size_t)p * stride; /* (3, qp, d) */
        float *a = X + 4 * lmu__kern_round16(m) + 2 * lmu__kern_round16(qp * qp); /* (qp) */
        size_t pos, lo = npos * (size_t)p / (size_t)nparts,
                    hi = npos * (size_t)(p + 1) / (size_t)nparts;
        for (pos = lo; pos < hi; pos++) {
            const float *Zt = Z + pos * m, *Vv = X + 2 * qp * d;
            float *A = Pc + pos * qp * qp, *y_t = y + pos * d;
            size_t r, s, c;
            lmu__iattn_gelu_rows(X, NULL, Zt, m, pos + 1 < hi ? Zt + m : NULL);
            lmu__iattn_attn_qkt(A, X, X + qp * d, qp, d, scale);
            for (r = 0; r < qp; r++) {
                float *A_r = A + r * qp, mx = lmu__kern_max(A_r, qp);
                float sum = lmu__kern_expsum(A_r, A_r, qp, mx);
                for (s = 0; s < qp; s++) A_r[s] /= sum;
            }
            for (s = 0; s < qp; s++) {
                float acc = 0.0f;
                for (r = 0; r < qp; r++) acc += pw[r] * A[r * qp + s];
                a[s] = acc;
            }
            for (c = 0; c < d; c++) y_t[c] = 0.0f;
            for (s = 0; s < qp; s++) {
                const float *v_s = Vv + s * d;
                float a_s = a[s];
                for (c = 0; c < d; c++) y_t[c] += a_s * v_s[c];
            }
        }
    }
}

/* dst (+)= src over m floats: one position's dZ out of scratch. Written
   over, dZ goes out with streaming stores: it is Z's size, read back only
   after the whole sequence, so fetching its lines first (as plain stores
   do) would only double the memory traffic. */
LMU__PRIVATE void lmu__iattn_attn_put(float *dst, const float *src, size_t m, int accumulate)
{
    size_t j = 0;
    if (accumulate) {
        for (; j < m; j++) dst[j] += src[j];
        return;
    }
#ifdef LMU__ISA_AVX512
    for (; j < m && ((uintptr_t)(dst + j) & 63); j++) dst[j] = src[j];
    for (; j + 16 <= m; j += 16) _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
#endif
    for (; j < m; j++) dst[j] = src[j];
}

/* Backward's element pass: X = gelu(Z), dg = gelu'(Z) over m floats, while
   the previous position's dZ (src) streams out to dst (when dst is not
   NULL) and the next position's Z (pf) is prefetched. The gelu is compute
   bound, so both memory streams overlap it instead of stalling on their
   own. */
LMU__PRIVATE void lmu__iattn_attn_gelu_put(float *X, float *dg, const float *Z, size_t m,
                                         const float *pf, float *dst, const float *src)
{
#ifdef LMU__ISA_AVX512
    size_t h, j, k;
    if (!dst) {
        lmu__iattn_gelu_rows(X, dg, Z, m, pf);
        return;
    }
    if (!pf) pf = Z;
    /* dst[0, h) plainly, then 64-byte aligned vectors along the gelu */
    h = ((64 - ((uintptr_t)dst & 63)) & 63) / sizeof(float);
    h = h < m ? h : m;
    for (k = 0; k < h; k++) dst[k] = src[k];
    for (j = 0; j + 16 <= m; j += 16) {
        __m512 g;
        _mm_prefetch((const char *)(pf + j), _MM_HINT_T0);
        _mm512_storeu_ps(X + j, lmu__iattn_gelu16(_mm512_loadu_ps(Z + j), &g));
        _mm512_storeu_ps(dg + j, g);
        if (h + j + 16 <= m) _mm512_stream_ps(dst + h + j, _mm512_loadu_ps(src + h + j));
    }
    if (j < m) {
        __mmask16 km = lmu__iattn_mask(m - j);
        __m512 g, v = lmu__iattn_gelu16(_mm512_maskz_loadu_ps(km, Z + j), &g);
        _mm512_mask_storeu_ps(X + j, km, v);
        _mm512_mask_storeu_ps(dg + j, km, g);
    }
    for (k = h + (m - h) / 16 * 16; k < m; k++) dst[k] = src[k];
#else
    lmu__iattn_gelu_rows(X, dg, Z, m, pf);
    if (dst) memcpy(dst, src, m * sizeof(float));
#endif
}

/* dy [P, d] -> dZ [P, 3, qp, d] (accumulate: +=, else overwritten),
   dp [qp] +=. The model op overwrites, which saves a pass clearing Z's
   size of memory per sequence. */
LMU__PRIVATE void lmu__iattn_attn_backward(float *dZ, float *dp, const float *dy, const float *Z,
                                         const float *Pc, const float *pw, size_t npos, size_t qp,
                                         size_t d, int nparts, float *scratch, int accumulate)
{
    size_t m = 3 * qp * d, stride = lmu__iattn_attn_part_floats(qp, d), pos;
    float scale = 1.0f / sqrtf((float)d), *dpp = scratch; /* (npos, qp) */
    long p;
    if (nparts < 1) nparts = 1;
    LMU__OMP(omp parallel for schedule(static))
    for (p = 0; p < (long)nparts; p++) {
        float *X = scratch + lmu__kern_round16(npos * qp) + (size_t)p * stride; /* (3, qp, d) */
        float *dg = X + lmu__kern_round16(m);                /* (3, qp, d) gelu' */
        float *dXs = dg + lmu__kern_round16(m);              /* 2 x (3, qp, d) dZ_t */
        float *dS = dXs + 2 * lmu__kern_round16(m);          /* (qp, qp) */
        float *dSt = dS + lmu__kern_round16(qp * qp);        /* (qp, qp) dS^T */
        float *a = dSt + lmu__kern_round16(qp * qp);         /* (qp) A^T p */
        float *da = a + lmu__kern_round16(qp);               /* (qp) V dy */
        float *row = da + lmu__kern_round16(qp);             /* (d) */
        size_t pp, lo = npos * (size_t)p / (size_t)nparts,
                   hi = npos * (size_t)(p + 1) / (size_t)nparts;
        for (pp = lo; pp < hi; pp++) {
            const float *A = Pc + pp * qp * qp, *dy_t = dy + pp * d, *Zt = Z + pp * m;
            const float *Q = X, *K = X + qp * d, *Vv = X + 2 * qp * d, *dgv = dg + 2 * qp * d;
            float *dX = dXs + ((pp - lo) & 1) * lmu__kern_round16(m), *dXv = dX + 2 * qp * d;
            const float *dXprev = dXs + ((pp - lo + 1) & 1) * lmu__kern_round16(m);
            size_t r, s, c;
            /* written over, a position's dZ goes out during the next one */
            lmu__iattn_attn_gelu_put(X, dg, Zt, m, pp + 1 < hi ? Zt + m : NULL,
                                   !accumulate && pp > lo ? dZ + (pp - 1) * m : NULL, dXprev);
            for (s = 0; s < qp; s++) {
                float acc = 0.0f;
                for (r = 0; r < qp; r++) acc += pw[r] * A[r * qp + s];
                a[s] = acc;
                da[s] = lmu__kern_dot(dy_t, Vv + s * d, d);
            }
            /* dZ_v = (a dy^T) gelu' */
            for (s = 0; s < qp; s++) {
                const float *g = dgv + s * d;
                float *o = dXv + s * d, a_s = a[s];
                for (c = 0; c < d; c++) o[c] = a_s * dy_t[c] * g[c];
            }
            /* dA[r, s] = p_r da_s; softmax backward row by row:
               dS[r, s] = A[r, s] p_r (da_s - sum_s' A[r, s'] da_s') */
            for (r = 0; r < qp; r++) {
                const float *A_r = A + r * qp;
                float g = 0.0f, w = pw[r] * scale;
                for (s = 0; s < qp; s++) g += A_r[s] * da[s];
                dpp[pp * qp + r] = g;
                for (s = 0; s < qp; s++) {
                    float v = A_r[s] * (da[s] - g) * w;
                    dS[r * qp + s] = v;
                    dSt[s * qp + r] = v;
                }
            }
            lmu__iattn_attn_mm(dX, dS, K, dg, qp, d, row);
            lmu__iattn_attn_mm(dX + qp * d, dSt, Q, dg + qp * d, qp, d, row);
            if (accumulate) lmu__iattn_attn_put(dZ + pp * m, dX, m, 1);
        }
        if (!accumulate && hi > lo)
            lmu__iattn_attn_put(dZ + (hi - 1) * m, dXs + ((hi - 1 - lo) & 1) * lmu__kern_round16(m),
                              m, 0);
#ifdef LMU__ISA_AVX512
        _mm_sfence(); /* the streamed dZ is visible before the parts join */
#endif
    }
    for (pos = 0; pos < npos; pos++) {
        size_t r;
        for (r = 0; r < qp; r++) dp[r] += dpp[pos * qp + r];
    }
}

/* ---------------------------------------------------------------------- */
/* implicit self-attention: the tape op                                    */
/* ---------------------------------------------------------------------- */
/* y (B, T, d) = attention over gelu(conv(U, L H) + b), read out with p
   (docs/MODEL.md section 2); U (B, T, d), L (3, q', q), b (3, q'),
   p (q'), lti the layer's memory (its H spectrum and FFT plan; it never
   moves, so the record keeps it in aux).
   Z = conv(U, L H) + b is n x 3 q' x d per sequence, by far the largest
   tensor of the model (441 MB per layer for lmu-1m at batch 8), so it is
   never kept: the op runs one sequence at a time through a Z buffer of one
   sequence, and backward rebuilds each sequence's Z from U before it needs
   it. Only the q' x q' attention weights per position are cached. The
   price is one more convolution per step; the reward is memory that does
   not grow with the batch (the paper's O(n) training memory).
   Scratch: Z, dZ and the spectra of one sequence, then the kernels'. */
LMU__PRIVATE size_t lmu__iattn_z_floats(size_t T, size_t d, size_t qp)
{
    return (T * 3 * qp * d + 15) & ~(size_t)15;
}

/* The op's buffers in order (Z, dZ, the spectra, the kernels' scratch):
   where each starts in scratch, in floats; returns the floats in all. */
LMU__PRIVATE size_t lmu__iattn_layout(const lmu_lti *lti, size_t T, size_t d, size_t qp,
                                      int nparts, size_t at[4])
{
    size_t conv = lmu__iattn_conv_scratch_floats(lti->plan, qp, nparts);
    size_t attn = lmu__iattn_attn_scratch_floats(T, qp, d, nparts);
    at[0] = 0, at[1] = lmu__iattn_z_floats(T, d, qp), at[2] = 2 * at[1];
    at[3] = at[2] + ((lmu__iattn_conv_cache_floats(1, d, qp, (size_t)lti->nfft) + 15) & ~(size_t)15);
    return at[3] + (conv > attn ? conv : attn);
}

LMU__PRIVATE size_t lmu__iattn_scratch_floats(const lmu_lti *lti, size_t T, size_t d, size_t qp,
                                              int nparts)
{
    size_t at[4];
    return lmu__iattn_layout(lti, T, d, qp, nparts, at);
}

LMU__PRIVATE lmu_result lmu__tape_iattn(lmu_tape *t, const lmu_lti *lti, int U, int L, int bias,
                                        int p, int *y)
{
    int in[4], pc = -1, k, B, T, d, q, qp;
    size_t b, n;
    size_t at[4];
    float *Z, *cache, *yv, *Pc, *ks;
    const float *Uv, *Lv, *bv, *pv;
    lmu_tape_rec *rec;
    lmu_result r;
    in[0] = U, in[1] = L, in[2] = bias, in[3] = p;
    for (k = 0; k < 4; k++)
        if (!lmu__tape_valid(t, in[k])) return lmu__tape_fail(t, LMU_ERR_ARG, "implicit_attention: bad id");
    B = t->tensors[U].shape[0], T = t->tensors[U].shape[1], d = t->tensors[U].shape[2];
    qp = t->tensors[L].shape[1], q = t->tensors[L].shape[2], n = (size_t)T;
    if (!lti || t->tensors[U].ndim != 3 || t->tensors[L].ndim != 3 || t->tensors[L].shape[0] != 3 ||
        q != lti->q || T > lti->n || t->tensors[bias].size != 3 * (size_t)qp ||
        t->tensors[p].size != (size_t)qp)
        return lmu__tape_fail(t, LMU_ERR_SHAPE, "implicit_attention: U (B, T <= n, d), L (3, q', q), "
                              "b (3, q'), p (q') and the memory's q do not fit");
    if ((r = lmu__tape_kernel_check(t, lmu__iattn_layout(lti, n, (size_t)d, (size_t)qp, t->nparts, at),
                                    "implicit_attention")))
        return r;
    if ((r = lmu__tape_fused(t, LMU_OP_IMPLICIT_ATTENTION, 4, in, 3, t->tensors[U].shape, y, &rec)) !=
            LMU_OK ||
        (r = lmu__tape_cache(t, (size_t)B * n * (size_t)qp * (size_t)qp, &pc)) != LMU_OK)
        return r;
    rec->ip[0] = B, rec->ip[1] = T, rec->ip[2] = d, rec->ip[3] = q, rec->ip[4] = qp;
    rec->cache[0] = pc;
    rec->aux = lti;
    Uv = lmu__tape_f32(t, U), Lv = lmu__tape_f32(t, L), bv = lmu__tape_f32(t, bias);
    pv = lmu__tape_f32(t, p), yv = lmu__tape_f32(t, *y), Pc = lmu__tape_f32(t, pc);
    Z = t->scratch + at[0], cache = t->scratch + at[2], ks = t->scratch + at[3];
    lmu__iattn_conv_htil(cache, lti->Hspec, Lv, 1, (size_t)d, (size_t)q, (size_t)qp, lti->plan,
                         t->gemm_ws);
    for (b = 0; b < (size_t)B; b++) {
        lmu__iattn_conv_signals(Z, cache, Uv + b * n * (size_t)d, bv, 1, n, (size_t)d, (size_t)qp,
                                lti->plan, t->nparts, ks);
        lmu__iattn_attn_forward(yv + b * n * (size_t)d, Pc + b * n * (size_t)qp * (size_t)qp, Z, pv,
                                n, (size_t)qp, (size_t)d, t->nparts, ks);
    }
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__tape_iattn_backward(lmu_tape *t, const lmu_tape_rec *rec)
{
    size_t B = (size_t)rec->ip[0], T = (size_t)rec->ip[1], d = (size_t)rec->ip[2];
    size_t q = (size_t)rec->ip[3], qp = (size_t)rec->ip[4], b;
    const lmu_lti *lti = (const lmu_lti *)rec->aux;
    const float *U = lmu__tape_f32(t, rec->in[0]), *L = lmu__tape_f32(t, rec->in[1]);
    const float *bias = lmu__tape_f32(t, rec->in[2]), *p = lmu__tape_f32(t, rec->in[3]);
    const float *Pc = lmu__tape_f32(t, rec->cache[0]), *dy = lmu__tape_g32(t, rec->out);
    float *dU = lmu__tape_g32(t, rec->in[0]), *dL = lmu__tape_g32(t, rec->in[1]);
    float *db = lmu__tape_g32(t, rec->in[2]), *dp = lmu__tape_g32(t, rec->in[3]);
    size_t at[4];
    float *Z, *dZ, *cache, *ks;
    if (!dU || !dL || !db || !dp)
        return lmu__tape_fail(t, LMU_ERR_STATE, "implicit_attention: inputs need grads");
    lmu__iattn_layout(lti, T, d, qp, t->nparts, at);
    Z = t->scratch + at[0], dZ = t->scratch + at[1], cache = t->scratch + at[2], ks = t->scratch + at[3];
    lmu__iattn_conv_htil(cache, lti->Hspec, L, 1, d, q, qp, lti->plan, t->gemm_ws);
    for (b = 0; b < B; b++) {
        lmu__iattn_conv_signals(Z, cache, U + b * T * d, bias, 1, T, d, qp, lti->plan, t->nparts,
                                ks);
        /* dZ is written over, so it needs no clearing */
        lmu__iattn_attn_backward(dZ, dp, dy + b * T * d, Z, Pc + b * T * qp * qp, p, T, qp, d,
                                 t->nparts, ks, 0);
        lmu__iattn_conv_backward(dU + b * T * d, dL, db, dZ, cache, lti->Hspec, 1, T, d, q, qp,
                                 lti->plan, t->gemm_ws, t->nparts, ks);
    }
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
        float lr_x = x->lr_scale > 0 ? lr * x->lr_scale : lr;
        long i;
        if (x->frozen) continue;
        LMU__OMP(omp parallel for schedule(static))
        for (i = 0; i < (long)x->size; i++) {
            float gi = g[i];
            float mi = b1 * m[i] + (1.0f - b1) * gi;
            float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            w[i] -= lr_x * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + wd * w[i]);
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

/* ---------------------------------------------------------------------- */
/* >>lmu (implementation)                                                  */
/* ---------------------------------------------------------------------- */

#ifdef __cplusplus
#define LMU__LTI_R __restrict
#else
#define LMU__LTI_R restrict
#endif

/* Z = X Y for n x n row-major doubles. i-k-j order, so the inner loop is a
   contiguous axpy the compiler vectorises; rows in parallel (disjoint). */
LMU__PRIVATE void lmu__lti_matmul(int n, const double *LMU__LTI_R X,
                                  const double *LMU__LTI_R Y, double *LMU__LTI_R Z)
{
    int i;
    LMU__OMP(omp parallel for schedule(static) if (n >= 96))
    for (i = 0; i < n; i++) {
        double *z = Z + (size_t)i * (size_t)n;
        int j, k;
        for (j = 0; j < n; j++) z[j] = 0.0;
        for (k = 0; k < n; k++) {
            const double a = X[(size_t)i * (size_t)n + (size_t)k];
            const double *y = Y + (size_t)k * (size_t)n;
            if (a == 0.0) continue;
            for (j = 0; j < n; j++) z[j] += a * y[j];
        }
    }
}

/* Solves Q X = P in place (P becomes X) by Gaussian elimination with partial
   pivoting; Q is destroyed. Returns 0 if Q is singular to working
   precision. */
LMU__PRIVATE int lmu__lti_solve(int n, double *Q, double *P)
{
    int i, j, k;
    for (k = 0; k < n; k++) {
        int piv = k;
        double best = fabs(Q[(size_t)k * (size_t)n + (size_t)k]), inv;
        for (i = k + 1; i < n; i++) {
            double v = fabs(Q[(size_t)i * (size_t)n + (size_t)k]);
            if (v > best) { best = v; piv = i; }
        }
        if (!(best > 0.0) || best > DBL_MAX) return 0;
        if (piv != k) {
            double *a = Q + (size_t)k * (size_t)n, *b = Q + (size_t)piv * (size_t)n;
            double *c = P + (size_t)k * (size_t)n, *e = P + (size_t)piv * (size_t)n, t;
            for (j = 0; j < n; j++) { t = a[j]; a[j] = b[j]; b[j] = t; }
            for (j = 0; j < n; j++) { t = c[j]; c[j] = e[j]; e[j] = t; }
        }
        inv = 1.0 / Q[(size_t)k * (size_t)n + (size_t)k];
        for (i = k + 1; i < n; i++) {
            double f = Q[(size_t)i * (size_t)n + (size_t)k] * inv;
            const double *qk = Q + (size_t)k * (size_t)n, *pk = P + (size_t)k * (size_t)n;
            double *qi = Q + (size_t)i * (size_t)n, *pi = P + (size_t)i * (size_t)n;
            if (f == 0.0) continue;
            qi[k] = 0.0;
            for (j = k + 1; j < n; j++) qi[j] -= f * qk[j];
            for (j = 0; j < n; j++) pi[j] -= f * pk[j];
        }
    }
    for (k = n - 1; k >= 0; k--) {
        double *pk = P + (size_t)k * (size_t)n;
        double inv = 1.0 / Q[(size_t)k * (size_t)n + (size_t)k];
        for (i = k + 1; i < n; i++) {
            double f = Q[(size_t)k * (size_t)n + (size_t)i];
            const double *p = P + (size_t)i * (size_t)n;
            if (f == 0.0) continue;
            for (j = 0; j < n; j++) pk[j] -= f * p[j];
        }
        for (j = 0; j < n; j++) pk[j] *= inv;
    }
    return 1;
}

/* E = expm(M) for n x n row-major doubles: Higham's scaling and squaring
   (SIAM J. Matrix Anal. Appl. 26(4), 2005, Algorithm 2.3). The Pade degree
   m in {3,5,7,9,13} is the smallest whose theta_m bounds ||M||_1; beyond
   theta_13, M is scaled by 2^-s into range and the result squared s times.
   E may alias nothing. Returns LMU_ERR_RANGE for a non-finite norm, more
   than 64 squarings or a singular denominator, LMU_ERR_NOMEM. */
LMU__PRIVATE lmu_result lmu__lti_expm(int n, const double *M, double *E)
{
    /* theta_m of Higham 2005, Table 2.3 (backward error <= 2^-53). */
    static const double theta_m[5] = {1.495585217958292e-2, 2.539398330063230e-1,
                                      9.504178996162932e-1, 2.097847961257068e0,
                                      5.371920351148152e0};
    static const int degree[5] = {3, 5, 7, 9, 13};
    size_t nn = (size_t)n * (size_t)n, k;
    double norm = 0.0, b[14], *w, *X, *X2, *X4, *X6, *X8, *U, *V, *T, *P;
    int m = 13, s = 0, i, j;

    if (n < 1) return LMU_ERR_ARG;
    for (j = 0; j < n; j++) {
        double col = 0.0;
        for (i = 0; i < n; i++) col += fabs(M[(size_t)i * (size_t)n + (size_t)j]);
        if (col > norm || col != col) norm = col;
    }
    if (!(norm <= DBL_MAX)) return LMU_ERR_RANGE;
    for (i = 0; i < 5; i++)
        if (norm <= theta_m[i]) { m = degree[i]; break; }
    if (norm > theta_m[4]) {
        while (ldexp(norm, -s) > theta_m[4]) {
            if (++s > 64) return LMU_ERR_RANGE;
        }
    }

    /* Pade [m/m] numerator p(x) = sum_j b_j x^j with b_0 = 1 and
       b_j = b_{j-1} (m-j+1) / ((2m-j+1) j); the denominator is p(-x). */
    b[0] = 1.0;
    for (j = 1; j <= m; j++) b[j] = b[j - 1] * (double)(m - j + 1) / ((double)(2 * m - j + 1) * j);

    w = (double *)LMU_MALLOC(9 * nn * sizeof(double));
    if (!w) return LMU_ERR_NOMEM;
    X = w; X2 = X + nn; X4 = X2 + nn; X6 = X4 + nn; X8 = X6 + nn;
    U = X8 + nn; V = U + nn; T = V + nn; P = T + nn;

    for (k = 0; k < nn; k++) X[k] = ldexp(M[k], -s);
    lmu__lti_matmul(n, X, X, X2);
    if (m >= 5) lmu__lti_matmul(n, X2, X2, X4);
    if (m >= 7) lmu__lti_matmul(n, X4, X2, X6);
    if (m == 9) lmu__lti_matmul(n, X4, X4, X8);

    if (m <= 9) {
        /* T = sum_{odd j} b_j X^(j-1), V = sum_{even j} b_j X^j. */
        const double *pw[5];
        pw[0] = NULL; pw[1] = X2; pw[2] = X4; pw[3] = X6; pw[4] = X8;
        for (k = 0; k < nn; k++) { T[k] = 0.0; V[k] = 0.0; }
        for (j = 1; j <= m; j++) {
            const double *pj = pw[j / 2];
            double *acc = (j & 1) ? T : V;
            if (j / 2 == 0) continue;
            for (k = 0; k < nn; k++) acc[k] += b[j] * pj[k];
        }
        for (i = 0; i < n; i++) {
            T[(size_t)i * (size_t)n + (size_t)i] += b[1];
            V[(size_t)i * (size_t)n + (size_t)i] += b[0];
        }
    } else {
        /* Higham's evaluation with three extra products:
           U = X [X6 (b13 X6 + b11 X4 + b9 X2) + b7 X6 + b5 X4 + b3 X2 + b1 I]
           V =    X6 (b12 X6 + b10 X4 + b8 X2) + b6 X6 + b4 X4 + b2 X2 + b0 I */
        for (k = 0; k < nn; k++) P[k] = b[13] * X6[k] + b[11] * X4[k] + b[9] * X2[k];
        lmu__lti_matmul(n, X6, P, T);
        for (k = 0; k < nn; k++) T[k] += b[7] * X6[k] + b[5] * X4[k] + b[3] * X2[k];
        for (k = 0; k < nn; k++) P[k] = b[12] * X6[k] + b[10] * X4[k] + b[8] * X2[k];
        lmu__lti_matmul(n, X6, P, V);
        for (k = 0; k < nn; k++) V[k] += b[6] * X6[k] + b[4] * X4[k] + b[2] * X2[k];
        for (i = 0; i < n; i++) {
            T[(size_t)i * (size_t)n + (size_t)i] += b[1];
            V[(size_t)i * (size_t)n + (size_t)i] += b[0];
        }
    }
    lmu__lti_matmul(n, X, T, U);

    /* (V - U) R = (V + U); R lands in P, T holds V - U and is destroyed. */
    for (k = 0; k < nn; k++) {
        T[k] = V[k] - U[k];
        P[k] = V[k] + U[k];
    }
    if (!lmu__lti_solve(n, T, P)) {
        LMU_FREE(w);
        return LMU_ERR_RANGE;
    }
    for (i = 0; i < s; i++) {
        double *src = (i & 1) ? T : P, *dst = (i & 1) ? P : T;
        lmu__lti_matmul(n, src, src, dst);
    }
    memcpy(E, (s & 1) ? T : P, nn * sizeof(double));
    LMU_FREE(w);
    return LMU_OK;
}

LMU__PRIVATE int lmu__lti_theta_ok(double theta)
{
    return theta > 0.0 && theta <= DBL_MAX; /* false for NaN too */
}

LMUDEF lmu_result lmu_lti_discretize(int q, double theta, double *Abar, double *Bbar)
{
    int i, j, n1 = q + 1;
    double *M, *E;
    lmu_result r;
    if (!Abar || !Bbar || q < 1 || !lmu__lti_theta_ok(theta)) return LMU_ERR_ARG;
    if (q > LMU_LTI_MAX_Q) return LMU_ERR_RANGE;
    M = (double *)LMU_MALLOC(2 * (size_t)n1 * (size_t)n1 * sizeof(double));
    if (!M) return LMU_ERR_NOMEM;
    E = M + (size_t)n1 * (size_t)n1;
    /* Block matrix [[A, B], [0, 0]]. */
    for (i = 0; i < n1; i++)
        for (j = 0; j < n1; j++) {
            double v = 0.0;
            if (i < q) {
                double s = (2.0 * i + 1.0) / theta;
                if (j == q) v = (i & 1) ? -s : s;
                else if (i < j) v = -s;
                else v = ((i - j) & 1) ? s : -s;
            }
            M[(size_t)i * (size_t)n1 + (size_t)j] = v;
        }
    r = lmu__lti_expm(n1, M, E);
    if (r == LMU_OK) {
        for (i = 0; i < q; i++) {
            for (j = 0; j < q; j++) Abar[(size_t)i * (size_t)q + (size_t)j] = E[(size_t)i * (size_t)n1 + (size_t)j];
            Bbar[i] = E[(size_t)i * (size_t)n1 + (size_t)q];
        }
    }
    LMU_FREE(M);
    return r;
}

/* Running byte offset of a 64-byte aligned sub-block; 0 on overflow. */
LMU__PRIVATE int lmu__lti_take(size_t *at, size_t count, size_t elem, size_t *off)
{
    size_t bytes;
    if (!lmu__mul_size(count, elem, &bytes)) return 0;
    if (bytes > (size_t)-1 - 64 - *at) return 0;
    *off = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return 1;
}

LMUDEF lmu_result lmu_lti_create(lmu_lti **out, int q, double theta, int n)
{
    size_t at = 0, o_self, o_ad, o_bd, o_af, o_bf, o_h, o_hs, o_plan, plan_bytes;
    size_t nfft, qq, qn, nthreads, scr_each, nq, i;
    unsigned char *mem;
    lmu_lti *L;
    double *AT, *h, *hn, *scr_d;
    float *scr;
    lmu_result r;
    int k, bad = 0;

    if (!out) return LMU_ERR_ARG;
    *out = NULL;
    if (q < 1 || n < 1 || !lmu__lti_theta_ok(theta)) return LMU_ERR_ARG;
    if (q > LMU_LTI_MAX_Q || n > LMU_LTI_MAX_N) return LMU_ERR_RANGE;
    if (!lmu__mul_size((size_t)q, (size_t)n, &qn) || qn > LMU_LTI_MAX_ELEMS) return LMU_ERR_RANGE;
    nfft = lmu_fft_conv_len((size_t)n);
    if (nfft == 0 || nfft > (size_t)0x40000000) return LMU_ERR_RANGE;
    if (lmu_fft_plan_bytes(nfft, LMU_FFT_REAL, &plan_bytes) != LMU_FFT_OK) return LMU_ERR_FFT;
    qq = (size_t)q * (size_t)q;
    nq = (size_t)q;

    if (!lmu__lti_take(&at, 1, sizeof(lmu_lti), &o_self) ||
        !lmu__lti_take(&at, qq, sizeof(double), &o_ad) ||
        !lmu__lti_take(&at, nq, sizeof(double), &o_bd) ||
        !lmu__lti_take(&at, qq, sizeof(float), &o_af) ||
        !lmu__lti_take(&at, nq, sizeof(float), &o_bf) ||
        !lmu__lti_take(&at, qn, sizeof(float), &o_h) ||
        !lmu__lti_take(&at, nq, (nfft + 2) * sizeof(float), &o_hs) ||
        !lmu__lti_take(&at, 1, plan_bytes, &o_plan))
        return LMU_ERR_RANGE;
    mem = (unsigned char *)lmu__alloc_aligned(at);
    if (!mem) return LMU_ERR_NOMEM;
    L = (lmu_lti *)(mem + o_self);
    memset(L, 0, sizeof *L);
    L->q = q;
    L->n = n;
    L->theta = theta;
    L->nfft = (int)nfft;
    L->nbins = (int)(nfft / 2 + 1);
    L->spec_stride = nfft + 2;
    L->Abar_d = (double *)(mem + o_ad);
    L->Bbar_d = (double *)(mem + o_bd);
    L->Abar = (float *)(mem + o_af);
    L->Bbar = (float *)(mem + o_bf);
    L->H = (float *)(mem + o_h);
    L->Hspec = (float *)(mem + o_hs);
    if (lmu_fft_plan_init(&L->plan, nfft, LMU_FFT_REAL, mem + o_plan, plan_bytes) != LMU_FFT_OK) {
        lmu__free_aligned(mem);
        return LMU_ERR_FFT;
    }

    r = lmu_lti_discretize(q, theta, L->Abar_d, L->Bbar_d);
    if (r != LMU_OK) {
        lmu__free_aligned(mem);
        return r;
    }
    for (i = 0; i < qq; i++) L->Abar[i] = (float)L->Abar_d[i];
    for (i = 0; i < nq; i++) L->Bbar[i] = (float)L->Bbar_d[i];

    /* H[:, k] = Abar^k Bbar by iterated products in double. The product is
       h' = sum_j Abar[:, j] h[j] over the transposed copy AT, an axpy the
       compiler vectorises (a row-dot form would need reassociation). */
    scr_d = (double *)LMU_MALLOC((qq + 2 * nq) * sizeof(double));
    if (!scr_d) {
        lmu__free_aligned(mem);
        return LMU_ERR_NOMEM;
    }
    AT = scr_d; h = AT + qq; hn = h + nq;
    for (i = 0; i < nq; i++) {
        size_t j;
        for (j = 0; j < nq; j++) AT[j * nq + i] = L->Abar_d[i * nq + j];
        h[i] = L->Bbar_d[i];
    }
    for (k = 0; k < n; k++) {
        size_t j;
        double *t;
        for (i = 0; i < nq; i++) L->H[i * (size_t)n + (size_t)k] = (float)h[i];
        if (k == n - 1) break;
        for (i = 0; i < nq; i++) hn[i] = 0.0;
        for (j = 0; j < nq; j++) {
            const double hj = h[j], *a = AT + j * nq;
            for (i = 0; i < nq; i++) hn[i] += a[i] * hj;
        }
        t = h; h = hn; hn = t;
    }
    LMU_FREE(scr_d);

    /* Hspec: one spectrum per row, rows in parallel with per-thread scratch. */
    nthreads = (size_t)lmu__thread_count();
    scr_each = lmu_fft_scratch_floats(L->plan);
    scr = (float *)lmu__alloc_aligned(nthreads * scr_each * sizeof(float));
    if (!scr) {
        lmu__free_aligned(mem);
        return LMU_ERR_NOMEM;
    }
    LMU__OMP(omp parallel for schedule(static) reduction(| : bad))
    for (k = 0; k < q; k++) {
        float *my = scr + (size_t)lmu__thread_id() * scr_each;
        if (lmu_fft_conv_spectrum(L->plan, L->H + (size_t)k * (size_t)n, (size_t)n,
                                  L->Hspec + (size_t)k * L->spec_stride, my) != LMU_FFT_OK)
            bad |= 1;
    }
    lmu__free_aligned(scr);
    if (bad) {
        lmu__free_aligned(mem);
        return LMU_ERR_FFT;
    }
    *out = L;
    return LMU_OK;
}

LMUDEF void lmu_lti_free(lmu_lti *lti)
{
    /* The struct sits at the start of its own block; the plan was built
       inside it with lmu_fft_plan_init and needs no destroy. */
    lmu__free_aligned(lti);
}

LMUDEF int lmu_lti_matches(const lmu_lti *lti, int q, double theta, int n)
{
    return lti && lti->q == q && lti->n == n && lti->theta == theta;
}

/* True if [a, a+na) and [b, b+nb) (bytes) overlap. Compared as integers:
   relational operators on pointers into different objects are undefined. */
LMU__PRIVATE int lmu__lti_overlap(const void *a, size_t na, const void *b, size_t nb)
{
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    if (!a || !b) return 0;
    return pa < pb + nb && pb < pa + na;
}

/* The recurrence as written, m_out = Abar m_prev + Bbar x^T, in float and
   in double: references (test_lti holds them against the convolution and
   each other). Generation runs the same step as one packed product
   (lmu__gen_memory), which is what is fast. */
#define LMU__LTI_STEP(T, Abar, Bbar)                                           \
    size_t qd, bytes, c;                                                       \
    int q, i, j;                                                               \
    if (!lti || !x || !m_out || d < 1) return LMU_ERR_ARG;                     \
    q = lti->q;                                                                \
    if (!lmu__mul_size((size_t)q, (size_t)d, &qd) || !lmu__mul_size(qd, sizeof(T), &bytes)) \
        return LMU_ERR_RANGE;                                                  \
    if (lmu__lti_overlap(m_out, bytes, m_prev, bytes) ||                       \
        lmu__lti_overlap(m_out, bytes, x, (size_t)d * sizeof(T)))              \
        return LMU_ERR_ARG;                                                    \
    for (i = 0; i < q; i++) {                                                  \
        T *o = m_out + (size_t)i * (size_t)d;                                  \
        const T *a = lti->Abar + (size_t)i * (size_t)q;                        \
        for (c = 0; c < (size_t)d; c++) o[c] = lti->Bbar[i] * x[c];            \
        if (!m_prev) continue;                                                 \
        for (j = 0; j < q; j++) {                                              \
            const T s = a[j], *mj = m_prev + (size_t)j * (size_t)d;            \
            for (c = 0; c < (size_t)d; c++) o[c] += s * mj[c];                 \
        }                                                                      \
    }                                                                          \
    return LMU_OK

LMUDEF lmu_result lmu_lti_step(const lmu_lti *lti, int d, const float *m_prev,
                               const float *x, float *m_out)
{
    LMU__LTI_STEP(float, Abar, Bbar);
}

LMUDEF lmu_result lmu_lti_step_d(const lmu_lti *lti, int d, const double *m_prev,
                                 const double *x, double *m_out)
{
    LMU__LTI_STEP(double, Abar_d, Bbar_d);
}
#undef LMU__LTI_STEP

/* ---------------------------------------------------------------------- */
/* >>safetensors (implementation)                                          */
/* ---------------------------------------------------------------------- */

/* POSIX gives open(O_EXCL)/fsync for the atomic save. unistd.h declares them
   even under strict -std=c99 (glibc, macOS), so no feature macro is needed
   and none is defined: one here would come too late after lmu.h's own
   includes anyway. LMU_ST_NO_POSIX forces the plain-stdio fallback (for
   testing it on a POSIX machine). */
#if !defined(LMU_NO_STDIO) && !defined(LMU_ST_NO_POSIX) &&                      \
    (defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__)))
#define LMU__ST_POSIX 1
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#else
#define LMU__ST_POSIX 0
#endif

#define LMU__ST_MAX_HEADER ((size_t)100000000) /* the reference reader's cap */
#define LMU__ST_MAX_DEPTH 64

/* ---- dtypes ----------------------------------------------------------- */

LMUDEF size_t lmu_st_dtype_size(lmu_st_dtype d)
{
    switch (d) {
#define LMU__ST_DTYPE_SIZE(e, s, sz)                                           \
    case e: return sz;
        LMU__ST_DTYPES(LMU__ST_DTYPE_SIZE)
#undef LMU__ST_DTYPE_SIZE
    default: return 0;
    }
}

LMUDEF const char *lmu_st_dtype_name(lmu_st_dtype d)
{
    switch (d) {
#define LMU__ST_DTYPE_NAME(e, s, sz)                                           \
    case e: return s;
        LMU__ST_DTYPES(LMU__ST_DTYPE_NAME)
#undef LMU__ST_DTYPE_NAME
    default: return "?";
    }
}

/* name need not be NUL-terminated: len bytes are compared. */
LMU__PRIVATE lmu_st_dtype lmu__st_dtype_lookup(const char *name, size_t len)
{
    int d;
    for (d = 1; d < (int)LMU_ST_DTYPE_COUNT; d++) {
        const char *s = lmu_st_dtype_name((lmu_st_dtype)d);
        if (strlen(s) == len && memcmp(s, name, len) == 0) return (lmu_st_dtype)d;
    }
    return LMU_ST_INVALID;
}

LMUDEF lmu_st_dtype lmu_st_dtype_from_name(const char *name)
{
    if (!name) return LMU_ST_INVALID;
    return lmu__st_dtype_lookup(name, strlen(name));
}

/* ---- small helpers ---------------------------------------------------- */

/* Byte order probed through memcpy, never through a pointer cast. */
LMU__PRIVATE int lmu__st_host_le(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

LMU__PRIVATE uint64_t lmu__st_get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    while (n--) v = (v << 8) | p[n];
    return v;
}

/* Reverses each size-byte element of src into dst (count elements). */
LMU__PRIVATE void lmu__st_swap(unsigned char *dst, const unsigned char *src, size_t count,
                               size_t size)
{
    size_t i, k;
    for (i = 0; i < count; i++)
        for (k = 0; k < size; k++) dst[i * size + k] = src[i * size + size - 1 - k];
}

LMU__PRIVATE int lmu__st_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = lmu__utf8_len(p + i, n - i, &cp);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

/* prod(shape) * esize into *out; 0 on overflow. A zero dimension makes the
   product 0 whatever the others are. */
LMU__PRIVATE int lmu__st_nbytes(const size_t *shape, int ndim, size_t esize, size_t *out)
{
    size_t n = esize;
    int i;
    for (i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            *out = 0;
            return 1;
        }
    for (i = 0; i < ndim; i++)
        if (!lmu__mul_size(n, shape[i], &n)) return 0;
    *out = n;
    return 1;
}

/* Formats "[2, 3]" into buf (truncating safely). */
LMU__PRIVATE void lmu__st_shape_str(char *buf, size_t cap, const size_t *shape, int ndim)
{
    size_t used = 0;
    int i;
    if (cap == 0) return;
    buf[0] = 0;
    for (i = -1; i <= ndim && used + 1 < cap; i++) {
        int w;
        if (i == -1) w = snprintf(buf + used, cap - used, "[");
        else if (i == ndim) w = snprintf(buf + used, cap - used, "]");
        else
            w = snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "",
                         (unsigned long long)shape[i]);
        if (w < 0) break;
        used += (size_t)w;
        if (used >= cap) used = cap - 1;
    }
}

/* ====================================================================== */
/* Writer                                                                  */
/* ====================================================================== */

/* The header is produced twice: once with buf == NULL to measure it, once
   into a buffer of exactly that size. */
typedef struct lmu__st_out {
    char *buf;
    size_t len;
} lmu__st_out;

LMU__PRIVATE void lmu__st_put(lmu__st_out *o, const char *s, size_t n)
{
    if (o->buf) memcpy(o->buf + o->len, s, n);
    o->len += n;
}

LMU__PRIVATE void lmu__st_puts(lmu__st_out *o, const char *s) { lmu__st_put(o, s, strlen(s)); }

LMU__PRIVATE void lmu__st_put_uint(lmu__st_out *o, size_t v)
{
    char tmp[3 * sizeof(size_t) + 1];
    size_t n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    lmu__st_put(o, tmp + sizeof tmp - n, n);
}

/* A JSON string literal; s is valid UTF-8 (checked earlier). */
LMU__PRIVATE void lmu__st_put_str(lmu__st_out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    lmu__st_put(o, "\"", 1);
    for (; *p; p++) {
        char e[6];
        if (*p == '"') lmu__st_put(o, "\\\"", 2);
        else if (*p == '\\') lmu__st_put(o, "\\\\", 2);
        else if (*p == '\n') lmu__st_put(o, "\\n", 2);
        else if (*p == '\t') lmu__st_put(o, "\\t", 2);
        else if (*p == '\r') lmu__st_put(o, "\\r", 2);
        else if (*p < 0x20) {
            e[0] = '\\'; e[1] = 'u'; e[2] = '0'; e[3] = '0';
            e[4] = hex[*p >> 4]; e[5] = hex[*p & 15];
            lmu__st_put(o, e, 6);
        } else
            lmu__st_put(o, (const char *)p, 1);
    }
    lmu__st_put(o, "\"", 1);
}

LMU__PRIVATE int lmu__st_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks the description; on success *data_len is the data section size. */
/* A string that occurs twice among names[0..n) (sorted in place), or NULL. */
LMU__PRIVATE const char *lmu__st_first_dup(const char **names, size_t n)
{
    size_t i;
    qsort((void *)names, n, sizeof *names, lmu__st_cmp_str);
    for (i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

LMU__PRIVATE lmu_result lmu__st_check_desc(const lmu_st_tensor *t, size_t nt,
                                           const lmu_st_meta *m, size_t nm,
                                           size_t *data_len, char *err, size_t errcap)
{
    size_t i, total = 0, nmax = nt > nm ? nt : nm;
    const char **names;
    lmu_result r = LMU_OK;
    if ((nt && !t) || (nm && !m)) {
        lmu__errf(err, errcap, "safetensors write: NULL tensor or metadata array");
        return LMU_ERR_ARG;
    }
    for (i = 0; i < nt; i++) {
        size_t nb, es = lmu_st_dtype_size(t[i].dtype);
        if (!t[i].name) {
            lmu__errf(err, errcap, "safetensors write: tensor %llu has no name", (unsigned long long)i);
            return LMU_ERR_ARG;
        }
        if (!lmu__st_utf8_valid(t[i].name) || strcmp(t[i].name, "__metadata__") == 0) {
            lmu__errf(err, errcap, "safetensors write: tensor %llu: name '%.64s' is not valid UTF-8 or is reserved",
                      (unsigned long long)i, t[i].name);
            return LMU_ERR_ARG;
        }
        if (strlen(t[i].name) > LMU__ST_MAX_HEADER / 8) {
            lmu__errf(err, errcap, "safetensors write: tensor %llu: name too long", (unsigned long long)i);
            return LMU_ERR_ARG;
        }
        if (es == 0) {
            lmu__errf(err, errcap, "safetensors write: tensor '%.64s': invalid dtype %d", t[i].name,
                      (int)t[i].dtype);
            return LMU_ERR_ARG;
        }
        if (t[i].ndim < 0 || t[i].ndim > LMU_ST_MAX_DIMS) {
            lmu__errf(err, errcap, "safetensors write: tensor '%.64s': ndim %d not in 0..%d",
                      t[i].name, t[i].ndim, LMU_ST_MAX_DIMS);
            return LMU_ERR_ARG;
        }
        if (!lmu__st_nbytes(t[i].shape, t[i].ndim, es, &nb) || total > (size_t)-1 - nb) {
            lmu__errf(err, errcap, "safetensors write: tensor '%.64s': size overflows size_t", t[i].name);
            return LMU_ERR_ARG;
        }
        if (nb && !t[i].data) {
            lmu__errf(err, errcap, "safetensors write: tensor '%.64s': data is NULL", t[i].name);
            return LMU_ERR_ARG;
        }
        total += nb;
    }
    for (i = 0; i < nm; i++) {
        if (!m[i].key || !m[i].value || !lmu__st_utf8_valid(m[i].key) ||
            !lmu__st_utf8_valid(m[i].value) || strlen(m[i].key) > LMU__ST_MAX_HEADER / 8 ||
            strlen(m[i].value) > LMU__ST_MAX_HEADER / 8) {
            lmu__errf(err, errcap, "safetensors write: metadata %llu: key or value NULL, too long or not valid UTF-8",
                      (unsigned long long)i);
            return LMU_ERR_ARG;
        }
    }
    /* uniqueness: sort copies of the pointers */
    if (nmax > 1) {
        size_t bytes;
        names = lmu__mul_size(nmax, sizeof *names, &bytes) ? (const char **)LMU_MALLOC(bytes) : NULL;
        if (!names) {
            lmu__errf(err, errcap, "safetensors write: out of memory");
            return LMU_ERR_NOMEM;
        }
        const char *dup;
        for (i = 0; i < nt; i++) names[i] = t[i].name;
        if ((dup = lmu__st_first_dup(names, nt)) != NULL) {
            lmu__errf(err, errcap, "safetensors write: duplicate tensor name '%.64s'", dup);
            r = LMU_ERR_ARG;
        }
        for (i = 0; i < nm; i++) names[i] = m[i].key;
        if (r == LMU_OK && (dup = lmu__st_first_dup(names, nm)) != NULL) {
            lmu__errf(err, errcap, "safetensors write: duplicate metadata key '%.64s'", dup);
            r = LMU_ERR_ARG;
        }
        LMU_FREE((void *)names);
    }
    *data_len = total;
    return r;
}

/* Emits the JSON header (unpadded). Returns 0 when it passes the cap. */
LMU__PRIVATE int lmu__st_emit_header(lmu__st_out *o, const lmu_st_tensor *t, size_t nt,
                                     const lmu_st_meta *m, size_t nm)
{
    size_t i, off = 0;
    int d, first = 1;
    lmu__st_puts(o, "{");
    if (nm) {
        lmu__st_puts(o, "\"__metadata__\":{");
        for (i = 0; i < nm; i++) {
            if (i) lmu__st_puts(o, ",");
            lmu__st_put_str(o, m[i].key);
            lmu__st_puts(o, ":");
            lmu__st_put_str(o, m[i].value);
            if (o->len > LMU__ST_MAX_HEADER) return 0;
        }
        lmu__st_puts(o, "}");
        first = 0;
    }
    for (i = 0; i < nt; i++) {
        size_t nb = 0;
        lmu__st_nbytes(t[i].shape, t[i].ndim, lmu_st_dtype_size(t[i].dtype), &nb);
        if (!first) lmu__st_puts(o, ",");
        first = 0;
        lmu__st_put_str(o, t[i].name);
        lmu__st_puts(o, ":{\"dtype\":\"");
        lmu__st_puts(o, lmu_st_dtype_name(t[i].dtype));
        lmu__st_puts(o, "\",\"shape\":[");
        for (d = 0; d < t[i].ndim; d++) {
            if (d) lmu__st_puts(o, ",");
            lmu__st_put_uint(o, t[i].shape[d]);
        }
        lmu__st_puts(o, "],\"data_offsets\":[");
        lmu__st_put_uint(o, off);
        lmu__st_puts(o, ",");
        lmu__st_put_uint(o, off + nb);
        lmu__st_puts(o, "]}");
        off += nb;
        if (o->len > LMU__ST_MAX_HEADER) return 0;
    }
    lmu__st_puts(o, "}");
    return o->len <= LMU__ST_MAX_HEADER;
}

/* Builds "u64 N | header | padding" in one allocation. */
LMU__PRIVATE lmu_result lmu__st_build_header(const lmu_st_tensor *t, size_t nt,
                                             const lmu_st_meta *m, size_t nm,
                                             unsigned char **out, size_t *out_len,
                                             size_t *data_len, char *err, size_t errcap)
{
    lmu__st_out o;
    size_t n, padded, i;
    unsigned char *buf;
    lmu_result r = lmu__st_check_desc(t, nt, m, nm, data_len, err, errcap);
    if (r != LMU_OK) return r;
    o.buf = NULL;
    o.len = 0;
    if (!lmu__st_emit_header(&o, t, nt, m, nm) || o.len > LMU__ST_MAX_HEADER - 8) {
        lmu__errf(err, errcap, "safetensors write: header would exceed the %llu-byte limit",
                  (unsigned long long)LMU__ST_MAX_HEADER);
        return LMU_ERR_ARG;
    }
    n = o.len;
    padded = (n + 7) & ~(size_t)7;
    buf = (unsigned char *)LMU_MALLOC(8 + padded);
    if (!buf) {
        lmu__errf(err, errcap, "safetensors write: out of memory for a %llu-byte header",
                  (unsigned long long)padded);
        return LMU_ERR_NOMEM;
    }
    for (i = 0; i < 8; i++) buf[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xFF);
    o.buf = (char *)buf + 8;
    o.len = 0;
    lmu__st_emit_header(&o, t, nt, m, nm);
    LMU_ASSERT(o.len == n);
    memset(buf + 8 + n, ' ', padded - n);
    *out = buf;
    *out_len = 8 + padded;
    return LMU_OK;
}

/* host_le is a parameter so tests can drive the byte-swapping path on a
   little-endian machine. */
LMU__PRIVATE lmu_result lmu__st_write_ex(const lmu_st_sink *sink, const lmu_st_tensor *t,
                                         size_t nt, const lmu_st_meta *m, size_t nm,
                                         int host_le, char *err, size_t errcap)
{
    unsigned char *hdr = NULL;
    size_t hdr_len = 0, data_len = 0, done, i;
    lmu_result r;
    if (!sink || !sink->write) {
        lmu__errf(err, errcap, "safetensors write: no sink");
        return LMU_ERR_ARG;
    }
    r = lmu__st_build_header(t, nt, m, nm, &hdr, &hdr_len, &data_len, err, errcap);
    if (r != LMU_OK) return r;
    if (sink->write(sink->user, hdr, hdr_len) != 0) {
        LMU_FREE(hdr);
        lmu__errf(err, errcap, "safetensors write: sink failed writing the %llu-byte header",
                  (unsigned long long)hdr_len);
        return LMU_ERR_IO;
    }
    LMU_FREE(hdr);
    done = hdr_len;
    for (i = 0; i < nt; i++) {
        size_t es = lmu_st_dtype_size(t[i].dtype), nb = 0;
        const unsigned char *src = (const unsigned char *)t[i].data;
        int ok = 1;
        lmu__st_nbytes(t[i].shape, t[i].ndim, es, &nb);
        if (nb == 0) continue;
        if (host_le || es == 1) {
            ok = sink->write(sink->user, src, nb) == 0;
            if (ok) done += nb;
        } else {
            unsigned char chunk[4096]; /* a multiple of every element size */
            size_t pos = 0;
            while (ok && pos < nb) {
                size_t k = nb - pos < sizeof chunk ? nb - pos : sizeof chunk;
                lmu__st_swap(chunk, src + pos, k / es, es);
                ok = sink->write(sink->user, chunk, k) == 0;
                if (ok) {
                    pos += k;
                    done += k;
                }
            }
        }
        if (!ok) {
            lmu__errf(err, errcap,
                      "safetensors write: sink failed writing tensor '%.64s' (after %llu of %llu bytes)",
                      t[i].name, (unsigned long long)done, (unsigned long long)(hdr_len + data_len));
            return LMU_ERR_IO;
        }
    }
    return LMU_OK;
}

LMUDEF lmu_result lmu_st_write(const lmu_st_sink *sink, const lmu_st_tensor *tensors,
                               size_t n_tensors, const lmu_st_meta *meta, size_t n_meta,
                               char *err, size_t errcap)
{
    return lmu__st_write_ex(sink, tensors, n_tensors, meta, n_meta, lmu__st_host_le(), err,
                            errcap);
}

typedef struct lmu__st_memsink {
    unsigned char *buf;
    size_t len, cap;
} lmu__st_memsink;

LMU__PRIVATE int lmu__st_memsink_write(void *user, const void *bytes, size_t n)
{
    lmu__st_memsink *ms = (lmu__st_memsink *)user;
    if (n > ms->cap - ms->len) return 1;
    memcpy(ms->buf + ms->len, bytes, n);
    ms->len += n;
    return 0;
}

LMUDEF lmu_result lmu_st_save_memory(const lmu_st_tensor *tensors, size_t n_tensors,
                                     const lmu_st_meta *meta, size_t n_meta,
                                     unsigned char **out, size_t *out_len,
                                     char *err, size_t errcap)
{
    unsigned char *hdr = NULL;
    size_t hdr_len = 0, data_len = 0;
    lmu__st_memsink ms;
    lmu_st_sink sink;
    lmu_result r;
    if (!out || !out_len) {
        lmu__errf(err, errcap, "safetensors write: NULL output pointer");
        return LMU_ERR_ARG;
    }
    *out = NULL;
    *out_len = 0;
    /* Sized first (the header build is cheap next to the data copy). */
    r = lmu__st_build_header(tensors, n_tensors, meta, n_meta, &hdr, &hdr_len, &data_len, err,
                             errcap);
    if (r != LMU_OK) return r;
    LMU_FREE(hdr);
    if (data_len > (size_t)-1 - hdr_len) {
        lmu__errf(err, errcap, "safetensors write: file size overflows size_t");
        return LMU_ERR_ARG;
    }
    ms.cap = hdr_len + data_len;
    ms.len = 0;
    ms.buf = (unsigned char *)LMU_MALLOC(ms.cap ? ms.cap : 1);
    if (!ms.buf) {
        lmu__errf(err, errcap, "safetensors write: out of memory for %llu bytes",
                  (unsigned long long)ms.cap);
        return LMU_ERR_NOMEM;
    }
    sink.write = lmu__st_memsink_write;
    sink.user = &ms;
    r = lmu_st_write(&sink, tensors, n_tensors, meta, n_meta, err, errcap);
    if (r != LMU_OK) {
        LMU_FREE(ms.buf);
        return r;
    }
    *out = ms.buf;
    *out_len = ms.len;
    return LMU_OK;
}

LMUDEF void lmu_st_free_memory(void *p)
{
    if (p) LMU_FREE(p);
}

#ifndef LMU_NO_STDIO

/* Fault injection for tests (private): make a save fail as a full disk, a
   failed fsync/close or a failed rename would. */
typedef struct lmu__st_fault {
    size_t fail_write_at; /* write fails once this many bytes are out; (size_t)-1: never */
    int fail_sync;
    int fail_rename;
} lmu__st_fault;

typedef struct lmu__st_filesink {
#if LMU__ST_POSIX
    int fd;
#else
    FILE *fp;
#endif
    size_t written, fail_at;
    int err_no; /* errno of the failing call, 0 if simulated */
} lmu__st_filesink;

LMU__PRIVATE int lmu__st_filesink_write(void *user, const void *bytes, size_t n)
{
    lmu__st_filesink *fs = (lmu__st_filesink *)user;
    const unsigned char *p = (const unsigned char *)bytes;
    int fail = 0;
    if (n > fs->fail_at - fs->written) { /* simulated full disk: a short write */
        n = fs->fail_at - fs->written;
        fail = 1;
    }
#if LMU__ST_POSIX
    while (n > 0) {
        size_t k = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(fs->fd, p, k);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            fs->err_no = w < 0 ? errno : 0;
            return 1;
        }
        p += (size_t)w;
        n -= (size_t)w;
        fs->written += (size_t)w;
    }
#else
    if (n > 0 && fwrite(p, 1, n, fs->fp) != n) {
        fs->err_no = 0;
        return 1;
    }
    fs->written += n;
#endif
    if (fail) fs->err_no = 0;
    return fail;
}

/* What a save writes: the bytes, into sink; a message on failure. */
typedef lmu_result (*lmu__produce_fn)(lmu_st_sink *sink, void *user, char *msg, size_t cap);

/* The one writer of every file the library saves (checkpoints, token
   files): the bytes go to a new temporary file beside path (O_EXCL, so two
   writers never share one), which is flushed to disk and renamed over
   path; on any failure the temporary is removed and path is untouched.
   `what` starts the messages ("safetensors save"). */
LMU__PRIVATE lmu_result lmu__write_atomic(const char *path, lmu__produce_fn produce, void *user,
                                          const lmu__st_fault *fault, const char *what, char *err,
                                          size_t errcap)
{
    lmu__st_filesink fs;
    lmu_st_sink sink;
    lmu_result r;
    char *tmp, msg[256];
    size_t plen, i;
    int opened = 0, attempt;
    if (!path || !*path) {
        lmu__errf(err, errcap, "%s: empty path", what);
        return LMU_ERR_ARG;
    }
    plen = strlen(path);
    if (plen > (size_t)-1 - 64) return LMU_ERR_ARG;
    tmp = (char *)LMU_MALLOC(plen + 64);
    if (!tmp) {
        lmu__errf(err, errcap, "%s: out of memory", what);
        return LMU_ERR_NOMEM;
    }
    memset(&fs, 0, sizeof fs);
    fs.fail_at = fault ? fault->fail_write_at : (size_t)-1;
    for (attempt = 0; attempt < 100 && !opened; attempt++) {
#if LMU__ST_POSIX
        sprintf(tmp, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        fs.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fs.fd >= 0) opened = 1;
        else if (errno != EEXIST) break;
#else
        FILE *probe;
        sprintf(tmp, "%s.tmp.%llu.%d", path, (unsigned long long)(((size_t)&fs) >> 4), attempt);
        probe = fopen(tmp, "rb"); /* no O_EXCL in C99: check, then create */
        if (probe) {
            fclose(probe);
            continue;
        }
        fs.fp = fopen(tmp, "wb");
        if (fs.fp) opened = 1;
        else break;
#endif
    }
    if (!opened) {
        lmu__errf(err, errcap, "%s: cannot create '%.200s': %s", what, tmp, strerror(errno));
        LMU_FREE(tmp);
        return LMU_ERR_IO;
    }
    sink.write = lmu__st_filesink_write;
    sink.user = &fs;
    msg[0] = 0;
    r = produce(&sink, user, msg, sizeof msg);
    if (r != LMU_OK) {
        lmu__errf(err, errcap, "%s%s%s (temporary '%.200s' removed, '%.200s' untouched)",
                  msg[0] ? msg : what, fs.err_no ? ": " : "", fs.err_no ? strerror(fs.err_no) : "",
                  tmp, path);
        r = LMU_ERR_IO;
    }
#if LMU__ST_POSIX
    if (r == LMU_OK && (fsync(fs.fd) != 0 || (fault && fault->fail_sync))) {
        lmu__errf(err, errcap, "%s: fsync of '%.200s' failed: %s", what, tmp,
                  (fault && fault->fail_sync) ? "simulated" : strerror(errno));
        r = LMU_ERR_IO;
    }
    if (close(fs.fd) != 0 && r == LMU_OK) {
        lmu__errf(err, errcap, "%s: close of '%.200s' failed: %s", what, tmp, strerror(errno));
        r = LMU_ERR_IO;
    }
#else
    if (r == LMU_OK && (fflush(fs.fp) != 0 || (fault && fault->fail_sync))) {
        lmu__errf(err, errcap, "%s: flushing '%.200s' failed", what, tmp);
        r = LMU_ERR_IO;
    }
    if (fclose(fs.fp) != 0 && r == LMU_OK) {
        lmu__errf(err, errcap, "%s: closing '%.200s' failed", what, tmp);
        r = LMU_ERR_IO;
    }
#endif
    if (r == LMU_OK) {
        int ok = !(fault && fault->fail_rename) && rename(tmp, path) == 0;
#if !LMU__ST_POSIX
        /* Where rename() will not replace a file (Windows), fall back to
           remove-then-rename: not atomic, and if the second step fails the
           complete temporary file is the only copy, so it is kept. */
        if (!ok && !(fault && fault->fail_rename) && remove(path) == 0) {
            ok = rename(tmp, path) == 0;
            if (!ok) {
                lmu__errf(err, errcap, "%s: replaced '%.200s' but could not rename '%.200s' to it; the new file is '%.200s'",
                          what, path, tmp, tmp);
                LMU_FREE(tmp);
                return LMU_ERR_IO;
            }
        }
#endif
        if (!ok) {
            lmu__errf(err, errcap, "%s: rename '%.200s' -> '%.200s' failed", what, tmp, path);
            r = LMU_ERR_IO;
        }
    }
    if (r != LMU_OK) remove(tmp);
#if LMU__ST_POSIX
    else {
        /* Make the rename itself durable: fsync the folder (best effort;
           some systems refuse to open a folder or fsync it). */
        char *dir = tmp;
        int dfd;
        memcpy(dir, path, plen + 1);
        for (i = plen; i > 0 && dir[i - 1] != '/'; i--) {}
        if (i == 0) strcpy(dir, ".");
        else dir[i == 1 ? 1 : i - 1] = 0;
        dfd = open(dir, O_RDONLY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
#endif
    (void)i;
    LMU_FREE(tmp);
    return r;
}

typedef struct lmu__st_desc {
    const lmu_st_tensor *t;
    const lmu_st_meta *m;
    size_t nt, nm;
} lmu__st_desc;

LMU__PRIVATE lmu_result lmu__st_produce(lmu_st_sink *sink, void *user, char *msg, size_t cap)
{
    const lmu__st_desc *d = (const lmu__st_desc *)user;
    return lmu_st_write(sink, d->t, d->nt, d->m, d->nm, msg, cap);
}

LMU__PRIVATE lmu_result lmu__st_save_file_ex(const char *path, const lmu_st_tensor *t, size_t nt,
                                             const lmu_st_meta *m, size_t nm,
                                             const lmu__st_fault *fault, char *err,
                                             size_t errcap)
{
    lmu__st_desc desc;
    size_t d;
    lmu_result r;
    if (!path || !*path) {
        lmu__errf(err, errcap, "safetensors save: empty path");
        return LMU_ERR_ARG;
    }
    /* Check the description before touching the disk. */
    if ((r = lmu__st_check_desc(t, nt, m, nm, &d, err, errcap)) != LMU_OK) return r;
    desc.t = t, desc.nt = nt, desc.m = m, desc.nm = nm;
    return lmu__write_atomic(path, lmu__st_produce, &desc, fault, "safetensors save", err, errcap);
}

LMUDEF lmu_result lmu_st_save_file(const char *path, const lmu_st_tensor *tensors,
                                   size_t n_tensors, const lmu_st_meta *meta, size_t n_meta,
                                   char *err, size_t errcap)
{
    return lmu__st_save_file_ex(path, tensors, n_tensors, meta, n_meta, NULL, err, errcap);
}

#endif /* LMU_NO_STDIO */

/* ====================================================================== */
/* Reader                                                                  */
/* ====================================================================== */

typedef struct lmu__st_parser {
    lmu__json j;            /* the header */
    size_t data_len;
    const unsigned char *data;
    int fill;               /* 0: counting pass, 1: filling pass */
    lmu_st_tensor *t;       /* fill pass only */
    lmu_st_meta *m;
    char *pool;
    size_t pool_cap;
    size_t nt, nm, npool;   /* counts (pass 1) / cursors (pass 2) */
    int seen_meta;
} lmu__st_parser;

/* Decodes a string into the pool (fill pass) or counts it (count pass). */
LMU__PRIVATE int lmu__st_pool_string(lmu__st_parser *p, const char **dst, const char *what)
{
    lmu__json *J = &p->j;
    size_t len, start;
    int nul;
    char *out = p->fill ? p->pool + p->npool : NULL;
    size_t cap = p->fill ? p->pool_cap - p->npool : 0;
    lmu__json_ws(J);
    start = J->i;
    if (!lmu__json_string(J, out, cap, &len, &nul)) return 0;
    if (nul) {
        char msg[96];
        J->i = start;
        snprintf(msg, sizeof msg, "%s contains U+0000", what);
        return lmu__json_fail(J, msg, NULL);
    }
    if (p->fill) {
        if (len >= cap) return lmu__json_fail(J, "internal: string pool too small", NULL);
        out[len] = 0;
        *dst = out;
    }
    p->npool += len + 1;
    return 1;
}

LMU__PRIVATE int lmu__st_metadata(lmu__st_parser *p)
{
    lmu__json *J = &p->j;
    lmu__json_ws(J);
    if (p->seen_meta) return lmu__json_fail(J, "\"__metadata__\" appears twice", NULL);
    p->seen_meta = 1;
    if (!lmu__json_expect(J, '{', "an object for \"__metadata__\"")) return 0;
    if (lmu__json_eat(J, '}')) return 1;
    do {
        lmu_st_meta e;
        char label[80];
        size_t len, kpos;
        int nul;
        e.key = e.value = NULL;
        lmu__json_ws(J);
        kpos = J->i;
        if (!lmu__json_string(J, label, sizeof label - 1, &len, &nul)) return 0;
        label[len < sizeof label - 1 ? len : sizeof label - 1] = 0;
        J->i = kpos;
        if (!lmu__st_pool_string(p, &e.key, "metadata key")) return 0;
        if (!lmu__json_expect(J, ':', "':'")) return 0;
        if (lmu__json_ws(J) != '"') {
            char msg[160];
            snprintf(msg, sizeof msg, "metadata value for key '%s' is not a string", label);
            return lmu__json_fail(J, msg, NULL);
        }
        if (!lmu__st_pool_string(p, &e.value, "metadata value")) return 0;
        if (p->fill) p->m[p->nm] = e;
        p->nm++;
    } while (lmu__json_eat(J, ','));
    return lmu__json_expect(J, '}', "',' or '}' in \"__metadata__\"");
}

/* One tensor entry; p->j.name (for messages) is its decoded name, maybe cut. */
LMU__PRIVATE int lmu__st_tensor_entry(lmu__st_parser *p, lmu_st_tensor *t)
{
    lmu__json *J = &p->j;
    int have_dtype = 0, have_shape = 0, have_off = 0;
    size_t begin = 0, end = 0, es, nb;
    size_t entry_pos;
    lmu__json_ws(J);
    entry_pos = J->i;
    if (!lmu__json_expect(J, '{', "an object {\"dtype\", \"shape\", \"data_offsets\"}")) return 0;
    if (!lmu__json_eat(J, '}')) {
        do {
            char field[16];
            size_t flen;
            int nul;
            if (!lmu__json_string(J, field, sizeof field, &flen, &nul)) return 0;
            if (!lmu__json_expect(J, ':', "':'")) return 0;
            lmu__json_ws(J);
            if (flen == 5 && memcmp(field, "dtype", 5) == 0) {
                char dt[16];
                size_t dlen;
                size_t vpos = J->i;
                if (have_dtype++) return lmu__json_fail(J, "\"dtype\" given twice", NULL);
                if (!lmu__json_string(J, dt, sizeof dt, &dlen, &nul)) return 0;
                t->dtype = dlen < sizeof dt ? lmu__st_dtype_lookup(dt, dlen) : LMU_ST_INVALID;
                if (t->dtype == LMU_ST_INVALID) {
                    char msg[80];
                    J->i = vpos;
                    snprintf(msg, sizeof msg, "unknown dtype \"%.*s\"",
                             (int)(dlen < sizeof dt ? dlen : sizeof dt), dt);
                    return lmu__json_fail(J, msg, NULL);
                }
            } else if (flen == 5 && memcmp(field, "shape", 5) == 0) {
                if (have_shape++) return lmu__json_fail(J, "\"shape\" given twice", NULL);
                if (!lmu__json_expect(J, '[', "'[' starting \"shape\"")) return 0;
                t->ndim = 0;
                if (!lmu__json_eat(J, ']')) {
                    do {
                        if (t->ndim == LMU_ST_MAX_DIMS) {
                            char msg[64];
                            snprintf(msg, sizeof msg, "more than %d dimensions", LMU_ST_MAX_DIMS);
                            return lmu__json_fail(J, msg, NULL);
                        }
                        if (!lmu__json_uint(J, (size_t)-1, &t->shape[t->ndim])) return 0;
                        t->ndim++;
                    } while (lmu__json_eat(J, ','));
                    if (!lmu__json_expect(J, ']', "',' or ']' in \"shape\"")) return 0;
                }
            } else if (flen == 12 && memcmp(field, "data_offsets", 12) == 0) {
                if (have_off++) return lmu__json_fail(J, "\"data_offsets\" given twice", NULL);
                if (!lmu__json_expect(J, '[', "'[' starting \"data_offsets\"")) return 0;
                if (!lmu__json_uint(J, (size_t)-1, &begin)) return 0;
                if (!lmu__json_expect(J, ',', "',' (data_offsets has 2 entries)")) return 0;
                if (!lmu__json_uint(J, (size_t)-1, &end)) return 0;
                if (!lmu__json_expect(J, ']', "']' (data_offsets has exactly 2 entries)")) return 0;
            } else if (!lmu__json_skip(J, LMU__ST_MAX_DEPTH - 3)) /* the value is at level 3 */
                return 0;
        } while (lmu__json_eat(J, ','));
        if (!lmu__json_expect(J, '}', "',' or '}' in the tensor entry")) return 0;
    }
    {
        /* semantic checks, reported at the entry's start */
        size_t here = J->i;
        char msg[200];
        J->i = entry_pos;
        if (!have_dtype || !have_shape || !have_off) {
            snprintf(msg, sizeof msg, "missing %s", !have_dtype ? "\"dtype\"" : !have_shape ? "\"shape\"" : "\"data_offsets\"");
            return lmu__json_fail(J, msg, NULL);
        }
        es = lmu_st_dtype_size(t->dtype);
        if (begin > end) {
            snprintf(msg, sizeof msg, "data_offsets [%llu, %llu] has begin > end",
                     (unsigned long long)begin, (unsigned long long)end);
            return lmu__json_fail(J, msg, NULL);
        }
        if (end > p->data_len) {
            snprintf(msg, sizeof msg, "data_offsets [%llu, %llu] run past the %llu-byte data section",
                     (unsigned long long)begin, (unsigned long long)end, (unsigned long long)p->data_len);
            return lmu__json_fail(J, msg, NULL);
        }
        if (!lmu__st_nbytes(t->shape, t->ndim, es, &nb))
            return lmu__json_fail(J, "shape size overflows size_t", NULL);
        if (nb != end - begin) {
            char sh[96];
            lmu__st_shape_str(sh, sizeof sh, t->shape, t->ndim);
            snprintf(msg, sizeof msg, "shape %s of %s needs %llu bytes but data_offsets [%llu, %llu] hold %llu",
                     sh, lmu_st_dtype_name(t->dtype), (unsigned long long)nb, (unsigned long long)begin,
                     (unsigned long long)end, (unsigned long long)(end - begin));
            return lmu__json_fail(J, msg, NULL);
        }
        J->i = here;
    }
    t->nbytes = nb;
    t->offset = begin;
    t->data = p->data + begin;
    return 1;
}

LMU__PRIVATE int lmu__st_root(lmu__st_parser *p)
{
    lmu__json *J = &p->j;
    J->i = 0;
    p->nt = p->nm = p->npool = 0;
    p->seen_meta = 0;
    if (!lmu__json_expect(J, '{', "'{' (the header is a JSON object)")) return 0;
    if (!lmu__json_eat(J, '}')) {
        do {
            char label[80];
            size_t len, kpos;
            int nul;
            lmu__json_ws(J);
            kpos = J->i;
            if (!lmu__json_string(J, label, sizeof label - 1, &len, &nul)) return 0;
            if (len >= sizeof label - 1) memcpy(label + sizeof label - 4, "...", 4);
            else label[len] = 0;
            if (len == 12 && memcmp(label, "__metadata__", 12) == 0) {
                if (!lmu__json_expect(J, ':', "':'")) return 0;
                if (!lmu__st_metadata(p)) return 0;
            } else {
                lmu_st_tensor t;
                memset(&t, 0, sizeof t);
                J->i = kpos;
                J->name = label; /* the entry's messages name it */
                if (!lmu__st_pool_string(p, &t.name, "tensor name")) return 0;
                if (!lmu__json_expect(J, ':', "':'")) return 0;
                if (!lmu__st_tensor_entry(p, &t)) return 0;
                J->name = NULL;
                if (p->fill) p->t[p->nt] = t;
                p->nt++;
            }
        } while (lmu__json_eat(J, ','));
        if (!lmu__json_expect(J, '}', "',' or '}' after a header entry")) return 0;
    }
    if (lmu__json_ws(J) >= 0) return lmu__json_fail(J, "unexpected bytes after the header object", NULL);
    return 1;
}

/* qsort has no context argument, so the loader sorts pointers to the
   entries and turns them back into indices. */
LMU__PRIVATE int lmu__st_cmp_tensor_name(const void *a, const void *b)
{
    const lmu_st_tensor *x = *(const lmu_st_tensor *const *)a, *y = *(const lmu_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

LMU__PRIVATE int lmu__st_cmp_tensor_off(const void *a, const void *b)
{
    const lmu_st_tensor *x = *(const lmu_st_tensor *const *)a, *y = *(const lmu_st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

LMU__PRIVATE int lmu__st_cmp_meta_key(const void *a, const void *b)
{
    const lmu_st_meta *x = *(const lmu_st_meta *const *)a, *y = *(const lmu_st_meta *const *)b;
    return strcmp(x->key, y->key);
}

LMU__PRIVATE size_t lmu__st_round16(size_t v) { return (v + 15) & ~(size_t)15; }

LMUDEF lmu_result lmu_st_load_memory(lmu_st_file *f, const void *buf, size_t len, char *err,
                                     size_t errcap)
{
    const unsigned char *b = (const unsigned char *)buf;
    lmu__st_parser p;
    uint64_t n64;
    size_t N, i, sz_t, sz_m, sz_i, sz_j, sz_ptr, total;
    unsigned char *block;
    const lmu_st_tensor **tptr;
    const lmu_st_meta **mptr;
    size_t *by_name, *meta_by_key;
    if (!f) {
        lmu__errf(err, errcap, "safetensors: NULL file object");
        return LMU_ERR_ARG;
    }
    memset(f, 0, sizeof *f);
    if (!b && len) {
        lmu__errf(err, errcap, "safetensors: NULL buffer");
        return LMU_ERR_ARG;
    }
    if (len < 8) {
        lmu__errf(err, errcap, "safetensors: file is %llu bytes, shorter than the 8-byte header length",
                  (unsigned long long)len);
        return LMU_ERR_FORMAT;
    }
    n64 = lmu__st_get_le(b, 8);
    if (n64 > (uint64_t)(len - 8)) {
        lmu__errf(err, errcap,
                  "safetensors: header length %llu runs past the end of the file (%llu bytes follow it)",
                  (unsigned long long)n64, (unsigned long long)(len - 8));
        return LMU_ERR_FORMAT;
    }
    if (n64 > (uint64_t)LMU__ST_MAX_HEADER) {
        lmu__errf(err, errcap, "safetensors: header length %llu exceeds the %llu-byte limit",
                  (unsigned long long)n64, (unsigned long long)LMU__ST_MAX_HEADER);
        return LMU_ERR_FORMAT;
    }
    N = (size_t)n64;
    memset(&p, 0, sizeof p);
    p.j.s = b + 8;
    p.j.n = N;
    p.j.err = err;
    p.j.errcap = errcap;
    p.data = b + 8 + N;
    p.data_len = len - 8 - N;
    /* pass 1: validate and count */
    if (!lmu__st_root(&p)) return LMU_ERR_FORMAT;
    /* one block: tensors | meta | by_name | meta_by_key | sort scratch | strings */
    sz_t = lmu__st_round16(p.nt * sizeof(lmu_st_tensor));
    sz_m = lmu__st_round16(p.nm * sizeof(lmu_st_meta));
    sz_i = lmu__st_round16(p.nt * sizeof(size_t));
    sz_j = lmu__st_round16(p.nm * sizeof(size_t));
    sz_ptr = lmu__st_round16((p.nt > p.nm ? p.nt : p.nm) *
                             (sizeof(lmu_st_tensor *) > sizeof(lmu_st_meta *) ? sizeof(lmu_st_tensor *)
                                                                              : sizeof(lmu_st_meta *)));
    /* counts are bounded by the 100 MB header, so these sums cannot wrap */
    total = sz_t + sz_m + sz_i + sz_j + sz_ptr + p.npool + 1;
    block = (unsigned char *)LMU_MALLOC(total);
    if (!block) {
        lmu__errf(err, errcap, "safetensors: out of memory (%llu bytes for %llu tensors)",
                  (unsigned long long)total, (unsigned long long)p.nt);
        return LMU_ERR_NOMEM;
    }
    p.t = (lmu_st_tensor *)(void *)block;
    p.m = (lmu_st_meta *)(void *)(block + sz_t);
    by_name = (size_t *)(void *)(block + sz_t + sz_m);
    meta_by_key = (size_t *)(void *)(block + sz_t + sz_m + sz_i);
    tptr = (const lmu_st_tensor **)(void *)(block + sz_t + sz_m + sz_i + sz_j);
    mptr = (const lmu_st_meta **)(void *)(block + sz_t + sz_m + sz_i + sz_j); /* reused */
    p.pool = (char *)(block + sz_t + sz_m + sz_i + sz_j + sz_ptr);
    p.pool_cap = p.npool + 1;
    p.fill = 1;
    /* pass 2: same parse, filling the arrays */
    if (!lmu__st_root(&p)) {
        LMU_FREE(block);
        return LMU_ERR_FORMAT;
    }
    /* duplicate names */
    for (i = 0; i < p.nt; i++) tptr[i] = &p.t[i];
    qsort((void *)tptr, p.nt, sizeof *tptr, lmu__st_cmp_tensor_name);
    for (i = 0; i < p.nt; i++) {
        by_name[i] = (size_t)(tptr[i] - p.t);
        if (i && strcmp(p.t[by_name[i - 1]].name, p.t[by_name[i]].name) == 0) {
            lmu__errf(err, errcap, "safetensors: duplicate tensor name '%.80s'", p.t[by_name[i]].name);
            LMU_FREE(block);
            return LMU_ERR_FORMAT;
        }
    }
    /* exact coverage of the data section, as the reference reader demands */
    qsort((void *)tptr, p.nt, sizeof *tptr, lmu__st_cmp_tensor_off);
    {
        size_t cursor = 0;
        for (i = 0; i < p.nt; i++) {
            const lmu_st_tensor *t = tptr[i];
            if (t->offset != cursor) {
                if (t->offset < cursor)
                    lmu__errf(err, errcap,
                              "safetensors: tensor '%.80s' at data bytes [%llu, %llu] overlaps the tensor before it (which ends at %llu)",
                              t->name, (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes),
                              (unsigned long long)cursor);
                else
                    lmu__errf(err, errcap,
                              "safetensors: hole in the data section: bytes [%llu, %llu] belong to no tensor (next is '%.80s')",
                              (unsigned long long)cursor, (unsigned long long)t->offset, t->name);
                LMU_FREE(block);
                return LMU_ERR_FORMAT;
            }
            cursor = t->offset + t->nbytes;
        }
        if (cursor != p.data_len) {
            lmu__errf(err, errcap,
                      "safetensors: data section is %llu bytes but the tensors cover only %llu (trailing bytes or truncated header)",
                      (unsigned long long)p.data_len, (unsigned long long)cursor);
            LMU_FREE(block);
            return LMU_ERR_FORMAT;
        }
    }
    /* metadata keys */
    for (i = 0; i < p.nm; i++) mptr[i] = &p.m[i];
    qsort((void *)mptr, p.nm, sizeof *mptr, lmu__st_cmp_meta_key);
    for (i = 0; i < p.nm; i++) {
        meta_by_key[i] = (size_t)(mptr[i] - p.m);
        if (i && strcmp(p.m[meta_by_key[i - 1]].key, p.m[meta_by_key[i]].key) == 0) {
            lmu__errf(err, errcap, "safetensors: duplicate metadata key '%.80s'", p.m[meta_by_key[i]].key);
            LMU_FREE(block);
            return LMU_ERR_FORMAT;
        }
    }
    f->n_tensors = p.nt;
    f->tensors = p.t;
    f->n_meta = p.nm;
    f->meta = p.m;
    f->data = p.data;
    f->data_len = p.data_len;
    f->header_len = N;
    f->lmu__block = block;
    f->lmu__by_name = by_name;
    f->lmu__meta_by_key = meta_by_key;
    return LMU_OK;
}

#ifndef LMU_NO_STDIO
LMUDEF lmu_result lmu_st_load_file(lmu_st_file *f, const char *path, char *err, size_t errcap)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    lmu_result r;
    if (!f || !path) {
        lmu__errf(err, errcap, "safetensors: NULL file object or path");
        if (f) memset(f, 0, sizeof *f);
        return LMU_ERR_ARG;
    }
    memset(f, 0, sizeof *f);
    r = lmu__read_whole_file(path, "safetensors", 0, &buf, &len, err, errcap);
    if (r != LMU_OK) return r;
    r = lmu_st_load_memory(f, buf, len, err, errcap);
    if (r != LMU_OK) {
        LMU_FREE(buf);
        return r;
    }
    f->lmu__owned = buf;
    return LMU_OK;
}
#endif

LMUDEF void lmu_st_close(lmu_st_file *f)
{
    if (!f) return;
    if (f->lmu__block) LMU_FREE(f->lmu__block);
    if (f->lmu__owned) LMU_FREE(f->lmu__owned);
    memset(f, 0, sizeof *f);
}

LMUDEF const lmu_st_tensor *lmu_st_find(const lmu_st_file *f, const char *name)
{
    size_t lo = 0, hi;
    if (!f || !name || !f->lmu__by_name) return NULL;
    hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const lmu_st_tensor *t = &f->tensors[f->lmu__by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

LMUDEF const char *lmu_st_meta_get(const lmu_st_file *f, const char *key)
{
    size_t lo = 0, hi;
    if (!f || !key || !f->lmu__meta_by_key) return NULL;
    hi = f->n_meta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const lmu_st_meta *m = &f->meta[f->lmu__meta_by_key[mid]];
        int c = strcmp(m->key, key);
        if (c == 0) return m->value;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Finds NAME and checks its shape. */
LMU__PRIVATE lmu_result lmu__st_lookup(const lmu_st_file *f, const char *name, const size_t *shape,
                                       int ndim, const lmu_st_tensor **out, char *err,
                                       size_t errcap)
{
    const lmu_st_tensor *t;
    int i, same;
    if (!f || !name || ndim < 0 || ndim > LMU_ST_MAX_DIMS || (ndim > 0 && !shape)) {
        lmu__errf(err, errcap, "safetensors read: bad arguments (file, name, shape or ndim %d)", ndim);
        return LMU_ERR_ARG;
    }
    t = lmu_st_find(f, name);
    if (!t) {
        lmu__errf(err, errcap, "safetensors read: no tensor named '%.120s' in the file", name);
        return LMU_ERR_FORMAT;
    }
    same = t->ndim == ndim;
    for (i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[128], b[128];
        lmu__st_shape_str(a, sizeof a, t->shape, t->ndim);
        lmu__st_shape_str(b, sizeof b, shape, ndim);
        lmu__errf(err, errcap, "safetensors read: tensor '%.120s' has shape %s, expected %s", name, a, b);
        return LMU_ERR_SHAPE;
    }
    *out = t;
    return LMU_OK;
}

/* IEEE half -> float, exact (every half is a float), NaN payloads kept. */
LMU__PRIVATE float lmu__st_half_to_f32(unsigned h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF, bits;
    float f;
    if (e == 0x1F) bits = sign | 0x7F800000u | (m << 13);
    else if (e != 0) bits = sign | ((e + 112) << 23) | (m << 13);
    else if (m == 0) bits = sign;
    else { /* subnormal half: normalize */
        e = 113;
        while (!(m & 0x400)) {
            m <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((m & 0x3FF) << 13);
    }
    memcpy(&f, &bits, 4);
    return f;
}

/* double -> float without the undefined behaviour of an out-of-range cast. */
LMU__PRIVATE float lmu__st_f64_to_f32(double d)
{
    /* FLT_MAX plus half an ulp: from here on, round-to-nearest gives inf */
    const double lim = 3.4028235677973366e38;
    if (d >= lim) return HUGE_VALF;
    if (d <= -lim) return -HUGE_VALF;
    if (d > FLT_MAX) return FLT_MAX;
    if (d < -FLT_MAX) return -FLT_MAX;
    return (float)d;
}

LMU__PRIVATE lmu_result lmu__st_read_f32_ex(const lmu_st_file *f, const char *name,
                                            const size_t *shape, int ndim, float *dst,
                                            int host_le, char *err, size_t errcap)
{
    const lmu_st_tensor *t = NULL;
    const unsigned char *s;
    size_t i, count;
    lmu_result r = lmu__st_lookup(f, name, shape, ndim, &t, err, errcap);
    if (r != LMU_OK) return r;
    if (t->dtype != LMU_ST_F32 && t->dtype != LMU_ST_F64 && t->dtype != LMU_ST_F16 &&
        t->dtype != LMU_ST_BF16) {
        lmu__errf(err, errcap, "safetensors read: tensor '%.120s' has dtype %s, not a float type",
                  name, lmu_st_dtype_name(t->dtype));
        return LMU_ERR_FORMAT;
    }
    if (t->nbytes && !dst) {
        lmu__errf(err, errcap, "safetensors read: NULL destination for '%.120s'", name);
        return LMU_ERR_ARG;
    }
    s = (const unsigned char *)t->data;
    count = t->nbytes / lmu_st_dtype_size(t->dtype);
    switch (t->dtype) {
    case LMU_ST_F32:
        if (host_le) {
            if (t->nbytes) memcpy(dst, s, t->nbytes);
        } else
            for (i = 0; i < count; i++) {
                uint32_t bits = (uint32_t)lmu__st_get_le(s + 4 * i, 4);
                memcpy(dst + i, &bits, 4);
            }
        break;
    case LMU_ST_F64:
        for (i = 0; i < count; i++) {
            uint64_t bits = lmu__st_get_le(s + 8 * i, 8);
            double d;
            memcpy(&d, &bits, 8);
            dst[i] = lmu__st_f64_to_f32(d);
        }
        break;
    case LMU_ST_F16:
        for (i = 0; i < count; i++) dst[i] = lmu__st_half_to_f32((unsigned)lmu__st_get_le(s + 2 * i, 2));
        break;
    default: /* BF16: the top half of a float */
        for (i = 0; i < count; i++) {
            uint32_t bits = (uint32_t)lmu__st_get_le(s + 2 * i, 2) << 16;
            memcpy(dst + i, &bits, 4);
        }
        break;
    }
    return LMU_OK;
}

LMUDEF lmu_result lmu_st_read_f32(const lmu_st_file *f, const char *name, const size_t *shape,
                                  int ndim, float *dst, char *err, size_t errcap)
{
    return lmu__st_read_f32_ex(f, name, shape, ndim, dst, lmu__st_host_le(), err, errcap);
}

LMU__PRIVATE lmu_result lmu__st_read_ex(const lmu_st_file *f, const char *name, lmu_st_dtype dtype,
                                        const size_t *shape, int ndim, void *dst, int host_le,
                                        char *err, size_t errcap)
{
    const lmu_st_tensor *t = NULL;
    size_t es;
    lmu_result r = lmu__st_lookup(f, name, shape, ndim, &t, err, errcap);
    if (r != LMU_OK) return r;
    if (t->dtype != dtype) {
        lmu__errf(err, errcap, "safetensors read: tensor '%.120s' has dtype %s, expected %s", name,
                  lmu_st_dtype_name(t->dtype), lmu_st_dtype_name(dtype));
        return LMU_ERR_FORMAT;
    }
    if (t->nbytes && !dst) {
        lmu__errf(err, errcap, "safetensors read: NULL destination for '%.120s'", name);
        return LMU_ERR_ARG;
    }
    es = lmu_st_dtype_size(dtype);
    if (host_le || es == 1) {
        if (t->nbytes) memcpy(dst, t->data, t->nbytes);
    } else
        lmu__st_swap((unsigned char *)dst, (const unsigned char *)t->data, t->nbytes / es, es);
    return LMU_OK;
}

LMUDEF lmu_result lmu_st_read(const lmu_st_file *f, const char *name, lmu_st_dtype dtype,
                              const size_t *shape, int ndim, void *dst, char *err, size_t errcap)
{
    return lmu__st_read_ex(f, name, dtype, shape, ndim, dst, lmu__st_host_le(), err, errcap);
}

/* ---------------------------------------------------------------------- */
/* >>model (implementation)                                                */
/* ---------------------------------------------------------------------- */

/* ---------------------------------------------------------------------- */
/* >>layers  what a layer is made of: parameter lists, mixers as units     */
/* ---------------------------------------------------------------------- */
/* A layer is LN_a -> its mixer; LN_b -> the implicit attention (LMU models,
   "the memory"); LN_c -> the post-FFN, each a residual branch. The
   parameter lists of the header (LMU__PARAMS_*) become rows here; a mixer
   is a unit, its functions in its own section below, found through
   lmu__mixer_units by the config's lmu_mixer, never by which parameters
   exist.

   ADDING A MIXER: a line in LMU__MIXERS, its parameter list
   LMU__PARAMS_<TAIL> beside it, and a section >>mixer-NAME defining
   lmu__mixer_NAME (an lmu__mixer_unit: parameters, FLOPs, scratch, the
   forward on the tape with its backward as tape ops, generation state and
   step). Config files, checkpoints, presets ("lmu-55k" + its suffix),
   layer stacks (mixer = ffn, NAME), parameter counts, planning and
   generation then know it. A mixer whose kernel is fused is also a line
   in LMU__OPS with its kernels, wrapper and case in >>ops (ADDING AN OP);
   new config fields (its widths) are rows of LMU__CONFIG_FIELDS, new
   dimension symbols an LMU__DIM_ case. Outside lmu.h: one line in
   tests/lmu_test.h's LT_MODEL_KINDS puts it into every model test, and
   tests/lmu_ref.py needs its PyTorch definition. */

enum { LMU__DIM_ONE, LMU__DIM_D, LMU__DIM_D3, LMU__DIM_PRE, LMU__DIM_FF, LMU__DIM_Q, LMU__DIM_QP,
       LMU__DIM_FH, LMU__DIM_THREE, LMU__DIM_D2, LMU__DIM_H, LMU__DIM_QKN, LMU__DIM_S,
       LMU__DIM_SD, LMU__DIM_SD3, LMU__DIM_SH, LMU__DIM_GF, LMU__DIM_GL, LMU__DIM_FS,
       LMU__DIM_FFS, LMU__DIM_GF2, LMU__DIM_GL2 };
enum { LMU__INIT_ONE, LMU__INIT_ZERO, LMU__INIT_NORMAL, LMU__INIT_RESID, LMU__INIT_L,
       LMU__INIT_P, LMU__INIT_CONV, LMU__INIT_QKSCALE, LMU__INIT_S01, LMU__INIT_S1 };

typedef struct lmu__param_row {
    size_t field;     /* offsetof(lmu_layer_ids, the id) */
    const char *name; /* after "blocks.<l>." */
    int ndim, dim[3], init;
} lmu__param_row;

#define LMU__PARAM_ROW(field, name, nd, d0, d1, d2, init)                      \
    {offsetof(lmu_layer_ids, field), name, nd,                                 \
     {LMU__DIM_##d0, LMU__DIM_##d1, LMU__DIM_##d2}, LMU__INIT_##init},
static const lmu__param_row lmu__rows_norm_a[] = {LMU__PARAMS_NORM_A(LMU__PARAM_ROW)};
static const lmu__param_row lmu__rows_memory[] = {LMU__PARAMS_MEMORY(LMU__PARAM_ROW)};
static const lmu__param_row lmu__rows_post[] = {LMU__PARAMS_POST(LMU__PARAM_ROW)};
#define LMU__MIXER_ROWS(tail, name, suffix, tr)                                  \
    static const lmu__param_row lmu__rows_##name[] = {LMU__ROWS_##tail(LMU__PARAM_ROW)};
LMU__MIXERS(LMU__MIXER_ROWS)
#undef LMU__MIXER_ROWS
#define LMU__NROWS(a) ((int)(sizeof a / sizeof a[0]))

/* the size a dimension symbol stands for in layer l */
LMU__PRIVATE size_t lmu__dim(const lmu_config *c, int l, int sym)
{
    switch (sym) {
    case LMU__DIM_D: return (size_t)c->d_model;
    case LMU__DIM_D3: return 3 * (size_t)c->d_model;
    case LMU__DIM_PRE: return (size_t)c->d_pre;
    case LMU__DIM_FF: return (size_t)c->d_ff;
    case LMU__DIM_Q: return (size_t)lmu_config_layer_q(c, l);
    case LMU__DIM_QP: return (size_t)lmu_config_layer_q_prime(c, l);
    case LMU__DIM_FH: return (size_t)c->feature_dim * (size_t)c->n_head;
    case LMU__DIM_THREE: return 3;
    case LMU__DIM_D2: return 2 * (size_t)c->d_model;
    case LMU__DIM_H: return (size_t)c->n_head;
    case LMU__DIM_QKN: return c->qk_norm ? (size_t)c->n_head : 0;
    case LMU__DIM_S: return (size_t)c->n_state;
    default: break;
    }
    { /* the block-recurrent layer's state side: absent without a state */
        const int S = c->n_state > 0, fix = c->brt_gate == LMU_BRT_GATE_FIXED, mlp = !c->brt_skip;
        const size_t d = (size_t)c->d_model;
        switch (sym) {
        case LMU__DIM_SD: return S ? d : 0;
        case LMU__DIM_SD3: return S ? 3 * d : 0;
        case LMU__DIM_SH: return S ? (size_t)c->n_head : 0;
        case LMU__DIM_GF: return S && fix ? d : 0;
        case LMU__DIM_GL: return S && !fix ? d : 0;
        case LMU__DIM_FS: return S && mlp ? d : 0;
        case LMU__DIM_FFS: return S && mlp ? (size_t)c->d_ff : 0;
        case LMU__DIM_GF2: return S && mlp && fix ? d : 0;
        case LMU__DIM_GL2: return S && mlp && !fix ? d : 0;
        default: return 1;
        }
    }
}

LMU__PRIVATE size_t lmu__rows_size(const lmu_config *c, int l, const lmu__param_row *r, int n)
{
    size_t s = 0;
    int i;
    for (i = 0; i < n; i++)
        s += lmu__dim(c, l, r[i].dim[0]) * lmu__dim(c, l, r[i].dim[1]) *
             lmu__dim(c, l, r[i].dim[2]);
    return s;
}


#define LMU__IDS(L, r) ((int *)(void *)((char *)(L) + (r)->field))

struct lmu_gen;

/* A sequence mixer. Every function gets the layer index, so layers of
   one model may differ (a layer stack) without a new interface. */
typedef struct lmu__mixer_unit {
    const lmu__param_row *rows;
    int n_rows;
    int heads;    /* uses n_head (config fields of scope HEADS) */
    int kv_cache; /* generation state grows with the context, to max_ctx */
    int features; /* uses feature_dim, la_eps (config fields of scope FEATURES) */
    /* forward FLOPs per token at length n, without its LayerNorm */
    double (*flops)(const lmu_config *c, double n);
    /* kernel scratch floats of its ops at length T (>>ops' sizes) */
    size_t (*scratch)(const lmu_model *m, size_t T);
    /* x (B, T, d) -> x + Mixer(LN_a x) on the tape */
    lmu_result (*forward)(lmu_model *m, int l, int x, int B, int T, int *out);
    /* generation: state floats per layer, work floats, one position's
       step on g->x with this layer's state */
    size_t (*gen_state)(const lmu_config *c, size_t max_ctx);
    size_t (*gen_work)(const lmu_config *c, size_t max_ctx);
    void (*gen_step)(struct lmu_gen *g, int l, float *state);
} lmu__mixer_unit;

/* shared by the mixers and the post-FFN (>>generate) */
LMU__PRIVATE void lmu__gen_ln(const lmu_model *m, float *out, const float *x, int g, int b);
LMU__PRIVATE void lmu__gemv(float *out, const float *W, const float *x, const float *b, size_t M,
                            size_t K);
LMU__PRIVATE void lmu__gen_ffn(struct lmu_gen *g, int lg, int lb, int w1, int b1, int w2, int b2);
#define LMU__GP(id) (m->tape.param + m->tape.tensors[id].off)

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

LMU__PRIVATE size_t lmu__no_floats(const lmu_model *m, size_t T)
{
    (void)m, (void)T;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* >>mixer-ffn  a position-wise FFN of width d_pre (docs/MODEL.md sec. 3)  */
/* ---------------------------------------------------------------------- */

LMU__PRIVATE double lmu__ffn_flops(const lmu_config *c, double n)
{
    (void)n;
    return 2.0 * (2.0 * c->d_model * c->d_pre);
}

LMU__PRIVATE lmu_result lmu__ffn_forward(lmu_model *m, int l, int x, int B, int T, int *out)
{
    const lmu_layer_ids *L = &m->layer[l];
    (void)B, (void)T;
    return lmu__model_ffn(&m->tape, x, L->ln_a_w, L->ln_a_b, L->pre_fc_w, L->pre_fc_b,
                          L->pre_proj_w, L->pre_proj_b, out);
}

LMU__PRIVATE size_t lmu__ffn_gen_state(const lmu_config *c, size_t max_ctx)
{
    (void)c, (void)max_ctx;
    return 0;
}

LMU__PRIVATE size_t lmu__ffn_gen_work(const lmu_config *c, size_t max_ctx)
{
    (void)max_ctx;
    return (size_t)c->d_pre;
}

LMU__PRIVATE void lmu__ffn_gen_step(struct lmu_gen *g, int l, float *state)
{
    const lmu_layer_ids *L = &g->m->layer[l];
    (void)state;
    lmu__gen_ffn(g, L->ln_a_w, L->ln_a_b, L->pre_fc_w, L->pre_fc_b, L->pre_proj_w, L->pre_proj_b);
}

static const lmu__mixer_unit lmu__mixer_ffn = {
    lmu__rows_ffn,      LMU__NROWS(lmu__rows_ffn), 0, 0, 0, lmu__ffn_flops, lmu__no_floats,
    lmu__ffn_forward,   lmu__ffn_gen_state,        lmu__ffn_gen_work, lmu__ffn_gen_step};

/* ---------------------------------------------------------------------- */
/* >>mixer-attn  causal multi-head attention (docs/MODEL.md section 3; the */
/*               transformer's too)                                        */
/* ---------------------------------------------------------------------- */

/* Keys a query sees, on average over n positions, with window W: t + 1
   in the first block, W + t mod W + 1 after it. */
LMU__PRIVATE double lmu__attn_keys(double n, double W)
{
    double n0, m, fb, rem;
    if (W <= 0 || n <= W) return (n + 1) / 2.0;
    n0 = W, m = n - W, fb = floor(m / W), rem = m - fb * W;
    return (n0 * (n0 + 1) / 2.0 + fb * (W * W + W * (W + 1) / 2.0) + rem * W +
            rem * (rem + 1) / 2.0) / n;
}

LMU__PRIVATE double lmu__attn_flops(const lmu_config *c, double n)
{
    double d = c->d_model;
    /* projections, and the keys per query: scores + weighted sum */
    return 2.0 * (4.0 * d * d) + 2.0 * 2.0 * lmu__attn_keys(n, c->window) * d;
}

LMU__PRIVATE size_t lmu__attn_scratch(const lmu_model *m, size_t T)
{
    return lmu__mha_scratch_floats(T, m->nparts);
}

LMU__PRIVATE lmu_result lmu__attn_forward(lmu_model *m, int l, int x, int B, int T, int *out)
{
    const lmu_layer_ids *L = &m->layer[l];
    lmu_tape *t = &m->tape;
    int h, a;
    (void)B, (void)T; /* the op reads them off qkv */
    lmu_result r;
    if ((r = lmu_tape_layernorm(t, x, L->ln_a_w, L->ln_a_b, &h)) != LMU_OK) return r;
    if ((r = lmu_tape_linear(t, h, L->qkv_w, L->qkv_b, 0, &a)) != LMU_OK) return r;
    if (m->cfg.qk_norm &&
        (r = lmu__tape_qknorm(t, a, L->attn_scale, m->cfg.d_model, m->cfg.n_head,
                              sqrtf((float)m->cfg.d_model / (float)m->cfg.n_head), &a)) != LMU_OK)
        return r;
    if ((r = lmu__tape_attention(t, a, m->cfg.n_head, m->cfg.window, &a)) != LMU_OK) return r;
    if ((r = lmu_tape_linear(t, a, L->attn_proj_w, L->attn_proj_b, 0, &a)) != LMU_OK) return r;
    return lmu_tape_add(t, x, a, out);
}

/* the keys of the positions the cache holds (every one so far, or with a
   window a ring of the last 2 W and a little: lmu__mha_cache_rows) in
   blocks of 16 (lmu__mha_decode's layout), then their values, as many */
LMU__PRIVATE size_t lmu__attn_gen_state(const lmu_config *c, size_t max_ctx)
{
    return 2 * lmu__mha_cache_rows(max_ctx, (size_t)c->window) * (size_t)c->d_model;
}

/* q, k, v of this position (3 d, rounded to 16) and every head's scores */
LMU__PRIVATE size_t lmu__attn_gen_work(const lmu_config *c, size_t max_ctx)
{
    size_t span = c->window ? 2 * (size_t)c->window : max_ctx;
    return ((3 * (size_t)c->d_model + 15) & ~(size_t)15) +
           lmu__mha_decode_floats(span, (size_t)c->d_model, (size_t)c->n_head);
}

LMU__PRIVATE void lmu__attn_gen_step(struct lmu_gen *g, int l, float *state)
{
    const lmu_model *m = g->m;
    const lmu_layer_ids *L = &m->layer[l];
    size_t d = (size_t)m->cfg.d_model, k, W = (size_t)m->cfg.window;
    size_t R = lmu__mha_cache_rows((size_t)g->max_ctx, W);
    float *kc = state, *vc = state + R * d;
    float *sc = g->big + ((3 * d + 15) & ~(size_t)15);
    lmu__gen_ln(m, g->h, g->x, L->ln_a_w, L->ln_a_b);
    lmu__gemv(g->big, LMU__GP(L->qkv_w), g->h, LMU__GP(L->qkv_b), 3 * d, d);
    if (m->cfg.qk_norm)
        lmu__qknorm_forward(g->big, g->big, LMU__GP(L->attn_scale),
                            sqrtf((float)d / (float)m->cfg.n_head), 1, 3 * d, d,
                            (size_t)m->cfg.n_head);
    lmu__mha_decode(g->y, kc, vc, g->big, (size_t)g->t, d, (size_t)m->cfg.n_head, W, R, g->nparts,
                    sc);
    lmu__gemv(g->a, LMU__GP(L->attn_proj_w), g->y, LMU__GP(L->attn_proj_b), d, d);
    for (k = 0; k < d; k++) g->x[k] += g->a[k];
}

static const lmu__mixer_unit lmu__mixer_attn = {
    lmu__rows_attn,     LMU__NROWS(lmu__rows_attn), 1, 1, 0, lmu__attn_flops, lmu__attn_scratch,
    lmu__attn_forward,  lmu__attn_gen_state,        lmu__attn_gen_work, lmu__attn_gen_step};

/* ---------------------------------------------------------------------- */
/* >>mixer-rebased  linear attention with a learned kernel (ReBased,       */
/*                  Aksenov et al. 2024); >>mixer-based, its predecessor   */
/* ---------------------------------------------------------------------- */
/* q = LN_q(h W_q), k = LN_k(h W_k) (F n_head wide: one LayerNorm over all
   heads, before the split), v = h W_v, out = LA(q, k, v) W_o, every
   projection without a bias (the reference's). Based has no LN_q, LN_k.
   The two share everything but that and phi (>>ops, linear attention);
   the unit tells them apart by its parameter ids only inside its own
   functions, where the layout is its own. */
LMU__PRIVATE double lmu__la_flops(const lmu_config *c, double n)
{
    double d = c->d_model, fh = (double)c->feature_dim * c->n_head;
    /* projections, and on average n/2 keys per query: x (2 F), s v (2 hs) */
    return 2.0 * (2.0 * d * fh + 2.0 * d * d) + 2.0 * (n + 1) / 2.0 * (fh + d);
}

/* the op's scratch, sized for Based's larger feature map */
LMU__PRIVATE size_t lmu__la_scratch(const lmu_model *m, size_t T)
{
    const lmu_config *c = &m->cfg;
    return lmu__la_scratch_floats(T, (size_t)c->feature_dim, (size_t)(c->d_model / c->n_head), 1,
                                  m->nparts);
}

LMU__PRIVATE lmu_result lmu__la_mixer_forward(lmu_model *m, int x, int ln_a_w, int ln_a_b, int wq,
                                              int wk, int wv, int wo, int lnq_w, int lnq_b,
                                              int lnk_w, int lnk_b, int *out)
{
    lmu_tape *t = &m->tape;
    int h, q, k, v, a;
    lmu_result r;
    if ((r = lmu_tape_layernorm(t, x, ln_a_w, ln_a_b, &h)) != LMU_OK ||
        (r = lmu_tape_linear(t, h, wq, -1, 0, &q)) != LMU_OK ||
        (r = lmu_tape_linear(t, h, wk, -1, 0, &k)) != LMU_OK ||
        (r = lmu_tape_linear(t, h, wv, -1, 0, &v)) != LMU_OK)
        return r;
    if (lnq_w >= 0 && ((r = lmu_tape_layernorm(t, q, lnq_w, lnq_b, &q)) != LMU_OK ||
                       (r = lmu_tape_layernorm(t, k, lnk_w, lnk_b, &k)) != LMU_OK))
        return r;
    if ((r = lmu__tape_linear_attention(t, q, k, v, m->cfg.n_head, lnq_w < 0,
                                        (float)m->cfg.la_eps, &a)) != LMU_OK ||
        (r = lmu_tape_linear(t, a, wo, -1, 0, &a)) != LMU_OK)
        return r;
    return lmu_tape_add(t, x, a, out);
}

LMU__PRIVATE lmu_result lmu__rebased_forward(lmu_model *m, int l, int x, int B, int T, int *out)
{
    const lmu_layer_ids *L = &m->layer[l];
    (void)B, (void)T;
    return lmu__la_mixer_forward(m, x, L->ln_a_w, L->ln_a_b, L->rb_q_w, L->rb_k_w, L->rb_v_w,
                                 L->rb_o_w, L->rb_lnq_w, L->rb_lnq_b, L->rb_lnk_w, L->rb_lnk_b, out);
}

LMU__PRIVATE lmu_result lmu__based_forward(lmu_model *m, int l, int x, int B, int T, int *out)
{
    const lmu_layer_ids *L = &m->layer[l];
    (void)B, (void)T;
    return lmu__la_mixer_forward(m, x, L->ln_a_w, L->ln_a_b, L->bs_q_w, L->bs_k_w, L->bs_v_w,
                                 L->bs_o_w, -1, -1, -1, -1, out);
}

/* per head S (nf x hs) and z (nf); constant in the context */
LMU__PRIVATE size_t lmu__la_gen_state(const lmu_config *c, int based)
{
    size_t nf = lmu__la_features((size_t)c->feature_dim, based);
    return (size_t)c->n_head * nf * ((size_t)c->d_model / (size_t)c->n_head + 1);
}

LMU__PRIVATE size_t lmu__rebased_gen_state(const lmu_config *c, size_t max_ctx)
{
    (void)max_ctx;
    return lmu__la_gen_state(c, 0);
}

LMU__PRIVATE size_t lmu__based_gen_state(const lmu_config *c, size_t max_ctx)
{
    (void)max_ctx;
    return lmu__la_gen_state(c, 1);
}

/* q, k (F n_head each), v and the heads' outputs (d each), f(q), f(k) */
LMU__PRIVATE size_t lmu__la_gen_work(const lmu_config *c, size_t max_ctx)
{
    (void)max_ctx;
    return 2 * (size_t)c->feature_dim * (size_t)c->n_head + 2 * (size_t)c->d_model +
           2 * lmu__la_features((size_t)c->feature_dim, 1);
}

LMU__PRIVATE void lmu__la_gen_step(struct lmu_gen *g, int l, float *state, int wq, int wk, int wv,
                                   int wo, int lnq_w, int lnq_b, int lnk_w, int lnk_b)
{
    const lmu_model *m = g->m;
    const lmu_layer_ids *L = &m->layer[l];
    const size_t d = (size_t)m->cfg.d_model, H = (size_t)m->cfg.n_head, F = (size_t)m->cfg.feature_dim;
    const size_t FH = F * H, hs = d / H;
    const int based = lnq_w < 0;
    const size_t nf = lmu__la_features(F, based);
    float *q = g->big, *k = q + FH, *v = k + FH, *o = v + d, *fq = o + d, *fk = fq + nf;
    size_t h, c;
    lmu__gen_ln(m, g->h, g->x, L->ln_a_w, L->ln_a_b);
    lmu__gemv(q, LMU__GP(wq), g->h, NULL, FH, d);
    lmu__gemv(k, LMU__GP(wk), g->h, NULL, FH, d);
    lmu__gemv(v, LMU__GP(wv), g->h, NULL, d, d);
    if (!based) {
        lmu__gen_ln(m, q, q, lnq_w, lnq_b);
        lmu__gen_ln(m, k, k, lnk_w, lnk_b);
    }
    for (h = 0; h < H; h++) {
        float *S = state + h * nf * (hs + 1);
        lmu__la_decode(o + h * hs, S, S + nf * hs, q + h * F, k + h * F, v + h * hs, F, hs, based,
                       (float)m->cfg.la_eps, fq, fk);
    }
    lmu__gemv(g->a, LMU__GP(wo), o, NULL, d, d);
    for (c = 0; c < d; c++) g->x[c] += g->a[c];
}

LMU__PRIVATE void lmu__rebased_gen_step(struct lmu_gen *g, int l, float *state)
{
    const lmu_layer_ids *L = &g->m->layer[l];
    lmu__la_gen_step(g, l, state, L->rb_q_w, L->rb_k_w, L->rb_v_w, L->rb_o_w, L->rb_lnq_w,
                     L->rb_lnq_b, L->rb_lnk_w, L->rb_lnk_b);
}

LMU__PRIVATE void lmu__based_gen_step(struct lmu_gen *g, int l, float *state)
{
    const lmu_layer_ids *L = &g->m->layer[l];
    lmu__la_gen_step(g, l, state, L->bs_q_w, L->bs_k_w, L->bs_v_w, L->bs_o_w, -1, -1, -1, -1);
}

static const lmu__mixer_unit lmu__mixer_rebased = {
    lmu__rows_rebased,     LMU__NROWS(lmu__rows_rebased), 1, 0, 1, lmu__la_flops, lmu__la_scratch,
    lmu__rebased_forward,  lmu__rebased_gen_state,        lmu__la_gen_work, lmu__rebased_gen_step};

static const lmu__mixer_unit lmu__mixer_based = {
    lmu__rows_based,     LMU__NROWS(lmu__rows_based), 1, 0, 1, lmu__la_flops, lmu__la_scratch,
    lmu__based_forward,  lmu__based_gen_state,        lmu__la_gen_work, lmu__based_gen_step};

/* ---------------------------------------------------------------------- */
/* >>mixer-conv  a short causal convolution gate (Based's BaseConv)       */
/* ---------------------------------------------------------------------- */
/* h = LN_a x, out = x + (conv3(h) * (h W + b) + h): a depthwise filter of
   width 3 over this and the two previous positions, gated by a linear of
   h. The reference's MQAR models alternate it with their linear attention
   (mixer = conv, rebased): it gives the next layer the previous tokens,
   which a key-value lookup needs. */
#define LMU__CONV_WIDTH 3 /* the THREE of conv.weight's shape */

LMU__PRIVATE double lmu__conv_flops(const lmu_config *c, double n)
{
    double d = c->d_model;
    (void)n;
    return 2.0 * d * d + 2.0 * LMU__CONV_WIDTH * d + 3.0 * d;
}

LMU__PRIVATE lmu_result lmu__conv_forward(lmu_model *m, int l, int x, int B, int T, int *out)
{
    const lmu_layer_ids *L = &m->layer[l];
    lmu_tape *t = &m->tape;
    int h, p, y;
    lmu_result r;
    (void)B, (void)T;
    if ((r = lmu_tape_layernorm(t, x, L->ln_a_w, L->ln_a_b, &h)) != LMU_OK ||
        (r = lmu_tape_linear(t, h, L->cv_proj_w, L->cv_proj_b, 0, &p)) != LMU_OK ||
        (r = lmu__tape_short_conv(t, h, L->cv_w, L->cv_b, p, &y)) != LMU_OK)
        return r;
    return lmu_tape_add(t, x, y, out);
}

/* the last LMU__CONV_WIDTH - 1 values of h, oldest first */
LMU__PRIVATE size_t lmu__conv_gen_state(const lmu_config *c, size_t max_ctx)
{
    (void)max_ctx;
    return (LMU__CONV_WIDTH - 1) * (size_t)c->d_model;
}

/* the gate p */
LMU__PRIVATE size_t lmu__conv_gen_work(const lmu_config *c, size_t max_ctx)
{
    (void)max_ctx;
    return (size_t)c->d_model;
}

LMU__PRIVATE void lmu__conv_gen_step(struct lmu_gen *g, int l, float *state)
{
    const lmu_model *m = g->m;
    const lmu_layer_ids *L = &m->layer[l];
    const size_t d = (size_t)m->cfg.d_model, K = LMU__CONV_WIDTH;
    const float *w = LMU__GP(L->cv_w), *b = LMU__GP(L->cv_b);
    float *p = g->big;
    size_t c, j;
    lmu__gen_ln(m, g->h, g->x, L->ln_a_w, L->ln_a_b);
    lmu__gemv(p, LMU__GP(L->cv_proj_w), g->h, LMU__GP(L->cv_proj_b), d, d);
    for (c = 0; c < d; c++) {
        float f = b[c] + w[c * K + K - 1] * g->h[c];
        for (j = 0; j + 1 < K; j++) f += w[c * K + j] * state[j * d + c];
        for (j = 0; j + 2 < K; j++) state[j * d + c] = state[(j + 1) * d + c];
        state[(K - 2) * d + c] = g->h[c];
        g->x[c] += f * p[c] + g->h[c];
    }
}

static const lmu__mixer_unit lmu__mixer_conv = {
    lmu__rows_conv,     LMU__NROWS(lmu__rows_conv), 0, 0, 0, lmu__conv_flops, lmu__no_floats,
    lmu__conv_forward,  lmu__conv_gen_state,        lmu__conv_gen_work, lmu__conv_gen_step};

/* ---------------------------------------------------------------------- */
/* >>mixer-brt  the Block-Recurrent Transformer's recurrent layer          */
/*              (Hutchins et al. 2022; google-research/meliad)             */
/* ---------------------------------------------------------------------- */
/* The token side is windowed attention (blocks of W, each position sees
   its block and the one before) with q and k L2-normalised per head, the
   logits |scale_h| cos(q, k) (attn.scale; the op's 1/sqrt(d_head) is
   undone by the factor sqrt(d_head) on q), beside a cross attention from
   each token of block g to the S state vectors entering block g; the two
   outputs are projected (attn.proj, brt.proj2: one projection of their
   concatenation) and added to x. The state side is the recurrence of
   lmu__tape_brt_state. With n_state 0 the layer is windowed attention
   with qk_norm, bit for bit.
   Where this differs from the reference, and why:
     - scales start at sqrt(d_head), not 1: the reference trains with
       Adafactor, whose steps are relative to the parameter; under Adam a
       scale that starts at 1 moves by about lr a step, which keeps every
       attention near uniform (logits in [-1, 1]) for thousands of steps;
     - the token side keeps attn's projections (qkv with a bias), GELU in
       the MLPs and LayerNorm with a mean, as the library's other layers;
       the reference's have no bias, ReLU and a norm without the mean;
     - no dropout, no relative positions (the model's learned wpe is the
       only position signal, as in the library's transformer);
     - truncated backpropagation across segments (lmu_model_forward_carry)
       carries the state only; the reference also keeps the last block's
       keys and values for the next segment's first block, which here
       attends to itself alone, as at a sequence's start (the window
       layers' caches would have to carry too). */

LMU__PRIVATE double lmu__brt_flops(const lmu_config *c, double n)
{
    double d = c->d_model, S = c->n_state, W = c->window, F = c->d_ff;
    double tok = lmu__attn_flops(c, n), st;
    if (S <= 0) return tok;
    tok += 2.0 * (2.0 * d * d) + 2.0 * 2.0 * S * d; /* q2, proj2; attend to S */
    /* per state row, once a block: head, self and cross attention (2 W
       keys), projection, gates, MLP */
    st = 2.0 * 4.0 * d * d + 2.0 * 2.0 * (S + 2.0 * W) * d + 2.0 * 2.0 * d * d +
         (c->brt_gate == LMU_BRT_GATE_LSTM ? 2.0 * 4.0 * d * d : 0) +
         (c->brt_skip ? 0 : 2.0 * 2.0 * d * F + (c->brt_gate == LMU_BRT_GATE_LSTM ? 2.0 * 2.0 * F * d : 0));
    return tok + st * S / W;
}

/* where layer l's carried state starts in a sequence's carry (the brt
   layers' S d each, in layer order) */
LMU__PRIVATE size_t lmu__carry_offset(const lmu_config *c, int l)
{
    size_t n = 0;
    int k;
    if (c->n_state < 1) return 0;
    for (k = 0; k < l; k++)
        if (lmu_config_layer_mixer(c, k) == LMU_MIXER_BRT) n += (size_t)c->n_state * (size_t)c->d_model;
    return n;
}

LMUDEF size_t lmu_model_carry_floats(const lmu_model *m)
{
    return m ? lmu__carry_offset(&m->cfg, m->cfg.n_layer) : 0;
}

LMU__PRIVATE lmu_result lmu__brt_forward(lmu_model *m, int l, int x, int B, int T, int *out)
{
    const lmu_layer_ids *L = &m->layer[l];
    const lmu_config *c = &m->cfg;
    lmu_tape *t = &m->tape;
    const float mult = sqrtf((float)c->d_model / (float)c->n_head);
    const size_t off = lmu__carry_offset(c, l), ld = lmu_model_carry_floats(m);
    int h, a, y, kv, q2;
    lmu_result r;
    (void)B, (void)T;
    if ((r = lmu_tape_layernorm(t, x, L->ln_a_w, L->ln_a_b, &h)) != LMU_OK ||
        (r = lmu_tape_linear(t, h, L->qkv_w, L->qkv_b, 0, &a)) != LMU_OK ||
        (r = lmu__tape_qknorm(t, a, L->brt_scale, c->d_model, c->n_head, mult, &a)) != LMU_OK ||
        (r = lmu__tape_attention(t, a, c->n_head, c->window, &y)) != LMU_OK ||
        (r = lmu_tape_linear(t, y, L->attn_proj_w, L->attn_proj_b, 0, &y)) != LMU_OK)
        return r;
    if (c->n_state > 0 &&
        ((r = lmu__tape_brt_state(t, a, L, c, m->carry_in ? m->carry_in + off : NULL,
                                  m->carry_out ? m->carry_out + off : NULL, ld, &kv)) != LMU_OK ||
         (r = lmu_tape_linear(t, h, L->brt_q2_w, -1, 0, &q2)) != LMU_OK ||
         (r = lmu__tape_qknorm(t, q2, L->brt_scale2, c->d_model, c->n_head, 1.0f, &q2)) != LMU_OK ||
         (r = lmu__tape_block_xattn(t, q2, kv, c->n_head, c->window, &q2)) != LMU_OK ||
         (r = lmu_tape_linear(t, q2, L->brt_proj2_w, -1, 0, &q2)) != LMU_OK ||
         (r = lmu_tape_add(t, y, q2, &y)) != LMU_OK))
        return r;
    return lmu_tape_add(t, x, y, out);
}

/* Generation keeps, per layer: attn's ring of k, v (2 W and a little);
   the normalised q, k, v of the previous and the current block (2 W x 3
   d, the previous first: the update reads them in the training order);
   the state's block buffers (one block, B = 1: the state s, its k, v in
   rn, the update's intermediates) and the next state. O(S + W), whatever
   the context. */
LMU__PRIVATE size_t lmu__brt_gen_state(const lmu_config *c, size_t max_ctx)
{
    lmu__brt_dims D;
    size_t n = lmu__attn_gen_state(c, max_ctx);
    if (c->n_state == 0) return n;
    lmu__brt_dims_of(&D, c, 1, 1);
    return n + 2 * D.W * 3 * D.d + D.S * (lmu__brt_row_floats(&D, 0) + D.d);
}

LMU__PRIVATE size_t lmu__brt_gen_work(const lmu_config *c, size_t max_ctx)
{
    return lmu__attn_gen_work(c, max_ctx) + 3 * (size_t)c->d_model + (size_t)c->n_head;
}

LMU__PRIVATE void lmu__brt_gen_step(struct lmu_gen *g, int l, float *state)
{
    const lmu_model *m = g->m;
    const lmu_config *c = &m->cfg;
    const lmu_layer_ids *L = &m->layer[l];
    const size_t d = (size_t)c->d_model, H = (size_t)c->n_head, W = (size_t)c->window, t = (size_t)g->t;
    const size_t R = lmu__mha_cache_rows((size_t)g->max_ctx, W);
    float *kc = state, *vc = state + R * d, *qkv = g->big;
    float *sc = g->big + ((3 * d + 15) & ~(size_t)15);
    float *q2 = g->big + lmu__attn_gen_work(c, (size_t)g->max_ctx), *yc = q2 + d, *lse = yc + d;
    size_t k;
    lmu__gen_ln(m, g->h, g->x, L->ln_a_w, L->ln_a_b);
    lmu__gemv(qkv, LMU__GP(L->qkv_w), g->h, LMU__GP(L->qkv_b), 3 * d, d);
    lmu__qknorm_forward(qkv, qkv, LMU__GP(L->brt_scale), sqrtf((float)d / (float)H), 1, 3 * d, d, H);
    if (c->n_state > 0) {
        lmu__brt_dims D;
        lmu__brt_buf b;
        lmu__brt_w w;
        float *tokb = state + 2 * R * d, *buf = tokb + 2 * W * 3 * d, *snext;
        lmu__brt_dims_of(&D, c, 1, 1);
        snext = buf + D.S * lmu__brt_row_floats(&D, 0);
        lmu__brt_buf_at(&b, buf, &D, D.S, 0);
        lmu__brt_weights((lmu_tape *)&m->tape, L, 0, &w);
        if (t == 0) { /* lmu_gen_reset zeroed all this: start from state0 */
            memcpy(b.s, w.s0, D.S * d * sizeof(float));
            lmu__brt_head(&g->gemm, &w, &D, D.S, &b);
        }
        memcpy(tokb + (W + t % W) * 3 * d, qkv, 3 * d * sizeof(float));
        lmu__gemv(q2, LMU__GP(L->brt_q2_w), g->h, NULL, d, d);
        lmu__qknorm_forward(q2, q2, LMU__GP(L->brt_scale2), 1.0f, 1, d, d, H);
        lmu__xattn_forward(yc, d, lse, q2, d, b.rn + d, 3 * d, b.rn + 2 * d, 3 * d, 1, D.S, d, H);
        if (t % W == W - 1) { /* the block is complete: the state moves on */
            D.T = 2 * W;
            lmu__brt_update(&g->gemm, &w, &D, D.S, &b, tokb, 2 * W, t < W ? W : 0,
                            2 * W, snext);
            memcpy(b.s, snext, D.S * d * sizeof(float));
            lmu__brt_head(&g->gemm, &w, &D, D.S, &b);
            memcpy(tokb, tokb + W * 3 * d, W * 3 * d * sizeof(float));
        }
    }
    lmu__mha_decode(g->y, kc, vc, qkv, t, d, H, W, R, g->nparts, sc);
    lmu__gemv(g->a, LMU__GP(L->attn_proj_w), g->y, LMU__GP(L->attn_proj_b), d, d);
    if (c->n_state > 0) {
        lmu__gemv(g->y, LMU__GP(L->brt_proj2_w), yc, NULL, d, d);
        for (k = 0; k < d; k++) g->a[k] += g->y[k];
    }
    for (k = 0; k < d; k++) g->x[k] += g->a[k];
}

static const lmu__mixer_unit lmu__mixer_brt = {
    lmu__rows_brt,     LMU__NROWS(lmu__rows_brt), 1, 0, 0, lmu__brt_flops, lmu__attn_scratch,
    lmu__brt_forward,  lmu__brt_gen_state,        lmu__brt_gen_work, lmu__brt_gen_step};

/* ---------------------------------------------------------------------- */
/* the layer stack                                                         */
/* ---------------------------------------------------------------------- */

static const lmu__mixer_unit *const lmu__mixer_units[] = {
#define LMU__MIXER_UNIT(tail, name, suffix, tr) &lmu__mixer_##name,
    LMU__MIXERS(LMU__MIXER_UNIT)
#undef LMU__MIXER_UNIT
};

LMU__PRIVATE int lmu__mixer_has_heads(lmu_mixer x)
{
    return (unsigned)x < (unsigned)LMU_MIXER_COUNT && lmu__mixer_units[x]->heads;
}

LMU__PRIVATE int lmu__mixer_has_features(lmu_mixer x)
{
    return (unsigned)x < (unsigned)LMU_MIXER_COUNT && lmu__mixer_units[x]->features;
}

/* Layer l's mixer, the one place that says what a layer is:
   lmu_config_layer_mixer (the transformer's layers are attention). */
LMU__PRIVATE const lmu__mixer_unit *lmu__layer_unit(const lmu_config *c, int l)
{
    return lmu__mixer_units[lmu_config_layer_mixer(c, l)];
}

LMU__PRIVATE int lmu__layer_has_memory(const lmu_config *c, int l)
{
    (void)l;
    return c->arch == LMU_ARCH_LMU;
}

/* THE MULTI-SCALE STACK (hier_k = k >= 2; ours, after Subramanian et al.
   2020's bottom-up hierarchical model). Layers 0 .. a-1 (a = hier_bottom)
   run on the tokens; their output x is pooled causally, coarse position j
   being the mean of x_{jk-k+1} .. x_{jk} (zeros before the start:
   lmu__pool_forward with shift k - 1); the next b = hier_coarse layers run
   on those ceil(n / k) positions, with every layer kind's own definition
   (an LMU layer's theta then counts coarse steps, a window W coarse
   positions); the coarse output is repeated k times and added to x
   (position t gets coarse position floor(t / k), which summarises
   positions up to k floor(t / k) <= t only), and the last c = hier_top
   layers run on the tokens again. Nothing is learned for the pooling or
   the way back. Generation steps the coarse layers once every k tokens,
   at t = jk, from a window of the last k fine vectors. A second level
   (hier_k2) does the same inside the coarse layers: after a2 =
   hier_bottom2 of them the coarse stream is pooled by k2, b2 =
   hier_coarse2 layers run on ceil(n / (k k2)) positions, and their output
   returns to the coarse stream, whose remaining layers follow. */
typedef struct lmu__hier_level {
    int start, count, k; /* its first layer, how many, the pooling below it */
} lmu__hier_level;
#define LMU__HIER_LEVELS 2

/* The pooled levels, outermost first; returns how many (0 .. 2). */
LMU__PRIVATE int lmu__hier_levels(const lmu_config *c, lmu__hier_level *lv)
{
    int n = 0;
    if (c->hier_k) {
        lv[n].start = c->hier_bottom, lv[n].count = c->hier_coarse, lv[n++].k = c->hier_k;
        if (c->hier_k2) {
            lv[n].start = c->hier_bottom + c->hier_bottom2, lv[n].count = c->hier_coarse2;
            lv[n++].k = c->hier_k2;
        }
    }
    return n;
}

/* the factor layer l's positions are pooled by: 1, k or k k2 */
LMU__PRIVATE size_t lmu__layer_pool(const lmu_config *c, int l)
{
    lmu__hier_level lv[LMU__HIER_LEVELS];
    size_t f = 1;
    int i, n = lmu__hier_levels(c, lv);
    for (i = 0; i < n; i++)
        if (l >= lv[i].start && l < lv[i].start + lv[i].count) f *= (size_t)lv[i].k;
    return f;
}

/* the length layer l runs at in a sequence of n tokens: pooling by k
   then k2 gives ceil(ceil(n / k) / k2) = ceil(n / (k k2)) positions */
LMU__PRIVATE size_t lmu__layer_len(const lmu_config *c, int l, size_t n)
{
    const size_t f = lmu__layer_pool(c, l);
    return (n + f - 1) / f;
}

/* Layer l's parameter lists in checkpoint order; returns how many. */
LMU__PRIVATE int lmu__layer_parts(const lmu_config *c, int l, const lmu__param_row **rows,
                                  int *n)
{
    const lmu__mixer_unit *u = lmu__layer_unit(c, l);
    int k = 0;
    rows[k] = lmu__rows_norm_a, n[k++] = LMU__NROWS(lmu__rows_norm_a);
    rows[k] = u->rows, n[k++] = u->n_rows;
    if (lmu__layer_has_memory(c, l)) rows[k] = lmu__rows_memory, n[k++] = LMU__NROWS(lmu__rows_memory);
    rows[k] = lmu__rows_post, n[k++] = LMU__NROWS(lmu__rows_post);
    return k;
}

LMUDEF size_t lmu_config_param_count(const lmu_config *c)
{
    const lmu__param_row *rows[4];
    int n[4], l, k, parts;
    size_t s = 2 * (size_t)c->d_model; /* ln_f */
    for (l = 0; l < c->n_layer; l++)
        for (parts = lmu__layer_parts(c, l, rows, n), k = 0; k < parts; k++)
            s += lmu__rows_size(c, l, rows[k], n[k]);
    return s;
}

LMUDEF size_t lmu_config_param_count_total(const lmu_config *c)
{
    size_t emb = (size_t)c->vocab_size * (size_t)c->d_model;
    if (c->arch == LMU_ARCH_TRANSFORMER) emb += (size_t)c->n_ctx * (size_t)c->d_model;
    return lmu_config_param_count(c) + emb;
}

/* The implicit attention's FLOPs per token at length n: per token, d
   forward real FFTs and 3 q' d inverse ones of length nfft (about
   2.5 nfft log2 nfft flops each, shared by n tokens), the spectral
   products (3 q' d bins x 6 flops), L_i applied to the spectrum of H
   (3 q' q bins x 2 x 2, per sequence), then the q' x q' attention. */
LMU__PRIVATE double lmu__memory_flops(const lmu_config *c, int l, double n)
{
    double d = c->d_model, nfft = 1, conv;
    double qp = lmu_config_layer_q_prime(c, l), q = lmu_config_layer_q(c, l);
    while (nfft < 2 * n) nfft *= 2;
    conv = ((d + 3 * qp * d) * 2.5 * nfft * log2(nfft) + 3 * qp * d * (nfft / 2 + 1) * 6 +
            3 * qp * q * (nfft / 2 + 1) * 4) / n;
    return conv + 4 * qp * qp * d + 2 * qp * d;
}

LMUDEF double lmu_config_flops_per_token(const lmu_config *c, int n)
{
    double fl = 0, nn = n > 0 ? n : 1;
    int l;
    for (l = 0; l < c->n_layer; l++) { /* a coarse layer: 1/k of the tokens, length n/k */
        double k = (double)lmu__layer_pool(c, l), nl = nn / k > 1 ? nn / k : 1;
        double f = lmu__layer_unit(c, l)->flops(c, nl) + 2.0 * (2.0 * c->d_model * c->d_ff);
        if (lmu__layer_has_memory(c, l)) f += lmu__memory_flops(c, l, nl);
        fl += f / k;
    }
    return fl + 2.0 * c->d_model * c->vocab_size;
}

/* ---- presets (docs/MODEL.md section 4) -------------------------------------- */

/* The paper's Table 3: X(a, size, N, d, q, q', n_layer), `a` passed
   through. d_ff is solved, not listed. */
#define LMU__PRESET_ROWS(X, a)                                                 \
    X(a, "55k", 55000L, 48, 50, 5, 3)                                          \
    X(a, "100k", 100000L, 65, 65, 7, 3)                                        \
    X(a, "200k", 200000L, 91, 90, 9, 3)                                        \
    X(a, "300k", 300000L, 112, 110, 13, 3)                                     \
    X(a, "500k", 500000L, 144, 150, 15, 3)                                     \
    X(a, "1m", 1000000L, 204, 220, 22, 3)

typedef struct lmu__preset_row {
    const char *size; /* "55k" */
    long target;      /* the named N */
    int d, q, q_prime, n_layer;
} lmu__preset_row;

static const lmu__preset_row lmu__presets[] = {
#define LMU__PRESET_ROW(a, size, N, d, q, qp, nl) {size, N, d, q, qp, nl},
    LMU__PRESET_ROWS(LMU__PRESET_ROW, ~)
#undef LMU__PRESET_ROW
};
#define LMU__N_PRESETS ((int)(sizeof lmu__presets / sizeof lmu__presets[0]))

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

/* Transformer baseline of equal N (docs/MODEL.md section 6): same depth as the
   LMU presets, MLP 4 d, and among the d that split into heads of width
   16..64 the one whose exact count is closest to the target. */
/* The block-recurrent presets: the reference's stack, one recurrent
   layer third from the top but with a layer below it (layer 1 of 3:
   at the bottom its tokens are bare embeddings, and its state cannot bind
   a key to the value beside it; MQAR, README), windowed attention with
   normalised q, k in the others; W 128, S 64 (the reference has S = W =
   512 at d 1024). */
LMU__PRIVATE void lmu__brt_stack(lmu_config *c, int n_layer)
{
    int l, at = n_layer >= 4 ? n_layer - 3 : n_layer >= 2 ? 1 : 0;
    c->window = 128, c->n_state = 64, c->qk_norm = 1;
    c->layers.n_mixer = n_layer;
    for (l = 0; l < n_layer; l++) c->layers.mixer[l] = l == at ? LMU_MIXER_BRT : LMU_MIXER_ATTN;
    c->mixer = c->layers.mixer[0];
}

LMU__PRIVATE void lmu__transformer_for(lmu_config *c, long target, int n_layer, lmu_mixer mixer)
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
        t.mixer = mixer;
        t.d_model = d;
        t.n_layer = n_layer;
        if (mixer == LMU_MIXER_BRT) lmu__brt_stack(&t, n_layer);
        if (lmu_config_resolve(&t, NULL, 0) != LMU_OK) continue;
        gap = labs((long)lmu_config_param_count(&t) - target);
        if (best_gap < 0 || gap < best_gap) best_gap = gap, best = d;
    }
    memset(c, 0, sizeof *c);
    c->arch = LMU_ARCH_TRANSFORMER;
    c->mixer = mixer;
    c->d_model = best;
    c->n_layer = n_layer;
    if (mixer == LMU_MIXER_BRT) lmu__brt_stack(c, n_layer);
}

/* the mixers of the transformer presets: attn's, then those marked TR */
static const int lmu__mixer_tr[] = {
#define LMU__MIXER_TR(tail, name, suffix, tr) tr,
    LMU__MIXERS(LMU__MIXER_TR)
#undef LMU__MIXER_TR
};

LMU__PRIVATE lmu_mixer lmu__transformer_preset_mixer(int k)
{
    int x;
    for (x = 0; x < (int)LMU_MIXER_COUNT && k > 0; x++)
        if (lmu__mixer_tr[x] && --k == 0) return (lmu_mixer)x;
    return LMU_MIXER_ATTN;
}

#define LMU__MIXER_TR_COUNT(tail, name, suffix, tr) +tr
LMUDEF int lmu_config_preset_count(void)
{
    return ((int)LMU_MIXER_COUNT + 1 LMU__MIXERS(LMU__MIXER_TR_COUNT)) * LMU__N_PRESETS;
}
#undef LMU__MIXER_TR_COUNT

LMUDEF const char *lmu_config_preset_name(int i)
{
    static const char *const names[] = {
#define LMU__PRESET_LMU_NAME(suffix, size, N, d, q, qp, nl) "lmu-" size suffix,
#define LMU__PRESET_MIXER_NAMES(tail, name, suffix, tr) LMU__PRESET_ROWS(LMU__PRESET_LMU_NAME, suffix)
#define LMU__PRESET_TR_NAME(suffix, size, N, d, q, qp, nl) "transformer-" size suffix,
#define LMU__PRESET_IF_0(x)
#define LMU__PRESET_IF_1(x) x
#define LMU__PRESET_TR_NAMES(tail, name, suffix, tr)                           \
    LMU__PRESET_IF_##tr(LMU__PRESET_ROWS(LMU__PRESET_TR_NAME, suffix))
        LMU__MIXERS(LMU__PRESET_MIXER_NAMES) LMU__PRESET_ROWS(LMU__PRESET_TR_NAME, "")
        LMU__MIXERS(LMU__PRESET_TR_NAMES)
#undef LMU__PRESET_LMU_NAME
#undef LMU__PRESET_MIXER_NAMES
#undef LMU__PRESET_TR_NAME
#undef LMU__PRESET_IF_0
#undef LMU__PRESET_IF_1
#undef LMU__PRESET_TR_NAMES
    };
    if (i < 0 || i >= lmu_config_preset_count()) return NULL;
    return names[i];
}

LMUDEF lmu_result lmu_config_preset(lmu_config *c, const char *name)
{
    int i, k, n = lmu_config_preset_count();
    if (!c || !name) return LMU_ERR_ARG;
    for (i = 0; i < n && strcmp(name, lmu_config_preset_name(i)) != 0; i++) {}
    memset(c, 0, sizeof *c);
    if (i == n) return LMU_ERR_ARG;
    k = i / LMU__N_PRESETS; /* the mixer, or LMU_MIXER_COUNT on: the transformer's */
    {
        const lmu__preset_row *r = &lmu__presets[i % LMU__N_PRESETS];
        if (k >= (int)LMU_MIXER_COUNT) {
            lmu__transformer_for(c, r->target, r->n_layer,
                                 lmu__transformer_preset_mixer(k - (int)LMU_MIXER_COUNT));
            if (c->mixer == LMU_MIXER_ATTN) return lmu_config_resolve(c, NULL, 0);
            /* heads of 16..64 leave gaps in N that d_ff closes, as for the LMU */
            if (lmu_config_resolve(c, NULL, 0) != LMU_OK) return LMU_ERR_ARG;
            c->d_ff = lmu__solve_d_ff(c, r->target);
            return lmu_config_resolve(c, NULL, 0);
        }
        c->mixer = (lmu_mixer)k;
        if (c->mixer == LMU_MIXER_BRT) c->window = 128, c->n_state = 64; /* every layer's */
        c->d_model = r->d;
        c->q = r->q;
        c->q_prime = r->q_prime;
        c->n_layer = r->n_layer;
        c->d_ff = 1; /* resolve the rest, then solve d_ff against N */
        if (lmu_config_resolve(c, NULL, 0) != LMU_OK) return LMU_ERR_ARG;
        c->d_ff = lmu__solve_d_ff(c, r->target);
        return lmu_config_resolve(c, NULL, 0);
    }
}

/* ---------------------------------------------------------------------- */
/* parameters                                                              */
/* ---------------------------------------------------------------------- */

LMU__PRIVATE lmu_result lmu__model_param(lmu_model *m, int *id, int ndim, int d0, int d1, int d2,
                                         const char *fmt, int layer)
{
    char name[LMU_TENSOR_NAME_MAX];
    int shape[LMU_TENSOR_MAX_DIMS] = {0};
    shape[0] = d0, shape[1] = d1, shape[2] = d2;
    snprintf(name, sizeof name, fmt, layer);
    return lmu_tape_param(&m->tape, name, ndim, shape, 0, id);
}

/* Declares every parameter in checkpoint order (docs/MODEL.md section 7). */
LMU__PRIVATE lmu_result lmu__model_declare(lmu_model *m)
{
    const lmu_config *c = &m->cfg;
    const lmu__param_row *rows[4];
    int l, k, i, n[4], parts, d = c->d_model;
    lmu_result r = LMU_OK;
    m->wpe = -1;
    r = lmu__model_param(m, &m->wte, 2, c->vocab_size, d, 0, "wte", 0);
    if (r == LMU_OK && c->arch == LMU_ARCH_TRANSFORMER)
        r = lmu__model_param(m, &m->wpe, 2, c->n_ctx, d, 0, "wpe", 0);
    for (l = 0; l < c->n_layer && r == LMU_OK; l++) {
        lmu_layer_ids *L = &m->layer[l];
        memset(L, 0xff, sizeof *L); /* every id -1 */
        parts = lmu__layer_parts(c, l, rows, n);
        for (k = 0; k < parts; k++)
            for (i = 0; i < n[k] && r == LMU_OK; i++) {
                const lmu__param_row *w = &rows[k][i];
                char fmt[LMU_TENSOR_NAME_MAX];
                if (lmu__rows_size(c, l, w, 1) == 0) continue; /* absent here: id -1 */
                snprintf(fmt, sizeof fmt, "blocks.%%d.%s", w->name);
                r = lmu__model_param(m, LMU__IDS(L, w), w->ndim, (int)lmu__dim(c, l, w->dim[0]),
                                     (int)lmu__dim(c, l, w->dim[1]), (int)lmu__dim(c, l, w->dim[2]),
                                     fmt, l);
            }
        if (r == LMU_OK && lmu__layer_has_memory(c, l) && c->iattn_lr > 0) {
            m->tape.tensors[L->lmu_L].lr_scale = (float)c->iattn_lr;
            m->tape.tensors[L->lmu_b].lr_scale = (float)c->iattn_lr;
            m->tape.tensors[L->lmu_p].lr_scale = (float)c->iattn_lr;
        }
    }
    if (r == LMU_OK) r = lmu__model_param(m, &m->ln_f_w, 1, d, 0, 0, "ln_f.weight", 0);
    if (r == LMU_OK) r = lmu__model_param(m, &m->ln_f_b, 1, d, 0, 0, "ln_f.bias", 0);
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

LMU__PRIVATE void lmu__model_fill_uniform(lmu_model *m, int id, float a, lmu_rng *rng)
{
    const lmu_tensor *x;
    float *p;
    size_t i;
    if (id < 0) return; /* a row of size 0 in this config: absent, as in lmu__model_fill */
    x = &m->tape.tensors[id];
    p = m->tape.param + x->off;
    for (i = 0; i < x->size; i++) p[i] = a * (2.0f * lmu_rng_uniform(rng) - 1.0f);
}

/* iattn_init = delay: row r of each of L_q, L_k, L_v reads the memory's
   input lag_r steps back, lags 0, 1, 2, 4, 8, ... (below theta). The
   Legendre memory holds u(t - s) ~ sum_i P_i(2 s / theta - 1) m_i (the
   LMU's decoder; P_i the Legendre polynomials); with the zero-order hold
   the input of step t - lag sits at s = lag + 1/2, where the read-out
   peaks on that one step (docs/EXPERIMENTS.md shows the kernels). */
LMU__PRIVATE void lmu__model_init_delay(lmu_model *m, int id, int layer)
{
    const lmu_config *c = &m->cfg;
    double theta = lmu_config_layer_theta(c, layer);
    float *L = m->tape.param + m->tape.tensors[id].off; /* (3, q', q) */
    int w, r, i, lag = 0;
    const int q = lmu_config_layer_q(c, layer), qp = lmu_config_layer_q_prime(c, layer);
    for (r = 0; r < qp; r++) {
        double x, p0 = 1, p1, p2;
        lag = r < 3 ? r : 2 * lag;
        if (lag + 0.5 >= theta) lag = (int)(theta - 0.5) > 0 ? (int)(theta - 0.5) : 0;
        x = 2.0 * ((double)lag + 0.5) / theta - 1.0;
        p1 = x;
        for (i = 0; i < q; i++) { /* Bonnet's recursion for P_i(x) */
            float v = (float)(i == 0 ? p0 : p1);
            for (w = 0; w < 3; w++) /* L_q, L_k, L_v alike */
                L[((size_t)w * (size_t)qp + (size_t)r) * (size_t)q + (size_t)i] = v;
            if (i >= 1) {
                p2 = ((2.0 * i + 1.0) * x * p1 - i * p0) / (i + 1.0);
                p0 = p1, p1 = p2;
            }
        }
    }
}

/* Parameters in declaration order, one rng stream: a seed gives the same
   model everywhere. */
LMU__PRIVATE void lmu__model_init(lmu_model *m, uint64_t seed)
{
    const lmu_config *c = &m->cfg;
    const lmu__param_row *rows[4];
    lmu_rng rng;
    int l, k, i, n[4], parts;
    float res = 0.02f / sqrtf(2.0f * (float)c->n_layer);
    lmu_rng_seed(&rng, seed);
    lmu__model_fill(m, m->wte, 0, 0.02f, &rng);
    lmu__model_fill(m, m->wpe, 0, 0.01f, &rng);
    for (l = 0; l < c->n_layer; l++) {
        lmu_layer_ids *L = &m->layer[l];
        parts = lmu__layer_parts(c, l, rows, n);
        for (k = 0; k < parts; k++)
            for (i = 0; i < n[k]; i++) {
                int id = *LMU__IDS(L, &rows[k][i]);
                switch (rows[k][i].init) {
                case LMU__INIT_ONE: lmu__model_fill(m, id, 1, 0, &rng); break;
                case LMU__INIT_ZERO: lmu__model_fill(m, id, 0, 0, &rng); break;
                case LMU__INIT_NORMAL: lmu__model_fill(m, id, 0, 0.02f, &rng); break;
                case LMU__INIT_RESID: lmu__model_fill(m, id, 0, res, &rng); break;
                case LMU__INIT_L:
                    /* drawn either way, so the other parameters do not
                       depend on iattn_init */
                    lmu__model_fill(m, id, 0, 1.0f / sqrtf((float)lmu_config_layer_q(c, l)), &rng);
                    if (c->iattn_init == LMU_IATTN_INIT_DELAY) lmu__model_init_delay(m, id, l);
                    break;
                case LMU__INIT_P:
                    lmu__model_fill(m, id, 0, 1.0f / sqrtf(2.0f * (float)c->n_layer), &rng);
                    break;
                case LMU__INIT_CONV: lmu__model_fill_uniform(m, id, 1.0f / sqrtf(3.0f), &rng); break;
                case LMU__INIT_QKSCALE: /* sqrt(d_head), see >>mixer-brt */
                    lmu__model_fill(m, id, sqrtf((float)c->d_model / (float)c->n_head), 0, &rng);
                    break;
                case LMU__INIT_S01: lmu__model_fill(m, id, 0, 0.1f, &rng); break;
                case LMU__INIT_S1: lmu__model_fill(m, id, 0, 1.0f, &rng); break;
                }
            }
    }
    lmu__model_fill(m, m->ln_f_w, 1, 0, &rng);
    lmu__model_fill(m, m->ln_f_b, 0, 0, &rng);
}

LMU__PRIVATE lmu_result lmu__model_fail(lmu_model *m, lmu_result r)
{
    if (r != LMU_OK && m->tape.err[0]) snprintf(m->err, sizeof m->err, "%s", m->tape.err);
    return r;
}

/* Each layer's LMU memory for sequences of n: layers of equal (q, theta,
   n) share one H and its spectrum. */
LMU__PRIVATE void lmu__memory_free(lmu_lti **lti, int n_layer)
{
    int l, k;
    if (!lti) return;
    for (l = 0; l < n_layer; l++) {
        for (k = 0; k < l && lti[k] != lti[l]; k++) {}
        if (k == l) lmu_lti_free(lti[l]); /* first owner */
    }
    LMU_FREE(lti);
}

LMU__PRIVATE lmu_result lmu__memory_build(const lmu_config *c, int n, lmu_lti ***out)
{
    lmu_lti **lti = (lmu_lti **)LMU_MALLOC((size_t)c->n_layer * sizeof(lmu_lti *));
    lmu_result r = LMU_OK;
    int l, k;
    *out = NULL;
    if (!lti) return LMU_ERR_NOMEM;
    memset(lti, 0, (size_t)c->n_layer * sizeof(lmu_lti *));
    for (l = 0; r == LMU_OK && l < c->n_layer; l++) {
        double th = lmu_config_layer_theta(c, l);
        int nl = (int)lmu__layer_len(c, l, (size_t)n); /* a coarse layer's FFTs are shorter */
        if (!lmu__layer_has_memory(c, l)) continue;
        for (k = 0; k < l; k++)
            if (lti[k] && lmu_lti_matches(lti[k], lmu_config_layer_q(c, l), th, nl)) break;
        if (k < l) lti[l] = lti[k];
        else r = lmu_lti_create(&lti[l], lmu_config_layer_q(c, l), th, nl);
    }
    if (r != LMU_OK) {
        lmu__memory_free(lti, c->n_layer);
        return r;
    }
    *out = lti;
    return LMU_OK;
}

LMUDEF void lmu_model_free(lmu_model *m)
{
    if (!m) return;
    lmu_tape_free(&m->tape);
    lmu_adam_free(&m->adam);
    lmu_gemm_ws_destroy(&m->gemm);
    lmu__memory_free(m->lti_layer, m->cfg.n_layer);
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
    if (r == LMU_OK && m->cfg.arch == LMU_ARCH_LMU) {
        r = lmu__memory_build(&m->cfg, m->cfg.n_ctx, &m->lti_layer);
        if (r == LMU_OK) m->lti = m->lti_layer[0];
    }
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

LMUDEF size_t lmu_model_step_bytes(const lmu_model *m)
{
    if (!m) return 0;
    return (m->tape.act_cap + m->tape.grad_cap + m->scratch_cap) * sizeof(float) +
           m->tape.int_cap * sizeof(int) + m->pos_cap * sizeof(int);
}

/* The kernel scratch floats a step of (B, T) needs: the largest any of
   its fused ops asks for (the loss, each layer's mixer and memory at the
   layer's own length). */
LMU__PRIVATE size_t lmu__model_scratch_need(const lmu_model *m, int B, int T)
{
    const lmu_config *c = &m->cfg;
    size_t need = lmu__ce_scratch_floats((size_t)B * (size_t)T, (size_t)c->vocab_size,
                                         (size_t)c->d_model), s;
    int l;
    for (l = 0; l < c->n_layer; l++) {
        const size_t Tl = lmu__layer_len(c, l, (size_t)T);
        s = lmu__layer_unit(c, l)->scratch(m, Tl);
        if (s > need) need = s;
        s = !lmu__layer_has_memory(c, l) ? 0
                : lmu__iattn_scratch_floats(m->lti_layer[l], Tl, (size_t)c->d_model,
                                            (size_t)lmu_config_layer_q_prime(c, l), m->nparts);
        if (s > need) need = s;
    }
    return need;
}

LMUDEF size_t lmu_model_step_bytes_used(const lmu_model *m)
{
    if (!m || m->T < 1) return 0;
    return (m->tape.act_used + m->tape.grad_used + lmu__model_scratch_need(m, m->B, m->T)) *
               sizeof(float) +
           m->tape.int_used * sizeof(int) + (m->wpe >= 0 ? (size_t)m->B * (size_t)m->T * sizeof(int) : 0);
}

LMUDEF lmu_result lmu_model_set_n_ctx(lmu_model *m, int n_ctx)
{
    lmu_config c;
    lmu_lti **lti;
    lmu_result r;
    if (!m || n_ctx < 1) return LMU_ERR_ARG;
    if (n_ctx == m->cfg.n_ctx) return LMU_OK;
    if (m->wpe >= 0) {
        snprintf(m->err, sizeof m->err,
                 "n_ctx: the transformer's learned positions end at %d", m->cfg.n_ctx);
        return LMU_ERR_RANGE;
    }
    c = m->cfg;
    c.n_ctx = n_ctx;
    if ((r = lmu_config_resolve(&c, m->err, sizeof m->err)) != LMU_OK) return r;
    if (m->lti_layer) {
        if ((r = lmu__memory_build(&c, n_ctx, &lti)) != LMU_OK) {
            snprintf(m->err, sizeof m->err, "n_ctx: cannot build the memory for %d: %s", n_ctx,
                     lmu_strerror(r));
            return r;
        }
        lmu__memory_free(m->lti_layer, m->cfg.n_layer);
        m->lti_layer = lti;
        m->lti = lti[0];
    }
    m->cfg.n_ctx = n_ctx;
    m->loss = m->losses = -1; /* the last forward's records refer to the old memory */
    return LMU_OK;
}

LMUDEF const lmu_config *lmu_model_config(const lmu_model *m) { return m ? &m->cfg : NULL; }
LMUDEF const char *lmu_model_error(const lmu_model *m) { return m ? m->err : "no model"; }
LMUDEF uint64_t lmu_model_data_pos(const lmu_model *m) { return m ? m->data_pos : 0; }
LMUDEF void lmu_model_set_data_pos(lmu_model *m, uint64_t pos)
{
    if (m) m->data_pos = pos;
}

LMUDEF float *lmu_model_param(lmu_model *m, const char *name, size_t *count)
{
    int id = m && name ? lmu_tape_find(&m->tape, name) : -1;
    if (count) *count = id >= 0 ? m->tape.tensors[id].size : 0;
    return id >= 0 ? lmu_tape_data(&m->tape, id) : NULL;
}

LMUDEF float *lmu_model_params(lmu_model *m, size_t *n)
{
    if (n) *n = m ? m->tape.param_size : 0;
    return m ? m->tape.param : NULL;
}

LMUDEF float *lmu_model_grads(lmu_model *m, size_t *n)
{
    if (n) *n = m ? m->tape.param_size : 0;
    return m ? m->tape.param_grad : NULL;
}

/* The fused ops' scratch for one (B, T): the largest any op of the step
   reports (the loss, each layer's mixer, each layer's memory). */
LMU__PRIVATE lmu_result lmu__model_plan(lmu_model *m, int B, int T)
{
    size_t N = (size_t)B * (size_t)T, need;
    m->nparts = lmu__thread_count();
    need = lmu__model_scratch_need(m, B, T);
    if (need > m->scratch_cap) {
        float *p = (float *)lmu__alloc_aligned(need * sizeof(float));
        if (!p) return LMU_ERR_NOMEM;
        lmu__free_aligned(m->scratch);
        m->scratch = p;
        m->scratch_cap = need;
    }
    m->tape.scratch = m->scratch, m->tape.scratch_floats = m->scratch_cap;
    m->tape.nparts = m->nparts;
    if (m->wpe >= 0 && N > m->pos_cap) {
        int *p = (int *)LMU_REALLOC(m->pos, N * sizeof(int));
        if (!p) return LMU_ERR_NOMEM;
        m->pos = p;
        m->pos_cap = N;
    }
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__model_forward(lmu_model *m, const int *tokens, const int *targets,
                                          int B, int T, float *loss, int eager)
{
    const lmu_config *c;
    lmu_tape *t;
    int shape[2], ids, tg, x, h, a = -1, l, v, nlv, saved[LMU__HIER_LEVELS];
    lmu__hier_level lev[LMU__HIER_LEVELS];
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
    if (m->wpe >= 0) { /* the transformer's learned positions */
        int pos, pe, b, i;
        for (b = 0; b < B; b++)
            for (i = 0; i < T; i++) m->pos[(size_t)b * (size_t)T + (size_t)i] = i;
        LMU__TRY(lmu_tape_input_ids(t, m->pos, 2, shape, &pos));
        LMU__TRY(lmu_tape_embedding(t, pos, m->wpe, &pe));
        LMU__TRY(lmu_tape_add(t, x, pe, &x));
    }
    nlv = lmu__hier_levels(c, lev);
    for (l = 0; l < c->n_layer; l++) {
        const lmu_layer_ids *L = &m->layer[l];
        for (v = 0; v < nlv; v++)
            if (l == lev[v].start) { /* down to a coarser stream */
                saved[v] = x;
                LMU__TRY(lmu__tape_pool(t, x, lev[v].k, lev[v].k - 1, &x));
            }
        LMU__TRY(lmu__layer_unit(c, l)->forward(m, l, x, B, (int)lmu__layer_len(c, l, (size_t)T), &x));
        if (lmu__layer_has_memory(c, l)) {
            LMU__TRY(lmu_tape_layernorm(t, x, L->ln_b_w, L->ln_b_b, &h));
            LMU__TRY(lmu__tape_iattn(t, m->lti_layer[l], h, L->lmu_L, L->lmu_b, L->lmu_p, &a));
            LMU__TRY(lmu_tape_add(t, x, a, &x));
        }
        LMU__TRY(lmu__model_ffn(t, x, L->ln_c_w, L->ln_c_b, L->fc_w, L->fc_b, L->fc_proj_w,
                                L->fc_proj_b, &x));
        for (v = nlv - 1; v >= 0; v--)
            if (l == lev[v].start + lev[v].count - 1) /* and back, innermost first */
                LMU__TRY(lmu__tape_unpool_add(t, saved[v], x, lev[v].k, &x));
    }
    LMU__TRY(lmu_tape_layernorm(t, x, m->ln_f_w, m->ln_f_b, &h));
    {
        /* the range check of the targets is the embedding op's for ids;
           the fused loss trusts its targets, so check them here */
        size_t i, n = (size_t)B * (size_t)T;
        for (i = 0; i < n; i++)
            if ((targets[i] < 0 && targets[i] != LMU_TARGET_IGNORE) || targets[i] >= c->vocab_size) {
                snprintf(m->err, sizeof m->err, "forward: target %d at %lu outside 0..%d (or -1)",
                         targets[i], (unsigned long)i, c->vocab_size - 1);
                return LMU_ERR_RANGE;
            }
    }
    LMU__TRY(lmu__tape_ce_tied(t, h, m->wte, tg, eager, &m->loss, &m->losses));
#undef LMU__TRY
    lv = lmu_tape_data(t, m->loss)[0];
    if (loss) *loss = lv;
    if (!(lv == lv) || lv > FLT_MAX || lv < -FLT_MAX) {
        snprintf(m->err, sizeof m->err, "forward: loss is %g", (double)lv);
        return LMU_ERR_NONFINITE;
    }
    return LMU_OK;
}

LMUDEF lmu_result lmu_model_forward(lmu_model *m, const int *tokens, const int *targets, int B,
                                    int T, float *loss)
{
    return lmu__model_forward(m, tokens, targets, B, T, loss, 0);
}

LMU__PRIVATE lmu_result lmu__model_forward_carry(lmu_model *m, const int *tokens,
                                                const int *targets, int B, int T,
                                                const float *carry_in, float *carry_out,
                                                float *loss, int eager)
{
    lmu_result r;
    if (!m) return LMU_ERR_ARG;
    if ((carry_in || carry_out) && lmu_model_carry_floats(m) == 0) {
        snprintf(m->err, sizeof m->err, "forward: a carried state needs a brt layer with n_state >= 1");
        return LMU_ERR_ARG;
    }
    if ((carry_in || carry_out) && m->cfg.hier_k) {
        snprintf(m->err, sizeof m->err, "forward: a carried state does not cross a multi-scale "
                 "stack's pooling (hier_k): not supported");
        return LMU_ERR_ARG;
    }
    if ((carry_in || carry_out) && T % m->cfg.window != 0) {
        snprintf(m->err, sizeof m->err,
                 "forward: a carried state needs T (%d) a multiple of window (%d)", T, m->cfg.window);
        return LMU_ERR_SHAPE;
    }
    m->carry_in = carry_in, m->carry_out = carry_out;
    r = lmu__model_forward(m, tokens, targets, B, T, loss, eager);
    m->carry_in = NULL, m->carry_out = NULL;
    return r;
}

LMUDEF lmu_result lmu_model_forward_carry(lmu_model *m, const int *tokens, const int *targets,
                                          int B, int T, const float *carry_in, float *carry_out,
                                          float *loss)
{
    return lmu__model_forward_carry(m, tokens, targets, B, T, carry_in, carry_out, loss, 0);
}

LMUDEF lmu_result lmu_model_forward_backward_carry(lmu_model *m, const int *tokens,
                                                   const int *targets, int B, int T,
                                                   const float *carry_in, float *carry_out,
                                                   float *loss)
{
    lmu_result r = lmu__model_forward_carry(m, tokens, targets, B, T, carry_in, carry_out, loss, 1);
    return r == LMU_OK ? lmu_model_backward(m) : r;
}

LMUDEF lmu_result lmu_model_forward_backward(lmu_model *m, const int *tokens, const int *targets,
                                             int B, int T, float *loss)
{
    lmu_result r = lmu__model_forward(m, tokens, targets, B, T, loss, 1);
    return r == LMU_OK ? lmu_model_backward(m) : r;
}

LMUDEF lmu_result lmu_model_logits(lmu_model *m, int b, int t, float *logits)
{
    const lmu_tape_rec *ce;
    size_t d;
    if (!m || !logits) return LMU_ERR_ARG;
    if (m->loss < 0) {
        snprintf(m->err, sizeof m->err, "logits: no forward yet");
        return LMU_ERR_STATE;
    }
    if (b < 0 || b >= m->B || t < 0 || t >= m->T) {
        snprintf(m->err, sizeof m->err, "logits: (%d, %d) outside the last forward's %d x %d", b, t,
                 m->B, m->T);
        return LMU_ERR_ARG;
    }
    /* the loss op is the step's last record; its first input is LN_f(x) */
    ce = &m->tape.recs[m->tape.n_recs - 1];
    d = (size_t)m->cfg.d_model;
    /* one row: the gemm would pack all of E for it (MQAR's accuracy asks
       for every query's logits, one at a time) */
    lmu__gemv(logits, lmu__tape_f32(&m->tape, m->wte),
              lmu__tape_f32(&m->tape, ce->in[0]) + ((size_t)b * (size_t)m->T + (size_t)t) * d, NULL,
              (size_t)m->cfg.vocab_size, d);
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

LMUDEF lmu_adam *lmu_model_optimizer(lmu_model *m) { return m ? &m->adam : NULL; }

LMUDEF const char *lmu_precision_name(lmu_precision p)
{
    static const char *const names[] = {
#define LMU__PRECISION_NAME(tail, name) #name,
        LMU__PRECISIONS(LMU__PRECISION_NAME)
#undef LMU__PRECISION_NAME
    };
    return (unsigned)p < (unsigned)LMU_PRECISION_COUNT ? names[p] : "?";
}

LMUDEF lmu_result lmu_precision_parse(const char *name, lmu_precision *out)
{
    int p;
    if (!name || !out) return LMU_ERR_ARG;
    for (p = 0; p < (int)LMU_PRECISION_COUNT; p++)
        if (!strcmp(name, lmu_precision_name((lmu_precision)p))) {
            *out = (lmu_precision)p;
            return LMU_OK;
        }
    return LMU_ERR_ARG;
}

LMUDEF lmu_result lmu_model_set_precision(lmu_model *m, lmu_precision p)
{
    if (!m || (unsigned)p >= (unsigned)LMU_PRECISION_COUNT) return LMU_ERR_ARG;
    m->tape.bf16 = p == LMU_PRECISION_BF16;
    return LMU_OK;
}

LMUDEF lmu_precision lmu_model_precision(const lmu_model *m)
{
    return m && m->tape.bf16 ? LMU_PRECISION_BF16 : LMU_PRECISION_FP32;
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
/* >>model-checkpoints  lmu_model_save / lmu_model_load (safetensors)      */
/* ---------------------------------------------------------------------- */

#define LMU__META_KEYS (LMU__N_FIELDS + 1)
#define LMU__OPTIM_PREFIX_M "optim.m."
#define LMU__OPTIM_PREFIX_V "optim.v."

/* The config as checkpoint metadata: "format", then every field the model
   uses and that is set (lmu__field_written), so a file stays readable by
   versions before an option that is off. iattn_init is an enum and so
   always written: its absence means "made before the option". */
LMU__PRIVATE size_t lmu__config_to_meta(const lmu_config *c, lmu_st_meta *meta,
                                        char (*vals)[LMU__FIELD_TEXT_MAX])
{
    size_t n = 0;
    int i;
    meta[n].key = "format", meta[n].value = "lmu", n++;
    for (i = 0; i < LMU__N_FIELDS; i++) {
        const lmu__field *f = &lmu__fields[i];
        if (!lmu__field_written(c, f)) continue;
        lmu__field_text(c, f, vals[n], sizeof vals[n]);
        meta[n].key = f->name, meta[n].value = vals[n], n++;
    }
    return n;
}

/* Reads the fields back; an absent one stays as c holds it (0: the
   default). Values parse as config-file values do, lists included. */
LMU__PRIVATE lmu_result lmu__config_from_meta(lmu_config *c, const lmu_st_file *f, char *err,
                                              size_t errcap)
{
    char msg[160];
    int i;
    for (i = 0; i < LMU__N_FIELDS; i++) {
        const char *v = lmu_st_meta_get(f, lmu__fields[i].name);
        if (!v && lmu__field_alias(i)) v = lmu_st_meta_get(f, lmu__field_alias(i));
        if (v && lmu_config_set(c, lmu__fields[i].name, v, msg, sizeof msg) != LMU_OK) {
            lmu__errf(err, errcap, "checkpoint: metadata %s", msg);
            return LMU_ERR_FORMAT;
        }
    }
    return LMU_OK;
}

#ifndef LMU_NO_STDIO
LMUDEF lmu_result lmu_model_save(lmu_model *m, const char *path, int with_optim)
{
    const lmu_config *c;
    lmu_tape *t;
    lmu_st_tensor *ts = NULL;
    lmu_st_meta meta[LMU__META_KEYS];
    char(*vals)[LMU__FIELD_TEXT_MAX] = NULL, *names = NULL;
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
    vals = (char(*)[LMU__FIELD_TEXT_MAX])LMU_MALLOC(LMU__META_KEYS * sizeof *vals);
    if (!vals) r = LMU_ERR_NOMEM;
    else r = lmu_st_save_file(path, ts, n, meta, lmu__config_to_meta(c, meta, vals), m->err,
                              sizeof m->err);
    LMU_FREE(vals);
    LMU_FREE(ts);
    LMU_FREE(names);
    return r;
}
#endif

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
    if (!lmu_st_meta_get(f, "arch")) {
        lmu__errf(err, errcap, "checkpoint: metadata arch is missing");
        return LMU_ERR_FORMAT;
    }
    c.iattn_init = LMU_IATTN_INIT_RANDOM; /* files of versions before the option */
    if ((r = lmu__config_from_meta(&c, f, err, errcap)) != LMU_OK) return r;
    if ((r = lmu_config_resolve(&c, err, errcap)) != LMU_OK) return LMU_ERR_FORMAT;
    /* Every parameter is stored as F32, so a file too small for its
       config's parameters is refused before the model (sized by the config,
       not the file) is allocated: a 150-byte file cannot ask for 4 GB. */
    if (lmu_config_param_count_total(&c) > f->data_len / 4) {
        lmu__errf(err, errcap, "checkpoint: the config needs %lu parameters, the file holds %lu bytes of tensors",
                  (unsigned long)lmu_config_param_count_total(&c), (unsigned long)f->data_len);
        return LMU_ERR_FORMAT;
    }
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
   row-parallel dot product is as fast as the memory allows, provided
   enough of W is on its way from memory. Rows are read in order, so W is
   one sequential stream, yet the hardware prefetcher alone keeps too few
   lines in flight for one core: the 50257 x 204 output layer (41 MB, most
   of a token's time) ran at 45 GB/s. Asking for the line LMU__GEMV_AHEAD
   bytes ahead of the row being read gave 65 GB/s (Zen 5, one thread; 8
   and 16 KiB were close, 4 and 32 KiB slower). Non-temporal: each weight
   is used once per token, and keeping the output layer out of the outer
   caches leaves room there for the layers' own, much smaller weights. */
#define LMU__GEMV_AHEAD 12288
/* Fewest multiply-adds (M * K) worth a thread team. Waking one costs a
   microsecond on an idle machine and far more on a busy one, while the
   FFN products of lmu-1m (up to 469 x 204, weights in cache) take about
   5 us on one core and were no faster on two. */
#define LMU__GEMV_PAR ((size_t)1 << 20)
#if defined(__GNUC__) || defined(__clang__)
#define LMU__PREFETCH_NTA(p) __builtin_prefetch((p), 0, 0)
#else
#define LMU__PREFETCH_NTA(p) ((void)(p))
#endif

/* Requests row r's bytes LMU__GEMV_AHEAD ahead, one per cache line (the
   rows are contiguous, so row after row this covers every line of W);
   nothing past W's end. */
LMU__KERN_INLINE void lmu__gemv_ahead(const float *W, size_t M, size_t K, size_t r)
{
    size_t row = K * sizeof(float), at = r * row + LMU__GEMV_AHEAD, j;
    if (at + row <= M * row)
        for (j = 0; j < row; j += 64) LMU__PREFETCH_NTA((const char *)W + at + j);
}

#if defined(LMU__GEMM_AVX512)
/* One row at a time, two accumulators for the FMA latency, a masked load
   for the last K % 16 columns (never reads past the row). One row at a
   time keeps the reads in address order, the pattern the prefetches above
   assume; 8 rows sharing each load of x measured slower (0.8 against 0.66
   ms for the output layer of lmu-1m, one thread, prefetching alike). */
LMU__PRIVATE void lmu__gemv(float *out, const float *W, const float *x, const float *b, size_t M,
                            size_t K)
{
    const size_t nfull = K / 16;
    const __mmask16 tail = (__mmask16)((1u << (K % 16)) - 1u);
    long r;
    LMU__OMP(omp parallel for schedule(static) if (M * K >= LMU__GEMV_PAR))
    for (r = 0; r < (long)M; r++) {
        const float *w = W + (size_t)r * K;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        size_t j;
        lmu__gemv_ahead(W, M, K, (size_t)r);
        for (j = 0; j + 2 <= nfull; j += 2) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + 16 * j), _mm512_loadu_ps(x + 16 * j), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + 16 * j + 16), _mm512_loadu_ps(x + 16 * j + 16), a1);
        }
        if (j < nfull) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + 16 * j), _mm512_loadu_ps(x + 16 * j), a0);
            j++;
        }
        if (tail)
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w + 16 * j),
                                 _mm512_maskz_loadu_ps(tail, x + 16 * j), a1);
        out[r] = (b ? b[r] : 0.0f) + _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}
#else
/* sum of w[0..K) x[0..K) for four rows at once. Four rows share each load
   of x, and 16 independent lanes per row let the compiler vectorise without
   reassociating one float sum (which it may not do without -ffast-math):
   the loop then runs at the speed of reading W, the limit at batch 1. */
LMU__PRIVATE void lmu__dot4(float *out, const float *w0, const float *w1, const float *w2,
                            const float *w3, const float *x, size_t K)
{
    float a0[16], a1[16], a2[16], a3[16];
    size_t k, l;
    for (l = 0; l < 16; l++) a0[l] = a1[l] = a2[l] = a3[l] = 0.0f;
    for (k = 0; k + 16 <= K; k += 16)
        for (l = 0; l < 16; l++) {
            float xv = x[k + l];
            a0[l] += w0[k + l] * xv;
            a1[l] += w1[k + l] * xv;
            a2[l] += w2[k + l] * xv;
            a3[l] += w3[k + l] * xv;
        }
    for (l = 0; k + l < K; l++) {
        float xv = x[k + l];
        a0[l] += w0[k + l] * xv;
        a1[l] += w1[k + l] * xv;
        a2[l] += w2[k + l] * xv;
        a3[l] += w3[k + l] * xv;
    }
    for (l = 0; l < 8; l++) {
        a0[l] += a0[l + 8], a1[l] += a1[l + 8];
        a2[l] += a2[l + 8], a3[l] += a3[l + 8];
    }
    for (l = 0; l < 4; l++) {
        a0[l] += a0[l + 4], a1[l] += a1[l + 4];
        a2[l] += a2[l + 4], a3[l] += a3[l + 4];
    }
    out[0] = (a0[0] + a0[2]) + (a0[1] + a0[3]);
    out[1] = (a1[0] + a1[2]) + (a1[1] + a1[3]);
    out[2] = (a2[0] + a2[2]) + (a2[1] + a2[3]);
    out[3] = (a3[0] + a3[2]) + (a3[1] + a3[3]);
}

/* out (M) = W (M, K) x + b. */
LMU__PRIVATE void lmu__gemv(float *out, const float *W, const float *x, const float *b, size_t M,
                            size_t K)
{
    long i4, n4 = (long)((M + 3) / 4);
    LMU__OMP(omp parallel for schedule(static) if (M * K >= LMU__GEMV_PAR))
    for (i4 = 0; i4 < n4; i4++) {
        size_t r0 = (size_t)i4 * 4, r;
        float o[4];
        /* a last block of fewer than 4 rows repeats its last row */
        const float *w[4];
        for (r = 0; r < 4; r++) w[r] = W + (r0 + r < M ? r0 + r : M - 1) * K;
        for (r = 0; r < 4 && r0 + r < M; r++) lmu__gemv_ahead(W, M, K, r0 + r);
        lmu__dot4(o, w[0], w[1], w[2], w[3], x, K);
        for (r = 0; r < 4 && r0 + r < M; r++) out[r0 + r] = (b ? b[r0 + r] : 0.0f) + o[r];
    }
}
#endif

LMU__KERN_INLINE float lmu__bf16_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* out (M) = diag(scale) W (M, K) x with W in a narrow format: bf16 (the
   upper half of an fp32: widening is a 16-bit shift; no scale) or int8
   (one scale a row, applied to the row's fp32 sum). Four rows share each
   load of x, as in lmu__gemv's portable form; the widening and the
   multiply hide under reading W, which is the limit while W is larger
   than the cache. The SIMD form widens 16 weights into two vectors a
   step; the portable one keeps 16 lanes per row so the compiler can
   vectorise it without reassociating a float sum. One body, written once
   (LMU__GEMV_NARROW), for both formats. */
#if defined(LMU__GEMM_AVX2) || (defined(LMU__GEMM_AVX512) && defined(__AVX2__))
#define LMU__GEMV_NARROW_SIMD 1
LMU__KERN_INLINE void lmu__widen16_bf16(const uint16_t *p, __m256 *lo, __m256 *hi)
{
    __m256i a = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    __m256i b = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 8)));
    *lo = _mm256_castsi256_ps(_mm256_slli_epi32(a, 16));
    *hi = _mm256_castsi256_ps(_mm256_slli_epi32(b, 16));
}
LMU__KERN_INLINE void lmu__widen16_int8(const int8_t *p, __m256 *lo, __m256 *hi)
{
    __m128i b = _mm_loadu_si128((const __m128i *)p);
    *lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    *hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
}
#endif
LMU__KERN_INLINE float lmu__widen1_bf16(uint16_t h) { return lmu__bf16_float(h); }
LMU__KERN_INLINE float lmu__widen1_int8(int8_t q) { return (float)q; }

#ifdef LMU__GEMV_NARROW_SIMD
#define LMU__GEMV_NARROW_MAIN(FMT)                                                                \
    {                                                                                             \
        __m256 v[4][2];                                                                           \
        for (r = 0; r < 4; r++) v[r][0] = v[r][1] = _mm256_setzero_ps();                          \
        for (; k + 16 <= K; k += 16) {                                                            \
            __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8), lo, hi;          \
            for (r = 0; r < 4; r++) {                                                             \
                lmu__widen16_##FMT(w[r] + k, &lo, &hi);                                           \
                v[r][0] = _mm256_fmadd_ps(lo, x0, v[r][0]);                                       \
                v[r][1] = _mm256_fmadd_ps(hi, x1, v[r][1]);                                       \
            }                                                                                     \
        }                                                                                         \
        for (r = 0; r < 4; r++) {                                                                 \
            _mm256_storeu_ps(a[r], v[r][0]);                                                      \
            _mm256_storeu_ps(a[r] + 8, v[r][1]);                                                  \
        }                                                                                         \
    }
#else
#define LMU__GEMV_NARROW_MAIN(FMT)                                                                \
    for (; k + 16 <= K; k += 16)                                                                  \
        for (r = 0; r < 4; r++)                                                                   \
            for (l = 0; l < 16; l++) a[r][l] += lmu__widen1_##FMT(w[r][k + l]) * x[k + l];
#endif
/* FMT: bf16 or int8; T its element; PAR: how many times LMU__GEMV_PAR's
   multiply-adds a thread team needs (narrower bytes, less to share out) */
#define LMU__GEMV_NARROW(FMT, T, PAR)                                                             \
    LMU__PRIVATE void lmu__gemv_##FMT(float *out, const T *W, const float *scale, const float *x, \
                                      size_t M, size_t K)                                         \
    {                                                                                             \
        long i4, n4 = (long)((M + 3) / 4);                                                        \
        LMU__OMP(omp parallel for schedule(static) if (M * K >= (PAR) * LMU__GEMV_PAR))           \
        for (i4 = 0; i4 < n4; i4++) {                                                             \
            size_t r0 = (size_t)i4 * 4, r, k = 0, l;                                              \
            float a[4][16];                                                                       \
            const T *w[4];                                                                        \
            for (r = 0; r < 4; r++) w[r] = W + (r0 + r < M ? r0 + r : M - 1) * K;                 \
            for (r = 0; r < 4; r++)                                                               \
                for (l = 0; l < 16; l++) a[r][l] = 0.0f;                                          \
            for (r = 0; r < 4 && r0 + r < M; r++)                                                 \
                lmu__gemv_ahead((const float *)W, M, K * sizeof(T) / 4, r0 + r);                  \
            LMU__GEMV_NARROW_MAIN(FMT)                                                            \
            for (r = 0; r < 4; r++)                                                               \
                for (l = 0; k + l < K; l++) a[r][l] += lmu__widen1_##FMT(w[r][k + l]) * x[k + l]; \
            for (r = 0; r < 4 && r0 + r < M; r++) {                                               \
                float s = 0.0f;                                                                   \
                for (l = 0; l < 16; l++) s += a[r][l];                                            \
                out[r0 + r] = scale ? scale[r0 + r] * s : s;                                      \
            }                                                                                     \
        }                                                                                         \
    }
LMU__GEMV_NARROW(bf16, uint16_t, 2)
LMU__GEMV_NARROW(int8, int8_t, 4)

LMU__PRIVATE void lmu__gen_ln(const lmu_model *m, float *out, const float *x, int g, int b)
{
    float mean, rstd;
    const float *P = m->tape.param;
    lmu__layernorm_forward(out, &mean, &rstd, x, P + m->tape.tensors[g].off,
                           P + m->tape.tensors[b].off, 1, m->tape.tensors[g].size, 1e-5f);
}

LMUDEF void lmu_gen_free(lmu_gen *g)
{
    if (!g) return;
    lmu__free_aligned(g->state);
    lmu__free_aligned(g->out_copy);
    LMU_FREE(g->cand);
    lmu_gemm_ws_destroy(&g->gemm);
    memset(g, 0, sizeof *g);
}

/* where layer l's memory (q_l x d) starts in g->state; l = n_layer: all */
LMU__PRIVATE size_t lmu__gen_memory_off(const lmu_config *c, int l)
{
    size_t off = 0;
    int k;
    for (k = 0; k < l; k++)
        if (lmu__layer_has_memory(c, k))
            off += (size_t)lmu_config_layer_q(c, k) * (size_t)c->d_model;
    return off;
}

LMUDEF lmu_result lmu_gen_create(lmu_gen *g, const lmu_model *m, int max_ctx)
{
    const lmu_config *c;
    size_t d, q, qp, kv = 0, big, state, total, V, as;
    int l, brt, nlv;
    lmu__hier_level lv[LMU__HIER_LEVELS];
    float *p;
    if (!g || !m) return LMU_ERR_ARG;
    memset(g, 0, sizeof *g);
    c = &m->cfg;
    if (max_ctx <= 0) max_ctx = c->n_ctx;
    if (m->wpe >= 0 && max_ctx > c->n_ctx) max_ctx = c->n_ctx; /* learned positions end */
    d = (size_t)c->d_model, q = lmu__max_q(c, 0), qp = lmu__max_q(c, 1);
    V = (size_t)c->vocab_size;
    state = m->lti ? lmu__gen_memory_off(c, c->n_layer) : 0;
    big = (size_t)c->d_ff;
    for (l = 0; l < c->n_layer; l++) {
        const lmu__mixer_unit *u = lmu__layer_unit(c, l);
        size_t w = u->gen_work(c, (size_t)max_ctx);
        kv += u->gen_state(c, (size_t)max_ctx);
        if (w > big) big = w;
    }
    as = m->lti ? lmu__iattn_attn_scratch_floats(1, qp, d, 1) : 0;
    /* one block: every buffer 16-float aligned */
#define LMU__R(n) (((n) + 15) & ~(size_t)15)
    nlv = lmu__hier_levels(c, lv);
    total = LMU__R(state) + LMU__R(q * d) + LMU__R(kv) + 5 * LMU__R(d) + LMU__R(big) +
            LMU__R(3 * qp * d) + LMU__R(qp * qp) + LMU__R(as) + LMU__R(V);
    for (l = 0; l < nlv; l++) total += LMU__R((size_t)lv[l].k * d) + 2 * LMU__R(d);
    g->state = (float *)lmu__alloc_aligned(total * sizeof(float));
    g->cand = (lmu__cand *)LMU_MALLOC(V * sizeof(lmu__cand));
    for (l = 0, brt = 0; l < c->n_layer; l++)
        brt |= lmu_config_layer_mixer(c, l) == LMU_MIXER_BRT && c->n_state > 0;
    if (brt) { /* the state's update: products of every shape, once a block */
        if (lmu_gemm_ws_create(&g->gemm, 0) != LMU_OK) {
            lmu_gen_free(g);
            return LMU_ERR_NOMEM;
        }
    } else if (m->lti) {
        /* The LMU's products (Abar m and L m) all have K = q and N = d:
           slices for those shapes (300 KB a thread for lmu-1m) instead of
           lmu_gemm_ws_bytes' any-shape 6.5 MB. One per thread the team may
           have now; lmu_sgemm uses no more threads than the slices. */
        g->gemm.nthreads = lmu__gemm_threads(0);
        g->gemm.slice_floats = lmu__gemm_need(q, d);
        g->gemm.buf = (float *)lmu__alloc_aligned((size_t)g->gemm.nthreads * g->gemm.slice_floats *
                                                  sizeof(float));
        g->gemm.owned = 1;
    }
    if (!g->state || !g->cand || ((m->lti || brt) && !g->gemm.buf)) {
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
    g->attn_scratch = p, p += LMU__R(as);
    g->logits = p, p += LMU__R(V);
    for (l = 0; l < nlv; l++) {
        g->win[l] = p, p += LMU__R((size_t)lv[l].k * d);
        g->fine[l] = p, p += LMU__R(d);
        g->up[l] = p, p += LMU__R(d);
    }
#undef LMU__R
    g->m = m;
    g->max_ctx = max_ctx;
    g->nparts = lmu__thread_count();
    lmu_gen_reset(g);
    return LMU_OK;
}

LMUDEF void lmu_gen_reset(lmu_gen *g)
{
    const lmu_config *c = &g->m->cfg;
    lmu__hier_level lv[LMU__HIER_LEVELS];
    size_t off = 0, n;
    int l;
    g->t = 0;
    if (g->m->lti) memset(g->state, 0, lmu__gen_memory_off(c, c->n_layer) * sizeof(float));
    /* a mixer's state that sums over the past starts at zero; a cache
       (kv_cache) is written before it is read, position by position */
    for (l = 0; l < c->n_layer; l++, off += n) {
        n = lmu__layer_unit(c, l)->gen_state(c, (size_t)g->max_ctx);
        if (!lmu__layer_unit(c, l)->kv_cache) memset(g->kv + off, 0, n * sizeof(float));
    }
    /* the positions before the start pool as zeros */
    for (l = 0; l < lmu__hier_levels(c, lv); l++)
        memset(g->win[l], 0, (size_t)lv[l].k * (size_t)c->d_model * sizeof(float));
}

/* x += FFN(LN(x)) for one position. */
LMU__PRIVATE void lmu__gen_ffn(lmu_gen *g, int lg, int lb, int w1, int b1, int w2, int b2)
{
    const lmu_model *m = g->m;
    size_t d = (size_t)m->cfg.d_model, k, inner = (size_t)m->tape.tensors[w1].shape[0];
    lmu__gen_ln(m, g->h, g->x, lg, lb);
    lmu__gemv(g->big, LMU__GP(w1), g->h, LMU__GP(b1), inner, d);
    /* lmu__gelu_forward's element, without its thread team: a few hundred
       values are not worth waking one */
    for (k = 0; k < inner; k++) g->big[k] = lmu__kern_gelu(g->big[k], NULL);
    lmu__gemv(g->a, LMU__GP(w2), g->big, LMU__GP(b2), d, inner);
    for (k = 0; k < d; k++) g->x[k] += g->a[k];
}

/* x += ImplicitAttn(LN_b x) for one position, the memory as a recurrence. */
LMU__PRIVATE void lmu__gen_memory(lmu_gen *g, int l)
{
    const lmu_model *m = g->m;
    const lmu_layer_ids *L = &m->layer[l];
    size_t d = (size_t)m->cfg.d_model, r, k;
    size_t q = (size_t)lmu_config_layer_q(&m->cfg, l), qp = (size_t)lmu_config_layer_q_prime(&m->cfg, l);
    float *st = g->state + lmu__gen_memory_off(&m->cfg, l);
    const float *bias = LMU__GP(L->lmu_b);
    lmu__gen_ln(m, g->h, g->x, L->ln_b_w, L->ln_b_b);
    /* m_t = Abar m_{t-1} + Bbar x_t as the outer product Bbar x^T plus one
       packed sgemm: Abar m is a q x q by q x d product, which the
       register-blocked kernel runs fastest, with the same bits for any
       thread count. */
    for (r = 0; r < q; r++) {
        const float bb = m->lti_layer[l]->Bbar[r];
        float *o = g->state_tmp + r * d;
        for (k = 0; k < d; k++) o[k] = bb * g->h[k];
    }
    lmu__kern_gemm(&g->gemm, 0, 0, q, d, q, 1.0f, m->lti_layer[l]->Abar, q, st, d, 1.0f,
                   g->state_tmp, d);
    memcpy(st, g->state_tmp, q * d * sizeof(float));
    /* Z = L m + b: the convolution with L H at this position, the same
       kind of product (3q' x q by q x d) */
    for (r = 0; r < 3 * qp; r++)
        for (k = 0; k < d; k++) g->z[r * d + k] = bias[r];
    lmu__kern_gemm(&g->gemm, 0, 0, 3 * qp, d, q, 1.0f, LMU__GP(L->lmu_L), q, st, d, 1.0f, g->z,
                   d);
    lmu__iattn_attn_forward(g->y, g->pc, g->z, LMU__GP(L->lmu_p), 1, qp, d, 1, g->attn_scratch);
    for (k = 0; k < d; k++) g->x[k] += g->y[k];
}

/* Runs layers l0 .. l1-1 on g->x at position g->t, their states from
   g->kv + off; level: the first pooled level (>>layers) not yet entered.
   A level's layers run once every k positions of the stream below, at
   t = jk, on the mean of that stream's last k vectors (lmu__pool_forward
   on them, so the sum has the parallel forward's order) at position j;
   between, the stream adds their last output, as lmu__unpool_add
   repeats it. */
LMU__PRIVATE void lmu__gen_layers(lmu_gen *g, int level, int l0, int l1, size_t off)
{
    const lmu_model *m = g->m;
    const lmu_config *c = &m->cfg;
    const size_t d = (size_t)c->d_model;
    lmu__hier_level lv[LMU__HIER_LEVELS];
    const int nlv = lmu__hier_levels(c, lv);
    size_t k;
    int l, j;
    for (l = l0; l < l1; l++) {
        const lmu__mixer_unit *u = lmu__layer_unit(c, l);
        const lmu_layer_ids *L = &m->layer[l];
        if (level < nlv && l == lv[level].start) {
            const size_t K = (size_t)lv[level].k, t = (size_t)g->t;
            const int top = l + lv[level].count;
            float *win = g->win[level];
            memmove(win, win + d, (K - 1) * d * sizeof(float));
            memcpy(win + (K - 1) * d, g->x, d * sizeof(float));
            if (t % K == 0) {
                memcpy(g->fine[level], g->x, d * sizeof(float));
                lmu__pool_forward(g->x, win, 1, K, d, K, 0);
                g->t = (int)(t / K); /* the level counts its own positions */
                lmu__gen_layers(g, level + 1, l, top, off);
                g->t = (int)t;
                memcpy(g->up[level], g->x, d * sizeof(float));
                memcpy(g->x, g->fine[level], d * sizeof(float));
            }
            for (k = 0; k < d; k++) g->x[k] += g->up[level][k];
            for (j = l; j < top; j++) off += lmu__layer_unit(c, j)->gen_state(c, (size_t)g->max_ctx);
            l = top - 1;
            continue;
        }
        u->gen_step(g, l, g->kv + off);
        off += u->gen_state(c, (size_t)g->max_ctx);
        if (lmu__layer_has_memory(c, l)) lmu__gen_memory(g, l);
        lmu__gen_ffn(g, L->ln_c_w, L->ln_c_b, L->fc_w, L->fc_b, L->fc_proj_w, L->fc_proj_b);
    }
}

LMUDEF lmu_result lmu_gen_feed(lmu_gen *g, int token)
{
    const lmu_model *m;
    const lmu_config *c;
    size_t d, k;
    int l;
    if (!g || !g->m) return LMU_ERR_ARG;
    m = g->m;
    c = &m->cfg;
    d = (size_t)c->d_model;
    if (token < 0 || token >= c->vocab_size) {
        snprintf(g->err, sizeof g->err, "generate: token %d outside 0..%d", token, c->vocab_size - 1);
        return LMU_ERR_RANGE;
    }
    if (m->wpe >= 0 && g->t >= c->n_ctx) { /* whatever the mixers */
        snprintf(g->err, sizeof g->err, "generate: context full (the learned positions end at %d)",
                 c->n_ctx);
        return LMU_ERR_CAPACITY;
    }
    for (l = 0; l < c->n_layer; l++) /* a window's cache is a ring: never full */
        if (lmu__layer_unit(c, l)->kv_cache && g->t >= g->max_ctx &&
            !(c->window && lmu_config_layer_mixer(c, l) == LMU_MIXER_ATTN)) {
            snprintf(g->err, sizeof g->err, "generate: context full (%d positions)", g->max_ctx);
            return LMU_ERR_CAPACITY;
        }
    memcpy(g->x, LMU__GP(m->wte) + (size_t)token * d, d * sizeof(float));
    if (m->wpe >= 0) {
        const float *pe = LMU__GP(m->wpe) + (size_t)g->t * d;
        for (k = 0; k < d; k++) g->x[k] += pe[k];
    }
    lmu__gen_layers(g, 0, 0, c->n_layer, 0);
    lmu__gen_ln(m, g->h, g->x, m->ln_f_w, m->ln_f_b);
    if (g->out_weights == LMU_GEN_WEIGHTS_BF16)
        lmu__gemv_bf16(g->logits, (const uint16_t *)g->out_copy, NULL, g->h, (size_t)c->vocab_size, d);
    else if (g->out_weights == LMU_GEN_WEIGHTS_INT8)
        lmu__gemv_int8(g->logits, (const int8_t *)g->out_copy, g->out_scale, g->h,
                       (size_t)c->vocab_size, d);
    else
        lmu__gemv(g->logits, LMU__GP(m->wte), g->h, NULL, (size_t)c->vocab_size, d);
    g->t++;
    return LMU_OK;
}

/* fp32 to bf16, rounded as the bf16 products round their operands. */
LMU__PRIVATE uint16_t lmu__bf16_round(float f)
{
    uint32_t u;
    lmu__gemm_round_bf16(&f, 1);
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

LMUDEF const char *lmu_gen_weights_name(lmu_gen_weights w)
{
    static const char *const names[] = {
#define LMU__GEN_WEIGHTS_NAME(tail, name, bytes) #name,
        LMU__GEN_WEIGHTS(LMU__GEN_WEIGHTS_NAME)
#undef LMU__GEN_WEIGHTS_NAME
    };
    return (unsigned)w < (unsigned)LMU_GEN_WEIGHTS_COUNT ? names[w] : "?";
}

LMUDEF lmu_result lmu_gen_weights_parse(const char *name, lmu_gen_weights *out)
{
    int w;
    if (!name || !out) return LMU_ERR_ARG;
    for (w = 0; w < (int)LMU_GEN_WEIGHTS_COUNT; w++)
        if (!strcmp(name, lmu_gen_weights_name((lmu_gen_weights)w))) {
            *out = (lmu_gen_weights)w;
            return LMU_OK;
        }
    return LMU_ERR_ARG;
}

LMUDEF lmu_result lmu_gen_set_weights(lmu_gen *g, lmu_gen_weights fmt)
{
    static const size_t bytes[] = {
#define LMU__GEN_WEIGHTS_BYTES(tail, name, b) b,
        LMU__GEN_WEIGHTS(LMU__GEN_WEIGHTS_BYTES)
#undef LMU__GEN_WEIGHTS_BYTES
    };
    size_t V, d, n, i, k;
    const float *w;
    if (!g || !g->m || (unsigned)fmt >= (unsigned)LMU_GEN_WEIGHTS_COUNT) return LMU_ERR_ARG;
    lmu__free_aligned(g->out_copy);
    g->out_copy = NULL, g->out_scale = NULL, g->out_weights = LMU_GEN_WEIGHTS_FP32;
    if (fmt == LMU_GEN_WEIGHTS_FP32) return LMU_OK;
    V = (size_t)g->m->cfg.vocab_size, d = (size_t)g->m->cfg.d_model, n = V * d;
    w = g->m->tape.param + g->m->tape.tensors[g->m->wte].off;
    /* int8's scales after its bytes, 16-byte aligned: one block */
    if (!(g->out_copy = lmu__alloc_aligned(lmu__kern_round16(n * bytes[fmt]) +
                                           (fmt == LMU_GEN_WEIGHTS_INT8 ? V * sizeof(float) : 0))))
        return LMU_ERR_NOMEM;
    if (fmt == LMU_GEN_WEIGHTS_BF16) {
        uint16_t *o = (uint16_t *)g->out_copy;
        for (i = 0; i < n; i++) o[i] = lmu__bf16_round(w[i]);
    } else {
        int8_t *o = (int8_t *)g->out_copy;
        g->out_scale = (float *)((char *)g->out_copy + lmu__kern_round16(n));
        for (i = 0; i < V; i++) {
            const float *wr = w + i * d;
            float mx = 0.0f, s, inv;
            for (k = 0; k < d; k++) mx = fabsf(wr[k]) > mx ? fabsf(wr[k]) : mx;
            s = mx / 127.0f, inv = mx > 0.0f ? 127.0f / mx : 0.0f;
            g->out_scale[i] = s;
            for (k = 0; k < d; k++) {
                /* |w inv| <= 127 up to rounding: clamp so it stays a byte */
                long qv = lrintf(wr[k] * inv);
                o[i * d + k] = (int8_t)(qv > 127 ? 127 : qv < -127 ? -127 : qv);
            }
        }
    }
    g->out_weights = (int)fmt;
    return LMU_OK;
}

LMU__PRIVATE int lmu__cand_cmp(const void *a, const void *b)
{
    const lmu__cand *x = (const lmu__cand *)a, *y = (const lmu__cand *)b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Restores the heap below c[i] in c[0..n), a heap whose root sorts last. */
LMU__PRIVATE void lmu__cand_sift(lmu__cand *c, int n, int i)
{
    for (;;) {
        int w = i, l = 2 * i + 1;
        lmu__cand t;
        if (l < n && lmu__cand_cmp(&c[l], &c[w]) > 0) w = l;
        if (l + 1 < n && lmu__cand_cmp(&c[l + 1], &c[w]) > 0) w = l + 1;
        if (w == i) return;
        t = c[i], c[i] = c[w], c[w] = t;
        i = w;
    }
}

/* Puts the k candidates that come first in lmu__cand_cmp's order into
   c[0..k), sorted, and the other m - k behind them in some order: exactly
   the first k of qsort over all m (the order is total: ids differ). A
   heap keeps the k best so far with the worst at its root, so one
   comparison rejects each of the many small candidates; sorting all m
   (up to 50257) took 9 ms a token for top-k 40, six times the model. */
LMU__PRIVATE void lmu__cand_top(lmu__cand *c, int m, int k)
{
    int i;
    if (k < m) {
        for (i = k / 2 - 1; i >= 0; i--) lmu__cand_sift(c, k, i);
        for (i = k; i < m; i++)
            if (lmu__cand_cmp(&c[i], &c[0]) < 0) {
                lmu__cand t = c[0];
                c[0] = c[i], c[i] = t;
                lmu__cand_sift(c, k, 0);
            }
    }
    qsort(c, (size_t)(k < m ? k : m), sizeof *c, lmu__cand_cmp);
}

/* The index the plain loop `if (x[i] > mx) mx = x[i], best = i` returns
   (the first maximum; NaN never wins, except at index 0, which nothing
   beats), over 16 interleaved lanes that vectorise: each lane keeps its
   own first maximum, and the lanes are merged by value, then index. */
LMU__PRIVATE int lmu__gen_argmax(const float *x, int n)
{
    float v[16];
    int at[16], i, l, best = 0;
    for (l = 0; l < 16; l++) v[l] = x[0], at[l] = 0;
    for (i = 1; i + 16 <= n; i += 16)
        for (l = 0; l < 16; l++) {
            const int gt = x[i + l] > v[l];
            v[l] = gt ? x[i + l] : v[l];
            at[l] = gt ? i + l : at[l];
        }
    for (; i < n; i++)
        if (x[i] > v[0]) v[0] = x[i], at[0] = i;
    for (l = 1; l < 16; l++)
        if (v[l] > v[best] || (v[l] == v[best] && at[l] < at[best])) best = l;
    return at[best];
}

LMUDEF int lmu_gen_sample(lmu_gen *g, float temperature, int top_k, float top_p, lmu_rng *rng)
{
    int V = g->m->cfg.vocab_size, i, n, best = lmu__gen_argmax(g->logits, V);
    float mx = g->logits[best];
    double sum = 0, acc, u;
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
        /* Only the first n of the sorted order are ever read: top_k of
           them, or (top_p alone) as many as reach top_p's mass, which
           a peaked distribution reaches in a few. Sort a prefix and widen
           it until the same sum as below reaches top_p. */
        n = top_k > 0 && top_k < m ? top_k : m;
        if (top_p < 1.0f && n > 256) {
            int k = 256;
            for (;;) {
                lmu__cand_top(g->cand, m, k);
                for (acc = 0, i = 0; i < k && acc < top_p; i++) acc += g->cand[i].p / sum;
                if (acc >= top_p || k == n) break;
                k = k > n / 4 ? n : 4 * k;
            }
            n = k;
        } else {
            lmu__cand_top(g->cand, m, n);
        }
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

/* ---------------------------------------------------------------------- */
/* >>tokenizer (implementation)                                            */
/* ---------------------------------------------------------------------- */

/* stb_ds only in here and without short names, so arrput/hmget never become
   macros in user code. The loader keeps its maps in stb_ds (token text -> id,
   (left, right) -> merge); encode never touches them: after loading they are
   flattened into tables that are only read, so no lookup writes shared state
   (stb_ds's non-_ts lookups write a temp into the map header), and GCC's
   -std=c99 lacks the `typeof` that stb_ds's hmput/hmgeti need for rvalue
   keys, so only hmputs and shgeti/shput are used. libstb (-lstb) provides the functions unless the user
   asks for them here with LMU_STB_DS_IMPLEMENTATION. */
#ifndef STBDS_NO_SHORT_NAMES
#define STBDS_NO_SHORT_NAMES
#endif
#ifdef LMU_STB_DS_IMPLEMENTATION
#define STBDS_REALLOC(ctx, p, sz) LMU_REALLOC(p, sz)
#define STBDS_FREE(ctx, p) LMU_FREE(p)
#define STB_DS_IMPLEMENTATION
#endif
#include <stb_ds.h>

/* >>unicode-tables begin - GENERATED by tools/gen_unicode_tables.py; do not edit.
   Source: Debian unicode-data, Unicode 15.0.0 (UnicodeData.txt, PropList.txt).
   Character classes for GPT-2's pre-tokenisation pattern:
       1 = \p{L} (Lu Ll Lt Lm Lo)   2 = \p{N} (Nd Nl No)
       3 = \s (White_Space)         0 = anything else, unassigned included
   806 ranges (659 letter, 137 number, 10 white space), sorted, disjoint, each a
   maximal run of one class; code points in no range are class 0. Each entry
   is { first, (last << 2) | class }. */
#define LMU__UNICODE_VERSION "15.0.0"
#define LMU__UC_RANGE_COUNT 806

/* classes of U+0000..U+007F, so ASCII never searches the table */
static const unsigned char lmu__uc_ascii[128] = {
    0,0,0,0,0,0,0,0,0,3,3,3,3,3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,2,2,2,2,2,2,2,2,0,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,
};

static const uint32_t lmu__uc_ranges[LMU__UC_RANGE_COUNT][2] = {
    {0x9,0x37}, {0x20,0x83}, {0x30,0xE6}, {0x41,0x169}, {0x61,0x1E9},
    {0x85,0x217}, {0xA0,0x283}, {0xAA,0x2A9}, {0xB2,0x2CE}, {0xB5,0x2D5},
    {0xB9,0x2E6}, {0xBA,0x2E9}, {0xBC,0x2FA}, {0xC0,0x359}, {0xD8,0x3D9},
    {0xF8,0xB05}, {0x2C6,0xB45}, {0x2E0,0xB91}, {0x2EC,0xBB1}, {0x2EE,0xBB9},
    {0x370,0xDD1}, {0x376,0xDDD}, {0x37A,0xDF5}, {0x37F,0xDFD}, {0x386,0xE19},
    {0x388,0xE29}, {0x38C,0xE31}, {0x38E,0xE85}, {0x3A3,0xFD5}, {0x3F7,0x1205},
    {0x48A,0x14BD}, {0x531,0x1559}, {0x559,0x1565}, {0x560,0x1621},
    {0x5D0,0x17A9}, {0x5EF,0x17C9}, {0x620,0x1929}, {0x660,0x19A6},
    {0x66E,0x19BD}, {0x671,0x1B4D}, {0x6D5,0x1B55}, {0x6E5,0x1B99},
    {0x6EE,0x1BBD}, {0x6F0,0x1BE6}, {0x6FA,0x1BF1}, {0x6FF,0x1BFD},
    {0x710,0x1C41}, {0x712,0x1CBD}, {0x74D,0x1E95}, {0x7B1,0x1EC5},
    {0x7C0,0x1F26}, {0x7CA,0x1FA9}, {0x7F4,0x1FD5}, {0x7FA,0x1FE9},
    {0x800,0x2055}, {0x81A,0x2069}, {0x824,0x2091}, {0x828,0x20A1},
    {0x840,0x2161}, {0x860,0x21A9}, {0x870,0x221D}, {0x889,0x2239},
    {0x8A0,0x2325}, {0x904,0x24E5}, {0x93D,0x24F5}, {0x950,0x2541},
    {0x958,0x2585}, {0x966,0x25BE}, {0x971,0x2601}, {0x985,0x2631},
    {0x98F,0x2641}, {0x993,0x26A1}, {0x9AA,0x26C1}, {0x9B2,0x26C9},
    {0x9B6,0x26E5}, {0x9BD,0x26F5}, {0x9CE,0x2739}, {0x9DC,0x2775},
    {0x9DF,0x2785}, {0x9E6,0x27BE}, {0x9F0,0x27C5}, {0x9F4,0x27E6},
    {0x9FC,0x27F1}, {0xA05,0x2829}, {0xA0F,0x2841}, {0xA13,0x28A1},
    {0xA2A,0x28C1}, {0xA32,0x28CD}, {0xA35,0x28D9}, {0xA38,0x28E5},
    {0xA59,0x2971}, {0xA5E,0x2979}, {0xA66,0x29BE}, {0xA72,0x29D1},
    {0xA85,0x2A35}, {0xA8F,0x2A45}, {0xA93,0x2AA1}, {0xAAA,0x2AC1},
    {0xAB2,0x2ACD}, {0xAB5,0x2AE5}, {0xABD,0x2AF5}, {0xAD0,0x2B41},
    {0xAE0,0x2B85}, {0xAE6,0x2BBE}, {0xAF9,0x2BE5}, {0xB05,0x2C31},
    {0xB0F,0x2C41}, {0xB13,0x2CA1}, {0xB2A,0x2CC1}, {0xB32,0x2CCD},
    {0xB35,0x2CE5}, {0xB3D,0x2CF5}, {0xB5C,0x2D75}, {0xB5F,0x2D85},
    {0xB66,0x2DBE}, {0xB71,0x2DC5}, {0xB72,0x2DDE}, {0xB83,0x2E0D},
    {0xB85,0x2E29}, {0xB8E,0x2E41}, {0xB92,0x2E55}, {0xB99,0x2E69},
    {0xB9C,0x2E71}, {0xB9E,0x2E7D}, {0xBA3,0x2E91}, {0xBA8,0x2EA9},
    {0xBAE,0x2EE5}, {0xBD0,0x2F41}, {0xBE6,0x2FCA}, {0xC05,0x3031},
    {0xC0E,0x3041}, {0xC12,0x30A1}, {0xC2A,0x30E5}, {0xC3D,0x30F5},
    {0xC58,0x3169}, {0xC5D,0x3175}, {0xC60,0x3185}, {0xC66,0x31BE},
    {0xC78,0x31FA}, {0xC80,0x3201}, {0xC85,0x3231}, {0xC8E,0x3241},
    {0xC92,0x32A1}, {0xCAA,0x32CD}, {0xCB5,0x32E5}, {0xCBD,0x32F5},
    {0xCDD,0x3379}, {0xCE0,0x3385}, {0xCE6,0x33BE}, {0xCF1,0x33C9},
    {0xD04,0x3431}, {0xD0E,0x3441}, {0xD12,0x34E9}, {0xD3D,0x34F5},
    {0xD4E,0x3539}, {0xD54,0x3559}, {0xD58,0x357A}, {0xD5F,0x3585},
    {0xD66,0x35E2}, {0xD7A,0x35FD}, {0xD85,0x3659}, {0xD9A,0x36C5},
    {0xDB3,0x36ED}, {0xDBD,0x36F5}, {0xDC0,0x3719}, {0xDE6,0x37BE},
    {0xE01,0x38C1}, {0xE32,0x38CD}, {0xE40,0x3919}, {0xE50,0x3966},
    {0xE81,0x3A09}, {0xE84,0x3A11}, {0xE86,0x3A29}, {0xE8C,0x3A8D},
    {0xEA5,0x3A95}, {0xEA7,0x3AC1}, {0xEB2,0x3ACD}, {0xEBD,0x3AF5},
    {0xEC0,0x3B11}, {0xEC6,0x3B19}, {0xED0,0x3B66}, {0xEDC,0x3B7D},
    {0xF00,0x3C01}, {0xF20,0x3CCE}, {0xF40,0x3D1D}, {0xF49,0x3DB1},
    {0xF88,0x3E31}, {0x1000,0x40A9}, {0x103F,0x40FD}, {0x1040,0x4126},
    {0x1050,0x4155}, {0x105A,0x4175}, {0x1061,0x4185}, {0x1065,0x4199},
    {0x106E,0x41C1}, {0x1075,0x4205}, {0x108E,0x4239}, {0x1090,0x4266},
    {0x10A0,0x4315}, {0x10C7,0x431D}, {0x10CD,0x4335}, {0x10D0,0x43E9},
    {0x10FC,0x4921}, {0x124A,0x4935}, {0x1250,0x4959}, {0x1258,0x4961},
    {0x125A,0x4975}, {0x1260,0x4A21}, {0x128A,0x4A35}, {0x1290,0x4AC1},
    {0x12B2,0x4AD5}, {0x12B8,0x4AF9}, {0x12C0,0x4B01}, {0x12C2,0x4B15},
    {0x12C8,0x4B59}, {0x12D8,0x4C41}, {0x1312,0x4C55}, {0x1318,0x4D69},
    {0x1369,0x4DF2}, {0x1380,0x4E3D}, {0x13A0,0x4FD5}, {0x13F8,0x4FF5},
    {0x1401,0x59B1}, {0x166F,0x59FD}, {0x1680,0x5A03}, {0x1681,0x5A69},
    {0x16A0,0x5BA9}, {0x16EE,0x5BC2}, {0x16F1,0x5BE1}, {0x1700,0x5C45},
    {0x171F,0x5CC5}, {0x1740,0x5D45}, {0x1760,0x5DB1}, {0x176E,0x5DC1},
    {0x1780,0x5ECD}, {0x17D7,0x5F5D}, {0x17DC,0x5F71}, {0x17E0,0x5FA6},
    {0x17F0,0x5FE6}, {0x1810,0x6066}, {0x1820,0x61E1}, {0x1880,0x6211},
    {0x1887,0x62A1}, {0x18AA,0x62A9}, {0x18B0,0x63D5}, {0x1900,0x6479},
    {0x1946,0x653E}, {0x1950,0x65B5}, {0x1970,0x65D1}, {0x1980,0x66AD},
    {0x19B0,0x6725}, {0x19D0,0x676A}, {0x1A00,0x6859}, {0x1A20,0x6951},
    {0x1A80,0x6A26}, {0x1A90,0x6A66}, {0x1AA7,0x6A9D}, {0x1B05,0x6CCD},
    {0x1B45,0x6D31}, {0x1B50,0x6D66}, {0x1B83,0x6E81}, {0x1BAE,0x6EBD},
    {0x1BB0,0x6EE6}, {0x1BBA,0x6F95}, {0x1C00,0x708D}, {0x1C40,0x7126},
    {0x1C4D,0x713D}, {0x1C50,0x7166}, {0x1C5A,0x71F5}, {0x1C80,0x7221},
    {0x1C90,0x72E9}, {0x1CBD,0x72FD}, {0x1CE9,0x73B1}, {0x1CEE,0x73CD},
    {0x1CF5,0x73D9}, {0x1CFA,0x73E9}, {0x1D00,0x76FD}, {0x1E00,0x7C55},
    {0x1F18,0x7C75}, {0x1F20,0x7D15}, {0x1F48,0x7D35}, {0x1F50,0x7D5D},
    {0x1F59,0x7D65}, {0x1F5B,0x7D6D}, {0x1F5D,0x7D75}, {0x1F5F,0x7DF5},
    {0x1F80,0x7ED1}, {0x1FB6,0x7EF1}, {0x1FBE,0x7EF9}, {0x1FC2,0x7F11},
    {0x1FC6,0x7F31}, {0x1FD0,0x7F4D}, {0x1FD6,0x7F6D}, {0x1FE0,0x7FB1},
    {0x1FF2,0x7FD1}, {0x1FF6,0x7FF1}, {0x2000,0x802B}, {0x2028,0x80A7},
    {0x202F,0x80BF}, {0x205F,0x817F}, {0x2070,0x81C2}, {0x2071,0x81C5},
    {0x2074,0x81E6}, {0x207F,0x81FD}, {0x2080,0x8226}, {0x2090,0x8271},
    {0x2102,0x8409}, {0x2107,0x841D}, {0x210A,0x844D}, {0x2115,0x8455},
    {0x2119,0x8475}, {0x2124,0x8491}, {0x2126,0x8499}, {0x2128,0x84A1},
    {0x212A,0x84B5}, {0x212F,0x84E5}, {0x213C,0x84FD}, {0x2145,0x8525},
    {0x214E,0x8539}, {0x2150,0x860A}, {0x2183,0x8611}, {0x2185,0x8626},
    {0x2460,0x926E}, {0x24EA,0x93FE}, {0x2776,0x9E4E}, {0x2C00,0xB391},
    {0x2CEB,0xB3B9}, {0x2CF2,0xB3CD}, {0x2CFD,0xB3F6}, {0x2D00,0xB495},
    {0x2D27,0xB49D}, {0x2D2D,0xB4B5}, {0x2D30,0xB59D}, {0x2D6F,0xB5BD},
    {0x2D80,0xB659}, {0x2DA0,0xB699}, {0x2DA8,0xB6B9}, {0x2DB0,0xB6D9},
    {0x2DB8,0xB6F9}, {0x2DC0,0xB719}, {0x2DC8,0xB739}, {0x2DD0,0xB759},
    {0x2DD8,0xB779}, {0x2E2F,0xB8BD}, {0x3000,0xC003}, {0x3005,0xC019},
    {0x3007,0xC01E}, {0x3021,0xC0A6}, {0x3031,0xC0D5}, {0x3038,0xC0EA},
    {0x303B,0xC0F1}, {0x3041,0xC259}, {0x309D,0xC27D}, {0x30A1,0xC3E9},
    {0x30FC,0xC3FD}, {0x3105,0xC4BD}, {0x3131,0xC639}, {0x3192,0xC656},
    {0x31A0,0xC6FD}, {0x31F0,0xC7FD}, {0x3220,0xC8A6}, {0x3248,0xC93E},
    {0x3251,0xC97E}, {0x3280,0xCA26}, {0x32B1,0xCAFE}, {0x3400,0x136FD},
    {0x4E00,0x29231}, {0xA4D0,0x293F5}, {0xA500,0x29831}, {0xA610,0x2987D},
    {0xA620,0x298A6}, {0xA62A,0x298AD}, {0xA640,0x299B9}, {0xA67F,0x29A75},
    {0xA6A0,0x29B95}, {0xA6E6,0x29BBE}, {0xA717,0x29C7D}, {0xA722,0x29E21},
    {0xA78B,0x29F29}, {0xA7D0,0x29F45}, {0xA7D3,0x29F4D}, {0xA7D5,0x29F65},
    {0xA7F2,0x2A005}, {0xA803,0x2A015}, {0xA807,0x2A029}, {0xA80C,0x2A089},
    {0xA830,0x2A0D6}, {0xA840,0x2A1CD}, {0xA882,0x2A2CD}, {0xA8D0,0x2A366},
    {0xA8F2,0x2A3DD}, {0xA8FB,0x2A3ED}, {0xA8FD,0x2A3F9}, {0xA900,0x2A426},
    {0xA90A,0x2A495}, {0xA930,0x2A519}, {0xA960,0x2A5F1}, {0xA984,0x2A6C9},
    {0xA9CF,0x2A73D}, {0xA9D0,0x2A766}, {0xA9E0,0x2A791}, {0xA9E6,0x2A7BD},
    {0xA9F0,0x2A7E6}, {0xA9FA,0x2A7F9}, {0xAA00,0x2A8A1}, {0xAA40,0x2A909},
    {0xAA44,0x2A92D}, {0xAA50,0x2A966}, {0xAA60,0x2A9D9}, {0xAA7A,0x2A9E9},
    {0xAA7E,0x2AABD}, {0xAAB1,0x2AAC5}, {0xAAB5,0x2AAD9}, {0xAAB9,0x2AAF5},
    {0xAAC0,0x2AB01}, {0xAAC2,0x2AB09}, {0xAADB,0x2AB75}, {0xAAE0,0x2ABA9},
    {0xAAF2,0x2ABD1}, {0xAB01,0x2AC19}, {0xAB09,0x2AC39}, {0xAB11,0x2AC59},
    {0xAB20,0x2AC99}, {0xAB28,0x2ACB9}, {0xAB30,0x2AD69}, {0xAB5C,0x2ADA5},
    {0xAB70,0x2AF89}, {0xABF0,0x2AFE6}, {0xAC00,0x35E8D}, {0xD7B0,0x35F19},
    {0xD7CB,0x35FED}, {0xF900,0x3E9B5}, {0xFA70,0x3EB65}, {0xFB00,0x3EC19},
    {0xFB13,0x3EC5D}, {0xFB1D,0x3EC75}, {0xFB1F,0x3ECA1}, {0xFB2A,0x3ECD9},
    {0xFB38,0x3ECF1}, {0xFB3E,0x3ECF9}, {0xFB40,0x3ED05}, {0xFB43,0x3ED11},
    {0xFB46,0x3EEC5}, {0xFBD3,0x3F4F5}, {0xFD50,0x3F63D}, {0xFD92,0x3F71D},
    {0xFDF0,0x3F7ED}, {0xFE70,0x3F9D1}, {0xFE76,0x3FBF1}, {0xFF10,0x3FC66},
    {0xFF21,0x3FCE9}, {0xFF41,0x3FD69}, {0xFF66,0x3FEF9}, {0xFFC2,0x3FF1D},
    {0xFFCA,0x3FF3D}, {0xFFD2,0x3FF5D}, {0xFFDA,0x3FF71}, {0x10000,0x4002D},
    {0x1000D,0x40099}, {0x10028,0x400E9}, {0x1003C,0x400F5}, {0x1003F,0x40135},
    {0x10050,0x40175}, {0x10080,0x403E9}, {0x10107,0x404CE}, {0x10140,0x405E2},
    {0x1018A,0x4062E}, {0x10280,0x40A71}, {0x102A0,0x40B41}, {0x102E1,0x40BEE},
    {0x10300,0x40C7D}, {0x10320,0x40C8E}, {0x1032D,0x40D01}, {0x10341,0x40D06},
    {0x10342,0x40D25}, {0x1034A,0x40D2A}, {0x10350,0x40DD5}, {0x10380,0x40E75},
    {0x103A0,0x40F0D}, {0x103C8,0x40F3D}, {0x103D1,0x40F56}, {0x10400,0x41275},
    {0x104A0,0x412A6}, {0x104B0,0x4134D}, {0x104D8,0x413ED}, {0x10500,0x4149D},
    {0x10530,0x4158D}, {0x10570,0x415E9}, {0x1057C,0x41629}, {0x1058C,0x41649},
    {0x10594,0x41655}, {0x10597,0x41685}, {0x105A3,0x416C5}, {0x105B3,0x416E5},
    {0x105BB,0x416F1}, {0x10600,0x41CD9}, {0x10740,0x41D55}, {0x10760,0x41D9D},
    {0x10780,0x41E15}, {0x10787,0x41EC1}, {0x107B2,0x41EE9}, {0x10800,0x42015},
    {0x10808,0x42021}, {0x1080A,0x420D5}, {0x10837,0x420E1}, {0x1083C,0x420F1},
    {0x1083F,0x42155}, {0x10858,0x4217E}, {0x10860,0x421D9}, {0x10879,0x421FE},
    {0x10880,0x42279}, {0x108A7,0x422BE}, {0x108E0,0x423C9}, {0x108F4,0x423D5},
    {0x108FB,0x423FE}, {0x10900,0x42455}, {0x10916,0x4246E}, {0x10920,0x424E5},
    {0x10980,0x426DD}, {0x109BC,0x426F6}, {0x109BE,0x426FD}, {0x109C0,0x4273E},
    {0x109D2,0x427FE}, {0x10A00,0x42801}, {0x10A10,0x4284D}, {0x10A15,0x4285D},
    {0x10A19,0x428D5}, {0x10A40,0x42922}, {0x10A60,0x429F1}, {0x10A7D,0x429FA},
    {0x10A80,0x42A71}, {0x10A9D,0x42A7E}, {0x10AC0,0x42B1D}, {0x10AC9,0x42B91},
    {0x10AEB,0x42BBE}, {0x10B00,0x42CD5}, {0x10B40,0x42D55}, {0x10B58,0x42D7E},
    {0x10B60,0x42DC9}, {0x10B78,0x42DFE}, {0x10B80,0x42E45}, {0x10BA9,0x42EBE},
    {0x10C00,0x43121}, {0x10C80,0x432C9}, {0x10CC0,0x433C9}, {0x10CFA,0x433FE},
    {0x10D00,0x4348D}, {0x10D30,0x434E6}, {0x10E60,0x439FA}, {0x10E80,0x43AA5},
    {0x10EB0,0x43AC5}, {0x10F00,0x43C71}, {0x10F1D,0x43C9A}, {0x10F27,0x43C9D},
    {0x10F30,0x43D15}, {0x10F51,0x43D52}, {0x10F70,0x43E05}, {0x10FB0,0x43F11},
    {0x10FC5,0x43F2E}, {0x10FE0,0x43FD9}, {0x11003,0x440DD}, {0x11052,0x441BE},
    {0x11071,0x441C9}, {0x11075,0x441D5}, {0x11083,0x442BD}, {0x110D0,0x443A1},
    {0x110F0,0x443E6}, {0x11103,0x44499}, {0x11136,0x444FE}, {0x11144,0x44511},
    {0x11147,0x4451D}, {0x11150,0x445C9}, {0x11176,0x445D9}, {0x11183,0x446C9},
    {0x111C1,0x44711}, {0x111D0,0x44766}, {0x111DA,0x44769}, {0x111DC,0x44771},
    {0x111E1,0x447D2}, {0x11200,0x44845}, {0x11213,0x448AD}, {0x1123F,0x44901},
    {0x11280,0x44A19}, {0x11288,0x44A21}, {0x1128A,0x44A35}, {0x1128F,0x44A75},
    {0x1129F,0x44AA1}, {0x112B0,0x44B79}, {0x112F0,0x44BE6}, {0x11305,0x44C31},
    {0x1130F,0x44C41}, {0x11313,0x44CA1}, {0x1132A,0x44CC1}, {0x11332,0x44CCD},
    {0x11335,0x44CE5}, {0x1133D,0x44CF5}, {0x11350,0x44D41}, {0x1135D,0x44D85},
    {0x11400,0x450D1}, {0x11447,0x45129}, {0x11450,0x45166}, {0x1145F,0x45185},
    {0x11480,0x452BD}, {0x114C4,0x45315}, {0x114C7,0x4531D}, {0x114D0,0x45366},
    {0x11580,0x456B9}, {0x115D8,0x4576D}, {0x11600,0x458BD}, {0x11644,0x45911},
    {0x11650,0x45966}, {0x11680,0x45AA9}, {0x116B8,0x45AE1}, {0x116C0,0x45B26},
    {0x11700,0x45C69}, {0x11730,0x45CEE}, {0x11740,0x45D19}, {0x11800,0x460AD},
    {0x118A0,0x4637D}, {0x118E0,0x463CA}, {0x118FF,0x46419}, {0x11909,0x46425},
    {0x1190C,0x4644D}, {0x11915,0x46459}, {0x11918,0x464BD}, {0x1193F,0x464FD},
    {0x11941,0x46505}, {0x11950,0x46566}, {0x119A0,0x4669D}, {0x119AA,0x46741},
    {0x119E1,0x46785}, {0x119E3,0x4678D}, {0x11A00,0x46801}, {0x11A0B,0x468C9},
    {0x11A3A,0x468E9}, {0x11A50,0x46941}, {0x11A5C,0x46A25}, {0x11A9D,0x46A75},
    {0x11AB0,0x46BE1}, {0x11C00,0x47021}, {0x11C0A,0x470B9}, {0x11C40,0x47101},
    {0x11C50,0x471B2}, {0x11C72,0x4723D}, {0x11D00,0x47419}, {0x11D08,0x47425},
    {0x11D0B,0x474C1}, {0x11D46,0x47519}, {0x11D50,0x47566}, {0x11D60,0x47595},
    {0x11D67,0x475A1}, {0x11D6A,0x47625}, {0x11D98,0x47661}, {0x11DA0,0x476A6},
    {0x11EE0,0x47BC9}, {0x11F02,0x47C09}, {0x11F04,0x47C41}, {0x11F12,0x47CCD},
    {0x11F50,0x47D66}, {0x11FB0,0x47EC1}, {0x11FC0,0x47F52}, {0x12000,0x48E65},
    {0x12400,0x491BA}, {0x12480,0x4950D}, {0x12F90,0x4BFC1}, {0x13000,0x4D0BD},
    {0x13441,0x4D119}, {0x14400,0x51919}, {0x16800,0x5A8E1}, {0x16A40,0x5A979},
    {0x16A60,0x5A9A6}, {0x16A70,0x5AAF9}, {0x16AC0,0x5AB26}, {0x16AD0,0x5ABB5},
    {0x16B00,0x5ACBD}, {0x16B40,0x5AD0D}, {0x16B50,0x5AD66}, {0x16B5B,0x5AD86},
    {0x16B63,0x5ADDD}, {0x16B7D,0x5AE3D}, {0x16E40,0x5B9FD}, {0x16E80,0x5BA5A},
    {0x16F00,0x5BD29}, {0x16F50,0x5BD41}, {0x16F93,0x5BE7D}, {0x16FE0,0x5BF85},
    {0x16FE3,0x5BF8D}, {0x17000,0x61FDD}, {0x18800,0x63355}, {0x18D00,0x63421},
    {0x1AFF0,0x6BFCD}, {0x1AFF5,0x6BFED}, {0x1AFFD,0x6BFF9}, {0x1B000,0x6C489},
    {0x1B132,0x6C4C9}, {0x1B150,0x6C549}, {0x1B155,0x6C555}, {0x1B164,0x6C59D},
    {0x1B170,0x6CBED}, {0x1BC00,0x6F1A9}, {0x1BC70,0x6F1F1}, {0x1BC80,0x6F221},
    {0x1BC90,0x6F265}, {0x1D2C0,0x74B4E}, {0x1D2E0,0x74BCE}, {0x1D360,0x74DE2},
    {0x1D400,0x75151}, {0x1D456,0x75271}, {0x1D49E,0x7527D}, {0x1D4A2,0x75289},
    {0x1D4A5,0x75299}, {0x1D4A9,0x752B1}, {0x1D4AE,0x752E5}, {0x1D4BB,0x752ED},
    {0x1D4BD,0x7530D}, {0x1D4C5,0x75415}, {0x1D507,0x75429}, {0x1D50D,0x75451},
    {0x1D516,0x75471}, {0x1D51E,0x754E5}, {0x1D53B,0x754F9}, {0x1D540,0x75511},
    {0x1D546,0x75519}, {0x1D54A,0x75541}, {0x1D552,0x75A95}, {0x1D6A8,0x75B01},
    {0x1D6C2,0x75B69}, {0x1D6DC,0x75BE9}, {0x1D6FC,0x75C51}, {0x1D716,0x75CD1},
    {0x1D736,0x75D39}, {0x1D750,0x75DB9}, {0x1D770,0x75E21}, {0x1D78A,0x75EA1},
    {0x1D7AA,0x75F09}, {0x1D7C4,0x75F2D}, {0x1D7CE,0x75FFE}, {0x1DF00,0x77C79},
    {0x1DF25,0x77CA9}, {0x1E030,0x781B5}, {0x1E100,0x784B1}, {0x1E137,0x784F5},
    {0x1E140,0x78526}, {0x1E14E,0x78539}, {0x1E290,0x78AB5}, {0x1E2C0,0x78BAD},
    {0x1E2F0,0x78BE6}, {0x1E4D0,0x793AD}, {0x1E4F0,0x793E6}, {0x1E7E0,0x79F99},
    {0x1E7E8,0x79FAD}, {0x1E7ED,0x79FB9}, {0x1E7F0,0x79FF9}, {0x1E800,0x7A311},
    {0x1E8C7,0x7A33E}, {0x1E900,0x7A50D}, {0x1E94B,0x7A52D}, {0x1E950,0x7A566},
    {0x1EC71,0x7B2AE}, {0x1ECAD,0x7B2BE}, {0x1ECB1,0x7B2D2}, {0x1ED01,0x7B4B6},
    {0x1ED2F,0x7B4F6}, {0x1EE00,0x7B80D}, {0x1EE05,0x7B87D}, {0x1EE21,0x7B889},
    {0x1EE24,0x7B891}, {0x1EE27,0x7B89D}, {0x1EE29,0x7B8C9}, {0x1EE34,0x7B8DD},
    {0x1EE39,0x7B8E5}, {0x1EE3B,0x7B8ED}, {0x1EE42,0x7B909}, {0x1EE47,0x7B91D},
    {0x1EE49,0x7B925}, {0x1EE4B,0x7B92D}, {0x1EE4D,0x7B93D}, {0x1EE51,0x7B949},
    {0x1EE54,0x7B951}, {0x1EE57,0x7B95D}, {0x1EE59,0x7B965}, {0x1EE5B,0x7B96D},
    {0x1EE5D,0x7B975}, {0x1EE5F,0x7B97D}, {0x1EE61,0x7B989}, {0x1EE64,0x7B991},
    {0x1EE67,0x7B9A9}, {0x1EE6C,0x7B9C9}, {0x1EE74,0x7B9DD}, {0x1EE79,0x7B9F1},
    {0x1EE7E,0x7B9F9}, {0x1EE80,0x7BA25}, {0x1EE8B,0x7BA6D}, {0x1EEA1,0x7BA8D},
    {0x1EEA5,0x7BAA5}, {0x1EEAB,0x7BAED}, {0x1F100,0x7C432}, {0x1FBF0,0x7EFE6},
    {0x20000,0xA9B7D}, {0x2A700,0xADCE5}, {0x2B740,0xAE075}, {0x2B820,0xB3A85},
    {0x2CEB0,0xBAF81}, {0x2F800,0xBE875}, {0x30000,0xC4D29}, {0x31350,0xC8EBD},
};
/* >>unicode-tables end */

#define LMU__TOK_SPECIAL "<|endoftext|>"
#define LMU__TOK_SPECIAL_LEN 13
#define LMU__NO_RANK INT32_MAX

/* Merge table as the loader builds it (stb_ds hash map): (left id, right
   id) -> (rank, merged id) for every split of every merge result into two
   mergeable tokens. */
typedef struct lmu__pair {
    int32_t a, b;
} lmu__pair;
typedef struct lmu__merge {
    int32_t rank, id;
} lmu__merge;
typedef struct lmu__merge_kv {
    lmu__pair key;
    lmu__merge value;
} lmu__merge_kv;

/* What encode reads, built once after loading and never written again (so
   any number of threads may read): two open-addressing tables sized for a
   load factor under 1/2, one cache line visit per lookup in the common case.
   Pairs: key (a << 32 | b), value (rank, id); empty slots have id -1. */
typedef struct lmu__pslot {
    uint64_t key;
    int32_t rank, id;
} lmu__pslot;

/* Whole-piece table, bytes -> id of a mergeable token. `head` holds the
   first 8 bytes (zero-padded) and `tag` the hash's high 24 bits over the
   length, so pieces up to 8 bytes compare without touching the token bytes. */
typedef struct lmu__wslot {
    uint64_t head;
    uint32_t tag;
    int32_t id; /* -1: empty */
} lmu__wslot;

struct lmu_tokenizer {
    int32_t n_vocab;
    int32_t eot;         /* -1: none */
    int byte_level;      /* the fallback: ids are bytes */
    size_t max_token_bytes;
    int32_t byte_id[256]; /* id of each single byte */
    uint32_t *tok_off;    /* (n_vocab + 1) offsets into tok_bytes */
    unsigned char *tok_bytes;
    lmu__wslot *whole; /* (whole_mask + 1) slots; NULL for the fallback */
    uint32_t whole_mask;
    lmu__pslot *pairs; /* (pair_mask + 1) slots */
    uint32_t pair_mask;
};

LMUDEF const char *lmu_tokenizer_unicode_version(void) { return LMU__UNICODE_VERSION; }

/* ---------------------------------------------------------------------- */
/* characters                                                             */
/* ---------------------------------------------------------------------- */

enum { LMU__CC_OTHER = 0, LMU__CC_LETTER = 1, LMU__CC_NUMBER = 2, LMU__CC_SPACE = 3 };

LMU__PRIVATE int lmu__uc_class(uint32_t cp)
{
    size_t lo = 0, hi = LMU__UC_RANGE_COUNT;
    if (cp < 128) return lmu__uc_ascii[cp];
    while (lo < hi) { /* first range whose last code point >= cp */
        size_t mid = lo + (hi - lo) / 2;
        if ((lmu__uc_ranges[mid][1] >> 2) < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < LMU__UC_RANGE_COUNT && lmu__uc_ranges[lo][0] <= cp) return (int)(lmu__uc_ranges[lo][1] & 3);
    return LMU__CC_OTHER;
}

/* Class and byte length of the character at s[0..n), n >= 1. An invalid
   byte is one character of class OTHER, so every byte string splits. */
LMU__PRIVATE int lmu__char_at(const unsigned char *s, size_t n, size_t *len)
{
    uint32_t cp;
    size_t l;
    if (s[0] < 0x80) { *len = 1; return lmu__uc_ascii[s[0]]; }
    l = lmu__utf8_len(s, n, &cp);
    if (!l) { *len = 1; return LMU__CC_OTHER; }
    *len = l;
    return lmu__uc_class(cp);
}

/* End of the run of class `cls` characters starting at i. */
LMU__PRIVATE size_t lmu__run_end(const unsigned char *s, size_t n, size_t i, int cls)
{
    while (i < n) {
        size_t l;
        if (s[i] < 0x80) {
            if (lmu__uc_ascii[s[i]] != cls) break;
            i++;
            continue;
        }
        if (lmu__char_at(s + i, n - i, &l) != cls) break;
        i += l;
    }
    return i;
}

/* Length of the pre-token starting at s[0] (n >= 1): GPT-2's pattern, its
   branches tried in order, as a backtracking regex engine would. */
LMU__PRIVATE size_t lmu__pretoken(const unsigned char *s, size_t n)
{
    size_t l, j, last;
    int c;
    if (s[0] == '\'' && n >= 2) { /* 's|'t|'re|'ve|'m|'ll|'d */
        unsigned char a = s[1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if (n >= 3) {
            unsigned char b = s[2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
        }
    }
    if (s[0] == ' ' && n >= 2) { /* " ?" before a letter, number or other run */
        c = lmu__char_at(s + 1, n - 1, &l);
        if (c != LMU__CC_SPACE) return lmu__run_end(s, n, 1 + l, c);
    }
    c = lmu__char_at(s, n, &l);
    if (c != LMU__CC_SPACE) return lmu__run_end(s, n, l, c);
    /* \s+(?!\S) then \s+: a white-space run followed by a non-space gives up
       its last character (which then starts the next piece), unless that
       leaves nothing. */
    last = 0;
    j = l;
    while (j < n) {
        if (lmu__char_at(s + j, n - j, &l) != LMU__CC_SPACE) break;
        last = j;
        j += l;
    }
    if (j == n || last == 0) return j;
    return last;
}

/* ---------------------------------------------------------------------- */
/* lookups                                                                */
/* ---------------------------------------------------------------------- */

/* First min(n, 8) bytes of p as a zero-padded 64-bit word. */
LMU__PRIVATE uint64_t lmu__head8(const unsigned char *p, size_t n)
{
    uint64_t w = 0;
    if (n >= 8) memcpy(&w, p, 8);
    else memcpy(&w, p, n);
    return w;
}

LMU__PRIVATE uint32_t lmu__hash_bytes(const unsigned char *p, size_t n, uint64_t head)
{
    uint64_t h = (head ^ ((uint64_t)n << 56)) * 0x9E3779B97F4A7C15ULL;
    size_t i;
    for (i = 8; i < n; i += 8) {
        uint64_t w = lmu__head8(p + i, n - i);
        h = (h ^ (h >> 29) ^ w) * 0xBF58476D1CE4E5B9ULL;
    }
    h ^= h >> 32;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 29;
    return (uint32_t)h;
}

LMU__PRIVATE uint32_t lmu__whole_tag(uint32_t h, size_t n) { return (h & 0xFFFFFF00u) | (uint32_t)(n & 0xFF); }

/* Id of the mergeable token whose bytes are p[0..n), or -1; head and h are
   lmu__head8 and lmu__hash_bytes of the piece. */
LMU__PRIVATE int32_t lmu__whole_find(const lmu_tokenizer *tok, const unsigned char *p, size_t n,
                                     uint64_t head, uint32_t h)
{
    uint32_t tag = lmu__whole_tag(h, n), i = h & tok->whole_mask;
    for (;; i = (i + 1) & tok->whole_mask) {
        const lmu__wslot *s = &tok->whole[i];
        if (s->id < 0) return -1;
        if (s->tag == tag && s->head == head) {
            uint32_t o = tok->tok_off[s->id];
            if (n <= 8) return s->id; /* the length is in the tag */
            if (tok->tok_off[s->id + 1] - o == n && memcmp(tok->tok_bytes + o + 8, p + 8, n - 8) == 0)
                return s->id;
        }
    }
}

LMU__PRIVATE int32_t lmu__whole_get(const lmu_tokenizer *tok, const unsigned char *p, size_t n)
{
    uint64_t head = lmu__head8(p, n);
    return lmu__whole_find(tok, p, n, head, lmu__hash_bytes(p, n, head));
}

LMU__PRIVATE uint32_t lmu__pair_hash(uint64_t key)
{
    key *= 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(key >> 32);
}

LMU__PRIVATE lmu__merge lmu__merge_get(const lmu_tokenizer *tok, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = lmu__pair_hash(key) & tok->pair_mask;
    lmu__merge m;
    for (;; i = (i + 1) & tok->pair_mask) {
        const lmu__pslot *s = &tok->pairs[i];
        if (s->key == key && s->id >= 0) { m.rank = s->rank; m.id = s->id; return m; }
        if (s->id < 0) { m.rank = LMU__NO_RANK; m.id = -1; return m; }
    }
}

/* ---------------------------------------------------------------------- */
/* BPE                                                                    */
/* ---------------------------------------------------------------------- */

typedef struct lmu__sink {
    int32_t *ids;
    size_t cap, n;
} lmu__sink;

LMU__PRIVATE void lmu__sink_put(lmu__sink *o, int32_t id)
{
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

typedef struct lmu__heap_ent {
    int32_t rank, id;
    uint32_t pos, llen, rlen;
} lmu__heap_ent;

/* Per-call scratch, freed by the caller: memory for long pieces (grown on
   demand), and for long texts a small direct-mapped cache of whole-piece
   lookups of pieces up to 8 bytes (id, or -2 for "not a token"), which
   keeps the frequent words in L1/L2 instead of probing the big table. */
#define LMU__WCACHE_BITS 12
typedef struct lmu__bpe_scratch {
    void *mem;
    size_t cap; /* in piece bytes */
    lmu__wslot *cache; /* 1 << LMU__WCACHE_BITS slots, or NULL */
} lmu__bpe_scratch;

#define LMU__BPE_SMALL 48 /* pieces up to this many bytes use the simple loop */

/* Simple BPE for short pieces: rescans all pairs for the lowest rank,
   O(m^2) in the worst case but tiny m and no allocation. */
LMU__PRIVATE void lmu__bpe_small(const lmu_tokenizer *tok, const unsigned char *p, size_t m,
                                 lmu__sink *out)
{
    int32_t id[LMU__BPE_SMALL];
    lmu__merge pr[LMU__BPE_SMALL];
    size_t np = m, i, best;
    for (i = 0; i < m; i++) id[i] = tok->byte_id[p[i]];
    for (i = 0; i + 1 < m; i++) pr[i] = lmu__merge_get(tok, id[i], id[i + 1]);
    for (;;) {
        int32_t r = LMU__NO_RANK;
        best = 0;
        for (i = 0; i + 1 < np; i++)
            if (pr[i].rank < r) { r = pr[i].rank; best = i; }
        if (r == LMU__NO_RANK) break;
        id[best] = pr[best].id;
        for (i = best + 1; i + 1 < np; i++) { id[i] = id[i + 1]; pr[i] = pr[i + 1]; }
        np--;
        if (best + 1 < np) pr[best] = lmu__merge_get(tok, id[best], id[best + 1]);
        if (best > 0) pr[best - 1] = lmu__merge_get(tok, id[best - 1], id[best]);
    }
    for (i = 0; i < np; i++) lmu__sink_put(out, id[i]);
}

LMU__PRIVATE int lmu__heap_less(const lmu__heap_ent *x, const lmu__heap_ent *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

LMU__PRIVATE void lmu__heap_push(lmu__heap_ent *h, size_t *n, lmu__heap_ent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!lmu__heap_less(&e, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = e;
}

LMU__PRIVATE lmu__heap_ent lmu__heap_pop(lmu__heap_ent *h, size_t *n)
{
    lmu__heap_ent top = h[0], e = h[--*n];
    size_t i = 0, k = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= k) break;
        if (c + 1 < k && lmu__heap_less(&h[c + 1], &h[c])) c++;
        if (!lmu__heap_less(&h[c], &e)) break;
        h[i] = h[c];
        i = c;
    }
    if (k) h[i] = e;
    return top;
}

/* BPE for long pieces in O(m log m): symbols are a linked list over byte
   positions (a symbol is named by its first byte), candidate pairs wait in a
   min-heap keyed by (rank, position), so the pop order is exactly "lowest
   rank, leftmost first". Entries made stale by a merge are recognised on pop
   (a symbol's identity is its start and length) and dropped. */
LMU__PRIVATE lmu_result lmu__bpe_large(const lmu_tokenizer *tok, const unsigned char *p, size_t m,
                                       lmu__sink *out, lmu__bpe_scratch *sc)
{
    int32_t *sid;
    uint32_t *slen, *prev;
    lmu__heap_ent *heap;
    size_t nh = 0, i, per = 3 * sizeof(uint32_t) + 3 * sizeof(lmu__heap_ent);
    if (m >= 0xFFFFFFFFu / 4) return LMU_ERR_RANGE;
    if (sc->cap < m) {
        size_t bytes;
        if (!lmu__mul_size(m, per, &bytes)) return LMU_ERR_NOMEM;
        LMU_FREE(sc->mem);
        sc->mem = LMU_MALLOC(bytes);
        sc->cap = sc->mem ? m : 0;
        if (!sc->mem) return LMU_ERR_NOMEM;
    }
    heap = (lmu__heap_ent *)sc->mem; /* 3m entries: m-1 at start, <= 2 per merge */
    sid = (int32_t *)(heap + 3 * m);
    slen = (uint32_t *)(sid + m);
    prev = slen + m;
    for (i = 0; i < m; i++) {
        sid[i] = tok->byte_id[p[i]];
        slen[i] = 1;
        prev[i] = (uint32_t)i - 1;
    }
    for (i = 0; i + 1 < m; i++) {
        lmu__merge g = lmu__merge_get(tok, sid[i], sid[i + 1]);
        if (g.rank != LMU__NO_RANK) {
            lmu__heap_ent e;
            e.rank = g.rank; e.id = g.id; e.pos = (uint32_t)i; e.llen = 1; e.rlen = 1;
            lmu__heap_push(heap, &nh, e);
        }
    }
    while (nh) {
        lmu__heap_ent e = lmu__heap_pop(heap, &nh);
        uint32_t q = e.pos + e.llen, nx;
        if (slen[e.pos] != e.llen || q >= m || slen[q] != e.rlen) continue; /* stale */
        sid[e.pos] = e.id;
        slen[e.pos] = e.llen + e.rlen;
        slen[q] = 0;
        nx = e.pos + slen[e.pos];
        if (nx < m) {
            lmu__merge g = lmu__merge_get(tok, sid[e.pos], sid[nx]);
            prev[nx] = e.pos;
            if (g.rank != LMU__NO_RANK) {
                lmu__heap_ent f;
                f.rank = g.rank; f.id = g.id; f.pos = e.pos; f.llen = slen[e.pos]; f.rlen = slen[nx];
                lmu__heap_push(heap, &nh, f);
            }
        }
        if (e.pos > 0) {
            uint32_t pv = prev[e.pos];
            lmu__merge g = lmu__merge_get(tok, sid[pv], sid[e.pos]);
            if (g.rank != LMU__NO_RANK) {
                lmu__heap_ent f;
                f.rank = g.rank; f.id = g.id; f.pos = pv; f.llen = slen[pv]; f.rlen = slen[e.pos];
                lmu__heap_push(heap, &nh, f);
            }
        }
    }
    for (i = 0; i < m; i += slen[i]) lmu__sink_put(out, sid[i]);
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__encode_piece(const lmu_tokenizer *tok, const unsigned char *p,
                                          size_t m, lmu__sink *out, lmu__bpe_scratch *sc)
{
    int32_t id;
    uint64_t head;
    uint32_t h;
    if (m == 1) { lmu__sink_put(out, tok->byte_id[p[0]]); return LMU_OK; }
    head = lmu__head8(p, m);
    h = lmu__hash_bytes(p, m, head);
    if (sc->cache && m <= 8) {
        lmu__wslot *c = &sc->cache[h & ((1u << LMU__WCACHE_BITS) - 1)];
        uint32_t tag = lmu__whole_tag(h, m);
        if (c->tag == tag && c->head == head && c->id != -1) {
            id = c->id;
        } else {
            id = lmu__whole_find(tok, p, m, head, h);
            c->tag = tag;
            c->head = head;
            c->id = id >= 0 ? id : -2;
        }
    } else {
        id = lmu__whole_find(tok, p, m, head, h);
    }
    if (id >= 0) { lmu__sink_put(out, id); return LMU_OK; }
    if (m <= LMU__BPE_SMALL) { lmu__bpe_small(tok, p, m, out); return LMU_OK; }
    return lmu__bpe_large(tok, p, m, out, sc);
}

/* Plain text, no special tokens. */
LMU__PRIVATE lmu_result lmu__encode_ordinary(const lmu_tokenizer *tok, const unsigned char *s,
                                             size_t n, lmu__sink *out, lmu__bpe_scratch *sc)
{
    size_t i = 0;
    if (tok->byte_level) {
        for (i = 0; i < n; i++) lmu__sink_put(out, s[i]);
        return LMU_OK;
    }
    while (i < n) {
        size_t l = lmu__pretoken(s + i, n - i);
        lmu_result r = lmu__encode_piece(tok, s + i, l, out, sc);
        if (r != LMU_OK) return r;
        i += l;
    }
    return LMU_OK;
}

LMU__PRIVATE lmu_result lmu__encode_sink(const lmu_tokenizer *tok, const unsigned char *s,
                                         size_t n, int allow_special, lmu__sink *out)
{
    lmu__bpe_scratch sc;
    lmu_result r = LMU_OK;
    size_t i = 0, from = 0;
    sc.mem = NULL;
    sc.cap = 0;
    sc.cache = NULL;
    if (n >= ((size_t)1 << 14) && !tok->byte_level) {
        size_t k, slots = (size_t)1 << LMU__WCACHE_BITS;
        sc.cache = (lmu__wslot *)LMU_MALLOC(slots * sizeof *sc.cache);
        if (sc.cache)
            for (k = 0; k < slots; k++) { sc.cache[k].tag = 0; sc.cache[k].head = 0; sc.cache[k].id = -1; }
    }
    if (allow_special && tok->eot >= 0) {
        while (n >= LMU__TOK_SPECIAL_LEN && i <= n - LMU__TOK_SPECIAL_LEN) {
            const unsigned char *lt = (const unsigned char *)memchr(s + i, '<', n - LMU__TOK_SPECIAL_LEN + 1 - i);
            if (!lt) break;
            i = (size_t)(lt - s);
            if (memcmp(lt, LMU__TOK_SPECIAL, LMU__TOK_SPECIAL_LEN) != 0) { i++; continue; }
            r = lmu__encode_ordinary(tok, s + from, i - from, out, &sc);
            if (r != LMU_OK) break;
            lmu__sink_put(out, tok->eot);
            i += LMU__TOK_SPECIAL_LEN;
            from = i;
        }
    }
    if (r == LMU_OK) r = lmu__encode_ordinary(tok, s + from, n - from, out, &sc);
    LMU_FREE(sc.mem);
    LMU_FREE(sc.cache);
    return r;
}

LMUDEF lmu_result lmu_encode(const lmu_tokenizer *tok, const char *text, size_t len,
                             int allow_special, int32_t *ids, size_t cap, size_t *n_out)
{
    lmu__sink o;
    lmu_result r;
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!text && len) || (!ids && cap)) return LMU_ERR_ARG;
    o.ids = ids;
    o.cap = cap;
    o.n = 0;
    r = lmu__encode_sink(tok, (const unsigned char *)text, len, allow_special, &o);
    *n_out = o.n;
    if (r != LMU_OK) return r;
    return o.n > cap ? LMU_ERR_CAPACITY : LMU_OK;
}

/* A chunk may start at p when s[p] is ASCII white space and s[p-1] an ASCII
   byte that is not: no branch of the pattern matches across a non-space ->
   space boundary (only \s runs hold spaces, and " ?" only leads), so a piece
   ends at p in the whole text; the piece before p does not end in a
   white-space run, so \s+(?!\S) cannot see past it; and matching from p
   onward never looks back. "<|endoftext|>" holds no space, so it never
   straddles p either. ASCII bytes are never part of a multi-byte character
   (nor of an invalid sequence: those are split byte by byte). */
LMU__PRIVATE int lmu__safe_cut(const unsigned char *s, size_t p)
{
    unsigned a = s[p - 1], b = s[p];
    int bs = b == ' ' || b == '\n' || b == '\t' || b == '\r';
    return bs && a < 0x80 && lmu__uc_ascii[a] != LMU__CC_SPACE;
}

LMUDEF lmu_result lmu_encode_parallel(const lmu_tokenizer *tok, const char *text, size_t len,
                                      int allow_special, int32_t *ids, size_t cap,
                                      size_t *n_out)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t *cut = NULL, *cnt = NULL, nchunks, k, target, total = 0;
    int32_t *buf;
    lmu_result r = LMU_OK;
    int nt = lmu__thread_count();
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!text && len) || (!ids && cap)) return LMU_ERR_ARG;
    if (nt <= 1 || len < ((size_t)1 << 16)) return lmu_encode(tok, text, len, allow_special, ids, cap, n_out);
    /* Many more chunks than threads for balance, none below 64 KB. */
    target = len / ((size_t)nt * 8);
    if (target < ((size_t)1 << 16)) target = (size_t)1 << 16;
    nchunks = len / target + 1;
    cut = (size_t *)LMU_MALLOC((nchunks + 1) * sizeof *cut);
    cnt = (size_t *)LMU_MALLOC(nchunks * sizeof *cnt);
    if (!cut || !cnt) { LMU_FREE(cut); LMU_FREE(cnt); return LMU_ERR_NOMEM; }
    cut[0] = 0;
    k = 1;
    while (k < nchunks) {
        size_t p = k * target;
        if (p <= cut[k - 1]) p = cut[k - 1] + 1;
        while (p < len && !lmu__safe_cut(s, p)) p++;
        if (p >= len) break;
        cut[k++] = p;
    }
    nchunks = k;
    cut[nchunks] = len;
    /* A chunk of b bytes gives at most b ids: encode chunk k in place at
       ids + cut[k] when the caller's array has len room, then close the gaps. */
    buf = cap >= len ? ids : (int32_t *)LMU_MALLOC((len ? len : 1) * sizeof(int32_t));
    if (!buf) { LMU_FREE(cut); LMU_FREE(cnt); return LMU_ERR_NOMEM; }
    {
        long kk, nk = (long)nchunks;
        int fail = 0;
        /* dynamic: chunks differ in cost; each chunk's ids do not depend on
           the schedule, so the result is the same for any thread count. */
        LMU__OMP(omp parallel for schedule(dynamic, 1) reduction(| : fail))
        for (kk = 0; kk < nk; kk++) {
            lmu__sink o;
            lmu_result rr;
            o.ids = buf + cut[kk];
            o.cap = cut[kk + 1] - cut[kk];
            o.n = 0;
            rr = lmu__encode_sink(tok, s + cut[kk], cut[kk + 1] - cut[kk], allow_special, &o);
            cnt[kk] = o.n;
            if (rr != LMU_OK) fail |= 1 << (int)rr;
        }
        if (fail) r = (fail & (1 << LMU_ERR_NOMEM)) ? LMU_ERR_NOMEM : LMU_ERR_RANGE;
    }
    if (r == LMU_OK) {
        for (k = 0; k < nchunks; k++) {
            size_t c = cnt[k];
            if (buf != ids) {
                if (total < cap) memcpy(ids + total, buf + cut[k], (total + c <= cap ? c : cap - total) * sizeof(int32_t));
            } else if (total != cut[k]) {
                memmove(ids + total, ids + cut[k], c * sizeof(int32_t));
            }
            total += c;
        }
        *n_out = total;
        if (total > cap) r = LMU_ERR_CAPACITY;
    }
    if (buf != ids) LMU_FREE(buf);
    LMU_FREE(cut);
    LMU_FREE(cnt);
    return r;
}

/* ---------------------------------------------------------------------- */
/* decode                                                                 */
/* ---------------------------------------------------------------------- */

LMUDEF int32_t lmu_tokenizer_vocab_size(const lmu_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
LMUDEF int32_t lmu_tokenizer_eot(const lmu_tokenizer *tok) { return tok ? tok->eot : -1; }
LMUDEF size_t lmu_tokenizer_max_token_bytes(const lmu_tokenizer *tok) { return tok ? tok->max_token_bytes : 0; }

LMUDEF const char *lmu_tokenizer_token(const lmu_tokenizer *tok, int32_t id, size_t *len)
{
    if (len) *len = 0;
    if (!tok || id < 0 || id >= tok->n_vocab) return NULL;
    if (len) *len = tok->tok_off[id + 1] - tok->tok_off[id];
    return (const char *)tok->tok_bytes + tok->tok_off[id];
}

LMUDEF lmu_result lmu_decode(const lmu_tokenizer *tok, const int32_t *ids, size_t n, char *out,
                             size_t cap, size_t *n_out)
{
    size_t i, w = 0;
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!ids && n) || (!out && cap)) return LMU_ERR_ARG;
    for (i = 0; i < n; i++) {
        uint32_t o, l;
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) return LMU_ERR_RANGE;
        o = tok->tok_off[ids[i]];
        l = tok->tok_off[ids[i] + 1] - o;
        if (w < cap) memcpy(out + w, tok->tok_bytes + o, cap - w < l ? cap - w : l);
        w += l;
    }
    *n_out = w;
    return w > cap ? LMU_ERR_CAPACITY : LMU_OK;
}

LMUDEF void lmu_decoder_init(lmu_decoder *d)
{
    if (d) memset(d, 0, sizeof *d);
}

/* How many bytes at the end of s[0..n) are the start of a UTF-8 character
   that more bytes could still complete (0..3). */
LMU__PRIVATE size_t lmu__utf8_open_tail(const unsigned char *s, size_t n)
{
    size_t k;
    for (k = 1; k <= 3 && k <= n; k++) {
        unsigned b = s[n - k];
        size_t need, j;
        if ((b & 0xC0) == 0x80) continue; /* continuation: look further back */
        need = (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3 : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
        if (need <= k) return 0; /* ASCII, invalid lead, or already complete */
        for (j = 1; j < k; j++) {
            unsigned c = s[n - k + j];
            unsigned lo = 0x80, hi = 0xBF;
            if (j == 1) {
                if (b == 0xE0) lo = 0xA0;
                else if (b == 0xED) hi = 0x9F;
                else if (b == 0xF0) lo = 0x90;
                else if (b == 0xF4) hi = 0x8F;
            }
            if (c < lo || c > hi) return 0;
        }
        return k;
    }
    return 0;
}

LMUDEF lmu_result lmu_decoder_push(lmu_decoder *d, const lmu_tokenizer *tok, int32_t id,
                                   char *out, size_t cap, size_t *n_out)
{
    size_t l, total, keep;
    const char *t;
    if (n_out) *n_out = 0;
    if (!d || !tok || !n_out || (!out && cap) || d->n_pending > 3) return LMU_ERR_ARG;
    t = lmu_tokenizer_token(tok, id, &l);
    if (!t) return LMU_ERR_RANGE;
    total = d->n_pending + l;
    if (cap < total) { *n_out = total; return LMU_ERR_CAPACITY; }
    memcpy(out, d->pending, d->n_pending);
    memcpy(out + d->n_pending, t, l);
    keep = lmu__utf8_open_tail((const unsigned char *)out, total);
    memcpy(d->pending, out + total - keep, keep);
    d->n_pending = (unsigned)keep;
    *n_out = total - keep;
    return LMU_OK;
}

LMUDEF lmu_result lmu_decoder_flush(lmu_decoder *d, char *out, size_t cap, size_t *n_out)
{
    if (n_out) *n_out = 0;
    if (!d || !n_out || (!out && cap) || d->n_pending > 3) return LMU_ERR_ARG;
    if (cap < d->n_pending) { *n_out = d->n_pending; return LMU_ERR_CAPACITY; }
    memcpy(out, d->pending, d->n_pending);
    *n_out = d->n_pending;
    d->n_pending = 0;
    return LMU_OK;
}

/* ---------------------------------------------------------------------- */
/* loading                                                                */
/* ---------------------------------------------------------------------- */

LMUDEF void lmu_tokenizer_free(lmu_tokenizer *tok)
{
    if (!tok) return;
    LMU_FREE(tok->tok_off);
    LMU_FREE(tok->tok_bytes);
    LMU_FREE(tok->whole);
    LMU_FREE(tok->pairs);
    LMU_FREE(tok);
}

LMUDEF lmu_result lmu_tokenizer_bytes(lmu_tokenizer **out)
{
    lmu_tokenizer *t;
    int i;
    if (!out) return LMU_ERR_ARG;
    *out = NULL;
    t = (lmu_tokenizer *)LMU_MALLOC(sizeof *t);
    if (!t) return LMU_ERR_NOMEM;
    memset(t, 0, sizeof *t);
    t->n_vocab = 257;
    t->eot = 256;
    t->byte_level = 1;
    t->max_token_bytes = LMU__TOK_SPECIAL_LEN;
    t->tok_off = (uint32_t *)LMU_MALLOC(258 * sizeof(uint32_t));
    t->tok_bytes = (unsigned char *)LMU_MALLOC(256 + LMU__TOK_SPECIAL_LEN);
    if (!t->tok_off || !t->tok_bytes) { lmu_tokenizer_free(t); return LMU_ERR_NOMEM; }
    for (i = 0; i < 256; i++) {
        t->byte_id[i] = i;
        t->tok_off[i] = (uint32_t)i;
        t->tok_bytes[i] = (unsigned char)i;
    }
    t->tok_off[256] = 256;
    t->tok_off[257] = 256 + LMU__TOK_SPECIAL_LEN;
    memcpy(t->tok_bytes + 256, LMU__TOK_SPECIAL, LMU__TOK_SPECIAL_LEN);
    *out = t;
    return LMU_OK;
}

/* GPT-2 writes each byte as a printable character: bytes 33..126, 161..172
   and 174..255 as themselves, the other 68 bytes as U+0100.. in byte order.
   Returns the byte for code point cp, or -1 if cp is not in that alphabet. */
LMU__PRIVATE int lmu__gpt2_byte(uint32_t cp)
{
    static const unsigned char lmu__gpt2_moved[68] = {
        0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  15,  16,
        17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  32,  127,
        128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144,
        145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 173};
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp >= 256 && cp < 256 + 68) return lmu__gpt2_moved[cp - 256];
    return -1;
}

typedef struct lmu__strmap { /* stb_ds string map: token as written in the files -> id */
    char *key;
    int32_t value;
} lmu__strmap;

typedef struct lmu__loader {
    lmu__json j;             /* encoder.json */
    lmu__strmap *map;        /* key text -> entry index */
    unsigned char *keybuf;   /* decoded key (UTF-8), json_len + 1 bytes */
    int32_t *ent_id;         /* stb_ds arrays, one element per JSON entry */
    uint32_t *ent_off;       /* entry's bytes: ent_bytes[ent_off[e] .. ent_off[e+1]) */
    unsigned char *ent_bytes;
} lmu__loader;

/* encoder.json: one object of "token": id members. Returns 0 on a fault. */
LMU__PRIVATE int lmu__parse_encoder(lmu__loader *L)
{
    lmu__json *J = &L->j;
    J->i = J->n >= 3 && J->s[0] == 0xEF && J->s[1] == 0xBB && J->s[2] == 0xBF ? 3 : 0; /* BOM */
    if (!lmu__json_expect(J, '{', "'{'")) return 0;
    if (lmu__json_ws(J) == '}') return lmu__json_fail(J, "empty object", NULL);
    do {
        size_t klen = 0, at, end, k, v; /* = 0: gcc -O1 -Wmaybe-uninitialized */
        uint32_t cp;
        if (lmu__json_ws(J) != '"') return lmu__json_fail(J, "expected a string key", NULL);
        at = J->i;
        /* decoded text is never longer than its JSON spelling: keybuf has room */
        if (!lmu__json_string(J, (char *)L->keybuf, J->n, &klen, NULL)) return 0;
        L->keybuf[klen] = 0;
        end = J->i;
        J->i = at; /* the key's faults are reported at its start */
        if (klen == 0) return lmu__json_fail(J, "empty token", NULL);
        if (stbds_shgeti(L->map, (char *)L->keybuf) >= 0)
            return lmu__json_fail(J, "duplicate key ", (const char *)L->keybuf);
        /* the token's bytes, from GPT-2's byte alphabet */
        for (k = 0; k < klen;) {
            size_t l = lmu__utf8_len(L->keybuf + k, klen - k, &cp);
            int b = l ? lmu__gpt2_byte(cp) : -1;
            if (b < 0)
                return lmu__json_fail(J, "character outside GPT-2's byte alphabet in key ",
                                      (const char *)L->keybuf);
            stbds_arrput(L->ent_bytes, (unsigned char)b);
            k += l;
        }
        if (stbds_arrlenu(L->ent_bytes) > 0xFFFFFFF0u)
            return lmu__json_fail(J, "too many token bytes", NULL);
        stbds_arrput(L->ent_off, (uint32_t)stbds_arrlenu(L->ent_bytes));
        stbds_shput(L->map, (char *)L->keybuf, (int32_t)stbds_arrlen(L->ent_id));
        J->i = end;
        if (!lmu__json_expect(J, ':', "':'")) return 0;
        lmu__json_ws(J);
        at = J->i;
        if (!lmu__json_uint(J, 0x7FFFFFFF, &v)) return 0;
        stbds_arrput(L->ent_id, (int32_t)v);
        if (stbds_arrlen(L->ent_id) >= 0x7FFFFFFF) {
            J->i = at;
            return lmu__json_fail(J, "too many tokens", NULL);
        }
        if (lmu__json_ws(J) < 0) return lmu__json_fail(J, "unexpected end of file (truncated?)", NULL);
    } while (lmu__json_eat(J, ','));
    if (!lmu__json_expect(J, '}', "',' or '}'")) return 0;
    if (lmu__json_ws(J) >= 0) return lmu__json_fail(J, "data after the object", NULL);
    return 1;
}

LMU__PRIVATE lmu_result lmu__bpe_fail(char *err, size_t errcap, size_t line, const char *what,
                                      const char *a, size_t alen)
{
    if (alen > 200) alen = 200;
    lmu__errf(err, errcap, "vocab.bpe: line %lu: %s%.*s%s", (unsigned long)line, what, (int)alen,
              a ? a : "", a ? "\"" : "");
    return LMU_ERR_FORMAT;
}

LMU__PRIVATE lmu_result lmu__load(lmu_tokenizer *t, lmu__loader *L, const unsigned char *bpe,
                                  size_t bpe_len)
{
    int32_t n, e, *ent_of_id = NULL, *rank = NULL, *made_line = NULL;
    lmu__merge_kv *merges = NULL; /* stb_ds hash map */
    size_t i, line = 0, nmerges = 0, total, nslots, errcap = L->j.errcap;
    unsigned char *tmp = NULL;
    char *err = L->j.err;
    lmu_result r;

    if (!lmu__parse_encoder(L)) return LMU_ERR_FORMAT;
    n = (int32_t)stbds_arrlen(L->ent_id);
    /* ids must be exactly 0..n-1, each once */
    ent_of_id = (int32_t *)LMU_MALLOC((size_t)n * sizeof(int32_t));
    rank = (int32_t *)LMU_MALLOC((size_t)n * sizeof(int32_t));
    made_line = (int32_t *)LMU_MALLOC((size_t)n * sizeof(int32_t));
    tmp = (unsigned char *)LMU_MALLOC(bpe_len + 2);
    t->tok_off = (uint32_t *)LMU_MALLOC(((size_t)n + 1) * sizeof(uint32_t));
    t->tok_bytes = (unsigned char *)LMU_MALLOC(stbds_arrlenu(L->ent_bytes) + 1);
    if (!ent_of_id || !rank || !made_line || !tmp || !t->tok_off || !t->tok_bytes) { r = LMU_ERR_NOMEM; goto done; }
    for (e = 0; e < n; e++) { ent_of_id[e] = -1; rank[e] = LMU__NO_RANK; made_line[e] = 0; }
    for (e = 0; e < n; e++) {
        int32_t id = L->ent_id[e];
        if (id >= n) {
            lmu__errf(err, errcap, "encoder.json: id %ld out of range: %ld tokens need ids 0..%ld",
                      (long)id, (long)n, (long)n - 1);
            r = LMU_ERR_FORMAT; goto done;
        }
        if (ent_of_id[id] >= 0) {
            lmu__errf(err, errcap, "encoder.json: id %ld appears twice", (long)id);
            r = LMU_ERR_FORMAT; goto done;
        }
        ent_of_id[id] = e;
    }
    /* token bytes by id */
    t->n_vocab = n;
    t->eot = -1;
    total = 0;
    for (e = 0; e < n; e++) {
        int32_t en = ent_of_id[e];
        uint32_t o0 = en ? L->ent_off[en - 1] : 0, o1 = L->ent_off[en];
        t->tok_off[e] = (uint32_t)total;
        memcpy(t->tok_bytes + total, L->ent_bytes + o0, o1 - o0);
        total += o1 - o0;
        if (o1 - o0 > t->max_token_bytes) t->max_token_bytes = o1 - o0;
        if (o1 - o0 == LMU__TOK_SPECIAL_LEN && memcmp(L->ent_bytes + o0, LMU__TOK_SPECIAL, LMU__TOK_SPECIAL_LEN) == 0)
            t->eot = e;
    }
    t->tok_off[n] = (uint32_t)total;
    for (i = 0; i < 256; i++) t->byte_id[i] = -1;
    for (e = 0; e < n; e++)
        if (t->tok_off[e + 1] - t->tok_off[e] == 1) t->byte_id[t->tok_bytes[t->tok_off[e]]] = e;
    for (i = 0; i < 256; i++)
        if (t->byte_id[i] < 0) {
            lmu__errf(err, errcap, "encoder.json: byte 0x%02X has no token", (unsigned)i);
            r = LMU_ERR_FORMAT; goto done;
        }

    /* vocab.bpe: merge k (0-based) makes a token of rank k */
    i = 0;
    while (i < bpe_len) {
        size_t end = i, sp, b0, alen, blen;
        ptrdiff_t ia, ib, ic;
        int32_t a, b, c;
        while (end < bpe_len && bpe[end] != '\n') end++;
        line++;
        sp = end;
        if (sp > i && bpe[sp - 1] == '\r') sp--;
        alen = sp - i; /* the line without its end */
        if (alen == 0 || (line == 1 && alen >= 8 && memcmp(bpe + i, "#version", 8) == 0)) { i = end + 1; continue; }
        memcpy(tmp, bpe + i, alen);
        tmp[alen] = 0;
        for (sp = 0; sp < alen && tmp[sp] != ' '; sp++) {}
        if (sp == 0 || sp + 1 >= alen || memchr(tmp + sp + 1, ' ', alen - sp - 1) || memchr(tmp, 0, alen)) {
            r = lmu__bpe_fail(err, errcap, line, "expected two tokens separated by one space: \"", (const char *)tmp, alen);
            goto done;
        }
        b0 = sp + 1;
        blen = alen - b0;
        tmp[sp] = 0;
        ia = stbds_shgeti(L->map, (char *)tmp);
        ib = stbds_shgeti(L->map, (char *)tmp + b0);
        if (ia < 0 || ib < 0) {
            r = lmu__bpe_fail(err, errcap, line, "unknown token \"", (const char *)tmp + (ia < 0 ? 0 : b0),
                              ia < 0 ? sp : blen);
            goto done;
        }
        a = L->ent_id[L->map[ia].value];
        b = L->ent_id[L->map[ib].value];
        if ((t->tok_off[a + 1] - t->tok_off[a] > 1 && !made_line[a]) ||
            (t->tok_off[b + 1] - t->tok_off[b] > 1 && !made_line[b])) {
            r = lmu__bpe_fail(err, errcap, line, "token not made by an earlier merge: \"",
                              (const char *)tmp + (made_line[a] || t->tok_off[a + 1] - t->tok_off[a] == 1 ? b0 : 0),
                              made_line[a] || t->tok_off[a + 1] - t->tok_off[a] == 1 ? blen : sp);
            goto done;
        }
        memmove(tmp + sp, tmp + b0, blen + 1); /* "a b" -> "ab" */
        ic = stbds_shgeti(L->map, (char *)tmp);
        if (ic < 0) { r = lmu__bpe_fail(err, errcap, line, "merge result is not in encoder.json: \"", (const char *)tmp, alen - 1); goto done; }
        c = L->ent_id[L->map[ic].value];
        if (made_line[c]) {
            char what[96];
            snprintf(what, sizeof what, "duplicate merge (made on line %ld too): \"", (long)made_line[c]);
            r = lmu__bpe_fail(err, errcap, line, what, (const char *)tmp, alen - 1);
            goto done;
        }
        if (nmerges >= 0x7FFFFFF0u) { r = lmu__bpe_fail(err, errcap, line, "too many merges", NULL, 0); goto done; }
        made_line[c] = (int32_t)line;
        rank[c] = (int32_t)nmerges++;
        i = end + 1;
    }
    /* tiktoken's consistency check: every token is a byte, a merge result or
       the special token (a cut vocab.bpe fails here) */
    for (e = 0; e < n; e++)
        if (t->tok_off[e + 1] - t->tok_off[e] > 1 && !made_line[e] && e != t->eot) {
            lmu__errf(err, errcap, "vocab.bpe: no merge makes token id %ld (of %ld; the file may be truncated after %lu merges)",
                      (long)e, (long)n, (unsigned long)nmerges);
            r = LMU_ERR_FORMAT; goto done;
        }

    /* whole-piece table over the mergeable tokens */
    for (nslots = 16; nslots < 2 * (size_t)n; nslots *= 2) {}
    t->whole = (lmu__wslot *)LMU_MALLOC(nslots * sizeof(lmu__wslot));
    if (!t->whole) { r = LMU_ERR_NOMEM; goto done; }
    t->whole_mask = (uint32_t)(nslots - 1);
    for (i = 0; i < nslots; i++) { t->whole[i].id = -1; t->whole[i].tag = 0; t->whole[i].head = 0; }
    for (e = 0; e < n; e++) {
        const unsigned char *p = t->tok_bytes + t->tok_off[e];
        size_t l = t->tok_off[e + 1] - t->tok_off[e];
        uint64_t head = lmu__head8(p, l);
        uint32_t h, s;
        if (l > 1 && !made_line[e]) continue;
        h = lmu__hash_bytes(p, l, head);
        for (s = h & t->whole_mask; t->whole[s].id >= 0; s = (s + 1) & t->whole_mask) {}
        t->whole[s].head = head;
        t->whole[s].tag = lmu__whole_tag(h, l);
        t->whole[s].id = e;
    }
    /* merge table: every split of a merge result into two mergeable tokens
       (tiktoken ranks a pair by its concatenation, not by the merge line) */
    for (e = 0; e < n; e++) {
        const unsigned char *p = t->tok_bytes + t->tok_off[e];
        size_t l = t->tok_off[e + 1] - t->tok_off[e], k;
        if (!made_line[e]) continue;
        for (k = 1; k < l; k++) {
            int32_t x = lmu__whole_get(t, p, k), y;
            lmu__merge_kv kv;
            if (x < 0) continue;
            y = lmu__whole_get(t, p + k, l - k);
            if (y < 0) continue;
            kv.key.a = x;
            kv.key.b = y;
            kv.value.rank = rank[e];
            kv.value.id = e;
            stbds_hmputs(merges, kv);
        }
    }
    /* ... flattened into the read-only table encode uses */
    for (nslots = 16; nslots < 2 * (size_t)stbds_hmlenu(merges); nslots *= 2) {}
    t->pairs = (lmu__pslot *)LMU_MALLOC(nslots * sizeof(lmu__pslot));
    if (!t->pairs) { r = LMU_ERR_NOMEM; goto done; }
    t->pair_mask = (uint32_t)(nslots - 1);
    for (i = 0; i < nslots; i++) { t->pairs[i].key = 0; t->pairs[i].rank = LMU__NO_RANK; t->pairs[i].id = -1; }
    for (i = 0; i < stbds_hmlenu(merges); i++) {
        uint64_t key = ((uint64_t)(uint32_t)merges[i].key.a << 32) | (uint32_t)merges[i].key.b;
        uint32_t s;
        for (s = lmu__pair_hash(key) & t->pair_mask; t->pairs[s].id >= 0; s = (s + 1) & t->pair_mask) {}
        t->pairs[s].key = key;
        t->pairs[s].rank = merges[i].value.rank;
        t->pairs[s].id = merges[i].value.id;
    }
    r = LMU_OK;
done:
    stbds_hmfree(merges);
    LMU_FREE(ent_of_id);
    LMU_FREE(rank);
    LMU_FREE(made_line);
    LMU_FREE(tmp);
    return r;
}

LMUDEF lmu_result lmu_tokenizer_load_memory(lmu_tokenizer **out, const char *encoder_json,
                                            size_t json_len, const char *vocab_bpe,
                                            size_t bpe_len, char *err, size_t errcap)
{
    lmu__loader L;
    lmu_tokenizer *t;
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!out) return LMU_ERR_ARG;
    *out = NULL;
    if ((!encoder_json && json_len) || (!vocab_bpe && bpe_len)) return LMU_ERR_ARG;
    memset(&L, 0, sizeof L);
    L.j.s = (const unsigned char *)encoder_json;
    L.j.n = json_len;
    L.j.err = err;
    L.j.errcap = errcap;
    L.j.by_line = 1;
    t = (lmu_tokenizer *)LMU_MALLOC(sizeof *t);
    L.keybuf = (unsigned char *)LMU_MALLOC(json_len + 1);
    if (!t || !L.keybuf) { LMU_FREE(t); LMU_FREE(L.keybuf); return LMU_ERR_NOMEM; }
    memset(t, 0, sizeof *t);
    stbds_sh_new_arena(L.map);
    r = lmu__load(t, &L, (const unsigned char *)vocab_bpe, bpe_len);
    stbds_shfree(L.map);
    stbds_arrfree(L.ent_id);
    stbds_arrfree(L.ent_off);
    stbds_arrfree(L.ent_bytes);
    LMU_FREE(L.keybuf);
    if (r != LMU_OK) {
        if (r == LMU_ERR_NOMEM) lmu__errf(err, errcap, "out of memory loading the tokenizer");
        lmu_tokenizer_free(t);
        return r;
    }
    *out = t;
    return LMU_OK;
}

#ifndef LMU_NO_STDIO
LMUDEF lmu_result lmu_tokenizer_load_files(lmu_tokenizer **out, const char *encoder_json_path,
                                           const char *vocab_bpe_path, char *err, size_t errcap)
{
    unsigned char *js = NULL, *bpe = NULL;
    size_t jn = 0, bn = 0;
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!out || !encoder_json_path || !vocab_bpe_path) return LMU_ERR_ARG;
    *out = NULL;
    /* GPT-2's files are 1 MB and 0.5 MB: a gigabyte is not a vocabulary */
    r = lmu__read_whole_file(encoder_json_path, "tokenizer", (size_t)1 << 30, &js, &jn, err, errcap);
    if (r == LMU_OK)
        r = lmu__read_whole_file(vocab_bpe_path, "tokenizer", (size_t)1 << 30, &bpe, &bn, err, errcap);
    if (r == LMU_OK)
        r = lmu_tokenizer_load_memory(out, (const char *)js, jn, (const char *)bpe, bn, err, errcap);
    LMU_FREE(js);
    LMU_FREE(bpe);
    return r;
}
#endif

/* ---------------------------------------------------------------------- */
/* >>data (implementation)                                                 */
/* ---------------------------------------------------------------------- */

#ifndef LMU_NO_STDIO
#include <errno.h>
#endif

LMU__PRIVATE uint32_t lmu__data_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

LMU__PRIVATE uint64_t lmu__data_get64(const unsigned char *p)
{
    return (uint64_t)lmu__data_get32(p) | (uint64_t)lmu__data_get32(p + 4) << 32;
}

LMU__PRIVATE void lmu__data_put32(unsigned char *p, uint32_t v)
{
    int i;
    for (i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

LMU__PRIVATE void lmu__data_put64(unsigned char *p, uint64_t v)
{
    lmu__data_put32(p, (uint32_t)v);
    lmu__data_put32(p + 4, (uint32_t)(v >> 32));
}

LMUDEF lmu_result lmu_tokens_header(unsigned char out[LMU_TOKENS_HEADER_BYTES], int vocab_size,
                                    uint64_t count)
{
    if (!out || vocab_size < 1 || vocab_size > LMU_TOKENS_MAX_VOCAB) return LMU_ERR_ARG;
    memset(out, 0, LMU_TOKENS_HEADER_BYTES);
    memcpy(out, LMU_TOKENS_MAGIC, 8); /* the literal's NUL is byte 7 */
    lmu__data_put32(out + 8, LMU_TOKENS_VERSION);
    lmu__data_put32(out + 12, (uint32_t)vocab_size);
    lmu__data_put64(out + 16, count);
    return LMU_OK;
}

/* window b of a batch: T ids from w, the targets one ahead */
LMU__PRIVATE void lmu__tokens_window(const uint16_t *w, int T, int b, int *tok, int *tgt)
{
    int t;
    for (t = 0; t < T; t++) {
        tok[(size_t)b * (size_t)T + (size_t)t] = w[t];
        tgt[(size_t)b * (size_t)T + (size_t)t] = w[t + 1];
    }
}

LMUDEF lmu_result lmu_tokens_batch(const lmu_tokens *tf, uint64_t seed, uint64_t step, int B, int T,
                                   int b0, int nb, int *tok, int *tgt)
{
    lmu_rng rng;
    uint64_t key = seed * 0xD1B54A32D192ED03ULL ^ (step + 0x632BE59BD9B4E019ULL), span;
    int b;
    if (!tf || !tf->ids || !tok || !tgt || B < 1 || T < 1 || b0 < 0 || nb < 0 || nb > B - b0 ||
        tf->count < (uint64_t)T + 1)
        return LMU_ERR_ARG;
    span = tf->count - (uint64_t)T; /* window starts 0 .. count - T - 1 */
    key ^= key >> 29;
    key *= 0xBF58476D1CE4E5B9ULL;
    key ^= key >> 32;
    lmu_rng_seed(&rng, key);
    for (b = 0; b < b0; b++) lmu_rng_u64(&rng); /* the windows before b0 */
    for (b = 0; b < nb; b++) lmu__tokens_window(tf->ids + lmu_rng_u64(&rng) % span, T, b, tok, tgt);
    return LMU_OK;
}

LMUDEF lmu_result lmu_tokens_segments(const lmu_tokens *tf, uint64_t step, int B, int T, int b0,
                                      int nb, int *tok, int *tgt)
{
    uint64_t per;
    int b;
    if (!tf || !tf->ids || !tok || !tgt || B < 1 || T < 1 || b0 < 0 || nb < 0 || nb > B - b0)
        return LMU_ERR_ARG;
    per = tf->count > 0 ? (tf->count - 1) / (uint64_t)B / (uint64_t)T : 0; /* segments a stretch */
    if (per == 0) return LMU_ERR_RANGE;
    for (b = 0; b < nb; b++)
        lmu__tokens_window(tf->ids + ((uint64_t)(b0 + b) * per + step % per) * (uint64_t)T, T, b, tok,
                           tgt);
    return LMU_OK;
}

LMUDEF uint64_t lmu_tokens_digest(const lmu_tokens *tf)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL, i;
    if (!tf || !tf->ids) return 0;
    h ^= tf->vocab_size, h *= 0x100000001B3ULL;
    for (i = 0; i < tf->count; i++) { /* FNV-1a over the 16-bit ids */
        h ^= tf->ids[i];
        h *= 0x100000001B3ULL;
    }
    return h ^ (h >> 29);
}

LMUDEF void lmu_tokens_free(lmu_tokens *tf)
{
    if (!tf) return;
    LMU_FREE(tf->ids);
    memset(tf, 0, sizeof *tf);
}

LMUDEF lmu_result lmu_tokens_load_memory(lmu_tokens *tf, const void *buf, size_t len, char *err,
                                         size_t errcap)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint32_t version, vocab;
    uint64_t count, reserved;
    size_t i, n, bytes;
    uint16_t *ids;
    if (err && errcap) err[0] = 0;
    if (!tf) return LMU_ERR_ARG;
    memset(tf, 0, sizeof *tf);
    if (!p && len) return LMU_ERR_ARG;
    if (len < LMU_TOKENS_HEADER_BYTES) {
        lmu__errf(err, errcap, "token file: %lu bytes, shorter than the %d-byte header",
                  (unsigned long)len, LMU_TOKENS_HEADER_BYTES);
        return LMU_ERR_FORMAT;
    }
    if (memcmp(p, LMU_TOKENS_MAGIC, 8) != 0) {
        lmu__errf(err, errcap, "token file: bad magic (not a token file; want \"LMUTOKS\")");
        return LMU_ERR_FORMAT;
    }
    version = lmu__data_get32(p + 8);
    vocab = lmu__data_get32(p + 12);
    count = lmu__data_get64(p + 16);
    reserved = lmu__data_get64(p + 24);
    if (version != LMU_TOKENS_VERSION) {
        lmu__errf(err, errcap, "token file: version %lu, this reader knows version %u",
                  (unsigned long)version, LMU_TOKENS_VERSION);
        return LMU_ERR_FORMAT;
    }
    if (vocab < 1 || vocab > LMU_TOKENS_MAX_VOCAB) {
        lmu__errf(err, errcap, "token file: vocab_size %lu outside 1..%d", (unsigned long)vocab,
                  LMU_TOKENS_MAX_VOCAB);
        return LMU_ERR_FORMAT;
    }
    if (reserved != 0) {
        lmu__errf(err, errcap, "token file: reserved header field (byte 24) is not 0");
        return LMU_ERR_FORMAT;
    }
    /* count must match the size exactly; compare without overflowing */
    bytes = len - LMU_TOKENS_HEADER_BYTES;
    if ((bytes & 1) || count != (uint64_t)(bytes / 2)) {
        lmu__errf(err, errcap, "token file: header says %llu tokens (%llu data bytes) but %lu "
                  "data bytes follow the header", (unsigned long long)count,
                  (unsigned long long)(count > ((uint64_t)-1) / 2 ? (uint64_t)-1 : count * 2),
                  (unsigned long)bytes);
        return LMU_ERR_FORMAT;
    }
    n = bytes / 2;
    ids = (uint16_t *)LMU_MALLOC(n ? n * sizeof(uint16_t) : 1);
    if (!ids) {
        lmu__errf(err, errcap, "token file: out of memory for %lu tokens", (unsigned long)n);
        return LMU_ERR_NOMEM;
    }
    p += LMU_TOKENS_HEADER_BYTES;
    for (i = 0; i < n; i++) {
        uint32_t id = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
        if (id >= vocab) {
            lmu__errf(err, errcap, "token file: id %lu at token %lu (byte %lu) is not below "
                      "vocab_size %lu", (unsigned long)id, (unsigned long)i,
                      (unsigned long)(LMU_TOKENS_HEADER_BYTES + 2 * i), (unsigned long)vocab);
            LMU_FREE(ids);
            return LMU_ERR_FORMAT;
        }
        ids[i] = (uint16_t)id;
    }
    tf->version = version;
    tf->vocab_size = vocab;
    tf->count = (uint64_t)n;
    tf->ids = ids;
    return LMU_OK;
}

#ifndef LMU_NO_STDIO

LMUDEF lmu_result lmu_tokens_load_file(lmu_tokens *tf, const char *path, char *err,
                                       size_t errcap)
{
    unsigned char *buf;
    size_t len;
    char msg[256];
    lmu_result r;
    if (err && errcap) err[0] = 0;
    if (!tf || !path) return LMU_ERR_ARG;
    memset(tf, 0, sizeof *tf);
    if ((r = lmu__read_whole_file(path, "token file", 0, &buf, &len, err, errcap)) != LMU_OK) return r;
    r = lmu_tokens_load_memory(tf, buf, len, msg, sizeof msg);
    LMU_FREE(buf);
    /* "token file: ..." becomes "PATH: ..." */
    if (r != LMU_OK)
        lmu__errf(err, errcap, "%s: %s", path,
                  strncmp(msg, "token file: ", 12) == 0 ? msg + 12 : msg);
    return r;
}

typedef struct lmu__tokens_out {
    const unsigned char *hdr;
    const int32_t *ids;
    size_t n;
} lmu__tokens_out;

/* The header, then the ids as little-endian u16 through a small buffer. */
LMU__PRIVATE lmu_result lmu__tokens_produce(lmu_st_sink *sink, void *user, char *msg, size_t cap)
{
    const lmu__tokens_out *o = (const lmu__tokens_out *)user;
    unsigned char buf[4096];
    size_t i = 0, k;
    if (sink->write(sink->user, o->hdr, LMU_TOKENS_HEADER_BYTES)) goto fail;
    while (i < o->n) {
        for (k = 0; k + 2 <= sizeof buf && i < o->n; k += 2, i++) {
            buf[k] = (unsigned char)(o->ids[i] & 0xff);
            buf[k + 1] = (unsigned char)(o->ids[i] >> 8);
        }
        if (sink->write(sink->user, buf, k)) goto fail;
    }
    return LMU_OK;
fail:
    lmu__errf(msg, cap, "token file: write failed");
    return LMU_ERR_IO;
}

LMUDEF lmu_result lmu_tokens_write_file(const char *path, const int32_t *ids, size_t n,
                                        int vocab_size, char *err, size_t errcap)
{
    unsigned char hdr[LMU_TOKENS_HEADER_BYTES];
    lmu__tokens_out o;
    size_t i;
    if (err && errcap) err[0] = 0;
    if (!path || (!ids && n)) return LMU_ERR_ARG;
    if (lmu_tokens_header(hdr, vocab_size, (uint64_t)n) != LMU_OK) {
        lmu__errf(err, errcap, "%s: vocab_size %d outside 1..%d", path, vocab_size,
                  LMU_TOKENS_MAX_VOCAB);
        return LMU_ERR_ARG;
    }
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size) {
            lmu__errf(err, errcap, "%s: id %ld at token %lu outside 0..%d", path, (long)ids[i],
                      (unsigned long)i, vocab_size - 1);
            return LMU_ERR_RANGE;
        }
    o.hdr = hdr, o.ids = ids, o.n = n;
    return lmu__write_atomic(path, lmu__tokens_produce, &o, NULL, "token file", err, errcap);
}

#endif /* LMU_NO_STDIO */

/* ---- config files ------------------------------------------------------ */

LMU__PRIVATE int lmu__data_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

LMUDEF lmu_result lmu_config_parse_ex(lmu_config *c, const char *text, size_t len,
                                      lmu_config_key_fn fn, void *user, char *err, size_t errcap)
{
    /* keys seen so far, so a repeated key is an error (a typo'd duplicate
       would otherwise silently win) */
    int seen[LMU__N_FIELDS + 1]; /* "preset" and every field */
    size_t pos = 0;
    long line = 0;
    int n_keys = 0;
    char msg[200];
    if (err && errcap) err[0] = 0;
    if (!c || (!text && len)) return LMU_ERR_ARG;
    memset(seen, 0, sizeof seen);
    while (pos < len) {
        char key[64], val[LMU__FIELD_TEXT_MAX];
        size_t a = pos, b, e, k, eq;
        int handled = 0;
        lmu_result r;
        line++;
        while (pos < len && text[pos] != '\n') pos++;
        e = pos; /* line is text[a..e) */
        if (pos < len) pos++;
        for (k = a; k < e; k++) {
            if (text[k] == '#') break;
            if (text[k] == 0) {
                lmu__errf(err, errcap, "line %ld: NUL byte", line);
                return LMU_ERR_FORMAT;
            }
        }
        e = k; /* comment dropped */
        while (a < e && lmu__data_space(text[a])) a++;
        while (e > a && lmu__data_space(text[e - 1])) e--;
        if (a == e) continue;
        for (eq = a; eq < e && text[eq] != '='; eq++) {}
        if (eq == e) {
            lmu__errf(err, errcap, "line %ld: expected 'key = value'", line);
            return LMU_ERR_FORMAT;
        }
        b = eq;
        while (b > a && lmu__data_space(text[b - 1])) b--;
        if (b == a || b - a >= sizeof key) {
            lmu__errf(err, errcap, "line %ld: %s key", line, b == a ? "missing" : "overlong");
            return LMU_ERR_FORMAT;
        }
        memcpy(key, text + a, b - a);
        key[b - a] = 0;
        for (k = 0; key[k]; k++)
            if (!(key[k] == '_' || key[k] == '-' || key[k] == '.' ||
                  (key[k] >= 'a' && key[k] <= 'z') || (key[k] >= 'A' && key[k] <= 'Z') ||
                  (key[k] >= '0' && key[k] <= '9'))) {
                lmu__errf(err, errcap, "line %ld: bad character in key", line);
                return LMU_ERR_FORMAT;
            }
        a = eq + 1;
        while (a < e && lmu__data_space(text[a])) a++;
        if (a == e || e - a >= sizeof val) {
            lmu__errf(err, errcap, "line %ld: %s value for '%s'", line,
                      a == e ? "missing" : "overlong", key);
            return LMU_ERR_FORMAT;
        }
        memcpy(val, text + a, e - a);
        val[e - a] = 0;
        if (fn) {
            msg[0] = 0;
            handled = fn(user, key, val, msg, sizeof msg);
            if (handled < 0) {
                lmu__errf(err, errcap, "line %ld: %s", line, msg[0] ? msg : "bad setting");
                return LMU_ERR_ARG;
            }
        }
        if (handled) continue;
        k = strcmp(key, "preset") == 0 ? 0 : (size_t)(lmu__field_find(key) + 1);
        if (k > 0 || strcmp(key, "preset") == 0) {
            if (seen[k]) {
                lmu__errf(err, errcap, "line %ld: '%s' already set on line %d", line, key, seen[k]);
                return LMU_ERR_FORMAT;
            }
            if (k == 0 && n_keys > 0) {
                lmu__errf(err, errcap, "line %ld: 'preset' must come before other keys", line);
                return LMU_ERR_FORMAT;
            }
            seen[k] = line > 0x7fffffffL ? 0x7fffffff : (int)line;
        }
        n_keys++;
        if ((r = lmu_config_set(c, key, val, msg, sizeof msg)) != LMU_OK) {
            lmu__errf(err, errcap, "line %ld: %s", line, msg);
            return r;
        }
    }
    return LMU_OK;
}

LMUDEF lmu_result lmu_config_parse(lmu_config *c, const char *text, size_t len, char *err,
                                   size_t errcap)
{
    return lmu_config_parse_ex(c, text, len, NULL, NULL, err, errcap);
}

#endif /* LMU_IMPLEMENTATION_DONE */
#endif /* LMU_IMPLEMENTATION */

/*
   REVISION HISTORY
       0.1.0  first version

   LICENCE
       MIT. Copyright (c) 2026 The lmu.h authors. See LICENSE for the text.
*/
