/* train.c - train an LMU (or transformer) language model on a token file.

   build: cc -O3 -march=native -fopenmp -I. examples/train.c -o build/train $(pkg-config --cflags --libs stb) -lm

   usage: train --data PREFIX [options]          (PREFIX.train.tok, PREFIX.val.tok
                                                  from examples/prepare.c)
   Model:    --preset NAME (default lmu-55k) | --config FILE, --ctx N
   Batches:  --batch B (8) --seq T (128) --steps N | --tokens N
   Optim:    --lr 1e-3 --warmup N --schedule cosine|linear|constant --clip 1
   Run:      --seed S --threads N --out DIR (out/run) --resume CKPT
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
   Example: train --data data/brown --preset lmu-55k --steps 300 --out out/demo */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "example_util.h"
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

/* ---- settings: one table for the command line, --config files and run.txt */

typedef struct opts {
    char data[1024], train[1024], val[1024], out[1024], preset[64], schedule[16], on_nan[8];
    long batch, seq, ctx, steps, tokens, warmup, eval_every, eval_batches, save_every,
        print_every, threads, stop_at, test_nan_at;
    double lr, clip;
    long long seed;
} opts;

enum { S_STR, S_LONG, S_DBL, S_LL };
typedef struct setting {
    const char *name;
    int type;
    size_t off, cap; /* cap: string size */
    double lo, hi;
    const char *arg, *help;
} setting;

#define OFF(f) offsetof(opts, f)
static const setting settings[] = {
    {"data", S_STR, OFF(data), 1024, 0, 0, "PREFIX", "token files PREFIX.train.tok, PREFIX.val.tok"},
    {"train", S_STR, OFF(train), 1024, 0, 0, "FILE", "training tokens (instead of --data)"},
    {"val", S_STR, OFF(val), 1024, 0, 0, "FILE", "validation tokens (\"none\": no validation)"},
    {"out", S_STR, OFF(out), 1024, 0, 0, "DIR", "output folder (default out/run)"},
    {"preset", S_STR, OFF(preset), 64, 0, 0, "NAME", "model preset (default lmu-55k; --list-presets)"},
    {"batch", S_LONG, OFF(batch), 0, 1, 1 << 16, "B", "sequences per step (default 8)"},
    {"seq", S_LONG, OFF(seq), 0, 1, 1 << 20, "T", "tokens per sequence (default 128)"},
    {"ctx", S_LONG, OFF(ctx), 0, 1, 1 << 20, "N", "model n_ctx (default: --seq)"},
    {"steps", S_LONG, OFF(steps), 0, 1, 1e12, "N", "optimizer steps (default 1000)"},
    {"tokens", S_LONG, OFF(tokens), 0, 1, 1e15, "N", "train on N tokens (sets --steps)"},
    {"lr", S_DBL, OFF(lr), 0, 0, 10, "LR", "peak learning rate (default 1e-3)"},
    {"warmup", S_LONG, OFF(warmup), 0, 0, 1e12, "N", "linear warmup steps (default steps/10, <= 200)"},
    {"schedule", S_STR, OFF(schedule), 16, 0, 0, "S", "after warmup: cosine (default), linear, constant"},
    {"clip", S_DBL, OFF(clip), 0, 0, 1e9, "C", "clip the gradient norm at C (0: off; default 1)"},
    {"seed", S_LL, OFF(seed), 0, 0, 9.2e18, "S", "initialisation and batch seed (default 1234)"},
    {"threads", S_LONG, OFF(threads), 0, 1, 1024, "N", "OpenMP threads (default: all)"},
    {"eval_every", S_LONG, OFF(eval_every), 0, 0, 1e12, "N", "validation loss every N steps (default 100; 0 off)"},
    {"eval_batches", S_LONG, OFF(eval_batches), 0, 1, 1e6, "K", "batches in the validation subset (default 4)"},
    {"save_every", S_LONG, OFF(save_every), 0, 0, 1e12, "N", "checkpoint every N steps (default 250; 0: end only)"},
    {"print_every", S_LONG, OFF(print_every), 0, 0, 1e12, "N", "log line every N steps when not a terminal"},
    {"on_nan", S_STR, OFF(on_nan), 8, 0, 0, "skip|stop", "NaN/Inf loss or gradient: skip the step (default) or stop"},
    {"stop_at", S_LONG, OFF(stop_at), 0, 0, 1e12, "N", "save and stop after step N, as Ctrl-C would"},
    {"test_nan_at", S_LONG, OFF(test_nan_at), 0, 0, 1e12, "N", "(tests) make step N's loss NaN"},
};
#define N_SETTINGS ((int)(sizeof settings / sizeof settings[0]))

