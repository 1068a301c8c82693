// SGD, AdamW, gradient clipping and EMA. Updates run under NoGradGuard, as
// one fused kernel per parameter where it applies, else in-place tensor ops.
#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/kernel_params.h"
#include "core/mask.h"

namespace brisk::optim {

Optimizer::Optimizer(NamedParams params, double lr) : params_(std::move(params)), lr_(lr) {
  BRISK_CHECK(lr >= 0 && std::isfinite(lr), "optimizer: learning rate must be finite and >= 0, got ", lr);
  for (auto& [n, p] : params_) {
    BRISK_CHECK(p.defined() && p.requires_grad(), "optimizer: parameter '", n, "' does not require grad");
    BRISK_CHECK(is_floating(p.dtype()), "optimizer: parameter '", n, "' has dtype ", p.dtype());
  }
}

void Optimizer::step() {
  update();
  apply_masks();
}

void Optimizer::apply_masks() {
  NoGradGuard ng;
  for (auto& [n, p] : params_) {
    Tensor m = brisk::get_mask(p);
    if (!m.defined()) continue;
    Tensor pd = p.detach();
    pd.mul_(m);
    auto it = state_.find(n);
    if (it == state_.end()) continue;
    for (auto& [k, t] : it->second)
      if (t.shape() == p.shape()) t.mul_(m);
  }
}

void Optimizer::zero_grad() {
  for (auto& [n, p] : params_) p.set_grad(Tensor());
}

void Optimizer::set_lr(double lr) {
  BRISK_CHECK(lr >= 0 && std::isfinite(lr), "optimizer: learning rate must be finite and >= 0, got ", lr);
  lr_ = lr;
}

void Optimizer::set_lr_scale(const std::string& name, double scale) {
  BRISK_CHECK(scale >= 0 && std::isfinite(scale), "optimizer: learning-rate scale of '", name,
              "' must be finite and >= 0, got ", scale);
  (void)param(name);  // names a parameter the optimizer holds
  lr_scale_[name] = scale;
}

double Optimizer::lr_for(const std::string& name) const {
  auto it = lr_scale_.find(name);
  return it == lr_scale_.end() ? lr_ : lr_ * it->second;
}

Tensor Optimizer::param(const std::string& name) const {
  for (auto& [n, p] : params_)
    if (n == name) return p;
  BRISK_FAIL("optimizer: no parameter named '", name, "'");
}

void Optimizer::replace_param(const std::string& name, const Tensor& t) {
  for (auto& [n, p] : params_)
    if (n == name) {
      p = t;
      return;
    }
  BRISK_FAIL("optimizer: no parameter named '", name, "' to replace");
}

void Optimizer::add_param(const std::string& name, const Tensor& t) {
  for (auto& [n, p] : params_) BRISK_CHECK(n != name, "optimizer: parameter '", name, "' already present");
  params_.emplace_back(name, t);
}

void Optimizer::reset_params(NamedParams params) {
  for (auto& [n, p] : params)
    BRISK_CHECK(p.defined() && is_floating(p.dtype()), "optimizer: parameter '", n, "' is undefined or not floating");
  params_ = std::move(params);
}

nlohmann::json Optimizer::hyper_json() const { return {{"name", name()}, {"lr", lr_}}; }

void Optimizer::load_hyper_json(const nlohmann::json& j) {
  BRISK_CHECK(j.value("name", "") == name(), "optimizer state is for '", j.value("name", "?"),
              "' but the optimizer is '", name(), "'");
  lr_ = j.at("lr").get<double>();
}

TensorMap Optimizer::state_tensors() const {
  TensorMap out;
  for (auto& [pn, st] : state_)
    for (auto& [k, t] : st) out["optim/" + pn + "/" + k] = t;
  return out;
}

void Optimizer::load_state_tensors(const TensorMap& tensors) {
  std::map<std::string, TensorMap> loaded;
  const std::vector<std::string> keys = state_keys();
  auto known = [&](const std::string& k) { return std::find(keys.begin(), keys.end(), k) != keys.end(); };
  for (auto& [full, t] : tensors) {
    if (full.rfind("optim/", 0) != 0) continue;
    size_t slash = full.rfind('/');
    BRISK_CHECK(slash > 6, "optimizer state '", full, "': expected optim/<parameter>/<key>");
    std::string pn = full.substr(6, slash - 6), key = full.substr(slash + 1);
    Tensor p = param(pn);
    BRISK_CHECK(known(key), "optimizer state '", full, "': ", name(), " keeps no '", key, "' state");
    if (key == "step") {
      BRISK_CHECK(t.numel() == 1 && t.dtype() == DType::f64, "optimizer state '", full,
                  "' must be one f64 step count, got ", t.str());
      double v = t.to(kCPU).item();
      BRISK_CHECK(std::isfinite(v) && v >= 0 && v == std::floor(v), "optimizer state '", full,
                  "' holds step count ", v);
    } else {
      BRISK_CHECK(t.shape() == p.shape(), "optimizer state '", full, "' has shape ", shape_str(t.shape()),
                  " but the parameter has ", shape_str(p.shape()));
      BRISK_CHECK(t.dtype() == p.dtype(), "optimizer state '", full, "' has dtype ", t.dtype(),
                  " but the parameter has ", p.dtype());
    }
    loaded[pn][key] = key == "step" ? t.clone() : t.to(p.device()).clone();  // checkpoints load on the cpu
  }
  // A parameter with part of its state would silently restart the rest
  // (say, momentum from zero): refuse it.
  for (auto& [pn, st] : loaded)
    for (auto& k : keys)
      BRISK_CHECK(st.count(k), "optimizer state for '", pn, "' lacks '", k, "' (", name(), " keeps ", keys.size(),
                  " tensors per parameter); the checkpoint is incomplete");
  state_ = std::move(loaded);
}

SGD::SGD(NamedParams params, SGDOptions opt) : Optimizer(std::move(params), opt.lr), options(opt) {
  BRISK_CHECK(opt.momentum >= 0 && opt.weight_decay >= 0, "sgd: momentum and weight_decay must be >= 0");
  BRISK_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
              "sgd: nesterov needs momentum > 0 and dampening 0");
}

