// The settings search before a speedup report (see search.h).
#include "efficiency/speedup/search.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/safetensors.h"
#include "efficiency/method.h"
#include "efficiency/speedup/harness.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace brisk::speedup {

void set_method_key(train::TrainConfig& c, const std::string& family, const std::string& key,
                    const std::string& value) {
  for (std::string& spec : c.methods) {
    size_t colon = spec.find(':');
    if (spec.substr(0, colon) != family) continue;
    // "family:k=v,k=v": keep the other keys in their order, replace or append `key`.
    std::vector<std::string> kvs;
    if (colon != std::string::npos) {
      std::stringstream ss(spec.substr(colon + 1));
      std::string kv;
      while (std::getline(ss, kv, ','))
        if (!kv.empty()) kvs.push_back(kv);
    }
    bool found = false;
    for (std::string& kv : kvs)
      if (kv.substr(0, kv.find('=')) == key) {
        kv = key + "=" + value;
        found = true;
      }
    if (!found) kvs.push_back(key + "=" + value);
    spec = family + ":";
    for (size_t i = 0; i < kvs.size(); ++i) spec += (i ? "," : "") + kvs[i];
    return;
  }
  BRISK_FAIL("speedup --search: grid key '", family, ".", key, "': the recipe has no '", family,
             "' method (its methods: ", c.methods.empty() ? std::string("none") : json(c.methods).dump(), ")");
}

std::string to_toml(const train::TrainConfig& c) {
  json j = c.to_json(), def = train::TrainConfig().to_json();
  std::ostringstream os;
  for (auto& [k, v] : j.items()) {
    if (v == def[k]) continue;
    os << k << " = " << v.dump() << "\n";  // JSON strings, numbers and string arrays are valid TOML
  }
  return os.str();
}

namespace {

// "KEY=v1,v2" -> (KEY, [v1, v2])
std::pair<std::string, std::vector<std::string>> parse_grid(const std::string& g) {
  size_t eq = g.find('=');
  BRISK_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < g.size(), "speedup --search: --grid expects "
              "KEY=v1,v2,... (KEY a recipe key or FAMILY.KEY of a --method), got '", g, "'");
  std::vector<std::string> vals;
  std::stringstream ss(g.substr(eq + 1));
  std::string v;
  while (std::getline(ss, v, ',')) {
    BRISK_CHECK(!v.empty(), "speedup --search: --grid '", g, "' has an empty value");
    vals.push_back(v);
  }
  return {g.substr(0, eq), vals};
}

void apply(train::TrainConfig& c, const std::string& key, const std::string& value) {
  size_t dot = key.find('.');
  if (dot == std::string::npos) return c.set(key, value);  // validates the key and the value's type
  set_method_key(c, key.substr(0, dot), key.substr(dot + 1), value);
}

}  // namespace

