// `--method prune:...`: magnitude pruning as a Trainer method. Masks live on
// the parameters (core/mask.h), so the optimizer keeps them exact; this
// object only decides when and what to prune, and checkpoints its masks.
//
// Keys (see docs/methods/pruning.md):
//   target=0.9            final sparsity of the prunable weights (conv/linear weights)
//   schedule=oneshot|gradual
//   structure=unstructured|N:M (e.g. 2:4)
//   scope=layer|global
//   start=0, end=0.5      fractions of the run's total steps (gradual ramps between them)
//   frequency=100         steps between mask updates (gradual)
//   initial=0             sparsity at start (gradual)
//   alpha=0.3             rigl/set: fraction of active weights dropped and regrown,
//                         cosine-annealed to 0 at `end` (default end=0.75 for them)
//   distribution=erk      rigl/set: per-layer densities, erk or uniform
//   structure=channel     remove whole output units (conv channels, linear
//                         neurons) of every channel group (nn/channel_groups.h:
//                         each hidden layer; channels coupled by residual
//                         additions together), `target` of them per group, at
//                         step start·total (default start=0.3), scored by
//                         score=l1 (row L1 norm summed over the group's writers)
//                         or bn (|gamma| summed over its BatchNorms); the
//                         tensors shrink (surgery/surgery.h remove_group_units)
//   rounds=3, rewind=0    imp: training splits into `rounds` equal rounds; at
//                         the end of each but the last, prune by magnitude to
//                         1 - (1 - target)^(k / (rounds - 1)), rewind every
//                         parameter to its value at step rewind·total, zero the
//                         optimizer state and restart the schedule
#include <cmath>
#include <cstdio>
#include <map>

