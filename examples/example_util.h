/* example_util.h - what the example programs share: a one-line fatal error,
   reading a whole file, the option table behind every command line (and
   train's --config files), a progress bar, and the tokenizer choice.
   Included by each example after lmu.h; not part of the library (programs
   may exit, libraries may not). Everything is static and named ex_.

   C99; with _POSIX_C_SOURCE defined before the includes it also uses
   isatty (is the output a terminal?), clock_gettime and mkdir. */
#ifndef LMU_EXAMPLE_UTIL_H
#define LMU_EXAMPLE_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(_POSIX_C_SOURCE)
#include <sys/stat.h>
#include <unistd.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define EX_UNUSED __attribute__((unused)) /* no example uses every helper */
#define EX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define EX_NORETURN __attribute__((noreturn))
#else
#define EX_NORETURN
#define EX_UNUSED
#define EX_PRINTF(f, a)
#endif
#define EX_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The program's name, for "prog: message" errors. */
static const char *ex_prog = "example";
static int ex_bar_shown; /* the progress bar is on the terminal's last line */

/* A program run as several processes (train's MPI build) decides which
   of them prints an error and how all of them stop: with ex_quiet_errors
   set this one prints none, and ex_exit_hook, when set, is called with the
   message and the exit status in place of exit(). */
static int ex_quiet_errors;
static void (*ex_exit_hook)(const char *msg, int status);

EX_UNUSED EX_PRINTF(1, 2) EX_NORETURN static void ex_die(const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (!ex_quiet_errors) {
        if (ex_bar_shown) fputc('\n', stderr); /* the message starts a line */
        fprintf(stderr, "%s: %s\n", ex_prog, msg);
    }
    if (ex_exit_hook) ex_exit_hook(msg, 1);
    exit(1);
}

/* A command-line number: all of s parsed, finite, within lo..hi and, when
   whole, an integer. */
EX_UNUSED static int ex_number(const char *s, double lo, double hi, int whole, double *out)
{
    char *end;
    double x;
    errno = 0;
    x = strtod(s, &end);
    if (!*s || *end || errno || !(x >= lo && x <= hi)) return 0;
    if (whole && x != (double)(long long)x) return 0;
    *out = x;
    return 1;
}

/* ---- files --------------------------------------------------------------- */

/* All of f, NUL-terminated (not counted in *n). Running out of memory or a
   read error is fatal; what names the stream in that message. */
EX_UNUSED static char *ex_read_stream(FILE *f, const char *what, size_t *n)
{
    size_t cap = 1 << 16, len = 0, got;
    char *b = (char *)malloc(cap + 1), *nb;
    while (b && (got = fread(b + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            nb = (char *)realloc(b, (cap *= 2) + 1);
            if (!nb) free(b);
            b = nb;
        }
    }
    if (!b) ex_die("out of memory reading %s", what);
    if (ferror(f)) ex_die("cannot read %s: %s", what, strerror(errno));
    b[len] = 0;
    *n = len;
    return b;
}

/* The whole file (as ex_read_stream); NULL with errno set when it cannot be
   opened. */
EX_UNUSED static char *ex_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *b;
    if (!f) return NULL;
    b = ex_read_stream(f, path, n);
    fclose(f);
    return b;
}

EX_UNUSED static int ex_file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* mkdir -p; fatal on failure. C99 has no mkdir: without POSIX the folder
   must exist. */
EX_UNUSED static void ex_mkdirs(const char *dir)
{
    char p[1024];
    size_t i, n = strlen(dir);
    if (n == 0 || n >= sizeof p) ex_die("bad folder name '%s'", dir);
    memcpy(p, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        p[i] = 0;
#if defined(_POSIX_C_SOURCE)
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            ex_die("cannot create folder %s: %s", p, strerror(errno));
#endif
        p[i] = i < n ? '/' : 0;
    }
}

/* ---- options: one table per program ---------------------------------------

   Each ex_opt names a field of the program's settings struct by offset. The
   command line spells a name with '-' (--eval-every), a config file with '_'
   (eval_every = 10); both are accepted on the command line. Values are
   checked here, so every program refuses bad input with the same words. */

