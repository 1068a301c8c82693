// brisk profile: phases, per-kernel FLOPs and bytes, a verdict, and a
// method's own work showing up as its own phase.
#include <chrono>
#include <thread>

#include "efficiency/method.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "train/profile.h"
#include "tests/train_helpers.h"

using namespace bt;

namespace {
struct Sleepy : brisk::train::Callback {
  std::string name() const override { return "sleepy"; }
  void on_batch_start(brisk::train::Trainer&) override { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }
};
const bool g_registered = [] {
  brisk::efficiency::register_method("sleepy", [](brisk::efficiency::MethodArgs& a) {
    a.finish();
    return std::unique_ptr<brisk::train::Callback>(new Sleepy());
  });
  return true;
}();
}  // namespace

TEST_CASE("profile: phases, kernels with FLOPs and bytes, a verdict and mitigations", "[profile]") {
  TrainConfig c = small_config("profile");
  c.model = "cnn";
  c.epochs = 3;
  brisk::train::ProfileOptions o;
  o.steps = 6;
  o.warmup = 2;
  json r = brisk::train::run_profile(c, o, brisk::efficiency::make_methods);
  CHECK(r["steps"] == 6);
  CHECK(r["peak"]["gemm_gflops"].get<double>() > 0);
  CHECK(r["peak"]["copy_gbps"].get<double>() > 0);
  for (const char* k : {"data", "forward", "backward", "optimizer"}) CHECK(r["phases"].contains(k));
  CHECK(r["phases"]["backward"].get<double>() > 0);
  bool conv = false;
  for (auto& op : r["ops"]) {
    // The pool's backward runs inside the conv's backward kernels (their pooled form).
    CHECK(op["op"] != "max_pool2d_backward");
    if (op["op"] == "conv2d_pool_fwd") {  // the cnn's conv, ReLU, pool: conv and pool in one kernel
      conv = true;
      // cnn conv1 + conv2 forward at batch 64: 2 * 64 * (32*9*784 + 64*288*196) per step
      double per_step = 2.0 * 64 * (32 * 9 * 784 + 64 * 288 * 196);
      CHECK(op["flops"].get<double>() == Approx(per_step * 6).epsilon(1e-9));
      CHECK(op["calls"] == 12);
      CHECK(op["bytes"].get<double>() > 0);
    }
  }
  CHECK(conv);
  std::string v = r["verdict"];
  CHECK((v == "compute-bound" || v == "memory-bound" || v == "data-bound" || v == "overhead-bound"));
  CHECK(r["mitigations"].size() >= 2);
  std::string text = brisk::train::format_profile(r);
  CHECK(text.find("verdict: " + v) != std::string::npos);
  CHECK(text.find("conv2d_pool_fwd") != std::string::npos);
}

TEST_CASE("profile: each op's longest call, and a row that one stalled call dominates is flagged", "[profile]") {
  TrainConfig c = small_config("profile_stall");
  c.model = "mlp";
  brisk::train::ProfileOptions o;
  o.steps = 12;
  o.warmup = 2;
  json r = brisk::train::run_profile(c, o, brisk::efficiency::make_methods);
  REQUIRE(r["ops"].size() > 0);
  for (auto& op : r["ops"]) {  // the longest call lies between the mean call and the row's whole time
    double s = op["seconds"].get<double>(), mx = op["max_call_seconds"].get<double>();
    CHECK(mx <= s * (1 + 1e-12));
    CHECK(mx * double(op["calls"].get<int64_t>()) >= s * (1 - 1e-9));
  }
  double wall = r["train_seconds"].get<double>();
  auto row = [&](const char* name, int64_t calls, double seconds, double max_call) {
    json op = r["ops"][0];
    op["op"] = name;
    op["calls"] = calls;
    op["seconds"] = seconds;
    op["max_call_seconds"] = max_call;
    return op;
  };
  // 400 calls: one of 30% of the window, the rest 1e-6 of it each.
  r["ops"].push_back(row("stalled_op", 400, wall * (0.3 + 399e-6), wall * 0.3));
  // Evenly spread: its longest call is twice its mean, nothing to flag.
  r["ops"].push_back(row("steady_op", 400, wall * 0.3, wall * 0.3 / 200));
  // A large call once a step among many small ones, over a 4-step window:
  // each large call is far above the mean of the rest, but a quarter of the
  // row, not most of it.
  r["ops"].push_back(row("once_a_step", 400, wall * (0.4 + 396e-6), wall * 0.1));
  std::string text = brisk::train::format_profile(r);
  CHECK(text.find("note: one stalled_op call took") != std::string::npos);
  CHECK(text.find("note: one steady_op") == std::string::npos);
  CHECK(text.find("note: one once_a_step") == std::string::npos);
}

