// Threaded "bf16_round": the ref's per-element formula over the pool (both
// conversions inline, so the loop vectorizes; NaN stays a quiet NaN). One
// pass instead of two casts through a bf16 tensor: autocast runs it on every
// activation and weight under bf16, and the folded linear adds its bias in
// the same pass (out may alias x).
#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

bool bf16_round(const KernelArgs& a) {
  const float* x = ptr<float>(a.in[0]);
  float* o = ptr<float>(a.out[0]);
  if (a.in.size() > 1 && a.in[1].defined()) {  // x [rows, n] + bias [n], row by row
    const float* b = ptr<float>(a.in[1]);
    int64_t n = a.in[1].numel(), rows = n ? a.out[0].numel() / n : 0;
    parallel_for(0, rows, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(n, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const float* xr = x + r * n;
        float* orow = o + r * n;
        for (int64_t j = 0; j < n; ++j) orow[j] = bf16_bits_to_float(float_to_bf16_bits(xr[j] + b[j]));
      }
    });
    return true;
  }
  parallel_for(0, a.out[0].numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) o[i] = bf16_bits_to_float(float_to_bf16_bits(x[i]));
  });
  return true;
}

void register_bf16_round() {
  register_kernel("bf16_round", DeviceType::cpu, DType::f32, "cpu", backend_priority::native, &bf16_round);
}

}  // namespace brisk::kern::cpu
