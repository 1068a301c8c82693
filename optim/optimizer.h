// Optimizers. Per-parameter state lives in a map keyed by the parameter's
// dotted name and then by state key ("momentum_buffer", "exp_avg",
// "exp_avg_sq", "step"), so masks and surgery can find and edit it.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/brisk.h"
#include "core/safetensors.h"

namespace brisk::optim {

using NamedParams = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  Optimizer(NamedParams params, double lr);
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // Updates every parameter that has a gradient; others (no grad this step,
  // or frozen: requires_grad off) are left untouched, state included.
  // Then re-establishes the sparsity invariants of masked parameters (see
  // core/mask.h): weights and same-shaped state are zero where pruned.
  void step();
  // Zeroes masked parameters and their same-shape state (momentum, Adam m
  // and v) at pruned positions: step() ends with it, and a method that
  // changes a mask calls it at once, so the state is zero wherever a mask
  // is zero at every point between steps too.
  void apply_masks();
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);
  // Per-parameter learning-rate multiplier (PyTorch's per-group lr, as a
  // factor of the scheduled lr): the parameter steps with lr() * scale.
  // Default 1. A method that owns a scale (layer-wise annealing, LARS-style
  // trust ratios) sets it before every step; it is not checkpointed.
  void set_lr_scale(const std::string& name, double scale);
  void clear_lr_scales() { lr_scale_.clear(); }
  double lr_for(const std::string& name) const;
  const NamedParams& params() const { return params_; }
  Tensor param(const std::string& name) const;  // throws naming the key

  // Per-parameter state by name, then key. Absent until the first step.
  std::map<std::string, TensorMap>& state() { return state_; }
  const std::map<std::string, TensorMap>& state() const { return state_; }
  // Surgery: point `name` at a new tensor (e.g. a widened weight). The caller
  // remaps state()[name] in the same call; nothing else is touched.
  void replace_param(const std::string& name, const Tensor& t);
  void add_param(const std::string& name, const Tensor& t);
  // Replace the whole (name, parameter) list; state is left as is (surgery
  // re-keys it through state()). A parameter may be frozen (requires_grad
  // off, see efficiency/freeze): it stays listed and is skipped while frozen.
  void reset_params(NamedParams params);

  // Checkpointing: scalars as JSON, state tensors as "optim/<param>/<key>".
  virtual nlohmann::json hyper_json() const;
  virtual void load_hyper_json(const nlohmann::json& j);
  TensorMap state_tensors() const;
  // All-or-nothing: every entry is checked (known parameter, a key of
  // state_keys(), shape and dtype, each parameter's keys complete) before the
  // state is replaced; a bad set throws and leaves the state as it was.
  void load_state_tensors(const TensorMap& tensors);
  // The keys one parameter's state holds once it has stepped.
  virtual std::vector<std::string> state_keys() const = 0;

 protected:
  virtual void update() = 0;  // the optimizer's own rule
  NamedParams params_;
  std::map<std::string, TensorMap> state_;
  double lr_;
  std::map<std::string, double> lr_scale_;
};

struct SGDOptions {
  double lr = 0.1, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  bool fused = true;  // one-pass "sgd_step" kernel per parameter; false: the tensor-op composite
};

// torch.optim.SGD semantics (weight decay added to the gradient; the first
// momentum buffer is the gradient itself).
class SGD : public Optimizer {
 public:
  SGD(NamedParams params, SGDOptions opt);
  std::string name() const override { return "sgd"; }
  std::vector<std::string> state_keys() const override {
    return options.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
  }
  nlohmann::json hyper_json() const override;
  SGDOptions options;

 protected:
  void update() override;
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  bool fused = true;  // one-pass "adamw_step" kernel per parameter; false: the tensor-op composite
  // Decay only parameters with 2 or more dims (weight matrices, conv kernels,
  // embeddings), not biases or normalization gains: the GPT-2 / nanoGPT rule.
  bool decay_matrices_only = false;
};

// torch.optim.AdamW semantics (decoupled weight decay, per-parameter step).
class AdamW : public Optimizer {
 public:
  AdamW(NamedParams params, AdamWOptions opt);
  std::string name() const override { return "adamw"; }
  std::vector<std::string> state_keys() const override { return {"exp_avg", "exp_avg_sq", "step"}; }
  nlohmann::json hyper_json() const override;
  AdamWOptions options;

 protected:
  void update() override;
};

// Adam's per-parameter state (shared by AdamW and LAMB): creates "step",
// "exp_avg" and "exp_avg_sq" on first use, counts this step, and returns the
// moments with this step's bias corrections 1 - beta^t.
struct AdamMoments {
  Tensor exp_avg, exp_avg_sq;  // same shape as the parameter
  double bc1, bc2;
};
AdamMoments adam_step_state(TensorMap& st, const Tensor& p, double beta1, double beta2);
// m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2, in place.
void adam_update_moments(const AdamMoments& a, const Tensor& g, double beta1, double beta2);

// Scales gradients so their global L2 norm is at most max_norm; returns the
// norm before clipping (like torch.nn.utils.clip_grad_norm_).
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

// Exponential moving average of parameters (and a copy of buffers):
// shadow = decay * shadow + (1 - decay) * param.
class EMA {
 public:
  EMA(const NamedParams& params, double decay);
  void update(const NamedParams& params);
  const TensorMap& shadow() const { return shadow_; }
  TensorMap& shadow() { return shadow_; }
  double decay() const { return decay_; }

 private:
  TensorMap shadow_;
  double decay_;
};

}  // namespace brisk::optim