SearchResult run_search(const SearchOptions& o) {
  BRISK_CHECK(!o.grid.empty(), "speedup --search: give at least one --grid KEY=v1,v2,...");
  BRISK_CHECK(o.budget >= 1, "speedup --search: --search-budget must be >= 1 epochs, got ", o.budget);
  BRISK_CHECK(o.seeds >= 1 && o.seeds <= 100, "speedup --search: --search-seeds must be in [1, 100], got ", o.seeds);
  train::TrainConfig base = load_recipe(o.recipe, o.overrides);
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;
  size_t combos = 1;
  for (auto& g : o.grid) {
    grid.push_back(parse_grid(g));
    combos *= grid.back().second.size();
    BRISK_CHECK(combos <= 256, "speedup --search: the grid has more than 256 combinations; search fewer values");
  }
  // Every combination built and checked before any training.
  SearchResult res;
  std::vector<train::TrainConfig> cfgs;
  for (size_t i = 0; i < combos; ++i) {
    SearchPoint p;
    train::TrainConfig c = base;
    for (size_t g = 0, rest = i; g < grid.size(); ++g) {
      const auto& [key, vals] = grid[g];
      const std::string& v = vals[rest % vals.size()];
      rest /= vals.size();
      apply(c, key, v);
      p.setting.push_back({key, v});
    }
    c.epochs = o.budget;
    check_recipe(c);
    cfgs.push_back(c);
    res.points.push_back(p);
  }
  std::string name = recipe_name(o.recipe);
  fs::path dir = fs::path(o.out) / "search";
  fs::create_directories(dir);
  for (size_t i = 0; i < combos; ++i) {
    for (int s = 0; s < o.seeds; ++s) {
      train::TrainConfig c = cfgs[i];
      c.seed = base.seed + 1000 + uint64_t(s);
      c.max_steps = 0;
      c.eval_every = 0;
      c.progress = "off";
      fs::path run = dir / (name + "-" + std::to_string(i) + "-s" + std::to_string(c.seed));
      c.out = run.string();
      std::string what;
      for (auto& [k, v] : res.points[i].setting) what += " " + k + "=" + v;
      double acc, sec;
      if (fs::exists(run / "result.json")) {
        std::ifstream f(run / "result.json");
        json r = json::parse(f);
        acc = r.at("test_acc").get<double>();
        sec = r.at("seconds").get<double>();
        std::printf("[search %zu/%zu]%s seed %llu: done before (%.1f s, acc %.4f)\n", i + 1, combos, what.c_str(),
                    (unsigned long long)c.seed, sec, acc);
      } else {
        bool resume = fs::exists(run / "checkpoint.json");
        std::printf("[search %zu/%zu]%s seed %llu%s\n", i + 1, combos, what.c_str(), (unsigned long long)c.seed,
                    resume ? " (resuming)" : "");
        std::fflush(stdout);
        train::Trainer t(c, efficiency::make_methods);
        acc = t.fit(resume).acc;
        sec = t.state().wall_s;
        atomic_write((run / "result.json").string(), json{{"test_acc", acc}, {"seconds", sec}}.dump() + "\n");
      }
      res.points[i].accs.push_back(acc);
      res.points[i].secs.push_back(sec);
    }
    res.points[i].acc_med = median(res.points[i].accs);
    res.points[i].sec_med = median(res.points[i].secs);
  }
  for (size_t i = 1; i < combos; ++i) {
    const SearchPoint &p = res.points[i], &b = res.points[res.best];
    if (p.acc_med > b.acc_med || (p.acc_med == b.acc_med && p.sec_med < b.sec_med)) res.best = i;
  }
  // The winner as a recipe (the budget back to the recipe's own, the seed to
  // the recipe's: the report trains it on fresh seeds).
  train::TrainConfig best = cfgs[res.best];
  best.epochs = base.epochs;
  best.seed = base.seed;
  best.out = "runs/" + name + "_best";
  std::ostringstream toml;
  toml << "# The best setting of " << o.recipe << " found by brisk speedup --search at " << o.budget
       << " epochs on seeds " << base.seed + 1000 << ".." << base.seed + 1000 + uint64_t(o.seeds) - 1 << ":\n#  ";
  for (auto& [k, v] : res.points[res.best].setting) toml << " " << k << "=" << v;
  toml << "\n" << to_toml(best);
  res.best_recipe = (dir / (name + "_best.toml")).string();
  atomic_write(res.best_recipe, toml.str());
  // search.md: every combination, best first.
  std::ostringstream md;
  md << "# Search over " << o.recipe << "\n\n" << o.budget << " epochs, seeds " << base.seed + 1000 << ".."
     << base.seed + 1000 + uint64_t(o.seeds) - 1
     << " (never used by the report, which trains the best setting on the recipe's own seeds). Ranked by "
        "median final test accuracy, ties by median seconds.\n\n| setting | acc median | accs | seconds median |\n"
        "| --- | ---: | --- | ---: |\n";
  std::vector<size_t> order(combos);
  for (size_t i = 0; i < combos; ++i) order[i] = i;
  auto rank = [&](size_t i) { return std::pair<int, double>(i == res.best ? 0 : 1, -res.points[i].acc_med); };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rank(a) < rank(b); });
  for (size_t i : order) {
    const SearchPoint& p = res.points[i];
    std::string what, accs;
    for (auto& [k, v] : p.setting) what += (what.empty() ? "" : " ") + k + "=" + v;
    for (double a : p.accs) {
      char b[16];
      std::snprintf(b, sizeof b, "%.4f", a);
      accs += (accs.empty() ? "" : ", ") + std::string(b);
    }
    char line[512];
    std::snprintf(line, sizeof line, "| %s%s | %.4f | %s | %.1f |\n", what.c_str(), i == res.best ? " (best)" : "",
                  p.acc_med, accs.c_str(), p.sec_med);
    md << line;
  }
  atomic_write((dir / "search.md").string(), md.str());
  std::printf("search: best%s (median acc %.4f, %.1f s) -> %s\n",
              [&] {
                std::string w;
                for (auto& [k, v] : res.points[res.best].setting) w += " " + k + "=" + v;
                return w;
              }().c_str(),
              res.points[res.best].acc_med, res.points[res.best].sec_med, res.best_recipe.c_str());
  return res;
}

}  // namespace brisk::speedup
