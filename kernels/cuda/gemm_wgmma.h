// The Hopper (sm_90a) f16/bf16 GEMM of gemm_wgmma.cu, for gemm.cu.
#pragma once
#include "core/tensor.h"

namespace brisk::kern::cuda {

// C [1, M, N] = A [1, M, K] @ Bm [1, K, N] (gemm's operands, core/kernel_params.h)
// on wgmma and TMA, enqueued on the current stream. False, with nothing
// enqueued, where it does not apply: another dtype, batch > 1, M % 128,
// N % 256 or K % 64 not 0, operands neither row-major nor transposed views,
// a device other than compute capability 9.0, or BRISK_CUDA_WGMMA=0.
bool gemm_wgmma(const Tensor& A, const Tensor& Bm, const Tensor& C);

// Whether gemm_wgmma can run here at all (device, driver, BRISK_CUDA_WGMMA).
bool gemm_wgmma_available();

}  // namespace brisk::kern::cuda
