// Direct bf16 convolutions on AMX tiles (see conv2d_amx_direct.h).
//
// Tiles: palette 1, all 16 rows x 64 bytes (amx::ensure_config). C's 32x32
// block lives in tmm0-3 (two row halves x two column halves), A's two
// 16-row halves in tmm4-5, B's two 16-column halves in tmm6-7: each loaded
// operand tile feeds two products, as in amx_tile.h's GEMM micro-kernel.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include "kernels/cpu/conv2d_amx_direct.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/env_switch.h"
#include "core/thread_pool.h"

#define BRISK_GEMM_NS amx
#include "kernels/cpu/gemm/amx_tile.h"
#include "kernels/cpu/gemm/bf16_pack.h"
#include "kernels/cpu/conv2d_pair_planes.h"
#include "kernels/cpu/pool2d.h"

namespace brisk::kern::cpu {

namespace {

std::atomic<bool> g_on{env_switch("BRISK_CONV_AMX_DIRECT", true)};

inline int64_t up32(int64_t v) { return (v + 31) / 32 * 32; }
inline __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

// The padded grid of a "same" geometry. Output position q = r * Wq + c, q <
// Qp (Q = H * Wq rounded up to whole 32-position blocks); tap t = (i, j)
// reads padded position q + delta(t). A plane holds every position any tap
// of any q < Qp reads, zero outside the input.
struct Grid {
  int64_t H, W, kw, taps, Wq, Q, Qp, plane, ph, pw;
  explicit Grid(const Geom2d& g)
      : H(g.H), W(g.W), kw(g.kw), taps(g.kh * g.kw), Wq(g.W + g.kw - 1), Q(g.H * Wq), Qp(up32(Q)),
        plane(up32(Qp + (g.kh - 1) * Wq + g.kw - 1)), ph(g.ph), pw(g.pw) {}
  int64_t delta(int64_t t) const { return (t / kw) * Wq + t % kw; }
  int64_t at(int64_t r, int64_t c) const { return (r + ph) * Wq + c + pw; }  // input (r, c) in the plane
};

// A grown thread-local buffer, zeroed when `key` changes (a different
// geometry): the planes' borders and padding channels are never written, so
// they stay zero from call to call.
template <class T>
T* zeroed_buffer(std::vector<T>& buf, std::vector<int64_t>& key, std::vector<int64_t> want, size_t n) {
  if (buf.size() < n + 32 || key != want) {
    buf.assign(std::max(buf.size(), n + 32), T{});
    key = std::move(want);
  }
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
}

// w [O, C, kh, kw] -> A tiles [Op / 16][taps][Cp / 32] of 16 rows (o) x 32
// bf16 (channels), zero past O and C. In Steps: 64-byte aligned, so each
// tile row is one cache line (a std::vector<uint16_t> is only 16-byte
// aligned; where its rows straddled two lines the cnn's second-layer
// kernels ran 1.5x slower, process by process as the allocation landed).
std::vector<amx::Step> pack_weights(const float* w, int64_t O, int64_t C, int64_t taps, int64_t Op, int64_t Cp) {
  const int64_t kb = Cp / 32, n = Op * taps * Cp;  // a multiple of 512 bf16: whole Steps
  std::vector<float> f(static_cast<size_t>(n), 0.f);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < taps; ++t)
        f[size_t((((o / 16) * taps + t) * kb + c / 32) * 512 + (o % 16) * 32 + c % 32)] = w[(o * C + c) * taps + t];
  std::vector<amx::Step> a(static_cast<size_t>(n / 32));
  uint16_t* p = reinterpret_cast<uint16_t*>(a.data());
  for (int64_t i = 0; i < n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(&f[i])));
  return a;
}

}  // namespace

bool conv_amx_direct_enabled() { return g_on.load(std::memory_order_relaxed); }
void set_conv_amx_direct(bool on) { g_on.store(on, std::memory_order_relaxed); }

