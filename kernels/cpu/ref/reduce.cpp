// Reference reductions (sum, max, min, argmax) over the rows of [M, K], any
// strides (row- or column-contiguous, core/kernel_params.h).
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool reduce(const KernelArgs& a) {
  const auto& rp = *static_cast<const ReduceParams*>(a.params);
  auto op = rp.op;
  if (rp.round_bf16 && !(std::is_same_v<T, float> && op == ReduceOp::sum)) return false;
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1), sm = x.stride(0), sk = x.stride(1);
  const T* xp = ptr<T>(x);
  for (int64_t m = 0; m < M; ++m) {
    auto row = [&, base = xp + m * sm](int64_t k) { return base[k * sk]; };
    if (op == ReduceOp::sum) {
      double s = 0;  // f64 accumulator: the oracle is as exact as we can cheaply be
      if constexpr (std::is_same_v<T, float>)
        if (rp.round_bf16) {
          for (int64_t k = 0; k < K; ++k) s += double(bf16_bits_to_float(float_to_bf16_bits(row(k))));
          ptr<T>(a.out[0])[m] = T(s);
          continue;
        }
      for (int64_t k = 0; k < K; ++k) s += double(row(k));
      ptr<T>(a.out[0])[m] = T(s);
    } else if (op == ReduceOp::argmax) {
      int64_t best = 0;
      for (int64_t k = 1; k < K; ++k) {
        if constexpr (std::is_floating_point_v<T>)
          if (std::isnan(row(best))) break;  // first NaN wins, like torch
        if (row(k) > row(best) || (std::is_floating_point_v<T> && std::isnan(double(row(k))))) best = k;
      }
      ptr<int64_t>(a.out[0])[m] = best;
    } else {
      bool is_max = op == ReduceOp::max;
      T best = row(0);
      for (int64_t k = 1; k < K; ++k) {
        if constexpr (std::is_floating_point_v<T>)
          if (std::isnan(best)) break;  // NaN propagates
        T v = row(k);
        if ((is_max ? v > best : v < best) || (std::is_floating_point_v<T> && std::isnan(double(v))))
          best = v;
      }
      ptr<T>(a.out[0])[m] = best;
    }
  }
  return true;
}

void register_reduce() {
  constexpr int P = backend_priority::ref;
  register_for<float, double, int32_t, int64_t, uint8_t>("reduce", "ref", P,
      [](auto tag) -> KernelFn { return &reduce<typename decltype(tag)::type>; });
}

}  // namespace brisk::kern::ref
