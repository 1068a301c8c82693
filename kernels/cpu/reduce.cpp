// Optimized row reductions over a contiguous [M, K]: rows are split across
// threads, each row is reduced by one thread in a fixed order, so results are
// bit-identical for any thread count.
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "kernels/cpu/row_sum.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool reduce(const KernelArgs& a) {
  auto op = static_cast<const ReduceParams*>(a.params)->op;
  if (op != ReduceOp::sum) return false;  // max/min/argmax: NaN rules live in ref
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  const T* xp = ptr<T>(x);
  T* o = ptr<T>(a.out[0]);
  parallel_for(0, M, rows_per_task(K, 4096), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) o[m] = row_sum(xp + m * K, K);
  });
  return true;
}

void register_reduce() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("reduce", "cpu", P, reduce);
}

}  // namespace brisk::kern::cpu
