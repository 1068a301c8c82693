// `--method swa:start=0.75,lr=...,anneal=0.1,frequency=N`: Stochastic Weight
// Averaging (Izmailov et al. 2018). From `start` (fraction of training) the
// learning rate leaves the run's schedule: it anneals (cosine) from the
// scheduled value to the SWA learning rate over `anneal` of training, then
// stays constant; the weights are averaged with equal weight every
// `frequency` steps (default: one epoch of batches), the first average
// being the weights at the first step at or past `start`:
//   w_swa <- (w_swa * n + w) / (n + 1).
// Evaluation uses the average (swapped in and back, like ema); a model with
// BatchNorm gets its running statistics recomputed for the averaged weights
// with one forward pass over the training data (the paper's "one additional
// pass"; torch.optim.swa_utils.update_bn), and that pass is training time.
// The average and its count are checkpointed; composition refuses swa next
// to ema and to shape-changing methods (the average has fixed shapes).
#include <chrono>
#include <cmath>
#include <memory>

#include "core/mask.h"
#include "efficiency/method.h"
#include "nn/layers.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class SwaMethod : public train::Callback {
 public:
  double start = 0.75, lr = -1, anneal = 0.1;
  int64_t frequency = 0;  // 0: one epoch of batches

  std::string name() const override { return "swa"; }

  void on_fit_start(train::Trainer& t) override {
    if (lr < 0) lr = 0.5 * t.config().lr;
    if (frequency == 0) frequency = std::max<int64_t>(1, t.train_loader().num_batches_full());
    total_ = double(t.full_steps());
    for (auto& [n, p] : t.model().named_parameters()) names_.push_back(n);
  }

  // SWALR: cosine from the scheduled lr at `start` to `lr` over `anneal`, then constant.
  void on_before_step(train::Trainer& t) override {
    double pos = double(t.schedule_position()), p0 = std::ceil(start * total_);
    if (pos < p0) return;
    double from = t.lr_at(int64_t(p0)), span = anneal * total_;
    double frac = span > 0 ? std::min(1.0, (pos - p0) / span) : 1.0;
    t.optimizer().set_lr(lr + (from - lr) * 0.5 * (1 + std::cos(M_PI * frac)));
  }

  void on_after_step(train::Trainer& t) override {
    int64_t pos = t.schedule_position(), p0 = int64_t(std::ceil(start * total_));
    if (pos < p0) return;
    if (count_ > 0 && pos < next_) return;
    NoGradGuard ng;
    double n = double(count_);
    for (auto& [name, p] : t.model().named_parameters()) {
      Tensor w = p.detach();
      auto it = avg_.find(name);
      if (it == avg_.end() || count_ == 0) {
        avg_[name] = w.clone();
      } else {
        Tensor a = it->second;
        a.mul_(n / (n + 1));
        a.add_(w, 1.0 / (n + 1));
      }
    }
    ++count_;
    next_ = pos + frequency;
  }

  void on_eval_start(train::Trainer& t) override {
    if (count_ == 0) return;
    swap(t);
    swapped_ = true;
    recompute_batchnorm(t);
  }
  void on_eval_end(train::Trainer& t) override {
    if (!swapped_) return;
    swap(t);
    if (!saved_buffers_.empty()) {
      NoGradGuard ng;
      for (auto& [k, v] : t.model().named_buffers()) v.copy_(saved_buffers_.at(k));  // the training statistics
      saved_buffers_.clear();
    }
    swapped_ = false;
  }

  void add_metrics(nlohmann::json& j) const override {
    j["swa_models"] = count_;
    j["swa_bn_pass_s"] = bn_seconds_;
  }
  nlohmann::json state_json() const override {
    return {{"start", start}, {"lr", lr}, {"anneal", anneal}, {"frequency", frequency}, {"count", count_},
            {"next", next_}};
  }
  void load_state_json(const nlohmann::json& j) override {
    count_ = j.value("count", int64_t(0));
    next_ = j.value("next", int64_t(0));
  }
  TensorMap state_tensors() const override { return avg_; }
  void load_state_tensors(const TensorMap& m) override {
    for (auto& [k, v] : m) {
      BRISK_CHECK(std::find(names_.begin(), names_.end(), k) != names_.end(), "swa: checkpoint has unknown parameter '",
                  k, "'");
      avg_[k] = v.clone();
    }
    BRISK_CHECK(avg_.empty() || avg_.size() == names_.size(), "swa: checkpoint holds the average of ", avg_.size(),
                " parameters, the model has ", names_.size());
  }

 private:
  void swap(train::Trainer& t) {
    NoGradGuard ng;
    for (auto& [n, p] : t.model().named_parameters()) {
      Tensor a = avg_.at(n), tmp = p.detach().clone(), pd = p.detach();
      pd.copy_(a);
      a.copy_(tmp);
      Tensor m = brisk::get_mask(p);
      if (m.defined()) pd.mul_(m);  // a sparse model is evaluated sparse
    }
  }

  // Running statistics of every BatchNorm for the averaged weights: reset,
  // then a cumulative average over one pass of the training data (momentum
  // 1/(k+1) at batch k), in train mode without a graph.
  void recompute_batchnorm(train::Trainer& t) {
    std::vector<nn::BatchNorm2d*> bns;
    for (auto& [n, m] : t.model().named_modules())
      if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m)) bns.push_back(bn);
    if (bns.empty()) return;
    auto t0 = std::chrono::steady_clock::now();
    for (auto& [k, v] : t.model().named_buffers()) saved_buffers_[k] = v.clone();
    NoGradGuard ng;
    std::vector<double> momenta;
    for (auto* bn : bns) momenta.push_back(bn->momentum);
    bool was_training = t.model().is_training();
    t.model().train();
    data::DataLoader loader(t.train_loader().dataset(), data::in_order(t.config().batch_size));
    loader.start_epoch(0);
    int64_t k = 0;
    while (auto b = loader.next()) {
      for (auto* bn : bns) bn->momentum = 1.0 / double(k + 1);
      t.model().forward(b->x);
      ++k;
    }
    for (size_t i = 0; i < bns.size(); ++i) bns[i]->momentum = momenta[i];
    t.model().train(was_training);
    bn_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.add_training_time(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  std::vector<std::string> names_;
  TensorMap avg_, saved_buffers_;
  int64_t count_ = 0, next_ = 0;
  double total_ = 1, bn_seconds_ = 0;
  bool swapped_ = false;
};

}  // namespace

void register_swa_method() {
  register_method("swa", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<SwaMethod>();
    m->start = a.get_double("start", 0.75);
    m->lr = a.get_double("lr", -1);
    m->anneal = a.get_double("anneal", 0.1);
    m->frequency = a.get_int("frequency", 0);
    BRISK_CHECK(m->start >= 0 && m->start < 1, "--method swa: start must be in [0, 1), got ", m->start);
    BRISK_CHECK(m->lr == -1 || (m->lr > 0 && m->lr < 1e3), "--method swa: lr must be > 0, got ", m->lr);
    BRISK_CHECK(m->anneal >= 0 && m->anneal <= 1 - m->start, "--method swa: anneal must be in [0, 1 - start], got ",
                m->anneal);
    BRISK_CHECK(m->frequency >= 0, "--method swa: frequency must be >= 1 step (0: one epoch), got ", m->frequency);
    return m;
  });
}

}  // namespace brisk::efficiency
