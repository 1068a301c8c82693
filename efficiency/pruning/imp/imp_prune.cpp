// Iterative magnitude pruning with rewinding (lottery ticket; Frankle &
// Carbin 2019, Frankle et al. 2020). Training splits into `rounds` equal
// rounds; at the end of each but the last, prune by magnitude to
// 1 - (1 - target)^(k / (rounds - 1)), rewind every parameter to its value at
// clock rewind·total (parameters and BatchNorm buffers; snapshot kept in the
// checkpoint), zero the optimizer state, and replay the learning-rate
// schedule within the next round.
#include <algorithm>
#include <cmath>

#include "core/mask.h"
#include "efficiency/pruning/prune_base.h"

namespace brisk::efficiency::pruning_methods {

namespace {

class ImpPrune : public PruneBase {
 public:
  using PruneBase::PruneBase;

  // Snapshot at the rewind point; at each round boundary prune, rewind and
  // reset the optimizer. Rounds are equal spans of the clock (Trainer::clock).
  void on_batch_start(train::Trainer& t) override {
    int64_t now = t.clock(), rounds = spec_.rounds;
    if (now >= step_at(spec_.rewind, t) && snapshot_.empty()) snapshot(t);
    int64_t k = std::min(now / round_length(t), rounds - 1);  // prunings due by now
    if (k <= events_) return;
    events_ = k;
    double s = 1.0 - std::pow(1.0 - spec_.target, double(k) / double(rounds - 1));
    apply_sparsity(t, s);  // masks only shrink
    NoGradGuard ng;
    for (auto& [n, p] : t.model().named_parameters()) {
      Tensor pd = p.detach();
      pd.copy_(snapshot_.at(n));
      brisk::apply_mask(p);
    }
    // BatchNorm running statistics rewind with the weights (they are part of
    // the network's state at the rewind point).
    for (auto& [n, b] : t.model().named_buffers()) {
      auto it = snapshot_.find("buffer/" + n);  // absent from checkpoints of older versions
      if (it == snapshot_.end()) continue;
      Tensor bd = b.detach();
      bd.copy_(it->second);
    }
    for (auto& [n, st] : t.optimizer().state())
      for (auto& [sk, v] : st) v.zero_();
  }

  // Each round replays the learning-rate schedule from its start: the
  // round's fraction done maps onto the whole schedule.
  void on_before_step(train::Trainer& t) override {
    int64_t L = round_length(t), now = t.clock();
    int64_t round = std::min(now / L, spec_.rounds - 1);
    double frac = std::min(1.0, double(now - round * L) / double(L));
    int64_t full = t.full_steps();
    t.optimizer().set_lr(t.lr_at(int64_t(std::llround(frac * double(full)))));
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
  int64_t round_length(train::Trainer& t) const { return std::max<int64_t>(1, t.total_steps() / spec_.rounds); }
  void snapshot(train::Trainer& t) {
    for (auto& [n, p] : t.model().named_parameters()) snapshot_[n] = p.detach().clone();
    for (auto& [n, b] : t.model().named_buffers()) snapshot_["buffer/" + n] = b.detach().clone();
  }

  TensorMap snapshot_;  // parameter name (or buffer/<name>) -> value at the rewind point
};

}  // namespace

std::unique_ptr<PruneBase> make_imp_prune(const PruneSpec& s) { return std::make_unique<ImpPrune>(s); }

}  // namespace brisk::efficiency::pruning_methods
