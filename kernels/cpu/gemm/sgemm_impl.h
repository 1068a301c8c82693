// The f32 micro-kernel and packing (the driver is gemm_driver.h), written once
// with GCC vector extensions and compiled once per instruction set. The including .cpp defines:
//   BRISK_GEMM_NS  namespace for this build (keeps the instantiations apart)
//   BRISK_GEMM_W   floats per SIMD register
//   BRISK_GEMM_MR  rows of C per micro-tile
//   BRISK_GEMM_NV  SIMD registers per micro-tile row (NR = NV * W columns)
//   vfma(a, b, c)  a * b + c on one register (the ISA's FMA, or mul+add)
//   vset1(a)       a broadcast to every lane
//   BRISK_GEMM_ENTRY  the entry point's name (sgemm_avx512, ...), defined
//                  below once per operand type (f32, bf16, f16)
// and may define BRISK_GEMM_A_STRIP_IN_L1 (gemm_driver.h's loop order).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include "kernels/cpu/gemm/gemm_driver.h"
#include "kernels/cpu/transpose8x8.h"

namespace brisk::kern::cpu::BRISK_GEMM_NS {

constexpr int W = BRISK_GEMM_W;
constexpr int MR = BRISK_GEMM_MR;
constexpr int NV = BRISK_GEMM_NV;
constexpr int NR = NV * W;
constexpr int64_t KC = 256;
constexpr int64_t MC = MR * ((128 + MR - 1) / MR);  // a batch of 128 rows is one block
constexpr int64_t NC = NR * (1024 / NR);  // B panel KC x NC: 1 MiB of a 2 MiB L2
constexpr int64_t kPanelFloats = int64_t(1) << 18;  // that 1 MiB

// The K block bound for a product N columns wide and K deep: the B panel,
// kc x min(N, NC), fills at most that same 1 MiB, so narrower products take
// deeper blocks, up to 512 (an 8 x 512 A strip is 16 KiB of L1). Each K block
// is one more pass of C through the registers: the mlp's 128 x 512 x 784 runs
// 2 blocks of 392 instead of 4 of 196, 7-8% faster on 2 threads. A product at
// least 512 deep takes blocks of 512 however wide it is, its panel then
// narrowed to 512 columns (nc_for): at 2048^3 half the passes of C; 1024^3
// and 2048^3 ran 5-7% faster on the 6 x 64 tile (0-3% on 8 x 32). Shallower
// wide products (the cnn's fc1 gradients, N = 3136, K = 128) lost 2-4% with
// 512-column panels and keep NC.
constexpr int64_t kc_for(int64_t N, int64_t K) {
  if (K >= 512) return 512;
  return std::clamp<int64_t>(kPanelFloats / std::max<int64_t>(1, std::min(N, NC)), KC, 512);
}
// The panel width for K blocks of kblk: as many whole strips as keep the
// panel within kPanelFloats, at most NC.
constexpr int64_t nc_for(int64_t kblk) {
  return std::clamp<int64_t>(kPanelFloats / std::max<int64_t>(1, kblk) / NR * NR, NR, NC);
}

using vf = float __attribute__((vector_size(W * 4)));

#ifdef __AVX__
// NRUNS runs (a multiple of 8) of kc floats along k (run r at x + r *
// run_stride) -> for each k the runs' values as NRUNS consecutive floats at
// o + k * ld: an 8x8 register transpose per 8 runs and 8 k. Packs row-major
// A strips (8 runs) and column-major B strips (NR runs: a transposed
// operand, a linear layer's W^T) at copy speed instead of one strided scalar
// store per value. k outermost: each 8 k's rows are written whole before the
// next 8. Eight runs at a time over all of kc instead wrote every packed row
// of a 32-wide B strip in 32-byte pieces, one pass per 8 runs, and a
// kc x 32 strip (50 KiB at kc = 392) falls out of L1 between passes, so each
// line was fetched again to take its next piece (packing 25-30% slower).
template <int NRUNS>
inline void pack_runs(const float* x, int64_t run_stride, int64_t kc, float* o, int64_t ld) {
  static_assert(NRUNS % 8 == 0);
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8)
#pragma GCC unroll 8
    for (int j8 = 0; j8 < NRUNS; j8 += 8) {
      __m256 r[8];
      load_transposed8x8(x + j8 * run_stride + k, run_stride, r);  // r[j]: value k + j of runs j8..
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(o + (k + j) * ld + j8, r[j]);
    }
  for (; k < kc; ++k)
    for (int i = 0; i < NRUNS; ++i) o[k * ld + i] = x[i * run_stride + k];
}
#endif

