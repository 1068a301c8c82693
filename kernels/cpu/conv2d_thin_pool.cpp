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

#include "core/env_switch.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/pool2d.h"
#include "kernels/cpu/winograd_f23.h"

#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics

// The 16-window (512-bit) kernels: AVX-512 F, with BW and VL for the byte
// and 128/256-bit masked operations (every AVX-512 CPU since Skylake-SP).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define BRISK_THIN_POOL_16 1
#else
#define BRISK_THIN_POOL_16 0
#endif

namespace brisk::kern::cpu {

namespace {

std::atomic<bool> g_on{env_switch("BRISK_CONV_THIN_POOL", true)};

constexpr int64_t kMaxSide = 1024;  // pooled rows up to 512 windows: one fits a band

// The 16 taps of every window of a band of pooled rows r0 .. r1 - 1, flat:
// window w = (r - r0) * Wp + c (row after row, nw = (r1 - r0) * Wp of them)
// has tap t = 4 rr + m, the input at row 2r - 1 + rr and column 2c - 1 + m
// (zero outside the plane), at buf[t * kStride + w], and 0 in the lanes
// from nw to 16 past it. A vector of 8 (or 16) consecutive windows
// (rows crossed freely) then reads its taps as 16 plain loads at fixed
// offsets, and its 8 pooled values, codes and gradients are 8 consecutive
// values of the [Hp, Wp] plane: the 28 x 28 plane's 196 windows are 25
// vectors (the last half full), where rows of 14 windows took 28.
struct WindowTaps {
  static constexpr int64_t kStride = 528;       // floats per tap: a band's windows (<= 512), + 16 lanes
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
  // max |v| into mx, and into bad whether any lane of v is infinite or NaN
  static void track_abs(__m256 v, __m256& mx, __m256& bad) {
    const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.f), v);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, _mm256_set1_ps(INFINITY), _CMP_NLT_UQ));
    mx = _mm256_max_ps(mx, a);
  }
  // A fill's end: zeros in a 16-window vector's lanes past the band's nw
  // windows; returns the max |x| of mx's lanes and smx, or infinity if bad
  // or sbad says a value was infinite or NaN.
  float end_band(int64_t nw, __m256 mx, __m256 bad, float smx = 0.f, bool sbad = false) {
    for (int t = 0; t < 16; ++t) {
      _mm256_storeu_ps(buf + t * kStride + nw, _mm256_setzero_ps());
      _mm256_storeu_ps(buf + t * kStride + nw + 8, _mm256_setzero_ps());
    }
    if (sbad || _mm256_movemask_ps(bad)) return INFINITY;
    alignas(32) float m[8];
    _mm256_store_ps(m, mx);
    for (float v : m) smx = std::max(smx, v);
    return smx;
  }
  // Input row r of x split into the line's E and O; max |x| and whether
  // any value is infinite or NaN accumulate in mx / bad (vector) and smx /
  // sbad (the scalar tail).
  void split_row(const float* s, __m256& mx, __m256& bad, float& smx, bool& sbad) {
    float* e = line + 1;
    float* o = line + RW + 1;
    int64_t j = 0;
    for (; 2 * j + 16 <= W; j += 8) {
      __m256 x0 = _mm256_loadu_ps(s + 2 * j), x1 = _mm256_loadu_ps(s + 2 * j + 8), ev, ov;
      track_abs(x0, mx, bad);
      track_abs(x1, mx, bad);
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
  // The taps of the band's nw windows replaced by their Winograd input
  // transform, V = B^T d B (d [4][4]: tap 4 rr + m), V's value xi = 4 i + j
  // in tap xi's place: the rows' stage, then the columns', as the layer
  // kernels' transform (conv2d_winograd.cpp) does it.
  void to_winograd(int64_t nw) {
    for (int64_t v = 0; v < nw; v += 8) {
      float* s = buf + v;
      __m256 z[16], t[4];
      for (int m = 0; m < 4; ++m) {  // Z = B^T d: column m of the 4 rows
        winograd_bt4(_mm256_loadu_ps(s + (0 + m) * kStride), _mm256_loadu_ps(s + (4 + m) * kStride),
                     _mm256_loadu_ps(s + (8 + m) * kStride), _mm256_loadu_ps(s + (12 + m) * kStride), t);
        for (int i = 0; i < 4; ++i) z[4 * i + m] = t[i];
      }
      for (int i = 0; i < 4; ++i) {  // V = Z B: row i
        winograd_bt4(z[4 * i], z[4 * i + 1], z[4 * i + 2], z[4 * i + 3], t);
        for (int j = 0; j < 4; ++j) _mm256_storeu_ps(s + (4 * i + j) * kStride, t[j]);
      }
    }
  }
#if BRISK_THIN_POOL_16
  // fill and to_winograd in one, for planes at most 32 wide (Wp <= 16: the
  // cnn's 28 x 28), in registers: an input row is two masked loads (zeros
  // past W), its E and O one permute each, O[c - 1] and E[c + 1] the same
  // vectors shifted a lane (zeros shifted in: the padding column). A window
  // row's 16 taps (its 4 input rows' 4 column vectors, Wp lanes: its
  // windows) go through the transform in the registers, the same two stages
  // in the same order as to_winograd (so the same bits), and each of V's 16
  // values is one masked store of Wp lanes. Adjacent window rows share two
  // input rows, whose vectors are kept. The general fill goes through the
  // line buffer, whose shifted reloads of values just stored there missed
  // store forwarding; and storing taps for to_winograd to load again cost
  // 28 loads and stores more per window row.
  // base: the band's first window's place in buf (a second sample's band
  // follows the first's, fill_winograd_pair).
  float fill_winograd_narrow(const float* x, int64_t r0, int64_t r1, int64_t base = 0) {
    const __m512 zero = _mm512_setzero_ps(), inf = _mm512_set1_ps(INFINITY);
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __mmask16 lo = first_lanes16(W), hi = first_lanes16(W - 16), keep = first_lanes16(Wp);
    __m512 mx = zero;
    __mmask16 bad = 0;
    // input row ir's 4 column vectors: columns 2c - 1 + m, O[c - 1], E[c], O[c], E[c + 1]
    auto row_taps = [&](int64_t ir, __m512 (&tap)[4]) {
      tap[0] = tap[1] = tap[2] = tap[3] = zero;
      if (ir < 0 || ir >= H) return;
      const float* s = x + ir * W;
      __m512 x0 = _mm512_maskz_loadu_ps(lo, s), x1 = _mm512_maskz_loadu_ps(hi, s + 16);
      for (__m512 v : {x0, x1}) {
        __m512 a = _mm512_abs_ps(v);
        bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ);  // infinity or NaN
        mx = _mm512_max_ps(mx, a);
      }
      __m512 e = _mm512_permutex2var_ps(x0, ie, x1), o = _mm512_permutex2var_ps(x0, io, x1);
      tap[0] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(o), _mm512_castps_si512(zero), 15));
      tap[1] = e;
      tap[2] = o;
      tap[3] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(zero), _mm512_castps_si512(e), 1));
    };
    __m512 d[4][4];  // [rr][m]: window row r's input rows 2r - 1 + rr
    row_taps(2 * r0 - 1, d[0]);
    row_taps(2 * r0, d[1]);
    for (int64_t r = r0; r < r1; ++r) {
      row_taps(2 * r + 1, d[2]);
      row_taps(2 * r + 2, d[3]);
      float* dst = buf + base + (r - r0) * Wp;
      __m512 z[4][4], t[4];  // Z = B^T d: along the rows, each column m (to_winograd's first stage)
      for (int m = 0; m < 4; ++m) {
        winograd_bt4(d[0][m], d[1][m], d[2][m], d[3][m], t);
        for (int i = 0; i < 4; ++i) z[i][m] = t[i];
      }
      for (int i = 0; i < 4; ++i) {  // V = Z B: along row i (the second stage)
        winograd_bt4(z[i][0], z[i][1], z[i][2], z[i][3], t);
        for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(dst + (4 * i + j) * kStride, keep, t[j]);
      }
      for (int m = 0; m < 4; ++m) d[0][m] = d[2][m], d[1][m] = d[3][m];  // window row r + 1's rows 0 and 1
    }
    int64_t nw = (r1 - r0) * Wp;
    for (int t = 0; t < 16; ++t) _mm512_storeu_ps(buf + t * kStride + base + nw, zero);  // a 16-window vector's lanes past nw
    return bad ? INFINITY : _mm512_reduce_max_ps(mx);
  }
