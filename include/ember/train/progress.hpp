#pragma once
// A one-line live progress bar for a terminal: step, loss, images per second and time left, redrawn in place
// with '\r' at most every min_interval seconds (drawing costs far more than a small training step).
// It writes only to the stream it is given.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <streambuf>
#include <string>
#include <utility>

namespace ember::train {

// Whether to draw a progress bar: automatic means when stderr is a terminal.
enum class ProgressMode { automatic, on, off };

inline bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

// The standard error stream without <iostream>, whose static initialiser every translation unit including it
// would run: an unbuffered std::ostream over C's stderr.
inline std::ostream& stderr_stream() {
  struct StderrBuf : std::streambuf {
    int_type overflow(int_type c) override {
      return traits_type::eq_int_type(c, traits_type::eof()) || std::fputc(c, stderr) != EOF ? traits_type::not_eof(c)
                                                                                                : traits_type::eof();
    }
    std::streamsize xsputn(const char* s, std::streamsize n) override {
      return static_cast<std::streamsize>(std::fwrite(s, 1, static_cast<std::size_t>(n), stderr));
    }
    int sync() override { return std::fflush(stderr); }
  };
  static StderrBuf buf;
  static std::ostream os(&buf);
  return os;
}

// "42s", "3:07", "1:02:03".
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;

  ProgressBar(std::ostream& os, std::int64_t total_steps, std::string label, double min_interval_seconds = 0.1,
              int width = 24)
      : os_(os),
        total_(total_steps),
        label_(std::move(label)),
        min_interval_(min_interval_seconds),
        width_(width),
        start_(Clock::now()),
        last_draw_(start_) {}

  // After `done` of total steps; draws when min_interval has passed, and always for the last step.
  void update(std::int64_t done, double loss, double images_per_second) {
    const auto now = Clock::now();
    if (done < total_ && drawn_ && std::chrono::duration<double>(now - last_draw_).count() < min_interval_) return;
    last_draw_ = now;
    drawn_ = true;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double left = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(total_ - done) : -1.0;
    os_ << '\r' << render(done, loss, images_per_second, left) << std::flush;
  }

  // Clears the bar's line, so what follows starts on a clean line.
  void finish() {
    if (drawn_) os_ << '\r' << std::string(static_cast<std::size_t>(last_width_), ' ') << '\r' << std::flush;
    drawn_ = false;
  }

  // The line as drawn: "epoch 3/20 [#########...............]  120/938 loss 0.4321 5123 img/s 0:12 left".
  std::string render(std::int64_t done, double loss, double images_per_second, double seconds_left) {
    const std::int64_t filled =
        total_ > 0 ? std::min<std::int64_t>(width_, done * width_ / total_) : static_cast<std::int64_t>(width_);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(width_ - filled), '.');
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s [%s] %*lld/%lld loss %.4f %.0f img/s %s left", label_.c_str(), bar.c_str(),
                  static_cast<int>(std::to_string(total_).size()), static_cast<long long>(done),
                  static_cast<long long>(total_), loss, images_per_second, format_duration(seconds_left).c_str());
    std::string line = buf;
    // Pad over a longer previous line.
    if (static_cast<int>(line.size()) < last_width_) line.append(static_cast<std::size_t>(last_width_) - line.size(), ' ');
    last_width_ = static_cast<int>(line.size());
    return line;
  }

 private:
  std::ostream& os_;
  std::int64_t total_;
  std::string label_;
  double min_interval_;
  int width_;
  Clock::time_point start_, last_draw_;
  bool drawn_ = false;
  int last_width_ = 0;
};

}  // namespace ember::train
