// Batch norm (training statistics), forward and backward, on CUDA: one block per
// channel over x [N, C, L], two passes (mean, then centred sum of squares, as
// the ref).
#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void bn_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y,
                       T* __restrict__ mean, T* __restrict__ invstd, int64_t N, int64_t C, int64_t L, T eps) {
  int64_t c = blockIdx.x, M = N * L;
  auto at = [&](int64_t i) { return ((i / L) * C + c) * L + i % L; };
  T s = 0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) s += x[at(i)];
  T mu = block_reduce(s, SumOp{}, T(0)) / T(M);
  T ss = 0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    T d = x[at(i)] - mu;
    ss += d * d;
  }
  T is = T(1) / sqrt(block_reduce(ss, SumOp{}, T(0)) / T(M) + eps);
  if (threadIdx.x == 0) {
    mean[c] = mu;
    invstd[c] = is;
  }
  T wc = w[c], bc = b[c];
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    int64_t j = at(i);
    y[j] = (x[j] - mu) * is * wc + bc;
  }
}

// gx = w invstd / M (M gy - sum gy - xhat sum(gy xhat)); gw = sum(gy xhat); gb = sum gy.
template <class T>
__global__ void bn_bwd(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ mean,
                       const T* __restrict__ invstd, const T* __restrict__ w, T* __restrict__ gx, T* __restrict__ gw,
                       T* __restrict__ gb, int64_t N, int64_t C, int64_t L) {
  int64_t c = blockIdx.x, M = N * L;
  auto at = [&](int64_t i) { return ((i / L) * C + c) * L + i % L; };
  T mu = mean[c], is = invstd[c], sg = 0, sgx = 0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    int64_t j = at(i);
    sg += gy[j];
    sgx += gy[j] * (x[j] - mu) * is;
  }
  sg = block_reduce(sg, SumOp{}, T(0));
  sgx = block_reduce(sgx, SumOp{}, T(0));
  if (threadIdx.x == 0) {
    gb[c] = sg;
    gw[c] = sgx;
  }
  T k = w[c] * is / T(M);
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    int64_t j = at(i);
    gx[j] = k * (T(M) * gy[j] - sg - (x[j] - mu) * is * sgx);
  }
}

template <class T>
bool batch_norm_fwd(const KernelArgs& a) {
  const Tensor& x = a.in[0];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  if (C == 0) return true;
  bn_fwd<T><<<unsigned(C), kThreads, 0, stream()>>>(dptr<T>(x), dptr<T>(a.in[1]), dptr<T>(a.in[2]), dptr<T>(a.out[0]),
                                                    dptr<T>(a.out[1]), dptr<T>(a.out[2]), N, C, L,
                                                    T(static_cast<const BatchNormParams*>(a.params)->eps));
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

template <class T>
bool batch_norm_bwd(const KernelArgs& a) {
  const Tensor& x = a.in[1];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  if (C == 0) return true;
  bn_bwd<T><<<unsigned(C), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(x), dptr<T>(a.in[2]), dptr<T>(a.in[3]),
                                                    dptr<T>(a.in[4]), dptr<T>(a.out[0]), dptr<T>(a.out[1]),
                                                    dptr<T>(a.out[2]), N, C, L);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
}  // namespace

void register_batch_norm() {
  register_cuda<float, double>("batch_norm_fwd", [](auto t) -> KernelFn { return &batch_norm_fwd<typename decltype(t)::type>; });
  register_cuda<float, double>("batch_norm_bwd", [](auto t) -> KernelFn { return &batch_norm_bwd<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
