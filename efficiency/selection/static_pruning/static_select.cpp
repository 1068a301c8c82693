// Static data pruning by EL2N or forgetting scores (static_select.h).
#include "efficiency/selection/static_pruning/static_select.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "efficiency/selection/static_pruning/el2n.h"

namespace brisk::efficiency::selection_methods {

void StaticSelect::on_epoch_start(train::Trainer& t) {
  int64_t e = t.state().epoch;
  if (e < spec_.start) return;  // scoring epochs: all data
  if (kept_.empty()) {
    prepare_scores(t);
    kept_ = top_scored();
  }
  if (spec_.curriculum) {  // easy to hard: ascending score (ties: lower index first)
    std::vector<int64_t> o = kept_;
    std::stable_sort(o.begin(), o.end(), [&](int64_t a, int64_t b) { return score(a) < score(b); });
    t.epoch_order = order_of(o);
    return;
  }
  Generator g(seed_ * 0x94D049BB133111EBull + uint64_t(e) + 11);
  t.epoch_order = shuffled(kept_, g);
}

void StaticSelect::prepare_scores(train::Trainer& t) {
  if (spec_.kind == "el2n") {
    auto t0 = std::chrono::steady_clock::now();
    scores_ = selection::el2n_scores(t.model(), t.train_loader().dataset(), 2 * t.config().batch_size);
    scoring_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return;
  }
  scores_.assign(size_t(n_), 0.0f);
  for (size_t i = 0; i < scores_.size(); ++i)
    scores_[i] = stats_.times_seen[i] > 0 && !stats_.ever_correct[i] ? std::numeric_limits<float>::infinity()
                                                                     : float(stats_.forgetting[i]);
}

// The kept set: the kept_count(N) highest scores (ties: lower index first).
std::vector<int64_t> StaticSelect::top_scored() const {
  std::vector<int64_t> idx(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) idx[size_t(i)] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score(a) > score(b); });
  idx.resize(size_t(kept_count(n_)));
  std::sort(idx.begin(), idx.end());
  return idx;
}

void StaticSelect::save_tensors(TensorMap& m) const {
  if (kept_.empty()) return;
  Tensor k = empty({int64_t(kept_.size())}, DType::i64);
  std::copy(kept_.begin(), kept_.end(), k.data_ptr<int64_t>());
  m["static/kept"] = k;
  m["static/scores"] = f32_tensor(scores_);
}

void StaticSelect::load_tensors(const TensorMap& m) {
  if (auto it = m.find("static/kept"); it != m.end()) {
    Tensor k = it->second.contiguous();
    kept_.assign(k.data_ptr<int64_t>(), k.data_ptr<int64_t>() + k.numel());
  }
  if (auto it = m.find("static/scores"); it != m.end()) scores_ = floats(it->second);
  else if (auto g = m.find("grand/scores"); g != m.end()) scores_ = floats(g->second);  // older checkpoints
}

std::unique_ptr<SelectBase> make_static_select(const SelectSpec& s) { return std::make_unique<StaticSelect>(s); }

}  // namespace brisk::efficiency::selection_methods
