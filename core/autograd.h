// Define-by-run autograd. Each differentiable op makes one Node whose edges
// point at its inputs' grad_fn (or at a leaf's AccumulateGrad). The backward
// formula is a closure written next to the op's forward, over brisk ops.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace brisk {

// --- grad mode ---
bool grad_enabled();
void set_grad_enabled(bool on);
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) {}
  virtual ~Node() = default;
  const std::string& name() const { return name_; }
  // One gradient per edge (undefined Tensor = no gradient for that input).
  virtual std::vector<Tensor> apply(const Tensor& grad) = 0;
  // Drop saved tensors after a backward without retain_graph.
  virtual void release() {}

  std::vector<std::shared_ptr<Node>> next;  // per input; null = input needs no grad
  std::vector<GradHook> pre_hooks;         // hooks on the tensor this node produced
  bool released = false;

 private:
  std::string name_;
};

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad)>;

// Node running a closure. Saved tensors live in the closure and die in release().
class FunctionNode : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn) : Node(std::move(name)), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(const Tensor& grad) override;
  void release() override { fn_ = nullptr; }

 private:
  BackwardFn fn_;
};

// Sink for a leaf: runs the leaf's hooks, then adds into .grad.
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(std::weak_ptr<TensorImpl> leaf)
      : Node("AccumulateGrad"), leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(const Tensor& grad) override;

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

// True when grad mode is on and any input requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attach a backward closure to `out`, if any input requires grad. `inputs` are
// the op's differentiable inputs, in the order the closure returns grads.
// Save outputs inside the closure only as out.detach(): saving `out` itself
// would make a reference cycle (out -> node -> out).
Tensor attach_grad(Tensor out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn);

// Engine entry point: accumulates d(root)/d(leaf) into every reachable leaf.
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

// Reduce a broadcast gradient back to `shape` (sum over broadcast dims).
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace brisk
