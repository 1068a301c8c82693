// im2col / col2im for one sample, shared by the batched image kernels and the
// fused conv2d kernels (which unfold one sample at a time into a buffer that
// stays in L2, instead of materialising [N, C*kh*kw, Ho*Wo]).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "core/kernel_params.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/transpose8x8.h"

namespace brisk::kern::cpu {

// Every row of an unfold, in col's order: f(c, j, h, w0, r) for input
// channel c, tap column j, the input row h it reads (outside [0, H) in the
// padding), the input column w0 of its first output, and r, the offset of
// the row in col [C*kh*kw, Ho*Wo]. im2col and col2im, scalar and AVX-512,
// walk the same rows.
template <class F>
inline void for_each_unfold_row(const Geom2d& g, F&& f) {
  int64_t L = g.Ho * g.Wo;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t base = ((c * g.kh + i) * g.kw + j) * L, w0 = j * g.dw - g.pw;
        for (int64_t oh = 0; oh < g.Ho; ++oh) f(c, j, oh * g.sh - g.ph + i * g.dh, w0, base + oh * g.Wo);
      }
}

// [kw, chunks] masks of the lanes whose column stays inside the plane (zero
// past L), worked out once per geometry (a call unfolds one sample, and a
// batch has many); chunks = ceil(L / 16).
inline const uint16_t* same_colmasks(const Geom2d& g) {
  int64_t L = g.H * g.W, chunks = (L + 15) / 16;
  static thread_local std::vector<uint16_t> colmask;
  static thread_local int64_t key[4] = {-1, -1, -1, -1};
  if (key[0] != g.W || key[1] != L || key[2] != g.kw || key[3] != g.dw * 65536 + g.pw) {
    colmask.assign(size_t(g.kw * chunks), 0);
    for (int64_t j = 0; j < g.kw; ++j) {
      int64_t wj = j * g.dw - g.pw;
      for (int64_t p = 0; p < L; ++p) {
        int64_t w = p % g.W + wj;
        if (w >= 0 && w < g.W) colmask[size_t(j * chunks + p / 16)] |= uint16_t(1u << (p % 16));
      }
    }
    key[0] = g.W, key[1] = L, key[2] = g.kw, key[3] = g.dw * 65536 + g.pw;
  }
  return colmask.data();
}

// The lanes of chunk t whose source 16t + delta + lane lies inside [0, L).
inline uint32_t same_inside(int64_t t, int64_t delta, int64_t L) {
  int64_t lo = -(16 * t + delta), hi = L - (16 * t + delta);
  return (lo <= 0 ? 0xffffu : lo >= 16 ? 0u : 0xffffu << lo) & (hi >= 16 ? 0xffffu : hi <= 0 ? 0u : (1u << hi) - 1);
}
// Stride 1 both ways and the output the input's size: each tap's unfolded
// plane is the input plane at one flat offset.
inline bool same_geometry(const Geom2d& g) {
  return g.sh == 1 && g.sw == 1 && g.Ho == g.H && g.Wo == g.W && g.H * g.W < (int64_t(1) << 30);
}

// Each tap's load masks for the chunks of its plane (same_chunk's: column
// wrap and plane ends), as [kh * kw, chunks + 2] with two zero chunks past the
// plane's last (strips padded to 32 positions reach at most that far), worked
// out once per geometry.
inline int64_t same_tap_stride(const Geom2d& g) { return (g.H * g.W + 15) / 16 + 2; }
// What a per-thread table of a same geometry depends on (its cache key).
using SameKey = std::array<int64_t, 5>;
inline SameKey same_key(const Geom2d& g) {
  return {g.H, g.W, g.kh * 65536 + g.kw, g.dh * 65536 + g.dw, g.ph * 65536 + g.pw};
}
inline const uint16_t* same_tap_masks(const Geom2d& g) {
  static thread_local std::vector<uint16_t> mt;
  static thread_local SameKey key{-1, -1, -1, -1, -1};
  if (SameKey want = same_key(g); want != key) {
    int64_t L = g.H * g.W, chunks = (L + 15) / 16, ts = same_tap_stride(g);
    const uint16_t* colmask = same_colmasks(g);
    mt.assign(size_t(g.kh * g.kw * ts), 0);
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t delta = (i * g.dh - g.ph) * g.W + (j * g.dw - g.pw);
        for (int64_t t = 0; t < chunks; ++t)
          mt[size_t((i * g.kw + j) * ts + t)] = uint16_t(colmask[j * chunks + t] & same_inside(t, delta, L));
      }
    key = want;
  }
  return mt.data();
}

