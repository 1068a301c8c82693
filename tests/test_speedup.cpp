// The speedup harness: frontier and interpolation arithmetic on hand-made
// data; end to end on the synthetic dataset: budgets and seeds honoured,
// method overheads counted, finished runs not redone, bad recipes rejected.
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "efficiency/method.h"
#include "efficiency/speedup/harness.h"
#include "tests/lm_helpers.h"
#include "tests/train_helpers.h"

using namespace bt;
using namespace brisk::speedup;

TEST_CASE("speedup: frontier keeps the upper-left envelope", "[speedup]") {
  auto f = frontier({{10, 0.80}, {5, 0.70}, {20, 0.79}, {40, 0.90}, {30, 0.85}, {5, 0.60}});
  REQUIRE(f.size() == 4);
  CHECK(f[0].seconds == 5);   // (5, 0.70) beats (5, 0.60)
  CHECK(f[1].seconds == 10);  // (20, 0.79) is dominated by (10, 0.80)
  CHECK(f[2].seconds == 30);
  CHECK(f[3].seconds == 40);
}

TEST_CASE("speedup: time to accuracy and accuracy at time interpolate linearly", "[speedup]") {
  std::vector<Point> f{{10, 0.80}, {20, 0.90}, {40, 0.95}};
  CHECK(*time_to_accuracy(f, 0.85) == Approx(15.0));
  CHECK(*time_to_accuracy(f, 0.925) == Approx(30.0));
  CHECK(*time_to_accuracy(f, 0.70) == Approx(10.0));  // reached by the first point
  CHECK_FALSE(time_to_accuracy(f, 0.96).has_value());
  CHECK(*accuracy_at_time(f, 15) == Approx(0.85));
  CHECK(*accuracy_at_time(f, 100) == Approx(0.95));
  CHECK_FALSE(accuracy_at_time(f, 5).has_value());
  CHECK(median({3, 1, 2}) == 2);
  CHECK(median({4, 1, 2, 3}) == 2.5);
}

TEST_CASE("speedup: speedup and verdicts over seed spread on hand-made runs", "[speedup]") {
  std::vector<Run> runs;
  auto add = [&](const char* c, int64_t b, uint64_t s, double sec, double acc) {
    runs.push_back({c, b, s, sec, acc, 0.5, 1e9});
  };
  // baseline reaches 0.90 at 20 s (seeds: 18..22); fast at 10 s (9..11); same ~ baseline.
  for (uint64_t s = 0; s < 3; ++s) {
    double d = double(s) - 1.0;
    add("base", 1, s, 10 + d, 0.80);
    add("base", 2, s, 20 + 2 * d, 0.90);
    add("fast", 1, s, 5 + d * 0.5, 0.80);
    add("fast", 2, s, 10 + d, 0.90);
    add("same", 1, s, 10 - d, 0.80);
    add("same", 2, s, 20 - 2 * d, 0.90);
  }
  SpeedupAt f = speedup_at(runs, "base", "fast", 0.85);
  CHECK(*f.base_sec == Approx(15.0));
  CHECK(*f.cand_sec == Approx(7.5));
  CHECK(*f.speedup == Approx(2.0));
  CHECK(f.separated);
  CHECK(f.verdict == "faster");
  CHECK(*f.speedup_lo < 2.0);
  CHECK(*f.speedup_hi > 2.0);
  SpeedupAt s = speedup_at(runs, "base", "same", 0.85);
  CHECK_FALSE(s.separated);
  CHECK(s.verdict == "no speedup (within seed spread)");
  CHECK(speedup_at(runs, "fast", "base", 0.85).verdict == "slower");
  CHECK(speedup_at(runs, "base", "fast", 0.95).verdict == "not reached by either");
  CHECK_FALSE(f.base_censored);
  CHECK_FALSE(f.cand_censored);
  // A target met at the smallest budget: its time is only an upper bound.
  SpeedupAt c = speedup_at(runs, "base", "fast", 0.75);
  CHECK(c.base_censored);
  CHECK(c.cand_censored);
  CHECK_THAT(c.verdict, Catch::Contains("censored: both"));
  add("late", 1, 0, 30, 0.70);
  add("late", 2, 0, 40, 0.80);
  SpeedupAt lc = speedup_at(runs, "late", "fast", 0.78);
  CHECK_FALSE(lc.base_censored);
  CHECK(lc.cand_censored);
  CHECK_THAT(lc.verdict, Catch::Contains("speedup is a lower bound"));
  CHECK(f.cand_missed == 0);
  CHECK(f.base_missed == 0);
  // One candidate seed that never reaches 0.85: left out of the seed range,
  // counted, and the range's low end becomes 0 (that seed is infinitely slow).
  add("miss", 1, 0, 5, 0.80);
  add("miss", 2, 0, 10, 0.90);
  add("miss", 1, 1, 5, 0.80);
  add("miss", 2, 1, 10, 0.90);
  add("miss", 1, 2, 5, 0.80);
  add("miss", 2, 2, 10, 0.84);
  SpeedupAt ms = speedup_at(runs, "base", "miss", 0.85);
  CHECK(ms.cand_missed == 1);
  CHECK(*ms.cand_max == Approx(7.5));
  CHECK(*ms.speedup_lo == 0.0);
  CHECK(*ms.speedup_hi == Approx(16.5 / 7.5));
  CHECK(ms.verdict == "no speedup (within seed spread)");
  SpeedupAt mb = speedup_at(runs, "miss", "base", 0.85);
  CHECK(mb.base_missed == 1);
  CHECK_FALSE(mb.speedup_hi);
  auto g = accuracy_gain(runs, "base", "fast");
  REQUIRE(g.size() == 2);
  CHECK(*g[1].gain == Approx(0.90 - 0.80));  // fast's 10 s point vs base's frontier at 10 s
  CHECK_FALSE(g[0].base_acc.has_value());    // 5 s is before base's first point
}

