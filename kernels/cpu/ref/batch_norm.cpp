// Reference fused batch norm (training mode), forward and backward, in double.
#include <vector>
#include <cmath>

#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool batch_norm_fwd(const KernelArgs& a) {
  double eps = static_cast<const BatchNormParams*>(a.params)->eps;
  const Tensor& x = a.in[0];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  const T *xp = ptr<T>(x), *w = ptr<T>(a.in[1]), *b = ptr<T>(a.in[2]);
  T *y = ptr<T>(a.out[0]), *mean = ptr<T>(a.out[1]), *invstd = ptr<T>(a.out[2]);
  double M = double(N * L);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0, ss = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) s += double(xp[(n * C + c) * L + l]);
    double mu = s / M;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        double d = double(xp[(n * C + c) * L + l]) - mu;
        ss += d * d;
      }
    double is = 1.0 / std::sqrt(ss / M + eps);
    mean[c] = T(mu);
    invstd[c] = T(is);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        int64_t i = (n * C + c) * L + l;
        y[i] = T((double(xp[i]) - mu) * is * double(w[c]) + double(b[c]));
      }
  }
  return true;
}

template <class T>
bool batch_norm_bwd(const KernelArgs& a) {
  const Tensor& x = a.in[1];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  const T *gy = ptr<T>(a.in[0]), *xp = ptr<T>(x), *mean = ptr<T>(a.in[2]), *invstd = ptr<T>(a.in[3]),
          *w = ptr<T>(a.in[4]);
  T *gx = ptr<T>(a.out[0]), *gw = ptr<T>(a.out[1]), *gb = ptr<T>(a.out[2]);
  double M = double(N * L);
  for (int64_t c = 0; c < C; ++c) {
    double sg = 0, sgx = 0, mu = double(mean[c]), is = double(invstd[c]);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        int64_t i = (n * C + c) * L + l;
        sg += double(gy[i]);
        sgx += double(gy[i]) * (double(xp[i]) - mu) * is;
      }
    gb[c] = T(sg);
    gw[c] = T(sgx);
    // gx = w * invstd / M * (M gy - sum(gy) - xhat * sum(gy xhat))
    double k = double(w[c]) * is / M;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        int64_t i = (n * C + c) * L + l;
        double xh = (double(xp[i]) - mu) * is;
        gx[i] = T(k * (M * double(gy[i]) - sg - xh * sgx));
      }
  }
  return true;
}

void register_batch_norm() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("batch_norm_fwd", "ref", P, batch_norm_fwd);
  BRISK_REGISTER_FLOATING("batch_norm_bwd", "ref", P, batch_norm_bwd);
}

}  // namespace brisk::kern::ref
