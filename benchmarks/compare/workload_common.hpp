#pragma once
// What every program of compare.py shares (ember_workloads and the peers: libtorch_workloads, dlib_workloads,
// opencv_workloads): the timing loop, CPU seconds and peak RSS, which library a BLAS symbol binds to, and the
// one JSON line each prints. Nothing of ember's: the peers' programs include it too.
#include <dlfcn.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace cmp {

using Clock = std::chrono::steady_clock;

inline double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

// User + system CPU seconds of the process so far: on a loaded machine, images per CPU second at one thread
// still compares two builds (wall time does not).
inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Runs `step` for at least `seconds` (after a warm-up of 5 steps) and returns {steps, elapsed seconds}.
template <typename F>
std::pair<long, double> timed(double seconds, F&& step) {
  for (int i = 0; i < 5; ++i) step();
  long steps = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    step();
    ++steps;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return {steps, elapsed};
}

// The fixed inputs of the correctness checks and of onnx_peers.py: value i of a tensor, in [-1, 1), the same in
// every program (Knuth's multiplicative hash of i).
inline float fixed_value(std::size_t i) {
  const std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u;
  return static_cast<float>(h >> 8) / 8388608.0f - 1.0f;
}

// The command line every program takes: WHAT [--seconds S] [--threads N] [--batch B] [--out FILE] [--size S]
// [--fuse-zero-grad 0|1] [--check]; WHAT is the workload or the .onnx file; unknown options are ignored.
struct Args {
  std::string what;
  double seconds = 3.0;
  int threads = 2;
  long long batch = 0;  // 0: the workload's own
  std::string out;
  int size = 0;
  bool fuse_zero_grad = false;
  bool check = false;
};

inline Args parse_args(int argc, char** argv) {
  Args a;
  if (argc > 1) a.what = argv[1];
  for (int i = 2; i < argc; ++i) {
    const bool value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--check")) a.check = true;
    else if (value && !std::strcmp(argv[i], "--seconds")) a.seconds = std::atof(argv[++i]);
    else if (value && !std::strcmp(argv[i], "--threads")) a.threads = std::atoi(argv[++i]);
    else if (value && !std::strcmp(argv[i], "--batch")) a.batch = std::atoll(argv[++i]);
    else if (value && !std::strcmp(argv[i], "--out")) a.out = argv[++i];
    else if (value && !std::strcmp(argv[i], "--size")) a.size = std::atoi(argv[++i]);
    else if (value && !std::strcmp(argv[i], "--fuse-zero-grad")) a.fuse_zero_grad = std::atoi(argv[++i]) != 0;
  }
  return a;
}

inline std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// The file `symbol` resolves to as `from` sees it (its own dependency order; a library already loaded, named
// as in its soname, or null for the program's global scope), and OpenBLAS's configuration and core when that
// file is OpenBLAS: {"sgemm_from": ..., "blas": "openblas"|"reference"|"mkl"|"?", ...} as JSON members.
inline std::string blas_json(const char* from, const char* symbol) {
  void* scope = from ? dlopen(from, RTLD_LAZY | RTLD_NOLOAD) : RTLD_DEFAULT;
  void* addr = scope ? dlsym(scope, symbol) : nullptr;
  Dl_info info{};
  std::string file = addr && dladdr(addr, &info) && info.dli_fname ? info.dli_fname : "?";
  if (char* real = realpath(file.c_str(), nullptr)) {
    file = real;
    std::free(real);
  }
  std::string kind = "?";
  if (file.find("openblas") != std::string::npos) kind = "openblas";
  else if (file.find("mkl") != std::string::npos) kind = "mkl";
  else if (file.find("/libblas.so") != std::string::npos || file.find("/blas/") != std::string::npos)
    kind = "reference";  // netlib's libblas3: single-threaded, unblocked
  std::string out = "\"blas\": \"" + kind + "\", \"sgemm_from\": \"" + json_escape(file) + "\"";
  if (kind == "openblas" && addr) {
    void* lib = dlopen(file.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    using Str = char* (*)();
    using Int = int (*)();
    if (auto config = lib ? reinterpret_cast<Str>(dlsym(lib, "openblas_get_config")) : nullptr)
      out += ", \"openblas_config\": \"" + json_escape(config()) + "\"";
    if (auto core = lib ? reinterpret_cast<Str>(dlsym(lib, "openblas_get_corename")) : nullptr)
      out += ", \"openblas_core\": \"" + json_escape(core()) + "\"";
    if (auto threads = lib ? reinterpret_cast<Int>(dlsym(lib, "openblas_get_num_threads")) : nullptr)
      out += ", \"openblas_threads\": " + std::to_string(threads());
  }
  return out;
}

// The environment variables that tune a run, as JSON members of "env".
inline std::string env_json() {
  static const char* vars[] = {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                               "ATEN_CPU_CAPABILITY", "GLIBC_TUNABLES", "DLIB_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"};
  std::string out = "{";
  for (const char* v : vars)
    if (const char* value = std::getenv(v))
      out += std::string(out.size() > 1 ? ", " : "") + "\"" + v + "\": \"" + json_escape(value) + "\"";
  return out + "}";
}

// The result line compare.py reads: images/s of `steps` steps of `batch` images in `seconds`, and `extra`
// (JSON members, each with a leading ", ").
inline void print_result(const std::string& name, long long batch, std::pair<long, double> r, double cpu,
                         int threads, const std::string& extra) {
  std::printf("{\"workload\": \"%s\", \"images_per_s\": %.1f, \"steps\": %ld, \"seconds\": %.3f, "
              "\"cpu_seconds\": %.3f, \"peak_rss_mib\": %.1f, \"threads\": %d, \"batch\": %lld%s}\n",
              name.c_str(), static_cast<double>(r.first * batch) / r.second, r.first, r.second, cpu, peak_rss_mib(),
              threads, batch, extra.c_str());
}

inline std::string json_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

inline std::string json_array(const std::vector<float>& v) {
  std::string out = "[";
  char buf[32];
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.6g", i ? ", " : "", static_cast<double>(v[i]));
    out += buf;
  }
  return out + "]";
}

}  // namespace cmp
