// The AMX tile micro-kernel shared by the GEMM (sgemm_amx.cpp) and the bf16
// convolution (kernels/cpu/conv2d_amx.cpp). Included inside namespace
// brisk::kern::cpu::amx by files compiled with -mamx-tile -mamx-bf16 and
// AVX-512 (BF16, BW, VL).
//
// Packed operands, in 64-byte Steps (32 bf16):
//   A strip: 32 rows of C x kp Steps, [32][kp]: row r's k run, zero past K.
//   B strip: 32 columns of C, kp Steps of 16 pair rows x 32 columns (u32 =
//            bf16 of k, k + 1: the layout tdpbf16ps reads), [kp * 16][32].
// C's 32x32 block lives in tmm0-3, A's two 16-row halves in tmm4-5, B's two
// 16-column halves in tmm6-7: each loaded tile feeds two products.
#pragma once
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include "core/dtype.h"

namespace brisk::kern::cpu::amx {

struct alignas(64) Step {
  uint32_t w[16];
};

// Whether the CPU has AMX-TILE and the given AMX feature (CPUID leaf 7 EDX
// bit: 22 AMX-BF16, 25 AMX-INT8), and Linux grants this process tile state:
// it hands it out only on request (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA = 18, kernel >= 5.16), asked once per process.
inline bool amx_usable(unsigned feature_bit) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  if (!(d & (1u << 24)) || !(d & (1u << feature_bit))) return false;
  static const bool granted = [] {
    constexpr long kReqXcompPerm = 0x1023, kXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) == 0;
  }();
  return granted;
}

// The tile configuration (palette 1): tiles 0-7 all 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
static_assert(sizeof(TileConfig) == 64);

// Each thread loads the configuration before its first tile instruction;
// nothing else in brisk touches tiles, so it stays loaded.
inline void ensure_config() {
  static thread_local bool loaded = false;
  if (!loaded) {
    static const TileConfig cfg;
    _tile_loadconfig(&cfg);
    loaded = true;
  }
}

// What to do to each value on its way out of the tiles: + bias[row] (the
// conv forward's), + col_bias[column] (the GEMM's: linear's bias), ReLU,
// rounding to bf16 (nearest even), in that order.
struct Epilogue {
  const float* bias = nullptr;  // indexed by the row of this 32-row block; null: none
  bool relu = false, round_bf16 = false;
  const float* col_bias = nullptr;  // indexed by the column of this 32-column block; null: none
};

// float_to_bf16_bits's arithmetic on 16 lanes (nearest even, denormals kept,
// NaN made quiet): bit for bit the scalar rounding the other paths use.
inline __m512 round_bf16(__m512 v) {
  __m512i u = _mm512_castps_si512(v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                          _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
  return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32(int(0xffff0000u))));
}

// Row-major f32 rows A[i, 0 : kc] (row stride lda), i < h, -> one A strip of
// bf16 (nearest even), zero past kc and past row h: row i at dst + i *
// row_steps (default: kp = ceil(kc / 32), a strip of its own; larger when
// several runs share a strip's rows, as the weight gradient's samples do).
inline void pack_a_rows(const float* A, int64_t lda, int64_t h, int64_t kc, Step* dst, int64_t row_steps = 0) {
  int64_t kp = (kc + 31) / 32, kpad = kp * 32;
  if (row_steps == 0) row_steps = kp;
  uint16_t* d = reinterpret_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < 32; ++i) {
    const float* row = A + i * lda;
    for (int64_t k = 0; k < kpad; k += 16) {
      __mmask16 m = i >= h ? 0 : kc - k >= 16 ? __mmask16(0xffff) : kc > k ? __mmask16((1u << (kc - k)) - 1) : 0;
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + i * row_steps * 32 + k),
                         (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, row + k)));
    }
  }
}

// C[32, 32] (+)= A strip @ B strip over kc (kp = ceil(kc / 32) Steps); writes
// only the m x n corner of C (row stride ldc), through ep when given.
inline void tile_product_32x32(int64_t kc, const Step* __restrict a, const Step* __restrict b, float* c, int64_t ldc,
                               bool acc, int m, int n, const Epilogue* ep) {
  constexpr int64_t NR = 32;
  ensure_config();
  int64_t kp = (kc + 31) / 32;
  const int64_t sa = kp * int64_t(sizeof(Step)), sb = NR * 4, sc = ldc * 4;
  const Step* a1 = a + 16 * kp;  // rows 16-31
  bool full = m == 32 && n == 32;
  if (full && acc) {
    _tile_loadd(0, c, sc);
    _tile_loadd(1, c + 16, sc);
    _tile_loadd(2, c + 16 * ldc, sc);
    _tile_loadd(3, c + 16 * ldc + 16, sc);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t t = 0; t < kp; ++t) {
    const Step* bt = b + t * NR;  // 16 pair rows x 32 columns: columns 0-15 in the first 64 bytes of each row
    _tile_loadd(4, a + t, sa);
    _tile_loadd(6, bt, sb);
    _tile_loadd(7, bt->w + 16, sb);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a1 + t, sa);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  if (full && !ep) {
    _tile_stored(0, c, sc);
    _tile_stored(1, c + 16, sc);
    _tile_stored(2, c + 16 * ldc, sc);
    _tile_stored(3, c + 16 * ldc + 16, sc);
    return;
  }
  alignas(64) float t[32][NR];
  _tile_stored(0, &t[0][0], NR * 4);
  _tile_stored(1, &t[0][16], NR * 4);
  _tile_stored(2, &t[16][0], NR * 4);
  _tile_stored(3, &t[16][16], NR * 4);
  for (int i = 0; i < m; ++i)
    for (int h = 0; h < 2 && 16 * h < n; ++h) {
      int w = std::min(16, n - 16 * h);
      __mmask16 mk = w == 16 ? __mmask16(0xffff) : __mmask16((1u << w) - 1);
      float* o = c + i * ldc + 16 * h;
      __m512 v = _mm512_load_ps(&t[i][16 * h]);
      if (acc && !full) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, o));  // full: the tiles started from C
      if (ep) {
        if (ep->bias) v = _mm512_add_ps(v, _mm512_set1_ps(ep->bias[i]));
        if (ep->col_bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, ep->col_bias + 16 * h));
        if (ep->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);  // NaN stays NaN, as std::max(v, 0)
        if (ep->round_bf16) v = round_bf16(v);
      }
      _mm512_mask_storeu_ps(o, mk, v);
    }
}

}  // namespace brisk::kern::cpu::amx
