// `--method grow:...`: progressive width growth with Net2WiderNet surgery.
// The model starts at `start` of its width (every Linear/Conv2d that feeds
// another keeps its first round(start·n) units, cut from the full-size
// initialization) and doubles its width at each of `points` (fractions of
// training) until it is full size. Each growth widens every such layer with
// nn::widen, which remaps the optimizer state in the same call; with noise=0
// the network's function is unchanged at the moment of growth.
//
// kind=msg (masked structural growth): new units get fresh weights and a
// Gate at 0 that ramps linearly to 1 over `ramp` (fraction of training), so
// the function is unchanged at growth for any initialization.
//
// Width is counted per channel group (nn/channel_groups.h), so channels
// coupled by residual additions grow together (net2net on a resnet).
//
// kind=stack (progressive stacking, Gong et al. 2019): depth instead of
// width. Each run of identity residual blocks starts at max(1, round(start·L))
// of its L blocks and is stacked on itself (copies of its blocks on top) at
// each growth point, capped at L. Needs runs to grow: --model resnet-deep.
//
// Keys: kind=net2net|msg|stack, start=0.25 (stack: 0.5), points=0.25/0.5
// (slash-separated), noise=0 (net2net), ramp=0.05 (msg).
// Growth is replayed on resume (Callback::on_restore) with the same seeded
// choices, so a resumed run is bit-exact.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "efficiency/method.h"
#include "surgery/surgery.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class GrowMethod : public train::Callback {
 public:
  std::string kind = "net2net";
  double start = 0.25, noise = 0.0, ramp = 0.05;
  std::vector<double> points{0.25, 0.5};

  std::string name() const override { return "grow"; }

  void on_fit_start(train::Trainer& t) override {
    if (!full_.empty()) return;
    nn::Sequential& seq = sequential(t);
    if (kind == "stack") {
      full_ = nn::identity_run_lengths(seq);
      BRISK_CHECK(!full_.empty(), "--method grow:kind=stack needs identity residual blocks to stack (e.g. --model "
                                  "resnet-deep); this model has none");
    } else {
      for (auto& g : nn::channel_groups(seq)) full_.push_back(g.width());
    }
    shrink(t);
  }

  int64_t growth_step(train::Trainer& t, int64_t k) const {
    return int64_t(std::llround(points[size_t(k)] * double(t.total_steps())));
  }

  void on_batch_start(train::Trainer& t) override {
    int64_t step = t.state().step;
    while (done_ < int64_t(points.size()) && step >= growth_step(t, done_)) {
      grow(t, done_);
      ++done_;
    }
    if (kind == "msg") ramp_gates(t);
  }

  // gate = clamp((step - birth) / ramp_steps, 0, 1) for grown units, 1 for original ones.
  void ramp_gates(train::Trainer& t) {
    double steps = std::max(1.0, ramp * double(t.total_steps()));
    double now = double(t.state().step);
    NoGradGuard ng;
    for (size_t i = 0; i < sequential(t).size(); ++i)
      if (auto* gt = dynamic_cast<nn::Gate*>(sequential(t)[i].get())) {
        std::vector<double> b = gt->birth.to_vector(), gv(b.size());
        for (size_t j = 0; j < b.size(); ++j) gv[j] = b[j] < 0 ? 1.0 : std::clamp((now - b[j]) / steps, 0.0, 1.0);
        Tensor gd = gt->gate;
        gd.copy_(from_vector(gv, {int64_t(gv.size())}));
      }
  }

  void on_restore(train::Trainer& t) override {
    // A fresh model at full size: redo the initial cut and every growth so far.
    int64_t target = done_;
    shrink(t);
    for (int64_t k = 0; k < target; ++k) grow(t, k);
  }

  void add_metrics(nlohmann::json& j) const override {
    j["params"] = params_;
    j["width"] = width_;
  }
  void on_eval_start(train::Trainer& t) override { params_ = t.model().num_parameters(); }

  nlohmann::json state_json() const override { return {{"growths_done", done_}, {"width", width_}}; }
  void load_state_json(const nlohmann::json& j) override { done_ = j.value("growths_done", int64_t(0)); }

 private:
  static nn::Sequential& sequential(train::Trainer& t) {
    auto* seq = dynamic_cast<nn::Sequential*>(&t.model());
    BRISK_CHECK(seq != nullptr, "--method grow: needs a Sequential model");
    return *seq;
  }
  int64_t width_at(size_t group, double mult) const {
    return std::clamp<int64_t>(std::llround(mult * double(full_[group])), 1, full_[group]);
  }

  void shrink(train::Trainer& t) {
    nn::Sequential& seq = sequential(t);
    if (kind == "stack") {
      std::vector<int64_t> keep;
      for (size_t r = 0; r < full_.size(); ++r) keep.push_back(width_at(r, start));
      nn::truncate_identity_runs(seq, keep, &t.optimizer());
    } else {
      size_t G = full_.size();
      for (size_t l = 0; l < G; ++l) {
        nn::ChannelGroup g = nn::channel_groups(seq)[l];
        std::vector<int64_t> keep(static_cast<size_t>(width_at(l, start)));
        for (size_t u = 0; u < keep.size(); ++u) keep[u] = int64_t(u);
        nn::remove_group_units(g, keep, &t.optimizer());
      }
    }
    width_ = start;
    params_ = t.model().num_parameters();
  }

  void grow(train::Trainer& t, int64_t k) {
    nn::Sequential& seq = sequential(t);
    double mult = std::min(1.0, start * std::pow(2.0, double(k + 1)));
    if (kind == "stack") {
      nn::stack_blocks(seq, &t.optimizer(), "", full_);
      width_ = mult;
      params_ = t.model().num_parameters();
      return;
    }
    for (size_t l = 0; l < full_.size(); ++l) {
      Generator g(t.config().seed * 0x9E3779B97F4A7C15ull + uint64_t(k) * 131 + l + 1);
      nn::ChannelGroup grp = nn::channel_groups(seq)[l];  // MSG inserts gates: positions move
      if (kind == "msg") {
        BRISK_CHECK(!grp.coupled(), "--method grow:kind=msg: channels of ", grp.name,
                    " are coupled by a residual addition; MSG gates are per layer (use kind=net2net)");
        size_t idx = seq.size();
        for (size_t i = 0; i < seq.size(); ++i)
          if (seq[i] == grp.producers[0].layer) idx = i;
        BRISK_CHECK(idx < seq.size(), "--method grow:kind=msg: ", grp.name, " is inside a block (use kind=net2net)");
        nn::widen_masked(seq, idx, width_at(l, mult), &t.optimizer(), growth_step(t, k), &g);
      } else {
        nn::widen_group(grp, width_at(l, mult), &t.optimizer(), noise, &g);
      }
    }
    width_ = mult;
    params_ = t.model().num_parameters();
  }

  std::vector<int64_t> full_;  // full width of each channel group (stack: length of each identity run)
  int64_t done_ = 0;           // growths applied
  double width_ = 1.0;
  int64_t params_ = 0;
};

