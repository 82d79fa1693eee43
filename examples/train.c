/* train.c - train an LMU (or transformer) language model on a token file.

   build: cc -O3 -march=native -fopenmp -I. examples/train.c -o build/train $(pkg-config --cflags --libs stb) -lm
   MPI:   mpicc -O3 -march=native -fopenmp -DTRAIN_MPI -I. examples/train.c -o build/train_mpi $(pkg-config --cflags --libs stb) -lm
          mpirun -np 4 build/train_mpi --data data/brown --batch 8 ...   (same options and files)

   usage: train --data PREFIX [options]          (PREFIX.train.tok, PREFIX.val.tok
                                                  from examples/prepare.c)
   Model:    --preset NAME (default lmu-55k) | --config FILE, --ctx N
   Batches:  --batch B (8) --seq T (128) --steps N | --tokens N
   Optim:    --lr 1e-3 --warmup N --schedule cosine|linear|constant --clip 1
   Run:      --seed S --threads N --out DIR (out/run) --resume CKPT
             --carry (block-recurrent models: carry the state from step
             to step over consecutive segments, truncated backprop)
             --precision fp32|bf16 (bf16: mixed-precision products)
             --shards S --reduce ordered|allreduce (processes: below)
             --eval-every N --eval-batches K --save-every N --on-nan skip|stop
   train --help lists every option. Everything is written under --out:
   model.safetensors (checkpoints, atomic), log.csv (every step) and
   run.txt (the settings: `train --config out/run/run.txt` repeats the run,
   and --resume reads it from beside the checkpoint).

   While it runs: a progress bar (tokens/s, ETA, loss, lr), a validation
   loss every --eval-every steps on a fixed subset of the validation split.
   Ctrl-C finishes the step, saves and exits 0; --resume then continues
   exactly (bit for bit at the same thread count): batches are a function
   of (seed, step) and the step is saved in the checkpoint.

   Processes (the MPI build): the batch is cut into --shards S equal shards
   (default: one per process), each process computes S/P of them, and the
   step's gradient is their sum in shard order times 1/S. With --reduce
   ordered (default) that order is fixed, so P processes write the same
   checkpoint bits as `train --shards S` in one (same threads per process);
   allreduce is MPI_Allreduce's order (faster across machines, equal to
   rounding). Rank 0 prints, logs and saves; any other rank only computes.
   Example: train --data data/brown --preset lmu-55k --steps 300 --out out/demo */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno, mkdir */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "example_util.h"
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#ifdef TRAIN_MPI
#include <mpi.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- settings: one table for the command line, --config files and run.txt */

typedef struct opts {
    char data[1024], train[1024], val[1024], out[1024], preset[64], schedule[16], on_nan[8],
        reduce[16], precision[8];
    long batch, seq, ctx, steps, tokens, warmup, eval_every, eval_batches, save_every,
        print_every, threads, stop_at, shards;
    double lr, clip;
    uint64_t seed;
    const char *config, *resume; /* the command line's only */
    int list_presets, carry;
} opts;

#define CSV_COLUMNS "step,tokens,loss,lr,grad_norm,val_loss,tokens_per_s,elapsed_s"

#define F(f) EX_FIELD(opts, f)
static const ex_opt options[] = {
    {"data", 0, EX_STR, F(data), 0, 0, 0, "PREFIX", "token files PREFIX.train.tok, PREFIX.val.tok"},
    {"train", 0, EX_STR, F(train), 0, 0, 0, "FILE", "training tokens (instead of --data)"},
    {"val", 0, EX_STR, F(val), 0, 0, 0, "FILE", "validation tokens (\"none\": no validation)"},
    {"out", 0, EX_STR, F(out), 0, 0, 0, "DIR", "output folder (default out/run)"},
    {"preset", 0, EX_STR, F(preset), EX_NOFILE, 0, 0, "NAME", "model preset (default lmu-55k; --list-presets)"},
    {"batch", 0, EX_LONG, F(batch), 0, 1, 1 << 16, "B", "sequences per step (default 8)"},
    {"seq", 0, EX_LONG, F(seq), 0, 1, 1 << 20, "T", "tokens per sequence (default 128)"},
    {"ctx", 0, EX_LONG, F(ctx), EX_NOSAVE, 1, 1 << 20, "N", "model n_ctx (default: --seq)"},
    {"steps", 0, EX_LONG, F(steps), 0, 1, 1e12, "N", "optimizer steps (default 1000)"},
    {"tokens", 0, EX_LONG, F(tokens), EX_NOSAVE, 1, 1e15, "N", "train on N tokens (sets --steps)"},
    {"lr", 0, EX_DBL, F(lr), 0, 0, 10, "LR", "peak learning rate (default 1e-3)"},
    {"warmup", 0, EX_LONG, F(warmup), 0, 0, 1e12, "N", "linear warmup steps (default steps/10, <= 200)"},
    {"schedule", 0, EX_STR, F(schedule), 0, 0, 0, "cosine|linear|constant", "the learning rate after warmup (default cosine)"},
    {"clip", 0, EX_DBL, F(clip), 0, 0, 1e9, "C", "clip the gradient norm at C (0: off; default 1)"},
    {"seed", 0, EX_U64, F(seed), 0, 0, 9.2e18, "S", "initialisation and batch seed (default 1234)"},
    {"threads", 0, EX_LONG, F(threads), 0, 1, 1024, "N", "OpenMP threads (default: all)"},
    {"precision", 0, EX_STR, F(precision), 0, 0, 0, "fp32|bf16", "bf16: the linear and output layers' products on bf16\n"
     "                           operands, fp32 sums (default fp32; checkpoints stay fp32)"},
    {"eval_every", 0, EX_LONG, F(eval_every), 0, 0, 1e12, "N", "validation loss every N steps (default 100; 0 off)"},
    {"eval_batches", 0, EX_LONG, F(eval_batches), 0, 1, 1e6, "K", "batches in the validation subset (default 4)"},
    {"save_every", 0, EX_LONG, F(save_every), 0, 0, 1e12, "N", "checkpoint every N steps (default 250; 0: end only)"},
    {"print_every", 0, EX_LONG, F(print_every), 0, 0, 1e12, "N", "log line every N steps when not a terminal"},
    {"on_nan", 0, EX_STR, F(on_nan), 0, 0, 0, "skip|stop", "NaN/Inf loss or gradient: skip the step (default) or stop"},
    {"shards", 0, EX_LONG, F(shards), 0, 0, 1 << 16, "S", "cut each batch into S shards (default 1, MPI: one per process)"},
    {"reduce", 0, EX_STR, F(reduce), 0, 0, 0, "ordered|allreduce", "how processes sum gradients (default ordered)"},
    {"stop_at", 0, EX_LONG, F(stop_at), EX_NOSAVE, 0, 1e12, "N", "save and stop after step N, as Ctrl-C would"},
    {"config", 0, EX_ARG, F(config), EX_NOFILE, 0, 0, "FILE", "key = value lines: any setting above, and model keys\n"
     "                           (lmu_config_parse), which start from the library's\n"
     "                           defaults or a `preset = NAME` line; 0 means default"},
    {"resume", 0, EX_ARG, F(resume), EX_NOFILE, 0, 0, "CKPT", "continue from a checkpoint (reads run.txt beside it)"},
    {"carry", 0, EX_FLAG, F(carry), 0, 0, 0, NULL, "block-recurrent state from step to step: each batch row reads\n"
     "                           consecutive segments (lmu_tokens_segments) and starts from\n"
     "                           the state its last one ended with (truncated backprop)"},
    {"list_presets", 0, EX_FLAG, F(list_presets), EX_NOFILE, 0, 0, NULL, "print the model presets"},
};
#define N_OPTIONS EX_COUNT(options)

