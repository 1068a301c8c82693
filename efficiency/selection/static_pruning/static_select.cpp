// Static data pruning by EL2N or forgetting scores (static_select.h).
#include "efficiency/selection/static_pruning/static_select.h"

#include <algorithm>
#include <cmath>

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

double StaticSelect::score(int64_t i) const {
  return spec_.kind == "el2n" ? double(stats_.el2n[size_t(i)]) : double(stats_.forgetting[size_t(i)]);
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
}

void StaticSelect::load_tensors(const TensorMap& m) {
  if (auto it = m.find("static/kept"); it != m.end()) {
    Tensor k = it->second.contiguous();
    kept_.assign(k.data_ptr<int64_t>(), k.data_ptr<int64_t>() + k.numel());
  }
}

std::unique_ptr<SelectBase> make_static_select(const SelectSpec& s) { return std::make_unique<StaticSelect>(s); }

}  // namespace brisk::efficiency::selection_methods
