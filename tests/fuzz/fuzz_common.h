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

#ifdef FZ_REPLAY_MAIN
/* Replays the files given as arguments (no fuzzing): what a machine without
   libFuzzer can still check. */
int main(int argc, char **argv)
{
    int i, n = 0;
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        unsigned char *b;
        long len;
        if (!f) {
            fprintf(stderr, "cannot open %s\n", argv[i]);
            return 2;
        }
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        fseek(f, 0, SEEK_SET);
        b = (unsigned char *)malloc((size_t)len + 1);
        if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) return 2;
        fclose(f);
        LLVMFuzzerTestOneInput(b, (size_t)len);
        free(b);
        n++;
    }
    printf("replayed %d inputs\n", n);
    return 0;
}
#endif

#endif
