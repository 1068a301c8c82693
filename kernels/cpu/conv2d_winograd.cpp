// Winograd F(2x2, 3x3) for f32 "same" 3x3 convolutions (see the header).
//
// Per block of samples, on one thread:
//   1. each input plane is copied into a zero-bordered plane, so every 4x4
//      tile reads in bounds;
//   2. input transform, V = B^T d B for every tile d and channel c, written
//      as 16 matrices V_xi [C, tiles] in the GEMM's packed B strips;
//   3. 16 GEMMs M_xi [O, tiles] = U_xi [O, C] @ V_xi, U = G g G^T the
//      transformed weights (packed once per call);
//   4. output transform, Y = A^T M A (2x2 outputs per tile), + bias, ReLU,
//      straight into NCHW rows.
// Tiles are numbered sample by sample, row by row: t = (s * th + ty) * tw + tx.
// Both transforms run 8 tiles of a tile row at a time (one ymm lane each), or
// on AVX-512 for planes up to 7 tiles wide, two tile rows in 16 lanes.
//
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
// G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
// A^T = [1 1 1 0; 0 1 -1 -1]
#include "kernels/cpu/conv2d_winograd.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/autocast.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/env_switch.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/pool2d.h"
#include "kernels/cpu/winograd_f23.h"

// The 16-lane transforms: AVX-512 F, with BW and VL for the masked byte
// stores (every AVX-512 CPU since Skylake-SP).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define BRISK_WINOGRAD_16 1
#else
#define BRISK_WINOGRAD_16 0
#endif
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics

namespace brisk::kern::cpu {

namespace {

std::atomic<bool> g_on{env_switch("BRISK_CONV_WINOGRAD", true)};

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// bf16 rounding lane by lane (core/dtype.h's arithmetic: nearest even, NaN
// kept quiet), for the folded autocast casts (see the header).
using U8 = uint32_t __attribute__((vector_size(32)));
inline __m256 round_bf16(__m256 v) { return bf16_rounded_lanes<__m256, U8>(v); }
#if defined(__AVX512F__)
using U16 = uint32_t __attribute__((vector_size(64)));
inline __m512 round_bf16(__m512 v) { return bf16_rounded_lanes<__m512, U16>(v); }
#endif

// Tiles per plane up to this (planes up to 128 x 128): a block's transformed
// input and output then take at most a few MB per thread; larger planes run
// the direct path.
constexpr int64_t kMaxTiles = 4096;

// The shapes of one call's tiles and buffers.
struct Plan {
  int64_t C, O, H, W;
  int64_t th, tw, tiles1;  // tile rows and columns per plane, tiles per sample
  int64_t PH, PW;          // zero-bordered plane: rows, row stride (multiple of 8)
  int64_t nb;              // samples per block
  int64_t Tp;              // a block's tiles rounded up to whole B strips
  int64_t sa, sb;          // floats per packed U_xi, V_xi
  int64_t og;              // output channels per GEMM pass (whole A strips)
  int64_t MS;              // floats per M_xi [og, Tp]; an odd number of cache lines apart, so the output
                           // transform's 16 streams do not share an L1 set
  Plan(const Geom2d& g, int64_t o) : C(g.C), O(o), H(g.H), W(g.W) {
    th = (H + 1) / 2, tw = (W + 1) / 2, tiles1 = th * tw;
    PH = 2 * th + 2;
    // a chunk of 8 tiles at tx0 reads bordered columns 2 tx0 .. 2 tx0 + 17
    PW = round_up(2 * round_up(tw, 8) + 2, 8);
    GemmTile t = sgemm_f32_tile();
    // Samples per block: the best fill of the last B strip among 2..4 samples,
    // the fewer samples unless more fill 3 points better (the cnn's 14x14
    // planes: 49 tiles a sample, 98 of 112 columns for 2, 147 of 160 for 3,
    // 196 of 208 for 4; 3 it is, the same speed as 4 on a Zen 3 with less
    // cache).
    nb = 2;
    auto fill = [&](int64_t k) { return double(k * tiles1) / double(round_up(k * tiles1, t.nr)); };
    for (int64_t k = 3; k <= 4; ++k)
      if (fill(k) > fill(nb) + 0.03) nb = k;
    if (tiles1 >= 256) nb = 1;  // a plane of 32 x 32 or more fills the strips and the caches alone
    Tp = round_up(nb * tiles1, t.nr);
    sa = sgemm_packed_size(O, C, t.mr);
    // V_xi an odd number of cache lines apart: the input transform stores
    // each tile's 16 values to the 16 V_xi at once, and a packed size that is
    // a multiple of 4 KB put all 16 stores in one L1 set (12 ways)
    sb = (sgemm_packed_size(Tp, C, t.nr) / 16 | 1) * 16;
    if (sb < sgemm_packed_size(Tp, C, t.nr)) sb += 32;
    // M for og channels at a time stays in L2 with V: 16 x 18 x 112 floats (129 KB) for the cnn
    og = t.mr * std::max<int64_t>(1, (16 + t.mr - 1) / t.mr);
    MS = (og * Tp / 16 | 1) * 16;
  }
};

// U_xi [O, C] = (G g G^T)[xi / 4][xi % 4] for each w [O, C, 3, 3] (bf16:
// of g's bf16 roundings), packed as the GEMM's A operand: up [16][sa].
void transform_weights(const float* w, const Plan& p, bool bf16, float* up) {
  std::vector<float> u(size_t(16 * p.O * p.C));
  for (int64_t o = 0; o < p.O; ++o)
    for (int64_t c = 0; c < p.C; ++c) {
      float r[16], taps[9];
      const float* g = w + (o * p.C + c) * 9;
      if (bf16) {
        bf16_rounded(g, taps, 9);
        g = taps;
      }
      winograd_filter(g, r);
      for (int xi = 0; xi < 16; ++xi) u[size_t((xi * p.O + o) * p.C + c)] = r[xi];
    }
  for (int xi = 0; xi < 16; ++xi)
    sgemm_pack_a(p.O, p.C, MatF{u.data() + xi * p.O * p.C, p.C, 1}, up + xi * p.sa);
}

// P planes [H, W] into zero-bordered planes [R, PW]: row r + off, column
// c + off holds x[r, c]; everything else is 0. The input with off 1 (R =
// PH: the 3x3 window's padding); the output gradient with off 0 (R = 2 th:
// the tiles past an odd edge).
// Zeros in a bordered row of PW floats: from column `from` to PW (whole
// vectors), with an index opaque to GCC, which otherwise turns the loop into
// a memset call (one per row: a tenth of the weight gradient's time at the
// cnn's 14 x 14 planes).
inline void zero_row_from(float* row, int64_t from, int64_t PW) {
  for (int64_t j = from; j < PW; j += 8) {
    asm("" : "+r"(j));
    _mm256_storeu_ps(row + j, _mm256_setzero_ps());
  }
}
// The zeros of a bordered row whose plane values, `written` floats from
// column off, are written after: the first vector (the left border, off
// <= 8) and from the vector where the written part ends.
inline void zero_row_borders(float* row, int64_t off, int64_t written, int64_t PW) {
  if (off > 0) _mm256_storeu_ps(row, _mm256_setzero_ps());
  zero_row_from(row, (off + written) / 8 * 8, PW);
}

// BF: the plane's values rounded to bf16 as they are copied (a template
// argument, so the f32 copy loop stays as it was: with a run-time choice in
// it the f32 forward measured 3% slower, at the edge of this host's noise).
template <bool BF>
void border_planes_as(const float* src, int64_t P, int64_t H, int64_t W, int64_t off, int64_t R, int64_t PW,
                      float* dst) {
  // PW >= round_up(W, 8) + 2 * off (Plan, WinogradWeightGrad): whole vectors fit every row.
  for (int64_t c = 0; c < P; ++c) {
    float* d = dst + c * R * PW;
    for (int64_t r = 0; r < R; ++r) {
      float* row = d + r * PW;
      int64_t h = r - off;
      if (h < 0 || h >= H) {
        zero_row_from(row, 0, PW);
        continue;
      }
      zero_row_borders(row, off, round_up(W, 8), PW);  // the copy below writes whole vectors
      const float* s = src + (c * H + h) * W;
      for (int64_t j = 0; j < W; j += 8) {  // the last vector's lanes past W load as 0 (and never fault)
        __m256 v = j + 8 <= W ? _mm256_loadu_ps(s + j) : _mm256_maskload_ps(s + j, lane_mask8(W - j));
        if constexpr (BF) v = round_bf16(v);
        _mm256_storeu_ps(row + off + j, v);
      }
    }
  }
}
void border_planes(const float* src, int64_t P, int64_t H, int64_t W, int64_t off, int64_t R, int64_t PW,
                   bool bf16, float* dst) {
  if (bf16) border_planes_as<true>(src, P, H, W, off, R, PW, dst);
  else border_planes_as<false>(src, P, H, W, off, R, PW, dst);
}
void border_planes(const float* xn, const Plan& p, bool bf16, float* dst) {
  border_planes(xn, p.C, p.H, p.W, 1, p.PH, p.PW, bf16, dst);
}

// border_planes of sample n of a pooled gradient expanded by its window
// codes (PooledInput, planes H x W): max_pool_2x2_backward_codes writes each
// plane's rows straight into the zero-bordered buffer, where the expansion
// into a buffer (GySample) and then border_planes' copy of it had taken two
// passes. The same planes, so the same bits after.
void border_planes_pooled(const PooledInput& in, int64_t n, int64_t P, int64_t H, int64_t W, int64_t off, int64_t R,
                          int64_t PW, bool bf16, float* dst) {
  const int64_t Lq = in.Hq * in.Wq;
  const Geom2d pg{1, 1, H, W, 2, 2, 2, 2, 0, 0, 1, 1, in.Hq, in.Wq};  // the pool's geometry (as max_pool_2x2_geom)
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t c = 0; c < P; ++c) {
    float* d = dst + c * R * PW;
    for (int64_t j = 0; j < R * PW; j += 8) _mm256_storeu_ps(d + j, zero);  // R * PW: a multiple of 8
    max_pool_2x2_backward_codes(in.gy + (n * P + c) * Lq, in.code + (n * P + c) * Lq, pg, d + off * PW + off, {}, PW);
    if (bf16)  // the plane's rows, in cache (the zeros stay zeros)
      for (int64_t j = off * PW; j < (off + H) * PW; j += 8)
        _mm256_storeu_ps(d + j, round_bf16(_mm256_loadu_ps(d + j)));
  }
}

// Lanes k of (even, odd) = p[2k], p[2k + 1], k = 0..7 (16 floats at p).
inline void deinterleave(const float* p, __m256& even, __m256& odd) {
  deinterleave8(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), even, odd);
}

