// `brisk speedup`: trains a baseline and candidate recipes at several budgets
// and seeds (the schedule re-fitted to each budget: cosine / linear / onecycle
// end at the budget's last step), then compares their time-to-quality
// frontiers (pareto.h). Budgets are epochs, or steps (train::TrainConfig::steps:
// fractions of an epoch, for the language model); quality is final test
// accuracy, or final test loss (lower is better; a language model's
// validation loss). The baseline is re-tuned at every budget ("No Train No
// Gain", Kaddour et al. 2023: gains often vanish against a baseline whose
// learning rate suits the budget): its recipe's lr times each multiplier of
// lr_grid is trained on the first seed, the best is kept and run on the
// other seeds; the grid's other runs are the tuning cost, reported apart.
// Candidates run as given. Finished runs are kept under
// OUT/runs/<recipe>/b<budget>-s<seed>/ (steps<budget>-... for steps) with a
// result.json and are not redone; an interrupted run resumes from its
// checkpoint. Writes OUT/runs.csv, OUT/report.json, OUT/report.md and
// OUT/pareto.png (Debian's python3-matplotlib; skipped with a message when
// it is missing).
#pragma once
#include <string>
#include <vector>

#include "efficiency/speedup/pareto.h"
#include "efficiency/speedup/search.h"
#include "train/config.h"

namespace brisk::speedup {

struct SpeedupOptions {
  std::string baseline;                 // TOML recipe
  std::vector<std::string> candidates;  // TOML recipes
  std::vector<int64_t> budgets{1, 2, 4, 8};
  // The candidates' budgets, one per entry of budgets (run in its turn):
  // a method cheaper per step may spend what it saves on more steps. Empty:
  // the candidates run at budgets, as the baseline does.
  std::vector<int64_t> candidate_budgets;
  std::string unit = "epochs";          // budgets count epochs, or "steps" (train::TrainConfig::steps)
  // The quality the frontiers compare: "acc" (final test accuracy, higher is
  // better) or "loss" (final test loss, lower is better: a language model's
  // validation loss). targets and match_delta are in its units.
  std::string metric = "acc";
  int seeds = 3;                        // seeds recipe.seed, recipe.seed + 1, ...
  std::vector<double> targets{0.91};
  std::vector<double> lr_grid{0.5, 1.0, 2.0};  // baseline lr multipliers tuned per budget; {1}: no tuning
  double match_delta = 0.002;           // report: candidate vs the baseline's final quality, this much worse
  std::string out = "runs/speedup";
  std::vector<std::string> overrides;   // "key=value", applied to every recipe (e.g. threads=2)
  bool plot = true;
  SearchOptions search;                 // --search: recipe empty = no search (search.h)
  std::string command;                  // the command line, for the report
};

struct SpeedupResult {
  std::vector<Run> runs;    // the baseline at its chosen lr per budget, and the candidates
  std::vector<Run> tuning;  // the baseline's grid runs on the first seed (chosen one included)
  int trained = 0;  // runs trained (or resumed) by this call; the rest were finished already
};

// Validates everything (files, keys, budgets, seeds) before training anything.
SpeedupResult run_speedup(const SpeedupOptions& o);

// A TOML recipe with --set overrides applied, validated with its methods
// and their composition (check_recipe) before anything trains.
train::TrainConfig load_recipe(const std::string& path, const std::vector<std::string>& overrides);
void check_recipe(const train::TrainConfig& c);

// The recipe name: the TOML file's stem (e.g. recipes/fast_cnn.toml -> fast_cnn).
std::string recipe_name(const std::string& path);

}  // namespace brisk::speedup
