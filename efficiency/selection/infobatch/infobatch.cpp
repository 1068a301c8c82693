// InfoBatch epoch plan.
#include "efficiency/selection/infobatch/infobatch.h"

#include <cmath>

#include "core/ops.h"

namespace brisk::selection {

EpochPlan infobatch_plan(const std::vector<float>& last_loss, const std::vector<int32_t>& times_seen, double ratio,
                         Generator& gen) {
  BRISK_CHECK(ratio >= 0 && ratio < 1, "infobatch: ratio must be in [0, 1), got ", ratio);
  size_t n = last_loss.size();
  double sum = 0;
  int64_t seen = 0;
  for (size_t i = 0; i < n; ++i)
    if (times_seen[i] > 0) { sum += last_loss[i]; ++seen; }
  double mean = seen ? sum / double(seen) : 0;
  std::vector<int64_t> low;  // well-learned: seen, below the mean
  for (size_t i = 0; i < n; ++i)
    if (times_seen[i] > 0 && last_loss[i] < mean) low.push_back(int64_t(i));
  int64_t drop = std::llround(ratio * double(low.size()));
  EpochPlan p;
  p.weight.assign(n, 1.0f);
  Tensor perm = randperm(int64_t(low.size()), &gen);
  const int64_t* pp = perm.data_ptr<int64_t>();
  float up = float(1.0 / (1.0 - ratio));
  for (int64_t j = 0; j < int64_t(low.size()); ++j) p.weight[size_t(low[size_t(pp[j])])] = j < drop ? 0.0f : up;
  for (size_t i = 0; i < n; ++i)
    if (p.weight[i] > 0) p.keep.push_back(int64_t(i));
  return p;
}

}  // namespace brisk::selection