#ifdef __AVX2__
// 8 lanes of a maskload/maskstore mask from the low 8 bits of m (lane u: bit u).
inline __m256i lane_bits8(uint32_t m) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(m)), bit), bit);
}

// im2col_same_avx512 with AVX2 (CPUs without AVX-512, and sgemm's "avx2"
// ISA): each tap's row is its input plane at one flat offset, copied 8 lanes
// at a time through maskload with same_tap_masks' lanes (column wrap and
// plane ends zeroed; masked-off lanes never fault), the row's last chunk
// through maskstore. The rows of 14 or 28 floats were a library call each.
inline void im2col_same_avx2(const float* x, const Geom2d& g, float* col) {
  int64_t L = g.H * g.W, taps = g.kh * g.kw, ts = same_tap_stride(g), chunks8 = (L + 7) / 8;
  const uint16_t* mt = same_tap_masks(g);
  __m256i last = lane_bits8(L % 8 ? (1u << (L % 8)) - 1 : 0xffu);
  for (int64_t k = 0; k < g.C * taps; ++k) {
    int64_t tap = k % taps;
    const float* src = x + (k / taps) * L + (tap / g.kw * g.dh - g.ph) * g.W + (tap % g.kw * g.dw - g.pw);
    const uint16_t* m = mt + tap * ts;
    float* dst = col + k * L;
    for (int64_t q = 0; q + 1 < chunks8; ++q)
      _mm256_storeu_ps(dst + 8 * q, _mm256_maskload_ps(src + 8 * q, lane_bits8(uint32_t(m[q / 2]) >> (q % 2 * 8) & 0xffu)));
    int64_t q = chunks8 - 1;
    _mm256_maskstore_ps(dst + 8 * q, last,
                        _mm256_maskload_ps(src + 8 * q, lane_bits8(uint32_t(m[q / 2]) >> (q % 2 * 8) & 0xffu)));
  }
}

// The same unfold written straight into the AVX2 kernel's A strips of
// col^T [L, CKK] (sgemm_packed's layout for mr = 6): position p of row k at
// dst[(p / 6) * stride + k * 6 + p % 6] (stride: sgemm_packed_stride(CKK, 6)),
// zero for p in [L, ceil(L / 6) * 6). Each (strip, row) is 8 loaded lanes,
// masked, stored whole: the 2 extra floats land on row k + 1 of the strip,
// written next (the last row stores its 6 as 4 + 2). The forward then needs
// neither an im2col buffer nor a packing pass. Needs same_geometry(g).
inline void im2col_same_strips6_avx2(const float* x, const Geom2d& g, float* dst) {
  constexpr int64_t w = 6;
  int64_t L = g.H * g.W, taps = g.kh * g.kw, CKK = g.C * taps, ts = same_tap_stride(g);
  int64_t stride = sgemm_packed_stride(CKK, w), strips = (L + w - 1) / w;
  // Each tap's 8-lane masks per strip (the lanes of positions 6s .. 6s+7 its
  // source keeps), expanded once per geometry from same_tap_masks' bits.
  static thread_local std::vector<int32_t> mk;  // [taps, strips, 8 lanes]
  static thread_local SameKey key{-1, -1, -1, -1, -1};
  if (SameKey want = same_key(g); want != key) {
    const uint16_t* mt = same_tap_masks(g);
    mk.resize(size_t(taps * strips * 8));
    for (int64_t tap = 0; tap < taps; ++tap)
      for (int64_t st = 0; st < strips; ++st) {
        int64_t p = w * st;  // the table has 2 zero chunks past the plane, so p / 16 + 1 is inside it
        uint32_t bits = (uint32_t(mt[tap * ts + p / 16]) | uint32_t(mt[tap * ts + p / 16 + 1]) << 16) >> (p % 16);
        // lanes 6, 7 (the next row's, stored over) masked off
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(mk.data() + (tap * strips + st) * 8), lane_bits8(bits & 0x3fu));
      }
    key = want;
  }
  for (int64_t k = 0; k < CKK; ++k) {
    int64_t tap = k % taps, delta = (tap / g.kw * g.dh - g.ph) * g.W + (tap % g.kw * g.dw - g.pw);
    const float* src = x + (k / taps) * L + delta;
    const int32_t* m = mk.data() + tap * strips * 8;
    float* row = dst + k * w;
    for (int64_t st = 0; st < strips; ++st) {
      __m256i ms = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + 8 * st));
      int64_t at = w * st + delta;  // the chunk's first source element in the plane
      __m256 v = at >= 0 && at + 8 <= L ? _mm256_and_ps(_mm256_loadu_ps(src + w * st), _mm256_castsi256_ps(ms))
                                        : _mm256_maskload_ps(src + w * st, ms);  // masked-off lanes never fault
      float* d = row + st * stride;
      if (k + 1 < CKK) {
        _mm256_storeu_ps(d, v);
      } else {
        _mm_storeu_ps(d, _mm256_castps256_ps128(v));
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(v, 1));
      }
    }
  }
}

