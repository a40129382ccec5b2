#!/usr/bin/env bash
# Documentation tasks.
#   scripts/docs.sh                 the API reference: Doxygen over include/ember into build/docs/html
#                                   (warnings are errors; needs Debian's doxygen: apt-get install doxygen)
#   scripts/docs.sh compile-times   how long each public header, each header area, the umbrella header, each
#                                   example and a program header-only / compiled mode / on the peers take to
#                                   compile (the tables of docs/compile-times.md); `compile-times --programs`:
#                                   only the program rows
#   scripts/docs.sh filter FILE     Doxygen's input filter (see Doxyfile): the // comment lines of a header as
#                                   /// doc comments, with the characters Doxygen would read as commands escaped
set -euo pipefail
cd "$(dirname "$0")/.."

reference() {
  command -v doxygen >/dev/null || { echo "docs.sh: doxygen not found (apt-get install doxygen)" >&2; exit 1; }
  mkdir -p build/docs
  doxygen Doxyfile
  echo "docs.sh: API reference in build/docs/html/index.html"
}

# One translation unit per row, compiled (not linked) with the flags below; prints seconds of wall time and
# of CPU time (user + sys) and the compiler's peak memory. CPU time is the figure to compare: it moves far less
# than wall time when the machine is busy. Rows: each public header alone, each area, the umbrella, each
# example; then a program's compile three ways: header-only, in compiled mode (-DEMBER_COMPILED, as
# ember::compiled's users compile), and the same kind of program on the peers (libtorch, dlib) when their
# Debian packages are installed (libtorch-dev, libdlib-dev).
compile_times() {
  local cxx=${CXX:-g++}
  local flags=(-std=c++17 -O2 -fopenmp -isystem /usr/include/eigen3 -I include -I /usr/include/stb)
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "compiler: $($cxx --version | head -1)"
  echo "flags: ${flags[*]} -c"
  printf '| %-48s | %8s | %8s | %8s |\n' "translation unit" "wall s" "CPU s" "peak MB"
  printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..50})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..10})"
  measure() {  # name, source file, extra flags...
    local name=$1 src=$2
    shift 2
    if ! /usr/bin/time -o "$tmp/time" -f '%e %U %S %M' "$cxx" "${flags[@]}" "$@" -c "$src" -o "$tmp/out.o" 2>"$tmp/err"; then
      cat "$tmp/err" >&2
      return 1
    fi
    local wall user sys peak
    read -r wall user sys peak <"$tmp/time"
    printf '| %-48s | %8.1f | %8.1f | %8d |\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" "$((peak / 1024))"
  }
  printf 'int main() { return 0; }\n' >"$tmp/empty.cpp"
  measure "(empty file)" "$tmp/empty.cpp"
  printf '#include <Eigen/Core>\nint main() { return 0; }\n' >"$tmp/eigen.cpp"
  measure "<Eigen/Core> alone" "$tmp/eigen.cpp"
  if [[ "${2:-}" != --programs ]]; then
    for h in include/ember/*/*.hpp include/ember/*.hpp; do
      printf '#include <%s>\nint main() { return 0; }\n' "${h#include/}" >"$tmp/h.cpp"
      measure "${h#include/}" "$tmp/h.cpp"
    done
    for area in core kernels graph nn loss optim data io train; do
      : >"$tmp/area.cpp"
      for h in include/ember/"$area"/*.hpp; do printf '#include <%s>\n' "${h#include/}" >>"$tmp/area.cpp"; done
      printf 'int main() { return 0; }\n' >>"$tmp/area.cpp"
      measure "ember/$area/*.hpp (the area)" "$tmp/area.cpp"
    done
    printf '#include <ember/ember.hpp>\nint main() { return 0; }\n' >"$tmp/all.cpp"
    measure "ember/ember.hpp (umbrella)" "$tmp/all.cpp"
    for ex in $(git ls-files 'examples/*.cpp'); do
      measure "$ex" "$ex" -I examples
    done
  fi
  for program in examples/quickstart.cpp benchmarks/compile/new_user.cpp; do
    measure "$program (header-only)" "$program"
    measure "$program (compiled mode)" "$program" -DEMBER_COMPILED
  done
  if [[ -f /usr/include/torch/csrc/api/include/torch/torch.h ]]; then
    measure "peer: benchmarks/compile/libtorch_program.cpp" benchmarks/compile/libtorch_program.cpp \
      -isystem /usr/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=1
  else
    echo "(libtorch-dev not installed: no libtorch row)"
  fi
  if [[ -f /usr/include/dlib/dnn.h ]]; then
    measure "peer: benchmarks/compile/dlib_program.cpp" benchmarks/compile/dlib_program.cpp
  else
    echo "(libdlib-dev not installed: no dlib row)"
  fi
}

# Comment lines become doc comments; in them, a backslash before a letter ('\r'), <random> and <U> (HTML tags to
# Doxygen) are escaped.
doxygen_filter() {
  sed -e 's#^\([[:space:]]*\)//\( \|$\)#\1///\2#' \
      -e '/^[[:space:]]*\/\/\//s#\\\([a-z]\)#\\\\\1#g' \
      -e '/^[[:space:]]*\/\/\//s#<\(random\|[A-Z]\)>#\\<\1\\>#g' "$1"
}

case "${1:-reference}" in
  reference) reference ;;
  filter) doxygen_filter "$2" ;;
  compile-times) compile_times "$@" ;;
  *) echo "usage: scripts/docs.sh [reference|compile-times]" >&2; exit 2 ;;
esac