#endif
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
    return end_band((r1 - r0) * Wp, mx, bad, smx, sbad);
  }
  // fill for planes at most 32 wide (Wp <= 16: the cnn's 28 x 28) on 8
  // lanes, straight from the input rows: a row's taps for windows 8h ..
  // 8h + 7 are the even and odd lanes of its 16 values from column 16h - 1
  // (O[c - 1], E[c]) and from 16h + 1 (O[c], E[c + 1]), masked loads whose
  // lanes outside the plane read as 0 (the padding). The general fill's
  // scalar tail (a 28-wide row is one 16-column vector and 12 scalars) and
  // its shifted reloads of the line just stored (which miss store
  // forwarding) took a fifth of the fused forward's time on the Zen 3 (now
  // an eighth, with the transform); the weight gradient's fill is this one
  // too. The same taps, so the same bits.
  float fill_narrow8(const float* x, int64_t r0, int64_t r1) {
    const __m256 zero = _mm256_setzero_ps();
    const int halves = Wp > 8 ? 2 : 1;
    // in[h][k]: which lanes of half h's load k lie inside the row; load k
    // reads columns 16h - 1 + 8k (k = 0, 1) or 16h + 1 + 8(k - 2) (k = 2, 3)
    __m256i in[2][4];
    for (int h = 0; h < halves; ++h)
      for (int k = 0; k < 4; ++k) {
        const __m256i col = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                             _mm256_set1_epi32(int(16 * h + (k < 2 ? -1 : 1) + 8 * (k % 2))));
        in[h][k] = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), col),
                                       _mm256_cmpgt_epi32(_mm256_set1_epi32(int(W)), col));
      }
    __m256 mx = zero, bad = zero;
    for (int64_t ir = 2 * r0 - 1; ir <= 2 * r1; ++ir) {
      const bool inside = ir >= 0 && ir < H;
      const float* s = inside ? x + ir * W : x;
      for (int h = 0; h < halves; ++h) {
        __m256 tap[4];  // columns 2c - 1 + m of windows c = 8h .. 8h + 7: O[c - 1], E[c], O[c], E[c + 1]
        if (inside) {
          __m256 l[4];
          for (int k = 0; k < 4; ++k) {
            l[k] = _mm256_maskload_ps(s + 16 * h + (k < 2 ? -1 : 1) + 8 * (k % 2), in[h][k]);
            track_abs(l[k], mx, bad);
          }
          deinterleave8(l[0], l[1], tap[0], tap[1]);
          deinterleave8(l[2], l[3], tap[2], tap[3]);
        } else {
          tap[0] = tap[1] = tap[2] = tap[3] = zero;
        }
        for (int rr = 0; rr < 4; ++rr) {  // the window rows that read input row ir as their row rr
          const int64_t d = ir + 1 - rr;
          if (d % 2 != 0 || d / 2 < r0 || d / 2 >= r1) continue;
          // whole vectors, in increasing window order per tap: lanes past
          // the row land on later windows, written after, or past nw,
          // zeroed below
          float* dst = buf + 4 * rr * kStride + (d / 2 - r0) * Wp + 8 * h;
          for (int m = 0; m < 4; ++m) _mm256_storeu_ps(dst + m * kStride, tap[m]);
        }
      }
    }
    return end_band((r1 - r0) * Wp, mx, bad);
  }
  // fill, then to_winograd: buf holds the band's V (nw windows, zeros in
  // the 16 lanes past them); returns fill's max |x| (or infinity).
  float fill_winograd(const float* x, int64_t r0, int64_t r1) {
#if BRISK_THIN_POOL_16
    if (W <= 32) return fill_winograd_narrow(x, r0, r1);
#endif
    float xmax = W <= 32 ? fill_narrow8(x, r0, r1) : fill(x, r0, r1);
    to_winograd((r1 - r0) * Wp);
    return xmax;
  }
  // Whether two samples' whole planes fit one band (fill_winograd_pair):
  // the 16-lane kernels on planes at most 32 wide and 256 windows (the
  // cnn's 196). A plane's windows rarely fill whole 16-window vectors (196
  // = 12 1/4): a band of two samples runs 25 vectors where one sample at a
  // time ran 26, and its transformed taps, 16 x 392 floats, stay in L1.
  bool pairs() const { return BRISK_THIN_POOL_16 && W <= 32 && band >= Hp; }
#if BRISK_THIN_POOL_16
  // fill_winograd of samples x0's and x1's whole planes: x1's windows
  // follow x0's (window Hp Wp + w is x1's window w); returns the larger max
  // |x| (or infinity). In this order: x0's fill zeroes the lanes past its
  // windows, x1's first ones.
  float fill_winograd_pair(const float* x0, const float* x1) {
    const float m0 = fill_winograd_narrow(x0, 0, Hp);
    return std::max(m0, fill_winograd_narrow(x1, 0, Hp, Hp * Wp));
  }
#endif
};

// pool_window4 for windows whose 4 values are known finite (no NaN): the
// pairwise form of the same rule (the first maximum in row-major order),
// max_ps(a, b) being a > b ? a : b, and the code s ? 2 + s2 : s1 from the
// three comparisons. Then relu_pooled's rule: v > 0 ? v : 0, code 4.
inline void pool_window4_finite(const __m256 (&y)[4], bool relu, __m256& best, __m256i& code) {
  __m256 m1 = _mm256_max_ps(y[1], y[0]), m2 = _mm256_max_ps(y[3], y[2]);
  __m256 s1 = _mm256_cmp_ps(y[1], y[0], _CMP_GT_OQ), s2 = _mm256_cmp_ps(y[3], y[2], _CMP_GT_OQ);
  __m256 s = _mm256_cmp_ps(m2, m1, _CMP_GT_OQ);
  best = _mm256_max_ps(m2, m1);
  // (s ? 2 : 0) - (s ? s2 : s1), the masks being 0 or -1
  code = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(s), _mm256_set1_epi32(2)),
                          _mm256_castps_si256(_mm256_blendv_ps(s1, s2, s)));
  if (relu) {
    __m256 live = _mm256_cmp_ps(best, _mm256_setzero_ps(), _CMP_GT_OQ);
    best = _mm256_and_ps(live, best);
    code = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(_mm256_set1_epi32(4)), _mm256_castsi256_ps(code), live));
  }
}

