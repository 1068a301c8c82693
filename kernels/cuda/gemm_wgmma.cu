// Hopper GEMM for f16/bf16 (compiled for sm_90a alone: CMakeLists.txt):
// C [M, N] = A [M, K] @ B [K, N], f32 accumulation, C row-major.
// - The tensor memory accelerator (TMA) copies 128 x 64 tiles of A and
//   256 x 64 tiles of B^T into shared memory with the 128-byte swizzle, into a
//   ring of 4 stages, each tracked by an mbarrier that counts its bytes.
// - Two warpgroups multiply with wgmma (m64n256k16: each warpgroup owns a
//   64 x 256 block of C in 128 f32 registers per thread), reading both
//   operands from shared memory through descriptors; the products of one K
//   tile stay in flight while the next is issued (wait_group 1), and a
//   stage is refilled as soon as both warpgroups are done with it.
// - wgmma reads both operands K-major: A row-major as it is; B (row-major
//   [K, N]) through a transposed copy [N, K], unless it already is a
//   transposed view (linear's W^T), which is read in place.
// Taken for M % 128, N % 256, K % 64 == 0, batch 1, on a compute capability
// 9.0 device; anything else, or BRISK_CUDA_WGMMA=0, stays with gemm.cu's WMMA.
#include <cuda.h>
#include <cudaTypedefs.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_wgmma.h"

namespace brisk::kern::cuda {
namespace {

constexpr int BM = 128, BN = 256, BK = 64, kStages = 4, kThreads = 256;
constexpr int kStageA = BM * BK, kStageB = BN * BK;  // elements per stage
// Stages, the 1024-byte alignment the 128-byte swizzle pattern assumes, and
// the barriers.
constexpr size_t kSmem = size_t(kStages) * (kStageA + kStageB) * 2 + 1024 + kStages * sizeof(uint64_t);

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// wgmma's shared-memory matrix descriptor: K-major, 128-byte swizzle; rows
// 128 bytes apart, 8-row groups 1024 bytes apart (the TMA's layout).
__device__ __forceinline__ uint64_t desc_sw128(const void* p) {
  return ((uint64_t(smem_u32(p)) & 0x3FFFF) >> 4) | (uint64_t(16 >> 4) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t phase) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_u32(bar)), "r"(phase)
        : "memory");
  } while (!done);
}
// One 2-D tile: coordinates (c0 along K, c1 along rows).
__device__ __forceinline__ void tma_load(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::
          "r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_u32(bar))
      : "memory");
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// d (64 x 256 per warpgroup) += A (64 x 16) B^T (256 x 16)^T, operands of
// type AB ("bf16" or "f16") read through their descriptors.
#define BRISK_WGMMA_M64N256K16(AB)                                                  \
  asm volatile(                                                                     \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"                                 \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." AB "." AB " "                  \
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "                                                         \
      "%128, %129, p, 1, 1, 0, 0;\n}\n"                                              \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])                                                             \
      : "l"(da), "l"(db), "r"(1))

template <class T>
__device__ __forceinline__ void wgmma_256(float (&d)[128], uint64_t da, uint64_t db);
template <>
__device__ __forceinline__ void wgmma_256<__nv_bfloat16>(float (&d)[128], uint64_t da, uint64_t db) {
  BRISK_WGMMA_M64N256K16("bf16");
}
template <>
__device__ __forceinline__ void wgmma_256<__half>(float (&d)[128], uint64_t da, uint64_t db) {
  BRISK_WGMMA_M64N256K16("f16");
}
#undef BRISK_WGMMA_M64N256K16

__device__ __forceinline__ void store2(__nv_bfloat16* p, float x, float y) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(x, y);
}
__device__ __forceinline__ void store2(__half* p, float x, float y) {
  *reinterpret_cast<__half2*>(p) = __floats2half2_rn(x, y);
}
#endif

