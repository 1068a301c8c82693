// int8 GEMM on AVX512-VNNI (vpdpbusd: 64 u8 x s8 products per instruction,
// summed in fours into 16 int32 lanes). A's int8 values are shifted to u8
// (q + 128) and the shift is removed afterwards with B's column sums:
// sum_k (a_k + 128) b_k = sum_k a_k b_k + 128 sum_k b_k. B is packed once as
// [K/4][N][4] so one 64-byte load feeds 16 columns x 4 k. Integer accumulation
// makes the result identical to the scalar reference.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/int8.h"
#include "core/ops.h"
#include "core/thread_pool.h"

namespace brisk {

bool int8_vnni_supported() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}

namespace {

// acc[i, :] for rows [i0, i1): 64-column strips outer (a strip of packed B,
// K x 64 bytes, stays in L2 while every row block uses it), then tiles of
// 4 rows x 64 columns: 16 int32 accumulators, 4 B loads and 4 broadcasts
// feed 16 vpdpbusd per 4 k.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void vnni_rows(
    const uint8_t* au, int64_t K4, const int8_t* bp, int64_t Np, const int32_t* corr, int64_t i0, int64_t i1,
    int32_t* acc_out) {
  for (int64_t j = 0; j < Np; j += 64) {
    int64_t i = i0;
    for (; i + 4 <= i1; i += 4) {
      __m512i c[4][4];
      for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 4; ++v) c[r][v] = _mm512_setzero_si512();
      const int32_t* ar[4];
      for (int r = 0; r < 4; ++r) ar[r] = reinterpret_cast<const int32_t*>(au + (i + r) * K4 * 4);
      for (int64_t k = 0; k < K4; ++k) {
        const int8_t* b = bp + (k * Np + j) * 4;
        __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64), b2 = _mm512_loadu_si512(b + 128),
                b3 = _mm512_loadu_si512(b + 192);
        for (int r = 0; r < 4; ++r) {
          __m512i av = _mm512_set1_epi32(ar[r][k]);
          c[r][0] = _mm512_dpbusd_epi32(c[r][0], av, b0);
          c[r][1] = _mm512_dpbusd_epi32(c[r][1], av, b1);
          c[r][2] = _mm512_dpbusd_epi32(c[r][2], av, b2);
          c[r][3] = _mm512_dpbusd_epi32(c[r][3], av, b3);
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 4; ++v)
          _mm512_storeu_si512(acc_out + (i + r) * Np + j + 16 * v,
                              _mm512_sub_epi32(c[r][v], _mm512_loadu_si512(corr + j + 16 * v)));
    }
    for (; i < i1; ++i) {  // leftover rows, one at a time
      const int32_t* arow = reinterpret_cast<const int32_t*>(au + i * K4 * 4);
      __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
      for (int64_t k = 0; k < K4; ++k) {
        __m512i av = _mm512_set1_epi32(arow[k]);
        const int8_t* b = bp + (k * Np + j) * 4;
        c0 = _mm512_dpbusd_epi32(c0, av, _mm512_loadu_si512(b));
        c1 = _mm512_dpbusd_epi32(c1, av, _mm512_loadu_si512(b + 64));
        c2 = _mm512_dpbusd_epi32(c2, av, _mm512_loadu_si512(b + 128));
        c3 = _mm512_dpbusd_epi32(c3, av, _mm512_loadu_si512(b + 192));
      }
      int32_t* o = acc_out + i * Np + j;
      _mm512_storeu_si512(o, _mm512_sub_epi32(c0, _mm512_loadu_si512(corr + j)));
      _mm512_storeu_si512(o + 16, _mm512_sub_epi32(c1, _mm512_loadu_si512(corr + j + 16)));
      _mm512_storeu_si512(o + 32, _mm512_sub_epi32(c2, _mm512_loadu_si512(corr + j + 32)));
      _mm512_storeu_si512(o + 48, _mm512_sub_epi32(c3, _mm512_loadu_si512(corr + j + 48)));
    }
  }
}

}  // namespace

Tensor int8_matmul_vnni(const Tensor& a, const Tensor& b) {
  BRISK_CHECK(int8_vnni_supported(), "int8_matmul_vnni: this CPU lacks AVX512-VNNI");
  check_defined("int8_matmul_vnni", a);
  check_defined("int8_matmul_vnni", b);
  BRISK_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "op int8_matmul_vnni: expected [M, K] @ [K, N], got ", shape_str(a.shape()), " @ ", shape_str(b.shape()));
  Int8Rows qa = quantize_rows_int8(a), qb = quantize_rows_int8(b.t());
  int64_t M = qa.rows, N = qb.rows, K = qa.cols;
  int64_t K4 = (K + 3) / 4, Np = (N + 63) / 64 * 64;
  // A as u8 = q + 128, K padded with 128 (q = 0); B packed [K4][Np][4], padding 0.
  std::vector<uint8_t> au(size_t(M * K4 * 4), 128);
  parallel_for(0, M, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int8_t* src = qa.q.data() + i * K;
      uint8_t* dst = au.data() + i * K4 * 4;
      for (int64_t k = 0; k < K; ++k) dst[k] = uint8_t(src[k] ^ int8_t(-128));  // q + 128 as u8
    }
  });
  std::vector<int8_t> bp(size_t(K4 * Np * 4), 0);
  std::vector<int32_t> corr(size_t(Np), 0);  // 128 * column sums of B
  // Packed writes are sequential (k4 outer, then columns): each task fills a
  // contiguous slab of bp.
  parallel_for(0, K4, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t k4 = lo; k4 < hi; ++k4) {
      int8_t* dst = bp.data() + k4 * Np * 4;
      int64_t kn = std::min<int64_t>(4, K - k4 * 4);
      for (int64_t j = 0; j < N; ++j) {
        const int8_t* src = qb.q.data() + j * K + k4 * 4;
        for (int64_t kk = 0; kk < kn; ++kk) dst[j * 4 + kk] = src[kk];
      }
    }
  });
  parallel_for(0, N, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) {
      int32_t s = 0;
      const int8_t* src = qb.q.data() + j * K;
      for (int64_t k = 0; k < K; ++k) s += int32_t(src[k]);
      corr[size_t(j)] = 128 * s;
    }
  });
  std::vector<int32_t> acc(size_t(M * Np));
  parallel_for(0, M, 8, [&](int64_t lo, int64_t hi) {
    vnni_rows(au.data(), K4, bp.data(), Np, corr.data(), lo, hi, acc.data());
  });
  Tensor c = empty({M, N}, DType::f32);
  float* cp = c.data_ptr<float>();
  parallel_for(0, M, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      for (int64_t j = 0; j < N; ++j)
        cp[i * N + j] = float(acc[size_t(i * Np + j)]) * qa.scale[size_t(i)] * qb.scale[size_t(j)];
  });
  return c;
}

}  // namespace brisk
