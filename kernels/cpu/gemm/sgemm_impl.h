// The blocked GEMM driver and micro-kernel, written once with GCC vector
// extensions and compiled once per instruction set. The including .cpp defines:
//   BRISK_GEMM_NS  namespace for this build (keeps the instantiations apart)
//   BRISK_GEMM_W   floats per SIMD register
//   BRISK_GEMM_MR  rows of C per micro-tile
//   BRISK_GEMM_NV  SIMD registers per micro-tile row (NR = NV * W columns)
//   vfma(a, b, c)  a * b + c on one register (the ISA's FMA, or mul+add)
//   vset1(a)       a broadcast to every lane
//   BRISK_GEMM_ENTRY  the entry point's name (sgemm_avx512, ...), defined
//                  below once per operand type (f32, bf16, f16)
// Loop nest (Goto/BLIS): jc over N by NC, pc over K by KC (B panel [KC, NC]
// packed into NR-wide strips, L2/L3-resident), ic over M by MC (A block
// [MC, KC] packed into MR-tall strips), then the MR x NR micro-kernel.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/gemm/sgemm.h"

namespace brisk::kern::cpu::BRISK_GEMM_NS {

constexpr int W = BRISK_GEMM_W;
constexpr int MR = BRISK_GEMM_MR;
constexpr int NV = BRISK_GEMM_NV;
constexpr int NR = NV * W;
constexpr int64_t KC = 256;
constexpr int64_t MC = MR * (120 / MR);
constexpr int64_t NC = NR * (3072 / NR);

using vf = float __attribute__((vector_size(W * 4)));
using vfu = float __attribute__((vector_size(W * 4), aligned(4)));  // unaligned access

template <class T>
struct AlignedBuf {  // grows, never shrinks: no allocations in steady state
  T* p = nullptr;
  size_t n = 0;
  T* get(size_t want) {
    if (want > n) {
      std::free(p);
      n = want;
      p = static_cast<T*>(std::aligned_alloc(64, (want * sizeof(T) + 63) / 64 * 64));
    }
    return p;
  }
  ~AlignedBuf() { std::free(p); }
};

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
        if constexpr (std::is_same_v<E, float>) std::memcpy(o, src, sizeof(float) * size_t(w));
        else for (int64_t j = 0; j < w; ++j) o[j] = widen(src[j]);
        for (int64_t j = w; j < NR; ++j) o[j] = 0.f;
      }
    } else {
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
    if (A.rs == 1) {  // column-major A (a transposed operand): contiguous along i
      for (int64_t k = 0; k < kc; ++k) {
        const E* src = A.p + ib + (k0 + k) * A.cs;
        float* o = d + k * MR;
        for (int64_t i = 0; i < h; ++i) o[i] = widen(src[i]);
        for (int64_t i = h; i < MR; ++i) o[i] = 0.f;
      }
    } else {
      for (int64_t i = 0; i < h; ++i) {
        const E* src = A.p + (ib + i) * A.rs + k0 * A.cs;
        for (int64_t k = 0; k < kc; ++k) d[k * MR + i] = widen(src[k * A.cs]);
      }
      for (int64_t i = h; i < MR; ++i)
        for (int64_t k = 0; k < kc; ++k) d[k * MR + i] = 0.f;
    }
  }
}

// C[MR, NR] (+)= Ap[kc, MR]^T @ Bp[kc, NR]; writes only the m x n corner.
inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                         int64_t ldc, bool acc, int m, int n) {
  vf r[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) r[i][v] = vf{};
  for (int i = 0; i < m; ++i) __builtin_prefetch(c + i * ldc, 1);  // C is touched once, at the end
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = *reinterpret_cast<const vf*>(b + k * NR + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      vf ai = vset1(a[k * MR + i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) r[i][v] = vfma(ai, bv[v], r[i][v]);
    }
  }
  if (m == MR && n == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        vfu* o = reinterpret_cast<vfu*>(c + i * ldc + v * W);
        *o = acc ? *o + r[i][v] : r[i][v];
      }
    return;
  }
  alignas(64) float t[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) *reinterpret_cast<vf*>(&t[i][v * W]) = r[i][v];
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
}

