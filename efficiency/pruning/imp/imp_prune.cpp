// Iterative magnitude pruning with rewinding (lottery ticket; Frankle &
// Carbin 2019, Frankle et al. 2020). Training splits into `rounds` equal
// rounds; at the end of each but the last, prune by magnitude to
// 1 - (1 - target)^(k / (rounds - 1)), rewind every parameter to its value at
// step rewind·total (snapshot kept in the checkpoint), zero the optimizer
// state, and replay the learning-rate schedule within the next round.
#include <algorithm>
#include <cmath>

#include "core/mask.h"
#include "efficiency/pruning/prune_base.h"

namespace brisk::efficiency::pruning_methods {

namespace {

class ImpPrune : public PruneBase {
 public:
  using PruneBase::PruneBase;

  // Snapshot at the rewind step; at each round boundary prune, rewind and
  // reset the optimizer.
  void on_batch_start(train::Trainer& t) override {
    int64_t step = t.state().step, rounds = spec_.rounds;
    int64_t L = std::max<int64_t>(1, t.total_steps() / rounds);
    if (step == step_at(spec_.rewind, t) && snapshot_.empty())
      for (auto& [n, p] : t.model().named_parameters()) snapshot_[n] = p.detach().clone();
    if (step == 0 || step % L != 0 || step / L >= rounds) return;
    int64_t k = step / L;  // prunings so far, after this one
    double s = 1.0 - std::pow(1.0 - spec_.target, double(k) / double(rounds - 1));
    apply_sparsity(t, s);  // masks only shrink
    NoGradGuard ng;
    for (auto& [n, p] : t.model().named_parameters()) {
      Tensor pd = p.detach();
      pd.copy_(snapshot_.at(n));
      brisk::apply_mask(p);
    }
    for (auto& [n, st] : t.optimizer().state())
      for (auto& [sk, v] : st) v.zero_();
  }

  // Each round replays the learning-rate schedule from its start.
  void on_before_step(train::Trainer& t) override {
    int64_t L = std::max<int64_t>(1, t.total_steps() / spec_.rounds), step = t.state().step;
    int64_t round = std::min(step / L, spec_.rounds - 1);
    t.optimizer().set_lr(t.lr_at((step - round * L) * spec_.rounds));  // round's position on the full schedule
  }

  TensorMap state_tensors() const override {
    TensorMap m = masks_;
    for (auto& [n, v] : snapshot_) m["imp/" + n] = v;
    return m;
  }

 protected:
  void load_extra_tensor(const std::string& key, const Tensor& v) override {
    if (key.rfind("imp/", 0) != 0) PruneBase::load_extra_tensor(key, v);
    snapshot_[key.substr(4)] = v.clone();
  }

 private:
  TensorMap snapshot_;  // parameter name -> value at the rewind step
};

}  // namespace

std::unique_ptr<PruneBase> make_imp_prune(const PruneSpec& s) { return std::make_unique<ImpPrune>(s); }

}  // namespace brisk::efficiency::pruning_methods
