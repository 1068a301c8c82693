// Hand-written batched GEMM on CUDA: C [B, M, N] = A [B, M, K] @ Bm [B, K, N],
// any operand strides (batch stride 0 broadcasts), C contiguous.
// - f32/f64: a SIMT kernel, 64x64 block tile, 16-deep K slices in shared
//   memory, 4x4 outputs per thread (rows ty + 16 i, cols tx + 16 j, so shared
//   reads are conflict-free and C writes coalesce).
// - f16/bf16 on a Hopper GPU, at tile-multiple shapes: gemm_wgmma.cu.
// - f16/bf16 otherwise: tensor cores through WMMA (m16n16k16, f32 accumulation), 128x128
//   block tile, BK 32, 8 warps of 64x32; the next K slice is prefetched into
//   registers while the current one is multiplied. Row-major operands whose
//   sizes are tile multiples load with 16-byte vectors; anything else (e.g.
//   the transposed operands of backward passes) loads element by element with
//   bounds checks, through the same multiply loop.
// - f32 under bf16 autocast (core/autocast.h: gemm_operands_bf16(), as the
//   cpu's sgemm reads it): the same WMMA kernel on bf16 tensor cores, its
//   f32 operands rounded to bf16 (nearest even, the cpu's bits) as they are
//   staged, C written in f32: a bf16-input GEMM with f32 accumulation, the
//   cpu's semantics under autocast, without a rounded copy of A and B.
#include <mma.h>

#include "core/autocast.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_wgmma.h"

