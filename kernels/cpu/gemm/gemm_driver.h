// The blocked GEMM driver (Goto/BLIS loop nest and the thread split), written
// once for every micro-kernel. A Panels policy supplies the tile and block
// sizes and the packing and micro-kernel:
//   using P            packed element (float; or uint32_t holding two bf16)
//   MR, NR, KS         micro-tile rows and columns; k values per packed step
//   KC, MC, NC         block sizes (K, M, N); optionally kc(N), a deeper K
//                      block for a product N columns wide (narrow B panels)
//   pack_a(A, i0, mc, k0, kc, P*)   A block -> MR-tall strips [ceil(kc/KS), MR]
//   pack_b(B, k0, kc, j0, nc, P*)   B panel -> NR-wide strips [ceil(kc/KS), NR]
//   micro(kc, const P* a, const P* b, float* c, ldc, acc, m, n)
// and an optional epilogue (sgemm.h) runs on each block of C after its last
// K block, while the block is in cache (or inside the micro-kernel, for a
// policy that declares kFusedEpilogue and takes it as a last argument).
// Loop nest: jc over N by NC, pc over K by kc (B panel packed, L2
// resident), ic over M by MC (A block packed, or for a row-major A and a
// policy with micro_rows, read in place), then the micro-tiles, in one of
// two orders: the operand that meets more tiles of the other stays in L1.
// With more B strips in the panel than A strips in the block, an MR-tall A
// strip (L1) meets every NR-wide B strip (streamed from L2): BLIS's order,
// which also walks C along its rows, tile after adjacent tile, as the
// hardware prefetchers expect (the other order jumps MR rows of C per tile
// and lost 6-8% of the f32 kernel's speed at 2048^3). Otherwise a B strip
// (L1) meets every A strip of the block: for few, long strips (the cnn's fc1,
// 128 x 64 per thread at K = 3136) that order is 10-15% faster.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/gemm/sgemm.h"

// Inside the including build's namespace (BRISK_GEMM_NS): every instantiation
// here is compiled with that build's instruction set, and no inline function
// compiled for AVX-512 can stand in for another build's copy at link time.
namespace brisk::kern::cpu::BRISK_GEMM_NS {

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


// The epilogue (sgemm.h) on the m x n block of C at c; bias already offset to
// the block's first column. Branch-free, so it vectorizes: the rounding is
// float_to_bf16_bits' (nearest even, NaN made quiet).
inline void apply_epilogue(float* c, int64_t ldc, int64_t m, int64_t n, const GemmEpilogue& ep) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (ep.bias)
      for (int64_t j = 0; j < n; ++j) row[j] += ep.bias[j];
    if (ep.relu)  // v < 0 ? 0 : v keeps NaN and -0, as bias_relu's std::max(v, 0) does
      for (int64_t j = 0; j < n; ++j) row[j] = row[j] < 0.f ? 0.f : row[j];
    if (ep.round_bf16)
      for (int64_t j = 0; j < n; ++j) {
        uint32_t u;
        std::memcpy(&u, row + j, 4);
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        r = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x00400000u) & 0xffff0000u : r;
        std::memcpy(row + j, &r, 4);
      }
  }
}

// The same epilogue on one register of a full tile's row (V: a GCC vector of
// floats; the lanes are columns col.. of C, bias offset to the tile), as a
// micro-kernel applies it before storing: the bits of apply_epilogue.
template <class V>
inline V epilogue_lanes(V v, const GemmEpilogue& ep, int64_t col) {
  // (typedef: GCC drops a dependent vector_size on a using-alias)
  typedef uint32_t U __attribute__((vector_size(sizeof(V))));
  static_assert(sizeof(U) == sizeof(V));
  if (ep.bias) {
    V bv;
    std::memcpy(&bv, ep.bias + col, sizeof bv);
    v += bv;
  }
  if (ep.relu) v = v < 0.f ? V{} : v;
  if (ep.round_bf16) {
    U u;
    std::memcpy(&u, &v, sizeof u);
    U r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    r = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x00400000u) & 0xffff0000u : r;
    std::memcpy(&v, &r, sizeof v);
  }
  return v;
}

// Whether the policy's micro-kernel takes the epilogue itself (a trailing
// const GemmEpilogue* argument, applied as its results leave the registers or
// tiles), rather than the driver running apply_epilogue over C afterwards.
template <class Panels>
constexpr bool fused_epilogue() {
  if constexpr (requires { Panels::kFusedEpilogue; }) return Panels::kFusedEpilogue;
  return false;
}

