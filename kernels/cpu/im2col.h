// im2col / col2im for one sample, shared by the batched image kernels and the
// fused conv2d kernels (which unfold one sample at a time into a buffer that
// stays in L2, instead of materialising [N, C*kh*kw, Ho*Wo]).
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "core/kernel_params.h"
#include "kernels/cpu/gemm/sgemm.h"

namespace brisk::kern::cpu {

// Every row of an unfold, in col's order: f(c, j, h, w0, r) for input
// channel c, tap column j, the input row h it reads (outside [0, H) in the
// padding), the input column w0 of its first output, and r, the offset of
// the row in col [C*kh*kw, Ho*Wo]. im2col and col2im, scalar and AVX-512,
// walk the same rows.
template <class F>
inline void for_each_unfold_row(const Geom2d& g, F&& f) {
  int64_t L = g.Ho * g.Wo;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t base = ((c * g.kh + i) * g.kw + j) * L, w0 = j * g.dw - g.pw;
        for (int64_t oh = 0; oh < g.Ho; ++oh) f(c, j, oh * g.sh - g.ph + i * g.dh, w0, base + oh * g.Wo);
      }
}

#ifdef __AVX512F__
// Stride-1 rows with AVX-512 (f32, Wo <= 64, kw <= 16): every output row is at
// most 4 masked loads and stores, with the masks worked out once per kernel
// column j (they depend on j only, not on the row). Rows are short (the cnn's
// 14 and 28), so a library call or a scalar loop per row cost more than the
// copy; masked-off lanes never fault, so a load may start before the image row.
// Taken while sgemm's ISA is avx512 (set_sgemm_isa("avx2") tests the portable rows).
struct RowMasks {
  static constexpr int kMaxChunks = 4, kMaxKw = 16;
  int chunks = 0;
  __mmask16 store[kMaxChunks];         // lanes inside [0, Wo)
  __mmask16 load[kMaxKw][kMaxChunks];  // lanes whose input column w0(j) + t is inside [0, W)
  static bool fits(const Geom2d& g) { return g.sw == 1 && g.Wo <= 16 * kMaxChunks && g.kw <= kMaxKw; }
  explicit RowMasks(const Geom2d& g) {
    chunks = int((g.Wo + 15) / 16);
    auto bits = [](int64_t t, int64_t lo, int64_t hi) {  // lanes t..t+15 inside [lo, hi)
      uint32_t m = 0;
      for (int u = 0; u < 16; ++u) m |= uint32_t(t + u >= lo && t + u < hi) << u;
      return __mmask16(m);
    };
    for (int t = 0; t < chunks; ++t) {
      store[t] = bits(16 * t, 0, g.Wo);
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t w0 = j * g.dw - g.pw;
        load[j][t] = bits(16 * t, std::max<int64_t>(0, -w0), std::min<int64_t>(g.Wo, g.W - w0)) & store[t];
      }
    }
  }
};

// "Same" geometry (stride 1, Ho = H, Wo = W: the cnn's 3x3 pad 1 layers):
// the unfolded plane of tap (c, i, j) is the input plane shifted by one
// constant flat offset, delta = (i*dh - ph)*W + (j*dw - pw), with the lanes
// whose column wraps around zeroed (a per-j pattern) and those past either end
// of the plane zeroed (which is exactly where the row falls outside). So the
// whole plane is L/16 contiguous masked copies instead of Ho short rows.
inline void im2col_same_avx512(const float* x, const Geom2d& g, float* col) {
  int64_t L = g.H * g.W, chunks = (L + 15) / 16;
  // [kw, chunks]: lanes whose column stays inside; worked out once per
  // geometry (a call unfolds one sample, and a batch has many).
  static thread_local std::vector<__mmask16> colmask;
  static thread_local int64_t key[4] = {-1, -1, -1, -1};
  if (key[0] != g.W || key[1] != L || key[2] != g.kw || key[3] != g.dw * 65536 + g.pw) {
    colmask.assign(size_t(g.kw * chunks), 0);
    for (int64_t j = 0; j < g.kw; ++j) {
      int64_t wj = j * g.dw - g.pw;
      for (int64_t p = 0; p < L; ++p) {
        int64_t w = p % g.W + wj;
        if (w >= 0 && w < g.W) colmask[size_t(j * chunks + p / 16)] |= __mmask16(1u << (p % 16));
      }
    }
    key[0] = g.W, key[1] = L, key[2] = g.kw, key[3] = g.dw * 65536 + g.pw;
  }
  __mmask16 last = __mmask16(L % 16 ? (1u << (L % 16)) - 1 : 0xffffu);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t c = 0; c < g.C; ++c) {
    const float* plane = x + c * L;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        float* dst = col + ((c * g.kh + i) * g.kw + j) * L;
        int64_t delta = (i * g.dh - g.ph) * g.W + (j * g.dw - g.pw);
        const __mmask16* cm = colmask.data() + j * chunks;
        for (int64_t t = 0; t < chunks; ++t) {
          __m512i src = _mm512_add_epi32(lane, _mm512_set1_epi32(int(16 * t + delta)));
          __mmask16 in = _mm512_cmpge_epi32_mask(src, _mm512_setzero_si512()) &
                         _mm512_cmplt_epi32_mask(src, _mm512_set1_epi32(int(L)));
          _mm512_mask_storeu_ps(dst + 16 * t, t + 1 == chunks ? last : __mmask16(0xffff),
                                _mm512_maskz_loadu_ps(cm[t] & in, plane + 16 * t + delta));
        }
      }
  }
}

