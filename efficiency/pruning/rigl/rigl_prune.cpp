// Dynamic sparse training: RigL (Evci et al. 2020; schedule=rigl) and SET
// (Mocanu et al. 2018; schedule=set). At step start·total the prunable
// weights get random masks at the target sparsity, per-layer densities from
// ERK or uniform (dst.h). Every `frequency` steps until end·total, after the
// gradient is known and before the update, each layer drops the fraction
// alpha·(1 + cos(pi t / t_end)) / 2 of its active weights with the smallest
// |w| and regrows as many: by largest |dense gradient| (RigL) or at random
// (SET). The sparsity stays at the target throughout.
#include <cmath>
#include <map>

#include "core/mask.h"
#include "efficiency/pruning/prune_base.h"
#include "efficiency/pruning/rigl/dst.h"

namespace brisk::efficiency::pruning_methods {

namespace {

class RiglPrune : public PruneBase {
 public:
  using PruneBase::PruneBase;

  bool rigl() const { return spec_.schedule == "rigl"; }

  void on_fit_start(train::Trainer& t) override {
    if (!rigl()) return;
    // RigL grows by |dense gradient|: capture it before the mask hook (which
    // is registered later, when masks are first set) zeroes pruned entries.
    for (auto& [n, p] : prunable(t)) {
      std::shared_ptr<Capture> cap = capture_;
      std::string key = n;
      p.register_hook([cap, key](const Tensor& g) -> std::optional<Tensor> {
        if (cap->on) cap->grads[key] = g.clone();
        return std::nullopt;
      });
    }
  }

  void on_batch_start(train::Trainer& t) override {
    int64_t step = t.state().step, total = t.total_steps(), t0 = step_at(spec_.start, t);
    if (step == t0 || (step > t0 && masks_.empty())) init_masks(t);
    capture_->on = rigl() && is_update(step, total);
  }

  // Drop and regrow after the gradient is known, before the update.
  void on_before_step(train::Trainer& t) override {
    int64_t step = t.state().step;
    if (!is_update(step, t.total_steps())) return;
    int64_t t0 = step_at(spec_.start, t), t_end = step_at(spec_.end, t);
    double frac = pruning::rigl_fraction(spec_.alpha, step - t0, t_end - t0);
    Generator gen(t.config().seed * 1000003ull + uint64_t(step));
    for (auto& [n, p] : prunable(t)) {
      Tensor m = brisk::get_mask(p);
      if (!m.defined()) continue;
      int64_t active = p.numel() - brisk::count_zeros(m);
      int64_t k = int64_t(std::llround(frac * double(active)));
      Tensor g = rigl() ? capture_->grads.at(n) : Tensor();
      auto dg = pruning::drop_and_grow(p, m, g, k, &gen);
      set(n, p, dg.mask);
      moved_ += int64_t(dg.grown.size());
    }
    capture_->grads.clear();
    capture_->on = false;
  }

  void add_metrics(nlohmann::json& j) const override {
    PruneBase::add_metrics(j);
    j["dst_regrown"] = moved_;
  }

 private:
  bool is_update(int64_t step, int64_t total) const {
    int64_t t0 = int64_t(std::llround(spec_.start * double(total)));
    int64_t t_end = int64_t(std::llround(spec_.end * double(total)));
    return step > t0 && step < t_end && (step - t0) % spec_.frequency == 0;
  }

  // Random masks at the target sparsity, per-layer densities from ERK or uniform.
  void init_masks(train::Trainer& t) {
    if (!masks_.empty()) return;
    auto ps = prunable(t);
    std::vector<Shape> shapes;
    for (auto& [n, p] : ps) shapes.push_back(p.shape());
    std::vector<double> dens = spec_.distribution == "erk" ? pruning::erk_densities(shapes, spec_.target)
                                                           : std::vector<double>(ps.size(), 1 - spec_.target);
    Generator gen(t.config().seed * 7919ull + 17);
    for (size_t i = 0; i < ps.size(); ++i)
      set(ps[i].first, ps[i].second,
          pruning::random_mask(ps[i].second.shape(), dens[i], ps[i].second.dtype(), gen));
    measure(t);
  }

  struct Capture {
    bool on = false;
    std::map<std::string, Tensor> grads;
  };
  std::shared_ptr<Capture> capture_ = std::make_shared<Capture>();
  int64_t moved_ = 0;
};

}  // namespace

std::unique_ptr<PruneBase> make_rigl_prune(const PruneSpec& s) { return std::make_unique<RiglPrune>(s); }

}  // namespace brisk::efficiency::pruning_methods
