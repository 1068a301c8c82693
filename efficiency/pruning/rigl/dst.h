// Dynamic sparse training: ERK layer densities and the drop/grow update of
// RigL (Evci et al. 2020) and SET (Mocanu et al. 2018).
#pragma once
#include <vector>

#include "core/brisk.h"

namespace brisk::pruning {

// Erdős–Rényi-Kernel densities for weights of the given shapes at an overall
// density (1 - sparsity): density_l ∝ sum(dims) / prod(dims), scaled to hit the
// total, with layers that would exceed 1 fixed dense and the rest rescaled.
std::vector<double> erk_densities(const std::vector<Shape>& shapes, double sparsity);

// A random mask with exactly llround(density * n) ones.
Tensor random_mask(const Shape& shape, double density, DType dtype, Generator& gen);

struct DropGrow {
  Tensor mask;                        // the new mask (same active count)
  std::vector<int64_t> dropped, grown;  // flat indices (disjoint)
};
// Drops the k active weights of smallest |w| and grows k inactive ones (not
// just dropped): by largest |dense_grad| (RigL) or at random (SET, when
// dense_grad is undefined). Ties go to the lower index.
DropGrow drop_and_grow(const Tensor& w, const Tensor& mask, const Tensor& dense_grad, int64_t k, Generator* gen);

// RigL's cosine-annealed update fraction at step t of [0, t_end).
double rigl_fraction(double alpha, int64_t t, int64_t t_end);

}  // namespace brisk::pruning
