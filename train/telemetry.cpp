// Telemetry records and their file (telemetry.h).
#include "train/telemetry.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/brisk.h"
#include "core/safetensors.h"

namespace fs = std::filesystem;

namespace brisk::train {

void Telemetry::open(const std::string& dir, bool enabled, bool writer) {
  path_ = (fs::path(dir) / "telemetry.jsonl").string();
  enabled_ = enabled;
  writer_ = writer;
  pending_.clear();
  lines_ = 0;
}

void Telemetry::record(nlohmann::json r) {
  if (!on()) return;
  pending_.push_back(std::move(r));
}

void Telemetry::flush() {
  if (!on() || pending_.empty()) return;
  std::ofstream f(path_, std::ios::app);
  BRISK_CHECK(f.good(), "cannot append to ", path_);
  for (auto& r : pending_) f << r.dump() << "\n";
  f.flush();
  BRISK_CHECK(f.good(), "cannot append to ", path_, " (disk full?)");
  lines_ += int64_t(pending_.size());
  pending_.clear();
}

void Telemetry::trim(int64_t lines) {
  lines_ = lines;
  pending_.clear();
  if (writer_) lines_ = keep_first_lines(path_, lines);
}

int64_t keep_first_lines(const std::string& path, int64_t lines) {
  if (!fs::exists(path)) return 0;
  std::ifstream in(path);
  std::string line, kept;
  int64_t n = 0;
  while (n < lines && std::getline(in, line)) {
    if (in.eof()) break;  // no newline: a torn write
    kept += line + "\n";
    ++n;
  }
  atomic_write(path, kept);
  return n;
}

void Telemetry::reset() {
  pending_.clear();
  lines_ = 0;
  if (writer_ && fs::exists(path_)) fs::remove(path_);
}

nlohmann::json mask_picture(const Tensor& mask, int64_t max_side) {
  BRISK_CHECK(mask.defined() && mask.dim() >= 1, "mask_picture: needs a mask of at least one dim");
  Tensor m = mask.to(kCPU).to(DType::f32).contiguous();
  int64_t R = m.size(0), C = m.numel() / std::max<int64_t>(R, 1);
  int64_t r = std::min(R, max_side), c = std::min(C, max_side);
  // Cell (i, j) averages rows [i*R/r, (i+1)*R/r) and cols [j*C/c, (j+1)*C/c).
  std::vector<double> kept(size_t(r * c), 0.0), count(size_t(r * c), 0.0);
  const float* p = m.data_ptr<float>();
  for (int64_t y = 0; y < R; ++y) {
    int64_t i = y * r / R;
    for (int64_t x = 0; x < C; ++x) {
      int64_t j = x * c / C;
      kept[size_t(i * c + j)] += p[y * C + x] != 0.f;
      count[size_t(i * c + j)] += 1;
    }
  }
  std::string cells(size_t(r * c), '0');
  for (size_t k = 0; k < cells.size(); ++k) {
    int d = int(std::lround(15.0 * kept[k] / std::max(count[k], 1.0)));
    cells[k] = "0123456789abcdef"[d];
  }
  return {{"rows", r}, {"cols", c}, {"shape", mask.shape()}, {"cells", cells}};
}

nlohmann::json histogram(const std::vector<float>& values, int64_t bins) {
  BRISK_CHECK(bins >= 1, "histogram: bins must be >= 1");
  double lo = INFINITY, hi = -INFINITY;
  for (float v : values)
    if (std::isfinite(v)) lo = std::min(lo, double(v)), hi = std::max(hi, double(v));
  if (!(lo <= hi)) lo = hi = 0;
  std::vector<int64_t> counts(size_t(bins), 0);
  double w = hi > lo ? (hi - lo) / double(bins) : 1.0;
  for (float v : values) {
    if (!std::isfinite(v)) continue;
    int64_t b = std::clamp<int64_t>(int64_t((double(v) - lo) / w), 0, bins - 1);
    counts[size_t(b)]++;
  }
  return {{"lo", lo}, {"hi", hi}, {"counts", counts}};
}

}  // namespace brisk::train
