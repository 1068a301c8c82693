// Surgery: widen and deepen preserve the function (noise 0, eval mode), and
// the optimizer state is remapped: old kept, new zero, splits divided, no aliasing.
#include "models/models.h"
#include "nn/surgery.h"
#include "efficiency/method.h"
#include "tests/train_helpers.h"

using namespace bt;
using namespace brisk::nn;

static Tensor eval_out(Sequential& m, const Tensor& x) {
  NoGradGuard ng;
  m.eval();
  Tensor y = m.forward(x);
  m.train();
  return y;
}

TEST_CASE("surgery: widen preserves the mlp's and cnn's function", "[surgery]") {
  manual_seed(1);
  Tensor x = randn({6, 1, 28, 28});
  auto mlp = brisk::models::mlp();
  Tensor y0 = eval_out(*mlp, x);
  auto r = widen(*mlp, 1, 600, nullptr);
  CHECK(r.source.size() == 600);
  CHECK(std::dynamic_pointer_cast<Linear>((*mlp)[1])->weight.shape() == Shape({600, 784}));
  CHECK(std::dynamic_pointer_cast<Linear>((*mlp)[3])->weight.shape() == Shape({256, 600}));
  widen(*mlp, 3, 300, nullptr);
  expect_close(eval_out(*mlp, x), y0, dtype_tol(DType::f32, 784), "mlp widened");

  auto cnn = brisk::models::cnn();
  Tensor c0 = eval_out(*cnn, x);
  widen(*cnn, 0, 40, nullptr);  // conv -> conv
  widen(*cnn, 3, 80, nullptr);  // conv -> flatten -> linear (49 inputs per channel)
  widen(*cnn, 7, 200, nullptr);
  CHECK(std::dynamic_pointer_cast<Linear>((*cnn)[7])->in_features == 80 * 49);
  expect_close(eval_out(*cnn, x), c0, dtype_tol(DType::f32, 3920), "cnn widened");
  CHECK(cnn->num_parameters() > 421642);
}

TEST_CASE("surgery: widen through BatchNorm, with noise, and its errors", "[surgery]") {
  manual_seed(2);
  Sequential s({std::make_shared<Conv2d>(2, 4, 3, 1, 1), std::make_shared<BatchNorm2d>(4), std::make_shared<ReLU>(),
                std::make_shared<Conv2d>(4, 3, 3, 1, 1)});
  Tensor x = randn({5, 2, 6, 6});
  s.forward(x);  // move the BN statistics off their defaults
  s.forward(x * 2.0);
  Tensor y0 = eval_out(s, x);
  widen(s, 0, 7, nullptr);
  expect_close(eval_out(s, x), y0, dtype_tol(DType::f32, 100), "conv-bn-conv widened");
  Generator g(4);
  widen(s, 0, 9, nullptr, "", 0.5, &g);
  CHECK(max_rel_err(eval_out(s, x), y0) > 1e-4);  // noise breaks exactness (and symmetry)
  CHECK_THROWS_WITH(widen(s, 0, 5, nullptr), Catch::Contains("smaller than the current 9"));
  CHECK_THROWS_WITH(widen(s, 2, 5, nullptr), Catch::Contains("only Linear and Conv2d"));
  auto rn = brisk::models::resnet(0.25);
  CHECK_THROWS_WITH(widen(*rn, 0, 16, nullptr), Catch::Contains("ResidualBlock"));
}

TEST_CASE("surgery: deepen inserts identity layers", "[surgery]") {
  manual_seed(3);
  Tensor x = randn({4, 1, 28, 28});
  auto mlp = brisk::models::mlp();
  Tensor y0 = eval_out(*mlp, x);
  deepen(*mlp, 2, nullptr);
  CHECK(mlp->size() == 8);
  expect_close(eval_out(*mlp, x), y0, 0, "mlp deepened");
  auto cnn = brisk::models::cnn();
  Tensor c0 = eval_out(*cnn, x);
  deepen(*cnn, 1, nullptr);
  CHECK(cnn->size() == 13);
  expect_close(eval_out(*cnn, x), c0, dtype_tol(DType::f32, 9), "cnn deepened");
  CHECK_THROWS_WITH(deepen(*cnn, 0, nullptr), Catch::Contains("insert after a ReLU"));
}

