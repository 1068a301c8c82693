// Layer freezing (efficiency/freezing): the per-layer learning rates and
// freeze points of FreezeOut and of linear freezing against hand-computed
// schedules, frozen layers unchanged after their point, their backward work
// gone (GEMM FLOPs of the backward pass counted by hand), bit-exact resume,
// and the optimizer's per-parameter learning-rate scale it builds on.
#include <cmath>

#include "core/flops.h"
#include "efficiency/compose.h"
#include "optim/optimizer.h"
#include "tests/train_helpers.h"

using namespace bt;
using brisk::train::Trainer;

TEST_CASE("optimizer: a per-parameter lr scale steps that parameter with lr * scale", "[optim]") {
  for (bool fused : {true, false}) {
    INFO("fused " << fused);
    Tensor a = Tensor(uniform64({3, 4}).to(DType::f32)).requires_grad_(true);
    Tensor b = Tensor(uniform64({5}, -1, 1, 2).to(DType::f32)).requires_grad_(true);
    Tensor a0 = a.detach().clone(), b0 = b.detach().clone();
    brisk::optim::SGDOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.fused = fused;
    brisk::optim::SGD opt({{"a", a}, {"b", b}}, o);
    opt.set_lr_scale("a", 0.25);
    CHECK(opt.lr_for("a") == Approx(0.025));
    CHECK(opt.lr_for("b") == 0.1);
    a.set_grad(full({3, 4}, 2.0, DType::f32));
    b.set_grad(full({5}, 2.0, DType::f32));
    opt.step();  // first step: buffer = g, p -= lr * g
    CHECK(max_rel_err(a.detach(), a0 - 0.025 * 2.0) < 1e-6);
    CHECK(max_rel_err(b.detach(), b0 - 0.1 * 2.0) < 1e-6);
    CHECK_THROWS_WITH(opt.set_lr_scale("c", 1.0), Catch::Contains("no parameter named 'c'"));
    CHECK_THROWS_WITH(opt.set_lr_scale("a", -1.0), Catch::Contains("must be finite and >= 0"));
  }
  // AdamW: the first step moves each element by lr * sign(g) (bias-corrected m/sqrt(v) = 1).
  Tensor a = Tensor(zeros({4}, DType::f32)).requires_grad_(true);
  brisk::optim::AdamWOptions ao;
  ao.lr = 0.01;
  ao.weight_decay = 0;
  brisk::optim::AdamW adam({{"a", a}}, ao);
  adam.set_lr_scale("a", 0.5);
  a.set_grad(full({4}, 3.0, DType::f32));
  adam.step();
  CHECK(sum(a.detach()).item() == Approx(4 * -0.005).epsilon(1e-4));
}

namespace {
// The mlp on the synthetic data: 512 examples, batch 64, 2 epochs = 16 steps;
// its layers with parameters are children "1", "3", "5" (784-512-256-10).
TrainConfig freeze_config(const std::string& name, const std::string& spec) {
  TrainConfig c = small_config(name);
  c.methods = {spec};
  return c;
}
double cosine(double lr, double frac) { return 0.5 * lr * (1 + std::cos(M_PI * std::min(frac, 1.0))); }
}  // namespace

