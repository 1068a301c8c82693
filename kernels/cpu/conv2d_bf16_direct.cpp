// The bf16 direct convolution (see conv2d_bf16_direct.h). Layouts:
//   xp  [C2, Hp*Wp] pairs: (bf16 of x[2c2][r - ph][s - pw], bf16 of
//       x[2c2 + 1][...]) at r*Wp + s, zero in the border and past C;
//   wk  [ceil(O/32), C2*taps, 32] pairs: k step (c2, tap) of 32 output
//       channels, (w[o][2c2][tap], w[o][2c2 + 1][tap]), zero past O and C.
// Output position q = h*Wo + w reads its pairs at idx(q) = h*Wp + w plus
// the tap's offset i*dh*Wp + j*dw. A micro-tile is R positions (rows, one
// pointer each, broadcast; R = 14 or 8, below) by 32 output channels (two
// vectors of weights): 2R accumulators, 2 weight loads and R broadcasts per
// 2R dot products. The epilogue (bias, ReLU, bf16 rounding) runs in
// registers, and the tile is transposed in registers into y_n [O, L] (8x8
// blocks).
#include "kernels/cpu/conv2d_bf16_direct.h"

#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/thread_pool.h"

#define BRISK_GEMM_NS avx512bf16
#include "kernels/cpu/gemm/bf16_pack.h"
#include "kernels/cpu/conv2d_pair_planes.h"
#include "kernels/cpu/pool2d.h"

