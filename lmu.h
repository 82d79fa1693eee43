/* lmu.h - Legendre Memory Unit language models in one C99 header. v0.1.0, MIT licence (end of file).

   Do this:
       #define LMU_IMPLEMENTATION
   before you include this file in *one* C file to create the implementation.
   lmu.h includes lmu_fft.h (keep both side by side); LMU_IMPLEMENTATION
   implies LMU_FFT_IMPLEMENTATION.

       // one file
       #define LMU_IMPLEMENTATION
       #include "lmu.h"
       // every other file
       #include "lmu.h"

   Build: cc -O3 -march=native [-fopenmp] app.c $(pkg-config --cflags --libs stb) -lm

   TABLE OF CONTENTS (search for the anchor)
       >>config        compile-time options, decoration macros, result codes
       >>alloc         allocator macros
       >>rng           the library's own seeded random numbers
       >>fft-glue      what lmu.h takes from lmu_fft.h
       >>gemm          sgemm, packed and register-blocked
       >>tensor        tensors and the arena they live in
       >>tape          reverse-mode autograd tape
       >>ops           every op: one forward, one backward
       >>lmu           the LTI memory and the implicit self-attention block
       >>transformer   the GPT-2 baseline
       >>optim         Adam/AdamW, clipping, schedules
       >>tokenizer     GPT-2 byte-level BPE (stb_ds hash maps)
       >>safetensors   checkpoints
       >>generate      recurrent generation and sampling

   COMPILE-TIME OPTIONS
       LMU_STATIC                 (globally) every public function is static
       LMU_ASSERT(x)              (implementation file) internal invariants;
                                  default assert(). Never used on user input.
       LMU_MALLOC(sz) LMU_REALLOC(p,sz) LMU_FREE(p)
                                  (implementation file) all three or none
       LMU_NO_STDIO               (implementation file) no file I/O; the
                                  *_memory loaders remain
       LMU_STB_DS_IMPLEMENTATION  (implementation file) emit stb_ds's
                                  implementation here instead of linking
                                  Debian's libstb (-lstb). Only then do stb_ds
                                  allocations go through LMU_REALLOC/LMU_FREE:
                                  the prebuilt libstb uses realloc/free.

   ERRORS
       Every function that can fail returns an lmu_result. lmu_strerror()
       names the code; objects that parse outside data (tokenizer, checkpoint)
       also keep a detailed message (byte offset, tensor name) in their own
       `err` field, never in a global. The library never exits or aborts on bad
       input.

   THREADING
       No mutable global state. Objects are not locked: use one object from one
       thread at a time, or share the read-only ones (FFT plans, a loaded
       tokenizer's encode) as their documentation says. With -fopenmp the heavy
       loops run in parallel; results are deterministic for a fixed thread
       count.
*/
#if defined(LMU_IMPLEMENTATION) && !defined(LMU_FFT_IMPLEMENTATION)
#define LMU_FFT_IMPLEMENTATION
#endif
#include "lmu_fft.h"

#ifndef LMU_H
#define LMU_H

#include <stddef.h>
#include <stdint.h>

/* ====================================================================== */
/* >>config                                                                */
/* ====================================================================== */

#define LMU_VERSION_MAJOR 0
#define LMU_VERSION_MINOR 1
#define LMU_VERSION_PATCH 0

#ifndef LMUDEF
#ifdef LMU_STATIC
#define LMUDEF static
#else
#define LMUDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* One list, so the enum and lmu_strerror() cannot drift apart. */
#define LMU__RESULTS(X)                                                        \
    X(LMU_OK, "ok")                                                            \
    X(LMU_ERR_ARG, "invalid argument")                                         \
    X(LMU_ERR_SHAPE, "shapes do not fit")                                      \
    X(LMU_ERR_NOMEM, "out of memory")                                          \
    X(LMU_ERR_IO, "input/output error")                                        \
    X(LMU_ERR_FORMAT, "malformed file or data")                                \
    X(LMU_ERR_RANGE, "value out of range")                                     \
    X(LMU_ERR_CAPACITY, "capacity exceeded")                                   \
    X(LMU_ERR_NONFINITE, "NaN or Inf encountered")                             \
    X(LMU_ERR_STATE, "object in the wrong state for this call")                \
    X(LMU_ERR_FFT, "FFT error")

typedef enum lmu_result {
#define LMU__ENUM_ITEM(name, text) name,
    LMU__RESULTS(LMU__ENUM_ITEM)
#undef LMU__ENUM_ITEM
    LMU_RESULT_COUNT
} lmu_result;

/* Returns a static string naming the result code; never NULL. */
LMUDEF const char *lmu_strerror(lmu_result r);

/* ====================================================================== */
/* >>rng                                                                   */
/* ====================================================================== */

/* xoshiro256** seeded through splitmix64: small, fast, the same stream on
   every machine, so a seeded run is reproducible everywhere. */
