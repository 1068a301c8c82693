// Bad input gets a brisk::Error naming the op, shapes, dtypes or devices. It
// never aborts.
#include "tests/helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;
using Catch::Contains;

#define CHECK_ERROR(expr, ...)                                   \
  do {                                                           \
    try {                                                        \
      (void)(expr);                                              \
      FAIL("expected brisk::Error from " #expr);                 \
    } catch (const brisk::Error& e) {                            \
      std::string msg = e.what();                                \
      INFO("message: " << msg);                                  \
      for (const char* part : {__VA_ARGS__}) CHECK(msg.find(part) != std::string::npos); \
    }                                                            \
  } while (0)

TEST_CASE("errors: mismatched shapes name the op and both shapes", "[errors]") {
  CHECK_ERROR(add(ones({2, 3}), ones({4})), "op add", "[2, 3]", "[4]", "broadcast");
  CHECK_ERROR(matmul(ones({2, 3}), ones({4, 5})), "op matmul", "[2, 3]", "[4, 5]");
  CHECK_ERROR(ones({6}).view({4, 2}), "op view", "[4, 2]", "[6]");
  CHECK_ERROR(ones({2, 3}).t().view({6}), "op view", "reshape");
  CHECK_ERROR(ones({2}).expand({3}), "op expand", "[2]", "[3]");
  CHECK_ERROR(cat({ones({2, 3}), ones({2, 4})}, 0), "op cat", "[2, 3]", "[2, 4]");
  CHECK_ERROR(F::linear(ones({5, 3}), ones({4, 2})), "op linear", "[5, 3]", "[4, 2]");
  CHECK_ERROR(F::conv2d(ones({1, 3, 8, 8}), ones({4, 2, 3, 3})), "op conv2d", "3 channels", "[4, 2, 3, 3]");
  CHECK_ERROR(F::conv2d(ones({3, 8, 8}), ones({4, 3, 3, 3})), "op conv2d", "[N, C, H, W]", "[3, 8, 8]");
  CHECK_ERROR(F::max_pool2d(ones({1, 1, 2, 2}), 3), "op max_pool2d", "larger than the padded input");
  CHECK_ERROR(F::cross_entropy(ones({4, 3}), zeros({5}, DType::i64)), "op cross_entropy", "[5]", "[4, 3]");
  CHECK_ERROR(F::mse_loss(ones({2}), ones({3})), "op mse_loss", "[2]", "[3]");
  CHECK_ERROR(stack({ones({2}), ones({3})}), "op stack", "[2]", "[3]");
  CHECK_ERROR(F::batch_norm(ones({4, 3}), zeros({2}), ones({2}), Tensor(), Tensor(), true),
              "op batch_norm", "[2]", "[4, 3]");
  CHECK_ERROR(F::layer_norm(ones({4, 3}), {4}), "op layer_norm", "[4]", "[4, 3]");
}

TEST_CASE("errors: wrong dtypes name the op and the dtypes", "[errors]") {
  CHECK_ERROR(add(ones({2}), ones({2}, DType::f64)), "op add", "f32", "f64");
  CHECK_ERROR(exp(ones({2}, DType::i64)), "op exp", "i64");
  CHECK_ERROR(where(ones({2}), ones({2}), ones({2})), "op where", "bool", "f32");
  CHECK_ERROR(gather(ones({2, 2}), 1, zeros({2, 2}, DType::i32)), "op gather", "i64", "i32");
  CHECK_ERROR(F::cross_entropy(ones({2, 3}), zeros({2})), "op cross_entropy", "i64", "f32");
  CHECK_ERROR(F::embedding(ones({2}), ones({4, 3})), "op embedding", "i64");
  CHECK_ERROR(ones({2}, DType::i32).requires_grad_(), "requires_grad_", "i32");
  CHECK_ERROR(ones({2}).data_ptr<double>(), "data_ptr", "f32", "f64");
  // ops without 16-bit kernels (16-bit storage covers elementwise ops and
  // GEMM; the rest computes under autocast): the dispatcher says so, naming the op and dtype
  CHECK_ERROR(softmax(ones({2, 3}, DType::f16), 1), "softmax", "f16", "no kernel");
  CHECK_ERROR(F::conv2d(ones({1, 1, 4, 4}, DType::bf16), ones({1, 1, 3, 3}, DType::bf16)), "im2col", "bf16", "no kernel");
}

TEST_CASE("errors: wrong devices name the op and both devices", "[errors]") {
  Tensor m = empty({2}, TensorOptions(DType::f32, Device(DeviceType::meta)));
  CHECK_ERROR(add(ones({2}), m), "op add", "cpu", "meta");
  CHECK_ERROR(matmul(ones({2, 2}), empty({2, 2}, TensorOptions(DType::f32, Device(DeviceType::meta)))),
              "op matmul", "cpu", "meta");
  CHECK_ERROR(exp(m), "op exp", "device=meta");
  CHECK_ERROR(ones({2}).to(Device(DeviceType::cuda)), "cuda:0");
  CHECK_ERROR(Device::parse("tpu"), "unknown device 'tpu'");
  if (cuda_device_count() == 0)
    CHECK_ERROR(zeros({2}, TensorOptions(DType::f32, Device(DeviceType::cuda))), "cuda:0");
}

TEST_CASE("errors: out-of-range dims and indices", "[errors]") {
  CHECK_ERROR(sum(ones({2, 3}), {2}), "op sum", "dim 2", "rank 2");
  CHECK_ERROR(softmax(ones({2, 3}), -3), "op softmax", "dim -3");
  CHECK_ERROR(ones({2, 3}).transpose(0, 5), "op transpose", "dim 5");
  CHECK_ERROR(ones({2, 3}).narrow(1, 2, 2), "op narrow", "size 3");
  CHECK_ERROR(ones({2, 3}).permute({0, 0}), "op permute", "repeated");
  CHECK_ERROR(sum(ones({2, 3}), {1, 1}), "op sum", "more than once");
  CHECK_ERROR(gather(ones({2, 2}), 1, full({2, 2}, 2, DType::i64)), "op gather", "index 2", "size 2");
  CHECK_ERROR(F::embedding(from_vector({7}, {1}, DType::i64), ones({4, 3})), "op embedding", "index 7", "4 embeddings");
  CHECK_ERROR(F::cross_entropy(ones({2, 3}), from_vector({0, 3}, {2}, DType::i64)), "op cross_entropy",
              "target 3", "3 classes");
  CHECK_ERROR(F::cross_entropy(ones({2, 0}), full({2}, -100, DType::i64)), "op cross_entropy", "[2, 0]",
              "no classes");
  CHECK_ERROR(ones({2, 3}).item(), "item", "[2, 3]");
  CHECK_ERROR(F::dropout(ones({2}), 1.5, true), "op dropout", "1.5");
  CHECK_ERROR(ones({2}).select(0, 2), "op select", "index 2");
}

TEST_CASE("errors: undefined tensors and integer division by zero", "[errors]") {
  CHECK_ERROR(add(Tensor(), ones({1})), "op add", "undefined");
  CHECK_ERROR(Tensor().shape(), "undefined");
  CHECK_ERROR(ones({2}, DType::i64) / zeros({2}, DType::i64), "op div", "division by zero");
  CHECK_ERROR(set_num_threads(0), "set_num_threads", "0");
}