template <class T>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_wgmma_k(const __grid_constant__ CUtensorMap ta, const __grid_constant__ CUtensorMap tb, T* __restrict__ c,
                 int N, int K) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  auto base = (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023);
  T* sa = reinterpret_cast<T*>(base);  // [kStages][BM][BK], swizzled
  T* sb = sa + kStages * kStageA;      // [kStages][BN][BK], swizzled
  uint64_t* full = reinterpret_cast<uint64_t*>(sb + kStages * kStageB);
  const int tid = threadIdx.x, wg = tid / 128;
  const int m0 = int(blockIdx.y) * BM, n0 = int(blockIdx.x) * BN, KT = K / BK;
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) mbar_init(&full[s], 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  auto issue = [&](int kt) {  // one thread: K tile kt into stage kt % kStages
    int s = kt % kStages;
    mbar_expect_tx(&full[s], uint32_t((kStageA + kStageB) * sizeof(T)));
    tma_load(sa + s * kStageA, &ta, &full[s], kt * BK, m0);
    tma_load(sb + s * kStageB, &tb, &full[s], kt * BK, n0);
  };
  if (tid == 0)
    for (int kt = 0; kt < kStages && kt < KT; ++kt) issue(kt);
  float d[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) d[i] = 0.0f;
  for (int kt = 0; kt < KT; ++kt) {
    const int s = kt % kStages;
    mbar_wait(&full[s], uint32_t(kt / kStages) & 1u);
    wg_fence();
    const T* a = sa + s * kStageA + wg * 64 * BK;  // this warpgroup's 64 rows
    const T* b = sb + s * kStageB;
#pragma unroll
    for (int k = 0; k < BK / 16; ++k) wgmma_256<T>(d, desc_sw128(a + k * 16), desc_sw128(b + k * 16));
    wg_commit();
    wg_wait<1>();  // K tile kt - 1's products are done: its stage is free here
    __syncthreads();  // ... and in the other warpgroup
    if (tid == 0 && kt >= 1 && kt - 1 + kStages < KT) issue(kt - 1 + kStages);
  }
  wg_wait<0>();
  // Accumulator layout (per warpgroup): warp w holds rows 16 w .. 16 w + 15;
  // for each 8-column group j, lane l holds (l / 4, 8 j + 2 (l % 4) + {0, 1})
  // in d[4 j], d[4 j + 1] and the same columns 8 rows down in d[4 j + 2, 3].
  const int warp = (tid % 128) / 32, lane = tid % 32;
  const size_t r = size_t(m0 + wg * 64 + warp * 16 + lane / 4);
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const int col = n0 + j * 8 + 2 * (lane % 4);
    store2(c + r * size_t(N) + col, d[4 * j], d[4 * j + 1]);
    store2(c + (r + 8) * size_t(N) + col, d[4 * j + 2], d[4 * j + 3]);
  }
#endif
}

// y [cols, rows] = x [rows, cols]^T (x with row stride ld): 32 x 32 tiles
// through shared memory, so that reads and writes both coalesce.
template <class T>
__global__ void transpose_k(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t cols, int64_t ld) {
  __shared__ T tile[32][33];
  const int64_t r0 = int64_t(blockIdx.y) * 32, c0 = int64_t(blockIdx.x) * 32;
  for (int i = threadIdx.y; i < 32; i += 8) {
    int64_t r = r0 + i, cc = c0 + threadIdx.x;
    if (r < rows && cc < cols) tile[i][threadIdx.x] = x[r * ld + cc];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += 8) {
    int64_t cc = c0 + i, r = r0 + threadIdx.x;
    if (cc < cols && r < rows) y[cc * rows + r] = tile[threadIdx.x][i];
  }
}

using EncodeTiled = PFN_cuTensorMapEncodeTiled_v12000;

// The driver's tensor-map encoder, through the runtime (no libcuda link).
EncodeTiled encoder() {
  static EncodeTiled fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return EncodeTiled(nullptr);
    }
    return reinterpret_cast<EncodeTiled>(p);
  }();
  return fn;
}

