// `--method select:kind=...`: sample selection in the data path. Every kind
// keeps the per-example statistics store up to date. Implemented kinds:
//   rs2: each round (epoch) trains on a fresh uniform subset of m examples,
//        m = ratio·N rounded down to whole batches (at least one), without
//        replacement across rounds: the K = ceil(N/m) rounds of a cycle walk
//        one random permutation; the last round of a cycle, if short, is topped
//        up from the cycle's start so every round has exactly m examples and
//        every example is visited at least once per cycle. The schedule spans
//        the reduced step count.
//        Keys: ratio=0.5.
//   infobatch: see efficiency/selection/infobatch.h. The first epoch and the
//        final `delta` fraction of epochs use all data with weight 1.
//        Keys: ratio=0.5 (fraction of below-mean examples dropped), delta=0.125.
//   el2n | forgetting: static data pruning. Epochs [0, start) train on all
//        data and score every example from the training forward passes (EL2N
//        averaged over them; forgetting events); from epoch `start` on, only
//        the round(keep·N) highest-scoring examples are visited (ties: lower
//        index kept). Keys: keep=0.5, start=1, order=random|curriculum
//        (curriculum: visit the kept set from easy to hard, ascending score).
//   grand: static data pruning by GraNd (efficiency/selection/grand.h),
//        scored once at the start of epoch `start` with the weights trained so
//        far (its time is counted in wall_s and score_s). Same keys as el2n,
//        plus grand=last|full (the classifier's exact per-example gradient
//        norm from one forward pass, or every parameter's by per-example
//        backward passes).
//   selective-backprop: batch level (Jiang et al. 2019). Each loaded batch is
//        scored by a forward-only pass; example i is backpropagated with
//        probability F(loss_i)^beta, F = the fraction of the last `history`
//        losses <= loss_i; selected examples are buffered into full batches.
//        variant=rank (Composer's): inside [start, end), the round(keep·B)
//        highest losses of each batch. Outside [start, end) all are selected.
//        Keys: beta=1, history=1024, variant=prob|rank, keep=0.5, start, end
//        (fractions of training; defaults: prob [1/epochs, 1), rank [0.5, 0.9)).
//   rho-loss: batch level (Mindermann et al. 2022). A `holdout` fraction of
//        the training set is set aside (never trained on); before the first
//        epoch a small `il_model` is trained on it for `il_epochs` (its time is
//        counted in wall_s and score_s), and its loss on every training example
//        is stored by dataset index. Each scored batch keeps the round(keep·B)
//        largest (training loss − irreducible loss). Keys: keep=0.1,
//        holdout=0.1, il_model=mlp, il_epochs=2, il_lr=0.05.
// The learning-rate schedule runs on epoch progress (train/trainer.cpp), so
// epochs that visit fewer examples still span one epoch of the schedule.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "efficiency/method.h"
#include "efficiency/selection/example_stats.h"
#include "efficiency/selection/grand.h"
#include "efficiency/selection/infobatch.h"
#include "efficiency/selection/rho_loss.h"
#include "efficiency/selection/selective_backprop.h"
#include "models/models.h"
#include "nn/functional.h"
#include "optim/optimizer.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class SelectMethod : public train::Callback, public train::BatchSelector {
 public:
  double beta = 1.0, win_start = -1, win_end = -1, holdout = 0.1, il_lr = 0.05;
  int64_t il_epochs = 2;
  std::string il_model = "mlp";
  int64_t history = 1024;
  std::string variant = "prob";
  std::string kind = "rs2";
  double ratio = 0.5, delta = 0.125, keep = 0.5;
  int64_t start = 1;
  bool curriculum = false;

  bool is_static() const { return kind == "el2n" || kind == "forgetting" || kind == "grand"; }
  selection::GrandScope grand_scope = selection::GrandScope::last;
  int64_t kept_count(int64_t n) const { return std::clamp<int64_t>(std::llround(keep * double(n)), 1, n); }
  uint64_t seed = 0;

  std::string name() const override { return "select"; }

  int64_t round_size(int64_t n, int64_t B) const {
    int64_t m = int64_t(std::floor(ratio * double(n) / double(B))) * B;
    return std::clamp<int64_t>(m, std::min(B, n), n);
  }
  // InfoBatch's sizes depend on the losses; the full size is its upper bound.
  int64_t epoch_examples(int64_t e, int64_t n, int64_t B) const override {
    if (kind == "rs2") return round_size(n, B);
    if (is_static()) return e >= start ? kept_count(n) : n;
    return n;
  }

  void on_fit_start(train::Trainer& t) override {
    n_ = t.train_loader().dataset().size();
    batch_ = t.config().batch_size;
    seed = t.config().seed;
    if (stats_.size() != n_) stats_ = selection::ExampleStats(n_);
  }

  // The RS2 subset for round `epoch`.
  Tensor rs2_order(int64_t epoch) const {
    int64_t m = round_size(n_, batch_), K = (n_ + m - 1) / m;
    int64_t cycle = epoch / K, j = epoch % K;
    Generator g(seed * 0x9E3779B97F4A7C15ull + uint64_t(cycle) + 1);
    Tensor perm = randperm(n_, &g);
    const int64_t* p = perm.data_ptr<int64_t>();
    std::vector<double> idx;
    for (int64_t i = 0; i < m; ++i) idx.push_back(double(p[(j * m + i) % n_]));
    // Shuffle within the round, so batches mix (keyed by epoch).
    Generator g2(seed * 31 + uint64_t(epoch) + 7);
    Tensor inner = randperm(m, &g2);
    std::vector<double> out(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) out[size_t(i)] = idx[size_t(inner.data_ptr<int64_t>()[i])];
    return from_vector(out, {m}, DType::i64);
  }

  void on_epoch_start(train::Trainer& t) override {
    int64_t e = t.state().epoch;
    if (kind == "rs2") {
      t.epoch_order = rs2_order(e);
      return;
    }
    if (is_static()) {
      if (e < start) return;  // scoring epochs: all data
      if (kept_.empty()) {
        if (kind == "grand") score_grand(t);
        kept_ = top_scored();
      }
      if (curriculum) {  // easy to hard: ascending score (ties: lower index first)
        std::vector<int64_t> o = kept_;
        std::stable_sort(o.begin(), o.end(), [&](int64_t a, int64_t b) { return score(a) < score(b); });
        t.epoch_order = from_vector(std::vector<double>(o.begin(), o.end()), {int64_t(o.size())}, DType::i64);
        return;
      }
      Generator g(seed * 0x94D049BB133111EBull + uint64_t(e) + 11);
      Tensor perm = randperm(int64_t(kept_.size()), &g);
      std::vector<double> order(kept_.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = double(kept_[size_t(perm.data_ptr<int64_t>()[i])]);
      t.epoch_order = from_vector(order, {int64_t(order.size())}, DType::i64);
      return;
    }
    if (kind == "rho-loss") {
      if (train_idx_.empty()) split_holdout();
      if (il_.empty()) train_il_model(t);
      Generator g(seed * 0x9FB21C651E98DF25ull + uint64_t(e) + 1);
      Tensor perm = randperm(int64_t(train_idx_.size()), &g);
      std::vector<double> order(train_idx_.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = double(train_idx_[size_t(perm.data_ptr<int64_t>()[i])]);
      t.epoch_order = from_vector(order, {int64_t(order.size())}, DType::i64);
      return;
    }
    if (kind != "infobatch") return;
    bool full = e == 0 || double(e) >= (1.0 - delta) * double(t.config().epochs);
    weights_.assign(size_t(n_), 1.0f);
    if (full) return;  // default order: every example, weight 1
    Generator g(seed * 0x2545F4914F6CDD1Dull + uint64_t(e) + 3);
    selection::EpochPlan plan = selection::infobatch_plan(stats_.last_loss, stats_.times_seen, ratio, g);
    weights_ = plan.weight;
    Tensor perm = randperm(int64_t(plan.keep.size()), &g);
    std::vector<double> order(plan.keep.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = double(plan.keep[size_t(perm.data_ptr<int64_t>()[i])]);
    t.epoch_order = from_vector(order, {int64_t(order.size())}, DType::i64);
  }

  void on_after_forward(train::Trainer& t) override {
    if (kind != "infobatch") return;
    if (weights_.empty()) weights_.assign(size_t(n_), 1.0f);
    int64_t B = t.batch.indices.numel();
    std::vector<double> w(static_cast<size_t>(B));
    const int64_t* idx = t.batch.indices.data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i) w[size_t(i)] = weights_[size_t(idx[i])];
    t.loss_weights = from_vector(w, {B}, TensorOptions(t.logits.dtype()));
  }

  train::BatchSelector* batch_selector() override {
    return kind == "selective-backprop" || kind == "rho-loss" ? this : nullptr;
  }

  // RHO-LOSS: the held-out split is a fixed seeded subset; the rest is trained on.
  void split_holdout() {
    Generator g(seed * 0xA24BAED4963EE407ull + 5);
    Tensor perm = randperm(n_, &g);
    int64_t h = std::clamp<int64_t>(std::llround(holdout * double(n_)), 1, n_ - 1);
    holdout_idx_.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + h);
    train_idx_.assign(perm.data_ptr<int64_t>() + h, perm.data_ptr<int64_t>() + n_);
    std::sort(holdout_idx_.begin(), holdout_idx_.end());
    std::sort(train_idx_.begin(), train_idx_.end());
  }

  // GraNd: one scoring pass over the training set with the current weights.
  void score_grand(train::Trainer& t) {
    auto t0 = std::chrono::steady_clock::now();
    auto* seq = dynamic_cast<nn::Sequential*>(&t.model());
    BRISK_CHECK(seq != nullptr, "--method select:kind=grand needs a Sequential model");
    grand_ = selection::grand_scores(*seq, t.train_loader().dataset(), grand_scope, 2 * t.config().batch_size);
    il_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // Trains the irreducible-loss model on the holdout split and scores every example.
  void train_il_model(train::Trainer& t) {
    auto t0 = std::chrono::steady_clock::now();
    uint64_t saved_seed = default_generator().seed(), saved_off = default_generator().offset();
    default_generator().set_state(seed * 13 + 1, 0);  // the IL model's init must not shift training's RNG
    auto model = models::make_model(il_model);
    default_generator().set_state(saved_seed, saved_off);
    optim::SGD opt(model->named_parameters(), {il_lr, 0.9, 0.0, 5e-4, false});
    data::LoaderOptions lo;
    lo.batch_size = t.config().batch_size;
    lo.seed = seed + 99;
    lo.drop_last = false;
    lo.prefetch = false;
    data::DataLoader dl(t.train_loader().dataset(), lo);
    std::vector<double> hold(holdout_idx_.begin(), holdout_idx_.end());
    Tensor hold_t = from_vector(hold, {int64_t(hold.size())}, DType::i64);
    for (int64_t e = 0; e < il_epochs; ++e) {
      Generator g(seed * 17 + uint64_t(e));
      Tensor order = index_select(hold_t, 0, randperm(hold_t.numel(), &g));
      dl.start_epoch(e, 0, order);
      while (auto b = dl.next()) {
        Tensor loss = nn::functional::cross_entropy(model->forward(b->x), b->y);
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
    }
    il_.assign(size_t(n_), 0.0f);
    NoGradGuard ng;
    model->eval();
    dl.start_epoch(0, 0, arange(n_));
    while (auto b = dl.next()) {
      Tensor l = nn::functional::cross_entropy(model->forward(b->x), b->y, nn::functional::Reduction::none)
                     .to(DType::f32)
                     .contiguous();
      for (int64_t i = 0; i < l.numel(); ++i) il_[size_t(b->indices.data_ptr<int64_t>()[i])] = l.data_ptr<float>()[i];
    }
    il_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  Tensor select(train::Trainer& t, const Tensor& indices, const Tensor& labels, const Tensor& losses,
                const Tensor& logits) override {
    int64_t B = losses.numel();
    const auto& st = t.state();
    double full = double(t.config().epochs * t.train_loader().num_batches_full());
    double progress = double(t.schedule_position()) / std::max(full, 1.0);
    double s0 = win_start >= 0 ? win_start : (variant == "rank" ? 0.5 : 1.0 / double(t.config().epochs));
    double s1 = win_end >= 0 ? win_end : (variant == "rank" ? 0.9 : 1.0);
    std::vector<float> l(static_cast<size_t>(B));
    Tensor lc = losses.to(DType::f32).contiguous();
    std::copy(lc.data_ptr<float>(), lc.data_ptr<float>() + B, l.begin());
    std::vector<bool> pick(size_t(B), true);
    bool active = progress >= s0 && progress < s1;
    if (kind == "rho-loss") {
      Tensor out = selection::rho_select(losses, indices, il_, keep);
      stats_.update(indices, losses, logits, labels, st.epoch, /*backpropagated=*/false);
      const int64_t* idx = indices.contiguous().data_ptr<int64_t>();
      for (int64_t i = 0; i < B; ++i)
        if (out.data_ptr<bool>()[i]) stats_.times_selected[size_t(idx[i])]++;
      return out;
    }
    if (active && variant == "rank") {
      std::vector<int64_t> order(static_cast<size_t>(B));
      for (int64_t i = 0; i < B; ++i) order[size_t(i)] = i;
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return l[size_t(a)] > l[size_t(b)]; });
      int64_t k = std::clamp<int64_t>(std::llround(keep * double(B)), 0, B);
      pick.assign(size_t(B), false);
      for (int64_t i = 0; i < k; ++i) pick[size_t(order[size_t(i)])] = true;
    } else if (active) {
      Generator g(seed * 0xD6E8FEB86659FD93ull + uint64_t(st.epoch) * 1000003ull + uint64_t(st.batch_in_epoch));
      std::vector<float> sorted(hist_);
      std::sort(sorted.begin(), sorted.end());
      for (int64_t i = 0; i < B; ++i) {
        double p = selection::selection_probability(sorted, l[size_t(i)], beta);
        auto w = g.block(uint64_t(i));
        double u = double(w[0]) / 4294967296.0;
        pick[size_t(i)] = u < p;
      }
    }
    for (int64_t i = 0; i < B; ++i) {  // the loss history sees every scored loss
      if (int64_t(hist_.size()) < history) hist_.push_back(l[size_t(i)]);
      else hist_[size_t(hist_pos_)] = l[size_t(i)];
      hist_pos_ = (hist_pos_ + 1) % history;
    }
    stats_.update(indices, losses, logits, labels, st.epoch, /*backpropagated=*/false);
    Tensor out = empty({B}, DType::boolean);
    const int64_t* idx = indices.contiguous().data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i) {
      out.data_ptr<bool>()[i] = pick[size_t(i)];
      if (pick[size_t(i)]) stats_.times_selected[size_t(idx[i])]++;
    }
    return out;
  }

  void on_after_loss(train::Trainer& t) override {
    if (kind == "selective-backprop" || kind == "rho-loss") {  // stats came from the scoring pass
      backpropagated_ += t.batch.indices.numel();
      return;
    }
    stats_.update(t.batch.indices, t.per_example_loss, t.logits, t.batch.y, t.state().epoch);
    backpropagated_ += t.batch.indices.numel();
  }

  void add_metrics(nlohmann::json& j) const override {
    j["examples_backpropagated"] = backpropagated_;
    j["selected_frac"] = seen_full_ > 0 ? double(backpropagated_) / double(seen_full_) : 0.0;
    j["score_s"] = score_s_;  // forward-only scoring time (0 for epoch-level kinds)
  }
  void on_eval_start(train::Trainer& t) override {
    // What full-data training would have backpropagated by now.
    seen_full_ = t.state().epoch * n_ + std::min(n_, t.state().batch_in_epoch * t.config().batch_size);
    score_s_ = t.score_seconds() + il_seconds_;
  }

  nlohmann::json state_json() const override {
    return {{"kind", kind}, {"ratio", ratio}, {"examples_backpropagated", backpropagated_}, {"hist_pos", hist_pos_},
            {"il_seconds", il_seconds_}};
  }
  void load_state_json(const nlohmann::json& j) override {
    backpropagated_ = j.value("examples_backpropagated", int64_t(0));
    hist_pos_ = j.value("hist_pos", int64_t(0));
    il_seconds_ = j.value("il_seconds", 0.0);
  }
  TensorMap state_tensors() const override {
    TensorMap m = stats_.to_tensors();
    if (!kept_.empty()) {
      Tensor k = empty({int64_t(kept_.size())}, DType::i64);
      std::copy(kept_.begin(), kept_.end(), k.data_ptr<int64_t>());
      m["static/kept"] = k;
    }
    if (!grand_.empty()) {
      Tensor h = empty({int64_t(grand_.size())}, DType::f32);
      std::copy(grand_.begin(), grand_.end(), h.data_ptr<float>());
      m["grand/scores"] = h;
    }
    if (!il_.empty()) {
      Tensor h = empty({int64_t(il_.size())}, DType::f32);
      std::copy(il_.begin(), il_.end(), h.data_ptr<float>());
      m["rho/il"] = h;
    }
    if (!hist_.empty()) {
      Tensor h = empty({int64_t(hist_.size())}, DType::f32);
      std::copy(hist_.begin(), hist_.end(), h.data_ptr<float>());
      m["sb/history"] = h;
    }
    if (!weights_.empty()) {  // this epoch's InfoBatch weights (needed to resume mid-epoch)
      Tensor w = empty({int64_t(weights_.size())}, DType::f32);
      std::copy(weights_.begin(), weights_.end(), w.data_ptr<float>());
      m["infobatch/weights"] = w;
    }
    return m;
  }
  void load_state_tensors(const TensorMap& m) override {
    if (m.empty()) return;
    stats_.from_tensors(m);
    auto it_il = m.find("rho/il");
    if (it_il != m.end()) {
      Tensor h = it_il->second.contiguous();
      il_.assign(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
    }
    auto gt = m.find("grand/scores");
    if (gt != m.end()) {
      Tensor h = gt->second.contiguous();
      grand_.assign(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
    }
    auto ht = m.find("sb/history");
    if (ht != m.end()) {
      Tensor h = ht->second.contiguous();
      hist_.assign(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
    }
    auto kt = m.find("static/kept");
    if (kt != m.end()) {
      Tensor k = kt->second.contiguous();
      kept_.assign(k.data_ptr<int64_t>(), k.data_ptr<int64_t>() + k.numel());
    }
    auto it = m.find("infobatch/weights");
    if (it != m.end()) {
      Tensor w = it->second.contiguous();
      weights_.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
    }
  }
  const selection::ExampleStats& stats() const { return stats_; }

  double score(int64_t i) const {
    if (kind == "grand") return double(grand_[size_t(i)]);
    return kind == "el2n" ? double(stats_.el2n[size_t(i)]) : double(stats_.forgetting[size_t(i)]);
  }

  // The kept set: the kept_count(N) highest scores (ties: lower index first).
  std::vector<int64_t> top_scored() const {
    std::vector<int64_t> idx(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) idx[size_t(i)] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score(a) > score(b); });
    idx.resize(size_t(kept_count(n_)));
    std::sort(idx.begin(), idx.end());
    return idx;
  }

 private:
  int64_t n_ = 0, batch_ = 1, backpropagated_ = 0, seen_full_ = 0;
  std::vector<float> weights_;  // InfoBatch: per dataset index, this epoch
  std::vector<int64_t> kept_;   // el2n / forgetting: the kept set (fixed once chosen)
  std::vector<float> hist_;     // selective-backprop: the last `history` losses (ring)
  std::vector<float> il_;       // rho-loss: irreducible loss per dataset index
  std::vector<float> grand_;    // grand: score per dataset index (once scored)
  std::vector<int64_t> holdout_idx_, train_idx_;
  double il_seconds_ = 0;  // scoring outside the trainer's passes: IL model, GraNd
  int64_t hist_pos_ = 0;
  double score_s_ = 0;
  selection::ExampleStats stats_;
};

}  // namespace