bool conv2d_amx_direct_applies(const Geom2d& g) {
  return conv_amx_direct_enabled() && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.Ho == g.H && g.Wo == g.W && g.kh >= 1 && g.kw >= 1 &&
         g.H * (g.W + g.kw) < (int64_t(1) << 24) && g.C * g.kh * g.kw < (int64_t(1) << 20) &&
         g.C * 4 >= up32(g.C) * 3;
}

void conv2d_forward_amx_direct(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                               bool relu, bool bf16, float* y, const ConvSampleSink* sink,
                               const ConvSampleSource* source, const PooledInput* pooled) {
  const Grid d(g);
  const amx::PairPlanes planes{g.C, d.H, d.W, d.ph, d.pw, d.Wq, d.plane};
  const int64_t C = g.C, Cp = up32(C), Op = up32(O), nkb = Cp / 32, L = d.H * d.W;
  const std::vector<amx::Step> pw = pack_weights(w, O, C, d.taps, Op, Cp);
  const uint16_t* pa = reinterpret_cast<const uint16_t*>(pw.data());
  parallel_for(0, g.N, 1, [&](int64_t lo, int64_t hi) {
    static thread_local std::vector<uint32_t> xbuf;
    static thread_local std::vector<int64_t> xkey;
    static thread_local std::vector<float> yq_buf, ybuf;
    uint32_t* xp = zeroed_buffer(xbuf, xkey, {d.H, d.W, d.Wq, d.plane, Cp}, size_t(Cp / 2 * d.plane));
    if (yq_buf.size() < size_t(Op * d.Qp + 16)) yq_buf.resize(size_t(Op * d.Qp + 16));
    float* yq = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(yq_buf.data()) + 63) & ~uintptr_t(63));
    if (sink && ybuf.size() < size_t(O * L + kPoolSlack)) ybuf.resize(size_t(O * L + kPoolSlack));
    amx::ensure_config();
    const int64_t sb = d.plane * 4, sc = d.Qp * 4;
    for (int64_t n = lo; n < hi; ++n) {
      if (pooled)
        amx::pad_pairs_pooled(*pooled, n, planes, xp);
      else
        amx::pad_pairs(source ? (*source)(n) : x + n * C * L, planes, xp);
      // yq [Op, Qp] = sum over taps and 32-channel blocks of A tile @ shifted B tile
      for (int64_t ob = 0; ob < Op / 16; ob += 2)
        for (int64_t q0 = 0; q0 < d.Qp; q0 += 32) {
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
          for (int64_t t = 0; t < d.taps; ++t)
            for (int64_t k = 0; k < nkb; ++k) {
              const uint16_t* a0 = pa + ((ob * d.taps + t) * nkb + k) * 512;
              const uint16_t* a1 = a0 + d.taps * nkb * 512;  // o-block ob + 1
              const uint32_t* b = xp + k * 16 * d.plane + q0 + d.delta(t);
              _tile_loadd(4, a0, 64);
              _tile_loadd(6, b, sb);
              _tile_loadd(7, b + 16, sb);
              _tile_dpbf16ps(0, 4, 6);
              _tile_dpbf16ps(1, 4, 7);
              _tile_loadd(5, a1, 64);
              _tile_dpbf16ps(2, 5, 6);
              _tile_dpbf16ps(3, 5, 7);
            }
          float* c = yq + ob * 16 * d.Qp + q0;
          _tile_stored(0, c, sc);
          _tile_stored(1, c + 16, sc);
          _tile_stored(2, c + 16 * d.Qp, sc);
          _tile_stored(3, c + 16 * d.Qp + 16, sc);
        }
      // the grid's valid columns -> y_n [O, H, W], with + bias, ReLU, bf16 rounding
      float* yn = sink ? ybuf.data() : y + n * O * L;
      for (int64_t o = 0; o < O; ++o) {
        const __m512 bo = _mm512_set1_ps(bias ? bias[o] : 0.f);
        for (int64_t r = 0; r < d.H; ++r)
          for (int64_t c = 0; c < d.W; c += 16) {
            __mmask16 m = lanes(d.W - c);
            __m512 v = _mm512_maskz_loadu_ps(m, yq + o * d.Qp + r * d.Wq + c);
            if (bias) v = _mm512_add_ps(v, bo);
            if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);  // NaN stays NaN, as std::max(v, 0)
            if (bf16) v = amx::round_bf16(v);
            _mm512_mask_storeu_ps(yn + o * L + r * d.W + c, m, v);
          }
      }
      if (sink) (*sink)(n, yn);
    }
  });
}

