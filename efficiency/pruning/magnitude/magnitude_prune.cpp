// Magnitude pruning, once (schedule=oneshot, at clock start·total;
// train/trainer.h: Trainer::clock) or on the
// gradual cubic schedule of Zhu & Gupta (2017) (schedule=gradual: every
// `frequency` steps from start to end, s_t = s_f + (s_i - s_f)(1 - progress)^3),
// layer-wise or with one global ranking (scope=global). Masks only shrink.
#include <algorithm>
#include <cmath>

#include "efficiency/pruning/magnitude.h"
#include "efficiency/pruning/prune_base.h"

namespace brisk::efficiency::pruning_methods {

namespace {

class MagnitudePrune : public PruneBase {
 public:
  using PruneBase::PruneBase;

  void on_batch_start(train::Trainer& t) override {
    int64_t now = t.clock(), t0 = step_at(spec_.start, t);
    if (spec_.schedule == "oneshot") {
      if (now >= t0 && events_ == 0) {
        apply_sparsity(t, spec_.target);
        events_ = 1;
      }
      return;
    }
    // gradual: updates at grid points t0, t0 + dt, ..., t0 + n dt (update k
    // reaches gradual_sparsity at t0 + k dt; the last one the target)
    int64_t dt = spec_.frequency;
    int64_t t_end = std::max(t0, step_at(spec_.end, t));
    int64_t n = std::max<int64_t>(1, (t_end - t0) / dt);
    int64_t reached = std::min(grid_points(now, t0, dt), n + 1);
    if (reached <= events_) return;
    events_ = reached;
    apply_sparsity(t, pruning::gradual_sparsity(t0 + (reached - 1) * dt, spec_.initial, spec_.target, t0, n, dt));
  }
};

}  // namespace

std::unique_ptr<PruneBase> make_magnitude_prune(const PruneSpec& s) { return std::make_unique<MagnitudePrune>(s); }

}  // namespace brisk::efficiency::pruning_methods
