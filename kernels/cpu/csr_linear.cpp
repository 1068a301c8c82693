// Optimized CSR sparse-linear kernels. With the batch innermost, every stored
// weight is an AXPY (forward; the input gradient is the forward kernel on the
// transposed CSR) or a dot product (weight gradient) over B contiguous
// values, which the compiler vectorizes. Both split their output rows across
// threads, so no two threads write the same value and every sum runs in a
// fixed order.
#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool csr_linear(const KernelArgs& a) {
  int64_t B = a.in[0].size(1), out = a.in[1].numel() - 1;
  const T* x = ptr<T>(a.in[0]);
  const int64_t *rp = ptr<int64_t>(a.in[1]), *col = ptr<int64_t>(a.in[2]);
  const T* val = ptr<T>(a.in[3]);
  T* y = ptr<T>(a.out[0]);
  parallel_for(0, out, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      T* yr = y + o * B;
      std::fill(yr, yr + B, T(0));
      for (int64_t k = rp[o]; k < rp[o + 1]; ++k) {
        const T* xr = x + col[k] * B;
        T v = val[k];
        for (int64_t b = 0; b < B; ++b) yr[b] += v * xr[b];
      }
    }
  });
  return true;
}

template <class T>
bool csr_linear_bwd_weight(const KernelArgs& a) {
  int64_t out = a.in[0].size(0), B = a.in[0].size(1);
  const T *g = ptr<T>(a.in[0]), *x = ptr<T>(a.in[1]);
  const int64_t *rp = ptr<int64_t>(a.in[2]), *col = ptr<int64_t>(a.in[3]);
  T* dv = ptr<T>(a.out[0]);
  parallel_for(0, out, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      const T* gr = g + o * B;
      for (int64_t k = rp[o]; k < rp[o + 1]; ++k) {
        const T* xr = x + col[k] * B;
        // 16 independent partial sums: the compiler vectorizes lanes (a single
        // float accumulator would be a serial FMA chain: no reassociation
        // without -ffast-math), and the sum order is still fixed.
        constexpr int64_t V = 16;
        T acc[V] = {};
        int64_t b = 0;
        for (; b + V <= B; b += V)
          for (int64_t j = 0; j < V; ++j) acc[j] += gr[b + j] * xr[b + j];
        T s = 0;
        for (; b < B; ++b) s += gr[b] * xr[b];
        for (int64_t j = 0; j < V; ++j) s += acc[j];
        dv[k] = s;
      }
    }
  });
  return true;
}

void register_csr_linear() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("csr_linear", "cpu", P, csr_linear);
  BRISK_REGISTER_FLOATING("csr_linear_bwd_weight", "cpu", P, csr_linear_bwd_weight);
}

}  // namespace brisk::kern::cpu
