// The int8 op layer: per-row quantization ("int8_quantize_rows",
// "int8_dequantize_rows") and int8_matmul ("int8_gemm"); the kernels are in
// kernels/cpu/ref/ and kernels/cpu/ under those stems.
#include "core/int8.h"

#include <algorithm>
#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/op_keys.h"
#include "core/ops.h"

namespace brisk {

Int8Rows quantize_rows_int8(const Tensor& x) {
  check_defined("quantize_rows_int8", x);
  BRISK_CHECK(x.dim() == 2, "op quantize_rows_int8: expected [rows, cols], got ", shape_str(x.shape()));
  BRISK_CHECK(is_floating(x.dtype()), "op quantize_rows_int8: expected a floating input, got ", x.dtype());
  BRISK_CHECK(x.device().type == DeviceType::cpu, "op quantize_rows_int8: runs on the cpu, got ", x.device());
  Tensor xf = x.detach().to(DType::f32).contiguous();
  Int8Rows r;
  r.rows = x.size(0);
  r.cols = x.size(1);
  r.q = empty({r.rows, r.cols}, DType::u8);
  r.scale = empty({r.rows}, DType::f32);
  Tensor ins[1] = {xf};
  Tensor outs[2] = {r.q, r.scale};
  dispatch(opkey::int8_quantize_rows, xf.device(), DType::f32, KernelArgs{ins, outs, nullptr});
  return r;
}

Tensor dequantize_rows_int8(const Int8Rows& q) {
  Tensor out = empty({q.rows, q.cols}, DType::f32);
  Tensor ins[2] = {q.q, q.scale};
  Tensor outs[1] = {out};
  dispatch(opkey::int8_dequantize_rows, q.q.device(), DType::u8, KernelArgs{ins, outs, nullptr});
  return out;
}

bool int8_vnni_supported() {
  // avx512vl: the quantizers store 16 bytes with a masked 128-bit store.
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

Tensor int8_matmul(const Tensor& a, const Tensor& b) {
  check_defined("int8_matmul", a);
  check_defined("int8_matmul", b);
  BRISK_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "op int8_matmul: expected [M, K] @ [K, N], got ",
              shape_str(a.shape()), " @ ", shape_str(b.shape()));
  BRISK_CHECK(is_floating(a.dtype()) && is_floating(b.dtype()), "op int8_matmul: expected floating inputs, got ",
              a.dtype(), " and ", b.dtype());
  BRISK_CHECK(a.device().type == DeviceType::cpu && b.device().type == DeviceType::cpu, "op int8_matmul: runs on the cpu, got ", a.device(), " and ",
              b.device());
  Tensor af = a.detach().to(DType::f32).contiguous(), bf = b.detach().to(DType::f32);  // b keeps its strides
  Tensor c = empty({a.size(0), b.size(1)}, DType::f32);
  Tensor ins[2] = {af, bf};
  Tensor outs[1] = {c};
  dispatch(opkey::int8_gemm, Device(DeviceType::cpu), DType::f32, KernelArgs{ins, outs, nullptr});
  return c;
}

}  // namespace brisk
