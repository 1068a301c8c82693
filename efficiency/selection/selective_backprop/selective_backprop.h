// Selective Backprop's selection probability: p = F(loss)^beta, where F is the
// fraction of the recent loss history (sorted ascending) that is <= loss.
// An empty history selects everything.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

namespace brisk::selection {

inline double selection_probability(const std::vector<float>& sorted_history, float loss, double beta) {
  if (sorted_history.empty()) return 1.0;
  double F = double(std::upper_bound(sorted_history.begin(), sorted_history.end(), loss) - sorted_history.begin()) /
             double(sorted_history.size());
  return std::pow(F, beta);
}

}  // namespace brisk::selection
