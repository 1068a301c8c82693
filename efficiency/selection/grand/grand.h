// GraNd scores (Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet",
// NeurIPS 2021): score_i = ||∇_θ ℓ(x_i, y_i)||_2 at the current weights, the
// per-example gradient norm. High scores mark examples that still move the
// model; static data pruning keeps the highest.
#pragma once
#include <vector>

#include "data/dataset.h"
#include "nn/layers.h"

namespace brisk::selection {

enum class GrandScope {
  // θ = the classifier (the Sequential's last Linear). Exact and one forward
  // pass: its per-example gradient is g_i h_iᵀ for the weight and g_i for the
  // bias, g_i = softmax(z_i) − onehot(y_i) [C], h_i [D] the classifier's
  // input, so ||∇||² = ||g_i||² (||h_i||² + 1).
  last,
  // θ = every parameter: one backward pass per example (exact, slow).
  full,
};

// Scores every example of `ds`, indexed by dataset index; the model runs in
// eval mode (BatchNorm statistics do not move) and is put back in its mode.
// Parameter .grad is left zeroed by `full`. Throws if `last` is asked of a model
// whose last child is not a Linear.
std::vector<float> grand_scores(nn::Sequential& model, const data::Dataset& ds, GrandScope scope,
                                int64_t batch_size = 256);

}  // namespace brisk::selection
