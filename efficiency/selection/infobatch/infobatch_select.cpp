// InfoBatch (Qin et al., ICLR 2024) as a select member: each epoch except the
// first and the final `delta` fraction, the plan of infobatch.h (drop
// ratio of the below-mean-loss examples at random, upweight the kept ones of
// that group by 1 / (1 - ratio)) gives the epoch's order and per-example loss
// weights. The weights are checkpointed so a run resumes mid-epoch exactly.
#include "efficiency/selection/infobatch/infobatch.h"
#include "efficiency/selection/select_base.h"

namespace brisk::efficiency::selection_methods {

namespace {

class InfoBatchSelect : public SelectBase {
 public:
  using SelectBase::SelectBase;

  void on_epoch_start(train::Trainer& t) override {
    int64_t e = t.state().epoch;
    bool full = e == 0 || double(e) >= (1.0 - spec_.delta) * double(t.epochs());
    weights_.assign(size_t(n_), 1.0f);
    if (full) return;  // default order: every example, weight 1
    Generator g(seed_ * 0x2545F4914F6CDD1Dull + uint64_t(e) + 3);
    selection::EpochPlan plan = selection::infobatch_plan(stats_.last_loss, stats_.times_seen, spec_.ratio, g);
    weights_ = plan.weight;
    t.epoch_order = shuffled(plan.keep, g);
  }

  void on_after_forward(train::Trainer& t) override {
    if (weights_.empty()) weights_.assign(size_t(n_), 1.0f);
    int64_t B = t.batch.indices.numel();
    std::vector<double> w(static_cast<size_t>(B));
    const int64_t* idx = t.batch.indices.data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i) w[size_t(i)] = weights_[size_t(idx[i])];
    t.loss_weights = from_vector(w, {B}, TensorOptions(t.logits.dtype()));
  }

 protected:
  void save_tensors(TensorMap& m) const override {
    if (!weights_.empty()) m["infobatch/weights"] = f32_tensor(weights_);  // needed to resume mid-epoch
  }
  void load_tensors(const TensorMap& m) override {
    if (auto it = m.find("infobatch/weights"); it != m.end()) weights_ = floats(it->second);
  }

 private:
  std::vector<float> weights_;  // per dataset index, this epoch
};

}  // namespace

std::unique_ptr<SelectBase> make_infobatch_select(const SelectSpec& s) { return std::make_unique<InfoBatchSelect>(s); }

}  // namespace brisk::efficiency::selection_methods