TEST_CASE("freeze: FreezeOut anneals each layer's lr to zero at its point, then freezes it", "[freeze][conformance]") {
  // t0 = 0.5, linear spacing, 3 layers: freeze points 0.5, 0.75, 1 (steps 8, 12, never).
  for (int scale : {0, 1}) {
    INFO("scale_lr " << scale);
    TrainConfig c = freeze_config("freezeout", "freeze:kind=freezeout,t0=0.5,spacing=linear,scale_lr=" +
                                                   std::to_string(scale));
    Trainer t(c, brisk::efficiency::make_methods);
    Probe* p = add_probe(t);
    const double T = 16, lr = c.lr;
    const double tf[3] = {0.5, 0.75, 1.0};
    const char* layer[3] = {"1.weight", "3.weight", "5.weight"};
    std::map<std::string, Tensor> frozen_value;
    int64_t checked = 0;
    p->before_step = [&](Trainer& tr) {
      double s = double(tr.state().step);
      for (int i = 0; i < 3; ++i) {
        Tensor w = tr.model().parameter(layer[i]);
        bool should_freeze = tf[i] < 1 && s / T >= tf[i];
        INFO("step " << s << " layer " << layer[i]);
        CHECK(w.requires_grad() == !should_freeze);
        CHECK(w.grad().defined() == !should_freeze);  // no backward work reached it
        if (should_freeze) continue;
        // The paper's per-layer cosine: 0.5 * lr_i * (1 + cos(pi * t / t_i)),
        // lr_i = lr / t_i when scaled (position floor(s / t_i) of the run's cosine).
        double want = cosine(scale ? lr / tf[i] : lr, std::floor(s / tf[i]) / T);
        CHECK(tr.optimizer().lr_for(layer[i]) == Approx(want).margin(1e-12));
        ++checked;
      }
    };
    p->after_step = [&](Trainer& tr) {
      for (int i = 0; i < 2; ++i) {
        Tensor w = tr.model().parameter(layer[i]);
        if (!w.requires_grad()) {
          if (!frozen_value.count(layer[i])) frozen_value[layer[i]] = w.detach().clone();
          CHECK(bit_equal(w.detach(), frozen_value[layer[i]]));  // a frozen layer never moves
        }
      }
    };
    t.fit();
    CHECK(checked == 8 + 12 + 16);
    CHECK(frozen_value.size() == 2);
    json m = read_jsonl(c.out + "/metrics.jsonl").back();
    CHECK(m["frozen_layers"] == 2);
    CHECK(m["frozen_params"] == 784 * 512 + 512 + 512 * 256 + 256);
  }
}

TEST_CASE("freeze: cubic spacing and linear freezing put the freeze points where the formulas say", "[freeze][conformance]") {
  struct Case {
    std::string spec;
    std::vector<int64_t> first_frozen_step;  // per layer; -1: never
  };
  // cubic: t_i = (0.8 + 0.2 i / 2)^3 = 0.512, 0.729, 1 -> steps ceil(16 t): 9, 12, never.
  // linear freezing, start 0.25, level 1, 3 layers: t_i = 0.25 + 0.75 (i+1)/3 = 0.5, 0.75, 1.
  // linear, start 0, level 0.5: t_i = (i+1) / 1.5 = 0.667, 1.33 -> step 11, never.
  for (const Case& k : {Case{"freeze:kind=freezeout,t0=0.8,spacing=cubic", {9, 12, -1}},
                        Case{"freeze:kind=linear,start=0.25", {8, 12, -1}},
                        Case{"freeze:kind=linear,start=0,level=0.5", {11, -1, -1}}}) {
    INFO(k.spec);
    TrainConfig c = freeze_config("freeze_points", k.spec);
    Trainer t(c, brisk::efficiency::make_methods);
    Probe* p = add_probe(t);
    std::vector<int64_t> first(3, -1);
    const char* layer[3] = {"1.weight", "3.weight", "5.weight"};
    p->before_step = [&](Trainer& tr) {
      for (int i = 0; i < 3; ++i)
        if (!tr.model().parameter(layer[i]).requires_grad() && first[size_t(i)] < 0)
          first[size_t(i)] = tr.state().step;
      if (k.spec.find("kind=linear") != std::string::npos)  // linear freezing leaves learning rates alone
        for (auto* l : layer) CHECK(tr.optimizer().lr_for(l) == tr.optimizer().lr());
    };
    t.fit();
    CHECK(first == k.first_frozen_step);
  }
}

