// `--method freeze:kind=freezeout|linear,...`: progressively freeze the
// earliest layers and skip their backward work.
//
// A "layer" (unit) is a top-level child of the model that holds parameters,
// in forward order (the cnn: conv1, conv2, fc1, fc2; the resnet: stem conv,
// stem BatchNorm, each residual block, the classifier). Unit i of n freezes at
// training progress t_i (progress = the learning-rate schedule's position,
// in [0, 1]); once frozen its parameters stop requiring gradients, so
// autograd builds no graph through it: no weight gradient, no input gradient
// for the unit after it (its input no longer needs one), no optimizer update.
//
// freezeout (Brock et al. 2017): t_i = f(t0 + (1 - t0) * i / (n - 1)), f the
//   identity (spacing=linear) or cube (spacing=cubic, t0 given before cubing,
//   as the paper's code does); unit i's learning rate is the run's schedule
//   compressed into [0, t_i] (the run's cosine becomes the paper's per-layer
//   cosine 0.5 * lr_i * (1 + cos(pi * t / t_i))), with lr_i = lr / t_i when
//   scale_lr (same area under every layer's curve), so it reaches zero just
//   as the layer freezes. The last unit has t = 1: it trains to the end.
// linear (Composer's layer freezing): from `start` on, the frozen fraction
//   of units grows linearly to `level` at the end: t_i = start + (1 - start) *
//   (i + 1) / (level * n); learning rates are untouched.
//
// Freezing is a function of progress, so nothing needs checkpointing: it is
// re-applied at every batch start and on resume.
#include <cmath>
#include <memory>

#include "efficiency/method.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

struct Unit {
  std::string name;                // the child's name ("0", "3", ...)
  std::vector<std::string> params;  // dotted parameter names
  double t = 1;                    // freeze point, as progress
};

class FreezeMethod : public train::Callback {
 public:
  std::string kind = "freezeout", spacing = "cubic";
  double t0 = 0.8, start = 0.5, level = 1.0;
  bool scale_lr = true;

  std::string name() const override { return "freeze"; }

  void on_fit_start(train::Trainer& t) override { plan(t); }
  void on_restore(train::Trainer& t) override { apply(t); }
  void on_batch_start(train::Trainer& t) override { apply(t); }

  // Layer-wise learning rates (freezeout): set after the trainer set the
  // scheduled lr for this step, as a factor of it.
  void on_before_step(train::Trainer& t) override {
    if (kind != "freezeout") return;
    optim::Optimizer& opt = t.optimizer();
    double global = opt.lr(), pos = double(t.schedule_position());
    for (const Unit& u : units_) {
      if (frozen(u, t)) continue;
      double lr = u.t >= 1 ? global : t.lr_at(int64_t(std::floor(pos / u.t))) * (scale_lr ? 1.0 / u.t : 1.0);
      double s = global > 0 ? lr / global : 0.0;
      for (auto& p : u.params) opt.set_lr_scale(p, s);
    }
  }

  void add_metrics(nlohmann::json& j) const override {
    j["frozen_layers"] = frozen_count_;
    j["frozen_params"] = frozen_params_;
  }
  nlohmann::json state_json() const override {
    nlohmann::json j = {{"kind", kind}}, ts = nlohmann::json::array();
    for (const Unit& u : units_) ts.push_back({{"layer", u.name}, {"freeze_at", u.t}});
    j["layers"] = ts;
    return j;
  }

 private:
  // Where the learning-rate schedule is, in [0, 1] (full-data steps).
  double progress(const train::Trainer& t) const { return double(t.schedule_position()) / total_; }
  bool frozen(const Unit& u, const train::Trainer& t) const { return u.t < 1 && progress(t) >= u.t; }

  void plan(train::Trainer& t) {
    total_ = double(t.full_steps());
    units_.clear();
    for (auto& [cname, child] : t.model().named_children()) {
      auto ps = child->named_parameters();
      if (ps.empty()) continue;
      Unit u;
      u.name = cname;
      for (auto& [pn, p] : ps) u.params.push_back(cname + "." + pn);
      units_.push_back(std::move(u));
    }
    BRISK_CHECK(units_.size() >= 2, "--method freeze: the model has ", units_.size(),
                " layer(s) with parameters at its top level; freezing needs at least two (the last always trains)");
    double n = double(units_.size());
    for (size_t i = 0; i < units_.size(); ++i) {
      double x = double(i);
      if (kind == "freezeout") {
        double lin = t0 + (1 - t0) * x / (n - 1);
        units_[i].t = spacing == "cubic" ? lin * lin * lin : lin;
      } else {
        units_[i].t = start + (1 - start) * (x + 1) / (level * n);
      }
      if (i + 1 == units_.size()) units_[i].t = std::max(units_[i].t, 1.0);  // the classifier trains to the end
    }
  }

  void apply(train::Trainer& t) {
    if (units_.empty()) plan(t);
    frozen_count_ = frozen_params_ = 0;
    for (const Unit& u : units_) {
      bool fz = frozen(u, t);
      for (auto& pn : u.params) {
        Tensor p = t.model().parameter(pn);
        if (fz) {
          p.set_grad(Tensor());
          frozen_params_ += p.numel();
        }
        p.requires_grad_(!fz);  // surgery may have put a fresh (trainable) tensor here
      }
      frozen_count_ += fz;
    }
  }

  std::vector<Unit> units_;
  double total_ = 1;
  int64_t frozen_count_ = 0, frozen_params_ = 0;
};

}  // namespace

void register_freezing_methods() {
  register_method("freeze", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<FreezeMethod>();
    m->kind = a.get_string("kind", "freezeout");
    if (m->kind == "freezeout") {
      a.set_kind("kind=freezeout", {"kind", "t0", "spacing", "scale_lr", "start", "level"});
      m->t0 = a.get_double("t0", 0.8);
      m->spacing = a.get_string("spacing", "cubic");
      int64_t s = a.get_int("scale_lr", 1);
      BRISK_CHECK(m->t0 > 0 && m->t0 <= 1, "--method freeze: t0 must be in (0, 1], got ", m->t0);
      BRISK_CHECK(m->spacing == "linear" || m->spacing == "cubic", "--method freeze: unknown spacing '", m->spacing,
                  "' (known: linear, cubic)");
      BRISK_CHECK(s == 0 || s == 1, "--method freeze: scale_lr must be 0 or 1, got ", s);
      m->scale_lr = s == 1;
    } else if (m->kind == "linear") {
      a.set_kind("kind=linear", {"kind", "t0", "spacing", "scale_lr", "start", "level"});
      m->start = a.get_double("start", 0.5);
      m->level = a.get_double("level", 1.0);
      BRISK_CHECK(m->start >= 0 && m->start < 1, "--method freeze: start must be in [0, 1), got ", m->start);
      BRISK_CHECK(m->level > 0 && m->level <= 1, "--method freeze: level must be in (0, 1], got ", m->level);
    } else {
      BRISK_FAIL("--method freeze: unknown kind '", m->kind, "' (known: freezeout, linear)");
    }
    return m;
  });
}

}  // namespace brisk::efficiency
