// Stochastic depth's per-batch draw (efficiency/stochastic_depth), exposed so
// that tests can check its rule and frequencies apart from the trainer.
#pragma once
#include <cstdint>

namespace brisk::efficiency {

// Survival probability of residual block l (1-based) of L under the linear
// decay rule: p_l = 1 - (l / L)(1 - p_last); `uniform`: every block p_last.
double survival_probability(int64_t l, int64_t L, double p_last, bool uniform);
// Whether block l keeps its residual branch at this clock: deterministic in
// (seed, clock, l), true with probability p.
bool keep_block(uint64_t seed, int64_t clock, int64_t l, double p);

}  // namespace brisk::efficiency
