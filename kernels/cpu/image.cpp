// Optimized im2col / col2im: threaded over (n, c) planes, row-at-a-time copies.
#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool im2col(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* x = ptr<T>(a.in[0]);
  T* col = ptr<T>(a.out[0]);
  int64_t L = g.Ho * g.Wo, KK = g.kh * g.kw;
  parallel_for(0, g.N * g.C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      const T* plane = x + nc * g.H * g.W;
      T* dst0 = col + nc * KK * L;  // rows (c, i, j) of sample n are contiguous per c
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          T* dst = dst0 + (i * g.kw + j) * L;
          for (int64_t oh = 0; oh < g.Ho; ++oh) {
            int64_t h = oh * g.sh - g.ph + i * g.dh;
            T* d = dst + oh * g.Wo;
            if (h < 0 || h >= g.H) {
              std::fill(d, d + g.Wo, T(0));
              continue;
            }
            const T* src = plane + h * g.W;
            for (int64_t ow = 0; ow < g.Wo; ++ow) {
              int64_t w = ow * g.sw - g.pw + j * g.dw;
              d[ow] = (w >= 0 && w < g.W) ? src[w] : T(0);
            }
          }
        }
    }
  });
  return true;
}

template <class T>
bool col2im(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* col = ptr<T>(a.in[0]);
  T* x = ptr<T>(a.out[0]);
  int64_t L = g.Ho * g.Wo, KK = g.kh * g.kw;
  // Each (n, c) plane is written by exactly one thread: no races, fixed order.
  parallel_for(0, g.N * g.C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      T* plane = x + nc * g.H * g.W;
      std::fill(plane, plane + g.H * g.W, T(0));
      const T* src0 = col + nc * KK * L;
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          const T* src = src0 + (i * g.kw + j) * L;
          for (int64_t oh = 0; oh < g.Ho; ++oh) {
            int64_t h = oh * g.sh - g.ph + i * g.dh;
            if (h < 0 || h >= g.H) continue;
            T* d = plane + h * g.W;
            for (int64_t ow = 0; ow < g.Wo; ++ow) {
              int64_t w = ow * g.sw - g.pw + j * g.dw;
              if (w >= 0 && w < g.W) d[w] += src[oh * g.Wo + ow];
            }
          }
        }
    }
  });
  return true;
}

void register_image() {
  constexpr int P = backend_priority::native;
  register_for<float, double>("im2col", "cpu", P, [](auto t) -> KernelFn { return &im2col<typename decltype(t)::type>; });
  register_for<float, double>("col2im", "cpu", P, [](auto t) -> KernelFn { return &col2im<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cpu
