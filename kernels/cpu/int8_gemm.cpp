// int8 GEMM on AVX512-VNNI (vpdpbusd: 64 u8 x s8 products per instruction,
// summed in fours into 16 int32 lanes). A's int8 values are shifted to u8
// (q + 128) and the shift is removed afterwards with B's column sums:
// sum_k (a_k + 128) b_k = sum_k a_k b_k + 128 sum_k b_k. B is packed once as
// [K/4][N][4] so one 64-byte load feeds 16 columns x 4 k. Integer accumulation
// makes the result identical to the reference (kernels/cpu/ref/int8_gemm.cpp).
// Tiles of 12 rows x 32 columns (see vnni_tile).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "core/int8.h"
#include "core/thread_pool.h"
#include "kernels/cpu/grain.h"
#include "kernels/cpu/int8_amx.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {



// GCC 12's AVX-512 intrinsics (cvtepi32_ps, max_ps, reduce_max_ps) pass an
// undefined vector as the unused merge source, which -W(maybe-)uninitialized
// reports; nothing in this file reads an uninitialized value.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if defined(__GNUC__) && !defined(__clang__)  // a GCC-only group: clang warns of it as unknown
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

// Micro-tile: MR rows x 32 columns of C, 2*MR int32 accumulators (MR = 12:
// 24 of the 32 zmm registers, plus 2 for B and 1 for the broadcast). Per 4 k:
// 2 B loads (128 bytes, 32 columns x 4 k) and MR broadcasts of A feed 2*MR
// vpdpbusd, so each byte of B read from L2 feeds MR/2 instructions (the
// former 4 x 64 tile fed 1 per 16 bytes and was bound by L2 bandwidth).
// The epilogue removes the u8 shift and dequantizes straight into C:
// C = float(acc - corr) * sa[i] * sb[j], the reference's order of operations.
constexpr int64_t kNR = 32;
constexpr int kMR = 12;

template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void vnni_tile(
    const uint8_t* au, int64_t K4, const int8_t* bstrip, int64_t Np, const int32_t* corr, const float* sa,
    const float* sb, float* c, int64_t ldc, int64_t ncols) {
  __m512i acc[MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t k = 0; k < K4; ++k) {
    const int8_t* b = bstrip + k * Np * 4;
    __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      __m512i av = _mm512_set1_epi32(reinterpret_cast<const int32_t*>(au + r * K4 * 4)[k]);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
    }
  }
  __mmask16 m0 = ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << ncols) - 1);
  __mmask16 m1 = ncols >= 32 ? __mmask16(0xffff) : ncols <= 16 ? __mmask16(0) : __mmask16((1u << (ncols - 16)) - 1);
  __m512i corr0 = _mm512_loadu_si512(corr), corr1 = _mm512_loadu_si512(corr + 16);
  __m512 sb0 = _mm512_maskz_loadu_ps(m0, sb), sb1 = _mm512_maskz_loadu_ps(m1, sb + 16);
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) {
    __m512 s = _mm512_set1_ps(sa[r]);
    __m512 v0 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][0], corr0)), s), sb0);
    __m512 v1 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][1], corr1)), s), sb1);
    _mm512_mask_storeu_ps(c + r * ldc, m0, v0);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, v1);
  }
}

// Rows [i0, i1) of C: 32-column strips outer (a strip of packed B, K x 32
// bytes, stays in L2 while every row tile of this range uses it), MR-row
// tiles inner; the last tile of a range takes the leftover rows.
template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void vnni_rows_mr(
    const uint8_t* au, int64_t K4, const int8_t* bp, int64_t Np, const int32_t* corr, const float* sa,
    const float* sb, float* c, int64_t N, int64_t i, int64_t j) {
  vnni_tile<MR>(au + i * K4 * 4, K4, bp + j * 4, Np, corr + j, sa + i, sb + j, c + i * N + j, N,
                std::min<int64_t>(kNR, N - j));
}

using TileFn = void (*)(const uint8_t*, int64_t, const int8_t*, int64_t, const int32_t*, const float*, const float*,
                        float*, int64_t, int64_t, int64_t);
