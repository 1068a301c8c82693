// `--method batch-warmup:start=0.25,until=0.2,lr=linear`: batch-size warmup.
// Training starts with batches of `start` x --batch-size and grows them
// linearly to the full size at `until` (fraction of training), as GPT-3's
// batch-size ramp and Smith et al.'s "increase the batch size instead of
// decaying the learning rate" do. Early in training the gradient noise scale
// is small (McCandlish et al.), so small batches cost few extra examples per
// unit of progress and give more optimizer steps per epoch.
//
// Mechanism (train/callback.h, batch_splits): the loader keeps loading
// batches of B = --batch-size; at progress p < until a loaded batch trains as
// k = round(B / b(p)) optimizer steps on consecutive parts of about B / k
// examples, b(p) = B (start + (1 - start) p / until). The data order, the
// epoch and every method's clock (loaded batches) are those of a plain run;
// only the optimizer steps and their sizes change. The learning rate of a
// step on b examples is the schedule's times b / B (`lr=linear`, Goyal et
// al.'s linear scaling rule), times sqrt(b / B) (`lr=sqrt`), or unchanged
// (`lr=none`). The ramp is a function of progress: nothing to checkpoint.
#include <cmath>
#include <memory>

#include "efficiency/method.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class BatchWarmupMethod : public train::Callback {
 public:
  double start = 0.25, until = 0.2;
  std::string lr_rule = "linear";

  std::string name() const override { return "batch-warmup"; }

  int64_t batch_splits(const train::Trainer& t) const override {
    double p = t.progress();
    if (p >= until) return 1;
    double frac = start + (1 - start) * p / until;  // of --batch-size
    return std::max<int64_t>(1, std::llround(1.0 / frac));
  }
  void on_before_step(train::Trainer& t) override {
    double ratio = double(t.batch.y.size(0)) / double(t.config().batch_size);
    last_batch_ = t.batch.y.size(0);
    if (t.batch_part == 0) extra_steps_ += t.batch_parts - 1;
    if (ratio >= 1) return;  // full batches (and the larger batches of nothing here)
    if (lr_rule == "linear") t.optimizer().set_lr(t.optimizer().lr() * ratio);
    if (lr_rule == "sqrt") t.optimizer().set_lr(t.optimizer().lr() * std::sqrt(ratio));
  }
  void add_metrics(nlohmann::json& j) const override {
    j["batch_size"] = last_batch_;
    j["warmup_extra_steps"] = extra_steps_;
  }
  nlohmann::json state_json() const override { return {{"extra_steps", extra_steps_}, {"last_batch", last_batch_}}; }
  void load_state_json(const nlohmann::json& j) override {
    extra_steps_ = j.value("extra_steps", int64_t(0));
    last_batch_ = j.value("last_batch", int64_t(0));
  }

 private:
  int64_t last_batch_ = 0;   // examples in the last step (metrics.jsonl)
  int64_t extra_steps_ = 0;  // optimizer steps beyond one per loaded batch, so far
};

}  // namespace

void register_batch_scaling_methods() {
  register_method("batch-warmup", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<BatchWarmupMethod>();
    m->start = a.get_double("start", 0.25);
    m->until = a.get_double("until", 0.2);
    m->lr_rule = a.get_string("lr", "linear");
    BRISK_CHECK(m->start > 0 && m->start <= 1, "--method batch-warmup: start must be in (0, 1] (the first "
                "batches' share of --batch-size), got ", m->start);
    BRISK_CHECK(m->until > 0 && m->until <= 1, "--method batch-warmup: until must be in (0, 1] (the fraction "
                "of training where batches reach full size), got ", m->until);
    BRISK_CHECK(m->lr_rule == "linear" || m->lr_rule == "sqrt" || m->lr_rule == "none",
                "--method batch-warmup: lr must be linear, sqrt or none, got '", m->lr_rule, "'");
    return m;
  });
}

}  // namespace brisk::efficiency
