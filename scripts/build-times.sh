#!/usr/bin/env bash
# CPU seconds and peak memory of each target of a configured build, built one at a time with one job and
# ccache off, in dependency order: the table of docs/compile-times.md ("The suite's own build").
#   bash scripts/build-times.sh BUILD_DIR [TARGET...]     (default: every test, example and benchmark program)
set -euo pipefail
build=${1:?usage: scripts/build-times.sh BUILD_DIR [TARGET...]}
shift
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cmake --build "${build}" --target help | sed -n 's/^\.\.\. //p' |
    grep -E '^(ember_compiled|ember_test_main|ember_header_check|test_|docs_|make_tiny|bench_|ember_workloads|mnist_mlp|asl_|quickstart|custom_layer|fashion_resnet|train_folder)' |
    sed 's/ .*//' | sort -u | sort -s -k1,1 -t_ --key=1,1 | awk '$0 == "ember_compiled" {print; next} {rest = rest $0 "\n"} END {printf "%s", rest}')
fi
export CCACHE_DISABLE=1
total=0
printf '%-28s %9s %9s %9s\n' target "CPU s" "wall s" "peak MB"
for t in "${targets[@]}"; do
  out=$( { /usr/bin/time -f '%U %S %e %M' cmake --build "${build}" --target "${t}" -j1 >/dev/null; } 2>&1 | tail -1)
  read -r user sys wall peak <<<"${out}"
  cpu=$(echo "${user} + ${sys}" | bc)
  total=$(echo "${total} + ${cpu}" | bc)
  printf '%-28s %9.1f %9.1f %9d\n' "${t}" "${cpu}" "${wall}" "$((peak / 1024))"
done
printf '%-28s %9.1f\n' total "${total}"
