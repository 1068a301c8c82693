// Optimized 2-d max pooling, forward and backward: threaded over (n, c)
// planes; each plane is owned by one thread, so the backward's accumulation
// order is fixed. Semantics (NaN wins, padding is -inf) match kernels/cpu/ref.
#include <cmath>
#include <type_traits>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <limits>

#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

// One output of a window that may cross the padding; NaN wins (first NaN).
template <class T>
inline void pool_window_slow(const T* plane, const Geom2d& g, int64_t h0, int64_t w0, T& best, int64_t& bi) {
  best = -std::numeric_limits<T>::infinity();
  bi = -1;
  for (int64_t i = std::max<int64_t>(0, -h0); i < g.kh && h0 + i < g.H; ++i) {
    const T* row = plane + (h0 + i) * g.W;
    for (int64_t j = std::max<int64_t>(0, -w0); j < g.kw && w0 + j < g.W; ++j) {
      T v = row[w0 + j];
      if (bi < 0 || v > best || std::isnan(v)) {
        best = v;
        bi = (h0 + i) * g.W + w0 + j;
        if (std::isnan(v)) return;
      }
    }
  }
}

// The common 2x2 / stride 2 / no padding case. Random activations make a
// branchy max mispredict every other window, so this is branch-free: masked
// selects, 16 windows at a time with AVX-512 for f32, scalar selects
// otherwise. Ties keep the first element in row-major order. A row holding a
// NaN is redone by the generic path (NaN wins, first NaN).
template <class T>
inline int64_t pool_2x2_scalar(const T* r0, const T* r1, int64_t W, int64_t base, int64_t ow0, int64_t Wo, T* yr,
                               int64_t* ir, bool& nan) {
  for (int64_t ow = ow0; ow < Wo; ++ow) {
    T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
    nan |= (a != a) | (b != b) | (c != c) | (d != d);
    bool s1 = b > a, s2 = d > c;
    T m1 = s1 ? b : a, m2 = s2 ? d : c;
    bool s = m2 > m1;
    yr[ow] = s ? m2 : m1;
    ir[ow] = base + 2 * ow + (s ? (s2 ? W + 1 : W) : (s1 ? 1 : 0));
  }
  return Wo;
}

template <class T>
void max_pool_2x2(const T* plane, const Geom2d& g, T* yp, int64_t* ip) {
  for (int64_t oh = 0; oh < g.Ho; ++oh) {
    const T* r0 = plane + 2 * oh * g.W;
    const T* r1 = r0 + g.W;
    T* yr = yp + oh * g.Wo;
    int64_t* ir = ip + oh * g.Wo;
    int64_t base = 2 * oh * g.W, W = g.W, ow = 0;
    bool nan = false;
#ifdef __AVX512F__
    if constexpr (std::is_same_v<T, float>) {
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
      const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      __mmask16 bad = 0;
      for (; ow < g.Wo; ow += 16) {  // masked loads/stores cover the row's tail
        int64_t n = std::min<int64_t>(16, g.Wo - ow);
        __mmask16 m_out = __mmask16((1u << n) - 1);
        __mmask16 m0 = __mmask16((1u << std::min<int64_t>(16, 2 * n)) - 1);
        __mmask16 m1x = __mmask16(2 * n > 16 ? (1u << (2 * n - 16)) - 1 : 0);
        __m512 x0 = _mm512_maskz_loadu_ps(m0, r0 + 2 * ow), x1 = _mm512_maskz_loadu_ps(m1x, r0 + 2 * ow + 16);
        __m512 z0 = _mm512_maskz_loadu_ps(m0, r1 + 2 * ow), z1 = _mm512_maskz_loadu_ps(m1x, r1 + 2 * ow + 16);
        __m512 a = _mm512_permutex2var_ps(x0, even, x1), b = _mm512_permutex2var_ps(x0, odd, x1);
        __m512 c = _mm512_permutex2var_ps(z0, even, z1), d = _mm512_permutex2var_ps(z0, odd, z1);
        bad |= (_mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(c, d, _CMP_UNORD_Q)) & m_out;
        __mmask16 s1 = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ), s2 = _mm512_cmp_ps_mask(d, c, _CMP_GT_OQ);
        __m512 mx1 = _mm512_mask_blend_ps(s1, a, b), mx2 = _mm512_mask_blend_ps(s2, c, d);
        __mmask16 s = _mm512_cmp_ps_mask(mx2, mx1, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(yr + ow, m_out, _mm512_mask_blend_ps(s, mx1, mx2));
        // offset within the window: s1 -> 1; s -> W (+1 if s2)
        __m512i k1 = _mm512_maskz_set1_epi32(s1, 1);
        __m512i k2 = _mm512_add_epi32(_mm512_set1_epi32(int(W)), _mm512_maskz_set1_epi32(s2, 1));
        __m512i k = _mm512_add_epi32(_mm512_mask_blend_epi32(s, k1, k2), lane2);  // + 2 * lane
        __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(k));
        __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(k, 1));
        __m512i off = _mm512_set1_epi64(base + 2 * ow);
        _mm512_mask_storeu_epi64(ir + ow, __mmask8(m_out), _mm512_add_epi64(lo, off));
        _mm512_mask_storeu_epi64(ir + ow + 8, __mmask8(m_out >> 8), _mm512_add_epi64(hi, off));
      }
      nan = bad != 0;
    }
