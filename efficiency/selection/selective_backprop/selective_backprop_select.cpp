// Selective Backprop (Jiang et al. 2019), batch level. Each loaded batch is
// scored by a forward-only pass; example i is backpropagated with probability
// F(loss_i)^beta, F = the fraction of the last `history` losses <= loss_i
// (selective_backprop.h); selected examples are buffered into full batches.
// variant=rank (Composer's): inside [start, end) the round(keep·B) highest
// losses of each batch. Outside [start, end) no batch is scored and every
// example is trained.
// Defaults: prob [1/epochs, 1), rank [0.5, 0.9) of training.
#include <algorithm>
#include <cmath>

#include "efficiency/selection/select_base.h"
#include "efficiency/selection/selective_backprop/selective_backprop.h"

namespace brisk::efficiency::selection_methods {

namespace {

class SelectiveBackpropSelect : public SelectBase, public train::BatchSelector {
 public:
  using SelectBase::SelectBase;

  train::BatchSelector* batch_selector() override { return this; }

  // Outside [start, end) no batch is scored (BatchSelector::active): the
  // loaded batch trains whole, and its training forward pass feeds the
  // statistics and the loss history instead of a scoring pass.
  bool active(train::Trainer& t) override {
    bool rank = spec_.variant == "rank";
    double s0 = spec_.win_start >= 0 ? spec_.win_start : (rank ? 0.5 : 1.0 / double(t.epochs()));
    double s1 = spec_.win_end >= 0 ? spec_.win_end : (rank ? 0.9 : 1.0);
    window_ = t.progress() >= s0 && t.progress() < s1;
    return window_;
  }

  void on_after_loss(train::Trainer& t) override {
    backpropagated_ += global_batch(t);
    if (window_) return;  // statistics came from the scoring pass
    Rows r = global_rows(t, t.batch.indices, t.per_example_loss, t.logits, t.batch.y);
    stats_.update(r.indices, r.losses, r.logits, r.labels, t.state().epoch);
    remember(floats(r.losses.detach().to(DType::f32).contiguous()));
  }

  Tensor select(train::Trainer& t, const Tensor& indices, const Tensor& labels, const Tensor& losses,
                const Tensor& logits) override {
    int64_t B = losses.numel();
    const auto& st = t.state();
    bool rank = spec_.variant == "rank";
    std::vector<float> l = floats(losses.to(DType::f32));
    std::vector<bool> pick(size_t(B), true);
    if (rank) {
      std::vector<int64_t> order(static_cast<size_t>(B));
      for (int64_t i = 0; i < B; ++i) order[size_t(i)] = i;
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return l[size_t(a)] > l[size_t(b)]; });
      int64_t k = std::clamp<int64_t>(std::llround(spec_.keep * double(B)), 0, B);
      pick.assign(size_t(B), false);
      for (int64_t i = 0; i < k; ++i) pick[size_t(order[size_t(i)])] = true;
    } else {
      Generator g(seed_ * 0xD6E8FEB86659FD93ull + uint64_t(st.epoch) * 1000003ull + uint64_t(st.batch_in_epoch));
      std::vector<float> sorted(hist_);
      std::sort(sorted.begin(), sorted.end());
      for (int64_t i = 0; i < B; ++i) {
        double p = selection::selection_probability(sorted, l[size_t(i)], spec_.beta);
        auto w = g.block(uint64_t(i));
        double u = double(w[0]) / 4294967296.0;
        pick[size_t(i)] = u < p;
      }
    }
    // The loss history sees every scored loss, of every rank's batch.
    Rows r = global_rows(t, indices, losses, logits, labels);
    remember(floats(r.losses));
    stats_.update(r.indices, r.losses, r.logits, r.labels, st.epoch, /*backpropagated=*/false);
    Tensor out = empty({B}, DType::boolean);
    for (int64_t i = 0; i < B; ++i) out.data_ptr<bool>()[i] = pick[size_t(i)];
    count_selected(t, indices, out);
    return out;
  }

 protected:
  void save_tensors(TensorMap& m) const override {
    if (!hist_.empty()) m["sb/history"] = f32_tensor(hist_);
  }
  void load_tensors(const TensorMap& m) override {
    if (auto it = m.find("sb/history"); it != m.end()) hist_ = floats(it->second);
  }

 private:
  void remember(const std::vector<float>& l) {
    for (float v : l) {
      if (int64_t(hist_.size()) < spec_.history) hist_.push_back(v);
      else hist_[size_t(hist_pos_)] = v;
      hist_pos_ = (hist_pos_ + 1) % spec_.history;
    }
  }

  std::vector<float> hist_;  // the last `history` losses (a ring at hist_pos_)
  bool window_ = false;      // this loaded batch was scored (inside [start, end))
};

}  // namespace

std::unique_ptr<SelectBase> make_selective_backprop_select(const SelectSpec& s) {
  return std::make_unique<SelectiveBackpropSelect>(s);
}

}  // namespace brisk::efficiency::selection_methods
