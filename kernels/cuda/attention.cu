// Scaled dot-product attention on CUDA (contract in core/kernel_params.h),
// without the Tq x Tk matrix: the forward gives each query a thread that
// walks its keys with a running max and normalizer (online softmax); the
// backward gives each key a thread for its dK and dV (walking the queries
// that see it) and each query a thread for its dQ, recomputing the
// probabilities from the saved log-sum-exp. Every output element is written
// by one thread, so results are deterministic. Heads of up to kMaxD dims;
// larger ones decline (the composite runs). Correct first: the per-thread
// loops read k and v rows that all threads of a block share through the cache,
// not tiled shared memory. The device kernels index contiguous [B H, T, D]
// slices: strided operands (heads read in place from a packed projection) are
// copied to contiguous ones first, and strided outputs written back after.
#include <span>
#include <vector>

#include "core/autograd.h"
#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxD = 256;

__device__ __forceinline__ int64_t keys_seen(bool causal, int64_t i, int64_t Tq, int64_t Tk) {
  if (!causal) return Tk;
  int64_t n = i + 1 + Tk - Tq;
  return n < 0 ? 0 : n > Tk ? Tk : n;
}

template <class T>
__device__ __forceinline__ T dot(const T* a, const T* b, int64_t D) {
  T s = 0;
  for (int64_t d = 0; d < D; ++d) s += a[d] * b[d];
  return s;
}

// grid (ceil(Tq / kThreads), BH): thread = query i of slice blockIdx.y.
template <class T>
__global__ void attn_fwd_k(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                           T* __restrict__ o, T* __restrict__ lse, int64_t Tq, int64_t Tk, int64_t D, T scale,
                           bool causal) {
  int64_t b = blockIdx.y, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= Tq) return;
  const T *qi = q + (b * Tq + i) * D, *kb = k + b * Tk * D, *vb = v + b * Tk * D;
  T acc[kMaxD];
  for (int64_t d = 0; d < D; ++d) acc[d] = 0;
  T m = -INFINITY, l = 0;
  int64_t n = keys_seen(causal, i, Tq, Tk);
  for (int64_t j = 0; j < n; ++j) {
    T s = dot(qi, kb + j * D, D) * scale;
    T mx = s > m ? s : m;
    T corr = exp(m - mx), p = exp(s - mx);
    l = l * corr + p;
    for (int64_t d = 0; d < D; ++d) acc[d] = acc[d] * corr + p * vb[j * D + d];
    m = mx;
  }
  T inv = l > 0 ? T(1) / l : T(0);
  for (int64_t d = 0; d < D; ++d) o[(b * Tq + i) * D + d] = acc[d] * inv;
  lse[b * Tq + i] = l > 0 ? m + log(l) : T(-INFINITY);
}

// grid (ceil(Tk / kThreads), BH): thread = key j; dV_j and dK_j.
template <class T>
__global__ void attn_bwd_kv_k(const T* __restrict__ go, const T* __restrict__ q, const T* __restrict__ k,
                              const T* __restrict__ v, const T* __restrict__ o, const T* __restrict__ lse,
                              T* __restrict__ gk, T* __restrict__ gv, int64_t Tq, int64_t Tk, int64_t D, T scale,
                              bool causal) {
  int64_t b = blockIdx.y, j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= Tk) return;
  const T *kj = k + (b * Tk + j) * D, *vj = v + (b * Tk + j) * D;
  T dk[kMaxD], dv[kMaxD];
  for (int64_t d = 0; d < D; ++d) dk[d] = dv[d] = 0;
  int64_t i0 = causal ? (j - (Tk - Tq) > 0 ? j - (Tk - Tq) : 0) : 0;  // the first query that sees key j
  for (int64_t i = i0; i < Tq; ++i) {
    const T *qi = q + (b * Tq + i) * D, *gi = go + (b * Tq + i) * D, *oi = o + (b * Tq + i) * D;
    T p = exp(dot(qi, kj, D) * scale - lse[b * Tq + i]);
    T ds = p * (dot(gi, vj, D) - dot(gi, oi, D)) * scale;
    for (int64_t d = 0; d < D; ++d) {
      dv[d] += p * gi[d];
      dk[d] += ds * qi[d];
    }
  }
  for (int64_t d = 0; d < D; ++d) {
    gk[(b * Tk + j) * D + d] = dk[d];
    gv[(b * Tk + j) * D + d] = dv[d];
  }
}

