// Stochastic depth (efficiency/stochastic_depth): a dropped block computes
// relu(shortcut(x)) with no convolution work and no gradient to its branch;
// evaluation scales each branch by its survival probability (checked against
// the block's parts by hand); the linear decay rule and the drop frequencies;
// the trainer drops what the rule draws, and resumes bit-exactly.
#include <cmath>

#include "core/flops.h"
#include "efficiency/stochastic_depth/stochastic_depth.h"
#include "nn/layers.h"
#include "tests/train_helpers.h"

using namespace bt;
using brisk::train::Trainer;

TEST_CASE("stochastic depth: a dropped block is its shortcut, and evaluation scales the branch by p", "[stochastic-depth][conformance]") {
  for (int64_t cout : {4, 8}) {  // identity shortcut, and a projection (stride 2)
    INFO("out channels " << cout);
    brisk::nn::ResidualBlock blk(4, cout, cout == 4 ? 1 : 2);
    Tensor x = uniform64({2, 4, 6, 6}, -1, 1, 9).to(DType::f32).requires_grad_(true);
    blk.train();
    blk.skip_branch = true;
    int64_t f0 = brisk::flops_counted();
    Tensor y = blk.forward(x);
    int64_t shortcut_flops = cout == 4 ? 0 : 2 * 2 * 3 * 3 * 4 * cout;  // a 1x1 projection over 3x3 outputs
    CHECK(brisk::flops_counted() - f0 == shortcut_flops);
    Tensor want = relu(blk.shortcut->forward(x));
    CHECK(bit_equal(y, want));
    sum(y).backward();
    CHECK(!blk.conv1->weight.grad().defined());  // the branch had no backward pass
    CHECK(!blk.conv2->weight.grad().defined());
    // Evaluation: relu(p * bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
    blk.eval();
    blk.skip_branch = true;  // ignored outside training
    blk.survival = 0.7;
    NoGradGuard ng;
    Tensor h = relu(blk.bn1->forward(blk.conv1->forward(x)));
    h = blk.bn2->forward(blk.conv2->forward(h));
    Tensor by_hand = relu(h * 0.7 + blk.shortcut->forward(x));
    CHECK(max_rel_err(blk.forward(x), by_hand) < 1e-6);
  }
}

TEST_CASE("stochastic depth: the linear decay rule and the drop frequencies", "[stochastic-depth][conformance]") {
  using brisk::efficiency::keep_block;
  using brisk::efficiency::survival_probability;
  // Huang et al.: p_l = 1 - (l / L)(1 - p_L); with L = 4 and p_L = 0.5: 0.875, 0.75, 0.625, 0.5.
  CHECK(survival_probability(1, 4, 0.5, false) == Approx(0.875));
  CHECK(survival_probability(2, 4, 0.5, false) == Approx(0.75));
  CHECK(survival_probability(4, 4, 0.5, false) == Approx(0.5));
  CHECK(survival_probability(2, 4, 0.8, true) == Approx(0.8));
  for (double p : {0.5, 0.875}) {
    int kept = 0;
    const int n = 20000;
    for (int c = 0; c < n; ++c) kept += keep_block(3, c, 2, p);
    double sd = std::sqrt(n * p * (1 - p));
    CHECK(std::fabs(kept - n * p) < 4 * sd);
  }
  // Blocks are drawn independently: the joint frequency is the product.
  int both = 0;
  for (int c = 0; c < 20000; ++c) both += keep_block(5, c, 1, 0.5) && keep_block(5, c, 2, 0.5);
  CHECK(std::fabs(both - 5000) < 4 * std::sqrt(20000 * 0.25 * 0.75));
}

TEST_CASE("stochastic depth: the trainer drops the drawn blocks, and resume is bit-exact", "[stochastic-depth][train]") {
  TrainConfig c = small_config("sdepth");
  c.model = "resnet";
  c.methods = {"stochastic-depth:p_last=0.5"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  int64_t checked = 0;
  p->batch_start = [&](Trainer& tr) {
    std::vector<brisk::nn::ResidualBlock*> bs;
    for (auto& [n, m] : tr.model().named_modules())
      if (auto* b = dynamic_cast<brisk::nn::ResidualBlock*>(m)) bs.push_back(b);
    REQUIRE(bs.size() == 3);
    for (int64_t l = 1; l <= 3; ++l) {
      double pl = 1.0 - double(l) / 3.0 * 0.5;
      CHECK(bs[size_t(l - 1)]->survival == Approx(pl));
      CHECK(bs[size_t(l - 1)]->skip_branch == !brisk::efficiency::keep_block(c.seed, tr.clock(), l, pl));
      ++checked;
    }
  };
  p->after_backward = [&](Trainer& tr) {  // a dropped branch has no gradient this step
    for (auto& [n, m] : tr.model().named_modules())
      if (auto* b = dynamic_cast<brisk::nn::ResidualBlock*>(m))
        CHECK(b->conv1->weight.grad().defined() == !b->skip_branch);
  };
  t.fit();
  CHECK(checked == 16 * 3);
  double frac = read_jsonl(c.out + "/metrics.jsonl").back()["dropped_block_fraction"].get<double>();
  CHECK(frac > 0);
  CHECK(frac < 0.6);
  TrainConfig r = small_config("sdepth_resume");
  r.model = "resnet";
  r.methods = c.methods;
  check_resume_bit_exact(r, {5, 11});
  refused_spec("stochastic-depth:p_last=0", "p_last must be in (0, 1]");
  refused_spec("stochastic-depth:rule=cubic", "unknown rule 'cubic'");
  TrainConfig mlp = small_config("sdepth_mlp");
  mlp.methods = c.methods;
  CHECK_THROWS_WITH(Trainer(mlp, brisk::efficiency::make_methods).fit(), Catch::Contains("no residual blocks"));
}
