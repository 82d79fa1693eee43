/* Fuzz target: lmu_config_parse (model config files).
   Properties: never crashes; an error has a message; a config that parses
   and resolves is written back by lmu_config_format as text that parses and
   resolves to the same config, per-layer lists included (a round trip),
   and the format's length report matches what it writes. */
#include "fuzz_common.h"

static int same(const lmu_config *a, const lmu_config *b)
{
    return a->arch == b->arch && a->mixer == b->mixer && a->vocab_size == b->vocab_size &&
           a->n_ctx == b->n_ctx && a->d_model == b->d_model && a->n_layer == b->n_layer &&
           a->q == b->q && a->q_prime == b->q_prime && a->theta == b->theta &&
           a->d_pre == b->d_pre && a->d_ff == b->d_ff && a->n_head == b->n_head &&
           a->theta_last == b->theta_last && a->iattn_init == b->iattn_init &&
           a->iattn_lr == b->iattn_lr && memcmp(&a->layers, &b->layers, sizeof a->layers) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmu_config c, c2;
    char err[256], buf[8192], small[8];
    size_t need;
    lmu_result r;
    memset(&c, 0, sizeof c);
    err[0] = 0;
    r = lmu_config_parse(&c, (const char *)data, size, err, sizeof err);
    if (r != LMU_OK) {
        FZ_ASSERT(err[0] != 0);
        return 0;
    }
    if (lmu_config_resolve(&c, err, sizeof err) != LMU_OK) {
        FZ_ASSERT(err[0] != 0);
        return 0;
    }
    need = lmu_config_format(&c, buf, sizeof buf);
    FZ_ASSERT(need < sizeof buf && strlen(buf) == need);
    FZ_ASSERT(lmu_config_format(&c, small, sizeof small) == need && strlen(small) == sizeof small - 1);
    memset(&c2, 0, sizeof c2);
    r = lmu_config_parse(&c2, buf, need, err, sizeof err);
    if (r != LMU_OK) fprintf(stderr, "reparse: %s\n%s", err, buf);
    FZ_ASSERT(r == LMU_OK);
    r = lmu_config_resolve(&c2, err, sizeof err);
    FZ_ASSERT(r == LMU_OK);
    if (!same(&c, &c2)) fprintf(stderr, "round trip differs:\n%s", buf);
    FZ_ASSERT(same(&c, &c2));
    return 0;
}
