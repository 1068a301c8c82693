// `--method prune:...`: the prune family's keys, parsed and checked once,
// then handed to the member that owns the schedule (one folder each, with its
// README card):
//   magnitude/  schedule=oneshot|gradual, scope=layer|global (Zhu & Gupta 2017)
//   imp/        schedule=imp: lottery ticket with rewinding (Frankle et al.)
//   rigl/       schedule=rigl|set: dynamic sparse training (Evci et al.; Mocanu et al.)
//   nm/         structure=N:M (e.g. 2:4)
//   channel/    structure=channel: whole units removed, tensors shrink
// Shared: prune_base.h (masks, checkpoints, metrics) and magnitude.h (mask
// selection). Keys and their meaning: docs/methods/pruning.md.
//
// Keys:
//   target=0.9            final sparsity of the prunable weights (conv/linear weights)
//   schedule=oneshot|gradual|imp|rigl|set
//   structure=unstructured|N:M|channel
//   scope=global|layer   (default global: docs/methods/pruning.md says why)
//   start=0, end=0.5      fractions of training on the trainer's clock (gradual ramps
//                         between them; rigl/set default end=0.75; channel default
//                         start=0.3; N:M default start=0.5, after dense training)
//   frequency=100         steps between mask updates (gradual, rigl, set)
//   initial=0             sparsity at start (gradual)
//   alpha=0.3             rigl/set: fraction of active weights dropped and regrown
//   distribution=erk      rigl/set: per-layer densities, erk or uniform
//   score=l1|bn           channel: unit scores
//   rounds=3, rewind=0    imp: number of rounds, rewind point (fraction of training)
#include <string>

#include "efficiency/method.h"
#include "efficiency/pruning/prune_base.h"

namespace brisk::efficiency {

using pruning_methods::PruneSpec;
using namespace pruning_methods;

namespace {
bool is_dynamic(const PruneSpec& s) { return s.schedule == "rigl" || s.schedule == "set"; }
const std::vector<std::string> kPruneKeys = {"schedule", "structure", "target", "scope", "start", "end",
                                             "frequency", "initial", "alpha", "distribution", "rounds",
                                             "rewind", "score"};
}  // namespace

void register_pruning_methods() {
  register_method("prune", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    // The member is chosen by `schedule` and `structure`; each reads only its
    // own keys, so one that does not apply is an error naming the member's keys.
    auto m = std::make_unique<PruneSpec>();  // parsed here, then handed to the member
    m->schedule = a.get_string("schedule", "oneshot");
    std::string structure = a.get_string("structure", "unstructured");
    BRISK_CHECK(m->schedule == "oneshot" || m->schedule == "gradual" || is_dynamic(*m) || m->schedule == "imp",
                "--method prune: unknown schedule '", m->schedule, "' (known: oneshot, gradual, imp, rigl, set)");
    auto target = [&] {
      m->target = a.get_double("target", 0.9);
      BRISK_CHECK(m->target >= 0 && m->target < 1, "--method prune: target must be in [0, 1), got ", m->target);
    };
    auto scope = [&] {
      // global by default: one magnitude ranking lets small, sensitive layers
      // (the cnn's first conv, 288 weights) stay denser at the same overall
      // sparsity; per-layer 90% lost 1.6 points where global lost 0.7
      // (docs/methods/pruning.md)
      m->scope = a.get_string("scope", "global");
      BRISK_CHECK(m->scope == "layer" || m->scope == "global", "--method prune: unknown scope '", m->scope,
                  "' (known: layer, global)");
    };
    auto window = [&](double start, double end, bool has_end) {
      m->start = a.get_double("start", start);
      m->end = has_end ? a.get_double("end", end) : m->start;
      BRISK_CHECK(m->start >= 0 && m->start <= 1 && m->end >= m->start && m->end <= 1,
                  "--method prune: need 0 <= start <= end <= 1 (fractions of training), got start=", m->start,
                  " end=", m->end);
    };
    auto frequency = [&] {
      m->frequency = a.get_int("frequency", 100);
      BRISK_CHECK(m->frequency >= 1, "--method prune: frequency must be >= 1 step");
    };
    if (structure == "channel") {
      a.set_kind("structure=channel", kPruneKeys);
      BRISK_CHECK(m->schedule == "oneshot", "--method prune: structure=channel prunes once at `start` "
                  "(schedule=oneshot), got schedule=", m->schedule);
      m->channel = true;
      target();
      window(0.3, 0.3, false);
      m->score = a.get_string("score", "l1");
      BRISK_CHECK(m->score == "l1" || m->score == "bn", "--method prune: unknown score '", m->score,
                  "' (known: l1, bn)");
      return make_channel_prune(*m);
    }
    if (structure != "unstructured") {
      a.set_kind("structure=" + structure, kPruneKeys);
      size_t colon = structure.find(':');
      try {
        BRISK_CHECK(colon != std::string::npos, "");
        std::string n = structure.substr(0, colon), mm = structure.substr(colon + 1);
        size_t used_n = 0, used_m = 0;
        m->nm_n = std::stoll(n, &used_n);
        m->nm_m = std::stoll(mm, &used_m);
        BRISK_CHECK(used_n == n.size() && used_m == mm.size() && m->nm_m <= 1024, "");  // "2:4x" is not 2:4
      } catch (const std::exception&) {
        BRISK_FAIL("--method prune: unknown structure '", structure, "' (known: unstructured, N:M such as 2:4, channel)");
      }
      BRISK_CHECK(m->nm_m >= 1 && m->nm_n >= 1 && m->nm_n < m->nm_m, "--method prune: N:M needs 1 <= N < M, got ",
                  structure);
      BRISK_CHECK(m->schedule == "oneshot", "--method prune: structure ", structure,
                  " is applied once at `start` (schedule=oneshot), got schedule=", m->schedule);
      window(0.5, 0.5, false);  // ASP: dense first, then N:M; the sparsity is (M - N) / M: there is no target
      m->target = double(m->nm_m - m->nm_n) / double(m->nm_m);
      return make_nm_prune(*m);
    }
    a.set_kind("schedule=" + m->schedule, kPruneKeys);
    target();
    if (is_dynamic(*m)) {
      window(0.0, 0.75, true);
      frequency();
      m->alpha = a.get_double("alpha", 0.3);
      m->distribution = a.get_string("distribution", "erk");
      BRISK_CHECK(m->alpha > 0 && m->alpha <= 1, "--method prune: alpha must be in (0, 1], got ", m->alpha);
      BRISK_CHECK(m->distribution == "erk" || m->distribution == "uniform", "--method prune: unknown distribution '",
                  m->distribution, "' (known: erk, uniform)");
      return make_rigl_prune(*m);
    }
    scope();
    if (m->schedule == "imp") {
      m->rounds = a.get_int("rounds", 3);
      m->rewind = a.get_double("rewind", 0.0);
      BRISK_CHECK(m->rounds >= 2, "--method prune: imp needs rounds >= 2, got ", m->rounds);
      BRISK_CHECK(m->rewind >= 0 && m->rewind * double(m->rounds) < 1, "--method prune: rewind must lie in the "
                  "first round, [0, 1/rounds), got ", m->rewind);
      return make_imp_prune(*m);
    }
    if (m->schedule == "gradual") {
      window(0.0, 0.5, true);
      frequency();
      m->initial = a.get_double("initial", 0.0);
      BRISK_CHECK(m->initial >= 0 && m->initial <= m->target, "--method prune: initial must be in [0, target]");
    } else {
      window(0.0, 0.0, false);
    }
    return make_magnitude_prune(*m);
  });
}

}  // namespace brisk::efficiency