// One vector of 8 windows (s: their Winograd-transformed taps, V) for one
// output channel (u: its transformed filter, U [16], column 3 negated; b:
// its bias), to its pooled values and codes at y and code (n of the 8 lanes
// are windows): each window is one F(2x2, 3x3) tile, so its 4 outputs are
// A^T (U . V) A + b (winograd_rows, then winograd_outputs), 16 products
// where the direct sums took 36 multiply-adds. Then pooled and ReLU'd in
// registers. Finite: the outputs are known not to be NaN
// (pool_window4_finite). Bf16: the 4 outputs are rounded to bf16 before
// the pool (the output cast), so the code is the first maximum of the
// rounded window, as pooling the cast output gives.
// U: its 16 values (U::at(xi)), broadcast from memory per vector (Mem) or
// held in registers across the band's vectors (Regs, where the build has
// 32 vector registers).
struct UMem {
  const float* u;
  __m256 at(int xi) const { return _mm256_broadcast_ss(u + xi); }
};
struct URegs {
  __m256 r[16];
  explicit URegs(const float* u) {
    for (int xi = 0; xi < 16; ++xi) r[xi] = _mm256_broadcast_ss(u + xi);
  }
  __m256 at(int xi) const { return r[xi]; }
};
// The width's own loads and multiply-adds, so that both widths run the
// same operations lane by lane (GCC's vector operators act as the add, sub
// and mul intrinsics do, which GCC defines by them): each window gets the
// same bits from the 8-lane and the 16-lane code. Loading through memcpy,
// or leaving products to GCC's contraction, changed which products it
// fused into multiply-adds, and so the bits.
template <class V>
inline V load_v(const float* p);
template <>
inline __m256 load_v<__m256>(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 fmadd_v(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }   // a b + c
inline __m256 fnmadd_v(__m256 a, __m256 b, __m256 c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a b
#if BRISK_THIN_POOL_16
template <>
inline __m512 load_v<__m512>(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 fmadd_v(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
inline __m512 fnmadd_v(__m512 a, __m512 b, __m512 c) { return _mm512_fnmadd_ps(a, b, c); }
#endif
// The windows' output rows, on a vector of 8 (__m256) or 16 (__m512)
// windows: with M = U . V and Q = A^T M (A^T = [1 1 1 0; 0 1 -1 -1]), row r
// of the outputs is (Q_r0 + Q_r1 + Q_r2, Q_r1 - Q_r2 - Q_r3) = (a_r + s_r,
// a_r + t_r), a_r = Q_r1, s_r = Q_r0 + Q_r2, t_r = -(Q_r2 + Q_r3).
// Column j of Q is M_1j shared by both rows, then a multiply-add chain
// each: 5 operations (and a copy) where the products and sums apart took
// 8. U's column 3 comes negated (the caller's -U_i3), so Q_r3 comes
// negated and t_r is one subtraction. The bias is the addend of M_11's
// product: each of the 4 outputs sums M_11 exactly once with sign +.
// Column J of Q's two rows for the windows at s (u_i = U_iJ, column 3
// negated as above): q0 = Q_0J, q1 = Q_1J (negated for J = 3). One place
// for the multiply-add chains every forward kernel here takes, so that
// they all give the same bits.
template <int J, class V>
inline void winograd_column(const float* s, V u0, V u1, V u2, V u3, V b, V& q0, V& q1) {
  constexpr int64_t S = WindowTaps::kStride;
  const V v1 = load_v<V>(s + (4 + J) * S), v2 = load_v<V>(s + (8 + J) * S);
  const V m1 = J == 1 ? fmadd_v(u1, v1, b) : u1 * v1;
  q0 = fmadd_v(u0, load_v<V>(s + J * S), fmadd_v(u2, v2, m1));
  q1 = fnmadd_v(u3, load_v<V>(s + (12 + J) * S), fnmadd_v(u2, v2, m1));
}
template <class V, class U>
inline void winograd_rows(const float* s, const U& u, V b, V (&a)[2], V (&sr)[2], V (&t)[2]) {
  V q0[4], q1[4];
  auto column = [&](auto jc) {
    constexpr int j = decltype(jc)::value;
    winograd_column<j>(s, u.at(j), u.at(4 + j), u.at(8 + j), u.at(12 + j), b, q0[j], q1[j]);
  };
  column(std::integral_constant<int, 0>{});
  column(std::integral_constant<int, 1>{});
  column(std::integral_constant<int, 2>{});
  column(std::integral_constant<int, 3>{});
  a[0] = q0[1], sr[0] = q0[0] + q0[2], t[0] = q0[3] - q0[2];
  a[1] = q1[1], sr[1] = q1[0] + q1[2], t[1] = q1[3] - q1[2];
}
// The 4 outputs, yw[2 r + c]: output row r, column c of each window.
template <class V, class U>
inline void winograd_outputs(const float* s, const U& u, V b, V (&yw)[4]) {
  V a[2], sr[2], t[2];
  winograd_rows(s, u, b, a, sr, t);
  yw[0] = a[0] + sr[0];
  yw[1] = a[0] + t[0];
  yw[2] = a[1] + sr[1];
  yw[3] = a[1] + t[1];
}

// A vector's 4 outputs (yw, each of 8 windows) rounded under Bf16,
// pooled, ReLU'd, and its n windows' values and codes stored at y and code
// (the other lanes are other channels' windows).
template <bool Finite, bool Bf16>
inline void pool_store8(__m256 (&yw)[4], bool relu, float* y, uint8_t* code, int64_t n) {
  using U8 = uint32_t __attribute__((vector_size(32)));
  if constexpr (Bf16 && Finite)  // no NaN to keep quiet
    for (__m256& v : yw) v = bf16_rounded_lanes_not_nan<__m256, U8>(v);
  else if constexpr (Bf16)
    for (__m256& v : yw) v = bf16_rounded_lanes<__m256, U8>(v);
  __m256 best;
  __m256i k;
  if constexpr (Finite) pool_window4_finite(yw, relu, best, k);
  else pool_window4(yw, relu, best, k);
  store_pooled8(y, code, 0, n, n, best, k);
}
template <bool Finite, bool Bf16, class U>
inline void forward_vector(const float* s, const U& u, __m256 b, bool relu, float* y, uint8_t* code,
                           int64_t n) {
  __m256 yw[4];
  winograd_outputs(s, u, b, yw);
  pool_store8<Finite, Bf16>(yw, relu, y, code, n);
}

// forward_vector on two vectors of 8 windows, s and s + 8 (their outputs at
// y and y + 8; n1 of the second's lanes are windows), for finite outputs
// with U broadcast from memory: the AVX2 build, 16 vector registers. Each
// of U's 16 broadcasts serves both vectors, and the two vectors' chains
// (loads, multiply-adds, sums, pool) are interleaved in the code: a vector
// at a time the loop took 36 loads (16 of them broadcasts) for 20
// multiply-adds, and its dependency chain (load, multiply, two
// multiply-adds, two sums, the pool) was longer than the out-of-order
// window overlapped; 11% faster on the Zen 3. Each vector's operations are
// winograd_rows' and winograd_outputs' (columns j taken 0, 2, 3, 1, so that
// 6 sums per vector stay live, not 8), so the same bits.
template <bool Bf16>
inline void forward_two_vectors(const float* s, const float* u, __m256 b, bool relu, float* y, uint8_t* code,
                                int64_t n1) {
  const UMem um{u};
  __m256 a[2][2], sr[2][2], t[2][2];  // [vector][output row]: a_r, s_r, t_r of winograd_rows
  auto column = [&](auto jc) {         // column j of Q, both vectors (j a constant: the branches fold)
    constexpr int j = decltype(jc)::value;
    const __m256 u0 = um.at(j), u1 = um.at(4 + j), u2 = um.at(8 + j), u3 = um.at(12 + j);
    for (int h = 0; h < 2; ++h) {
      __m256 q0, q1;
      winograd_column<j>(s + 8 * h, u0, u1, u2, u3, b, q0, q1);
      if constexpr (j == 0) sr[h][0] = q0, sr[h][1] = q1;
      if constexpr (j == 2) sr[h][0] = sr[h][0] + q0, sr[h][1] = sr[h][1] + q1, t[h][0] = q0, t[h][1] = q1;
      if constexpr (j == 3) t[h][0] = q0 - t[h][0], t[h][1] = q1 - t[h][1];
      if constexpr (j == 1) a[h][0] = q0, a[h][1] = q1;
    }
  };
  column(std::integral_constant<int, 0>{});
  column(std::integral_constant<int, 2>{});
  column(std::integral_constant<int, 3>{});
  column(std::integral_constant<int, 1>{});
  for (int h = 0; h < 2; ++h) {
    __m256 yw[4] = {a[h][0] + sr[h][0], a[h][0] + t[h][0], a[h][1] + sr[h][1], a[h][1] + t[h][1]};
    pool_store8<true, Bf16>(yw, relu, y + 8 * h, code + 8 * h, h ? n1 : 8);
  }
}

#if BRISK_THIN_POOL_16
// forward_vector on 16 windows (two 8-window vectors' worth in one zmm), for
// finite outputs, the pool's rule (pool_window4_finite: the first maximum in
// row-major order, then ReLU's code 4) in mask registers. On a CPU with two
// 512-bit FMA pipes (the Intel Xeons) it halves the instructions per
// window; on a Zen 4 (512-bit ops in two halves) it costs the same.
struct URegs16 {
  __m512 r[16];
  explicit URegs16(const float* u) {
    for (int xi = 0; xi < 16; ++xi) r[xi] = _mm512_set1_ps(u[xi]);
  }
  __m512 at(int xi) const { return r[xi]; }
};
// The pooled values and codes of 16 windows; the codes as bytes (sh ? 2 + s2
// : s1, then ReLU's 4), built from the masks in a 128-bit register rather
// than as 32-bit lanes narrowed by a two-uop vpmovdb store.
// f32: a row's two outputs a_r + s_r and a_r + t_r share a_r, and x -> a_r
// + x rounds monotonically, so the row's larger output is a_r + max(s_r,
// t_r), one addition instead of two: the values of the 8-lane path (which
// forms all 4 outputs) bit for bit. The code compares s_r and t_r, so where
// both outputs round to the same value it may name the second where the
// 8-lane path names the first: the same value, a maximum of the window
// either way. Bf16 pools the outputs rounded to bf16. With the ReLU it
// rounds only the window's f32 maximum: rounding is monotonic, so that is
// the rounded window's maximum, and the code, the first position whose
// output rounds to it, is the first output at or above the least f32 value
// that rounds to it (below it by half a bf16 step, ties to even). One
// rounding instead of four: the layer's bf16 forward 1.10x on a Zen 4.
// Without the ReLU it forms all 4 and pools them as they are.
template <bool Bf16, bool Relu>
inline void pooled16(const float* s, const URegs16& u, __m512 b, __m512& best, __m128i& code) {
  __m512 a[2], sr[2], t[2], row[2];
  __mmask16 right[2];  // the row's maximum is its second output
  winograd_rows(s, u, b, a, sr, t);
  using U16 = uint32_t __attribute__((vector_size(64)));
  if constexpr (Bf16 && Relu) {  // (with the ReLU only a live maximum's code matters: best > 0, lo > 0)
    const __m512 y[4] = {a[0] + sr[0], a[0] + t[0], a[1] + sr[1], a[1] + t[1]};
    const __m512 top = _mm512_max_ps(_mm512_max_ps(y[0], y[1]), _mm512_max_ps(y[2], y[3]));
    best = bf16_rounded_lanes_not_nan<__m512, U16>(top);
    // lo: the least f32 that rounds to best > 0, bits(best) - 0x8000 (the midpoint
    // below), + 1 where best is odd (a midpoint rounds to the even neighbour)
    const __m512i bb = _mm512_castps_si512(best);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bb, 16), _mm512_set1_epi32(1));
    const __m512 lo = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_sub_epi32(bb, _mm512_set1_epi32(0x8000)), odd));
    const __mmask16 m0 = _mm512_cmp_ps_mask(y[0], lo, _CMP_GE_OQ), m1 = _mm512_cmp_ps_mask(y[1], lo, _CMP_GE_OQ),
                    m2 = _mm512_cmp_ps_mask(y[2], lo, _CMP_GE_OQ);
    const __mmask16 live = _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_GT_OQ);
    best = _mm512_maskz_mov_ps(live, best);
    // first of m0, m1, m2, else 3; 4 where not live
    __m128i c = _mm_mask_mov_epi8(_mm_set1_epi8(3), m2, _mm_set1_epi8(2));
    c = _mm_mask_mov_epi8(c, m1, _mm_set1_epi8(1));
    c = _mm_maskz_mov_epi8(__mmask16(~m0), c);
    code = _mm_mask_mov_epi8(_mm_set1_epi8(4), live, c);
    return;
  }
  // max_ps(x, y) is x > y ? x : y: a tie keeps y, the earlier value
  for (int r = 0; r < 2; ++r) {
    if constexpr (Bf16) {
      const __m512 y0 = bf16_rounded_lanes_not_nan<__m512, U16>(a[r] + sr[r]);
      const __m512 y1 = bf16_rounded_lanes_not_nan<__m512, U16>(a[r] + t[r]);
      right[r] = _mm512_cmp_ps_mask(y1, y0, _CMP_GT_OQ);
      row[r] = _mm512_max_ps(y1, y0);
    } else {
      right[r] = _mm512_cmp_ps_mask(t[r], sr[r], _CMP_GT_OQ);
      row[r] = a[r] + _mm512_max_ps(t[r], sr[r]);
    }
  }
  const __mmask16 sh = _mm512_cmp_ps_mask(row[1], row[0], _CMP_GT_OQ);
  best = _mm512_max_ps(row[1], row[0]);
  code = _mm_mask_blend_epi8(sh, _mm_maskz_mov_epi8(right[0], _mm_set1_epi8(1)),
                             _mm_mask_mov_epi8(_mm_set1_epi8(2), right[1], _mm_set1_epi8(3)));
  if constexpr (Relu) {
    __mmask16 live = _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_GT_OQ);
    best = _mm512_maskz_mov_ps(live, best);
    code = _mm_mask_mov_epi8(_mm_set1_epi8(4), live, code);
  }
}
// A band's nw windows (buf: their transformed taps) for one channel, 16 at a
// time, whole vectors unmasked and the others masked to their windows:
// windows w < split to y0[w] and c0[w], the others (a second sample's, in a
// band of two) to y1[w - split] and c1[w - split]. A vector across split
// stores twice, masked; the lanes past nw are other channels' windows.
template <bool Bf16, bool Relu>
void forward_band16(const float* buf, const URegs16& u, __m512 b, float* y0, uint8_t* c0, int64_t split, float* y1,
                    uint8_t* c1, int64_t nw) {
  __m512 best;
  __m128i k;
  int64_t v = 0;
  for (; v + 16 <= split; v += 16) {
    pooled16<Bf16, Relu>(buf + v, u, b, best, k);
    _mm512_storeu_ps(y0 + v, best);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c0 + v), k);
  }
  if (v < split) {  // the first sample's last windows, then the second's first
    pooled16<Bf16, Relu>(buf + v, u, b, best, k);
    const __mmask16 first = first_lanes16(split - v),
                    second = __mmask16(first_lanes16(std::min(nw, v + 16) - v) & ~first);
    _mm512_mask_storeu_ps(y0 + v, first, best);
    _mm_mask_storeu_epi8(c0 + v, first, k);
    if (second) {  // lane l is window v + l: at y1 + (v + l - split)
      _mm512_mask_storeu_ps(y1 - (split - v), second, best);
      _mm_mask_storeu_epi8(c1 - (split - v), second, k);
    }
    v += 16;
  }
  for (; v + 16 <= nw; v += 16) {
    pooled16<Bf16, Relu>(buf + v, u, b, best, k);
    _mm512_storeu_ps(y1 + (v - split), best);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c1 + (v - split)), k);
  }
  if (v < nw) {
    const __mmask16 keep = first_lanes16(nw - v);
    pooled16<Bf16, Relu>(buf + v, u, b, best, k);
    _mm512_mask_storeu_ps(y1 + (v - split), keep, best);
    _mm_mask_storeu_epi8(c1 + (v - split), keep, k);
  }
}
#endif

}  // namespace

