// Low-rank factorization of a trained or fresh layer (Denton et al. 2014;
// Jaderberg et al. 2014; Idelbayev & Carreira-Perpinan 2020): a weight
// W [m, n] is replaced by its best rank-r approximation (Eckart-Young,
// truncated SVD) as two layers, so a step costs r (m + n) instead of m n
// multiply-adds per position.
#pragma once
#include "nn/layers.h"
#include "optim/optimizer.h"

namespace brisk::nn {

// W [m, n] ~= second [m, r] @ first [r, n] with U_r sqrt(S_r) and
// sqrt(S_r) V_r^T (the singular values split evenly between the factors).
// Computed in double (Jacobi eigen-decomposition of the smaller Gram
// matrix); returned in W's dtype.
struct LowRankFactors {
  Tensor first, second;
};
LowRankFactors low_rank_split(const Tensor& w2d, int64_t rank);

// Layer i of seq (Linear, or Conv2d with groups 1) becomes two layers:
//   Linear(n, m)       -> Linear(n, r, no bias), Linear(r, m) with the bias
//   Conv2d(C, O, k...) -> Conv2d(C, r, k, same stride/padding/dilation, no
//                         bias), Conv2d(r, O, 1) with the bias
// The old layer's parameters and optimizer state leave the optimizer, the
// factors join it with no state (fresh momentum), and the children after it
// are re-keyed. Throws if rank is not in [1, min(m, n)].
void factorize(Sequential& seq, size_t layer, int64_t rank, optim::Optimizer* opt, const std::string& prefix = "");

}  // namespace brisk::nn