#endif
    pool_2x2_scalar(r0, r1, W, base, ow, g.Wo, yr, ir, nan);
    if (nan)
      for (int64_t o = 0; o < g.Wo; ++o) pool_window_slow(plane, g, 2 * oh, 2 * o, yr[o], ir[o]);
  }
}

template <class T>
bool max_pool2d(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* x = ptr<T>(a.in[0]);
  T* y = ptr<T>(a.out[0]);
  int64_t* idx = ptr<int64_t>(a.out[1]);
  bool two = g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1;
  parallel_for(0, g.N * g.C, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      if (two) {
        max_pool_2x2(x + p * g.H * g.W, g, y + p * g.Ho * g.Wo, idx + p * g.Ho * g.Wo);
        continue;
      }
      const T* plane = x + p * g.H * g.W;
      T* yp = y + p * g.Ho * g.Wo;
      int64_t* ip = idx + p * g.Ho * g.Wo;
      for (int64_t oh = 0; oh < g.Ho; ++oh)
        for (int64_t ow = 0; ow < g.Wo; ++ow) {
          int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw, o = oh * g.Wo + ow;
          if (h0 < 0 || w0 < 0 || h0 + g.kh > g.H || w0 + g.kw > g.W) {
            pool_window_slow(plane, g, h0, w0, yp[o], ip[o]);
            continue;
          }
          // Interior window: branch-light max; fall back only if a NaN is seen.
          const T* base = plane + h0 * g.W + w0;
          T best = base[0];
          int64_t bi = 0;
          bool nan = best != best;
          for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
              T v = base[i * g.W + j];
              nan |= v != v;
              if (v > best) { best = v; bi = i * g.W + j; }
            }
          if (nan) {
            pool_window_slow(plane, g, h0, w0, yp[o], ip[o]);
            continue;
          }
          yp[o] = best;
          ip[o] = h0 * g.W + w0 + bi;
        }
    }
  });
  return true;
}

template <class T>
bool max_pool2d_backward(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* gy = ptr<T>(a.in[0]);
  const int64_t* idx = ptr<int64_t>(a.in[1]);
  T* gx = ptr<T>(a.out[0]);
  int64_t L = g.Ho * g.Wo, HW = g.H * g.W;
  parallel_for(0, g.N * g.C, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      T* plane = gx + p * HW;
      std::fill(plane, plane + HW, T(0));
      for (int64_t l = 0; l < L; ++l)
        if (idx[p * L + l] >= 0) plane[idx[p * L + l]] += gy[p * L + l];
    }
  });
  return true;
}

void register_pool2d() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("max_pool2d", "cpu", P, max_pool2d);
  BRISK_REGISTER_FLOATING("max_pool2d_backward", "cpu", P, max_pool2d_backward);
}

}  // namespace brisk::kern::cpu
