#!/usr/bin/env bash
# Compile tier: lmu.h and lmu_fft.h build warning-free wherever C99 does.
#
#   * gcc and clang, -std=c99 -pedantic -Wall -Wextra -Wshadow -Wconversion
#     -Werror at -O2 (some warnings only appear with the optimiser on), with
#     and without -fopenmp, once per SIMD path (portable C, AVX2+FMA,
#     AVX-512) on x86-64;
#   * the implementation compiled as C++ (g++ and clang++ -std=c++11), and a
#     declarations-only C++ TU;
#   * a two-file program: both headers included twice in each file, the
#     implementation in exactly one; it links and runs;
#   * `nm`: every global symbol of the implementation object starts with
#     lmu_ (STYLE item 3);
#   * LMU_STATIC (no global symbol at all, no unused-function warning),
#     LMU_NO_STDIO (no file I/O referenced), LMU_NO_SIMD,
#     LMU_STB_DS_IMPLEMENTATION linked without -lstb.
#
# Warning classes NOT enabled, with the reason:
#   g++ -Wmaybe-uninitialized with AVX-512 intrinsics: GCC 12's own
#     avx512fintrin.h (_mm512_undefined_ps self-initialises) warns in C++ only
#     (GCC bug 105593, fixed in 13). The C++ builds therefore target the
#     generic x86-64 ISA; the AVX-512 code is checked by the C builds.
# Compile-only where possible, on one TU, to stay cheap (~1-2 min).
set -u
cd "$(dirname "$0")/.."
W=build/strict
mkdir -p "$W"
STB_CFLAGS=$(pkg-config --cflags stb 2>/dev/null || echo -I/usr/include/stb)
STB_LIBS=$(pkg-config --libs stb 2>/dev/null || echo -lstb)
STB_INC=$(echo "$STB_CFLAGS" | sed -n 's/.*-I\([^ ]*\).*/\1/p')
[ -n "$STB_INC" ] || STB_INC=/usr/include/stb
STRICT="-std=c99 -pedantic -Wall -Wextra -Wshadow -Wconversion -Werror"
STRICTXX="-std=c++11 -pedantic -Wall -Wextra -Wshadow -Wconversion -Werror"
passed=0
failed=0

# check NAME CMD...: runs CMD, counts it, shows its output on failure.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "  ok   $name"
    else
        failed=$((failed + 1))
        echo "  FAIL $name"
        printf '%s\n' "$out" | head -n 40 | sed 's/^/       /'
    fi
}

have() { command -v "$1" >/dev/null 2>&1; }
for t in gcc clang g++ clang++ nm; do
    have "$t" || { echo "  FAIL $t not installed"; failed=$((failed + 1)); }
done

# Per-ISA flags: the SIMD kernels are compiled only when the target has them,
# so each path is built explicitly (compile-only: no need for the CPU).
if [ "$(uname -m)" = x86_64 ]; then
    ISA_GENERIC="-march=x86-64"
    ISA_AVX2="-mavx2 -mfma"
    ISA_AVX512="-march=skylake-avx512"
else
    ISA_GENERIC=""; ISA_AVX2=""; ISA_AVX512=""
fi

cat > "$W/impl.c" <<'EOF'
#define LMU_IMPLEMENTATION
#include "lmu.h"
EOF

# --- strict C builds of the implementation ---------------------------------
strict_c() { # cc omp isa
    "$1" $STRICT -O2 $2 $3 -I. $STB_CFLAGS -c "$W/impl.c" -o "$W/impl_$1.o"
}
check "gcc   c99 strict, portable kernels"        strict_c gcc ""       "$ISA_GENERIC"
check "gcc   c99 strict, -fopenmp, AVX2+FMA"      strict_c gcc -fopenmp "$ISA_AVX2"
check "gcc   c99 strict, AVX-512"                 strict_c gcc ""       "$ISA_AVX512"
check "clang c99 strict, -fopenmp, portable"      strict_c clang -fopenmp "$ISA_GENERIC"
check "clang c99 strict, AVX2+FMA"                strict_c clang ""       "$ISA_AVX2"
check "clang c99 strict, -fopenmp, AVX-512"       strict_c clang -fopenmp "$ISA_AVX512"