// The fused kernels need one dtype and dense contiguous memory throughout.
static bool fusable(const Tensor& p, const Tensor& g) {
  return p.is_contiguous() && g.is_contiguous() && g.dtype() == p.dtype() && g.device() == p.device() &&
         is_floating(p.dtype()) && g.shape() == p.shape();
}

void SGD::update() {
  NoGradGuard ng;
  for (auto& [n, p] : params_) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (options.fused && fusable(p, g)) {
      Tensor buf;
      bool first = false;
      if (options.momentum != 0) {
        auto& st = state_[n];
        first = !st.count("momentum_buffer");
        if (first) st["momentum_buffer"] = zeros_like(p);
        buf = st["momentum_buffer"];
      }
      if (!buf.defined() || fusable(buf, g)) {
        SgdStepParams q{lr_for(n), options.momentum, options.dampening, options.weight_decay, options.nesterov, first};
        Tensor ins[1] = {g};
        Tensor outs[2] = {p.detach(), buf};
        dispatch(opkey::sgd_step, p.device(), p.dtype(), KernelArgs{ins, outs, &q});
        continue;
      }
      if (first) state_[n].erase("momentum_buffer");
    }
    if (options.weight_decay != 0) g = g + p.detach() * options.weight_decay;
    if (options.momentum != 0) {
      auto& st = state_[n];
      auto it = st.find("momentum_buffer");
      if (it == st.end()) {
        st["momentum_buffer"] = g.clone();
      } else {
        Tensor buf = it->second;
        buf.mul_(options.momentum);
        buf.add_(g, 1 - options.dampening);
      }
      Tensor buf = st["momentum_buffer"];
      g = options.nesterov ? g + buf * options.momentum : buf;
    }
    Tensor pd = p.detach();
    pd.add_(g, -lr_for(n));
  }
}

nlohmann::json SGD::hyper_json() const {
  auto j = Optimizer::hyper_json();
  j["momentum"] = options.momentum;
  j["weight_decay"] = options.weight_decay;
  j["nesterov"] = options.nesterov;
  j["dampening"] = options.dampening;
  return j;
}

