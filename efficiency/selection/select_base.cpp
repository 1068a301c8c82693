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
  seen_full_ = full_data_examples(t, 0);  // what full-data training would have backpropagated by now
  score_s_ = t.score_seconds() + scoring_seconds_;
}

std::pair<std::string, std::vector<float>> SelectBase::telemetry_scores() const {
  std::vector<float> v;
  for (int64_t i = 0; i < n_; ++i)
    if (stats_.times_seen[size_t(i)] > 0) v.push_back(stats_.last_loss[size_t(i)]);
  return {"last_loss", std::move(v)};
}

void SelectBase::on_epoch_end(train::Trainer& t) {
  int64_t kept = backpropagated_ - backpropagated_at_epoch_start_;
  backpropagated_at_epoch_start_ = backpropagated_;
  if (!t.telemetry_on()) return;
  auto [score_name, scores] = telemetry_scores();
  // Most and least often kept (backpropagated) examples so far; ties by lower index.
  const size_t K = 16;
  std::vector<int64_t> idx(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) idx[size_t(i)] = i;
  auto by_count = [&](int64_t a, int64_t b) { return stats_.times_selected[size_t(a)] > stats_.times_selected[size_t(b)]; };
  std::stable_sort(idx.begin(), idx.end(), by_count);
  auto example = [&](int64_t i) {
    return nlohmann::json{{"index", i},
                          {"times_kept", stats_.times_selected[size_t(i)]},
                          {"times_seen", stats_.times_seen[size_t(i)]},
                          {"last_loss", stats_.last_loss[size_t(i)]}};
  };
  nlohmann::json most = nlohmann::json::array(), least = nlohmann::json::array();
  for (size_t k = 0; k < std::min(K, idx.size()); ++k) most.push_back(example(idx[k]));
  for (int64_t i = 0; i < n_; ++i) idx[size_t(i)] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return by_count(b, a); });
  for (size_t k = 0; k < std::min(K, idx.size()); ++k) least.push_back(example(idx[k]));
  t.record("select", {{"method", spec_.kind},
                      {"epoch_done", t.state().epoch},
                      {"kept", kept},
                      {"dataset", n_},
                      {"kept_frac", n_ ? double(kept) / double(n_) : 0.0},
                      {"score", score_name},
                      {"histogram", train::histogram(scores)},
                      {"most_kept", most},
                      {"least_kept", least}});
}

nlohmann::json SelectBase::state_json() const {
  return {{"kind", spec_.kind},
          {"backpropagated_at_epoch_start", backpropagated_at_epoch_start_},
          {"ratio", spec_.ratio},
          {"examples_backpropagated", backpropagated_},
          {"hist_pos", hist_pos_},
          {"il_seconds", scoring_seconds_}};
}

void SelectBase::load_state_json(const nlohmann::json& j) {
  backpropagated_ = j.value("examples_backpropagated", int64_t(0));
  backpropagated_at_epoch_start_ = j.value("backpropagated_at_epoch_start", int64_t(0));
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
