// LARS and LAMB (see layerwise.h). Norms are taken in f64 so that the trust
// ratio of a large layer does not depend on summation order.
#include "optim/layerwise.h"

#include <cmath>

namespace brisk::optim {

static double norm64(const Tensor& t) {
  Tensor d = t.detach().to(DType::f64);
  return std::sqrt(sum(d * d).item());
}

static SGDOptions sgd_part(const LARSOptions& o) {
  SGDOptions s;
  s.lr = o.lr;
  s.momentum = o.momentum;
  s.weight_decay = 0;  // LARS adds the decay inside the trust-scaled update
  return s;
}

LARS::LARS(NamedParams params, LARSOptions opt) : SGD(std::move(params), sgd_part(opt)), lars(opt) {
  BRISK_CHECK(opt.eta > 0 && std::isfinite(opt.eta), "lars: eta must be > 0, got ", opt.eta);
  BRISK_CHECK(opt.weight_decay >= 0, "lars: weight_decay must be >= 0, got ", opt.weight_decay);
}

void LARS::update() {
  {
    NoGradGuard ng;
    for (auto& [n, p] : params_) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      double wn = 0, gn = 0, trust = 1;
      if (p.dim() >= 2) {
        wn = norm64(p);
        gn = norm64(g);
        if (wn > 0 && gn > 0) trust = lars.eta * wn / (gn + lars.weight_decay * wn);
        trust_[n] = trust;
      }
      // u = trust * (g + wd w), written into the gradient SGD then steps with.
      if (lars.weight_decay != 0) g.add_(p.detach(), lars.weight_decay);
      if (trust != 1) g.mul_(trust);
    }
  }
  SGD::update();
}

nlohmann::json LARS::hyper_json() const {
  auto j = SGD::hyper_json();
  j["name"] = name();
  j["eta"] = lars.eta;
  j["weight_decay"] = lars.weight_decay;
  return j;
}

LAMB::LAMB(NamedParams params, LAMBOptions opt) : Optimizer(std::move(params), opt.lr), options(opt) {
  BRISK_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
              "lamb: betas must be in [0, 1), got ", opt.beta1, ", ", opt.beta2);
  BRISK_CHECK(opt.eps > 0 && opt.weight_decay >= 0, "lamb: eps must be > 0 and weight_decay >= 0");
}

void LAMB::update() {
  NoGradGuard ng;
  for (auto& [n, p] : params_) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    AdamMoments a = adam_step_state(state_[n], p, options.beta1, options.beta2);
    adam_update_moments(a, g, options.beta1, options.beta2);
    Tensor pd = p.detach();
    Tensor r = (a.exp_avg / a.bc1) / (sqrt(a.exp_avg_sq / a.bc2) + options.eps);  // [same shape as p]
    if (options.weight_decay != 0) r = r + pd * options.weight_decay;
    double wn = norm64(pd), rn = norm64(r);
    double trust = wn > 0 && rn > 0 ? wn / rn : 1.0;
    trust_[n] = trust;
    pd.add_(r, -lr_for(n) * trust);
  }
}

nlohmann::json LAMB::hyper_json() const {
  auto j = Optimizer::hyper_json();
  j["beta1"] = options.beta1;
  j["beta2"] = options.beta2;
  j["eps"] = options.eps;
  j["weight_decay"] = options.weight_decay;
  return j;
}

}  // namespace brisk::optim
