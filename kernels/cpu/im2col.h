// im2col / col2im for one sample, shared by the batched image kernels and the
// fused conv2d kernels (which unfold one sample at a time into a buffer that
// stays in L2, instead of materialising [N, C*kh*kw, Ho*Wo]).
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/kernel_params.h"

namespace brisk::kern::cpu {

// x [C, H, W] -> col [C*kh*kw, Ho*Wo]; row (c*kh + i)*kw + j.
template <class T>
void im2col_sample(const T* x, const Geom2d& g, T* col) {
  int64_t L = g.Ho * g.Wo;
  for (int64_t c = 0; c < g.C; ++c) {
    const T* plane = x + c * g.H * g.W;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        T* dst = col + ((c * g.kh + i) * g.kw + j) * L;
        for (int64_t oh = 0; oh < g.Ho; ++oh) {
          int64_t h = oh * g.sh - g.ph + i * g.dh;
          T* d = dst + oh * g.Wo;
          if (h < 0 || h >= g.H) {
            std::fill(d, d + g.Wo, T(0));
            continue;
          }
          const T* src = plane + h * g.W;
          int64_t w0 = j * g.dw - g.pw;
          if (g.sw == 1) {  // contiguous run between the padded edges
            int64_t lo = std::clamp<int64_t>(-w0, 0, g.Wo), hi = std::clamp<int64_t>(g.W - w0, lo, g.Wo);
            std::fill(d, d + lo, T(0));
            std::copy(src + w0 + lo, src + w0 + hi, d + lo);
            std::fill(d + hi, d + g.Wo, T(0));
          } else {
            for (int64_t ow = 0; ow < g.Wo; ++ow) {
              int64_t w = w0 + ow * g.sw;
              d[ow] = (w >= 0 && w < g.W) ? src[w] : T(0);
            }
          }
        }
      }
  }
}

// The adjoint: col [C*kh*kw, Ho*Wo] summed into x [C, H, W] (x zeroed first).
template <class T>
void col2im_sample(const T* col, const Geom2d& g, T* x) {
  int64_t L = g.Ho * g.Wo;
  std::fill(x, x + g.C * g.H * g.W, T(0));
  for (int64_t c = 0; c < g.C; ++c) {
    T* plane = x + c * g.H * g.W;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* src = col + ((c * g.kh + i) * g.kw + j) * L;
        for (int64_t oh = 0; oh < g.Ho; ++oh) {
          int64_t h = oh * g.sh - g.ph + i * g.dh;
          if (h < 0 || h >= g.H) continue;
          T* d = plane + h * g.W;
          const T* s = src + oh * g.Wo;
          int64_t w0 = j * g.dw - g.pw;
          if (g.sw == 1) {
            int64_t lo = std::clamp<int64_t>(-w0, 0, g.Wo), hi = std::clamp<int64_t>(g.W - w0, lo, g.Wo);
            for (int64_t ow = lo; ow < hi; ++ow) d[w0 + ow] += s[ow];
          } else {
            for (int64_t ow = 0; ow < g.Wo; ++ow) {
              int64_t w = w0 + ow * g.sw;
              if (w >= 0 && w < g.W) d[w] += s[ow];
            }
          }
        }
      }
  }
}

}  // namespace brisk::kern::cpu
