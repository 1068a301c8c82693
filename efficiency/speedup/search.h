// `brisk speedup --search RECIPE --grid KEY=V1,V2,...`: a small grid search
// over a recipe's settings at one budget, before the speedup report.
//
// Every combination of the grid's values is trained at `budget` epochs on
// search seeds recipe.seed + 1000 + s (s < search_seeds), seeds a speedup
// report never uses, and ranked by median final test accuracy (ties: median
// seconds). The best combination is written as OUT/search/<name>_best.toml
// and joins the report's candidates, where it runs on the recipe's own seeds:
// the report's claim is measured on fresh seeds, not the ones searched on.
// A grid key is a recipe key (lr, batch-size, epochs, ...) or FAMILY.KEY,
// a key of the recipe's --method of that family (prune.target,
// batch-warmup.until). Finished search runs are not redone.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "train/config.h"

namespace brisk::speedup {

struct SearchOptions {
  std::string recipe;              // TOML recipe to search
  std::vector<std::string> grid;   // "KEY=v1,v2,..." (repeatable)
  int64_t budget = 0;              // epochs (>= 1)
  int seeds = 2;                   // search seeds per combination
  std::vector<std::string> overrides;  // --set, applied first
  std::string out;                 // the report folder; runs go to out/search/
};

struct SearchPoint {
  std::vector<std::pair<std::string, std::string>> setting;  // (grid key, value)
  std::vector<double> accs, secs;                            // per search seed
  double acc_med = 0, sec_med = 0;
};

struct SearchResult {
  std::vector<SearchPoint> points;
  size_t best = 0;
  std::string best_recipe;  // path of the written TOML
};

// Validates every combination (keys, values, method composition) before
// training anything.
SearchResult run_search(const SearchOptions& o);

// In c.methods, sets `key` of the method of `family` (replacing its value or
// adding the key); throws when the recipe has no method of that family.
void set_method_key(train::TrainConfig& c, const std::string& family, const std::string& key,
                    const std::string& value);
// A TOML recipe holding every key of c that differs from the defaults.
std::string to_toml(const train::TrainConfig& c);

}  // namespace brisk::speedup
