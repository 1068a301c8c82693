// `--method factorize:rank=0.25,at=0`: low-rank factorization of the hidden
// layers. At `at` (fraction of training; 0 = the freshly initialized model)
// every Linear and Conv2d of the model's top-level Sequential except the
// first and the last (the input layer has few inputs to compress, the
// classifier few outputs) is replaced by its best rank-r approximation as
// two layers (surgery/factorize.h), with r = max(1, round(rank * min(m, n)))
// for a weight W [m, n] (n = C kh kw for a convolution); layers where the
// factors would not save work (r (m + n) >= m n) are left as they are.
// The factors join the optimizer with fresh state; the factorized layers and
// their ranks are checkpointed and the surgery replayed on resume.
#include <cmath>
#include <memory>

#include "efficiency/method.h"
#include "surgery/factorize.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class FactorizeMethod : public train::Callback {
 public:
  double rank = 0.25, at = 0.0;

  std::string name() const override { return "factorize"; }
  bool changes_shapes() const override { return true; }

  void on_fit_start(train::Trainer& t) override {
    auto* seq = dynamic_cast<nn::Sequential*>(&t.model());
    BRISK_CHECK(seq != nullptr, "--method factorize: model ", t.config().model, " is not a Sequential of layers");
    // Refuse a run where the method would do nothing (a resumed run that
    // already factorized has nothing left to check).
    BRISK_CHECK(done_ || !targets(*seq).empty(), "--method factorize: model ", t.config().model,
                " has no hidden Linear or Conv2d (groups 1) at its top level, between the first and the last, "
                "whose rank-", rank, " factors would save work");
  }
  void on_batch_start(train::Trainer& t) override {
    if (done_ || t.progress() < at) return;
    done_ = true;
    auto& seq = dynamic_cast<nn::Sequential&>(t.model());
    for (auto& [i, r] : targets(seq)) {  // back to front: earlier indices stay valid as layers split
      nn::factorize(seq, size_t(i), r, &t.optimizer());
      plan_.push_back({i, r});
    }
  }
  void on_restore(train::Trainer& t) override {
    if (!done_) return;
    auto& seq = dynamic_cast<nn::Sequential&>(t.model());
    for (auto& [i, r] : plan_) nn::factorize(seq, size_t(i), r, &t.optimizer());
  }
  void add_metrics(nlohmann::json& j) const override { j["factorized_layers"] = int64_t(plan_.size()); }
  nlohmann::json state_json() const override {
    nlohmann::json p = nlohmann::json::array();
    for (auto& [i, r] : plan_) p.push_back({{"layer", i}, {"rank", r}});
    return {{"rank", rank}, {"at", at}, {"done", done_}, {"factorized", p}};
  }
  void load_state_json(const nlohmann::json& j) override {
    done_ = j.value("done", false);
    plan_.clear();
    if (j.contains("factorized"))
      for (auto& e : j.at("factorized")) plan_.push_back({e.at("layer").get<int64_t>(), e.at("rank").get<int64_t>()});
  }

 private:
  // (layer index, rank) of each layer to factorize, last first.
  std::vector<std::pair<int64_t, int64_t>> targets(nn::Sequential& seq) const {
    std::vector<size_t> layers;
    for (size_t i = 0; i < seq.size(); ++i) {
      auto* c = dynamic_cast<nn::Conv2d*>(seq[i].get());
      if (dynamic_cast<nn::Linear*>(seq[i].get()) || (c && c->groups == 1)) layers.push_back(i);
    }
    std::vector<std::pair<int64_t, int64_t>> out;
    for (size_t k = layers.size(); k-- > 0;) {
      if (k == 0 || k + 1 == layers.size()) continue;  // the first and the last stay whole
      auto [m, n] = shape(seq, layers[k]);
      int64_t r = std::max<int64_t>(1, std::llround(rank * double(std::min(m, n))));
      if (r * (m + n) < m * n) out.push_back({int64_t(layers[k]), r});
    }
    return out;
  }
  static std::pair<int64_t, int64_t> shape(nn::Sequential& seq, size_t i) {
    if (auto* l = dynamic_cast<nn::Linear*>(seq[i].get())) return {l->out_features, l->in_features};
    auto* c = dynamic_cast<nn::Conv2d*>(seq[i].get());
    return {c->out_channels, c->in_channels / c->groups * c->kernel.h * c->kernel.w};
  }
  bool done_ = false;
  std::vector<std::pair<int64_t, int64_t>> plan_;  // (layer index at the time, rank), in the order applied
};

}  // namespace

void register_factorization_method() {
  register_method("factorize", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<FactorizeMethod>();
    m->rank = a.get_double("rank", 0.25);
    m->at = a.get_double("at", 0.0);
    BRISK_CHECK(m->rank > 0 && m->rank < 1, "--method factorize: rank must be in (0, 1) (a fraction of each "
                "layer's full rank), got ", m->rank);
    BRISK_CHECK(m->at >= 0 && m->at < 1, "--method factorize: at must be in [0, 1), got ", m->at);
    return m;
  });
}

}  // namespace brisk::efficiency
