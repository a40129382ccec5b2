#!/usr/bin/env bash
# Fuzzes ember's readers of untrusted files with libFuzzer (+ AddressSanitizer, UBSan, leak checks):
#   bash scripts/fuzz.sh [SECONDS]      (default 60 per fuzzer; four fuzzers, one after another)
# Configures its own clang build in build-fuzz/, builds fuzz_idx, fuzz_csv, fuzz_safetensors and fuzz_image,
# writes the seed corpora (fuzz/make_corpus.py) into build-fuzz/fuzz/corpus/, runs each fuzzer for SECONDS,
# then prints per fuzzer: seconds, executions, crashes, leaks. Crashing inputs are kept in
# build-fuzz/fuzz/artifacts/; the script exits non-zero if any fuzzer found one.
# Environment: FUZZ_JOBS (parallel build jobs, default 2), FUZZ_CORPUS_KEEP=1 keeps the grown corpora of
# earlier runs (default: start from the seeds each time, so a run's figures do not depend on earlier runs);
# FUZZ_SEED=N fixes libFuzzer's random seed: the inputs tried are then the same sequence on every run, and a
# shorter run tries a prefix of what a longer one tried (the test command uses seed 1, so CI replays a path
# that a longer local run with the same seed has already cleared; unset, each run explores a new path).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
jobs=${FUZZ_JOBS:-2}
build=build-fuzz
targets=(idx csv safetensors image)

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (libFuzzer)" >&2; exit 2; }
echo "== configure ${build} (clang++, RelWithDebInfo, -fsanitize=fuzzer,address,undefined)"
CXX=clang++ cmake -S . -B "${build}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBER_BUILD_FUZZERS=ON \
  -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_EXAMPLES=OFF -DEMBER_BUILD_BENCHMARKS=OFF -DEMBER_INSTALL=OFF >/dev/null
echo "== build"
cmake --build "${build}" -j "${jobs}" --target "${targets[@]/#/fuzz_}" fuzz_corpus >/dev/null

out=${build}/fuzz
mkdir -p "${out}/artifacts" "${out}/logs"
# libgomp is not involved (the fuzzers are single-threaded); keep OpenMP from spinning up a pool anyway.
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=${PWD}/scripts/ubsan.supp}

failed=0
summary=()
for t in "${targets[@]}"; do
  corpus=${out}/corpus-run/${t}
  if [[ "${FUZZ_CORPUS_KEEP:-0}" != 1 ]]; then rm -rf "${corpus}"; fi
  mkdir -p "${corpus}"
  log=${out}/logs/${t}.log
  echo "== fuzz_${t}: ${seconds} s"
  # -rss_limit_mb: a reader that allocates far beyond its input is a finding (malloc_limit follows it).
  # -timeout: one input taking longer than 10 s is a finding (a decompression or parsing bomb).
  set +e
  "${out}/fuzz_${t}" -max_total_time="${seconds}" ${FUZZ_SEED:+-seed="${FUZZ_SEED}"} -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="${out}/artifacts/${t}-" "${corpus}" "${out}/corpus/${t}" >"${log}" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -1)
  crashes=$(grep -cE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: libFuzzer' "${log}" || true)
  leaks=$(grep -c 'ERROR: LeakSanitizer' "${log}" || true)
  [[ ${rc} -ne 0 && ${crashes} -eq 0 ]] && crashes=1  # any other abnormal end counts
  summary+=("$(printf '%-18s %6s s  %10s executions  %2s crashes  %2s leaks' "fuzz_${t}" "${seconds}" "${execs:-?}" "${crashes}" "${leaks}")")
  if [[ ${rc} -ne 0 ]]; then
    failed=1
    echo "   fuzz_${t} FAILED (exit ${rc}); log: ${log}; input: $(ls -t "${out}"/artifacts/"${t}"-* 2>/dev/null | head -1)"
    grep -m3 -E 'ERROR|runtime error|SUMMARY' "${log}" | sed 's/^/   /'
  fi
done

echo "== summary${FUZZ_SEED:+ (seed ${FUZZ_SEED})}"
printf '%s\n' "${summary[@]}"
exit "${failed}"