// Its adjoint, col2im of a same geometry: x zeroed, then each tap row added
// into its input plane at the tap's offset, 8 lanes at a time, the lanes
// im2col zeroed adding +0 (x is never -0: it starts at +0, and a sum is -0
// only if both terms are, so x + 0 keeps its bits). Only a chunk reaching past
// either end of the plane goes through maskstore (microcoded and slow on AMD
// CPUs: masked stores everywhere left this no faster than the scalar rows).
// Rows go in order, so each element sums its taps in the portable col2im's
// order, with the same bits.
inline void col2im_same_avx2(const float* col, const Geom2d& g, float* x) {
  int64_t L = g.H * g.W, taps = g.kh * g.kw, ts = same_tap_stride(g), chunks8 = (L + 7) / 8;
  const uint16_t* mt = same_tap_masks(g);
  std::fill(x, x + g.C * L, 0.f);
  for (int64_t k = 0; k < g.C * taps; ++k) {
    int64_t tap = k % taps, delta = (tap / g.kw * g.dh - g.ph) * g.W + (tap % g.kw * g.dw - g.pw);
    float* dst = x + (k / taps) * L + delta;
    const uint16_t* m = mt + tap * ts;
    const float* src = col + k * L;
    for (int64_t q = 0; q < chunks8; ++q) {
      uint32_t bits = uint32_t(m[q / 2]) >> (q % 2 * 8) & 0xffu;
      if (!bits) continue;
      __m256i mk = lane_bits8(bits);
      __m256 v = 8 * q + 8 <= L ? _mm256_and_ps(_mm256_loadu_ps(src + 8 * q), _mm256_castsi256_ps(mk))
                                : _mm256_maskload_ps(src + 8 * q, mk);  // the row's last chunk: not past col
      int64_t at = 8 * q + delta;  // the chunk's first element in the plane
      if (at >= 0 && at + 8 <= L)
        _mm256_storeu_ps(dst + 8 * q, _mm256_add_ps(_mm256_loadu_ps(dst + 8 * q), v));
      else
        _mm256_maskstore_ps(dst + 8 * q, mk, _mm256_add_ps(_mm256_maskload_ps(dst + 8 * q, mk), v));
    }
  }
}
#endif

#ifdef __AVX512F__
// Stride-1 rows with AVX-512 (f32, Wo <= 64, kw <= 16): every output row is at
// most 4 masked loads and stores, with the masks worked out once per kernel
// column j (they depend on j only, not on the row). Rows are short (the cnn's
// 14 and 28), so a library call or a scalar loop per row cost more than the
// copy; masked-off lanes never fault, so a load may start before the image row.
// Taken while sgemm's ISA is avx512 (set_sgemm_isa("avx2") tests the portable rows).
struct RowMasks {
  static constexpr int kMaxChunks = 4, kMaxKw = 16;
  int chunks = 0;
  __mmask16 store[kMaxChunks];         // lanes inside [0, Wo)
  __mmask16 load[kMaxKw][kMaxChunks];  // lanes whose input column w0(j) + t is inside [0, W)
  static bool fits(const Geom2d& g) { return g.sw == 1 && g.Wo <= 16 * kMaxChunks && g.kw <= kMaxKw; }
  explicit RowMasks(const Geom2d& g) {
    chunks = int((g.Wo + 15) / 16);
    auto bits = [](int64_t t, int64_t lo, int64_t hi) {  // lanes t..t+15 inside [lo, hi)
      uint32_t m = 0;
      for (int u = 0; u < 16; ++u) m |= uint32_t(t + u >= lo && t + u < hi) << u;
      return __mmask16(m);
    };
    for (int t = 0; t < chunks; ++t) {
      store[t] = bits(16 * t, 0, g.Wo);
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t w0 = j * g.dw - g.pw;
        load[j][t] = bits(16 * t, std::max<int64_t>(0, -w0), std::min<int64_t>(g.Wo, g.W - w0)) & store[t];
      }
    }
  }
};

