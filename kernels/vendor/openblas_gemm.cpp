// OpenBLAS as a vendor backend for GEMM (f32/f64). It claims only calls where
// each operand has a unit stride in one inner dim (so no packing is needed) and
// the problem is big enough for BLAS to win; everything else falls through to
// the native kernel.
#include <cblas.h>

#include "core/thread_pool.h"
#include "kernels/strided.h"

extern "C" void openblas_set_num_threads(int);

namespace brisk {

namespace kern::vendor {

// Layout of an inner [R, Cc] matrix with strides (rs, cs) as BLAS sees it.
static bool blas_layout(int64_t R, int64_t Cc, int64_t rs, int64_t cs, CBLAS_TRANSPOSE& tr, int64_t& ld) {
  if (cs == 1 && (rs >= std::max<int64_t>(Cc, 1) || R == 1)) { tr = CblasNoTrans; ld = std::max<int64_t>(rs, Cc); return true; }
  if (rs == 1 && (cs >= std::max<int64_t>(R, 1) || Cc == 1)) { tr = CblasTrans; ld = std::max<int64_t>(cs, R); return true; }
  return false;
}

template <class T>
bool gemm(const KernelArgs& a) {
  if (a.in.size() > 2 || a.params) return false;  // no epilogue here (core/kernel_params.h)
  const Tensor &A = a.in[0], &B = a.in[1];
  int64_t nb = A.size(0), M = A.size(1), K = A.size(2), N = B.size(2);
  if (M * N * K < 32 * 32 * 32 || K == 0) return false;  // too small: call overhead dominates
  // Inside one of brisk's parallel regions the cores are taken: OpenBLAS
  // would start its own threads on top. The native kernel runs serially there.
  if (in_parallel_region()) return false;
  CBLAS_TRANSPOSE ta, tb;
  int64_t lda, ldb;
  if (!blas_layout(M, K, A.stride(1), A.stride(2), ta, lda)) return false;
  if (!blas_layout(K, N, B.stride(1), B.stride(2), tb, ldb)) return false;
  T* C = ptr<T>(a.out[0]);
  park_workers();  // OpenBLAS's threads get the cores; brisk's stop spinning
  for (int64_t b = 0; b < nb; ++b) {
    const T* ap = ptr<T>(A) + b * A.stride(0);
    const T* bp = ptr<T>(B) + b * B.stride(0);
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, int(M), int(N), int(K), 1.0f, ap, int(lda), bp, int(ldb), 0.0f,
                  C + b * M * N, int(N));
    else
      cblas_dgemm(CblasRowMajor, ta, tb, int(M), int(N), int(K), 1.0, ap, int(lda), bp, int(ldb), 0.0,
                  C + b * M * N, int(N));
  }
  return true;
}

}  // namespace kern::vendor

void register_vendor_kernels() {
  kern::register_for<float, double>("gemm", "openblas", backend_priority::vendor,
      [](auto t) -> KernelFn { return &kern::vendor::gemm<typename decltype(t)::type>; });
}

void vendor_set_num_threads(int n) { openblas_set_num_threads(n); }

}  // namespace brisk
