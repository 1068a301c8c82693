// N:M semi-structured sparsity (e.g. 2:4) on ASP's recipe (Mishra et al.
// 2021, NVIDIA apex.contrib.sparsity): train dense, prune once to N:M, then
// train on with the mask. The prune happens at clock start·total (default
// start=0.5: half the run dense, half sparse). In every group of M
// consecutive input channels at one output and kernel position (magnitude.h
// nm_mask) the N largest |w| stay. Layers whose input channels C are not a
// multiple of M stay dense (e.g. the cnn's first conv, C = 1): no N:M pattern
// covers them, and `sparsity` then reports the achieved fraction. A spec that
// fits no layer is refused at fit start.
#include <cstdio>

#include "efficiency/pruning/magnitude.h"
#include "efficiency/pruning/prune_base.h"

namespace brisk::efficiency::pruning_methods {

namespace {

class NmPrune : public PruneBase {
 public:
  using PruneBase::PruneBase;

  void on_fit_start(train::Trainer& t) override { check_applies(t); }

  void on_batch_start(train::Trainer& t) override {
    if (t.clock() < step_at(spec_.start, t) || events_ > 0) return;
    events_ = 1;
    for (auto& [n, p] : prunable(t))
      if (channels(p) % spec_.nm_m == 0) set(t, n, p, pruning::nm_mask(p, spec_.nm_n, spec_.nm_m));
    measure(t);
  }

 private:
  static int64_t channels(const Tensor& p) { return p.size(1); }

  // Says up front which layers the pattern covers: a spec that fits none
  // would prune nothing, and layers it skips are named.
  void check_applies(train::Trainer& t) const {
    std::string fits, skipped;
    for (auto& [n, p] : prunable(t)) {
      std::string item = n + " (C=" + std::to_string(channels(p)) + ")";
      std::string& list = channels(p) % spec_.nm_m == 0 ? fits : skipped;
      list += (list.empty() ? "" : ", ") + item;
    }
    BRISK_CHECK(!fits.empty(), "--method prune: structure ", spec_.nm_n, ":", spec_.nm_m,
                " fits no layer of this model: no layer's input channels C are a multiple of ", spec_.nm_m, " (", skipped, ")");
    if (!skipped.empty())
      std::printf("prune: %lld:%lld leaves dense the layers whose input channels C are not a multiple of %lld: %s\n",
                  (long long)spec_.nm_n, (long long)spec_.nm_m, (long long)spec_.nm_m, skipped.c_str());
  }
};

}  // namespace

std::unique_ptr<PruneBase> make_nm_prune(const PruneSpec& s) { return std::make_unique<NmPrune>(s); }

}  // namespace brisk::efficiency::pruning_methods
