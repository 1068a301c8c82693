// Learning-rate schedules as a pure function of the step, so resuming from a
// checkpoint needs only the step counter.
#pragma once
#include <cstdint>
#include <string>

namespace brisk::optim {

struct ScheduleOptions {
  std::string kind = "constant";  // constant | cosine | linear | step | onecycle
  double base_lr = 0.1;
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;       // linear warmup from 0 (not used by onecycle)
  int64_t step_size = 1;          // "step": multiply by gamma every step_size steps
  double gamma = 0.1;
  double pct_start = 0.3;         // onecycle, as in torch.optim.lr_scheduler.OneCycleLR
  double div_factor = 25.0;
  double final_div_factor = 1e4;
};

class LRSchedule {
 public:
  explicit LRSchedule(ScheduleOptions opt);
  double lr_at(int64_t step) const;  // lr for the update at `step` (0-based)
  const ScheduleOptions& options() const { return opt_; }

 private:
  ScheduleOptions opt_;
};

}  // namespace brisk::optim
