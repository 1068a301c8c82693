// The grow family's shared schedule, replay and metrics (grow_base.h).
#include "efficiency/growth/grow_base.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "nn/channel_groups.h"
#include "surgery/surgery.h"

namespace brisk::efficiency::growth_methods {

namespace {
// Parameter name -> shape, to say what a surgery changed.
std::map<std::string, Shape> shapes_of(nn::Module& m) {
  std::map<std::string, Shape> s;
  for (auto& [n, p] : m.named_parameters()) s[n] = p.shape();
  return s;
}

// The parameters whose shape a surgery changed, added or removed.
nlohmann::json shape_changes(const std::map<std::string, Shape>& before, const std::map<std::string, Shape>& after) {
  nlohmann::json out = nlohmann::json::array();
  for (auto& [n, s] : after) {
    auto it = before.find(n);
    if (it == before.end()) out.push_back({{"name", n}, {"before", nullptr}, {"after", s}});
    else if (it->second != s) out.push_back({{"name", n}, {"before", it->second}, {"after", s}});
  }
  for (auto& [n, s] : before)
    if (!after.count(n)) out.push_back({{"name", n}, {"before", s}, {"after", nullptr}});
  return out;
}
}  // namespace

void GrowBase::on_fit_start(train::Trainer& t) {
  if (!full_.empty()) return;
  full_ = full_sizes(t);
  int64_t before = t.model().num_parameters();
  auto shapes = t.telemetry_on() ? shapes_of(t.model()) : std::map<std::string, Shape>{};
  shrink(t);
  if (t.telemetry_on())
    t.record("grow", {{"method", spec_.kind},
                      {"event", "initial cut"},
                      {"width", spec_.start},
                      {"params_before", before},
                      {"params_after", t.model().num_parameters()},
                      {"changed", shape_changes(shapes, shapes_of(t.model()))}});
}

void GrowBase::on_batch_start(train::Trainer& t) {
  int64_t now = t.clock();
  while (done_ < int64_t(spec_.points.size()) && now >= growth_step(t, done_)) {
    if (!t.telemetry_on()) {
      grow_to(t, done_);
    } else {
      // The loss of this batch just before and just after the surgery (eval
      // mode, no graph): equal for a function-preserving growth.
      int64_t before = t.model().num_parameters();
      auto shapes = shapes_of(t.model());
      double loss_before = t.probe_loss();
      grow_to(t, done_);
      double loss_after = t.probe_loss();
      t.record("grow", {{"method", spec_.kind},
                        {"event", "growth " + std::to_string(done_ + 1)},
                        {"width", width_},
                        {"params_before", before},
                        {"params_after", t.model().num_parameters()},
                        {"loss_before", loss_before},
                        {"loss_after", loss_after},
                        {"changed", shape_changes(shapes, shapes_of(t.model()))}});
    }
    ++done_;
  }
  every_batch(t);
}

void GrowBase::on_restore(train::Trainer& t) {
  int64_t target = done_;
  shrink(t);
  for (int64_t k = 0; k < target; ++k) grow_to(t, k);
}

void GrowBase::add_metrics(nlohmann::json& j) const {
  j["params"] = params_;
  j["width"] = width_;
}

void GrowBase::grow_to(train::Trainer& t, int64_t k) {
  double mult = std::min(1.0, spec_.start * std::pow(2.0, double(k + 1)));  // doubles at each point
  grow(t, k, mult);
  width_ = mult;
  params_ = t.model().num_parameters();
}

nn::Sequential& GrowBase::sequential(train::Trainer& t) {
  auto* seq = dynamic_cast<nn::Sequential*>(&t.model());
  BRISK_CHECK(seq != nullptr, "--method grow: needs a Sequential model");
  return *seq;
}

Generator GrowBase::group_generator(train::Trainer& t, int64_t k, size_t l) {
  return Generator(t.config().seed * 0x9E3779B97F4A7C15ull + uint64_t(k) * 131 + l + 1);
}

int64_t GrowBase::growth_step(train::Trainer& t, int64_t k) const {
  return int64_t(std::llround(spec_.points[size_t(k)] * double(t.total_steps())));
}

int64_t GrowBase::size_at(size_t unit, double mult) const {
  return std::clamp<int64_t>(std::llround(mult * double(full_[unit])), 1, full_[unit]);
}

std::vector<int64_t> GrowBase::group_widths(nn::Sequential& seq) {
  std::vector<int64_t> w;
  for (auto& g : nn::channel_groups(seq)) w.push_back(g.width());
  return w;
}

void GrowBase::shrink_width(train::Trainer& t) {
  nn::Sequential& seq = sequential(t);
  for (size_t l = 0; l < full_.size(); ++l) {
    nn::ChannelGroup g = nn::channel_groups(seq)[l];
    std::vector<int64_t> keep(static_cast<size_t>(size_at(l, spec_.start)));
    for (size_t u = 0; u < keep.size(); ++u) keep[u] = int64_t(u);
    nn::remove_group_units(g, keep, &t.optimizer());
  }
  finish_cut(t);
}

void GrowBase::finish_cut(train::Trainer& t) {
  width_ = spec_.start;
  params_ = t.model().num_parameters();
}

}  // namespace brisk::efficiency::growth_methods
