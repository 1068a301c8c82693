// Fixed-order row sum shared by the CPU reduce and softmax kernels.
#pragma once
#include <cstdint>

namespace brisk::kern::cpu {

struct Identity {
  template <class T>
  T operator()(T v) const { return v; }
};

// Sum of f(p[k]) with 16 independent accumulators (vectorizes; also more
// accurate than a single running sum), then a fixed-order combine.
template <class T, class F = Identity>
inline T row_sum(const T* p, int64_t K, F f = {}) {
  constexpr int L = 16;
  T acc[L] = {};
  int64_t k = 0;
  for (; k + L <= K; k += L)
    for (int l = 0; l < L; ++l) acc[l] += f(p[k + l]);
  T s = 0;
  for (int l = 0; l < L; ++l) s += acc[l];
  for (; k < K; ++k) s += f(p[k]);
  return s;
}

}  // namespace brisk::kern::cpu
