// Adding an op to brisk from outside the library: softplus(x) = log(1 + e^x),
// with a hand-written CPU kernel for the forward, its backward registered on
// the autograd graph (d softplus / dx = sigmoid(x)), and checks against a
// reference (the same function composed of brisk's own ops) and against
// finite differences (test_softplus.cpp).
//
// Inside the library an op takes the same three pieces, placed by its stem
// (docs/architecture.md, "Where an op's pieces live"): a key in
// core/op_keys.h, a reference kernel in kernels/cpu/ref/<stem>.cpp, an
// optimized one in kernels/cpu/<stem>.cpp, the op and its backward closure in
// core/ops/ or nn/functional.cpp, and one entry in tests/test_op_table.cpp.
#pragma once
#include <brisk.h>

#include <cmath>

#include "core/thread_pool.h"

namespace example {

// The kernel: y = softplus(x) over contiguous f32, split across the thread
// pool. max(x, 0) + log1p(exp(-|x|)) is the overflow-safe form (e^x overflows
// f32 for x > 88).
inline void softplus_kernel(const float* x, float* y, int64_t n) {
  brisk::parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = std::max(x[i], 0.f) + std::log1p(std::exp(-std::fabs(x[i])));
  });
}

// The op: checks, allocation, kernel, and the backward closure.
inline brisk::Tensor softplus(const brisk::Tensor& x) {
  BRISK_CHECK(x.dtype() == brisk::DType::f32, "softplus: expects f32, got ", brisk::dtype_name(x.dtype()));
  BRISK_CHECK(x.device().type == brisk::DeviceType::cpu, "softplus: this example's kernel runs on the CPU only, got ", x.device().str());
  brisk::Tensor xc = x.contiguous();
  brisk::Tensor y = brisk::empty(x.shape());
  softplus_kernel(xc.data_ptr<float>(), y.data_ptr<float>(), x.numel());
  // Backward: grad_x = grad_y * sigmoid(x). The closure keeps x (not y: saving
  // the output itself would make a reference cycle, core/autograd.h).
  brisk::Tensor saved = x.detach();
  return brisk::attach_grad(y, "softplus", {x}, [saved](const brisk::Tensor& g) {
    return std::vector<brisk::Tensor>{g * brisk::sigmoid(saved)};
  });
}

// The reference: softplus composed of brisk's ops (autograd for free), used
// only to check the kernel.
inline brisk::Tensor softplus_reference(const brisk::Tensor& x) {
  return brisk::relu(x) + brisk::log(brisk::exp(brisk::neg(brisk::abs(x))) + 1.0);
}

}  // namespace example
