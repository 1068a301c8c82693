// Module: a tree of named parameters, buffers and children, with train/eval
// mode and a state dict, like torch.nn.Module. Names are dotted paths
// ("features.0.weight"), and they are the keys that optimizers, masks and
// surgery use to find per-parameter state.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/brisk.h"
#include "core/safetensors.h"

namespace brisk::nn {

// A trainable tensor: a leaf that requires grad. Parameter is a Tensor handle,
// so a Module and an optimizer holding "the same parameter" share storage.
class Parameter : public Tensor {
 public:
  Parameter() = default;
  explicit Parameter(const Tensor& data) : Tensor(data.detach().requires_grad_(true)) {}
};

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  // relu(forward(x)); layers with a fused epilogue (Linear, Conv2d) override
  // it, and Sequential calls it for a layer followed by a ReLU module.
  virtual Tensor forward_relu(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }
  // One-line description for printing ("Linear(784, 512)").
  virtual std::string repr() const = 0;

  // Registration returns the stored handle. Re-registering a name replaces it
  // (surgery uses this).
  Tensor register_parameter(const std::string& name, const Tensor& t);
  Tensor register_buffer(const std::string& name, const Tensor& t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    set_child(name, m);
    return m;
  }

  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  // Every module in the tree, pre-order, with dotted names ("" for this one).
  std::vector<std::pair<std::string, Module*>> named_modules();
  Tensor parameter(const std::string& dotted) const;  // throws naming the key

  // Moves every parameter and buffer (and sparsity masks) to `device` in
  // place: handles held elsewhere (an optimizer, a method) see the new
  // storage. Gradients are dropped. Move before creating optimizer state.
  void to(Device device);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  int64_t num_parameters() const;

  // Parameters and buffers by dotted name (copies share storage).
  TensorMap state_dict() const;
  // Copies values in. strict: every key must match in name, shape and dtype.
  void load_state_dict(const TensorMap& sd, bool strict = true);

  std::string str(int indent = 0) const;  // the whole tree

 protected:
  void set_child(const std::string& name, std::shared_ptr<Module> m);
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

using ModulePtr = std::shared_ptr<Module>;

}  // namespace brisk::nn
