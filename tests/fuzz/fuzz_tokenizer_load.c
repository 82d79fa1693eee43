/* Fuzz target: lmu_tokenizer_load_memory (encoder.json + vocab.bpe).
   Input: a 2-byte little-endian length L, then L bytes of encoder.json
   (clamped to what is there), then vocab.bpe.
   Properties: never crashes; a refused pair gives NULL and a message; an
   accepted vocabulary has every byte as a token, every id decodes to its
   token's bytes, and decode(encode(x)) == x on a probe holding all 256
   bytes and the special token. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmu_tokenizer *t = (lmu_tokenizer *)1;
    char err[256], probe[256 + 64], *back;
    int32_t *ids;
    size_t jl, i, n = 0, m = 0, pl = 0, cap;
    int32_t v, id;
    lmu_result r;
    if (size < 2) return 0;
    jl = (size_t)data[0] | ((size_t)data[1] << 8);
    if (jl > size - 2) jl = size - 2;
    err[0] = 0;
    r = lmu_tokenizer_load_memory(&t, (const char *)data + 2, jl, (const char *)data + 2 + jl,
                                  size - 2 - jl, err, sizeof err);
    if (r != LMU_OK) {
        FZ_ASSERT(t == NULL && err[0] != 0);
        return 0;
    }
    FZ_ASSERT(t != NULL);
    v = lmu_tokenizer_vocab_size(t);
    FZ_ASSERT(v >= 256);
    for (id = 0; id < v; id++) {
        size_t len = 0;
        char one[4096];
        const char *tk = lmu_tokenizer_token(t, id, &len);
        FZ_ASSERT(tk != NULL && len >= 1 && len <= lmu_tokenizer_max_token_bytes(t));
        FZ_ASSERT(lmu_decode(t, &id, 1, one, sizeof one, &m) == LMU_OK && m == len);
        FZ_ASSERT(memcmp(one, tk, len) == 0);
    }
    FZ_ASSERT(lmu_tokenizer_token(t, v, &m) == NULL && lmu_tokenizer_token(t, -1, &m) == NULL);
    for (i = 0; i < 256; i++) probe[pl++] = (char)(255 - i);
    memcpy(probe + pl, " ab<|endoftext|> the 00", 23);
    pl += 23;
    cap = pl;
    ids = (int32_t *)malloc(cap * sizeof *ids);
    back = (char *)malloc(pl * lmu_tokenizer_max_token_bytes(t) + 1);
    FZ_ASSERT(ids && back);
    FZ_ASSERT(lmu_encode(t, probe, pl, 1, ids, cap, &n) == LMU_OK);
    for (i = 0; i < n; i++) FZ_ASSERT(ids[i] >= 0 && ids[i] < v);
    FZ_ASSERT(lmu_decode(t, ids, n, back, pl * lmu_tokenizer_max_token_bytes(t) + 1, &m) == LMU_OK);
    FZ_ASSERT(m == pl && memcmp(back, probe, pl) == 0);
    free(ids);
    free(back);
    lmu_tokenizer_free(t);
    return 0;
}