TEST_CASE("surgery: optimizer state is remapped, old kept, new zero, nothing aliased", "[surgery]") {
  for (std::string kind : {"sgd", "adamw"}) {
    INFO(kind);
    manual_seed(4);
    Sequential s({std::make_shared<Linear>(5, 3), std::make_shared<ReLU>(), std::make_shared<Linear>(3, 2)});
    std::unique_ptr<brisk::optim::Optimizer> opt;
    if (kind == "sgd") opt = std::make_unique<brisk::optim::SGD>(s.named_parameters(), brisk::optim::SGDOptions{0.1, 0.9});
    else opt = std::make_unique<brisk::optim::AdamW>(s.named_parameters(), brisk::optim::AdamWOptions{});
    for (int i = 0; i < 3; ++i) {
      opt->zero_grad();
      sum(pow(s.forward(randn({4, 5})), 2.0)).backward();
      opt->step();
    }
    std::string m1 = kind == "sgd" ? "momentum_buffer" : "exp_avg";
    Tensor before_p = opt->state().at("0.weight").at(m1).clone();
    Tensor before_c = opt->state().at("2.weight").at(m1).clone();
    Tensor before_v = kind == "adamw" ? opt->state().at("2.weight").at("exp_avg_sq").clone() : Tensor();
    auto r = widen(s, 0, 5, opt.get());
    // the optimizer updates the new tensors, under the same keys
    CHECK(opt->param("0.weight").is_same(s.parameter("0.weight")));
    CHECK(opt->param("2.weight").shape() == Shape({2, 5}));
    Tensor sp = opt->state().at("0.weight").at(m1), sc = opt->state().at("2.weight").at(m1);
    CHECK(sp.shape() == Shape({5, 5}));
    CHECK(bit_equal(sp.narrow(0, 0, 3), before_p));                          // old kept
    CHECK(max(abs(sp.narrow(0, 3, 2))).item() == 0.0);                      // new zero
    CHECK(max(abs(sc.narrow(1, 3, 2))).item() == 0.0);
    for (int64_t u = 0; u < 3; ++u) {
      int64_t c = std::count(r.source.begin(), r.source.end(), u);
      expect_close(sc.select(1, u), before_c.select(1, u) / double(c), 1e-7, "consumer column divided");
      if (kind == "adamw")
        expect_close(opt->state().at("2.weight").at("exp_avg_sq").select(1, u),
                     before_v.select(1, u) / double(c * c), 1e-7, "second moment divided by c^2");
    }
    if (kind == "adamw") CHECK(opt->state().at("0.weight").at("step").item() == 3);
    CHECK(sp.storage() != s.parameter("0.weight").storage());
    CHECK(sp.storage() != opt->state().at("0.bias").at(m1).storage());
    // training continues
    opt->zero_grad();
    sum(pow(s.forward(randn({4, 5})), 2.0)).backward();
    opt->step();
  }
}

TEST_CASE("surgery: deepen keeps optimizer state under the renamed keys", "[surgery]") {
  manual_seed(5);
  Sequential s({std::make_shared<Linear>(4, 4), std::make_shared<ReLU>(), std::make_shared<Linear>(4, 2)});
  brisk::optim::SGD opt(s.named_parameters(), {0.1, 0.9});
  opt.zero_grad();
  sum(s.forward(randn({3, 4}))).backward();
  opt.step();
  Tensor mom = opt.state().at("2.weight").at("momentum_buffer").clone();
  deepen(s, 1, &opt);
  CHECK(opt.params().size() == 6);
  CHECK(bit_equal(opt.state().at("4.weight").at("momentum_buffer"), mom));  // "2." moved to "4."
  CHECK_FALSE(opt.state().count("2.weight"));  // the new identity layer starts with no state
  CHECK(opt.param("2.weight").is_same(s.parameter("2.weight")));
}

