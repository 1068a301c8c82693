// Reference int8 GEMM: A quantized by rows and B by columns (core/int8.h),
// products summed in int32, then rescaled: the oracle for the VNNI kernel,
// which must match it bit for bit.
#include "core/int8.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

// "int8_gemm": in = {a f32 [M, K] contiguous, b f32 [K, N] any strides} -> out[0] f32 [M, N].
bool int8_gemm(const KernelArgs& args) {
  Int8Rows qa = quantize_rows_int8(args.in[0]), qb = quantize_rows_int8(args.in[1].t());  // b by columns
  int64_t M = qa.rows, N = qb.rows, K = qa.cols;
  float* cp = args.out[0].data_ptr<float>();
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      int32_t acc = 0;  // |acc| <= K * 127^2: fits int32 for K < 133,000
      const int8_t *x = qa.values() + i * K, *y = qb.values() + j * K;
      for (int64_t k = 0; k < K; ++k) acc += int32_t(x[k]) * int32_t(y[k]);
      cp[i * N + j] = float(acc) * qa.scales()[i] * qb.scales()[j];
    }
  return true;
}

void register_int8_gemm() {
  register_kernel("int8_gemm", DeviceType::cpu, DType::f32, "ref", backend_priority::ref, &int8_gemm);
}

}  // namespace brisk::kern::ref
