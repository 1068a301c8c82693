// f32 exp and erf as straight-line polynomial code the compiler vectorizes
// (std::exp / std::erf are scalar library calls): for the softmax inside the
// attention kernels and for GELU. Accuracy is stated per function; the op
// table test holds every kernel using them to the reference.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

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
  // A NaN x leaves n NaN, whose conversion to int is undefined: convert 0
  // instead (a select, so the loop still vectorizes); p is NaN, so is the result.
  int32_t bits = (int32_t(n == n ? n : 0.0f) + 127) << 23;
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

#ifdef __AVX512F__
// The first `left` of 16 lanes (all for left >= 16, none for left <= 0): a
// row's ragged last block.
inline __mmask16 tail_mask16(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}

// 16 lanes of fast_exp: the same clamp, range reduction and polynomial. A NaN
// stays NaN (max/min return their second operand when either is NaN), as
// std::clamp leaves it in the scalar version.
inline __m512 fast_exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-87.0f), x));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

// GELU's two factors for 16 lanes with one exp: cdf = Phi(x) = (1 + erf(x /
// sqrt 2)) / 2 by fast_erf's formula, whose exp(-(x / sqrt 2)^2) is also the
// density's exp(-x^2 / 2): pdf = phi(x). The 1 / (1 + p a) is a 14-bit
// reciprocal and one Newton step (~1e-8 relative) instead of a division.
inline void gelu_cdf_pdf16(__m512 x, __m512& cdf, __m512& pdf) {
  __m512 a = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
  __m512 d = _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f));
  __m512 t = _mm512_rcp14_ps(d);
  t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, _mm512_set1_ps(2.0f)));
  __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(1.061405429f), t, _mm512_set1_ps(-1.453152027f));
  y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(1.421413741f));
  y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(-0.284496736f));
  y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(0.254829592f));
  y = _mm512_mul_ps(y, t);
  __m512 e = fast_exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a));
  __m512 erf_abs = _mm512_fnmadd_ps(y, e, _mm512_set1_ps(1.0f));
  // erf takes x's sign: or in x's sign bit (erf_abs >= 0).
  __m512 sign = _mm512_and_ps(x, _mm512_castsi512_ps(_mm512_set1_epi32(int32_t(0x80000000u))));
  __m512 erf = _mm512_or_ps(erf_abs, sign);
  cdf = _mm512_fmadd_ps(erf, _mm512_set1_ps(0.5f), _mm512_set1_ps(0.5f));
  pdf = _mm512_mul_ps(e, _mm512_set1_ps(0.39894228040143268f));
}
#endif

}  // namespace brisk::kern::cpu