template <int... R>
constexpr std::array<TileFn, sizeof...(R)> make_tiles(std::integer_sequence<int, R...>) {
  return {&vnni_rows_mr<R + 1>...};
}
constexpr auto kTiles = make_tiles(std::make_integer_sequence<int, kMR>{});  // kTiles[r - 1]: r rows

void vnni_rows(const uint8_t* au, int64_t K4, const int8_t* bp, int64_t Np, const int32_t* corr, const float* sa,
               const float* sb, float* c, int64_t N, int64_t i0, int64_t i1) {
  for (int64_t j = 0; j < N; j += kNR)
    for (int64_t i = i0; i < i1; i += kMR) kTiles[size_t(std::min<int64_t>(kMR, i1 - i) - 1)](au, K4, bp, Np, corr, sa, sb, c, N, i, j);
}

// Quantization fused with packing, in the same arithmetic as
// quantize_rows_int8 (scale = amax / 127; q = clamp(x / scale, +-127) rounded
// to nearest even by the 1.5 * 2^23 trick; an all-zero row or column gets
// scale 0 and q = 0), so the product stays bit-identical to int8_matmul.
constexpr float kMagic = 12582912.0f;

// q = round(clamp(x / s)) for 16 lanes, as int32; s > 0.
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512i quantize16(__m512 x, __m512 s) {
  __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(x, s), _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
  v = _mm512_sub_ps(_mm512_add_ps(v, _mm512_set1_ps(kMagic)), _mm512_set1_ps(kMagic));
  return _mm512_cvttps_epi32(v);
}

__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512 abs16(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

// Row i of A [M, K] (f32, contiguous) -> au row (u8 = q + 128, padded with
// 128 to K4 * 4) and its scale. Returns false for a non-finite row.
__attribute__((target("avx512f,avx512bw,avx512vl"))) bool quantize_a_row(const float* x, int64_t K, int64_t K4, uint8_t* au,
                                                                 float* scale) {
  // max drops NaN operands, so a second accumulator sums x * 0: NaN or inf
  // anywhere in the row makes it NaN.
  __m512 m = _mm512_setzero_ps(), probe = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k < K; k += 16) {
    __mmask16 mk = K - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (K - k)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(mk, x + k);
    m = _mm512_max_ps(m, abs16(v));
    probe = _mm512_add_ps(probe, _mm512_mul_ps(v, _mm512_setzero_ps()));
  }
  float amax = _mm512_reduce_max_ps(m);
  float s = amax / 127.0f;
  *scale = s;
  bool ok = std::isfinite(amax) && std::isfinite(_mm512_reduce_add_ps(probe));
  __mmask16 tail = __mmask16((1u << (K % 16)) - 1);
  std::memset(au, 128, size_t(K4 * 4));
  if (!ok || !(s > 0)) return ok;
  __m512 sv = _mm512_set1_ps(s);
  __m512i off = _mm512_set1_epi32(128);
  for (k = 0; k + 16 <= K; k += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(au + k),
                     _mm512_cvtepi32_epi8(_mm512_add_epi32(quantize16(_mm512_loadu_ps(x + k), sv), off)));
  if (k < K)
    _mm_mask_storeu_epi8(au + k, tail, _mm512_cvtepi32_epi8(_mm512_add_epi32(quantize16(_mm512_maskz_loadu_ps(tail, x + k), sv), off)));
  return true;
}

