// Zero-bordered planes of bf16 channel pairs: the per-sample input of the
// direct bf16 convolutions (conv2d_bf16_direct.cpp on AVX512-BF16,
// conv2d_amx_direct.cpp on AMX tiles). xp [ceil(C / 2)][plane] u32: input
// (h, w) of channels 2c2 and 2c2 + 1 as one pair (bf16 of each, nearest
// even) at (h + ph) * Wp + w + pw. Only the interior is written: the border
// and the room past it, zeroed by the caller, stay zero.
// Like gemm/bf16_pack.h (whose pairs16 it uses, included first), its
// functions go in each including build's namespace (BRISK_GEMM_NS), compiled
// with that file's flags (AVX-512 with BF16).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/conv2d_sample.h"

namespace brisk::kern::cpu::BRISK_GEMM_NS {

struct PairPlanes {
  int64_t C, H, W, ph, pw, Wp, plane;
};

// x_n [C, H, W] -> xp's interior.
inline void pad_pairs(const float* xn, const PairPlanes& p, uint32_t* xp) {
  const int64_t HW = p.H * p.W;
  for (int64_t c2 = 0; 2 * c2 < p.C; ++c2) {
    const float* a = xn + 2 * c2 * HW;
    const float* b = 2 * c2 + 1 < p.C ? a + HW : nullptr;
    for (int64_t h = 0; h < p.H; ++h) {
      uint32_t* o = xp + c2 * p.plane + (h + p.ph) * p.Wp + p.pw;
      for (int64_t w0 = 0; w0 < p.W; w0 += 16) {
        __mmask16 m = p.W - w0 >= 16 ? __mmask16(0xffff) : __mmask16((1u << (p.W - w0)) - 1);
        __m512 lo = _mm512_maskz_loadu_ps(m, a + h * p.W + w0);
        __m512 hi = b ? _mm512_maskz_loadu_ps(m, b + h * p.W + w0) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(o + w0, m, pairs16(lo, hi));
      }
    }
  }
}

// The same from a pooled gradient: sample n's input x_n [C, H, W] is the
// expansion of gy_n [C, Hq, Wq] by its window codes (each window's value at
// its code's position, +0 at the other three, and +0 outside the windows:
// max_pool_2x2_backward_codes), written into xp without being formed.
inline void pad_pairs_pooled(const PooledInput& in, int64_t n, const PairPlanes& p, uint32_t* xp) {
  const int64_t Lq = in.Hq * in.Wq;
  const float* gq = in.gy + n * p.C * Lq;
  const uint8_t* cq = in.code + n * p.C * Lq;
  const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);  // lane -> its window
  const __m512i column = _mm512_set_epi32(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0);
  // 16 positions of row h from its 8 windows at window column j0 (nw of them live)
  auto expand = [&](const float* gr, const uint8_t* cr, __mmask8 live, __m512i want) {
    __m512 gv = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(live, gr)));
    __m512i cv = _mm512_permutexvar_epi32(dup, _mm512_castsi256_si512(_mm256_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, cr))));
    return _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(cv, want), gv);
  };
  for (int64_t c2 = 0; 2 * c2 < p.C; ++c2) {
    const bool pair = 2 * c2 + 1 < p.C;
    for (int64_t h = 0; h < p.H; ++h) {
      uint32_t* o = xp + c2 * p.plane + (h + p.ph) * p.Wp + p.pw;
      const int64_t py = h / 2;
      const __m512i want = _mm512_add_epi32(column, _mm512_set1_epi32(int(2 * (h % 2))));  // the code of (h, w)
      for (int64_t w0 = 0; w0 < p.W; w0 += 16) {
        __mmask16 m = p.W - w0 >= 16 ? __mmask16(0xffff) : __mmask16((1u << (p.W - w0)) - 1);
        int64_t j0 = w0 / 2, nw = py < in.Hq ? std::clamp<int64_t>(in.Wq - j0, 0, 8) : 0;
        __mmask8 live = __mmask8((1u << nw) - 1);
        const int64_t at = (2 * c2 * in.Hq + py) * in.Wq + j0;
        __m512 lo = expand(gq + at, cq + at, live, want);
        __m512 hi = pair ? expand(gq + at + Lq, cq + at + Lq, live, want) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(o + w0, m, pairs16(lo, hi));
      }
    }
  }
}

}  // namespace brisk::kern::cpu::BRISK_GEMM_NS
