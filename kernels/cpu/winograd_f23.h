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

// One B^T stage over 4 values along a row or a column of the tile:
// (d0 - d2, d1 + d2, d2 - d1, d1 - d3), lane by lane on 8 tiles (__m256)
// or 16 (__m512): GCC's vector operators, so one vsubps/vaddps each.
template <class V>
inline void winograd_bt4(V d0, V d1, V d2, V d3, V* out) {
  out[0] = d0 - d2;
  out[1] = d1 + d2;
  out[2] = d2 - d1;
  out[3] = d1 - d3;
}

}  // namespace brisk::kern::cpu