// Columns [j0, j0 + 16) of B [K, N] (f32, row-major, leading dim N) ->
// their scales, packed int8 [K4][Np][4] and corr = 128 * column sums of q.
// Returns the first non-finite column, or -1.
__attribute__((target("avx512f,avx512bw,avx512vl"))) int64_t quantize_pack_b16(const float* b, int64_t K, int64_t N, int64_t K4,
                                                                        int64_t Np, int64_t j0, int8_t* bp, float* scale,
                                                                        int32_t* corr) {
  __mmask16 cols = N - j0 >= 16 ? __mmask16(0xffff) : __mmask16((1u << (N - j0)) - 1);
  __m512 m = _mm512_setzero_ps(), nan_probe = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 x = _mm512_maskz_loadu_ps(cols, b + k * N + j0);
    m = _mm512_max_ps(m, abs16(x));
    nan_probe = _mm512_add_ps(nan_probe, _mm512_mul_ps(x, _mm512_setzero_ps()));  // NaN/inf -> NaN
  }
  __m512 s = _mm512_div_ps(m, _mm512_set1_ps(127.0f));
  alignas(64) float sv[16], probe[16];
  _mm512_store_ps(sv, s);
  _mm512_store_ps(probe, nan_probe);
  for (int l = 0; l < 16 && j0 + l < N; ++l) {
    if (!std::isfinite(probe[l]) || !std::isfinite(sv[l])) return j0 + l;
    scale[j0 + l] = sv[l];
  }
  // Columns with scale 0 are all zeros: dividing by 1 keeps q = 0.
  __m512 sdiv = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.0f), s);
  __m512i sum = _mm512_setzero_si512(), lo8 = _mm512_set1_epi32(0xff);
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    __m512i packed = _mm512_setzero_si512();
    for (int kk = 0; kk < 4; ++kk) {
      int64_t k = k4 * 4 + kk;
      if (k >= K) break;
      __m512i q = quantize16(_mm512_maskz_loadu_ps(cols, b + k * N + j0), sdiv);
      sum = _mm512_add_epi32(sum, q);
      packed = _mm512_or_si512(packed, _mm512_slli_epi32(_mm512_and_si512(q, lo8), 8 * kk));  // byte kk of column j
    }
    _mm512_storeu_si512(bp + (k4 * Np + j0) * 4, packed);
  }
  _mm512_storeu_si512(corr + j0, _mm512_mullo_epi32(sum, _mm512_set1_epi32(128)));
  return -1;
}

// Column j of B when B's columns are contiguous (B = W^T, as int8_linear
// passes it): amax and quantization run along the column, and each 16 values
// become 4 packed dwords (4 k each), stored at their [k4][j] slots.
__attribute__((target("avx512f,avx512bw,avx512vl"))) bool quantize_pack_b_col(const float* x, int64_t K, int64_t K4, int64_t Np,
                                                                      int64_t j, int8_t* bp, float* scale,
                                                                      int32_t* corr) {
  __m512 m = _mm512_setzero_ps(), probe = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    __mmask16 mk = K - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (K - k)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(mk, x + k);
    m = _mm512_max_ps(m, abs16(v));
    probe = _mm512_add_ps(probe, _mm512_mul_ps(v, _mm512_setzero_ps()));
  }
  float s = _mm512_reduce_max_ps(m) / 127.0f;
  if (!std::isfinite(s) || !std::isfinite(_mm512_reduce_add_ps(probe))) return false;
  scale[j] = s;
  if (!(s > 0)) return true;  // all zeros: q = 0, bp is already zero, corr 0
  __m512 sv = _mm512_set1_ps(s);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 16) {
    __mmask16 mk = K - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (K - k)) - 1);
    __m512i q = _mm512_maskz_mov_epi32(mk, quantize16(_mm512_maskz_loadu_ps(mk, x + k), sv));
    sum = _mm512_add_epi32(sum, q);
    alignas(16) int32_t d[4];  // 16 bytes: k .. k+15 of column j = 4 groups of 4 k
    _mm_store_si128(reinterpret_cast<__m128i*>(d), _mm512_cvtepi32_epi8(q));
    for (int t = 0; t < 4 && k / 4 + t < K4; ++t) std::memcpy(bp + ((k / 4 + t) * Np + j) * 4, &d[t], 4);
  }
  corr[j] = 128 * _mm512_reduce_add_epi32(sum);
  return true;
}

}  // namespace

#pragma GCC diagnostic pop

