// How methods compose. At every trainer event, methods act in family order,
// whatever order the recipe lists them in (within a family, in listed order):
//   1. grow     surgery first: later methods see the current shapes
//   2. prune, factorize  masks over those shapes (the optimizer re-applies them after
//               every step; masked weights and their state stay zero)
//   3. freeze, stochastic-depth  which layers still train, or run this batch
//               (over the shapes pruning left)
//   4. select   which examples are visited / backpropagated
//   5. resize, regularize  the selected batch's image size (progressive
//               resizing), then label smoothing / MixUp / CutMix
//   6. precision  the compute dtype of what was selected
//   7. ema, swa averages the weights the step produced; where a mask is set
//               the average is masked too, so a sparse model is evaluated
//               sparse
//   8. batch-warmup  scales the learning rate the others set for a step on a
//               smaller batch
// Combinations that cannot work together are errors naming both methods:
// two methods of one family; grow + prune; grow + freeze; ema + swa; ema or
// swa + a method that changes parameter shapes (grow, prune:structure=channel,
// factorize); factorize + grow, prune or freeze.
#pragma once
#include <memory>
#include <vector>

#include "train/callback.h"

namespace brisk::efficiency {

// Sorts callbacks into the order above (stable) and rejects conflicting sets.
void order_and_check(std::vector<std::unique_ptr<train::Callback>>& methods);
int family_rank(const std::string& family);  // 0..8; unknown families (user callbacks) act last

}  // namespace brisk::efficiency