# --- C++ --------------------------------------------------------------------
cat > "$W/impl_cxx.cc" <<'EOF'
#define LMU_IMPLEMENTATION
#include "lmu.h"
EOF
cat > "$W/decl_cxx.cc" <<'EOF'
// A vendoring C++ file that only calls the C API.
#include "lmu.h"
#include "lmu_fft.h"
#include "lmu.h"
int lmu_cxx_probe(void);
int lmu_cxx_probe(void)
{
    lmu_config c = lmu_config();
    c.d_model = 8;
    return static_cast<int>(lmu_fft_next_pow2(5)) + (lmu_config_resolve(&c, nullptr, 0) == LMU_OK);
}
EOF
check "g++     -std=c++11 strict, declarations only" \
    g++ $STRICTXX -I. -c "$W/decl_cxx.cc" -o "$W/decl_cxx.o"
check "g++     -std=c++11 strict, implementation, -fopenmp" \
    g++ $STRICTXX -O2 -fopenmp $ISA_GENERIC -I. $STB_CFLAGS -c "$W/impl_cxx.cc" -o "$W/impl_cxx.o"
check "clang++ -std=c++11 strict, implementation, AVX-512" \
    clang++ $STRICTXX -O2 $ISA_AVX512 -I. $STB_CFLAGS -c "$W/impl_cxx.cc" -o "$W/impl_clangxx.o"

# --- two translation units, both headers twice, one implementation ---------
cat > "$W/two_a.c" <<'EOF'
/* The headers reach this file first without the implementation (as through
   another header), then again with it: the implementation sits outside the
   include guards (STYLE item 1). */
#include "lmu_fft.h"
#include "lmu.h"
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "lmu_fft.h"
#include "lmu.h"
EOF
cat > "$W/two_b.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include "lmu.h"
#include "lmu_fft.h"
#include "lmu.h"
#include "lmu_fft.h"
int main(void)
{
    lmu_rng rng;
    lmu_config c;
    lmu_fft_plan *p = NULL;
    int ok = 1;
    memset(&c, 0, sizeof c);
    c.vocab_size = 16;
    c.d_model = 8;
    c.n_ctx = 16;
    c.n_layer = 1;
    lmu_rng_seed(&rng, 1);
    ok &= lmu_rng_uniform(&rng) < 1.0f;
    ok &= strcmp(lmu_strerror(LMU_ERR_NOMEM), "out of memory") == 0;
    ok &= lmu_fft_next_pow2(100) == 128;
    ok &= lmu_fft_plan_create(&p, 64, LMU_FFT_REAL) == LMU_FFT_OK;
    lmu_fft_plan_destroy(p);
    ok &= lmu_config_resolve(&c, NULL, 0) == LMU_OK;
    printf("two-tu: %s\n", ok ? "ok" : "BAD");
    return ok ? 0 : 1;
}
EOF
two_tu() {
    gcc $STRICT -O1 -fopenmp -I. $STB_CFLAGS -c "$W/two_a.c" -o "$W/two_a.o" &&
        gcc $STRICT -O1 -I. -c "$W/two_b.c" -o "$W/two_b.o" &&
        gcc -fopenmp "$W/two_a.o" "$W/two_b.o" -o "$W/two_tu" $STB_LIBS -lm &&
        "$W/two_tu"
}
check "two TUs, headers twice each, one implementation: links and runs" two_tu