// Where a block's V_xi [C, Tp] go: the GEMM's packed B strips of nr
// tiles, strip q of V_xi at vp + xi * sb + q * stride, row c at c * nr.
struct VStrips {
  float* vp;
  int64_t sb, stride, nr, strips, C;
  bool spare_row;  // room for 8 floats after row C - 1 of a strip (else the next strip begins there)
};

// Stores lanes 0..7, tiles t .. t + 7 of channel c, into strip row c of
// every V_xi (v[xi]). Each store is 8 lanes wide: lanes past the strip's
// end fall on row c + 1, which the next channel's pass overwrites (the
// caller runs channels in order), lanes past the last valid tile on later
// tiles, written later. The lanes for the next strip go there rotated to
// its row start.
inline void store_tiles(const VStrips& d, int64_t c, int64_t t, const __m256 (&v)[16]) {
  int64_t q = t / d.nr, off = t % d.nr, k = d.nr - off;  // k lanes fit in strip q
  float* a = d.vp + q * d.stride + c * d.nr + off;
  if (k >= 8) {
    for (int xi = 0; xi < 16; ++xi) _mm256_storeu_ps(a + xi * d.sb, v[xi]);
    return;
  }
  bool next = q + 1 < d.strips;  // tiles past the last strip are padding: dropped
  float* b = d.vp + (q + 1) * d.stride + c * d.nr;
  if (c + 1 < d.C || d.spare_row) {
    __m256i rot = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(k)));
    rot = _mm256_and_si256(rot, _mm256_set1_epi32(7));
    for (int xi = 0; xi < 16; ++xi) {
      _mm256_storeu_ps(a + xi * d.sb, v[xi]);
      if (next) _mm256_storeu_ps(b + xi * d.sb, _mm256_permutevar8x32_ps(v[xi], rot));
    }
    return;
  }
  for (int xi = 0; xi < 16; ++xi) {  // the last channel, no room after its row: lane by lane
    alignas(32) float l[8];
    _mm256_store_ps(l, v[xi]);
    for (int64_t j = 0; j < k; ++j) a[xi * d.sb + j] = l[j];
    if (next)
      for (int64_t j = k; j < 8; ++j) b[xi * d.sb + j - k] = l[j];
  }
}

