// Surgery: widen and deepen preserve the function (noise 0, eval mode), and
// the optimizer state is remapped: old kept, new zero, splits divided, no aliasing.
#include "models/models.h"
#include "surgery/surgery.h"
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
}

// Eval-mode forward after moving every BatchNorm's statistics off their defaults.
static void warm_bn(Sequential& m, const Tensor& x) {
  NoGradGuard ng;
  m.train();
  m.forward(x);
  m.forward(x * 1.5 + 0.3);
}

TEST_CASE("surgery: resnet channel groups couple the residual stream", "[surgery]") {
  auto rn = brisk::models::resnet(0.25);  // c1 = 8, c2 = 16
  auto gs = channel_groups(*rn);
  std::vector<std::string> names;
  for (auto& g : gs) names.push_back(g.name);
  CHECK(names == std::vector<std::string>{"0", "3.conv1", "3.conv2", "4.conv1", "4.conv2", "5.conv1"});
  auto& stream = gs[4];  // 4.conv2 + 4.shortcut.0 + 5.conv2 write it; 5.conv1 and the classifier read it
  CHECK(stream.coupled());
  REQUIRE(stream.producers.size() == 3);
  CHECK(stream.producers[2].key == "5.conv2");
  CHECK(stream.norms.size() == 3);
  REQUIRE(stream.consumers.size() == 2);
  CHECK(stream.consumers[0].key == "5.conv1");
  CHECK(stream.consumers[1].key == "8");
  CHECK(gs[0].consumers.size() == 2);  // stem -> 3.conv1 and 3.shortcut.0
  Sequential ln({std::make_shared<Linear>(4, 4), std::make_shared<LayerNorm>(Shape{4}), std::make_shared<Linear>(4, 2)});
  CHECK_THROWS_WITH(channel_groups(ln), Catch::Contains("cannot carry the channels of 0 through LayerNorm"));
}

TEST_CASE("surgery: widen and deepen preserve the resnet's function, optimizer state follows", "[surgery]") {
  manual_seed(12);
  Tensor x = randn({4, 1, 28, 28});
  auto rn = brisk::models::resnet(0.25);
  brisk::optim::SGD opt(rn->named_parameters(), {0.1, 0.9, 0.0, 1e-3, false});
  for (int i = 0; i < 2; ++i) {  // non-zero momentum everywhere
    opt.zero_grad();
    brisk::nn::functional::cross_entropy(rn->forward(x), from_vector({1, 2, 3, 4}, {4}, DType::i64)).backward();
    opt.step();
  }
  warm_bn(*rn, x);
  Tensor y0 = eval_out(*rn, x);
  Tensor m_prod = opt.state().at("5.bn2.weight").at("momentum_buffer").clone();
  Tensor m_cons = opt.state().at("8.weight").at("momentum_buffer").clone();
  size_t G = channel_groups(*rn).size();
  WidenResult stream;
  for (size_t i = 0; i < G; ++i) {
    ChannelGroup g = channel_groups(*rn)[i];
    Generator gen(40 + i);
    WidenResult r = widen_group(g, g.width() + 5, &opt, 0.0, &gen);
    if (i == 4) stream = r;
  }
  expect_close(eval_out(*rn, x), y0, dtype_tol(DType::f32, 600), "resnet widened");
  CHECK(std::dynamic_pointer_cast<Linear>((*rn)[8])->in_features == 21);
  // producer state: old rows kept, new rows zero; consumer: old columns divided (sum preserved)
  Tensor mp = opt.state().at("5.bn2.weight").at("momentum_buffer");  // a writer of the coupled stream
  REQUIRE(mp.size(0) == 21);
  CHECK(bit_equal(mp.narrow(0, 0, 16), m_prod));
  CHECK(max(abs(mp.narrow(0, 16, 5))).item() == 0.0);
  CHECK(max(abs(m_prod)).item() > 0.0);
  Tensor mc = opt.state().at("8.weight").at("momentum_buffer");
  REQUIRE(mc.size(1) == 21);
  std::vector<int64_t> count(16, 0);
  for (int64_t src : stream.source) count[size_t(src)]++;
  for (int64_t j = 0; j < 21; ++j) {  // old columns divided by the replica count, new ones zero
    Tensor want = j < 16 ? m_cons.select(1, j) / double(count[size_t(j)]) : zeros({10});
    CHECK(max_rel_err(mc.select(1, j), want) < 1e-6);
  }
  CHECK(opt.param("8.weight").is_same(rn->parameter("8.weight")));
  // deepen after a residual block: identity in train mode too (bn2's scale and shift are zero)
  Tensor t0, t1;
  {
    NoGradGuard ng;
    t0 = rn->forward(x);
    deepen(*rn, 5, &opt);
    t1 = rn->forward(x);
  }
  CHECK(rn->size() == 10);
  CHECK(bit_equal(t0, t1));
  CHECK(opt.state().count("6.conv1.weight") == 0);  // the new block has no state yet
  CHECK(opt.state().count("5.conv2.weight") == 1);
  CHECK(opt.param("9.weight").is_same(rn->parameter("9.weight")));  // the classifier, re-keyed
}

