// Reference int8 per-row quantization and dequantization (contract in
// core/kernel_params.h), one row after another.
#include "core/error.h"
#include "kernels/cpu/int8_row.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

bool int8_quantize_rows(const KernelArgs& a) {
  int64_t R = a.in[0].size(0), C = a.in[0].size(1);
  const float* x = ptr<float>(a.in[0]);
  auto* q = reinterpret_cast<int8_t*>(ptr<uint8_t>(a.out[0]));
  float* s = ptr<float>(a.out[1]);
  for (int64_t i = 0; i < R; ++i)
    BRISK_CHECK(quantize_int8_row(x + i * C, C, q + i * C, s + i), "op quantize_rows_int8: row ", i,
                " holds a non-finite value");
  return true;
}

bool int8_dequantize_rows(const KernelArgs& a) {
  int64_t R = a.in[0].size(0), C = a.in[0].size(1);
  const auto* q = reinterpret_cast<const int8_t*>(ptr<uint8_t>(a.in[0]));
  const float* s = ptr<float>(a.in[1]);
  float* o = ptr<float>(a.out[0]);
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) o[i * C + j] = float(q[i * C + j]) * s[i];
  return true;
}

void register_int8_quantize() {
  constexpr int P = backend_priority::ref;
  register_kernel("int8_quantize_rows", DeviceType::cpu, DType::f32, "ref", P, &int8_quantize_rows);
  register_kernel("int8_dequantize_rows", DeviceType::cpu, DType::u8, "ref", P, &int8_dequantize_rows);
}

}  // namespace brisk::kern::ref
