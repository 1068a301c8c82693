// Reference batched GEMM: C[b] = A[b] @ B[b] with arbitrary strides, the
// textbook triple loop accumulated in double.
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool gemm(const KernelArgs& a) {
  const Tensor &A = a.in[0], &B = a.in[1];
  Tensor& C = a.out[0];
  int64_t nb = A.size(0), M = A.size(1), K = A.size(2), N = B.size(2);
  const T *ap = ptr<T>(A), *bp = ptr<T>(B);
  T* cp = ptr<T>(C);
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += double(ap[b * A.stride(0) + i * A.stride(1) + k * A.stride(2)]) *
               double(bp[b * B.stride(0) + k * B.stride(1) + j * B.stride(2)]);
        cp[(b * M + i) * N + j] = T(s);
      }
  return true;
}

void register_gemm() {
  BRISK_REGISTER_FLOATING("gemm", "ref", backend_priority::ref, gemm);
}

}  // namespace brisk::kern::ref