// B[k0:k0+kc, j0:j0+nc] -> strips of [kc, NR], zero-padded past nc.
template <class E>
inline void pack_b(const Mat<E>& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  int64_t strips = (nc + NR - 1) / NR;
  auto strip = [&](int64_t s) {
    float* d = dst + s * kc * NR;
    int64_t jb = j0 + s * NR, w = std::min<int64_t>(NR, j0 + nc - jb);
    if (B.cs == 1) {
      for (int64_t k = 0; k < kc; ++k) {
        const E* src = B.p + (k0 + k) * B.rs + jb;
        float* o = d + k * NR;
        if constexpr (std::is_same_v<E, float>) {
          if (w == NR) {  // a whole strip row: NV vector copies inline (a memcpy call per row costs as much)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
              vf t;
              std::memcpy(&t, src + v * W, sizeof t);
              std::memcpy(o + v * W, &t, sizeof t);
            }
            continue;
          }
          std::memcpy(o, src, sizeof(float) * size_t(w));
        }
        else for (int64_t j = 0; j < w; ++j) o[j] = widen(src[j]);
        for (int64_t j = w; j < NR; ++j) o[j] = 0.f;
      }
    } else {
#ifdef __AVX__
      if constexpr (std::is_same_v<E, float> && NR % 8 == 0)
        if (B.rs == 1 && w == NR) {  // column-major B: whole strips, 8 columns at a time
          pack_runs<NR>(B.p + k0 + jb * B.cs, B.cs, kc, d, NR);
          return;
        }
#endif
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = w; j < NR; ++j) d[k * NR + j] = 0.f;
      for (int64_t j = 0; j < w; ++j) {  // rs==1 (transposed B) reads along k
        const E* src = B.p + k0 * B.rs + (jb + j) * B.cs;
        for (int64_t k = 0; k < kc; ++k) d[k * NR + j] = widen(src[k * B.rs]);
      }
    }
  };
  for (int64_t s = 0; s < strips; ++s) strip(s);
}

// A[i0:i0+mc, k0:k0+kc] -> strips of [kc, MR], zero-padded past mc.
template <class E>
inline void pack_a(const Mat<E>& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  for (int64_t s = 0; s * MR < mc; ++s) {
    float* d = dst + s * kc * MR;
    int64_t ib = i0 + s * MR, h = std::min<int64_t>(MR, i0 + mc - ib);
    if (A.rs == 1 && h == MR) {  // column-major A, a whole strip: MR contiguous values per k (one vector copy)
      for (int64_t k = 0; k < kc; ++k) {
        const E* src = A.p + ib + (k0 + k) * A.cs;
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) d[k * MR + i] = widen(src[i]);
      }
    } else if (A.rs == 1) {  // column-major A (a transposed operand): contiguous along i
      for (int64_t k = 0; k < kc; ++k) {
        const E* src = A.p + ib + (k0 + k) * A.cs;
        float* o = d + k * MR;
        for (int64_t i = 0; i < h; ++i) o[i] = widen(src[i]);
        for (int64_t i = h; i < MR; ++i) o[i] = 0.f;
      }
    } else {
#ifdef __AVX__
      if constexpr (std::is_same_v<E, float> && MR == 8)
        if (A.cs == 1 && h == MR) {  // row-major A, a whole strip
          pack_runs<8>(A.p + ib * A.rs + k0, A.rs, kc, d, MR);
          continue;
        }
#endif
      for (int64_t i = 0; i < h; ++i) {
        const E* src = A.p + (ib + i) * A.rs + k0 * A.cs;
        for (int64_t k = 0; k < kc; ++k) d[k * MR + i] = widen(src[k * A.cs]);
      }
      for (int64_t i = h; i < MR; ++i)
        for (int64_t k = 0; k < kc; ++k) d[k * MR + i] = 0.f;
    }
  }
}