// grid (ceil(Tq / kThreads), BH): thread = query i; dQ_i.
template <class T>
__global__ void attn_bwd_q_k(const T* __restrict__ go, const T* __restrict__ q, const T* __restrict__ k,
                             const T* __restrict__ v, const T* __restrict__ o, const T* __restrict__ lse,
                             T* __restrict__ gq, int64_t Tq, int64_t Tk, int64_t D, T scale, bool causal) {
  int64_t b = blockIdx.y, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= Tq) return;
  const T *qi = q + (b * Tq + i) * D, *gi = go + (b * Tq + i) * D, *oi = o + (b * Tq + i) * D;
  T dq[kMaxD];
  for (int64_t d = 0; d < D; ++d) dq[d] = 0;
  T di = dot(gi, oi, D), li = lse[b * Tq + i];
  int64_t n = keys_seen(causal, i, Tq, Tk);
  for (int64_t j = 0; j < n; ++j) {
    const T *kj = k + (b * Tk + j) * D, *vj = v + (b * Tk + j) * D;
    T p = exp(dot(qi, kj, D) * scale - li);
    T ds = p * (dot(gi, vj, D) - di) * scale;
    for (int64_t d = 0; d < D; ++d) dq[d] += ds * kj[d];
  }
  for (int64_t d = 0; d < D; ++d) gq[(b * Tq + i) * D + d] = dq[d];
}

// The operand as a contiguous [B, H, T, D] (itself, or a device copy).
Tensor dense(const Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }

// Copies the results computed into contiguous stand-ins back into strided outputs.
void write_back(std::span<Tensor> outs, const std::vector<Tensor>& dense_outs) {
  for (size_t i = 0; i < dense_outs.size(); ++i)
    if (dense_outs[i].unsafe_impl() != outs[i].unsafe_impl()) outs[i].copy_(dense_outs[i]);
}

template <class T>
bool attention_fwd(const KernelArgs& a) {
  const auto& p = *static_cast<const AttentionParams*>(a.params);
  const Tensor& qt = a.in[0];
  int64_t BH = qt.size(0) * qt.size(1), Tq = qt.size(2), D = qt.size(3), Tk = a.in[1].size(2);
  if (D > kMaxD || BH > 65535) return false;
  if (BH * Tq == 0) return true;
  NoGradGuard ng;
  Tensor q = dense(a.in[0]), k = dense(a.in[1]), v = dense(a.in[2]), o = dense(a.out[0]);
  dim3 grid(unsigned((Tq + kThreads - 1) / kThreads), unsigned(BH));
  attn_fwd_k<T><<<grid, kThreads, 0, stream()>>>(dptr<T>(q), dptr<T>(k), dptr<T>(v), dptr<T>(o), dptr<T>(a.out[1]),
                                                  Tq, Tk, D, T(p.scale), p.causal);
  BRISK_CUDA_CHECK_LAUNCH();
  write_back(a.out.first(1), {o});
  return true;
}

template <class T>
bool attention_bwd(const KernelArgs& a) {
  const auto& p = *static_cast<const AttentionParams*>(a.params);
  const Tensor& qt = a.in[1];
  int64_t BH = qt.size(0) * qt.size(1), Tq = qt.size(2), D = qt.size(3), Tk = a.in[2].size(2);
  if (D > kMaxD || BH > 65535) return false;
  if (BH * (Tq + Tk) == 0) return true;
  NoGradGuard ng;
  Tensor got = dense(a.in[0]), qd = dense(a.in[1]), kd = dense(a.in[2]), vd = dense(a.in[3]), od = dense(a.in[4]);
  std::vector<Tensor> g{dense(a.out[0]), dense(a.out[1]), dense(a.out[2])};
  const T *go = dptr<T>(got), *q = dptr<T>(qd), *k = dptr<T>(kd), *v = dptr<T>(vd);
  const T *o = dptr<T>(od), *lse = dptr<T>(a.in[5]);
  dim3 gk(unsigned((Tk + kThreads - 1) / kThreads), unsigned(BH)), gq(unsigned((Tq + kThreads - 1) / kThreads), unsigned(BH));
  attn_bwd_kv_k<T><<<gk, kThreads, 0, stream()>>>(go, q, k, v, o, lse, dptr<T>(g[1]), dptr<T>(g[2]), Tq, Tk,
                                                   D, T(p.scale), p.causal);
  BRISK_CUDA_CHECK_LAUNCH();
  attn_bwd_q_k<T><<<gq, kThreads, 0, stream()>>>(go, q, k, v, o, lse, dptr<T>(g[0]), Tq, Tk, D, T(p.scale),
                                                  p.causal);
  BRISK_CUDA_CHECK_LAUNCH();
  write_back(a.out, g);
  return true;
}
}  // namespace

void register_attention() {
  register_cuda<float, double>("attention_fwd", [](auto t) -> KernelFn { return &attention_fwd<typename decltype(t)::type>; });
  register_cuda<float, double>("attention_bwd", [](auto t) -> KernelFn { return &attention_bwd<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
