#pragma once
// Small SVG charts for the example programs: loss curves, class histograms. Plain text output, no dependency;
// any browser or image viewer shows them.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace examples::plot {

struct Series {
  std::string label;
  std::vector<double> y;  // one value per x = 1, 2, ...
  std::string color;
};

namespace detail {

inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

inline std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// Round tick steps (1, 2, 5 x 10^k) covering [lo, hi] with about n ticks.
inline std::vector<double> ticks(double lo, double hi, int n) {
  const double span = hi - lo > 0 ? hi - lo : 1.0;
  const double raw = span / n, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) t.push_back(v);
  return t;
}

struct Frame {
  double width = 720, height = 440, left = 70, right = 20, top = 70, bottom = 60;  // title and legend above
  double x0, x1, y0, y1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (width - left - right); }
  double py(double y) const { return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom); }
};

inline void axes(std::ostringstream& s, const Frame& f, const std::string& title, const std::string& xlabel,
                 const std::string& ylabel, const std::vector<double>& xt, const std::vector<std::string>& xnames,
                 const std::vector<double>& yt) {
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << f.width << "' height='" << f.height
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  s << "<text x='" << f.width / 2 << "' y='24' text-anchor='middle' font-size='16'>" << escape(title) << "</text>\n";
  for (double y : yt) {
    s << "<line x1='" << f.left << "' x2='" << f.width - f.right << "' y1='" << f.py(y) << "' y2='" << f.py(y)
      << "' stroke='#ddd'/>\n";
    s << "<text x='" << f.left - 6 << "' y='" << f.py(y) + 4 << "' text-anchor='end'>" << num(y) << "</text>\n";
  }
  for (std::size_t i = 0; i < xt.size(); ++i)
    s << "<text x='" << f.px(xt[i]) << "' y='" << f.height - f.bottom + 16 << "' text-anchor='middle'>"
      << escape(xnames.empty() ? num(xt[i]) : xnames[i]) << "</text>\n";
  s << "<line x1='" << f.left << "' x2='" << f.left << "' y1='" << f.top << "' y2='" << f.height - f.bottom
    << "' stroke='black'/>\n<line x1='" << f.left << "' x2='" << f.width - f.right << "' y1='" << f.height - f.bottom
    << "' y2='" << f.height - f.bottom << "' stroke='black'/>\n";
  s << "<text x='" << (f.left + f.width - f.right) / 2 << "' y='" << f.height - 16 << "' text-anchor='middle'>"
    << escape(xlabel) << "</text>\n";
  s << "<text transform='translate(18," << (f.top + f.height - f.bottom) / 2
    << ") rotate(-90)' text-anchor='middle'>" << escape(ylabel) << "</text>\n";
}

// The legend in one row between the title and the plot, right-aligned, so it never hides a curve or a bar.
// Text widths are estimated (about 7 px per character at 12 px).
inline void legend(std::ostringstream& s, const Frame& f, const std::vector<Series>& series) {
  double width = 0;
  for (const auto& se : series) width += 22 + 7.0 * static_cast<double>(se.label.size()) + 16;
  double x = std::max(f.left, f.width - f.right - width);
  const double y = 50;
  for (const auto& se : series) {
    s << "<rect x='" << x << "' y='" << y - 9 << "' width='14' height='10' fill='" << se.color << "'/><text x='"
      << x + 20 << "' y='" << y << "'>" << escape(se.label) << "</text>\n";
    x += 22 + 7.0 * static_cast<double>(se.label.size()) + 16;
  }
}

}  // namespace detail

// Line chart of one or more series against x = 1..n (e.g. loss per epoch). The y range follows the data unless
// y_min and y_max are given (e.g. 0 and 1 for accuracy, so runs compare at a glance).
inline std::string line_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                              const std::vector<Series>& series, double y_min = NAN, double y_max = NAN) {
  detail::Frame f;
  std::size_t n = 1;
  double lo = 1e300, hi = -1e300;
  for (const auto& s : series) {
    n = std::max(n, s.y.size());
    for (double v : s.y)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (lo > hi) lo = 0, hi = 1;
  const double pad = (hi - lo) * 0.05 + 1e-12;
  f.x0 = 1;
  f.x1 = n > 1 ? static_cast<double>(n) : 2;
  f.y0 = std::isfinite(y_min) ? y_min : std::max(0.0, lo - pad);
  f.y1 = std::isfinite(y_max) ? y_max : hi + pad;
  std::ostringstream s;
  std::vector<double> xt;
  for (double x : detail::ticks(1, f.x1, 10))
    if (x >= 1 && std::fabs(x - std::round(x)) < 1e-9) xt.push_back(x);
  detail::axes(s, f, title, xlabel, ylabel, xt, {}, detail::ticks(f.y0, f.y1, 6));
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& se = series[k];
    s << "<polyline fill='none' stroke-width='2' stroke='" << se.color << "' points='";
    for (std::size_t i = 0; i < se.y.size(); ++i)
      if (std::isfinite(se.y[i])) s << f.px(static_cast<double>(i + 1)) << ',' << f.py(se.y[i]) << ' ';
    s << "'/>\n";
    for (std::size_t i = 0; i < se.y.size(); ++i)
      if (std::isfinite(se.y[i]))
        s << "<circle r='3' fill='" << se.color << "' cx='" << f.px(static_cast<double>(i + 1)) << "' cy='"
          << f.py(se.y[i]) << "'/>\n";
  }
  detail::legend(s, f, series);
  s << "</svg>\n";
  return s.str();
}

// Grouped bar chart: one group per category, one bar per series (e.g. class counts of train and test).
inline std::string bar_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                             const std::vector<std::string>& categories, const std::vector<Series>& series) {
  detail::Frame f;
  f.width = std::max(720.0, 40.0 * static_cast<double>(categories.size()) + 120);
  double hi = 0;
  for (const auto& se : series)
    for (double v : se.y) hi = std::max(hi, v);
  f.x0 = 0;
  f.x1 = static_cast<double>(categories.size());
  f.y0 = 0;
  f.y1 = hi > 0 ? hi * 1.08 : 1;
  std::vector<double> xt;
  for (std::size_t i = 0; i < categories.size(); ++i) xt.push_back(static_cast<double>(i) + 0.5);
  std::ostringstream s;
  detail::axes(s, f, title, xlabel, ylabel, xt, categories, detail::ticks(0, f.y1, 6));
  const double group = f.px(1) - f.px(0), bar = group * 0.8 / static_cast<double>(std::max<std::size_t>(1, series.size()));
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& se = series[k];
    for (std::size_t i = 0; i < se.y.size() && i < categories.size(); ++i) {
      const double x = f.px(static_cast<double>(i)) + group * 0.1 + bar * static_cast<double>(k);
      s << "<rect x='" << x << "' y='" << f.py(se.y[i]) << "' width='" << bar << "' height='"
        << f.py(0) - f.py(se.y[i]) << "' fill='" << se.color << "'><title>" << detail::escape(categories[i]) << ": "
        << se.y[i] << "</title></rect>\n";
    }
  }
  detail::legend(s, f, series);
  s << "</svg>\n";
  return s.str();
}

}  // namespace examples::plot