// V = B^T d B for the tiles of one bordered plane, whose first tile is t0
// of the block (tiles t0 + ty * tw + tx): store(t, v) takes 8 tiles from
// t, v[xi] for each xi, in ascending t. z: 4 rows of PW floats of scratch.
template <class Store>
void transform_plane(const float* plane, const Plan& p, float* z, int64_t t0, Store&& store) {
  const int64_t PW = p.PW;
  for (int64_t ty = 0; ty < p.th; ++ty) {
    const float* r = plane + 2 * ty * PW;  // bordered rows 2ty .. 2ty + 3 (input rows 2ty - 1 .. 2ty + 2)
    for (int64_t j = 0; j < PW; j += 8) {  // Z = B^T d, whole rows at once
      __m256 zr[4];
      winograd_bt4(_mm256_loadu_ps(r + j), _mm256_loadu_ps(r + PW + j), _mm256_loadu_ps(r + 2 * PW + j),
                   _mm256_loadu_ps(r + 3 * PW + j), zr);
      for (int i = 0; i < 4; ++i) _mm256_storeu_ps(z + i * PW + j, zr[i]);
    }
    for (int64_t tx0 = 0; tx0 < p.tw; tx0 += 8) {  // V = Z B, 8 tiles: columns 2tx .. 2tx + 3
      __m256 v[16];
      for (int i = 0; i < 4; ++i) {
        __m256 e0, o0, e1, o1;  // columns 2tx, 2tx + 1, 2tx + 2, 2tx + 3
#ifdef __AVX512VL__
        // Z's row was just stored 8 floats at a time: loads at those same
        // addresses are forwarded from the stores, where a load 2 floats
        // further (the tiles' overlap) spans two of them and waits for both
        // to reach the cache (a quarter of the forward's time at the cnn's
        // 14 x 14 planes). Columns 2tx0 + 2 .. are the same vectors a lane
        // on, with columns 2tx0 + 16 and 17 from the next stored vector (in
        // the row: PW = 2 round_up(tw, 8) + 8).
        const float* zr = z + i * PW + 2 * tx0;
        const __m256 a = _mm256_loadu_ps(zr), b = _mm256_loadu_ps(zr + 8), c = _mm256_loadu_ps(zr + 16);
        e0 = _mm256_permutex2var_ps(a, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), b);
        o0 = _mm256_permutex2var_ps(a, _mm256_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15), b);
        e1 = _mm256_permutex2var_ps(e0, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8), c);
        o1 = _mm256_permutex2var_ps(o0, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 9), c);
#else
        deinterleave(z + i * PW + 2 * tx0, e0, o0);
        deinterleave(z + i * PW + 2 * tx0 + 2, e1, o1);
#endif
        winograd_bt4(e0, o0, e1, o1, v + 4 * i);
      }
      store(t0 + ty * p.tw + tx0, v);
    }
  }
}

// Output row r of plane o: 16 values from column c0, of which the first
// min(16, W - c0) belong to the row. Stored whole where the rest of the
// buffer (room floats after the planes included) takes the spill, which
// later rows overwrite; else the row's part only.
inline void store_row16(float* yn, const Plan& p, int64_t o, int64_t r, int64_t c0, __m256 lo, __m256 hi,
                        int64_t room) {
  int64_t at = (o * p.H + r) * p.W + c0;
  if (at + 16 <= p.O * p.H * p.W + room) {
    _mm256_storeu_ps(yn + at, lo);
    _mm256_storeu_ps(yn + at + 8, hi);
    return;
  }
  alignas(32) float t[16];
  _mm256_store_ps(t, lo);
  _mm256_store_ps(t + 8, hi);
  std::memcpy(yn + at, t, size_t(std::min<int64_t>(16, p.W - c0)) * sizeof(float));
}

// Y = A^T M A + b for 8 tiles: M_xi's 8 values at src + xi * xs; y[2i + j]
// is output (i, j) of each tile. Both output stages sum in this order, so
// the pooled form's values are the plain form's bit for bit.
inline void tile_outputs(const float* src, int64_t xs, __m256 b, __m256 (&y)[4]) {
  __m256 q0[4], q1[4];  // A^T M: rows 0 and 1, columns j
  for (int j = 0; j < 4; ++j) {
    __m256 m0 = _mm256_loadu_ps(src + (0 + j) * xs), m1 = _mm256_loadu_ps(src + (4 + j) * xs);
    __m256 m2 = _mm256_loadu_ps(src + (8 + j) * xs), m3 = _mm256_loadu_ps(src + (12 + j) * xs);
    q0[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
    q1[j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
  }
  y[0] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(q0[0], q0[1]), q0[2]), b);
  y[1] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(q0[1], q0[2]), q0[3]), b);
  y[2] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(q1[0], q1[1]), q1[2]), b);
  y[3] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(q1[1], q1[2]), q1[3]), b);
}

// Y = A^T M A (+ bias, bf16 rounding, ReLU) for sample s of the block,
// channels o0 .. o0 + on: m [16][MS] holds M_xi [og, Tp] for those channels.
void output_sample(const float* m, const Plan& p, int64_t s, int64_t o0, int64_t on, const float* bias, bool relu,
                   bool bf16, float* yn, int64_t room) {
  const int64_t OT = p.MS;
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t o = o0; o < o0 + on; ++o) {
    __m256 b = _mm256_set1_ps(bias ? bias[o] : 0.f);
    for (int64_t ty = 0; ty < p.th; ++ty)
      // A tile row's chunks last to first: the last chunk's first row spills
      // into its second row, which the earlier chunks then overwrite.
      for (int64_t tx0 = (p.tw - 1) / 8 * 8; tx0 >= 0; tx0 -= 8) {
        const float* src = m + (o - o0) * p.Tp + s * p.tiles1 + ty * p.tw + tx0;
        __m256 y[4];
        tile_outputs(src, OT, b, y);
        if (bf16)
          for (__m256& v : y) v = round_bf16(v);
        for (int i = 0; i < 2; ++i) {
          int64_t r = 2 * ty + i;
          if (r >= p.H) break;
          __m256 a = y[2 * i], c = y[2 * i + 1];
          if (relu) a = _mm256_max_ps(zero, a), c = _mm256_max_ps(zero, c);  // std::max(v, 0)'s rule: NaN kept
          __m256 lo = _mm256_unpacklo_ps(a, c), hi = _mm256_unpackhi_ps(a, c);  // a0 c0 a1 c1 | a4 c4 a5 c5, ...
          store_row16(yn, p, o, r, 2 * tx0, _mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31),
                      room);
        }
      }
  }
}

