// Optimized row reductions and softmax: rows are split across threads, each
// row is reduced by one thread in a fixed order, so results are bit-identical
// for a given thread count (in fact for any thread count).
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

// Sum with 16 independent accumulators (vectorizes; also more accurate than a
// single running sum), then a fixed-order combine.
template <class T>
inline T row_sum(const T* p, int64_t K) {
  constexpr int L = 16;
  T acc[L] = {};
  int64_t k = 0;
  for (; k + L <= K; k += L)
    for (int l = 0; l < L; ++l) acc[l] += p[k + l];
  T s = 0;
  for (int l = 0; l < L; ++l) s += acc[l];
  for (; k < K; ++k) s += p[k];
  return s;
}

template <class T>
bool reduce(const KernelArgs& a) {
  auto op = static_cast<const ReduceParams*>(a.params)->op;
  if (op != ReduceOp::sum) return false;  // max/min/argmax: NaN rules live in ref
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  const T* xp = ptr<T>(x);
  T* o = ptr<T>(a.out[0]);
  parallel_for(0, M, std::max<int64_t>(1, 4096 / std::max<int64_t>(K, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) o[m] = row_sum(xp + m * K, K);
  });
  return true;
}

template <class T>
bool softmax(const KernelArgs& a) {
  bool log_form = static_cast<const SoftmaxParams*>(a.params)->log;
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  const T* xp = ptr<T>(x);
  T* o = ptr<T>(a.out[0]);
  parallel_for(0, M, std::max<int64_t>(1, 2048 / std::max<int64_t>(K, 1)), [&](int64_t lo, int64_t hi) {
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

void register_reduce() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("reduce", "cpu", P, reduce);
  BRISK_REGISTER_FLOATING("softmax", "cpu", P, softmax);
}

}  // namespace brisk::kern::cpu
