// Timing and summary statistics for cgbench.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace cgbench {

// Monotonic time in nanoseconds (CLOCK_MONOTONIC through the vDSO).
inline int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// A set of per-operation samples (nanoseconds, or any unit).
class Samples {
 public:
  void add(double v) { v_.push_back(v); }
  void reserve(size_t n) { v_.reserve(n); }
  size_t size() const { return v_.size(); }
  bool empty() const { return v_.empty(); }
  // The q-quantile (0..1), nearest rank; 0 when empty.
  double quantile(double q) const {
    if (v_.empty()) return 0;
    std::vector<double> s = v_;
    size_t k = static_cast<size_t>(q * static_cast<double>(s.size() - 1) + 0.5);
    std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(k), s.end());
    return s[k];
  }
  double median() const { return quantile(0.5); }
  double p99() const { return quantile(0.99); }
  double mean() const {
    if (v_.empty()) return 0;
    double t = 0;
    for (double x : v_) t += x;
    return t / static_cast<double>(v_.size());
  }

 private:
  std::vector<double> v_;
};

}  // namespace cgbench