namespace brisk::kern::cpu {

namespace {

constexpr int64_t NR = 32;
// Rows (output positions) per micro-tile. The forward's tiles take 14: a
// whole output row of the cnn's 14 x 14 planes (no partial tile), and 28
// accumulators amortize each k step's two weight loads over more dot
// products: its input gradient ran 12% faster than with 8 rows on a Zen 4
// (12 rows: no faster; the pooled tiles' two windows and the weight
// gradient: no faster at 12 or 16). 14 is the most that fits the 32
// vector registers (28 accumulators, 2 weight vectors, 1 broadcast).
constexpr int kFwdRows = 14, kPoolRows = 8, kWgradRows = 8;
constexpr int kPairCols = kFwdRows / 2 * 2;  // pool_row_pair's positions per row (whole windows)

struct Plan {
  const Geom2d& g;
  int64_t O, C2, taps, Hp, Wp, plane, L, strips;
  std::vector<int64_t> kofs;  // [C2 * taps]: k step (c2, i, j) at bytes 4 * (c2 * plane + i*dh*Wp + j*dw)
  std::vector<int64_t> idx;   // [L]: h*Wp + w of output position q = h*Wo + w
  Plan(const Geom2d& geom, int64_t o)
      : g(geom), O(o), C2((g.C + 1) / 2), taps(g.kh * g.kw), Hp(g.H + 2 * g.ph), Wp(g.W + 2 * g.pw),
        plane(Hp * Wp), L(g.Ho * g.Wo), strips((o + NR - 1) / NR) {
    for (int64_t c2 = 0; c2 < C2; ++c2)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) kofs.push_back(4 * (c2 * plane + i * g.dh * Wp + j * g.dw));
    idx.resize(size_t(L));
    for (int64_t q = 0; q < L; ++q) idx[size_t(q)] = q / g.Wo * Wp + q % g.Wo;
  }
};

using avx512bf16::pairs16;  // (bf16 of lo, bf16 of hi) per lane
using avx512bf16::PairPlanes;

// This plan's pair planes (conv2d_pair_planes.h: pad_pairs, pad_pairs_pooled).
PairPlanes planes(const Plan& p) { return PairPlanes{p.g.C, p.g.H, p.g.W, p.g.ph, p.g.pw, p.Wp, p.plane}; }

// w [O, C, kh, kw] -> wk (see the layout above), rounded as the GEMM packs round.
void pack_weights(const float* w, const Plan& p, uint32_t* wk) {
  const int64_t C = p.g.C, T = p.taps;
  for (int64_t s = 0; s < p.strips; ++s)
    for (int64_t c2 = 0; c2 < p.C2; ++c2)
      for (int64_t t = 0; t < T; ++t) {
        uint32_t* d = wk + ((s * p.C2 + c2) * T + t) * NR;
        for (int64_t j = 0; j < NR; ++j) {
          int64_t o = s * NR + j;
          float lo = o < p.O ? w[(o * C + 2 * c2) * T + t] : 0.f;
          float hi = o < p.O && 2 * c2 + 1 < C ? w[(o * C + 2 * c2 + 1) * T + t] : 0.f;
          d[j] = avx512bf16::pair(avx512bf16::bf16_of(lo), avx512bf16::bf16_of(hi));
        }
      }
}

// A thread's padded copies (xp, xb below): planes whose interiors each
// sample overwrites and whose borders stay zero. Zeroed again only when the
// layout changes (another geometry), not per block of samples: a block of
// the weight gradient's padded copies is 256 KB for the cnn's second layer,
// and zeroing it per block cost about 1% of a bf16 training step.
template <class T>
struct PaddedPlanes {
  std::vector<T> v;
  int64_t key[5] = {-1, -1, -1, -1, -1};
  // n elements of planes holding H x W interiors at (ph, pw)
  T* get(size_t n, const Geom2d& g) {
    const int64_t k[5] = {int64_t(n), g.H, g.W, g.ph, g.pw};
    if (!std::equal(k, k + 5, key)) {
      v.assign(n, T(0));
      std::copy(k, k + 5, key);
    }
    return v.data();
  }
};

struct Epilogue {
  const float* bias;  // [32] of this strip, zero past O; null: none
  bool relu, bf16;
};

// A tile's accumulators acc[i][v] (rows i < m; lanes: columns 16v ..
// 16v + 15, those below n live) stored transposed: d[col * ld + i] (+)= row
// i's value at col, 8x8 blocks transposed in registers (R: 8, 12 or 16 rows
// as groups of 8; a group's rows past R are don't-cares, masked off).
template <int R>
void store_transposed(__m512 (&acc)[R][2], int m, int n, float* d, int64_t ld, bool accumulate) {
  for (int r0 = 0; r0 < R && r0 < m; r0 += 8) {
    const int mg = std::min(8, m - r0);
    const __mmask8 live = __mmask8((1u << mg) - 1);
    for (int v = 0; v < 2; ++v)
      for (int h = 0; h < 2; ++h) {
        int c0 = 16 * v + 8 * h;
        if (c0 >= n) break;
        __m256i blk[8];  // rows: the tile's rows r0 ..; after the transpose, rows: columns c0 .. c0 + 7
        for (int i = 0; i < 8; ++i) {
          const __m512& a = acc[std::min(r0 + i, R - 1)][v];
          blk[i] = (__m256i)(h ? _mm512_extractf32x8_ps(a, 1) : _mm512_castps512_ps256(a));
        }
        avx512bf16::transpose8(blk);
        for (int j = 0; j < 8 && c0 + j < n; ++j) {
          float* o = d + (c0 + j) * ld + r0;
          __m256 x = (__m256)blk[j];
          if (accumulate) x = _mm256_add_ps(_mm256_maskz_loadu_ps(live, o), x);
          if (mg == 8) _mm256_storeu_ps(o, x);
          else _mm256_mask_storeu_ps(o, live, x);
        }
      }
  }
}

// The micro-kernel of all three products: acc[i][v] = sum over k steps k
// of rows[i]'s pair at byte rows[i] + kofs[k] (broadcast) . b's pairs k,
// lanes 16v .. 16v + 15 (b: [K, 32] pairs). Rows past m repeat the last.
template <int R>
inline void micro(const char* const* rows, int m, const int64_t* kofs, int64_t K, const uint32_t* b,
                  __m512 (&acc)[R][2]) {
  const char* r[R];
  for (int i = 0; i < R; ++i) r[i] = rows[std::min(i, m - 1)];
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k, b += NR) {
    const int64_t o = kofs[k];
    __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      uint32_t v;
      std::memcpy(&v, r[i] + o, sizeof v);
      __m512bh a = (__m512bh)_mm512_set1_epi32(int(v));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
    }
  }
}

