// The fused first layer + 2x2 max pool, forward and weight gradient (see the
// header). AVX2 + FMA code, run on the avx2 and avx512 sgemm builds.
#include "kernels/cpu/conv2d_thin_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/autocast.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/pool2d.h"

namespace brisk::kern::cpu {

namespace {

std::atomic<bool> g_on{[] {
  const char* e = std::getenv("BRISK_CONV_THIN_POOL");
  return !(e && std::strcmp(e, "0") == 0);
}()};

constexpr int64_t kMaxSide = 1024;  // pooled rows up to 512 windows: one fits a band

// The 16 taps of every window of a band of pooled rows r0 .. r1 - 1, flat:
// window w = (r - r0) * Wp + c (row after row, nw = (r1 - r0) * Wp of them)
// has tap t = 4 rr + m, the input at row 2r - 1 + rr and column 2c - 1 + m
// (zero outside the plane), at buf[t * kStride + w], and 0 in the lanes
// from nw to the next multiple of 8. A vector of 8 consecutive windows
// (rows crossed freely) then reads its taps as 16 plain loads at fixed
// offsets, and its 8 pooled values, codes and gradients are 8 consecutive
// values of the [Hp, Wp] plane: the 28 x 28 plane's 196 windows are 25
// vectors (the last half full), where rows of 14 windows took 28.
struct WindowTaps {
  static constexpr int64_t kStride = 520;       // floats per tap: a band's windows (<= 512), + 8 lanes
  static constexpr int64_t kBandWindows = 256;  // a band's taps, 16 x 256 floats, stay in L1
  int64_t H, W, Hp, Wp, band, RW;
  float* buf;   // [16][kStride]
  float* line;  // one input row's E then O (E[j] = x[2j], O[j] = x[2j + 1]), RW floats each, at j + 1; then RW zeros
  explicit WindowTaps(const Geom2d& g)
      : H(g.H), W(g.W), Hp(g.H / 2), Wp(g.W / 2), band(std::clamp<int64_t>(kBandWindows / (g.W / 2), 1, g.H / 2)),
        RW(g.W / 2 + 24) {
    // Per thread, kept between calls; zeroed when the shape changes (the
    // line's borders and the zero row stay zero: fill writes only the
    // plane's columns there).
    static thread_local std::vector<float> mem;
    static thread_local int64_t shape_h = -1, shape_w = -1;
    size_t want = size_t(16 * kStride + 3 * RW + 16);
    if (mem.size() < want || shape_h != H || shape_w != W) {
      mem.assign(std::max(mem.size(), want), 0.f);
      shape_h = H, shape_w = W;
    }
    buf = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63));
    line = buf + 16 * kStride;
  }
  // Input row r of x split into the line's E and O; max |x| and whether
  // any value is infinite or NaN accumulate in mx / bad (vector) and smx /
  // sbad (the scalar tail).
  void split_row(const float* s, __m256& mx, __m256& bad, float& smx, bool& sbad) {
    float* e = line + 1;
    float* o = line + RW + 1;
    const __m256 sign = _mm256_set1_ps(-0.f), inf = _mm256_set1_ps(INFINITY);
    int64_t j = 0;
    for (; 2 * j + 16 <= W; j += 8) {
      __m256 x0 = _mm256_loadu_ps(s + 2 * j), x1 = _mm256_loadu_ps(s + 2 * j + 8), ev, ov;
      for (__m256 v : {x0, x1}) {
        __m256 a = _mm256_andnot_ps(sign, v);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ));  // infinity or NaN
        mx = _mm256_max_ps(mx, a);
      }
      deinterleave8(x0, x1, ev, ov);
      _mm256_storeu_ps(e + j, ev);
      _mm256_storeu_ps(o + j, ov);
    }
    for (int64_t c = 2 * j; c < W; ++c) {
      sbad |= !std::isfinite(s[c]);
      smx = std::max(smx, std::abs(s[c]));
    }
    for (; 2 * j < W; ++j) {
      e[j] = s[2 * j];
      if (2 * j + 1 < W) o[j] = s[2 * j + 1];
    }
  }
  // The taps of pooled rows r0 .. r1 - 1 of sample x [H, W]; returns max
  // |x| over the input rows they read, or infinity if one holds an infinity
  // or a NaN.
  float fill(const float* x, int64_t r0, int64_t r1) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 mx = zero, bad = zero;
    float smx = 0.f;
    bool sbad = false;
    for (int64_t ir = 2 * r0 - 1; ir <= 2 * r1; ++ir) {
      bool in = ir >= 0 && ir < H;
      if (in) split_row(x + ir * W, mx, bad, smx, sbad);
      const float* e = in ? line + 1 : line + 2 * RW + 1;  // the zero row: E and O both
      const float* o = in ? line + RW + 1 : e;
      for (int rr = 0; rr < 4; ++rr) {  // the window rows r that read input row ir as their row rr
        int64_t d = ir + 1 - rr;
        if (d % 2 != 0 || d / 2 < r0 || d / 2 >= r1) continue;
        for (int m = 0; m < 4; ++m) {  // column 2c - 1 + m: O[c - 1], E[c], O[c], E[c + 1]
          const float* src = m == 0 ? o - 1 : m == 1 ? e : m == 2 ? o : e + 1;
          float* dst = buf + (4 * rr + m) * kStride + (d / 2 - r0) * Wp;
          // whole vectors: the lanes past Wp land on the next row's windows,
          // written after, or past nw, zeroed below
          for (int64_t j = 0; j < Wp; j += 8) _mm256_storeu_ps(dst + j, _mm256_loadu_ps(src + j));
        }
      }
    }
    int64_t nw = (r1 - r0) * Wp;
    for (int t = 0; t < 16; ++t) _mm256_storeu_ps(buf + t * kStride + nw, zero);
    if (sbad || _mm256_movemask_ps(bad)) return INFINITY;
    alignas(32) float m[8];
    _mm256_store_ps(m, mx);
    for (float v : m) smx = std::max(smx, v);
    return smx;
  }
};

