// The loss scaler's promises (GradScaler semantics): an injected inf skips the
// step with parameters and optimizer state bit-unchanged and halves the
// scale; 2000 clean steps double it once; gradients are unscaled exactly;
// the state survives a round trip; a collapsing scale aborts clearly.
#include <fstream>

#include "optim/grad_scaler.h"
#include "tests/helpers.h"

using namespace bt;
using namespace brisk::optim;

TEST_CASE("grad_scaler: an inf gradient skips the step, keeps params and state, halves the scale", "[grad_scaler]") {
  Tensor w = randn({5}).requires_grad_();
  AdamW opt({{"w", w}}, {});
  GradScaler sc;
  CHECK(sc.get_scale() == 65536.0);
  // one good step creates optimizer state
  sum(sc.scale(w * w)).backward();
  CHECK(sc.step(opt));
  sc.update();
  Tensor w_before = w.detach().clone();
  Tensor m_before = opt.state().at("w").at("exp_avg").clone();
  Tensor step_before = opt.state().at("w").at("step").clone();
  // inject an inf into the gradient
  opt.zero_grad();
  sum(sc.scale(w * w)).backward();
  w.grad().data_ptr<float>()[2] = INFINITY;
  CHECK_FALSE(sc.step(opt));
  sc.update();
  CHECK(bit_equal(w.detach(), w_before));
  CHECK(bit_equal(opt.state().at("w").at("exp_avg"), m_before));
  CHECK(bit_equal(opt.state().at("w").at("step"), step_before));
  CHECK(sc.get_scale() == 32768.0);
  CHECK(sc.skipped_steps() == 1);
  // NaN is skipped too
  opt.zero_grad();
  sum(sc.scale(w * w)).backward();
  w.grad().data_ptr<float>()[0] = NAN;
  CHECK_FALSE(sc.step(opt));
  sc.update();
  CHECK(sc.get_scale() == 16384.0);
}

TEST_CASE("grad_scaler: gradients are unscaled exactly, 2000 clean steps double the scale once", "[grad_scaler]") {
  Tensor w = from_vector({1.0, -2.0}, {2}).requires_grad_();
  SGD opt({{"w", w}}, {0.0});  // lr 0: the weights stay put, only the scaler moves
  GradScaler sc;
  sum(sc.scale(w * 3.0)).backward();
  CHECK(sc.unscale_(opt));
  CHECK(w.grad().to_vector() == std::vector<double>{3.0, 3.0});  // 3 * 2^16 / 2^16, exact
  CHECK_THROWS_WITH(sc.unscale_(opt), Catch::Contains("already called"));
  CHECK(sc.step(opt));
  sc.update();
  for (int i = 1; i < 2000; ++i) {
    opt.zero_grad();
    sum(sc.scale(w * 3.0)).backward();
    sc.step(opt);
    sc.update();
    if (i == 1998) CHECK(sc.get_scale() == 65536.0);  // 1999 clean steps: not yet
  }
  CHECK(sc.get_scale() == 131072.0);  // the 2000th doubled it
  CHECK(sc.growth_tracker() == 0);
}

TEST_CASE("grad_scaler: state round-trips, a collapsing scale aborts with a clear error", "[grad_scaler]") {
  GradScalerOptions o;
  o.init_scale = 4.0;
  o.min_scale = 1.0;
  GradScaler a(o);
  Tensor w = randn({3}).requires_grad_();
  SGD opt({{"w", w}}, {0.1});
  auto inf_step = [&](GradScaler& s) {
    opt.zero_grad();
    sum(s.scale(w * w)).backward();
    w.grad().data_ptr<float>()[0] = INFINITY;
    s.step(opt);
    s.update();
  };
  inf_step(a);  // 4 -> 2
  GradScaler b;
  b.load_state_dict(a.state_dict());
  CHECK(b.get_scale() == 2.0);
  CHECK(b.skipped_steps() == 1);
  inf_step(a);  // 2 -> 1: still allowed
  CHECK_THROWS_WITH(inf_step(a), Catch::Contains("fell to 0.5") && Catch::Contains("below min_scale"));
  CHECK_THROWS_WITH(b.load_state_dict(nlohmann::json{{"scale", -1.0}, {"growth_tracker", 0}}),
                    Catch::Contains("corrupt state"));
  CHECK_THROWS_WITH(GradScaler(GradScalerOptions{0.0}), Catch::Contains("init_scale"));
}

// Step by step against torch.amp.GradScaler (golden file written by
// bench/golden_grad_scaler.py): on a scripted sequence of finite, inf and
// NaN gradients, the same steps are taken or skipped, and after every
// update() the scale, the growth tracker and the parameters are the same.
TEST_CASE("grad_scaler: the scale/skip trajectory equals torch.amp.GradScaler's", "[grad_scaler]") {
  std::ifstream f(BRISK_TEST_DATA_DIR "/grad_scaler_golden.json");
  REQUIRE(f.good());
  nlohmann::json g = nlohmann::json::parse(f);
  GradScalerOptions o;
  o.init_scale = g["options"]["init_scale"].get<double>();
  o.growth_factor = g["options"]["growth_factor"].get<double>();
  o.backoff_factor = g["options"]["backoff_factor"].get<double>();
  o.growth_interval = g["options"]["growth_interval"].get<int64_t>();
  std::vector<double> w0 = g["w0"].get<std::vector<double>>(), tg = g["true_grad"].get<std::vector<double>>();
  Tensor w = from_vector(w0, {3}).requires_grad_();
  Tensor true_grad = from_vector(tg, {3});
  SGD opt({{"w", w}}, SGDOptions{g["lr"].get<double>(), 0.0, 0.0, 0.0, false});
  GradScaler sc(o);
  int64_t i = 0, skipped = 0;
  for (auto& s : g["steps"]) {
    INFO("step " << i << " (" << s["grad"].get<std::string>() << ")");
    opt.zero_grad();
    sum(sc.scale(w * true_grad)).backward();
    std::string kind = s["grad"].get<std::string>();
    if (kind == "I") w.grad().data_ptr<float>()[1] = INFINITY;
    if (kind == "N") w.grad().data_ptr<float>()[0] = NAN;
    bool stepped = sc.step(opt);
    sc.update();
    skipped += !stepped;
    CHECK(stepped == s["stepped"].get<bool>());
    CHECK(sc.get_scale() == s["scale"].get<double>());
    CHECK(sc.growth_tracker() == s["growth_tracker"].get<int64_t>());
    auto wv = w.detach().to_vector();
    auto want = s["w"].get<std::vector<double>>();
    for (size_t k = 0; k < 3; ++k) CHECK(wv[k] == Approx(want[k]).epsilon(1e-6));
    ++i;
  }
  CHECK(i >= 30);
  CHECK(skipped >= 5);
  CHECK(sc.skipped_steps() == skipped);
}
