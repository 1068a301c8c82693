// `--method stochastic-depth:p_last=0.5,rule=linear`: Huang et al. 2016.
// Every training batch, residual block l of L keeps its residual branch with
// probability p_l (linear decay from 1 at the input to p_last at the last
// block) and otherwise passes only its shortcut, relu(shortcut(x)), for that
// batch: the branch's convolutions, their backward pass and its BatchNorm
// statistics are skipped. At evaluation every branch is scaled by its p_l
// (the expected network). Draws depend on (seed, clock, block), so a
// resumed run drops the same blocks (nothing to checkpoint). The blocks are
// re-enumerated every batch, so growth by stacking gets its new blocks
// their own probabilities.
#include "efficiency/stochastic_depth/stochastic_depth.h"

#include <memory>

#include "core/rng.h"
#include "efficiency/method.h"
#include "nn/layers.h"
#include "train/trainer.h"

namespace brisk::efficiency {

double survival_probability(int64_t l, int64_t L, double p_last, bool uniform) {
  if (uniform) return p_last;
  return 1.0 - double(l) / double(L) * (1.0 - p_last);
}

bool keep_block(uint64_t seed, int64_t clock, int64_t l, double p) {
  Generator g(seed * 0x9E3779B97F4A7C15ull + 0x5d);
  uint32_t word = g.block(uint64_t(clock) * 1024 + uint64_t(l))[0];
  return (double(word) + 0.5) / 4294967296.0 < p;
}

namespace {

class StochasticDepthMethod : public train::Callback {
 public:
  double p_last = 0.5;
  bool uniform = false;

  std::string name() const override { return "stochastic-depth"; }

  void on_fit_start(train::Trainer& t) override {
    BRISK_CHECK(!blocks(t).empty(), "--method stochastic-depth: model ", t.config().model,
                " has no residual blocks to drop (use a resnet)");
  }
  void on_batch_start(train::Trainer& t) override {
    auto bs = blocks(t);
    int64_t L = int64_t(bs.size());
    for (int64_t l = 1; l <= L; ++l) {
      auto* b = bs[size_t(l - 1)];
      b->survival = survival_probability(l, L, p_last, uniform);
      b->skip_branch = !keep_block(t.config().seed, t.clock(), l, b->survival);
      dropped_ += b->skip_branch;
    }
    seen_ += L;
  }
  void on_batch_end(train::Trainer& t) override {
    for (auto* b : blocks(t)) b->skip_branch = false;  // scoring passes and evaluation see every block
  }
  void on_restore(train::Trainer& t) override {
    auto bs = blocks(t);
    for (size_t l = 0; l < bs.size(); ++l)
      bs[l]->survival = survival_probability(int64_t(l) + 1, int64_t(bs.size()), p_last, uniform);
  }
  void on_eval_start(train::Trainer& t) override { on_restore(t); }
  void add_metrics(nlohmann::json& j) const override {
    j["dropped_block_fraction"] = seen_ ? double(dropped_) / double(seen_) : 0.0;
  }
  nlohmann::json state_json() const override {
    return {{"p_last", p_last}, {"rule", uniform ? "uniform" : "linear"}, {"dropped", dropped_}, {"seen", seen_}};
  }
  void load_state_json(const nlohmann::json& j) override {
    dropped_ = j.value("dropped", int64_t(0));
    seen_ = j.value("seen", int64_t(0));
  }

 private:
  static std::vector<nn::ResidualBlock*> blocks(train::Trainer& t) {
    std::vector<nn::ResidualBlock*> out;
    for (auto& [n, m] : t.model().named_modules())
      if (auto* b = dynamic_cast<nn::ResidualBlock*>(m)) out.push_back(b);
    return out;
  }
  int64_t dropped_ = 0, seen_ = 0;
};

}  // namespace

void register_stochastic_depth_method() {
  register_method("stochastic-depth", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<StochasticDepthMethod>();
    m->p_last = a.get_double("p_last", 0.5);
    std::string rule = a.get_string("rule", "linear");
    BRISK_CHECK(m->p_last > 0 && m->p_last <= 1, "--method stochastic-depth: p_last must be in (0, 1], got ",
                m->p_last);
    BRISK_CHECK(rule == "linear" || rule == "uniform", "--method stochastic-depth: unknown rule '", rule,
                "' (known: linear, uniform)");
    m->uniform = rule == "uniform";
    return m;
  });
}

}  // namespace brisk::efficiency