TEST_CASE("profile: a method's own work is its own phase", "[profile]") {
  TrainConfig c = small_config("profile_sleepy");
  c.methods = {"sleepy"};
  brisk::train::ProfileOptions o;
  o.steps = 5;
  o.warmup = 1;
  json r = brisk::train::run_profile(c, o, brisk::efficiency::make_methods);
  REQUIRE(r["phases"].contains("method: sleepy"));
  CHECK(r["phases"]["method: sleepy"].get<double>() >= 0.09);  // 5 steps x 20 ms
  CHECK(r["phases"]["method: sleepy"].get<double>() < r["train_seconds"].get<double>());
  o.steps = 1000;  // more than the run has
  CHECK_THROWS_WITH(brisk::train::run_profile(c, o, brisk::efficiency::make_methods), Catch::Contains("lower --steps"));
}

namespace {
// Sleeps in every evaluation: time the profile must not count as training.
struct SlowEval : brisk::train::Callback {
  std::string name() const override { return "slow_eval"; }
  void on_eval_start(brisk::train::Trainer&) override { std::this_thread::sleep_for(std::chrono::milliseconds(300)); }
};
const bool g_slow_eval = [] {
  brisk::efficiency::register_method("slow_eval", [](brisk::efficiency::MethodArgs& a) {
    a.finish();
    return std::unique_ptr<brisk::train::Callback>(new SlowEval());
  });
  return true;
}();
}  // namespace

TEST_CASE("profile: an epoch's evaluation inside the window is neither step time nor in the op table", "[profile]") {
  TrainConfig c = small_config("profile_epoch_end");
  c.model = "cnn";
  c.epochs = 3;  // 8 batches of 64 an epoch: steps 3..12 cross the end of the first epoch
  c.methods = {"slow_eval"};
  brisk::train::ProfileOptions o;
  o.steps = 10;
  o.warmup = 2;
  json r = brisk::train::run_profile(c, o, brisk::efficiency::make_methods);
  bool conv = false;
  for (auto& op : r["ops"])
    if (op["op"] == "conv2d_pool_fwd") {
      conv = true;
      CHECK(op["calls"] == 2 * 10);  // two conv layers a step; the evaluation would add its own
    }
  CHECK(conv);
  CHECK(r["eval_seconds"].get<double>() > 0);  // the window's evaluation and the last one ran
  // The 300 ms the method slept at the window's evaluation: outside the
  // training seconds, so neither the method's phase nor step time.
  REQUIRE(r["phases"].contains("method: slow_eval"));
  CHECK(r["phases"]["method: slow_eval"].get<double>() < 0.1);
  double phases = 0;
  for (auto& [k, v] : r["phases"].items()) phases += v.get<double>();
  CHECK(phases <= r["train_seconds"].get<double>() + 1e-3);
}

