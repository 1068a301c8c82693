// What every `--method select:kind=...` member shares: the parsed spec, the
// per-example statistics store (example_stats.h) kept up to date from the
// training forward passes, the work counters and metrics (examples
// backpropagated, selected fraction, scoring seconds), and checkpointing of
// all of it. Each member (efficiency/selection/<member>/) decides which
// examples are visited (epoch level: the epoch's order) or backpropagated
// (batch level: a train::BatchSelector); the factory in select_method.cpp
// parses the keys and picks the member.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "efficiency/selection/example_stats.h"
#include "efficiency/selection/grand/grand.h"
#include "train/trainer.h"

namespace brisk::efficiency::selection_methods {

// Every key of the select family (docs/methods/selection.md), parsed and checked.
struct SelectSpec {
  std::string kind = "rs2";
  double ratio = 0.5, delta = 0.125, keep = 0.5;       // rs2, infobatch; keep: static, batch level
  int64_t start = 1;                                  // static: epochs of scoring
  bool curriculum = false;                            // static: visit easy to hard
  selection::GrandScope grand_scope = selection::GrandScope::last;
  double beta = 1.0, win_start = -1, win_end = -1;    // selective-backprop
  int64_t history = 1024;
  std::string variant = "prob";
  double holdout = 0.1, il_lr = 0.05;                 // rho-loss
  int64_t il_epochs = 2;
  std::string il_model = "mlp";
};

class SelectBase : public train::Callback {
 public:
  explicit SelectBase(SelectSpec spec) : spec_(std::move(spec)) {}
  std::string name() const override { return "select"; }
  // Members that need only each example's loss (a sequence's mean token
  // loss for a language model); EL2N, forgetting, GraNd and RHO-LOSS read
  // per-class probabilities or gradients of a classifier.
  bool supports_language_models() const override {
    return spec_.kind == "infobatch" || spec_.kind == "rs2" || spec_.kind == "selective-backprop";
  }

  void on_fit_start(train::Trainer& t) override;
  // Epoch-level members learn from the training forward pass; batch-level
  // ones override this (their statistics come from the scoring pass).
  void on_after_loss(train::Trainer& t) override;
  void add_metrics(nlohmann::json& j) const override;
  void on_eval_start(train::Trainer& t) override;
  // Keeps selected_frac current between evaluations (the telemetry's trace
  // reads it every few steps), counting the batch under way as seen.
  void on_batch_start(train::Trainer& t) override { seen_full_ = full_data_examples(t, 1); }
  // Telemetry: one "select" record per completed epoch (examples kept, a
  // histogram of the scores, the examples most and least often kept so far).
  void on_epoch_end(train::Trainer& t) override;
  nlohmann::json state_json() const override;
  void load_state_json(const nlohmann::json& j) override;
  TensorMap state_tensors() const override;
  void load_state_tensors(const TensorMap& m) override;
  const selection::ExampleStats& stats() const { return stats_; }

 protected:
  // A member's own checkpointed tensors, besides the statistics store.
  virtual void save_tensors(TensorMap&) const {}
  virtual void load_tensors(const TensorMap&) {}
  // An i64 order tensor of dataset indices (what Trainer::epoch_order takes).
  static Tensor order_of(const std::vector<int64_t>& idx);
  // The order `idx` shuffled by a fresh permutation from `gen`.
  static Tensor shuffled(const std::vector<int64_t>& idx, Generator& gen);
  static Tensor f32_tensor(const std::vector<float>& v);
  // Data parallel: every rank's rows of a batch's statistics, in rank order
  // (the batch itself with one rank). Members update the statistics store
  // with them, so that the store, and every decision made from it (an epoch's
  // order, a loss history's percentiles), is the same on every rank.
  // indices [B] i64, losses [B], logits [B, C] (a language model's [B, T, V]
  // becomes a [B_all, 1, 1] placeholder: its statistics read only the loss),
  // labels [B].
  struct Rows {
    Tensor indices, losses, logits, labels;
  };
  static Rows global_rows(train::Trainer& t, const Tensor& indices, const Tensor& losses, const Tensor& logits,
                          const Tensor& labels);
  // Counts the examples of `indices` [B] whose `picked` [B] bool is set as
  // selected, on every rank's batch (times_selected stays the same everywhere).
  void count_selected(train::Trainer& t, const Tensor& indices, const Tensor& picked);
  // Examples backpropagated by all ranks together in a step of this rank's batch.
  static int64_t global_batch(const train::Trainer& t) {
    return t.batch.indices.numel() * t.process_group().size();
  }
  static std::vector<float> floats(const Tensor& t);
  // What full-data training would have backpropagated after this epoch's
  // first batch_in_epoch + extra loaded batches.
  int64_t full_data_examples(const train::Trainer& t, int64_t extra) const {
    return t.state().epoch * n_ +
           std::min(n_, (t.state().batch_in_epoch + extra) * t.config().batch_size * t.process_group().size());
  }
  // The score this member ranks examples by, for the telemetry's histogram:
  // its name and one value per example that has one (default: the last
  // training loss of every example seen so far).
  virtual std::pair<std::string, std::vector<float>> telemetry_scores() const;
  int64_t backpropagated_at_epoch_start_ = 0;  // checkpointed: the epoch's kept count survives a resume

  SelectSpec spec_;
  uint64_t seed_ = 0;
  int64_t n_ = 0, batch_ = 1, backpropagated_ = 0, seen_full_ = 0;
  int64_t hist_pos_ = 0;       // selective-backprop's ring position (kept in the state json)
  double scoring_seconds_ = 0;  // scoring outside the trainer's passes: IL model, GraNd
  double score_s_ = 0;
  selection::ExampleStats stats_;
};

// The members, one folder each.
std::unique_ptr<SelectBase> make_rs2_select(const SelectSpec& s);                 // rs2/
std::unique_ptr<SelectBase> make_infobatch_select(const SelectSpec& s);           // infobatch/
std::unique_ptr<SelectBase> make_static_select(const SelectSpec& s);              // static_pruning/: el2n, forgetting
std::unique_ptr<SelectBase> make_grand_select(const SelectSpec& s);               // grand/
std::unique_ptr<SelectBase> make_selective_backprop_select(const SelectSpec& s);  // selective_backprop/
std::unique_ptr<SelectBase> make_rho_loss_select(const SelectSpec& s);            // rho_loss/

}  // namespace brisk::efficiency::selection_methods
