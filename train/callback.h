// Trainer events and the Callback interface that efficiency methods implement.
//
// Events fire in this order:
//   fit_start
//   per epoch: epoch_start
//     per batch: batch_start, after_forward, after_loss, after_backward,
//                before_step, after_step, batch_end
//   epoch_end (only when the epoch completed), eval_start, (evaluation), eval_end
// Evaluation also happens mid-epoch (--eval-every, or a --max-steps stop);
// eval_start/eval_end bracket every evaluation, epoch_end never does.
//   fit_end
// Several callbacks may subscribe; at each event they run in registration
// order (the order of --method flags), except where efficiency/ documents a
// composition rule.
#pragma once
#include <functional>
#include <memory>
#include <vector>
#include <nlohmann/json.hpp>
#include <string>

#include "core/safetensors.h"

namespace brisk::train {

class Trainer;

// Batch-level selection: given a forward-only (no graph, eval mode) scoring
// pass over a loaded batch, say which examples get backpropagated. Selected
// examples are buffered and trained in full-size batches.
class BatchSelector {
 public:
  virtual ~BatchSelector() = default;
  // Whether this loaded batch is to be scored and selected. When false the
  // trainer skips the scoring pass and trains every example of the batch
  // (e.g. outside a selection window): no scoring cost is paid.
  virtual bool active(Trainer&) { return true; }
  // losses [B], logits [B, C] (no graph); returns bool [B].
  virtual Tensor select(Trainer& t, const Tensor& indices, const Tensor& labels, const Tensor& losses,
                        const Tensor& logits) = 0;
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual std::string name() const = 0;
  virtual void on_fit_start(Trainer&) {}
  virtual void on_epoch_start(Trainer&) {}
  virtual void on_batch_start(Trainer&) {}
  virtual void on_after_forward(Trainer&) {}
  virtual void on_after_loss(Trainer&) {}
  virtual void on_after_backward(Trainer&) {}
  virtual void on_before_step(Trainer&) {}
  virtual void on_after_step(Trainer&) {}
  virtual void on_batch_end(Trainer&) {}
  virtual void on_epoch_end(Trainer&) {}
  virtual void on_eval_start(Trainer&) {}
  virtual void on_eval_end(Trainer&) {}
  virtual void on_fit_end(Trainer&) {}
  // How many examples epoch `epoch` visits (selection methods that subset the
  // data say so here, so the learning-rate schedule spans the real step count).
  virtual int64_t epoch_examples(int64_t /*epoch*/, int64_t dataset_size, int64_t /*batch_size*/) const {
    return dataset_size;
  }
  // Batch-size warmup: how many optimizer steps the next loaded batch is
  // trained as, on consecutive near-equal parts (1: the whole batch in one
  // step). The trainer takes the largest answer over the methods. The data
  // order and the methods' clock (loaded batches) do not change.
  virtual int64_t batch_splits(const Trainer&) const { return 1; }
  // Whether the method changes parameter shapes mid-run (growth, channel
  // pruning): composition refuses methods that hold per-parameter state of
  // fixed shape (EMA) alongside it.
  virtual bool changes_shapes() const { return false; }
  // Whether the method runs on language models (gpt-*: token batches [B, T],
  // logits [B, T, V], per-sequence losses). The trainer refuses the others
  // there with a message naming them.
  virtual bool supports_language_models() const { return false; }
  // Whether the method runs with --device cuda: its tensors follow the
  // parameters' device, and a test on a card holds it. The trainer refuses
  // the others there with a message naming them.
  virtual bool supports_cuda() const { return false; }
  // A method that selects per batch returns its selector (at most one per run).
  virtual BatchSelector* batch_selector() { return nullptr; }
  // Fields this method adds to each metrics.jsonl line.
  virtual void add_metrics(nlohmann::json&) const {}
  // Checkpointed state: scalars as JSON, tensors by name.
  virtual nlohmann::json state_json() const { return nlohmann::json::object(); }
  virtual void load_state_json(const nlohmann::json&) {}
  virtual TensorMap state_tensors() const { return {}; }
  virtual void load_state_tensors(const TensorMap&) {}
  // On resume, after every method's state is loaded and before the model's and
  // optimizer's state: methods that changed the model's structure (structured
  // pruning, growth) replay their surgery here so the shapes match.
  virtual void on_restore(Trainer&) {}
};

// Makes the callbacks of a run's `--method` specs, in the order they act.
// The trainer takes one from its caller (efficiency::make_methods), so the
// training loop does not depend on the efficiency layer above it.
using MethodBuilder =
    std::function<std::vector<std::unique_ptr<Callback>>(const std::vector<std::string>& specs)>;

}  // namespace brisk::train
