/* bench_train.c - training tokens/s, peak RSS and model FLOPs utilisation
   of one preset; or per-step time against sequence length (--scaling).

   make build/bench_train && ./build/bench_train lmu-1m --threads 2

   bench_train PRESET [--batch 8] [--seq 1024] [--steps 3] [--warmup 1]
                      [--threads K] [--peak GFLOPS_PER_CORE] [--max-seconds S]
                      [--vocab V] [--precision fp32|bf16] [--json]
       warm-up + timed steps of forward, backward and Adam on random tokens
       (V = 50257), n_ctx = seq. Prints the best step and the median, the
       phase split (forward / backward / optimizer) of the best step, peak
       RSS (getrusage ru_maxrss), training FLOPs per token (3x
       lmu_config_flops_per_token) and MFU against the FMA peak: --peak, or
       measured here with bench_fma's kernel when not given. --vocab
       replaces the preset's V = 50257: a small V shows what the step costs
       without the output layer (the difference is the output layer).
       --precision bf16 (lmu_model_set_precision) alternates fp32 and bf16
       steps on the same model and tokens, and reports bf16 with
       tokens_per_s_fp32 (best fp32 step) and bf16_speedup beside it.
       --set K=V,... changes config fields of the preset (lmu_config_set_items),
       before n_ctx and --vocab: --set window=128.
   bench_train PRESET --scaling [--nmin 256] [--nmax 16384] [--csv FILE]
                      [--steps 2] [--step-budget S] [--stop-after S]
       training steps at batch 1 for n = nmin, 2 nmin, ..., nmax, a fresh
       model with n_ctx = n each time: one warm-up step, then --steps timed
       (only one where the warm-up took over --step-budget seconds, default
       20); the best is kept. CSV columns: preset, n, seconds_per_step,
       tokens_per_s, cpu_seconds_per_step. --stop-after S: no larger n once
       a step took over S seconds (the transformer's n^2 gets expensive).
   bench_train PRESET --info
       prints the resolved config and "tf_spec: L,d,n_head" (what
       tools/bench_torch.py --tf wants for a transformer preset).

   Timings are wall clock (CLOCK_MONOTONIC). Also printed: CPU seconds per
   step of the whole process (all threads, user + sys), because on a shared
   machine other processes stretch the wall clock but not our CPU time;
   "MFU (cpu)" divides by that instead. Run with no arguments (make bench)
   it does a short lmu-55k run. Not a test: exits 0 unless the model fails. */
#define _POSIX_C_SOURCE 200809L
#define LMU_IMPLEMENTATION
#include "lmu.h"

#include "bench_model_util.h"

typedef struct opts {
    const char *preset, *csv, *precision, *set;
    int batch, seq, steps, warmup, threads, json, scaling, info, nmin, nmax, vocab;
    double peak, max_seconds, step_budget, stop_after;
} opts;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void random_tokens(int *tok, size_t n, int V, uint64_t *s)
{
    size_t i;
    for (i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = (int)((*s >> 33) % (uint64_t)V);
    }
}

typedef struct step_times {
    double wall, fwd, bwd, opt, cpu;
} step_times;

/* One training step; returns 0 on success. */
static int train_step(lmu_model *m, const int *x, const int *y, int B, int T, step_times *st,
                      float *loss)
{
    double t0 = bench_now(), c0 = bench_process_cpu_now(), t1, t2, t3;
    /* lmu_model_forward_backward in two halves, to time each; the forward
       half includes the output layer's gradients (computed eagerly) */
    lmu_result r = lmu__model_forward(m, x, y, B, T, loss, 1);
    t1 = bench_now();
    if (r != LMU_OK) {
        fprintf(stderr, "bench_train: forward: %s (%s)\n", lmu_strerror(r), lmu_model_error(m));
        return 1;
    }
    if ((r = lmu_model_backward(m)) != LMU_OK) {
        fprintf(stderr, "bench_train: backward: %s (%s)\n", lmu_strerror(r), lmu_model_error(m));
        return 1;
    }
    t2 = bench_now();
    if ((r = lmu_model_step(m, 1e-4f, 1.0f, NULL)) != LMU_OK) {
        fprintf(stderr, "bench_train: step: %s (%s)\n", lmu_strerror(r), lmu_model_error(m));
        return 1;
    }
    t3 = bench_now();
    st->wall = t3 - t0, st->fwd = t1 - t0, st->bwd = t2 - t1, st->opt = t3 - t2;
    st->cpu = bench_process_cpu_now() - c0;
    return 0;
}

