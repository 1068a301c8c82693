// im2col / col2im for one sample, shared by the batched image kernels and the
// fused conv2d kernels (which unfold one sample at a time into a buffer that
// stays in L2, instead of materialising [N, C*kh*kw, Ho*Wo]).
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "core/kernel_params.h"

namespace brisk::kern::cpu {

// One output row of a stride-1 unfold or fold: d[t] for t in [0, n) reads or
// adds src[t] for t in [lo, hi) (the part inside the image), zero elsewhere.
// Rows are short (the cnn's 14 and 28), so a library call per run costs more
// than the copy; with AVX-512 each 16 values are one masked load and store
// (masked-off lanes never fault, so src may point before the image row).
#ifdef __AVX512F__
inline __mmask16 run_mask(int64_t t, int64_t lo, int64_t hi) {
  uint32_t below_hi = hi - t >= 16 ? 0xffffu : hi > t ? (1u << (hi - t)) - 1 : 0u;
  uint32_t from_lo = lo <= t ? 0xffffu : lo - t >= 16 ? 0u : ~((1u << (lo - t)) - 1) & 0xffffu;
  return __mmask16(below_hi & from_lo);
}
#endif
template <class T>
inline void unfold_row(const T* src, int64_t lo, int64_t hi, int64_t n, T* d) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t t = 0; t < n; t += 16)
      _mm512_mask_storeu_ps(d + t, run_mask(t, 0, n), _mm512_maskz_loadu_ps(run_mask(t, lo, hi), src + t));
    return;
  }
#endif
  std::fill(d, d + lo, T(0));
  std::copy(src + lo, src + hi, d + lo);
  std::fill(d + hi, d + n, T(0));
}
template <class T>
inline void fold_row(const T* s, int64_t lo, int64_t hi, T* d) {  // d[t] += s[t], t in [lo, hi)
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t t = lo; t < hi; t += 16) {
      __mmask16 m = run_mask(t, lo, hi);
      _mm512_mask_storeu_ps(d + t, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + t), _mm512_maskz_loadu_ps(m, s + t)));
    }
    return;
  }
#endif
  for (int64_t t = lo; t < hi; ++t) d[t] += s[t];
}

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
            unfold_row(src + w0, lo, hi, g.Wo, d);
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
            fold_row(s, lo, hi, d + w0);
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
