/* example_util.h - the few helpers the example programs share: a one-line
   fatal error and reading a whole file. Included by each example after
   lmu.h; not part of the library (programs may exit, libraries may not). */
#ifndef LMU_EXAMPLE_UTIL_H
#define LMU_EXAMPLE_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The program's name for "prog: message" errors, and an optional hook that
   runs first (train ends its progress line there). */
#if defined(__GNUC__) || defined(__clang__)
#define EX_UNUSED __attribute__((unused)) /* not every example reads files */
#else
#define EX_UNUSED
#endif

static const char *ex_prog = "example";
static void (*ex_before_die)(void);

EX_UNUSED static void ex_die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    if (ex_before_die) ex_before_die();
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", ex_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* A command-line number: all of s parsed, finite, within lo..hi and, when
   whole, an integer. The one parser of every example's numeric options. */
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

/* The whole file, NUL-terminated (not counted in *n); NULL with errno set
   when it cannot be opened. Running out of memory or a read error is
   fatal. */
EX_UNUSED static char *ex_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 16, len = 0, got;
    char *b, *nb;
    if (!f) return NULL;
    b = (char *)malloc(cap + 1);
    while (b && (got = fread(b + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            nb = (char *)realloc(b, (cap *= 2) + 1);
            if (!nb) free(b);
            b = nb;
        }
    }
    if (!b) ex_die("out of memory reading %s", path);
    if (ferror(f)) ex_die("cannot read %s: %s", path, strerror(errno));
    fclose(f);
    b[len] = 0;
    *n = len;
    return b;
}

#endif