// Per-thread scratch, 64-byte aligned, kept between calls.
float* thread_scratch(size_t n) {
  static thread_local std::vector<float> buf;
  if (buf.size() < n + 16) buf.resize(n + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
}

// The 2x2 max pool of Y (+ bias, bf16 rounding) for sample s of the block,
// channels o0 .. o0 + on: each tile's 2x2 outputs are one pool window, so
// the full-size output is never formed (pool_window4: max_pool_2x2's rule,
// then relu_pooled's). yp [O, H/2, W/2] and code likewise, for this sample;
// room: floats (and bytes) writable after their last plane.
void output_pooled(const float* m, const Plan& p, int64_t s, int64_t o0, int64_t on, const float* bias, bool relu,
                   bool bf16, float* yp, uint8_t* code, int64_t room) {
  const int64_t OT = p.MS, Hp = p.H / 2, Wp = p.W / 2, end = p.O * Hp * Wp + room;
  for (int64_t o = o0; o < o0 + on; ++o) {
    __m256 b = _mm256_set1_ps(bias ? bias[o] : 0.f);
    for (int64_t ty = 0; ty < Hp; ++ty)
      for (int64_t tx0 = 0; tx0 < Wp; tx0 += 8) {
        const float* src = m + (o - o0) * p.Tp + s * p.tiles1 + ty * p.tw + tx0;
        __m256 y[4];
        tile_outputs(src, OT, b, y);
        if (bf16)  // before the pool, as the unfused path pools the rounded output
          for (__m256& v : y) v = round_bf16(v);
        __m256 best;
        __m256i k;
        pool_window4(y, relu, best, k);
        store_pooled8(yp, code, (o * Hp + ty) * Wp + tx0, std::min<int64_t>(8, Wp - tx0), end, best, k);
      }
  }
}

#if BRISK_WINOGRAD_16
// Planes up to kPairTw tiles wide (14 columns: the cnn's second layer) run
// every transform on 16 lanes, two tile rows a vector: lanes 0 .. tw - 1
// hold tiles tx of tile row ty, lanes tw .. 2 tw - 1 those of row ty + 1, so
// a vector holds tiles t .. t + 2 tw - 1 of the block's numbering, in order.
// The 8-lane path runs 7 tiles in 8 lanes; this one 14 in 16, with half the
// operations. Each lane's sums are the 8-lane path's, in its order, so the
// bits are the same. A bordered row (2 tw + 2 <= 16 floats) is one vector,
// and every store is masked to the lanes that hold tiles (no spills).
constexpr int64_t kPairTw = 7;
bool pairs16(const Plan& p) { return p.tw <= kPairTw; }

// permutex2var indices over [row a | row b] (16 bordered columns each): lane
// j takes column 2 tx + c of row a (j < tw, tx = j) or of row b (tx = j - tw);
// lanes from 2 tw on hold no tile. Formed in registers: an index table
// stored as two halves and loaded whole waits for both stores to retire (a
// failed store forward: 60% of the gradient transform's time).
inline __m512i pair_columns(int64_t tw, int c) {
  const __m512i j = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i col = _mm512_add_epi32(_mm512_slli_epi32(j, 1), _mm512_set1_epi32(c));
  const __mmask16 b = _mm512_cmpge_epi32_mask(j, _mm512_set1_epi32(int(tw)));
  return _mm512_mask_add_epi32(col, b, col, _mm512_set1_epi32(16 - 2 * int(tw)));
}

// transform_plane on 16 lanes: store(t, v, n) takes tiles t .. t + n - 1 in
// lanes 0 .. n - 1 of v[xi]. Reads bordered rows 2 ty .. 2 ty + 5 of PH (the
// last pair of an odd tile-row count has one tile row: rows past the plane
// are not read, and the lanes they would feed are not stored).
template <class Store>
void transform_plane16(const float* plane, const Plan& p, int64_t t0, Store&& store) {
  const int64_t PW = p.PW, tw = p.tw;
  const __m512i c0 = pair_columns(tw, 0), c1 = pair_columns(tw, 1), c2 = pair_columns(tw, 2),
                c3 = pair_columns(tw, 3);
  for (int64_t ty = 0; ty < p.th; ty += 2) {
    const float* r = plane + 2 * ty * PW;
    const int64_t rows = std::min<int64_t>(6, p.PH - 2 * ty);
    __m512 d[6];
    for (int k = 0; k < 6; ++k) d[k] = k < rows ? _mm512_loadu_ps(r + k * PW) : _mm512_setzero_ps();
    __m512 za[4], zb[4], v[16];  // Z = B^T d of tile rows ty (bordered rows 2ty..) and ty + 1 (2ty + 2..)
    winograd_bt4(d[0], d[1], d[2], d[3], za);
    winograd_bt4(d[2], d[3], d[4], d[5], zb);
    for (int i = 0; i < 4; ++i)  // V = Z B: columns 2tx .. 2tx + 3 of each tile
      winograd_bt4(_mm512_permutex2var_ps(za[i], c0, zb[i]), _mm512_permutex2var_ps(za[i], c1, zb[i]),
                   _mm512_permutex2var_ps(za[i], c2, zb[i]), _mm512_permutex2var_ps(za[i], c3, zb[i]), v + 4 * i);
    store(t0 + ty * tw, v, std::min<int64_t>(2, p.th - ty) * tw);
  }
}

// store_tiles for 16 lanes, n of them tiles: the lanes that fit strip q's
// row c, then the rest at the next strip's row start.
inline void store_tiles16(const VStrips& d, int64_t c, int64_t t, const __m512 (&v)[16], int64_t n) {
  int64_t q = t / d.nr, off = t % d.nr, k = d.nr - off;  // k lanes fit in strip q
  float* a = d.vp + q * d.stride + c * d.nr + off;
  const __mmask16 in_q = first_lanes16(std::min(k, n));
  for (int xi = 0; xi < 16; ++xi) _mm512_mask_storeu_ps(a + xi * d.sb, in_q, v[xi]);
  if (n > k) {  // lane k lands on the next strip's row start
    float* b = d.vp + (q + 1) * d.stride + c * d.nr - k;
    const __mmask16 rest = __mmask16(first_lanes16(n) & ~first_lanes16(k));
    for (int xi = 0; xi < 16; ++xi) _mm512_mask_storeu_ps(b + xi * d.sb, rest, v[xi]);
  }
}

// tile_outputs on 16 tiles, the same sums in the same order.
inline void tile_outputs16(const float* src, int64_t xs, __m512 b, __m512 (&y)[4]) {
  __m512 q0[4], q1[4];
  for (int j = 0; j < 4; ++j) {
    __m512 m0 = _mm512_loadu_ps(src + (0 + j) * xs), m1 = _mm512_loadu_ps(src + (4 + j) * xs);
    __m512 m2 = _mm512_loadu_ps(src + (8 + j) * xs), m3 = _mm512_loadu_ps(src + (12 + j) * xs);
    q0[j] = (m0 + m1) + m2;
    q1[j] = (m1 - m2) - m3;
  }
  y[0] = ((q0[0] + q0[1]) + q0[2]) + b;
  y[1] = ((q0[1] - q0[2]) - q0[3]) + b;
  y[2] = ((q1[0] + q1[1]) + q1[2]) + b;
  y[3] = ((q1[1] - q1[2]) - q1[3]) + b;
}

// pool_window4 on 16 windows (the same rule: the first NaN, else the first
// maximum; then relu_pooled's).
inline void pool_window4_16(const __m512 (&y)[4], bool relu, __m512& best, __m512i& code) {
  best = y[0];
  code = _mm512_setzero_si512();
  for (int i = 1; i < 4; ++i) {
    __mmask16 take = __mmask16(_mm512_cmp_ps_mask(y[i], best, _CMP_GT_OQ) |
                               (~_mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q) &
                                _mm512_cmp_ps_mask(y[i], y[i], _CMP_UNORD_Q)));
    best = _mm512_mask_mov_ps(best, take, y[i]);
    code = _mm512_mask_mov_epi32(code, take, _mm512_set1_epi32(i));
  }
  if (relu) {
    __mmask16 live = _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_GT_OQ);
    best = _mm512_maskz_mov_ps(live, best);
    code = _mm512_mask_mov_epi32(_mm512_set1_epi32(4), live, code);
  }
}