// Tap (rr, m) of the vector of windows whose taps start at s.
inline const float* tap(const float* s, int rr, int m) { return s + (4 * rr + m) * WindowTaps::kStride; }

// The 16 tap vectors of a vector of windows (s: its taps), each loaded once:
// f(t, p, k) for every window position p = 2 dy + dx that has t as its tap
// k = 3 i + j, (i, j) = (rr - dy, m - dx): 36 calls in all.
template <class F>
inline void for_each_tap(const float* s, F&& f) {
#pragma GCC unroll 4
  for (int rr = 0; rr < 4; ++rr)
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {
      __m256 t = _mm256_loadu_ps(tap(s, rr, m));
#pragma GCC unroll 2
      for (int dy = 0; dy < 2; ++dy)
#pragma GCC unroll 2
        for (int dx = 0; dx < 2; ++dx) {
          int i = rr - dy, j = m - dx;
          if (i >= 0 && i <= 2 && j >= 0 && j <= 2) f(t, 2 * dy + dx, 3 * i + j);
        }
    }
}

// The n (1..8) pooled values and codes of a vector of windows, stored
// without a masked store (AMD microcodes vmaskmovps stores): the lanes past
// n are other windows, of this channel's next band or of other channels.
inline void store_pooled_n(float* y, uint8_t* code, int64_t n, __m256 best, __m256i k) {
  __m128i k8 = narrow8_epi32(k);
  if (n == 8) {
    _mm256_storeu_ps(y, best);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(code), k8);
    return;
  }
  alignas(32) float v[8];
  _mm256_store_ps(v, best);
  uint64_t b = uint64_t(_mm_cvtsi128_si64(k8));
  for (int64_t i = 0; i < n; ++i, b >>= 8) y[i] = v[i], code[i] = uint8_t(b);
}

// pool_window4 for windows whose 4 values are known finite (no NaN): the
// pairwise form of the same rule (the first maximum in row-major order),
// max_ps(a, b) being a > b ? a : b, and the code s ? 2 + s2 : s1 from the
// three comparisons. Then relu_pooled's rule: v > 0 ? v : 0, code 4.
inline void pool_window4_finite(const __m256 (&y)[4], bool relu, __m256& best, __m256i& code) {
  const __m256i one = _mm256_set1_epi32(1);
  __m256 m1 = _mm256_max_ps(y[1], y[0]), m2 = _mm256_max_ps(y[3], y[2]);
  __m256i s1 = _mm256_castps_si256(_mm256_cmp_ps(y[1], y[0], _CMP_GT_OQ));
  __m256i s2 = _mm256_castps_si256(_mm256_cmp_ps(y[3], y[2], _CMP_GT_OQ));
  __m256 s = _mm256_cmp_ps(m2, m1, _CMP_GT_OQ);
  best = _mm256_max_ps(m2, m1);
  code = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(_mm256_and_si256(s1, one)),
                                               _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(s2, one),
                                                                                   _mm256_set1_epi32(2))),
                                               s));
  if (relu) {
    __m256 live = _mm256_cmp_ps(best, _mm256_setzero_ps(), _CMP_GT_OQ);
    best = _mm256_and_ps(live, best);
    code = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(_mm256_set1_epi32(4)), _mm256_castsi256_ps(code), live));
  }
}