// C[MR, NR] (+)= A @ Bp[kc, NR] for the MR x kc block of A whose element
// (i, k) is at(i, k); writes only the m x n corner; then the epilogue ep
// (bias already at the tile's first column), if given: in the registers for
// a full tile (a pass over the stored tile cost 6-15% of a K = 128 product),
// over the stored corner otherwise.
// kEp: whether ep is given, a template argument so that the tile without one
// compiles exactly as it would with no epilogue code at all (a run-time test
// in the store loop had cost the plain kernel 6-8%).
// kList: only the kc values ks[0 .. kc), ascending (zero_skip.h: the k where
// the A strip is not all zero), else every k from 0 to kc (ks unread); a
// template argument for the same reason as kEp.
template <bool kEp, bool kList, class At>
inline void micro_tile(int64_t kc, const int32_t* ks, const At& at, const float* __restrict b, float* c, int64_t ldc,
                       bool acc, int m, int n, const GemmEpilogue* ep = nullptr) {
  vf r[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) r[i][v] = vf{};
  for (int i = 0; i < m; ++i) __builtin_prefetch(c + i * ldc, 1);  // C is touched once, at the end
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t k = kList ? int64_t(ks[kk]) : kk;
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = *reinterpret_cast<const vf*>(b + k * NR + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      vf ai = vset1(at(i, k));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) r[i][v] = vfma(ai, bv[v], r[i][v]);
    }
  }
  if (m == MR && n == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        // C rows need not be vector-aligned: memcpy is the portable unaligned
        // access (one vmovups either way).
        float* o = c + i * ldc + v * W;
        vf cur = r[i][v];
        if (acc) {
          vf old;
          std::memcpy(&old, o, sizeof old);
          cur += old;
        }
        if constexpr (kEp) cur = epilogue_lanes(cur, *ep, v * W);
        std::memcpy(o, &cur, sizeof cur);
      }
    return;
  }
  alignas(64) float t[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) *reinterpret_cast<vf*>(&t[i][v * W]) = r[i][v];
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
  if constexpr (kEp) apply_epilogue(c, ldc, m, n, *ep);
}

// micro_tile with kEp = (ep given) and kList = (ks given).
template <class At>
inline void tile_dispatch(int64_t kc, const int32_t* ks, const At& at, const float* __restrict b, float* c, int64_t ldc,
                          bool acc, int m, int n, const GemmEpilogue* ep) {
  if (ks) {
    if (ep) micro_tile<true, true>(kc, ks, at, b, c, ldc, acc, m, n, ep);
    else micro_tile<false, true>(kc, ks, at, b, c, ldc, acc, m, n);
  } else {
    if (ep) micro_tile<true, false>(kc, ks, at, b, c, ldc, acc, m, n, ep);
    else micro_tile<false, false>(kc, ks, at, b, c, ldc, acc, m, n);
  }
}

// A from a packed strip Ap[kc, MR]; ks: a k list (kc long), or null.
inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
                         bool acc, int m, int n, const GemmEpilogue* ep = nullptr, const int32_t* ks = nullptr) {
  auto at = [a](int i, int64_t k) { return a[k * MR + i]; };
  tile_dispatch(kc, ks, at, b, c, ldc, acc, m, n, ep);
}

// A read in place from a row-major matrix (row i of the tile at a + i * lda,
// kc contiguous values each) instead of a packed strip: the same broadcasts
// in the same order, so the same bits. Rows past m read row 0 again (their
// results are not stored).
inline void micro_kernel_rows(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* c,
                              int64_t ldc, bool acc, int m, int n, const GemmEpilogue* ep = nullptr,
                              const int32_t* ks = nullptr) {
  const float* ar[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) ar[i] = a + (i < m ? i : 0) * lda;
  auto at = [&ar](int i, int64_t k) { return ar[i][k]; };
  tile_dispatch(kc, ks, at, b, c, ldc, acc, m, n, ep);
}

#include "kernels/cpu/gemm/zero_skip.h"

