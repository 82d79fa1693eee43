/* Fuzz target: lmu_model_load_memory (model checkpoints: safetensors plus
   the config in __metadata__ and the optimizer state).
   Properties: never crashes; a refused file gives NULL and a message; an
   accepted one is a working model: a forward pass runs (a NaN loss from
   NaN weights is LMU_ERR_NONFINITE, not a crash) and generation steps. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmu_model *m = (lmu_model *)1;
    char err[256];
    lmu_result r;
    err[0] = 0;
    r = lmu_model_load_memory(&m, data, size, err, sizeof err);
    if (r != LMU_OK) {
        FZ_ASSERT(m == NULL && err[0] != 0);
        return 0;
    }
    FZ_ASSERT(m != NULL);
    {
        int tok[4], tgt[4], i, T = m->cfg.n_ctx < 4 ? m->cfg.n_ctx : 4;
        float loss = 0;
        lmu_gen g;
        for (i = 0; i < T; i++) {
            tok[i] = i % m->cfg.vocab_size;
            tgt[i] = (i + 1) % m->cfg.vocab_size;
        }
        r = lmu_model_forward(m, tok, tgt, 1, T, &loss);
        FZ_ASSERT(r == LMU_OK || r == LMU_ERR_NONFINITE || r == LMU_ERR_NOMEM);
        memset(&g, 0, sizeof g);
        if (lmu_gen_create(&g, m, T) == LMU_OK) {
            r = lmu_gen_feed(&g, tok[0]);
            FZ_ASSERT(r == LMU_OK || r == LMU_ERR_NONFINITE);
            lmu_gen_free(&g);
        }
    }
    lmu_model_free(m);
    return 0;
}
