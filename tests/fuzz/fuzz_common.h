/* fuzz_common.h - what every fuzz target shares: the implementation (with
   stb_ds's, so the sanitizers instrument it too) and FZ_ASSERT, which
   aborts so libFuzzer records the input as a crash.

   Each target defines LLVMFuzzerTestOneInput. Built two ways:
     clang -fsanitize=fuzzer,address,undefined      (tests/test_fuzz.sh, tools/fuzz.sh)
     cc -fsanitize=address,undefined replay.c-style (-DFZ_REPLAY_MAIN: a main()
        that runs the files named on the command line, for machines without
        libFuzzer) */
#ifndef LMU_FUZZ_COMMON_H
#define LMU_FUZZ_COMMON_H

#define LMU_STB_DS_IMPLEMENTATION
#define LMU_IMPLEMENTATION
#include "lmu.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_ASSERT(c)                                                           \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "FZ_ASSERT failed: %s (%s:%d)\n", #c, __FILE__,    \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A whole file through the library's own reader (NUL-terminated; free()
   it), or NULL when it cannot be read. */
static inline unsigned char *fz_slurp(const char *path, size_t *n)
{
    unsigned char *b;
    if (lmu__read_whole_file(path, "fuzz", 0, &b, n, NULL, 0) != LMU_OK) return NULL;
    return b;
}

#ifdef FZ_REPLAY_MAIN
/* Replays the files given as arguments (no fuzzing): what a machine without
   libFuzzer can still check. */
int main(int argc, char **argv)
{
    int i, n = 0;
    for (i = 1; i < argc; i++) {
        size_t len;
        unsigned char *b = fz_slurp(argv[i], &len);
        if (!b) {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            return 2;
        }
        LLVMFuzzerTestOneInput(b, len);
        free(b);
        n++;
    }
    printf("replayed %d inputs\n", n);
    return 0;
}
#endif

#endif
