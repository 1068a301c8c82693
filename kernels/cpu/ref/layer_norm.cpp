// Reference fused layer norm over rows, forward and backward, in double.
#include <vector>
#include <cmath>

#include "kernels/strided.h"

namespace brisk::kern::ref {

// Layer norm over rows of x [M, K] (contract in core/kernel_params.h).
template <class T>
bool layer_norm_fwd(const KernelArgs& a) {
  double eps = static_cast<const BatchNormParams*>(a.params)->eps;
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  const T* xp = ptr<T>(x);
  const T* w = a.in[1].defined() ? ptr<T>(a.in[1]) : nullptr;
  const T* b = a.in[2].defined() ? ptr<T>(a.in[2]) : nullptr;
  T *y = ptr<T>(a.out[0]), *mean = ptr<T>(a.out[1]), *rstd = ptr<T>(a.out[2]);
  for (int64_t m = 0; m < M; ++m) {
    const T* row = xp + m * K;
    double s = 0, ss = 0;
    for (int64_t k = 0; k < K; ++k) s += double(row[k]);
    double mu = s / double(K);
    for (int64_t k = 0; k < K; ++k) ss += (double(row[k]) - mu) * (double(row[k]) - mu);
    double rs = 1.0 / std::sqrt(ss / double(K) + eps);
    mean[m] = T(mu);
    rstd[m] = T(rs);
    for (int64_t k = 0; k < K; ++k)
      y[m * K + k] = T((double(row[k]) - mu) * rs * (w ? double(w[k]) : 1.0) + (b ? double(b[k]) : 0.0));
  }
  return true;
}

// gx = rstd (gy w - mean(gy w) - xhat mean(gy w xhat)); gw = sum_m gy xhat; gb = sum_m gy.
template <class T>
bool layer_norm_bwd(const KernelArgs& a) {
  const Tensor& x = a.in[1];
  int64_t M = x.size(0), K = x.size(1);
  const T *gy = ptr<T>(a.in[0]), *xp = ptr<T>(x), *mean = ptr<T>(a.in[2]), *rstd = ptr<T>(a.in[3]);
  const T* w = a.in[4].defined() ? ptr<T>(a.in[4]) : nullptr;
  T* gx = ptr<T>(a.out[0]);
  std::vector<double> gw(size_t(K), 0.0), gb(size_t(K), 0.0);
  for (int64_t m = 0; m < M; ++m) {
    double mu = double(mean[m]), rs = double(rstd[m]), s1 = 0, s2 = 0;
    for (int64_t k = 0; k < K; ++k) {
      double g = double(gy[m * K + k]), xh = (double(xp[m * K + k]) - mu) * rs;
      double gwk = g * (w ? double(w[k]) : 1.0);
      s1 += gwk;
      s2 += gwk * xh;
      gw[size_t(k)] += g * xh;
      gb[size_t(k)] += g;
    }
    s1 /= double(K);
    s2 /= double(K);
    for (int64_t k = 0; k < K; ++k) {
      double xh = (double(xp[m * K + k]) - mu) * rs;
      gx[m * K + k] = T(rs * (double(gy[m * K + k]) * (w ? double(w[k]) : 1.0) - s1 - xh * s2));
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    if (a.out[1].defined()) ptr<T>(a.out[1])[k] = T(gw[size_t(k)]);
    if (a.out[2].defined()) ptr<T>(a.out[2])[k] = T(gb[size_t(k)]);
  }
  return true;
}

void register_layer_norm() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("layer_norm_fwd", "ref", P, layer_norm_fwd);
  BRISK_REGISTER_FLOATING("layer_norm_bwd", "ref", P, layer_norm_bwd);
}

}  // namespace brisk::kern::ref
