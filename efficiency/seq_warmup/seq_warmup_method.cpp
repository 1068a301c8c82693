// `--method seq-warmup:start=16,until=0.3,multiple=8`: sequence-length
// warmup for language models (Li, Zhang & He 2022, "The Stability-Efficiency
// Dilemma: Investigating Sequence Length Warmup for Training GPT Models").
// Early steps train on the first L(p) tokens of each loaded window, L growing
// linearly from `start` tokens to the full block at `until` (fraction of
// training), rounded down to a multiple of `multiple`; the rest of each
// window is dropped that step (the paper's truncation). Short sequences cost
// less per step (the MLP and projections linearly, attention quadratically)
// and, per the paper, let early training take larger learning rates stably.
//
// The loaded windows, their order and every method's clock are those of a
// plain run; only the targets trained per step shrink. L is a function of
// progress: nothing to checkpoint beyond the token count it reports.
#include <algorithm>
#include <cmath>
#include <memory>

#include "efficiency/method.h"
#include "models/models.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class SeqWarmupMethod : public train::Callback {
 public:
  int64_t start = 16, multiple = 8;
  double until = 0.3;

  std::string name() const override { return "seq-warmup"; }
  bool supports_language_models() const override { return true; }

  // Tokens per sequence at progress p for a block of T.
  int64_t length_at(double p, int64_t T) const {
    if (p >= until) return T;
    double l = double(start) + double(T - start) * p / until;
    int64_t r = int64_t(std::floor(l / double(multiple))) * multiple;
    return std::clamp<int64_t>(r, std::min(start, T), T);
  }

  void on_fit_start(train::Trainer& t) override {
    BRISK_CHECK(models::is_gpt(t.config().model), "--method seq-warmup: sequence-length warmup is for language "
                "models (gpt-*), not ", t.config().model);
  }
  void on_batch_start(train::Trainer& t) override {
    int64_t T = t.batch.x.size(1), L = length_at(t.progress(), T);
    last_len_ = L;
    if (L >= T) return;
    t.batch.x = t.batch.x.narrow(1, 0, L).contiguous();
    t.batch.y = t.batch.y.narrow(1, 0, L).contiguous();
  }
  void add_metrics(nlohmann::json& j) const override { j["seq_len"] = last_len_; }
  nlohmann::json state_json() const override { return {{"last_len", last_len_}}; }
  void load_state_json(const nlohmann::json& j) override { last_len_ = j.value("last_len", int64_t(0)); }

 private:
  int64_t last_len_ = 0;  // tokens per sequence in the last step (metrics.jsonl)
};

}  // namespace

void register_seq_warmup_methods() {
  register_method("seq-warmup", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<SeqWarmupMethod>();
    m->start = a.get_int("start", 16);
    m->until = a.get_double("until", 0.3);
    m->multiple = a.get_int("multiple", 8);
    BRISK_CHECK(m->start >= 1 && m->start <= 65536, "--method seq-warmup: start must be in [1, 65536] tokens, got ",
                m->start);
    BRISK_CHECK(m->until > 0 && m->until <= 1, "--method seq-warmup: until must be in (0, 1] (the fraction of "
                "training where sequences reach the full block), got ", m->until);
    BRISK_CHECK(m->multiple >= 1 && m->multiple <= 4096, "--method seq-warmup: multiple must be in [1, 4096], got ",
                m->multiple);
    return m;
  });
}

}  // namespace brisk::efficiency
