// InfoBatch (Qin et al., ICLR 2024): each epoch, among examples whose last
// loss is below the mean, drop exactly round(ratio * count) chosen uniformly at
// random, and upweight the kept ones of that group by 1 / (1 - ratio), which
// keeps the expected gradient unbiased. Examples never seen keep weight 1.
#pragma once
#include <vector>

#include "core/rng.h"

namespace brisk::selection {

struct EpochPlan {
  std::vector<int64_t> keep;    // dataset indices visited this epoch (ascending)
  std::vector<float> weight;    // per dataset index: loss weight (0 for dropped)
};

// last_loss / seen: per dataset index. Deterministic in `gen`.
EpochPlan infobatch_plan(const std::vector<float>& last_loss, const std::vector<int32_t>& times_seen, double ratio,
                         Generator& gen);

}  // namespace brisk::selection
