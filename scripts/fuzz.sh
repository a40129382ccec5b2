#!/usr/bin/env bash
# Fuzzes ember's readers of untrusted files with libFuzzer (+ AddressSanitizer, UBSan, leak checks).
#   bash scripts/fuzz.sh [SECONDS]         explore: each reader SECONDS (default 60) from the kept corpus
#                                          fuzz/corpus/<reader>/ plus the seeds, with a random seed; inputs
#                                          that add coverage are merged back (minimised) into fuzz/corpus/
#   bash scripts/fuzz.sh --ci [SECONDS]    the test command's run: replays every input of fuzz/corpus/<reader>/
#                                          one by one, then fuzzes SECONDS (default 30) from it with FUZZ_SEED
#                                          (default 1) in a scratch copy; fuzz/corpus/ is left as it is
# Configures its own clang build in build-fuzz/ and builds fuzz_idx, fuzz_csv, fuzz_safetensors, fuzz_image,
# fuzz_exif, fuzz_onnx.
# One fuzzer runs at a time, on one core. Every run has a 256 MiB malloc limit with inputs of at most 16 KiB,
# so an allocation far beyond what an input can hold (a bomb) is a finding, as is a crash, a sanitizer report,
# a leak or an input taking over 10 s. Findings are kept in build-fuzz/fuzz/artifacts/; the script exits
# non-zero if there is any.
# Environment: FUZZ_RUNS=N stops each reader after N inputs instead of SECONDS (a campaign: 1000000);
# FUZZ_SEED=N fixes libFuzzer's random seed; FUZZ_TARGETS="idx csv" picks readers; FUZZ_JOBS parallel build
# jobs (default 2, the machine's cores); FUZZ_MERGE=0 leaves fuzz/corpus/ alone after exploring.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=explore
if [[ "${1:-}" == --ci ]]; then mode=ci; shift; fi
seconds=${1:-$([[ ${mode} == ci ]] && echo 30 || echo 60)}
jobs=${FUZZ_JOBS:-2}
build=build-fuzz
read -r -a targets <<<"${FUZZ_TARGETS:-idx csv safetensors image exif onnx}"
if [[ ${mode} == ci ]]; then FUZZ_SEED=${FUZZ_SEED:-1}; fi
options=(-malloc_limit_mb=256 -rss_limit_mb=2048 -max_len=16384 -timeout=10)

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (libFuzzer)" >&2; exit 2; }
echo "== configure ${build} (clang++, RelWithDebInfo, -fsanitize=fuzzer,address,undefined)"
CXX=clang++ cmake -S . -B "${build}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBER_BUILD_FUZZERS=ON \
  -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_EXAMPLES=OFF -DEMBER_BUILD_BENCHMARKS=OFF -DEMBER_INSTALL=OFF >/dev/null
echo "== build"
cmake --build "${build}" -j "${jobs}" --target "${targets[@]/#/fuzz_}" fuzz_corpus >/dev/null

out=${build}/fuzz
mkdir -p "${out}/artifacts" "${out}/logs"
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=${PWD}/scripts/ubsan.supp}

failed=0
summary=()
for t in "${targets[@]}"; do
  kept=fuzz/corpus/${t}
  mkdir -p "${kept}"
  log=${out}/logs/${t}.log
  : >"${log}"
  replayed=-
  if [[ ${mode} == ci ]]; then
    # Every committed input, named one by one: each runs whole and alone, and a failure names its file.
    mapfile -t inputs < <(find "${kept}" -type f | sort)
    replayed=${#inputs[@]}
    echo "== fuzz_${t}: replay ${replayed} inputs of ${kept}"
    if [[ ${replayed} -gt 0 ]] && ! "${out}/fuzz_${t}" "${options[@]}" "${inputs[@]}" >>"${log}" 2>&1; then
      failed=1
      echo "   fuzz_${t}: a committed input fails; log: ${log}"
      grep -m3 -E 'ERROR|runtime error|SUMMARY|Running:' "${log}" | sed 's/^/   /'
      summary+=("$(printf '%-18s replay of %s inputs FAILED' "fuzz_${t}" "${replayed}")")
      continue
    fi
  fi
  # The fuzzer writes new inputs into a scratch corpus, never straight into fuzz/corpus/.
  scratch=${out}/corpus-run/${t}
  rm -rf "${scratch}"
  mkdir -p "${scratch}"
  cp "${kept}"/* "${scratch}"/ 2>/dev/null || true
  limit=(-max_total_time="${seconds}")
  [[ -n "${FUZZ_RUNS:-}" ]] && limit=(-runs="${FUZZ_RUNS}")
  echo "== fuzz_${t}: $([[ -n "${FUZZ_RUNS:-}" ]] && echo "${FUZZ_RUNS} inputs" || echo "${seconds} s"), seed ${FUZZ_SEED:-random}"
  start=$(date +%s)
  set +e
  "${out}/fuzz_${t}" "${limit[@]}" ${FUZZ_SEED:+-seed="${FUZZ_SEED}"} -print_final_stats=1 "${options[@]}" \
    -artifact_prefix="${out}/artifacts/${t}-" "${scratch}" "${out}/corpus/${t}" >>"${log}" 2>&1
  rc=$?
  set -e
  took=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "${log}" | tail -1)
  seed=$(sed -n 's/.*Seed: \([0-9]*\).*/\1/p' "${log}" | tail -1)
  crashes=$(grep -cE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: libFuzzer|out-of-memory' "${log}" || true)
  leaks=$(grep -c 'ERROR: LeakSanitizer' "${log}" || true)
  [[ ${rc} -ne 0 && ${crashes} -eq 0 ]] && crashes=1  # any other abnormal end counts
  if [[ ${mode} == explore && "${FUZZ_MERGE:-1}" == 1 && ${rc} -eq 0 ]]; then
    # Minimise the kept corpus: the smallest set of the kept, new and seed inputs that reaches every edge they
    # reach (-use_counters=0: edges, not hit counts, which would keep three times the files).
    merged=${out}/corpus-merge/${t}
    rm -rf "${merged}"
    mkdir -p "${merged}"
    "${out}/fuzz_${t}" -merge=1 -use_counters=0 "${options[@]}" "${merged}" "${kept}" "${scratch}" "${out}/corpus/${t}" >>"${out}/logs/${t}-merge.log" 2>&1
    rm -rf "${kept:?}"/*
    cp "${merged}"/* "${kept}"/
  fi
  files=$(find "${kept}" -type f | wc -l)
  kib=$(( $(find "${kept}" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}') / 1024 ))
  summary+=("$(printf '%-18s %5s s  %9s inputs  seed %-10s  %-20s  corpus %4s files %5s KiB  replayed %4s  %s crashes  %s leaks' \
    "fuzz_${t}" "${took}" "${execs:-?}" "${seed:-?}" "${cov:-?}" "${files}" "${kib}" "${replayed}" "${crashes}" "${leaks}")")
  if [[ ${rc} -ne 0 ]]; then
    failed=1
    echo "   fuzz_${t} FAILED (exit ${rc}); log: ${log}; input: $(ls -t "${out}"/artifacts/"${t}"-* 2>/dev/null | head -1)"
    grep -m3 -E 'ERROR|runtime error|SUMMARY|out-of-memory' "${log}" | sed 's/^/   /'
  fi
done

echo "== summary (${mode}$([[ ${mode} == ci ]] && echo ", seed ${FUZZ_SEED}"); $(date -u +%Y-%m-%d))"
printf '%s\n' "${summary[@]}"
exit "${failed}"
