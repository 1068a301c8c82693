// Layers (torch.nn names, defaults and parameter names, so state dicts line up
// with PyTorch's: "weight", "bias", "running_mean", ...).
#pragma once
#include <optional>

#include "nn/functional.h"
#include "nn/module.h"

namespace brisk::nn {

namespace F = brisk::nn::functional;

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x) override;
  std::string repr() const override;
  int64_t in_features, out_features;
  Tensor weight, bias;  // [out, in], [out]
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, F::Pair kernel, F::Pair stride = 1, F::Pair padding = 0,
         F::Pair dilation = 1, int64_t groups = 1, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x) override;
  std::string repr() const override;
  int64_t in_channels, out_channels;
  F::Pair kernel, stride, padding, dilation;
  int64_t groups;
  Tensor weight, bias;  // [O, C/groups, kh, kw], [O]
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override;
  int64_t num_features;
  double eps, momentum;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override;
  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override { return F::dropout(x, p, is_training()); }
  std::string repr() const override;
  double p;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(F::Pair kernel, std::optional<F::Pair> stride = std::nullopt, F::Pair padding = 0)
      : kernel(kernel), stride(stride.value_or(kernel)), padding(padding) {}
  Tensor forward(const Tensor& x) override { return F::max_pool2d(x, kernel, stride, padding); }
  std::string repr() const override;
  F::Pair kernel, stride, padding;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(F::Pair kernel, std::optional<F::Pair> stride = std::nullopt, F::Pair padding = 0)
      : kernel(kernel), stride(stride.value_or(kernel)), padding(padding) {}
  Tensor forward(const Tensor& x) override { return F::avg_pool2d(x, kernel, stride, padding); }
  std::string repr() const override;
  F::Pair kernel, stride, padding;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(F::Pair output_size) : output_size(output_size) {}
  Tensor forward(const Tensor& x) override { return F::adaptive_avg_pool2d(x, output_size); }
  std::string repr() const override;
  F::Pair output_size;
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_dim, end_dim); }
  std::string repr() const override { return "Flatten()"; }
  int64_t start_dim, end_dim;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string repr() const override { return "ReLU()"; }
};

class GELU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return gelu(x); }
  std::string repr() const override { return "GELU()"; }
};

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  Tensor forward(const Tensor& indices) override { return F::embedding(indices, weight); }
  std::string repr() const override;
  int64_t num_embeddings, embedding_dim;
  Tensor weight;  // [V, D]
};

class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> layers);
  void push_back(ModulePtr m);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "Sequential"; }
  size_t size() const { return children_.size(); }
  ModulePtr operator[](size_t i) const { return children_.at(i).second; }
  // Insert at position i; children are renamed "0".."n-1" (deepen uses this).
  void insert(size_t i, ModulePtr m);
  void erase(size_t i);  // children after i are renamed
};

// Multiplies each channel (dim 1) by a gate in [0, 1]: masked structural
// growth (MSG) adds units with gate 0 and ramps it to 1. Buffers: `gate` [C]
// and `birth` [C] (the step a unit was added; -1 for original units).
class Gate : public Module {
 public:
  explicit Gate(int64_t channels);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "Gate(" + std::to_string(gate.numel()) + ")"; }
  Tensor gate, birth;
};

// MSG's ramp, in place: gate[j] = clamp((now - birth[j]) / ramp_steps, 0, 1)
// for grown units, 1 for units the model started with (birth < 0). For a
// Gate module and for the GPT's per-unit and per-head gates alike.
void ramp_gate(Tensor gate, const Tensor& birth, double now, double ramp_steps);

// ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (identity, or
// 1x1 conv + BN when the shape changes), then ReLU.
class ResidualBlock : public Module {
 public:
  ResidualBlock(int64_t in_channels, int64_t out_channels, int64_t stride = 1);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override;
  // Stochastic depth (efficiency/stochastic_depth): in training, skip_branch
  // drops the residual branch for this batch (relu(shortcut(x)): no conv
  // work); in evaluation the branch is scaled by its survival probability.
  bool skip_branch = false;
  double survival = 1.0;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> shortcut;  // empty = identity
};

// Multi-head self-attention over x [B, T, E] (batch first), like
// torch.nn.MultiheadAttention(E, H, batch_first=True) with q = k = v = x.
class MultiheadSelfAttention : public Module {
 public:
  MultiheadSelfAttention(int64_t embed_dim, int64_t num_heads, bool causal = false);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override;
  int64_t embed_dim, num_heads;
  bool causal;
  std::shared_ptr<Linear> in_proj, out_proj;  // E -> 3E, E -> E
};

}  // namespace brisk::nn
