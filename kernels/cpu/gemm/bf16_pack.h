// Packing f32 (or bf16) operands into bf16 pairs for the bf16 GEMMs
// (sgemm_avx512bf16.cpp, sgemm_amx.cpp): values rounded to bf16 (nearest
// even), two consecutive k per 32-bit slot, the "VNNI" layout both the
// vdpbf16ps and the AMX tdpbf16ps B operands read. Included inside each
// build's namespace (BRISK_GEMM_NS) like gemm_driver.h, compiled with that
// build's flags (AVX-512 F/BW/VL/BF16 at least).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "kernels/cpu/gemm/sgemm.h"

namespace brisk::kern::cpu::BRISK_GEMM_NS {

inline uint16_t bf16_of(float v) { return float_to_bf16_bits(v); }
inline uint16_t bf16_of(BFloat16 v) { return v.bits; }
inline uint32_t pair(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// 16 lanes of two rows (lo, hi) -> their 16 pairs (bf16 of lo, bf16 of hi),
// rounded to nearest even: cvtne2ps_pbh(hi, lo) puts lo's bf16 in words
// 0-15 and hi's in 16-31, and vpermw interleaves them.
inline __m512i pairs16(__m512 lo, __m512 hi) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}
// 16 lanes of k and of k + 1 -> 16 pairs, stored at o.
inline void pack_pairs16(__m512 lo, __m512 hi, uint32_t* o) { _mm512_storeu_si512(o, pairs16(lo, hi)); }
// Rows r[0..8) of 8 dwords -> columns (an 8x8 transpose of 32-bit values).
inline void transpose8(__m256i r[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}
// Rows r[0..16) of 16 dwords -> columns (a 16x16 transpose of 32-bit
// values, f32 or bf16 pairs alike): unpacks within 128-bit lanes, then lane
// shuffles.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}
// 8 runs of kc values along k (run c at x + c * run_stride) -> pair t of the
// 8 runs as 8 consecutive dwords at o + t * ld: 16 k per step, converted and
// transposed in registers. Packs row-major A and column-major B.
inline void pack_runs8(const float* x, int64_t run_stride, int64_t kc, uint32_t* o, int64_t ld) {
  int64_t kp = (kc + 1) / 2;
  for (int64_t k = 0; k < kc; k += 16) {
    __mmask16 m = kc - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (kc - k)) - 1);
    __m256i r[8];
    for (int c = 0; c < 8; ++c) r[c] = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + c * run_stride + k));
    transpose8(r);  // r[t]: pair t of this chunk for the 8 runs
    for (int64_t t = 0; t < 8 && k / 2 + t < kp; ++t)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + (k / 2 + t) * ld), r[t]);
  }
}
// The same for 8 lanes.
inline void pack_pairs8(__m256 lo, __m256 hi, uint32_t* o) {
  __m128i a = (__m128i)_mm256_cvtneps_pbh(lo), b = (__m128i)_mm256_cvtneps_pbh(hi);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_unpacklo_epi16(a, b));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 4), _mm_unpackhi_epi16(a, b));
}

// B[k0:k0+kc, j0:j0+nc] -> NR-wide strips of pair_rows rows [pair_rows, NR]
// of (k, k + 1) pairs, zero-padded past kc and nc. pair_rows >= ceil(kc / 2):
// the AMX kernel rounds it up to whole 16-row tiles.
template <int64_t NR, class E>
inline void pack_b_pairs(const Mat<E>& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t pair_rows,
                         uint32_t* dst) {
  using P = uint32_t;
  int64_t kp = (kc + 1) / 2;
  for (int64_t s = 0; s * NR < nc; ++s) {
    P* d = dst + s * pair_rows * NR;
    std::fill(d + kp * NR, d + pair_rows * NR, 0u);
    int64_t jb = j0 + s * NR, w = std::min<int64_t>(NR, j0 + nc - jb);
    if constexpr (std::is_same_v<E, float>) {
      if (B.rs == 1 && B.cs != 1 && w == NR) {  // column-major B (e.g. conv weight gradients): columns are runs along k
        for (int64_t j8 = 0; j8 < NR; j8 += 8) pack_runs8(B.p + k0 + (jb + j8) * B.cs, B.cs, kc, d + j8, NR);
        continue;
      }
    }
    for (int64_t k2 = 0; k2 < kp; ++k2) {
      const E* r0 = B.p + (k0 + 2 * k2) * B.rs + jb * B.cs;
      bool two = 2 * k2 + 1 < kc;
      P* o = d + k2 * NR;
      if constexpr (std::is_same_v<E, float>) {
        if (B.cs == 1) {  // rows k and k + 1 contiguous: convert both, interleave
          for (int64_t j = 0; j < NR; j += 16) {
            __mmask16 m = w - j >= 16 ? __mmask16(0xffff) : w > j ? __mmask16((1u << (w - j)) - 1) : 0;
            pack_pairs16(_mm512_maskz_loadu_ps(m, r0 + j),
                         two ? _mm512_maskz_loadu_ps(m, r0 + B.rs + j) : _mm512_setzero_ps(), o + j);
          }
          continue;
        }
      }
      for (int64_t j = 0; j < w; ++j) o[j] = pair(bf16_of(r0[j * B.cs]), two ? bf16_of(r0[B.rs + j * B.cs]) : 0);
      for (int64_t j = w; j < NR; ++j) o[j] = 0;
    }
  }
}

}  // namespace brisk::kern::cpu::BRISK_GEMM_NS
