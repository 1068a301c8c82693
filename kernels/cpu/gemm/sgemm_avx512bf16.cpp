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
#include "kernels/cpu/gemm/bf16_pack.h"

namespace brisk::kern::cpu::avx512bf16 {

template <class E>
struct Bf16Panels {
  using P = uint32_t;  // (bf16 of k, bf16 of k + 1)
  static constexpr int64_t MR = 8, NR = 32, KS = 2, KC = 512, MC = MR * 15, NC = NR * 96;

  // B[k0:k0+kc, j0:j0+nc] -> strips [ceil(kc/2), NR] of pairs, zero-padded.
  static void pack_b(const Mat<E>& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, P* dst) {
    pack_b_pairs<NR>(B, k0, kc, j0, nc, (kc + 1) / 2, dst);
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

  // The epilogue (bias, ReLU, bf16 rounding: linear's folded casts) in the
  // registers of a full tile as it is stored, not in a pass over the stored
  // tile, which costs twice as much of this kernel's time as of the f32 one's.
  static constexpr bool kFusedEpilogue = true;

  // C[MR, NR] (+)= sum over k pairs; writes only the m x n corner; then ep.
  static void micro(int64_t kc, const P* __restrict a, const P* __restrict b, float* c, int64_t ldc, bool acc, int m,
                    int n, const GemmEpilogue* ep = nullptr) {
    if (ep) tile<true>(kc, a, b, c, ldc, acc, m, n, ep);
    else tile<false>(kc, a, b, c, ldc, acc, m, n, nullptr);
  }
  template <bool kEp>
  __attribute__((target("avx512f,avx512bf16"))) static void tile(int64_t kc, const P* __restrict a,
                                                                  const P* __restrict b, float* c, int64_t ldc,
                                                                  bool acc, int m, int n, const GemmEpilogue* ep) {
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
          __m512 cur = acc ? _mm512_add_ps(_mm512_loadu_ps(o), r[i][v]) : r[i][v];
          if constexpr (kEp) cur = epilogue_lanes(cur, *ep, v * 16);
          _mm512_storeu_ps(o, cur);
        }
      return;
    }
    alignas(64) float t[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 2; ++v) _mm512_store_ps(&t[i][v * 16], r[i][v]);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
    if constexpr (kEp) apply_epilogue(c, ldc, m, n, *ep);
  }
};

}  // namespace brisk::kern::cpu::avx512bf16

namespace brisk::kern::cpu {

template <class E>
void sgemm_avx512bf16(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool acc,
                      const GemmEpilogue* ep) {
  avx512bf16::gemm_threads<avx512bf16::Bf16Panels<E>>(M, N, K, A, B, C, ldc, acc, ep);
}
template void sgemm_avx512bf16<float>(int64_t, int64_t, int64_t, Mat<float>, Mat<float>, float*, int64_t, bool,
    const GemmEpilogue*);
template void sgemm_avx512bf16<BFloat16>(int64_t, int64_t, int64_t, Mat<BFloat16>, Mat<BFloat16>, float*, int64_t,
                                         bool,
    const GemmEpilogue*);
}  // namespace brisk::kern::cpu