// A forward tile's sums: positions idx[0..m) (m <= R; their offsets into
// the padded planes xp) by the strip's 32 channels (weights wk).
template <int R>
inline void tile_sums(const Plan& p, const uint32_t* xp, const int64_t* idx, int m, const uint32_t* wk,
                      __m512 (&acc)[R][2]) {
  const char* rows[R];
  for (int i = 0; i < m; ++i) rows[i] = reinterpret_cast<const char*>(xp + idx[i]);
  micro(rows, m, p.kofs.data(), int64_t(p.kofs.size()), wk, acc);
}

// Positions idx[0..m) (m <= R) by the strip's channels [0, n) (n <= 32):
// yo[ch * L + i] = epilogue(sum over k steps), yo = y_n + (strip's first
// channel) * L + (first position).
template <int R>
void tile(const Plan& p, const uint32_t* xp, const int64_t* idx, int m, const uint32_t* wk, const Epilogue& ep,
          float* yo, int n) {
  __m512 acc[R][2];
  tile_sums(p, xp, idx, m, wk, acc);
  using V = float __attribute__((vector_size(64)));
  using U = uint32_t __attribute__((vector_size(64)));
  for (int v = 0; v < 2; ++v) {
    __m512 b = ep.bias ? _mm512_loadu_ps(ep.bias + 16 * v) : _mm512_setzero_ps();
    for (int i = 0; i < R; ++i) {
      __m512 x = _mm512_add_ps(acc[i][v], b);
      if (ep.relu) x = _mm512_max_ps(_mm512_setzero_ps(), x);  // 0 > x ? 0 : x (NaN kept), std::max(x, 0.f)'s rule
      if (ep.bf16) x = (__m512)bf16_rounded_lanes<V, U>((V)x);
      acc[i][v] = x;
    }
  }
  store_transposed<R>(acc, m, n, yo, p.L, false);
}

constexpr int64_t kSampleBlock = 2;

// Rows rows[0..m) of gw^T (taps (c, i, j): bytes into the padded bf16
// planes) by the strip's channels [0, n): gw[ch * CKK + row] += sum over k
// pairs of x(row, pair) . gy(pair, ch). The pair k2 of a row is the 32 bits
// at rows[i] + kofs[k2] (two bf16 positions of an output row, shifted by
// the tap); b holds the strip's gy pairs [kp, 32].
template <int R>
void wgrad_tile(const char* const* rows, int m, const int64_t* kofs, int64_t kp, const uint32_t* b, float* gw,
                int64_t CKK, int n) {
  __m512 acc[R][2];
  micro<R>(rows, m, kofs, kp, b, acc);
  store_transposed<R>(acc, m, n, gw, CKK, true);
}

}  // namespace

struct Bf16DirectWeightGrad::Impl {
  const Geom2d& g;
  int64_t O, S, taps, Hp, Wp, plane, L, kp, strips, CKK, count = 0;
  std::vector<int64_t> tapoff;  // [taps]
  std::vector<int64_t> kofs;    // [S * kp]: sample s's pair k2 at bf16 s * C * plane + h * Wp + w, (h, w) = position 2k2
  // The calling thread's buffers (one object per thread; kept between
  // objects, as a block of samples each, so that they are not mapped and
  // faulted in again per block):
  uint16_t* xb;                         // [S, C, plane] bf16, zero border (xb_buf's)
  std::vector<uint32_t>& gyp = gy_buf;  // [strips, S * kp, 32] pairs of gy_n^T
  static thread_local PaddedPlanes<uint16_t> xb_buf;
  static thread_local std::vector<uint32_t> gy_buf;
  void pad_x(const float* x_n);
  Impl(const Geom2d& geom, int64_t o, int64_t samples)
      : g(geom), O(o), S(samples), taps(g.kh * g.kw), Hp(g.H + 2 * g.ph), Wp(g.W + 2 * g.pw), plane(Hp * Wp),
        L(g.Ho * g.Wo), kp(L / 2), strips((o + NR - 1) / NR), CKK(g.C * taps) {
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) tapoff.push_back(i * g.dh * Wp + j * g.dw);
    kofs.resize(size_t(S * kp));
    for (int64_t s = 0; s < S; ++s)
      for (int64_t k2 = 0; k2 < kp; ++k2) {
        int64_t q = 2 * k2;
        kofs[size_t(s * kp + k2)] = 2 * (s * g.C * plane + q / g.Wo * Wp + q % g.Wo);  // bytes
      }
    xb = xb_buf.get(size_t(S * g.C * plane), g);
    if (gyp.size() < size_t(strips * S * kp * NR)) gyp.resize(size_t(strips * S * kp * NR));
  }
};

