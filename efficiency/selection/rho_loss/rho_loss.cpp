// RHO-LOSS selection rule.
#include "efficiency/selection/rho_loss/rho_loss.h"

#include <algorithm>
#include <cmath>

#include "core/ops.h"

namespace brisk::selection {

Tensor rho_select(const Tensor& losses, const Tensor& indices, const std::vector<float>& il, double keep) {
  int64_t B = losses.numel();
  BRISK_CHECK(indices.numel() == B, "rho_select: ", B, " losses but ", indices.numel(), " indices");
  Tensor l = losses.to(DType::f64).contiguous(), ix = indices.contiguous();
  std::vector<double> score(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    int64_t d = ix.data_ptr<int64_t>()[i];
    BRISK_CHECK(d >= 0 && d < int64_t(il.size()), "rho_select: index ", d, " has no irreducible loss (",
                il.size(), " known)");
    score[size_t(i)] = l.data_ptr<double>()[i] - double(il[size_t(d)]);
  }
  std::vector<int64_t> order(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) order[size_t(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[size_t(a)] > score[size_t(b)]; });
  int64_t k = std::clamp<int64_t>(std::llround(keep * double(B)), 0, B);
  Tensor out = zeros({B}, DType::boolean);
  for (int64_t i = 0; i < k; ++i) out.data_ptr<bool>()[order[size_t(i)]] = true;
  return out;
}

}  // namespace brisk::selection