static lmu_model *make_model(const char *preset, const char *set, int n_ctx, int vocab,
                             lmu_config *c)
{
    lmu_model *m = NULL;
    char err[256];
    lmu_result r;
    if (lmu_config_preset(c, preset) != LMU_OK) {
        int i;
        fprintf(stderr, "bench_train: unknown preset '%s'; presets:", preset);
        for (i = 0; i < lmu_config_preset_count(); i++) fprintf(stderr, " %s", lmu_config_preset_name(i));
        fprintf(stderr, "\n");
        return NULL;
    }
    if (set && lmu_config_set_items(c, set, err, sizeof err) != LMU_OK) {
        fprintf(stderr, "bench_train: --set: %s\n", err);
        return NULL;
    }
    c->n_ctx = n_ctx;
    if (vocab > 0) c->vocab_size = vocab;
    if ((r = lmu_model_create(&m, c, 1234, err, sizeof err)) != LMU_OK) {
        fprintf(stderr, "bench_train: create %s (n_ctx %d): %s (%s)\n", preset, n_ctx, lmu_strerror(r),
                err);
        return NULL;
    }
    *c = *lmu_model_config(m);
    return m;
}

static void describe(const lmu_config *c, char *buf, size_t cap)
{
    if (c->arch == LMU_ARCH_TRANSFORMER)
        snprintf(buf, cap, "transformer L=%d d=%d n_head=%d d_ff=%d", c->n_layer, c->d_model, c->n_head,
                 c->d_ff);
    else if (c->mixer == LMU_MIXER_ATTN)
        snprintf(buf, cap, "lmu d=%d q=%d q'=%d L=%d theta=%g mixer=attn d_ff=%d n_head=%d", c->d_model,
                 c->q, c->q_prime, c->n_layer, c->theta, c->d_ff, c->n_head);
    else
        snprintf(buf, cap, "lmu d=%d q=%d q'=%d L=%d theta=%g mixer=ffn d_ff=%d d_pre=%d", c->d_model,
                 c->q, c->q_prime, c->n_layer, c->theta, c->d_ff, c->d_pre);
}

static int run_info(const opts *o)
{
    lmu_config c;
    char desc[200];
    if (lmu_config_preset(&c, o->preset) != LMU_OK) {
        fprintf(stderr, "bench_train: unknown preset '%s'\n", o->preset);
        return 2;
    }
    c.n_ctx = o->seq;
    describe(&c, desc, sizeof desc);
    printf("preset: %s\nmodel: %s\nN: %zu\nN_total: %zu\n", o->preset, desc, lmu_config_param_count(&c),
           lmu_config_param_count_total(&c));
    printf("flops_per_token_fwd: %.6g\n", lmu_config_flops_per_token(&c, o->seq));
    printf("tf_spec: %d,%d,%d\n", c.n_layer, c.d_model, c.n_head);
    return 0;
}

