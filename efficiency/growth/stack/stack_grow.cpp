// Progressive stacking (Gong et al. 2019): depth instead of width. Each run of
// identity residual blocks starts at max(1, round(start·L)) of its L blocks
// and is stacked on itself (copies of its blocks on top) at each growth
// point, capped at L. Needs runs to grow: --model resnet-deep.
#include "efficiency/growth/grow_base.h"
#include "surgery/surgery.h"

namespace brisk::efficiency::growth_methods {

namespace {

class StackGrow : public GrowBase {
 public:
  using GrowBase::GrowBase;

 protected:
  std::vector<int64_t> full_sizes(nn::Sequential& seq) const override {
    std::vector<int64_t> runs = nn::identity_run_lengths(seq);
    BRISK_CHECK(!runs.empty(), "--method grow:kind=stack needs identity residual blocks to stack (e.g. --model "
                               "resnet-deep); this model has none");
    return runs;
  }
  void shrink(train::Trainer& t) override {
    std::vector<int64_t> keep;
    for (size_t r = 0; r < full_.size(); ++r) keep.push_back(size_at(r, spec_.start));
    nn::truncate_identity_runs(sequential(t), keep, &t.optimizer());
    finish_cut(t);
  }
  void grow(train::Trainer& t, int64_t, double) override {
    nn::stack_blocks(sequential(t), &t.optimizer(), "", full_);
  }
};

}  // namespace

std::unique_ptr<GrowBase> make_stack_grow(const GrowSpec& s) { return std::make_unique<StackGrow>(s); }

}  // namespace brisk::efficiency::growth_methods
