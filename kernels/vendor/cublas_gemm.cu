// cuBLAS as a vendor backend for "gemm" on CUDA (f32, f64, f16, bf16; 16-bit
// operands accumulate in f32, f32 stays full f32: no TF32). It claims a call
// when each operand is a plain (possibly transposed) matrix per batch with one
// batch stride, i.e. what cublasGemmStridedBatchedEx can express; otherwise it
// declines and the native kernel runs. Selected with BRISK_GEMM=cublas (or
// auto), or set_gemm_backend("cublas"); the default stays native.
//
// cuBLAS is column-major. Row-major C [M, N] is column-major C^T [N, M], so we
// ask cuBLAS for C^T = Bm^T A^T: its "A" is our Bm and its "B" our A.
#include <cublas_v2.h>

#include "core/autocast.h"
#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {
namespace {

#define BRISK_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                            \
    cublasStatus_t brisk_st_ = (call);                                                            \
    if (brisk_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
      BRISK_FAIL(__FILE__, ":", __LINE__, ": cuBLAS call `", #call, "` failed: ",                 \
                 cublasGetStatusName(brisk_st_), " (", cublasGetStatusString(brisk_st_), ")");    \
  } while (0)

cublasHandle_t handle() {
  thread_local cublasHandle_t h = [] {
    cublasHandle_t x;
    BRISK_CUBLAS_CHECK(cublasCreate(&x));
    return x;
  }();
  return h;
}

// How one operand looks to cuBLAS: op and leading dimension for a row-major
// view [rows, cols] with strides (s_row, s_col). Returns false when neither
// stride is 1 (a general strided view).
bool as_blas(int64_t rows, int64_t cols, int64_t s_row, int64_t s_col, cublasOperation_t& op, int64_t& ld) {
  // Row-major [rows, cols] with unit col stride is column-major [cols, rows]: no transpose for C^T.
  if (s_col == 1 && (rows == 1 || s_row >= std::max<int64_t>(cols, 1))) {
    op = CUBLAS_OP_N;
    ld = rows == 1 ? std::max<int64_t>(cols, 1) : s_row;
    return true;
  }
  if (s_row == 1 && (cols == 1 || s_col >= std::max<int64_t>(rows, 1))) {
    op = CUBLAS_OP_T;
    ld = cols == 1 ? std::max<int64_t>(rows, 1) : s_col;
    return true;
  }
  return false;
}

template <class T>
bool gemm(const KernelArgs& args) {
  if (args.in.size() > 2 || args.params) return false;  // no epilogue here (core/kernel_params.h)
  // bf16 autocast: the native kernel multiplies bf16 roundings of f32
  // operands on tensor cores (kernels/cuda/gemm.cu); cuBLAS would need
  // rounded copies, so it declines and that kernel runs.
  if constexpr (std::is_same_v<T, float>)
    if (gemm_operands_bf16()) return false;
  const Tensor &A = args.in[0], &Bm = args.in[1];
  const Tensor& C = args.out[0];
  int64_t batch = C.size(0), M = C.size(1), N = C.size(2), K = A.size(2);
  if (batch == 0 || M == 0 || N == 0 || K == 0) return false;  // the native kernel handles the edge cases
  cublasOperation_t opa, opb;
  int64_t lda, ldb;
  if (!as_blas(M, K, A.stride(1), A.stride(2), opa, lda) || !as_blas(K, N, Bm.stride(1), Bm.stride(2), opb, ldb))
    return false;
  const int64_t lim = INT32_MAX;
  if (M > lim || N > lim || K > lim || lda > lim || ldb > lim || batch > lim) return false;
  cudaDataType_t ty;
  cublasComputeType_t ct;
  if constexpr (std::is_same_v<T, float>) {
    ty = CUDA_R_32F;
    ct = CUBLAS_COMPUTE_32F;
  } else if constexpr (std::is_same_v<T, double>) {
    ty = CUDA_R_64F;
    ct = CUBLAS_COMPUTE_64F;
  } else if constexpr (std::is_same_v<T, Half>) {
    ty = CUDA_R_16F;
    ct = CUBLAS_COMPUTE_32F;
  } else {
    ty = CUDA_R_16BF;
    ct = CUBLAS_COMPUTE_32F;
  }
  using S = std::conditional_t<std::is_same_v<T, double>, double, float>;  // alpha/beta type of the compute type
  S alpha = 1, beta = 0;
  BRISK_CUBLAS_CHECK(cublasSetStream(handle(), stream()));
  BRISK_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle(), opb, opa, int(N), int(M), int(K), &alpha, dptr<void>(Bm), ty, int(ldb), Bm.stride(0), dptr<void>(A),
      ty, int(lda), A.stride(0), &beta, dptr<void>(C), ty, int(N), M * N, int(batch), ct, CUBLAS_GEMM_DEFAULT));
  return true;
}

}  // namespace

void register_cublas() {
  register_cuda<float, double, Half, BFloat16>(
      "gemm", [](auto t) -> KernelFn { return &gemm<typename decltype(t)::type>; }, "cublas", backend_priority::vendor);
}

}  // namespace brisk::kern::cuda
