// im2col and its adjoint col2im on CUDA over contiguous [N, C, H, W]; one
// thread per output element. col2im gathers (no atomics), so it is deterministic.
#include "kernels/cuda/common.cuh"
#include "kernels/pool_window.h"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

// col [N, C*kh*kw, Ho*Wo], row = (c*kh + i)*kw + j.
template <class T>
__global__ void im2col_k(const T* __restrict__ x, T* __restrict__ col, Geom2d g) {
  int64_t L = g.Ho * g.Wo, R = g.C * g.kh * g.kw;
  BRISK_GRID_LOOP(idx, g.N * R * L) {
    int64_t l = idx % L, r = (idx / L) % R, n = idx / (L * R);
    int64_t j = r % g.kw, i = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    int64_t oh = l / g.Wo, ow = l % g.Wo;
    int64_t h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
    col[idx] = (h >= 0 && h < g.H && w >= 0 && w < g.W) ? x[((n * g.C + c) * g.H + h) * g.W + w] : T(0);
  }
}

template <class T>
__global__ void col2im_k(const T* __restrict__ col, T* __restrict__ x, Geom2d g) {
  int64_t L = g.Ho * g.Wo, R = g.C * g.kh * g.kw;
  BRISK_GRID_LOOP(idx, g.N * g.C * g.H * g.W) {
    int64_t w = idx % g.W, h = (idx / g.W) % g.H, c = (idx / (g.W * g.H)) % g.C, n = idx / (g.W * g.H * g.C);
    T s = 0;
    for (int64_t i = 0; i < g.kh; ++i) {
      int64_t th = h + g.ph - i * g.dh;
      if (th < 0 || th % g.sh) continue;
      int64_t oh = th / g.sh;
      if (oh >= g.Ho) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t tw = w + g.pw - j * g.dw;
        if (tw < 0 || tw % g.sw) continue;
        int64_t ow = tw / g.sw;
        if (ow >= g.Wo) continue;
        s += col[(n * R + (c * g.kh + i) * g.kw + j) * L + oh * g.Wo + ow];
      }
    }
    x[idx] = s;
  }
}
const Geom2d& geom(const KernelArgs& a) { return *static_cast<const Geom2d*>(a.params); }

template <class T>
bool im2col(const KernelArgs& a) {
  const Geom2d& g = geom(a);
  int64_t n = g.N * g.C * g.kh * g.kw * g.Ho * g.Wo;
  if (n == 0) return true;
  im2col_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(a.out[0]), g);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

template <class T>
bool col2im(const KernelArgs& a) {
  const Geom2d& g = geom(a);
  int64_t n = g.N * g.C * g.H * g.W;
  if (n == 0) return true;
  col2im_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(a.out[0]), g);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
}  // namespace

void register_im2col() {
  #define BRISK_CUDA_REG(op, ...) register_cuda<float, double>(op, [](auto t) -> KernelFn { return &__VA_ARGS__; })
  BRISK_CUDA_REG("im2col", im2col<typename decltype(t)::type>);
  BRISK_CUDA_REG("col2im", col2im<typename decltype(t)::type>);
#undef BRISK_CUDA_REG
}

}  // namespace brisk::kern::cuda
