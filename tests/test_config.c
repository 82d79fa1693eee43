/* Presets and configs: MODEL.md section 4's table, defaults, validation. */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "lmu_test.h"

int main(int argc, char **argv)
{
    static const struct { const char *size; long n; } want[] = {
        {"55k", 55000}, {"100k", 100000}, {"200k", 200000},
        {"300k", 300000}, {"500k", 500000}, {"1m", 1000000},
    };
    char name[64], err[256];
    lmu_config c;
    int i, k;
    lt_begin("test_config", argc, argv);
    memset(&c, 0, sizeof c);
    for (i = 0; i < 6; i++) {
        for (k = 0; k < LT_N_KINDS; k++) { /* every kind with a preset family */
            const lt_kind *kd = &lt_kinds[k];
            double n, rel;
            if (!kd->preset) continue;
            snprintf(name, sizeof name, kd->preset, want[i].size);
            LT_CHECK(lmu_config_preset(&c, name) == LMU_OK && c.arch == kd->arch && c.mixer == kd->mixer,
                     "preset %s exists, arch %s, mixer %s", name, lmu_arch_name(c.arch), lmu_mixer_name(c.mixer));
            n = (double)lmu_config_param_count(&c);
            rel = fabs(n - (double)want[i].n) / (double)want[i].n;
            LT_CHECK(rel <= 0.03, "%s: N = %.0f within 3%% of %ld (%.2f%%)", name, n, want[i].n, 100 * rel);
            if (k != LT_LMU_FFN || lt__verbose)
                printf("  %-18s d=%d L=%d d_ff=%d heads=%d N=%.0f\n", name, c.d_model, c.n_layer, c.d_ff, c.n_head, n);
        }
    }
    lmu_config_preset(&c, "lmu-55k");
    LT_CHECK(c.d_ff == 105 && c.d_pre == 72, "lmu-55k d_ff %d (want 105), d_pre %d (want 72)", c.d_ff, c.d_pre);
    lmu_config_preset(&c, "lmu-1m");
    LT_CHECK(c.d_ff == 469 && c.d_pre == 306, "lmu-1m d_ff %d (want 469), d_pre %d", c.d_ff, c.d_pre);
    lmu_config_preset(&c, "lmu-200k");
    LT_CHECK(c.d_pre == 137, "d = 91 gives d_pre %d (want 137, halves round up)", c.d_pre);
    LT_CHECK(lmu_config_preset(&c, "lmu-7m") == LMU_ERR_ARG, "unknown preset refused");
    for (i = 0; i < lmu_config_preset_count(); i++)
        LT_CHECK(lmu_config_preset(&c, lmu_config_preset_name(i)) == LMU_OK, "listed preset %s", lmu_config_preset_name(i));

    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK, "all-zero config resolves");
    LT_CHECK(c.vocab_size == 50257 && c.n_ctx == 1024 && c.d_model == 48 && c.q == 48 && c.d_pre == 72,
             "defaults V=%d n_ctx=%d d=%d q=%d d_pre=%d", c.vocab_size, c.n_ctx, c.d_model, c.q, c.d_pre);
    memset(&c, 0, sizeof c); c.q = 10; c.q_prime = 11;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "q_prime"), "q' > q refused: %s", err);
    memset(&c, 0, sizeof c); c.mixer = LMU_MIXER_ATTN; c.d_model = 30; c.n_head = 4;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "n_head"), "heads not dividing d refused: %s", err);
    memset(&c, 0, sizeof c); c.mixer = LMU_MIXER_REBASED; c.d_model = 30; c.n_head = 4;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "n_head"), "rebased: heads not dividing d refused: %s", err);
    memset(&c, 0, sizeof c); c.mixer = LMU_MIXER_BASED; c.feature_dim = 257;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "feature_dim"), "feature_dim 257 refused: %s", err);
    memset(&c, 0, sizeof c); c.mixer = LMU_MIXER_REBASED;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.feature_dim == 16 && c.la_eps == 1e-12 && c.n_head == 2,
             "rebased defaults: feature_dim 16, la_eps 1e-12, n_head %d", c.n_head);
    memset(&c, 0, sizeof c); c.feature_dim = 8;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.feature_dim == 0, "mixer ffn has no feature_dim");
    memset(&c, 0, sizeof c); c.arch = LMU_ARCH_TRANSFORMER; c.window = -1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "window"), "window -1 refused: %s", err);
    memset(&c, 0, sizeof c); c.arch = LMU_ARCH_TRANSFORMER; c.window = 64;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.window == 64, "transformer window 64 kept");
    {
        char txt[4096];
        lmu_config c2;
        lmu_config_format(&c, txt, sizeof txt);
        memset(&c2, 0, sizeof c2);
        LT_CHECK(strstr(txt, "window = 64") && lmu_config_parse(&c2, txt, strlen(txt), err, sizeof err) == LMU_OK &&
                     c2.window == 64, "window written and read back by the config text: %s", err);
    }
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_set_items(&c, "arch=transformer,n_layer=3,mixer=conv,rebased,attn,window=32", err, sizeof err) == LMU_OK &&
                 c.arch == LMU_ARCH_TRANSFORMER && c.n_layer == 3 && c.layers.n_mixer == 3 &&
                 c.layers.mixer[2] == LMU_MIXER_ATTN && c.window == 32,
             "set_items: a list keeps its commas, the next key= starts an item: %s", err);
    LT_CHECK(lmu_config_set_items(&c, "d_model=64,n_head", err, sizeof err) == LMU_ERR_FORMAT && strstr(err, "n_head"),
             "set_items: an item without = refused: %s", err);
    LT_CHECK(lmu_config_set_items(&c, "d_model=64,dmodel=3", err, sizeof err) == LMU_ERR_ARG && strstr(err, "dmodel"),
             "set_items: an unknown key refused: %s", err);
    memset(&c, 0, sizeof c); c.window = 8;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.window == 0, "mixer ffn has no window");
    /* the block-recurrent layer's fields */
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_set_items(&c, "arch=transformer,n_layer=2,mixer=attn,brt,n_state=4", err, sizeof err) == LMU_OK &&
                 lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "window >= 1"),
             "brt without a window refused: %s", err);
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_set_items(&c, "arch=transformer,mixer=brt,window=8,n_state=5000", err, sizeof err) == LMU_ERR_RANGE &&
                 strstr(err, "n_state"), "n_state 5000 refused: %s", err);
    memset(&c, 0, sizeof c); c.arch = LMU_ARCH_TRANSFORMER; c.mixer = LMU_MIXER_BRT; c.window = 8; c.n_state = -1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "n_state"), "n_state -1 refused: %s", err);
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_set_items(&c, "arch=transformer,mixer=brt,window=8,brt_gate=gru", err, sizeof err) == LMU_ERR_FORMAT &&
                 strstr(err, "fixed or lstm"), "brt_gate gru refused, naming the choices: %s", err);
    memset(&c, 0, sizeof c); c.window = 8; c.n_state = 4; c.brt_skip = 1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.n_state == 0 && c.brt_skip == 0 && c.window == 0,
             "an LMU of mixer ffn has no state fields");
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_set_items(&c, "arch=transformer,n_layer=3,mixer=attn,brt,attn,window=16,n_state=4,brt_gate=lstm", err, sizeof err) == LMU_OK &&
                 lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.n_state == 4 &&
                 c.brt_gate == LMU_BRT_GATE_LSTM && c.window == 16,
             "arch transformer, mixer list with one brt: %s", err);
    memset(&c, 0, sizeof c);
    LT_CHECK(lmu_config_set_items(&c, "arch=transformer,n_layer=3,mixer=attn,brt", err, sizeof err) == LMU_OK &&
                 lmu_config_set(&c, "mixer", "attn,brt,attn,attn", err, sizeof err) == LMU_OK &&
                 lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "4 values for 3 layers"),
             "a recurrent layer outside the stack refused: %s", err);
    /* the multi-scale stack: the split's defaults, and every bad one named */
    memset(&c, 0, sizeof c); c.hier_k = 4;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.hier_bottom == 1 && c.hier_coarse == 1 &&
                 c.hier_top == 1, "hier_k 4 on 3 layers: 1 fine, 1 coarse, 1 fine by default: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 2; c.n_layer = 6;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.hier_bottom == 1 && c.hier_coarse == 4 &&
                 c.hier_top == 1, "hier_k 2 on 6 layers: 1, 4, 1 by default: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 2; c.n_layer = 4; c.hier_bottom = 2;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.hier_coarse == 1 && c.hier_top == 1,
             "hier_bottom 2 of 4 layers: 1 coarse, 1 fine: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 2; c.n_layer = 2;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.hier_coarse == 1 && c.hier_top == 0,
             "2 layers: 1 fine, 1 coarse, none above: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "k >= 2"), "hier_k 1 refused: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = -2;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "hier_k"), "hier_k -2 refused: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 2; c.hier_bottom = 1; c.hier_coarse = 1; c.hier_top = 2;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "1 + 1 + 2") &&
                 strstr(err, "3 layers"), "a split of 4 layers for 3 refused: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 2; c.hier_bottom = 2; c.hier_coarse = 2;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "2 + 2 + 0"),
             "a split past the stack refused: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 64; c.n_ctx = 32;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "n_ctx"),
             "hier_k beyond n_ctx refused: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 2; c.n_layer = 6; c.hier_k2 = 3;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.hier_coarse == 4 && c.hier_bottom2 == 1 &&
                 c.hier_coarse2 == 2, "a second level in 4 coarse layers: 1 before, 2 in it by default: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 2; c.hier_k2 = 1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "k2 >= 2"), "hier_k2 1 refused: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 2; c.n_layer = 4; c.hier_coarse = 2; c.hier_k2 = 2; c.hier_bottom2 = 1;
    c.hier_coarse2 = 2;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "1 + 2") &&
                 strstr(err, "2 coarse layers"), "a second level past the coarse layers refused: %s", err);
    memset(&c, 0, sizeof c); c.hier_k = 8; c.hier_k2 = 8; c.n_ctx = 32; c.n_layer = 4; c.hier_coarse = 2;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "8 x 8"),
             "hier_k x hier_k2 beyond n_ctx refused: %s", err);
    memset(&c, 0, sizeof c); c.hier_k2 = 2; c.hier_bottom2 = 1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.hier_k2 == 0 && c.hier_bottom2 == 0,
             "without hier_k there is no second level");
    memset(&c, 0, sizeof c); c.hier_bottom = 2; c.hier_top = 1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK && c.hier_bottom == 0 && c.hier_top == 0,
             "without hier_k the split fields are dropped");
    {
        char text[2048];
        lmu_config back;
        memset(&c, 0, sizeof c);
        LT_CHECK(lmu_config_set_items(&c, "arch=transformer,n_layer=4,hier_k=3,hier_bottom=2,hier_coarse=1", err,
                                      sizeof err) == LMU_OK && lmu_config_resolve(&c, err, sizeof err) == LMU_OK,
                 "a multi-scale transformer from items: %s", err);
        lmu_config_format(&c, text, sizeof text);
        memset(&back, 0, sizeof back);
        LT_CHECK(lmu_config_parse(&back, text, strlen(text), err, sizeof err) == LMU_OK &&
                     lmu_config_resolve(&back, err, sizeof err) == LMU_OK && back.hier_k == 3 &&
                     back.hier_bottom == 2 && back.hier_coarse == 1 && back.hier_top == 1,
                 "the multi-scale split survives lmu_config_format and parse: %s", err);
    }
    memset(&c, 0, sizeof c); c.theta = -1;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "theta"), "negative theta refused: %s", err);
    memset(&c, 0, sizeof c); c.d_model = -5;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG, "negative d refused: %s", err);
    memset(&c, 0, sizeof c); c.q = 2048; c.q_prime = 8; c.n_ctx = 131072;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG && strstr(err, "q^2 n_ctx"),
             "a memory that takes minutes to build refused: %s", err);
    memset(&c, 0, sizeof c); c.q = 256; c.q_prime = 8; c.n_ctx = 65536;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_OK, "paper scale q 256, n_ctx 64k accepted");
    memset(&c, 0, sizeof c); c.arch = (lmu_arch)7;
    LT_CHECK(lmu_config_resolve(&c, err, sizeof err) == LMU_ERR_ARG, "unknown arch refused: %s", err);
    lmu_config_preset(&c, "lmu-1m");
    LT_CHECK(lmu_config_flops_per_token(&c, 1024) > 2.0 * 204 * 50257, "flops include the output layer");
    return lt_end();
}
