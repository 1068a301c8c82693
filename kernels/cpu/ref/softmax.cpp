// Reference softmax (and log-softmax) along K of a contiguous [M, K].
#include <cmath>
#include <limits>

#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool softmax(const KernelArgs& a) {
  bool log_form = static_cast<const SoftmaxParams*>(a.params)->log;
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  const T* xp = ptr<T>(x);
  T* o = ptr<T>(a.out[0]);
  for (int64_t m = 0; m < M; ++m) {
    const T* row = xp + m * K;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, double(row[k]));
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += std::exp(double(row[k]) - mx);
    double ls = std::log(s);
    for (int64_t k = 0; k < K; ++k) {
      double z = double(row[k]) - mx;
      o[m * K + k] = T(log_form ? z - ls : std::exp(z) / s);
    }
  }
  return true;
}

void register_softmax() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("softmax", "ref", P, softmax);
}

}  // namespace brisk::kern::ref
