// Sparsity lives on the Parameter: a 0/1 mask of the parameter's shape. Once
// a mask is set, the framework keeps these invariants (not the user):
//   - the gradient is masked (a gradient hook multiplies by the mask);
//   - masked weights are exactly zero after every optimizer step, weight decay
//     and momentum included (Optimizer::step re-applies the mask);
//   - optimizer state of the parameter's shape (momentum, Adam m and v) is zero
//     at pruned positions;
//   - masks are saved in checkpoints by the method that owns them.
#pragma once
#include "core/tensor.h"

namespace brisk {

// Sets (or replaces) the mask of a parameter and zeroes the pruned weights and
// any existing gradient there. `mask` must have the parameter's shape; it is
// converted to the parameter's dtype and must hold only 0 and 1.
void set_mask(const Tensor& param, const Tensor& mask);
Tensor get_mask(const Tensor& param);  // undefined when dense
bool has_mask(const Tensor& param);
void clear_mask(const Tensor& param);
// Multiplies the weights (and the gradient, if any) by the mask. Idempotent.
void apply_mask(const Tensor& param);
// Number of zero entries of a tensor.
int64_t count_zeros(const Tensor& t);

}  // namespace brisk
