// Optimized sums over the rows of [M, K], row- or column-contiguous: each
// output is reduced by one thread in a fixed order, so results are
// bit-identical for any thread count. With round_bf16 each f32 element is
// rounded to bf16 as it is added (the same sums as rounding first).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/thread_pool.h"
#include "kernels/cpu/row_sum.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

namespace {
// Column sums of a column-contiguous [M, K] (x[m + k M], the reduction over a
// contiguous tensor's leading dims): o[m] = sum_k x[m + k M]. Threads split the
// columns in blocks of kCols; each column is summed by one thread over four
// interleaved partial sums (rows k = 0, 1, 2, 3 mod 4, vectorized across the
// block's columns) combined in a fixed order, so the result does not depend
// on the thread count.
template <class T, class F>
void column_sums(const T* x, int64_t M, int64_t K, T* o, F f) {
  constexpr int64_t kCols = 64;
  parallel_for(0, (M + kCols - 1) / kCols, std::max<int64_t>(1, 2048 / std::max<int64_t>(K, 1)),
               [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      int64_t m0 = blk * kCols, w = std::min(kCols, M - m0);
      T acc[4][kCols] = {};
      int64_t k = 0;
      for (; k + 4 <= K; k += 4)
        for (int r = 0; r < 4; ++r) {
          const T* row = x + (k + r) * M + m0;
          for (int64_t j = 0; j < w; ++j) acc[r][j] += f(row[j]);
        }
      for (; k < K; ++k) {
        const T* row = x + k * M + m0;
        for (int64_t j = 0; j < w; ++j) acc[0][j] += f(row[j]);
      }
      for (int64_t j = 0; j < w; ++j) o[m0 + j] = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
    }
  });
}

// f: each element as it is added (Identity, or bf16 rounding for round_bf16).
template <class T, class F>
bool sum_rows(const Tensor& x, T* o, F f) {
  int64_t M = x.size(0), K = x.size(1);
  const T* xp = ptr<T>(x);
  if (x.stride(1) != 1 && K > 1) {  // column-contiguous (core/kernel_params.h)
    if (x.stride(0) != 1) return false;
    column_sums(xp, M, K, o, f);
    return true;
  }
  parallel_for(0, M, rows_per_task(K, 4096), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) o[m] = row_sum(xp + m * K, K, f);
  });
  return true;
}

struct RoundBf16 {
  float operator()(float v) const { return bf16_bits_to_float(float_to_bf16_bits(v)); }
};
}  // namespace

template <class T>
bool reduce(const KernelArgs& a) {
  const auto& rp = *static_cast<const ReduceParams*>(a.params);
  if (rp.op != ReduceOp::sum) return false;  // max/min/argmax: NaN rules live in ref
  if (rp.round_bf16) {
    if constexpr (std::is_same_v<T, float>) return sum_rows(a.in[0], ptr<T>(a.out[0]), RoundBf16{});
    return false;
  }
  return sum_rows(a.in[0], ptr<T>(a.out[0]), Identity{});
}

void register_reduce() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("reduce", "cpu", P, reduce);
}

}  // namespace brisk::kern::cpu
