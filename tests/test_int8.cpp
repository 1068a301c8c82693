// int8 per-row quantization: per-element error within max|row|/254, and the
// int8 GEMM's error within the bound the quantization errors imply.
#include <algorithm>

#include "core/int8.h"
#include "kernels/cpu/int8_amx.h"
#include "tests/helpers.h"

using namespace bt;

TEST_CASE("int8: per-row quantization error is within max|row|/254 per element", "[int8]") {
  Tensor x = randn({37, 300}) * exp(randn({37, 1}) * 2.0);  // rows of very different ranges
  Int8Rows q = quantize_rows_int8(x);
  Tensor d = dequantize_rows_int8(q);
  Tensor rowmax = max(abs(x), {1}, true);
  Tensor err = abs(d - x);
  CHECK(sum(gt(err, rowmax / 254.0 * (1 + 1e-6))).item() == 0);
  CHECK(max(err / rowmax).item() > 1.0 / 254 / 4);  // the bound is not vacuous
  CHECK(std::all_of(q.values(), q.values() + q.q.numel(), [](int8_t v) { return v >= -127; }));  // symmetric range
  Int8Rows z = quantize_rows_int8(zeros({2, 3}));
  CHECK(z.scales()[0] == 0);
  // a NaN or inf anywhere in a row is refused, naming the row (max() alone would drop a NaN)
  Tensor bad = randn({4, 40});
  bad.narrow(0, 2, 1).narrow(1, 17, 1).fill_(std::nan(""));
  CHECK_THROWS_WITH(quantize_rows_int8(bad), Catch::Contains("row 2") && Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(quantize_rows_int8(randn({3})), Catch::Contains("[rows, cols]"));
}

TEST_CASE("int8: int8_matmul is within the quantization error bound of the f32 product", "[int8]") {
  Tensor a = randn({20, 64}), b = randn({64, 30});
  Tensor c = int8_matmul(a, b), ref = matmul(a.to(DType::f64), b.to(DType::f64));
  // |a_k b_k - a'_k b'_k| <= |a_k| db + |b_k| da + da db, with da = max|row of a|/254, db = max|col of b|/254
  Tensor da = max(abs(a), {1}, true).to(DType::f64) / 254.0;   // [20, 1]
  Tensor db = max(abs(b), {0}, true).to(DType::f64) / 254.0;   // [1, 30]
  Tensor bound = matmul(abs(a).to(DType::f64), ones({64, 1}, DType::f64)) * db +
                 matmul(ones({1, 64}, DType::f64), abs(b).to(DType::f64)) * da + da * db * 64.0;
  Tensor err = abs(c.to(DType::f64) - ref);
  CHECK(sum(gt(err, bound * 1.0001 + 1e-5)).item() == 0);
  CHECK(max(err).item() > 0);  // it really is quantized
  CHECK_THROWS_WITH(int8_matmul(randn({2, 3}), randn({4, 2})), Catch::Contains("[M, K] @ [K, N]"));
}

// int8_matmul through one backend of "int8_gemm", checking that it ran there.
static Tensor int8_on(const char* backend, const Tensor& a, const Tensor& b) {
  ForceBackend force(backend);
  Tensor c = int8_matmul(a, b);
  CHECK(last_backend("int8_gemm") == backend);
  return c;
}

TEST_CASE("int8: the AVX512-VNNI and AMX-INT8 GEMMs equal the scalar reference exactly", "[int8]") {
  // (every layout of B, all-zero columns, K and N not multiples of 4 / 16 / 32 / 64, M not a multiple of 32;
  // non-finite inputs refused), on each int8 kernel the machine has
  if (!int8_vnni_supported()) {
    WARN("SKIPPED: CPU lacks AVX512-VNNI: the VNNI int8_gemm kernel is not tested here");
    return;
  }
  struct Restore {
    std::string prev = kern::cpu::int8_gemm_kernel();
    ~Restore() { kern::cpu::set_int8_gemm_kernel(prev); }
  } restore;
  CHECK_THROWS_WITH(kern::cpu::set_int8_gemm_kernel("amx8"), Catch::Contains("unknown kernel 'amx8'"));
  for (const char* kernel : {"vnni", "amx"}) {
    if (!kern::cpu::int8_gemm_kernel_supported(kernel)) {
      WARN("SKIPPED: this machine lacks the int8 GEMM kernel " << kernel);
      CHECK_THROWS_WITH(kern::cpu::set_int8_gemm_kernel(kernel), Catch::Contains("does not support"));
      continue;
    }
    kern::cpu::set_int8_gemm_kernel(kernel);
    INFO("kernel " << kernel);
    for (auto [M, K, N] : {std::tuple{1, 1, 1}, std::tuple{7, 13, 5}, std::tuple{64, 256, 100}, std::tuple{33, 130, 129},
                           std::tuple{70, 200, 64}}) {
      INFO(M << "x" << K << "x" << N);
      Tensor a = randn({M, K}), b = randn({K, N});
      CHECK(bit_equal(int8_on("cpu", a, b), int8_on("ref", a, b)));
      // B given as W^T (columns contiguous: int8_linear's layout) and with an all-zero column
      Tensor w = randn({N, K});
      w.narrow(0, 0, 1).fill_(0.0);
      CHECK(bit_equal(int8_on("cpu", a, w.t()), int8_on("ref", a, w.t())));
      CHECK(bit_equal(int8_on("cpu", a, w.t().contiguous()), int8_on("ref", a, w.t())));
    }
    Tensor a = randn({3, 40}), b = randn({40, 20});
    Tensor an = a.clone(), bn = b.clone(), wn = b.t().contiguous();
    an.narrow(0, 1, 1).narrow(1, 17, 1).fill_(std::nan(""));  // a NaN mid-row: max() alone would drop it
    bn.narrow(0, 5, 1).narrow(1, 3, 1).fill_(INFINITY);
    wn.narrow(0, 7, 1).narrow(1, 30, 1).fill_(std::nan(""));
    CHECK_THROWS_WITH(int8_on("cpu", an, b), Catch::Contains("row 1 of A") && Catch::Contains("non-finite"));
    CHECK_THROWS_WITH(int8_on("cpu", a, bn), Catch::Contains("column 3 of B"));
    CHECK_THROWS_WITH(int8_on("cpu", a, wn.t()), Catch::Contains("column 7 of B"));
  }
}
