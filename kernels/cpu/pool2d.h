// The 2x2 / stride 2 max pool of one plane, shared by the max_pool2d kernel
// and the fused conv2d + max-pool forward (kernels/cpu/conv2d.cpp), which
// pools each sample's output planes while they are still in cache.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <cstring>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "core/kernel_params.h"

namespace brisk::kern::cpu {

// Whether g is the 2x2 / stride 2 / unpadded pool the functions below handle.
inline bool is_pool_2x2(const Geom2d& g) {
  return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1;
}

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
// selects, 16 windows at a time with AVX-512 for f32 (8 with AVX2), scalar
// selects otherwise. Ties keep the first element in row-major order. A row holding a
// NaN is redone by the generic path (NaN wins, first NaN).
//
// Index forms (I): int64_t, max_pool2d's index into the plane (h * W + w);
// uint8_t, the window code of the fused conv + pool (kernels/cpu/conv2d.cpp):
// 2 * (row in the window) + (column in the window), one byte instead of
// eight to write forward and read back.
template <class I>
inline I window_index(int64_t base, int64_t W, int64_t ow, int dy, int dx) {
  if constexpr (std::is_same_v<I, uint8_t>)
    return uint8_t(2 * dy + dx);
  else
    return base + 2 * ow + dy * W + dx;
}
template <class T, class I>
inline int64_t pool_2x2_scalar(const T* r0, const T* r1, int64_t W, int64_t base, int64_t ow0, int64_t Wo, T* yr,
                               I* ir, bool& nan) {
  for (int64_t ow = ow0; ow < Wo; ++ow) {
    T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
    nan |= (a != a) | (b != b) | (c != c) | (d != d);
    bool s1 = b > a, s2 = d > c;
    T m1 = s1 ? b : a, m2 = s2 ? d : c;
    bool s = m2 > m1;
    yr[ow] = s ? m2 : m1;
    ir[ow] = window_index<I>(base, W, ow, s ? 1 : 0, s ? int(s2) : int(s1));
  }
  return Wo;
}

// (Also compiled where AVX-512 is on: conv2d_winograd.cpp runs these AVX2 helpers on either.)
#if defined(__AVX2__)
// AVX2 has no mask registers: a row's tail goes through maskload/maskstore
// with lane masks read from this table (k all-ones lanes, then zeros).
alignas(64) inline constexpr int32_t kLaneMaskTable[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                           -1, -1, -1, -1, -1, 0,  0,  0,  0,  0,  0,
                                                           0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
#ifdef __AVX512F__
// The first n of 16 lanes (none for n <= 0, all for n >= 16).
inline __mmask16 first_lanes16(int64_t n) { return __mmask16(n <= 0 ? 0 : n >= 16 ? 0xffff : (1u << n) - 1); }
#endif
inline __m256i lane_mask8(int64_t k) {  // the first k (0..8) of 8 lanes
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMaskTable + 16 - k));
}
// The even and odd elements of 16 consecutive floats (x0: elements 0-7, x1: 8-15).
inline void deinterleave8(__m256 x0, __m256 x1, __m256& even, __m256& odd) {
  // within 128-bit halves: x0_0 x0_2 x1_0 x1_2 | x0_4 x0_6 x1_4 x1_6; then 64-bit pieces 0, 2, 1, 3
  even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x0, x1, 0x88)), 0xd8));
  odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x0, x1, 0xdd)), 0xd8));
}
// n <= 8 bytes from p into the low bytes of a vector (the rest zero), and back.
inline __m128i load_bytes8(const uint8_t* p, int64_t n) {
  uint64_t v = 0;
  if (n == 8) std::memcpy(&v, p, 8);  // one load, not a memcpy call
  else std::memcpy(&v, p, size_t(n));
  return _mm_cvtsi64_si128(int64_t(v));
}
inline void store_bytes8(uint8_t* p, __m128i v, int64_t n) {
  uint64_t b = uint64_t(_mm_cvtsi128_si64(v));
  if (n == 8) std::memcpy(p, &b, 8);
  else std::memcpy(p, &b, size_t(n));
}
// 8 int32 lanes (each in -128..127) narrowed to 8 bytes in the low half.
inline __m128i narrow8_epi32(__m256i v) {
  __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_packs_epi16(w, w);
}
// One 2x2 window per lane, its values y[2 * dy + dx], pooled in registers
// by max_pool_2x2's rule: the first NaN in row-major order, else the first
// maximum, and its code 2 * dy + dx; then, with relu, v > 0 ? v : 0 and
// code 4 where v was not above 0 (relu_pooled's rule). The fused conv + pool
// forwards that never form the full-size output use it.
inline void pool_window4(const __m256 (&y)[4], bool relu, __m256& best, __m256i& code) {
  best = y[0];
  code = _mm256_setzero_si256();
  for (int i = 1; i < 4; ++i) {  // take y[i] where greater, or where it is the first NaN
    __m256 take = _mm256_or_ps(_mm256_cmp_ps(y[i], best, _CMP_GT_OQ),
                               _mm256_andnot_ps(_mm256_cmp_ps(best, best, _CMP_UNORD_Q),
                                                _mm256_cmp_ps(y[i], y[i], _CMP_UNORD_Q)));
    best = _mm256_blendv_ps(best, y[i], take);
    code = _mm256_blendv_epi8(code, _mm256_set1_epi32(i), _mm256_castps_si256(take));
  }
  if (relu) {
    __m256 live = _mm256_cmp_ps(best, _mm256_setzero_ps(), _CMP_GT_OQ);
    best = _mm256_and_ps(live, best);
    code = _mm256_blendv_epi8(_mm256_set1_epi32(4), code, _mm256_castps_si256(live));
  }
}
// pool_window4's 8 windows at yp + at and code + at, n of them (1..8) in
// the row: whole vectors where at + 8 <= end (the lanes past the row fall
// on later rows, which the caller writes after), else only the n, lane by
// lane: no vmaskmovps (AMD microcodes its stores; the fused first layer
// ends every band of every channel here) and no call (a memcpy call here
// made the compiler spill the callers' live registers in their inner loops:
// a third of the fused first layer's time).
inline void store_pooled8(float* yp, uint8_t* code, int64_t at, int64_t n, int64_t end, __m256 best, __m256i k) {
  __m128i k8 = narrow8_epi32(k);
  if (at + 8 <= end) {
    _mm256_storeu_ps(yp + at, best);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(code + at), k8);
  } else {
    alignas(32) float v[8];
    _mm256_store_ps(v, best);
    uint64_t b = uint64_t(_mm_cvtsi128_si64(k8));
    for (int64_t i = 0; i < n; ++i, b >>= 8) yp[at + i] = v[i], code[at + i] = uint8_t(b);
  }
}
#endif

