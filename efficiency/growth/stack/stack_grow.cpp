// Progressive stacking (Gong et al. 2019): depth instead of width. Each run of
// identity residual blocks starts at max(1, round(start·L)) of its L blocks
// and is stacked on itself (copies of its blocks on top) at each growth
// point, capped at L. Needs runs to grow: --model resnet-deep. On a GPT the
// run is the stack of transformer blocks (--n-layer L): block L'+i starts as
// a copy of block i, as in the paper's BERT.
#include "efficiency/growth/gpt_surgery.h"
#include "efficiency/growth/grow_base.h"
#include "surgery/surgery.h"

namespace brisk::efficiency::growth_methods {

namespace {

class StackGrow : public GrowBase {
 public:
  using GrowBase::GrowBase;

 protected:
  bool supports_language_models() const override { return true; }
  std::vector<int64_t> full_sizes(train::Trainer& t) const override {
    if (auto* g = as_gpt(t.model())) {
      BRISK_CHECK(g->blocks.size() >= 2, "--method grow:kind=stack needs at least 2 transformer blocks to grow "
                  "into (--n-layer), this model has ", g->blocks.size());
      return {int64_t(g->blocks.size())};
    }
    std::vector<int64_t> runs = nn::identity_run_lengths(sequential(t));
    BRISK_CHECK(!runs.empty(), "--method grow:kind=stack needs identity residual blocks to stack (e.g. --model "
                               "resnet-deep); this model has none");
    return runs;
  }
  void shrink(train::Trainer& t) override {
    if (auto* g = as_gpt(t.model())) {
      gpt_truncate(*g, size_at(0, spec_.start), &t.optimizer());
      finish_cut(t);
      return;
    }
    std::vector<int64_t> keep;
    for (size_t r = 0; r < full_.size(); ++r) keep.push_back(size_at(r, spec_.start));
    nn::truncate_identity_runs(sequential(t), keep, &t.optimizer());
    finish_cut(t);
  }
  void grow(train::Trainer& t, int64_t, double) override {
    if (auto* g = as_gpt(t.model())) {
      gpt_stack(*g, full_[0], &t.optimizer());
      return;
    }
    nn::stack_blocks(sequential(t), &t.optimizer(), "", full_);
  }
};

}  // namespace

std::unique_ptr<GrowBase> make_stack_grow(const GrowSpec& s) { return std::make_unique<StackGrow>(s); }

}  // namespace brisk::efficiency::growth_methods
