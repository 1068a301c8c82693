// Reference 2-d pooling over [N, C, H, W] (contiguous): max, average and
// adaptive average, forward and backward.
#include <cmath>
#include <limits>

#include "kernels/pool_window.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool max_pool2d(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* x = ptr<T>(a.in[0]);
  T* y = ptr<T>(a.out[0]);
  int64_t* idx = ptr<int64_t>(a.out[1]);
  for (int64_t p = 0; p < g.N * g.C; ++p)
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t bi = -1;
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j) {
            int64_t h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
            if (h < 0 || h >= g.H || w < 0 || w >= g.W) continue;
            T v = x[(p * g.H + h) * g.W + w];
            if (bi < 0 || v > best || std::isnan(v)) { best = v; bi = h * g.W + w; }
            if (std::isnan(v)) break;
          }
        y[(p * g.Ho + oh) * g.Wo + ow] = best;
        idx[(p * g.Ho + oh) * g.Wo + ow] = bi;
      }
  return true;
}

template <class T>
bool max_pool2d_backward(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* gy = ptr<T>(a.in[0]);
  const int64_t* idx = ptr<int64_t>(a.in[1]);
  T* gx = ptr<T>(a.out[0]);
  std::fill(gx, gx + g.N * g.C * g.H * g.W, T(0));
  int64_t L = g.Ho * g.Wo;
  for (int64_t p = 0; p < g.N * g.C; ++p)
    for (int64_t l = 0; l < L; ++l)
      if (idx[p * L + l] >= 0) gx[p * g.H * g.W + idx[p * L + l]] += gy[p * L + l];
  return true;
}

template <class T, bool Adaptive>
bool avg_pool2d(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* x = ptr<T>(a.in[0]);
  T* y = ptr<T>(a.out[0]);
  for (int64_t p = 0; p < g.N * g.C; ++p)
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        AvgWindow w = avg_window(g, oh, ow, Adaptive);
        double s = 0;
        for (int64_t h = w.h0; h < w.h1; ++h)
          for (int64_t c = w.w0; c < w.w1; ++c) s += double(x[(p * g.H + h) * g.W + c]);
        y[(p * g.Ho + oh) * g.Wo + ow] = T(s / double(w.div));
      }
  return true;
}

template <class T, bool Adaptive>
bool avg_pool2d_backward(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* gy = ptr<T>(a.in[0]);
  T* gx = ptr<T>(a.out[0]);
  std::fill(gx, gx + g.N * g.C * g.H * g.W, T(0));
  for (int64_t p = 0; p < g.N * g.C; ++p)
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        AvgWindow w = avg_window(g, oh, ow, Adaptive);
        T v = gy[(p * g.Ho + oh) * g.Wo + ow] / T(w.div);
        for (int64_t h = w.h0; h < w.h1; ++h)
          for (int64_t c = w.w0; c < w.w1; ++c) gx[(p * g.H + h) * g.W + c] += v;
      }
  return true;
}

void register_pool2d() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("max_pool2d", "ref", P, max_pool2d);
  BRISK_REGISTER_FLOATING("max_pool2d_backward", "ref", P, max_pool2d_backward);
  register_for<float, double>("avg_pool2d", "ref", P,
      [](auto t) -> KernelFn { return &avg_pool2d<typename decltype(t)::type, false>; });
  register_for<float, double>("avg_pool2d_backward", "ref", P,
      [](auto t) -> KernelFn { return &avg_pool2d_backward<typename decltype(t)::type, false>; });
  register_for<float, double>("adaptive_avg_pool2d", "ref", P,
      [](auto t) -> KernelFn { return &avg_pool2d<typename decltype(t)::type, true>; });
  register_for<float, double>("adaptive_avg_pool2d_backward", "ref", P,
      [](auto t) -> KernelFn { return &avg_pool2d_backward<typename decltype(t)::type, true>; });
}

}  // namespace brisk::kern::ref