bool conv_thin_pool_enabled() { return g_on.load(std::memory_order_relaxed); }
void set_conv_thin_pool(bool on) { g_on.store(on, std::memory_order_relaxed); }

bool conv2d_thin_pool_applies(const Geom2d& g) {
  return conv_thin_pool_enabled() && (sgemm_isa_avx2() || sgemm_isa_avx512()) &&
         g.C == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ph == 1 &&
         g.pw == 1 && g.Ho == g.H && g.Wo == g.W && g.H >= 2 && g.W >= 2 && g.H <= kMaxSide && g.W <= kMaxSide;
}

void conv2d_thin_pool_forward(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                              bool relu, float* y, uint8_t* code, bool bf16) {
  const int64_t HW = g.H * g.W, OP = O * (g.H / 2) * (g.W / 2);
  std::vector<float> wr;
  if (bf16) {
    wr.resize(size_t(9 * O));
    bf16_rounded(w, wr.data(), 9 * O);
    w = wr.data();
  }
  // Every value on the way to y is below 81 max|x_n| sum_k |w_ok| + |b_o|
  // in size (|V| <= 4 max|x|, |U| <= 2.25 sum|w|, then sums of 3 and 3):
  // with margin for rounding, below this bound no output can be infinite
  // or NaN, and the pool skips its NaN rule (pool_window4_finite).
  std::vector<float> u(static_cast<size_t>(16 * O)), wabs(static_cast<size_t>(O)), babs(static_cast<size_t>(O));
  for (int64_t o = 0; o < O; ++o) {
    winograd_filter(w + 9 * o, u.data() + 16 * o);
    for (int i = 0; i < 4; ++i) u[size_t(16 * o + 4 * i + 3)] = -u[size_t(16 * o + 4 * i + 3)];  // winograd_rows' -U_i3
    float a = 0.f;
    for (int k = 0; k < 9; ++k) a += std::abs(w[9 * o + k]);
    wabs[size_t(o)] = 128.f * a;
    babs[size_t(o)] = bias ? std::abs(bias[o]) : 0.f;
  }
  parallel_for_blocks(0, g.N, 2, [&](int64_t lo, int64_t hi) {
    WindowTaps wt(g);
    const int64_t Lp = wt.Hp * wt.Wp;
    static thread_local std::vector<float> xr;  // bf16: the samples rounded (kept: no allocation per block)
    if (bf16 && xr.size() < size_t(2 * HW)) xr.resize(size_t(2 * HW));
    for (int64_t n = lo; n < hi;) {
      const int64_t ns = wt.pairs() && n + 1 < hi ? 2 : 1;  // samples n .. n + ns - 1, one band (pairs) or bands
      const float* xs[2] = {x + n * HW, x + std::min(n + 1, hi - 1) * HW};
      if (bf16)
        for (int64_t i = 0; i < ns; ++i) {
          bf16_rounded(xs[i], xr.data() + i * HW, HW);
          xs[i] = xr.data() + i * HW;
        }
      for (int64_t r0 = 0; r0 < wt.Hp; r0 += wt.band) {
        // nw windows a sample; with two samples the band is their whole planes, the second's after the first's
        int64_t r1 = std::min(wt.Hp, r0 + wt.band), nw = (r1 - r0) * wt.Wp;
#if BRISK_THIN_POOL_16
        float xmax = ns == 2 ? wt.fill_winograd_pair(xs[0], xs[1]) : wt.fill_winograd(xs[0], r0, r1);
#else
        float xmax = wt.fill_winograd(xs[0], r0, r1);
#endif
        for (int64_t o = 0; o < O; ++o) {
          float* ys[2];
          uint8_t* cs[2];
          for (int64_t i = 0; i < 2; ++i) {
            ys[i] = y + (n + std::min(i, ns - 1)) * OP + o * Lp + r0 * wt.Wp;
            cs[i] = code + (n + std::min(i, ns - 1)) * OP + o * Lp + r0 * wt.Wp;
          }
          const float* uo = u.data() + 16 * o;
          const __m256 b = _mm256_set1_ps(bias ? bias[o] : 0.f);
          const bool finite = xmax * wabs[size_t(o)] + babs[size_t(o)] < 1e38f;
#ifndef __AVX512VL__
          // 16 vector registers: a finite channel's windows two vectors at a
          // time (forward_two_vectors), an odd last vector alone
          if (finite) {
            for (int64_t i = 0; i < ns; ++i) {
              const float* vb = wt.buf + i * nw;
              int64_t v = 0;
              for (; v + 8 < nw; v += 16) {
                const float* ub = uo;
                asm("" : "+r"(ub));  // as in run(): the broadcasts address ub, not 16 hoisted pointers
                const int64_t n1 = std::min<int64_t>(8, nw - v - 8);
                if (bf16) forward_two_vectors<true>(vb + v, ub, b, relu, ys[i] + v, cs[i] + v, n1);
                else forward_two_vectors<false>(vb + v, ub, b, relu, ys[i] + v, cs[i] + v, n1);
              }
              if (v < nw) {
                if (bf16) forward_vector<true, true>(vb + v, UMem{uo}, b, relu, ys[i] + v, cs[i] + v, nw - v);
                else forward_vector<true, false>(vb + v, UMem{uo}, b, relu, ys[i] + v, cs[i] + v, nw - v);
              }
            }
            continue;
          }
#endif
          // 8 windows a vector, a sample at a time: sample i's windows at wt.buf + i * nw
          auto run = [&](auto finite, auto rounded) {
            for (int64_t i = 0; i < ns; ++i) {
              const float* vb = wt.buf + i * nw;
              float* yo = ys[i];
              uint8_t* co = cs[i];
#ifdef __AVX512VL__
              // 32 vector registers: U's 16 values stay in registers for the band.
              const URegs ur(uo);
              for (int64_t v = 0; v < nw; v += 8)
                forward_vector<decltype(finite)::value, decltype(rounded)::value>(vb + v, ur, b, relu, yo + v, co + v,
                                                                                  std::min<int64_t>(8, nw - v));
#else
              for (int64_t v = 0; v < nw; v += 8) {
                // Opaque to the compiler, so the 16 broadcasts address ub +
                // 4 xi here, rather than becoming 16 pointers hoisted out of
                // the loop that do not fit the registers (each then reloaded
                // from the stack before its broadcast).
                const float* ub = uo;
                asm("" : "+r"(ub));
                forward_vector<decltype(finite)::value, decltype(rounded)::value>(
                    vb + v, UMem{ub}, b, relu, yo + v, co + v, std::min<int64_t>(8, nw - v));
              }
#endif
            }
          };
#if BRISK_THIN_POOL_16
          if (finite) {  // 16 windows a vector
            const URegs16 ur(uo);
            const __m512 b16 = _mm512_set1_ps(bias ? bias[o] : 0.f);
            const int64_t all = ns * nw;
            if (bf16) relu ? forward_band16<true, true>(wt.buf, ur, b16, ys[0], cs[0], nw, ys[1], cs[1], all)
                           : forward_band16<true, false>(wt.buf, ur, b16, ys[0], cs[0], nw, ys[1], cs[1], all);
            else relu ? forward_band16<false, true>(wt.buf, ur, b16, ys[0], cs[0], nw, ys[1], cs[1], all)
                      : forward_band16<false, false>(wt.buf, ur, b16, ys[0], cs[0], nw, ys[1], cs[1], all);
            continue;
          }
#endif
          if (bf16) finite ? run(std::true_type{}, std::true_type{}) : run(std::false_type{}, std::true_type{});
          else finite ? run(std::true_type{}, std::false_type{}) : run(std::false_type{}, std::false_type{});
        }
      }
      n += ns;
    }
  });
}

