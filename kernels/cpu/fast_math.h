// f32 exp and erf as straight-line polynomial code the compiler vectorizes
// (std::exp / std::erf are scalar library calls): for the softmax inside the
// attention kernels and for GELU. Accuracy is stated per function; the op
// table test holds every kernel using them to the reference.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace brisk::kern::cpu {

// exp(x) for x <= ~88: 2^n * e^r with |r| <= ln2/2 and a degree-6 polynomial
// (relative error ~2e-7). Below -87 it returns ~1.6e-38 (not a denormal).
inline float fast_exp(float x) {
  x = std::clamp(x, -87.0f, 88.0f);
  float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double fast_exp(double x) { return std::exp(x); }

// fast_exp for softmax weights (x = score - running max <= 0), flushed to 0
// below e^-60 (~9e-27). Such a weight is far below f32's resolution next to
// the row's largest (1 before normalizing), but the products it feeds (P V,
// p (dp - di), dS K) would be denormals, each a microcode assist on Intel
// cores: once a gpt-small's attention sharpened (lr 1.2e-2) its f32 step ran
// 2x slower, the attention backward 8x.
inline float softmax_exp(float x) { return x < -60.0f ? 0.0f : fast_exp(x); }

// erf(x), Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7, below f32's
// resolution of erf near 1).
inline float fast_erf(float x) {
  float a = std::fabs(x), t = 1.0f / (1.0f + 0.3275911f * a);
  float y = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  float e = 1.0f - y * fast_exp(-a * a);
  return std::copysign(e, x);
}
inline double fast_erf(double x) { return std::erf(x); }

// GELU (exact, erf form, like torch's default) and its derivative
// Phi(x) + x phi(x).
template <class T>
inline T gelu_exact(T x) {
  return T(0.5) * x * (T(1) + fast_erf(x * T(0.70710678118654752)));
}
template <class T>
inline T gelu_exact_deriv(T x) {
  return T(0.5) * (T(1) + fast_erf(x * T(0.70710678118654752))) +
         x * fast_exp(T(-0.5) * x * x) * T(0.39894228040143268);
}

}  // namespace brisk::kern::cpu
