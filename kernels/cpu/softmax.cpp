// Optimized softmax (and log-softmax) along K of a contiguous [M, K]: rows are
// split across threads and each row is done by one thread in a fixed order, so
// results are bit-identical for any thread count.
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "kernels/cpu/row_sum.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool softmax(const KernelArgs& a) {
  bool log_form = static_cast<const SoftmaxParams*>(a.params)->log;
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  const T* xp = ptr<T>(x);
  T* o = ptr<T>(a.out[0]);
  parallel_for(0, M, rows_per_task(K, 2048), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) {
      const T* row = xp + m * K;
      T* out = o + m * K;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t k = 0; k < K; ++k) mx = std::max(mx, row[k]);
      for (int64_t k = 0; k < K; ++k) out[k] = std::exp(row[k] - mx);
      T s = row_sum(out, K);
      if (log_form) {
        T ls = std::log(s);
        for (int64_t k = 0; k < K; ++k) out[k] = row[k] - mx - ls;
      } else {
        T inv = T(1) / s;
        for (int64_t k = 0; k < K; ++k) out[k] *= inv;
      }
    }
  });
  return true;
}

void register_softmax() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("softmax", "cpu", P, softmax);
}

}  // namespace brisk::kern::cpu
