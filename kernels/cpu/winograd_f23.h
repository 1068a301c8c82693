// Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms
// for Convolutional Neural Networks", 2016), the pieces every kernel that
// uses it shares, so they transform in one order and give the same bits:
// a 2x2 block of a 3x3 convolution's outputs is Y = A^T [(G g G^T) . (B^T d
// B)] A, d the 4x4 input tile under it, in 16 products instead of 36.
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// Tiles are indexed xi = 4 i + j (row i, column j of the 4x4 transformed
// tile); the vector forms work on 8 tiles at once, one per lane.
#pragma once
#include <immintrin.h>

namespace brisk::kern::cpu {

// U = G g G^T for one 3x3 filter g [9] (row-major): u [16], u[4 i + k].
// The halves are exact in binary.
inline void winograd_filter(const float* g, float* u) {
  float gg[4][3];  // G g
  for (int j = 0; j < 3; ++j) {
    gg[0][j] = g[j];
    gg[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
    gg[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
    gg[3][j] = g[6 + j];
  }
  for (int i = 0; i < 4; ++i) {  // (G g) G^T
    u[4 * i + 0] = gg[i][0];
    u[4 * i + 1] = 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]);
    u[4 * i + 2] = 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]);
    u[4 * i + 3] = gg[i][2];
  }
}

#if defined(__AVX2__)
// One B^T stage over 4 values along a row or a column of the tile:
// (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
inline void winograd_bt4(__m256 d0, __m256 d1, __m256 d2, __m256 d3, __m256* out) {
  out[0] = _mm256_sub_ps(d0, d2);
  out[1] = _mm256_add_ps(d1, d2);
  out[2] = _mm256_sub_ps(d2, d1);
  out[3] = _mm256_sub_ps(d1, d3);
}

// Y = A^T M A + b for 8 tiles, m(xi) giving M's value xi (called once per
// xi, in the order the sums need them); y[2 i + j] is output (i, j) of each
// tile.
template <class M>
inline void winograd_outputs(M&& m, __m256 b, __m256 (&y)[4]) {
  __m256 q0[4], q1[4];  // A^T M: rows 0 and 1, columns j
  for (int j = 0; j < 4; ++j) {
    __m256 m0 = m(0 + j), m1 = m(4 + j), m2 = m(8 + j), m3 = m(12 + j);
    q0[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
    q1[j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
  }
  y[0] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(q0[0], q0[1]), q0[2]), b);
  y[1] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(q0[1], q0[2]), q0[3]), b);
  y[2] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(q1[0], q1[1]), q1[2]), b);
  y[3] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(q1[1], q1[2]), q1[3]), b);
}
#endif

}  // namespace brisk::kern::cpu