// The weight gradient's partial sums per lane: 16 windows a vector on
// AVX-512 (two 512-bit FMA pipes on the Intel Xeons), 8 otherwise.
#if BRISK_THIN_POOL_16
constexpr int64_t kLanes = 16;
#else
constexpr int64_t kLanes = 8;
#endif
// bf16: the 16-lane kernel rounds the gradient in its registers; the 8-lane
// one reads a rounded copy (gr_).
constexpr bool kRoundInRegisters = kLanes == 16;

ThinPoolWeightGrad::ThinPoolWeightGrad(const Geom2d& g, int64_t O, bool bf16)
    : g_(g), O_(O), bf16_(bf16), xr_(bf16 ? size_t(2 * g.H * g.W) : 0),
      gr_(bf16 && !kRoundInRegisters ? size_t(O * (g.H / 2) * (g.W / 2) + 8) : 0, 0.f),
      acc_(size_t(O * 17 * kLanes), 0.f) {}

namespace {

// The 8 windows' pooled gradient gv and codes ci (0..4), as 4 gradients g_p
// = gv where ci == p, else 0 (the window's output gradient dY [2][2], dY[py]
// [px] = g_{2 py + px}); lanes past n are 0.
struct WindowGrad {
  __m256 g[4];
  __m256 gv;
  __m256i ci;
  WindowGrad(const float* gy, const uint8_t* code, int64_t n, bool whole) {
    if (whole) {  // whole vectors; lanes past n masked off
      gv = _mm256_loadu_ps(gy);
      ci = _mm256_cvtepu8_epi32(load_bytes8(code, 8));
      if (n < 8) {
        __m256i keep = lane_mask8(n);
        gv = _mm256_and_ps(gv, _mm256_castsi256_ps(keep));
        ci = _mm256_and_si256(ci, keep);
      }
    } else {  // the end of the gradient: only the n lanes
      gv = _mm256_maskload_ps(gy, lane_mask8(n));
      ci = _mm256_cvtepu8_epi32(load_bytes8(code, n));
    }
    for (int p = 0; p < 4; ++p)
      g[p] = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(ci, _mm256_set1_epi32(p))), gv);
  }
};

