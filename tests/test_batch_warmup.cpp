// Batch-size warmup (efficiency/batch_scaling): the step sizes of the ramp
// written out by hand for a small run, the examples visited per loaded batch
// against a plain run's, each step's learning rate against the plain run's
// schedule times the rule's factor, evaluation at every --eval-every
// multiple when steps come several per loaded batch, bit-exact resume, and
// the refused settings.
#include <cmath>

#include "tests/train_helpers.h"

using namespace bt;
using brisk::train::Trainer;

namespace {
struct Trace {
  std::vector<int64_t> sizes, clocks;        // per optimizer step
  std::vector<double> lrs;                   // per optimizer step, as stepped
  std::vector<std::vector<int64_t>> loaded;  // indices visited per loaded batch (clock)
};

Trace run_traced(TrainConfig c) {
  Trace tr;
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  p->before_step = [&](Trainer& x) {
    tr.sizes.push_back(x.batch.y.size(0));
    tr.clocks.push_back(x.clock());
    tr.lrs.push_back(x.optimizer().lr());
    if (tr.loaded.size() <= size_t(x.clock())) tr.loaded.resize(size_t(x.clock()) + 1);
    const int64_t* ix = x.batch.indices.contiguous().data_ptr<int64_t>();
    tr.loaded[size_t(x.clock())].insert(tr.loaded[size_t(x.clock())].end(), ix, ix + x.batch.indices.numel());
  };
  t.fit();
  return tr;
}
}  // namespace

TEST_CASE("batch-warmup: the batch ramp, the examples visited and each step's learning rate", "[batch-warmup][train]") {
  // 2 epochs x 8 loaded batches of 64. until=0.5: loaded batch c < 8 trains as
  // k = round(1 / (0.25 + 0.75 (c / 16) / 0.5)) steps:
  //   c: 0    1      2     3      4     5      6      7
  //   b: 16   22     32    34     40    46     52     58   (share x 64)
  //   k: 4    3      2     2      2     1      1      1
  TrainConfig plain = small_config("bw_plain");
  plain.schedule = "cosine";
  TrainConfig c = plain;
  c.out = plain.out + "_bw";
  c.methods = {"batch-warmup:start=0.25,until=0.5,lr=linear"};
  Trace base = run_traced(plain), bw = run_traced(c);
  std::vector<int64_t> want{16, 16, 16, 16, 22, 21, 21, 32, 32, 32, 32, 32, 32};
  for (int i = 0; i < 11; ++i) want.push_back(64);  // loaded batches 5..15
  REQUIRE(bw.sizes == want);
  REQUIRE(base.sizes.size() == 16);
  // The same examples per loaded batch, in the same order.
  REQUIRE(bw.loaded.size() == 16);
  for (size_t i = 0; i < 16; ++i) CHECK(bw.loaded[i] == base.loaded[i]);
  // lr of a step of b examples = the plain run's lr at that loaded batch x b / 64.
  for (size_t s = 0; s < bw.sizes.size(); ++s) {
    INFO("step " << s);
    CHECK(bw.lrs[s] == Approx(base.lrs[size_t(bw.clocks[s])] * double(bw.sizes[s]) / 64.0).epsilon(1e-12));
  }
  // sqrt and none rules on the first (16-example) step.
  for (auto [rule, f] : {std::pair<const char*, double>{"sqrt", 0.5}, {"none", 1.0}}) {
    TrainConfig r = plain;
    r.out = plain.out + "_" + rule;
    r.max_steps = 1;
    r.methods = {std::string("batch-warmup:start=0.25,until=0.5,lr=") + rule};
    Trace t = run_traced(r);
    CHECK(t.lrs.at(0) == Approx(base.lrs[0] * f).epsilon(1e-12));
  }
  json last = read_jsonl(c.out + "/metrics.jsonl").back();
  CHECK(last["batch_size"] == 64);
  CHECK(last["warmup_extra_steps"] == 3 + 2 + 1 + 1 + 1);
}

TEST_CASE("batch-warmup: evaluation at every --eval-every multiple, bit-exact resume, refused settings", "[batch-warmup][train]") {
  TrainConfig c = small_config("bw_eval");
  c.methods = {"batch-warmup:start=0.25,until=0.5"};
  c.eval_every = 5;
  Trainer(c, brisk::efficiency::make_methods).fit();
  // Steps after each loaded batch: 4 7 9 11 13 14 ... 24 (13 + 11 full batches).
  // Evaluations once a multiple of 5 is passed (7, 11, 15, 20), at the end of
  // epoch 1 (step 16) and of epoch 2 (step 24).
  std::vector<int64_t> steps;
  for (auto& j : read_jsonl(c.out + "/metrics.jsonl")) steps.push_back(j["step"].get<int64_t>());
  CHECK(steps == std::vector<int64_t>{7, 11, 15, 16, 20, 24});
  TrainConfig r = small_config("bw_resume");
  r.methods = {"batch-warmup:start=0.25,until=0.5,lr=sqrt"};
  check_resume_bit_exact(r, {4, 9, 14});
  refused_spec("batch-warmup:start=0", "start must be in (0, 1]");
  refused_spec("batch-warmup:until=1.5", "until must be in (0, 1]");
  refused_spec("batch-warmup:lr=cubic", "lr must be linear, sqrt or none, got 'cubic'");
  refused_spec("batch-warmup:size=3", "size");
}
