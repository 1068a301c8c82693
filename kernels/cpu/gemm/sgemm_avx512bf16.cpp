// GEMM on AVX512-BF16 dot products (vdpbf16ps: per f32 lane, acc += a0*b0 +
// a1*b1 over a pair of bf16), for bf16 autocast (sgemm.h: GemmBf16Scope).
// The operands are rounded to bf16 (nearest even) while packing, two
// consecutive k per 32-bit slot, so one instruction does the work of two f32
// FMAs: twice the f32 rate per core on this CPU (Zen 4: 230 vs 116 GFLOP/s in
// a register-only loop). Products of bf16 values are exact in f32; the sums
// are f32, in a different order than the f32 kernel's (pairs first), and
// vdpbf16ps flushes denormals: results agree with the f32 GEMM of the
// rounded operands to f32 rounding, not bit for bit (tests/test_kernels.cpp).
// The driver (blocking, packing order, threads) is gemm_driver.h's.
#include <immintrin.h>

#define BRISK_GEMM_NS avx512bf16
#include "kernels/cpu/gemm/gemm_driver.h"

namespace brisk::kern::cpu::avx512bf16 {

inline uint16_t bf16_of(float v) { return float_to_bf16_bits(v); }
inline uint16_t bf16_of(BFloat16 v) { return v.bits; }
inline uint32_t pair(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// 16 lanes of k and of k + 1 -> 16 pairs (nearest even), stored at o.
inline void pack_pairs16(__m512 lo, __m512 hi, uint32_t* o) {
  // cvtne2ps_pbh(hi, lo): bf16 of lo in words 0-15, of hi in 16-31; vpermw interleaves them.
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
  _mm512_storeu_si512(o, _mm512_permutexvar_epi16(idx, v));
}
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

template <class E>
struct Bf16Panels {
  using P = uint32_t;  // (bf16 of k, bf16 of k + 1)
  static constexpr int64_t MR = 8, NR = 32, KS = 2, KC = 512, MC = MR * 15, NC = NR * 96;

  // B[k0:k0+kc, j0:j0+nc] -> strips [ceil(kc/2), NR] of pairs, zero-padded.
  static void pack_b(const Mat<E>& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, P* dst) {
    int64_t kp = (kc + 1) / 2;
    for (int64_t s = 0; s * NR < nc; ++s) {
      P* d = dst + s * kp * NR;
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

  // A[i0:i0+mc, k0:k0+kc] -> strips [ceil(kc/2), MR] of pairs, zero-padded.
  static void pack_a(const Mat<E>& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, P* dst) {
    int64_t kp = (kc + 1) / 2;
    for (int64_t s = 0; s * MR < mc; ++s) {
      P* d = dst + s * kp * MR;
      int64_t ib = i0 + s * MR, h = std::min<int64_t>(MR, i0 + mc - ib);
      if constexpr (std::is_same_v<E, float>) {
        if (A.rs == 1 && h == MR) {  // column-major A: MR rows contiguous at each k
          for (int64_t k2 = 0; k2 < kp; ++k2) {
            const float* c0 = A.p + ib + (k0 + 2 * k2) * A.cs;
            __m256 x0 = _mm256_loadu_ps(c0), x1 = 2 * k2 + 1 < kc ? _mm256_loadu_ps(c0 + A.cs) : _mm256_setzero_ps();
            pack_pairs8(x0, x1, d + k2 * MR);
          }
          continue;
        }
        if (A.cs == 1 && h == MR) {  // row-major A (e.g. conv weights): rows are runs along k
          pack_runs8(A.p + ib * A.rs + k0, A.rs, kc, d, MR);
          continue;
        }
      }
      for (int64_t i = 0; i < h; ++i) {
        const E* row = A.p + (ib + i) * A.rs + k0 * A.cs;
        for (int64_t k2 = 0; k2 < kp; ++k2)
          d[k2 * MR + i] = pair(bf16_of(row[2 * k2 * A.cs]), 2 * k2 + 1 < kc ? bf16_of(row[(2 * k2 + 1) * A.cs]) : 0);
      }
      for (int64_t i = h; i < MR; ++i)
        for (int64_t k2 = 0; k2 < kp; ++k2) d[k2 * MR + i] = 0;
    }
  }

  // C[MR, NR] (+)= sum over k pairs; writes only the m x n corner.
  __attribute__((target("avx512f,avx512bf16"))) static void micro(int64_t kc, const P* __restrict a,
                                                                   const P* __restrict b, float* c, int64_t ldc,
                                                                   bool acc, int m, int n) {
    __m512 r[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) r[i][0] = r[i][1] = _mm512_setzero_ps();
    int64_t kp = (kc + 1) / 2;
    for (int64_t k2 = 0; k2 < kp; ++k2) {
      __m512bh b0 = (__m512bh)_mm512_load_si512(b + k2 * NR), b1 = (__m512bh)_mm512_load_si512(b + k2 * NR + 16);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        __m512bh ai = (__m512bh)_mm512_set1_epi32(int(a[k2 * MR + i]));
        r[i][0] = _mm512_dpbf16_ps(r[i][0], ai, b0);
        r[i][1] = _mm512_dpbf16_ps(r[i][1], ai, b1);
      }
    }
    if (m == MR && n == NR) {
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < 2; ++v) {
          float* o = c + i * ldc + v * 16;
          _mm512_storeu_ps(o, acc ? _mm512_add_ps(_mm512_loadu_ps(o), r[i][v]) : r[i][v]);
        }
      return;
    }
    alignas(64) float t[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 2; ++v) _mm512_store_ps(&t[i][v * 16], r[i][v]);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
  }
};

}  // namespace brisk::kern::cpu::avx512bf16

namespace brisk::kern::cpu {
template <class E>
void sgemm_avx512bf16(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool acc) {
  avx512bf16::gemm_threads<avx512bf16::Bf16Panels<E>>(M, N, K, A, B, C, ldc, acc);
}
template void sgemm_avx512bf16<float>(int64_t, int64_t, int64_t, Mat<float>, Mat<float>, float*, int64_t, bool);
template void sgemm_avx512bf16<BFloat16>(int64_t, int64_t, int64_t, Mat<BFloat16>, Mat<BFloat16>, float*, int64_t,
                                         bool);
}  // namespace brisk::kern::cpu