TEST_CASE("profile: low precision is advised only where the hardware makes products cheaper", "[profile]") {
  using brisk::train::LowPrecisionHardware;
  using brisk::train::profile_mitigations;
  auto joined = [](const std::vector<std::string>& v) {
    std::string s;
    for (auto& x : v) s += x + "\n";
    return s;
  };
  auto has = [](const std::string& s, const char* what) { return s.find(what) != std::string::npos; };
  // A CPU without bf16 or int8 dot products (AVX2 only): bf16 autocast multiplies in f32 plus its casts.
  std::string none = joined(profile_mitigations("compute-bound", LowPrecisionHardware{}));
  CHECK(has(none, "no cheaper FLOPs on this CPU"));
  CHECK_FALSE(has(none, "cheaper FLOPs: low precision"));
  CHECK(has(none, "structured pruning"));
  LowPrecisionHardware amx;
  amx.bf16_kernel = "amx";
  std::string a = joined(profile_mitigations("compute-bound", amx));
  CHECK(has(a, "precision:dtype=bf16 on this CPU's amx bf16 GEMM"));
  CHECK_FALSE(has(a, "dtype=int8"));
  LowPrecisionHardware vnni;
  vnni.int8 = true;
  std::string i = joined(profile_mitigations("compute-bound", vnni));
  CHECK(has(i, "precision:dtype=int8"));
  CHECK_FALSE(has(i, "dtype=bf16"));
  LowPrecisionHardware gpu;
  gpu.cuda = true;
  gpu.bf16_kernel = "tensor cores";
  CHECK(has(joined(profile_mitigations("compute-bound", gpu)), "bf16 tensor cores"));
  // Autocast keeps f32 storage, so low precision is no answer to memory-bound ops on any hardware.
  for (const LowPrecisionHardware& hw : {LowPrecisionHardware{}, amx, gpu}) {
    std::string m = joined(profile_mitigations("memory-bound", hw));
    CHECK(has(m, "fusion"));
    CHECK_FALSE(has(m, "bf16"));
  }
  CHECK_THROWS_WITH(profile_mitigations("fast", amx), Catch::Contains("unknown verdict 'fast'"));
  // This machine: a bf16 GEMM exactly where the f32 GEMM runs AVX-512 on a CPU with AVX512-BF16
  // (AMX CPUs have it too), int8 where it has VNNI, by CPUID.
  LowPrecisionHardware here = brisk::train::low_precision_hardware("cpu");
  bool bf16_cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  CHECK(here.bf16() == (bf16_cpu && brisk::kern::cpu::sgemm_isa() == "avx512"));
  CHECK(here.int8 == (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl")));
  CHECK_FALSE(here.cuda);
  CHECK(brisk::train::low_precision_hardware("cuda:0").cuda);
}

// The f32 GEMM's exact zero skipping, as the profile reports it: what the
// kernels counted in the window (the mlp's ReLU zeros), nothing at all when
// it is off, and the line saying which.
TEST_CASE("profile: the GEMM's zero skipping, on and off", "[profile]") {
  struct Restore {
    ~Restore() { brisk::kern::cpu::set_sgemm_zero_skip(true); }
  } restore;
  TrainConfig c = small_config("profile_zero_skip");
  c.model = "mlp";
  brisk::train::ProfileOptions o;
  o.steps = 8;
  o.warmup = 2;
  for (bool on : {true, false}) {
    brisk::kern::cpu::set_sgemm_zero_skip(on);
    json r = brisk::train::run_profile(c, o, brisk::efficiency::make_methods);
    REQUIRE(r.contains("zero_skip"));
    INFO("zero skipping " << on << ": " << r["zero_skip"].dump());
    CHECK(r["zero_skip"]["on"].get<bool>() == on);
    double left = r["zero_skip"]["gflop_left_out"].get<double>(), share = r["zero_skip"]["share_of_compute_flops"];
    CHECK(left >= 0);
    CHECK(share >= 0);
    CHECK(share < 0.5);  // ReLU's zeros in whole strips: a minority of the mlp's products
    if (!on) CHECK(left == 0);
    std::string text = brisk::train::format_profile(r);
    CHECK(text.find(on ? "zero skipping (exact) left out" : "zero skipping: off") != std::string::npos);
  }
}