// One thread: the whole loop nest on C[M, N].
template <class E>
inline void sgemm_serial(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool accumulate) {
  static thread_local AlignedBuf<float> abuf, bbuf;
  // K blocks of equal size (288 -> 144 + 144, not 256 + 32): a thin last
  // block would run the micro-kernel at a fraction of its speed.
  int64_t nk = std::max<int64_t>(1, (K + KC - 1) / KC), kblk = (K + nk - 1) / nk;
  float* ap = abuf.get(size_t(MC * kblk));
  for (int64_t jc = 0; jc < N; jc += NC) {
    int64_t nc = std::min(NC, N - jc), strips = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += kblk) {
      int64_t kc = std::min(kblk, K - pc);
      bool acc = accumulate || pc > 0;
      float* bp = bbuf.get(size_t(strips * kc * NR));
      pack_b(B, pc, kc, jc, nc, bp);
      for (int64_t ic = 0; ic < M; ic += MC) {
        int64_t mc = std::min(MC, M - ic);
        pack_a(A, ic, mc, pc, kc, ap);
        for (int64_t s = 0; s < strips; ++s) {
          int64_t j = jc + s * NR;
          int n = int(std::min<int64_t>(NR, N - j));
          for (int64_t i = 0; i < mc; i += MR)
            micro_kernel(kc, ap + i * kc, bp + s * kc * NR, C + (ic + i) * ldc + j, ldc, acc,
                         int(std::min<int64_t>(MR, mc - i)), n);
        }
      }
    }
  }
  if (K == 0 && !accumulate)
    for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.f);
}

// Threads split C into a tm x tn grid of independent sub-GEMMs, each packing
// its own panels: no barriers, one fork-join per call. Splitting rows makes
// every thread pack all of B, splitting columns all of A; the grid minimises
// that duplicated packing. Results do not depend on the grid (same K blocks,
// same micro-kernel order per element), so they are thread-count independent.
template <class E>
inline void sgemm(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool accumulate) {
  int threads = get_num_threads();
  int64_t mblocks = (M + MR - 1) / MR, strips = (N + NR - 1) / NR;
  if (threads <= 1 || in_parallel_region() || M * N * K < (int64_t(1) << 18) || mblocks * strips < 2) {
    sgemm_serial(M, N, K, A, B, C, ldc, accumulate);
    return;
  }
  int tm = 0, tn = 0;
  double best = 0;
  for (int d = 1; d <= threads; ++d) {
    if (threads % d) continue;
    int e = threads / d;
    if (d > mblocks || e > strips) continue;
    double dup = double(e) * double(M) + double(d) * double(N);
    if (tm == 0 || dup < best) { tm = d; tn = e; best = dup; }
  }
  if (tm == 0) {  // fewer blocks than threads: split the longer side only
    if (mblocks >= strips) { tm = int(std::min<int64_t>(threads, mblocks)); tn = 1; }
    else { tm = 1; tn = int(std::min<int64_t>(threads, strips)); }
  }
  parallel_for(0, tm * tn, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      int64_t bi = t / tn, bj = t % tn;
      int64_t r0 = mblocks * bi / tm * MR, r1 = std::min(M, mblocks * (bi + 1) / tm * MR);
      int64_t c0 = strips * bj / tn * NR, c1 = std::min(N, strips * (bj + 1) / tn * NR);
      if (r0 >= r1 || c0 >= c1) continue;
      sgemm_serial(r1 - r0, c1 - c0, K, Mat<E>{A.p + r0 * A.rs, A.rs, A.cs}, Mat<E>{B.p + c0 * B.cs, B.rs, B.cs},
                   C + r0 * ldc + c0, ldc, accumulate);
    }
  });
}

}  // namespace brisk::kern::cpu::BRISK_GEMM_NS

namespace brisk::kern::cpu {
// One definition per operand type: the same driver and micro-kernel.
template <class E>
void BRISK_GEMM_ENTRY(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool acc) {
  BRISK_GEMM_NS::sgemm<E>(M, N, K, A, B, C, ldc, acc);
}
template void BRISK_GEMM_ENTRY<float>(int64_t, int64_t, int64_t, Mat<float>, Mat<float>, float*, int64_t, bool);
template void BRISK_GEMM_ENTRY<BFloat16>(int64_t, int64_t, int64_t, Mat<BFloat16>, Mat<BFloat16>, float*, int64_t,
                                         bool);
template void BRISK_GEMM_ENTRY<Half>(int64_t, int64_t, int64_t, Mat<Half>, Mat<Half>, float*, int64_t, bool);
}  // namespace brisk::kern::cpu
