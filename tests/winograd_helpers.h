// What the Winograd conv2d tests (test_winograd.cpp, f32;
// test_winograd_bf16.cpp, folded bf16 casts) compute independently of the
// kernel: operands, the convolution and its weight gradient by definition in
// double, and max_pool_2x2's rule written out.
#pragma once
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"

namespace bt::winograd {

namespace kc = brisk::kern::cpu;

struct Shape5 { int64_t N, C, O, H, W; };

inline std::vector<float> bf16_roundings(std::vector<float> v) {
  for (float& e : v) e = bf16_rounded(e);
  return v;
}

inline Geom2d same3x3(const Shape5& s) { return Geom2d{s.N, s.C, s.H, s.W, 3, 3, 1, 1, 1, 1, 1, 1, s.H, s.W}; }

// One output of the 3x3 "same" convolution by its definition, in double:
// b[o] + sum over c, i, j of x[n, c, h + i - 1, v + j - 1] w[o, c, i, j]
// (zero outside the plane); mag: the sum of the terms' magnitudes.
inline double conv_at(const Shape5& s, const std::vector<float>& x, const std::vector<float>& w,
                      const std::vector<float>& b, int64_t n, int64_t o, int64_t h, int64_t v, double& mag) {
  double sum = b[size_t(o)];
  mag = std::abs(b[size_t(o)]);
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        int64_t r = h + i - 1, q = v + j - 1;
        if (r < 0 || r >= s.H || q < 0 || q >= s.W) continue;
        double t = double(x[size_t(((n * s.C + c) * s.H + r) * s.W + q)]) * w[size_t(((o * s.C + c) * 3 + i) * 3 + j)];
        sum += t, mag += std::abs(t);
      }
  return sum;
}

// gw [O, C, 3, 3] against the weight gradient by its definition (from
// `init`, what the kernel added to), summed here in double over the samples
// and positions of gy [N, O, H, W] and x [N, C, H, W]: the count of entries
// off by more than 1e-5 of their sum's magnitude, and the worst such error.
inline std::pair<int64_t, double> weight_grad_errors(const Shape5& s, const std::vector<float>& x,
                                                     const std::vector<float>& gy, const std::vector<float>& gw,
                                                     double init) {
  int64_t bad = 0;
  double worst = 0;
  for (int64_t o = 0; o < s.O; ++o)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          double sum = init, mag = std::abs(init);
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t h = 0; h < s.H; ++h)
              for (int64_t v = 0; v < s.W; ++v) {
                int64_t r = h + i - 1, q = v + j - 1;
                if (r < 0 || r >= s.H || q < 0 || q >= s.W) continue;
                double t = double(gy[size_t(((n * s.O + o) * s.H + h) * s.W + v)]) *
                           x[size_t(((n * s.C + c) * s.H + r) * s.W + q)];
                sum += t, mag += std::abs(t);
              }
          double err = std::abs(gw[size_t(((o * s.C + c) * 3 + i) * 3 + j)] - sum) / (1 + mag);
          worst = std::max(worst, std::isnan(err) ? 1e9 : err);
          bad += !(err <= 1e-5);
        }
  return {bad, worst};
}

// The pooled output yp and codes [N*O, H/2, W/2] against max_pool_2x2's rule
// on the full-size output `plain` [N*O, H, W] (the first NaN, else the
// first maximum, row-major in the window), then relu_pooled's (a window
// not above 0 gives 0 and code 4): the count of windows whose value bits or
// code differ; nans: of the expected values, how many are NaN.
inline int64_t pool_mismatches(const Shape5& s, const std::vector<float>& plain, bool relu,
                               const std::vector<float>& yp, const std::vector<uint8_t>& code, int64_t& nans) {
  const int64_t HW = s.H * s.W, Hp = s.H / 2, Wp = s.W / 2;
  int64_t bad = 0;
  nans = 0;
  for (int64_t q = 0; q < s.N * s.O; ++q)
    for (int64_t r = 0; r < Hp; ++r)
      for (int64_t c = 0; c < Wp; ++c) {
        const float* win = plain.data() + q * HW + 2 * r * s.W + 2 * c;
        int k = -1;
        for (int t = 0; t < 4; ++t) {
          float v = win[t / 2 * s.W + t % 2];
          if (std::isnan(v)) {
            k = t;
            break;
          }
          if (k < 0 || v > win[k / 2 * s.W + k % 2]) k = t;
        }
        float v = win[k / 2 * s.W + k % 2];
        if (relu && !(v > 0.f)) v = 0.f, k = 4;
        size_t at = size_t((q * Hp + r) * Wp + c);
        nans += std::isnan(v);
        bad += std::memcmp(&v, &yp[at], sizeof v) != 0 || code[at] != k;
      }
  return bad;
}

// Window codes for n pooled values, 0..4 in a scattered order (4: a ReLU'd window).
inline std::vector<uint8_t> pool_codes(size_t n) {
  std::vector<uint8_t> code(n);
  for (size_t i = 0; i < n; ++i) code[i] = uint8_t((i * 7 + i / 5) % 5);
  return code;
}

// The full-size gradient [N*O, H, W] a pooled one gp [N*O, H/2, W/2] stands
// for, by the codes' meaning: gp at (2r + k / 2, 2c + k % 2), else 0.
inline std::vector<float> expand_pooled(const Shape5& s, const std::vector<float>& gp,
                                        const std::vector<uint8_t>& code) {
  const int64_t HW = s.H * s.W, Hp = s.H / 2, Wp = s.W / 2, P = Hp * Wp;
  std::vector<float> gy(size_t(s.N * s.O * HW), 0.f);
  for (int64_t q = 0; q < s.N * s.O; ++q)
    for (int64_t r = 0; r < Hp; ++r)
      for (int64_t c = 0; c < Wp; ++c) {
        int k = code[size_t(q * P + r * Wp + c)];
        if (k < 4) gy[size_t(q * HW + (2 * r + k / 2) * s.W + 2 * c + k % 2)] = gp[size_t(q * P + r * Wp + c)];
      }
  return gy;
}

struct IsaRestore {
  ~IsaRestore() {
    kc::set_sgemm_isa("auto");
    kc::set_conv_winograd(true);
  }
};

}  // namespace bt::winograd
