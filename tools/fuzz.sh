#!/usr/bin/env bash
# The longer fuzzing run, for people (CI runs tests/test_fuzz.sh for 20 s a
# target). Same targets, seeds and regression replay; the corpus grows in
# build/fuzz/corpus/<target>/ and carries over between runs.
#
#   tools/fuzz.sh                  10 minutes per target, every target
#   tools/fuzz.sh 3600 model_load  an hour on one target
#   tools/fuzz.sh 0                replay seeds and tests/fuzz/regress/ only
#
# A crash is saved as build/fuzz/artifacts/<target>-crash-<sha1>; reproduce it
# with `build/fuzz/fuzz_<target> FILE`, fix it, then copy the file into
# tests/fuzz/regress/<target>/ so every later run replays it.
set -u
cd "$(dirname "$0")/.."
secs=${1:-600}
[ $# -gt 0 ] && shift
targets="$*"
FUZZ_SECONDS=$secs FUZZ_TARGETS=${targets:-${FUZZ_TARGETS:-}} exec tests/test_fuzz.sh