namespace {
// A test-only method whose "scoring pass" sleeps at every epoch start.
struct SleepMethod : brisk::train::Callback {
  int ms;
  bool lm = false;
  explicit SleepMethod(int m, bool on_lm = false) : ms(m), lm(on_lm) {}
  std::string name() const override { return "sleep"; }
  bool supports_language_models() const override { return lm; }
  void on_epoch_start(brisk::train::Trainer&) override { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
};
const bool g_sleep_registered = [] {
  brisk::efficiency::register_method("testsleep", [](brisk::efficiency::MethodArgs& a) {
    int ms = int(a.get_int("ms", 300));
    a.finish();
    return std::unique_ptr<brisk::train::Callback>(new SleepMethod(ms));
  });
  brisk::efficiency::register_method("testsleeplm", [](brisk::efficiency::MethodArgs& a) {
    int ms = int(a.get_int("ms", 300));
    a.finish();
    return std::unique_ptr<brisk::train::Callback>(new SleepMethod(ms, true));
  });
  return true;
}();

std::string write_recipe(const fs::path& dir, const std::string& name, const std::string& body) {
  fs::create_directories(dir);
  fs::path p = dir / (name + ".toml");
  std::ofstream(p) << body;
  return p.string();
}
}  // namespace

TEST_CASE("speedup: matching the baseline's final accuracy uses budgets that were run", "[speedup]") {
  std::vector<Run> runs;
  auto add = [&](const char* c, int64_t b, uint64_t s, double sec, double acc) {
    runs.push_back({c, b, s, sec, acc, 0.5, 1e9});
  };
  for (uint64_t s = 0; s < 3; ++s) {
    double d = 0.001 * (double(s) - 1.0);
    add("base", 2, s, 20, 0.900 + d);
    add("base", 4, s, 40, 0.920 + d);  // the final accuracy: 0.920
    add("cand", 2, s, 15, 0.915 + d);  // 0.5 points short
    add("cand", 3, s, 25, 0.9185 + d); // within 0.2 points
    add("cand", 4, s, 32, 0.921 + d);
    add("slow", 4, s, 30, 0.910 + d);  // never within 0.2
  }
  MatchFinal m = match_final(runs, "base", "cand", 0.002);
  CHECK(m.base_budget == 4);
  CHECK(m.base_acc == Approx(0.920));
  CHECK(m.target == Approx(0.918));
  REQUIRE(m.cand_budget);
  CHECK(*m.cand_budget == 3);  // not 2 (short), not interpolated
  CHECK(*m.cand_sec == Approx(25));
  CHECK(*m.speedup == Approx(40.0 / 25.0));
  CHECK_FALSE(match_final(runs, "base", "slow", 0.002).cand_budget);
  CHECK(*match_final(runs, "base", "cand", 0.0).cand_budget == 4);  // delta 0: must reach 0.920
}

TEST_CASE("speedup: end to end on synthetic data: budgets, seeds, overheads, reports, resume", "[speedup]") {
  fs::path dir = fs::temp_directory_path() / ("brisk_speedup_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::string common = "model = \"mlp\"\nbatch_size = 64\nlr = 0.05\nthreads = 2\ndata_dir = \"" + synthetic_dir() + "\"\n";
  SpeedupOptions o;
  o.baseline = write_recipe(dir / "recipes", "base", common + "seed = 5\n");
  o.candidates = {write_recipe(dir / "recipes", "slow", common + "seed = 5\nmethod = \"testsleep:ms=300\"\n")};
  o.budgets = {1, 2};
  o.seeds = 2;
  o.targets = {0.5};
  o.lr_grid = {1.0};  // no baseline tuning here (tested below)
  o.out = (dir / "out").string();
  o.plot = false;
  o.command = "test";
  SpeedupResult r = run_speedup(o);
  CHECK(r.trained == 8);
  REQUIRE(r.runs.size() == 8);
  // Interleaved: budget by budget, seed by seed, baseline then candidate.
  for (size_t k = 0; k < 8; ++k) {
    INFO("run " << k);
    CHECK(r.runs[k].config == (k % 2 == 0 ? "base" : "slow"));
    CHECK(r.runs[k].budget == (k < 4 ? 1 : 2));
    CHECK(r.runs[k].seed == uint64_t(5 + (k / 2) % 2));
  }
  std::set<std::tuple<std::string, int64_t, uint64_t>> keys;
  for (auto& run : r.runs) keys.insert({run.config, run.budget, run.seed});
  CHECK(keys.size() == 8);
  for (const char* c : {"base", "slow"})
    for (int64_t b : {1, 2})
      for (uint64_t s : {5, 6}) {
        INFO(c << " budget " << b << " seed " << s);
        CHECK(keys.count({c, b, s}) == 1);
        // the run really used that budget (schedule re-fitted) and seed
        std::string run = std::string("b").append(std::to_string(b)).append("-s").append(std::to_string(s));
        fs::path rd = dir / "out" / "runs" / c / run;
        json cj = json::parse(std::ifstream(rd / "config.json"));
        CHECK(cj["epochs"].get<int64_t>() == b);
        CHECK(cj["seed"].get<uint64_t>() == s);
      }
  // The sleeping method's overhead is counted: 300 ms per epoch.
  for (auto& a : r.runs)
    if (a.config == "slow")
      for (auto& b : r.runs)
        if (b.config == "base" && b.budget == a.budget && b.seed == a.seed) {
          INFO("budget " << a.budget << " seed " << a.seed << ": " << a.seconds << " vs " << b.seconds);
          // every sleep is in the wall time (not compared with the baseline's
          // seconds: on a busy machine a run's own time can outweigh 0.3 s)
          CHECK(a.seconds >= 0.3 * double(a.budget));
        }
  for (auto& run : r.runs) CHECK(run.flops > 0);
  for (const char* f : {"runs.csv", "report.json", "report.md"}) CHECK(fs::exists(dir / "out" / f));
  json rep = json::parse(std::ifstream(dir / "out" / "report.json"));
  CHECK(rep["baseline"] == "base");
  CHECK(rep["comparisons"][0]["candidate"] == "slow");
  CHECK(rep["configs"]["base"]["budgets"].size() == 2);
  // Resume: nothing is retrained, the same runs come back.
  SpeedupResult again = run_speedup(o);
  CHECK(again.trained == 0);
  CHECK(again.runs.size() == 8);
  // A recipe edited since (its lr) is never reported with the old numbers.
  std::string edited = common;
  edited.replace(edited.find("lr = 0.05"), 9, "lr = 0.07");
  write_recipe(dir / "recipes", "slow", edited + "seed = 5\nmethod = \"testsleep:ms=300\"\n");
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("holds a run of another configuration (lr was 0.05") &&
                                        Catch::Contains("remove that folder"));
  fs::remove_all(dir);
}

// The baseline's learning rate is tuned at every budget on the first seed
// (a 3-point grid); the most accurate lr runs on every seed and is the
// baseline; the other grid runs are reported apart as tuning cost. The
// candidate keeps its own lr.
TEST_CASE("speedup: the baseline's lr is re-tuned at every budget, its cost reported apart", "[speedup]") {
  fs::path dir = fs::temp_directory_path() / ("brisk_speedup_tune_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::string common = "model = \"mlp\"\nbatch_size = 64\nthreads = 2\nseed = 5\ndata_dir = \"" + synthetic_dir() + "\"\n";
  SpeedupOptions o;
  o.baseline = write_recipe(dir / "recipes", "base", common + "lr = 0.02\n");
  o.candidates = {write_recipe(dir / "recipes", "cand", common + "lr = 0.03\n")};
  o.budgets = {1, 2};
  o.seeds = 2;
  o.targets = {0.5};
  o.lr_grid = {0.25, 1.0, 4.0};
  o.out = (dir / "out").string();
  o.plot = false;
  SpeedupResult r = run_speedup(o);
  // per budget: 3 grid runs (seed 5) + 1 more baseline seed + 2 candidate seeds
  CHECK(r.trained == 2 * (3 + 1 + 2));
  REQUIRE(r.tuning.size() == 6);
  for (int64_t b : {1, 2}) {
    INFO("budget " << b);
    const Run* best = nullptr;
    std::set<double> lrs;
    for (auto& t : r.tuning)
      if (t.budget == b) {
        lrs.insert(t.lr);
        if (!best || t.acc > best->acc) best = &t;
      }
    CHECK(lrs == std::set<double>{0.005, 0.02, 0.08});
    int base_runs = 0;
    for (auto& run : r.runs) {
      if (run.budget != b) continue;
      if (run.config == "base") {
        CHECK(run.lr == best->lr);  // every baseline seed runs the chosen lr
        ++base_runs;
      } else {
        CHECK(run.lr == 0.03);  // the candidate as given
      }
    }
    CHECK(base_runs == 2);
  }
  json rep = json::parse(std::ifstream(dir / "out" / "report.json"));
  double cost = 0;
  for (auto& t : r.tuning) cost += t.seconds;
  for (auto& run : r.runs)
    if (run.config == "base" && run.seed == 5) cost -= run.seconds;  // the chosen grid runs are not cost
  CHECK(rep["baseline_tuning"]["tuning_seconds_total"].get<double>() == Approx(cost));
  CHECK(rep["baseline_tuning"]["budgets"].size() == 2);
  std::ifstream md(dir / "out" / "report.md");
  std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("tuned at every budget") && Catch::Contains("tuning cost"));
  SpeedupResult again = run_speedup(o);  // nothing retrained
  CHECK(again.trained == 0);
  CHECK(again.tuning.size() == 6);
  o.lr_grid = {1.0, -2.0};
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("--lr-grid"));
  fs::remove_all(dir);
}