// Whether the policy keeps the A strip in L1 whatever the block's shape
// (kAStripInL1): a B strip too wide for L1 (64 columns) would stream from L2
// in either order, while the A strip it then meets fits.
template <class Panels>
constexpr bool a_strip_in_l1() {
  if constexpr (requires { Panels::kAStripInL1; }) return Panels::kAStripInL1;
  return false;
}

// Whether the policy's micro-kernel can also broadcast A's values from rows
// of a row-major A in place (micro_rows(kc, a, lda, b, c, ldc, acc, m, n)):
// then such an A is not packed at all (the f32 kernel on f32 operands).
template <class Panels, class E>
constexpr bool rows_a() {
  if constexpr (requires { Panels::micro_rows; }) return std::is_same_v<E, typename Panels::P>;
  return false;
}
// Whether this A is read in place (a row-major A under such a policy).
template <class Panels, class E>
constexpr bool a_in_place(const Mat<E>& A) {
  return rows_a<Panels, E>() && A.cs == 1;
}

// Whether the policy skips the k where a whole A strip is zero (zero_skip.h:
// kZeroSkip with nonzero_ks, nonzero_ks_rows, finite, micro_ks and
// micro_rows_ks; f32 panels of one k per step).
template <class Panels>
constexpr bool zero_skip() {
  if constexpr (requires { Panels::kZeroSkip; }) return Panels::kZeroSkip && Panels::KS == 1;
  return false;
}
// A strip runs over its k list when that leaves out at least 1/16 of the K
// block: the list costs a load and an address per k kept, and scanning for
// it costs about a vector compare per k, so fewer zeros are not worth it.
constexpr bool worth_skipping(int64_t nk, int64_t kc) { return nk * 16 <= kc * 15; }

// The K block size for K: blocks of equal size (288 -> 144 + 144, not
// 256 + 32: a thin last block would run the micro-kernel at a fraction of
// its speed), at most about KC, whole groups of KS k values (only the last
// block may end mid-group). Every path that must give sgemm's bits
// (sgemm_impl.h's packed_loop) blocks K with this.
constexpr int64_t k_block(int64_t K, int64_t KC, int64_t KS = 1) {
  int64_t nk = std::max<int64_t>(1, (K + KC - 1) / KC), kblk = (K + nk - 1) / nk;
  return (kblk + KS - 1) / KS * KS;
}

// The bound on the K block for an N x K product: the policy's kc(N, K)
// where it has one, else KC. Always the whole product's N, never a thread's
// share of it, so that the K blocks (and the bits) do not depend on the
// thread count.
template <class Panels>
constexpr int64_t panel_kc(int64_t N, int64_t K) {
  if constexpr (requires { Panels::kc(N, K); }) return Panels::kc(N, K);
  return Panels::KC;
}
// The B panel's width bound for K blocks of kblk: the policy's nc(kblk)
// where it has one, else NC. (Any N blocking gives the same bits.)
template <class Panels>
constexpr int64_t panel_nc(int64_t kblk) {
  if constexpr (requires { Panels::nc(kblk); }) return Panels::nc(kblk);
  return Panels::NC;
}

