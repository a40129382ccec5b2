#!/usr/bin/env bash
# Prepares a machine for the PyTorch comparison (benchmarks/compare/compare.py) and builds both ember trees it
# compares. Idempotent. Run as root (or with sudo) on Debian 12.
#
# Why: Debian's python3-torch depends on libblas.so.3, which a fresh machine provides with the netlib reference
# BLAS (libblas3): single-threaded and unblocked, 10-20x slower than PyTorch really is. libopenblas0-pthread
# takes over libblas.so.3 (update-alternatives priority 100 against 10). compare.py refuses to run against
# the reference BLAS all the same.
#
#   bash scripts/bench-setup.sh          install, check, configure and build build-bench and build-default
#   bash scripts/bench-setup.sh --check  only check what PyTorch loads
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" != "--check" ]]; then
  bash scripts/setup.sh
  packages=(python3-torch libopenblas0-pthread libbenchmark-dev)
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench-setup: installing ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
info=$(/usr/bin/python3 benchmarks/compare/torch_workloads.py --info)
echo "bench-setup: PyTorch loads: $info"
if echo "$info" | grep -q '"blas": "reference"'; then
  echo "bench-setup: PyTorch's sgemm_ is the reference BLAS; check 'update-alternatives --display libblas.so.3-x86_64-linux-gnu'" >&2
  exit 1
fi
[[ "${1:-}" == "--check" ]] && exit 0
# The two builds compare.py runs: ours with -march=native, and a user's default flags (-O3, no -march).
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEMBER_NATIVE=ON -DEMBER_BUILD_EXAMPLES=OFF >/dev/null
cmake -S . -B build-default -DCMAKE_BUILD_TYPE=Release -DEMBER_NATIVE=OFF -DEMBER_BUILD_EXAMPLES=OFF >/dev/null
for b in build-bench build-default; do
  cmake --build $b -j2 --target ember_workloads bench_gemm bench_conv2d bench_train_step
done
echo "bench-setup: ready; run /usr/bin/python3 benchmarks/compare/compare.py"
