// Static data pruning: epochs [0, start) train on all data; at the start of
// epoch `start` every example gets a score and from then on only the
// round(keep·N) highest-scoring examples are visited (ties: the lower index
// is kept), in a fresh random order each epoch or, with order=curriculum,
// from easy to hard (ascending score). Scores and kept set are fixed once
// chosen and checkpointed. Scores:
//   el2n: one forward-only pass over the training set with the weights of
//     that moment (el2n.h; Paul et al. 2021 score all examples at the same
//     early-training weights). Its time counts in wall_s and score_s.
//   forgetting: forgetting events counted over the scoring epochs' forward
//     passes (Toneva et al. 2019; the statistics store, example_stats.h); an
//     example never classified correctly counts as forgotten infinitely often
//     (the paper's rule), so it ranks first. Needs start >= 2: an event needs
//     two visits.
//   grand: GraNd (grand/) fills the scores its own way.
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
  // Called once, when the kept set is chosen: fills scores_ (GraNd overrides).
  virtual void prepare_scores(train::Trainer& t);
  double score(int64_t i) const { return double(scores_[size_t(i)]); }
  // Once scored, the histogram shows the scores the kept set was chosen by
  // (forgetting's never-learned examples, scored +inf, are left out of it).
  std::pair<std::string, std::vector<float>> telemetry_scores() const override {
    if (scores_.empty()) return SelectBase::telemetry_scores();
    return {spec_.kind, scores_};
  }
  void save_tensors(TensorMap& m) const override;
  void load_tensors(const TensorMap& m) override;

 private:
  int64_t kept_count(int64_t n) const { return std::clamp<int64_t>(std::llround(spec_.keep * double(n)), 1, n); }
  std::vector<int64_t> top_scored() const;

  std::vector<int64_t> kept_;  // the kept set, ascending (fixed once chosen)

 protected:
  std::vector<float> scores_;  // per dataset index, once scored
};

}  // namespace brisk::efficiency::selection_methods
