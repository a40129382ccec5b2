#!/usr/bin/env bash
# Thread stability: N back-to-back runs of one workload with the default threading, with one thread, and with
# passive waiting (OMP_WAIT_POLICY=passive: threads sleep at once instead of spinning), on a quiet machine and
# under a competing load of two busy threads (two `yes >/dev/null`), for one build or two (before/after, run
# alternately so that both see the same machine). Prints every run and, per set, the median, the worst run and
# their ratio to the better of the one-thread and passive medians.
#   bash scripts/thread-stability.sh [--runs 8] [--seconds 2] [--workload mlp_train_32] [--threads 2]
#        [--load quiet|busy|both] [--build build] [--base DIR_OF_AN_OLDER_BUILD]
# A build is a build directory holding benchmarks/ember_workloads (cmake --build build --target ember_workloads).
# The load average is printed with each set: on a shared machine "quiet" is only as quiet as the others let it be.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=8 seconds=2 workload=mlp_train_32 threads=2 load=both build=build base=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs=$2 ;;
    --seconds) seconds=$2 ;;
    --workload) workload=$2 ;;
    --threads) threads=$2 ;;
    --load) load=$2 ;;
    --build) build=$2 ;;
    --base) base=$2 ;;
    *) echo "thread-stability.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
declare -A bins=([new]="${build}/benchmarks/ember_workloads")
builds=(new)
if [[ -n "${base}" ]]; then
  bins[base]="${base}/benchmarks/ember_workloads"
  builds=(base new)
fi
for b in "${builds[@]}"; do
  [[ -x "${bins[$b]}" ]] || { echo "thread-stability.sh: no ${bins[$b]} (build the ember_workloads target)" >&2; exit 2; }
done
settings=(default one passive)
loads=(quiet busy)
[[ "${load}" == both ]] || loads=("${load}")

hogs=()
stop_hogs() {
  for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${hogs[@]}"; do wait "$p" 2>/dev/null || true; done
  hogs=()
}
trap stop_hogs EXIT

# images/s of one run
one_run() {
  local bin=$1 setting=$2 out
  case "${setting}" in
    default) out=$(env -u OMP_WAIT_POLICY -u EMBER_SPIN_US "${bin}" "${workload}" --seconds "${seconds}" --threads "${threads}") ;;
    one) out=$(env -u OMP_WAIT_POLICY -u EMBER_SPIN_US "${bin}" "${workload}" --seconds "${seconds}" --threads 1) ;;
    passive) out=$(env -u EMBER_SPIN_US OMP_WAIT_POLICY=passive "${bin}" "${workload}" --seconds "${seconds}" --threads "${threads}") ;;
  esac
  sed -E 's/.*"images_per_s": ([0-9.]+).*/\1/' <<<"${out}"
}

declare -A results
for l in "${loads[@]}"; do
  if [[ "${l}" == busy ]]; then
    for _ in 1 2; do yes >/dev/null & hogs+=($!); done
    sleep 1
  fi
  echo "== ${workload}, ${l}$([[ ${l} == busy ]] && echo ' (two yes >/dev/null)'), ${runs} runs of ${seconds} s; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for ((r = 1; r <= runs; ++r)); do
    line="run ${r}:"
    for b in "${builds[@]}"; do
      for s in "${settings[@]}"; do
        v=$(one_run "${bins[$b]}" "${s}")
        results["${l} ${b} ${s}"]+="${v} "
        line+=" ${b}/${s} ${v}"
      done
    done
    echo "  ${line}"
  done
  echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  stop_hogs
done

echo
printf '%-6s %-5s %-8s %10s %10s   %s\n' load build setting median worst "median, worst / better of one and passive medians"
for l in "${loads[@]}"; do
  for b in "${builds[@]}"; do
    declare -A med=() worst=()
    for s in "${settings[@]}"; do
      read -r med[$s] worst[$s] < <(tr ' ' '\n' <<<"${results["${l} ${b} ${s}"]}" | grep . | sort -g |
        awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; print m, v[1]}')
    done
    ref=$(awk -v a="${med[one]}" -v b="${med[passive]}" 'BEGIN {print (a > b ? a : b)}')
    for s in "${settings[@]}"; do
      printf '%-6s %-5s %-8s %10.0f %10.0f   %.2f, %.2f\n' "${l}" "${b}" "${s}" "${med[$s]}" "${worst[$s]}" \
        "$(awk -v m="${med[$s]}" -v r="${ref}" 'BEGIN {print m / r}')" "$(awk -v m="${worst[$s]}" -v r="${ref}" 'BEGIN {print m / r}')"
    done
  done
done
