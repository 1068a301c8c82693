// The backward engine: dependency counting over the graph reachable from the
// root, then a topological sweep that sums gradients per node.
#include "core/autograd.h"

#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/ops.h"

namespace brisk {

namespace {
thread_local bool t_grad_enabled = true;
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }

std::vector<Tensor> FunctionNode::apply(const Tensor& grad) {
  BRISK_CHECK(fn_ != nullptr, "backward: trying to backward through the graph a second time (at ",
              name(), "); its saved tensors were freed. Pass retain_graph=true to the first backward.");
  return fn_(grad);
}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& grad_in) {
  auto leaf = leaf_.lock();
  if (!leaf) return {};
  Tensor g = grad_in;
  for (auto& h : leaf->hooks) {
    if (auto r = h(g)) g = *r;
  }
  if (!leaf->grad) {
    // Own the buffer: the incoming grad may alias another tensor. When
    // nothing else can see it (no other tensor holds its impl or storage: not
    // a view, not handed to two inputs, not kept by a hook) it is taken as
    // is, as PyTorch's AccumulateGrad steals it: a clone would copy every
    // weight gradient once per step.
    long refs = 1 + (g.impl_ptr() == grad_in.impl_ptr() ? 1 : 0);  // g, and the engine's grad_in
    bool alone = g.impl_ptr().use_count() == refs && g.storage().use_count() == 1;
    bool fits = g.is_contiguous() && g.offset() == 0 && g.shape() == leaf->shape && g.dtype() == leaf->dtype &&
                g.device() == leaf->device && g.storage()->nbytes() == size_t(g.numel()) * dtype_size(g.dtype());
    leaf->grad = alone && fits ? g.impl_ptr() : g.clone().impl_ptr();
  } else {
    Tensor acc(leaf->grad);
    acc.add_(g);
  }
  if (!leaf->post_accumulate_hooks.empty()) {
    Tensor t(leaf);
    // A copy: a hook may remove itself.
    auto hooks = leaf->post_accumulate_hooks;
    for (auto& [h, fn] : hooks) fn(t);
  }
  return {};
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  return any_requires_grad(std::vector<Tensor>(inputs));
}

static std::shared_ptr<Node> grad_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl* impl = t.unsafe_impl();
  if (impl->grad_fn) return impl->grad_fn;
  auto acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return acc;
}

Tensor attach_grad(Tensor out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->next.reserve(inputs.size());
  for (const auto& t : inputs) node->next.push_back(grad_edge(t));
  TensorImpl* impl = out.unsafe_impl();
  impl->grad_fn = std::move(node);
  impl->requires_grad = true;
  return out;
}

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  BRISK_CHECK(root.requires_grad(), "backward: tensor ", root.str(),
              " does not require grad and has no grad_fn");
  Tensor g = grad;
  if (!g.defined()) {
    BRISK_CHECK(root.numel() == 1, "backward: grad can be implicitly created only for a one-element "
                "tensor; got shape ", shape_str(root.shape()), ". Pass an explicit gradient.");
    g = ones_like(root);
  } else {
    BRISK_CHECK(g.shape() == root.shape(), "backward: gradient shape ", shape_str(g.shape()),
                " does not match tensor shape ", shape_str(root.shape()));
    BRISK_CHECK(g.dtype() == root.dtype(), "backward: gradient dtype ", g.dtype(),
                " does not match tensor dtype ", root.dtype());
  }
  NoGradGuard no_grad;  // backward formulas build no graph

  std::shared_ptr<Node> root_node = grad_edge(root);
  // Count, for each node, how many edges point into it.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root_node.get()};
  deps[root_node.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& nx : n->next) {
      if (!nx) continue;
      auto [it, fresh] = deps.try_emplace(nx.get(), 0);
      it->second++;
      if (fresh) stack.push_back(nx.get());
    }
  }
  std::unordered_map<Node*, Tensor> pending{{root_node.get(), g}};
  std::vector<std::shared_ptr<Node>> ready{root_node};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.back();
    ready.pop_back();
    std::vector<Tensor> gouts;
    auto pit = pending.find(node.get());
    if (pit != pending.end()) {  // else no gradient reached it: only release its edges
      Tensor gin = std::move(pit->second);
      pending.erase(pit);
      for (auto& h : node->pre_hooks)
        if (auto r = h(gin)) gin = *r;
      gouts = node->apply(gin);
      BRISK_CHECK(gouts.empty() || gouts.size() == node->next.size(), "backward: node ",
                  node->name(), " returned ", gouts.size(), " gradients for ", node->next.size(),
                  " inputs");
    }
    for (size_t i = 0; i < node->next.size(); ++i) {
      const auto& nx = node->next[i];
      if (!nx) continue;
      if (i < gouts.size() && gouts[i].defined()) {
        auto& slot = pending[nx.get()];
        slot = slot.defined() ? add(slot, gouts[i]) : gouts[i];
      }
      if (--deps[nx.get()] == 0) ready.push_back(nx);
    }
    if (!retain_graph) {
      node->release();
      node->released = true;
    }
  }
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  int64_t lead = grad.dim() - int64_t(shape.size());
  BRISK_CHECK(lead >= 0, "sum_to: cannot reduce ", shape_str(grad.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < grad.dim(); ++i) {
    if (i < lead) dims.push_back(i);
    else if (shape[size_t(i - lead)] == 1 && grad.size(i) != 1) dims.push_back(i);
  }
  Tensor r = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return r.reshape(shape);
}

}  // namespace brisk
