// Reference "bf16_round": each f32 value on the bf16 grid (nearest even),
// kept in f32, through the cast's own bit formulas (core/dtype.h).
#include "kernels/strided.h"

namespace brisk::kern::ref {

bool bf16_round(const KernelArgs& a) {
  const float* x = ptr<float>(a.in[0]);
  float* o = ptr<float>(a.out[0]);
  for (int64_t i = 0; i < a.out[0].numel(); ++i) o[i] = bf16_bits_to_float(float_to_bf16_bits(x[i]));
  return true;
}

void register_bf16_round() {
  register_kernel("bf16_round", DeviceType::cpu, DType::f32, "ref", backend_priority::ref, &bf16_round);
}

}  // namespace brisk::kern::ref
