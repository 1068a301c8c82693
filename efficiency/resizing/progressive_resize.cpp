// `--method resize:scale=0.5,delay=0.5,finetune=0.2,increment=4`: progressive
// resizing (as in fast.ai's DAWNBench runs and Composer's ProgressiveResizing):
// train on downscaled images early and at full size at the end, so the
// convolution work of the early steps shrinks with the image area.
//
// At progress t (the learning-rate schedule's position in [0, 1]) the scale
// is `scale` until `delay`, then grows linearly to 1 at 1 - finetune, and is
// 1 for the last `finetune` of training. The side is scale * H rounded down
// to a multiple of `increment` (at least `increment`, at most H); batches
// are resized bilinearly (data/resize.h). Labels are unchanged. The model
// must accept smaller images (global pooling, e.g. the resnet): checked at
// the start with one forward pass at the smallest size, so a model with a
// fixed-size classifier is refused with a message before training.
// A function of progress only: nothing to checkpoint.
#include <cmath>
#include <memory>

#include "data/resize.h"
#include "efficiency/method.h"
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class ResizeMethod : public train::Callback {
 public:
  double scale = 0.5, delay = 0.5, finetune = 0.2;
  int64_t increment = 4;

  std::string name() const override { return "resize"; }

  // The side for a full side `full` at progress t (see the file comment).
  int64_t side(int64_t full, double t) const {
    double s = 1.0;
    if (t < delay) {
      s = scale;
    } else if (t < 1.0 - finetune) {
      s = scale + (1.0 - scale) * (t - delay) / (1.0 - finetune - delay);
    }
    int64_t n = int64_t(std::floor(s * double(full) / double(increment))) * increment;
    return std::clamp<int64_t>(n, std::min(increment, full), full);
  }

  void on_fit_start(train::Trainer& t) override {
    total_ = double(t.full_steps());
    const data::Dataset& d = t.train_loader().dataset();
    int64_t H = d.images.size(2), W = d.images.size(3);
    int64_t h = side(H, 0.0), w = side(W, 0.0);
    if (h == H && w == W) return;
    // One forward pass at the smallest size: a model that cannot take it is named now.
    NoGradGuard ng;
    bool was = t.model().is_training();
    t.model().eval();
    Tensor probe = zeros({1, d.images.size(1), h, w});
    try {
      t.model().forward(probe.to(Device::parse(t.config().device)));
    } catch (const Error& e) {
      t.model().train(was);
      BRISK_FAIL("--method resize: model ", t.config().model, " cannot take ", h, "x", w,
                 " images (progressive resizing needs a model with global pooling, e.g. resnet): ", e.what());
    }
    t.model().train(was);
  }

  void on_batch_start(train::Trainer& t) override {
    Tensor& x = t.batch.x;
    double progress = double(t.schedule_position()) / total_;
    int64_t h = side(x.size(2), progress), w = side(x.size(3), progress);
    last_side_ = h;
    if (h == x.size(2) && w == x.size(3)) return;
    x = data::resize_bilinear(x.to(kCPU), h, w).to(x.device());
  }

  void add_metrics(nlohmann::json& j) const override { j["image_side"] = last_side_; }
  nlohmann::json state_json() const override {
    return {{"scale", scale}, {"delay", delay}, {"finetune", finetune}, {"increment", increment}};
  }

 private:
  double total_ = 1;
  int64_t last_side_ = 0;
};

}  // namespace

void register_resizing_method() {
  register_method("resize", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<ResizeMethod>();
    m->scale = a.get_double("scale", 0.5);
    m->delay = a.get_double("delay", 0.5);
    m->finetune = a.get_double("finetune", 0.2);
    m->increment = a.get_int("increment", 4);
    BRISK_CHECK(m->scale > 0 && m->scale <= 1, "--method resize: scale must be in (0, 1], got ", m->scale);
    BRISK_CHECK(m->delay >= 0 && m->finetune >= 0 && m->delay + m->finetune <= 1,
                "--method resize: delay and finetune must be >= 0 with delay + finetune <= 1, got ", m->delay, " and ",
                m->finetune);
    BRISK_CHECK(m->increment >= 1 && m->increment <= 1024, "--method resize: increment must be in [1, 1024], got ",
                m->increment);
    return m;
  });
}

}  // namespace brisk::efficiency
