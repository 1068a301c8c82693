// A one-line terminal progress bar: batch count, rate, ETA and loss. Draws
// only when enabled (by default, when stdout is a terminal).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace brisk::train {

class ProgressBar {
 public:
  ProgressBar(bool enabled, std::string label, int64_t total);
  void update(int64_t done, int64_t samples, double loss);
  void finish();  // clears the line

 private:
  bool enabled_;
  std::string label_;
  int64_t total_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace brisk::train