static const ex_opts train_cli = {
    "train",
    "usage: train --data PREFIX [--preset NAME | --config FILE] [--batch B] [--seq T]\n"
    "             [--steps N | --tokens N] [--lr LR] [--out DIR] [--resume CKPT] ...\n"
    "       train --help   lists every option\n",
    options, N_OPTIONS,
    "\nOutputs in --out: model.safetensors, log.csv (" CSV_COLUMNS "), run.txt.\n"};

/* The settings and the model config they make. */
typedef struct settings {
    opts o;
    lmu_config c;           /* the preset, then a --config file's model keys */
    char model[64];         /* what c is, for the log: a preset, custom, resumed */
    int saw_n_ctx, saw_vocab, saw_model_key; /* in the --config file */
    char given[N_OPTIONS];  /* on the command line */
} settings;

static int given(const settings *s, const char *name)
{
    return s->given[ex_opt_find(&train_cli, name) - options];
}

/* A --config file's keys: the training settings here, the rest to the library. */
static int config_key(void *user, const char *key, const char *value, char *err, size_t cap)
{
    settings *s = (settings *)user;
    const ex_opt *o = ex_opt_find(&train_cli, key);
    if (!o || (o->flags & EX_NOFILE)) {
        if (!strcmp(key, "n_ctx")) s->saw_n_ctx = 1;
        if (!strcmp(key, "vocab_size")) s->saw_vocab = 1;
        s->saw_model_key = 1;
        return 0;
    }
    return ex_opt_set(o, &s->o, key, value, err, cap) == 0 ? 1 : -1;
}

static void read_config_file(settings *s, const char *path)
{
    char err[512];
    size_t n;
    char *text = ex_read_file(path, &n);
    lmu_config fc;
    if (!text) ex_die("cannot open %s: %s", path, strerror(errno));
    /* model keys start from the library's defaults (0: lmu_config_resolve
       fills them) or from the file's own preset line, never from --preset's
       default: a file means what it says */
    memset(&fc, 0, sizeof fc);
    if (lmu_config_parse_ex(&fc, text, n, config_key, s, err, sizeof err) != LMU_OK)
        ex_die("%s: %s", path, err);
    free(text);
    if (s->saw_model_key) s->c = fc, strcpy(s->model, "custom");
}

/* The defaults, then the --config file (or the run.txt beside a --resume
   checkpoint), then the command line (cli, s->given) on top. */
static void read_settings(settings *s, const opts *cli)
{
    static char run_txt[1200];
    opts *o = &s->o;
    const char *path;
    int i;
    o->batch = 8, o->seq = 128, o->steps = 1000, o->lr = 1e-3, o->clip = 1.0, o->seed = 1234;
    o->warmup = -1, o->eval_every = 100, o->eval_batches = 4, o->save_every = 250, o->print_every = -1;
    strcpy(o->schedule, "cosine");
    strcpy(o->on_nan, "skip");
    strcpy(o->reduce, "ordered");
    strcpy(o->precision, "fp32");
    strcpy(o->out, "out/run");
    lmu_config_preset(&s->c, "lmu-55k");
    strcpy(s->model, "lmu-55k");
    path = cli->config;
    if (!path && cli->resume) { /* the settings the checkpoint was made with */
        const char *slash = strrchr(cli->resume, '/');
        int dl = slash ? (int)(slash - cli->resume) : 0;
        if (dl > 1000) ex_die("path too long: %s", cli->resume);
        snprintf(run_txt, sizeof run_txt, "%.*s%srun.txt", dl, cli->resume, slash ? "/" : "");
        if (ex_file_exists(run_txt)) path = run_txt;
    }
    if (path) read_config_file(s, path);
    if (path == run_txt) ex_say("train: settings from %s\n", path); /* the CLI may override them */
    for (i = 0; i < N_OPTIONS; i++)
        if (s->given[i]) memcpy((char *)o + options[i].off, (const char *)cli + options[i].off, options[i].size);
    if (given(s, "preset")) {
        if (lmu_config_preset(&s->c, o->preset) != LMU_OK)
            ex_die("unknown preset '%s' (train --list-presets)", o->preset);
        strcpy(s->model, o->preset);
        if (path) ex_say("train: note: --preset replaces the model of %s\n", path);
    }
    if (given(s, "data")) { /* new data: not the file's splits */
        if (!given(s, "train")) o->train[0] = 0;
        if (!given(s, "val")) o->val[0] = 0;
    }
}

static void list_presets(void)
{
    int k;
    for (k = 0; k < lmu_config_preset_count(); k++) {
        lmu_config p;
        lmu_config_preset(&p, lmu_config_preset_name(k));
        printf("%-18s N %8lu  (d %d, %d layers)\n", lmu_config_preset_name(k),
               (unsigned long)lmu_config_param_count(&p), p.d_model, p.n_layer);
    }
}

