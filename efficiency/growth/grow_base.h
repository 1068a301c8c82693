// What every `--method grow:kind=...` member shares: the growth points
// (fractions of training), the count of growths done (checkpointed, and
// replayed on resume with the same seeded choices, so a resumed run is
// bit-exact), and the metrics (params, width). Each member
// (efficiency/growth/<member>/) says how the model starts small and how it
// grows; the surgery itself is shared (surgery/surgery.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "train/trainer.h"

namespace brisk::efficiency::growth_methods {

// Every key of the grow family (docs/methods/growth.md), parsed and checked.
struct GrowSpec {
  std::string kind = "net2net";
  double start = 0.25, noise = 0.0, ramp = 0.05;
  std::vector<double> points{0.25, 0.5};
};

class GrowBase : public train::Callback {
 public:
  explicit GrowBase(GrowSpec spec) : spec_(std::move(spec)) {}
  std::string name() const override { return "grow"; }

  bool changes_shapes() const override { return true; }
  void on_fit_start(train::Trainer& t) override;
  void on_batch_start(train::Trainer& t) override;
  // A fresh model at full size: redo the initial cut and every growth so far.
  void on_restore(train::Trainer& t) override;
  void add_metrics(nlohmann::json& j) const override;
  void on_eval_start(train::Trainer& t) override { params_ = t.model().num_parameters(); }
  nlohmann::json state_json() const override { return {{"growths_done", done_}, {"width", width_}}; }
  void load_state_json(const nlohmann::json& j) override { done_ = j.value("growths_done", int64_t(0)); }

 protected:
  // The full size of each unit of growth (a channel group's width, an identity
  // run's length; on a GPT: its depth, or its MLP width and head count).
  virtual std::vector<int64_t> full_sizes(train::Trainer& t) const = 0;
  // Cuts the full-size model down to `start` of each size.
  virtual void shrink(train::Trainer& t) = 0;
  // Growth k (0-based) to `mult` of full size.
  virtual void grow(train::Trainer& t, int64_t k, double mult) = 0;
  // Called at every batch start after any growth (MSG ramps its gates here).
  virtual void every_batch(train::Trainer&) {}

  static nn::Sequential& sequential(train::Trainer& t);
  // The generator for growth k of channel group l: seeded by (run seed, k, l),
  // so a resumed run replays the same choices.
  static Generator group_generator(train::Trainer& t, int64_t k, size_t l);
  int64_t growth_step(train::Trainer& t, int64_t k) const;  // on the trainer's clock
  int64_t size_at(size_t unit, double mult) const;
  // Width members: the width of every channel group; and the initial cut, where
  // every group keeps its first size_at(g, start) units.
  static std::vector<int64_t> group_widths(nn::Sequential& seq);
  void shrink_width(train::Trainer& t);
  void finish_cut(train::Trainer& t);

  GrowSpec spec_;
  std::vector<int64_t> full_;  // full size of each unit of growth
  int64_t done_ = 0;           // growths applied
  double width_ = 1.0;
  int64_t params_ = 0;

 private:
  void grow_to(train::Trainer& t, int64_t k);
};

// The members, one folder each.
std::unique_ptr<GrowBase> make_net2net_grow(const GrowSpec& s);  // net2net/: function-preserving widening
std::unique_ptr<GrowBase> make_msg_grow(const GrowSpec& s);      // msg/: masked structural growth
std::unique_ptr<GrowBase> make_stack_grow(const GrowSpec& s);    // stack/: progressive stacking (depth)

}  // namespace brisk::efficiency::growth_methods
