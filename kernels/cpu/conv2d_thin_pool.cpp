// The fused first layer + 2x2 max pool, forward and weight gradient (see the
// header). AVX2 + FMA code, run on the avx2 and avx512 sgemm builds.
#include "kernels/cpu/conv2d_thin_pool.h"

#include <immintrin.h>

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

constexpr int64_t kMaxSide = 1024;  // per-thread parity planes up to (1026 x 1040) floats

// Sample x_n [H, W] split by column parity into zero-bordered planes, laid
// out chunk by chunk: for the chunk of 8 windows at pooled column c0 = 8 ch
// and input row r (-1 .. H), 32 floats at buf + (ch * (H + 2) + r + 1) * 32:
// E[c0 - 1 .. c0 + 14] then O[c0 - 1 .. c0 + 14], E[j] = x[2j], O[j] =
// x[2j + 1], zero outside the plane. A chunk's taps are then at fixed
// offsets from one pointer (the kernels' address arithmetic is immediates):
// tap column m (0..3: O[c' - 1], E[c'], O[c'], E[c' + 1]) of row r at
// (r + 1) * 32 + (m even ? 16 : 0) + (m + 1) / 2 from the chunk's start.
struct ParityPlanes {
  static constexpr int64_t kRow = 32;
  int64_t H, W, Hp, Wp, nch, RW;
  float* buf;   // [nch][H + 2][32]
  float* line;  // one row's E then O, each RW floats, E[j] at j + 1 (zero borders)
  explicit ParityPlanes(const Geom2d& g)
      : H(g.H), W(g.W), Hp(g.H / 2), Wp(g.W / 2), nch((g.W / 2 + 7) / 8), RW(8 * ((g.W / 2 + 7) / 8) + 16) {
    // Per thread, kept between calls; zeroed when the shape changes (the
    // borders stay zero: fill writes only the plane's rows and columns).
    static thread_local std::vector<float> mem;
    static thread_local int64_t shape_h = -1, shape_w = -1;
    size_t want = size_t(nch * (H + 2) * kRow + 2 * RW + 16);
    if (mem.size() < want || shape_h != H || shape_w != W) {
      mem.assign(std::max(mem.size(), want), 0.f);
      shape_h = H, shape_w = W;
    }
    buf = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63));
    line = buf + nch * (H + 2) * kRow;
  }
  // The first float of chunk ch's row r.
  const float* at(int64_t ch, int64_t r) const { return buf + (ch * (H + 2) + r + 1) * kRow; }
  // Splits x_n into the planes; returns max |x_n|, or infinity if x_n holds
  // an infinity or a NaN.
  float fill(const float* x) {
    float* e = line + 1;
    float* o = line + RW + 1;
    const __m256 sign = _mm256_set1_ps(-0.f), inf = _mm256_set1_ps(INFINITY);
    __m256 mx = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    float smx = 0.f;
    bool sbad = false;
    for (int64_t r = 0; r < H; ++r) {
      const float* s = x + r * W;
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
      for (int64_t ch = 0; ch < nch; ++ch) {  // E[c0 - 1 ..] is line[c0 ..]
        float* d = buf + (ch * (H + 2) + r + 1) * kRow;
        for (int h = 0; h < 2; ++h) {
          _mm256_storeu_ps(d + 16 * h, _mm256_loadu_ps(line + h * RW + 8 * ch));
          _mm256_storeu_ps(d + 16 * h + 8, _mm256_loadu_ps(line + h * RW + 8 * ch + 8));
        }
      }
    }
    if (sbad || _mm256_movemask_ps(bad)) return INFINITY;
    alignas(32) float m[8];
    _mm256_store_ps(m, mx);
    for (float v : m) smx = std::max(smx, v);
    return smx;
  }
};

// Tap column m of row rr (0..3) from a chunk's row 2r' - 1.
inline const float* tap(const float* p, int rr, int m) {
  return p + rr * ParityPlanes::kRow + (m % 2 == 0 ? 16 : 0) + (m + 1) / 2;
}

