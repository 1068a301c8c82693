// `--method regularize:kind=label-smoothing|mixup|cutmix,...`: regularizers
// that change what a step learns from, not what it computes, measured for
// accuracy per step like every other method.
//
// label-smoothing (Szegedy et al. 2016): targets (1 - eps) one-hot + eps / C;
//   the same loss as the --label-smoothing flag, as a method.
// mixup (Zhang et al. 2018): per batch, lambda ~ Beta(alpha, alpha) and a
//   permutation pi of the batch; the step trains on
//   x' = lambda x + (1 - lambda) x[pi] with the loss
//   lambda CE(f(x'), y) + (1 - lambda) CE(f(x'), y[pi]).
// cutmix (Yun et al. 2019): per batch, lambda ~ Beta(alpha, alpha); a box of
//   area (1 - lambda) H W (sides H sqrt(1 - lambda), W sqrt(1 - lambda)),
//   centred uniformly and clipped to the image, is pasted from x[pi]; lambda
//   becomes 1 - (clipped box area) / (H W) and the loss mixes as mixup's.
// `prob`: the chance that a batch is mixed at all (1: every batch).
//
// Randomness comes from the run's seed and the trainer's clock, so a resumed
// run draws the same lambdas and permutations (no state to checkpoint).
#include "efficiency/regularization/mix.h"

#include <cmath>
#include <memory>
#include <random>

#include "efficiency/method.h"
#include "nn/functional.h"
#include "train/trainer.h"

namespace brisk::efficiency {

MixDraw draw_mix(uint64_t seed, int64_t clock, double alpha, double prob, int64_t batch, int64_t h, int64_t w,
                 bool cutmix) {
  std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32), uint32_t(clock), uint32_t(uint64_t(clock) >> 32), 0x6d1au};
  std::mt19937_64 rng(seq);
  MixDraw d;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  if (u(rng) >= prob) return d;  // this batch is not mixed
  std::gamma_distribution<double> g(alpha, 1.0);
  double a = g(rng), b = g(rng);
  d.lambda = a + b > 0 ? a / (a + b) : 0.5;  // Beta(alpha, alpha) from two Gammas
  d.perm.resize(size_t(batch));
  for (int64_t i = 0; i < batch; ++i) d.perm[size_t(i)] = i;
  for (int64_t i = batch - 1; i > 0; --i) {  // Fisher-Yates
    int64_t j = int64_t(rng() % uint64_t(i + 1));
    std::swap(d.perm[size_t(i)], d.perm[size_t(j)]);
  }
  d.mixed = true;
  if (cutmix) {
    double cut = std::sqrt(1.0 - d.lambda);
    int64_t ch = int64_t(double(h) * cut), cw = int64_t(double(w) * cut);
    int64_t cy = int64_t(rng() % uint64_t(h)), cx = int64_t(rng() % uint64_t(w));
    d.y0 = std::clamp<int64_t>(cy - ch / 2, 0, h);
    d.y1 = std::clamp<int64_t>(cy + ch / 2, 0, h);
    d.x0 = std::clamp<int64_t>(cx - cw / 2, 0, w);
    d.x1 = std::clamp<int64_t>(cx + cw / 2, 0, w);
    d.lambda = 1.0 - double((d.y1 - d.y0) * (d.x1 - d.x0)) / double(h * w);
  }
  return d;
}

namespace {

namespace F = nn::functional;

class RegularizeMethod : public train::Callback {
 public:
  std::string kind = "label-smoothing";
  double eps = 0.1, alpha = 0.2, prob = 1.0;

  std::string name() const override { return "regularize"; }

