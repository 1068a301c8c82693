// GradScaler (see grad_scaler.h).
#include "optim/grad_scaler.h"

#include <cmath>

namespace brisk::optim {

GradScaler::GradScaler(GradScalerOptions o) : o_(o), scale_(o.init_scale) {
  BRISK_CHECK(o.init_scale > 0 && std::isfinite(o.init_scale), "GradScaler: init_scale must be > 0, got ", o.init_scale);
  BRISK_CHECK(o.growth_factor > 1, "GradScaler: growth_factor must be > 1, got ", o.growth_factor);
  BRISK_CHECK(o.backoff_factor > 0 && o.backoff_factor < 1, "GradScaler: backoff_factor must be in (0, 1), got ",
              o.backoff_factor);
  BRISK_CHECK(o.growth_interval >= 1, "GradScaler: growth_interval must be >= 1, got ", o.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const { return loss * scale_; }

bool GradScaler::unscale_(Optimizer& opt) {
  BRISK_CHECK(!unscaled_, "GradScaler: unscale_ was already called since the last update()");
  NoGradGuard ng;
  found_inf_ = false;
  double inv = 1.0 / scale_;
  for (auto& [n, p] : opt.params()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    // Check before unscaling: inf * (1/scale) stays inf, but be explicit.
    double s = sum(abs(g.to(DType::f64))).item();
    if (!std::isfinite(s)) found_inf_ = true;
    g.mul_(inv);
  }
  unscaled_ = true;
  return !found_inf_;
}

bool GradScaler::step(Optimizer& opt) {
  if (!unscaled_) unscale_(opt);
  stepped_ = !found_inf_;
  if (stepped_) opt.step();  // else: parameters and optimizer state untouched
  return stepped_;
}

void GradScaler::update() {
  BRISK_CHECK(unscaled_, "GradScaler: update() called before step() / unscale_() in this iteration");
  if (found_inf_) {
    scale_ *= o_.backoff_factor;
    tracker_ = 0;
    skipped_++;
    BRISK_CHECK(scale_ >= o_.min_scale, "GradScaler: the loss scale fell to ", scale_, " (below min_scale ",
                o_.min_scale, "): the loss or gradients are non-finite at every step; stopping (the last "
                "checkpoint is untouched). Lower the learning rate or check the data.");
  } else if (++tracker_ == o_.growth_interval) {
    scale_ *= o_.growth_factor;
    tracker_ = 0;
  }
  unscaled_ = found_inf_ = stepped_ = false;
}

nlohmann::json GradScaler::state_dict() const {
  return {{"scale", scale_}, {"growth_tracker", tracker_}, {"skipped_steps", skipped_},
          {"growth_factor", o_.growth_factor}, {"backoff_factor", o_.backoff_factor},
          {"growth_interval", o_.growth_interval}};
}

void GradScaler::load_state_dict(const nlohmann::json& j) {
  try {
    scale_ = j.at("scale").get<double>();
    tracker_ = j.at("growth_tracker").get<int64_t>();
    skipped_ = j.value("skipped_steps", int64_t(0));
    o_.growth_factor = j.value("growth_factor", o_.growth_factor);
    o_.backoff_factor = j.value("backoff_factor", o_.backoff_factor);
    o_.growth_interval = j.value("growth_interval", o_.growth_interval);
  } catch (const nlohmann::json::exception& e) {
    BRISK_FAIL("GradScaler: corrupt state: ", e.what());
  }
  BRISK_CHECK(scale_ > 0 && std::isfinite(scale_), "GradScaler: corrupt state: scale ", scale_);
  unscaled_ = found_inf_ = stepped_ = false;
}

}  // namespace brisk::optim