static int run_train(const opts *o)
{
    lmu_config c;
    lmu_model *m;
    int *x, *y, s, ntimed = 0, B = o->batch, T = o->seq;
    size_t n = (size_t)B * (size_t)T;
    uint64_t rs = 42;
    step_times st, best = {0, 0, 0, 0, 0};
    double walls[1024], cpus[1024], t_start, peak = o->peak, fl_tok, tok_s, med, cpu_med, rss_model;
    double tok_s_fp32 = 0, best32 = 0;
    int pass, bf16 = !strcmp(o->precision, "bf16");
    float loss = 0;
    char desc[200];
    bench_set_threads(o->threads);
    if (!(m = make_model(o->preset, o->set, T, o->vocab, &c))) return 1;
    rss_model = bench_peak_rss_mb();
    x = (int *)malloc((n + 1) * sizeof(int));
    y = (int *)malloc((n + 1) * sizeof(int));
    if (!x || !y) return 1;
    random_tokens(x, n + 1, c.vocab_size, &rs);
    memcpy(y, x + 1, n * sizeof(int));
    /* bf16: each timed bf16 step follows an fp32 one on the same model, so
       the two see the same machine (a shared one drifts); fp32 only counts
       for tokens_per_s_fp32 */
    for (s = 0; s < o->warmup; s++)
        for (pass = bf16 ? 0 : 1; pass < 2; pass++) {
            lmu_model_set_precision(m, pass == 1 && bf16 ? LMU_PRECISION_BF16 : LMU_PRECISION_FP32);
            if (train_step(m, x, y, B, T, &st, &loss)) return 1;
        }
    t_start = bench_now();
    for (s = 0; s < o->steps && s < 1024; s++) {
        for (pass = bf16 ? 0 : 1; pass < 2; pass++) {
            lmu_model_set_precision(m, pass == 1 && bf16 ? LMU_PRECISION_BF16 : LMU_PRECISION_FP32);
            if (train_step(m, x, y, B, T, &st, &loss)) return 1;
            if (pass == 0) {
                if (s == 0 || st.wall < best32) best32 = st.wall;
                continue;
            }
            walls[ntimed] = st.wall, cpus[ntimed] = st.cpu, ntimed++;
            if (ntimed == 1 || st.wall < best.wall) best = st;
        }
        if (bench_now() - t_start > o->max_seconds) break;
    }
    if (bf16) tok_s_fp32 = (double)n / best32;
    qsort(walls, (size_t)ntimed, sizeof(double), cmp_double);
    qsort(cpus, (size_t)ntimed, sizeof(double), cmp_double);
    med = walls[ntimed / 2], cpu_med = cpus[ntimed / 2];
    if (peak <= 0) peak = bench_fma_gflops(1, 0.2, 3).core_gflops;
    fl_tok = 3.0 * lmu_config_flops_per_token(&c, T);
    tok_s = (double)n / best.wall;
    describe(&c, desc, sizeof desc);
    printf("preset: %s\nmodel: %s\nN: %zu\nbatch: %d\nseq: %d\nvocab: %d\nthreads: %d\n", o->preset, desc,
           lmu_model_param_count(m), B, T, c.vocab_size, bench_threads());
    printf("precision: %s\n", lmu_precision_name(lmu_model_precision(m)));
    printf("steps_timed: %d\nwarmup: %d\nloss_last: %.4f\n", ntimed, o->warmup, (double)loss);
    printf("s_per_step_best: %.4f\ns_per_step_median: %.4f\n", best.wall, med);
    printf("tokens_per_s: %.1f\ntokens_per_s_median: %.1f\n", tok_s, (double)n / med);
    if (bf16)
        printf("tokens_per_s_fp32: %.1f\nbf16_speedup: %.3f\nbf16_kernel: emulated (fp32 FMA on "
               "bf16-rounded operands; no AMX kernel in this build)\n", tok_s_fp32, tok_s / tok_s_fp32);
    printf("cpu_s_per_step_best: %.4f\ntokens_per_cpu_s: %.1f\n", cpus[0], (double)n / cpus[0]);
    printf("best_step_forward_s: %.4f\nbest_step_backward_s: %.4f\nbest_step_adam_s: %.4f\n", best.fwd,
           best.bwd, best.opt);
    printf("train_flops_per_token: %.6g\nachieved_gflops: %.2f\n", fl_tok, fl_tok * tok_s * 1e-9);
    printf("peak_gflops_per_core: %.1f\n", peak);
    printf("mfu: %.4f\nmfu_cpu: %.4f\n", fl_tok * tok_s * 1e-9 / (peak * bench_threads()),
           fl_tok * (double)n / cpus[0] * 1e-9 / peak);
    printf("peak_rss_mb: %.1f\nrss_after_create_mb: %.1f\nloadavg_1min: %.2f\n", bench_peak_rss_mb(),
           rss_model, bench_loadavg());
    printf("step_mb: %.1f\nstep_used_mb: %.1f\n", (double)lmu_model_step_bytes(m) / 1e6,
           (double)lmu_model_step_bytes_used(m) / 1e6);
    if (o->json)
        printf("{\"preset\": \"%s\", \"threads\": %d, \"batch\": %d, \"seq\": %d, \"steps_timed\": %d, "
               "\"s_per_step_best\": %.5f, \"s_per_step_median\": %.5f, \"tokens_per_s\": %.2f, "
               "\"tokens_per_cpu_s\": %.2f, \"forward_s\": %.5f, \"backward_s\": %.5f, \"adam_s\": %.5f, "
               "\"train_flops_per_token\": %.6g, \"peak_gflops_per_core\": %.2f, \"mfu\": %.5f, "
               "\"mfu_cpu\": %.5f, \"peak_rss_mb\": %.1f, \"loadavg_1min\": %.2f}\n",
               o->preset, bench_threads(), B, T, ntimed, best.wall, med, tok_s, (double)n / cpus[0],
               best.fwd, best.bwd, best.opt, fl_tok, peak,
               fl_tok * tok_s * 1e-9 / (peak * bench_threads()), fl_tok * (double)n / cpus[0] * 1e-9 / peak,
               bench_peak_rss_mb(), bench_loadavg());
    (void)cpu_med;
    free(x), free(y);
    lmu_model_free(m);
    return 0;
}

