// Static data pruning: epochs [0, start) train on all data while the
// examples are scored; from epoch `start` on only the round(keep·N)
// highest-scoring examples are visited (ties: the lower index is kept), in a
// fresh random order each epoch or, with order=curriculum, from easy to hard
// (ascending score). The kept set is fixed once chosen and checkpointed.
// Scores: EL2N (Paul et al. 2021; the error-vector norm averaged over the
// scoring epochs' forward passes) or forgetting events (Toneva et al. 2019),
// both from the statistics store; GraNd (grand/) overrides the score.
#pragma once
#include <algorithm>
#include <cmath>

#include "efficiency/selection/select_base.h"

namespace brisk::efficiency::selection_methods {

class StaticSelect : public SelectBase {
 public:
  using SelectBase::SelectBase;

  int64_t epoch_examples(int64_t e, int64_t n, int64_t) const override { return e >= spec_.start ? kept_count(n) : n; }
  void on_epoch_start(train::Trainer& t) override;

 protected:
  // Called once, when the kept set is chosen (GraNd scores here).
  virtual void prepare_scores(train::Trainer&) {}
  virtual double score(int64_t i) const;
  void save_tensors(TensorMap& m) const override;
  void load_tensors(const TensorMap& m) override;

 private:
  int64_t kept_count(int64_t n) const { return std::clamp<int64_t>(std::llround(spec_.keep * double(n)), 1, n); }
  std::vector<int64_t> top_scored() const;

  std::vector<int64_t> kept_;  // the kept set, ascending (fixed once chosen)
};

}  // namespace brisk::efficiency::selection_methods
