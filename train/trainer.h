// Trainer: the training loop, its events, evaluation, metrics and checkpoints.
#pragma once
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/loader.h"
#include "models/gpt.h"
#include "nn/module.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/callback.h"
#include "train/config.h"
#include "train/distributed.h"
#include "train/grad_reducer.h"
#include "train/telemetry.h"

namespace brisk::train {

struct EvalResult {
  double loss = 0, acc = 0;
};

// Where the run is; everything here is checkpointed.
// Seconds per phase of training, accumulated since construction (for
// `brisk profile`; cheap enough to be always on). Method work is the time
// inside each method's event handlers, plus selection's scoring passes.
struct PhaseTimes {
  double data = 0, forward = 0, backward = 0, optimizer = 0, eval = 0;
  // Data parallel: time in the per-step collectives (waiting for the slowest
  // rank included) and the gradient bytes each rank contributed.
  double communicate = 0;
  double comm_bytes = 0, comm_steps = 0;
  std::map<std::string, double> methods;  // by method family
  // The part of `methods` spent outside the training seconds (handlers of
  // epoch-end and evaluation events), which brisk profile leaves out.
  std::map<std::string, double> methods_outside;
};

struct TrainState {
  int64_t epoch = 0;           // epochs completed
  int64_t batch_in_epoch = 0;  // batches done in the current (incomplete) epoch
  int64_t step = 0;            // optimizer steps taken
  int64_t batches = 0;         // loaded batches consumed: the methods' clock (Trainer::clock)
  int64_t samples_seen = 0;
  int64_t tokens_seen = 0;     // language models: target tokens trained on (sequence-length warmup trims them)
  double wall_s = 0;           // training seconds, evaluation and checkpointing excluded
  double flops = 0;            // GEMM/conv FLOPs in those seconds (core/flops.h)
  double loss_sum = 0;         // train loss accumulated since the last evaluation
  int64_t loss_count = 0;
};

class Trainer {
 public:
  // Builds model, data, optimizer and schedule from cfg. The efficiency
  // methods of cfg.methods are made by `methods` (the trainer does not know
  // them: pass efficiency::make_methods, which also puts them in their
  // composition order and refuses conflicting sets); callbacks added with
  // add_callback before fit() act after them, in the order added.
  explicit Trainer(TrainConfig cfg, const MethodBuilder& methods = {});
  ~Trainer();

  void add_callback(std::unique_ptr<Callback> cb);
  // Runs to cfg.epochs (or cfg.max_steps). Resumes from cfg.out if resume=true.
  EvalResult fit(bool resume = false);
  EvalResult evaluate();

  // --- what callbacks see and may change ---
  const TrainConfig& config() const { return cfg_; }
  nn::Module& model() { return *model_; }
  std::shared_ptr<nn::Module> model_ptr() { return model_; }
  optim::Optimizer& optimizer() { return *optimizer_; }
  data::DataLoader& train_loader() { return *train_loader_; }
  const TrainState& state() const { return state_; }
  const std::vector<std::unique_ptr<Callback>>& callbacks() const { return callbacks_; }
  // Data-parallel training (train/distributed.h): this rank's group. Each rank
  // trains on its shard of every epoch with --batch-size examples per step;
  // gradients are averaged over the ranks before after_backward, so methods
  // see the same gradients, weights and losses on every rank. Only the main
  // rank (0) writes files and prints.
  dist::ProcessGroup& process_group() const { return *pg_; }
  bool is_main() const { return pg_->is_main(); }
  // Rows of `t` from every rank, in rank order (t itself with one rank): what
  // a method that keeps per-example statistics feeds them with, so that each
  // rank holds the statistics of the whole global batch and decides alike.
  Tensor gather_rows(const Tensor& t) const { return dist::all_gather_rows(*pg_, t); }
  // Current batch and its results (valid between batch_start and batch_end).
  data::Batch batch;
  Tensor logits;             // [B, classes] (language models: [B, T, vocab]), after_forward
  Tensor per_example_loss;   // [B], after_loss (language models: each sequence's mean token loss)
  Tensor loss_weights;       // optional [B]: set before after_loss to weight examples
  Tensor loss;               // scalar that backward() runs on
  bool skip_step = false;    // set in before_step to skip this optimizer update
  // Under batch-size warmup the loaded batch trains as batch_parts steps;
  // this step is part batch_part (0-based) of them.
  int64_t batch_part = 0, batch_parts = 1;
  // The loss's label smoothing for this batch: the config's, unless a method
  // sets it at batch_start (reset every batch).
  double label_smoothing = 0;
  double loss_scale = 1.0;   // set in after_loss: backward runs on loss * loss_scale (loss scaling)
  // Set in after_loss by a method that skips steps with non-finite gradients
  // (dynamic loss scaling): a non-finite loss then backpropagates (its inf/NaN
  // gradients make that method skip the step) instead of stopping training.
  bool nonfinite_loss_skips = false;
  // Set by methods at epoch_start to visit a custom order (subset) this epoch.
  Tensor epoch_order;
  // Extra metric fields for the next metrics.jsonl line.
  nlohmann::json extra_metrics = nlohmann::json::object();

  // Checkpoint I/O in cfg.out (atomic; never leaves a half-written checkpoint).
  void save_checkpoint();
  void load_checkpoint(const std::string& dir);
  // The model as the checkpoint in `dir` holds it, without training: methods
  // that change the architecture (growth) cut and replay their surgery first,
  // so the shapes fit. For `brisk generate` on a grown language model.
  void restore_model(const std::string& dir);