// output_sample on 16 lanes: tile row ty's outputs are rows 2ty, 2ty + 1,
// row ty + 1's rows 2ty + 2, 2ty + 3, each W values (a0 c0 a1 c1 ...).
void output_sample16(const float* m, const Plan& p, int64_t s, int64_t o0, int64_t on, const float* bias, bool relu,
                     bool bf16, float* yn) {
  const int64_t OT = p.MS, tw = p.tw;
  // lane 2j: a[j] (second: a[tw + j]); lane 2j + 1: the same of c (index + 16)
  const __m512i l = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i half = _mm512_srli_epi32(l, 1), of_c = _mm512_slli_epi32(_mm512_and_si512(l, _mm512_set1_epi32(1)), 4);
  const __m512i first = _mm512_add_epi32(half, of_c),
                second = _mm512_add_epi32(
                    _mm512_and_si512(_mm512_add_epi32(half, _mm512_set1_epi32(int(tw))), _mm512_set1_epi32(15)), of_c);
  const __mmask16 row = first_lanes16(p.W);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t o = o0; o < o0 + on; ++o) {
    const __m512 b = _mm512_set1_ps(bias ? bias[o] : 0.f);
    for (int64_t ty = 0; ty < p.th; ty += 2) {
      __m512 y[4];
      tile_outputs16(m + (o - o0) * p.Tp + s * p.tiles1 + ty * tw, OT, b, y);
      if (bf16)
        for (__m512& v : y) v = round_bf16(v);
      if (relu)
        for (__m512& v : y) v = _mm512_max_ps(zero, v);  // std::max(v, 0)'s rule: NaN kept
      const __m512 rows[4] = {_mm512_permutex2var_ps(y[0], first, y[1]), _mm512_permutex2var_ps(y[2], first, y[3]),
                              _mm512_permutex2var_ps(y[0], second, y[1]), _mm512_permutex2var_ps(y[2], second, y[3])};
      for (int i = 0; i < 4; ++i) {
        int64_t r = 2 * ty + i;
        if (r < p.H) _mm512_mask_storeu_ps(yn + (o * p.H + r) * p.W, row, rows[i]);
      }
    }
  }
}

// output_pooled on 16 lanes: pooled rows ty and ty + 1, Wp windows each
// (lanes 0.. and tw..), are consecutive in yp; where Wp < tw (odd W) the
// lanes are packed together first.
void output_pooled16(const float* m, const Plan& p, int64_t s, int64_t o0, int64_t on, const float* bias, bool relu,
                     bool bf16, float* yp, uint8_t* code) {
  const int64_t OT = p.MS, Hp = p.H / 2, Wp = p.W / 2, tw = p.tw;
  const __mmask16 row0 = first_lanes16(Wp), row1 = __mmask16(row0 << tw);
  for (int64_t o = o0; o < o0 + on; ++o) {
    const __m512 b = _mm512_set1_ps(bias ? bias[o] : 0.f);
    for (int64_t ty = 0; ty < Hp; ty += 2) {
      __m512 y[4], best;
      __m512i k;
      tile_outputs16(m + (o - o0) * p.Tp + s * p.tiles1 + ty * tw, OT, b, y);
      if (bf16)
        for (__m512& v : y) v = round_bf16(v);
      pool_window4_16(y, relu, best, k);
      __mmask16 keep = ty + 1 < Hp ? __mmask16(row0 | row1) : row0;
      if (Wp < tw) {
        best = _mm512_maskz_compress_ps(keep, best);
        k = _mm512_maskz_compress_epi32(keep, k);
        keep = first_lanes16(__builtin_popcount(keep));
      }
      const int64_t at = (o * Hp + ty) * Wp;
      _mm512_mask_storeu_ps(yp + at, keep, best);
      _mm_mask_storeu_epi8(code + at, keep, _mm512_cvtepi32_epi8(k));
    }
  }
}

