#!/usr/bin/env bash
# Runs the report's experiments with both heads and several seeds, as docs/results.md reports them:
#   scripts/reproduce.sh [EXPERIMENT...]      (default: all; e.g. scripts/reproduce.sh mnist_mlp asl_cnn)
# Environment: SEEDS (default "1 2 3"), THREADS (default 1 per run), BIN (default build/examples),
# DATA (default data: the directory holding mnist/ and sign-mnist/), OUT (default runs/results).
# Each run writes OUT/<experiment>-<head>[-bs<batch>]-seed<seed>/ (history.csv, summary.json, plots, checkpoint);
# scripts/summarize_results.py turns them into the tables of docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"1 2 3"}
THREADS=${THREADS:-1}
BIN=${BIN:-build/examples}
DATA=${DATA:-data}
OUT=${OUT:-runs/results}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
experiments=("$@")
[ ${#experiments[@]} -gt 0 ] || experiments=(mnist_mlp asl_mlp asl_mlp_bs32 asl_cnn asl_cnn_augment)

run() {  # name program head data extra-args...
  local name=$1 program=$2 head=$3 data=$4
  shift 4
  for seed in $SEEDS; do
    local dir="$OUT/$name-$head-seed$seed"
    if [ -f "$dir/summary.json" ]; then echo "skip $dir (done)"; continue; fi
    echo "== $dir"
    "$BIN/$program" --data "$data" --head "$head" --seed "$seed" --threads "$THREADS" --progress off \
      --out "$dir" "$@" > "$dir.log" 2>&1 || { echo "FAILED: $dir (see $dir.log)"; tail -5 "$dir.log"; }
  done
}

for e in "${experiments[@]}"; do
  case $e in
    mnist_mlp)       for h in logits softmax; do run mnist_mlp mnist_mlp $h "$DATA/mnist" --epochs 10; done ;;
    asl_mlp)         for h in softmax logits; do run asl_mlp asl_mlp $h "$DATA/sign-mnist" --epochs 20 --batch-size 4; done ;;
    asl_mlp_bs32)    for h in softmax logits; do run asl_mlp-bs32 asl_mlp $h "$DATA/sign-mnist" --epochs 20 --batch-size 32; done ;;
    asl_cnn)         for h in softmax logits; do run asl_cnn asl_cnn $h "$DATA/sign-mnist" --epochs 20; done ;;
    asl_cnn_augment) for h in softmax logits; do run asl_cnn_augment asl_cnn_augment $h "$DATA/sign-mnist" --epochs 20; done ;;
    *) echo "unknown experiment $e" >&2; exit 2 ;;
  esac
done