// One thread: the whole loop nest on C[M, N], and the epilogue on each block
// of C after its last K block. kc: panel_kc of the whole product.
template <class Panels, class E>
inline void gemm_serial(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool accumulate,
                        const GemmEpilogue* ep, int64_t kc_max) {
  using P = typename Panels::P;
  constexpr int64_t MR = Panels::MR, NR = Panels::NR, KS = Panels::KS, MC = Panels::MC;
  static thread_local AlignedBuf<P> abuf, bbuf;
  int64_t kblk = k_block(K, kc_max, KS), NC = panel_nc<Panels>(kblk);
  P* ap = abuf.get(size_t(MC * ((kblk + KS - 1) / KS)));
  bool rows = a_in_place<Panels>(A);  // A read in place, not packed
  // Zero skipping (zero_skip.h): per A strip of the block, its k list ks +
  // s * kblk, nk[s] long. Looked for while it pays: the first block of A
  // where no strip is worth it turns it off for the rest of the product
  // (dense operands pay one block's scan, 1 / nc of its multiply-adds).
  constexpr int64_t kStrips = (MC + MR - 1) / MR;
  static thread_local AlignedBuf<int32_t> kbuf;
  int32_t* ks = nullptr;
  int64_t nk[zero_skip<Panels>() ? kStrips : 1];
  int64_t skipped = 0;  // multiply-adds left out (sgemm_zero_skip_macs)
  bool skip = false;
  if constexpr (zero_skip<Panels>())
    if (sgemm_zero_skip()) {
      ks = kbuf.get(size_t(kStrips * kblk));
      skip = true;
    }
  // N blocks of equal size too, whole strips each (N = 1100: 576 + 524, not
  // 1024 + 76): the B panel, kc x NC, must stay in L2 while A strips pass.
  int64_t nn = std::max<int64_t>(1, (N + NC - 1) / NC), nblk = ((N + nn - 1) / nn + NR - 1) / NR * NR;
  for (int64_t jc = 0; jc < N; jc += nblk) {
    int64_t nc = std::min(nblk, N - jc), strips = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += kblk) {
      int64_t kc = std::min(kblk, K - pc);
      bool acc = accumulate || pc > 0, last = pc + kc >= K;
      int64_t kp = (kc + KS - 1) / KS;  // packed steps in this block
      P* bp = bbuf.get(size_t(strips * kp * NR));
      Panels::pack_b(B, pc, kc, jc, nc, bp);
      int b_finite = -1;  // whether the B panel is all finite: not looked at yet
      for (int64_t ic = 0; ic < M; ic += MC) {
        int64_t mc = std::min(MC, M - ic);
        if (!rows) Panels::pack_a(A, ic, mc, pc, kc, ap);
        bool lists = false;  // whether some strip of this block runs over its k list
        if constexpr (zero_skip<Panels>())
          if (skip) {
            int64_t block_skipped = 0;  // what the lists leave out, if used
            for (int64_t i = 0, t = 0; i < mc; i += MR, ++t) {
              int32_t* kt = ks + t * kblk;
              if (rows) {
                if constexpr (rows_a<Panels, E>())
                  nk[t] = Panels::nonzero_ks_rows(kc, A.p + (ic + i) * A.rs + pc, A.rs,
                                                  int(std::min<int64_t>(MR, mc - i)), kt);
              } else {
                nk[t] = Panels::nonzero_ks(kc, ap + i * kp, kt);
              }
              if (worth_skipping(nk[t], kc)) {
                lists = true;
                block_skipped += (kc - nk[t]) * std::min<int64_t>(MR, mc - i) * nc;
              }
            }
            if (lists && b_finite < 0) b_finite = Panels::finite(bp, strips * kp * NR);
            lists = lists && b_finite;  // a non-finite weight times a zero stays NaN: dense
            skip = lists;
            if (lists) skipped += block_skipped;
          }
        auto tile = [&](int64_t i, int64_t s) {
          int m = int(std::min<int64_t>(MR, mc - i));
          int64_t j = jc + s * NR;
          int n = int(std::min<int64_t>(NR, N - j));
          float* c = C + (ic + i) * ldc + j;
          const P* bs = bp + s * kp * NR;
          bool epi = ep && last;
          GemmEpilogue blk = epi ? ep->at_column(j) : GemmEpilogue{};
          if constexpr (zero_skip<Panels>())
            if (lists && worth_skipping(nk[i / MR], kc)) {
              const int32_t* kt = ks + i / MR * kblk;
              if (rows) {
                if constexpr (rows_a<Panels, E>())
                  Panels::micro_rows_ks(nk[i / MR], kt, A.p + (ic + i) * A.rs + pc, A.rs, bs, c, ldc, acc, m, n,
                                        epi ? &blk : nullptr);
              } else {
                Panels::micro_ks(nk[i / MR], kt, ap + i * kp, bs, c, ldc, acc, m, n, epi ? &blk : nullptr);
              }
              return;
            }
          if (rows) {
            if constexpr (rows_a<Panels, E>()) {
              if constexpr (fused_epilogue<Panels>()) {
                Panels::micro_rows(kc, A.p + (ic + i) * A.rs + pc, A.rs, bs, c, ldc, acc, m, n, epi ? &blk : nullptr);
              } else {
                Panels::micro_rows(kc, A.p + (ic + i) * A.rs + pc, A.rs, bs, c, ldc, acc, m, n);
                if (epi) apply_epilogue(c, ldc, m, n, blk);
              }
            }
          } else if (epi) {
            if constexpr (fused_epilogue<Panels>()) {
              Panels::micro(kc, ap + i * kp, bs, c, ldc, acc, m, n, &blk);
            } else {
              Panels::micro(kc, ap + i * kp, bs, c, ldc, acc, m, n);
              apply_epilogue(c, ldc, m, n, blk);
            }
          } else {
            Panels::micro(kc, ap + i * kp, bs, c, ldc, acc, m, n);
          }
        };
        if (a_strip_in_l1<Panels>() || strips >= (mc + MR - 1) / MR) {  // A strip in L1, B strips stream
          for (int64_t i = 0; i < mc; i += MR)
            for (int64_t s = 0; s < strips; ++s) tile(i, s);
        } else {  // B strip in L1, A strips stream
          for (int64_t s = 0; s < strips; ++s)
            for (int64_t i = 0; i < mc; i += MR) tile(i, s);
        }
      }
    }
  }
  if (skipped) add_zero_skip_macs(skipped);
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.f);
    if (ep) apply_epilogue(C, ldc, M, N, *ep);
  }
}

