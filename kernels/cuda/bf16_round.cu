// "bf16_round" on CUDA: each f32 value (plus the bias of its column, when
// given) on the bf16 grid (nearest even), kept in f32: autocast's bf16 casts
// (core/autocast.h) with the cpu's bits (common.cuh's bf16_round_bits).
//   x f32 [..., n] contiguous, bias f32 [n] or absent -> out f32, x's shape
#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void bf16_round_k(const float* __restrict__ x, const float* __restrict__ b, float* __restrict__ o,
                             int64_t total, int64_t n) {
  BRISK_GRID_LOOP(i, total) o[i] = bf16_rounded(b ? x[i] + b[i % n] : x[i]);
}

bool bf16_round(const KernelArgs& a) {
  bool bias = a.in.size() > 1 && a.in[1].defined();
  int64_t total = a.out[0].numel(), n = bias ? a.in[1].numel() : 1;
  if (total == 0) return true;
  bf16_round_k<<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
      dptr<float>(a.in[0]), bias ? dptr<float>(a.in[1]) : nullptr, dptr<float>(a.out[0]), total, n);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace

void register_bf16_round() { register_cuda<float>("bf16_round", [](auto) -> KernelFn { return &bf16_round; }); }

}  // namespace brisk::kern::cuda