thread_local PaddedPlanes<uint16_t> Bf16DirectWeightGrad::Impl::xb_buf;
thread_local std::vector<uint32_t> Bf16DirectWeightGrad::Impl::gy_buf;

Bf16DirectWeightGrad::Bf16DirectWeightGrad(const Geom2d& g, int64_t O, int64_t samples)
    : impl_(new Impl(g, O, samples)) {}
Bf16DirectWeightGrad::~Bf16DirectWeightGrad() = default;

// x_n [C, H, W] -> the next sample's padded bf16 planes.
void Bf16DirectWeightGrad::Impl::pad_x(const float* x_n) {
  uint16_t* xs = xb + count * g.C * plane;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t h = 0; h < g.H; ++h) {
      const float* src = x_n + (c * g.H + h) * g.W;
      uint16_t* o = xs + c * plane + (h + g.ph) * Wp + g.pw;
      for (int64_t w0 = 0; w0 < g.W; w0 += 16) {
        __mmask16 k = g.W - w0 >= 16 ? __mmask16(0xffff) : __mmask16((1u << (g.W - w0)) - 1);
        __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, src + w0));
        _mm256_mask_storeu_epi16(o + w0, k, v);
      }
    }
}

void Bf16DirectWeightGrad::add(const float* gy_n, const float* x_n) {
  Impl& m = *impl_;
  BRISK_CHECK(m.count < m.S, "Bf16DirectWeightGrad: more samples than the ", m.S, " it was made for");
  m.pad_x(x_n);
  // gy_n^T [L, O] is column-major: each column (an output channel) is a run along k.
  for (int64_t s = 0; s < m.strips; ++s)
    avx512bf16::pack_b_pairs<NR>(MatF{gy_n, 1, m.L}, 0, m.L, s * NR, std::min(NR, m.O - s * NR), m.kp,
                                 m.gyp.data() + (s * m.S + m.count) * m.kp * NR);
  ++m.count;
}