#include "efficiency/method.h"
#include "efficiency/pruning/dst.h"
#include "efficiency/pruning/magnitude.h"
#include "core/mask.h"
#include "surgery/surgery.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class PruneMethod : public train::Callback {
 public:
  double target = 0.9, initial = 0.0, start = 0.0, end = 0.5, alpha = 0.3;
  int64_t frequency = 100, nm_n = 0, nm_m = 0, rounds = 3;
  double rewind = 0.0;
  std::string schedule = "oneshot", scope = "layer", distribution = "erk", score = "l1";
  bool channel = false;

  std::string name() const override { return "prune"; }

  bool dynamic() const { return schedule == "rigl" || schedule == "set"; }

  void on_batch_start(train::Trainer& t) override {
    int64_t step = t.state().step, total = t.total_steps();
    int64_t t0 = int64_t(std::llround(start * double(total)));
    if (dynamic()) {
      if (step == t0 || (step > t0 && masks_.empty())) init_dynamic(t);
      capture_->on = schedule == "rigl" && is_dst_update(step, total);
      return;
    }
    if (nm_m > 0) {
      if (step == t0 || (step > t0 && masks_.empty())) apply_nm(t);
      return;
    }
    if (schedule == "imp") {
      imp_batch_start(t);
      return;
    }
    if (channel) {
      if (step == t0 && channel_keep_.empty()) prune_channels(t);
      return;
    }
    if (schedule == "oneshot") {
      if (step == t0 || (step > t0 && masks_.empty())) apply_sparsity(t, target);
      return;
    }
    // gradual: updates at t0, t0 + dt, ..., t0 + n dt
    int64_t t_end = std::max(t0, int64_t(std::llround(end * double(total))));
    int64_t n = std::max<int64_t>(1, (t_end - t0) / frequency);
    if (step < t0 || step > t0 + n * frequency || (step - t0) % frequency != 0) return;
    apply_sparsity(t, pruning::gradual_sparsity(step, initial, target, t0, n, frequency));
  }

  nn::Sequential& sequential(train::Trainer& t) {
    auto* seq = dynamic_cast<nn::Sequential*>(&t.model());
    BRISK_CHECK(seq != nullptr, "--method prune: structure=channel needs a Sequential model");
    return *seq;
  }

  // Channel groups (nn/channel_groups.h): every hidden layer's outputs, with
  // the channels coupled by residual additions as one group.
  void prune_channels(train::Trainer& t) {
    nn::Sequential& seq = sequential(t);
    if (original_params_ == 0) original_params_ = t.model().num_parameters();
    size_t G = nn::channel_groups(seq).size();
    for (size_t gi = 0; gi < G; ++gi) {
      nn::ChannelGroup g = nn::channel_groups(seq)[gi];
      int64_t n = g.width();
      // score per unit, summed over the group's writers (l1: weight rows; bn: |gamma| of its BatchNorms)
      std::vector<double> sc(static_cast<size_t>(n), 0.0);
      bool by_bn = score == "bn" && !g.norms.empty();
      for (auto& site : by_bn ? g.norms : g.producers) {
        Tensor w = site.layer->parameter("weight").detach();
        auto v = by_bn ? abs(w).to_vector() : sum(abs(w).reshape({n, -1}), {1}).to_vector();
        for (int64_t u = 0; u < n; ++u) sc[size_t(u)] += v[size_t(u)];
      }
      std::vector<int64_t> order(static_cast<size_t>(n));
      for (int64_t u = 0; u < n; ++u) order[size_t(u)] = u;
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sc[size_t(a)] > sc[size_t(b)]; });
      int64_t k = std::max<int64_t>(1, n - std::llround(target * double(n)));
      std::vector<int64_t> keep(order.begin(), order.begin() + k);
      std::sort(keep.begin(), keep.end());
      nn::remove_group_units(g, keep, &t.optimizer());
      channel_keep_[g.name] = keep;
    }
    measure(t);
  }

  // On resume: masks go back on their parameters here, before any batch (a
  // checkpoint taken before the first step after a resume, as when batch-level
  // selection loads batches without stepping, must still hold them).
  void on_restore(train::Trainer& t) override {
    attach_loaded(t);
    if (!channel || channel_keep_.empty()) return;
    nn::Sequential& seq = sequential(t);
    original_params_ = t.model().num_parameters();
    for (auto& g : nn::channel_groups(seq)) {
      auto it = channel_keep_.find(g.name);
      if (it != channel_keep_.end()) nn::remove_group_units(g, it->second, &t.optimizer());
    }
  }

  // IMP: snapshot at the rewind step; at each round boundary prune, rewind and
  // reset the optimizer.
  void imp_batch_start(train::Trainer& t) {
    int64_t step = t.state().step, total = t.total_steps();
    int64_t L = std::max<int64_t>(1, total / rounds);
    int64_t rewind_step = int64_t(std::llround(rewind * double(total)));
    if (step == rewind_step && snapshot_.empty())
      for (auto& [n, p] : t.model().named_parameters()) snapshot_[n] = p.detach().clone();
    if (step == 0 || step % L != 0 || step / L >= rounds) return;
    int64_t k = step / L;  // prunings so far, after this one
    double s = 1.0 - std::pow(1.0 - target, double(k) / double(rounds - 1));
    apply_sparsity(t, s);  // masks only shrink
    NoGradGuard ng;
    for (auto& [n, p] : t.model().named_parameters()) {
      Tensor pd = p.detach();
      pd.copy_(snapshot_.at(n));
      brisk::apply_mask(p);
    }
    for (auto& [n, st] : t.optimizer().state())
      for (auto& [sk, v] : st) v.zero_();
  }

  // RigL/SET: drop and regrow after the gradient is known, before the update.
  // IMP: each round replays the learning-rate schedule from its start.
  void on_before_step(train::Trainer& t) override {
    if (schedule == "imp") {
      int64_t L = std::max<int64_t>(1, t.total_steps() / rounds), step = t.state().step;
      int64_t round = std::min(step / L, rounds - 1);
      t.optimizer().set_lr(t.lr_at((step - round * L) * rounds));  // round's position on the full schedule
      return;
    }
    if (!dynamic() || !is_dst_update(t.state().step, t.total_steps())) return;
    int64_t step = t.state().step, t_end = int64_t(std::llround(end * double(t.total_steps())));
    double frac = pruning::rigl_fraction(alpha, step - t0_of(t), t_end - t0_of(t));
    Generator gen(t.config().seed * 1000003ull + uint64_t(step));
    for (auto& [n, p] : prunable(t)) {
      Tensor m = brisk::get_mask(p);
      if (!m.defined()) continue;
      int64_t active = p.numel() - brisk::count_zeros(m);
      int64_t k = int64_t(std::llround(frac * double(active)));
      Tensor g = schedule == "rigl" ? capture_->grads.at(n) : Tensor();
      auto dg = pruning::drop_and_grow(p, m, g, k, &gen);
      set(n, p, dg.mask);
      dst_moved_ += int64_t(dg.grown.size());
    }
    capture_->grads.clear();
    capture_->on = false;
  }

  void add_metrics(nlohmann::json& j) const override {
    j["sparsity"] = last_sparsity_;
    j["nonzeros"] = last_nonzeros_;
    if (dynamic()) j["dst_regrown"] = dst_moved_;
  }
  void on_eval_start(train::Trainer& t) override { measure(t); }

  void load_state_json(const nlohmann::json& j) override {
    if (j.contains("channel_keep"))
      for (auto& [k, v] : j.at("channel_keep").items()) channel_keep_[k] = v.get<std::vector<int64_t>>();
  }

  nlohmann::json state_json() const override {
    if (channel) return {{"structure", "channel"}, {"target", target}, {"score", score}, {"channel_keep", channel_keep_}};
    return {{"schedule", schedule}, {"target", target}, {"scope", scope}, {"nm", std::to_string(nm_n) + ":" + std::to_string(nm_m)}};
  }
  TensorMap state_tensors() const override {
    TensorMap m = masks_;
    for (auto& [n, v] : snapshot_) m["imp/" + n] = v;
    return m;
  }
  void load_state_tensors(const TensorMap& m) override {
    for (auto& [k, v] : m) {
      if (k.rfind("imp/", 0) == 0) snapshot_[k.substr(4)] = v.clone();
      else loaded_[k] = v;
    }
  }
  void on_fit_start(train::Trainer& t) override {
    if (nm_m > 0) check_nm_applies(t);
    if (schedule != "rigl") return;
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

 private:
  std::vector<std::pair<std::string, Tensor>> prunable(train::Trainer& t) const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (auto& [n, p] : t.model().named_parameters())
      if (p.dim() >= 2) out.emplace_back(n, p);
    return out;
  }

  void attach_loaded(train::Trainer& t) {
    if (loaded_.empty()) return;
    for (auto& [n, p] : prunable(t)) {
      auto it = loaded_.find(n);
      if (it == loaded_.end()) continue;
      brisk::set_mask(p, it->second);
      masks_[n] = brisk::get_mask(p);
    }
    loaded_.clear();
  }

  void apply_sparsity(train::Trainer& t, double s) {
    auto ps = prunable(t);
    if (scope == "global") {
      std::vector<Tensor> ws, prev;
      for (auto& [n, p] : ps) {
        ws.push_back(p);
        prev.push_back(brisk::get_mask(p));
      }
      auto ms = pruning::global_magnitude_masks(ws, s, prev);
      for (size_t i = 0; i < ps.size(); ++i) set(ps[i].first, ps[i].second, ms[i]);
    } else {
      for (auto& [n, p] : ps)
        set(n, p, pruning::magnitude_mask(p, pruning::prune_count(s, p.numel()), brisk::get_mask(p)));
    }
    measure(t);
  }

  int64_t t0_of(train::Trainer& t) const { return int64_t(std::llround(start * double(t.total_steps()))); }

  bool is_dst_update(int64_t step, int64_t total) const {
    int64_t t0 = int64_t(std::llround(start * double(total))), t_end = int64_t(std::llround(end * double(total)));
    return step > t0 && step < t_end && (step - t0) % frequency == 0;
  }

  // Random masks at the target sparsity, per-layer densities from ERK or uniform.
  void init_dynamic(train::Trainer& t) {
    if (!masks_.empty()) return;
    auto ps = prunable(t);
    std::vector<Shape> shapes;
    for (auto& [n, p] : ps) shapes.push_back(p.shape());
    std::vector<double> dens = distribution == "erk" ? pruning::erk_densities(shapes, target)
                                                     : std::vector<double>(ps.size(), 1 - target);
    Generator gen(t.config().seed * 7919ull + 17);
    for (size_t i = 0; i < ps.size(); ++i)
      set(ps[i].first, ps[i].second, pruning::random_mask(ps[i].second.shape(), dens[i], ps[i].second.dtype(), gen));
    measure(t);
  }

  // Layers whose reduction size K (in_features, or C·kh·kw) is not a multiple
  // of M stay dense, as in NVIDIA's ASP (e.g. the cnn's first conv, K = 9):
  // no N:M pattern covers them. `sparsity` then reports the achieved fraction.
  // Said up front: an N:M spec that fits no layer would prune nothing, and
  // layers it skips are named.
  void check_nm_applies(train::Trainer& t) const {
    std::string fits, skipped;
    for (auto& [n, p] : prunable(t)) {
      std::string item = n + " (K=" + std::to_string(p.numel() / p.size(0)) + ")";
      std::string& list = (p.numel() / p.size(0)) % nm_m == 0 ? fits : skipped;
      list += (list.empty() ? "" : ", ") + item;
    }
    BRISK_CHECK(!fits.empty(), "--method prune: structure ", nm_n, ":", nm_m, " fits no layer of this model: no "
                "reduction size K is a multiple of ", nm_m, " (", skipped, ")");
    if (!skipped.empty())
      std::printf("prune: %lld:%lld leaves dense the layers whose K is not a multiple of %lld: %s\n",
                  (long long)nm_n, (long long)nm_m, (long long)nm_m, skipped.c_str());
  }

  void apply_nm(train::Trainer& t) {
    for (auto& [n, p] : prunable(t))
      if ((p.numel() / p.size(0)) % nm_m == 0) set(n, p, pruning::nm_mask(p, nm_n, nm_m));
    measure(t);
  }

  void set(const std::string& n, const Tensor& p, const Tensor& m) {
    brisk::set_mask(p, m);
    masks_[n] = brisk::get_mask(p);
  }

  void measure(train::Trainer& t) {
    if (channel) {  // removed weights count as pruned, against the original size
      int64_t now = t.model().num_parameters();
      if (original_params_ == 0) original_params_ = now;
      last_sparsity_ = 1.0 - double(now) / double(original_params_);
      last_nonzeros_ = now;
      return;
    }
    int64_t total = 0, zeros = 0;
    for (auto& [n, p] : prunable(t)) {
      total += p.numel();
      zeros += brisk::count_zeros(p);
    }
    last_sparsity_ = total ? double(zeros) / double(total) : 0.0;
    last_nonzeros_ = total - zeros;
  }

  struct Capture {
    bool on = false;
    std::map<std::string, Tensor> grads;
  };
  std::shared_ptr<Capture> capture_ = std::make_shared<Capture>();
  int64_t dst_moved_ = 0;
  TensorMap masks_, loaded_, snapshot_;
  std::map<std::string, std::vector<int64_t>> channel_keep_;  // layer index -> kept units
  int64_t original_params_ = 0;
  double last_sparsity_ = 0;
  int64_t last_nonzeros_ = 0;
};

}  // namespace

