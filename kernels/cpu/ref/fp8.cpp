// Reference fp8 kernels (contract in core/kernel_params.h), element by element
// through the scalar codec of core/fp8.h: quantize (f32 -> u8 codes of
// x * scale), dequantize (codes -> value / scale), and round (the two in one:
// the oracle for the optimized kernels/cpu/fp8.cpp).
#include "core/fp8.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

namespace {
const Fp8Params& params(const KernelArgs& a) { return *static_cast<const Fp8Params*>(a.params); }
}  // namespace

bool fp8_quantize(const KernelArgs& a) {
  auto f = Fp8Format(params(a).format);
  double scale = params(a).scale;
  const float* x = ptr<float>(a.in[0]);
  uint8_t* o = ptr<uint8_t>(a.out[0]);
  for (int64_t i = 0; i < a.out[0].numel(); ++i) o[i] = fp8_encode(float(double(x[i]) * scale), f);
  return true;
}

bool fp8_dequantize(const KernelArgs& a) {
  auto f = Fp8Format(params(a).format);
  double scale = params(a).scale;
  const uint8_t* c = ptr<uint8_t>(a.in[0]);
  float* o = ptr<float>(a.out[0]);
  for (int64_t i = 0; i < a.out[0].numel(); ++i) o[i] = float(double(fp8_decode(c[i], f)) / scale);
  return true;
}

bool fp8_round(const KernelArgs& a) {
  auto f = Fp8Format(params(a).format);
  double scale = params(a).scale;
  const float* x = ptr<float>(a.in[0]);
  float* o = ptr<float>(a.out[0]);
  for (int64_t i = 0; i < a.out[0].numel(); ++i)
    o[i] = float(double(fp8_decode(fp8_encode(float(double(x[i]) * scale), f), f)) / scale);
  return true;
}

void register_fp8() {
  constexpr int P = backend_priority::ref;
  register_kernel("fp8_quantize", DeviceType::cpu, DType::f32, "ref", P, &fp8_quantize);
  register_kernel("fp8_dequantize", DeviceType::cpu, DType::u8, "ref", P, &fp8_dequantize);
  register_kernel("fp8_round", DeviceType::cpu, DType::f32, "ref", P, &fp8_round);
}

}  // namespace brisk::kern::ref
