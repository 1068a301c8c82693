// Threaded fused softmax + cross-entropy over rows of logits [N, C], forward
// and backward: the ref arithmetic (kernels/fused_math.h) split over the pool
// by rows, or for f32 with AVX-512 16 lanes at a time with fast_exp16 (the
// ref's exp is a double library call per logit); the f32 gradient's denormals
// flushed to 0. Each output element is written by one thread, so results do
// not depend on the thread count.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/thread_pool.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/grain.h"
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

#ifdef __AVX512F__
namespace {
// One row of C logits: the loss, log-sum-exp to *lse (fused::xent_row's
// formula; sums in f32 lanes, the log in double).
float xent_row16(const float* x, int64_t C, int64_t t, const CrossEntropyParams& p, float* lse) {
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t c = 0; c < C; c += 16)
    vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, tail_mask16(C - c), x + c));
  float mx = _mm512_reduce_max_ps(vmax);
  __m512 s = _mm512_setzero_ps(), sx = _mm512_setzero_ps(), vm = _mm512_set1_ps(mx);
  for (int64_t c = 0; c < C; c += 16) {
    __mmask16 m = tail_mask16(C - c);
    __m512 v = _mm512_maskz_loadu_ps(m, x + c);
    s = _mm512_mask_add_ps(s, m, s, fast_exp16(_mm512_sub_ps(v, vm)));
    sx = _mm512_add_ps(sx, v);
  }
  double l = double(mx) + std::log(double(_mm512_reduce_add_ps(s)));
  *lse = float(l);
  if (t == p.ignore_index) return 0.0f;
  double eps = p.label_smoothing, mean_x = double(_mm512_reduce_add_ps(sx)) / double(C);
  return float((1 - eps) * (l - double(x[t])) + eps * (l - mean_x));
}

// One row of the gradient: gl (softmax - smoothed one-hot), denormals to 0.
void xent_bwd_row16(const float* x, float lse, int64_t C, int64_t t, float gl, const CrossEntropyParams& p,
                    float* gx) {
  if (t == p.ignore_index) {
    std::fill(gx, gx + C, 0.0f);
    return;
  }
  float eps = float(p.label_smoothing);
  __m512 vl = _mm512_set1_ps(lse), off = _mm512_set1_ps(eps / float(C)), g = _mm512_set1_ps(gl);
  __m512 tiny = _mm512_set1_ps(std::numeric_limits<float>::min());
  for (int64_t c = 0; c < C; c += 16) {
    __mmask16 m = tail_mask16(C - c);
    __m512 v = _mm512_mul_ps(g, _mm512_sub_ps(fast_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + c), vl)), off));
    __mmask16 denormal = _mm512_cmp_ps_mask(_mm512_abs_ps(v), tiny, _CMP_LT_OQ);
    _mm512_mask_storeu_ps(gx + c, m, _mm512_maskz_mov_ps(__mmask16(~denormal), v));
  }
  float gt = gl * (fast_exp(x[t] - lse) - eps / float(C) - (1.0f - eps));
  gx[t] = std::fabs(gt) < std::numeric_limits<float>::min() ? 0.0f : gt;
}
}  // namespace
#endif

template <class T>
bool xent_fwd(const KernelArgs& a) {
  const auto& p = *static_cast<const CrossEntropyParams*>(a.params);
  int64_t N = a.in[0].size(0), C = a.in[0].size(1);
  const T* x = ptr<T>(a.in[0]);
  const int64_t* t = ptr<int64_t>(a.in[1]);
  T *loss = ptr<T>(a.out[0]), *lse = ptr<T>(a.out[1]);
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    parallel_for(0, N, rows_per_task(C), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) loss[i] = xent_row16(x + i * C, C, t[i], p, lse + i);
    });
    return true;
  }
#endif
  parallel_for(0, N, rows_per_task(C), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) loss[i] = fused::xent_row(x + i * C, C, t[i], p, lse + i);
  });
  return true;
}

template <class T>
bool xent_bwd(const KernelArgs& a) {
  const auto& p = *static_cast<const CrossEntropyParams*>(a.params);
  int64_t N = a.in[0].size(0), C = a.in[0].size(1);
  const T *x = ptr<T>(a.in[0]), *lse = ptr<T>(a.in[1]), *gl = ptr<T>(a.in[3]);
  const int64_t* t = ptr<int64_t>(a.in[2]);
  T* gx = ptr<T>(a.out[0]);
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    parallel_for(0, N, rows_per_task(C), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) xent_bwd_row16(x + i * C, lse[i], C, t[i], gl[i], p, gx + i * C);
    });
    return true;
  }
#endif
  parallel_for(0, N, rows_per_task(C), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T* row = gx + i * C;
      fused::xent_bwd_row(x + i * C, lse[i], C, t[i], gl[i], p, row);
      // Denormal gradients (the classes a confident model gives < 1e-38 after
      // the 1/N of the mean) become 0: the head's backward GEMMs would take a
      // microcode assist for each, and their size is below any f32 sum's
      // resolution.
      if constexpr (std::is_same_v<T, float>)
        for (int64_t c = 0; c < C; ++c) row[c] = std::fabs(row[c]) < std::numeric_limits<float>::min() ? 0.0f : row[c];
    }
  });
  return true;
}

void register_cross_entropy() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("cross_entropy_fwd", "cpu", P, xent_fwd);
  BRISK_REGISTER_FLOATING("cross_entropy_bwd", "cpu", P, xent_bwd);
}

}  // namespace brisk::kern::cpu