// A language model measured in time to a validation loss, at budgets in
// steps (a fraction of an epoch, and more than one). The candidate is the
// baseline plus a sleep: the same losses bit for bit, so what the report must
// say follows from the runs' own numbers, without the harness's arithmetic.
TEST_CASE("speedup: time to a loss target at budgets in steps (language model)", "[speedup]") {
  fs::path dir = fs::temp_directory_path() / ("brisk_speedup_lm_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  TrainConfig lm = lm_config("brisk_speedup_lm_cfg");
  std::string common = "model = \"gpt-tiny\"\ndata = \"" + lm.data + "\"\nblock-size = 32\nn-layer = 1\n"
                       "n-head = 2\nn-embd = 32\noptimizer = \"adamw\"\nlr = 3e-3\nbatch-size = 16\nthreads = 2\n"
                       "seed = 3\n";
  SpeedupOptions o;
  o.baseline = write_recipe(dir / "recipes", "base", common);
  o.candidates = {write_recipe(dir / "recipes", "slow", common + "method = \"testsleeplm:ms=150\"\n")};
  int64_t nb = 0;
  {
    TrainConfig c = load_recipe(o.baseline, {});
    c.out = (dir / "probe").string();
    nb = brisk::train::Trainer(c, brisk::efficiency::make_methods).train_loader().num_batches();
  }
  REQUIRE(nb > 8);
  const int64_t small = 6, large = nb + 4;  // inside the first epoch; past its end
  o.budgets = {small, large};
  o.unit = "steps";
  o.metric = "loss";
  o.seeds = 2;
  o.targets = {1000.0, 1e-4};  // met at once by both; never met
  o.match_delta = 0;
  o.lr_grid = {1.0};
  o.out = (dir / "out").string();
  o.plot = false;
  SpeedupResult r = run_speedup(o);
  REQUIRE(r.runs.size() == 8);
  std::map<std::tuple<std::string, int64_t, uint64_t>, Run> by;
  for (auto& run : r.runs) by[{run.config, run.budget, run.seed}] = run;
  for (const char* c : {"base", "slow"})
    for (int64_t b : {small, large})
      for (uint64_t s : {3, 4}) {
        INFO(c << " budget " << b << " seed " << s);
        fs::path rd = dir / "out" / "runs" / c / ("steps" + std::to_string(b) + "-s" + std::to_string(s));
        CHECK(json::parse(std::ifstream(rd / "config.json"))["steps"].get<int64_t>() == b);
        CHECK(read_jsonl((rd / "metrics.jsonl").string()).back()["step"].get<int64_t>() == b);
        if (std::string(c) == "slow") {  // same numbers, the sleep's seconds on top
          const Run &x = by.at({"slow", b, s}), &y = by.at({"base", b, s});
          CHECK(x.loss == y.loss);
          CHECK(x.seconds >= 0.15 * (b > nb ? 2 : 1));
        }
      }
  auto med = [&](const char* c, int64_t b, bool secs) {
    Run x = by.at({c, b, 3}), y = by.at({c, b, 4});
    return secs ? (x.seconds + y.seconds) / 2 : (x.loss + y.loss) / 2;
  };
  REQUIRE(med("base", large, false) < med("base", small, false));  // training lowered the loss
  json rep = json::parse(std::ifstream(dir / "out" / "report.json"));
  CHECK(rep["metric"] == "loss");
  CHECK(rep["unit"] == "steps");
  json bl = rep["configs"]["base"]["budgets"][1];
  CHECK(bl["quality_median"].get<double>() == Approx(med("base", large, false)));
  CHECK(bl["quality_min"].get<double>() <= bl["quality_max"].get<double>());
  // The baseline's final loss (largest budget) is the bar; the candidate has
  // the same losses, so it first reaches it at the same budget (the seconds
  // ratio is not asserted to be < 1: a busy machine can outweigh the sleep).
  json mf = rep["comparisons"][0]["match_final"];
  CHECK(mf["baseline_loss"].get<double>() == Approx(med("base", large, false)));
  CHECK(mf["candidate_budget"].get<int64_t>() == large);
  CHECK(mf["candidate_loss"].get<double>() == mf["baseline_loss"].get<double>());
  CHECK(mf["speedup"].get<double>() == Approx(med("base", large, true) / med("slow", large, true)));
  json t0 = rep["comparisons"][0]["targets"][0], t1 = rep["comparisons"][0]["targets"][1];
  CHECK(t0["target"].get<double>() == 1000.0);
  // Met at both budgets, so the time is the median frontier's first point:
  // the faster budget, which on a busy machine need not be the smaller one
  // (both take about 0.1 s here).
  CHECK(t0["baseline_seconds"].get<double>() ==
        Approx(std::min(med("base", small, true), med("base", large, true))));
  CHECK_THAT(t0["verdict"].get<std::string>(), Catch::Contains("censored"));
  CHECK(t1["verdict"] == "not reached by either");
  std::ifstream md(dir / "out" / "report.md");
  std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("steps") && Catch::Contains("lower is better") && Catch::Contains("target loss"));
  // Tuned for loss: at each budget the chosen lr is the grid's lowest loss.
  o.lr_grid = {0.5, 1.0, 2.0};
  o.candidates = {};
  o.out = (dir / "tuned").string();
  SpeedupResult tr = run_speedup(o);
  for (int64_t b : {small, large}) {
    const Run* best = nullptr;
    for (auto& t : tr.tuning)
      if (t.budget == b && (!best || t.loss < best->loss)) best = &t;
    REQUIRE(best);
    for (auto& run : tr.runs)
      if (run.budget == b) CHECK(run.lr == best->lr);
  }
  // Candidates at budgets of their own (one per baseline budget): the
  // candidate's run has its own step count, the baseline's the shared one.
  SpeedupOptions ob = o;
  ob.candidates = {write_recipe(dir / "recipes", "longer", common)};
  ob.budgets = {small};
  ob.candidate_budgets = {small + 3};
  ob.seeds = 1;
  ob.lr_grid = {1.0};
  ob.out = (dir / "own").string();
  SpeedupResult orr = run_speedup(ob);
  REQUIRE(orr.runs.size() == 2);
  CHECK(orr.runs[0].config == "base");
  CHECK(orr.runs[0].budget == small);
  CHECK(orr.runs[1].config == "longer");
  CHECK(orr.runs[1].budget == small + 3);
  CHECK(read_jsonl((dir / "own" / "runs" / "longer" / ("steps" + std::to_string(small + 3) + "-s3") / "metrics.jsonl")
                       .string())
            .back()["step"]
            .get<int64_t>() == small + 3);
  json orep = json::parse(std::ifstream(dir / "own" / "report.json"));
  CHECK(orep["candidate_budgets"] == json::array({small + 3}));
  CHECK(orep["configs"]["longer"]["budgets"][0]["budget"].get<int64_t>() == small + 3);
  std::ifstream omd(dir / "own" / "report.md");
  CHECK_THAT(std::string((std::istreambuf_iterator<char>(omd)), std::istreambuf_iterator<char>()),
             Catch::Contains("the candidates at " + std::to_string(small + 3)));
  ob.candidate_budgets = {small, large};
  CHECK_THROWS_WITH(run_speedup(ob), Catch::Contains("--candidate-budgets needs one budget per --budgets entry"));
  ob.candidate_budgets = {0};
  CHECK_THROWS_WITH(run_speedup(ob), Catch::Contains("--candidate-budgets are steps >= 1"));
  o.targets = {-1.0};
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("--target-loss"));
  o.targets = {1.0};
  o.unit = "hours";
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("--budget-unit"));
  fs::remove_all(dir);
}