struct AmxDirectWeightGrad::Impl {
  Grid d;
  int64_t C, O, Cp, Op, S, held = 0, L;
  float* gwt;
  uint16_t* xr;        // [S][Cp][plane]: the samples' inputs, bf16 rows (channels), zero-bordered
  uint32_t* gp;        // [S][Qp / 2][Op]: the samples' gradients as pairs of positions, columns o
  float* acc;          // [taps][Cp][Op]: gw^T by tap
  std::vector<__mmask16> mlo, mhi;  // per 32-position block: which positions are on the grid
  std::vector<int64_t> first;       // per block: the index in y_n of its first position on the grid
  Impl(const Geom2d& g, int64_t o, int64_t s, float* dst)
      : d(g), C(g.C), O(o), Cp(up32(g.C)), Op(up32(o)), S(std::max<int64_t>(1, s)), L(g.H * g.W), gwt(dst) {
    // Per thread, kept between blocks (one object per thread at a time), so
    // a block allocates nothing.
    static thread_local std::vector<uint16_t> xbuf;
    static thread_local std::vector<uint32_t> gbuf;
    static thread_local std::vector<float> abuf;
    static thread_local std::vector<int64_t> xkey, gkey, akey;
    acc = zeroed_buffer(abuf, akey, {d.taps, Cp, Op}, size_t(d.taps * Cp * Op));
    std::fill(acc, acc + d.taps * Cp * Op, 0.f);
    xr = zeroed_buffer(xbuf, xkey, {d.H, d.W, d.Wq, d.plane, Cp, S}, size_t(S * Cp * d.plane));
    gp = zeroed_buffer(gbuf, gkey, {d.H, d.W, d.Wq, d.plane, Op, S}, size_t(S * d.Qp / 2 * Op));
    for (int64_t q0 = 0; q0 < d.Qp; q0 += 32) {
      uint32_t bits = 0;
      int64_t f = -1;
      for (int64_t k = 0; k < 32; ++k) {
        int64_t q = q0 + k;
        if (q < d.Q && q % d.Wq < d.W) {
          bits |= 1u << k;
          if (f < 0) f = (q / d.Wq) * d.W + q % d.Wq;
        }
      }
      mlo.push_back(__mmask16(bits & 0xffff));
      mhi.push_back(__mmask16(bits >> 16));
      first.push_back(std::max<int64_t>(f, 0));
    }
  }
  // The held samples' products, added into acc: each group of 4 accumulator
  // tiles (32 channels x 32 outputs of one tap) is loaded and stored once.
  void multiply() {
    amx::ensure_config();
    const int64_t sa = d.plane * 2, sb = Op * 4, sc = Op * 4, gq = d.Qp / 2 * Op;
    for (int64_t t = 0; t < d.taps; ++t)
      for (int64_t cb = 0; cb < Cp; cb += 32)
        for (int64_t ob = 0; ob < Op; ob += 32) {
          float* c = acc + (t * Cp + cb) * Op + ob;
          _tile_loadd(0, c, sc);
          _tile_loadd(1, c + 16, sc);
          _tile_loadd(2, c + 16 * Op, sc);
          _tile_loadd(3, c + 16 * Op + 16, sc);
          for (int64_t s = 0; s < held; ++s) {
            const uint16_t* xs = xr + (s * Cp + cb) * d.plane + d.delta(t);
            const uint32_t* gs = gp + s * gq + ob;
            for (int64_t q0 = 0; q0 < d.Qp; q0 += 32) {
              _tile_loadd(4, xs + q0, sa);
              _tile_loadd(6, gs + q0 / 2 * Op, sb);
              _tile_loadd(7, gs + q0 / 2 * Op + 16, sb);
              _tile_dpbf16ps(0, 4, 6);
              _tile_dpbf16ps(1, 4, 7);
              _tile_loadd(5, xs + 16 * d.plane + q0, sa);
              _tile_dpbf16ps(2, 5, 6);
              _tile_dpbf16ps(3, 5, 7);
            }
          }
          _tile_stored(0, c, sc);
          _tile_stored(1, c + 16, sc);
          _tile_stored(2, c + 16 * Op, sc);
          _tile_stored(3, c + 16 * Op + 16, sc);
        }
    held = 0;
  }
};