// Room past a plane's end that a pool function may use, in elements: `in`
// more may be read after its input plane, `out` more overwritten after its
// output plane, with values the caller writes again later (the next plane
// of the same buffer, in order) or never reads. The AVX2 paths then load and
// store whole vectors at a row's tail where they would mask: AMD microcodes
// vmaskmovps stores, and the cnn's rows are 7 and 14 windows long.
struct PoolSlack {
  int64_t in = 0, out = 0;
};
// The slack after a scratch buffer of pool planes: a row's tail reads or
// writes at most 16 floats from within the last row.
inline constexpr int64_t kPoolSlack = 16;

template <class T, class I = int64_t>
void max_pool_2x2(const T* plane, const Geom2d& g, T* yp, I* ip, PoolSlack slack = {}) {
  [[maybe_unused]] const T* in_end = plane + g.H * g.W + slack.in;  // readable up to here
  [[maybe_unused]] const T* y_end = yp + g.Ho * g.Wo + slack.out;   // writable up to here (y and ip alike)
  for (int64_t oh = 0; oh < g.Ho; ++oh) {
    const T* r0 = plane + 2 * oh * g.W;
    const T* r1 = r0 + g.W;
    T* yr = yp + oh * g.Wo;
    I* ir = ip + oh * g.Wo;
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
        // offset within the window: s1 -> 1; s -> W (+1 if s2); codes: s1 -> 1; s -> 2 (+1 if s2)
        __m512i k1 = _mm512_maskz_set1_epi32(s1, 1);
        if constexpr (std::is_same_v<I, uint8_t>) {
          __m512i k2 = _mm512_add_epi32(_mm512_set1_epi32(2), _mm512_maskz_set1_epi32(s2, 1));
          _mm_mask_storeu_epi8(ir + ow, m_out, _mm512_cvtepi32_epi8(_mm512_mask_blend_epi32(s, k1, k2)));
        } else {
          __m512i k2 = _mm512_add_epi32(_mm512_set1_epi32(int(W)), _mm512_maskz_set1_epi32(s2, 1));
          __m512i k = _mm512_add_epi32(_mm512_mask_blend_epi32(s, k1, k2), lane2);  // + 2 * lane
          __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(k));
          __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(k, 1));
          __m512i off = _mm512_set1_epi64(base + 2 * ow);
          _mm512_mask_storeu_epi64(ir + ow, __mmask8(m_out), _mm512_add_epi64(lo, off));
          _mm512_mask_storeu_epi64(ir + ow + 8, __mmask8(m_out >> 8), _mm512_add_epi64(hi, off));
        }
      }
      nan = bad != 0;
    }
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<T, float>) {
      const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), one = _mm256_set1_epi32(1);
      __m256 bad = _mm256_setzero_ps();
      // A row's tail: whole vectors where the slack allows (for window codes;
      // the lanes past the row compute garbage that lands in the slack or in
      // the next row, written after), masked otherwise (masked-off lanes load 0).
      constexpr bool codes = std::is_same_v<I, uint8_t>;
      for (; ow < g.Wo; ow += 8) {
        int64_t n = std::min<int64_t>(8, g.Wo - ow);
        bool whole_out = n == 8 || (codes && yr + ow + 8 <= y_end);
        __m256 x0, x1, z0, z1;
        if (n == 8 || (codes && r1 + 2 * ow + 16 <= in_end)) {
          x0 = _mm256_loadu_ps(r0 + 2 * ow), x1 = _mm256_loadu_ps(r0 + 2 * ow + 8);
          z0 = _mm256_loadu_ps(r1 + 2 * ow), z1 = _mm256_loadu_ps(r1 + 2 * ow + 8);
        } else {
          __m256i m0 = lane_mask8(std::min<int64_t>(8, 2 * n)), m1 = lane_mask8(std::max<int64_t>(0, 2 * n - 8));
          x0 = _mm256_maskload_ps(r0 + 2 * ow, m0), x1 = _mm256_maskload_ps(r0 + 2 * ow + 8, m1);
          z0 = _mm256_maskload_ps(r1 + 2 * ow, m0), z1 = _mm256_maskload_ps(r1 + 2 * ow + 8, m1);
        }
        __m256 a, b, c, d;
        deinterleave8(x0, x1, a, b);
        deinterleave8(z0, z1, c, d);
        __m256 unord = _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q), _mm256_cmp_ps(c, d, _CMP_UNORD_Q));
        bad = _mm256_or_ps(bad, n == 8 ? unord : _mm256_and_ps(unord, _mm256_castsi256_ps(lane_mask8(n))));
        __m256 s1 = _mm256_cmp_ps(b, a, _CMP_GT_OQ), s2 = _mm256_cmp_ps(d, c, _CMP_GT_OQ);
        __m256 mx1 = _mm256_blendv_ps(a, b, s1), mx2 = _mm256_blendv_ps(c, d, s2);
        __m256 s = _mm256_cmp_ps(mx2, mx1, _CMP_GT_OQ), v = _mm256_blendv_ps(mx1, mx2, s);
        __m256i m_out = lane_mask8(n);
        if (whole_out) _mm256_storeu_ps(yr + ow, v);
        else _mm256_maskstore_ps(yr + ow, m_out, v);
        // offset within the window: s1 -> 1; s -> W (+1 if s2); codes: s1 -> 1; s -> 2 (+1 if s2)
        __m256i k1 = _mm256_and_si256(_mm256_castps_si256(s1), one);
        __m256i k2 = _mm256_add_epi32(_mm256_set1_epi32(std::is_same_v<I, uint8_t> ? 2 : int(W)),
                                      _mm256_and_si256(_mm256_castps_si256(s2), one));
        __m256i k = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(k1), _mm256_castsi256_ps(k2), s));
        if constexpr (std::is_same_v<I, uint8_t>) {
          store_bytes8(ir + ow, narrow8_epi32(k), whole_out ? 8 : n);
        } else {
          k = _mm256_add_epi32(k, lane2);  // + 2 * lane
          __m256i off = _mm256_set1_epi64x(base + 2 * ow);
          __m256i lo = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(k)), off);
          __m256i hi = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(k, 1)), off);
          _mm256_maskstore_epi64(reinterpret_cast<long long*>(ir + ow),
                                 _mm256_cvtepi32_epi64(_mm256_castsi256_si128(m_out)), lo);
          _mm256_maskstore_epi64(reinterpret_cast<long long*>(ir + ow + 4),
                                 _mm256_cvtepi32_epi64(_mm256_extracti128_si256(m_out, 1)), hi);
        }
      }
      nan = _mm256_movemask_ps(bad) != 0;
    }
