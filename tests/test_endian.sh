#!/usr/bin/env bash
# Checkpoints and token files are little-endian on every machine: proven on
# a big-endian one. The tests that read and write files are cross-compiled
# for s390x (big-endian) and run under qemu-user:
#   * test_safetensors and test_data, whole; test_kernels (s390x also has
#     FLT_EVAL_METHOD 1: float expressions evaluate in double);
#   * test_faults --train: training, a checkpoint round trip, generation,
#     tokenizer, token and config files on s390x;
#   * files written from fixed known values (a model checkpoint with
#     optimizer state, a token file, a safetensors file of six dtypes) on
#     s390x and on this machine are byte-identical, and each machine reads
#     the other's files back value for value.
# Installs what it needs on a fresh Debian machine: gcc-s390x-linux-gnu
# (brings the s390x libc) and qemu-user. stb_ds comes from lmu.h itself
# (LMU_STB_DS_IMPLEMENTATION, the header from libstb-dev): no s390x libstb.
# The s390x builds are static and without OpenMP, to need no s390x runtime.
set -u
cd "$(dirname "$0")/.."
B=build/endian
mkdir -p "$B"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $*"; }
bad() { failed=$((failed + 1)); echo "  FAIL $*"; }
finish() {
    echo "test_endian: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
XCC=${XCC:-s390x-linux-gnu-gcc}
QEMU=${QEMU:-qemu-s390x}
if ! command -v "$XCC" >/dev/null 2>&1 || ! command -v "$QEMU" >/dev/null 2>&1; then
    echo "test_endian: installing gcc-s390x-linux-gnu qemu-user" >&2
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq gcc-s390x-linux-gnu qemu-user >/dev/null 2>&1 ||
        { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq gcc-s390x-linux-gnu qemu-user >/dev/null 2>&1; }
fi
command -v "$XCC" >/dev/null 2>&1 || { bad "no $XCC"; finish; }
command -v "$QEMU" >/dev/null 2>&1 || { bad "no $QEMU"; finish; }
STB_CFLAGS=$(pkg-config --cflags stb 2>/dev/null || echo -I/usr/include/stb)
STB_INC=$(echo "$STB_CFLAGS" | sed -n 's/.*-I\([^ ]*\).*/\1/p')
[ -n "$STB_INC" ] || STB_INC=/usr/include/stb
[ -f "$STB_INC/stb_ds.h" ] || { bad "stb_ds.h not found (libstb-dev)"; finish; }

deps="lmu.h lmu_fft.h tests/lmu_test.h tests/fuzz/fuzz_vocab.h"
xbuild() { # name: tests/test_NAME.c -> $B/test_NAME_s390x, when out of date
    local src=tests/test_$1.c out=$B/test_$1_s390x s
    local stale=0
    [ -e "$out" ] || stale=1
    for s in "$src" $deps; do [ "$s" -nt "$out" ] && stale=1; done
    [ "$stale" = 0 ] && return 0
    "$XCC" -std=c99 -O2 -static -DLMU_STB_DS_IMPLEMENTATION -I. -isystem "$STB_INC" "$src" -o "$out" -lm
}

# 0. the target really is big-endian
cat > "$B/order.c" <<'EOF'
#include <stdio.h>
int main(void)
{
    unsigned x = 0x01020304u;
    unsigned char *p = (unsigned char *)&x;
    puts(p[0] == 1 ? "big-endian" : p[0] == 4 ? "little-endian" : "other");
    return 0;
}
EOF
"$XCC" -static "$B/order.c" -o "$B/order_s390x" 2>/dev/null
order=$("$QEMU" "$B/order_s390x" 2>&1)
[ "$order" = big-endian ] && ok "s390x under $QEMU is big-endian" || { bad "s390x byte order: '$order'"; finish; }

# 1. the file tests, whole, on s390x; and the kernels, whose float tricks
#    met FLT_EVAL_METHOD 1 there (exp(1) was 2 before the fix)
for t in safetensors data kernels; do
    if ! xbuild "$t"; then bad "cross-build test_$t"; continue; fi
    out=$("$QEMU" "$B/test_${t}_s390x" 2>&1)
    rc=$?
    line=$(printf '%s\n' "$out" | grep -E "^[A-Za-z0-9_]+: [0-9]+ passed, [0-9]+ failed$" | tail -n 1)
    if [ "$rc" -eq 0 ] && [ -n "$line" ]; then ok "s390x $line"; else
        bad "s390x test_$t (exit $rc): ${line:-no closing line}"
        printf '%s\n' "$out" | grep -E 'FAIL' | head -n 20
    fi
done

# 2. training + checkpoints on s390x
if xbuild faults; then
    out=$("$QEMU" "$B/test_faults_s390x" --train 2>&1)
    rc=$?
    line=$(printf '%s\n' "$out" | grep -E "^test_faults_train: " | tail -n 1)
    if [ "$rc" -eq 0 ]; then ok "s390x training run: $line"; else bad "s390x training run (exit $rc): $line"; printf '%s\n' "$out" | grep FAIL; fi
else
    bad "cross-build test_faults"
    finish
fi

# 3. files from fixed values: byte-identical, and each side reads the other's
make --no-print-directory -s build/test_faults >/dev/null || { bad "build build/test_faults"; finish; }
rm -rf "$B/x86" "$B/s390x"
mkdir -p "$B/x86" "$B/s390x"
build/test_faults --write-fixed "$B/x86" >/dev/null || bad "write the fixed files here"
"$QEMU" "$B/test_faults_s390x" --write-fixed "$B/s390x" >/dev/null || bad "write the fixed files on s390x"
for f in model.safetensors ids.tok dtypes.safetensors; do
    if [ -s "$B/x86/$f" ] && cmp -s "$B/x86/$f" "$B/s390x/$f"; then
        ok "$f written on s390x and on $(uname -m) is byte-identical ($(wc -c <"$B/x86/$f") bytes)"
    else
        bad "$f differs between s390x and $(uname -m)"
        cmp "$B/x86/$f" "$B/s390x/$f" 2>&1 | head -n 3
    fi
done
line=$("$QEMU" "$B/test_faults_s390x" --check-fixed "$B/x86" 2>&1 | tail -n 1)
case $line in *" 0 failed") ok "s390x reads the $(uname -m) files: $line" ;; *) bad "s390x reads the $(uname -m) files: $line" ;; esac
line=$(build/test_faults --check-fixed "$B/s390x" 2>&1 | tail -n 1)
case $line in *" 0 failed") ok "$(uname -m) reads the s390x files: $line" ;; *) bad "$(uname -m) reads the s390x files: $line" ;; esac
finish
