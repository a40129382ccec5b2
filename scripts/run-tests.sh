#!/usr/bin/env bash
# The whole test suite: installs what is needed, builds and runs every test through ctest in the release
# preset (g++); the headers and the core and layer tests with clang++ (the clang preset); each libFuzzer target
# (IDX, CSV, safetensors, image readers) replays every input of its kept corpus fuzz/corpus/<reader>/, then
# fuzzes for FUZZ_SECONDS (default 30) from it under ASan + UBSan and a 256 MiB malloc limit, from the fixed
# FUZZ_SEED (default 1, so a run's result can be reproduced; scripts/fuzz.sh alone explores new seeds); then
# under ThreadSanitizer, the threaded code (scripts/tsan.sh: the loader, the parallel layers, predict from
# several threads, fit); last, the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (asan
# preset). The interop tests (a checkpoint through PyTorch) need Debian's python3-torch, which
# `setup.sh --interop` installs here only (the main job does not need it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --interop
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# ccache (used when installed): paths relative to the checkout, so that another clone of the same commit hits
# the cache, and the precompiled header's translation units cacheable.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
# Each stage's wall time, printed as it ends and again in a table at the end (CI allows 90 minutes in all).
times=()
stage() {  # name, command...
  local name=$1 start=$SECONDS
  shift
  "$@"
  local took=$((SECONDS - start))
  times+=("$(printf '%-8s %3d min %02d s' "${name}" $((took / 60)) $((took % 60)))")
  echo "== ${name}: done in $((took / 60)) min $((took % 60)) s"
}
suite() {
  echo "== $1: configure, build, test"
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1"
  ctest --preset "$1"
}
fuzz() {
  echo "== fuzz: replay fuzz/corpus/, then ${FUZZ_SECONDS:-30} s per reader"
  FUZZ_SEED=${FUZZ_SEED:-1} bash scripts/fuzz.sh --ci "${FUZZ_SECONDS:-30}"
}
tsan() {
  echo "== tsan: the loader, the parallel layers, predict and fit under ThreadSanitizer"
  bash scripts/tsan.sh
}
# EMBER_TEST_STAGES picks stages (e.g. "asan tsan"), for a developer re-running part; CI runs them all.
for name in ${EMBER_TEST_STAGES:-release clang fuzz tsan asan}; do
  case "${name}" in
    release | clang | asan) stage "${name}" suite "${name}" ;;
    fuzz) stage fuzz fuzz ;;
    tsan) stage tsan tsan ;;
    *) echo "run-tests.sh: unknown stage '${name}' (release, clang, fuzz, tsan, asan)" >&2; exit 2 ;;
  esac
done
echo "== stage times (total $((SECONDS / 60)) min $((SECONDS % 60)) s):"
printf '   %s\n' "${times[@]}"
