// ERK densities and the drop/grow step.
#include "efficiency/pruning/rigl/dst.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace brisk::pruning {

std::vector<double> erk_densities(const std::vector<Shape>& shapes, double sparsity) {
  BRISK_CHECK(sparsity >= 0 && sparsity < 1, "erk_densities: sparsity must be in [0, 1), got ", sparsity);
  size_t L = shapes.size();
  std::vector<double> raw(L), n(L), dens(L, 0.0);
  std::vector<bool> dense(L, false);
  double total = 0;
  for (size_t l = 0; l < L; ++l) {
    double s = 0, p = 1;
    for (int64_t d : shapes[l]) { s += double(d); p *= double(d); }
    raw[l] = s / p;
    n[l] = p;
    total += p;
  }
  double budget = (1 - sparsity) * total;
  for (;;) {  // fix layers whose density would exceed 1, rescale the rest
    double fixed = 0, weighted = 0;
    for (size_t l = 0; l < L; ++l) {
      if (dense[l]) fixed += n[l];
      else weighted += raw[l] * n[l];
    }
    double eps = weighted > 0 ? (budget - fixed) / weighted : 0;
    bool changed = false;
    for (size_t l = 0; l < L; ++l)
      if (!dense[l] && eps * raw[l] > 1) { dense[l] = true; changed = true; }
    if (!changed) {
      for (size_t l = 0; l < L; ++l) dens[l] = dense[l] ? 1.0 : std::max(0.0, eps * raw[l]);
      return dens;
    }
  }
}

Tensor random_mask(const Shape& shape, double density, DType dtype, Generator& gen) {
  int64_t n = shape_numel(shape), keep = std::clamp<int64_t>(std::llround(density * double(n)), 0, n);
  Tensor perm = randperm(n, &gen);
  std::vector<double> m(static_cast<size_t>(n), 0.0);
  const int64_t* p = perm.data_ptr<int64_t>();
  for (int64_t i = 0; i < keep; ++i) m[size_t(p[i])] = 1.0;
  return from_vector(m, shape, TensorOptions(dtype));
}

DropGrow drop_and_grow(const Tensor& w, const Tensor& mask, const Tensor& dense_grad, int64_t k, Generator* gen) {
  BRISK_CHECK(w.shape() == mask.shape(), "drop_and_grow: mask shape ", shape_str(mask.shape()), " != weight ",
              shape_str(w.shape()));
  std::vector<double> wv = w.detach().to_vector(), mv = mask.to_vector();
  std::vector<double> gv = dense_grad.defined() ? dense_grad.to_vector() : std::vector<double>();
  std::vector<int64_t> active, inactive;
  for (int64_t i = 0; i < int64_t(mv.size()); ++i) (mv[size_t(i)] != 0 ? active : inactive).push_back(i);
  k = std::clamp<int64_t>(k, 0, std::min<int64_t>(int64_t(active.size()), int64_t(inactive.size())));
  DropGrow r;
  // Drop: smallest |w| among active, lower index first on ties.
  std::stable_sort(active.begin(), active.end(),
                   [&](int64_t a, int64_t b) { return std::abs(wv[size_t(a)]) < std::abs(wv[size_t(b)]); });
  r.dropped.assign(active.begin(), active.begin() + k);
  // Grow: among positions inactive before the drop (so disjoint from dropped).
  if (!gv.empty()) {
    std::stable_sort(inactive.begin(), inactive.end(),
                     [&](int64_t a, int64_t b) { return std::abs(gv[size_t(a)]) > std::abs(gv[size_t(b)]); });
  } else {
    BRISK_CHECK(gen != nullptr, "drop_and_grow: random growth (SET) needs a generator");
    Tensor perm = randperm(int64_t(inactive.size()), gen);
    const int64_t* p = perm.data_ptr<int64_t>();
    std::vector<int64_t> shuffled(inactive.size());
    for (size_t i = 0; i < inactive.size(); ++i) shuffled[i] = inactive[size_t(p[i])];
    inactive = std::move(shuffled);
  }
  r.grown.assign(inactive.begin(), inactive.begin() + k);
  for (int64_t i : r.dropped) mv[size_t(i)] = 0.0;
  for (int64_t i : r.grown) mv[size_t(i)] = 1.0;
  r.mask = from_vector(mv, w.shape(), TensorOptions(w.dtype()));
  return r;
}

double rigl_fraction(double alpha, int64_t t, int64_t t_end) {
  if (t >= t_end) return 0.0;
  return alpha / 2 * (1 + std::cos(M_PI * double(t) / double(std::max<int64_t>(t_end, 1))));
}

}  // namespace brisk::pruning