// transform_grad_plane on 16 lanes: rows 2ty .. 2ty + 3 of the bordered
// gradient plane (R rows; the last pair of an odd count has one tile row,
// whose missing rows are not read, as in transform_plane16).
void transform_grad_plane16(const float* plane, const Plan& p, int64_t PWg, int64_t R, float* dm, int64_t xs,
                            int64_t t0) {
  const int64_t tw = p.tw;
  const __m512i ce = pair_columns(tw, 0), co = pair_columns(tw, 1);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t ty = 0; ty < p.th; ty += 2) {
    const float* r = plane + 2 * ty * PWg;
    const int64_t rows = std::min<int64_t>(4, R - 2 * ty);
    __m512 g[4];
    for (int k = 0; k < 4; ++k) g[k] = k < rows ? _mm512_loadu_ps(r + k * PWg) : zero;
    // gY[i][j] of each tile: rows 2ty + i (tile row ty) and 2ty + 2 + i (ty + 1)
    const __m512 g00 = _mm512_permutex2var_ps(g[0], ce, g[2]), g01 = _mm512_permutex2var_ps(g[0], co, g[2]);
    const __m512 g10 = _mm512_permutex2var_ps(g[1], ce, g[3]), g11 = _mm512_permutex2var_ps(g[1], co, g[3]);
    const __m512 a[4] = {g00, g00 + g10, g00 - g10, zero - g10};  // A gY
    const __m512 bb[4] = {g01, g01 + g11, g01 - g11, zero - g11};
    const __mmask16 n = first_lanes16(std::min<int64_t>(2, p.th - ty) * tw);
    float* d = dm + t0 + ty * tw;
    for (int i = 0; i < 4; ++i) {  // (A gY) A^T
      _mm512_mask_storeu_ps(d + (4 * i + 0) * xs, n, a[i]);
      _mm512_mask_storeu_ps(d + (4 * i + 1) * xs, n, a[i] + bb[i]);
      _mm512_mask_storeu_ps(d + (4 * i + 2) * xs, n, a[i] - bb[i]);
      _mm512_mask_storeu_ps(d + (4 * i + 3) * xs, n, zero - bb[i]);
    }
  }
}
// dM for a plane's tiles from its 2x2 max pool's gradient gp and codes (H
// and W even: tile t is pool window t, n of them): the window's one nonzero
// gradient gY[dy][dx] = gp, (dy, dx) = (code / 2, code % 2), makes
// dM = A gY A^T = gp * A[:, dy] A[:, dx]^T, each entry gp, -gp or 0; a
// ReLU'd window (code 4) none. A = [1 0; 1 1; 1 -1; 0 -1].
// bf16: gp read as its bf16 roundings.
void transform_pooled_grad16(const float* gp, const uint8_t* code, int64_t n, bool bf16, float* dm, int64_t xs,
                             int64_t t0) {
  static constexpr int A[4][2] = {{1, 0}, {1, 1}, {1, -1}, {0, -1}};
  int plus[16] = {}, minus[16] = {};  // bit k: code k gives +gp (-gp) in dM_xi
  for (int xi = 0; xi < 16; ++xi)
    for (int k = 0; k < 4; ++k) {
      int f = A[xi / 4][k / 2] * A[xi % 4][k % 2];
      (f > 0 ? plus : minus)[xi] |= f != 0 ? 1 << k : 0;
    }
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t t = 0; t < n; t += 16) {
    const __mmask16 m = first_lanes16(n - t);
    __m512 g = _mm512_maskz_loadu_ps(m, gp + t);
    if (bf16) g = round_bf16(g);
    // one bit per lane: 1 << code (code 4 and above: no sign bit)
    const __m512i bit = _mm512_sllv_epi32(_mm512_set1_epi32(1), _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, code + t)));
    for (int xi = 0; xi < 16; ++xi) {
      __m512 v = _mm512_maskz_mov_ps(_mm512_test_epi32_mask(bit, _mm512_set1_epi32(plus[xi])), g);
      v = _mm512_mask_sub_ps(v, _mm512_test_epi32_mask(bit, _mm512_set1_epi32(minus[xi])), zero, g);
      _mm512_mask_storeu_ps(dm + xi * xs + t0 + t, m, v);
    }
  }
}
#endif

// The blocks of samples: bordered input planes, the input transform, then
// per group of output channels the 16 GEMMs and emit(m, s, o0, on, lo) for
// each sample s of the block (sample lo + s), then done(lo, hi). bf16: the
// input planes and w rounded to bf16 as they are read.
template <class Emit, class Done>
void run_blocks(const float* x, const float* w, const Geom2d& g, const Plan& p, bool bf16,
                const ConvSampleSource* source, const PooledInput* pooled, int64_t extra, Emit&& emit, Done&& done) {
  const GemmTile ft = sgemm_f32_tile();
  std::vector<float> ubuf(size_t(16 * p.sa + 16));
  float* up = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(ubuf.data()) + 63) & ~uintptr_t(63));
  transform_weights(w, p, bf16, up);
  const int64_t CHW = p.C * p.H * p.W, PP = p.PH * p.PW;
  // Per-thread buffers (floats, each a multiple of 16 so all stay 64-byte aligned); extra: the caller's.
  const int64_t n_in = round_up(p.nb * p.C * PP, 16), n_z = round_up(4 * p.PW, 16), n_v = 16 * p.sb,
                n_m = 16 * p.MS + 16;
  const int64_t stride_a = sgemm_packed_stride(p.C, ft.mr), stride_b = sgemm_packed_stride(p.C, ft.nr);
  parallel_for_blocks(0, g.N, p.nb, [&](int64_t lo, int64_t hi) {
    float* in = thread_scratch(size_t(n_in + n_z + n_v + n_m + extra));
    float *z = in + n_in, *vp = z + n_z, *m = vp + n_v;
    const int64_t T = (hi - lo) * p.tiles1;
    for (int64_t s = 0; s < hi - lo; ++s)
      if (pooled) border_planes_pooled(*pooled, lo + s, p.C, p.H, p.W, 1, p.PH, p.PW, bf16, in + s * p.C * PP);
      else border_planes(source ? (*source)(lo + s) : x + (lo + s) * CHW, p, bf16, in + s * p.C * PP);
    const VStrips d{vp, p.sb, stride_b, ft.nr, p.Tp / ft.nr, p.C, stride_b - p.C * ft.nr >= 8};
    if (T < p.Tp)  // the last strip's columns past the block's tiles: zeros (finite, and no denormal slowdown)
      for (int xi = 0; xi < 16; ++xi)
        for (int64_t c = 0; c < p.C; ++c)
          std::fill_n(vp + xi * p.sb + (p.Tp / ft.nr - 1) * stride_b + c * ft.nr + T % ft.nr, ft.nr - T % ft.nr, 0.f);
    std::fill(m + 16 * p.MS, m + n_m, 0.f);  // the output transform's last 8-lane read may run past M
    for (int64_t c = 0; c < p.C; ++c)        // channels in order (store_tiles' spills)
      for (int64_t s = 0; s < hi - lo; ++s) {
        const float* plane = in + (s * p.C + c) * PP;
#if BRISK_WINOGRAD_16
        if (pairs16(p)) {
          transform_plane16(plane, p, s * p.tiles1,
                            [&](int64_t t, const __m512(&v)[16], int64_t n) { store_tiles16(d, c, t, v, n); });
          continue;
        }
#endif
        transform_plane(plane, p, z, s * p.tiles1, [&](int64_t t, const __m256(&v)[16]) { store_tiles(d, c, t, v); });
      }
    for (int64_t o0 = 0; o0 < p.O; o0 += p.og) {  // channels in ascending order: row spills land on later rows
      int64_t on = std::min(p.og, p.O - o0);
      for (int xi = 0; xi < 16; ++xi)
        sgemm_packed(on, p.Tp, p.C, up + xi * p.sa + o0 / ft.mr * stride_a, vp + xi * p.sb, m + xi * p.MS, p.Tp);
      for (int64_t s = 0; s < hi - lo; ++s) emit(m, s, o0, on, lo, m + n_m);
    }
    done(lo, hi, m + n_m);
  });
}