AmxDirectWeightGrad::AmxDirectWeightGrad(const Geom2d& g, int64_t O, int64_t max_samples, float* gwt)
    : impl_(new Impl(g, O, max_samples, gwt)) {}
AmxDirectWeightGrad::~AmxDirectWeightGrad() = default;

void AmxDirectWeightGrad::add(const float* gy_n, const float* x_n) {
  Impl& m = *impl_;
  if (m.held == m.S) m.multiply();
  const Grid& d = m.d;
  uint16_t* xs = m.xr + m.held * m.Cp * d.plane;
  for (int64_t c = 0; c < m.C; ++c)
    for (int64_t r = 0; r < d.H; ++r)
      for (int64_t j = 0; j < d.W; j += 16)
        _mm256_mask_storeu_epi16(xs + c * d.plane + d.at(r, j), lanes(d.W - j),
                                 (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(lanes(d.W - j), x_n + (c * d.H + r) * d.W + j)));
  // gy_n on the grid, as pairs of positions: for 16 outputs at a time, each
  // row's 32 positions of a block (expanded from y_n's layout: zero off the
  // grid) become 16 pairs, and a 16x16 transpose makes them columns.
  uint32_t* gs = m.gp + m.held * (d.Qp / 2) * m.Op;
  for (int64_t ob = 0; ob < m.Op; ob += 16)
    for (int64_t b = 0; b < d.Qp / 32; ++b) {
      __m512 rows[16];
      int64_t nlo = __builtin_popcount(m.mlo[size_t(b)]);
      for (int64_t i = 0; i < 16; ++i) {
        int64_t o = ob + i;
        if (o >= m.O) {
          rows[i] = _mm512_setzero_ps();
          continue;
        }
        const float* src = gy_n + o * m.L + m.first[size_t(b)];
        __m512 lo = _mm512_maskz_expandloadu_ps(m.mlo[size_t(b)], src);
        __m512 hi = _mm512_maskz_expandloadu_ps(m.mhi[size_t(b)], src + nlo);
        rows[i] = (__m512)_mm512_cvtne2ps_pbh(hi, lo);  // u32 j: bf16 of positions 2j, 2j + 1
      }
      amx::transpose16(rows);
      for (int64_t j = 0; j < 16; ++j) _mm512_store_si512(gs + (b * 16 + j) * m.Op + ob, (__m512i)rows[j]);
    }
  ++m.held;
}

void AmxDirectWeightGrad::finish() {
  Impl& m = *impl_;
  if (m.held) m.multiply();
  const int64_t taps = m.d.taps;
  for (int64_t c = 0; c < m.C; ++c)
    for (int64_t t = 0; t < taps; ++t) {
      const float* src = m.acc + (t * m.Cp + c) * m.Op;
      float* dst = m.gwt + (c * taps + t) * m.O;
      for (int64_t o = 0; o < m.O; ++o) dst[o] += src[o];
    }
}

}  // namespace brisk::kern::cpu