void register_pruning_methods() {
  register_method("prune", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<PruneMethod>();
    m->target = a.get_double("target", 0.9);
    m->initial = a.get_double("initial", 0.0);
    m->schedule = a.get_string("schedule", "oneshot");
    m->scope = a.get_string("scope", "layer");
    m->start = a.get_double("start", 0.0);
    m->end = a.get_double("end", m->schedule == "rigl" || m->schedule == "set" ? 0.75 : 0.5);
    m->alpha = a.get_double("alpha", 0.3);
    m->distribution = a.get_string("distribution", "erk");
    BRISK_CHECK(m->alpha > 0 && m->alpha <= 1, "--method prune: alpha must be in (0, 1], got ", m->alpha);
    BRISK_CHECK(m->distribution == "erk" || m->distribution == "uniform", "--method prune: unknown distribution '",
                m->distribution, "' (known: erk, uniform)");
    m->frequency = a.get_int("frequency", 100);
    std::string structure = a.get_string("structure", "unstructured");
    BRISK_CHECK(m->target >= 0 && m->target < 1, "--method prune: target must be in [0, 1), got ", m->target);
    BRISK_CHECK(m->initial >= 0 && m->initial <= m->target, "--method prune: initial must be in [0, target]");
    BRISK_CHECK(m->start >= 0 && m->start <= 1 && m->end >= m->start && m->end <= 1,
                "--method prune: need 0 <= start <= end <= 1 (fractions of training), got start=", m->start,
                " end=", m->end);
    BRISK_CHECK(m->frequency >= 1, "--method prune: frequency must be >= 1 step");
    BRISK_CHECK(m->scope == "layer" || m->scope == "global", "--method prune: unknown scope '", m->scope,
                "' (known: layer, global)");
    m->rounds = a.get_int("rounds", 3);
    m->rewind = a.get_double("rewind", 0.0);
    BRISK_CHECK(m->schedule == "oneshot" || m->schedule == "gradual" || m->dynamic() || m->schedule == "imp",
                "--method prune: unknown schedule '", m->schedule, "' (known: oneshot, gradual, imp, rigl, set)");
    BRISK_CHECK(m->schedule != "imp" || m->rounds >= 2, "--method prune: imp needs rounds >= 2, got ", m->rounds);
    BRISK_CHECK(m->rewind >= 0 && m->rewind * double(m->rounds) < 1, "--method prune: rewind must lie in the first "
                "round, [0, 1/rounds), got ", m->rewind);
    BRISK_CHECK(!(m->dynamic() && m->scope == "global"), "--method prune: rigl/set set per-layer densities "
                "(distribution=erk|uniform); scope=global does not apply");
    m->score = a.get_string("score", "l1");
    BRISK_CHECK(m->score == "l1" || m->score == "bn", "--method prune: unknown score '", m->score, "' (known: l1, bn)");
    if (structure == "channel") {
      m->channel = true;
      m->start = a.get_double("start", 0.3);
      BRISK_CHECK(m->schedule == "oneshot", "--method prune: structure=channel prunes once at `start` "
                  "(schedule=oneshot), got schedule=", m->schedule);
    } else if (structure != "unstructured") {
      size_t colon = structure.find(':');
      try {
        BRISK_CHECK(colon != std::string::npos, "");
        std::string n = structure.substr(0, colon), mm = structure.substr(colon + 1);
        size_t used_n = 0, used_m = 0;
        m->nm_n = std::stoll(n, &used_n);
        m->nm_m = std::stoll(mm, &used_m);
        BRISK_CHECK(used_n == n.size() && used_m == mm.size() && m->nm_m <= 1024, "");  // "2:4x" is not 2:4
      } catch (const std::exception&) {
        BRISK_FAIL("--method prune: unknown structure '", structure, "' (known: unstructured, N:M such as 2:4)");
      }
      BRISK_CHECK(m->nm_m >= 1 && m->nm_n >= 1 && m->nm_n < m->nm_m, "--method prune: N:M needs 1 <= N < M, got ",
                  structure);
      BRISK_CHECK(m->schedule == "oneshot", "--method prune: structure ", structure,
                  " is applied once at `start` (schedule=oneshot), got schedule=", m->schedule);
    }
    return m;
  });
}

}  // namespace brisk::efficiency
