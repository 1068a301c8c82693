// Optimizers against hand-computed PyTorch semantics; schedules; clipping; EMA.
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/config.h"
#include "tests/helpers.h"

using namespace bt;
using namespace brisk::optim;

static Tensor param(std::vector<double> v) { return from_vector(v, {int64_t(v.size())}, DType::f64).requires_grad_(); }

TEST_CASE("optim: SGD momentum, nesterov and weight decay follow torch.optim.SGD", "[optim]") {
  for (bool fused : {true, false})
  for (bool nesterov : {false, true}) {
    INFO("fused " << fused << " nesterov " << nesterov);
    Tensor w = param({1.0, -2.0});
    SGD opt({{"w", w}}, {0.1, 0.9, 0.0, 0.01, nesterov, fused});
    double p[2] = {1.0, -2.0}, buf[2] = {0, 0};
    std::vector<std::vector<double>> grads{{0.5, -1.0}, {0.25, 2.0}, {-1.0, 0.5}};
    for (size_t s = 0; s < grads.size(); ++s) {
      w.set_grad(from_vector(grads[s], {2}, DType::f64));
      opt.step();
      for (int i = 0; i < 2; ++i) {
        double d = grads[s][size_t(i)] + 0.01 * p[i];
        buf[i] = s == 0 ? d : 0.9 * buf[i] + d;
        p[i] -= 0.1 * (nesterov ? d + 0.9 * buf[i] : buf[i]);
      }
    }
    auto got = w.to_vector();
    CHECK(got[0] == Approx(p[0]).epsilon(1e-14));
    CHECK(got[1] == Approx(p[1]).epsilon(1e-14));
    CHECK(opt.state().at("w").count("momentum_buffer"));
    CHECK(opt.state().at("w").at("momentum_buffer").to_vector()[1] == Approx(buf[1]));
  }
}

TEST_CASE("optim: AdamW follows torch.optim.AdamW", "[optim]") {
  for (bool fused : {true, false}) {
  INFO("fused " << fused);
  Tensor w = param({0.5, -1.5, 3.0});
  AdamW opt({{"w", w}}, {0.01, 0.9, 0.999, 1e-8, 0.1, fused});
  std::vector<double> p{0.5, -1.5, 3.0}, m(3, 0), v(3, 0);
  for (int t = 1; t <= 4; ++t) {
    std::vector<double> g{0.1 * t, -0.2, 0.3 / t};
    w.set_grad(from_vector(g, {3}, DType::f64));
    opt.step();
    for (size_t i = 0; i < 3; ++i) {
      p[i] *= 1 - 0.01 * 0.1;
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
      p[i] -= 0.01 / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + 1e-8);
    }
  }
  auto got = w.to_vector();
  for (size_t i = 0; i < 3; ++i) CHECK(got[i] == Approx(p[i]).epsilon(1e-12));
  CHECK(opt.state().at("w").at("step").item() == 4);
  }
}

TEST_CASE("optim: parameters without gradients are left alone, state round-trips", "[optim]") {
  Tensor a = param({1, 2}), b = param({3, 4});
  AdamW opt({{"a", a}, {"b", b}}, {});
  a.set_grad(ones({2}, DType::f64));
  opt.step();
  CHECK(b.to_vector() == std::vector<double>({3, 4}));
  CHECK_FALSE(opt.state().count("b"));
  TensorMap st = opt.state_tensors();
  CHECK(st.count("optim/a/exp_avg"));
  AdamW opt2({{"a", a}, {"b", b}}, {});
  opt2.load_state_tensors(st);
  CHECK(bit_equal(opt2.state().at("a").at("exp_avg_sq"), opt.state().at("a").at("exp_avg_sq")));
  CHECK_THROWS_WITH(opt.param("zz"), Catch::Contains("'zz'"));
}

