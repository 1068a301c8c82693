// Layer norm, forward and backward, on CUDA: one block per row of x [M, K]; the
// weight/bias gradients are column sums done by a second kernel.
#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

// Layer norm over rows of x [M, K]; w, b may be null (no affine).
template <class T>
__global__ void ln_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y,
                       T* __restrict__ mean, T* __restrict__ rstd, int64_t K, T eps) {
  const T* row = x + int64_t(blockIdx.x) * K;
  T* out = y + int64_t(blockIdx.x) * K;
  T s = 0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) s += row[k];
  T mu = block_reduce(s, SumOp{}, T(0)) / T(K);
  T ss = 0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) ss += (row[k] - mu) * (row[k] - mu);
  T rs = T(1) / sqrt(block_reduce(ss, SumOp{}, T(0)) / T(K) + eps);
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = mu;
    rstd[blockIdx.x] = rs;
  }
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x)
    out[k] = (row[k] - mu) * rs * (w ? w[k] : T(1)) + (b ? b[k] : T(0));
}

// gx = rstd (gy w - mean(gy w) - xhat mean(gy w xhat)), per row.
template <class T>
__global__ void ln_bwd_x(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ mean,
                         const T* __restrict__ rstd, const T* __restrict__ w, T* __restrict__ gx, int64_t K) {
  int64_t m = blockIdx.x;
  const T *g = gy + m * K, *row = x + m * K;
  T mu = mean[m], rs = rstd[m], s1 = 0, s2 = 0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    T gw = g[k] * (w ? w[k] : T(1));
    s1 += gw;
    s2 += gw * (row[k] - mu) * rs;
  }
  s1 = block_reduce(s1, SumOp{}, T(0)) / T(K);
  s2 = block_reduce(s2, SumOp{}, T(0)) / T(K);
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x)
    gx[m * K + k] = rs * (g[k] * (w ? w[k] : T(1)) - s1 - (row[k] - mu) * rs * s2);
}

// gw[k] = sum_m gy xhat, gb[k] = sum_m gy: one thread per column (coalesced across k).
template <class T>
__global__ void ln_bwd_wb(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ mean,
                          const T* __restrict__ rstd, T* __restrict__ gw, T* __restrict__ gb, int64_t M, int64_t K) {
  BRISK_GRID_LOOP(k, K) {
    T sw = 0, sb = 0;
    for (int64_t m = 0; m < M; ++m) {
      T g = gy[m * K + k];
      sw += g * (x[m * K + k] - mean[m]) * rstd[m];
      sb += g;
    }
    if (gw) gw[k] = sw;
    if (gb) gb[k] = sb;
  }
}

template <class T>
const T* opt_ptr(const Tensor& t) { return t.defined() ? dptr<T>(t) : nullptr; }

template <class T>
bool layer_norm_fwd(const KernelArgs& a) {
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  if (M == 0) return true;
  ln_fwd<T><<<unsigned(M), row_threads(K), 0, stream()>>>(dptr<T>(x), opt_ptr<T>(a.in[1]), opt_ptr<T>(a.in[2]),
                                                          dptr<T>(a.out[0]), dptr<T>(a.out[1]), dptr<T>(a.out[2]), K,
                                                          T(static_cast<const BatchNormParams*>(a.params)->eps));
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

template <class T>
bool layer_norm_bwd(const KernelArgs& a) {
  const Tensor& x = a.in[1];
  int64_t M = x.size(0), K = x.size(1);
  if (M == 0) return true;
  ln_bwd_x<T><<<unsigned(M), row_threads(K), 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(x), dptr<T>(a.in[2]),
                                                            dptr<T>(a.in[3]), opt_ptr<T>(a.in[4]), dptr<T>(a.out[0]), K);
  BRISK_CUDA_CHECK_LAUNCH();
  T* gw = a.out[1].defined() ? dptr<T>(a.out[1]) : nullptr;
  T* gb = a.out[2].defined() ? dptr<T>(a.out[2]) : nullptr;
  if (gw || gb) {
    ln_bwd_wb<T><<<grid_for(K, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(x), dptr<T>(a.in[2]),
                                                                   dptr<T>(a.in[3]), gw, gb, M, K);
    BRISK_CUDA_CHECK_LAUNCH();
  }
  return true;
}

}  // namespace

void register_layer_norm() {
  register_cuda<float, double>("layer_norm_fwd", [](auto t) -> KernelFn { return &layer_norm_fwd<typename decltype(t)::type>; });
  register_cuda<float, double>("layer_norm_bwd", [](auto t) -> KernelFn { return &layer_norm_bwd<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
