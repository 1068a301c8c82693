// int8 per-row quantization, and int8_matmul, which dispatches "int8_gemm"
// (kernels/cpu/ref/int8_gemm.cpp, kernels/cpu/int8_gemm.cpp).
#include "core/int8.h"

#include <algorithm>
#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/op_keys.h"
#include "core/ops.h"
#include "core/thread_pool.h"

namespace brisk {

Int8Rows quantize_rows_int8(const Tensor& x) {
  check_defined("quantize_rows_int8", x);
  BRISK_CHECK(x.dim() == 2, "op quantize_rows_int8: expected [rows, cols], got ", shape_str(x.shape()));
  BRISK_CHECK(is_floating(x.dtype()), "op quantize_rows_int8: expected a floating input, got ", x.dtype());
  Tensor xf = x.detach().to(DType::f32).contiguous();
  Int8Rows r;
  r.rows = x.size(0);
  r.cols = x.size(1);
  r.q.resize(size_t(r.rows * r.cols));
  r.scale.resize(size_t(r.rows));
  const float* p = xf.data_ptr<float>();
  std::vector<char> bad(size_t(r.rows), 0);
  parallel_for(0, r.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(r.cols, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* row = p + i * r.cols;
      int8_t* q = r.q.data() + i * r.cols;
      float m = 0;
      for (int64_t j = 0; j < r.cols; ++j) m = std::max(m, std::abs(row[j]));
      bad[size_t(i)] = !std::isfinite(m);
      float s = m / 127.0f;
      r.scale[size_t(i)] = s;
      if (!(s > 0 && std::isfinite(s))) {
        std::fill(q, q + r.cols, int8_t(0));
        continue;
      }
      // Branch-free so it vectorizes: round to nearest even by the 1.5 * 2^23
      // trick (exact for |v| <= 127; no libm call, no -ffast-math needed).
      constexpr float kMagic = 12582912.0f;
      for (int64_t j = 0; j < r.cols; ++j) {
        float v = std::clamp(row[j] / s, -127.0f, 127.0f);
        q[j] = int8_t(int((v + kMagic) - kMagic));
      }
    }
  });
  for (int64_t i = 0; i < r.rows; ++i)
    BRISK_CHECK(!bad[size_t(i)], "op quantize_rows_int8: row ", i, " holds a non-finite value");
  return r;
}

Tensor dequantize_rows_int8(const Int8Rows& q) {
  Tensor out = empty({q.rows, q.cols}, DType::f32);
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < q.rows; ++i)
    for (int64_t j = 0; j < q.cols; ++j) o[i * q.cols + j] = float(q.q[size_t(i * q.cols + j)]) * q.scale[size_t(i)];
  return out;
}

bool int8_vnni_supported() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
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
