// Pieces both builds of the pooled backward's scatter share
// (conv2d_pool_sparse_grad.cpp on AVX-512, 32 channels a pass;
// conv2d_pool_sparse_grad_avx2.cpp on AVX2, 8): aligned scratch, the live
// test, the weights and inputs laid out per pass of L channels, and the
// weight gradient's partials summed. The vector code is AVX2 (8-lane
// transposes), which either build runs. Both files are compiled with the
// same flags, so one copy of each inline function serves both.
#pragma once
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/kernel_params.h"
#include "core/thread_pool.h"
#include "kernels/cpu/pool2d.h"
#include "kernels/cpu/transpose8x8.h"

namespace brisk::kern::cpu::pool_sparse {

using U8 = uint32_t __attribute__((vector_size(32)));

// v's storage grown to at least n floats past its first 64-byte boundary,
// which is returned: the kernels' vector loads and stores then stay within
// one cache line each (a vector's malloc'd storage is 16-byte aligned; split
// loads cost the AVX-512 scatter a quarter of its time).
inline float* aligned_floats(std::vector<float>& v, size_t n) {
  if (v.size() < n + 15) v.resize(n + 15);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// Whether a pooled value adds anything: its window not ReLU'd (code < 4)
// and its value (f32 bits) not +-0 (a NaN is live).
inline bool live_value(unsigned code, uint32_t bits) { return (code < 4) & ((bits & 0x7fffffffu) != 0); }

// Window q's top-left position h * Wp + x in the zero-bordered plane
// (Wp = W + 2), q < Lq; + 16 entries (0) for a vector read at the last q.
inline std::vector<int32_t> window_offsets(const Geom2d& g) {
  const int64_t Wq = g.W / 2, Lq = (g.H / 2) * Wq, Wp = g.W + 2;
  std::vector<int32_t> qoff(static_cast<size_t>(Lq + 16));
  for (int64_t q = 0; q < Lq; ++q) qoff[size_t(q)] = int32_t(2 * (q / Wq) * Wp + 2 * (q % Wq));
  return qoff;
}

// w [O, C, 3, 3] -> wt [ceil(C / L)][O][9][L]: each (pass, o, tap)'s L input
// channels in one row at fixed offsets (zeros past C; wt zeroed by the
// caller; bf16: rounded). false where a weight (or its rounding) is not
// finite: the dense sums would form 0 * inf there, which a scatter never does.
template <int L>
bool pass_weights(const float* w, int64_t O, int64_t C, bool bf16, float* wt) {
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int t = 0; t < 9; ++t) {
        float v = w[(o * C + c) * 9 + t];
        if (bf16) v = bf16_rounded(v);
        if (!std::isfinite(v)) return false;
        wt[(((c / L) * O + o) * 9 + t) * L + c % L] = v;
      }
  return true;
}

// Sample n's x_n [C, H, W] -> xs [ceil(C / L)][(H + 2) (W + 2)][L] (bf16:
// rounded), the borders and the lanes past C zero (written here, so the
// planes need no zeroing first). Whether every value is finite.
template <int L>
bool bordered_planes(const float* x_n, const Geom2d& g, bool bf16, float* xs) {
  const int64_t H = g.H, W = g.W, C = g.C, Wp = W + 2, P = (H + 2) * Wp;
  const __m256 exp_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7f800000));
  for (int64_t c0 = 0; c0 < C; c0 += L) {
    float* d = xs + (c0 / L) * P * L;
    const int64_t cw = std::min<int64_t>(L, C - c0);
    std::memset(d, 0, sizeof(float) * size_t(Wp * L));                  // row 0
    std::memset(d + (H + 1) * Wp * L, 0, sizeof(float) * size_t(Wp * L));  // row H + 1
    for (int64_t h = 0; h < H; ++h) {
      float* row = d + (h + 1) * Wp * L;
      std::memset(row, 0, sizeof(float) * L);                // column 0
      std::memset(row + (W + 1) * L, 0, sizeof(float) * L);  // column W + 1
      for (int64_t x0 = 0; x0 < W; x0 += 8) {
        const int64_t m = std::min<int64_t>(8, W - x0);
        const __m256i keep = lane_mask8(m);
        for (int64_t cb = 0; cb < L; cb += 8) {
          __m256 r[8];
          for (int j = 0; j < 8; ++j)  // channel c0 + cb + j's 8 positions (zeros past C and past W)
            r[j] = cb + j < cw ? _mm256_maskload_ps(x_n + ((c0 + cb + j) * H + h) * W + x0, keep) : _mm256_setzero_ps();
          transpose8x8(r);  // r[i]: position x0 + i's 8 channels
          for (int64_t i = 0; i < m; ++i) {
            const __m256 v = bf16 ? bf16_rounded_lanes<__m256, U8>(r[i]) : r[i];
            if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(v, exp_mask), exp_mask, _CMP_EQ_OQ)))
              return false;  // an infinity or NaN (exponent all ones)
            _mm256_store_ps(row + (x0 + i + 1) * L + cb, v);
          }
        }
      }
    }
  }
  return true;
}