static const char *usage =
    "usage: train --data PREFIX [--preset NAME | --config FILE] [--batch B] [--seq T]\n"
    "             [--steps N | --tokens N] [--lr LR] [--out DIR] [--resume CKPT] ...\n"
    "       train --help   lists every option\n";

static int tty;
static int bar_shown;

static const setting *find_setting(const char *name)
{
    int i;
    for (i = 0; i < N_SETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0) return &settings[i];
    return NULL;
}

/* Sets one setting from text; 0 on success, else err says why. */
static int set_setting(opts *o, const setting *s, const char *v, char *err, size_t cap)
{
    char *p = (char *)o + s->off, *end;
    double x;
    if (s->type == S_STR) {
        if (strlen(v) >= s->cap) {
            snprintf(err, cap, "%s: value too long", s->name);
            return -1;
        }
        if (!strcmp(s->name, "schedule") && strcmp(v, "cosine") && strcmp(v, "linear") &&
            strcmp(v, "constant")) {
            snprintf(err, cap, "schedule '%s': want cosine, linear or constant", v);
            return -1;
        }
        if (!strcmp(s->name, "on_nan") && strcmp(v, "skip") && strcmp(v, "stop")) {
            snprintf(err, cap, "on_nan '%s': want skip or stop", v);
            return -1;
        }
        strcpy(p, v);
        return 0;
    }
    errno = 0;
    x = strtod(v, &end);
    if (!*v || *end || errno || x != x) {
        snprintf(err, cap, "%s '%s' is not a number", s->name, v);
        return -1;
    }
    if (x < s->lo || x > s->hi) {
        snprintf(err, cap, "%s %s is outside %g..%g", s->name, v, s->lo, s->hi);
        return -1;
    }
    if (s->type != S_DBL && x != (double)(long long)x) {
        snprintf(err, cap, "%s '%s' is not a whole number", s->name, v);
        return -1;
    }
    if (s->type == S_LONG) *(long *)(void *)p = (long)x;
    else if (s->type == S_LL) *(long long *)(void *)p = (long long)x;
    else *(double *)(void *)p = x;
    return 0;
}

/* What a --config file may hold besides the model's keys. */
typedef struct cfg_ctx {
    opts *o;
    int saw_n_ctx, saw_vocab, saw_model_key;
} cfg_ctx;

static int config_key(void *user, const char *key, const char *value, char *err, size_t cap)
{
    cfg_ctx *cx = (cfg_ctx *)user;
    const setting *s = find_setting(key);
    if (!s || !strcmp(key, "preset")) { /* the library's key */
        if (!strcmp(key, "n_ctx")) cx->saw_n_ctx = 1;
        if (!strcmp(key, "vocab_size")) cx->saw_vocab = 1;
        cx->saw_model_key = 1;
        return 0;
    }
    return set_setting(cx->o, s, value, err, cap) == 0 ? 1 : -1;
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* ---- time, signals, progress ------------------------------------------ */

static double now(void)
{
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)time(NULL);
#endif
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    interrupted = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C quits at once */
}

static void fmt_time(char *buf, size_t cap, double s)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

static void fmt_count(char *buf, size_t cap, double x)
{
    if (x >= 1e9) snprintf(buf, cap, "%.2fG", x / 1e9);
    else if (x >= 1e6) snprintf(buf, cap, "%.2fM", x / 1e6);
    else if (x >= 1e4) snprintf(buf, cap, "%.1fk", x / 1e3);
    else snprintf(buf, cap, "%.0f", x);
}

