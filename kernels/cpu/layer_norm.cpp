// Optimized layer norm over rows of x [M, K] (contract in core/kernel_params.h).
// Forward and the input gradient split rows across threads; each row is done
// by one thread with 16-lane partial sums (vectorizes, fixed order), mean
// first, then the centred variance (as the ref). The weight and bias
// gradients are column sums: threads own column blocks and walk the rows in
// order, so no two threads write one value and results do not depend on the
// thread count.
#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/row_sum.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

namespace {
constexpr int64_t kElems = 16384;  // elements per task

// sum_k (x[k] - mu)^2 with 16 partial sums.
template <class T>
T centred_sq_sum(const T* x, int64_t K, T mu) {
  constexpr int L = 16;
  T acc[L] = {};
  int64_t k = 0;
  for (; k + L <= K; k += L)
    for (int l = 0; l < L; ++l) acc[l] += (x[k + l] - mu) * (x[k + l] - mu);
  T s = 0;
  for (int l = 0; l < L; ++l) s += acc[l];
  for (; k < K; ++k) s += (x[k] - mu) * (x[k] - mu);
  return s;
}
}  // namespace

template <class T>
bool layer_norm_fwd(const KernelArgs& a) {
  T eps = T(static_cast<const BatchNormParams*>(a.params)->eps);
  int64_t M = a.in[0].size(0), K = a.in[0].size(1);
  const T* xp = ptr<T>(a.in[0]);
  const T* w = a.in[1].defined() ? ptr<T>(a.in[1]) : nullptr;
  const T* b = a.in[2].defined() ? ptr<T>(a.in[2]) : nullptr;
  T *y = ptr<T>(a.out[0]), *mean = ptr<T>(a.out[1]), *rstd = ptr<T>(a.out[2]);
  parallel_for(0, M, rows_per_task(K, kElems), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) {
      const T* row = xp + m * K;
      T* out = y + m * K;
      T mu = row_sum(row, K) / T(K);
      T rs = T(1) / std::sqrt(centred_sq_sum(row, K, mu) / T(K) + eps);
      mean[m] = mu;
      rstd[m] = rs;
      if (w && b)
        for (int64_t k = 0; k < K; ++k) out[k] = (row[k] - mu) * rs * w[k] + b[k];
      else
        for (int64_t k = 0; k < K; ++k) out[k] = (row[k] - mu) * rs * (w ? w[k] : T(1)) + (b ? b[k] : T(0));
    }
  });
  return true;
}

// gx = rstd (gy w - mean(gy w) - xhat mean(gy w xhat)); gw = sum_m gy xhat; gb = sum_m gy.
// [M, K] rows; the row sums in 16-lane partials as in the forward.
template <class T>
bool layer_norm_bwd(const KernelArgs& a) {
  int64_t M = a.in[1].size(0), K = a.in[1].size(1);
  const T *gy = ptr<T>(a.in[0]), *xp = ptr<T>(a.in[1]), *mean = ptr<T>(a.in[2]), *rstd = ptr<T>(a.in[3]);
  const T* w = a.in[4].defined() ? ptr<T>(a.in[4]) : nullptr;
  T* gx = ptr<T>(a.out[0]);
  parallel_for(0, M, rows_per_task(K, kElems), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) {
      const T *g = gy + m * K, *x = xp + m * K;
      T mu = mean[m], rs = rstd[m];
      // sum_k g w and sum_k g w (x - mu) in 16 partial sums each (a single
      // running sum is a chain of dependent adds that does not vectorize).
      constexpr int L = 16;
      T a1[L] = {}, a2[L] = {};
      int64_t k = 0;
      for (; k + L <= K; k += L)
        for (int l = 0; l < L; ++l) {
          T gwk = g[k + l] * (w ? w[k + l] : T(1));
          a1[l] += gwk;
          a2[l] += gwk * (x[k + l] - mu);
        }
      T s1 = 0, s2 = 0;
      for (int l = 0; l < L; ++l) {
        s1 += a1[l];
        s2 += a2[l];
      }
      for (; k < K; ++k) {
        T gwk = g[k] * (w ? w[k] : T(1));
        s1 += gwk;
        s2 += gwk * (x[k] - mu);
      }
      s1 /= T(K);
      s2 = s2 * rs / T(K);
      T* o = gx + m * K;
      for (int64_t k = 0; k < K; ++k) o[k] = rs * (g[k] * (w ? w[k] : T(1)) - s1 - (x[k] - mu) * rs * s2);
    }
  });
  T* gw = a.out[1].defined() ? ptr<T>(a.out[1]) : nullptr;
  T* gb = a.out[2].defined() ? ptr<T>(a.out[2]) : nullptr;
  if (!gw && !gb) return true;
  constexpr int64_t kCols = 64;  // a column block: 64 running sums stay in registers / L1
  parallel_for(0, (K + kCols - 1) / kCols, rows_per_task(M * kCols, kElems),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t blk = lo; blk < hi; ++blk) {
                   int64_t k0 = blk * kCols, k1 = std::min(K, k0 + kCols);
                   T sw[kCols] = {}, sb[kCols] = {};
                   for (int64_t m = 0; m < M; ++m) {
                     const T *g = gy + m * K, *x = xp + m * K;
                     T mu = mean[m], rs = rstd[m];
                     for (int64_t k = k0; k < k1; ++k) {
                       sw[k - k0] += g[k] * (x[k] - mu) * rs;
                       sb[k - k0] += g[k];
                     }
                   }
                   for (int64_t k = k0; k < k1; ++k) {
                     if (gw) gw[k] = sw[k - k0];
                     if (gb) gb[k] = sb[k - k0];
                   }
                 }
               });
  return true;
}

void register_layer_norm() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("layer_norm_fwd", "cpu", P, layer_norm_fwd);
  BRISK_REGISTER_FLOATING("layer_norm_bwd", "cpu", P, layer_norm_bwd);
}

}  // namespace brisk::kern::cpu
