// Pareto frontiers and interpolation (see pareto.h).
#include "efficiency/speedup/pareto.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace brisk::speedup {

double median(std::vector<double> v) {
  BRISK_CHECK(!v.empty(), "speedup: median of no values");
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<BudgetSummary> summarize(const std::vector<Run>& runs, const std::string& config) {
  std::map<int64_t, std::vector<const Run*>> by_budget;
  for (const Run& r : runs)
    if (r.config == config) by_budget[r.budget].push_back(&r);
  std::vector<BudgetSummary> out;
  for (auto& [b, rs] : by_budget) {
    std::vector<double> s, a, l, f;
    for (const Run* r : rs) {
      s.push_back(r->seconds);
      a.push_back(r->acc);
      l.push_back(r->loss);
      f.push_back(r->flops);
    }
    BudgetSummary bs;
    bs.budget = b;
    bs.seeds = int(rs.size());
    bs.sec_med = median(s);
    bs.sec_min = *std::min_element(s.begin(), s.end());
    bs.sec_max = *std::max_element(s.begin(), s.end());
    bs.acc_med = median(a);
    bs.acc_min = *std::min_element(a.begin(), a.end());
    bs.acc_max = *std::max_element(a.begin(), a.end());
    bs.loss_med = median(l);
    bs.flops_med = median(f);
    out.push_back(bs);
  }
  return out;
}

std::vector<Point> frontier(std::vector<Point> pts) {
  std::sort(pts.begin(), pts.end(), [](const Point& a, const Point& b) {
    return a.seconds < b.seconds || (a.seconds == b.seconds && a.acc > b.acc);
  });
  std::vector<Point> out;
  for (const Point& p : pts)
    if (out.empty() || p.acc > out.back().acc) out.push_back(p);
  return out;
}

std::optional<double> time_to_accuracy(const std::vector<Point>& front, double target) {
  for (size_t i = 0; i < front.size(); ++i) {
    if (front[i].acc < target) continue;
    if (i == 0) return front[0].seconds;
    const Point &a = front[i - 1], &b = front[i];
    return a.seconds + (target - a.acc) / (b.acc - a.acc) * (b.seconds - a.seconds);
  }
  return std::nullopt;
}

std::optional<double> accuracy_at_time(const std::vector<Point>& front, double seconds) {
  if (front.empty() || seconds < front[0].seconds) return std::nullopt;
  for (size_t i = 1; i < front.size(); ++i) {
    if (seconds >= front[i].seconds) continue;
    const Point &a = front[i - 1], &b = front[i];
    return a.acc + (seconds - a.seconds) / (b.seconds - a.seconds) * (b.acc - a.acc);
  }
  return front.back().acc;
}

MatchFinal match_final(const std::vector<Run>& runs, const std::string& baseline, const std::string& candidate,
                       double delta) {
  MatchFinal m;
  auto base = summarize(runs, baseline);
  if (base.empty()) return m;
  const BudgetSummary& last = base.back();  // summarize() sorts by budget
  m.base_budget = last.budget;
  m.base_acc = last.acc_med;
  m.base_sec = last.sec_med;
  m.target = last.acc_med - delta;
  for (auto& s : summarize(runs, candidate)) {
    if (s.acc_med < m.target) continue;
    m.cand_budget = s.budget;
    m.cand_sec = s.sec_med;
    m.cand_acc = s.acc_med;
    m.speedup = m.base_sec / s.sec_med;
    break;
  }
  return m;
}

std::vector<Point> median_frontier(const std::vector<Run>& runs, const std::string& config) {
  std::vector<Point> pts;
  for (auto& s : summarize(runs, config)) pts.push_back({s.sec_med, s.acc_med});
  return frontier(pts);
}

// Each seed's own frontier's time to target; seeds that never reach it are skipped.
static std::vector<double> seed_times(const std::vector<Run>& runs, const std::string& config, double target,
                                      bool& all_reached, int& missed) {
  std::map<uint64_t, std::vector<Point>> by_seed;
  for (const Run& r : runs)
    if (r.config == config) by_seed[r.seed].push_back({r.seconds, r.acc});
  std::vector<double> t;
  all_reached = !by_seed.empty();
  missed = 0;
  for (auto& [s, pts] : by_seed) {
    auto tt = time_to_accuracy(frontier(pts), target);
    if (tt) {
      t.push_back(*tt);
    } else {
      all_reached = false;
      ++missed;
    }
  }
  return t;
}

SpeedupAt speedup_at(const std::vector<Run>& runs, const std::string& baseline, const std::string& candidate,
                     double target) {
  SpeedupAt r;
  r.target = target;
  r.base_sec = time_to_accuracy(median_frontier(runs, baseline), target);
  r.cand_sec = time_to_accuracy(median_frontier(runs, candidate), target);
  bool base_all = false, cand_all = false;
  auto bt = seed_times(runs, baseline, target, base_all, r.base_missed);
  auto ct = seed_times(runs, candidate, target, cand_all, r.cand_missed);
  if (!bt.empty()) {
    r.base_min = *std::min_element(bt.begin(), bt.end());
    r.base_max = *std::max_element(bt.begin(), bt.end());
  }
  if (!ct.empty()) {
    r.cand_min = *std::min_element(ct.begin(), ct.end());
    r.cand_max = *std::max_element(ct.begin(), ct.end());
  }
  auto censored = [&](const std::string& config) {
    auto f = median_frontier(runs, config);
    return !f.empty() && f.front().acc >= target;
  };
  r.base_censored = r.base_sec && censored(baseline);
  r.cand_censored = r.cand_sec && censored(candidate);
  if (!r.base_sec || !r.cand_sec) {
    r.verdict = std::string("not reached by ") + (!r.base_sec && !r.cand_sec ? "either" : !r.base_sec ? "baseline" : "candidate");
    return r;
  }
  r.speedup = *r.base_sec / *r.cand_sec;
  if (r.base_min && r.cand_max && r.base_max && r.cand_min) {
    // The seed range's ends; a seed that never reaches the target is
    // infinitely slow: candidate -> no lower bound above 0, baseline -> no upper bound.
    r.speedup_lo = r.cand_missed ? 0.0 : *r.base_min / *r.cand_max;
    if (!r.base_missed) r.speedup_hi = *r.base_max / *r.cand_min;
  }
  // A seed that misses the target counts as infinitely slow for the overlap test.
  double bmin = r.base_min.value_or(1e300), bmax = base_all ? r.base_max.value_or(1e300) : 1e300;
  double cmin = r.cand_min.value_or(1e300), cmax = cand_all ? r.cand_max.value_or(1e300) : 1e300;
  if (cmax < bmin) {
    r.separated = true;
    r.verdict = "faster";
  } else if (cmin > bmax) {
    r.separated = true;
    r.verdict = "slower";
  } else {
    r.verdict = "no speedup (within seed spread)";
  }
  if (r.base_censored && r.cand_censored)
    r.verdict += "; censored: both reach the target at their smallest budget (the ratio is not measured)";
  else if (r.cand_censored)
    r.verdict += "; censored: the candidate reaches the target at its smallest budget (speedup is a lower bound)";
  else if (r.base_censored)
    r.verdict += "; censored: the baseline reaches the target at its smallest budget (speedup is an upper bound)";
  return r;
}

std::vector<GainAt> accuracy_gain(const std::vector<Run>& runs, const std::string& baseline,
                                  const std::string& candidate) {
  auto base = median_frontier(runs, baseline);
  std::vector<GainAt> out;
  for (auto& s : summarize(runs, candidate)) {
    GainAt g;
    g.budget = s.budget;
    g.seconds = s.sec_med;
    g.cand_acc = s.acc_med;
    if (!base.empty() && s.sec_med <= base.back().seconds) {
      g.base_acc = accuracy_at_time(base, s.sec_med);
      if (g.base_acc) g.gain = s.acc_med - *g.base_acc;
    }
    out.push_back(g);
  }
  return out;
}

}  // namespace brisk::speedup
