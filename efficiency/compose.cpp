// Method ordering and conflict rules (see compose.h).
#include "efficiency/compose.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace brisk::efficiency {

int family_rank(const std::string& family) {
  static const std::map<std::string, int> rank{
      {"grow", 0},      {"prune", 1},      {"factorize", 1}, {"freeze", 2}, {"stochastic-depth", 2},
      {"select", 3},    {"resize", 4},     {"regularize", 4}, {"seq-warmup", 4}, {"precision", 5}, {"ema", 6},
      {"swa", 6},       {"batch-warmup", 7}};
  auto it = rank.find(family);
  return it == rank.end() ? 8 : it->second;
}

void order_and_check(std::vector<std::unique_ptr<train::Callback>>& methods) {
  std::stable_sort(methods.begin(), methods.end(),
                   [](const auto& a, const auto& b) { return family_rank(a->name()) < family_rank(b->name()); });
  std::map<std::string, int> count;
  for (auto& m : methods) count[m->name()]++;
  for (const char* f : {"grow", "prune", "factorize", "freeze", "stochastic-depth", "select", "resize",
                        "regularize", "precision", "ema", "swa", "batch-warmup", "seq-warmup"})
    BRISK_CHECK(count[f] <= 1, "methods: at most one '", f, "' method per run, got ", count[f],
                " (combine their settings in one --method ", f, ":...)");
  BRISK_CHECK(!(count["grow"] && count["prune"]),
              "methods: 'grow' and 'prune' cannot be combined: growth surgery changes the layer shapes "
              "that pruning masks and its schedule are defined over");
  BRISK_CHECK(!(count["grow"] && count["freeze"]),
              "methods: 'grow' and 'freeze' cannot be combined: growth adds layers and widens them mid-run, "
              "while freezing's per-layer schedule is fixed over the layers the run starts with");
  for (const char* other : {"grow", "prune", "freeze"})
    BRISK_CHECK(!(count["factorize"] && count[other]), "methods: 'factorize' and '", other,
                "' cannot be combined: factorization replaces layers with two, under the masks, widths or "
                "freeze schedule the other defines over the original layers");
  BRISK_CHECK(!(count["ema"] && count["swa"]),
              "methods: 'ema' and 'swa' cannot be combined: both evaluate with their own average of the weights");
  for (const char* avg : {"ema", "swa"})
    if (count[avg])
      for (auto& m : methods)
        BRISK_CHECK(!m->changes_shapes(), "methods: '", avg, "' cannot be combined with '", m->name(),
                    "' as configured: it changes parameter shapes mid-run (",
                    m->name() == "grow"        ? "growth"
                    : m->name() == "factorize" ? "factorization"
                                               : "channel pruning",
                    " surgery), and the weight average is kept per parameter at a fixed shape; drop ", avg,
                    " or use an unstructured/N:M prune");
}

}  // namespace brisk::efficiency