// What a d x e grid of threads costs, in cycles of its busiest thread: its
// tiles (whole tiles, MR x NR x K multiply-adds each, at the policy's
// kMacsPerCycle) plus its packing (about a cycle per element: its rows of A,
// unless A is read in place, and its columns of B). A policy without
// kMacsPerCycle (the bf16 ones, where packing dominates) counts packing only.
// The mlp's weight gradient 512 x 784 x 128 splits rows: two halves of 32 A
// strips and 25 B strips each, where columns gave one thread 12 B strips and
// the other 13 (one of them half empty), 14% more time, while the first
// waited.
template <class Panels, class E>
double split_cost(int64_t M, int64_t N, int64_t K, const Mat<E>& A, int d, int e) {
  constexpr int64_t MR = Panels::MR, NR = Panels::NR;
  int64_t mblocks = (M + MR - 1) / MR, strips = (N + NR - 1) / NR;
  bool a_packed = !a_in_place<Panels>(A);
  double pack = double(K) * ((a_packed ? double(M) / d : 0.0) + double(N) / e);
  if constexpr (requires { Panels::kMacsPerCycle; }) {
    double tiles = double((mblocks + d - 1) / d) * double((strips + e - 1) / e);
    return tiles * double(MR * NR) * double(K) / Panels::kMacsPerCycle + pack;
  }
  return pack;
}

// Threads split C into a tm x tn grid of independent sub-GEMMs, each packing
// its own panels: no barriers, one fork-join per call. Splitting rows makes
// every thread pack all of B, splitting columns all of A; the grid minimises
// split_cost, the busiest thread's tiles and packing. Results do not depend
// on the grid (same K blocks, same micro-kernel order per element), so they
// are thread-count independent.
// kc_max: the K block bound, panel_kc(N, K) unless given (a transposed product
// passes its original's, to keep its K blocks and so its bits).
template <class Panels, class E>
inline void gemm_threads(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool accumulate,
                         const GemmEpilogue* ep = nullptr, int64_t kc_max = 0) {
  constexpr int64_t MR = Panels::MR, NR = Panels::NR;
  int threads = get_num_threads();
  int64_t mblocks = (M + MR - 1) / MR, strips = (N + NR - 1) / NR;
  if (kc_max <= 0) kc_max = panel_kc<Panels>(N, K);
  if (threads <= 1 || in_parallel_region() || M * N * K < (int64_t(1) << 18) || mblocks * strips < 2) {
    gemm_serial<Panels>(M, N, K, A, B, C, ldc, accumulate, ep, kc_max);
    return;
  }
  int tm = 0, tn = 0;
  double best = 0;
  for (int d = 1; d <= threads; ++d) {
    if (threads % d) continue;
    int e = threads / d;
    if (d > mblocks || e > strips) continue;
    double cost = split_cost<Panels, E>(M, N, K, A, d, e);
    if (tm == 0 || cost < best) { tm = d; tn = e; best = cost; }
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
      GemmEpilogue sub = ep ? ep->at_column(c0) : GemmEpilogue{};
      gemm_serial<Panels>(r1 - r0, c1 - c0, K, Mat<E>{A.p + r0 * A.rs, A.rs, A.cs}, Mat<E>{B.p + c0 * B.cs, B.rs, B.cs},
                          C + r0 * ldc + c0, ldc, accumulate, ep ? &sub : nullptr, kc_max);
    }
  });
}

}  // namespace brisk::kern::cpu::BRISK_GEMM_NS
