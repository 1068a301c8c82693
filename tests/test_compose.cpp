// Method composition: the documented family order, whatever order a recipe
// lists methods in, and clear errors for combinations that cannot work.
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
  c.methods = {"select:kind=rs2,ratio=0.5", "prune:target=0.5,schedule=oneshot,start=0"};
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
