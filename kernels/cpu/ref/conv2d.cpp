// Reference fused conv2d: the convolution sum written out directly (no
// im2col, no GEMM), accumulated in double. The oracle for kernels/cpu/conv2d.cpp
// and the f64 path that the gradient checks run.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/strided.h"

namespace brisk::kern::ref {

namespace {
// Calls f(o, c, i, j, oh, ow, h, w) for every in-bounds tap of sample-free geometry.
template <class F>
void for_each_tap(const Geom2d& g, int64_t O, F&& f) {
  for (int64_t o = 0; o < O; ++o)
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow)
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
              int64_t h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
              if (h >= 0 && h < g.H && w >= 0 && w < g.W) f(o, c, i, j, oh, ow, h, w);
            }
}
// Reads a value as the kernel uses it: its bf16 rounding when the casts are folded in (ConvParams::bf16).
template <class T>
double rd(T v, bool bf16) {
  return bf16 ? double(bf16_bits_to_float(float_to_bf16_bits(float(v)))) : double(v);
}
// The backward kernels' gy [N, O, Ho, Wo]: in[0] itself, or in the pooled
// form (in[2]: conv2d_pool_fwd's window codes) in[0] [N, O, Ho/2, Wo/2]
// scattered to the argmax positions, zero elsewhere, into buf.
template <class T>
const T* full_gy(const KernelArgs& a, const Geom2d& g, int64_t O, std::vector<T>& buf) {
  const T* gy = ptr<T>(a.in[0]);
  if (a.in.size() < 3 || !a.in[2].defined()) return gy;
  const uint8_t* code = ptr<uint8_t>(a.in[2]);
  int64_t L = g.Ho * g.Wo, Hp = g.Ho / 2, Wp = g.Wo / 2;
  buf.assign(size_t(g.N * O * L), T(0));
  for (int64_t p = 0; p < g.N * O; ++p)
    for (int64_t ph = 0; ph < Hp; ++ph)
      for (int64_t pw = 0; pw < Wp; ++pw) {
        int64_t l = ph * Wp + pw, k = code[p * Hp * Wp + l];
        if (k < 4) buf[size_t(p * L + (2 * ph + k / 2) * g.Wo + 2 * pw + k % 2)] += gy[p * Hp * Wp + l];
      }
  return buf.data();
}
}  // namespace

// Sample n of conv2d_fwd's output, [O, Ho*Wo], into yn.
template <class T>
void conv_sample(const KernelArgs& a, int64_t n, T* yn) {
  const ConvParams& p = *static_cast<const ConvParams*>(a.params);
  const Geom2d& g = p.g;
  const T *x = ptr<T>(a.in[0]), *w = ptr<T>(a.in[1]);
  const T* b = a.in[2].defined() ? ptr<T>(a.in[2]) : nullptr;
  int64_t O = a.in[1].size(0);
  std::vector<double> acc(size_t(O * g.Ho * g.Wo));
  for (int64_t o = 0; o < O; ++o)
    std::fill(acc.begin() + o * g.Ho * g.Wo, acc.begin() + (o + 1) * g.Ho * g.Wo, b ? double(b[o]) : 0.0);
  for_each_tap(g, O, [&](int64_t o, int64_t c, int64_t i, int64_t j, int64_t oh, int64_t ow, int64_t h, int64_t ww) {
    acc[size_t((o * g.Ho + oh) * g.Wo + ow)] +=
        rd(w[((o * g.C + c) * g.kh + i) * g.kw + j], p.bf16) * rd(x[((n * g.C + c) * g.H + h) * g.W + ww], p.bf16);
  });
  for (size_t k = 0; k < acc.size(); ++k) {
    double v = p.relu ? std::max(acc[k], 0.0) : acc[k];
    yn[k] = p.bf16 ? T(rd(T(v), true)) : T(v);
  }
}

template <class T>
bool conv2d_fwd(const KernelArgs& a) {
  const Geom2d& g = static_cast<const ConvParams*>(a.params)->g;
  int64_t O = a.in[1].size(0);
  for (int64_t n = 0; n < g.N; ++n) conv_sample(a, n, ptr<T>(a.out[0]) + n * O * g.Ho * g.Wo);
  return true;
}

