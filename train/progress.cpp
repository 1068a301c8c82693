// Progress bar drawing (at most ~10 redraws a second).
#include "train/progress.h"

#include <cstdio>

namespace brisk::train {

ProgressBar::ProgressBar(bool enabled, std::string label, int64_t total)
    : enabled_(enabled), label_(std::move(label)), total_(total), start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::update(int64_t done, int64_t samples, double loss) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  double el = std::chrono::duration<double>(now - start_).count();
  double rate = el > 0 ? double(samples) / el : 0;
  double eta = done > 0 ? el * double(total_ - done) / double(done) : 0;
  const int width = 24;
  int filled = total_ > 0 ? int(width * done / total_) : width;
  std::string bar(size_t(filled), '#');
  bar.resize(width, '.');
  std::printf("\r%s [%s] %lld/%lld  %.0f samples/s  ETA %.0fs  loss %.4f ", label_.c_str(), bar.c_str(),
              (long long)done, (long long)total_, rate, eta, loss);
  std::fflush(stdout);
}

void ProgressBar::finish() {
  if (!enabled_) return;
  std::printf("\r%*s\r", 100, "");
  std::fflush(stdout);
}

}  // namespace brisk::train
