// GraNd static data pruning: the static member (static_pruning/) with the
// score of grand.h, computed once at the start of epoch `start` with the
// weights trained so far (its time counts in wall_s and score_s); grand=last
// scores the classifier exactly from one forward pass, grand=full every
// parameter by per-example backward passes.
#include <chrono>

#include "efficiency/selection/grand/grand.h"
#include "efficiency/selection/static_pruning/static_select.h"

namespace brisk::efficiency::selection_methods {

namespace {

class GrandSelect : public StaticSelect {
 public:
  using StaticSelect::StaticSelect;

 protected:
  void prepare_scores(train::Trainer& t) override {
    auto t0 = std::chrono::steady_clock::now();
    auto* seq = dynamic_cast<nn::Sequential*>(&t.model());
    BRISK_CHECK(seq != nullptr, "--method select:kind=grand needs a Sequential model");
    scores_ = selection::grand_scores(*seq, t.train_loader().dataset(), spec_.grand_scope, 2 * t.config().batch_size);
    scoring_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

}  // namespace

std::unique_ptr<SelectBase> make_grand_select(const SelectSpec& s) { return std::make_unique<GrandSelect>(s); }

}  // namespace brisk::efficiency::selection_methods
