// Method composition: the documented family order, whatever order a recipe
// lists methods in, and clear errors for combinations that cannot work.
#include <functional>

#include "efficiency/compose.h"
#include "efficiency/method.h"
#include "tests/train_helpers.h"

using namespace bt;
namespace eff = brisk::efficiency;

TEST_CASE("compose: methods act in family order: grow, prune, select, precision, ema", "[compose]") {
  std::vector<std::unique_ptr<brisk::train::Callback>> ms;
  for (const char* m : {"ema:decay=0.99", "select:kind=rs2,ratio=0.5", "prune:target=0.5"})
    ms.push_back(eff::make_method(m));
  eff::order_and_check(ms);
  REQUIRE(ms.size() == 3);
  CHECK(ms[0]->name() == "prune");
  CHECK(ms[1]->name() == "select");
  CHECK(ms[2]->name() == "ema");
  CHECK(eff::family_rank("grow") < eff::family_rank("prune"));
  CHECK(eff::family_rank("select") < eff::family_rank("precision"));
}

TEST_CASE("compose: conflicting combinations are errors naming the methods", "[compose]") {
  auto check = [](std::vector<const char*> specs, const char* msg) {
    std::vector<std::unique_ptr<brisk::train::Callback>> ms;
    for (const char* m : specs) ms.push_back(eff::make_method(m));
    CHECK_THROWS_WITH(eff::order_and_check(ms), Catch::Contains(msg));
  };
  check({"grow:kind=msg", "prune:target=0.5"}, "'grow' and 'prune' cannot be combined");
  check({"prune:target=0.5", "prune:target=0.9"}, "at most one 'prune'");
  check({"select:kind=rs2", "select:kind=infobatch"}, "at most one 'select'");
  // The trainer applies the same rules to a run's --method list.
  TrainConfig c = small_config("compose_conflict");
  c.methods = {"prune:target=0.5", "grow:kind=net2net"};
  CHECK_THROWS_WITH(brisk::train::Trainer(c, brisk::efficiency::make_methods), Catch::Contains("cannot be combined"));
}

TEST_CASE("compose: a prune + select composite trains and keeps both invariants", "[compose]") {
  TrainConfig c = small_config("compose_ok");
  c.epochs = 2;
  c.methods = {"select:kind=rs2,ratio=0.5", "prune:target=0.5,schedule=oneshot,start=0,scope=layer"};
  brisk::train::Trainer t(c, brisk::efficiency::make_methods);
  t.fit();
  // RS2 visited half the data per epoch: 2 epochs x (512 / 2) / 64 = 8 steps (16 without it)
  CHECK(t.state().step == 8);
  // pruned weights are exactly zero after the last step
  for (auto& [n, p] : t.model().named_parameters())
    if (p.dim() >= 2) {
      double zeros = sum(eq(p, scalar_like(p, 0.0)).to(DType::f32)).item();
      CHECK(zeros >= 0.5 * double(p.numel()) - 1);
    }
}