inline void im2col_sample_avx512(const float* x, const Geom2d& g, float* col) {
  if (g.sh == 1 && g.Ho == g.H && g.Wo == g.W && g.H * g.W < (int64_t(1) << 30))
    return im2col_same_avx512(x, g, col);
  RowMasks rm(g);
  for_each_unfold_row(g, [&](int64_t c, int64_t j, int64_t h, int64_t w0, int64_t r) {
    float* d = col + r;
    if (h < 0 || h >= g.H) {
      for (int t = 0; t < rm.chunks; ++t) _mm512_mask_storeu_ps(d + 16 * t, rm.store[t], _mm512_setzero_ps());
      return;
    }
    const float* src = x + (c * g.H + h) * g.W + w0;
    for (int t = 0; t < rm.chunks; ++t)
      _mm512_mask_storeu_ps(d + 16 * t, rm.store[t], _mm512_maskz_loadu_ps(rm.load[j][t], src + 16 * t));
  });
}

inline void col2im_sample_avx512(const float* col, const Geom2d& g, float* x) {
  RowMasks rm(g);
  std::fill(x, x + g.C * g.H * g.W, 0.f);
  for_each_unfold_row(g, [&](int64_t c, int64_t j, int64_t h, int64_t w0, int64_t r) {
    if (h < 0 || h >= g.H) return;
    float* d = x + (c * g.H + h) * g.W + w0;
    const float* s = col + r;
    for (int t = 0; t < rm.chunks; ++t) {
      __mmask16 m = rm.load[j][t];
      _mm512_mask_storeu_ps(d + 16 * t, m,
                            _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + 16 * t), _mm512_maskz_loadu_ps(m, s + 16 * t)));
    }
  });
}
#endif

// x [C, H, W] -> col [C*kh*kw, Ho*Wo]; row (c*kh + i)*kw + j.
template <class T>
void im2col_sample(const T* x, const Geom2d& g, T* col) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>)
    if (RowMasks::fits(g) && sgemm_isa_avx512()) return im2col_sample_avx512(x, g, col);
#endif
  for_each_unfold_row(g, [&](int64_t c, int64_t, int64_t h, int64_t w0, int64_t r) {
    T* d = col + r;
    if (h < 0 || h >= g.H) {
      std::fill(d, d + g.Wo, T(0));
      return;
    }
    const T* src = x + (c * g.H + h) * g.W;
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
  });
}

// The adjoint: col [C*kh*kw, Ho*Wo] summed into x [C, H, W] (x zeroed first).
template <class T>
void col2im_sample(const T* col, const Geom2d& g, T* x) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>)
    if (RowMasks::fits(g) && sgemm_isa_avx512()) return col2im_sample_avx512(col, g, x);
#endif
  std::fill(x, x + g.C * g.H * g.W, T(0));
  for_each_unfold_row(g, [&](int64_t c, int64_t, int64_t h, int64_t w0, int64_t r) {
    if (h < 0 || h >= g.H) return;
    T* d = x + (c * g.H + h) * g.W;
    const T* s = col + r;
    if (g.sw == 1) {
      int64_t lo = std::clamp<int64_t>(-w0, 0, g.Wo), hi = std::clamp<int64_t>(g.W - w0, lo, g.Wo);
      for (int64_t ow = lo; ow < hi; ++ow) d[w0 + ow] += s[ow];
    } else {
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        int64_t w = w0 + ow * g.sw;
        if (w >= 0 && w < g.W) d[w] += s[ow];
      }
    }
  });
}

}  // namespace brisk::kern::cpu
