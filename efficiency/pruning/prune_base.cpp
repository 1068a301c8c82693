// The prune family's shared state and its checkpointing (prune_base.h).
#include "efficiency/pruning/prune_base.h"

#include <set>

#include "nn/layers.h"

#include <cmath>

#include "core/mask.h"
#include "core/ops.h"
#include "efficiency/pruning/magnitude.h"

namespace brisk::efficiency::pruning_methods {

void PruneBase::add_metrics(nlohmann::json& j) const {
  j["sparsity"] = last_sparsity_;
  j["nonzeros"] = last_nonzeros_;
}

nlohmann::json PruneBase::state_json() const {
  return {{"schedule", spec_.schedule},
          {"target", spec_.target},
          {"scope", spec_.scope},
          {"nm", std::to_string(spec_.nm_n) + ":" + std::to_string(spec_.nm_m)},
          {"events_done", events_}};
}

void PruneBase::load_state_tensors(const TensorMap& m) {
  for (auto& [k, v] : m) {
    if (k.find('/') != std::string::npos) load_extra_tensor(k, v);
    else loaded_[k] = v;
  }
}

void PruneBase::load_extra_tensor(const std::string& key, const Tensor&) {
  BRISK_FAIL("--method prune: the checkpoint holds tensor '", key, "', which this pruning schedule (",
             spec_.schedule, ") does not keep");
}

// Weights of rank >= 2 (linear and conv), except embedding tables: a token's
// vector is a lookup, not a product that sparse (or N:M) kernels speed up,
// and a GPT's table is also its output head.
std::vector<std::pair<std::string, Tensor>> PruneBase::prunable(train::Trainer& t) const {
  std::set<const TensorImpl*> tables;
  for (auto& [n, m] : t.model().named_modules())
    if (auto* e = dynamic_cast<nn::Embedding*>(m)) tables.insert(e->weight.unsafe_impl());
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, p] : t.model().named_parameters())
    if (p.dim() >= 2 && !tables.count(p.unsafe_impl())) out.emplace_back(n, p);
  return out;
}

void PruneBase::attach_loaded(train::Trainer& t) {
  if (loaded_.empty()) return;
  restoring_ = true;  // putting saved masks back is not a decision: no telemetry record
  for (auto& [n, p] : prunable(t)) {
    auto it = loaded_.find(n);
    if (it == loaded_.end()) continue;
    set(t, n, p, it->second);
  }
  restoring_ = false;
  loaded_.clear();
}

void PruneBase::apply_sparsity(train::Trainer& t, double s) {
  auto ps = prunable(t);
  if (spec_.scope == "global") {
    std::vector<Tensor> ws, prev;
    for (auto& [n, p] : ps) {
      ws.push_back(p);
      prev.push_back(brisk::get_mask(p));
    }
    auto ms = pruning::global_magnitude_masks(ws, s, prev);
    for (size_t i = 0; i < ps.size(); ++i) set(t, ps[i].first, ps[i].second, ms[i]);
  } else {
    for (auto& [n, p] : ps)
      set(t, n, p, pruning::magnitude_mask(p, pruning::prune_count(s, p.numel()), brisk::get_mask(p)));
  }
  measure(t);
}

void PruneBase::set(train::Trainer& t, const std::string& n, const Tensor& p, const Tensor& m) {
  // A new step's first update: the previous step's updates are complete.
  if (!pending_.is_null() && pending_["step"] != t.state().step) record_update(t);
  Tensor prev = t.telemetry_on() ? brisk::get_mask(p) : Tensor();
  brisk::set_mask(p, m);
  masks_[n] = brisk::get_mask(p);
  t.optimizer().apply_masks();  // state at newly pruned positions is zero from now on
  if (t.telemetry_on() && !restoring_) note_update(t, n, prev, masks_[n]);
}

void PruneBase::note_update(train::Trainer& t, const std::string& n, const Tensor& prev, const Tensor& now) {
  if (pending_.is_null())
    pending_ = {{"step", t.state().step}, {"clock", t.clock()}, {"wall_s", t.training_seconds()},
                {"layers", nlohmann::json::array()}};
  // kept/dropped/grown from the 0/1 masks: prev undefined means dense (all kept).
  Tensor k = now.to(DType::f32);
  int64_t numel = k.numel(), kept = numel - brisk::count_zeros(k), dropped = 0, grown = 0;
  if (prev.defined()) {
    Tensor q = prev.to(DType::f32);
    dropped = int64_t(sum(relu(q - k)).item());  // kept before, pruned now
    grown = int64_t(sum(relu(k - q)).item());    // pruned before, kept now (RigL, SET)
  } else {
    dropped = numel - kept;
  }
  pending_["layers"].push_back({{"name", n},
                                {"numel", numel},
                                {"sparsity", 1.0 - double(kept) / double(std::max<int64_t>(numel, 1))},
                                {"dropped", dropped},
                                {"grown", grown},
                                {"mask", train::mask_picture(now)}});
}

void PruneBase::record_update(train::Trainer& t) {
  if (pending_.is_null()) return;
  // Sparsity over every masked weight, as the masks stand after this update.
  int64_t total = 0, zeros = 0;
  for (auto& [n, m] : masks_) {
    total += m.numel();
    zeros += brisk::count_zeros(m);
  }
  pending_["method"] = spec_.nm_n ? "nm" : spec_.schedule;
  pending_["sparsity"] = total ? double(zeros) / double(total) : 0.0;
  t.record("prune", std::move(pending_));
  pending_ = nullptr;
}

void PruneBase::measure(train::Trainer& t) {
  int64_t total = 0, zeros = 0;
  for (auto& [n, p] : prunable(t)) {
    total += p.numel();
    zeros += brisk::count_zeros(p);
  }
  last_sparsity_ = total ? double(zeros) / double(total) : 0.0;
  last_nonzeros_ = total - zeros;
}

int64_t PruneBase::step_at(double fraction, train::Trainer& t) const {
  return int64_t(std::llround(fraction * double(t.total_steps())));
}

}  // namespace brisk::efficiency::pruning_methods
