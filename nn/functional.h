// nn::functional: layers as functions (torch.nn.functional names). Each
// function checks its arguments and then either dispatches fused kernels
// (conv2d_fwd/bwd, batch_norm, layer_norm, cross_entropy, pooling, bias_relu,
// csr_linear, int8_gemm: keys in core/op_keys.h) with a hand-written backward,
// or composes core ops whose gradients come from autograd. Where the fused
// path may decline, the composite is public too (`*_composite`) so tests can
// compare the two. Which path runs can depend on policy: linear switches to
// sparse_linear on sparse masks and to int8_linear under int8 autocast.
#pragma once
#include <optional>

#include "core/ops.h"
#include "core/rng.h"

namespace brisk::nn::functional {

// x [..., in] @ w[out, in]^T + b[out]. When w carries a mask (core/mask.h)
// at least sparse_linear_threshold() sparse, runs the CSR kernels instead.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
// x [..., in] with w stored as CSR of its mask's nonzero pattern: the
// forward, the input gradient and the weight gradient (at stored positions
// only; zero elsewhere, as the mask requires) all cost O(B·nnz).
Tensor sparse_linear(const Tensor& x, const Tensor& w, const Tensor& mask, const Tensor& b = Tensor());
// SwitchBack-style int8 linear (Wortsman et al. 2023): y = x W^T + b with x
// quantized per row (token) and W per output row, int8 products summed in
// int32 (AVX512-VNNI where the CPU has it); the input gradient g W likewise
// (g per row, W per input column); the weight gradient g^T x stays f32.
// What `linear` runs under an int8 autocast (core/autocast.h).
Tensor int8_linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
void set_sparse_linear_threshold(double sparsity);  // > 1 disables the automatic switch
double sparse_linear_threshold();

struct Pair {
  int64_t h, w;
  Pair(int64_t v) : h(v), w(v) {}  // NOLINT
  Pair(int64_t a, int64_t b) : h(a), w(b) {}
};

// x [N, C, H, W], w [O, C/groups, kh, kw], b [O] -> [N, O, Ho, Wo]
// relu(y + b) over the last dim in one pass, and its backward in one pass.
Tensor bias_relu(const Tensor& y, const Tensor& b);
// gelu(y + b) over the last dim (exact erf GELU) in one pass, and its
// backward in one pass ("bias_gelu_fwd/bwd"); composite where no kernel exists.
Tensor bias_gelu(const Tensor& y, const Tensor& b);
Tensor bias_gelu_composite(const Tensor& y, const Tensor& b);
// gelu(linear(x, w, b)) with the bias and GELU fused (the GPT MLP's c_fc).
Tensor linear_gelu(const Tensor& x, const Tensor& w, const Tensor& b);
// relu(linear(x, w, b)), with the bias and ReLU fused (bias_relu).
Tensor linear_relu(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), Pair stride = 1,
              Pair padding = 0, Pair dilation = 1, int64_t groups = 1);
// relu(conv2d(...)) with the ReLU fused into the conv's epilogue (and its mask
// into the conv's backward) when relu is true; same result as the composite.
Tensor conv2d_relu(const Tensor& x, const Tensor& w, const Tensor& b, Pair stride, Pair padding,
                   Pair dilation, int64_t groups, bool relu);
// max_pool2d(conv2d(x, w, b, ...), 2) as one op, and with relu,
// relu(max_pool2d(conv2d(...), 2)): the fused kernel pools each sample's
// output while it is in cache, so the full-size conv output is neither
// stored nor read back, and the ReLU costs no pass of its own forward or
// backward (same values and gradients).
Tensor conv2d_max_pool2d(const Tensor& x, const Tensor& w, const Tensor& b, Pair stride = 1, Pair padding = 0,
                         Pair dilation = 1, int64_t groups = 1, bool relu = false);
// The composite the fused op overrides: im2col over the batch, matmul, + bias,
// relu. Grouped convs always take it; tests compare the two.
Tensor conv2d_composite(const Tensor& x, const Tensor& w, const Tensor& b, Pair stride, Pair padding,
                        Pair dilation, int64_t groups, bool relu);
Tensor max_pool2d(const Tensor& x, Pair kernel, std::optional<Pair> stride = std::nullopt,
                  Pair padding = 0);
Tensor avg_pool2d(const Tensor& x, Pair kernel, std::optional<Pair> stride = std::nullopt,
                  Pair padding = 0);
Tensor adaptive_avg_pool2d(const Tensor& x, Pair output_size);

// x [N, C, ...]. In training, normalizes with batch statistics and updates
// running_mean/var in place (unbiased var, like torch); in eval uses them.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5);
// The same as batch_norm, built only from primitive ops: the reference the
// fused training-mode kernel (batch_norm_fwd/bwd) is tested against.
Tensor batch_norm_composite(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                            const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                            double eps = 1e-5);
// Normalizes over the trailing dims given by normalized_shape.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// The two implementations layer_norm chooses between: the fused kernel
// ("layer_norm_fwd/bwd": optimized CPU and CUDA kernels, the ref as their
// oracle; undefined when no kernel takes the call) and the composite of
// primitive ops.
Tensor layer_norm_fused(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                        const Tensor& bias, double eps);
Tensor layer_norm_composite(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                            const Tensor& bias, double eps);
// softmax(q k^T * scale [+ causal mask]) v, like
// torch.nn.functional.scaled_dot_product_attention: q [..., Tq, D],
// k and v [..., Tk, D] with the same leading dims; scale defaults to
// 1/sqrt(D). Causal: query i sees keys j <= i + Tk - Tq (Tq = Tk: the usual
// lower triangle; Tq = 1 after a KV cache: every key). Runs the fused kernels
// ("attention_fwd/bwd": no Tq x Tk matrix in memory) where a backend has
// them, else the composite.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = false,
                                    std::optional<double> scale = std::nullopt);
Tensor scaled_dot_product_attention_composite(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                              double scale);
// Multi-head attention on a packed projection, the way a transformer block
// computes it: qkv [B, T, 3 H D] holds q, k and v side by side (each [T, H, D]
// per sample, heads of D dims); returns softmax(q k^T * scale) v with the heads
// back side by side, [B, T, H D]. The same values as splitting qkv into three
// [B, H, T, D] views and calling scaled_dot_product_attention, without the
// copies around it: the kernels read the heads in place, write the output in
// [B, T, H D] order, and the backward writes one [B, T, 3 H D] gradient.
Tensor attention_packed_qkv(const Tensor& qkv, int64_t n_head, bool causal = true,
                            std::optional<double> scale = std::nullopt);
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);
// weight [V, D], indices (i64, any shape) -> [..., D]
Tensor embedding(const Tensor& indices, const Tensor& weight);

enum class Reduction { none, mean, sum };
// logits [N, C], target i64 [N] with class indices.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::mean,
                     int64_t ignore_index = -100, double label_smoothing = 0.0);
// The same loss from log_softmax + gather (what the fused kernels override).
Tensor cross_entropy_composite(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::mean,
                               int64_t ignore_index = -100, double label_smoothing = 0.0);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

}  // namespace brisk::nn::functional