TEST_CASE("freeze: a frozen first layer takes its backward work away (GEMM FLOPs by hand)", "[freeze][conformance]") {
  // Linear freezing from the start, 3 layers: t_i = (i + 1) / 3, so the first
  // layer is frozen from step 6 (6/16 >= 1/3) and the second from step 11.
  TrainConfig c = freeze_config("freeze_flops", "freeze:kind=linear,start=0,level=1");
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  int64_t f0 = 0;
  std::map<int64_t, int64_t> backward_flops;  // step -> FLOPs
  p->after_loss = [&](Trainer&) { f0 = brisk::flops_counted(); };
  p->after_backward = [&](Trainer& tr) { backward_flops[tr.state().step] = brisk::flops_counted() - f0; };
  t.fit();
  const int64_t B = 64;
  // All layers train: dW for 784x512, 512x256, 256x10; dX for the last two (the input needs none).
  int64_t full = 2 * B * (784 * 512 + 2 * 512 * 256 + 2 * 256 * 10);
  // First layer frozen (steps 6..10): its dW goes, and so does the second layer's dX.
  int64_t one = 2 * B * (512 * 256 + 2 * 256 * 10);
  // First two frozen (steps 11..15): only the classifier's dW remains.
  int64_t two = 2 * B * (256 * 10);
  CHECK(backward_flops.at(0) == full);
  CHECK(backward_flops.at(5) == full);
  CHECK(backward_flops.at(6) == one);
  CHECK(backward_flops.at(10) == one);
  CHECK(backward_flops.at(11) == two);
  CHECK(backward_flops.at(15) == two);
}

TEST_CASE("freeze: resume is bit-exact across the freeze points", "[freeze][train]") {
  TrainConfig c = freeze_config("freeze_resume", "freeze:kind=freezeout,t0=0.5,spacing=linear");
  check_resume_bit_exact(c, {5, 9, 13});
}

TEST_CASE("freeze: composes with pruning and selection, and is refused with growth", "[freeze][compose]") {
  std::vector<std::unique_ptr<brisk::train::Callback>> ms;
  for (const char* m : {"select:kind=rs2,ratio=0.5", "freeze:kind=linear", "prune:target=0.5"})
    ms.push_back(brisk::efficiency::make_method(m));
  brisk::efficiency::order_and_check(ms);
  CHECK(ms[0]->name() == "prune");
  CHECK(ms[1]->name() == "freeze");
  CHECK(ms[2]->name() == "select");
  TrainConfig g = small_config("freeze_grow");
  g.methods = {"grow:kind=net2net", "freeze:kind=linear"};
  CHECK_THROWS_WITH(Trainer(g, brisk::efficiency::make_methods), Catch::Contains("'grow' and 'freeze' cannot be combined"));
  // Channel pruning's surgery puts fresh tensors into layers that may be frozen: they stay frozen.
  TrainConfig c = small_config("freeze_channel");
  c.model = "cnn";
  c.methods = {"prune:structure=channel,target=0.5,start=0.6", "freeze:kind=linear,start=0.25"};
  Trainer t(c, brisk::efficiency::make_methods);
  t.fit();
  CHECK(!t.model().parameter("0.weight").requires_grad());
  CHECK(t.model().parameter("0.weight").size(0) == 16);  // surgery halved it
  CHECK(t.model().parameter("9.weight").requires_grad());
}

TEST_CASE("freeze: bad keys are errors naming them", "[freeze][errors]") {
  refused_spec("freeze:kind=thaw", "unknown kind 'thaw'");
  refused_spec("freeze:t0=0", "t0 must be in (0, 1]");
  refused_spec("freeze:t0=1.5", "t0 must be in (0, 1]");
  refused_spec("freeze:spacing=square", "unknown spacing 'square'");
  refused_spec("freeze:scale_lr=2", "scale_lr must be 0 or 1");
  refused_spec("freeze:kind=linear,start=1", "start must be in [0, 1)");
  refused_spec("freeze:kind=linear,level=0", "level must be in (0, 1]");
  refused_spec("freeze:kind=linear,t0=0.5", "t0");
}