void Bf16DirectWeightGrad::add_pooled(const float* gq, const uint8_t* cq, int64_t Hq, int64_t Wq, const float* x_n,
                                      float* gb) {
  Impl& m = *impl_;
  BRISK_CHECK(m.count < m.S, "Bf16DirectWeightGrad: more samples than the ", m.S, " it was made for");
  BRISK_CHECK(2 * Hq <= m.g.Ho && 2 * Wq == m.g.Wo, "Bf16DirectWeightGrad: pooled planes ", Hq, "x", Wq,
              " do not tile the ", m.g.Ho, "x", m.g.Wo, " output");
  m.pad_x(x_n);
  const int64_t O = m.O, OP = m.strips * NR, Lq = Hq * Wq, L16 = m.L / 16 * 16;
  // Window-major copies [Lq, OP] of the pooled gradient (rounded to bf16)
  // and of its codes: a window's 32 channels of a strip are then 2 vectors.
  static thread_local std::vector<float> tv_buf, lanes_buf;
  static thread_local std::vector<uint32_t> tc_buf;
  if (tv_buf.size() < size_t(Lq * OP)) {
    tv_buf.resize(size_t(Lq * OP));
    tc_buf.resize(size_t(Lq * OP));
  }
  if (lanes_buf.size() < size_t(17 * OP)) lanes_buf.resize(size_t(17 * OP));
  float* const tv = tv_buf.data();
  uint32_t* const tc = tc_buf.data();
  using V = float __attribute__((vector_size(32)));
  using U = uint32_t __attribute__((vector_size(32)));
  const int64_t o8 = O / 8 * 8, w8 = Lq / 8 * 8;
  for (int64_t o0 = 0; o0 < o8; o0 += 8)
    for (int64_t w0 = 0; w0 < w8; w0 += 8) {
      __m256i v[8], k[8];
      for (int i = 0; i < 8; ++i) {
        v[i] = (__m256i)bf16_rounded_lanes<V, U>((V)_mm256_loadu_ps(gq + (o0 + i) * Lq + w0));
        k[i] = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(cq + (o0 + i) * Lq + w0)));
      }
      avx512bf16::transpose8(v);  // v[j]: window w0 + j, channels o0 .. o0 + 7
      avx512bf16::transpose8(k);
      for (int j = 0; j < 8; ++j) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(tv + (w0 + j) * OP + o0), v[j]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(tc + (w0 + j) * OP + o0), k[j]);
      }
    }
  for (int64_t o = 0; o < OP; ++o)  // the edges; channels past O: zero
    for (int64_t wn = o < o8 ? w8 : 0; wn < Lq; ++wn) {
      tv[wn * OP + o] = o < O ? bf16_rounded(gq[o * Lq + wn]) : 0.f;
      tc[wn * OP + o] = o < O ? cq[o * Lq + wn] : 0u;
    }
  // The bias: per channel, 16 lanes by position mod 16 below L16, a tail
  // past it, then tail + lanes in order: conv2d.cpp's sum16<true> over the
  // expanded rows, the same additions in the same order (its zeros included:
  // adding +0 changes no partial sum, so the rows outside the windows are skipped).
  float* lanes = lanes_buf.data();  // [16, OP], then the tail [OP]
  if (gb) std::fill(lanes, lanes + 17 * OP, 0.f);
  const int64_t rows = Hq * m.g.Wo;  // pairs in the windows' rows (2 Hq rows of Wo / 2)
  for (int64_t s = 0; s < m.strips; ++s) {
    uint32_t* dst = m.gyp.data() + (s * m.S + m.count) * m.kp * NR;
    for (int64_t k2 = 0; k2 < m.kp; ++k2, dst += NR) {
      if (k2 >= rows) {  // below the last row of windows: no gradient
        _mm512_storeu_si512(dst, _mm512_setzero_si512());
        _mm512_storeu_si512(dst + 16, _mm512_setzero_si512());
        continue;
      }
      const int64_t q = 2 * k2, h = q / m.g.Wo, win = h / 2 * Wq + q % m.g.Wo / 2;
      const __m512i at_lo = _mm512_set1_epi32(int(2 * (h % 2))), at_hi = _mm512_set1_epi32(int(2 * (h % 2) + 1));
      for (int v = 0; v < 2; ++v) {
        const int64_t col = win * OP + s * NR + 16 * v;
        __m512 gv = _mm512_loadu_ps(tv + col);
        __m512i cv = _mm512_loadu_si512(tc + col);
        __m512 lo = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(cv, at_lo), gv);  // position q
        __m512 hi = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(cv, at_hi), gv);  // position q + 1
        _mm512_storeu_si512(dst + 16 * v, pairs16(lo, hi));
        if (gb) {
          float* a = lanes + (q < L16 ? q % 16 : 16) * OP + s * NR + 16 * v;
          _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), lo));
          float* b = lanes + (q + 1 < L16 ? (q + 1) % 16 : 16) * OP + s * NR + 16 * v;
          _mm512_storeu_ps(b, _mm512_add_ps(_mm512_loadu_ps(b), hi));
        }
      }
    }
  }
  if (gb)
    for (int64_t o = 0; o < O; ++o) {
      float t = lanes[16 * OP + o];
      for (int u = 0; u < 16; ++u) t += lanes[u * OP + o];
      gb[o] += t;
    }
  ++m.count;
}

void Bf16DirectWeightGrad::finish(float* gw) {
  Impl& m = *impl_;
  if (m.count == 0) return;
  for (int64_t s = 0; s < m.strips; ++s) {
    const uint32_t* b = m.gyp.data() + s * m.S * m.kp * NR;
    int n = int(std::min(NR, m.O - s * NR));
    for (int64_t r0 = 0; r0 < m.CKK; r0 += kWgradRows) {
      const char* rows[kWgradRows];
      int mr = int(std::min<int64_t>(kWgradRows, m.CKK - r0));
      for (int i = 0; i < mr; ++i) {
        int64_t row = r0 + i, c = row / m.taps;
        rows[i] = reinterpret_cast<const char*>(m.xb + c * m.plane + m.tapoff[size_t(row % m.taps)]);
      }
      wgrad_tile<kWgradRows>(rows, mr, m.kofs.data(), m.count * m.kp, b, gw + s * NR * m.CKK + r0, m.CKK, n);
    }
  }
}

