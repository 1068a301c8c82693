// Threaded "bf16_round": the ref's per-element formula over the pool (both
// conversions inline, so the loop vectorizes; NaN stays a quiet NaN). One
// pass instead of two casts through a bf16 tensor: autocast runs it on every
// activation and weight under bf16.
#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

bool bf16_round(const KernelArgs& a) {
  const float* x = ptr<float>(a.in[0]);
  float* o = ptr<float>(a.out[0]);
  parallel_for(0, a.out[0].numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) o[i] = bf16_bits_to_float(float_to_bf16_bits(x[i]));
  });
  return true;
}

void register_bf16_round() {
  register_kernel("bf16_round", DeviceType::cpu, DType::f32, "cpu", backend_priority::native, &bf16_round);
}

}  // namespace brisk::kern::cpu
