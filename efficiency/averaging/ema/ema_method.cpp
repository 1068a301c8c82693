// `--method ema:decay=0.999,start=0`: evaluate with an exponential moving
// average of the weights (Polyak averaging), a cheap accuracy-per-step
// gain. start: first step that updates the average (before it the average
// tracks the weights exactly). The average is swapped in for every
// evaluation and swapped back after; it is checkpointed. It follows pruning
// masks (zero where the mask is zero); composition refuses it next to a
// method that changes parameter shapes (efficiency/compose.h).
#include <memory>

#include "core/mask.h"
#include "efficiency/method.h"
#include "optim/optimizer.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class EmaMethod : public train::Callback {
 public:
  EmaMethod(double decay, int64_t start) : decay_(decay), start_(start) {
    BRISK_CHECK(decay >= 0 && decay < 1, "--method ema: decay must be in [0, 1), got ", decay);
    BRISK_CHECK(start >= 0, "--method ema: start must be >= 0, got ", start);
  }
  std::string name() const override { return "ema"; }

  void on_fit_start(train::Trainer& t) override {
    if (!ema_) ema_ = std::make_unique<optim::EMA>(t.model().named_parameters(), decay_);
  }
  void on_after_step(train::Trainer& t) override {
    if (t.state().step < start_) {  // before start: track the weights exactly
      optim::EMA fresh(t.model().named_parameters(), decay_);
      ema_->shadow() = fresh.shadow();
      return;
    }
    ema_->update(t.model().named_parameters());
    follow_masks(t);
  }
  // Evaluate with the averaged weights: swap in at eval_start, back at eval_end.
  void on_eval_start(train::Trainer& t) override { swap(t); }
  void on_eval_end(train::Trainer& t) override { swap(t); }
  void add_metrics(nlohmann::json& j) const override { j["ema_decay"] = decay_; }
  nlohmann::json state_json() const override { return {{"decay", decay_}, {"start", start_}}; }
  TensorMap state_tensors() const override { return ema_ ? ema_->shadow() : TensorMap{}; }
  void load_state_tensors(const TensorMap& m) override {
    if (m.empty()) return;
    BRISK_CHECK(ema_ != nullptr, "ema: state loaded before fit_start");
    for (auto& [k, v] : m) {
      BRISK_CHECK(ema_->shadow().count(k), "ema: checkpoint has unknown parameter '", k, "'");
      ema_->shadow()[k] = v.clone();
    }
  }

 private:
  // A pruned parameter's average is zero where its mask is: evaluation of a
  // sparse model must not see dense averaged weights (and a regrown weight,
  // RigL, starts its average at zero as the weight itself does).
  void follow_masks(train::Trainer& t) {
    NoGradGuard ng;
    for (auto& [n, p] : t.model().named_parameters()) {
      Tensor m = brisk::get_mask(p);
      if (m.defined()) ema_->shadow().at(n).mul_(m);
    }
  }
  void swap(train::Trainer& t) {
    follow_masks(t);  // masks may have changed since the last update
    NoGradGuard ng;
    for (auto& [n, p] : t.model().named_parameters()) {
      Tensor s = ema_->shadow().at(n), tmp = p.detach().clone(), pd = p.detach();
      pd.copy_(s);
      s.copy_(tmp);
    }
  }
  double decay_;
  int64_t start_;
  std::unique_ptr<optim::EMA> ema_;
};

}  // namespace

void register_swa_method();  // efficiency/averaging/swa/swa_method.cpp

void register_averaging_methods() {
  register_swa_method();
  register_method("ema", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    double decay = a.get_double("decay", 0.999);
    int64_t start = a.get_int("start", 0);
    return std::make_unique<EmaMethod>(decay, start);
  });
}

}  // namespace brisk::efficiency
