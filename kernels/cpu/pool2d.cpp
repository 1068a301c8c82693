// Optimized 2-d max pooling, forward and backward: threaded over (n, c)
// planes; each plane is owned by one thread, so the backward's accumulation
// order is fixed. Semantics (NaN wins, padding is -inf) match kernels/cpu/ref.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include "kernels/cpu/pool2d.h"

#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool max_pool2d(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* x = ptr<T>(a.in[0]);
  T* y = ptr<T>(a.out[0]);
  int64_t* idx = ptr<int64_t>(a.out[1]);
  bool two = is_pool_2x2(g);
  parallel_for(0, g.N * g.C, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      if (two) {
        max_pool_2x2(x + p * g.H * g.W, g, y + p * g.Ho * g.Wo, idx + p * g.Ho * g.Wo);
        continue;
      }
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
  bool two = is_pool_2x2(g) && g.Ho == g.H / 2 && g.Wo == g.W / 2;
  parallel_for(0, g.N * g.C, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      T* plane = gx + p * HW;
      if (two && max_pool_2x2_backward(gy + p * L, idx + p * L, g, plane)) continue;
      std::fill(plane, plane + HW, T(0));
      for (int64_t l = 0; l < L; ++l)
        if (idx[p * L + l] >= 0) plane[idx[p * L + l]] += gy[p * L + l];
    }
  });
  return true;
}

void register_pool2d() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("max_pool2d", "cpu", P, max_pool2d);
  BRISK_REGISTER_FLOATING("max_pool2d_backward", "cpu", P, max_pool2d_backward);
}

}  // namespace brisk::kern::cpu
