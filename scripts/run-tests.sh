#!/usr/bin/env bash
# The whole test suite: installs what is needed, builds and runs every test through ctest in the release
# preset (g++), the headers and the core and layer tests with clang++ (the clang preset), then the whole suite
# under AddressSanitizer + UndefinedBehaviorSanitizer (the asan preset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
for preset in release clang asan; do
  echo "== ${preset}: configure, build, test"
  cmake --preset "${preset}" >/dev/null
  cmake --build --preset "${preset}"
  ctest --preset "${preset}"
done