// Chunk t (positions 16t .. 16t+15) of one tap's unfolded plane: the input
// plane at the tap's constant offset delta, with the lanes whose column wraps
// (cm[t], the tap column's masks) or whose source falls outside [0, L)
// zeroed; all zero for t past the plane's chunks. Masked-off lanes never
// fault, so the load may start before the plane.
inline __m512 same_chunk(const float* plane, int64_t L, const __mmask16* cm, int64_t delta, int64_t t) {
  if (t >= (L + 15) / 16) return _mm512_setzero_ps();
  return _mm512_maskz_loadu_ps(__mmask16(cm[t] & same_inside(t, delta, L)), plane + 16 * t + delta);
}

// "Same" geometry (stride 1, Ho = H, Wo = W: the cnn's 3x3 pad 1 layers):
// the unfolded plane of tap (c, i, j) is the input plane shifted by one
// constant flat offset, delta = (i*dh - ph)*W + (j*dw - pw), with the lanes
// whose column wraps around zeroed (a per-j pattern) and those past either end
// of the plane zeroed (which is exactly where the row falls outside). So the
// whole plane is L/16 contiguous masked copies instead of Ho short rows.
inline void im2col_same_avx512(const float* x, const Geom2d& g, float* col) {
  int64_t L = g.H * g.W, chunks = (L + 15) / 16;
  const __mmask16* colmask = same_colmasks(g);
  __mmask16 last = __mmask16(L % 16 ? (1u << (L % 16)) - 1 : 0xffffu);
  for (int64_t c = 0; c < g.C; ++c) {
    const float* plane = x + c * L;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        float* dst = col + ((c * g.kh + i) * g.kw + j) * L;
        int64_t delta = (i * g.dh - g.ph) * g.W + (j * g.dw - g.pw);
        const __mmask16* cm = colmask + j * chunks;
        for (int64_t t = 0; t < chunks; ++t)
          _mm512_mask_storeu_ps(dst + 16 * t, t + 1 == chunks ? last : __mmask16(0xffff),
                                same_chunk(plane, L, cm, delta, t));
      }
  }
}