/* What the settings leave open: steps from --tokens, warmup, print_every,
   the shards (one per process). The thread count comes after start-up. */
static void derive_settings(opts *o, int processes)
{
    long bt = o->batch * o->seq;
    if (o->tokens > 0) o->steps = (o->tokens + bt - 1) / bt;
    if (o->warmup < 0) o->warmup = o->steps / 10 < 200 ? o->steps / 10 : 200;
    if (o->print_every < 0) o->print_every = o->steps / 20 > 0 ? o->steps / 20 : 1;
    if (o->shards < 1) o->shards = processes;
}

/* run.txt's text: the model's keys, then every setting of the run. */
static void run_text(char *out, size_t cap, const opts *o, const lmu_config *c)
{
    char buf[1100];
    size_t n;
    int i;
    lmu_config_format(c, out, cap);
    for (i = 0; i < N_OPTIONS; i++) {
        const ex_opt *s = &options[i];
        if ((s->flags & (EX_NOFILE | EX_NOSAVE)) ||
            (o->data[0] && (!strcmp(s->name, "train") || !strcmp(s->name, "val"))))
            continue; /* derived from --data, or not part of the run */
        n = strlen(out);
        if (ex_opt_format(s, o, buf, sizeof buf)) snprintf(out + n, cap - n, "%s = %s\n", s->name, buf);
    }
}

static void write_run_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) ex_die("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "# train settings; repeat the run with: train --config %s\n%s", path, text);
    if (fclose(f) != 0) ex_die("cannot write %s: %s", path, strerror(errno));
}

/* ---- processes: one, or P under MPI (built with -DTRAIN_MPI) ------------ */

/* The step's batch of B windows (lmu_tokens_batch: a function of seed and
   step) is cut into S shards of B/S, and process r of P computes shards
   r S/P .. (r+1) S/P - 1, one forward and backward each. The gradient is
   g_0 + g_1 + ... + g_{S-1} summed left to right, then times 1/S. --reduce
   ordered keeps that order for every P: each process keeps its shards'
   gradients apart, the running sum goes from rank to rank in chunks (so
   the hops overlap), and the last rank's result is broadcast. --reduce
   allreduce sums each process's shards and calls MPI_Allreduce, whose
   order is the library's. Losses travel as one array per step in which
   each entry is set by one process and zero elsewhere, so their sum is
   exact in any order and every process logs the same loss. */

#define GRAD_CHUNK (1 << 18) /* floats per hop of the ordered sum */

typedef struct team {
    int rank, size, per;  /* per: shards on this process */
    int shards, ordered;  /* S; --reduce ordered */
    int b;                /* windows per shard, B / S */
    float **g;            /* (per) this process's shards' gradients */
    double *loss;         /* (S) shard losses of a step; then the validation's */
    double *vloss;        /* (K S) validation sub-batch losses */
    size_t n_grad;
    double comm_s;        /* time in the gradient sum, this process */
    float *carry;         /* --carry: (B, carry floats) every row's state; this
                             process keeps its own rows' */
    size_t cf;            /* carry floats a row */
    char *fresh;          /* (S) shard starts from state0 next step */
    int started;          /* past start-up's agreement */
    char msg[1024];       /* a start-up failure's message, for rank 0 */
} team;

static team *the_team; /* for the exit hooks and the signal handler only */

#ifdef TRAIN_MPI
/* At start-up every process reaches one agreement, failed or not (a
   failure arrives here through ex_die): the lowest failing rank's message
   goes to rank 0, which prints it, and all exit. */
static void team_agree(team *w, int failed, int status)
{
    int me = failed ? w->rank : w->size, first;
    MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == w->size) return;
    if (first != 0 && w->rank == first) MPI_Send(w->msg, (int)sizeof w->msg, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
    if (first != 0 && w->rank == 0) {
        char m[sizeof w->msg];
        MPI_Recv(m, (int)sizeof m, MPI_CHAR, first, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        m[sizeof m - 1] = 0;
        fprintf(stderr, "%s: rank %d of %d: %s\n", ex_prog, first, w->size, m);
    }
    exit(failed ? status : 1); /* team_atexit finalizes */
}

static void team_exit_hook(const char *msg, int status)
{
    team *w = the_team;
    if (!w->started) {
        snprintf(w->msg, sizeof w->msg, "%s", msg);
        team_agree(w, 1, status);
    }
    /* During training a failure is this process's, or every process's
       at once (the same state gives the same verdict): the others wait a
       moment so that rank 0's copy of a shared one comes alone. */
    if (w->rank != 0) {
        sleep(2);
        fprintf(stderr, "%s: rank %d of %d: %s\n", ex_prog, w->rank, w->size, msg);
    }
    MPI_Abort(MPI_COMM_WORLD, status);
}

static void team_atexit(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}
#endif

/* MPI (when built with it); rank 0 alone writes to stdout. */
static void team_init(team *w, int *argc, char ***argv)
{
    memset(w, 0, sizeof *w);
    w->size = 1;
    the_team = w;
#ifdef TRAIN_MPI
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    atexit(team_atexit);
    ex_exit_hook = team_exit_hook;
    if (w->rank != 0) {
        ex_quiet_errors = 1;
        if (!freopen("/dev/null", "w", stdout)) ex_die("cannot silence stdout");
    }
#else
    (void)argc, (void)argv;
#endif
}

/* The threads a process gets when --threads is not given: the cores shared
   by the processes on its machine. */
static long team_default_threads(const team *w)
{
    long share = 0;
#ifdef TRAIN_MPI
    MPI_Comm local;
    int n = 1;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &n);
    MPI_Comm_free(&local);
    share = sysconf(_SC_NPROCESSORS_ONLN) / n;
    if (share < 1) share = 1;
#endif
    (void)w;
    return share;
}