  // The one clock every method schedule runs on: loaded batches consumed so
  // far. It equals the optimizer step count, except under batch-level
  // selection (selective backprop, RHO-LOSS), where several loaded batches
  // may pass per optimizer step, and under batch-size warmup, where one
  // loaded batch may train as several steps; a schedule point "at fraction f of training"
  // is clock() >= f * total_steps(). Methods act at the first batch at or
  // past a point (a clock may step over it), never only on equality.
  int64_t clock() const { return state_.batches; }
  // The clock's value at the end of the run (an estimate where a method's
  // epoch sizes depend on training, e.g. InfoBatch).
  int64_t total_steps() const;
  // The epochs the run plans: cfg.epochs, or under cfg.steps the epochs its
  // steps reach at the full epoch's size (ceil(steps / batches per epoch)).
  int64_t epochs() const;
  // The run's length in full-data steps, for methods whose schedule ignores
  // selection's shorter epochs: cfg.steps, else epochs x a full epoch's batches.
  int64_t full_steps() const;
  // clock() / total_steps(), in [0, 1].
  double progress() const { return std::min(1.0, double(clock()) / double(total_steps())); }
  double score_seconds() const { return score_s_; }
  // A method's work outside the training loop that belongs to training (say,
  // SWA's BatchNorm pass before an evaluation of the average) is added to the
  // run's training seconds, so speedups count it.
  void add_training_time(double seconds) { state_.wall_s += seconds; }  // time in forward-only scoring passes
  const PhaseTimes& phases() const { return phases_; }
  // Method telemetry (train/telemetry.h). record() adds one record of `kind`
  // stamped with where the run is (step, clock, epoch, training seconds so
  // far); methods check telemetry_on() before building an expensive record.
  bool telemetry_on() const { return telemetry_.on(); }
  void record(const std::string& kind, nlohmann::json fields = nlohmann::json::object());
  // Training seconds so far, the current epoch's included (state().wall_s
  // counts completed segments only).
  double training_seconds() const;
  // The mean loss of the current batch under the model as it is now, in eval
  // mode and without a graph (what growth records before and after surgery to
  // show that it kept the function). Not counted as training time by itself.
  double probe_loss();
  // Where the learning-rate schedule is, in full-data steps (see trainer.cpp).
  int64_t schedule_position() const;
  double lr_at(int64_t position) const { return schedule_->lr_at(position); }

 private:
  template <class F> void fire(F f);
  void train_one_batch();
  // Trains `batch` as one step, or as several on its parts where a method
  // asks for smaller batches (Callback::batch_splits).
  void train_loaded();
  // Batch-level selection: score, select, buffer, train full batches.
  void train_selected(data::Batch loaded, BatchSelector& sel);
  void write_metrics(const EvalResult& r);
  void write_config_json();
  void check_data_fits_model(const data::Dataset& d, const char* split) const;
  // Data-parallel checks and synchronization (no-ops on one rank).
  void check_same_config_on_all_ranks() const;
  void check_same_order_on_all_ranks() const;
  void check_same_model_on_all_ranks() const;
  void sync_buffers();
  // The mean of the ranks' losses (so that a non-finite loss on any rank
  // stops, or skips, on all of them alike).
  double mean_over_ranks(double local_loss) const;
  // Averages the parameters' gradients over the ranks, bucketed, in parameter
  // order. A parameter with a gradient on some ranks only (a block that
  // stochastic depth dropped here) gets zeros where it has none.
  void average_gradients();
  // The same, overlapped with the backward pass (comm-overlap): the reducer
  // for the current parameters, armed before backward, finished after it.
  dist::GradReducer& grad_reducer();
  std::unique_ptr<dist::GradReducer> reducer_;
  Tensor example_losses(const Tensor& logits, const Tensor& y, double label_smoothing) const;
  void trim_metrics();
  std::string last_checkpoint_note() const;
  // Step of the checkpoint on disk (-1: none yet). Every checkpoint follows an
  // evaluation, so it is also the step last evaluated.
  int64_t saved_step_ = -1;
  int64_t metrics_lines_ = 0;   // lines in metrics.jsonl (checkpointed: resume trims to it)
  int64_t telemetry_lines_ = 0;  // lines of telemetry.jsonl a loaded checkpoint covers
  Telemetry telemetry_;
  // Start of the training segment under way (fit's epoch loop), for training_seconds().
  std::chrono::steady_clock::time_point segment_start_{};
  bool in_segment_ = false;
  // The training-loss trace: losses since its last record; per-phase seconds at the last "phases" record.
  double trace_loss_sum_ = 0;
  int64_t trace_loss_count_ = 0;
  PhaseTimes phases_recorded_;
  void record_phases();

  TrainConfig cfg_;
  std::shared_ptr<dist::ProcessGroup> pg_ = dist::default_group();
  std::unique_ptr<dist::DeviceCollectives> device_comm_;  // NCCL, for --device cuda on several ranks
  std::shared_ptr<nn::Module> model_;
  Device device_;  // --device: where the model, batches and optimizer state live
  void to_device(data::Batch& b) const;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<optim::LRSchedule> schedule_;
  std::unique_ptr<data::DataLoader> train_loader_;
  data::Dataset test_set_;
  std::vector<std::unique_ptr<Callback>> callbacks_;
  TrainState state_;
  EvalResult last_eval_;
  bool show_progress_ = false;
  BatchSelector* selector_ = nullptr;
  data::Batch buffer_;  // selected examples waiting for a full batch
  double score_s_ = 0;
  PhaseTimes phases_;
};

// Language models: the size overrides of a config (--block-size, --n-layer, ...).
models::GPTOptions gpt_options(const TrainConfig& c);

// The `brisk train` entry point: parses nothing, runs cfg, prints progress and
// a one-line summary. Returns the process exit code.
int run_training(const TrainConfig& cfg, bool resume, const MethodBuilder& methods = {});

}  // namespace brisk::train