// The same unfold written straight into sgemm_packed's strips (sgemm.h) of
// width w, a multiple of 8 up to 32: the A strips of col^T [L, CKK] (w = mr) or the B
// strips of col [CKK, L] (w = nr). Position p of row k lands at
// dst[(p / w) * stride + k * w + p % w] (stride: sgemm_packed_stride(CKK, w)),
// zero for p in [L, ceil(L / w) * w): each 16-lane chunk leaves as two
// 8-float stores, so the GEMM needs no im2col buffer and no packing pass.
// Needs same_geometry(g).
inline void im2col_same_strips_avx512(const float* x, const Geom2d& g, int64_t w, float* dst) {
  int64_t L = g.H * g.W, taps = g.kh * g.kw, ts = same_tap_stride(g);
  int64_t stride = sgemm_packed_stride(g.C * taps, w), P = (L + w - 1) / w * w, pchunks = (P + 15) / 16;
  const __mmask16* mt = same_tap_masks(g);
  // Where positions 8q .. 8q+7 of row 0 go (row k adds k * w), once per layout.
  static thread_local std::vector<int64_t> off;
  static thread_local int64_t key[3] = {-1, -1, -1};
  if (key[0] != pchunks || key[1] != w || key[2] != stride) {
    off.resize(size_t(2 * pchunks));
    for (int64_t q = 0; q < 2 * pchunks; ++q) off[size_t(q)] = (8 * q / w) * stride + 8 * q % w;
    key[0] = pchunks, key[1] = w, key[2] = stride;
  }
  bool odd = 2 * pchunks * 8 > P;  // the last chunk's upper half lies past P: not stored
  int64_t CKK = g.C * taps, k = 0;
  // Row k's source (the input plane at the tap's offset) and load masks.
  auto src = [&](int64_t r) {
    int64_t tap = r % taps;
    return x + (r / taps) * L + (tap / g.kw * g.dh - g.ph) * g.W + (tap % g.kw * g.dw - g.pw);
  };
  auto masks = [&](int64_t r) { return mt + (r % taps) * ts; };
  if (w == 8)
    // Rows k, k+1 share each strip's 64-byte line: unfold them together and
    // store whole lines (half the stores of a 32-byte half per row).
    for (; k + 1 < CKK; k += 2) {
      const float *s0 = src(k), *s1 = src(k + 1);
      const __mmask16 *m0 = masks(k), *m1 = masks(k + 1);
      float* row = dst + k * 8;
      for (int64_t t = 0; t < pchunks; ++t) {
        __m512 a = _mm512_maskz_loadu_ps(m0[t], s0 + 16 * t), b = _mm512_maskz_loadu_ps(m1[t], s1 + 16 * t);
        _mm512_storeu_ps(row + 2 * t * stride, _mm512_shuffle_f32x4(a, b, 0x44));  // positions 16t .. 16t+7
        if (t + 1 < pchunks || !odd)
          _mm512_storeu_ps(row + (2 * t + 1) * stride, _mm512_shuffle_f32x4(a, b, 0xee));  // 16t+8 .. 16t+15
      }
    }
  for (; k < CKK; ++k) {
    const float* s0 = src(k);
    const __mmask16* m = masks(k);
    const int64_t* o = off.data();
    float* row = dst + k * w;
    for (int64_t t = 0; t < pchunks; ++t) {
      __m512 v = _mm512_maskz_loadu_ps(m[t], s0 + 16 * t);  // masked-off lanes never fault
      _mm256_storeu_ps(row + o[2 * t], _mm512_castps512_ps256(v));
      if (t + 1 < pchunks || !odd)
        _mm256_storeu_ps(row + o[2 * t + 1], _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    }
  }
}

// The unfold transposed into sgemm_packed's strips of col^T's columns, for
// the weight gradient (K = L runs along the positions): col^T [L, CKK] as the
// B strips (w = nr) of gy_n @ col_n^T, or col [CKK, L] as the A strips
// (w = mr) of col_n @ gy_n^T. Row k, position p lands at
// dst[(k / w) * stride + p * w + k % w] (stride: sgemm_packed_stride(L, w)),
// zero for k in [CKK, ceil(CKK / w) * w). Eight rows by eight positions at a
// time: masked loads from the input planes, an 8 x 8 register transpose, no
// im2col buffer. Needs same_geometry(g).
inline void im2col_same_strips_t_avx512(const float* x, const Geom2d& g, int64_t w, float* dst) {
  int64_t L = g.H * g.W, taps = g.kh * g.kw, CKK = g.C * taps, ts = same_tap_stride(g);
  int64_t stride = sgemm_packed_stride(L, w), rows = (CKK + w - 1) / w * w;
  const __mmask16* mt = same_tap_masks(g);
  for (int64_t k0 = 0; k0 < rows; k0 += 8) {
    const float* src[8];
    const __mmask16* m[8];
    for (int r = 0; r < 8; ++r) {
      int64_t k = std::min(k0 + r, CKK - 1), tap = k % taps;  // rows past CKK load nothing (mask 0 below)
      src[r] = x + (k / taps) * L + (tap / g.kw * g.dh - g.ph) * g.W + (tap % g.kw * g.dw - g.pw);
      m[r] = mt + tap * ts;
    }
    uint32_t live = k0 + 8 <= CKK ? 0xffu : k0 >= CKK ? 0u : (1u << (CKK - k0)) - 1;
    float* d = dst + (k0 / w) * stride + k0 % w;
    for (int64_t p = 0; p < L; p += 8) {
      __m256 v[8];
      int64_t t = p / 16, sh = p % 16;
      for (int r = 0; r < 8; ++r)  // 8 lanes of a masked load: the lanes above never fault
        v[r] = _mm512_castps512_ps256(
            _mm512_maskz_loadu_ps(__mmask16((live >> r & 1u) ? (m[r][t] >> sh) & 0xffu : 0u), src[r] + p));
      transpose8x8(v);
      int64_t n = std::min<int64_t>(8, L - p);
      for (int64_t l = 0; l < n; ++l) _mm256_storeu_ps(d + (p + l) * w, v[l]);
    }
  }
}

inline void im2col_sample_avx512(const float* x, const Geom2d& g, float* col) {
  if (same_geometry(g)) return im2col_same_avx512(x, g, col);
  RowMasks rm(g);
  for_each_unfold_row(g, [&](int64_t c, int64_t j, int64_t h, int64_t w0, int64_t r) {
    float* d = col + r;
    if (h < 0 || h >= g.H) {
      for (int t = 0; t < rm.chunks; ++t) _mm512_mask_storeu_ps(d + 16 * t, rm.store[t], _mm512_setzero_ps());
      return;
    }
    const float* src = x + (c * g.H + h) * g.W + w0;
    for (int t = 0; t < rm.chunks; ++t)
      _mm512_mask_storeu_ps(d + 16 * t, rm.store[t], _mm512_maskz_loadu_ps(rm.load[j][t], src + 16 * t));
  });
}

inline void col2im_sample_avx512(const float* col, const Geom2d& g, float* x) {
  RowMasks rm(g);
  std::fill(x, x + g.C * g.H * g.W, 0.f);
  for_each_unfold_row(g, [&](int64_t c, int64_t j, int64_t h, int64_t w0, int64_t r) {
    if (h < 0 || h >= g.H) return;
    float* d = x + (c * g.H + h) * g.W + w0;
    const float* s = col + r;
    for (int t = 0; t < rm.chunks; ++t) {
      __mmask16 m = rm.load[j][t];
      _mm512_mask_storeu_ps(d + 16 * t, m,
                            _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + 16 * t), _mm512_maskz_loadu_ps(m, s + 16 * t)));
    }
  });
}
#endif

