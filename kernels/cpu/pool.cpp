// Optimized 2-d max pooling, forward and backward: threaded over (n, c)
// planes; each plane is owned by one thread, so the backward's accumulation
// order is fixed. Semantics (NaN wins, padding is -inf) match kernels/cpu/ref.
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

// One output of a window that may cross the padding; NaN wins (first NaN).
template <class T>
inline void pool_window_slow(const T* plane, const Geom2d& g, int64_t h0, int64_t w0, T& best, int64_t& bi) {
  best = -std::numeric_limits<T>::infinity();
  bi = -1;
  for (int64_t i = std::max<int64_t>(0, -h0); i < g.kh && h0 + i < g.H; ++i) {
    const T* row = plane + (h0 + i) * g.W;
    for (int64_t j = std::max<int64_t>(0, -w0); j < g.kw && w0 + j < g.W; ++j) {
      T v = row[w0 + j];
      if (bi < 0 || v > best || std::isnan(v)) {
        best = v;
        bi = (h0 + i) * g.W + w0 + j;
        if (std::isnan(v)) return;
      }
    }
  }
}

template <class T>
bool max_pool2d(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* x = ptr<T>(a.in[0]);
  T* y = ptr<T>(a.out[0]);
  int64_t* idx = ptr<int64_t>(a.out[1]);
  parallel_for(0, g.N * g.C, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const T* plane = x + p * g.H * g.W;
      T* yp = y + p * g.Ho * g.Wo;
      int64_t* ip = idx + p * g.Ho * g.Wo;
      for (int64_t oh = 0; oh < g.Ho; ++oh)
        for (int64_t ow = 0; ow < g.Wo; ++ow) {
          int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw, o = oh * g.Wo + ow;
          if (h0 < 0 || w0 < 0 || h0 + g.kh > g.H || w0 + g.kw > g.W) {
            pool_window_slow(plane, g, h0, w0, yp[o], ip[o]);
            continue;
          }
          // Interior window: branch-light max; fall back only if a NaN is seen.
          const T* base = plane + h0 * g.W + w0;
          T best = base[0];
          int64_t bi = 0;
          bool nan = best != best;
          for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
              T v = base[i * g.W + j];
              nan |= v != v;
              if (v > best) { best = v; bi = i * g.W + j; }
            }
          if (nan) {
            pool_window_slow(plane, g, h0, w0, yp[o], ip[o]);
            continue;
          }
          yp[o] = best;
          ip[o] = h0 * g.W + w0 + bi;
        }
    }
  });
  return true;
}

template <class T>
bool max_pool2d_backward(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* gy = ptr<T>(a.in[0]);
  const int64_t* idx = ptr<int64_t>(a.in[1]);
  T* gx = ptr<T>(a.out[0]);
  int64_t L = g.Ho * g.Wo, HW = g.H * g.W;
  parallel_for(0, g.N * g.C, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      T* plane = gx + p * HW;
      std::fill(plane, plane + HW, T(0));
      for (int64_t l = 0; l < L; ++l)
        if (idx[p * L + l] >= 0) plane[idx[p * L + l]] += gy[p * L + l];
    }
  });
  return true;
}

void register_pool() {
  constexpr int P = backend_priority::native;
  register_for<float, double>("max_pool2d", "cpu", P, [](auto t) -> KernelFn { return &max_pool2d<typename decltype(t)::type>; });
  register_for<float, double>("max_pool2d_backward", "cpu", P,
      [](auto t) -> KernelFn { return &max_pool2d_backward<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cpu