/* The shards of this process, the buffers of a step (allocated once). */
static void team_plan(team *w, const opts *o, lmu_model *m)
{
    int j;
    w->shards = (int)o->shards, w->ordered = !strcmp(o->reduce, "ordered");
    if (o->batch % o->shards)
        ex_usage_error(&train_cli, "--batch %ld is not a multiple of --shards %ld", o->batch, o->shards);
    if (o->shards % w->size)
        ex_usage_error(&train_cli, "--shards %ld is not a multiple of the %d processes", o->shards, w->size);
    w->b = (int)(o->batch / o->shards), w->per = w->shards / w->size;
    lmu_model_grads(m, &w->n_grad);
    w->g = (float **)calloc((size_t)w->per, sizeof *w->g);
    w->loss = (double *)calloc((size_t)w->shards, sizeof *w->loss);
    w->vloss = (double *)calloc((size_t)w->shards * (size_t)o->eval_batches, sizeof *w->vloss);
    if (!w->g || !w->loss || !w->vloss) ex_die("out of memory");
    if (o->carry) {
        if (!(w->cf = lmu_model_carry_floats(m)))
            ex_usage_error(&train_cli, "--carry: the model has no block-recurrent state (mixer brt with "
                           "n_state >= 1)");
        if (o->seq % lmu_model_config(m)->window)
            ex_usage_error(&train_cli, "--carry: --seq %ld must be a multiple of the window %d", o->seq,
                           lmu_model_config(m)->window);
        w->carry = (float *)calloc((size_t)o->batch * w->cf, sizeof(float));
        w->fresh = (char *)malloc((size_t)w->shards);
        if (!w->carry || !w->fresh) ex_die("out of memory");
        memset(w->fresh, 1, (size_t)w->shards);
    }
    for (j = 0; j < w->per && w->shards > 1; j++)
        if (!(w->g[j] = (float *)malloc(w->n_grad * sizeof(float)))) ex_die("out of memory");
}

static void team_free(team *w)
{
    int j;
    for (j = 0; j < w->per && w->g; j++) free(w->g[j]);
    free(w->g);
    free(w->loss);
    free(w->vloss);
    free(w->carry);
    free(w->fresh);
}

/* Sums v[0..n) over the processes where each entry was set by one of
   them (zero elsewhere): exact, in any order. */
static void team_sum_disjoint(team *w, double *v, int n)
{
#ifdef TRAIN_MPI
    if (w->size > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)w, (void)v, (void)n;
#endif
}