TEST_CASE("surgery: pruning a resnet's coupled channels equals masking them", "[surgery]") {
  manual_seed(13);
  Tensor x = randn({4, 1, 28, 28});
  auto a = brisk::models::resnet(0.25);
  warm_bn(*a, x);
  auto b = brisk::models::resnet(0.25);
  b->load_state_dict(a->state_dict());
  // drop units {1, 4, 6} of the stem's group and {0, 15} of the coupled stream
  std::vector<std::pair<size_t, std::vector<int64_t>>> drops{{0, {1, 4, 6}}, {4, {0, 15}}, {1, {2}}};
  {
    NoGradGuard ng;
    for (auto& [gi, drop] : drops) {
      ChannelGroup g = channel_groups(*b)[gi];
      for (int64_t u : drop) {
        for (auto& p : g.producers) p.layer->parameter("weight").detach().select(0, u).fill_(0.0);
        for (auto& p : g.norms) {
          p.layer->parameter("weight").detach().select(0, u).fill_(0.0);
          p.layer->parameter("bias").detach().select(0, u).fill_(0.0);
        }
      }
    }
  }
  Tensor masked = eval_out(*b, x);
  for (auto& [gi, drop] : drops) {
    ChannelGroup g = channel_groups(*a)[gi];
    std::vector<int64_t> keep;
    for (int64_t u = 0; u < g.width(); ++u)
      if (std::find(drop.begin(), drop.end(), u) == drop.end()) keep.push_back(u);
    remove_group_units(g, keep, nullptr);
  }
  CHECK(std::dynamic_pointer_cast<Conv2d>((*a)[0])->out_channels == 5);
  CHECK(std::dynamic_pointer_cast<ResidualBlock>((*a)[5])->conv2->weight.size(0) == 14);  // writes the coupled stream
  CHECK(a->num_parameters() < b->num_parameters());
  expect_close(eval_out(*a, x), masked, dtype_tol(DType::f32, 600), "pruned resnet vs masked");
}