// One vector of 8 windows (s: its taps) for C (1 or 2) output channels,
// weights at w + 9c, to their pooled values and codes at y[c] and code[c]
// (n of the 8 lanes are windows). The 4 outputs y_p of each window (p =
// 2 dy + dx) are FMA chains over the taps k = 3 i + j in ascending order,
// from 0, then + bias, as the thin forward's. The chains advance together,
// k by k: two channels keep 8 in flight, enough to hide the FMA's latency
// (one channel's 4 chains of 9 left half the FMA slots idle), with 8
// accumulators, 2 weights and a tap in registers; per k, 2 broadcasts and 4
// tap loads for 8 FMAs. Then pooled and ReLU'd in registers. Finite: the
// outputs are known not to be NaN (pool_window4_finite).
template <int C, bool Finite>
inline void forward_vector(const float* s, const float* w, const float* bias, bool relu, float* const (&y)[2],
                           uint8_t* const (&code)[2], int64_t n) {
  __m256 acc[C][4];
#pragma GCC unroll 2
  for (int c = 0; c < C; ++c)
    for (int p = 0; p < 4; ++p) acc[c][p] = _mm256_setzero_ps();
#pragma GCC unroll 9
  for (int k = 0; k < 9; ++k) {
    __m256 wk[C];
#pragma GCC unroll 2
    for (int c = 0; c < C; ++c) wk[c] = _mm256_broadcast_ss(w + 9 * c + k);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      __m256 t = _mm256_loadu_ps(tap(s, k / 3 + p / 2, k % 3 + p % 2));
#pragma GCC unroll 2
      for (int c = 0; c < C; ++c) acc[c][p] = _mm256_fmadd_ps(wk[c], t, acc[c][p]);
    }
  }
#pragma GCC unroll 2
  for (int c = 0; c < C; ++c) {
    __m256 yc[4] = {acc[c][0], acc[c][1], acc[c][2], acc[c][3]};
    if (bias)  // no add without a bias: the thin forward's -0 stays -0
      for (int p = 0; p < 4; ++p) yc[p] = _mm256_add_ps(yc[p], _mm256_broadcast_ss(bias + c));
    __m256 best;
    __m256i k;
    if constexpr (Finite) pool_window4_finite(yc, relu, best, k);
    else pool_window4(yc, relu, best, k);
    store_pooled_n(y[c], code[c], n, best, k);
  }
}

// Sum of the 8 lanes, in lane order.
inline float lane_sum(const float* v) {
  float s = v[0];
  for (int l = 1; l < 8; ++l) s += v[l];
  return s;
}

}  // namespace

bool conv_thin_pool_enabled() { return g_on.load(std::memory_order_relaxed); }
void set_conv_thin_pool(bool on) { g_on.store(on, std::memory_order_relaxed); }

bool conv2d_thin_pool_applies(const Geom2d& g) {
  return conv_thin_pool_enabled() && !gemm_operands_bf16() && (sgemm_isa_avx2() || sgemm_isa_avx512()) &&
         g.C == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ph == 1 &&
         g.pw == 1 && g.Ho == g.H && g.Wo == g.W && g.H >= 2 && g.W >= 2 && g.H <= kMaxSide && g.W <= kMaxSide;
}

void conv2d_thin_pool_forward(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                              bool relu, float* y, uint8_t* code) {
  const int64_t HW = g.H * g.W, OP = O * (g.H / 2) * (g.W / 2);
  // |y| <= max|x_n| * sum_k |w_ok| + |b_o| (and each partial FMA sum
  // likewise, to rounding): below this bound no output can be infinite or
  // NaN, and the pool skips its NaN rule (pool_window4_finite).
  std::vector<float> wabs(static_cast<size_t>(O)), babs(static_cast<size_t>(O));
  for (int64_t o = 0; o < O; ++o) {
    float a = 0.f;
    for (int k = 0; k < 9; ++k) a += std::abs(w[9 * o + k]);
    wabs[size_t(o)] = a;
    babs[size_t(o)] = bias ? std::abs(bias[o]) : 0.f;
  }
  parallel_for_blocks(0, g.N, 2, [&](int64_t lo, int64_t hi) {
    WindowTaps wt(g);
    const int64_t Lp = wt.Hp * wt.Wp;
    for (int64_t n = lo; n < hi; ++n)
      for (int64_t r0 = 0; r0 < wt.Hp; r0 += wt.band) {
        int64_t r1 = std::min(wt.Hp, r0 + wt.band), nw = (r1 - r0) * wt.Wp;
        float xmax = wt.fill(x + n * HW, r0, r1);
        float* yb = y + n * OP + r0 * wt.Wp;
        uint8_t* cb = code + n * OP + r0 * wt.Wp;
        for (int64_t o = 0; o < O; o += 2) {
          auto run = [&](auto channels, auto finite) {
            constexpr int C = decltype(channels)::value;
            const float* wo = w + 9 * o;
            for (int64_t v = 0; v < nw; v += 8) {
              float* const yv[2] = {yb + o * Lp + v, yb + (o + C - 1) * Lp + v};
              uint8_t* const cv[2] = {cb + o * Lp + v, cb + (o + C - 1) * Lp + v};
              forward_vector<C, decltype(finite)::value>(wt.buf + v, wo, bias ? bias + o : nullptr, relu, yv, cv,
                                                         std::min<int64_t>(8, nw - v));
            }
          };
          bool finite = true;
          for (int64_t c = o; c < std::min(O, o + 2); ++c)
            finite = finite && xmax * wabs[size_t(c)] + babs[size_t(c)] < 1e38f;
          if (o + 1 < O) {
            if (finite) run(std::integral_constant<int, 2>{}, std::true_type{});
            else run(std::integral_constant<int, 2>{}, std::false_type{});
          } else {
            if (finite) run(std::integral_constant<int, 1>{}, std::true_type{});
            else run(std::integral_constant<int, 1>{}, std::false_type{});
          }
        }
      }
  });
}

