// Fused softmax + cross-entropy on CUDA, forward and backward: one block per row
// of logits [N, C] (row_lse.cuh).
#include <cfloat>

#include "kernels/cuda/row_lse.cuh"

namespace brisk::kern::cuda {

namespace {

// loss_i = lse_i - (1-eps) x[i,t_i] - eps mean_c x[i,c]; 0 on ignored rows.
template <class T>
__global__ void ce_fwd(const T* __restrict__ x, const int64_t* __restrict__ t, T* __restrict__ loss,
                       T* __restrict__ lse_out, int64_t C, int64_t ignore, T eps) {
  const T* row = x + int64_t(blockIdx.x) * C;
  T mx, lse;
  row_lse(row, C, mx, lse);
  T s = 0;
  if (eps != T(0)) {
    for (int64_t k = threadIdx.x; k < C; k += blockDim.x) s += row[k];
    s = block_reduce(s, SumOp{}, T(0));
  }
  if (threadIdx.x == 0) {
    int64_t ti = t[blockIdx.x];
    lse_out[blockIdx.x] = lse;
    loss[blockIdx.x] = ti == ignore ? T(0) : lse - (T(1) - eps) * row[ti] - eps * s / T(C);
  }
}

// glogits = gloss_i (softmax(x_i) - (1-eps) onehot(t_i) - eps/C); 0 on ignored rows.
template <class T>
__global__ void ce_bwd(const T* __restrict__ x, const T* __restrict__ lse, const int64_t* __restrict__ t,
                       const T* __restrict__ gloss, T* __restrict__ gx, int64_t C, int64_t ignore, T eps) {
  int64_t i = blockIdx.x;
  const T* row = x + i * C;
  T* g = gx + i * C;
  int64_t ti = t[i];
  T gl = gloss[i], l = lse[i];
  for (int64_t k = threadIdx.x; k < C; k += blockDim.x)
    g[k] = ti == ignore ? T(0) : gl * (exp(row[k] - l) - (k == ti ? T(1) - eps : T(0)) - eps / T(C));
}

template <class T>
bool cross_entropy_fwd(const KernelArgs& a) {
  auto* p = static_cast<const CrossEntropyParams*>(a.params);
  const Tensor& x = a.in[0];
  int64_t N = x.size(0), C = x.size(1);
  if (N == 0) return true;
  ce_fwd<T><<<unsigned(N), row_threads(C), 0, stream()>>>(dptr<T>(x), dptr<int64_t>(a.in[1]), dptr<T>(a.out[0]),
                                                          dptr<T>(a.out[1]), C, p->ignore_index, T(p->label_smoothing));
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

template <class T>
bool cross_entropy_bwd(const KernelArgs& a) {
  auto* p = static_cast<const CrossEntropyParams*>(a.params);
  const Tensor& x = a.in[0];
  int64_t N = x.size(0), C = x.size(1);
  if (N == 0) return true;
  ce_bwd<T><<<unsigned(N), row_threads(C), 0, stream()>>>(dptr<T>(x), dptr<T>(a.in[1]), dptr<int64_t>(a.in[2]),
                                                          dptr<T>(a.in[3]), dptr<T>(a.out[0]), C, p->ignore_index,
                                                          T(p->label_smoothing));
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
}  // namespace

void register_cross_entropy() {
  auto fp = [](const char* op, auto make) { register_cuda<float, double>(op, make); };
  fp("cross_entropy_fwd", [](auto t) -> KernelFn { return &cross_entropy_fwd<typename decltype(t)::type>; });
  fp("cross_entropy_bwd", [](auto t) -> KernelFn { return &cross_entropy_bwd<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
