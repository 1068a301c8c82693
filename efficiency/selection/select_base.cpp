// The select family's shared state and its checkpointing (select_base.h).
#include "efficiency/selection/select_base.h"

#include <algorithm>

namespace brisk::efficiency::selection_methods {

void SelectBase::on_fit_start(train::Trainer& t) {
  n_ = t.train_loader().dataset().size();
  batch_ = t.config().batch_size;
  seed_ = t.config().seed;
  if (stats_.size() != n_) stats_ = selection::ExampleStats(n_);
}

SelectBase::Rows SelectBase::global_rows(train::Trainer& t, const Tensor& indices, const Tensor& losses,
                                         const Tensor& logits, const Tensor& labels) {
  if (t.process_group().size() == 1) return {indices, losses, logits, labels};
  NoGradGuard ng;
  Rows r;
  r.indices = t.gather_rows(indices.contiguous());
  r.losses = t.gather_rows(losses.detach().to(DType::f32).contiguous());
  if (logits.dim() == 3) {
    r.logits = empty({r.indices.numel(), 1, 1}, DType::f32);
    r.labels = r.indices;  // unread for a language model
  } else {
    r.logits = t.gather_rows(logits.detach().to(DType::f32).contiguous());
    r.labels = t.gather_rows(labels.contiguous());
  }
  return r;
}

void SelectBase::count_selected(train::Trainer& t, const Tensor& indices, const Tensor& picked) {
  std::vector<double> mine;
  const int64_t* idx = indices.contiguous().data_ptr<int64_t>();
  const bool* p = picked.contiguous().data_ptr<bool>();
  for (int64_t i = 0; i < indices.numel(); ++i)
    if (p[i]) mine.push_back(double(idx[i]));
  Tensor all = t.gather_rows(from_vector(mine, {int64_t(mine.size())}, DType::i64));
  const int64_t* a = all.data_ptr<int64_t>();
  for (int64_t i = 0; i < all.numel(); ++i) stats_.times_selected[size_t(a[i])]++;
}

void SelectBase::on_after_loss(train::Trainer& t) {
  Rows r = global_rows(t, t.batch.indices, t.per_example_loss, t.logits, t.batch.y);
  stats_.update(r.indices, r.losses, r.logits, r.labels, t.state().epoch);
  backpropagated_ += global_batch(t);
}

void SelectBase::add_metrics(nlohmann::json& j) const {
  j["examples_backpropagated"] = backpropagated_;
  j["selected_frac"] = seen_full_ > 0 ? double(backpropagated_) / double(seen_full_) : 0.0;
  j["score_s"] = score_s_;  // scoring time outside the training passes (0 for rs2, infobatch, el2n, forgetting)
}

void SelectBase::on_eval_start(train::Trainer& t) {
  // What full-data training would have backpropagated by now.
  seen_full_ = t.state().epoch * n_ +
               std::min(n_, t.state().batch_in_epoch * t.config().batch_size * t.process_group().size());
  score_s_ = t.score_seconds() + scoring_seconds_;
}

nlohmann::json SelectBase::state_json() const {
  return {{"kind", spec_.kind},
          {"ratio", spec_.ratio},
          {"examples_backpropagated", backpropagated_},
          {"hist_pos", hist_pos_},
          {"il_seconds", scoring_seconds_}};
}

void SelectBase::load_state_json(const nlohmann::json& j) {
  backpropagated_ = j.value("examples_backpropagated", int64_t(0));
  hist_pos_ = j.value("hist_pos", int64_t(0));
  scoring_seconds_ = j.value("il_seconds", 0.0);
}

TensorMap SelectBase::state_tensors() const {
  TensorMap m = stats_.to_tensors();
  save_tensors(m);
  return m;
}

void SelectBase::load_state_tensors(const TensorMap& m) {
  if (m.empty()) return;
  stats_.from_tensors(m);
  load_tensors(m);
}

Tensor SelectBase::order_of(const std::vector<int64_t>& idx) {
  return from_vector(std::vector<double>(idx.begin(), idx.end()), {int64_t(idx.size())}, DType::i64);
}

Tensor SelectBase::shuffled(const std::vector<int64_t>& idx, Generator& gen) {
  Tensor perm = randperm(int64_t(idx.size()), &gen);
  std::vector<double> order(idx.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = double(idx[size_t(perm.data_ptr<int64_t>()[i])]);
  return from_vector(order, {int64_t(order.size())}, DType::i64);
}

Tensor SelectBase::f32_tensor(const std::vector<float>& v) {
  Tensor h = empty({int64_t(v.size())}, DType::f32);
  std::copy(v.begin(), v.end(), h.data_ptr<float>());
  return h;
}

std::vector<float> SelectBase::floats(const Tensor& t) {
  Tensor h = t.contiguous();
  return std::vector<float>(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
}

}  // namespace brisk::efficiency::selection_methods
