// RHO-LOSS (Mindermann et al., ICML 2022), batch level. A `holdout` fraction
// of the training set is set aside (never trained on); before the first epoch
// a small `il_model` is trained on it for `il_epochs` (its time counts in
// wall_s and score_s), and its loss on every training example is stored by
// dataset index. Each scored batch keeps the round(keep·B) largest
// (training loss - irreducible loss) (rho_loss.h). The irreducible losses are
// checkpointed.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "data/loader.h"
#include "efficiency/selection/rho_loss/rho_loss.h"
#include "efficiency/selection/select_base.h"
#include "models/models.h"
#include "nn/functional.h"
#include "optim/optimizer.h"

namespace brisk::efficiency::selection_methods {

namespace {

class RhoLossSelect : public SelectBase, public train::BatchSelector {
 public:
  using SelectBase::SelectBase;

  train::BatchSelector* batch_selector() override { return this; }

  // Statistics came from the scoring pass.
  void on_after_loss(train::Trainer& t) override { backpropagated_ += global_batch(t); }

  void on_epoch_start(train::Trainer& t) override {
    if (train_idx_.empty()) split_holdout();
    if (il_.empty()) train_il_model(t);
    Generator g(seed_ * 0x9FB21C651E98DF25ull + uint64_t(t.state().epoch) + 1);
    t.epoch_order = shuffled(train_idx_, g);
  }

  Tensor select(train::Trainer& t, const Tensor& indices, const Tensor& labels, const Tensor& losses,
                const Tensor& logits) override {
    Tensor out = selection::rho_select(losses, indices, il_, spec_.keep);
    Rows r = global_rows(t, indices, losses, logits, labels);
    stats_.update(r.indices, r.losses, r.logits, r.labels, t.state().epoch, /*backpropagated=*/false);
    count_selected(t, indices, out);
    return out;
  }

 protected:
  void save_tensors(TensorMap& m) const override {
    if (!il_.empty()) m["rho/il"] = f32_tensor(il_);
  }
  void load_tensors(const TensorMap& m) override {
    if (auto it = m.find("rho/il"); it != m.end()) il_ = floats(it->second);
  }

 private:
  // The held-out split is a fixed seeded subset; the rest is trained on.
  void split_holdout() {
    Generator g(seed_ * 0xA24BAED4963EE407ull + 5);
    Tensor perm = randperm(n_, &g);
    int64_t h = std::clamp<int64_t>(std::llround(spec_.holdout * double(n_)), 1, n_ - 1);
    holdout_idx_.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + h);
    train_idx_.assign(perm.data_ptr<int64_t>() + h, perm.data_ptr<int64_t>() + n_);
    std::sort(holdout_idx_.begin(), holdout_idx_.end());
    std::sort(train_idx_.begin(), train_idx_.end());
  }

  // Trains the irreducible-loss model on the holdout split and scores every example.
  void train_il_model(train::Trainer& t) {
    auto t0 = std::chrono::steady_clock::now();
    uint64_t saved_seed = default_generator().seed(), saved_off = default_generator().offset();
    default_generator().set_state(seed_ * 13 + 1, 0);  // the IL model's init must not shift training's RNG
    auto model = models::make_model(spec_.il_model);
    default_generator().set_state(saved_seed, saved_off);
    optim::SGD opt(model->named_parameters(), {spec_.il_lr, 0.9, 0.0, 5e-4, false});
    data::LoaderOptions lo;
    lo.batch_size = t.config().batch_size;
    lo.seed = seed_ + 99;
    lo.drop_last = false;
    lo.prefetch = false;
    data::DataLoader dl(t.train_loader().dataset(), lo);
    Tensor hold_t = order_of(holdout_idx_);
    for (int64_t e = 0; e < spec_.il_epochs; ++e) {
      Generator g(seed_ * 17 + uint64_t(e));
      Tensor order = index_select(hold_t, 0, randperm(hold_t.numel(), &g));
      dl.start_epoch(e, 0, order);
      while (auto b = dl.next()) {
        Tensor loss = nn::functional::cross_entropy(model->forward(b->x), b->y);
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
    }
    il_.assign(size_t(n_), 0.0f);
    NoGradGuard ng;
    model->eval();
    dl.start_epoch(0, 0, arange(n_));
    while (auto b = dl.next()) {
      Tensor l = nn::functional::cross_entropy(model->forward(b->x), b->y, nn::functional::Reduction::none)
                     .to(DType::f32)
                     .contiguous();
      for (int64_t i = 0; i < l.numel(); ++i) il_[size_t(b->indices.data_ptr<int64_t>()[i])] = l.data_ptr<float>()[i];
    }
    scoring_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  std::vector<float> il_;  // irreducible loss per dataset index
  std::vector<int64_t> holdout_idx_, train_idx_;
};

}  // namespace

std::unique_ptr<SelectBase> make_rho_loss_select(const SelectSpec& s) { return std::make_unique<RhoLossSelect>(s); }

}  // namespace brisk::efficiency::selection_methods
