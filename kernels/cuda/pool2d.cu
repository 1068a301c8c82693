// 2-d pooling on CUDA over contiguous [N, C, H, W]: max, average and adaptive
// average; one thread per output element. The backward kernels scatter with
// atomicAdd into a zeroed gradient, since windows may overlap.
#include "kernels/cuda/common.cuh"
#include "kernels/pool_window.h"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void max_pool_k(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ ind, Geom2d g) {
  BRISK_GRID_LOOP(idx, g.N * g.C * g.Ho * g.Wo) {
    int64_t ow = idx % g.Wo, oh = (idx / g.Wo) % g.Ho, p = idx / (g.Wo * g.Ho);
    T best = -INFINITY;
    int64_t bi = -1;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
        if (h < 0 || h >= g.H || w < 0 || w >= g.W) continue;
        T v = x[(p * g.H + h) * g.W + w];
        if (bi >= 0 && isnan(best)) continue;  // the first NaN wins, as in the ref
        if (bi < 0 || v > best || isnan(v)) {
          best = v;
          bi = h * g.W + w;
        }
      }
    y[idx] = best;
    ind[idx] = bi;
  }
}

template <class T>
__global__ void max_pool_bwd_k(const T* __restrict__ gy, const int64_t* __restrict__ ind, T* __restrict__ gx, Geom2d g) {
  int64_t L = g.Ho * g.Wo;
  BRISK_GRID_LOOP(idx, g.N * g.C * L) {
    int64_t p = idx / L, k = ind[idx];
    if (k >= 0) atomicAdd(&gx[p * g.H * g.W + k], gy[idx]);
  }
}

template <class T>
__global__ void avg_pool_k(const T* __restrict__ x, T* __restrict__ y, Geom2d g, bool adaptive) {
  BRISK_GRID_LOOP(idx, g.N * g.C * g.Ho * g.Wo) {
    int64_t ow = idx % g.Wo, oh = (idx / g.Wo) % g.Ho, p = idx / (g.Wo * g.Ho);
    AvgWindow w = avg_window(g, oh, ow, adaptive);
    T s = 0;
    for (int64_t h = w.h0; h < w.h1; ++h)
      for (int64_t c = w.w0; c < w.w1; ++c) s += x[(p * g.H + h) * g.W + c];
    y[idx] = s / T(w.div);
  }
}

template <class T>
__global__ void avg_pool_bwd_k(const T* __restrict__ gy, T* __restrict__ gx, Geom2d g, bool adaptive) {
  BRISK_GRID_LOOP(idx, g.N * g.C * g.Ho * g.Wo) {
    int64_t ow = idx % g.Wo, oh = (idx / g.Wo) % g.Ho, p = idx / (g.Wo * g.Ho);
    AvgWindow w = avg_window(g, oh, ow, adaptive);
    T v = gy[idx] / T(w.div);
    for (int64_t h = w.h0; h < w.h1; ++h)
      for (int64_t c = w.w0; c < w.w1; ++c) atomicAdd(&gx[(p * g.H + h) * g.W + c], v);
  }
}
const Geom2d& geom(const KernelArgs& a) { return *static_cast<const Geom2d*>(a.params); }
template <class T>
bool max_pool2d(const KernelArgs& a) {
  const Geom2d& g = geom(a);
  int64_t n = g.N * g.C * g.Ho * g.Wo;
  if (n == 0) return true;
  max_pool_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(a.out[0]),
                                                                   dptr<int64_t>(a.out[1]), g);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

template <class T>
bool max_pool2d_backward(const KernelArgs& a) {
  const Geom2d& g = geom(a);
  T* gx = dptr<T>(a.out[0]);
  BRISK_CUDA_CHECK(cudaMemsetAsync(gx, 0, size_t(a.out[0].numel()) * sizeof(T), stream()));
  int64_t n = g.N * g.C * g.Ho * g.Wo;
  if (n == 0) return true;
  max_pool_bwd_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<int64_t>(a.in[1]), gx, g);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

template <class T, bool Adaptive>
bool avg_pool2d(const KernelArgs& a) {
  const Geom2d& g = geom(a);
  int64_t n = g.N * g.C * g.Ho * g.Wo;
  if (n == 0) return true;
  avg_pool_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(a.out[0]), g, Adaptive);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

template <class T, bool Adaptive>
bool avg_pool2d_backward(const KernelArgs& a) {
  const Geom2d& g = geom(a);
  T* gx = dptr<T>(a.out[0]);
  BRISK_CUDA_CHECK(cudaMemsetAsync(gx, 0, size_t(a.out[0].numel()) * sizeof(T), stream()));
  int64_t n = g.N * g.C * g.Ho * g.Wo;
  if (n == 0) return true;
  avg_pool_bwd_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), gx, g, Adaptive);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
}  // namespace

void register_pool2d() {
  #define BRISK_CUDA_REG(op, ...) register_cuda<float, double>(op, [](auto t) -> KernelFn { return &__VA_ARGS__; })
  BRISK_CUDA_REG("max_pool2d", max_pool2d<typename decltype(t)::type>);
  BRISK_CUDA_REG("max_pool2d_backward", max_pool2d_backward<typename decltype(t)::type>);
  BRISK_CUDA_REG("avg_pool2d", avg_pool2d<typename decltype(t)::type, false>);
  BRISK_CUDA_REG("avg_pool2d_backward", avg_pool2d_backward<typename decltype(t)::type, false>);
  BRISK_CUDA_REG("adaptive_avg_pool2d", avg_pool2d<typename decltype(t)::type, true>);
  BRISK_CUDA_REG("adaptive_avg_pool2d_backward", avg_pool2d_backward<typename decltype(t)::type, true>);
#undef BRISK_CUDA_REG
}

}  // namespace brisk::kern::cuda