/* Prints a whole line, above the progress bar on a terminal. */
/* before a fatal error: end the progress line, so the message starts a line */
static void end_progress_line(void)
{
    if (bar_shown) fprintf(stderr, "\n");
}

static void say(const char *fmt, ...)
{
    va_list ap;
    if (tty && bar_shown) fprintf(stderr, "\r%*s\r", 100, "");
    va_start(ap, fmt);
    vfprintf(tty ? stderr : stdout, fmt, ap);
    va_end(ap);
    fflush(tty ? stderr : stdout);
    bar_shown = 0;
}

static void progress(long step, long steps, float loss, float lr, double tps, double eta)
{
    char bar[32], t[32], e[32];
    int i, w = 24, fill = (int)((double)w * (double)step / (double)(steps ? steps : 1));
    for (i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fmt_count(t, sizeof t, tps);
    fmt_time(e, sizeof e, eta);
    fprintf(stderr, "\r%s %3.0f%% step %ld/%ld | loss %.4f | lr %.2e | %s tok/s | ETA %s   ", bar,
            100.0 * (double)step / (double)(steps ? steps : 1), step, steps, (double)loss,
            (double)lr, t, e);
    fflush(stderr);
    bar_shown = 1;
}

/* ---- batches ----------------------------------------------------------- */

/* B random windows of T+1 tokens, a function of (seed, step) only. */
static void make_batch(const lmu_tokens *d, long long seed, long step, int B, int T, int *tok,
                       int *tgt)
{
    lmu_rng rng;
    uint64_t key = (uint64_t)seed * 0xD1B54A32D192ED03ULL ^ ((uint64_t)step + 0x632BE59BD9B4E019ULL);
    uint64_t span = d->count - (uint64_t)T; /* window starts 0..count-T-1 */
    int b, t;
    key ^= key >> 29;
    key *= 0xBF58476D1CE4E5B9ULL;
    key ^= key >> 32;
    lmu_rng_seed(&rng, key);
    for (b = 0; b < B; b++) {
        uint64_t s = lmu_rng_u64(&rng) % span;
        for (t = 0; t < T; t++) {
            tok[b * T + t] = d->ids[s + (uint64_t)t];
            tgt[b * T + t] = d->ids[s + (uint64_t)t + 1];
        }
    }
}

/* Mean loss over K batches of windows spread evenly through the split. */
static double validate(lmu_model *m, const lmu_tokens *v, int K, int B, int T, int *tok, int *tgt)
{
    double sum = 0;
    uint64_t span = v->count - (uint64_t)T, nw = (uint64_t)K * (uint64_t)B;
    int k, b, t, n = 0;
    for (k = 0; k < K; k++) {
        float loss;
        for (b = 0; b < B; b++) {
            uint64_t w = (uint64_t)k * (uint64_t)B + (uint64_t)b;
            uint64_t s = nw > 1 ? (uint64_t)((double)(span - 1) * (double)w / (double)(nw - 1)) : 0;
            for (t = 0; t < T; t++) {
                tok[b * T + t] = v->ids[s + (uint64_t)t];
                tgt[b * T + t] = v->ids[s + (uint64_t)t + 1];
            }
        }
        if (lmu_model_forward(m, tok, tgt, B, T, &loss) != LMU_OK) return -1;
        sum += loss;
        n++;
    }
    return sum / n;
}

static float lr_at(const opts *o, long step)
{
    if (!strcmp(o->schedule, "cosine")) return lmu_lr_schedule(step, o->warmup, o->steps, (float)o->lr);
    if (step < o->warmup) return (float)(o->lr * (double)(step + 1) / (double)o->warmup);
    if (!strcmp(o->schedule, "constant")) return (float)o->lr;
    if (o->steps <= o->warmup) return (float)o->lr;
    return (float)(o->lr * (double)(o->steps - step) / (double)(o->steps - o->warmup));
}

/* ---- the log ----------------------------------------------------------- */

#define CSV_HEADER "step,tokens,loss,lr,grad_norm,val_loss,tokens_per_s,elapsed_s\n"

/* Opens the CSV log: fresh, or on resume the old one cut to the rows
   before `start` (a run that went past its last checkpoint left rows the
   resumed run writes again). *elapsed gets the last kept row's time. */
static FILE *open_log(const char *path, long start, double *elapsed)
{
    FILE *f;
    *elapsed = 0;
    if (start > 0) {
        size_t n, a, b;
        char *text = ex_read_file(path, &n), *keep;
        size_t kept = 0;
        if (text && n >= strlen(CSV_HEADER) && !strncmp(text, CSV_HEADER, strlen(CSV_HEADER))) {
            keep = (char *)malloc(n + 1);
            if (!keep) ex_die("out of memory");
            for (a = 0; a < n; a = b + 1) {
                for (b = a; b < n && text[b] != '\n'; b++) {}
                if (b == n) break; /* a torn last line */
                if (a > 0) {
                    char *e;
                    long s = strtol(text + a, &e, 10);
                    if (e == text + a || *e != ',' || s >= start) continue;
                    {
                        const char *c = text + b; /* last field: elapsed_s */
                        while (c > text + a && c[-1] != ',') c--;
                        *elapsed = strtod(c, NULL);
                    }
                }
                memcpy(keep + kept, text + a, b - a + 1);
                kept += b - a + 1;
            }
            f = fopen(path, "wb");
            if (!f) ex_die("cannot write %s: %s", path, strerror(errno));
            fwrite(keep, 1, kept, f);
            free(keep);
            free(text);
            return f;
        }
        free(text);
    }
    f = fopen(path, "wb");
    if (!f) ex_die("cannot write %s: %s", path, strerror(errno));
    fputs(CSV_HEADER, f);
    return f;
}

static void write_run_file(const char *path, const opts *o, const lmu_config *c)
{
    char buf[1024];
    int i;
    FILE *f = fopen(path, "wb");
    if (!f) ex_die("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "# train settings; repeat the run with: train --config %s\n", path);
    lmu_config_format(c, buf, sizeof buf);
    fputs(buf, f);
    for (i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        const char *p = (const char *)o + s->off;
        if (!strcmp(s->name, "preset") || !strcmp(s->name, "stop_at") ||
            !strcmp(s->name, "test_nan_at") || !strcmp(s->name, "tokens") ||
            !strcmp(s->name, "ctx") ||
            (o->data[0] && (!strcmp(s->name, "train") || !strcmp(s->name, "val"))))
            continue; /* derived from --data, or not part of the run */
        if (s->type == S_STR) {
            if (*p) fprintf(f, "%s = %s\n", s->name, p);
        } else if (s->type == S_LONG)
            fprintf(f, "%s = %ld\n", s->name, *(const long *)(const void *)p);
        else if (s->type == S_LL)
            fprintf(f, "%s = %lld\n", s->name, *(const long long *)(const void *)p);
        else
            fprintf(f, "%s = %.17g\n", s->name, *(const double *)(const void *)p);
    }
    if (fclose(f) != 0) ex_die("cannot write %s: %s", path, strerror(errno));
}

/* mkdir -p (POSIX mkdir; C99 has none) */
static void mkdirs(const char *dir)
{
    char p[1024];
    size_t i, n = strlen(dir);
    if (n == 0 || n >= sizeof p) ex_die("bad --out folder '%s'", dir);
    memcpy(p, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        p[i] = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) ex_die("cannot create folder %s: %s", p, strerror(errno));
        p[i] = i < n ? '/' : 0;
    }
}

static void help(void)
{
    int i;
    printf("%s\n", usage);
    for (i = 0; i < N_SETTINGS; i++) {
        char flag[64], *p;
        snprintf(flag, sizeof flag, "--%s %s", settings[i].name, settings[i].arg);
        for (p = flag; *p && *p != ' '; p++)
            if (*p == '_') *p = '-';
        printf("  %-24s %s\n", flag, settings[i].help);
    }
    printf("  %-24s %s\n", "--config FILE", "model keys (lmu_config_parse) and any setting above as key = value");
    printf("  %-24s %s\n", "--resume CKPT", "continue from a checkpoint (reads run.txt beside it)");
    printf("  %-24s %s\n", "--list-presets", "print the model presets");
    printf("\nOutputs in --out: model.safetensors, log.csv (%s), run.txt.\n",
           "step,tokens,loss,lr,grad_norm,val_loss,tokens_per_s,elapsed_s");
}

int main(int argc, char **argv)
{
    opts o;
    const char *config_path = NULL, *resume = NULL;
    char err[512], path[1200], ckpt[1200], logp[1200], preset_name[64];
    lmu_config c;
    lmu_model *m = NULL;
    lmu_tokens train, val;
    cfg_ctx cx;
    int i, B, T, have_val, ctx_set = 0;
    char on_cli[N_SETTINGS];
    long start = 0, step, n_nan = 0, nan_run = 0;
    int *tok, *tgt;
    FILE *logf;
    double t0, elapsed0, train_time = 0, last_draw = 0, last_val = -1;
    float loss = 0, ema = 0;
    int ema_n = 0;
    lmu_result r;

    ex_prog = "train";
    ex_before_die = end_progress_line;
    memset(&o, 0, sizeof o);
    memset(&train, 0, sizeof train);
    memset(&val, 0, sizeof val);
    memset(&cx, 0, sizeof cx);
    o.batch = 8, o.seq = 128, o.steps = 1000, o.lr = 1e-3, o.clip = 1.0, o.seed = 1234;
    o.warmup = -1, o.eval_every = 100, o.eval_batches = 4, o.save_every = 250, o.print_every = -1;
    strcpy(o.schedule, "cosine");
    strcpy(o.on_nan, "skip");
    strcpy(o.out, "out/run");
    tty = isatty(fileno(stderr));

    /* pass 1: --help, --config and --resume, which the rest builds on */
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            help();
            return 0;
        }
        if (!strcmp(argv[i], "--list-presets")) {
            int k;
            for (k = 0; k < lmu_config_preset_count(); k++) {
                lmu_config p;
                lmu_config_preset(&p, lmu_config_preset_name(k));
                printf("%-18s N %8lu  (d %d, %d layers)\n", lmu_config_preset_name(k),
                       (unsigned long)lmu_config_param_count(&p), p.d_model, p.n_layer);
            }
            return 0;
        }
        if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "--resume")) {
            if (i + 1 >= argc) ex_die("%s needs a value", argv[i]);
            if (!strcmp(argv[i], "--config")) config_path = argv[i + 1];
            else resume = argv[i + 1];
            i++;
        }
    }
    memset(&c, 0, sizeof c);
    strcpy(preset_name, "lmu-55k");
    if (!config_path && resume) { /* the settings the checkpoint was made with */
        const char *slash = strrchr(resume, '/');
        size_t dl = slash ? (size_t)(slash - resume) : 0;
        if (dl > 1000) ex_die("path too long: %s", resume);
        snprintf(path, sizeof path, "%.*s%srun.txt", (int)dl, resume, slash ? "/" : "");
        if (file_exists(path)) config_path = path;
    }
    if (config_path) {
        size_t n;
        char *text = ex_read_file(config_path, &n);
        if (!text) ex_die("cannot open %s: %s", config_path, strerror(errno));
        cx.o = &o;
        lmu_config_preset(&c, "lmu-55k");
        if (lmu_config_parse_ex(&c, text, n, config_key, &cx, err, sizeof err) != LMU_OK)
            ex_die("%s: %s", config_path, err);
        free(text);
        if (cx.saw_model_key) strcpy(preset_name, "custom");
        if (config_path == path) /* run.txt: settings the CLI may override */
            say("train: settings from %s\n", path);
    }

    /* pass 2: the command line overrides */
    memset(on_cli, 0, sizeof on_cli);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        char name[64], *p;
        const setting *s;
        if (!strcmp(a, "--config") || !strcmp(a, "--resume")) {
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || strlen(a) >= sizeof name) {
            fprintf(stderr, "train: unexpected argument '%s'\n%s", a, usage);
            return 2;
        }
        strcpy(name, a + 2);
        for (p = name; *p; p++)
            if (*p == '-') *p = '_';
        s = find_setting(name);
        if (!s) {
            fprintf(stderr, "train: unknown option '%s'\n%s", a, usage);
            return 2;
        }
        if (i + 1 >= argc) ex_die("%s needs a value", a);
        if (set_setting(&o, s, argv[++i], err, sizeof err) != 0) ex_die("--%s", err);
        on_cli[s - settings] = 1;
        if (!strcmp(s->name, "preset")) {
            if (lmu_config_preset(&c, o.preset) != LMU_OK)
                ex_die("unknown preset '%s' (train --list-presets)", o.preset);
            strcpy(preset_name, o.preset);
            if (config_path) /* the file's model keys go on top of it */
                say("train: note: --preset replaces the model of %s\n", config_path);
        }
        if (!strcmp(s->name, "ctx")) ctx_set = 1;
    }
    if (!config_path && !o.preset[0]) lmu_config_preset(&c, "lmu-55k");
    if (on_cli[find_setting("data") - settings]) { /* new data: not the file's splits */
        if (!on_cli[find_setting("train") - settings]) o.train[0] = 0;
        if (!on_cli[find_setting("val") - settings]) o.val[0] = 0;
    }

    /* data */
    if (o.data[0]) {
        if (!o.train[0]) snprintf(o.train, sizeof o.train, "%.1000s.train.tok", o.data);
        if (!o.val[0]) {
            snprintf(o.val, sizeof o.val, "%.1000s.val.tok", o.data);
            if (!file_exists(o.val)) strcpy(o.val, "none");
        }
    }
    if (!o.train[0]) {
        fprintf(stderr, "train: no data: give --data PREFIX or --train FILE\n%s", usage);
        return 2;
    }
    if (lmu_tokens_load_file(&train, o.train, err, sizeof err) != LMU_OK) ex_die("%s", err);
    have_val = o.val[0] && strcmp(o.val, "none") != 0;
    if (have_val) {
        if (lmu_tokens_load_file(&val, o.val, err, sizeof err) != LMU_OK) ex_die("%s", err);
        if (val.vocab_size != train.vocab_size)
            ex_die("%s has vocab_size %u but %s has %u", o.val, val.vocab_size, o.train,
                train.vocab_size);
    }
    B = (int)o.batch;
    T = (int)o.seq;
    if ((uint64_t)T + 1 > train.count)
        ex_die("%s has %llu tokens, too few for --seq %d (needs %d)", o.train,
            (unsigned long long)train.count, T, T + 1);
    if (have_val && val.count < 2) {
        say("train: %s has under 2 tokens: no validation\n", o.val);
        have_val = 0;
    }
    if (o.tokens > 0) o.steps = (long)((o.tokens + (long)B * T - 1) / ((long)B * T));
    if (o.warmup < 0) o.warmup = o.steps / 10 < 200 ? o.steps / 10 : 200;
    if (o.print_every < 0) o.print_every = o.steps / 20 > 0 ? o.steps / 20 : 1;
