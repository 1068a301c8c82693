// Stochastic Weight Averaging (efficiency/averaging/swa): the average equals
// the mean of the weights at the averaging steps (recorded by a probe, not by
// the method), the SWA learning rate follows the hand-computed anneal, the
// evaluation sees the average and training continues from its own weights,
// BatchNorm statistics are recomputed for the average, and resume is bit-exact.
#include <cmath>

#include "efficiency/compose.h"
#include "nn/layers.h"
#include "tests/train_helpers.h"

using namespace bt;
using brisk::train::Trainer;

TEST_CASE("swa: the evaluated weights are the mean of the weights at the averaging steps", "[swa][conformance]") {
  // mlp, 16 steps; start 0.5 -> the first average at step 8, then every 2 steps: 8, 10, 12, 14.
  // anneal 0.25 of 16 = 4 steps: the lr goes from the schedule's lr at step 8 to 0.01 by step 12.
  TrainConfig c = small_config("swa_mean");
  c.methods = {"swa:start=0.5,lr=0.01,anneal=0.25,frequency=2"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  std::map<std::string, Tensor> sum;
  std::map<std::string, Tensor> last;
  int64_t n = 0, evals = 0;
  const double lr0 = 0.5 * c.lr * (1 + std::cos(M_PI * 8.0 / 16.0));  // the run's cosine at step 8
  p->before_step = [&](Trainer& tr) {
    double s = double(tr.state().step);
    double want = s < 8 ? 0.5 * c.lr * (1 + std::cos(M_PI * s / 16.0))
                        : 0.01 + (lr0 - 0.01) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, (s - 8) / 4.0)));
    INFO("step " << s);
    CHECK(tr.optimizer().lr() == Approx(want).margin(1e-12));
  };
  p->after_step = [&](Trainer& tr) {
    int64_t s = tr.state().step;  // the step just taken (not yet counted)
    for (auto& [k, v] : tr.model().named_parameters()) last[k] = v.detach().clone();
    if (s >= 8 && (s - 8) % 2 == 0) {
      ++n;
      for (auto& [k, v] : tr.model().named_parameters())
        sum[k] = sum.count(k) ? sum[k] + v.detach().to(DType::f64) : v.detach().to(DType::f64);
    }
  };
  p->eval_start = [&](Trainer& tr) {
    ++evals;
    if (n == 0) {  // epoch 1: no average yet, the weights are evaluated as they are
      for (auto& [k, v] : tr.model().named_parameters()) CHECK(bit_equal(v.detach(), last.at(k)));
      return;
    }
    for (auto& [k, v] : tr.model().named_parameters()) {
      INFO(k);
      CHECK(max_rel_err(v.detach().to(DType::f64), sum.at(k) / double(n)) < 1e-5);
    }
  };
  t.fit();
  CHECK(n == 4);
  CHECK(evals == 2);
  // After the evaluation training's own weights are back.
  for (auto& [k, v] : t.model().named_parameters()) CHECK(bit_equal(v.detach(), last.at(k)));
  json m = read_jsonl(c.out + "/metrics.jsonl").back();
  CHECK(m["swa_models"] == 4);
}

TEST_CASE("swa: BatchNorm statistics are recomputed for the averaged weights", "[swa][conformance]") {
  TrainConfig c = small_config("swa_bn");
  c.model = "resnet";
  c.epochs = 1;
  c.methods = {"swa:start=0.5,frequency=1,anneal=0"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  bool checked = false;
  p->eval_start = [&](Trainer& tr) {
    // By hand: the stem BatchNorm's running mean is the mean over the
    // training batches (in order, batch 64) of each batch's per-channel mean
    // of the stem convolution's output, under the weights now in the model.
    NoGradGuard ng;
    auto kids = tr.model().named_children();
    auto* conv = kids[0].second.get();
    auto* bn = dynamic_cast<brisk::nn::BatchNorm2d*>(kids[1].second.get());
    REQUIRE(bn != nullptr);
    brisk::data::DataLoader loader(tr.train_loader().dataset(), brisk::data::in_order(64));
    loader.start_epoch(0);
    Tensor acc;
    int64_t k = 0;
    while (auto b = loader.next()) {
      Tensor y = conv->forward(b->x).to(DType::f64);  // [B, C, H, W]
      Tensor m = mean(y, {0, 2, 3});                  // [C]
      acc = acc.defined() ? acc + m : m;
      ++k;
    }
    CHECK(max_rel_err(bn->running_mean.to(DType::f64), acc / double(k)) < 1e-4);
    checked = true;
  };
  t.fit();
  CHECK(checked);
  json m = read_jsonl(c.out + "/metrics.jsonl").back();
  CHECK(m["swa_bn_pass_s"].get<double>() > 0);
}

TEST_CASE("swa: resume is bit-exact, before and after the first average", "[swa][train]") {
  TrainConfig c = small_config("swa_resume");
  c.methods = {"swa:start=0.25,frequency=3,anneal=0.25"};
  check_resume_bit_exact(c, {3, 7, 12});
}

TEST_CASE("swa: composition refusals and bad keys", "[swa][errors]") {
  TrainConfig c = small_config("swa_refused");
  c.methods = {"swa", "ema"};
  CHECK_THROWS_WITH(Trainer(c, brisk::efficiency::make_methods), Catch::Contains("'ema' and 'swa' cannot be combined"));
  c.methods = {"swa", "prune:structure=channel,target=0.5,start=0.2"};
  CHECK_THROWS_WITH(Trainer(c, brisk::efficiency::make_methods), Catch::Contains("'swa' cannot be combined"));
  refused_spec("swa:start=1", "start must be in [0, 1)");
  refused_spec("swa:lr=0", "lr must be > 0");
  refused_spec("swa:start=0.8,anneal=0.5", "anneal must be in [0, 1 - start]");
  refused_spec("swa:frequency=-1", "frequency");
  refused_spec("swa:decay=0.9", "decay");
}
