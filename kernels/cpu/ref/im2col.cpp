// Reference im2col and its adjoint col2im over [N, C, H, W] (contiguous).
#include <cmath>
#include <limits>

#include "kernels/pool_window.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool im2col(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* x = ptr<T>(a.in[0]);
  T* col = ptr<T>(a.out[0]);  // [N, C*kh*kw, Ho*Wo]
  int64_t L = g.Ho * g.Wo;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          int64_t row = (c * g.kh + i) * g.kw + j;
          T* dst = col + (n * g.C * g.kh * g.kw + row) * L;
          for (int64_t oh = 0; oh < g.Ho; ++oh)
            for (int64_t ow = 0; ow < g.Wo; ++ow) {
              int64_t h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
              bool in = h >= 0 && h < g.H && w >= 0 && w < g.W;
              dst[oh * g.Wo + ow] = in ? x[((n * g.C + c) * g.H + h) * g.W + w] : T(0);
            }
        }
  return true;
}

template <class T>
bool col2im(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* col = ptr<T>(a.in[0]);
  T* x = ptr<T>(a.out[0]);
  std::fill(x, x + g.N * g.C * g.H * g.W, T(0));
  int64_t L = g.Ho * g.Wo;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          int64_t row = (c * g.kh + i) * g.kw + j;
          const T* src = col + (n * g.C * g.kh * g.kw + row) * L;
          for (int64_t oh = 0; oh < g.Ho; ++oh)
            for (int64_t ow = 0; ow < g.Wo; ++ow) {
              int64_t h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
              if (h >= 0 && h < g.H && w >= 0 && w < g.W)
                x[((n * g.C + c) * g.H + h) * g.W + w] += src[oh * g.Wo + ow];
            }
        }
  return true;
}

void register_im2col() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("im2col", "ref", P, im2col);
  BRISK_REGISTER_FLOATING("col2im", "ref", P, col2im);
}

}  // namespace brisk::kern::ref