void register_selection_methods() {
  register_method("select", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<SelectMethod>();
    m->kind = a.get_string("kind", "rs2");
    BRISK_CHECK(m->kind == "rs2" || m->kind == "infobatch" || m->is_static() || m->kind == "selective-backprop" ||
                    m->kind == "rho-loss",
                "--method select: unknown kind '", m->kind,
                "' (known: selective-backprop, rho-loss, rs2, infobatch, el2n, forgetting, grand)");
    if (m->kind == "rho-loss") {
      m->keep = a.get_double("keep", 0.1);
      m->holdout = a.get_double("holdout", 0.1);
      m->il_model = a.get_string("il_model", "mlp");
      m->il_epochs = a.get_int("il_epochs", 2);
      m->il_lr = a.get_double("il_lr", 0.05);
      BRISK_CHECK(m->keep > 0 && m->keep <= 1, "--method select: keep must be in (0, 1], got ", m->keep);
      BRISK_CHECK(m->holdout > 0 && m->holdout < 1, "--method select: holdout must be in (0, 1), got ", m->holdout);
      BRISK_CHECK(m->il_epochs >= 1 && m->il_lr > 0, "--method select: il_epochs must be >= 1 and il_lr > 0");
      models::make_model(m->il_model);  // validates the name now, not mid-run
      return m;
    }
    if (m->kind == "selective-backprop") {
      m->beta = a.get_double("beta", 1.0);
      m->history = a.get_int("history", 1024);
      m->variant = a.get_string("variant", "prob");
      m->keep = a.get_double("keep", 0.5);
      m->win_start = a.get_double("start", -1);
      m->win_end = a.get_double("end", -1);
      BRISK_CHECK(m->beta >= 0, "--method select: beta must be >= 0, got ", m->beta);
      BRISK_CHECK(m->history >= 1, "--method select: history must be >= 1");
      BRISK_CHECK(m->variant == "prob" || m->variant == "rank", "--method select: unknown variant '", m->variant,
                  "' (known: prob, rank)");
      BRISK_CHECK(m->keep > 0 && m->keep <= 1, "--method select: keep must be in (0, 1], got ", m->keep);
      return m;
    }
    if (m->is_static()) {
      m->keep = a.get_double("keep", 0.5);
      m->start = a.get_int("start", 1);
      std::string order = a.get_string("order", "random");
      BRISK_CHECK(order == "random" || order == "curriculum", "--method select: unknown order '", order,
                  "' (known: random, curriculum)");
      m->curriculum = order == "curriculum";
      if (m->kind == "grand") {
        std::string g = a.get_string("grand", "last");
        BRISK_CHECK(g == "last" || g == "full", "--method select: unknown grand scope '", g, "' (known: last, full)");
        m->grand_scope = g == "full" ? selection::GrandScope::full : selection::GrandScope::last;
      }
      BRISK_CHECK(m->keep > 0 && m->keep <= 1, "--method select: keep must be in (0, 1], got ", m->keep);
      BRISK_CHECK(m->start >= 1, "--method select: start must be >= 1 epoch of scoring, got ", m->start);
      return m;
    }
    m->ratio = a.get_double("ratio", 0.5);
    if (m->kind == "rs2") {
      BRISK_CHECK(m->ratio > 0 && m->ratio <= 1, "--method select: ratio must be in (0, 1], got ", m->ratio);
    } else {
      m->delta = a.get_double("delta", 0.125);
      BRISK_CHECK(m->ratio >= 0 && m->ratio < 1, "--method select: infobatch ratio must be in [0, 1), got ", m->ratio);
      BRISK_CHECK(m->delta >= 0 && m->delta <= 1, "--method select: delta must be in [0, 1], got ", m->delta);
    }
    return m;
  });
}

}  // namespace brisk::efficiency
