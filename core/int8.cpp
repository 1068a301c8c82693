// int8 per-row quantization and the reference int8 GEMM (see int8.h).
#include "core/int8.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
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

Tensor int8_matmul(const Tensor& a, const Tensor& b) {
  check_defined("int8_matmul", a);
  check_defined("int8_matmul", b);
  BRISK_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "op int8_matmul: expected [M, K] @ [K, N], got ",
              shape_str(a.shape()), " @ ", shape_str(b.shape()));
  Int8Rows qa = quantize_rows_int8(a), qb = quantize_rows_int8(b.t());  // b by columns
  int64_t M = qa.rows, N = qb.rows, K = qa.cols;
  Tensor c = empty({M, N}, DType::f32);
  float* cp = c.data_ptr<float>();
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      int32_t acc = 0;  // |acc| <= K * 127^2: fits int32 for K < 133,000
      const int8_t *x = &qa.q[size_t(i * K)], *y = &qb.q[size_t(j * K)];
      for (int64_t k = 0; k < K; ++k) acc += int32_t(x[k]) * int32_t(y[k]);
      cp[i * N + j] = float(acc) * qa.scale[size_t(i)] * qb.scale[size_t(j)];
    }
  return c;
}

}  // namespace brisk
