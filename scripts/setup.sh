#!/usr/bin/env bash
# Installs the Debian packages ember's build, tests, examples and benchmarks need. Idempotent: quiet and
# quick when everything is already there. Run as root (or with sudo) on Debian 12.
#   bash scripts/setup.sh              what the library, the main job and the tests build with
#   bash scripts/setup.sh --interop    also what the interop and distributed tests run against (the test
#                                      command passes it): PyTorch (with OpenBLAS, never the reference BLAS),
#                                      ONNX's checker, OpenCV's dnn module (Python and C++), OpenMPI
set -euo pipefail
packages=(g++ cmake make ccache pkg-config libeigen3-dev libstb-dev doctest-dev libbenchmark-dev zlib1g-dev
          nlohmann-json3-dev libcli11-dev dataset-fashion-mnist clang libclang-rt-14-dev libomp-dev llvm)
if [[ "${1:-}" == "--interop" ]]; then
  packages+=(python3-torch python3-torchvision libopenblas0-pthread python3-pil python3-onnx python3-opencv libopencv-dnn-dev
            libopenmpi-dev openmpi-bin)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
