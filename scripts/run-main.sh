#!/usr/bin/env bash
# The main job: installs what is needed, builds, and trains and evaluates the report's MNIST MLP
# (784-512-512-10, batch 32, SGD lr 0.001 momentum 0.9) on data/mnist, or on Debian's Fashion-MNIST when
# data/mnist is absent. Extra arguments go to the program (e.g. --epochs 10).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target mnist_mlp
exec build/examples/mnist_mlp --out runs/mnist_mlp "$@"
