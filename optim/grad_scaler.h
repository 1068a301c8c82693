// Dynamic loss scaling with torch.cuda.amp.GradScaler's semantics, for
// low-precision training (f16 gradients underflow without it):
//   scaler.scale(loss).backward();  scaler.step(opt);  scaler.update();
// - scale starts at init_scale (2^16); step() unscales the gradients (divides
//   by the scale) and runs the optimizer only when every gradient is finite;
//   otherwise the step is skipped and parameters and optimizer state are left
//   exactly as they were;
// - update(): after a skipped step the scale is multiplied by backoff (0.5);
//   after growth_interval (2000) consecutive good steps by growth (2);
// - a scale below min_scale throws brisk::Error: the loss or gradients are
//   non-finite at every step, and training should stop with its last
//   checkpoint intact;
// - state_dict()/load_state_dict() carry scale, growth tracker and counters
//   through checkpoints.
// Used with autocast (core/autocast.h) for f16 training; see
// docs/methods/precision.md.
#pragma once
#include <nlohmann/json.hpp>

#include "optim/optimizer.h"

namespace brisk::optim {

struct GradScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  double min_scale = 1.0 / 65536.0;  // abort below this
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions o = {});

  Tensor scale(const Tensor& loss) const;  // loss * scale (f32 loss stays f32)
  // Divides every gradient of `opt`'s parameters by the scale (once per step;
  // a second call before update() is an error) and records whether all are finite.
  bool unscale_(Optimizer& opt);
  // Unscales if not yet done; steps when all gradients are finite. Returns
  // true when the optimizer stepped.
  bool step(Optimizer& opt);
  // Adjusts the scale after step(); throws when it falls below min_scale.
  void update();

  double get_scale() const { return scale_; }
  int64_t skipped_steps() const { return skipped_; }
  int64_t growth_tracker() const { return tracker_; }
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& j);

 private:
  GradScalerOptions o_;
  double scale_;
  int64_t tracker_ = 0, skipped_ = 0;
  bool unscaled_ = false, found_inf_ = false, stepped_ = false;
};

}  // namespace brisk::optim