TEST_CASE("speedup: malformed TOML, unknown keys and bad options are clear errors", "[speedup]") {
  fs::path dir = fs::temp_directory_path() / ("brisk_speedup_bad_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  SpeedupOptions o;
  o.out = (dir / "out").string();
  o.plot = false;
  o.baseline = write_recipe(dir, "broken", "model = \"mlp\n");
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("broken.toml"));
  o.baseline = write_recipe(dir, "unknown", "model = \"mlp\"\nlearning_rat = 0.1\n");
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("learning-rat") || Catch::Contains("learning_rat"));
  o.baseline = write_recipe(dir, "badmethod", "method = \"nosuchfamily:x=1\"\n");
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("nosuchfamily"));
  o.baseline = (dir / "missing.toml").string();
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("does not exist"));
  o.baseline = write_recipe(dir, "ok", "model = \"mlp\"\n");
  o.budgets = {0};
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("budgets"));
  o.budgets = {1};
  o.candidates = {write_recipe(dir / "other", "ok", "model = \"mlp\"\n")};
  CHECK_THROWS_WITH(run_speedup(o), Catch::Contains("two recipes are named 'ok'"));
  CHECK_FALSE(fs::exists(dir / "out" / "runs"));  // nothing trained
  fs::remove_all(dir);
}

