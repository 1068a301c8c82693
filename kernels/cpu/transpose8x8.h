// An 8 x 8 f32 transpose in AVX registers, shared by the GEMM's packing
// (pack_runs8) and conv2d's transposed unfold. static: each including build
// (sgemm_avx2.cpp, sgemm_avx512.cpp, ...) keeps its own copy for its own
// instruction set, so no copy compiled for AVX-512 stands in for another's.
#pragma once
#ifdef __AVX__
#include <immintrin.h>

namespace brisk::kern::cpu {

// r[i] (8 floats each) -> r[j] = column j of the 8 x 8 block.
static inline void transpose8x8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {  // r[i], r[i + 4]: columns i and i + 4 of rows 0-3 | rows 4-7
    t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
    t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
  }
  for (int i = 0; i < 8; ++i) r[i] = t[i];
}

}  // namespace brisk::kern::cpu
#endif