// The policy gemm_driver.h runs: f32 panels, one k per packed step.
template <class E>
struct F32Panels {
  using P = float;
  static constexpr int64_t MR = BRISK_GEMM_NS::MR, NR = BRISK_GEMM_NS::NR, KS = 1, KC = BRISK_GEMM_NS::KC,
                           MC = BRISK_GEMM_NS::MC, NC = BRISK_GEMM_NS::NC;
  static constexpr int64_t kc(int64_t N, int64_t K) { return kc_for(N, K); }
  static constexpr int64_t nc(int64_t kblk) { return nc_for(kblk); }
  static constexpr double kMacsPerCycle = 2.0 * W;  // two FMA ports (gemm_driver.h's split_cost)
  static void pack_a(const Mat<E>& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* d) {
    BRISK_GEMM_NS::pack_a(A, i0, mc, k0, kc, d);
  }
  static void pack_b(const Mat<E>& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* d) {
    BRISK_GEMM_NS::pack_b(B, k0, kc, j0, nc, d);
  }
  static constexpr bool kFusedEpilogue = true;  // the epilogue in the registers (micro_tile)
#ifdef BRISK_GEMM_A_STRIP_IN_L1
  static constexpr bool kAStripInL1 = true;
#endif
  static void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc, int m, int n,
                    const GemmEpilogue* ep = nullptr) {
    micro_kernel(kc, a, b, c, ldc, acc, m, n, ep);
  }
  static void micro_rows(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, bool acc,
                         int m, int n, const GemmEpilogue* ep = nullptr) {
    micro_kernel_rows(kc, a, lda, b, c, ldc, acc, m, n, ep);
  }
  // Zero skipping (zero_skip.h, gemm_driver.h's zero_skip): the k lists of
  // A strips, the check of B panels, and the tiles over a k list (nk of them).
  static constexpr bool kZeroSkip = true;
  static int64_t nonzero_ks(int64_t kc, const float* a, int32_t* ks) { return nonzero_ks_packed(kc, a, ks); }
  static int64_t nonzero_ks_rows(int64_t kc, const float* a, int64_t lda, int m, int32_t* ks) {
    return BRISK_GEMM_NS::nonzero_ks_rows(kc, a, lda, m, ks, worth_skipping);
  }
  static bool finite(const float* b, int64_t n) { return finite_panel(b, n); }
  static void micro_ks(int64_t nk, const int32_t* ks, const float* a, const float* b, float* c, int64_t ldc, bool acc,
                       int m, int n, const GemmEpilogue* ep) {
    micro_kernel(nk, a, b, c, ldc, acc, m, n, ep, ks);
  }
  static void micro_rows_ks(int64_t nk, const int32_t* ks, const float* a, int64_t lda, const float* b, float* c,
                            int64_t ldc, bool acc, int m, int n, const GemmEpilogue* ep) {
    micro_kernel_rows(nk, a, lda, b, c, ldc, acc, m, n, ep, ks);
  }
};

// Pre-packed operands (sgemm.h's sgemm_packed): A as ceil(M / MR) strips
// [K, MR], B as ceil(N / NR) strips [K, NR], whole K per strip, strip s at
// s * stride (sgemm_packed_stride), zero past M and N. A K block starting at
// k0 is then the strip's run at k0 * MR (or k0 * NR), read in place.
void packed_a(int64_t M, int64_t K, MatF A, float* dst, int64_t stride) {
  for (int64_t i = 0; i < M; i += MR) pack_a(A, i, std::min<int64_t>(MR, M - i), 0, K, dst + i / MR * stride);
}
void packed_b(int64_t K, int64_t N, MatF B, float* dst, int64_t stride) {
  for (int64_t j = 0; j < N; j += NR) pack_b(B, 0, K, j, std::min<int64_t>(NR, N - j), dst + j / NR * stride);
}

