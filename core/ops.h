// The tensor op API (PyTorch names and semantics). Every op checks its inputs
// and throws brisk::Error naming the op, shapes, dtypes and devices; every
// differentiable op records its backward formula (see core/ops/*.cpp).
#pragma once
#include <optional>
#include <vector>

#include "core/autograd.h"
#include "core/kernel_params.h"
#include "core/tensor.h"

namespace brisk {

// Stochastic rounding of x to f16 or bf16: each element becomes one of its
// two neighbours, the upper with probability (x - lo) / (hi - lo) (unbiased).
// Not differentiable. Deterministic for a given generator state.
class Generator;
Tensor stochastic_round(const Tensor& x, DType to, Generator* gen = nullptr);

// --- unary (differentiable for floating dtypes) ---
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact (erf) form, like torch's default
Tensor sign(const Tensor& x);  // not differentiable (zero gradient)
Tensor unary(UnaryOp op, const Tensor& x);

// --- binary, NumPy broadcasting; both operands must share dtype and device ---
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
// grad where out > 0, else 0 (ReLU's backward, one pass; not differentiable).
Tensor relu_backward(const Tensor& grad, const Tensor& out);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// comparisons -> bool
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// A 0-d tensor holding v with x's dtype and device (for scalar arithmetic).
Tensor scalar_like(const Tensor& x, double v);

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// --- reductions; empty dims = all dims ---
Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// sum(x rounded to bf16, dims) of an f32 x without the rounded copy (no
// autograd): a bf16 linear's bias gradient. Same values as rounding first.
Tensor sum_rounded_bf16(const Tensor& x, std::vector<int64_t> dims);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// Maximum over dims (like torch.amax): the gradient is split evenly among ties.
Tensor max(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// Index of the first maximum along dim (flattened input when dim is nullopt).
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
// Variance with Bessel-style correction (1 = unbiased, like torch.var).
Tensor var(const Tensor& x, std::vector<int64_t> dims = {}, int64_t correction = 1,
           bool keepdim = false);

// --- softmax family, numerically stable ---
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// --- linear algebra ---
// 1-d and n-d with batch broadcasting, like torch.matmul.
Tensor matmul(const Tensor& a, const Tensor& b);
// a [M, K] @ b [K, N] (f32) + bias [N] (may be undefined), then, with relu,
// max(0, .), then, with round_bf16, rounded to bf16 (nearest even, f32
// storage): one GEMM whose epilogue does the bias, the ReLU and the rounding
// (core/kernel_params.h "gemm"). No autograd: for layers that define their
// own backward (linear under bf16 autocast, linear_relu).
Tensor matmul_epilogue(const Tensor& a, const Tensor& b, const Tensor& bias, bool round_bf16, bool relu = false);

// --- joining and indexing ---
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// self with src added at index along dim (out of place, like torch.scatter_add).
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);

// --- image primitives (used by nn::functional::conv2d and pooling) ---
// unfold/im2col: [N, C, H, W] -> [N, C*kh*kw, Ho*Wo]; col2im is its adjoint.
Tensor im2col(const Tensor& x, const Geom2d& g);
Tensor col2im(const Tensor& cols, const Geom2d& g);

// --- operators ---
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// Checks shared by ops.
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
void check_floating(const char* op, const Tensor& x);
void check_defined(const char* op, const Tensor& x);

}  // namespace brisk