typedef struct lmu_rng {
    uint64_t s[4];
} lmu_rng;

LMUDEF void lmu_rng_seed(lmu_rng *rng, uint64_t seed);
LMUDEF uint64_t lmu_rng_u64(lmu_rng *rng);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
LMUDEF float lmu_rng_uniform(lmu_rng *rng);
/* Standard normal (Box-Muller, one value per call, no cached state). */
LMUDEF float lmu_rng_normal(lmu_rng *rng);

#ifdef __cplusplus
}
#endif

#endif /* LMU_H */

/* ====================================================================== */
/*                         IMPLEMENTATION                                  */
/* ====================================================================== */
#ifdef LMU_IMPLEMENTATION
#ifndef LMU_IMPLEMENTATION_DONE
#define LMU_IMPLEMENTATION_DONE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <float.h>

/* ---------------------------------------------------------------------- */
/* >>alloc                                                                 */
/* ---------------------------------------------------------------------- */

#if defined(LMU_MALLOC) && defined(LMU_REALLOC) && defined(LMU_FREE)
/* all three given */
#elif !defined(LMU_MALLOC) && !defined(LMU_REALLOC) && !defined(LMU_FREE)
#define LMU_MALLOC(sz) malloc(sz)
#define LMU_REALLOC(p, sz) realloc(p, sz)
#define LMU_FREE(p) free(p)
#else
#error "Define all of LMU_MALLOC, LMU_REALLOC and LMU_FREE, or none of them."
#endif

#ifndef LMU_ASSERT
#include <assert.h>
#define LMU_ASSERT(x) assert(x)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LMU__PRIVATE static __attribute__((unused))
#else
#define LMU__PRIVATE static
#endif

/* OpenMP through one macro, so builds without -fopenmp see no pragma at all
   and stay -Wunknown-pragmas clean. */
#ifdef _OPENMP
#include <omp.h>
#define LMU__OMP(x) _Pragma(#x)
#else
#define LMU__OMP(x)
#endif

LMU__PRIVATE int lmu__thread_count(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

LMU__PRIVATE int lmu__thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Writes a formatted detail message into an object's own error buffer. */
LMU__PRIVATE void lmu__errf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (!buf || cap == 0) return;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* a * b with overflow detection; sizes from files go through this. */
LMU__PRIVATE int lmu__mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > (size_t)-1 / a) return 0;
    *out = a * b;
    return 1;
}

/* 64-byte alignment for everything the vector kernels touch. The raw pointer
   is kept just before the aligned block so LMU_FREE gets what LMU_MALLOC
   returned. */
LMU__PRIVATE void *lmu__alloc_aligned(size_t bytes)
{
    unsigned char *raw, *p;
    if (bytes > (size_t)-1 - 64 - sizeof(void *)) return NULL;
    raw = (unsigned char *)LMU_MALLOC(bytes + 64 + sizeof(void *));
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (64 - ((uintptr_t)p & 63)) & 63;
    memcpy(p - sizeof(void *), &raw, sizeof(void *));
    return p;
}

LMU__PRIVATE void lmu__free_aligned(void *p)
{
    void *raw;
    if (!p) return;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    LMU_FREE(raw);
}

/* ---------------------------------------------------------------------- */
/* >>config (implementation)                                               */
/* ---------------------------------------------------------------------- */

LMUDEF const char *lmu_strerror(lmu_result r)
{
    static const char *const names[] = {
#define LMU__NAME_ITEM(name, text) text,
        LMU__RESULTS(LMU__NAME_ITEM)
#undef LMU__NAME_ITEM
    };
    if ((int)r < 0 || (int)r >= (int)LMU_RESULT_COUNT) return "unknown result code";
    return names[r];
}

/* ---------------------------------------------------------------------- */
/* >>rng (implementation)                                                  */
/* ---------------------------------------------------------------------- */

LMU__PRIVATE uint64_t lmu__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

LMUDEF void lmu_rng_seed(lmu_rng *rng, uint64_t seed)
{
    int i;
    for (i = 0; i < 4; i++) rng->s[i] = lmu__splitmix64(&seed);
}

LMU__PRIVATE uint64_t lmu__rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

LMUDEF uint64_t lmu_rng_u64(lmu_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = lmu__rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lmu__rotl64(s[3], 45);
    return result;
}

LMUDEF float lmu_rng_uniform(lmu_rng *rng)
{
    return (float)(lmu_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

LMUDEF float lmu_rng_normal(lmu_rng *rng)
{
    /* u1 in (0, 1] so log() never sees zero. */
    double u1 = ((double)(lmu_rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(lmu_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2));
}

#endif /* LMU_IMPLEMENTATION_DONE */
#endif /* LMU_IMPLEMENTATION */

/*
   REVISION HISTORY
       0.1.0  first version

   LICENCE
       MIT. Copyright (c) 2026 The lmu.h authors. See LICENSE for the text.
*/
