// The speedup harness (see harness.h).
#include "efficiency/speedup/harness.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/device.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/thread_pool.h"
#include "efficiency/compose.h"
#include "efficiency/method.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace brisk::speedup {

std::string recipe_name(const std::string& path) { return fs::path(path).stem().string(); }

void check_recipe(const train::TrainConfig& c) {
  c.validate();
  std::vector<std::unique_ptr<train::Callback>> ms;
  for (const std::string& m : c.methods) ms.push_back(efficiency::make_method(m));  // unknown families/keys fail now
  efficiency::order_and_check(ms);  // and so do conflicting combinations
}

train::TrainConfig load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  BRISK_CHECK(fs::is_regular_file(path), "speedup: recipe file '", path, "' does not exist");
  train::TrainConfig c;
  c.load_toml(path);  // throws naming the file and the key on malformed TOML or unknown keys
  for (const std::string& kv : overrides) {
    size_t eq = kv.find('=');
    BRISK_CHECK(eq != std::string::npos && eq > 0, "speedup: --set expects key=value, got '", kv, "'");
    c.set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  check_recipe(c);
  return c;
}

namespace {

json run_json(const Run& r) {
  return {{"config", r.config}, {"budget", r.budget}, {"seed", r.seed}, {"seconds", r.seconds},
          {"test_acc", r.acc}, {"test_loss", r.loss}, {"flops", r.flops}, {"lr", r.lr}};
}

Run run_from_json(const json& j) {
  Run r;
  r.config = j.at("config").get<std::string>();
  r.budget = j.at("budget").get<int64_t>();
  r.seed = j.at("seed").get<uint64_t>();
  r.seconds = j.at("seconds").get<double>();
  r.acc = j.at("test_acc").get<double>();
  r.loss = j.at("test_loss").get<double>();
  r.flops = j.at("flops").get<double>();
  r.lr = j.value("lr", 0.0);
  return r;
}

std::string fmt(const std::optional<double>& v, const char* f = "%.2f") {
  if (!v) return "-";
  char b[64];
  std::snprintf(b, sizeof b, f, *v);
  return b;
}

// A finished or interrupted run in `dir` is reused only when it ran exactly
// this configuration: a recipe edited since (say, its lr) must not be
// reported with the old recipe's numbers. The folder's own path may differ
// (a report folder copied elsewhere).
void check_same_run(const fs::path& dir, const train::TrainConfig& c) {
  fs::path cj = dir / "config.json";
  if (!fs::exists(cj)) return;
  json was;
  try {
    std::ifstream f(cj);
    json all = json::parse(f), keys;  // config.json also holds facts (cpu, version): keep the config's keys
    for (const std::string& k : train::TrainConfig::keys())
      if (all.contains(k)) keys[k] = all[k];
    was = train::TrainConfig::from_json(keys).to_json();
  } catch (const std::exception& e) {
    BRISK_FAIL("speedup: ", cj.string(), " cannot be read (", e.what(), "); remove ", dir.string(),
               " to train that run again");
  }
  json now = c.to_json();  // `was` went through to_json too: the same keys, defaults filled in
  was.erase("out");
  now.erase("out");
  for (auto& [k, v] : now.items())
    BRISK_CHECK(was[k] == v, "speedup: ", dir.string(), " holds a run of another configuration (", k, " was ",
                was[k].dump(), ", the recipe now says ", v.dump(),
                "): remove that folder to train it again, or use another --out");
}

// The quality the frontiers rank by. pareto.h's arithmetic is higher-is-
// better on Run::acc, so under --target-loss a run enters with acc = -loss
// and every figure is negated back when written.
double quality(const Run& r, bool loss) { return loss ? -r.loss : r.acc; }

std::vector<Run> scored(std::vector<Run> runs, bool loss) {
  for (Run& r : runs) r.acc = quality(r, loss);
  return runs;
}

// The lr chosen at `budget`: the grid's best run by the report's quality
// (ties: the first).
const Run* chosen_run(const std::vector<Run>& tuning, int64_t budget, bool loss) {
  const Run* best = nullptr;
  for (const Run& r : tuning)
    if (r.budget == budget && (!best || quality(r, loss) > quality(*best, loss))) best = &r;
  return best;
}

// `plot`: draw pareto.png too (once, at the end: it starts a Python process).
void write_reports(const SpeedupOptions& o, const std::vector<std::string>& names,
                   const std::vector<std::string>& files, const std::vector<Run>& runs,
                   const std::vector<Run>& tuning, bool plot) {
  fs::path out(o.out);
  const bool L = o.metric == "loss";
  const std::string m = L ? "loss" : "acc";          // JSON key suffix
  const char* label = L ? "loss" : "test acc";      // table heading
  auto shown = [L](double q) { return L ? -q : q; };  // quality -> the metric's units
  auto shown_opt = [&](const std::optional<double>& q) { return q ? std::optional<double>(shown(*q)) : q; };
  const std::vector<Run> q = scored(runs, L);
  // runs.csv
  std::ostringstream csv;
  csv << "config,budget,seed,seconds,test_acc,test_loss,flops\n";
  for (const Run& r : runs)
    csv << r.config << "," << r.budget << "," << r.seed << "," << r.seconds << "," << r.acc << "," << r.loss << ","
        << r.flops << "\n";
  atomic_write((out / "runs.csv").string(), csv.str());

  json rep;
  rep["command"] = o.command;
  rep["hardware"] = {{"cpu", cpu_model_name()}, {"threads", get_num_threads()}};
  rep["build"] = {{"version", BRISK_VERSION}, {"gemm", gemm_backend()}, {"compiler", __VERSION__}};
  rep["budgets"] = o.budgets;
  rep["candidate_budgets"] = o.candidate_budgets.empty() ? o.budgets : o.candidate_budgets;
  rep["unit"] = o.unit;
  rep["metric"] = m;
  rep["seeds"] = o.seeds;
  rep["targets"] = o.targets;
  rep["baseline"] = names[0];
  for (size_t i = 0; i < names.size(); ++i) {
    json c;
    c["file"] = files[i];
    std::vector<BudgetSummary> raw = summarize(runs, names[i]), qs = summarize(q, names[i]);
    for (size_t k = 0; k < raw.size(); ++k) {
      const BudgetSummary &s = raw[k], &t = qs[k];
      c["budgets"].push_back({{"budget", s.budget}, {"seeds", s.seeds}, {"seconds_median", s.sec_med},
                              {"seconds_min", s.sec_min}, {"seconds_max", s.sec_max}, {"acc_median", s.acc_med},
                              {"acc_min", s.acc_min}, {"acc_max", s.acc_max}, {"loss_median", s.loss_med},
                              {"quality_median", shown(t.acc_med)},
                              {"quality_min", L ? shown(t.acc_max) : t.acc_min},
                              {"quality_max", L ? shown(t.acc_min) : t.acc_max},
                              {"flops_median", s.flops_med}});
    }
    for (auto& p : median_frontier(q, names[i])) c["frontier"].push_back({p.seconds, shown(p.acc)});
    rep["configs"][names[i]] = c;
  }
  // speedups[i - 1][t]: candidate i at target t, used by both report.json and report.md
  std::vector<std::vector<SpeedupAt>> speedups(names.size() > 1 ? names.size() - 1 : 0);
  for (size_t i = 1; i < names.size(); ++i)
    for (double t : o.targets) speedups[i - 1].push_back(speedup_at(q, names[0], names[i], L ? -t : t));
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  for (size_t i = 1; i < names.size(); ++i) {
    json cmp;
    cmp["candidate"] = names[i];
    for (const SpeedupAt& s : speedups[i - 1]) {
      cmp["targets"].push_back({{"target", shown(s.target)}, {"baseline_seconds", opt(s.base_sec)}, {"candidate_seconds", opt(s.cand_sec)},
                                {"baseline_seed_min", opt(s.base_min)}, {"baseline_seed_max", opt(s.base_max)},
                                {"candidate_seed_min", opt(s.cand_min)}, {"candidate_seed_max", opt(s.cand_max)},
                                {"speedup", opt(s.speedup)}, {"speedup_lo", opt(s.speedup_lo)},
                                {"speedup_hi", opt(s.speedup_hi)}, {"baseline_seeds_missed", s.base_missed},
                                {"candidate_seeds_missed", s.cand_missed}, {"verdict", s.verdict}});
    }
    MatchFinal mf = match_final(q, names[0], names[i], o.match_delta);
    cmp["match_final"] = {{"delta", o.match_delta},         {"baseline_budget", mf.base_budget},
                          {"baseline_" + m, shown(mf.base_acc)}, {"baseline_seconds", mf.base_sec},
                          {"target", shown(mf.target)},     {"candidate_budget", mf.cand_budget ? json(*mf.cand_budget) : json(nullptr)},
                          {"candidate_seconds", opt(mf.cand_sec)}, {"candidate_" + m, opt(shown_opt(mf.cand_acc))},
                          {"speedup", opt(mf.speedup)}};
    for (auto& g : accuracy_gain(q, names[0], names[i]))  // gain > 0: the candidate is better
      cmp["equal_time"].push_back({{"budget", g.budget}, {"seconds", g.seconds}, {"candidate_" + m, shown(g.cand_acc)},
                                   {"baseline_" + m, opt(shown_opt(g.base_acc))}, {"gain", opt(g.gain)}});
    rep["comparisons"].push_back(cmp);
  }
  double tuning_cost = 0;  // the grid's runs that were not chosen
  if (o.lr_grid.size() > 1) {
    json bt;
    bt["grid"] = o.lr_grid;
    for (int64_t b : o.budgets) {
      const Run* best = chosen_run(tuning, b, L);
      if (!best) continue;
      json row = {{"budget", b}, {"chosen_lr", best->lr}, {"seed", best->seed}};
      double cost = 0;
      for (const Run& r : tuning)
        if (r.budget == b) {
          row["runs"].push_back({{"lr", r.lr}, {"test_acc", r.acc}, {"test_loss", r.loss}, {"seconds", r.seconds}});
          if (&r != best) cost += r.seconds;
        }
      row["tuning_seconds"] = cost;
      tuning_cost += cost;
      bt["budgets"].push_back(row);
    }
    bt["tuning_seconds_total"] = tuning_cost;
    rep["baseline_tuning"] = bt;
  }
  atomic_write((out / "report.json").string(), rep.dump(2) + "\n");

  // report.md
  std::ostringstream md;
  md << "# Speedup report\n\n"
     << "Command: `" << o.command << "`\n\n"
     << "Hardware: " << cpu_model_name() << ", " << get_num_threads() << " threads. Build: brisk " << BRISK_VERSION
     << ", GEMM " << gemm_backend() << ", " << __VERSION__ << ".\n\n"
     << (o.candidate_budgets.empty() ? "Each recipe ran at budgets" : "The baseline ran at budgets");
  for (auto b : o.budgets) md << " " << b;
  if (!o.candidate_budgets.empty()) {
    md << " " << o.unit << ", the candidates at";
    for (auto b : o.candidate_budgets) md << " " << b;
  }
  md << " " << o.unit << " (its schedule re-fitted to end at the budget) with " << o.seeds
     << " seeds. Time is wall-clock training time with every method overhead included; evaluation "
        "is excluded. Quality is the final "
     << (L ? "loss on the test split (a language model's validation split), lower is better"
           : "test accuracy, higher is better")
     << ". Medians over seeds, [min, max] in brackets.\n\n";
  if (o.lr_grid.size() > 1) {
    md << "## Baseline learning rate, tuned at every budget\n\n"
       << "At each budget the baseline trained on its first seed with its recipe's lr times each of";
    for (double g : o.lr_grid) md << " " << g;
    md << "; the best (final " << label << ": a choice that favours the baseline) ran on every seed "
          "and is the baseline below. The other grid runs are the tuning cost, not counted in the "
          "baseline's times: "
       << fmt(std::optional<double>(tuning_cost), "%.1f") << " s in all.\n\n"
       << "| budget | lr | " << label << " | seconds | |\n| ---: | ---: | ---: | ---: | --- |\n";
    for (int64_t b : o.budgets) {
      const Run* best = chosen_run(tuning, b, L);
      for (const Run& r : tuning)
        if (r.budget == b)
          md << "| " << b << " | " << fmt(r.lr, "%g") << " | " << fmt(L ? r.loss : r.acc, "%.4f") << " | "
             << fmt(r.seconds, "%.1f") << " | " << (&r == best ? "chosen" : "tuning cost") << " |\n";
    }
    md << "\n";
  }
  for (size_t i = 0; i < names.size(); ++i) {
    md << "## " << names[i] << (i == 0 ? " (baseline)" : "") << "\n\n`" << files[i] << "`\n\n"
       << "| budget | seconds | " << label << " | " << (L ? "test acc" : "test loss")
       << " | GFLOP |\n| ---: | ---: | ---: | ---: | ---: |\n";
    std::vector<BudgetSummary> raw = summarize(runs, names[i]), qs = summarize(q, names[i]);
    for (size_t k = 0; k < raw.size(); ++k) {
      const BudgetSummary &s = raw[k], &t = qs[k];
      double lo = L ? shown(t.acc_max) : t.acc_min, hi = L ? shown(t.acc_min) : t.acc_max;
      char line[256];
      std::snprintf(line, sizeof line, "| %lld | %.1f [%.1f, %.1f] | %.4f [%.4f, %.4f] | %.4f | %.1f |\n",
                    (long long)s.budget, s.sec_med, s.sec_min, s.sec_max, shown(t.acc_med), lo, hi,
                    L ? s.acc_med : s.loss_med, s.flops_med / 1e9);
      md << line;
    }
    md << "\n";
  }
  if (names.size() > 1) {
    md << "## Time to " << (L ? "loss" : "accuracy") << " vs " << names[0] << "\n\n"
       << "| candidate | target " << m
       << " | baseline s [seeds] | candidate s [seeds] | speedup [range] | verdict |\n"
       << "| --- | ---: | ---: | ---: | ---: | --- |\n";
    for (size_t i = 1; i < names.size(); ++i)
      for (const SpeedupAt& s : speedups[i - 1]) {
        // "[min, max; 1 seed never]": the range covers only the seeds that reach the target.
        auto never = [](int n) { return n ? "; " + std::to_string(n) + (n == 1 ? " seed" : " seeds") + " never" : std::string(); };
        md << "| " << names[i] << " | " << fmt(shown(s.target), L ? "%.4f" : "%.3f") << " | " << fmt(s.base_sec, "%.1f") << " ["
           << fmt(s.base_min, "%.1f") << ", " << fmt(s.base_max, "%.1f") << never(s.base_missed) << "] | "
           << fmt(s.cand_sec, "%.1f") << " [" << fmt(s.cand_min, "%.1f") << ", " << fmt(s.cand_max, "%.1f")
           << never(s.cand_missed) << "] | "
           << (s.cand_censored && !s.base_censored ? ">= " : s.base_censored && !s.cand_censored ? "<= " : "")
           << fmt(s.speedup) << "x ["
           << fmt(s.speedup_lo) << ", " << fmt(s.speedup_hi) << "] | " << s.verdict << " |\n";
      }
    md << "\n## Reaching the baseline's final " << (L ? "loss" : "accuracy")
       << "\n\nThe baseline's largest budget sets the bar: its median " << label
       << (L ? " plus " : " minus ")
       << (L ? fmt(std::optional<double>(o.match_delta), "%g") + " nats"
             : fmt(std::optional<double>(o.match_delta * 100), "%.2f") + " points")
       << ". Each candidate's smallest budget that was run and reaches the bar (median over seeds); "
          "speedup = the baseline's seconds at its largest budget / the candidate's seconds.\n\n"
       << "| candidate | baseline (budget: " << m << ", s) | bar | candidate budget | candidate "
       << m << " | candidate s | speedup |\n"
       << "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
    for (size_t i = 1; i < names.size(); ++i) {
      MatchFinal mf = match_final(q, names[0], names[i], o.match_delta);
      md << "| " << names[i] << " | " << mf.base_budget << ": " << fmt(std::optional<double>(shown(mf.base_acc)), "%.4f")
         << ", " << fmt(std::optional<double>(mf.base_sec), "%.1f") << " | "
         << fmt(std::optional<double>(shown(mf.target)), "%.4f") << " | "
         << (mf.cand_budget ? std::to_string(*mf.cand_budget) : std::string("not reached")) << " | "
         << fmt(shown_opt(mf.cand_acc), "%.4f") << " | " << fmt(mf.cand_sec, "%.1f") << " | " << fmt(mf.speedup) << "x |\n";
    }
    md << "\n## " << (L ? "Loss" : "Accuracy") << " at equal time\n\nThe candidate's median " << label
       << " at each budget minus the baseline frontier's at the same time ("
       << (L ? "negative: the candidate is better" : "positive: the candidate is better")
       << "; \"-\": outside the baseline's time range).\n\n"
       << "| candidate | budget | seconds | candidate " << label << " | baseline " << label
       << " | difference |\n| --- | ---: | ---: | ---: | ---: | ---: |\n";
    for (size_t i = 1; i < names.size(); ++i)
      for (auto& g : accuracy_gain(q, names[0], names[i]))
        md << "| " << names[i] << " | " << g.budget << " | " << fmt(g.seconds, "%.1f") << " | "
           << fmt(std::optional<double>(shown(g.cand_acc)), "%.4f") << " | " << fmt(shown_opt(g.base_acc), "%.4f")
           << " | " << fmt(L && g.gain ? std::optional<double>(-*g.gain) : g.gain, "%+.4f") << " |\n";
  }
  md << "\nA time marked by a censored verdict is the time of the smallest budget run: the target was "
        "already met there, so the true time to it may be shorter.\n";
  md << "\n![frontiers](pareto.png)\n";
  atomic_write((out / "report.md").string(), md.str());

  if (!plot) return;
  std::string script = std::string(BRISK_SOURCE_DIR) + "/tools/plot_pareto.py";
  std::string cmd = "/usr/bin/python3 '" + script + "' '" + (out / "report.json").string() + "' '" +
                    (out / "pareto.png").string() + "'";
  if (std::system(cmd.c_str()) != 0)
    std::fprintf(stderr, "brisk speedup: pareto.png not drawn (needs Debian's python3-matplotlib: "
                         "apt-get install python3-matplotlib); the tables are in report.md\n");
}

}  // namespace

