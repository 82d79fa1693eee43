#!/usr/bin/env bash
# Installs what the tests and benchmarks need from Debian's packages, once.
# Idempotent: packages already present are not touched. Usage:
#   tools/setup.sh            build + test dependencies
#   tools/setup.sh bench      also the peers the benchmarks compare against
#   tools/setup.sh torch      the PyTorch reference's (python3-torch)
#   tools/setup.sh mpi        Open MPI, for build/train_mpi and its test
set -eu
need=(pkg-config libstb-dev gnuplot-nox clang libclang-rt-14-dev valgrind)
[ "${1:-}" = bench ] && need+=(libfftw3-dev libopenblas-dev libjemalloc2)
[ "${1:-}" = torch ] && need+=(python3-torch python3-numpy)
[ "${1:-}" = mpi ] && need+=(openmpi-bin libopenmpi-dev)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]} with apt-get" >&2
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