AdamMoments adam_step_state(TensorMap& st, const Tensor& p, double beta1, double beta2) {
  if (!st.count("step")) {
    st["step"] = zeros({}, DType::f64);
    st["exp_avg"] = zeros_like(p);
    st["exp_avg_sq"] = zeros_like(p);
  }
  Tensor step_t = st["step"];
  step_t.add_(ones({}, DType::f64));
  double t = step_t.item();
  return {st["exp_avg"], st["exp_avg_sq"], 1 - std::pow(beta1, t), 1 - std::pow(beta2, t)};
}

void adam_update_moments(const AdamMoments& a, const Tensor& g, double beta1, double beta2) {
  Tensor m = a.exp_avg, v = a.exp_avg_sq;  // handles: the state is updated in place
  m.mul_(beta1);
  m.add_(g, 1 - beta1);
  v.mul_(beta2);
  v.add_(g * g, 1 - beta2);
}

AdamW::AdamW(NamedParams params, AdamWOptions opt) : Optimizer(std::move(params), opt.lr), options(opt) {
  BRISK_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
              "adamw: betas must be in [0, 1), got ", opt.beta1, ", ", opt.beta2);
  BRISK_CHECK(opt.eps > 0 && opt.weight_decay >= 0, "adamw: eps must be > 0 and weight_decay >= 0");
}

void AdamW::update() {
  NoGradGuard ng;
  for (auto& [n, p] : params_) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    AdamMoments a = adam_step_state(state_[n], p, options.beta1, options.beta2);
    Tensor m = a.exp_avg, v = a.exp_avg_sq;
    double bc1 = a.bc1, bc2 = a.bc2, lr = lr_for(n);
    double wd = options.decay_matrices_only && p.dim() < 2 ? 0.0 : options.weight_decay;
    if (options.fused && fusable(p, g) && fusable(m, g) && fusable(v, g)) {
      AdamWStepParams q{lr, options.beta1, options.beta2, options.eps, wd, bc1, bc2};
      Tensor ins[1] = {g};
      Tensor outs[3] = {p.detach(), m, v};
      dispatch(opkey::adamw_step, p.device(), p.dtype(), KernelArgs{ins, outs, &q});
      continue;
    }
    Tensor pd = p.detach();
    if (wd != 0) pd.mul_(1 - lr * wd);
    adam_update_moments(a, g, options.beta1, options.beta2);
    Tensor denom = sqrt(v) / std::sqrt(bc2) + options.eps;
    pd.add_(m / denom, -lr / bc1);
  }
}

nlohmann::json AdamW::hyper_json() const {
  auto j = Optimizer::hyper_json();
  j["beta1"] = options.beta1;
  j["beta2"] = options.beta2;
  j["eps"] = options.eps;
  j["weight_decay"] = options.weight_decay;
  j["decay_matrices_only"] = options.decay_matrices_only;
  return j;
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  BRISK_CHECK(max_norm > 0, "clip_grad_norm_: max_norm must be > 0, got ", max_norm);
  NoGradGuard ng;
  double total = 0;
  for (auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor g64 = g.to(DType::f64);
    total += sum(g64 * g64).item();
  }
  double norm = std::sqrt(total);
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1)
    for (auto& p : params) {
      Tensor g = p.grad();
      if (g.defined()) g.mul_(coef);
    }
  return norm;
}

EMA::EMA(const NamedParams& params, double decay) : decay_(decay) {
  BRISK_CHECK(decay >= 0 && decay <= 1, "EMA: decay must be in [0, 1], got ", decay);
  for (auto& [n, p] : params) shadow_[n] = p.detach().clone();
}

void EMA::update(const NamedParams& params) {
  NoGradGuard ng;
  for (auto& [n, p] : params) {
    auto it = shadow_.find(n);
    BRISK_CHECK(it != shadow_.end(), "EMA: unknown parameter '", n, "'");
    Tensor s = it->second;
    BRISK_CHECK(s.shape() == p.shape(), "EMA: parameter '", n, "' changed shape from ", shape_str(s.shape()),
                " to ", shape_str(p.shape()), "; rebuild the EMA after surgery");
    s.mul_(decay_);
    s.add_(p.detach(), 1 - decay_);
  }
}

}  // namespace brisk::optim