SpeedupResult run_speedup(const SpeedupOptions& o) {
  BRISK_CHECK(!o.baseline.empty(), "speedup: --baseline is required");
  BRISK_CHECK(!o.budgets.empty(), "speedup: --budgets needs at least one budget");
  BRISK_CHECK(o.unit == "epochs" || o.unit == "steps", "speedup: --budget-unit must be epochs or steps, got '",
              o.unit, "'");
  BRISK_CHECK(o.metric == "acc" || o.metric == "loss", "speedup: the metric must be acc or loss, got '", o.metric, "'");
  for (auto b : o.budgets) BRISK_CHECK(b >= 1, "speedup: budgets are ", o.unit, " >= 1, got ", b);
  BRISK_CHECK(o.candidate_budgets.empty() || o.candidate_budgets.size() == o.budgets.size(),
              "speedup: --candidate-budgets needs one budget per --budgets entry (", o.budgets.size(), "), got ",
              o.candidate_budgets.size());
  for (auto b : o.candidate_budgets)
    BRISK_CHECK(b >= 1, "speedup: --candidate-budgets are ", o.unit, " >= 1, got ", b);
  BRISK_CHECK(o.seeds >= 1, "speedup: --seeds must be >= 1, got ", o.seeds);
  const bool L = o.metric == "loss";
  for (double t : o.targets) {
    if (L)
      BRISK_CHECK(t > 0 && std::isfinite(t), "speedup: --target-loss must be finite and > 0, got ", t);
    else
      BRISK_CHECK(t > 0 && t <= 1, "speedup: --target-acc must be in (0, 1], got ", t);
  }
  BRISK_CHECK(o.match_delta >= 0 && o.match_delta < (L ? 1e6 : 1), "speedup: --match-final must be in [0, ",
              L ? "1e6" : "1", "), got ", o.match_delta);
  BRISK_CHECK(o.search.recipe.empty() || (o.unit == "epochs" && !L), "speedup: --search ranks settings by test "
              "accuracy at a budget in epochs; it does not combine with --budget-unit steps or --target-loss");
  std::vector<std::string> files{o.baseline};
  files.insert(files.end(), o.candidates.begin(), o.candidates.end());
  if (!o.search.recipe.empty()) {  // the searched recipe's best setting joins the candidates
    for (auto& f : files) load_recipe(f, o.overrides);  // bad recipes fail before the search trains
    SearchOptions so = o.search;
    so.overrides = o.overrides;
    so.out = o.out;
    files.push_back(run_search(so).best_recipe);
  }
  std::vector<std::string> names;
  std::vector<train::TrainConfig> cfgs;
  std::set<std::string> seen;
  for (auto& f : files) {
    names.push_back(recipe_name(f));
    BRISK_CHECK(seen.insert(names.back()).second, "speedup: two recipes are named '", names.back(),
                "' (the file name's stem names a recipe; rename one)");
    cfgs.push_back(load_recipe(f, o.overrides));  // all validated before any training
  }
  BRISK_CHECK(!o.lr_grid.empty(), "speedup: --lr-grid needs at least one multiplier");
  for (double g : o.lr_grid)
    BRISK_CHECK(g > 0 && std::isfinite(g), "speedup: --lr-grid multipliers must be finite and > 0, got ", g);
  fs::create_directories(o.out);
  SpeedupResult res;
  const bool tune = o.lr_grid.size() > 1;
  int per_budget0 = tune ? int(o.lr_grid.size()) + o.seeds - 1 : o.seeds;
  int total = int(o.budgets.size()) * (per_budget0 + int(files.size() - 1) * o.seeds), k = 0;
  // One run (or its result.json from before). lr < 0: the recipe's own.
  auto train_one = [&](size_t i, int64_t b, int s, double lr) {
    ++k;
    train::TrainConfig c = cfgs[i];
    if (o.unit == "steps") {
      c.steps = b;
    } else {
      c.epochs = b;
      c.steps = 0;
    }
    c.seed = cfgs[i].seed + uint64_t(s);
    if (lr > 0) c.lr = lr;
    c.max_steps = 0;
    c.eval_every = 0;
    c.progress = "off";
    char lr_tag[64] = "";
    if (lr > 0) std::snprintf(lr_tag, sizeof lr_tag, "-lr%g", lr);
    fs::path dir = fs::path(o.out) / "runs" / names[i] /
                   ((o.unit == "steps" ? "steps" : "b") + std::to_string(b) + lr_tag + "-s" + std::to_string(c.seed));
    c.out = dir.string();
    fs::path result = dir / "result.json";
    check_same_run(dir, c);
    if (fs::exists(result)) {
      std::ifstream f(result);
      Run r = run_from_json(json::parse(f));
      std::printf("[%d/%d] %s budget %lld %s lr %g seed %llu: done before (%.1f s, %s %.4f)\n", k, total,
                  names[i].c_str(), (long long)b, o.unit.c_str(), c.lr, (unsigned long long)c.seed, r.seconds,
                  L ? "loss" : "acc", L ? r.loss : r.acc);
      return r;
    }
    bool resume = fs::exists(dir / "checkpoint.json");
    std::printf("[%d/%d] %s budget %lld %s lr %g seed %llu%s\n", k, total, names[i].c_str(), (long long)b,
                o.unit.c_str(), c.lr, (unsigned long long)c.seed, resume ? " (resuming)" : "");
    std::fflush(stdout);
    train::Trainer t(c, efficiency::make_methods);
    train::EvalResult r = t.fit(resume);
    Run run{names[i], b, c.seed, t.state().wall_s, r.acc, r.loss, t.state().flops, c.lr};
    atomic_write(result.string(), run_json(run).dump(2) + "\n");
    res.trained++;
    return run;
  };
  // Budget by budget; within one, seed by seed with every recipe's run of
  // that seed in turn (baseline, candidate 1, ...), so a machine whose speed
  // drifts during the report (a busy host) slows every recipe alike instead
  // of whichever happened to run then. The baseline's lr grid comes first: its
  // choice is the lr of the baseline's other seeds.
  for (size_t bi = 0; bi < o.budgets.size(); ++bi) {
    const int64_t b = o.budgets[bi], cb = o.candidate_budgets.empty() ? b : o.candidate_budgets[bi];
    double lr = -1;  // the baseline's: its recipe's unless tuned
    int first = 0;   // the baseline's seeds already run (the chosen grid run)
    if (tune) {      // the grid on the first seed; the best one stands for that seed
      for (double g : o.lr_grid) {
        res.tuning.push_back(train_one(0, b, 0, cfgs[0].lr * g));
        write_reports(o, names, files, res.runs, res.tuning, false);
      }
      const Run* best = chosen_run(res.tuning, b, L);
      res.runs.push_back(*best);
      lr = best->lr;
      first = 1;
    }
    for (int s = 0; s < o.seeds; ++s)
      for (size_t i = 0; i < files.size(); ++i) {
        if (i == 0 && s < first) continue;
        res.runs.push_back(train_one(i, i == 0 ? b : cb, s, i == 0 ? lr : -1));
        write_reports(o, names, files, res.runs, res.tuning, false);  // partial tables as runs finish
      }
  }
  write_reports(o, names, files, res.runs, res.tuning, o.plot);
  return res;
}

}  // namespace brisk::speedup