  void on_batch_start(train::Trainer& t) override {
    if (kind == "label-smoothing") {
      t.label_smoothing = eps;
      return;
    }
    data::Batch& b = t.batch;
    BRISK_CHECK(b.x.dim() == 4, "--method regularize: ", kind, " mixes image batches [B, C, H, W], got ",
                shape_str(b.x.shape()));
    int64_t B = b.x.size(0), C = b.x.size(1), H = b.x.size(2), W = b.x.size(3);
    draw_ = draw_mix(t.config().seed, t.clock(), alpha, prob, B, H, W, kind == "cutmix");
    if (!draw_.mixed) return;
    NoGradGuard ng;
    Tensor x = b.x.to(kCPU).contiguous(), out = x.clone();  // the loader's batch is left as it was
    const float* xs = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    const int64_t plane = H * W, img = C * plane;
    const float lam = float(draw_.lambda);
    for (int64_t i = 0; i < B; ++i) {
      const float* xi = xs + i * img;
      const float* xj = xs + draw_.perm[size_t(i)] * img;
      float* oi = o + i * img;
      if (kind == "mixup") {
        for (int64_t k = 0; k < img; ++k) oi[k] = lam * xi[k] + (1 - lam) * xj[k];
      } else {
        for (int64_t c = 0; c < C; ++c)
          for (int64_t r = draw_.y0; r < draw_.y1; ++r)
            for (int64_t q = draw_.x0; q < draw_.x1; ++q) oi[c * plane + r * W + q] = xj[c * plane + r * W + q];
      }
    }
    b.x = out.to(b.x.device());
    lambdas_sum_ += draw_.lambda;
    ++mixed_;
  }

  // The loss against the partner's labels, mixed in with weight 1 - lambda.
  void on_after_loss(train::Trainer& t) override {
    if (kind == "label-smoothing" || !draw_.mixed) return;
    std::vector<double> pv(draw_.perm.begin(), draw_.perm.end());
    Tensor perm = from_vector(pv, {int64_t(pv.size())}, DType::i64).to(t.batch.y.device());
    Tensor y2 = index_select(t.batch.y, 0, perm);
    Tensor other = F::cross_entropy(t.logits, y2, F::Reduction::none, -100, t.label_smoothing);
    t.per_example_loss = t.per_example_loss * draw_.lambda + other * (1.0 - draw_.lambda);
  }

  void add_metrics(nlohmann::json& j) const override {
    if (kind == "label-smoothing") {
      j["label_smoothing"] = eps;
      return;
    }
    j["mixed_batches"] = mixed_;
    j["mean_lambda"] = mixed_ ? lambdas_sum_ / double(mixed_) : 1.0;
  }
  nlohmann::json state_json() const override {
    return {{"kind", kind}, {"eps", eps}, {"alpha", alpha}, {"prob", prob}, {"mixed", mixed_}, {"lambda_sum", lambdas_sum_}};
  }
  void load_state_json(const nlohmann::json& j) override {
    mixed_ = j.value("mixed", int64_t(0));
    lambdas_sum_ = j.value("lambda_sum", 0.0);
  }

 private:
  MixDraw draw_;
  int64_t mixed_ = 0;
  double lambdas_sum_ = 0;
};

}  // namespace

void register_regularization_methods() {
  register_method("regularize", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<RegularizeMethod>();
    m->kind = a.get_string("kind", "label-smoothing");
    const std::vector<std::string> keys{"kind", "eps", "alpha", "prob"};
    if (m->kind == "label-smoothing") {
      a.set_kind("kind=label-smoothing", keys);
      m->eps = a.get_double("eps", 0.1);
      BRISK_CHECK(m->eps >= 0 && m->eps < 1, "--method regularize: eps must be in [0, 1), got ", m->eps);
    } else if (m->kind == "mixup" || m->kind == "cutmix") {
      a.set_kind("kind=" + m->kind, keys);
      m->alpha = a.get_double("alpha", m->kind == "mixup" ? 0.2 : 1.0);
      m->prob = a.get_double("prob", 1.0);
      BRISK_CHECK(m->alpha > 0 && m->alpha <= 100, "--method regularize: alpha must be in (0, 100], got ", m->alpha);
      BRISK_CHECK(m->prob >= 0 && m->prob <= 1, "--method regularize: prob must be in [0, 1], got ", m->prob);
    } else {
      BRISK_FAIL("--method regularize: unknown kind '", m->kind, "' (known: label-smoothing, mixup, cutmix)");
    }
    return m;
  });
}

}  // namespace brisk::efficiency