// "int8_gemm" (contract in core/kernel_params.h); declines on CPUs without VNNI.
// The product runs on AMX-INT8 tiles or VNNI (int8_gemm_kernel()).
bool int8_gemm(const KernelArgs& args) {
  if (!int8_vnni_supported()) return false;
  const Tensor &a = args.in[0], &b = args.in[1];
  const Tensor& af = a;
  Tensor bf = b;
  // B's columns contiguous (W^T): quantize along them; anything else row-major.
  bool b_cols = bf.stride(0) == 1 && (bf.size(1) == 1 || bf.stride(1) == bf.size(0)) && bf.size(0) > 1;
  if (!b_cols) bf = bf.contiguous();
  int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  // On AMX tiles (int8_amx.h) k runs in whole 64-byte tile rows and A's rows
  // in whole 32-row blocks; the VNNI kernel needs only groups of 4.
  const bool amx = int8_gemm_kernel() == "amx";
  int64_t K4 = amx ? (K + kAmxInt8KAlign - 1) / kAmxInt8KAlign * (kAmxInt8KAlign / 4) : (K + 3) / 4,
          Np = (N + kNR - 1) / kNR * kNR, Mp = amx ? (M + kAmxInt8MAlign - 1) / kAmxInt8MAlign * kAmxInt8MAlign : M;
  // A as u8 = q + 128, K (and M) padded with 128 (q = 0); B packed [K4][Np][4], padding 0.
  std::vector<uint8_t> au(size_t(Mp * K4 * 4), uint8_t(128));
  std::vector<float> sa(static_cast<size_t>(Mp), 0.0f);
  std::vector<char> bad_row(size_t(M), 0);
  const float* ap = af.data_ptr<float>();
  parallel_for(0, M, rows_per_task(K, 16384), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      bad_row[size_t(i)] = !quantize_a_row(ap + i * K, K, K4, au.data() + i * K4 * 4, &sa[size_t(i)]);
  });
  for (int64_t i = 0; i < M; ++i)
    BRISK_CHECK(!bad_row[size_t(i)], "op int8_matmul: row ", i, " of A holds a non-finite value");
  std::vector<int8_t> bp(size_t(K4 * Np * 4), 0);
  std::vector<int32_t> corr(size_t(Np), 0);  // 128 * column sums of B
  std::vector<float> sb(size_t(Np), 0.0f);  // padded to whole strips for the epilogue's loads
  int64_t groups = (N + 15) / 16;
  std::vector<int64_t> bad_col(size_t(groups), -1);
  const float* bq = bf.data_ptr<float>();
  parallel_for(0, groups, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g) {
      if (!b_cols) {
        bad_col[size_t(g)] = quantize_pack_b16(bq, K, N, K4, Np, g * 16, bp.data(), sb.data(), corr.data());
        continue;
      }
      for (int64_t j = g * 16; j < std::min(N, g * 16 + 16); ++j)
        if (!quantize_pack_b_col(bq + j * K, K, K4, Np, j, bp.data(), sb.data(), corr.data()) && bad_col[size_t(g)] < 0)
          bad_col[size_t(g)] = j;
    }
  });
  for (int64_t c : bad_col) BRISK_CHECK(c < 0, "op int8_matmul: column ", c, " of B holds a non-finite value");
  float* cp = args.out[0].data_ptr<float>();
  if (amx) {
    parallel_for(0, Mp / kAmxInt8MAlign, 1, [&](int64_t lo, int64_t hi) {
      int8_amx_rows(au.data(), K4, bp.data(), Np, corr.data(), sa.data(), sb.data(), cp, M, N, lo * kAmxInt8MAlign,
                    std::min(M, hi * kAmxInt8MAlign));
    });
    return true;
  }
  parallel_for(0, M, kMR * 4, [&](int64_t lo, int64_t hi) {
    vnni_rows(au.data(), K4, bp.data(), Np, corr.data(), sa.data(), sb.data(), cp, N, lo, hi);
  });
  return true;
}

void register_int8_gemm() {
  register_kernel("int8_gemm", DeviceType::cpu, DType::f32, "cpu", backend_priority::native, &int8_gemm);
}

}  // namespace brisk::kern::cpu
