// gather / scatter_add along one dim for contiguous tensors (contract in
// core/kernel_params.h): the embedding lookup (index_select on dim 0) and its
// backward. Shapes are viewed as [outer, L, inner] around `dim` (L: the
// index's extent there, Lx: self's). gather splits (outer, l) rows over the
// pool. scatter_add splits (outer, column block) pairs: a thread owns its
// columns of the output and adds the rows in index order, so repeated indices
// (the same token twice in a batch) never race and the sum order does not
// depend on the thread count.
#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

namespace {
struct Split {
  int64_t outer = 1, L = 1, inner = 1;
};
Split split_at(const Shape& s, int64_t dim) {
  Split r;
  for (int64_t d = 0; d < int64_t(s.size()); ++d) {
    if (d < dim) r.outer *= s[size_t(d)];
    else if (d == dim) r.L = s[size_t(d)];
    else r.inner *= s[size_t(d)];
  }
  return r;
}
// The other dims of self/out must match the index's (no broadcasting here).
bool same_other_dims(const Shape& a, const Shape& b, int64_t dim) {
  if (a.size() != b.size()) return false;
  for (size_t d = 0; d < a.size(); ++d)
    if (int64_t(d) != dim && a[d] != b[d]) return false;
  return true;
}
}  // namespace

template <class T>
bool gather(const KernelArgs& a) {
  int64_t dim = static_cast<const DimParams*>(a.params)->dim;
  const Tensor &x = a.in[0], &index = a.in[1];
  if (x.dim() == 0 || !x.is_contiguous() || !same_other_dims(x.shape(), index.shape(), dim)) return false;
  Split s = split_at(index.shape(), dim);
  int64_t Lx = x.size(dim);
  const T* xp = ptr<T>(x);
  const int64_t* ip = ptr<int64_t>(index);
  T* o = ptr<T>(a.out[0]);
  parallel_for(0, s.outer * s.L, rows_per_task(s.inner), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t ou = r / s.L;
      const int64_t* ir = ip + r * s.inner;
      T* orow = o + r * s.inner;
      const T* xb = xp + ou * Lx * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) orow[i] = xb[ir[i] * s.inner + i];
    }
  });
  return true;
}

template <class T>
bool scatter_add(const KernelArgs& a) {
  int64_t dim = static_cast<const DimParams*>(a.params)->dim;
  const Tensor &index = a.in[0], &src = a.in[1];
  Tensor& out = a.out[0];
  if (out.dim() == 0 || !out.is_contiguous() || !same_other_dims(out.shape(), index.shape(), dim)) return false;
  Split s = split_at(index.shape(), dim);
  int64_t Lo = out.size(dim);
  constexpr int64_t kCols = 64;  // columns per task
  int64_t cblocks = (s.inner + kCols - 1) / kCols;
  const int64_t* ip = ptr<int64_t>(index);
  const T* sp = ptr<T>(src);
  T* op = ptr<T>(out);
  parallel_for(0, s.outer * cblocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      int64_t ou = t / cblocks, c0 = (t % cblocks) * kCols, c1 = std::min(s.inner, c0 + kCols);
      T* ob = op + ou * Lo * s.inner;
      for (int64_t l = 0; l < s.L; ++l) {
        int64_t row = (ou * s.L + l) * s.inner;
        for (int64_t i = c0; i < c1; ++i) ob[ip[row + i] * s.inner + i] += sp[row + i];
      }
    }
  });
  return true;
}

void register_index() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("gather", "cpu", P, gather);
  BRISK_REGISTER_FLOATING("scatter_add", "cpu", P, scatter_add);
}

}  // namespace brisk::kern::cpu
