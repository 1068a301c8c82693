// Structured (channel) pruning: at clock start·total (default 0.3), remove
// whole output units (conv channels, linear neurons) of every channel group
// (nn/channel_groups.h: each hidden layer, with channels coupled by residual
// additions as one group), `target` of them per group, scored by score=l1
// (row L1 norm summed over the group's writers) or bn (|gamma| summed over its
// BatchNorms; Network Slimming, Liu et al. 2017). The tensors shrink
// (surgery/surgery.h remove_group_units), so the speedup is real dense
// compute; the kept units are checkpointed and the surgery replayed on resume.
#include <algorithm>
#include <cmath>
#include <map>

#include "efficiency/pruning/prune_base.h"
#include "surgery/surgery.h"

namespace brisk::efficiency::pruning_methods {

namespace {

class ChannelPrune : public PruneBase {
 public:
  using PruneBase::PruneBase;

  bool changes_shapes() const override { return true; }

  void on_batch_start(train::Trainer& t) override {
    if (t.clock() >= step_at(spec_.start, t) && keep_.empty()) prune(t);
  }

  void on_restore(train::Trainer& t) override {
    PruneBase::on_restore(t);
    if (keep_.empty()) return;
    nn::Sequential& seq = sequential(t);
    original_params_ = t.model().num_parameters();
    for (auto& g : nn::channel_groups(seq)) {
      auto it = keep_.find(g.name);
      if (it != keep_.end()) nn::remove_group_units(g, it->second, &t.optimizer());
    }
  }

  nlohmann::json state_json() const override {
    return {{"structure", "channel"}, {"target", spec_.target}, {"score", spec_.score}, {"channel_keep", keep_}};
  }
  void load_state_json(const nlohmann::json& j) override {
    if (j.contains("channel_keep"))
      for (auto& [k, v] : j.at("channel_keep").items()) keep_[k] = v.get<std::vector<int64_t>>();
  }

 protected:
  // Removed weights count as pruned, against the original size.
  void measure(train::Trainer& t) override {
    int64_t now = t.model().num_parameters();
    if (original_params_ == 0) original_params_ = now;
    last_sparsity_ = 1.0 - double(now) / double(original_params_);
    last_nonzeros_ = now;
  }

 private:
  nn::Sequential& sequential(train::Trainer& t) {
    auto* seq = dynamic_cast<nn::Sequential*>(&t.model());
    BRISK_CHECK(seq != nullptr, "--method prune: structure=channel needs a Sequential model");
    return *seq;
  }

  void prune(train::Trainer& t) {
    nn::Sequential& seq = sequential(t);
    if (original_params_ == 0) original_params_ = t.model().num_parameters();
    int64_t before = t.model().num_parameters();
    nlohmann::json groups = nlohmann::json::array();
    size_t G = nn::channel_groups(seq).size();
    for (size_t gi = 0; gi < G; ++gi) {
      nn::ChannelGroup g = nn::channel_groups(seq)[gi];
      int64_t n = g.width();
      // score per unit, summed over the group's writers (l1: weight rows; bn: |gamma| of its BatchNorms)
      std::vector<double> sc(static_cast<size_t>(n), 0.0);
      bool by_bn = spec_.score == "bn" && !g.norms.empty();
      for (auto& site : by_bn ? g.norms : g.producers) {
        Tensor w = site.layer->parameter("weight").detach();
        auto v = by_bn ? abs(w).to_vector() : sum(abs(w).reshape({n, -1}), {1}).to_vector();
        for (int64_t u = 0; u < n; ++u) sc[size_t(u)] += v[size_t(u)];
      }
      std::vector<int64_t> order(static_cast<size_t>(n));
      for (int64_t u = 0; u < n; ++u) order[size_t(u)] = u;
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sc[size_t(a)] > sc[size_t(b)]; });
      int64_t k = std::max<int64_t>(1, n - std::llround(spec_.target * double(n)));
      std::vector<int64_t> keep(order.begin(), order.begin() + k);
      std::sort(keep.begin(), keep.end());
      nn::remove_group_units(g, keep, &t.optimizer());
      groups.push_back({{"name", g.name}, {"width_before", n}, {"width_after", k}});
      keep_[g.name] = keep;
    }
    measure(t);
    t.record("prune", {{"method", "channel"},
                       {"sparsity", last_sparsity_},
                       {"params_before", before},
                       {"params_after", t.model().num_parameters()},
                       {"groups", groups}});
  }

  std::map<std::string, std::vector<int64_t>> keep_;  // channel group -> kept units
  int64_t original_params_ = 0;
};

}  // namespace

std::unique_ptr<PruneBase> make_channel_prune(const PruneSpec& s) { return std::make_unique<ChannelPrune>(s); }

}  // namespace brisk::efficiency::pruning_methods