namespace brisk::kern::cuda {
namespace {

struct GemmDims {
  int64_t M, N, K;
  int64_t sa_b, sa_m, sa_k;  // A's strides (elements)
  int64_t sb_b, sb_k, sb_n;  // Bm's strides
};

// ---------------------------------------------------------------- SIMT (f32, f64)

// AMFast / BKFast: A is column-major (stride 1 along m) / Bm is a transposed
// view (stride 1 along k), as in the backward passes; the tile loads then
// walk that dimension fastest, so a warp's reads stay coalesced. Template
// parameters, not run-time flags: with flags, row-major 4096^3 measured about
// 10% slower on an H200 (16.5 -> 14.8 TFLOP/s, 3218 SASS lines against
// 2258); as parameters, the row-major instantiation compiles to the same
// SASS as the kernel that had measured 16.5.
template <class T, bool AMFast, bool BKFast>
__global__ void __launch_bounds__(256) gemm_simt(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                                                 GemmDims d) {
  constexpr int BM = 64, BN = 64, BK = 16;
  __shared__ T As[BK][BM + 1];  // As[k][m]: A's slice, transposed so a column is contiguous
  __shared__ T Bs[BK][BN + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = int64_t(blockIdx.y) * BM, n0 = int64_t(blockIdx.x) * BN;
  const T* ab = a + int64_t(blockIdx.z) * d.sa_b;
  const T* bb = b + int64_t(blockIdx.z) * d.sb_b;
  T* cb = c + int64_t(blockIdx.z) * d.M * d.N;
  T acc[4][4] = {};
  for (int64_t k0 = 0; k0 < d.K; k0 += BK) {
    for (int i = threadIdx.x; i < BM * BK; i += 256) {
      int mm = AMFast ? i % BM : i / BK, kk = AMFast ? i / BM : i % BK;
      int64_t gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = gm < d.M && gk < d.K ? ab[gm * d.sa_m + gk * d.sa_k] : T(0);
    }
    for (int i = threadIdx.x; i < BK * BN; i += 256) {
      int kk = BKFast ? i % BK : i / BN, nn = BKFast ? i / BK : i % BN;
      int64_t gk = k0 + kk, gn = n0 + nn;
      Bs[kk][nn] = gk < d.K && gn < d.N ? bb[gk * d.sb_k + gn * d.sb_n] : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T ar[4], br[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) ar[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) br[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += ar[i] * br[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int64_t gm = m0 + ty + 16 * i, gn = n0 + tx + 16 * j;
      if (gm < d.M && gn < d.N) cb[gm * d.N + gn] = acc[i][j];
    }
}

// ---------------------------------------------------------------- WMMA (f16, bf16)

constexpr int WBM = 128, WBN = 128, WBK = 32, WPAD = 8;  // pad rows by 16 bytes: fewer bank conflicts
constexpr int kWarps = 8;

// T read from global memory as TG: the element itself, or an f32 rounded to
// bf16 (autocast's operands).
template <class T, class TG>
__device__ __forceinline__ T staged(TG v) {
  if constexpr (std::is_same_v<T, TG>) return v;
  else return to_bf16_rounded(v);
}

// One K slice of A (128 x 32) and Bm (32 x 128) staged in registers; TG: the
// operands' element type in global memory (T, or f32 for T = bf16; then
// element loads only).
template <class T, bool Vec, class TG = T>
struct Stage {
  static_assert(!Vec || std::is_same_v<T, TG>, "vector loads copy elements as they are");
  static constexpr int kA = Vec ? WBM * WBK / 8 / 256 : WBM * WBK / 256;  // uint4s or elements per thread
  static constexpr int kB = Vec ? WBK * WBN / 8 / 256 : WBK * WBN / 256;
  using Item = std::conditional_t<Vec, uint4, T>;
  Item ra[kA], rb[kB];

  __device__ void load(const TG* ab, const TG* bb, const GemmDims& d, int64_t m0, int64_t n0, int64_t k0) {
#pragma unroll
    for (int r = 0; r < kA; ++r) {
      int idx = threadIdx.x + r * 256;
      if constexpr (Vec) {
        int row = idx / (WBK / 8), ch = idx % (WBK / 8);
        ra[r] = *reinterpret_cast<const uint4*>(ab + (m0 + row) * d.sa_m + k0 + ch * 8);
      } else {
        int row = idx / WBK, col = idx % WBK;
        int64_t gm = m0 + row, gk = k0 + col;
        ra[r] = gm < d.M && gk < d.K ? staged<T>(ab[gm * d.sa_m + gk * d.sa_k]) : T(0.0f);
      }
    }
#pragma unroll
    for (int r = 0; r < kB; ++r) {
      int idx = threadIdx.x + r * 256;
      if constexpr (Vec) {
        int row = idx / (WBN / 8), ch = idx % (WBN / 8);
        rb[r] = *reinterpret_cast<const uint4*>(bb + (k0 + row) * d.sb_k + n0 + ch * 8);
      } else {
        int row = idx / WBN, col = idx % WBN;
        int64_t gk = k0 + row, gn = n0 + col;
        rb[r] = gk < d.K && gn < d.N ? staged<T>(bb[gk * d.sb_k + gn * d.sb_n]) : T(0.0f);
      }
    }
  }

  __device__ void store(T (*As)[WBK + WPAD], T (*Bs)[WBN + WPAD]) const {
#pragma unroll
    for (int r = 0; r < kA; ++r) {
      int idx = threadIdx.x + r * 256;
      if constexpr (Vec)
        *reinterpret_cast<uint4*>(&As[idx / (WBK / 8)][(idx % (WBK / 8)) * 8]) = ra[r];
      else
        As[idx / WBK][idx % WBK] = ra[r];
    }
#pragma unroll
    for (int r = 0; r < kB; ++r) {
      int idx = threadIdx.x + r * 256;
      if constexpr (Vec)
        *reinterpret_cast<uint4*>(&Bs[idx / (WBN / 8)][(idx % (WBN / 8)) * 8]) = rb[r];
      else
        Bs[idx / WBN][idx % WBN] = rb[r];
    }
  }
};

// TG: the operands' element type in global memory (Stage); TC: C's.
template <class T, bool Vec, class TG = T, class TC = T>
__global__ void __launch_bounds__(256) gemm_wmma(const TG* __restrict__ a, const TG* __restrict__ b, TC* __restrict__ c,
                                                 GemmDims d) {
  using namespace nvcuda;
  __shared__ __align__(128) T As[WBM][WBK + WPAD];
  __shared__ __align__(128) T Bs[WBK][WBN + WPAD];
  __shared__ __align__(128) float Cs[kWarps][16 * 16];  // epilogue scratch, one 16x16 tile per warp
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / 4, wn = warp % 4;  // warp tile: rows wm*64 .. +64, cols wn*32 .. +32
  const int64_t m0 = int64_t(blockIdx.y) * WBM, n0 = int64_t(blockIdx.x) * WBN;
  const TG* ab = a + int64_t(blockIdx.z) * d.sa_b;
  const TG* bb = b + int64_t(blockIdx.z) * d.sb_b;
  TC* cb = c + int64_t(blockIdx.z) * d.M * d.N;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  Stage<T, Vec, TG> st;
  st.load(ab, bb, d, m0, n0, 0);
  for (int64_t k0 = 0; k0 < d.K; k0 += WBK) {
    st.store(As, Bs);
    __syncthreads();
    if (k0 + WBK < d.K) st.load(ab, bb, d, m0, n0, k0 + WBK);  // in flight while the MMAs run
#pragma unroll
    for (int kk = 0; kk < WBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 4; ++i) wmma::load_matrix_sync(fa[i], &As[wm * 64 + i * 16][kk], WBK + WPAD);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &Bs[kk][wn * 32 + j * 16], WBN + WPAD);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();  // everyone is done with As/Bs before the next store
  }
  // Epilogue: each fragment through the warp's scratch tile, into TC (16-bit: rounded).
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(Cs[warp], acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        int64_t gm = m0 + wm * 64 + i * 16 + e / 16, gn = n0 + wn * 32 + j * 16 + e % 16;
        if (gm < d.M && gn < d.N) kern::cuda::st(&cb[gm * d.N + gn], Cs[warp][e]);
      }
      __syncwarp();
    }
}

template <class T>
bool gemm(const KernelArgs& args) {
  if (args.in.size() > 2 || args.params) return false;  // no epilogue here (core/kernel_params.h)
  using D = dev_t<T>;
  const Tensor &A = args.in[0], &Bm = args.in[1];
  const Tensor& C = args.out[0];
  int64_t batch = C.size(0);
  GemmDims d{C.size(1), C.size(2), A.size(2), A.stride(0), A.stride(1), A.stride(2),
             Bm.stride(0), Bm.stride(1), Bm.stride(2)};
  if (batch == 0 || d.M == 0 || d.N == 0) return true;
  D* cp = dptr<D>(C);
  if (d.K == 0) {
    BRISK_CUDA_CHECK(cudaMemsetAsync(cp, 0, size_t(C.numel()) * sizeof(D), stream()));
    return true;
  }
  BRISK_CHECK(batch <= 65535, "cuda gemm: batch ", batch, " exceeds the grid's z limit (65535)");
  const D *ap = dptr<D>(A), *bp = dptr<D>(Bm);
  const dim3 wmma_grid(unsigned((d.N + WBN - 1) / WBN), unsigned((d.M + WBM - 1) / WBM), unsigned(batch));
  if constexpr (std::is_same_v<D, float>) {
    if (gemm_operands_bf16()) {  // bf16 autocast: tensor cores on the rounded operands, C in f32
      gemm_wmma<__nv_bfloat16, false, float, float><<<wmma_grid, 256, 0, stream()>>>(ap, bp, cp, d);
      BRISK_CUDA_CHECK_LAUNCH();
      return true;
    }
  }
  if constexpr (std::is_same_v<D, __half> || std::is_same_v<D, __nv_bfloat16>) {
    if (gemm_wgmma(A, Bm, C)) return true;  // Hopper, tile-multiple shapes
    bool vec = d.sa_k == 1 && d.sb_n == 1 && d.M % WBM == 0 && d.N % WBN == 0 && d.K % WBK == 0 &&
               d.sa_m % 8 == 0 && d.sb_k % 8 == 0 && d.sa_b % 8 == 0 && d.sb_b % 8 == 0 && aligned16(ap) &&
               aligned16(bp);
    if (vec)
      gemm_wmma<D, true><<<wmma_grid, 256, 0, stream()>>>(ap, bp, cp, d);
    else
      gemm_wmma<D, false><<<wmma_grid, 256, 0, stream()>>>(ap, bp, cp, d);
  } else {
    dim3 grid(unsigned((d.N + 63) / 64), unsigned((d.M + 63) / 64), unsigned(batch));
    bool a_m_fast = d.sa_m == 1 && d.sa_k != 1, b_k_fast = d.sb_k == 1 && d.sb_n != 1;
    auto launch = [&](auto kernel) { kernel<<<grid, 256, 0, stream()>>>(ap, bp, cp, d); };
    if (a_m_fast)
      b_k_fast ? launch(gemm_simt<D, true, true>) : launch(gemm_simt<D, true, false>);
    else
      b_k_fast ? launch(gemm_simt<D, false, true>) : launch(gemm_simt<D, false, false>);
  }
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace

void register_gemm() {
  register_cuda<float, double, Half, BFloat16>("gemm", [](auto t) -> KernelFn { return &gemm<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
