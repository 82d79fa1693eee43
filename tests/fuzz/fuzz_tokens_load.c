/* Fuzz target: lmu_tokens_load_memory (token files).
   Properties: never crashes; a refused file leaves tf zeroed with a
   message; an accepted one is exactly 32 + 2 count bytes, its header is
   what lmu_tokens_header writes for (vocab_size, count), and every id is
   the little-endian u16 at its place and below vocab_size. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmu_tokens tf;
    unsigned char hdr[LMU_TOKENS_HEADER_BYTES];
    char err[256];
    size_t i;
    lmu_result r;
    memset(&tf, 0xAB, sizeof tf);
    err[0] = 0;
    r = lmu_tokens_load_memory(&tf, data, size, err, sizeof err);
    if (r != LMU_OK) {
        FZ_ASSERT(err[0] != 0 && tf.ids == NULL && tf.count == 0);
        return 0;
    }
    FZ_ASSERT(size == LMU_TOKENS_HEADER_BYTES + 2 * tf.count);
    FZ_ASSERT(tf.vocab_size >= 1 && tf.vocab_size <= LMU_TOKENS_MAX_VOCAB);
    FZ_ASSERT(lmu_tokens_header(hdr, (int)tf.vocab_size, tf.count) == LMU_OK);
    FZ_ASSERT(memcmp(hdr, data, sizeof hdr) == 0);
    for (i = 0; i < tf.count; i++) {
        unsigned v = (unsigned)data[32 + 2 * i] | ((unsigned)data[33 + 2 * i] << 8);
        FZ_ASSERT(tf.ids[i] == v && v < tf.vocab_size);
    }
    lmu_tokens_free(&tf);
    FZ_ASSERT(tf.ids == NULL);
    return 0;
}