TEST_CASE("speedup --search: method keys edited in place, recipes written back as TOML", "[speedup][search]") {
  brisk::train::TrainConfig c;
  c.methods = {"prune:target=0.5,schedule=gradual", "precision:dtype=bf16"};
  set_method_key(c, "prune", "target", "0.7");
  set_method_key(c, "precision", "master", "1");
  CHECK(c.methods == std::vector<std::string>{"prune:target=0.7,schedule=gradual", "precision:dtype=bf16,master=1"});
  CHECK_THROWS_WITH(set_method_key(c, "freeze", "start", "0.5"), Catch::Contains("the recipe has no 'freeze' method"));
  c.lr = 0.125;
  c.batch_size = 32;
  c.model = "cnn";
  fs::path p = fs::temp_directory_path() / ("brisk_to_toml_" + std::to_string(::getpid()) + ".toml");
  std::ofstream(p) << to_toml(c);
  brisk::train::TrainConfig back;
  back.load_toml(p.string());
  CHECK(back.to_json() == c.to_json());
  fs::remove(p);
}

// The search trains every combination on seeds recipe.seed + 1000.., the
// best (checked here against each run's own result) is written as a recipe
// and runs in the report on the recipe's seeds; a bad grid key fails before
// anything trains.
TEST_CASE("speedup --search: a grid at one budget on search seeds, its best measured on fresh seeds", "[speedup][search]") {
  fs::path dir = fs::temp_directory_path() / ("brisk_search_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::string common = "model = \"mlp\"\nbatch_size = 64\nthreads = 2\nseed = 5\ndata_dir = \"" + synthetic_dir() + "\"\n";
  SpeedupOptions o;
  o.baseline = write_recipe(dir / "recipes", "base", common + "lr = 0.05\n");
  std::string cand = write_recipe(dir / "recipes", "cand", common + "lr = 0.05\nmethod = \"batch-warmup:start=0.5\"\n");
  o.budgets = {1};
  o.seeds = 1;
  o.targets = {0.5};
  o.lr_grid = {1.0};
  o.out = (dir / "out").string();
  o.plot = false;
  o.search.recipe = cand;
  o.search.grid = {"lr=0.001,0.05", "batch-warmup.until=0.3,0.6"};
  o.search.budget = 1;
  o.search.seeds = 2;
  // A bad key or value fails before any run.
  SpeedupOptions bad = o;
  bad.search.grid = {"batch-warmup.until=0.3,7"};
  CHECK_THROWS_WITH(run_speedup(bad), Catch::Contains("until must be in (0, 1]"));
  bad.search.grid = {"learning_rat=0.1"};
  CHECK_THROWS_WITH(run_speedup(bad), Catch::Contains("learning_rat"));
  bad.search.grid = {"prune.target=0.5"};
  CHECK_THROWS_WITH(run_speedup(bad), Catch::Contains("no 'prune' method"));
  CHECK_FALSE(fs::exists(dir / "out" / "search"));

  SpeedupResult r = run_speedup(o);
  // 4 combinations x 2 search seeds (1005, 1006), then base and cand_best on seed 5.
  // setting -> (median accuracy, -median seconds) from the runs' own metrics
  std::map<std::string, std::pair<double, double>> med;
  for (int i = 0; i < 4; ++i) {
    double acc = 0, sec = 0;
    for (int s : {1005, 1006}) {
      fs::path rd = dir / "out" / "search" / ("cand-" + std::to_string(i) + "-s" + std::to_string(s));
      json cj = json::parse(std::ifstream(rd / "config.json"));
      CHECK(cj["seed"].get<int64_t>() == s);
      CHECK(cj["epochs"].get<int64_t>() == 1);
      json last = read_jsonl((rd / "metrics.jsonl").string()).back();
      acc += 0.5 * last["test_acc"].get<double>();
      sec -= 0.5 * last["wall_s"].get<double>();
      med[std::to_string(cj["lr"].get<double>()) + " " + cj["method"][0].get<std::string>()] = {acc, sec};
    }
  }
  REQUIRE(med.size() == 4);
  auto best = std::max_element(med.begin(), med.end(), [](auto& a, auto& b) { return a.second < b.second; });
  brisk::train::TrainConfig won;
  won.load_toml((dir / "out" / "search" / "cand_best.toml").string());
  CHECK(std::to_string(won.lr) + " " + won.methods.at(0) == best->first);
  CHECK(won.seed == 5);
  std::set<std::string> configs;
  for (auto& run : r.runs) {
    configs.insert(run.config);
    CHECK(run.seed == 5);  // the report's runs: the recipe's seed, not a searched one
  }
  CHECK(configs == std::set<std::string>{"base", "cand_best"});
  CHECK(fs::exists(dir / "out" / "search" / "search.md"));
  CHECK(run_speedup(o).trained == 0);  // search runs and report runs are all reused
  fs::remove_all(dir);
}