# Every global symbol defined by the implementation object is lmu_-prefixed.
nm_prefix() {
    local bad
    [ -s "$W/two_a.o" ] || { echo "no object"; return 1; }
    bad=$(nm -g --defined-only "$W/two_a.o" | awk 'NF >= 3 {print $3}' | grep -v '^lmu_')
    nm -g --defined-only "$W/two_a.o" | awk 'NF >= 3' | grep -q ' lmu_' || { echo "no lmu_ symbol seen: nm broken?"; return 1; }
    [ -z "$bad" ] || { echo "global symbols without the lmu_ prefix:"; echo "$bad"; return 1; }
}
check "nm: every global symbol starts with lmu_" nm_prefix

# --- compile-time options ---------------------------------------------------
cat > "$W/static.c" <<'EOF'
#define LMU_STATIC
#define LMU_IMPLEMENTATION
#include "lmu.h"
EOF
lmu_static() {
    gcc $STRICT -O1 -fopenmp -I. $STB_CFLAGS -c "$W/static.c" -o "$W/static.o" || return 1
    local g
    g=$(nm -g --defined-only "$W/static.o" | awk 'NF >= 3 {print $3}')
    [ -z "$g" ] || { echo "LMU_STATIC object exports:"; echo "$g" | head; return 1; }
}
check "LMU_STATIC: strict, no unused-function warning, no global symbol" lmu_static

no_stdio() {
    clang $STRICT -O1 -DLMU_NO_STDIO -I. $STB_CFLAGS -c "$W/impl.c" -o "$W/nostdio.o" || return 1
    local u
    u=$(nm -u "$W/nostdio.o" | awk '{print $2}' |
        grep -E '^(fopen|fopen64|fclose|fread|fwrite|fflush|fseek|ftell|rename|remove|open|open64|write|fsync|close)$')
    [ -z "$u" ] || { echo "LMU_NO_STDIO object still references:"; echo "$u"; return 1; }
}
check "LMU_NO_STDIO: strict, no file I/O referenced" no_stdio

check "LMU_NO_SIMD + LMU_FFT_NO_SIMD: strict on an AVX-512 target" \
    gcc $STRICT -O2 -DLMU_NO_SIMD -DLMU_FFT_NO_SIMD $ISA_AVX512 -I. $STB_CFLAGS -c "$W/impl.c" -o "$W/nosimd.o"

# LMU_STB_DS_IMPLEMENTATION: stb_ds's implementation comes from lmu.h, so the
# program links with no -lstb; the tokenizer's hash maps exercise it.
cat > "$W/stbds.c" <<'EOF'
#define LMU_STB_DS_IMPLEMENTATION
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/fuzz/fuzz_vocab.h"
#include <stdio.h>
int main(void)
{
    static char js[FV_JSON_CAP], bpe[FV_BPE_CAP];
    lmu_tokenizer *t = NULL;
    char err[256], back[64];
    int32_t ids[64];
    size_t jn, bn, n = 0, m = 0;
    const char *text = " abc ab\xff<|endoftext|> ba";
    int ok;
    fv_make(js, &jn, bpe, &bn);
    ok = lmu_tokenizer_load_memory(&t, js, jn, bpe, bn, err, sizeof err) == LMU_OK;
    ok = ok && lmu_encode(t, text, strlen(text), 1, ids, 64, &n) == LMU_OK;
    ok = ok && lmu_decode(t, ids, n, back, sizeof back, &m) == LMU_OK;
    ok = ok && m == strlen(text) && memcmp(back, text, m) == 0 && n < m;
    printf("stbds: %s %s\n", ok ? "ok" : "BAD", ok ? "" : err);
    lmu_tokenizer_free(t);
    return ok ? 0 : 1;
}
EOF
stbds_impl() {
    # -isystem: stb_ds.h is third-party code, not held to our warning set
    gcc $STRICT -O1 -I. -isystem "$STB_INC" "$W/stbds.c" -o "$W/stbds" -lm || return 1
    if ldd "$W/stbds" 2>/dev/null | grep -q libstb; then echo "linked libstb anyway"; return 1; fi
    "$W/stbds"
}
check "LMU_STB_DS_IMPLEMENTATION: strict, links without -lstb, tokenizer runs" stbds_impl

echo "test_strict: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