static int run_scaling(const opts *o)
{
    FILE *f = stdout;
    int n, s;
    uint64_t rs = 7;
    bench_set_threads(o->threads);
    if (o->csv && !(f = fopen(o->csv, "w"))) {
        fprintf(stderr, "bench_train: cannot write %s\n", o->csv);
        return 1;
    }
    fprintf(f, "preset,n,seconds_per_step,tokens_per_s,cpu_seconds_per_step,step_mb,used_mb\n");
    fflush(f);
    for (n = o->nmin; n <= o->nmax; n *= 2) {
        lmu_config c;
        lmu_model *m = make_model(o->preset, o->set, n, o->vocab, &c);
        int *x = (int *)malloc(((size_t)n + 1) * sizeof(int)), steps;
        step_times st;
        double best = 0, best_cpu = 0;
        float loss;
        if (!m || !x) return 1;
        random_tokens(x, (size_t)n + 1, c.vocab_size, &rs);
        /* Always one warm-up step: the first step of a fresh model faults
           in its memory, which on this project's VM costs more than the
           arithmetic. More timed steps only while they are cheap. */
        if (train_step(m, x, x + 1, 1, n, &st, &loss)) return 1;
        steps = st.wall > o->step_budget ? 1 : o->steps;
        for (s = 0; s < steps; s++) {
            if (train_step(m, x, x + 1, 1, n, &st, &loss)) return 1;
            if (best == 0 || st.wall < best) best = st.wall, best_cpu = st.cpu;
        }
        fprintf(f, "%s,%d,%.6f,%.1f,%.6f,%.1f,%.1f\n", o->preset, n, best, (double)n / best, best_cpu,
                (double)lmu_model_step_bytes(m) / 1e6, (double)lmu_model_step_bytes_used(m) / 1e6);
        fflush(f);
        if (f != stdout) {
            printf("  %s n=%6d  %9.4f s/step  %9.1f tokens/s  %8.1f MB step memory  (%d timed, loadavg %.1f)\n",
                   o->preset, n, best, (double)n / best, (double)lmu_model_step_bytes(m) / 1e6, steps,
                   bench_loadavg());
            fflush(stdout);
        }
        free(x);
        lmu_model_free(m);
        if (best > o->stop_after && n < o->nmax) {
            printf("  %s: a step took %.1f s > --stop-after %.0f s: larger n skipped\n", o->preset, best,
                   o->stop_after);
            break;
        }
    }
    if (f != stdout) fclose(f);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_train PRESET [--batch 8] [--seq 1024] [--steps 3] [--warmup 1] [--threads K]\n"
            "                          [--peak GFLOPS_PER_CORE] [--max-seconds 60] [--vocab V]\n"
            "                          [--precision fp32|bf16] [--set K=V,...] [--json]\n"
            "       bench_train PRESET --scaling [--nmin 256] [--nmax 16384] [--csv FILE] [--steps 2]\n"
            "                          [--step-budget 20] [--stop-after S] [--threads K] [--set K=V,...]\n"
            "       bench_train PRESET --info [--seq N]\n");
}