namespace {

// The forwards' frame: w packed, the bias padded to whole strips, the
// samples on the pool, each copied into the thread's padded pair planes;
// body(n, xp, wk, bpad) then computes sample n.
template <class Body>
void each_padded_sample(const Plan& p, const float* x, const float* w, const float* bias,
                        const ConvSampleSource* source, const PooledInput* pooled, const Body& body) {
  const Geom2d& g = p.g;
  const int64_t CHW = g.C * g.H * g.W;
  std::vector<uint32_t> wk(size_t(p.strips * p.C2 * p.taps * NR));
  pack_weights(w, p, wk.data());
  std::vector<float> bpad(size_t(p.strips * NR), 0.f);
  if (bias) std::copy(bias, bias + p.O, bpad.begin());
  parallel_for_blocks(0, g.N, kSampleBlock, [&](int64_t lo, int64_t hi) {
    static thread_local PaddedPlanes<uint32_t> pad;
    uint32_t* xp = pad.get(size_t(p.C2 * p.plane), g);  // the border: zero (this call's geometry)
    for (int64_t n = lo; n < hi; ++n) {
      if (pooled)
        pad_pairs_pooled(*pooled, n, planes(p), xp);
      else
        pad_pairs(source ? (*source)(n) : x + n * CHW, planes(p), xp);
      body(n, xp, wk.data(), bpad.data());
    }
  });
}

// One 2x2 window per lane (16 channels), its values y[2 * dy + dx], pooled
// by max_pool_2x2's rule: the first NaN in row-major order, else the first
// maximum, with its code 2 * dy + dx; then, with relu, v > 0 ? v : 0 and
// code 4 where v was not above 0 (pool2d.h's pool_window4, on 16 lanes).
inline void pool_window16(const __m512 (&y)[4], bool relu, __m512& best, __m512i& code) {
  best = y[0];
  code = _mm512_setzero_si512();
  for (int i = 1; i < 4; ++i) {
    __mmask16 take = _mm512_cmp_ps_mask(y[i], best, _CMP_GT_OQ) |
                     __mmask16(~_mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(y[i], y[i], _CMP_UNORD_Q));
    best = _mm512_mask_blend_ps(take, best, y[i]);
    code = _mm512_mask_blend_epi32(take, code, _mm512_set1_epi32(i));
  }
  if (relu) {
    __mmask16 live = _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_GT_OQ);
    best = _mm512_maskz_mov_ps(live, best);
    code = _mm512_mask_blend_epi32(live, _mm512_set1_epi32(4), code);
  }
}

// A pooled tile: its m rows (4 or 8) are m / 4 whole 2x2 windows, four
// positions each in row-major order, by the strip's 32 channels. The
// outputs get the bias and the bf16 rounding, then each window is pooled
// (and ReLU'd) in registers: yt[win * 32 + ch] and ct[win * 32 + ch] for
// the tile's windows win = 0, 1.
template <int R>
void pool_tile(const uint32_t* xp, const int64_t* idx, int m, const Plan& p, const uint32_t* wk, const float* bias32,
               bool relu, bool bf16, float* yt, uint32_t* ct) {
  __m512 acc[R][2];
  tile_sums<R>(p, xp, idx, m, wk, acc);
  using V = float __attribute__((vector_size(64)));
  using U = uint32_t __attribute__((vector_size(64)));
  for (int v = 0; v < 2; ++v) {
    const __m512 b = _mm512_loadu_ps(bias32 + 16 * v);
    for (int wi = 0; wi < m / 4; ++wi) {
      __m512 y4[4];
      for (int k = 0; k < 4; ++k) {
        __m512 x = _mm512_add_ps(acc[4 * wi + k][v], b);
        y4[k] = bf16 ? (__m512)bf16_rounded_lanes<V, U>((V)x) : x;
      }
      __m512 best;
      __m512i code;
      pool_window16(y4, relu, best, code);
      _mm512_storeu_ps(yt + wi * NR + 16 * v, best);
      _mm512_storeu_si512(ct + wi * NR + 16 * v, code);
    }
  }
}