enum {
    EX_FLAG, /* int: set to 1, takes no value */
    EX_STR,  /* char[size]: the value copied */
    EX_ARG,  /* const char *: points at the argument itself */
    EX_LONG, /* long, a whole number in lo..hi */
    EX_U64,  /* uint64_t, a whole number in lo..hi */
    EX_DBL   /* double in lo..hi */
};
enum {
    EX_NOFILE = 1, /* command line only: not a config-file key */
    EX_NOSAVE = 2, /* a config-file key, but not written back (ex_opt_format) */
    EX_OPEN_LO = 4 /* numbers: lo itself is refused, (lo, hi] */
};

typedef struct ex_opt {
    const char *name;  /* long name, with '_' */
    char short_name;   /* -c, or 0 */
    int type;          /* EX_FLAG ... EX_DBL */
    size_t off, size;  /* the field: EX_FIELD(struct, field) */
    int flags;         /* EX_NOFILE | EX_NOSAVE | EX_OPEN_LO */
    double lo, hi;     /* numbers: the range */
    const char *arg;   /* the value's name in --help; with '|', its choices */
    const char *help;
} ex_opt;
#define EX_FIELD(type, f) offsetof(type, f), sizeof(((type *)0)->f)

typedef struct ex_opts {
    const char *prog, *usage; /* usage: the lines errors repeat */
    const ex_opt *opt;
    int n;
    const char *more; /* --help's text after the options, or NULL */
} ex_opts;

/* name with '-' or '_' between words */
EX_UNUSED static const ex_opt *ex_opt_find(const ex_opts *t, const char *name)
{
    int i;
    size_t k;
    for (i = 0; i < t->n; i++) {
        const char *a = t->opt[i].name;
        for (k = 0; a[k] && (name[k] == a[k] || (name[k] == '-' && a[k] == '_')); k++) {}
        if (!a[k] && !name[k]) return &t->opt[i];
    }
    return NULL;
}

/* Is v one of "a|b|c"? */
static int ex__choice(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *c = choices;
    while (c) {
        if (!strncmp(c, v, n) && (c[n] == '|' || c[n] == 0)) return 1;
        c = strchr(c, '|');
        if (c) c++;
    }
    return 0;
}

/* "want a, b or c" from "a|b|c" */
static void ex__want(char *buf, size_t cap, const char *choices)
{
    size_t len = 0;
    const char *c = choices, *bar;
    len += (size_t)snprintf(buf, cap, "want ");
    while (c && len < cap) {
        bar = strchr(c, '|');
        len += (size_t)snprintf(buf + len, cap - len, "%s%.*s", c == choices ? "" : bar ? ", " : " or ",
                                (int)(bar ? (size_t)(bar - c) : strlen(c)), c);
        c = bar ? bar + 1 : NULL;
    }
}

/* Sets option o of the struct at base from the text v; label names it in
   err ("--batch" on the command line, "batch" in a file). 0 on success,
   else -1 and err says why. */
EX_UNUSED static int ex_opt_set(const ex_opt *o, void *base, const char *label, const char *v, char *err,
                                size_t cap)
{
    char *p = (char *)base + o->off, *end;
    double x;
    if (o->type == EX_FLAG) {
        *(int *)(void *)p = 1;
        return 0;
    }
    if (o->type == EX_STR || o->type == EX_ARG) {
        if (o->arg && strchr(o->arg, '|') && !ex__choice(o->arg, v)) {
            char want[128];
            ex__want(want, sizeof want, o->arg);
            snprintf(err, cap, "%s '%s': %s", label, v, want);
            return -1;
        }
        if (o->type == EX_ARG) {
            *(const char **)(void *)p = v;
            return 0;
        }
        if (strlen(v) >= o->size) {
            snprintf(err, cap, "%s: value too long", label);
            return -1;
        }
        strcpy(p, v);
        return 0;
    }
    errno = 0;
    x = strtod(v, &end);
    if (!*v || *end || errno || x != x) {
        snprintf(err, cap, "%s '%s' is not a number", label, v);
        return -1;
    }
    if (x < o->lo || x > o->hi || ((o->flags & EX_OPEN_LO) && x == o->lo)) {
        if (o->flags & EX_OPEN_LO) snprintf(err, cap, "%s %s is outside (%g, %g]", label, v, o->lo, o->hi);
        else snprintf(err, cap, "%s %s is outside %g..%g", label, v, o->lo, o->hi);
        return -1;
    }
    if (o->type != EX_DBL && x != floor(x)) {
        snprintf(err, cap, "%s '%s' is not a whole number", label, v);
        return -1;
    }
    if (o->type == EX_LONG) *(long *)(void *)p = (long)x;
    else if (o->type == EX_U64) *(uint64_t *)(void *)p = (uint64_t)x;
    else *(double *)(void *)p = x;
    return 0;
}