int main(int argc, char **argv)
{
    opts o;
    int i, explicit_steps = 0;
    memset(&o, 0, sizeof o);
    o.preset = NULL, o.batch = 8, o.seq = 1024, o.steps = 3, o.warmup = 1, o.precision = "fp32";
    o.threads = bench_threads(), o.nmin = 256, o.nmax = 16384, o.max_seconds = 60, o.step_budget = 20, o.stop_after = 1e30;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (a[0] != '-' && !o.preset) o.preset = a;
        else if (!strcmp(a, "--batch") && more) o.batch = atoi(argv[++i]);
        else if (!strcmp(a, "--seq") && more) o.seq = atoi(argv[++i]);
        else if (!strcmp(a, "--vocab") && more) o.vocab = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && more) o.steps = atoi(argv[++i]), explicit_steps = 1;
        else if (!strcmp(a, "--warmup") && more) o.warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && more) o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--peak") && more) o.peak = atof(argv[++i]);
        else if (!strcmp(a, "--max-seconds") && more) o.max_seconds = atof(argv[++i]);
        else if (!strcmp(a, "--step-budget") && more) o.step_budget = atof(argv[++i]);
        else if (!strcmp(a, "--stop-after") && more) o.stop_after = atof(argv[++i]);
        else if (!strcmp(a, "--nmin") && more) o.nmin = atoi(argv[++i]);
        else if (!strcmp(a, "--nmax") && more) o.nmax = atoi(argv[++i]);
        else if (!strcmp(a, "--csv") && more) o.csv = argv[++i];
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--scaling")) o.scaling = 1;
        else if (!strcmp(a, "--info")) o.info = 1;
        else if (!strcmp(a, "--precision") && more) o.precision = argv[++i];
        else if (!strcmp(a, "--set") && more) o.set = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (!o.preset) {
        /* make bench runs every bench binary bare: a short, cheap run */
        o.preset = "lmu-55k", o.batch = 2, o.seq = 256;
        if (!explicit_steps) o.steps = 2;
        printf("(no preset given: a short lmu-55k run at batch 2 x 256; see the usage in the source)\n");
    }
    if (o.batch < 1 || o.seq < 1 || o.steps < 1 || o.warmup < 0 || o.threads < 1 || o.nmin < 1 ||
        o.nmax < o.nmin) {
        usage();
        return 2;
    }
    if (strcmp(o.precision, "fp32") && strcmp(o.precision, "bf16")) {
        fprintf(stderr, "bench_train: --precision %s: want fp32 or bf16\n", o.precision);
        return 2;
    }
    if (o.info) return run_info(&o);
    if (o.scaling) return run_scaling(&o);
    return run_train(&o);
}