// acc's interior [H, W, N] (a zero-bordered [H + 2, W + 2, L] plane, N <= L
// channels) -> gx_n [c0 + c, H, W]: 8 positions by 8 channels a transpose
// (positions past W: lanes not stored); rounded with bf16. acc has 8 cells
// of room after the plane (the transposes' rows past a row's end).
// Where the build has AVX-512VL the partial rows are stored under a k mask:
// AVX2's vmaskmovps store is many micro-ops on AMD cores, and with 14-wide
// planes every store of the cnn's second layer went through it (the input
// gradient's kernel 1.11-1.13x faster with the k-masked store on a Zen 4).
template <int L>
void store_planes(const float* acc, const Geom2d& g, int64_t c0, int64_t N, bool bf16, float* gx_n) {
  const int64_t H = g.H, W = g.W, Wp = W + 2;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t x0 = 0; x0 < W; x0 += 8) {
      const int64_t m = std::min<int64_t>(8, W - x0);
#if defined(__AVX512VL__)
      const __mmask8 keep = __mmask8((1u << m) - 1);
#else
      const __m256i keep = lane_mask8(m);
#endif
      const float* src = acc + ((h + 1) * Wp + x0 + 1) * L;
      for (int64_t cb = 0; cb < N; cb += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_load_ps(src + i * L + cb);
        transpose8x8(r);  // r[j]: channel c0 + cb + j at positions x0 .. x0 + 7
        for (int j = 0; j < 8; ++j) {
          float* dst = gx_n + ((c0 + cb + j) * H + h) * W + x0;
          const __m256 v = bf16 ? bf16_rounded_lanes<__m256, U8>(r[j]) : r[j];
#if defined(__AVX512VL__)
          _mm256_mask_storeu_ps(dst, keep, v);
#else
          _mm256_maskstore_ps(dst, keep, v);
#endif
        }
      }
    }
}

// The weight gradient's per-block partials [blocks][part], each [O][passes
// of L][9][L] then [O] for the bias: partial 0 += partial 1, ... in block
// order (so the result does not depend on the thread count), then gw [o][c
// * 9 + t] (bf16: rounded, the gradient of the cast w) and gb [O] (null:
// none).
template <int L>
void sum_partials(float* partial, int64_t blocks, int64_t part, int64_t O, int64_t C, bool bf16, float* gw,
                  float* gb) {
  const int64_t row = 9 * ((C + L - 1) / L) * L;  // one o's floats
  parallel_for(0, O, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      float* p0 = partial + o * row;
      for (int64_t b = 1; b < blocks; ++b) {
        const float* pbk = partial + b * part + o * row;
        for (int64_t i = 0; i < row; ++i) p0[i] += pbk[i];
      }
      for (int64_t c = 0; c < C; ++c)
        for (int t = 0; t < 9; ++t) {
          const float v = p0[((c / L) * 9 + t) * L + c % L];
          gw[(o * C + c) * 9 + t] = bf16 ? bf16_rounded(v) : v;
        }
      if (gb) {
        float s = 0.f;
        for (int64_t b = 0; b < blocks; ++b) s += partial[b * part + O * row + o];
        gb[o] = s;
      }
    }
  });
}

}  // namespace brisk::kern::cpu::pool_sparse
#endif