/* Option o's value as config-file text (exact: reads back the same); 0
   when there is nothing to write (an empty string, a flag not set). */
EX_UNUSED static int ex_opt_format(const ex_opt *o, const void *base, char *buf, size_t cap)
{
    const char *p = (const char *)base + o->off;
    switch (o->type) {
    case EX_FLAG: return *(const int *)(const void *)p ? snprintf(buf, cap, "1") > 0 : 0;
    case EX_STR: return *p ? snprintf(buf, cap, "%s", p) > 0 : 0;
    case EX_ARG: p = *(const char *const *)(const void *)p; return p && *p ? snprintf(buf, cap, "%s", p) > 0 : 0;
    case EX_LONG: return snprintf(buf, cap, "%ld", *(const long *)(const void *)p) > 0;
    case EX_U64:
        return snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)(const void *)p) > 0;
    default: return snprintf(buf, cap, "%.17g", *(const double *)(const void *)p) > 0;
    }
}

/* --help: the usage, a line per option, then t->more. */
EX_UNUSED static void ex_help(const ex_opts *t)
{
    int i, shorts = 0;
    for (i = 0; i < t->n; i++) shorts |= t->opt[i].short_name != 0;
    printf("%s\n", t->usage);
    for (i = 0; i < t->n; i++) {
        const ex_opt *o = &t->opt[i];
        char flag[96], *p;
        int len = 0;
        if (o->short_name) len = snprintf(flag, sizeof flag, "-%c, ", o->short_name);
        else if (shorts) len = snprintf(flag, sizeof flag, "    ");
        p = flag + len;
        snprintf(p, sizeof flag - (size_t)len, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        for (; *p && *p != ' '; p++)
            if (*p == '_') *p = '-';
        if (strlen(flag) > 24) printf("  %s\n  %-24s %s\n", flag, "", o->help);
        else printf("  %-24s %s\n", flag, o->help);
    }
    if (t->more) printf("%s", t->more);
}

/* A usage error: the reason, then the usage; exit 2. */
EX_UNUSED EX_PRINTF(2, 3) EX_NORETURN static void ex_usage_error(const ex_opts *t, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (!ex_quiet_errors) fprintf(stderr, "%s: %s\n%s", t->prog, msg, t->usage);
    if (ex_exit_hook) ex_exit_hook(msg, 2);
    exit(2);
}

/* Parses argv[1..argc) into the struct at base: -h or --help prints the
   help and exits 0; an unknown option, or more than max_pos arguments
   that are not options, is a usage error (exit 2); an option without its
   value or with a bad one is fatal (exit 1). given[i] (optional) is set
   for each option t->opt[i] on the command line. The arguments that are
   not options go to pos[]; returns how many. */
EX_UNUSED static int ex_parse(const ex_opts *t, int argc, char **argv, void *base, char *given,
                              const char **pos, int max_pos)
{
    int i, n_pos = 0;
    char err[512];
    if (given) memset(given, 0, (size_t)t->n);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const ex_opt *o = NULL;
        int k;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ex_help(t);
            exit(0);
        }
        if (a[0] != '-' || !a[1]) { /* "-" alone is an argument (stdin) */
            if (n_pos >= max_pos) ex_usage_error(t, "unexpected argument '%s'", a);
            pos[n_pos++] = a;
            continue;
        }
        if (a[1] == '-') o = ex_opt_find(t, a + 2);
        else if (!a[2])
            for (k = 0; k < t->n && !o; k++)
                if (t->opt[k].short_name == a[1]) o = &t->opt[k];
        if (!o) ex_usage_error(t, "unknown option '%s'", a);
        if (o->type != EX_FLAG && i + 1 >= argc) ex_die("%s needs a value", a);
        if (ex_opt_set(o, base, a, o->type == EX_FLAG ? "" : argv[++i], err, sizeof err) != 0)
            ex_die("%s", err);
        if (given) given[o - t->opt] = 1;
    }
    return n_pos;
}

