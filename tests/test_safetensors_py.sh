#!/usr/bin/env bash
# test_safetensors_py.sh - safetensors files cross between lmu.h and Python.
#
#   C writes, Python reads: an independent reader (struct + json + numpy) and,
#     when Debian ships it, the reference safetensors package.
#   Python writes, C reads: an independent writer (ASCII-escaped and raw
#     UTF-8 JSON, padded and unpadded headers, data in another order than the
#     header) and the reference writer when installed; the C dump must equal
#     the dump Python computes from what it wrote.
#   Python writes corrupt files, C must refuse each with a message.
#
# Run from anywhere (it moves to the repo root). Installs python3-numpy with
# apt-get if missing. Extra compiler flags for the helper: LMU_EXTRA_CFLAGS.
# Ends with "test_safetensors_py: N passed, N failed"; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.." || exit 1

passed=0
failed=0
pass() { passed=$((passed + 1)); if [ -n "${VERBOSE:-}" ]; then echo "  ok   $1"; fi; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; }
finish() {
    echo "test_safetensors_py: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

PY=/usr/bin/python3 # Debian's python, where python3-numpy installs
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
apt_install() {
    echo "test_safetensors_py: installing $* with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
need=()
[ -x "$PY" ] || need+=(python3)
{ [ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null; } || need+=(python3-numpy)
if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}" || { fail "could not install ${need[*]}"; finish; }
fi
"$PY" -c 'import numpy' 2>/dev/null && pass "python3-numpy available" || { fail "numpy still missing"; finish; }

# The reference package, only if Debian has it (it is not in bookworm).
if ! "$PY" -c 'import safetensors.numpy' 2>/dev/null; then
    if apt-cache policy python3-safetensors 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt_install python3-safetensors || true
    fi
fi
if "$PY" -c 'import safetensors.numpy' 2>/dev/null; then
    echo "test_safetensors_py: also checking against the safetensors package"
else
    echo "test_safetensors_py: safetensors package not available from Debian; independent reader/writer only"
fi

mkdir -p build
TOOL=build/safetensors_tool
# shellcheck disable=SC2086
if cc -std=c99 -O2 -Wall -Wextra -I. ${LMU_EXTRA_CFLAGS:-} tests/safetensors_tool.c -o "$TOOL" $(pkg-config --cflags --libs stb) -lm; then
    pass "helper builds"
else
    fail "helper does not build"
    finish
fi

WORK=$(mktemp -d build/st_py.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Counts the PASS:/FAIL: lines a Python step prints.
run_py() {
    local out rc line
    out=$("$PY" tests/safetensors_py_check.py "$@" 2>&1)
    rc=$?
    while IFS= read -r line; do
        case "$line" in
        PASS:*) pass "${line#PASS: }" ;;
        FAIL:*) fail "${line#FAIL: }" ;;
        *) [ -n "$line" ] && echo "  $line" ;;
        esac
    done <<<"$out"
    [ $rc -eq 0 ] || fail "python $1 exited $rc"
}

# 1. C writes, Python reads
if "$TOOL" write "$WORK/c.safetensors"; then
    pass "C writes the sample"
    run_py check-c "$WORK/c.safetensors"
else
    fail "C could not write the sample"
fi

# 2. Python writes, C reads
run_py write-py "$WORK"
for f in "$WORK"/py_*.safetensors; do
    [ -e "$f" ] || continue
    base=${f%.safetensors}
    name=$(basename "$base")
    if "$TOOL" dump "$f" >"$base.got" 2>"$base.err"; then
        if cmp -s "$base.got" "$base.expect"; then
            pass "C reads $name bit-exactly"
        else
            fail "C dump of $name differs:"
            diff "$base.expect" "$base.got" | head -20
        fi
    else
        fail "C refused $name: $(cat "$base.err")"
    fi
done

# 3. C refuses corrupt files, each with a message
run_py write-bad "$WORK"
nbad=0
for f in "$WORK"/bad_*.safetensors; do
    [ -e "$f" ] || continue
    nbad=$((nbad + 1))
    name=$(basename "$f" .safetensors)
    msg=$("$TOOL" load "$f" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -eq 1 ] && [ -n "$msg" ]; then
        pass "C refuses $name ($msg)"
    else
        fail "C did not refuse $name (exit $rc, '$msg')"
    fi
done
[ $nbad -ge 10 ] && pass "$nbad corrupt files tried" || fail "only $nbad corrupt files were written"

# 4. a C file survives a Python round trip through the independent writer:
#    covered by 1 + 2; finally the C file itself loads in C.
"$TOOL" load "$WORK/c.safetensors" && pass "C reloads its own sample" || fail "C cannot reload its own sample"

finish