// dU_ij += V_ij Z_ij for rows i = 2 H, 2 H + 1 of the 4x4 tile (acc [2][4]):
// Z = A dY A^T (A = [1 0; 1 1; 1 -1; 0 -1]): row i of A dY is r = (r0, r1)
// = (g0, g1), (g0 + g2, g1 + g3), (g0 - g2, g1 - g3), (-g2, -g3); then Z_i =
// (r0, r0 + r1, r0 - r1, -r1). s: the windows' V (Winograd-transformed taps).
// 8 windows a vector: the AVX2 path (with AVX-512 the weight gradient takes
// the masked form in ThinPoolWeightGrad::add).
template <int H>
inline void add_rows(const float* s, const __m256 (&g)[4], __m256 (&acc)[2][4]) {
  constexpr int64_t S = WindowTaps::kStride;
  for (int h = 0; h < 2; ++h) {
    const int i = 2 * H + h;
    const float* v = s + 4 * i * S;
    __m256 r0, r1;
    bool neg = i == 3;  // row 3 of A dY is -(g2, g3): its Z is taken negated, with negated multiply-adds
    if (i == 0) r0 = g[0], r1 = g[1];
    if (i == 1) r0 = g[0] + g[2], r1 = g[1] + g[3];
    if (i == 2) r0 = g[0] - g[2], r1 = g[1] - g[3];
    if (i == 3) r0 = g[2], r1 = g[3];
    __m256 z[4] = {r0, r0 + r1, r0 - r1, r1};
    for (int j = 0; j < 4; ++j) {
      __m256 vj = _mm256_loadu_ps(v + j * S);
      bool minus = neg != (j == 3);  // Z_i3 = -r1
      acc[h][j] = minus ? _mm256_fnmadd_ps(vj, z[j], acc[h][j]) : _mm256_fmadd_ps(vj, z[j], acc[h][j]);
    }
  }
}

