/* lmu_test.h - the tiny harness every tests/test_*.c uses.

   A test program counts checks, prints one line per failure (and per passed
   check with -v), and ends with "<name>: N passed, N failed". It exits non-zero
   when anything failed. tools/run_tests.sh sums the closing lines of all
   programs into the suite's closing line. Tests are programs, not library
   code, so the counters here are plain statics. */
#ifndef LMU_TEST_H
#define LMU_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#if defined(__GNUC__) || defined(__clang__)
#define LT__UNUSED __attribute__((unused))
#else
#define LT__UNUSED
#endif

/* A whole file through the library's own reader (NUL-terminated; free it
   with LMU_FREE), or NULL with *n = 0 when it cannot be read. Only where
   the test has the implementation with stdio. */
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_NO_STDIO)
static LT__UNUSED unsigned char *lt_slurp(const char *path, size_t *n)
{
    unsigned char *b;
    if (lmu__read_whole_file(path, "test", 0, &b, n, NULL, 0) != LMU_OK) return NULL;
    return b;
}
#endif

static int lt__passed, lt__failed, lt__verbose;
static const char *lt__name = "test";

LT__UNUSED static void lt_begin(const char *name, int argc, char **argv)
{
    int i;
    lt__name = name;
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "-v") == 0) lt__verbose = 1;
}

/* Records one check. Returns cond so callers can stop early on failure. */
LT__UNUSED static int lt__check(int cond, const char *file, int line, const char *what)
{
    if (cond) {
        lt__passed++;
        if (lt__verbose) printf("  ok   %s\n", what);
    } else {
        lt__failed++;
        printf("  FAIL %s (%s:%d)\n", what, file, line);
    }
    fflush(stdout);
    return cond;
}

/* LT_CHECK(cond, fmt, ...): the message names the check and its numbers. */
#define LT_CHECK(cond, ...)                                                    \
    do {                                                                       \
        char lt__msg[512];                                                     \
        int lt__ok = (cond) ? 1 : 0; /* before the message reads results */    \
        snprintf(lt__msg, sizeof lt__msg, __VA_ARGS__);                        \
        lt__check(lt__ok, __FILE__, __LINE__, lt__msg);                        \
    } while (0)

LT__UNUSED static int lt_end(void)
{
    printf("%s: %d passed, %d failed\n", lt__name, lt__passed, lt__failed);
    return lt__failed ? 1 : 0;
}

/* Deterministic test data without touching the library's RNG. */
static unsigned long long lt__rng = 0x9E3779B97F4A7C15ULL;
LT__UNUSED static void lt_seed(unsigned long long s) { lt__rng = s ? s : 1; }
LT__UNUSED static double lt_uniform(void) /* in [-1, 1) */
{
    lt__rng ^= lt__rng << 13;
    lt__rng ^= lt__rng >> 7;
    lt__rng ^= lt__rng << 17;
    return (double)(lt__rng >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

#endif
