// Dynamic sparse training: RigL (Evci et al. 2020; schedule=rigl) and SET
// (Mocanu et al. 2018; schedule=set). At step start·total the prunable
// weights get random masks at the target sparsity, per-layer densities from
// ERK or uniform (dst.h). Every `frequency` steps until end·total (on the
// trainer's clock), after the gradient is known and before the update, each
// layer drops the fraction
// alpha·(1 + cos(pi t / t_end)) / 2 of its active weights with the smallest
// |w| and regrows as many: by largest |dense gradient| (RigL) or at random
// (SET). On an update batch every Linear runs dense, so the gradient RigL
// ranks is the dense one even where the layer is sparse enough for the CSR
// kernel. SET follows Mocanu et al. in dropping the k smallest |w| (their
// paper drops the fraction zeta of the largest negative and smallest
// positive weights; by magnitude over both signs here, as RigL's code does)
// and anneals its fraction with RigL's cosine schedule (the paper keeps
// zeta fixed): documented in rigl/README.md. The sparsity stays at the
// target throughout.
#include <cmath>
#include <map>

#include "core/mask.h"
#include "nn/functional.h"
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
    int64_t t0 = step_at(spec_.start, t);
    if (t.clock() >= t0 && masks_.empty()) init_masks(t);
    pending_ = due(t);
    // On an update RigL needs the dense gradient: the CSR path of a sparse
    // Linear (nn/functional.h) computes the weight gradient at active
    // positions only, so this batch runs every Linear dense (same forward).
    if (pending_ > 0 && rigl()) {
      saved_threshold_ = nn::functional::sparse_linear_threshold();
      nn::functional::set_sparse_linear_threshold(2.0);
    }
    capture_->on = rigl() && pending_ > 0;
  }

  // Drop and regrow after the gradient is known, before the update.
  void on_before_step(train::Trainer& t) override {
    if (pending_ == 0) return;
    if (rigl()) nn::functional::set_sparse_linear_threshold(saved_threshold_);
    int64_t k = pending_;
    pending_ = 0;
    events_ = k;
    int64_t t0 = step_at(spec_.start, t), t_end = step_at(spec_.end, t);
    double frac = pruning::rigl_fraction(spec_.alpha, k * spec_.frequency, t_end - t0);
    Generator gen(t.config().seed * 1000003ull + uint64_t(t0 + k * spec_.frequency));
    if (rigl() && t.process_group().size() > 1) {
      // The dense gradients were captured before the trainer averaged the
      // (masked) gradients over the ranks: average them too (in name order,
      // the same on every rank), so that every rank grows the same weights.
      std::vector<Tensor> dense;
      for (auto& [n, g] : capture_->grads) {
        g = g.to(DType::f32).contiguous();
        dense.push_back(g);
      }
      train::dist::all_reduce_mean_(t.process_group(), dense);
    }
    for (auto& [n, p] : prunable(t)) {
      Tensor m = brisk::get_mask(p);
      if (!m.defined()) continue;
      // A frozen layer (efficiency/freezing) had no backward pass: no
      // gradient to grow by, and it no longer trains, so its mask stays.
      if (rigl() && !capture_->grads.count(n)) continue;
      int64_t active = p.numel() - brisk::count_zeros(m);
      int64_t drop = int64_t(std::llround(frac * double(active)));
      Tensor g = rigl() ? capture_->grads.at(n) : Tensor();
      auto dg = pruning::drop_and_grow(p, m, g, drop, &gen);
      set(t, n, p, dg.mask);
      moved_ += int64_t(dg.grown.size());
    }
    capture_->grads.clear();
    capture_->on = false;
  }

  void add_metrics(nlohmann::json& j) const override {
    PruneBase::add_metrics(j);
    j["dst_regrown"] = moved_;
  }
  // The regrown count is a run total: a resumed run goes on counting.
  nlohmann::json state_json() const override {
    nlohmann::json j = PruneBase::state_json();
    j["dst_regrown"] = moved_;
    return j;
  }
  void load_state_json(const nlohmann::json& j) override {
    PruneBase::load_state_json(j);
    moved_ = j.value("dst_regrown", int64_t(0));
  }

 private:
  // The update due at this batch (its index k >= 1 on the grid t0 + k·frequency
  // inside (t0, t_end)), or 0. A clock that stepped over grid points (batch-
  // level selection) makes one update for them, at the latest.
  int64_t due(train::Trainer& t) {
    int64_t t0 = step_at(spec_.start, t), t_end = step_at(spec_.end, t), dt = spec_.frequency;
    if (masks_.empty() || t_end <= t0) return 0;
    int64_t last = (t_end - t0 - 1) / dt;  // updates strictly before t_end
    int64_t k = std::min(grid_points(t.clock(), t0 + dt, dt), last);
    if (k <= events_) return 0;
    if (t.clock() >= t_end) {  // stepped past the end: nothing more to do
      events_ = k;
      return 0;
    }
    return k;
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
      set(t, ps[i].first, ps[i].second,
          pruning::random_mask(ps[i].second.shape(), dens[i], ps[i].second.dtype(), gen));
    measure(t);
  }

  struct Capture {
    bool on = false;
    std::map<std::string, Tensor> grads;
  };
  std::shared_ptr<Capture> capture_ = std::make_shared<Capture>();
  int64_t moved_ = 0;
  int64_t pending_ = 0;           // the update index this batch makes (0: none)
  double saved_threshold_ = 0.9;  // the CSR switch, restored after an update batch
};

}  // namespace

std::unique_ptr<PruneBase> make_rigl_prune(const PruneSpec& s) { return std::make_unique<RiglPrune>(s); }

}  // namespace brisk::efficiency::pruning_methods