#if BRISK_THIN_POOL_16
// The lane sums of 16 vectors of 16 lanes (x [16][16]) to out [16], in one
// fixed tree of vector additions: each level adds two halves of a pair of
// vectors side by side (256-bit halves, then 128-bit, 64-bit and 32-bit
// ones), 15 additions and 30 shuffles where summing each vector's lanes one
// by one took 240 scalar additions in 16 chains. The order is the same for
// every block of samples and thread count.
inline void lane_sums16(const float* x, float* out) {
  __m512 r[16];
  for (int i = 0; i < 8; ++i) {  // lanes 0-7: x_2i's halves added, 8-15: x_2i+1's
    const __m512 a = _mm512_loadu_ps(x + 32 * i), b = _mm512_loadu_ps(x + 32 * i + 16);
    r[i] = _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)) + _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i)  // 128-bit lane k: 4 partial sums of x_4i+k
    r[i] = _mm512_shuffle_f32x4(r[2 * i], r[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)) +
           _mm512_shuffle_f32x4(r[2 * i], r[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1));
  for (int i = 0; i < 2; ++i)  // 128-bit lane k: 2 partial sums of x_8i+k, then 2 of x_8i+4+k
    r[i] = _mm512_shuffle_ps(r[2 * i], r[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)) +
           _mm512_shuffle_ps(r[2 * i], r[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2));
  // 128-bit lane k: the sums of x_k, x_4+k, x_8+k, x_12+k
  const __m512 z = _mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(2, 0, 2, 0)) +
                   _mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(3, 1, 3, 1));
  alignas(64) float t[16];
  _mm512_store_ps(t, z);
  for (int xi = 0; xi < 16; ++xi) out[xi] = t[4 * (xi % 4) + xi / 4];
}
#endif

}  // namespace

// Winograd's F(2x2, 3x3) backwards (as WinogradWeightGrad does for the
// layer kernels): with V = B^T d B each window's transformed taps and Z = A
// dY A^T its transformed output gradient, dU = sum over windows of V . Z,
// and gw = G^T dU G at finish(). dY has one nonzero of its 4 (the code's
// position), so Z takes 8 adds from the g_p, and a vector of windows costs
// 16 multiply-adds where the direct form took 36. With 16 vector registers
// (AVX2) the 16 accumulators of a channel are taken in two passes of 8 (rows
// 0-1, then 2-3 of the tile), each reading the gradient again: 16 do not fit
// beside the g_p; with 32 (AVX-512), in one pass of masked multiply-adds
// (below). The bias's lanes sum the gradient where code < 4 (a ReLU'd
// window: 4).
void ThinPoolWeightGrad::add(const float* gyp_n, const uint8_t* code_n, const float* x_n, int64_t room,
                             int64_t samples) {
  WindowTaps wt(g_);
  const int64_t Lp = wt.Hp * wt.Wp, HW = g_.H * g_.W;
  // Two samples make one band where their planes fit (WindowTaps::pairs,
  // the 16-lane kernel); otherwise a sample at a time.
  if (samples > 2 || (samples == 2 && !(kLanes == 16 && wt.pairs()))) {
    for (int64_t s = 0; s < samples;) {
      const int64_t take = std::min<int64_t>(samples - s, kLanes == 16 && wt.pairs() ? 2 : 1);
      add(gyp_n + s * O_ * Lp, code_n + s * O_ * Lp, x_n + s * HW, room + (samples - s - take) * O_ * Lp, take);
      s += take;
    }
    return;
  }
  // bf16: the operands rounded once per sample (gr_: 8 zeros of room after
  // the planes); on AVX-512 the gradient is rounded in the registers instead.
  if (bf16_) {
    bf16_rounded(x_n, xr_.data(), samples * HW);
    x_n = xr_.data();
    if (!kRoundInRegisters) {
      bf16_rounded(gyp_n, gr_.data(), O_ * Lp);
      gyp_n = gr_.data();
      room = std::min<int64_t>(room, 8);
    }
  }
  const int64_t readable = O_ * Lp + room;
  for (int64_t r0 = 0; r0 < wt.Hp; r0 += wt.band) {
    // nw windows a sample; with two samples the band is their whole planes, the second's after the first's
    int64_t r1 = std::min(wt.Hp, r0 + wt.band), nw = (r1 - r0) * wt.Wp;
#if BRISK_THIN_POOL_16
    if (samples == 2) wt.fill_winograd_pair(x_n, x_n + HW);
    else wt.fill_winograd(x_n, r0, r1);
#else
    wt.fill_winograd(x_n, r0, r1);
#endif
    for (int64_t o = 0; o < O_; ++o) {
      float* ao = acc_.data() + o * 17 * kLanes;
      const int64_t first = o * Lp + r0 * wt.Wp;  // the band's first window in gyp_n and code_n
#if BRISK_THIN_POOL_16
      // 16 windows a vector; the gradient and codes read masked (no room
      // needed). One pass over the 16 accumulators (32 registers hold them).
      // Z = A dY A^T of a window whose dY is gv at (py, px) = (code / 2,
      // code % 2) is Z_ij = a_i(py) a_j(px) gv, a_0 = (1, 0), a_1 = (1, 1),
      // a_2 = (1, -1), a_3 = (0, -1): so each accumulator takes gv, with the
      // sign flipped where py = 1 (i = 2) or px = 1 (j = 2), negated when
      // one of i, j is 3, in the lanes where a_i(py) a_j(px) is not 0 (a
      // masked multiply-add): 16 multiply-adds and 10 mask and sign
      // operations a vector, where forming the g_p and the Z sums took 22.
      // A lane left out would have added V_ij * 0 (the accumulators start at
      // +0 and never become -0): the same bits as add_rows.
      auto pass16 = [&](auto rounded) {
        constexpr int64_t S = WindowTaps::kStride;
        __m512 acc[16], accb = _mm512_loadu_ps(ao + 256);
        for (int xi = 0; xi < 16; ++xi) acc[xi] = _mm512_loadu_ps(ao + xi * 16);
        const __m512i sign = _mm512_set1_epi32(int32_t(0x80000000u));
        // windows w < nw are the first sample's (at g0[w], c0[w]), the others the second's (g1[w - nw])
        const float* g0 = gyp_n + first;
        const uint8_t* c0 = code_n + first;
        const float* g1 = samples == 2 ? g0 + O_ * Lp - nw : g0;
        const uint8_t* c1 = samples == 2 ? c0 + O_ * Lp - nw : c0;
        const int64_t all = samples * nw;
        // The next channel's gradient and codes are prefetched a vector's
        // line at a time: the planes come from L3 (the cnn's 4 MB a batch),
        // and perf put the code loads' waits at the top of this loop. (As
        // integers: past the last channel they point outside the tensors,
        // which a prefetch may touch but a pointer may not.)
        const uintptr_t pg0 = reinterpret_cast<uintptr_t>(g0) + uintptr_t(Lp) * sizeof(float),
                        pg1 = reinterpret_cast<uintptr_t>(g1) + uintptr_t(Lp) * sizeof(float),
                        pc0 = reinterpret_cast<uintptr_t>(c0) + uintptr_t(Lp),
                        pc1 = reinterpret_cast<uintptr_t>(c1) + uintptr_t(Lp);
        for (int64_t v = 0; v < all; v += 16) {
          using U16 = uint32_t __attribute__((vector_size(64)));
          _mm_prefetch(reinterpret_cast<const char*>((v < nw ? pg0 : pg1) + uintptr_t(v) * sizeof(float)), _MM_HINT_T0);
          if (v % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>((v < nw ? pc0 : pc1) + uintptr_t(v)), _MM_HINT_T0);
          __m512 gv;
          __m128i ci;  // 0..3, or 4: ReLU'd
          if (v + 16 <= nw) {
            gv = _mm512_loadu_ps(g0 + v);
            ci = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c0 + v));
          } else if (v >= nw && v + 16 <= all) {
            gv = _mm512_loadu_ps(g1 + v);
            ci = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c1 + v));
          } else {  // masked: the first sample's last windows and the second's, 0 past the windows
            const __mmask16 m0 = v < nw ? first_lanes16(nw - v) : 0,
                            m1 = __mmask16(first_lanes16(std::min(all, v + 16) - v) & ~m0);
            gv = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m0, g0 + v), m1, g1 + v);
            ci = _mm_mask_loadu_epi8(_mm_maskz_loadu_epi8(m0, c0 + v), m1, c1 + v);
          }
          if constexpr (decltype(rounded)::value) gv = bf16_rounded_lanes<__m512, U16>(gv);
          // the gradient in the live windows, 0 in the ReLU'd ones and past n
          const __m512i g = _mm512_castps_si512(_mm512_maskz_mov_ps(_mm_cmplt_epu8_mask(ci, _mm_set1_epi8(4)), gv));
          accb = _mm512_add_ps(accb, _mm512_castsi512_ps(g));
          const __mmask16 x1 = _mm_test_epi8_mask(ci, _mm_set1_epi8(1)), y1 = _mm_test_epi8_mask(ci, _mm_set1_epi8(2));
          const __mmask16 x0 = __mmask16(~x1), y0 = __mmask16(~y1);
          const __m512i gx = _mm512_mask_xor_epi32(g, x1, g, sign), gy = _mm512_mask_xor_epi32(g, y1, g, sign);
          const __m512i gxy = _mm512_mask_xor_epi32(gx, y1, gx, sign);
          const __m512 gs[2][2] = {{_mm512_castsi512_ps(g), _mm512_castsi512_ps(gx)},
                                   {_mm512_castsi512_ps(gy), _mm512_castsi512_ps(gxy)}};  // [flip y][flip x]
          const float* vs = wt.buf + v;
          for (int i = 0; i < 4; ++i) {
            const __mmask16 mi = i == 0 ? y0 : i == 3 ? y1 : __mmask16(0xffff);
            for (int j = 0; j < 4; ++j) {
              const __mmask16 m = mi & (j == 0 ? x0 : j == 3 ? x1 : __mmask16(0xffff));
              const __m512 vij = _mm512_loadu_ps(vs + (4 * i + j) * S), gij = gs[i == 2][j == 2];
              __m512& a = acc[4 * i + j];
              const bool neg = (i == 3) != (j == 3);
              if ((i == 1 || i == 2) && (j == 1 || j == 2)) a = neg ? _mm512_fnmadd_ps(vij, gij, a) : _mm512_fmadd_ps(vij, gij, a);
              else a = neg ? _mm512_mask3_fnmadd_ps(vij, gij, a, m) : _mm512_mask3_fmadd_ps(vij, gij, a, m);
            }
          }
        }
        for (int xi = 0; xi < 16; ++xi) _mm512_storeu_ps(ao + xi * 16, acc[xi]);
        _mm512_storeu_ps(ao + 256, accb);
      };
      if (bf16_) pass16(std::true_type{});
      else pass16(std::false_type{});
      continue;
