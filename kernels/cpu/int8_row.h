// One row of "int8_quantize_rows", shared by the reference (serial) and the
// threaded kernel so both round identically: scale = max|x| / 127 (0 for an
// all-zero row), q = x / scale rounded to nearest even by the 1.5 * 2^23
// trick (exact for |v| <= 127; branch-free, so it vectorizes, and needs no
// libm call or -ffast-math), clamped to [-127, 127]. Returns false when the
// row holds a non-finite value.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace brisk::kern {

inline bool quantize_int8_row(const float* row, int64_t cols, int8_t* q, float* scale) {
  // max drops NaN operands, so a second accumulator sums x * 0: NaN or inf
  // anywhere in the row makes it NaN.
  float m = 0, probe = 0;
  for (int64_t j = 0; j < cols; ++j) {
    m = std::max(m, std::abs(row[j]));
    probe += row[j] * 0.0f;
  }
  float s = m / 127.0f;
  *scale = s;
  if (probe != probe) {  // NaN probe: a non-finite value in the row
    std::fill(q, q + cols, int8_t(0));
    return false;
  }
  if (!(s > 0 && std::isfinite(s))) {  // an all-zero row
    std::fill(q, q + cols, int8_t(0));
    return true;
  }
  constexpr float kMagic = 12582912.0f;
  for (int64_t j = 0; j < cols; ++j) {
    float v = std::clamp(row[j] / s, -127.0f, 127.0f);
    q[j] = int8_t(int((v + kMagic) - kMagic));
  }
  return true;
}

}  // namespace brisk::kern
