// Fused batch norm (training mode) for the CPU: one thread per channel block,
// two passes over the channel's N x L values (mean, then centered variance,
// which is more accurate than E[x^2] - E[x]^2), then a fused normalize+affine.
// The backward makes one pass for the two sums and one for gx.
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool batch_norm_fwd(const KernelArgs& a) {
  T eps = T(static_cast<const BatchNormParams*>(a.params)->eps);
  const Tensor& x = a.in[0];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  const T *xp = ptr<T>(x), *w = ptr<T>(a.in[1]), *b = ptr<T>(a.in[2]);
  T *y = ptr<T>(a.out[0]), *mean = ptr<T>(a.out[1]), *invstd = ptr<T>(a.out[2]);
  T M = T(N * L);
  parallel_for(0, C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      T s = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* row = xp + (n * C + c) * L;
        T rs = 0;
        for (int64_t l = 0; l < L; ++l) rs += row[l];
        s += rs;
      }
      T mu = s / M, ss = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* row = xp + (n * C + c) * L;
        T rs = 0;
        for (int64_t l = 0; l < L; ++l) rs += (row[l] - mu) * (row[l] - mu);
        ss += rs;
      }
      T is = T(1) / std::sqrt(ss / M + eps);
      mean[c] = mu;
      invstd[c] = is;
      T scale = is * w[c], shift = b[c] - mu * scale;
      for (int64_t n = 0; n < N; ++n) {
        const T* row = xp + (n * C + c) * L;
        T* out = y + (n * C + c) * L;
        for (int64_t l = 0; l < L; ++l) out[l] = row[l] * scale + shift;
      }
    }
  });
  return true;
}

template <class T>
bool batch_norm_bwd(const KernelArgs& a) {
  const Tensor& x = a.in[1];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  const T *gy = ptr<T>(a.in[0]), *xp = ptr<T>(x), *mean = ptr<T>(a.in[2]), *invstd = ptr<T>(a.in[3]),
          *w = ptr<T>(a.in[4]);
  T *gx = ptr<T>(a.out[0]), *gw = ptr<T>(a.out[1]), *gb = ptr<T>(a.out[2]);
  T M = T(N * L);
  parallel_for(0, C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      T mu = mean[c], is = invstd[c], sg = 0, sgc = 0;  // sum(gy), sum(gy * (x - mu))
      for (int64_t n = 0; n < N; ++n) {
        const T *g = gy + (n * C + c) * L, *row = xp + (n * C + c) * L;
        T r1 = 0, r2 = 0;
        for (int64_t l = 0; l < L; ++l) {
          r1 += g[l];
          r2 += g[l] * (row[l] - mu);
        }
        sg += r1;
        sgc += r2;
      }
      T sgx = sgc * is;  // sum(gy * xhat)
      gb[c] = sg;
      gw[c] = sgx;
      // gx = k (gy - sg/M - xhat sgx/M), with k = w invstd
      T k = w[c] * is, mg = sg / M, q = sgx * is / M;
      for (int64_t n = 0; n < N; ++n) {
        const T *g = gy + (n * C + c) * L, *row = xp + (n * C + c) * L;
        T* out = gx + (n * C + c) * L;
        for (int64_t l = 0; l < L; ++l) out[l] = k * (g[l] - mg - (row[l] - mu) * q);
      }
    }
  });
  return true;
}

void register_batch_norm() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("batch_norm_fwd", "cpu", P, batch_norm_fwd);
  BRISK_REGISTER_FLOATING("batch_norm_bwd", "cpu", P, batch_norm_bwd);
}

}  // namespace brisk::kern::cpu