#endif
      auto pass = [&](auto half) {
        constexpr int H = decltype(half)::value;
        __m256 acc[2][4], accb = _mm256_loadu_ps(ao + 128);
        for (int h = 0; h < 2; ++h)
          for (int j = 0; j < 4; ++j) acc[h][j] = _mm256_loadu_ps(ao + (4 * (2 * H + h) + j) * 8);
        for (int64_t v = 0; v < nw; v += 8) {
          int64_t n = std::min<int64_t>(8, nw - v);
          WindowGrad wg(gyp_n + first + v, code_n + first + v, n, first + v + 8 <= readable);
          if (H == 0)
            accb = _mm256_add_ps(
                accb, _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(4), wg.ci)), wg.gv));
          add_rows<H>(wt.buf + v, wg.g, acc);
        }
        for (int h = 0; h < 2; ++h)
          for (int j = 0; j < 4; ++j) _mm256_storeu_ps(ao + (4 * (2 * H + h) + j) * 8, acc[h][j]);
        if (H == 0) _mm256_storeu_ps(ao + 128, accb);
      };
      pass(std::integral_constant<int, 0>{});
      pass(std::integral_constant<int, 1>{});
    }
  }
}

void ThinPoolWeightGrad::finish(float* gw, float* gb) {
#if !BRISK_THIN_POOL_16
  auto lanes_sum = [](const float* v) {  // kLanes lanes, in lane order
    float s = v[0];
    for (int64_t l = 1; l < kLanes; ++l) s += v[l];
    return s;
  };
#endif
  for (int64_t o = 0; o < O_; ++o) {
    const float* ao = acc_.data() + o * 17 * kLanes;
    float sums[16];  // dU's 16 values: each its kLanes lanes summed
#if BRISK_THIN_POOL_16
    lane_sums16(ao, sums);
#else
    for (int xi = 0; xi < 16; ++xi) sums[xi] = lanes_sum(ao + kLanes * xi);
#endif
    double du[4][4], t[3][4];  // dU, then G^T dU (G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1])
    for (int xi = 0; xi < 16; ++xi) du[xi / 4][xi % 4] = sums[xi];
    for (int j = 0; j < 4; ++j) {
      t[0][j] = du[0][j] + 0.5 * (du[1][j] + du[2][j]);
      t[1][j] = 0.5 * (du[1][j] - du[2][j]);
      t[2][j] = 0.5 * (du[1][j] + du[2][j]) + du[3][j];
    }
    for (int k = 0; k < 3; ++k) {  // (G^T dU) G
      gw[o * 9 + 3 * k + 0] += float(t[k][0] + 0.5 * (t[k][1] + t[k][2]));
      gw[o * 9 + 3 * k + 1] += float(0.5 * (t[k][1] - t[k][2]));
      gw[o * 9 + 3 * k + 2] += float(0.5 * (t[k][1] + t[k][2]) + t[k][3]);
    }
#if BRISK_THIN_POOL_16
    if (gb) gb[o] += _mm512_reduce_add_ps(_mm512_loadu_ps(ao + 16 * kLanes));  // a tree too, not a chain of 15
#else
    if (gb) gb[o] += lanes_sum(ao + 16 * kLanes);
#endif
  }
  std::fill(acc_.begin(), acc_.end(), 0.f);
}

}  // namespace brisk::kern::cpu