#endif
    pool_2x2_scalar(r0, r1, W, base, ow, g.Wo, yr, ir, nan);
    if (nan)
      for (int64_t o = 0; o < g.Wo; ++o) {
        int64_t bi;
        pool_window_slow(plane, g, 2 * oh, 2 * o, yr[o], bi);
        int64_t at = bi - base - 2 * o;  // 0, 1, W or W + 1: every window is whole
        ir[o] = window_index<I>(base, W, o, at >= W ? 1 : 0, int(at >= W ? at - W : at));
      }
  }
}

#ifdef __AVX512F__
// n <= 16 windows' gradients at window positions (0, 0), (0, 1), (1, 0), (1, 1)
// -> rows r0 and r1 (2n values each, the pairs interleaved).
inline void store_windows16(__m512 a, __m512 b, __m512 c, __m512 d, int64_t n, float* r0, float* r1) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  // 2n values per row: the first 16 from lanes 0-7, the next from lanes 8-15
  __mmask16 s0 = __mmask16((1u << std::min<int64_t>(16, 2 * n)) - 1);
  __mmask16 s1 = __mmask16(2 * n > 16 ? (1u << (2 * n - 16)) - 1 : 0);
  _mm512_mask_storeu_ps(r0, s0, _mm512_permutex2var_ps(a, lo, b));
  _mm512_mask_storeu_ps(r0 + 16, s1, _mm512_permutex2var_ps(a, hi, b));
  _mm512_mask_storeu_ps(r1, s0, _mm512_permutex2var_ps(c, lo, d));
  _mm512_mask_storeu_ps(r1 + 16, s1, _mm512_permutex2var_ps(c, hi, d));
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// n <= 8 windows' gradients at window positions (0, 0), (0, 1), (1, 0), (1, 1)
// -> rows r0 and r1 (2n values each, the pairs interleaved). whole0 / whole1:
// all 16 floats may be written at r0 / r1 (the caller's slack), not just 2n.
inline void store_windows8(__m256 a, __m256 b, __m256 c, __m256 d, int64_t n, float* r0, float* r1,
                           bool whole0 = false, bool whole1 = false) {
  // unpack: a0 b0 a1 b1 | a4 b4 a5 b5 and a2 b2 a3 b3 | a6 b6 a7 b7; then the halves in order
  __m256 ab0 = _mm256_unpacklo_ps(a, b), ab1 = _mm256_unpackhi_ps(a, b);
  __m256 cd0 = _mm256_unpacklo_ps(c, d), cd1 = _mm256_unpackhi_ps(c, d);
  __m256 p0 = _mm256_permute2f128_ps(ab0, ab1, 0x20), p1 = _mm256_permute2f128_ps(ab0, ab1, 0x31);
  __m256 q0 = _mm256_permute2f128_ps(cd0, cd1, 0x20), q1 = _mm256_permute2f128_ps(cd0, cd1, 0x31);
  __m256i m0 = lane_mask8(std::min<int64_t>(8, 2 * n)), m1 = lane_mask8(std::max<int64_t>(0, 2 * n - 8));
  if (n == 8 || whole0) _mm256_storeu_ps(r0, p0), _mm256_storeu_ps(r0 + 8, p1);
  else _mm256_maskstore_ps(r0, m0, p0), _mm256_maskstore_ps(r0 + 8, m1, p1);
  if (n == 8 || whole1) _mm256_storeu_ps(r1, q0), _mm256_storeu_ps(r1 + 8, q1);
  else _mm256_maskstore_ps(r1, m0, q0), _mm256_maskstore_ps(r1 + 8, m1, q1);
}
#endif