// A map over a row-major [rows, K] matrix (row stride ld elements) whose
// boxes are box_rows x 64, swizzled by 128 bytes.
template <class T>
void make_map(CUtensorMap* m, const T* p, int64_t rows, int64_t K, int64_t ld, int box_rows) {
  cuuint64_t dims[2] = {cuuint64_t(K), cuuint64_t(rows)};
  cuuint64_t strides[1] = {cuuint64_t(ld) * sizeof(T)};
  cuuint32_t box[2] = {cuuint32_t(BK), cuuint32_t(box_rows)};
  cuuint32_t estr[2] = {1, 1};
  auto dt = std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  CUresult r = encoder()(m, dt, 2, const_cast<T*>(p), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                         CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                         CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  BRISK_CHECK(r == CUDA_SUCCESS, "cuda gemm (wgmma): cuTensorMapEncodeTiled failed with error ", int(r));
}

// Compute capability 9.0 on the current device (sm_90a code runs there only).
bool device_is_sm90() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  static std::atomic<int> cached[64];  // 0 unknown, 1 yes, 2 no (any thread may ask first)
  if (dev < 0 || dev >= 64) return false;
  if (!cached[dev].load(std::memory_order_relaxed)) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    cached[dev].store(major == 9 && minor == 0 ? 1 : 2, std::memory_order_relaxed);
  }
  return cached[dev].load(std::memory_order_relaxed) == 1;
}

bool enabled() {
  const char* e = std::getenv("BRISK_CUDA_WGMMA");
  return !(e && std::string(e) == "0");
}

bool ok16(const void* p, int64_t ld) { return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0; }

template <class T>
bool run(const Tensor& A, const Tensor& Bm, const Tensor& C) {
  const int64_t M = C.size(1), N = C.size(2), K = A.size(2);
  if (C.size(0) != 1 || M % BM || N % BN || K % BK || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) return false;
  if (!enabled() || !device_is_sm90() || !encoder()) return false;
  const T* ap = dptr<T>(A);
  const T* bp = dptr<T>(Bm);
  T* cp = dptr<T>(C);
  // K-major copies where an operand is not K-major already (stream-ordered
  // allocations: freed on return, reused only after this stream's work).
  Tensor a_copy, b_copy;
  int64_t lda = A.stride(1), ldb = Bm.stride(2);
  auto transposed = [&](const T* x, int64_t rows, int64_t cols, int64_t ld, Tensor& keep) {
    keep = empty({cols, rows}, TensorOptions(C.dtype(), C.device()));
    dim3 grid(unsigned((cols + 31) / 32), unsigned((rows + 31) / 32));
    transpose_k<T><<<grid, dim3(32, 8), 0, stream()>>>(x, dptr<T>(keep), rows, cols, ld);
    BRISK_CUDA_CHECK_LAUNCH();
    return static_cast<const T*>(dptr<T>(keep));
  };
  if (A.stride(2) != 1 || !ok16(ap, lda)) {
    if (A.stride(1) != 1 || !ok16(ap, A.stride(2))) return false;
    ap = transposed(ap, K, M, A.stride(2), a_copy);  // A^T [K, M] row-major -> A [M, K]
    lda = K;
  }
  if (Bm.stride(1) != 1 || !ok16(bp, ldb)) {  // not a view of a row-major [N, K]
    if (Bm.stride(2) != 1 || !ok16(bp, Bm.stride(1))) return false;
    bp = transposed(bp, K, N, Bm.stride(1), b_copy);  // B [K, N] -> B^T [N, K]
    ldb = K;
  }
  CUtensorMap ta, tb;
  make_map(&ta, ap, M, K, lda, BM);
  make_map(&tb, bp, N, K, ldb, BN);
  static std::once_flag attr;
  std::call_once(attr, [] {
    BRISK_CUDA_CHECK(cudaFuncSetAttribute(gemm_wgmma_k<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmem)));
    BRISK_CUDA_CHECK(
        cudaFuncSetAttribute(gemm_wgmma_k<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmem)));
  });
  dim3 grid(unsigned(N / BN), unsigned(M / BM));
  gemm_wgmma_k<T><<<grid, kThreads, kSmem, stream()>>>(ta, tb, cp, int(N), int(K));
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace

bool gemm_wgmma_available() { return enabled() && device_is_sm90() && encoder() != nullptr; }

bool gemm_wgmma(const Tensor& A, const Tensor& Bm, const Tensor& C) {
  if (C.dtype() == DType::bf16) return run<__nv_bfloat16>(A, Bm, C);
  if (C.dtype() == DType::f16) return run<__half>(A, Bm, C);
  return false;
}

}  // namespace brisk::kern::cuda
