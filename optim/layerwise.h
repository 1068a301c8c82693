// Layer-wise adaptive optimizers for large batches: each parameter tensor's
// step is scaled by a trust ratio ||w|| / ||update||, so that no layer moves
// by more than a set fraction of its norm however large the learning rate.
//
// LARS (You, Gitman, Ginsburg 2017): for a weight matrix or kernel (dim >= 2)
//   u = trust * (g + wd w), trust = eta ||w|| / (||g|| + wd ||w||)
//   (1 where either norm is 0); then SGD momentum on u: buf = m buf + u,
//   w -= lr buf. Biases and BatchNorm parameters (dim 1) are not adapted
//   (u = g + wd w), as in the paper's reference setups.
// LAMB (You et al. 2019): Adam's moments with bias correction, then
//   r = m_hat / (sqrt(v_hat) + eps) + wd w,
//   trust = ||w|| / ||r|| (1 where either norm is 0; dim-1 parameters too),
//   w -= lr * trust * r.
#pragma once
#include "optim/optimizer.h"

namespace brisk::optim {

struct LARSOptions {
  double lr = 0.1, momentum = 0.9, weight_decay = 0.0, eta = 0.001;
};

class LARS : public SGD {
 public:
  LARS(NamedParams params, LARSOptions opt);
  std::string name() const override { return "lars"; }
  nlohmann::json hyper_json() const override;
  LARSOptions lars;
  // The trust ratio of each adapted parameter at the last step (by name).
  const std::map<std::string, double>& last_trust() const { return trust_; }

 protected:
  void update() override;

 private:
  std::map<std::string, double> trust_;
};

struct LAMBOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-6, weight_decay = 0.01;
};

class LAMB : public Optimizer {
 public:
  LAMB(NamedParams params, LAMBOptions opt);
  std::string name() const override { return "lamb"; }
  std::vector<std::string> state_keys() const override { return {"exp_avg", "exp_avg_sq", "step"}; }
  nlohmann::json hyper_json() const override;
  LAMBOptions options;
  const std::map<std::string, double>& last_trust() const { return trust_; }

 protected:
  void update() override;

 private:
  std::map<std::string, double> trust_;
};

}  // namespace brisk::optim
