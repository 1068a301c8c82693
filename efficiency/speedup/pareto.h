// Time-to-quality arithmetic for `brisk speedup` (docs/speedup.md):
// runs -> per-budget summaries -> a time-vs-accuracy Pareto frontier ->
// time to a target accuracy and accuracy at a given time, both interpolated
// linearly between frontier points. Pure functions, tested on hand-made data.
// "Accuracy" here is any higher-is-better quality: for a time-to-loss report
// the harness passes each run with acc = -loss (harness.cpp, quality()).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace brisk::speedup {

// One finished training run.
struct Run {
  std::string config;  // recipe name
  int64_t budget = 0;  // epochs (the schedule was re-fitted to end there)
  uint64_t seed = 0;
  double seconds = 0;  // wall-clock training time, every method overhead included
  double acc = 0;      // final test accuracy
  double loss = 0;     // final test loss
  double flops = 0;    // training FLOPs (GEMM and conv), as counted by the op layer
  double lr = 0;       // the learning rate it ran with (the baseline's is tuned per budget)
};

// A point of a frontier (time, accuracy), ascending in both.
struct Point {
  double seconds = 0, acc = 0;
};

// Median, min and max over seeds of one config at one budget.
struct BudgetSummary {
  int64_t budget = 0;
  int seeds = 0;
  double sec_med = 0, sec_min = 0, sec_max = 0;
  double acc_med = 0, acc_min = 0, acc_max = 0;
  double loss_med = 0, flops_med = 0;
};

double median(std::vector<double> v);  // mean of the middle two for even sizes; v must be non-empty

// Summaries of `config`'s runs, one per budget, ascending budget.
std::vector<BudgetSummary> summarize(const std::vector<Run>& runs, const std::string& config);

// The upper-left envelope: points sorted by time, keeping each that is more
// accurate than every faster one. (A longer run that is no more accurate is
// dominated: stopping at the shorter budget was better.)
std::vector<Point> frontier(std::vector<Point> pts);

// Least time at which the frontier reaches `target`, linear between points;
// nullopt when no point does. At or before the first point, its time.
std::optional<double> time_to_accuracy(const std::vector<Point>& front, double target);

// Best accuracy reachable within `seconds` on the frontier, linear between
// points; nullopt before the first point.
std::optional<double> accuracy_at_time(const std::vector<Point>& front, double seconds);

// Time to `target` of a baseline and a candidate, over seeds: each seed's runs
// (all budgets) form that seed's frontier. Speedup = baseline time /
// candidate time on the median frontiers; lo/hi pair the slowest candidate
// seed with the fastest baseline seed and vice versa. `separated` is true when
// the seed ranges do not overlap: the only case where a speedup (or slowdown)
// is claimed.
struct SpeedupAt {
  double target = 0;
  std::optional<double> base_sec, cand_sec;            // median frontiers
  std::optional<double> base_min, base_max, cand_min, cand_max;  // over the seeds that reach the target
  // Seeds whose own frontier never reaches the target (left out of the
  // min/max above): a candidate seed that misses makes speedup_lo 0, a
  // baseline seed that misses leaves speedup_hi unbounded (nullopt).
  int base_missed = 0, cand_missed = 0;
  std::optional<double> speedup, speedup_lo, speedup_hi;
  bool separated = false;
  // Censored: the median frontier already reaches the target at its
  // smallest budget, so its time is an upper bound (a smaller budget might
  // have reached it sooner). A censored candidate makes the speedup a lower
  // bound, a censored baseline an upper bound; the verdict says so.
  bool base_censored = false, cand_censored = false;
  std::string verdict;  // "faster", "slower", "no speedup (within seed spread)", "not reached by ..."
};
SpeedupAt speedup_at(const std::vector<Run>& runs, const std::string& baseline, const std::string& candidate,
                     double target);

// The candidate's accuracy minus the baseline frontier's accuracy at the same
// time, at each candidate budget (median over seeds); nullopt where the time
// is outside the baseline frontier's range.
struct GainAt {
  int64_t budget = 0;
  double seconds = 0, cand_acc = 0;
  std::optional<double> base_acc, gain;
};
std::vector<GainAt> accuracy_gain(const std::vector<Run>& runs, const std::string& baseline,
                                  const std::string& candidate);

// The protocol's question (docs/speedup.md): does the candidate reach the baseline's
// final accuracy (its largest budget, median over seeds) within `delta`, and
// how much sooner? Unlike speedup_at this uses budgets that were actually run,
// not interpolation: the candidate's smallest budget whose median accuracy is
// >= base_acc - delta. speedup = base_sec / cand_sec.
struct MatchFinal {
  int64_t base_budget = 0;
  double base_acc = 0, base_sec = 0, target = 0;
  std::optional<int64_t> cand_budget;
  std::optional<double> cand_sec, cand_acc, speedup;
};
MatchFinal match_final(const std::vector<Run>& runs, const std::string& baseline, const std::string& candidate,
                       double delta);

std::vector<Point> median_frontier(const std::vector<Run>& runs, const std::string& config);

}  // namespace brisk::speedup