TEST_CASE("surgery: depth stacking copies identity blocks and truncation drops them", "[surgery]") {
  manual_seed(14);
  auto rn = brisk::models::resnet(0.25, 2);
  CHECK(identity_run_lengths(*rn) == std::vector<int64_t>{2, 3});
  brisk::optim::AdamW opt(rn->named_parameters(), {});
  int64_t full = rn->num_parameters();
  truncate_identity_runs(*rn, {1, 1}, &opt);
  CHECK(identity_run_lengths(*rn) == std::vector<int64_t>{1, 1});
  CHECK(opt.params().size() == rn->named_parameters().size());
  int64_t small = rn->num_parameters();
  CHECK(small < full);
  CHECK(stack_blocks(*rn, &opt, "", {2, 3}) == 2);  // 1 -> 2, 1 -> 2
  CHECK(identity_run_lengths(*rn) == std::vector<int64_t>{2, 2});
  auto b4 = std::dynamic_pointer_cast<ResidualBlock>((*rn)[4]), b5 = std::dynamic_pointer_cast<ResidualBlock>((*rn)[5]);
  CHECK(bit_equal(b4->conv1->weight, b5->conv1->weight));  // the copy
  CHECK_FALSE(b4->conv1->weight.is_same(b5->conv1->weight));  // not aliased
  CHECK(bit_equal(b4->bn1->running_mean, b5->bn1->running_mean));
  CHECK(stack_blocks(*rn, &opt, "", {2, 3}) == 1);  // capped: 2 stays, 2 -> 3
  CHECK(rn->num_parameters() == full);
  CHECK(opt.params().size() == rn->named_parameters().size());
  for (auto& [n, p] : rn->named_parameters()) CHECK(opt.param(n).is_same(p));
  auto mlp = brisk::models::mlp();
  CHECK_THROWS_WITH(stack_blocks(*mlp, nullptr), Catch::Contains("no identity residual blocks"));
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
  // The mode that preserves the function (docs/methods/growth.md): the linear
  // insertion in train mode too; the conv + BatchNorm insertion only in eval
  // mode, since in train mode the new BatchNorm normalizes with the batch's
  // statistics.
  brisk::NoGradGuard ng;
  auto train_out = [&](brisk::nn::Module& m) { m.train(); return m.forward(x); };
  auto cnn2 = brisk::models::cnn();
  Tensor t0 = train_out(*cnn2);  // the cnn has no BatchNorm: train mode equals eval mode
  deepen(*cnn2, 1, nullptr);
  cnn2->eval();
  expect_close(cnn2->forward(x), t0, dtype_tol(DType::f32, 9), "cnn deepened, eval mode");
  // (a train-mode pass also moves the new BatchNorm's running statistics)
  CHECK(max_rel_err(train_out(*cnn2), t0) > 1e-3);  // the new BatchNorm uses batch statistics
  auto mlp2 = brisk::models::mlp();
  Tensor m0 = train_out(*mlp2);
  deepen(*mlp2, 2, nullptr);
  expect_close(train_out(*mlp2), m0, 0, "mlp deepened, train mode");
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
  c.methods = {"grow:kind=net2net,start=0.25,points=0.25/0.5,noise=0"};  // noise 0: exact function
  brisk::train::Trainer t(c, brisk::efficiency::make_methods);
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
  CHECK_THROWS_WITH(brisk::efficiency::make_method("grow:points=0.5/0.25"), Catch::Contains("increasing"));
}

TEST_CASE("surgery: the grow method grows a resnet (net2net, coupled channels) and stacks depth", "[surgery][train][long-train]") {
  TrainConfig c = small_config("brisk_grow_resnet");
  c.model = "resnet";
  c.epochs = 2;
  c.methods = {"grow:kind=net2net,start=0.5,points=0.25,noise=0"};  // noise 0: exact function
  brisk::train::Trainer t(c, brisk::efficiency::make_methods);
  auto* probe = new GrowthProbe(4);
  t.add_callback(std::unique_ptr<brisk::train::Callback>(probe));
  t.fit();
  CHECK(probe->checked == 1);  // eval outputs identical across the growth
  CHECK(t.model().num_parameters() == brisk::models::resnet()->num_parameters());
  check_resume_bit_exact(c, {3, 6}, /*run_full=*/false);

  TrainConfig s = small_config("brisk_stack");
  s.model = "resnet-deep";
  s.epochs = 2;
  s.methods = {"grow:kind=stack,points=0.25/0.5"};
  s.eval_every = 2;
  brisk::train::Trainer ts(s, brisk::efficiency::make_methods);
  ts.fit();
  auto m = read_jsonl(s.out + "/metrics.jsonl");
  CHECK(ts.model().num_parameters() == brisk::models::resnet(1.0, 2)->num_parameters());
  CHECK(m.front()["params"].get<int64_t>() < m.back()["params"].get<int64_t>());
  // training continues and the loss keeps falling after both growths (at steps 4 and 8)
  CHECK(m.back()["train_loss"].get<double>() < 0.5 * m[3]["train_loss"].get<double>());
  check_resume_bit_exact(s, {3, 5}, /*run_full=*/false);
  TrainConfig bad = small_config("brisk_stack_mlp");
  bad.methods = {"grow:kind=stack"};
  CHECK_THROWS_WITH(brisk::train::Trainer(bad, brisk::efficiency::make_methods).fit(), Catch::Contains("needs identity residual blocks"));
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
  brisk::train::Trainer t(c, brisk::efficiency::make_methods);
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
