// Reference CSR sparse-linear kernels (batch-innermost layout, see
// core/kernel_params.h): plain loops, accumulation in double.
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool csr_linear(const KernelArgs& a) {
  int64_t B = a.in[0].size(1), out = a.in[1].numel() - 1;
  const T* x = ptr<T>(a.in[0]);
  const int64_t *rp = ptr<int64_t>(a.in[1]), *col = ptr<int64_t>(a.in[2]);
  const T* val = ptr<T>(a.in[3]);
  T* y = ptr<T>(a.out[0]);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t b = 0; b < B; ++b) {
      double s = 0;
      for (int64_t k = rp[o]; k < rp[o + 1]; ++k) s += double(val[k]) * double(x[col[k] * B + b]);
      y[o * B + b] = T(s);
    }
  return true;
}

template <class T>
bool csr_linear_bwd_weight(const KernelArgs& a) {
  int64_t out = a.in[0].size(0), B = a.in[0].size(1);
  const T *g = ptr<T>(a.in[0]), *x = ptr<T>(a.in[1]);
  const int64_t *rp = ptr<int64_t>(a.in[2]), *col = ptr<int64_t>(a.in[3]);
  T* dv = ptr<T>(a.out[0]);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t k = rp[o]; k < rp[o + 1]; ++k) {
      double s = 0;
      for (int64_t b = 0; b < B; ++b) s += double(g[o * B + b]) * double(x[col[k] * B + b]);
      dv[k] = T(s);
    }
  return true;
}

void register_sparse() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("csr_linear", "ref", P, csr_linear);
  BRISK_REGISTER_FLOATING("csr_linear_bwd_weight", "ref", P, csr_linear_bwd_weight);
}

}  // namespace brisk::kern::ref