// The pooled tiles by pairs of output rows: positions (2hq, c0 ..
// c0 + m) then (2hq + 1, c0 .. c0 + m) (m <= R, even), the first row's
// outputs (bias added, rounded) parked in top [R][32], the second row's
// pooled against them in registers: windows hq * Wq + c0 / 2 + j, j < m / 2,
// into yt and ct [windows, 32] as pool_tile writes them. The same sums,
// pooled in the same order, as pool_tile's: its tiles of 8 rows (two
// windows) only take whole windows, where a tile here is up to 14
// neighbouring positions of one output row.
template <int R>
void pool_row_pair(const uint32_t* xp, const int64_t* idx_top, const int64_t* idx_bottom, int m, const Plan& p,
                   const uint32_t* wk, const float* bias32, bool relu, bool bf16, float* yt, uint32_t* ct) {
  using V = float __attribute__((vector_size(64)));
  using U = uint32_t __attribute__((vector_size(64)));
  alignas(64) float top[R][NR];
  __m512 acc[R][2];
  const __m512 b[2] = {_mm512_loadu_ps(bias32), _mm512_loadu_ps(bias32 + 16)};
  auto finish = [&](__m512 x, int v) {
    x = _mm512_add_ps(x, b[v]);
    return bf16 ? (__m512)bf16_rounded_lanes<V, U>((V)x) : x;
  };
  tile_sums<R>(p, xp, idx_top, m, wk, acc);
  for (int i = 0; i < m; ++i)
    for (int v = 0; v < 2; ++v) _mm512_store_ps(&top[i][16 * v], finish(acc[i][v], v));
  tile_sums<R>(p, xp, idx_bottom, m, wk, acc);
  for (int j = 0; j < m / 2; ++j)
    for (int v = 0; v < 2; ++v) {
      const __m512 y4[4] = {_mm512_load_ps(&top[2 * j][16 * v]), _mm512_load_ps(&top[2 * j + 1][16 * v]),
                            finish(acc[2 * j][v], v), finish(acc[2 * j + 1][v], v)};
      __m512 best;
      __m512i code;
      pool_window16(y4, relu, best, code);
      _mm512_storeu_ps(yt + j * NR + 16 * v, best);
      _mm512_storeu_si512(ct + j * NR + 16 * v, code);
    }
}

// A strip's pooled values and codes, yt and ct [windows, 32], into y and
// code [nch, windows] (nch <= 32): 8x8 blocks transposed in registers (the
// codes narrowed to bytes after), the edges element by element.
void transpose_out(const float* yt, const uint32_t* ct, int64_t windows, int64_t nch, float* y, uint8_t* code) {
  int64_t w8 = windows / 8 * 8, c8 = nch / 8 * 8;
  for (int64_t c0 = 0; c0 < c8; c0 += 8)
    for (int64_t w0 = 0; w0 < w8; w0 += 8) {
      __m256i v[8], k[8];
      for (int i = 0; i < 8; ++i) {
        v[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yt + (w0 + i) * NR + c0));
        k[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ct + (w0 + i) * NR + c0));
      }
      avx512bf16::transpose8(v);  // v[j]: channel c0 + j at windows w0 .. w0 + 7
      avx512bf16::transpose8(k);
      for (int j = 0; j < 8; ++j) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + (c0 + j) * windows + w0), v[j]);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(code + (c0 + j) * windows + w0), _mm256_cvtepi32_epi8(k[j]));
      }
    }
  for (int64_t c = 0; c < nch; ++c)
    for (int64_t wn = c < c8 ? w8 : 0; wn < windows; ++wn) {
      y[c * windows + wn] = yt[wn * NR + c];
      code[c * windows + wn] = uint8_t(ct[wn * NR + c]);
    }
}

}  // namespace

