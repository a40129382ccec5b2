#!/usr/bin/env bash
# The whole test suite: installs what is needed, builds and runs every test through ctest in the release
# preset, then the same suite under AddressSanitizer + UndefinedBehaviorSanitizer (the asan preset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
for preset in release asan; do
  echo "== ${preset}: configure, build, test"
  cmake --preset "${preset}" >/dev/null
  cmake --build --preset "${preset}"
  ctest --preset "${preset}"
done
