// Schedules.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace brisk::optim {

LRSchedule::LRSchedule(ScheduleOptions opt) : opt_(std::move(opt)) {
  const auto& k = opt_.kind;
  BRISK_CHECK(k == "constant" || k == "cosine" || k == "linear" || k == "step" || k == "onecycle",
              "unknown schedule '", k, "' (known: constant, cosine, linear, step, onecycle)");
  BRISK_CHECK(opt_.total_steps >= 1, "schedule: total_steps must be >= 1, got ", opt_.total_steps);
  BRISK_CHECK(opt_.warmup_steps >= 0 && opt_.warmup_steps <= opt_.total_steps, "schedule: warmup_steps ",
              opt_.warmup_steps, " must be in [0, total_steps=", opt_.total_steps, "]");
  BRISK_CHECK(opt_.step_size >= 1, "schedule: step_size must be >= 1");
  BRISK_CHECK(opt_.pct_start > 0 && opt_.pct_start < 1, "schedule: pct_start must be in (0, 1)");
}

static double cos_interp(double from, double to, double frac) {
  return to + (from - to) * 0.5 * (1 + std::cos(M_PI * std::clamp(frac, 0.0, 1.0)));
}

double LRSchedule::lr_at(int64_t step) const {
  const double base = opt_.base_lr;
  const double T = double(opt_.total_steps);
  double s = double(std::clamp<int64_t>(step, 0, opt_.total_steps));
  if (opt_.kind == "onecycle") {
    double up = opt_.pct_start * T - 1, lo = base / opt_.div_factor, end = lo / opt_.final_div_factor;
    if (s <= up) return cos_interp(lo, base, up > 0 ? s / up : 1.0);
    return cos_interp(base, end, (s - up) / std::max(T - 1 - up, 1.0));
  }
  double W = double(opt_.warmup_steps);
  if (s < W) return base * (s + 1) / W;
  double frac = (s - W) / std::max(T - W, 1.0);  // 0 at the end of warmup, 1 at the budget
  if (opt_.kind == "cosine") return cos_interp(base, 0.0, frac);
  if (opt_.kind == "linear") return base * (1 - frac);
  if (opt_.kind == "step") return base * std::pow(opt_.gamma, std::floor((s - W) / double(opt_.step_size)));
  return base;
}

}  // namespace brisk::optim
