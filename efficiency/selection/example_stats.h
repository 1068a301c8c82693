// Per-example statistics, keyed by dataset index, updated from the forward
// pass the training step already makes (no extra compute):
//   last_loss, el2n (running mean of ||softmax(logits) - onehot(y)||_2),
//   forgetting events (correct -> incorrect between consecutive visits),
//   whether it was ever classified correctly, times selected
//   (backpropagated), last epoch seen (-1: never).
#pragma once
#include <cstdint>
#include <vector>

#include "core/safetensors.h"

namespace brisk::selection {

class ExampleStats {
 public:
  explicit ExampleStats(int64_t n = 0);
  int64_t size() const { return int64_t(last_loss.size()); }
  // indices [B] i64, losses [B], logits [B, C], labels [B] i64.
  void update(const Tensor& indices, const Tensor& losses, const Tensor& logits, const Tensor& labels,
              int64_t epoch, bool backpropagated = true);
  TensorMap to_tensors() const;
  void from_tensors(const TensorMap& m);

  std::vector<float> last_loss, el2n;
  std::vector<int32_t> forgetting, times_selected, times_seen, last_epoch;
  std::vector<uint8_t> last_correct, ever_correct;
};

}  // namespace brisk::selection