// dM = A gY A^T for the tiles of one output-gradient plane (bordered with
// off 0: rows 2ty, 2ty + 1, columns from 0), 8 tiles at a time, into
// dm[xi * xs + t0 + t] (ascending t; lanes past a row's tiles land on later
// ones). A = [1 0; 1 1; 1 -1; 0 -1].
void transform_grad_plane(const float* plane, const Plan& p, int64_t PWg, float* dm, int64_t xs, int64_t t0) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t ty = 0; ty < p.th; ++ty)
    for (int64_t tx0 = 0; tx0 < p.tw; tx0 += 8) {
      __m256 g00, g01, g10, g11;  // gY[i][j] of each tile
      deinterleave(plane + 2 * ty * PWg + 2 * tx0, g00, g01);
      deinterleave(plane + (2 * ty + 1) * PWg + 2 * tx0, g10, g11);
      __m256 a[4] = {g00, _mm256_add_ps(g00, g10), _mm256_sub_ps(g00, g10), _mm256_sub_ps(zero, g10)};  // A gY
      __m256 b[4] = {g01, _mm256_add_ps(g01, g11), _mm256_sub_ps(g01, g11), _mm256_sub_ps(zero, g11)};
      float* d = dm + t0 + ty * p.tw + tx0;
      for (int i = 0; i < 4; ++i) {  // (A gY) A^T
        _mm256_storeu_ps(d + (4 * i + 0) * xs, a[i]);
        _mm256_storeu_ps(d + (4 * i + 1) * xs, _mm256_add_ps(a[i], b[i]));
        _mm256_storeu_ps(d + (4 * i + 2) * xs, _mm256_sub_ps(a[i], b[i]));
        _mm256_storeu_ps(d + (4 * i + 3) * xs, _mm256_sub_ps(zero, b[i]));
      }
    }
}

}  // namespace

bool conv_winograd_enabled() { return g_on.load(std::memory_order_relaxed); }
void set_conv_winograd(bool on) { g_on.store(on, std::memory_order_relaxed); }

bool conv2d_winograd_applies(const Geom2d& g, int64_t O) {
  return conv_winograd_enabled() && (!gemm_operands_bf16() || !sgemm_bf16_supported()) &&
         (sgemm_isa_avx2() || sgemm_isa_avx512()) &&
         g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ph == 1 && g.pw == 1 &&
         g.Ho == g.H && g.Wo == g.W && g.C >= 8 && O >= 8 && (g.H + 1) / 2 * ((g.W + 1) / 2) <= kMaxTiles;
}

void conv2d_forward_winograd(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                             bool relu, bool bf16, float* y, const ConvSampleSink* sink, const ConvSampleSource* source,
                             const PooledInput* pooled) {
  const Plan p(g, O);
  const bool round_in = bf16 || gemm_operands_bf16();  // as the unfold path's GEMM rounds its operands
  const int64_t OHW = O * g.H * g.W, n_y = sink ? round_up(OHW + kPoolSlack, 16) : 0;
  // with a sink, each sample of the block gets a buffer (after run_blocks' own: extra)
  auto out = [&](int64_t lo, int64_t s, float* extra) { return sink ? extra + s * n_y : y + (lo + s) * OHW; };
  run_blocks(
      x, w, g, p, round_in, source, pooled, p.nb * n_y,
      [&](const float* m, int64_t s, int64_t o0, int64_t on, int64_t lo, float* extra) {
#if BRISK_WINOGRAD_16
        if (pairs16(p)) return output_sample16(m, p, s, o0, on, bias, relu, bf16, out(lo, s, extra));
#endif
        output_sample(m, p, s, o0, on, bias, relu, bf16, out(lo, s, extra), sink ? kPoolSlack : 0);
      },
      [&](int64_t lo, int64_t hi, float* extra) {
        if (sink)
          for (int64_t s = 0; s < hi - lo; ++s) (*sink)(lo + s, out(lo, s, extra));
      });
}

void conv2d_pool_forward_winograd(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                                  bool relu, bool bf16, float* y, uint8_t* code) {
  const Plan p(g, O);
  const int64_t OP = O * (g.H / 2) * (g.W / 2);
  run_blocks(
      x, w, g, p, bf16 || gemm_operands_bf16(), nullptr, nullptr, 0,
      [&](const float* m, int64_t s, int64_t o0, int64_t on, int64_t lo, float*) {
        int64_t n = lo + s;  // samples after the last one belong to other threads: no room
#if BRISK_WINOGRAD_16
        if (pairs16(p)) return output_pooled16(m, p, s, o0, on, bias, relu, bf16, y + n * OP, code + n * OP);
#endif
        output_pooled(m, p, s, o0, on, bias, relu, bf16, y + n * OP, code + n * OP, 0);
      },
      [](int64_t, int64_t, float*) {});
}


