/* nan_checkpoint.c - a copy of a training checkpoint with one parameter
   value poisoned, for tests/test_tools.sh: `train --resume` from it meets a
   NaN (or Inf) loss at every step, with no test hook in train itself.

     nan_checkpoint IN OUT [NAME [VALUE]]
       NAME   the parameter, by its checkpoint name (default ln_f.weight:
              the final LayerNorm, which every logit goes through)
       VALUE  nan (default), inf or -inf; its element 0 is set to it
   The optimizer state and the step are kept (lmu_model_save with_optim).
   tests/test_tools.sh builds it with the line below (as the examples).

   build: cc -std=c99 -O2 -I. tests/nan_checkpoint.c -o build/nan_checkpoint $(pkg-config --cflags --libs stb) -lm
*/
#define LMU_IMPLEMENTATION
#include "lmu.h"

int main(int argc, char **argv)
{
    const char *name = argc > 3 ? argv[3] : "ln_f.weight", *value = argc > 4 ? argv[4] : "nan";
    char err[256] = "";
    lmu_model *m;
    size_t n;
    float *p;
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: nan_checkpoint IN OUT [NAME [nan|inf|-inf]]\n");
        return 2;
    }
    if (lmu_model_load(&m, argv[1], err, sizeof err) != LMU_OK) {
        fprintf(stderr, "nan_checkpoint: cannot load %s\n", err);
        return 1;
    }
    if (!(p = lmu_model_param(m, name, &n)) || n == 0) {
        fprintf(stderr, "nan_checkpoint: %s has no parameter '%s'\n", argv[1], name);
        return 1;
    }
    if (!strcmp(value, "nan")) p[0] = (float)NAN;
    else if (!strcmp(value, "inf")) p[0] = (float)INFINITY;
    else if (!strcmp(value, "-inf")) p[0] = -(float)INFINITY;
    else {
        fprintf(stderr, "nan_checkpoint: value '%s': want nan, inf or -inf\n", value);
        return 2;
    }
    if (lmu_model_save(m, argv[2], 1) != LMU_OK) {
        fprintf(stderr, "nan_checkpoint: cannot save %s: %s\n", argv[2], lmu_model_error(m));
        return 1;
    }
    lmu_model_free(m);
    return 0;
}