// The backward of max_pool_2x2 for one plane: each 2x2 window's four
// gradients written in one streaming pass (the gradient at the window's
// argmax, zeros elsewhere; a last odd row or column gets zeros), instead of
// zero-filling the plane and scattering into it. Returns false, having
// written nothing certain, when an index lies outside its window (indices
// not from max_pool_2x2): the caller then runs the generic scatter.
template <class T>
bool max_pool_2x2_backward(const T* gy, const int64_t* ip, const Geom2d& g, T* plane) {
  const int64_t W = g.W;
  for (int64_t oh = 0; oh < g.Ho; ++oh) {
    T* r0 = plane + 2 * oh * W;
    T* r1 = r0 + W;
    const T* gr = gy + oh * g.Wo;
    const int64_t* ir = ip + oh * g.Wo;
    const int64_t base = 2 * oh * W;
    int64_t ow = 0;
#ifdef __AVX512F__
    if constexpr (std::is_same_v<T, float>) {
      const __m512i lane2 = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
      __mmask16 bad = 0;
      for (; ow < g.Wo; ow += 16) {
        int64_t n = std::min<int64_t>(16, g.Wo - ow);
        __mmask16 m = __mmask16((1u << n) - 1);
        __m512 gv = _mm512_maskz_loadu_ps(m, gr + ow);
        // offset within the window: idx - (base + 2 * ow + 2 * lane) in {0, 1, W, W + 1}
        __m512i start = _mm512_add_epi64(_mm512_set1_epi64(base + 2 * ow), lane2);
        __m512i o0 = _mm512_sub_epi64(_mm512_maskz_loadu_epi64(__mmask8(m), ir + ow), start);
        __m512i o1 = _mm512_sub_epi64(_mm512_maskz_loadu_epi64(__mmask8(m >> 8), ir + ow + 8),
                                      _mm512_add_epi64(start, _mm512_set1_epi64(16)));
        __m512i off = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(o0)),
                                         _mm512_cvtepi64_epi32(o1), 1);
        __mmask16 k0 = _mm512_cmpeq_epi32_mask(off, _mm512_setzero_si512());
        __mmask16 k1 = _mm512_cmpeq_epi32_mask(off, _mm512_set1_epi32(1));
        __mmask16 k2 = _mm512_cmpeq_epi32_mask(off, _mm512_set1_epi32(int(W)));
        __mmask16 k3 = _mm512_cmpeq_epi32_mask(off, _mm512_set1_epi32(int(W + 1)));
        // in [0, W + 1] before the 32-bit narrowing (unsigned: a negative offset is huge)
        const __m512i top = _mm512_set1_epi64(W + 1);
        __mmask16 in = __mmask16(_mm512_cmple_epu64_mask(o0, top) | (_mm512_cmple_epu64_mask(o1, top) << 8));
        bad |= __mmask16(m & ~((k0 | k1 | k2 | k3) & in));
        store_windows16(_mm512_maskz_mov_ps(k0, gv), _mm512_maskz_mov_ps(k1, gv), _mm512_maskz_mov_ps(k2, gv),
                        _mm512_maskz_mov_ps(k3, gv), n, r0 + 2 * ow, r1 + 2 * ow);
      }
      if (bad) return false;
      ow = g.Wo;
    }
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<T, float>) {
      const __m256i lane2 = _mm256_setr_epi64x(0, 2, 4, 6), pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
      int bad = 0;
      for (; ow < g.Wo; ow += 8) {
        int64_t n = std::min<int64_t>(8, g.Wo - ow);
        __m256i m = lane_mask8(n);
        __m256 gv = _mm256_maskload_ps(gr + ow, m);
        // offset within the window: idx - (base + 2 * ow + 2 * lane), 64-bit (so exact), 4 lanes at a time
        __m256i start = _mm256_add_epi64(_mm256_set1_epi64x(base + 2 * ow), lane2);
        const long long* il = reinterpret_cast<const long long*>(ir + ow);
        __m256i o0 = _mm256_sub_epi64(
            _mm256_maskload_epi64(il, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(m))), start);
        __m256i o1 = _mm256_sub_epi64(
            _mm256_maskload_epi64(il + 4, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(m, 1))),
            _mm256_add_epi64(start, _mm256_set1_epi64x(8)));
        auto is = [&](int64_t v) {  // 8 lanes of 32-bit masks: offset == v
          __m256i e0 = _mm256_cmpeq_epi64(o0, _mm256_set1_epi64x(v)), e1 = _mm256_cmpeq_epi64(o1, _mm256_set1_epi64x(v));
          return _mm256_castsi256_ps(_mm256_blend_epi32(_mm256_permutevar8x32_epi32(e0, pick),
                                                        _mm256_permutevar8x32_epi32(e1, pick), 0xf0));
        };
        __m256 k0 = is(0), k1 = is(1), k2 = is(W), k3 = is(W + 1);
        __m256 any = _mm256_or_ps(_mm256_or_ps(k0, k1), _mm256_or_ps(k2, k3));
        bad |= _mm256_movemask_ps(_mm256_andnot_ps(any, _mm256_castsi256_ps(m)));
        store_windows8(_mm256_and_ps(k0, gv), _mm256_and_ps(k1, gv), _mm256_and_ps(k2, gv), _mm256_and_ps(k3, gv), n,
                       r0 + 2 * ow, r1 + 2 * ow);
      }
      if (bad) return false;
      ow = g.Wo;
    }
