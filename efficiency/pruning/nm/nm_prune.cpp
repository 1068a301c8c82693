// N:M semi-structured sparsity (e.g. 2:4, as NVIDIA's ASP applies it): at
// step start·total, in every group of M consecutive weights along a layer's
// reduction dim (in_features, or C·kh·kw) the N largest |w| stay. Layers whose
// reduction size K is not a multiple of M stay dense (e.g. the cnn's first
// conv, K = 9): no N:M pattern covers them, and `sparsity` then reports the
// achieved fraction. A spec that fits no layer is refused at fit start.
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
    int64_t step = t.state().step, t0 = step_at(spec_.start, t);
    if (step != t0 && !(step > t0 && masks_.empty())) return;
    for (auto& [n, p] : prunable(t))
      if (reduction(p) % spec_.nm_m == 0) set(n, p, pruning::nm_mask(p, spec_.nm_n, spec_.nm_m));
    measure(t);
  }

 private:
  static int64_t reduction(const Tensor& p) { return p.numel() / p.size(0); }

  // Says up front which layers the pattern covers: a spec that fits none
  // would prune nothing, and layers it skips are named.
  void check_applies(train::Trainer& t) const {
    std::string fits, skipped;
    for (auto& [n, p] : prunable(t)) {
      std::string item = n + " (K=" + std::to_string(reduction(p)) + ")";
      std::string& list = reduction(p) % spec_.nm_m == 0 ? fits : skipped;
      list += (list.empty() ? "" : ", ") + item;
    }
    BRISK_CHECK(!fits.empty(), "--method prune: structure ", spec_.nm_n, ":", spec_.nm_m,
                " fits no layer of this model: no reduction size K is a multiple of ", spec_.nm_m, " (", skipped, ")");
    if (!skipped.empty())
      std::printf("prune: %lld:%lld leaves dense the layers whose K is not a multiple of %lld: %s\n",
                  (long long)spec_.nm_n, (long long)spec_.nm_m, (long long)spec_.nm_m, skipped.c_str());
  }
};

}  // namespace

std::unique_ptr<PruneBase> make_nm_prune(const PruneSpec& s) { return std::make_unique<NmPrune>(s); }

}  // namespace brisk::efficiency::pruning_methods