// C[M, N] (+)= A @ B with B packed, on the calling thread: tile(kc, i, k0,
// b, c, acc, m) runs the micro-kernel on rows i.. of A from k0 (packed strip
// or rows in place). The K blocks are gemm_serial's (k_block of kc_for(N, K)) and
// each C element sums them in the same order with the same micro-kernel, so
// the result is sgemm's bit for bit. Loop nest: K block, MC rows of A (in
// L2), B strip (in L1), A strip.
template <class Tile>
void packed_loop(int64_t M, int64_t N, int64_t K, const float* bp, int64_t sb, float* C, int64_t ldc,
                 bool accumulate, const Tile& tile) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.f);
    return;
  }
  int64_t kblk = k_block(K, kc_for(N, K)), strips = (N + NR - 1) / NR;
  for (int64_t pc = 0; pc < K; pc += kblk) {
    int64_t kc = std::min(kblk, K - pc);
    bool acc = accumulate || pc > 0;
    for (int64_t ic = 0; ic < M; ic += MC) {
      int64_t mc = std::min(MC, M - ic);
      for (int64_t s = 0; s < strips; ++s) {
        int64_t j = s * NR;
        int n = int(std::min<int64_t>(NR, N - j));
        for (int64_t i = ic; i < ic + mc; i += MR)
          tile(kc, i, pc, bp + s * sb + pc * NR, C + i * ldc + j, acc, int(std::min<int64_t>(MR, M - i)), n);
      }
    }
  }
}

// Both operands packed (A strips sa apart).
void packed_gemm(int64_t M, int64_t N, int64_t K, const float* ap, int64_t sa, const float* bp, int64_t sb,
                 float* C, int64_t ldc, bool accumulate) {
  packed_loop(M, N, K, bp, sb, C, ldc, accumulate,
              [&](int64_t kc, int64_t i, int64_t k0, const float* b, float* c, bool acc, int m, int n) {
                micro_kernel(kc, ap + i / MR * sa + k0 * MR, b, c, ldc, acc, m, n);
              });
}

// A row-major in place (row stride lda), B packed.
void packed_gemm_rows(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* bp, int64_t sb,
                      float* C, int64_t ldc, bool accumulate) {
  packed_loop(M, N, K, bp, sb, C, ldc, accumulate,
              [&](int64_t kc, int64_t i, int64_t k0, const float* b, float* c, bool acc, int m, int n) {
                micro_kernel_rows(kc, a + i * lda + k0, lda, b, c, ldc, acc, m, n);
              });
}

}  // namespace brisk::kern::cpu::BRISK_GEMM_NS

namespace brisk::kern::cpu {
// One definition per operand type: the same driver and micro-kernel.
// A product at most NR / 2 columns wide (a classifier head: N = 10 classes)
// would fill under half of every NR-wide micro-tile; its transpose
// C^T [N, M] = B^T A^T fills MR-tall strips instead (N = 10 on the AVX-512
// tile, 8 x 32: 62% of each tile's lanes used instead of 31%). C^T goes to a
// scratch buffer and is transposed into C, then the epilogue runs on C. The
// K blocks are the original's and each element's products are summed in the
// same order (a * b = b * a, each FMA rounded once), with C's old values
// loaded first when accumulating, so C gets the same bits either way.
template <class E>
void BRISK_GEMM_ENTRY(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool acc,
                      const GemmEpilogue* ep) {
  using namespace BRISK_GEMM_NS;
  if (2 * N > NR || M < 2 * NR || K == 0) {
    gemm_threads<F32Panels<E>>(M, N, K, A, B, C, ldc, acc, ep);
    return;
  }
  static thread_local AlignedBuf<float> scratch;
  float* ct = scratch.get(size_t(N * M));  // C^T [N, M]
  if (acc)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) ct[j * M + i] = C[i * ldc + j];
  gemm_threads<F32Panels<E>>(N, M, K, Mat<E>{B.p, B.cs, B.rs}, Mat<E>{A.p, A.cs, A.rs}, ct, M, acc, nullptr,
                             kc_for(N, K));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = ct[j * M + i];
  if (ep) apply_epilogue(C, ldc, M, N, *ep);
}
template void BRISK_GEMM_ENTRY<float>(int64_t, int64_t, int64_t, Mat<float>, Mat<float>, float*, int64_t, bool,
    const GemmEpilogue*);
template void BRISK_GEMM_ENTRY<BFloat16>(int64_t, int64_t, int64_t, Mat<BFloat16>, Mat<BFloat16>, float*, int64_t,
                                         bool,
    const GemmEpilogue*);
template void BRISK_GEMM_ENTRY<Half>(int64_t, int64_t, int64_t, Mat<Half>, Mat<Half>, float*, int64_t, bool,
    const GemmEpilogue*);
}  // namespace brisk::kern::cpu