TEST_CASE("surgery: the loss keeps falling after growth", "[surgery]") {
  manual_seed(6);
  Tensor x = randn({64, 8}), w_true = randn({8, 3});
  Tensor y = argmax(matmul(x, w_true), 1);
  Sequential s({std::make_shared<Linear>(8, 4), std::make_shared<ReLU>(), std::make_shared<Linear>(4, 3)});
  brisk::optim::SGD opt(s.named_parameters(), {0.1, 0.9});
  auto train_steps = [&](int n) {
    double last = 0;
    for (int i = 0; i < n; ++i) {
      Tensor loss = brisk::nn::functional::cross_entropy(s.forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      last = loss.item();
    }
    return last;
  };
  train_steps(30);
  double at_growth;
  {
    NoGradGuard ng;
    at_growth = brisk::nn::functional::cross_entropy(s.forward(x), y).item();
  }
  widen(s, 0, 16, &opt);
  deepen(s, 1, &opt);
  double after;
  {
    NoGradGuard ng;
    after = brisk::nn::functional::cross_entropy(s.forward(x), y).item();
  }
  CHECK(after == Approx(at_growth).epsilon(1e-5));  // function preserved (no BN here)
  double later = train_steps(60);
  CHECK(later < 0.8 * at_growth);
}

// Compares eval-mode outputs on a probe right before and right after a growth.
class GrowthProbe : public brisk::train::Callback {
 public:
  Tensor probe = randn({16, 1, 28, 28});
  Tensor before;
  int64_t grow_step;
  int checked = 0;
  explicit GrowthProbe(int64_t s) : grow_step(s) {}
  std::string name() const override { return "growth_probe"; }
  Tensor out(brisk::train::Trainer& t) {
    NoGradGuard ng;
    t.model().eval();
    Tensor y = t.model().forward(probe);
    t.model().train();
    return y;
  }
  void on_batch_end(brisk::train::Trainer& t) override {
    if (t.state().step == grow_step) before = out(t);
  }
  void on_batch_start(brisk::train::Trainer& t) override {
    if (t.state().step != grow_step) return;
    CHECK(t.model().num_parameters() > 0);
    expect_close(out(t), before, dtype_tol(DType::f32, 784), "outputs across growth");
    checked++;
  }
};

TEST_CASE("surgery: the grow method widens on schedule, preserves the function, resumes exactly", "[surgery][train]") {
  TrainConfig c = small_config("brisk_grow");  // mlp, 16 steps
  c.epochs = 2;
  c.methods = {"grow:kind=net2net,start=0.25,points=0.25/0.5"};
  brisk::train::Trainer t(c);
  auto* probe = new GrowthProbe(4);
  t.add_callback(std::unique_ptr<brisk::train::Callback>(probe));
  t.fit();
  CHECK(probe->checked == 1);
  CHECK(t.model().num_parameters() == 535818);  // back to full size after two doublings
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  CHECK(m.back()["width"].get<double>() == 1.0);
  CHECK(m.back()["params"] == 535818);
  CHECK(m.back()["test_acc"].get<double>() > 0.5);
  check_resume_bit_exact(c, {3, 6}, /*run_full=*/false);  // before, between and after the growths
  CHECK_THROWS_WITH(brisk::efficiency::make_method("grow:kind=stack"), Catch::Contains("not implemented yet"));
  CHECK_THROWS_WITH(brisk::efficiency::make_method("grow:points=0.5/0.25"), Catch::Contains("increasing"));
}

// MSG: the training loss on a fixed batch right before and right after growth.
class MsgProbe : public brisk::train::Callback {
 public:
  Tensor x = randn({32, 1, 28, 28}), y = randint(0, 10, {32});
  double before = 0;
  int64_t grow_step;
  std::vector<double> gates_seen;
  explicit MsgProbe(int64_t s) : grow_step(s) {}
  std::string name() const override { return "msg_probe"; }
  double loss(brisk::train::Trainer& t) {
    NoGradGuard ng;
    return brisk::nn::functional::cross_entropy(t.model().forward(x), y).item();  // train mode
  }
  void on_batch_end(brisk::train::Trainer& t) override {
    if (t.state().step == grow_step) before = loss(t);
  }
  void on_batch_start(brisk::train::Trainer& t) override {
    auto& seq = dynamic_cast<Sequential&>(t.model());
    for (size_t i = 0; i < seq.size(); ++i)
      if (auto* g = dynamic_cast<Gate*>(seq[i].get())) gates_seen.push_back(min(g->gate).item());
    if (t.state().step == grow_step) CHECK(loss(t) == Approx(before).epsilon(1e-6));  // identical loss
  }
};

TEST_CASE("surgery: MSG growth keeps the loss, ramps its gates, and resumes exactly", "[surgery][train]") {
  TrainConfig c = small_config("brisk_msg");  // mlp, 16 steps
  c.epochs = 2;
  c.methods = {"grow:kind=msg,start=0.25,points=0.25/0.5,ramp=0.25"};
  brisk::train::Trainer t(c);
  auto* probe = new MsgProbe(4);
  t.add_callback(std::unique_ptr<brisk::train::Callback>(probe));
  t.fit();
  CHECK(t.model().num_parameters() == 535818);
  REQUIRE_FALSE(probe->gates_seen.empty());
  CHECK(*std::min_element(probe->gates_seen.begin(), probe->gates_seen.end()) == 0.0);  // born closed
  CHECK(probe->gates_seen.back() == 1.0);  // fully open by the end
  auto& seq = dynamic_cast<Sequential&>(t.model());
  int gates = 0;
  for (size_t i = 0; i < seq.size(); ++i) gates += dynamic_cast<Gate*>(seq[i].get()) != nullptr;
  CHECK(gates == 2);
  check_resume_bit_exact(c, {3, 6}, /*run_full=*/false);
}
