// Module tree bookkeeping: registration, traversal, state dicts.
#include "nn/module.h"

#include <sstream>

namespace brisk::nn {

Tensor Module::forward_relu(const Tensor& x) { return relu(forward(x)); }


template <class V, class T>
static void upsert(std::vector<std::pair<std::string, V>>& v, const std::string& name, T value) {
  for (auto& [n, x] : v)
    if (n == name) {
      x = std::move(value);
      return;
    }
  v.emplace_back(name, std::move(value));
}

Tensor Module::register_parameter(const std::string& name, const Tensor& t) {
  BRISK_CHECK(name.find('.') == std::string::npos && !name.empty(), "register_parameter: invalid name '",
              name, "'");
  Tensor p = t.is_leaf() && t.requires_grad() ? t : Tensor(Parameter(t));
  upsert(params_, name, p);
  return p;
}

Tensor Module::register_buffer(const std::string& name, const Tensor& t) {
  BRISK_CHECK(name.find('.') == std::string::npos && !name.empty(), "register_buffer: invalid name '", name, "'");
  upsert(buffers_, name, t);
  return t;
}

void Module::set_child(const std::string& name, std::shared_ptr<Module> m) {
  BRISK_CHECK(m != nullptr, "register_module: module '", name, "' is null");
  upsert(children_, name, std::move(m));
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (auto& [cn, c] : children_)
    for (auto& [n, m] : c->named_modules()) out.emplace_back(n.empty() ? cn : cn + "." + n, m);
  return out;
}

// Repoints a tensor handle's impl at a copy of its data on `device`.
static void move_in_place(const Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  Tensor moved = t.detach().to(device);
  TensorImpl* impl = t.unsafe_impl();
  impl->storage = moved.storage();
  impl->strides = moved.strides();
  impl->offset = moved.offset();
  impl->device = device;
  impl->grad = nullptr;
  if (impl->mask) move_in_place(Tensor(impl->mask), device);
}

void Module::to(Device device) {
  for (auto& [n, p] : named_parameters()) move_in_place(p, device);
  for (auto& [n, b] : named_buffers()) move_in_place(b, device);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out(params_.begin(), params_.end());
  for (auto& [cn, c] : children_)
    for (auto& [n, p] : c->named_parameters()) out.emplace_back(cn + "." + n, p);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out(buffers_.begin(), buffers_.end());
  for (auto& [cn, c] : children_)
    for (auto& [n, b] : c->named_buffers()) out.emplace_back(cn + "." + n, b);
  return out;
}

Tensor Module::parameter(const std::string& dotted) const {
  for (auto& [n, p] : named_parameters())
    if (n == dotted) return p;
  BRISK_FAIL("module has no parameter '", dotted, "'");
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& p : parameters()) p.set_grad(Tensor());
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  return n;
}

TensorMap Module::state_dict() const {
  TensorMap sd;
  for (auto& [n, p] : named_parameters()) sd[n] = p.detach();
  for (auto& [n, b] : named_buffers()) sd[n] = b;
  return sd;
}

// Every entry is checked before any is copied: a bad state dict leaves the
// model as it was.
void Module::load_state_dict(const TensorMap& sd, bool strict) {
  TensorMap mine = state_dict();
  if (strict)
    for (auto& [k, v] : sd)
      BRISK_CHECK(mine.count(k), "load_state_dict: unexpected key '", k, "' (not in this model)");
  for (auto& [k, dst] : mine) {
    auto it = sd.find(k);
    if (it == sd.end()) {
      BRISK_CHECK(!strict, "load_state_dict: missing key '", k, "'");
      continue;
    }
    const Tensor& src = it->second;
    BRISK_CHECK(src.shape() == dst.shape(), "load_state_dict: '", k, "' has shape ", shape_str(src.shape()),
                " in the state dict but ", shape_str(dst.shape()), " in the model");
    BRISK_CHECK(src.dtype() == dst.dtype(), "load_state_dict: '", k, "' has dtype ", src.dtype(),
                " in the state dict but ", dst.dtype(), " in the model");
  }
  NoGradGuard ng;
  for (auto& [k, dst] : mine) {
    auto it = sd.find(k);
    if (it == sd.end()) continue;
    Tensor d = dst;
    d.copy_(it->second.device() == d.device() ? it->second : it->second.to(d.device()));
  }
}

std::string Module::str(int indent) const {
  std::ostringstream os;
  os << repr();
  if (!children_.empty()) {
    os << " (\n";
    for (auto& [n, c] : children_)
      os << std::string(size_t(indent + 2), ' ') << "(" << n << "): " << c->str(indent + 2) << "\n";
    os << std::string(size_t(indent), ' ') << ")";
  }
  return os.str();
}

}  // namespace brisk::nn
