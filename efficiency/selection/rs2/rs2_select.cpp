// RS2, repeated sampling of random subsets (Okanovic et al. 2023). Each round
// (epoch) trains on a fresh uniform subset of m examples, m = ratio·N rounded
// down to whole batches (at least one), without replacement across rounds:
// the K = ceil(N/m) rounds of a cycle walk one random permutation; the last
// round of a cycle, if short, is topped up from the cycle's start, so every
// round has exactly m examples and every example is visited at least once per
// cycle. The learning-rate schedule spans the reduced step count.
#include <algorithm>
#include <cmath>

#include "efficiency/selection/select_base.h"

namespace brisk::efficiency::selection_methods {

namespace {

class Rs2Select : public SelectBase {
 public:
  using SelectBase::SelectBase;

  int64_t epoch_examples(int64_t, int64_t n, int64_t B) const override { return round_size(n, B); }

  void on_epoch_start(train::Trainer& t) override { t.epoch_order = round_order(t.state().epoch); }

 private:
  int64_t round_size(int64_t n, int64_t B) const {
    int64_t m = int64_t(std::floor(spec_.ratio * double(n) / double(B))) * B;
    return std::clamp<int64_t>(m, std::min(B, n), n);
  }

  // The subset for round `epoch`, shuffled within the round so batches mix.
  Tensor round_order(int64_t epoch) const {
    int64_t m = round_size(n_, batch_), K = (n_ + m - 1) / m;
    int64_t cycle = epoch / K, j = epoch % K;
    Generator g(seed_ * 0x9E3779B97F4A7C15ull + uint64_t(cycle) + 1);
    Tensor perm = randperm(n_, &g);
    const int64_t* p = perm.data_ptr<int64_t>();
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < m; ++i) idx.push_back(p[(j * m + i) % n_]);
    Generator g2(seed_ * 31 + uint64_t(epoch) + 7);  // keyed by epoch
    return shuffled(idx, g2);
  }
};

}  // namespace

std::unique_ptr<SelectBase> make_rs2_select(const SelectSpec& s) { return std::make_unique<Rs2Select>(s); }

}  // namespace brisk::efficiency::selection_methods
