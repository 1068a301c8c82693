// Native batched GEMM op. f32 goes to the packed-panel sgemm (gemm/sgemm.h),
// which takes any strides directly. f64 (gradient checks, not training) keeps a
// simple kernel: operands are packed to row-major when their strides are not,
// then each thread owns a block of C's rows and runs a 4-row register-blocked
// loop over cache-sized K and N tiles.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

namespace {

constexpr int64_t kKc = 256;  // K tile: a [kKc, kNc] B tile stays in L2
constexpr int64_t kNc = 512;  // N tile: 4 rows of C tile stay in L1

// Row-major view of a [R, Cc] matrix at p with strides (rs, cs): returns p
// itself when already row-major, else packs into buf.
template <class T>
const T* row_major(const T* p, int64_t R, int64_t Cc, int64_t rs, int64_t cs, std::vector<T>& buf) {
  if (cs == 1 && (rs == Cc || R == 1)) return p;
  buf.resize(size_t(R * Cc));
  T* d = buf.data();
  parallel_for(0, R, rows_per_task(Cc, 16384), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      for (int64_t c = 0; c < Cc; ++c) d[r * Cc + c] = p[r * rs + c * cs];
  });
  return d;
}

template <class T>
void gemm_rows(const T* A, const T* B, T* C, int64_t i0, int64_t i1, int64_t N, int64_t K) {
  for (int64_t i = i0; i < i1; ++i) std::memset(C + i * N, 0, sizeof(T) * size_t(N));
  for (int64_t j0 = 0; j0 < N; j0 += kNc) {
    int64_t nb = std::min(kNc, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      int64_t kb = std::min(kKc, K - k0);
      int64_t i = i0;
      for (; i + 4 <= i1; i += 4) {
        T* c0 = C + i * N + j0;
        T* c1 = c0 + N;
        T* c2 = c1 + N;
        T* c3 = c2 + N;
        for (int64_t k = k0; k < k0 + kb; ++k) {
          T a0 = A[i * K + k], a1 = A[(i + 1) * K + k], a2 = A[(i + 2) * K + k], a3 = A[(i + 3) * K + k];
          const T* b = B + k * N + j0;
          for (int64_t j = 0; j < nb; ++j) {
            T bj = b[j];
            c0[j] += a0 * bj;
            c1[j] += a1 * bj;
            c2[j] += a2 * bj;
            c3[j] += a3 * bj;
          }
        }
      }
      for (; i < i1; ++i) {
        T* c0 = C + i * N + j0;
        for (int64_t k = k0; k < k0 + kb; ++k) {
          T a0 = A[i * K + k];
          const T* b = B + k * N + j0;
          for (int64_t j = 0; j < nb; ++j) c0[j] += a0 * b[j];
        }
      }
    }
  }
}

}  // namespace

template <class T>
bool gemm(const KernelArgs& a) {
  if (a.in.size() > 2 || a.params) return false;  // the epilogue is f32's (gemm_native<float>)
  const Tensor &At = a.in[0], &Bt = a.in[1];
  int64_t nb = At.size(0), M = At.size(1), K = At.size(2), N = Bt.size(2);
  T* C = ptr<T>(a.out[0]);
  std::vector<T> abuf, bbuf;
  for (int64_t b = 0; b < nb; ++b) {
    const T* A = row_major(ptr<T>(At) + b * At.stride(0), M, K, At.stride(1), At.stride(2), abuf);
    const T* B = row_major(ptr<T>(Bt) + b * Bt.stride(0), K, N, Bt.stride(1), Bt.stride(2), bbuf);
    T* Cb = C + b * M * N;
    if (K == 0) {
      std::fill(Cb, Cb + M * N, T(0));
      continue;
    }
    // Grain: enough rows that a task does >= ~64k FMAs.
    int64_t grain = std::max<int64_t>(4, (65536 / std::max<int64_t>(N * K, 1) + 3) / 4 * 4);
    parallel_for(0, M, grain, [&](int64_t lo, int64_t hi) { gemm_rows(A, B, Cb, lo, hi, N, K); });
  }
  return true;
}

// f32, bf16, f16: one sgemm per batch entry (16-bit operands are widened
// while packing and summed in f32; the f32 result is rounded once into a
// 16-bit output); many small problems (attention heads, grouped conv) run one
// per thread instead.
template <class E>
bool gemm_native(const KernelArgs& a) {
  const bool has_ep = a.in.size() > 2 || a.params;
  if (has_ep && !std::is_same_v<E, float>) return false;  // the epilogue is f32's
  const auto* gp = static_cast<const GemmParams*>(a.params);
  GemmEpilogue ep{a.in.size() > 2 && a.in[2].defined() ? ptr<float>(a.in[2]) : nullptr, gp && gp->round_bf16,
                  gp && gp->relu};
  const Tensor &At = a.in[0], &Bt = a.in[1];
  int64_t nb = At.size(0), M = At.size(1), K = At.size(2), N = Bt.size(2);
  const E *ap = ptr<E>(At), *bp = ptr<E>(Bt);
  Tensor acc = std::is_same_v<E, float> ? a.out[0] : empty({nb, M, N}, DType::f32);
  float* C = ptr<float>(acc);
  auto one = [&](int64_t b) {
    if constexpr (std::is_same_v<E, float>)
      sgemm(M, N, K, MatF{ap + b * At.stride(0), At.stride(1), At.stride(2)},
            MatF{bp + b * Bt.stride(0), Bt.stride(1), Bt.stride(2)}, C + b * M * N, N, false, has_ep ? &ep : nullptr);
    else
      sgemm(M, N, K, Mat<E>{ap + b * At.stride(0), At.stride(1), At.stride(2)},
            Mat<E>{bp + b * Bt.stride(0), Bt.stride(1), Bt.stride(2)}, C + b * M * N, N);
  };
  if (nb > 1 && M * N * K < (int64_t(1) << 20))
    parallel_for(0, nb, 1, [&](int64_t lo, int64_t hi) { for (int64_t b = lo; b < hi; ++b) one(b); });
  else
    for (int64_t b = 0; b < nb; ++b) one(b);
  if constexpr (!std::is_same_v<E, float>) {
    E* out = ptr<E>(a.out[0]);
    for (int64_t i = 0; i < nb * M * N; ++i) out[i] = E(C[i]);
  }
  return true;
}

void register_gemm() {
  register_kernel("gemm", DeviceType::cpu, DType::f32, "cpu", backend_priority::native, &gemm_native<float>);
  register_kernel("gemm", DeviceType::cpu, DType::bf16, "cpu", backend_priority::native, &gemm_native<BFloat16>);
  register_kernel("gemm", DeviceType::cpu, DType::f16, "cpu", backend_priority::native, &gemm_native<Half>);
  register_for<double>("gemm", "cpu", backend_priority::native,
      [](auto t) -> KernelFn { return &gemm<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cpu