#ifdef _OPENMP
    if (o.threads > 0) omp_set_num_threads((int)o.threads);
    o.threads = omp_get_max_threads();
#else
    o.threads = 1;
#endif

    /* model */
    if (resume) {
        r = lmu_model_load(&m, resume, err, sizeof err);
        if (r != LMU_OK) ex_die("cannot resume from %s", err[0] ? err : lmu_strerror(r));
        c = m->cfg;
        if ((uint32_t)c.vocab_size != train.vocab_size)
            ex_die("checkpoint %s has vocab_size %d but %s has %u", resume, c.vocab_size, o.train,
                train.vocab_size);
        if (T > c.n_ctx) ex_die("--seq %d exceeds the checkpoint's n_ctx %d", T, c.n_ctx);
        start = (long)m->data_pos;
        strcpy(preset_name, "resumed");
    } else {
        if (cx.saw_vocab && (uint32_t)c.vocab_size != train.vocab_size)
            ex_die("the config says vocab_size %d but %s has %u", c.vocab_size, o.train,
                train.vocab_size);
        c.vocab_size = (int)train.vocab_size;
        if (ctx_set) c.n_ctx = (int)o.ctx;
        else if (!cx.saw_n_ctx) c.n_ctx = T;
        if (lmu_config_resolve(&c, err, sizeof err) != LMU_OK) ex_die("%s", err);
        if (T > c.n_ctx) ex_die("--seq %d exceeds the model's n_ctx %d", T, c.n_ctx);
        r = lmu_model_create(&m, &c, (uint64_t)o.seed, err, sizeof err);
        if (r != LMU_OK) ex_die("cannot create the model: %s", err[0] ? err : lmu_strerror(r));
    }
    o.ctx = c.n_ctx;
    if (have_val && val.count < (uint64_t)T + 1) {
        say("train: %s has %llu tokens: validating on windows of %llu\n", o.val,
            (unsigned long long)val.count, (unsigned long long)val.count - 1);
    }

    mkdirs(o.out);
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", o.out);
    snprintf(logp, sizeof logp, "%s/log.csv", o.out);
    snprintf(path, sizeof path, "%s/run.txt", o.out);
    write_run_file(path, &o, &c);
    if (start >= o.steps) {
        say("train: %s is at step %ld of %ld: nothing to do (raise --steps to go on)\n", resume,
            start, o.steps);
        lmu_model_free(m);
        return 0;
    }
    logf = open_log(logp, start, &elapsed0);

    {
        char n1[32], n2[32], n3[32], n4[32];
        fmt_count(n1, sizeof n1, (double)lmu_model_param_count(m));
        fmt_count(n2, sizeof n2, (double)lmu_config_param_count_total(&c));
        fmt_count(n3, sizeof n3, (double)train.count);
        fmt_count(n4, sizeof n4, (double)o.steps * B * T);
        say("train: %s: %s d=%d layers=%d, N=%s (%s with embeddings), vocab %d, n_ctx %d\n",
            preset_name, lmu_arch_name(c.arch), c.d_model, c.n_layer, n1, n2, c.vocab_size,
            c.n_ctx);
        say("train: %s tokens in %s%s; batch %d x %d; %ld steps = %s tokens (%.2f epochs); "
            "lr %g %s, warmup %ld; %ld thread%s\n",
            n3, o.train, have_val ? " (+ validation)" : "", B, T, o.steps, n4,
            (double)o.steps * B * T / (double)train.count, o.lr, o.schedule, o.warmup,
            o.threads, o.threads == 1 ? "" : "s");
        if (start > 0) say("train: resuming from %s at step %ld\n", resume, start);
        say("train: writing %s/{model.safetensors,log.csv,run.txt}\n", o.out);
    }

    tok = (int *)malloc((size_t)B * (size_t)T * sizeof(int));
    tgt = (int *)malloc((size_t)B * (size_t)T * sizeof(int));
    if (!tok || !tgt) ex_die("out of memory");
    signal(SIGINT, on_sigint);
    t0 = now();

    for (step = start; step < o.steps; step++) {
        double ts = now(), gn = 0, tps, vl = -1;
        float lr = lr_at(&o, step);
        int ok = 1, last = step + 1 == o.steps;
        make_batch(&train, o.seed, step, B, T, tok, tgt);
        if (step == o.test_nan_at && o.test_nan_at > 0) {
            float *g = lmu_tape_data(&m->tape, m->ln_f_w), keep = g[0];
            g[0] = (float)NAN;
            r = lmu_model_forward_backward(m, tok, tgt, B, T, &loss);
            g[0] = keep;
        } else
            r = lmu_model_forward_backward(m, tok, tgt, B, T, &loss);
        if (r == LMU_OK) r = lmu_model_step(m, lr, (float)o.clip, &gn);
        if (r == LMU_ERR_NONFINITE) {
            ok = 0;
            n_nan++;
            nan_run++;
            if (!strcmp(o.on_nan, "stop"))
                ex_die("step %ld: %s; stopping (--on-nan stop); the last good checkpoint is %s", step,
                    m->err, file_exists(ckpt) ? ckpt : "(none yet)");
            say("train: step %ld: %s; step skipped\n", step, m->err);
            if (nan_run >= 20) ex_die("20 steps in a row were NaN/Inf; stopping");
        } else if (r != LMU_OK)
            ex_die("step %ld failed: %s (%s)", step, lmu_strerror(r), m->err);
        else
            nan_run = 0;
        m->data_pos = (uint64_t)step + 1;
        train_time += now() - ts;
        tps = (double)(step + 1 - start) * B * T / (train_time > 0 ? train_time : 1e-9);
        if (ok) {
            ema = ema_n ? 0.9f * ema + 0.1f * loss : loss;
            ema_n++;
        }
        if (have_val && ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last)) {
            int Tv = val.count < (uint64_t)T + 1 ? (int)val.count - 1 : T;
            vl = validate(m, &val, (int)o.eval_batches, B, Tv, tok, tgt);
            if (vl < 0) say("train: step %ld: validation failed: %s\n", step + 1, m->err);
            else last_val = vl;
        }
        fprintf(logf, "%ld,%lld,%.9g,%.9g,%.9g,", step, (long long)(step + 1) * B * T,
                ok ? (double)loss : (double)NAN, (double)lr, ok ? gn : (double)NAN);
        if (vl >= 0) fprintf(logf, "%.9g", vl);
        fprintf(logf, ",%.1f,%.3f\n", tps, elapsed0 + now() - t0);
        fflush(logf);
        {
            double eta = (double)(o.steps - step - 1) * train_time / (double)(step + 1 - start);
            if (tty) {
                if (now() - last_draw > 0.1 || last || vl >= 0) {
                    progress(step + 1, o.steps, ema, lr, tps, eta);
                    last_draw = now();
                }
            } else if ((o.print_every > 0 && (step + 1) % o.print_every == 0) || last) {
                char t[32], e[32];
                fmt_count(t, sizeof t, tps);
                fmt_time(e, sizeof e, eta);
                say("step %ld/%ld  loss %.4f  lr %.2e  %s tok/s  ETA %s\n", step + 1, o.steps,
                    (double)loss, (double)lr, t, e);
            }
            if (vl >= 0) say("step %ld: val loss %.4f (train, smoothed %.4f)\n", step + 1, vl, (double)ema);
        }
        if (interrupted || (o.stop_at > 0 && step + 1 == o.stop_at) || last ||
            (o.save_every > 0 && (step + 1) % o.save_every == 0)) {
            if (lmu_model_save(m, ckpt, 1) != LMU_OK) ex_die("cannot save: %s", m->err);
            if (interrupted || (o.stop_at > 0 && step + 1 == o.stop_at && !last)) {
                say("train: %s at step %ld; saved %s (continue: train --resume %s)\n",
                    interrupted ? "interrupted" : "stopped", step + 1, ckpt, ckpt);
                fclose(logf);
                lmu_model_free(m);
                return 0;
            }
        }
    }
    {
        char t[32], e[32];
        fmt_count(t, sizeof t, (double)(o.steps - start) * B * T / (train_time > 0 ? train_time : 1));
        fmt_time(e, sizeof e, now() - t0);
        say("train: done, %ld steps in %s (%s tok/s); loss %.4f (smoothed %.4f)", o.steps - start,
            e, t, (double)loss, (double)ema);
        if (last_val >= 0) say(", val loss %.4f", last_val);
        if (n_nan) say(", %ld NaN/Inf steps skipped", n_nan);
        say("\ntrain: saved %s, log %s\n", ckpt, logp);
    }
    fclose(logf);
    free(tok);
    free(tgt);
    lmu_tokens_free(&train);
    lmu_tokens_free(&val);
    lmu_model_free(m);
    return 0;
}