// x [C, H, W] -> col [C*kh*kw, Ho*Wo]; row (c*kh + i)*kw + j.
template <class T>
void im2col_sample(const T* x, const Geom2d& g, T* col) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>)
    if (RowMasks::fits(g) && sgemm_isa_avx512()) return im2col_sample_avx512(x, g, col);
#endif
#ifdef __AVX2__
  if constexpr (std::is_same_v<T, float>)
    if (same_geometry(g) && sgemm_isa_avx2()) return im2col_same_avx2(x, g, col);
#endif
  for_each_unfold_row(g, [&](int64_t c, int64_t, int64_t h, int64_t w0, int64_t r) {
    T* d = col + r;
    if (h < 0 || h >= g.H) {
      std::fill(d, d + g.Wo, T(0));
      return;
    }
    const T* src = x + (c * g.H + h) * g.W;
    if (g.sw == 1) {  // contiguous run between the padded edges
      int64_t lo = std::clamp<int64_t>(-w0, 0, g.Wo), hi = std::clamp<int64_t>(g.W - w0, lo, g.Wo);
      std::fill(d, d + lo, T(0));
      std::copy(src + w0 + lo, src + w0 + hi, d + lo);
      std::fill(d + hi, d + g.Wo, T(0));
    } else {
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        int64_t w = w0 + ow * g.sw;
        d[ow] = (w >= 0 && w < g.W) ? src[w] : T(0);
      }
    }
  });
}

// The adjoint: col [C*kh*kw, Ho*Wo] summed into x [C, H, W] (x zeroed first).
template <class T>
void col2im_sample(const T* col, const Geom2d& g, T* x) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>)
    if (RowMasks::fits(g) && sgemm_isa_avx512()) return col2im_sample_avx512(col, g, x);
#endif
#ifdef __AVX2__
  if constexpr (std::is_same_v<T, float>)
    if (same_geometry(g) && sgemm_isa_avx2()) return col2im_same_avx2(col, g, x);
#endif
  std::fill(x, x + g.C * g.H * g.W, T(0));
  for_each_unfold_row(g, [&](int64_t c, int64_t, int64_t h, int64_t w0, int64_t r) {
    if (h < 0 || h >= g.H) return;
    T* d = x + (c * g.H + h) * g.W;
    const T* s = col + r;
    if (g.sw == 1) {
      int64_t lo = std::clamp<int64_t>(-w0, 0, g.Wo), hi = std::clamp<int64_t>(g.W - w0, lo, g.Wo);
      for (int64_t ow = lo; ow < hi; ++ow) d[w0 + ow] += s[ow];
    } else {
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        int64_t w = w0 + ow * g.sw;
        if (w >= 0 && w < g.W) d[w] += s[ow];
      }
    }
  });
}

}  // namespace brisk::kern::cpu