// The 16 tap vectors of a chunk (src: its row 2r' - 1), row by row (input
// row 2r' - 1 + rr, column m), each loaded once: f(t, p, k) for every window
// position p = 2 dy + dx that has t as its tap k = 3 i + j, (i, j) =
// (rr - dy, m - dx). For a fixed p, k ascends: 36 calls in all.
template <class F>
inline void for_each_tap(const float* src, F&& f) {
#pragma GCC unroll 4
  for (int rr = 0; rr < 4; ++rr)
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {
      __m256 t = _mm256_loadu_ps(tap(src, rr, m));
#pragma GCC unroll 2
      for (int dy = 0; dy < 2; ++dy)
#pragma GCC unroll 2
        for (int dx = 0; dx < 2; ++dx) {
          int i = rr - dy, j = m - dx;
          if (i >= 0 && i <= 2 && j >= 0 && j <= 2) f(t, 2 * dy + dx, 3 * i + j);
        }
    }
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

// One chunk of 8 windows of output channel o, from src (its row 2r' - 1 in
// the parity planes) to the sample's yp and code [O, Hp, Wp] at out (n
// windows in the row; end: O * Hp * Wp). The 4 outputs y_p of each window
// (p = 2 dy + dx) are FMA chains over the taps k = 3 i + j in ascending
// order (for_each_tap), from 0. 9 weights + 4 chains + a tap fit the 16
// registers; two chunks at a time (8 chains) spilled and ran 40% slower.
// Finite: the outputs are known not to be NaN (pool_window4_finite).
template <bool Finite>
inline void forward_chunk(const float* src, const __m256 (&wv)[9], const float* bias, bool relu, int64_t out,
                          int64_t n, float* yp, uint8_t* code, int64_t end) {
  __m256 acc[4];
  for (int p = 0; p < 4; ++p) acc[p] = _mm256_setzero_ps();
  for_each_tap(src, [&](__m256 t, int p, int k) { acc[p] = _mm256_fmadd_ps(wv[k], t, acc[p]); });
  if (bias)  // no add without a bias: the thin forward's -0 stays -0
    for (int p = 0; p < 4; ++p) acc[p] = _mm256_add_ps(acc[p], _mm256_set1_ps(*bias));
  __m256 best;
  __m256i k;
  if constexpr (Finite) pool_window4_finite(acc, relu, best, k);
  else pool_window4(acc, relu, best, k);
  store_pooled8(yp, code, out, n, end, best, k);
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
    ParityPlanes pp(g);
    for (int64_t n = lo; n < hi; ++n) {
      float xmax = pp.fill(x + n * HW);
      float* yn = y + n * OP;
      uint8_t* cn = code + n * OP;
      for (int64_t o = 0; o < O; ++o) {
        __m256 wo[9];
        for (int k = 0; k < 9; ++k) wo[k] = _mm256_broadcast_ss(w + 9 * o + k);
        const float* bo = bias ? bias + o : nullptr;
        const int64_t base = o * pp.Hp * pp.Wp;
        auto run = [&](auto finite) {
          for (int64_t r = 0; r < pp.Hp; ++r)  // in order: lanes past a row land on later chunks
            for (int64_t ch = 0; ch < pp.nch; ++ch)
              forward_chunk<decltype(finite)::value>(pp.at(ch, 2 * r - 1), wo, bo, relu, base + r * pp.Wp + 8 * ch,
                                                     std::min<int64_t>(8, pp.Wp - 8 * ch), yn, cn, OP);
        };
        if (xmax * wabs[size_t(o)] + babs[size_t(o)] < 1e38f) run(std::true_type{});
        else run(std::false_type{});
      }
    }
  });
}

ThinPoolWeightGrad::ThinPoolWeightGrad(const Geom2d& g, int64_t O) : g_(g), O_(O), acc_(size_t(O * 10 * 8), 0.f) {}

// For each window chunk: g_p = the pooled gradient where code == p, else 0
// (lanes past the row: 0); then gw_k += g_p * t for every tap t of position
// p (for_each_tap): 9 accumulators, 36 FMAs.
// The bias's lanes sum the gradient where code < 4 (a ReLU'd window: 4).
void ThinPoolWeightGrad::add(const float* gyp_n, const uint8_t* code_n, const float* x_n, int64_t room) {
  ParityPlanes pp(g_);
  pp.fill(x_n);
  const int64_t Lp = pp.Hp * pp.Wp, readable = O_ * Lp + room;
  for (int64_t o = 0; o < O_; ++o) {
    float* ao = acc_.data() + o * 80;
    __m256 acc[9], accb = _mm256_loadu_ps(ao + 72);
    for (int k = 0; k < 9; ++k) acc[k] = _mm256_loadu_ps(ao + 8 * k);
    const float* go = gyp_n + o * Lp;
    const uint8_t* co = code_n + o * Lp;
    for (int64_t r = 0; r < pp.Hp; ++r)
      for (int64_t ch = 0; ch < pp.nch; ++ch) {
        int64_t at = r * pp.Wp + 8 * ch, n = std::min<int64_t>(8, pp.Wp - 8 * ch);
        const float* src = pp.at(ch, 2 * r - 1);
        __m256 gv;
        __m256i ci;
        if (o * Lp + at + 8 <= readable) {  // whole vectors; lanes past the row (the next row's) masked off
          gv = _mm256_loadu_ps(go + at);
          ci = _mm256_cvtepu8_epi32(load_bytes8(co + at, 8));
          if (n < 8) {
            __m256i keep = lane_mask8(n);
            gv = _mm256_and_ps(gv, _mm256_castsi256_ps(keep));
            ci = _mm256_and_si256(ci, keep);
          }
        } else {  // the end of the gradient: only the row's lanes
          gv = _mm256_maskload_ps(go + at, lane_mask8(n));
          ci = _mm256_cvtepu8_epi32(load_bytes8(co + at, n));
        }
        accb = _mm256_add_ps(accb, _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(4), ci)), gv));
        __m256 gp[4];
        for (int p = 0; p < 4; ++p)
          gp[p] = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(ci, _mm256_set1_epi32(p))), gv);
        for_each_tap(src, [&](__m256 t, int p, int k) { acc[k] = _mm256_fmadd_ps(gp[p], t, acc[k]); });
      }
    for (int k = 0; k < 9; ++k) _mm256_storeu_ps(ao + 8 * k, acc[k]);
    _mm256_storeu_ps(ao + 72, accb);
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