#endif
    for (; ow < g.Wo; ++ow) {
      int64_t off = ir[ow] - base - 2 * ow;
      if (off != 0 && off != 1 && off != W && off != W + 1) return false;
      T v = gr[ow];
      r0[2 * ow] = off == 0 ? v : T(0);
      r0[2 * ow + 1] = off == 1 ? v : T(0);
      r1[2 * ow] = off == W ? v : T(0);
      r1[2 * ow + 1] = off == W + 1 ? v : T(0);
    }
    for (int64_t w = 2 * g.Wo; w < W; ++w) r0[w] = r1[w] = T(0);  // a last odd column
  }
  for (int64_t i = 2 * g.Ho * W; i < g.H * W; ++i) plane[i] = T(0);  // a last odd row
  return true;
}

// max_pool_2x2_backward for window codes (max_pool_2x2's uint8_t form): the
// gradient at each window's code position, zeros elsewhere (a code above 3
// drops its gradient rather than writing outside the window). slack.in
// counts gy and code elements, slack.out floats after the plane. ld: the
// plane's row stride (0: g.W, a dense plane); with another stride (a row of
// a zero-bordered buffer) only the plane's g.W columns of each row are
// written, and slack.out is not used.
template <class T>
void max_pool_2x2_backward_codes(const T* gy, const uint8_t* code, const Geom2d& g, T* plane, PoolSlack slack = {},
                                 int64_t ld = 0) {
  const int64_t W = g.W;
  if (ld == 0) ld = W;
  [[maybe_unused]] const bool dense = ld == W;
  [[maybe_unused]] const T* gy_end = gy + g.Ho * g.Wo + slack.in;  // readable up to here (code alike)
  [[maybe_unused]] const T* out_end = plane + g.H * W + slack.out;  // writable up to here (dense)
  for (int64_t oh = 0; oh < g.Ho; ++oh) {
    T* r0 = plane + 2 * oh * ld;
    T* r1 = r0 + ld;
    const T* gr = gy + oh * g.Wo;
    const uint8_t* cr = code + oh * g.Wo;
    int64_t ow = 0;
#ifdef __AVX512F__
    if constexpr (std::is_same_v<T, float>) {
      for (; ow < g.Wo; ow += 16) {
        int64_t n = std::min<int64_t>(16, g.Wo - ow);
        __mmask16 m = __mmask16((1u << n) - 1);
        __m512 gv = _mm512_maskz_loadu_ps(m, gr + ow);
        __m512i c = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, cr + ow));
        auto at = [&](int k) { return _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(c, _mm512_set1_epi32(k)), gv); };
        store_windows16(at(0), at(1), at(2), at(3), n, r0 + 2 * ow, r1 + 2 * ow);
      }
      ow = g.Wo;
    }
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<T, float>) {
      // The row's chunks last to first: a whole-vector tail (where the slack
      // allows) spills garbage past 2 * Wo into the odd column and the next
      // row, which the chunks at ow = 0 (16 floats each) and the next rows
      // write over later; the last row's spill lands in the slack.
      for (int64_t c0 = (g.Wo - 1) / 8 * 8; c0 >= 0; c0 -= 8) {
        int64_t n = std::min<int64_t>(8, g.Wo - c0);
        bool whole_in = n == 8 || gr + c0 + 8 <= gy_end;
        __m256 gv = whole_in ? _mm256_loadu_ps(gr + c0) : _mm256_maskload_ps(gr + c0, lane_mask8(n));
        __m256i c = _mm256_cvtepu8_epi32(load_bytes8(cr + c0, whole_in ? 8 : n));
        // the gradient where the code is k, +0 elsewhere (as the scalar select's T(0))
        auto at = [&](int k) { return _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(c, _mm256_set1_epi32(k))), gv); };
        store_windows8(at(0), at(1), at(2), at(3), n, r0 + 2 * c0, r1 + 2 * c0, dense && r0 + 2 * c0 + 16 <= out_end,
                       dense && r1 + 2 * c0 + 16 <= out_end);
      }
      ow = g.Wo;
    }
#endif
    for (; ow < g.Wo; ++ow) {
      T v = gr[ow];
      uint8_t k = cr[ow];
      r0[2 * ow] = k == 0 ? v : T(0);
      r0[2 * ow + 1] = k == 1 ? v : T(0);
      r1[2 * ow] = k == 2 ? v : T(0);
      r1[2 * ow + 1] = k == 3 ? v : T(0);
    }
    for (int64_t w = 2 * g.Wo; w < W; ++w) r0[w] = r1[w] = T(0);  // a last odd column
  }
  for (int64_t h = 2 * g.Ho; h < g.H; ++h)  // a last odd row
    for (int64_t w = 0; w < W; ++w) plane[h * ld + w] = T(0);
}

}  // namespace brisk::kern::cpu
