// Mask selection for pruning: magnitude (layer-wise and global), N:M, and the
// gradual schedule of Zhu & Gupta (2017).
//
// Counting rule: sparsity s of n weights prunes exactly llround(s * n).
// Tie rule: weights are ranked by (already pruned first, then |w| ascending,
// then flat index ascending); the first k in that order are pruned. So among
// equal magnitudes the lower index goes first, and never more than k go.
#pragma once
#include <vector>

#include "core/brisk.h"

namespace brisk::pruning {

int64_t prune_count(double sparsity, int64_t n);

// Mask (same dtype as w) pruning exactly max(n_prune, already pruned in prev).
Tensor magnitude_mask(const Tensor& w, int64_t n_prune, const Tensor& prev_mask = Tensor());

// One ranking across all tensors (|w| ascending, then tensor order, then
// index). Unless allow_empty, each tensor keeps its largest-magnitude weight.
std::vector<Tensor> global_magnitude_masks(const std::vector<Tensor>& ws, double sparsity,
                                           const std::vector<Tensor>& prev_masks, bool allow_empty = false);

// N:M along input channels, as NVIDIA's ASP groups them: w viewed as
// [O, C, S] (a linear's [out, in] has S = 1; a conv's [O, C, kh, kw] has
// S = kh·kw); every group of m consecutive input channels at one (o, s) keeps
// its n largest |w| (ties: the lower channel stays). C % m == 0.
Tensor nm_mask(const Tensor& w, int64_t n, int64_t m);

// s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, held constant between
// updates at t0, t0 + dt, ..., t0 + n dt; s_i before t0, s_f after.
double gradual_sparsity(int64_t t, double s_i, double s_f, int64_t t0, int64_t n, int64_t dt);

}  // namespace brisk::pruning
