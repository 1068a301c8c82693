// A new efficiency method written outside the library, as a Callback: loss-
// threshold selection. Each loaded batch is scored by a forward pass (the
// trainer makes it, without a graph); only the examples whose loss is at least
// `factor` times the batch's mean loss are backpropagated. The trainer buffers
// the selected examples and trains them in full-size batches, so every
// optimizer step still sees --batch-size examples.
//
// This is the skeleton of selective backprop (Jiang et al., 2019) with the
// simplest possible rule; brisk's own `--method select:kind=selective-backprop`
// uses a loss-percentile history instead.
#pragma once
#include <brisk.h>

namespace example {

class LossThreshold : public brisk::train::Callback, public brisk::train::BatchSelector {
 public:
  explicit LossThreshold(double factor) : factor_(factor) {
    BRISK_CHECK(factor >= 0, "loss-threshold: factor must be >= 0, got ", factor);
  }
  std::string name() const override { return "loss-threshold"; }
  brisk::train::BatchSelector* batch_selector() override { return this; }

  // losses [B] from the scoring pass; returns bool [B].
  brisk::Tensor select(brisk::train::Trainer&, const brisk::Tensor& /*indices*/, const brisk::Tensor& /*labels*/,
                       const brisk::Tensor& losses, const brisk::Tensor& /*logits*/) override {
    return decide(losses);
  }
  // The rule itself (losses [B] -> bool [B]), counted.
  brisk::Tensor decide(const brisk::Tensor& losses) {
    brisk::Tensor keep = brisk::ge(losses, brisk::mean(losses) * factor_);
    seen_ += losses.numel();
    kept_ += int64_t(brisk::sum(keep.to(brisk::DType::f32)).item());
    return keep;
  }

  // metrics.jsonl gains the fraction kept so far.
  void add_metrics(nlohmann::json& j) const override {
    j["kept_frac"] = seen_ ? double(kept_) / double(seen_) : 0.0;
  }
  // Counters survive a checkpoint and --resume.
  nlohmann::json state_json() const override { return {{"seen", seen_}, {"kept", kept_}}; }
  void load_state_json(const nlohmann::json& j) override {
    seen_ = j.value("seen", int64_t(0));
    kept_ = j.value("kept", int64_t(0));
  }

  int64_t seen() const { return seen_; }
  int64_t kept() const { return kept_; }

 private:
  double factor_;
  int64_t seen_ = 0, kept_ = 0;
};

}  // namespace example