// The weight gradient's transformed sums (see the header): samples are kept
// (bordered) until kSub of them fill a GEMM's K, then V and dM are formed
// for their tiles, and dU_xi [O, C] += dM_xi [O, tiles] @ V_xi^T.
struct WinogradWeightGrad::Impl {
  static constexpr int64_t kSub = 2;
  Plan p;
  bool bf16;  // x_n and the gradient read as their bf16 roundings
  int64_t R, PWg, Tld, og, xs_v, xs_m, n_x, n_g, sbp, filled = 0;
  float* du;  // [16][O][C]
  float *xb, *gb, *vb, *bp, *mb, *z;
  const float* pg[kSub] = {};  // add_pooled's samples: the pooled gradient and codes (else null)
  const uint8_t* pc[kSub] = {};
  Impl(const Geom2d& g, int64_t O, bool bf) : p(g, O), bf16(bf || gemm_operands_bf16()) {
    static thread_local std::vector<float> sums;  // kept: 131 KB for the cnn, past malloc's mmap threshold
    sums.assign(size_t(16 * O * g.C + 8), 0.f);  // + the last channel group's read past the end
    du = sums.data();
    R = 2 * p.th;
    PWg = round_up(2 * round_up(p.tw, 8), 8);  // an 8-tile chunk reads 16 columns from 2 tx0
    Tld = round_up(kSub * p.tiles1, 8) + 8;    // + the last row's spilled lanes
    // dM for og output channels at a time (whole micro-tile rows, about 8):
    // 16 x 8 x 112 floats for the cnn, near L1, where all 64 channels' dM
    // (459 KB) went to L2, and its stores cost a sixth of the kernel.
    const GemmTile ft = sgemm_f32_tile();
    og = std::min(p.O, ft.mr * std::max<int64_t>(1, 8 / ft.mr));
    xs_v = (p.C * Tld / 16 | 1) * 16;  // xi planes an odd number of cache lines apart
    xs_m = (og * Tld / 16 | 1) * 16;
    sbp = round_up(sgemm_packed_size(p.C, kSub * p.tiles1, ft.nr), 16);  // V_xi^T [T, C] packed as B
    n_x = round_up(p.C * p.PH * p.PW, 16), n_g = round_up(p.O * R * PWg, 16);
    int64_t n_z = round_up(4 * p.PW, 16);
    xb = thread_scratch(size_t(kSub * (n_x + n_g) + 16 * (xs_v + sbp + xs_m) + n_z));
    gb = xb + kSub * n_x, vb = gb + kSub * n_g, bp = vb + 16 * xs_v, mb = bp + 16 * sbp, z = mb + 16 * xs_m;
  }
  void flush() {
    if (!filled) return;
    const int64_t T = filled * p.tiles1, PP = p.PH * p.PW;
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t s = 0; s < filled; ++s) {
#if BRISK_WINOGRAD_16
        if (pairs16(p)) {
          transform_plane16(xb + s * n_x + c * PP, p, s * p.tiles1, [&](int64_t t, const __m512(&v)[16], int64_t n) {
            const __mmask16 lanes = first_lanes16(n);
            for (int xi = 0; xi < 16; ++xi) _mm512_mask_storeu_ps(vb + xi * xs_v + c * Tld + t, lanes, v[xi]);
          });
          continue;
        }
#endif
        transform_plane(xb + s * n_x + c * PP, p, z, s * p.tiles1, [&](int64_t t, const __m256(&v)[16]) {
          for (int xi = 0; xi < 16; ++xi) _mm256_storeu_ps(vb + xi * xs_v + c * Tld + t, v[xi]);
        });
      }
    // B_xi = V_xi^T [T, C], packed once for all the channel groups
    for (int xi = 0; xi < 16; ++xi) sgemm_pack_b(T, p.C, MatF{vb + xi * xs_v, 1, Tld}, bp + xi * sbp);
    for (int64_t o0 = 0; o0 < p.O; o0 += og) {
      const int64_t on = std::min(og, p.O - o0);
      for (int64_t o = o0; o < o0 + on; ++o)
        for (int64_t s = 0; s < filled; ++s) {
          const float* plane = gb + s * n_g + o * R * PWg;
          float* dm = mb + (o - o0) * Tld;
#if BRISK_WINOGRAD_16
          if (pg[s]) {
            transform_pooled_grad16(pg[s] + o * p.tiles1, pc[s] + o * p.tiles1, p.tiles1, bf16, dm, xs_m,
                                    s * p.tiles1);
            continue;
          }
          if (pairs16(p)) {
            transform_grad_plane16(plane, p, PWg, R, dm, xs_m, s * p.tiles1);
            continue;
          }
#endif
          transform_grad_plane(plane, p, PWg, dm, xs_m, s * p.tiles1);
        }
      for (int xi = 0; xi < 16; ++xi)  // dU_xi[o0..] += dM_xi [on, T] @ V_xi^T [T, C] (sgemm's bits)
        sgemm_packed_b(on, p.C, T, mb + xi * xs_m, Tld, bp + xi * sbp, du + (xi * p.O + o0) * p.C, p.C, true);
    }
    filled = 0;
  }
};

WinogradWeightGrad::WinogradWeightGrad(const Geom2d& g, int64_t O, bool bf16)
    : impl_(std::make_unique<Impl>(g, O, bf16)) {}
WinogradWeightGrad::~WinogradWeightGrad() = default;

void WinogradWeightGrad::add(const float* gy_n, const float* x_n) {
  Impl& m = *impl_;
  const Plan& p = m.p;
  border_planes(x_n, p, m.bf16, m.xb + m.filled * m.n_x);
  border_planes(gy_n, p.O, p.H, p.W, 0, m.R, m.PWg, m.bf16, m.gb + m.filled * m.n_g);
  m.pg[m.filled] = nullptr, m.pc[m.filled] = nullptr;
  if (++m.filled == Impl::kSub) m.flush();
}

bool WinogradWeightGrad::pooled_applies(const Geom2d& g) { return BRISK_WINOGRAD_16 && g.H % 2 == 0 && g.W % 2 == 0; }

void WinogradWeightGrad::add_pooled(const float* gp_n, const uint8_t* code_n, const float* x_n) {
  Impl& m = *impl_;
  BRISK_CHECK(pooled_applies(Geom2d{1, m.p.C, m.p.H, m.p.W, 3, 3, 1, 1, 1, 1, 1, 1, m.p.H, m.p.W}),
              "WinogradWeightGrad::add_pooled: needs even planes on an AVX-512 build, got ", m.p.H, "x", m.p.W);
  border_planes(x_n, m.p, m.bf16, m.xb + m.filled * m.n_x);
  m.pg[m.filled] = gp_n, m.pc[m.filled] = code_n;
  if (++m.filled == Impl::kSub) m.flush();
}

void WinogradWeightGrad::finish(float* gw) {
  Impl& m = *impl_;
  m.flush();
  const int64_t O = m.p.O, C = m.p.C;
  const __m256 h = _mm256_set1_ps(0.5f);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c0 = 0; c0 < C; c0 += 8) {  // 8 channels at a time (a partial last group reads on into the next rows)
      __m256 u[4][4], r[3][4];
      for (int xi = 0; xi < 16; ++xi) u[xi / 4][xi % 4] = _mm256_loadu_ps(m.du + (xi * O + o) * C + c0);
      for (int k = 0; k < 4; ++k) {  // G^T dU, G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]
        r[0][k] = _mm256_add_ps(u[0][k], _mm256_mul_ps(h, _mm256_add_ps(u[1][k], u[2][k])));
        r[1][k] = _mm256_mul_ps(h, _mm256_sub_ps(u[1][k], u[2][k]));
        r[2][k] = _mm256_add_ps(_mm256_mul_ps(h, _mm256_add_ps(u[1][k], u[2][k])), u[3][k]);
      }
      alignas(32) float g[9][8];
      for (int i = 0; i < 3; ++i) {  // (G^T dU) G
        _mm256_store_ps(g[i * 3 + 0], _mm256_add_ps(r[i][0], _mm256_mul_ps(h, _mm256_add_ps(r[i][1], r[i][2]))));
        _mm256_store_ps(g[i * 3 + 1], _mm256_mul_ps(h, _mm256_sub_ps(r[i][1], r[i][2])));
        _mm256_store_ps(g[i * 3 + 2], _mm256_add_ps(_mm256_mul_ps(h, _mm256_add_ps(r[i][1], r[i][2])), r[i][3]));
      }
      for (int64_t l = 0; l < std::min<int64_t>(8, C - c0); ++l) {
        float* d = gw + (o * C + c0 + l) * 9;
        for (int k = 0; k < 9; ++k) d[k] += g[k][l];
      }
    }
}

}  // namespace brisk::kern::cpu