/* Whether flag is set on any process. */
static int team_any(team *w, int flag)
{
#ifdef TRAIN_MPI
    int any = flag;
    if (w->size > 1) MPI_Allreduce(&flag, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any;
#else
    (void)w;
    return flag;
#endif
}

/* grad (the model's, n floats) = (sum of every shard's gradient in shard
   order) / S, on every process. */
static void team_sum_grads(team *w, float *grad)
{
    const float inv = 1.0f / (float)w->shards;
    const size_t n = w->n_grad;
    double t0 = ex_now();
    size_t i, a, e;
    int j, local = !w->ordered || w->size == 1; /* no order to keep across processes */
    for (a = 0; a < n; a = e) {
        int j0 = 0;
        e = n - a > GRAD_CHUNK ? a + GRAD_CHUNK : n;
        if (local || w->rank == 0) memcpy(grad + a, w->g[0] + a, (e - a) * sizeof *grad), j0 = 1;
#ifdef TRAIN_MPI
        else MPI_Recv(grad + a, (int)(e - a), MPI_FLOAT, w->rank - 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
#endif
        for (j = j0; j < w->per; j++)
            for (i = a; i < e; i++) grad[i] += w->g[j][i];
#ifdef TRAIN_MPI
        if (!local && w->rank < w->size - 1)
            MPI_Send(grad + a, (int)(e - a), MPI_FLOAT, w->rank + 1, 2, MPI_COMM_WORLD);
#endif
    }
#ifdef TRAIN_MPI
    for (a = 0; a < n && w->size > 1; a = e) {
        e = n - a > GRAD_CHUNK ? a + GRAD_CHUNK : n;
        if (w->ordered)
            MPI_Bcast(grad + a, (int)(e - a), MPI_FLOAT, w->size - 1, MPI_COMM_WORLD);
        else
            MPI_Allreduce(MPI_IN_PLACE, grad + a, (int)(e - a), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
#endif
    for (i = 0; i < n; i++) grad[i] *= inv;
    w->comm_s += ex_now() - t0;
}

/* One step's forward and backward over this process's shards, and the
   gradient summed over all of them (the model's, ready for
   lmu_model_step). *loss: the mean of the shards' losses, the same on
   every process. Returns LMU_OK, or LMU_ERR_NONFINITE (with *why) when
   any shard's loss is not finite: then no process sums or steps. */
static lmu_result team_step(team *w, lmu_model *m, const lmu_tokens *d, const opts *o, long step,
                            int *tok, int *tgt, float *loss, const char **why)
{
    double sum = 0;
    int j, s, T = (int)o->seq, bad = -1;
    *why = NULL;
    for (s = 0; s < w->shards; s++) w->loss[s] = 0;
    for (j = 0; j < w->per; j++) {
        float l = 0;
        lmu_result r;
        s = w->rank * w->per + j;
        if (w->carry) { /* the rows' next segments, from where they stopped */
            float *rows = w->carry + (size_t)s * (size_t)w->b * w->cf;
            if (lmu_tokens_segments(d, (uint64_t)step, (int)o->batch, T, s * w->b, w->b, tok, tgt) !=
                LMU_OK)
                ex_die("--carry: the training split is too short for %ld rows of %d tokens", o->batch, T);
            r = lmu_model_forward_backward_carry(m, tok, tgt, w->b, T, w->fresh[s] ? NULL : rows, rows,
                                                 &l);
            w->fresh[s] = r != LMU_OK; /* a state that went NaN starts over */
        } else {
            lmu_tokens_batch(d, o->seed, (uint64_t)step, (int)o->batch, T, s * w->b, w->b, tok, tgt);
            r = lmu_model_forward_backward(m, tok, tgt, w->b, T, &l);
        }
        if (r != LMU_OK && r != LMU_ERR_NONFINITE)
            ex_die("step %ld failed: %s (%s)", step, lmu_strerror(r), lmu_model_error(m));
        w->loss[s] = r == LMU_OK ? (double)l : (double)NAN;
        if (w->shards > 1) memcpy(w->g[j], lmu_model_grads(m, NULL), w->n_grad * sizeof(float));
        else if (r != LMU_OK) *why = lmu_model_error(m);
    }
    team_sum_disjoint(w, w->loss, w->shards);
    for (s = 0; s < w->shards; s++) {
        if (!(w->loss[s] - w->loss[s] == 0) && bad < 0) bad = s; /* NaN or Inf */
        sum += w->loss[s];
    }
    *loss = (float)(sum / w->shards);
    if (bad >= 0) {
        if (!*why) *why = "the loss is not finite";
        return LMU_ERR_NONFINITE;
    }
    if (w->shards > 1) team_sum_grads(w, lmu_model_grads(m, NULL));
    return LMU_OK;
}

/* Mean loss over K batches of windows spread evenly through the split (T
   shorter than the training windows when the split is short), computed
   as K S sub-batches of B/S windows shared out over the processes; -1
   when a forward fails. */
static double team_validate(team *w, lmu_model *m, const lmu_tokens *v, int K, int T, int *tok, int *tgt)
{
    const int b = w->b, nsub = K * w->shards;
    double sum = 0;
    uint64_t span, nw = (uint64_t)nsub * (uint64_t)b;
    int u, i, t, failed = 0;
    if (v->count < (uint64_t)T + 1) T = (int)v->count - 1;
    span = v->count - (uint64_t)T;
    for (u = 0; u < nsub; u++) {
        float loss;
        w->vloss[u] = 0;
        if (u % w->size != w->rank) continue;
        for (i = 0; i < b; i++) {
            uint64_t win = (uint64_t)u * (uint64_t)b + (uint64_t)i;
            uint64_t s = nw > 1 ? (uint64_t)((double)(span - 1) * (double)win / (double)(nw - 1)) : 0;
            for (t = 0; t < T; t++) {
                tok[i * T + t] = v->ids[s + (uint64_t)t];
                tgt[i * T + t] = v->ids[s + (uint64_t)t + 1];
            }
        }
        if (lmu_model_forward(m, tok, tgt, b, T, &loss) != LMU_OK) failed = 1;
        w->vloss[u] = failed ? (double)NAN : (double)loss;
    }
    team_sum_disjoint(w, w->vloss, nsub);
    for (u = 0; u < nsub; u++) sum += w->vloss[u];
    return sum == sum ? sum / nsub : -1;
}

/* Start-up's check that every process runs the same thing: the settings,
   the data, the model's parameters (which a different build of the library
   would initialise differently). A mismatch is a start-up failure. */
static void team_check_same(team *w, const char *settings_text, const lmu_tokens *train,
                            const lmu_tokens *val, lmu_model *m)
{
#ifdef TRAIN_MPI
    static const char *what[4] = {"settings (command line, config file)", "training tokens",
                                  "validation tokens", "initial parameters (a different build?)"};
    uint64_t mine[4], root[4], h = 0x9E3779B97F4A7C15ULL;
    size_t i, n;
    const unsigned char *p;
    int k, bad = -1;
    for (p = (const unsigned char *)settings_text; *p; p++) h = (h ^ *p) * 0x100000001B3ULL;
    mine[0] = h, mine[1] = lmu_tokens_digest(train), mine[2] = lmu_tokens_digest(val);
    p = (const unsigned char *)lmu_model_params(m, &n);
    for (h = 0x9E3779B97F4A7C15ULL, i = 0; i < n * sizeof(float); i++) h = (h ^ p[i]) * 0x100000001B3ULL;
    mine[3] = h;
    memcpy(root, mine, sizeof root);
    MPI_Bcast(root, 4, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    for (k = 0; k < 4 && bad < 0; k++)
        if (mine[k] != root[k]) bad = k;
    if (bad >= 0)
        snprintf(w->msg, sizeof w->msg, "its %s differ from rank 0's (digest %016llx, rank 0 %016llx)",
                 what[bad], (unsigned long long)mine[bad], (unsigned long long)root[bad]);
    team_agree(w, bad >= 0, 1);
#else
    (void)w, (void)settings_text, (void)train, (void)val, (void)m;
#endif
}

/* ---- data and model ------------------------------------------------------ */

/* The training tokens and, unless there are none, the validation tokens.
   Returns whether there is validation. */
static int load_data(opts *o, lmu_tokens *train, lmu_tokens *val)
{
    char err[512];
    int have_val;
    uint64_t T = (uint64_t)o->seq;
    if (o->data[0]) {
        if (!o->train[0]) snprintf(o->train, sizeof o->train, "%.1000s.train.tok", o->data);
        if (!o->val[0]) {
            snprintf(o->val, sizeof o->val, "%.1000s.val.tok", o->data);
            if (!ex_file_exists(o->val)) strcpy(o->val, "none");
        }
    }
    if (!o->train[0]) ex_usage_error(&train_cli, "no data: give --data PREFIX or --train FILE");
    if (lmu_tokens_load_file(train, o->train, err, sizeof err) != LMU_OK) ex_die("%s", err);
    have_val = o->val[0] && strcmp(o->val, "none") != 0;
    if (have_val) {
        if (lmu_tokens_load_file(val, o->val, err, sizeof err) != LMU_OK) ex_die("%s", err);
        if (val->vocab_size != train->vocab_size)
            ex_die("%s has vocab_size %u but %s has %u", o->val, val->vocab_size, o->train, train->vocab_size);
    }
    if (T + 1 > train->count)
        ex_die("%s has %llu tokens, too few for --seq %ld (needs %ld)", o->train,
               (unsigned long long)train->count, o->seq, o->seq + 1);
    if (have_val && val->count < 2) {
        ex_say("train: %s has under 2 tokens: no validation\n", o->val);
        have_val = 0;
    }
    if (have_val && val->count < T + 1)
        ex_say("train: %s has %llu tokens: validating on windows of %llu\n", o->val,
               (unsigned long long)val->count, (unsigned long long)val->count - 1);
    return have_val;
}

/* The --resume checkpoint (*start: its step), or a new model. */
static lmu_model *open_model(settings *s, uint32_t vocab, long *start)
{
    opts *o = &s->o;
    lmu_config *c = &s->c;
    lmu_model *m = NULL;
    char err[512] = "";
    lmu_result r;
    *start = 0;
    if (o->resume) {
        r = lmu_model_load(&m, o->resume, err, sizeof err);
        if (r != LMU_OK) ex_die("cannot resume from %s", err[0] ? err : lmu_strerror(r));
        *c = *lmu_model_config(m);
        if ((uint32_t)c->vocab_size != vocab)
            ex_die("checkpoint %s has vocab_size %d but %s has %u", o->resume, c->vocab_size, o->train, vocab);
        if (o->seq > c->n_ctx) ex_die("--seq %ld exceeds the checkpoint's n_ctx %d", o->seq, c->n_ctx);
        *start = (long)lmu_model_data_pos(m);
        strcpy(s->model, "resumed");
    } else {
        if (s->saw_vocab && (uint32_t)c->vocab_size != vocab)
            ex_die("the config says vocab_size %d but %s has %u", c->vocab_size, o->train, vocab);
        c->vocab_size = (int)vocab;
        if (given(s, "ctx")) c->n_ctx = (int)o->ctx;
        else if (!s->saw_n_ctx) c->n_ctx = (int)o->seq;
        if (lmu_config_resolve(c, err, sizeof err) != LMU_OK) ex_die("%s", err);
        if (o->seq > c->n_ctx) ex_die("--seq %ld exceeds the model's n_ctx %d", o->seq, c->n_ctx);
        r = lmu_model_create(&m, c, o->seed, err, sizeof err);
        if (r != LMU_OK) ex_die("cannot create the model: %s", err[0] ? err : lmu_strerror(r));
    }
    o->ctx = c->n_ctx;
    return m;
}

static void print_plan(const settings *s, const team *w, lmu_model *m, const lmu_tokens *train,
                       int have_val, long start)
{
    const opts *o = &s->o;
    const lmu_config *c = &s->c;
    double tokens = (double)o->steps * (double)o->batch * (double)o->seq;
    char n1[32], n2[32], n3[32], n4[32];
    ex_fmt_count(n1, sizeof n1, (double)lmu_model_param_count(m));
    ex_fmt_count(n2, sizeof n2, (double)lmu_config_param_count_total(c));
    ex_fmt_count(n3, sizeof n3, (double)train->count);
    ex_fmt_count(n4, sizeof n4, tokens);
    ex_say("train: %s: %s d=%d layers=%d, N=%s (%s with embeddings), vocab %d, n_ctx %d\n", s->model,
           lmu_arch_name(c->arch), c->d_model, c->n_layer, n1, n2, c->vocab_size, c->n_ctx);
    ex_say("train: %s tokens in %s%s; batch %ld x %ld; %ld steps = %s tokens (%.2f epochs); "
           "lr %g %s, warmup %ld; %ld thread%s\n",
           n3, o->train, have_val ? " (+ validation)" : "", o->batch, o->seq, o->steps, n4,
           tokens / (double)train->count, o->lr, o->schedule, o->warmup, o->threads,
           o->threads == 1 ? "" : "s");
    if (o->shards > 1 || w->size > 1)
        ex_say("train: %d process%s, each batch in %ld shards of %d (%d per process), %s sum\n", w->size,
               w->size == 1 ? "" : "es", o->shards, w->b, w->per, w->ordered ? "ordered" : "allreduce");
    if (lmu_model_precision(m) == LMU_PRECISION_BF16)
        ex_say("train: precision bf16: linear and output layers multiply bf16-rounded operands, fp32 "
               "sums; no bf16 matrix unit is used (lmu.h has no AMX kernel yet): bf16's numbers at "
               "fp32's speed\n");
    if (o->carry)
        ex_say("train: --carry: %ld streams of consecutive %ld-token segments, %llu segments each; the "
               "state (%lu floats a row) carries from step to step\n", o->batch, o->seq,
               (unsigned long long)((train->count - 1) / (uint64_t)o->batch / (uint64_t)o->seq),
               (unsigned long)w->cf);
    if (start > 0) ex_say("train: resuming from %s at step %ld\n", o->resume, start);
    ex_say("train: writing %s/{model.safetensors,log.csv,run.txt}\n", o->out);
}

/* ---- batches ----------------------------------------------------------- */

static float lr_at(const opts *o, long step)
{
    if (!strcmp(o->schedule, "cosine")) return lmu_lr_schedule(step, o->warmup, o->steps, (float)o->lr);
    if (step < o->warmup) return (float)(o->lr * (double)(step + 1) / (double)o->warmup);
    if (!strcmp(o->schedule, "constant")) return (float)o->lr;
    if (o->steps <= o->warmup) return (float)o->lr;
    return (float)(o->lr * (double)(o->steps - step) / (double)(o->steps - o->warmup));
}

/* ---- the run's state, the log, the NaN policy --------------------------- */

typedef struct run {
    long start, n_nan, nan_run;  /* first step of this process; NaN/Inf steps: all, in a row */
    float loss, ema;             /* the last step's loss, and smoothed */
    int ema_n;
    double t0, elapsed0, train_time, last_val; /* elapsed0: earlier runs' time, from the log */
    char ckpt[1200], log_path[1200];
    FILE *log;
} run;

/* Opens the CSV log: fresh, or on resume the old one cut to the rows
   before `start` (a run that went past its last checkpoint left rows the
   resumed run writes again). *elapsed gets the last kept row's time. */
static FILE *open_log(const char *path, long start, double *elapsed)
{
    const char *head = CSV_COLUMNS "\n";
    size_t n = 0, a, b, hl = strlen(head);
    char *text = start > 0 ? ex_read_file(path, &n) : NULL;
    FILE *f = fopen(path, "wb");
    if (!f) ex_die("cannot write %s: %s", path, strerror(errno));
    *elapsed = 0;
    if (!text || n < hl || strncmp(text, head, hl) != 0) n = 0, fputs(head, f);
    for (a = 0; a < n; a = b + 1) {
        for (b = a; b < n && text[b] != '\n'; b++) {}
        if (b == n) break; /* a torn last line */
        if (a > 0) {
            char *e;
            const char *c = text + b; /* last field: elapsed_s */
            long s = strtol(text + a, &e, 10);
            if (e == text + a || *e != ',' || s >= start) continue;
            while (c > text + a && c[-1] != ',') c--;
            *elapsed = strtod(c, NULL);
        }
        fwrite(text + a, 1, b - a + 1, f);
    }
    free(text);
    return f;
}

static void log_step(run *r, long step, long long tokens, int ok, float lr, double gn, double vl, double tps)
{
    fprintf(r->log, "%ld,%lld,%.9g,%.9g,%.9g,", step, tokens, ok ? (double)r->loss : (double)NAN,
            (double)lr, ok ? gn : (double)NAN);
    if (vl >= 0) fprintf(r->log, "%.9g", vl);
    fprintf(r->log, ",%.1f,%.3f\n", tps, r->elapsed0 + ex_now() - r->t0);
    fflush(r->log);
}

/* The outcome of a step: 1 when it was applied; 0 when its loss or
   gradient was not finite and --on-nan skip skipped it. Stopping (--on-nan
   stop, 20 such steps in a row, any other failure) is fatal. */
static int step_applied(run *r, const opts *o, lmu_model *m, lmu_result res, const char *why, long step)
{
    if (res == LMU_OK) {
        r->nan_run = 0;
        return 1;
    }
    if (res != LMU_ERR_NONFINITE) ex_die("step %ld failed: %s (%s)", step, lmu_strerror(res), lmu_model_error(m));
    if (!why) why = lmu_model_error(m);
    r->n_nan++;
    if (!strcmp(o->on_nan, "stop"))
        ex_die("step %ld: %s; stopping (--on-nan stop); the last good checkpoint is %s", step,
               why, ex_file_exists(r->ckpt) ? r->ckpt : "(none yet)");
    ex_say("train: step %ld: %s; step skipped\n", step, why);
    if (++r->nan_run >= 20) ex_die("20 steps in a row were NaN/Inf; stopping");
    return 0;
}

/* Ctrl-C; under mpirun also SIGTERM (what Open MPI sends the ranks on
   Ctrl-C) and SIGUSR1 (which it forwards). */
static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    interrupted = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C quits at once */
}

/* --carry's states beside the checkpoint: carry.safetensors, "carry"
   (B, carry floats) and "fresh" (B: the row starts from state0), with the
   step they lead into. Every process's rows reach rank 0, which writes. */
static void carry_path(char *out, size_t cap, const char *ckpt)
{
    const char *slash = strrchr(ckpt, '/');
    int n = slash ? (int)(slash - ckpt) : 1;
    snprintf(out, cap, "%.*s/carry.safetensors", n, slash ? ckpt : ".");
}

static void carry_save(team *w, const opts *o, const char *ckpt, long done)
{
    const size_t B = (size_t)o->batch, n = B * w->cf;
    double *v = (double *)calloc(n + B, sizeof(double));
    float *c = (float *)malloc(n * sizeof(float));
    unsigned char *fr = (unsigned char *)malloc(B);
    char path[1200], step[32], err[256];
    size_t i, lo = (size_t)(w->rank * w->per * w->b), hi = lo + (size_t)(w->per * w->b);
    lmu_st_tensor ts[2];
    lmu_st_meta meta = {"step", step};
    if (!v || !c || !fr) ex_die("out of memory");
    for (i = lo * w->cf; i < hi * w->cf; i++) v[i] = w->carry[i];
    for (i = lo; i < hi; i++) v[n + i] = w->fresh[i / (size_t)w->b];
    team_sum_disjoint(w, v, (int)(n + B));
    for (i = 0; i < n; i++) c[i] = (float)v[i]; /* floats through doubles: exact */
    for (i = 0; i < B; i++) fr[i] = v[n + i] != 0;
    snprintf(step, sizeof step, "%ld", done);
    memset(ts, 0, sizeof ts);
    ts[0].name = "carry", ts[0].dtype = LMU_ST_F32, ts[0].ndim = 2, ts[0].data = c;
    ts[0].shape[0] = B, ts[0].shape[1] = w->cf;
    ts[1].name = "fresh", ts[1].dtype = LMU_ST_U8, ts[1].ndim = 1, ts[1].data = fr, ts[1].shape[0] = B;
    carry_path(path, sizeof path, ckpt);
    if (w->rank == 0 && lmu_st_save_file(path, ts, 2, &meta, 1, err, sizeof err) != LMU_OK)
        ex_die("cannot save %s: %s", path, err);
    free(v), free(c), free(fr);
}

/* A resume's states: those saved with the checkpoint's step, else every
   row starts from state0 (said so: the run is then not the uninterrupted
   one). */
static void carry_load(team *w, const opts *o, long start)
{
    const size_t B = (size_t)o->batch, shape[2] = {B, w->cf};
    char path[1200], err[256] = "";
    unsigned char *fr = (unsigned char *)malloc(B);
    lmu_st_file f;
    const char *st;
    size_t i;
    if (!fr) ex_die("out of memory");
    carry_path(path, sizeof path, o->resume);
    memset(&f, 0, sizeof f);
    if (lmu_st_load_file(&f, path, err, sizeof err) != LMU_OK ||
        !(st = lmu_st_meta_get(&f, "step")) || atol(st) != start ||
        lmu_st_read_f32(&f, "carry", shape, 2, w->carry, err, sizeof err) != LMU_OK ||
        lmu_st_read(&f, "fresh", LMU_ST_U8, &B, 1, fr, err, sizeof err) != LMU_OK) {
        ex_say("train: --carry: no state for step %ld in %s (%s): every row starts from state0\n",
               start, path, err[0] ? err : "another step's");
        memset(w->carry, 0, B * w->cf * sizeof(float));
        memset(w->fresh, 1, (size_t)w->shards);
    } else {
        memset(w->fresh, 0, (size_t)w->shards);
        for (i = 0; i < B; i++) w->fresh[i / (size_t)w->b] |= fr[i] != 0;
    }
    lmu_st_close(&f);
    free(fr);
}

/* Saves (rank 0) when a checkpoint is due after `done` steps; returns 1
   when the run stops here (Ctrl-C on any process, --stop-at). */
static int checkpoint(run *r, team *w, const opts *o, lmu_model *m, long done)
{
    int last = done == o->steps, intr = team_any(w, interrupted);
    int stop = intr || (o->stop_at > 0 && done == o->stop_at && !last);
    if (!stop && !last && !(o->save_every > 0 && done % o->save_every == 0)) return 0;
    if (w->carry) carry_save(w, o, r->ckpt, done); /* first: a crash between leaves it unused */
    if (w->rank == 0 && lmu_model_save(m, r->ckpt, 1) != LMU_OK) ex_die("cannot save: %s", lmu_model_error(m));
    if (stop)
        ex_say("train: %s at step %ld; saved %s (continue: train --resume %s)\n",
               intr ? "interrupted" : "stopped", done, r->ckpt, r->ckpt);
    return stop;
}

static void print_done(const run *r, const team *w, const opts *o)
{
    char t[32], e[32];
    ex_fmt_count(t, sizeof t, (double)(o->steps - r->start) * (double)(o->batch * o->seq) /
                                  (r->train_time > 0 ? r->train_time : 1));
    ex_fmt_time(e, sizeof e, ex_now() - r->t0);
    ex_say("train: done, %ld steps in %s (%s tok/s); loss %.4f (smoothed %.4f)", o->steps - r->start, e, t,
           (double)r->loss, (double)r->ema);
    if (r->last_val >= 0) ex_say(", val loss %.4f", r->last_val);
    if (r->n_nan) ex_say(", %ld NaN/Inf steps skipped", r->n_nan);
    ex_say("\ntrain: saved %s, log %s\n", r->ckpt, r->log_path);
    if (w->shards > 1)
        ex_say("train: summing gradients took %.1f%% of rank 0's step time (%.1f ms a step, %.2f MB "
               "of gradient)\n", 100 * w->comm_s / (r->train_time > 0 ? r->train_time : 1),
               1e3 * w->comm_s / (double)(o->steps - r->start), 4e-6 * (double)w->n_grad);
}

int main(int argc, char **argv)
{
    static settings s;
    static char text[16384];
    opts cli, *o = &s.o;
    lmu_tokens train, val;
    lmu_model *m;
    run r;
    team w;
    ex_progress bar;
    char path[1200];
    int B, T, have_val, *tok, *tgt;
    long step;

    ex_prog = "train";
    team_init(&w, &argc, &argv);
    memset(&train, 0, sizeof train);
    memset(&val, 0, sizeof val);
    memset(&r, 0, sizeof r);
    memset(&cli, 0, sizeof cli);
    ex_parse(&train_cli, argc, argv, &cli, s.given, NULL, 0);
    if (cli.list_presets) {
        list_presets();
        return 0;
    }
    read_settings(&s, &cli);
    have_val = load_data(o, &train, &val);
    derive_settings(o, w.size);
    m = open_model(&s, train.vocab_size, &r.start);
    {
        lmu_precision p = LMU_PRECISION_FP32; /* the option's choices are the library's names */
        if (lmu_precision_parse(o->precision, &p) != LMU_OK || lmu_model_set_precision(m, p) != LMU_OK)
            ex_die("--precision %s: not a precision", o->precision);
    }
    team_plan(&w, o, m);
    B = (int)o->batch, T = (int)o->seq;
    run_text(text, sizeof text, o, &s.c);
    team_check_same(&w, text, &train, &val, m); /* every process got here */
    w.started = 1;
    o->threads = ex_threads(o->threads > 0 ? o->threads : team_default_threads(&w));

    /* outputs (rank 0): the settings, the checkpoint, the log */
    snprintf(r.ckpt, sizeof r.ckpt, "%s/model.safetensors", o->out);
    snprintf(r.log_path, sizeof r.log_path, "%s/log.csv", o->out);
    snprintf(path, sizeof path, "%s/run.txt", o->out);
    if (w.rank == 0) ex_mkdirs(o->out), write_run_file(path, text);
    if (r.start >= o->steps) {
        ex_say("train: %s is at step %ld of %ld: nothing to do (raise --steps to go on)\n", o->resume,
               r.start, o->steps);
        lmu_model_free(m);
        return 0;
    }
    if (w.carry && r.start > 0) carry_load(&w, o, r.start);
    r.log = w.rank == 0 ? open_log(r.log_path, r.start, &r.elapsed0) : NULL;
    print_plan(&s, &w, m, &train, have_val, r.start);

    tok = (int *)malloc((size_t)w.b * (size_t)T * sizeof(int));
    tgt = (int *)malloc((size_t)w.b * (size_t)T * sizeof(int));
    if (!tok || !tgt) ex_die("out of memory");
    bar.steps = o->steps, bar.every = o->print_every, bar.drawn = 0;
    r.last_val = -1;
    signal(SIGINT, on_sigint);
#ifdef TRAIN_MPI
    signal(SIGTERM, on_sigint);
    signal(SIGUSR1, on_sigint);
#endif
    r.t0 = ex_now();

    for (step = r.start; step < o->steps; step++) {
        double t_step = ex_now(), gn = 0, vl = -1, tps, eta;
        float lr = lr_at(o, step);
        long done = step + 1;
        const char *why;
        int ok;
        lmu_result res;

        /* one step: this process's shards of the batch, forward + backward,
           the gradients summed, the update */
        res = team_step(&w, m, &train, o, step, tok, tgt, &r.loss, &why);
        if (res == LMU_OK) res = lmu_model_step(m, lr, (float)o->clip, &gn);
        ok = step_applied(&r, o, m, res, why, step);
        lmu_model_set_data_pos(m, (uint64_t)done); /* a resume continues after it */
        r.train_time += ex_now() - t_step;
        if (ok) r.ema = r.ema_n++ ? 0.9f * r.ema + 0.1f * r.loss : r.loss;

        /* validation every eval_every steps and at the end */
        if (have_val && ((o->eval_every > 0 && done % o->eval_every == 0) || done == o->steps)) {
            vl = team_validate(&w, m, &val, (int)o->eval_batches, T, tok, tgt);
            if (vl < 0) ex_say("train: step %ld: validation failed: %s\n", done, lmu_model_error(m));
            else r.last_val = vl;
        }

        /* the log, the progress, a checkpoint when due */
        tps = (double)(done - r.start) * B * T / (r.train_time > 0 ? r.train_time : 1e-9);
        eta = (double)(o->steps - done) * r.train_time / (double)(done - r.start);
        if (r.log) log_step(&r, step, (long long)done * B * T, ok, lr, gn, vl, tps);
        ex_progress_show(&bar, done, r.loss, r.ema, lr, tps, eta);
        if (vl >= 0) ex_say("step %ld: val loss %.4f (train, smoothed %.4f)\n", done, vl, (double)r.ema);
        if (checkpoint(&r, &w, o, m, done)) break;
    }
    if (step == o->steps) print_done(&r, &w, o);
    if (r.log) fclose(r.log);
    free(tok);
    free(tgt);
    team_free(&w);
    lmu_tokens_free(&train);
    lmu_tokens_free(&val);
    lmu_model_free(m);
    return 0;
}