std::vector<double> parse_points(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, '/')) {
    try {
      size_t used = 0;
      double v = std::stod(item, &used);
      BRISK_CHECK(used == item.size(), "");
      out.push_back(v);
    } catch (const std::exception&) {
      BRISK_FAIL("--method grow: points must be fractions separated by '/', e.g. 0.25/0.5, got '", s, "'");
    }
  }
  return out;
}

}  // namespace

void register_growth_methods() {
  register_method("grow", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<GrowMethod>();
    m->kind = a.get_string("kind", "net2net");
    BRISK_CHECK(m->kind == "net2net" || m->kind == "msg" || m->kind == "stack", "--method grow: unknown kind '",
                m->kind, "' (known: net2net, msg, stack)");
    m->ramp = a.get_double("ramp", 0.05);
    BRISK_CHECK(m->ramp >= 0 && m->ramp < 1, "--method grow: ramp must be in [0, 1), got ", m->ramp);
    m->start = a.get_double("start", m->kind == "stack" ? 0.5 : 0.25);
    m->noise = a.get_double("noise", 0.0);
    m->points = parse_points(a.get_string("points", "0.25/0.5"));
    BRISK_CHECK(!m->points.empty(), "--method grow: points is empty, so the model would never grow; give "
                "fractions of training separated by '/', e.g. points=0.25/0.5");
    BRISK_CHECK(m->start > 0 && m->start <= 1, "--method grow: start must be in (0, 1], got ", m->start);
    BRISK_CHECK(m->noise >= 0, "--method grow: noise must be >= 0");
    for (size_t i = 0; i < m->points.size(); ++i)
      BRISK_CHECK(m->points[i] > 0 && m->points[i] < 1 && (i == 0 || m->points[i] > m->points[i - 1]),
                  "--method grow: points must be increasing fractions in (0, 1)");
    return m;
  });
}

}  // namespace brisk::efficiency