// conv2d_fwd's output, then its 2x2 / stride 2 max pool written out here
// (not through the pooling kernels): the first maximum in row-major window
// order, a NaN winning at its first occurrence; its window code k (row k / 2,
// column k % 2 of the window). With relu, conv_sample has applied it, and a
// window whose maximum is not above 0 gets code 4 (no gradient).
template <class T>
bool conv2d_pool_fwd(const KernelArgs& a) {
  const Geom2d& g = static_cast<const ConvParams*>(a.params)->g;
  bool relu = static_cast<const ConvParams*>(a.params)->relu;
  int64_t O = a.in[1].size(0), Hp = g.Ho / 2, Wp = g.Wo / 2;
  T* y = ptr<T>(a.out[0]);
  uint8_t* code = ptr<uint8_t>(a.out[1]);
  std::vector<T> yn(size_t(O * g.Ho * g.Wo));
  for (int64_t n = 0; n < g.N; ++n) {
    conv_sample(a, n, yn.data());
    for (int64_t o = 0; o < O; ++o)
      for (int64_t ph = 0; ph < Hp; ++ph)
        for (int64_t pw = 0; pw < Wp; ++pw) {
          int64_t best = -1, best_k = 0;
          for (int64_t k = 0; k < 4 && !(best >= 0 && std::isnan(double(yn[size_t(best)]))); ++k) {
            int64_t pos = (2 * ph + k / 2) * g.Wo + 2 * pw + k % 2, at = o * g.Ho * g.Wo + pos;
            if (best < 0 || std::isnan(double(yn[size_t(at)])) || double(yn[size_t(at)]) > double(yn[size_t(best)])) {
              best = at;
              best_k = k;
            }
          }
          int64_t out = ((n * O + o) * Hp + ph) * Wp + pw;
          y[out] = yn[size_t(best)];
          code[out] = uint8_t(best_k);
          if (relu && !(y[out] > T(0))) y[out] = T(0), code[out] = 4;  // ReLU after the pool: no gradient
        }
  }
  return true;
}

template <class T>
bool conv2d_bwd_input(const KernelArgs& a) {
  const Geom2d& g = static_cast<const ConvParams*>(a.params)->g;
  bool bf = static_cast<const ConvParams*>(a.params)->bf16;
  const T* w = ptr<T>(a.in[1]);
  T* gx = ptr<T>(a.out[0]);
  int64_t O = a.in[1].size(0);
  std::vector<T> expanded;
  const T* gy = full_gy(a, g, O, expanded);
  std::vector<double> acc(size_t(g.C * g.H * g.W));
  for (int64_t n = 0; n < g.N; ++n) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for_each_tap(g, O, [&](int64_t o, int64_t c, int64_t i, int64_t j, int64_t oh, int64_t ow, int64_t h, int64_t ww) {
      acc[size_t((c * g.H + h) * g.W + ww)] +=
          rd(w[((o * g.C + c) * g.kh + i) * g.kw + j], bf) * rd(gy[((n * O + o) * g.Ho + oh) * g.Wo + ow], bf);
    });
    // bf16: gx is the gradient of a bf16 tensor (the cast x), so bf16 too
    for (size_t k = 0; k < acc.size(); ++k) gx[n * g.C * g.H * g.W + int64_t(k)] = T(rd(T(acc[k]), bf));
  }
  return true;
}

template <class T>
bool conv2d_bwd_weight(const KernelArgs& a) {
  const Geom2d& g = static_cast<const ConvParams*>(a.params)->g;
  bool bf = static_cast<const ConvParams*>(a.params)->bf16;
  const T* x = ptr<T>(a.in[1]);
  int64_t O = a.out[0].size(0);
  std::vector<T> expanded;
  const T* gy = full_gy(a, g, O, expanded);
  std::vector<double> gw(size_t(a.out[0].numel()));
  std::vector<double> gb(static_cast<size_t>(O));
  for (int64_t n = 0; n < g.N; ++n) {
    for_each_tap(g, O, [&](int64_t o, int64_t c, int64_t i, int64_t j, int64_t oh, int64_t ow, int64_t h, int64_t ww) {
      gw[size_t(((o * g.C + c) * g.kh + i) * g.kw + j)] +=
          rd(gy[((n * O + o) * g.Ho + oh) * g.Wo + ow], bf) * rd(x[((n * g.C + c) * g.H + h) * g.W + ww], bf);
    });
    for (int64_t o = 0; o < O; ++o)
      for (int64_t l = 0; l < g.Ho * g.Wo; ++l) gb[size_t(o)] += rd(gy[(n * O + o) * g.Ho * g.Wo + l], bf);
  }
  T* gwp = ptr<T>(a.out[0]);
  for (size_t k = 0; k < gw.size(); ++k) gwp[k] = T(rd(T(gw[k]), bf));  // bf16: as gx
  if (a.out[1].defined())
    for (int64_t o = 0; o < O; ++o) ptr<T>(a.out[1])[o] = T(gb[size_t(o)]);
  return true;
}

void register_conv2d() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("conv2d_fwd", "ref", P, conv2d_fwd);
  BRISK_REGISTER_FLOATING("conv2d_pool_fwd", "ref", P, conv2d_pool_fwd);
  BRISK_REGISTER_FLOATING("conv2d_bwd_input", "ref", P, conv2d_bwd_input);
  BRISK_REGISTER_FLOATING("conv2d_bwd_weight", "ref", P, conv2d_bwd_weight);
}

}  // namespace brisk::kern::ref