void conv2d_forward_bf16_direct(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                                bool relu, bool bf16, float* y, const ConvSampleSink* sink,
                                const ConvSampleSource* source, const PooledInput* pooled) {
  const Plan p(g, O);
  const int64_t L = p.L;
  each_padded_sample(p, x, w, bias, source, pooled, [&](int64_t n, const uint32_t* xp, const uint32_t* wk, const float* bpad) {
    static thread_local std::vector<float> ybuf;  // y_n for the sink
    if (sink && ybuf.size() < size_t(O * L + kPoolSlack)) ybuf.resize(size_t(O * L + kPoolSlack));
    float* yn = sink ? ybuf.data() : y + n * O * L;
    for (int64_t s = 0; s < p.strips; ++s) {
      Epilogue ep{bias ? bpad + s * NR : nullptr, relu, bf16};
      const uint32_t* ws = wk + s * p.C2 * p.taps * NR;
      int nch = int(std::min(NR, O - s * NR));
      for (int64_t q = 0; q < L; q += kFwdRows)
        tile<kFwdRows>(p, xp, p.idx.data() + q, int(std::min<int64_t>(kFwdRows, L - q)), ws, ep, yn + s * NR * L + q, nch);
    }
    if (sink) (*sink)(n, yn);
  });
}

void conv2d_pool_forward_bf16_direct(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                                     bool relu, bool bf16, float* y, uint8_t* code) {
  const Plan p(g, O);
  const int64_t Hq = g.Ho / 2, Wq = g.Wo / 2, windows = Hq * Wq;
  // The tiles' rows: window after window (row-major), each window's 2x2
  // positions in row-major order (the pool's order for its first maximum).
  std::vector<int64_t> widx(size_t(4 * windows));
  for (int64_t wn = 0; wn < windows; ++wn)
    for (int k = 0; k < 4; ++k) {
      int64_t h = 2 * (wn / Wq) + k / 2, c = 2 * (wn % Wq) + k % 2;
      widx[size_t(4 * wn + k)] = h * p.Wp + c;
    }
  // Rows of at least 10 positions by row pairs (pool_row_pair); narrower
  // ones would leave most of its 14-row tiles empty.
  const bool row_pairs = g.Wo >= 10;
  each_padded_sample(p, x, w, bias, nullptr, nullptr, [&](int64_t n, const uint32_t* xp, const uint32_t* wk, const float* bpad) {
    // one strip's pooled values and codes, [windows, 32], then transposed into y_n [O, windows]
    static thread_local std::vector<float> yt;
    static thread_local std::vector<uint32_t> ct;
    if (yt.size() < size_t(windows * NR)) {
      yt.resize(size_t(windows * NR));
      ct.resize(size_t(windows * NR));
    }
    // local pointers: through the thread_local vectors, every store below
    // would reload their data pointers (they might alias)
    float* const yb = yt.data();
    uint32_t* const cb = ct.data();
    for (int64_t s = 0; s < p.strips; ++s) {
      const uint32_t* ws = wk + s * p.C2 * p.taps * NR;
      if (row_pairs) {
        for (int64_t hq = 0; hq < Hq; ++hq)
          for (int64_t c0 = 0; c0 < g.Wo - 1; c0 += kPairCols) {
            const int64_t* top = p.idx.data() + 2 * hq * g.Wo + c0;
            const int m = int(std::min<int64_t>(kPairCols, (g.Wo - c0) / 2 * 2));
            const int64_t win = hq * Wq + c0 / 2;
            pool_row_pair<kFwdRows>(xp, top, top + g.Wo, m, p, ws, bpad + s * NR, relu, bf16, yb + win * NR,
                                    cb + win * NR);
          }
      } else {
        for (int64_t q = 0; q < 4 * windows; q += kPoolRows)
          pool_tile<kPoolRows>(xp, widx.data() + q, int(std::min<int64_t>(kPoolRows, 4 * windows - q)), p, ws,
                               bpad + s * NR, relu, bf16, yb + q / 4 * NR, cb + q / 4 * NR);
      }
      transpose_out(yb, cb, windows, std::min(NR, O - s * NR), y + (n * O + s * NR) * windows,
                    code + (n * O + s * NR) * windows);
    }
  });
}

}  // namespace brisk::kern::cpu