// The composition matrix: every pair of families that composes runs a short
// training (16 loaded batches), and each method reaches its own end state;
// every refused pair is refused with a message. Batch-level selection
// (selective backprop at keep 0.25: 4 optimizer steps for 16 loaded batches)
// is the hard case: every schedule runs on the trainer's clock of loaded
// batches, so gradual pruning still ends at its target, growth still
// reaches full width, IMP finishes its rounds and RigL makes its updates.
namespace {
struct Member {
  std::string spec;
  std::function<void(const json& m, const TensorMap& fin)> ends;  // checks the end state
};

std::vector<Member> members() {
  auto model_vs_method = [](const TensorMap& fin, const std::string& prefix) {
    int64_t differ = 0, found = 0;
    for (auto& [k, v] : fin)
      if (k.rfind(prefix, 0) == 0) {
        std::string name = k.substr(prefix.size());
        if (!fin.count("model/" + name)) continue;
        ++found;
        differ += !bit_equal(v, fin.at("model/" + name));
      }
    return std::pair{found, differ};
  };
  return {
      {"grow:kind=net2net", [](const json& m, const TensorMap&) { CHECK(m["width"].get<double>() == 1.0); }},
      {"grow:kind=msg", [](const json& m, const TensorMap&) { CHECK(m["width"].get<double>() == 1.0); }},
      {"prune:schedule=gradual,target=0.9,end=0.5,frequency=2",
       [](const json& m, const TensorMap&) { CHECK(m["sparsity"].get<double>() == Approx(0.9).margin(0.005)); }},
      {"prune:schedule=imp,rounds=3,target=0.75",
       [](const json& m, const TensorMap&) { CHECK(m["sparsity"].get<double>() == Approx(0.75).margin(0.005)); }},
      {"prune:schedule=rigl,target=0.8,frequency=2",
       [](const json& m, const TensorMap&) {
         CHECK(m["sparsity"].get<double>() == Approx(0.8).margin(0.005));
         CHECK(m["dst_regrown"].get<int64_t>() > 0);
       }},
      {"prune:structure=2:4", [](const json& m, const TensorMap&) { CHECK(m["sparsity"].get<double>() == Approx(0.5).margin(0.005)); }},
      // (batch-size warmup adds steps: those it reports are not counted here)
      {"select:kind=selective-backprop,variant=rank,keep=0.25,start=0,end=1",
       [](const json& m, const TensorMap&) { CHECK(m["step"].get<int64_t>() - m.value("warmup_extra_steps", 0) == 4); }},
      {"select:kind=rs2,ratio=0.5",
       [](const json& m, const TensorMap&) { CHECK(m["step"].get<int64_t>() - m.value("warmup_extra_steps", 0) == 8); }},
      {"freeze:kind=freezeout,t0=0.5,spacing=linear",
       [](const json& m, const TensorMap&) { CHECK(m["frozen_layers"] == 2); }},
      {"regularize:kind=mixup",  // every trained batch is mixed
       [](const json& m, const TensorMap&) { CHECK(m["mixed_batches"] == m["step"]); }},
      {"precision:dtype=fp16", [](const json& m, const TensorMap&) { CHECK(m["loss_scale"].get<double>() > 0); }},
      {"ema:decay=0.9",
       [model_vs_method](const json&, const TensorMap& fin) {
         // the ema method's tensors (method/<i>/<param>) are an average, not the weights
         bool any = false;
         for (int i = 0; i < 3; ++i) {
           auto [found, differ] = model_vs_method(fin, "method/" + std::to_string(i) + "/");
           if (found > 0 && differ == found) any = true;
         }
         CHECK(any);
       }},
      // averages every 2 batches of the clock over the second half: 4, or 2
      // where selective backprop steps once per 4 loaded batches
      {"swa:start=0.5,frequency=2", [](const json& m, const TensorMap&) { CHECK(m["swa_models"] >= 2); }},
      // the mlp's hidden layer 512 -> 256 becomes two (rank 64: 64 * 768 < 256 * 512)
      {"factorize:rank=0.25", [](const json& m, const TensorMap&) { CHECK(m["factorized_layers"] == 1); }},
      // the ramp split some batches (selective backprop trains its first
      // full batch a quarter of the way into the ramp, where k is 2)
      {"batch-warmup:start=0.25,until=0.5",
       [](const json& m, const TensorMap&) {
         CHECK(m["warmup_extra_steps"].get<int64_t>() >= 1);
         CHECK(m["batch_size"] == 64);
       }},
  };
}

std::string family(const std::string& spec) { return spec.substr(0, spec.find(':')); }
}  // namespace

TEST_CASE("compose: the composition matrix: every allowed pair reaches both end states", "[compose][train][long-train]") {
  auto ms = members();
  int64_t ran = 0, refused = 0;
  for (size_t i = 0; i < ms.size(); ++i)
    for (size_t j = i + 1; j < ms.size(); ++j) {
      const Member &a = ms[i], &b = ms[j];
      std::string fa = family(a.spec), fb = family(b.spec);
      if (fa == fb) continue;
      INFO(a.spec << " + " << b.spec);
      TrainConfig c = small_config("compose_matrix");
      c.methods = {a.spec, b.spec};
      // Factorization comes after grow, prune, freeze, ema and swa in the list.
      bool factorize = fb == "factorize";
      bool refuse = (fa == "grow" && (fb == "prune" || fb == "freeze" || fb == "ema" || fb == "swa")) ||
                    (factorize && (fa == "grow" || fa == "prune" || fa == "freeze" || fa == "ema" || fa == "swa")) ||
                    (fa == "ema" && fb == "swa");
      if (refuse) {
        CHECK_THROWS_WITH(brisk::train::Trainer(c, brisk::efficiency::make_methods),
                          Catch::Contains("cannot be combined"));
        ++refused;
        continue;
      }
      brisk::train::Trainer(c, brisk::efficiency::make_methods).fit();
      json m = read_jsonl(c.out + "/metrics.jsonl").back();
      TensorMap fin = final_tensors(c.out);
      a.ends(m, fin);
      b.ends(m, fin);
      ++ran;
    }
  CHECK(ran == 73);
  CHECK(refused == 24);
}
