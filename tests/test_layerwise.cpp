// LARS and LAMB (optim/layerwise.h): two steps computed by hand in double
// from the papers' update rules, then training and bit-exact resume through
// the trainer.
#include <cmath>

#include "optim/layerwise.h"
#include "tests/train_helpers.h"

using namespace bt;

namespace {
std::vector<double> vals(const Tensor& t) {
  Tensor d = t.detach().to(DType::f64).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}
double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}
void check_near(const Tensor& got, const std::vector<double>& want) {
  auto g = vals(got);
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == Approx(want[i]).margin(1e-6));
}
}  // namespace

TEST_CASE("lars: two steps match the trust-ratio rule by hand, and biases are not adapted", "[optim][layerwise]") {
  Tensor w = Tensor(uniform64({3, 4}, -1, 1, 3).to(DType::f32)).requires_grad_(true);
  Tensor b = Tensor(uniform64({4}, -1, 1, 4).to(DType::f32)).requires_grad_(true);
  brisk::optim::LARSOptions o;
  o.lr = 0.5;
  o.momentum = 0.9;
  o.weight_decay = 0.01;
  o.eta = 0.02;
  brisk::optim::LARS opt({{"w", w}, {"b", b}}, o);
  auto W = vals(w), Bv = vals(b);
  std::vector<double> bufw(W.size()), bufb(Bv.size());
  for (int step = 0; step < 2; ++step) {
    Tensor gw = uniform64({3, 4}, -1, 1, 10 + uint64_t(step)).to(DType::f32);
    Tensor gb = uniform64({4}, -1, 1, 20 + uint64_t(step)).to(DType::f32);
    auto G = vals(gw), GB = vals(gb);
    double trust = o.eta * norm(W) / (norm(G) + o.weight_decay * norm(W));
    for (size_t i = 0; i < W.size(); ++i) {
      double u = trust * (G[i] + o.weight_decay * W[i]);
      bufw[i] = step == 0 ? u : o.momentum * bufw[i] + u;
      W[i] -= o.lr * bufw[i];
    }
    for (size_t i = 0; i < Bv.size(); ++i) {
      double u = GB[i] + o.weight_decay * Bv[i];
      bufb[i] = step == 0 ? u : o.momentum * bufb[i] + u;
      Bv[i] -= o.lr * bufb[i];
    }
    w.set_grad(gw);
    b.set_grad(gb);
    opt.step();
    INFO("step " << step);
    CHECK(opt.last_trust().at("w") == Approx(trust).epsilon(1e-6));
    CHECK(!opt.last_trust().count("b"));
    check_near(w, W);
    check_near(b, Bv);
  }
}

TEST_CASE("lamb: two steps match the rule by hand (Adam direction, trust ||w|| / ||r||)", "[optim][layerwise]") {
  Tensor w = Tensor(uniform64({5, 3}, -1, 1, 5).to(DType::f32)).requires_grad_(true);
  brisk::optim::LAMBOptions o;
  o.lr = 0.01;
  o.weight_decay = 0.1;
  brisk::optim::LAMB opt({{"w", w}}, o);
  auto W = vals(w);
  std::vector<double> m(W.size()), v(W.size());
  for (int step = 1; step <= 2; ++step) {
    Tensor g = uniform64({5, 3}, -1, 1, 30 + uint64_t(step)).to(DType::f32);
    auto G = vals(g);
    std::vector<double> r(W.size());
    for (size_t i = 0; i < W.size(); ++i) {
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * G[i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * G[i] * G[i];
      double mh = m[i] / (1 - std::pow(o.beta1, step)), vh = v[i] / (1 - std::pow(o.beta2, step));
      r[i] = mh / (std::sqrt(vh) + o.eps) + o.weight_decay * W[i];
    }
    double trust = norm(W) / norm(r);
    for (size_t i = 0; i < W.size(); ++i) W[i] -= o.lr * trust * r[i];
    w.set_grad(g);
    opt.step();
    INFO("step " << step);
    CHECK(opt.last_trust().at("w") == Approx(trust).epsilon(1e-6));
    check_near(w, W);
  }
}

TEST_CASE("lars and lamb: train through the trainer and resume bit-exactly", "[optim][layerwise][train]") {
  for (const char* name : {"lars", "lamb"}) {
    INFO(name);
    TrainConfig c = small_config(std::string("layerwise_") + name);
    c.optimizer = name;
    c.lr = std::string(name) == "lars" ? 2.0 : 0.01;
    c.trust_coefficient = 0.01;
    c.warmup_epochs = 0.5;
    check_resume_bit_exact(c, {5, 11});
    auto m = read_jsonl(c.out + "/metrics.jsonl");
    CHECK(m.back()["train_loss"].get<double>() < 2.0);  // it learned (chance is ln 10 = 2.30)
  }
  TrainConfig bad;
  CHECK_THROWS_WITH(bad.set("optimizer", "lion"), Catch::Contains("lars") && Catch::Contains("lamb"));
  bad.set("trust-coefficient", "0");
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("trust-coefficient"));
}