ThinPoolWeightGrad::ThinPoolWeightGrad(const Geom2d& g, int64_t O) : g_(g), O_(O), acc_(size_t(O * 10 * 8), 0.f) {}

// For each vector of 8 windows: g_p = the pooled gradient where code == p,
// else 0 (lanes past the band: 0); then gw_k += g_p * t for every tap t of
// position p (for_each_tap): 9 accumulators, 36 FMAs, 16 tap loads.
// The bias's lanes sum the gradient where code < 4 (a ReLU'd window: 4).
void ThinPoolWeightGrad::add(const float* gyp_n, const uint8_t* code_n, const float* x_n, int64_t room) {
  WindowTaps wt(g_);
  const int64_t Lp = wt.Hp * wt.Wp, readable = O_ * Lp + room;
  for (int64_t r0 = 0; r0 < wt.Hp; r0 += wt.band) {
    int64_t r1 = std::min(wt.Hp, r0 + wt.band), nw = (r1 - r0) * wt.Wp;
    wt.fill(x_n, r0, r1);
    for (int64_t o = 0; o < O_; ++o) {
      float* ao = acc_.data() + o * 80;
      __m256 acc[9], accb = _mm256_loadu_ps(ao + 72);
      for (int k = 0; k < 9; ++k) acc[k] = _mm256_loadu_ps(ao + 8 * k);
      const int64_t first = o * Lp + r0 * wt.Wp;  // the band's first window in gyp_n and code_n
      for (int64_t v = 0; v < nw; v += 8) {
        int64_t n = std::min<int64_t>(8, nw - v);
        __m256 gv;
        __m256i ci;
        if (first + v + 8 <= readable) {  // whole vectors; lanes past the band masked off
          gv = _mm256_loadu_ps(gyp_n + first + v);
          ci = _mm256_cvtepu8_epi32(load_bytes8(code_n + first + v, 8));
          if (n < 8) {
            __m256i keep = lane_mask8(n);
            gv = _mm256_and_ps(gv, _mm256_castsi256_ps(keep));
            ci = _mm256_and_si256(ci, keep);
          }
        } else {  // the end of the gradient: only the band's lanes
          gv = _mm256_maskload_ps(gyp_n + first + v, lane_mask8(n));
          ci = _mm256_cvtepu8_epi32(load_bytes8(code_n + first + v, n));
        }
        accb = _mm256_add_ps(accb, _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(4), ci)), gv));
        __m256 gp[4];
        for (int p = 0; p < 4; ++p)
          gp[p] = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(ci, _mm256_set1_epi32(p))), gv);
        for_each_tap(wt.buf + v, [&](__m256 t, int p, int k) { acc[k] = _mm256_fmadd_ps(gp[p], t, acc[k]); });
      }
      for (int k = 0; k < 9; ++k) _mm256_storeu_ps(ao + 8 * k, acc[k]);
      _mm256_storeu_ps(ao + 72, accb);
    }
  }
}

void ThinPoolWeightGrad::finish(float* gw, float* gb) {
  for (int64_t o = 0; o < O_; ++o) {
    const float* ao = acc_.data() + o * 80;
    for (int k = 0; k < 9; ++k) gw[o * 9 + k] += lane_sum(ao + 8 * k);
    if (gb) gb[o] += lane_sum(ao + 72);
  }
  std::fill(acc_.begin(), acc_.end(), 0.f);
}

}  // namespace brisk::kern::cpu
