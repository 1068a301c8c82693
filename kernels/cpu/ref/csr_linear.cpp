// Reference CSR sparse-linear kernels (batch-innermost layout, see
// core/kernel_params.h): plain loops, accumulation in double.
#include <algorithm>
#include <vector>

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

// "csr_build": the CSR structure of a mask's nonzero pattern and of its
// transpose (contract in core/kernel_params.h). Within each input row of the
// transpose, outputs ascend: the input gradient sums in a fixed order.
bool csr_build(const KernelArgs& a) {
  const Tensor& m = a.in[0];
  int64_t out = m.size(0), in = m.size(1);
  const float* mp = ptr<float>(m);
  int64_t *rp = ptr<int64_t>(a.out[0]), *cp = ptr<int64_t>(a.out[1]), *fp = ptr<int64_t>(a.out[2]);
  int64_t *rpt = ptr<int64_t>(a.out[3]), *cpt = ptr<int64_t>(a.out[4]), *fpt = ptr<int64_t>(a.out[5]);
  std::fill(rpt, rpt + in + 1, int64_t(0));
  int64_t k = 0;
  rp[0] = 0;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i)
      if (mp[o * in + i] != 0.0f) {
        cp[k] = i;
        fp[k++] = o * in + i;
        rpt[i + 1]++;
      }
    rp[o + 1] = k;
  }
  for (int64_t i = 0; i < in; ++i) rpt[i + 1] += rpt[i];
  std::vector<int64_t> fill(rpt, rpt + in);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t q = rp[o]; q < rp[o + 1]; ++q) {
      int64_t pos = fill[size_t(cp[q])]++;
      cpt[pos] = o;
      fpt[pos] = fp[q];
    }
  return true;
}

void register_csr_linear() {
  register_kernel("csr_build", DeviceType::cpu, DType::f32, "ref", backend_priority::ref, &csr_build);
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("csr_linear", "ref", P, csr_linear);
  BRISK_REGISTER_FLOATING("csr_linear_bwd_weight", "ref", P, csr_linear_bwd_weight);
}

}  // namespace brisk::kern::ref
