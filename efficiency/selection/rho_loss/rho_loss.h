// RHO-LOSS (Mindermann et al., ICML 2022): select the examples whose training
// loss most exceeds their irreducible loss, the loss of a small model trained
// on a held-out split. Irreducible losses are looked up by dataset index.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace brisk::selection {

// losses [B], indices [B] (dataset indices), il [N]: keeps the round(keep·B)
// largest (loss − il[index]) (ties: lower batch position). Returns bool [B].
Tensor rho_select(const Tensor& losses, const Tensor& indices, const std::vector<float>& il, double keep);

}  // namespace brisk::selection
