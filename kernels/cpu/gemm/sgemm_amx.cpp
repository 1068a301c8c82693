// GEMM on AMX tiles (Intel Sapphire Rapids and later: amx-tile, amx-bf16),
// for bf16 autocast like sgemm_avx512bf16.cpp, which it replaces where the
// CPU and the OS allow tiles. One tdpbf16ps multiplies a 16x32 bf16 tile of A
// by a 32x16 tile of B (pairs along k, the layout bf16_pack.h writes) into a
// 16x16 f32 tile of C: 16 K of work in one instruction that issues every 16
// cycles, 1024 FLOP per cycle per core against the 64 of f32 FMAs.
// The micro-kernel holds a 32x32 block of C in four tiles (tmm0-3), loads two
// A tiles (tmm4-5) and two B tiles (tmm6-7) per 32 k and runs four products:
// each loaded tile feeds two of them.
// Numerics as the AVX512-BF16 kernel: operands rounded to bf16 (nearest
// even), exact products, f32 sums (pairs first, denormals flushed). Results
// agree with the f32 GEMM of the rounded operands to f32 rounding.
// Linux hands out tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM,
// kernel >= 5.16): amx_usable() (amx_tile.h) asks once.
// The driver (blocking, packing order, threads) is gemm_driver.h's.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include <immintrin.h>

#define BRISK_GEMM_NS amx
#include "kernels/cpu/gemm/bf16_pack.h"
#include "kernels/cpu/gemm/gemm_driver.h"
#include "kernels/cpu/gemm/amx_tile.h"

namespace brisk::kern::cpu::amx {

template <class E>
struct AmxPanels {
  using P = Step;
  // KS = 32: packed steps hold 32 k (a tile's depth); blocks of 512 k. An A
  // block (MC x KC bf16 = 256 KiB) and a B strip (KC x NR = 32 KiB) fit L2.
  static constexpr int64_t MR = 32, NR = 32, KS = 32, KC = 512, MC = MR * 8, NC = NR * 32;

  // B[k0:k0+kc, j0:j0+nc] -> NR-wide strips of kp steps, each step 16 pair
  // rows x NR columns (the VNNI layout), zero past kc and nc.
  static void pack_b(const Mat<E>& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, P* dst) {
    int64_t kp = (kc + KS - 1) / KS;
    pack_b_pairs<NR>(B, k0, kc, j0, nc, kp * 16, reinterpret_cast<uint32_t*>(dst));
  }

  // A[i0:i0+mc, k0:k0+kc] -> MR-tall strips [MR rows][kp steps]: each row's
  // k run as bf16, zero past kc and past the last row.
  static void pack_a(const Mat<E>& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, P* dst) {
    int64_t kp = (kc + KS - 1) / KS, kpad = kp * KS;
    for (int64_t s = 0; s * MR < mc; ++s) {
      uint16_t* d = reinterpret_cast<uint16_t*>(dst + s * kp * MR);  // [MR][kpad]
      int64_t ib = i0 + s * MR, h = std::min<int64_t>(MR, i0 + mc - ib);
      if constexpr (std::is_same_v<E, float>) {
        if (A.cs == 1) {  // row-major A: each row is a run along k
          pack_a_rows(A.p + ib * A.rs + k0, A.rs, h, kc, dst + s * kp * MR);
          continue;
        }
      }
      std::fill(d + h * kpad, d + MR * kpad, uint16_t(0));
      if constexpr (std::is_same_v<E, float>) {
        if (A.rs == 1) {  // column-major A: 16 rows contiguous at each k; pairs, then a 16x16 transpose
          for (int64_t r0 = 0; r0 < h; r0 += 16) {
            int64_t hh = std::min<int64_t>(16, h - r0);
            __mmask16 m = hh == 16 ? __mmask16(0xffff) : __mmask16((1u << hh) - 1);
            for (int64_t k = 0; k < kpad; k += 32) {
              alignas(64) uint32_t t[16][16];  // [k pair][row]
              for (int64_t k2 = 0; k2 < 16; ++k2) {
                int64_t ka = k + 2 * k2;
                const float* c0 = A.p + ib + r0 + (k0 + ka) * A.cs;
                __m512 x0 = ka < kc ? _mm512_maskz_loadu_ps(m, c0) : _mm512_setzero_ps();
                __m512 x1 = ka + 1 < kc ? _mm512_maskz_loadu_ps(m, c0 + A.cs) : _mm512_setzero_ps();
                pack_pairs16(x0, x1, t[k2]);
              }
              uint32_t* o = reinterpret_cast<uint32_t*>(d) + r0 * (kpad / 2) + k / 2;
              __m512 r[16];  // -> [row][k pair]
              for (int64_t k2 = 0; k2 < 16; ++k2) r[k2] = _mm512_load_ps(reinterpret_cast<const float*>(t[k2]));
              transpose16(r);
              for (int64_t i = 0; i < hh; ++i) _mm512_storeu_ps(reinterpret_cast<float*>(o + i * (kpad / 2)), r[i]);
            }
          }
          continue;
        }
      }
      for (int64_t i = 0; i < h; ++i) {
        const E* row = A.p + (ib + i) * A.rs + k0 * A.cs;
        for (int64_t k = 0; k < kpad; ++k) d[i * kpad + k] = k < kc ? bf16_of(row[k * A.cs]) : 0;
      }
    }
  }

  // C[MR, NR] (+)= A strip @ B strip over kc; writes only the m x n corner,
  // through the GEMM's epilogue (bias offset to this block's first column)
  // when given: applied to the values as they leave the tiles, not by a
  // second pass over C.
  static void micro(int64_t kc, const P* __restrict a, const P* __restrict b, float* c, int64_t ldc, bool acc, int m,
                    int n, const GemmEpilogue* ep = nullptr) {
    if (!ep) return tile_product_32x32(kc, a, b, c, ldc, acc, m, n, nullptr);
    Epilogue e;
    e.col_bias = ep->bias;
    e.relu = ep->relu;
    e.round_bf16 = ep->round_bf16;
    tile_product_32x32(kc, a, b, c, ldc, acc, m, n, &e);
  }
  static constexpr bool kFusedEpilogue = true;
};

}  // namespace brisk::kern::cpu::amx

namespace brisk::kern::cpu {

bool amx_bf16_usable() {
  static const bool ok = __builtin_cpu_supports("avx512bf16") && amx::amx_usable(22);  // the packing needs AVX512-BF16
  return ok;
}

template <class E>
void sgemm_amx(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool acc,
               const GemmEpilogue* ep) {
  amx::gemm_threads<amx::AmxPanels<E>>(M, N, K, A, B, C, ldc, acc, ep);
}
template void sgemm_amx<float>(int64_t, int64_t, int64_t, Mat<float>, Mat<float>, float*, int64_t, bool,
    const GemmEpilogue*);

}  // namespace brisk::kern::cpu