/* OpenMP threads (n > 0); without OpenMP there is one. Returns the count. */
EX_UNUSED static int ex_threads(long n)
{
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads((int)n);
    return omp_get_max_threads();
#else
    (void)n;
    return 1;
#endif
}

/* The tokenizer: byte-level (bytes, or a model of vocabulary 257), else
   GPT-2's from dir/encoder.json and dir/vocab.bpe. */
EX_UNUSED static lmu_result ex_tokenizer(lmu_tokenizer **tok, int bytes, const char *dir, char *err,
                                         size_t cap)
{
    char enc[1100], bpe[1100];
    if (bytes) return lmu_tokenizer_bytes(tok);
    if (strlen(dir) > 1000) {
        snprintf(err, cap, "path too long: %.60s...", dir);
        return LMU_ERR_ARG;
    }
    sprintf(enc, "%s/encoder.json", dir);
    sprintf(bpe, "%s/vocab.bpe", dir);
    return lmu_tokenizer_load_files(tok, enc, bpe, err, cap);
}

/* ---- time and progress ------------------------------------------------------ */

EX_UNUSED static double ex_now(void)
{
#if defined(_POSIX_C_SOURCE) && defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)time(NULL);
#endif
}

/* Is stderr a terminal? (Then progress is a bar redrawn in place.) */
EX_UNUSED static int ex_tty(void)
{
#if defined(_POSIX_C_SOURCE)
    static int tty = -1;
    if (tty < 0) tty = isatty(fileno(stderr));
    return tty;
#else
    return 0;
#endif
}

/* 1h02m, 3m05s, 12s */
EX_UNUSED static void ex_fmt_time(char *buf, size_t cap, double s)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

/* 1.23G, 4.56M, 12.3k, 999 */
EX_UNUSED static void ex_fmt_count(char *buf, size_t cap, double x)
{
    if (x >= 1e9) snprintf(buf, cap, "%.2fG", x / 1e9);
    else if (x >= 1e6) snprintf(buf, cap, "%.2fM", x / 1e6);
    else if (x >= 1e4) snprintf(buf, cap, "%.1fk", x / 1e3);
    else snprintf(buf, cap, "%.0f", x);
}

/* Prints whole lines: on a terminal to stderr, above the progress bar;
   otherwise to stdout (a log). */
EX_UNUSED EX_PRINTF(1, 2) static void ex_say(const char *fmt, ...)
{
    va_list ap;
    FILE *f = ex_tty() ? stderr : stdout;
    if (ex_bar_shown) fprintf(stderr, "\r%*s\r", 100, "");
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fflush(f);
    ex_bar_shown = 0;
}

/* Training progress after `step` of p->steps. On a terminal: a bar
   redrawn at most 10 times a second (and at the last step), with the
   smoothed loss. Otherwise: a plain line every p->every steps and at the
   last, with the step's own loss. */
typedef struct ex_progress {
    long steps, every;
    double drawn; /* when the bar was last drawn */
} ex_progress;

EX_UNUSED static void ex_progress_show(ex_progress *p, long step, double loss, double smooth,
                                       double lr, double tokens_per_s, double eta_s)
{
    char t[32], e[32];
    int last = step >= p->steps;
    double frac = (double)step / (double)(p->steps > 0 ? p->steps : 1);
    ex_fmt_count(t, sizeof t, tokens_per_s);
    ex_fmt_time(e, sizeof e, eta_s);
    if (ex_tty()) {
        char bar[32];
        int i, w = 24;
        if (!last && ex_now() - p->drawn <= 0.1) return;
        for (i = 0; i < w; i++) bar[i] = i < (int)(w * frac) ? '#' : '.';
        bar[w] = 0;
        fprintf(stderr, "\r%s %3.0f%% step %ld/%ld | loss %.4f | lr %.2e | %s tok/s | ETA %s   ", bar,
                100.0 * frac, step, p->steps, smooth, lr, t, e);
        fflush(stderr);
        ex_bar_shown = 1;
        p->drawn = ex_now();
    } else if (last || (p->every > 0 && step % p->every == 0))
        ex_say("step %ld/%ld  loss %.4f  lr %.2e  %s tok/s  ETA %s\n", step, p->steps, loss, lr, t, e);
}

#endif
