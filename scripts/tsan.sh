#!/usr/bin/env bash
# ThreadSanitizer run of the threaded code: ember's thread pool (test_core's "thread pool:" cases), the
# DataLoader's prefetch thread (test_data), the pool's paths in the layers and kernels (test_nn, with its
# "threads:" cases: layers large enough to be split across threads, chunked predict, predict() called from
# several threads at once), and fit with a loader (test_train).
#   bash scripts/tsan.sh            (configures and builds build-tsan/, then runs the four tests;
#                                    TSAN_TESTS="test_data" picks some)
# The pool synchronises through std::atomic, which TSan sees. OpenMP remains for the tests that compare the
# pool's split with OpenMP's: -fsanitize=thread with LLVM's OpenMP runtime (libomp) rather than GCC's libgomp:
# libgomp is not built with TSan, so its barriers would look like races. libomp's own synchronisation is made visible
# to TSan by LLVM's Archer tool (libarcher.so, loaded through OMP_TOOL_LIBRARIES), so parallel regions,
# barriers and reductions are checked, not suppressed. scripts/tsan.supp suppresses reports from inside the
# runtime library only; nothing in ember's own code is suppressed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-tsan
jobs=${TSAN_JOBS:-2}
read -r -a tests <<<"${TSAN_TESTS:-test_core test_data test_nn test_train}"

# The compiler: g++ (clang 14 rejects a C++20 capture of a structured binding in test_nn.cpp). Its OpenMP
# calls (GOMP_*) are served by LLVM's libomp, which implements that ABI, instead of libgomp.
libomp=${EMBER_LIBOMP:-$(ls /usr/lib/llvm-*/lib/libomp.so 2>/dev/null | sort -V | tail -1)}
[[ -f "${libomp}" ]] || { echo "tsan.sh: LLVM's libomp.so is needed (Debian: libomp-dev)" >&2; exit 2; }
archer="$(dirname "${libomp}")/libarcher.so"
if [[ -n "$(ls "${build}"/CMakeCache.txt 2>/dev/null)" ]] && ! grep -q "EMBER_TSAN_LIBOMP:STRING=${libomp}" "${build}/CMakeCache.txt"; then
  rm -rf "${build}"  # configured for another compiler or runtime
fi
# -O1 -g1: half the CPU of -O2 -g (test_nn: 42 against 78 s); line tables are enough for its reports.
echo "== configure ${build} (g++ -fsanitize=thread, OpenMP through ${libomp})"
CXX=g++ cmake -S . -B "${build}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
  -DOpenMP_CXX_FLAGS=-fopenmp -DOpenMP_CXX_LIB_NAMES=omp -DOpenMP_omp_LIBRARY="${libomp}" \
  -DEMBER_TSAN_LIBOMP:STRING="${libomp}" --no-warn-unused-cli \
  -DEMBER_SANITIZED=ON -DEMBER_BUILD_EXAMPLES=OFF -DEMBER_BUILD_BENCHMARKS=OFF -DEMBER_INSTALL=OFF >/dev/null
echo "== build ${tests[*]}"
cmake --build "${build}" -j "${jobs}" --target "${tests[@]}" >/dev/null

if [[ -f "${archer}" ]]; then
  export OMP_TOOL_LIBRARIES=${archer}
else
  echo "   (no libarcher.so next to libomp: OpenMP synchronisation is invisible to TSan; expect runtime reports)"
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}  # more threads than cores: more interleavings
export TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=0 second_deadlock_stack=1 history_size=4 suppressions=$(pwd)/scripts/tsan.supp ${TSAN_OPTIONS:-}"
failed=0
for t in "${tests[@]}"; do
  log=${build}/tsan-${t}.log
  echo "== ${t} (OMP_NUM_THREADS=${OMP_NUM_THREADS})"
  set +e
  (cd "${build}/tests" && "./${t}" --no-intro=true) >"${log}" 2>&1
  rc=$?
  set -e
  races=$(grep -c 'WARNING: ThreadSanitizer' "${log}" || true)
  echo "   exit ${rc}, ${races} ThreadSanitizer reports (log: ${log})"
  grep -E '^\[doctest\] (test cases|Status)' "${log}" | sed 's/^/   /' || true
  if [[ ${rc} -ne 0 || ${races} -ne 0 ]]; then failed=1; fi
done
exit "${failed}"
