// What every `--method prune:...` member shares: the parsed spec, the masks
// it owns (set on the parameters, core/mask.h, so the optimizer keeps them
// exact), their checkpointing, and the sparsity metrics. Each member
// (efficiency/pruning/<member>/) decides when and what to prune; the factory
// in prune_method.cpp parses the keys and picks the member.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "train/trainer.h"

namespace brisk::efficiency::pruning_methods {

// Every key of the prune family (docs/methods/pruning.md), parsed and checked.
struct PruneSpec {
  double target = 0.9, initial = 0.0, start = 0.0, end = 0.5, alpha = 0.3, rewind = 0.0;
  int64_t frequency = 100, nm_n = 0, nm_m = 0, rounds = 3;
  std::string schedule = "oneshot", scope = "layer", distribution = "erk", score = "l1";
  bool channel = false;
};

class PruneBase : public train::Callback {
 public:
  explicit PruneBase(PruneSpec spec) : spec_(std::move(spec)) {}
  std::string name() const override { return "prune"; }
  // Unstructured and N:M masks act on any linear weight; channel pruning's
  // surgery knows the image models' layer chains only.
  bool supports_language_models() const override { return !spec_.channel; }
  // Magnitude masks (oneshot, gradual) and N:M masks are chosen on the host
  // and live on the parameter's device; IMP's rewinding, RigL/SET's regrowth
  // and channel surgery have not run on a card yet.
  bool supports_cuda() const override {
    return !spec_.channel && (spec_.schedule == "oneshot" || spec_.schedule == "gradual");
  }

  void add_metrics(nlohmann::json& j) const override;
  void on_eval_start(train::Trainer& t) override {
    record_update(t);
    measure(t);
  }
  // A step's mask updates are all made before its batch_end.
  void on_batch_end(train::Trainer& t) override { record_update(t); }
  // On resume: masks go back on their parameters here, before any batch (a
  // checkpoint taken before the first step after a resume, as when batch-level
  // selection loads batches without stepping, must still hold them).
  void on_restore(train::Trainer& t) override { attach_loaded(t); }
  nlohmann::json state_json() const override;
  void load_state_json(const nlohmann::json& j) override { events_ = j.value("events_done", int64_t(0)); }
  TensorMap state_tensors() const override { return masks_; }
  void load_state_tensors(const TensorMap& m) override;

 protected:
  // Conv and linear weights (every parameter of 2 or more dims), by name.
  std::vector<std::pair<std::string, Tensor>> prunable(train::Trainer& t) const;
  // Magnitude masks at sparsity s (layer-wise or global, per spec_.scope); masks only shrink.
  void apply_sparsity(train::Trainer& t, double s);
  // Sets a mask (and zeroes the optimizer state it prunes).
  void set(train::Trainer& t, const std::string& n, const Tensor& p, const Tensor& m);
  // Telemetry: the mask updates of one step, recorded as one "prune" record
  // (per layer: sparsity, weights dropped and grown against the previous
  // mask, a mask picture) at that step's batch_end (or the evaluation, or the
  // next update, if one comes first). Channel pruning records its surgery itself.
  void note_update(train::Trainer& t, const std::string& n, const Tensor& prev, const Tensor& now);
  void record_update(train::Trainer& t);
  nlohmann::json pending_ = nullptr;
  bool restoring_ = false;
  void attach_loaded(train::Trainer& t);
  // Refreshes the sparsity / nonzeros metrics.
  virtual void measure(train::Trainer& t);
  // A checkpoint tensor that is not a mask (member state such as IMP's
  // snapshot): members that own one override this; the default refuses it.
  virtual void load_extra_tensor(const std::string& key, const Tensor& v);
  // The clock value (Trainer::clock) at a fraction of training.
  int64_t step_at(double fraction, train::Trainer& t) const;
  // Events on a grid t0, t0 + dt, ...: how many grid points the clock has
  // reached (0 before t0). A member acts when this exceeds events_, so a
  // clock that steps over a grid point (batch-level selection) still acts.
  static int64_t grid_points(int64_t clock, int64_t t0, int64_t dt) { return clock < t0 ? 0 : (clock - t0) / dt + 1; }

  // Schedule events done (mask updates, IMP rounds, DST updates): checkpointed.
  int64_t events_ = 0;

  PruneSpec spec_;
  TensorMap masks_, loaded_;
  double last_sparsity_ = 0;
  int64_t last_nonzeros_ = 0;
};

// The members, one folder each.
std::unique_ptr<PruneBase> make_magnitude_prune(const PruneSpec& s);  // magnitude/: oneshot, gradual
std::unique_ptr<PruneBase> make_imp_prune(const PruneSpec& s);        // imp/: lottery ticket with rewinding
std::unique_ptr<PruneBase> make_rigl_prune(const PruneSpec& s);       // rigl/: RigL and SET
std::unique_ptr<PruneBase> make_nm_prune(const PruneSpec& s);         // nm/: N:M semi-structured
std::unique_ptr<PruneBase> make_channel_prune(const PruneSpec& s);    // channel/: whole units, tensors shrink

}  // namespace brisk::efficiency::pruning_methods