TEST_CASE("optim: schedules", "[optim]") {
  ScheduleOptions o;
  o.base_lr = 1.0;
  o.total_steps = 100;
  o.kind = "cosine";
  LRSchedule cos(o);
  CHECK(cos.lr_at(0) == Approx(1.0));
  CHECK(cos.lr_at(50) == Approx(0.5));
  CHECK(cos.lr_at(100) == Approx(0.0).margin(1e-12));
  o.kind = "linear";
  CHECK(LRSchedule(o).lr_at(75) == Approx(0.25));
  o.warmup_steps = 10;
  LRSchedule lw(o);
  CHECK(lw.lr_at(0) == Approx(0.1));
  CHECK(lw.lr_at(9) == Approx(1.0));
  CHECK(lw.lr_at(55) == Approx(0.5));
  o.warmup_steps = 0;
  o.kind = "step";
  o.step_size = 30;
  CHECK(LRSchedule(o).lr_at(65) == Approx(0.01));
  o.kind = "constant";
  CHECK(LRSchedule(o).lr_at(99) == 1.0);
  o.kind = "onecycle";
  LRSchedule oc(o);
  CHECK(oc.lr_at(0) == Approx(1.0 / 25));
  CHECK(oc.lr_at(29) == Approx(1.0));  // peak at pct_start * total - 1, as in torch
  CHECK(oc.lr_at(99) == Approx(1.0 / 25 / 1e4));
  o.kind = "sawtooth";
  CHECK_THROWS_WITH(LRSchedule(o), Catch::Contains("unknown schedule 'sawtooth'"));
}

TEST_CASE("optim: clip_grad_norm_ and EMA", "[optim]") {
  Tensor a = param({3, 0}), b = param({0, 4});
  a.set_grad(from_vector({3, 0}, {2}, DType::f64));
  b.set_grad(from_vector({0, 4}, {2}, DType::f64));
  double n = clip_grad_norm_({a, b}, 1.0);
  CHECK(n == Approx(5.0));
  CHECK(a.grad().to_vector()[0] == Approx(0.6).epsilon(1e-5));
  CHECK(b.grad().to_vector()[1] == Approx(0.8).epsilon(1e-5));
  CHECK(clip_grad_norm_({a, b}, 10.0) == Approx(1.0).epsilon(1e-5));  // below: unchanged
  EMA ema({{"a", a}}, 0.9);
  {
    NoGradGuard ng;
    a.add_(ones({2}, DType::f64));
  }
  ema.update({{"a", a}});
  CHECK(ema.shadow().at("a").to_vector()[0] == Approx(0.9 * 3 + 0.1 * 4));
}

TEST_CASE("optim: AdamW decay on matrices only leaves biases and gains undecayed", "[optim]") {
  // Zero gradients: Adam's step is 0 / (0 + eps) = 0, so a parameter moves
  // only by its decoupled decay, p *= 1 - lr * wd (by hand: 1 - 0.1 * 0.5).
  for (bool fused : {true, false}) {
    Tensor w = full({3, 4}, 2.0).requires_grad_(true), b = full({4}, 2.0).requires_grad_(true);
    AdamWOptions o;
    o.lr = 0.1;
    o.weight_decay = 0.5;
    o.fused = fused;
    o.decay_matrices_only = true;
    AdamW opt({{"w", w}, {"b", b}}, o);
    sum((w * 0.0)).backward();
    sum((b * 0.0)).backward();
    opt.step();
    CHECK(max_rel_err(w.detach(), full({3, 4}, 2.0 * 0.95)) < 1e-7);
    CHECK(max_rel_err(b.detach(), full({4}, 2.0)) == 0.0);
    CHECK(opt.hyper_json()["decay_matrices_only"] == true);
  }
  brisk::train::TrainConfig c;
  c.set("decay", "matrices");
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("is for the adamw optimizer"));
  CHECK_THROWS_WITH(c.set("decay", "some"), Catch::Contains("unknown decay"));
}
