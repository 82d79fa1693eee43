/* Fuzz target: lmu_encode on arbitrary bytes.
   Input: one selector byte, then the text. Selector bit 0: allow_special;
   bits 1-2: the tokenizer (byte-level; the small test vocabulary of
   fuzz_vocab.h; GPT-2's own when data/gpt2/encoder.json + vocab.bpe exist,
   or $LMU_FUZZ_GPT2 names their folder; else the small one again).
   Properties: decode(encode(x)) == x; every id in range; the size query
   (ids NULL) agrees; lmu_encode_parallel gives the same ids; the streaming
   decoder's pieces plus its flush concatenate to the same bytes; at most
   one id per byte. */
#include "fuzz_common.h"
#include "fuzz_vocab.h"

static lmu_tokenizer *g_tok[3];
static int g_init;

static void init(void)
{
    static char js[FV_JSON_CAP], bpe[FV_BPE_CAP];
    char err[256], p1[1024], p2[1024];
    const char *dir = getenv("LMU_FUZZ_GPT2");
    size_t jn, bn;
    char *j, *b;
    g_init = 1;
    FZ_ASSERT(lmu_tokenizer_bytes(&g_tok[0]) == LMU_OK);
    fv_make(js, &jn, bpe, &bn);
    FZ_ASSERT(lmu_tokenizer_load_memory(&g_tok[1], js, jn, bpe, bn, err, sizeof err) == LMU_OK);
    snprintf(p1, sizeof p1, "%s/encoder.json", dir ? dir : "data/gpt2");
    snprintf(p2, sizeof p2, "%s/vocab.bpe", dir ? dir : "data/gpt2");
    j = (char *)fz_slurp(p1, &jn);
    b = (char *)fz_slurp(p2, &bn);
    if (j && b && lmu_tokenizer_load_memory(&g_tok[2], j, jn, b, bn, err, sizeof err) != LMU_OK)
        g_tok[2] = NULL;
    free(j);
    free(b);
    if (!g_tok[2]) g_tok[2] = g_tok[1];
    /* tokenizers stay loaded for the process's life (one-time setup) */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const lmu_tokenizer *t;
    const char *text;
    size_t len, n = 0, n2 = 0, np = 0, m = 0, i, mtb, got = 0;
    int32_t *ids, *ids2;
    char *back, *piece;
    int special;
    lmu_decoder d;
    if (!g_init) init();
    if (size < 1) return 0;
    special = data[0] & 1;
    t = g_tok[((data[0] >> 1) & 3) % 3];
    text = (const char *)data + 1;
    len = size - 1;
    mtb = lmu_tokenizer_max_token_bytes(t);
    ids = (int32_t *)malloc((len + 1) * sizeof *ids);
    ids2 = (int32_t *)malloc((len + 1) * sizeof *ids2);
    back = (char *)malloc(len * mtb + 1);
    piece = (char *)malloc(mtb + 8);
    FZ_ASSERT(ids && ids2 && back && piece);
    {
        lmu_result r = lmu_encode(t, text, len, special, NULL, 0, &n2);
        FZ_ASSERT(r == LMU_OK || r == LMU_ERR_CAPACITY);
    }
    FZ_ASSERT(lmu_encode(t, text, len, special, ids, len, &n) == LMU_OK);
    FZ_ASSERT(n == n2);
    FZ_ASSERT(n <= len);
    for (i = 0; i < n; i++) FZ_ASSERT(ids[i] >= 0 && ids[i] < lmu_tokenizer_vocab_size(t));
    FZ_ASSERT(lmu_decode(t, ids, n, back, len * mtb + 1, &m) == LMU_OK);
    if (m != len || memcmp(back, text, len) != 0) {
        fprintf(stderr, "round trip differs: %lu bytes in, %lu out\n", (unsigned long)len, (unsigned long)m);
        FZ_ASSERT(0);
    }
    FZ_ASSERT(lmu_encode_parallel(t, text, len, special, ids2, len, &np) == LMU_OK);
    FZ_ASSERT(np == n && (n == 0 || memcmp(ids, ids2, n * sizeof *ids) == 0));
    lmu_decoder_init(&d);
    for (i = 0; i < n; i++) {
        size_t k = 0;
        FZ_ASSERT(lmu_decoder_push(&d, t, ids[i], piece, mtb + 8, &k) == LMU_OK);
        FZ_ASSERT(got + k <= len && memcmp(piece, text + got, k) == 0);
        got += k;
    }
    {
        size_t k = 0;
        FZ_ASSERT(lmu_decoder_flush(&d, piece, mtb + 8, &k) == LMU_OK);
        FZ_ASSERT(got + k == len && memcmp(piece, text + got, k) == 0);
    }
    free(ids);
    free(ids2);
    free(back);
    free(piece);
    return 0;
}
