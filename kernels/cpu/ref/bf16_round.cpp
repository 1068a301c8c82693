// Reference "bf16_round": each f32 value (plus the bias of its column, when
// given) on the bf16 grid (nearest even), kept in f32, through the cast's own
// bit formulas (core/dtype.h).
#include "kernels/strided.h"

namespace brisk::kern::ref {

bool bf16_round(const KernelArgs& a) {
  const float* x = ptr<float>(a.in[0]);
  float* o = ptr<float>(a.out[0]);
  bool bias = a.in.size() > 1 && a.in[1].defined();
  const float* b = bias ? ptr<float>(a.in[1]) : nullptr;
  int64_t n = bias ? a.in[1].numel() : 1;
  for (int64_t i = 0; i < a.out[0].numel(); ++i) {
    float v = bias ? x[i] + b[i % n] : x[i];
    o[i] = bf16_bits_to_float(float_to_bf16_bits(v));
  }
  return true;
}

void register_bf16_round() {
  register_kernel("bf16_round", DeviceType::cpu, DType::f32, "ref", backend_priority::ref, &bf16_round);
}

}  // namespace brisk::kern::ref
