// Per-example statistics store.
#include "efficiency/selection/example_stats.h"

#include <cmath>

#include "core/ops.h"

namespace brisk::selection {

ExampleStats::ExampleStats(int64_t n)
    : last_loss(static_cast<size_t>(n), 0.f), el2n(static_cast<size_t>(n), 0.f), forgetting(static_cast<size_t>(n), 0), times_selected(static_cast<size_t>(n), 0),
      times_seen(size_t(n), 0), last_epoch(size_t(n), -1), last_correct(size_t(n), 0), ever_correct(size_t(n), 0) {}

void ExampleStats::update(const Tensor& indices, const Tensor& losses, const Tensor& logits, const Tensor& labels,
                          int64_t epoch, bool backpropagated) {
  NoGradGuard ng;
  int64_t B = indices.numel();
  if (logits.dim() == 3) {  // a language model: a sequence's loss only (the members using it need no more)
    BRISK_CHECK(losses.numel() == B && logits.size(0) == B, "ExampleStats::update: indices [", B, "], losses ",
                shape_str(losses.shape()), " and logits ", shape_str(logits.shape()), " disagree");
    Tensor idx = indices.contiguous(), los = losses.detach().to(DType::f32).contiguous();
    for (int64_t i = 0; i < B; ++i) {
      int64_t d = idx.data_ptr<int64_t>()[i];
      BRISK_CHECK(d >= 0 && d < size(), "ExampleStats: index ", d, " out of range for ", size(), " examples");
      size_t k = size_t(d);
      times_seen[k]++;
      last_loss[k] = los.data_ptr<float>()[i];
      last_epoch[k] = int32_t(epoch);
      if (backpropagated) times_selected[k]++;
    }
    return;
  }
  BRISK_CHECK(losses.numel() == B && logits.dim() == 2 && logits.size(0) == B && labels.numel() == B,
              "ExampleStats::update: indices [", B, "], losses ", shape_str(losses.shape()), ", logits ",
              shape_str(logits.shape()), " and labels ", shape_str(labels.shape()), " disagree");
  Tensor prob = softmax(logits.detach(), 1).to(DType::f32).contiguous();
  Tensor idx = indices.contiguous(), lab = labels.contiguous(), los = losses.detach().to(DType::f32).contiguous();
  int64_t C = logits.size(1);
  const float* p = prob.data_ptr<float>();
  for (int64_t i = 0; i < B; ++i) {
    int64_t d = idx.data_ptr<int64_t>()[i], y = lab.data_ptr<int64_t>()[i];
    BRISK_CHECK(d >= 0 && d < size(), "ExampleStats: index ", d, " out of range for ", size(), " examples");
    double e2 = 0;
    int64_t best = 0;
    for (int64_t c = 0; c < C; ++c) {
      double diff = p[i * C + c] - (c == y ? 1.0 : 0.0);
      e2 += diff * diff;
      if (p[i * C + c] > p[i * C + best]) best = c;
    }
    size_t k = size_t(d);
    bool correct = best == y;
    if (times_seen[k] > 0 && last_correct[k] && !correct) forgetting[k]++;
    last_correct[k] = correct;
    ever_correct[k] |= uint8_t(correct);
    times_seen[k]++;
    el2n[k] += float((std::sqrt(e2) - el2n[k]) / times_seen[k]);
    last_loss[k] = los.data_ptr<float>()[i];
    last_epoch[k] = int32_t(epoch);
    if (backpropagated) times_selected[k]++;
  }
}

template <class T>
static Tensor vec_tensor(const std::vector<T>& v) {
  Tensor t = empty({int64_t(v.size())}, DTypeOf<T>::value);
  std::copy(v.begin(), v.end(), t.data_ptr<T>());
  return t;
}

template <class T>
static void load_vec(const TensorMap& m, const std::string& k, std::vector<T>& v) {
  auto it = m.find(k);
  BRISK_CHECK(it != m.end(), "ExampleStats: checkpoint lacks '", k, "'");
  BRISK_CHECK(it->second.numel() == int64_t(v.size()) && it->second.dtype() == DTypeOf<T>::value,
              "ExampleStats: checkpoint '", k, "' has shape ", shape_str(it->second.shape()), ", expected [",
              v.size(), "]");
  const T* p = it->second.contiguous().template data_ptr<T>();
  std::copy(p, p + v.size(), v.begin());
}

TensorMap ExampleStats::to_tensors() const {
  return {{"stats/last_loss", vec_tensor(last_loss)},       {"stats/el2n", vec_tensor(el2n)},
          {"stats/forgetting", vec_tensor(forgetting)},     {"stats/times_selected", vec_tensor(times_selected)},
          {"stats/times_seen", vec_tensor(times_seen)},     {"stats/last_epoch", vec_tensor(last_epoch)},
          {"stats/last_correct", vec_tensor(last_correct)}, {"stats/ever_correct", vec_tensor(ever_correct)}};
}

void ExampleStats::from_tensors(const TensorMap& m) {
  load_vec(m, "stats/last_loss", last_loss);
  load_vec(m, "stats/el2n", el2n);
  load_vec(m, "stats/forgetting", forgetting);
  load_vec(m, "stats/times_selected", times_selected);
  load_vec(m, "stats/times_seen", times_seen);
  load_vec(m, "stats/last_epoch", last_epoch);
  load_vec(m, "stats/last_correct", last_correct);
  if (m.count("stats/ever_correct")) {
    load_vec(m, "stats/ever_correct", ever_correct);
  } else {  // older checkpoints: correct now, or forgotten (so once correct)
    for (size_t i = 0; i < ever_correct.size(); ++i) ever_correct[i] = last_correct[i] || forgetting[i] > 0;
  }
}

}  // namespace brisk::selection
