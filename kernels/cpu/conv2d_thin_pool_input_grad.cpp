// The fused first layer + 2x2 max pool's input gradient (see the header):
// Winograd's F(2x2, 3x3) backwards, from the pooled gradient and the codes.
//
// A pool window (py, px) of channel o owns the 2x2 outputs over the 4x4
// input patch d at rows 2py - 1 .. 2py + 2, columns 2px - 1 .. 2px + 2, and
// the forward computes them as Y = A^T (U_o . B^T d B) A (winograd_f23.h).
// Its adjoint gives the patch's share of dx: B (U_o . Z_o) B^T, Z_o = A dY_o
// A^T. dY_o holds one nonzero, the pooled gradient gv at the code's
// position (code 4: none, the ReLU's backward), so Z_o's entries are +-gv
// or 0 (the weight gradient's masked multiply-adds, conv2d_thin_pool.cpp),
// and since B . B^T is linear the sums over channels come first:
//   M = sum_o U_o . Z_o   (16 multiply-adds per channel and window),
//   patch = B M B^T       (once per window, not per channel),
// where the direct sums scatter 36 per channel and window (9 taps at each
// of the 4 positions a code may name). The patches of neighbouring windows
// overlap by 2 rows and 2 columns; they are added into a zero-bordered
// plane per sample, whose interior is gx.
// Lanes are windows along a pooled row, 16 on AVX-512 (the cnn's 14 fill
// 14 of 16) and 8 on AVX2 (8 + 6), so a patch's row is two interleaves of
// the entries away from 32 (or 16) consecutive columns of the plane.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/conv2d_thin_pool.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/winograd_f23.h"

#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define BRISK_THIN_POOL_DX16 1
#else
#define BRISK_THIN_POOL_DX16 0
#endif

namespace brisk::kern::cpu {

bool conv2d_thin_pool_input_grad_applies(const Geom2d& g) { return conv2d_thin_pool_applies(g); }

namespace {

// B's stage on 4 values (the adjoint of winograd_bt4's (d0 - d2, d1 + d2,
// d2 - d1, d1 - d3)): (m0, m1 - m2 + m3, m1 + m2 - m0, -m3), lane by lane
// on 8 windows (__m256) or 16 (__m512).
template <class V>
inline void winograd_b4(V& m0, V& m1, V& m2, V& m3) {
  const V e1 = m1 - m2 + m3, e2 = m1 + m2 - m0;
  m1 = e1, m2 = e2, m3 = V{} - m3;
}
// The windows' M (m[4 i + j], lane l: window px0 + l) -> their patches
// B M B^T in place: columns, then rows.
template <class V>
inline void winograd_bmbt(V (&m)[16]) {
  for (int j = 0; j < 4; ++j) winograd_b4(m[j], m[4 + j], m[8 + j], m[12 + j]);                  // B M
  for (int i = 0; i < 4; ++i) winograd_b4(m[4 * i], m[4 * i + 1], m[4 * i + 2], m[4 * i + 3]);  // (B M) B^T
}

// The plane's interior -> gx_n [H, W] (rounded to bf16 under folded casts);
// rows and columns past the windows' patches stay 0.
template <bool kRounded>
void copy_interior(const float* plane, int64_t pw, const Geom2d& g, float* gx_n) {
  for (int64_t r = 0; r < g.H; ++r) {
    const float* src = plane + (r + 1) * pw + 1;
    float* dst = gx_n + r * g.W;
    if constexpr (kRounded) bf16_rounded(src, dst, g.W);
    else std::memcpy(dst, src, sizeof(float) * size_t(g.W));
  }
}

// Each channel's row is its own stream (the cnn's 32 rows 784 bytes apart,
// a new cache line every row or so), too many for the hardware prefetchers:
// the loads waited on L3 (a third of the time). Rows two ahead are
// prefetched, and the next sample's first rows during the last two (it is
// in the same block of samples, or the next thread's): the offset, in
// elements, from row py's to the one to prefetch. (Addresses as integers
// where they are taken: past the last sample they point outside the
// tensors, which a prefetch may touch but a pointer may not.)
inline int64_t prefetch_ahead(int64_t py, int64_t Hp, int64_t Wp, int64_t O) {
  return py + 2 < Hp ? 2 * Wp : O * Hp * Wp + (2 - Hp) * Wp;
}
inline void prefetch_row(const float* gr, const uint8_t* cr, int64_t ahead, int64_t bytes_of_gradient) {
  const uintptr_t pg = reinterpret_cast<uintptr_t>(gr) + uintptr_t(ahead) * sizeof(float);
  const uintptr_t pc = reinterpret_cast<uintptr_t>(cr) + uintptr_t(ahead);
  _mm_prefetch(reinterpret_cast<const char*>(pg), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(pg + uintptr_t(bytes_of_gradient) - sizeof(float)), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(pc), _MM_HINT_T0);
}

// Rows 2 kHalf and 2 kHalf + 1 of M = sum_o U_o . Z_o (out[4 r + j]: row
// 2 kHalf + r, column j) for 8 windows from px0, on 8 lanes (AVX2): gr, cr
// at channel 0's pooled gradient and codes of those windows, Lp apart per
// channel; kFull: all 8 lanes in the row, else nl (in: those lanes' mask);
// u: [O][16][8], each of U's values in 8 lanes, a memory operand of the
// multiply-add (a broadcast per value and channel took an instruction of
// its own: 5-10% slower). AVX2 has no lane masks, so Z_ij = a_i(py')
// a_j(px') gv (A's rows a_0 = (1, 0), a_1 = (1, 1), a_2 = (1, -1), a_3 =
// (0, -1), (py', px') = (code / 2, code % 2)) is gv with its sign flipped
// and its lanes zeroed by AND and XOR masks: row 0 keeps the lanes where
// py' = 0, row 3 those where py' = 1 (negated by the multiply-add), row 2
// flips the sign where py' = 1; columns alike. A zeroed lane adds u * 0
// to its sum, so the sums are the 16-lane kernel's (masked multiply-adds)
// bit for bit while the filter is finite.
template <int kHalf, bool kRounded, bool kFull>
inline void rows8(const float* gr, const uint8_t* cr, int64_t Lp, int64_t O, int64_t nl, int64_t Wp, __m256i in,
                  int64_t ahead, const float* u, __m256* out) {
  using U8 = uint32_t __attribute__((vector_size(32)));
  __m256 a[8];  // the sums in registers, stored once at the end
  for (int xi = 0; xi < 8; ++xi) a[xi] = _mm256_setzero_ps();
  const __m256i four = _mm256_set1_epi32(4);
  for (int64_t o = 0; o < O; ++o, gr += Lp, cr += Lp) {
    if constexpr (kHalf == 0) prefetch_row(gr, cr, ahead, 8 * sizeof(float));  // the second pass finds them in L1
    // lanes past the row: gradient 0 (so no gradient whatever their codes)
    __m256 gv = kFull ? _mm256_loadu_ps(gr) : _mm256_maskload_ps(gr, in);
    if constexpr (kRounded) gv = bf16_rounded_lanes<__m256, U8>(gv);
    __m256i ci;
    if constexpr (kFull) ci = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(cr)));
    else {  // a short row's codes from the 8 bytes that end with it (inside the plane), shifted down
      uint64_t cb = 0;
      if (Wp >= 8) {
        std::memcpy(&cb, cr + nl - 8, 8);
        cb >>= 8 * (8 - nl);
      } else  // a row under 8 windows wide: byte by byte
        for (int64_t l = 0; l < nl; ++l) cb |= uint64_t(cr[l]) << (8 * l);
      ci = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(cb)));
    }
    const __m256 gi = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpgt_epi32(four, ci)));  // code 4: none
    // px' and py' (the code's bits 0 and 1) as sign bits (x1s: bit 0 alone
    // reaches bit 31) and as whole-lane masks
    const __m256i x1s = _mm256_slli_epi32(ci, 31), y1s = _mm256_slli_epi32(ci, 30);
    const __m256 x1 = _mm256_castsi256_ps(_mm256_srai_epi32(x1s, 31)), y1 = _mm256_castsi256_ps(_mm256_srai_epi32(y1s, 31));
    const __m256 xs = _mm256_castsi256_ps(x1s);
    __m256 zr[2];  // rows 2 kHalf and 2 kHalf + 1 of Z, before the columns' masks
    if constexpr (kHalf == 0) zr[0] = _mm256_andnot_ps(y1, gi), zr[1] = gi;
    else {
      const __m256 ys = _mm256_and_ps(_mm256_castsi256_ps(y1s), _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN)));
      zr[0] = _mm256_xor_ps(gi, ys), zr[1] = _mm256_and_ps(gi, y1);
    }
    const float* uo = u + (16 * o + 8 * kHalf) * 8;
    for (int r = 0; r < 2; ++r) {
      const __m256 z[4] = {_mm256_andnot_ps(x1, zr[r]), zr[r], _mm256_xor_ps(zr[r], xs), _mm256_and_ps(zr[r], x1)};
      for (int j = 0; j < 4; ++j) {
        const __m256 uij = _mm256_loadu_ps(uo + 8 * (4 * r + j));
        const bool neg = (kHalf == 1 && r == 1) != (j == 3);  // a_3's -1
        a[4 * r + j] = neg ? _mm256_fnmadd_ps(uij, z[j], a[4 * r + j]) : _mm256_fmadd_ps(uij, z[j], a[4 * r + j]);
      }
    }
  }
  for (int xi = 0; xi < 8; ++xi) out[xi] = a[xi];
}

// One sample on 8 lanes (AVX2): as the 16-lane kernel below, u as rows8
// takes it. The 16 sums and their temporaries would not fit AVX2's 16
// registers, so the channels are taken twice, rows 0-1 of M and then rows
// 2-3, the masks made again in the second pass: staging them from the
// first to the second (4 vectors a channel through L1) ran 25-30% slower.
template <bool kRounded>
void sample8(const float* gyp_n, const uint8_t* code_n, const float* u, const Geom2d& g, int64_t O, float* plane,
             int64_t pw, float* gx_n) {
  const int64_t Hp = g.H / 2, Wp = g.W / 2, Lp = Hp * Wp;
  std::fill(plane, plane + (2 * Hp + 2) * pw, 0.f);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), rot2 = _mm256_setr_epi32(6, 7, 0, 1, 2, 3, 4, 5);
  // The 16-lane kernel adds the two columns where windows 7 and 8 of its
  // group overlap in registers (A8 + B7) before adding them to the plane;
  // the first half of such a group keeps its last pair (B7, per patch row)
  // here for the second half to add the same way, so the plane gets the
  // same sums in the same order: (p + B7) + A8 would round differently.
  __m128 carry[4] = {};
  bool carried = false;
  for (int64_t py = 0; py < Hp; ++py)
    for (int64_t px0 = 0; px0 < Wp; px0 += 8) {
      const int64_t nl = std::min<int64_t>(8, Wp - px0);
      const bool carry_out = px0 % 16 == 0 && px0 + 8 < Wp;  // the first half of a 16-window group, not the row's last
      const __m256i in = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(nl)), lane);
      const int64_t ahead = prefetch_ahead(py, Hp, Wp, O);
      const float* gr = gyp_n + py * Wp + px0;
      const uint8_t* cr = code_n + py * Wp + px0;
      __m256 m[16];
      if (nl == 8) {
        rows8<0, kRounded, true>(gr, cr, Lp, O, nl, Wp, in, ahead, u, m);
        rows8<1, kRounded, true>(gr, cr, Lp, O, nl, Wp, in, ahead, u, m + 8);
      } else {
        rows8<0, kRounded, false>(gr, cr, Lp, O, nl, Wp, in, ahead, u, m);
        rows8<1, kRounded, false>(gr, cr, Lp, O, nl, Wp, in, ahead, u, m + 8);
      }
      winograd_bmbt(m);
      // Patch row i of lane l covers plane columns 2 px0 + 2 l + j, j =
      // 0..3: (j = 0, 1) interleaved are 16 consecutive columns from 2 px0,
      // (j = 2, 3) the same from 2 px0 + 2, rotated 2 lanes in registers and
      // added: 18 columns in two vectors and a pair.
      for (int i = 0; i < 4; ++i) {
        const __m256 l01 = _mm256_unpacklo_ps(m[4 * i], m[4 * i + 1]), h01 = _mm256_unpackhi_ps(m[4 * i], m[4 * i + 1]);
        const __m256 l23 = _mm256_unpacklo_ps(m[4 * i + 2], m[4 * i + 3]);
        const __m256 h23 = _mm256_unpackhi_ps(m[4 * i + 2], m[4 * i + 3]);
        const __m256 a0 = _mm256_permute2f128_ps(l01, h01, 0x20), a1 = _mm256_permute2f128_ps(l01, h01, 0x31);
        const __m256 b0 = _mm256_permutevar8x32_ps(_mm256_permute2f128_ps(l23, h23, 0x20), rot2);
        const __m256 b1 = _mm256_permutevar8x32_ps(_mm256_permute2f128_ps(l23, h23, 0x31), rot2);
        const __m256 in01 = carried ? _mm256_castps128_ps256(carry[i]) : _mm256_setzero_ps();  // lanes 0, 1
        const __m256 s0 = _mm256_add_ps(a0, _mm256_blend_ps(b0, in01, 0x3));
        const __m256 s1 = _mm256_add_ps(a1, _mm256_blend_ps(b1, b0, 0x3));
        float* row = plane + (2 * py + i) * pw + 2 * px0;
        _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), s0));
        _mm256_storeu_ps(row + 8, _mm256_add_ps(_mm256_loadu_ps(row + 8), s1));
        const __m128 s2 = _mm256_castps256_ps128(b1);  // lanes 0, 1
        if (carry_out) {
          carry[i] = s2;
          continue;
        }
        const __m128 old = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 16)));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(row + 16), _mm_castps_si128(_mm_add_ps(old, s2)));
      }
      carried = carry_out;
    }
  copy_interior<kRounded>(plane, pw, g, gx_n);
}

#if BRISK_THIN_POOL_DX16

// One sample on 16 lanes (AVX-512): gx_n [H, W] from gyp_n, code_n [O,
// Hp, Wp] and u [O][16]. plane: [2 Hp + 2][pw] zeroed here, row r + 1 and
// column c + 1 holding dx (r, c), r and c from -1.
template <bool kRounded>
void sample16(const float* gyp_n, const uint8_t* code_n, const float* u, const Geom2d& g, int64_t O, float* plane,
            int64_t pw, float* gx_n) {
  const int64_t Hp = g.H / 2, Wp = g.W / 2, Lp = Hp * Wp;
  std::fill(plane, plane + (2 * Hp + 2) * pw, 0.f);
  const __m512i sign = _mm512_set1_epi32(int32_t(0x80000000u));
  // Interleaves: lo (a0, b0, a1, b1, .. a7, b7), hi (a8, b8, .. a15, b15).
  const __m512i ilo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i ihi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (int64_t py = 0; py < Hp; ++py)
    for (int64_t px0 = 0; px0 < Wp; px0 += 16) {
      const int64_t nl = std::min<int64_t>(16, Wp - px0);
      const __mmask16 in = nl >= 16 ? __mmask16(0xffff) : __mmask16((1u << nl) - 1);
      __m512 m[16];
      for (int xi = 0; xi < 16; ++xi) m[xi] = _mm512_setzero_ps();
      const float* gr = gyp_n + py * Wp + px0;
      const uint8_t* cr = code_n + py * Wp + px0;
      const int64_t ahead = prefetch_ahead(py, Hp, Wp, O);
      for (int64_t o = 0; o < O; ++o, gr += Lp, cr += Lp) {
        prefetch_row(gr, cr, ahead, 16 * sizeof(float));
        using U16 = uint32_t __attribute__((vector_size(64)));
        __m512 gv = _mm512_maskz_loadu_ps(in, gr);  // lanes past the row: 0, and masked off below
        if constexpr (kRounded) gv = bf16_rounded_lanes<__m512, U16>(gv);
        const __m128i ci = _mm_maskz_loadu_epi8(in, cr);
        // Z_ij = a_i(py') a_j(px') gv, (py', px') = (code / 2, code % 2), with
        // A's rows a_0 = (1, 0), a_1 = (1, 1), a_2 = (1, -1), a_3 = (0, -1):
        // row 0 only where py' = 0, row 3 only where py' = 1 (negated), row
        // 2 negated where py' = 1; columns alike. Code 4 and lanes past the
        // row: no gradient.
        const __mmask16 live = _mm_mask_cmplt_epu8_mask(in, ci, _mm_set1_epi8(4));
        const __mmask16 x1 = _mm_test_epi8_mask(ci, _mm_set1_epi8(1)), y1 = _mm_test_epi8_mask(ci, _mm_set1_epi8(2));
        const __mmask16 x0 = __mmask16(~x1), y0 = __mmask16(~y1);  // gi is 0 where not live
        const __m512i gi = _mm512_castps_si512(_mm512_maskz_mov_ps(live, gv));
        const __m512i gx = _mm512_mask_xor_epi32(gi, x1, gi, sign), gy = _mm512_mask_xor_epi32(gi, y1, gi, sign);
        const __m512i gxy = _mm512_mask_xor_epi32(gx, y1, gx, sign);
        const __m512 gs[2][2] = {{_mm512_castsi512_ps(gi), _mm512_castsi512_ps(gx)},
                                 {_mm512_castsi512_ps(gy), _mm512_castsi512_ps(gxy)}};  // [flip y][flip x]
        const float* uo = u + 16 * o;
        for (int i = 0; i < 4; ++i) {
          const __mmask16 mi = i == 0 ? y0 : i == 3 ? y1 : __mmask16(0xffff);
          for (int j = 0; j < 4; ++j) {
            const __mmask16 mk = mi & (j == 0 ? x0 : j == 3 ? x1 : __mmask16(0xffff));
            const __m512 uij = _mm512_set1_ps(uo[4 * i + j]), gij = gs[i == 2][j == 2];
            __m512& a = m[4 * i + j];
            const bool neg = (i == 3) != (j == 3);
            if ((i == 1 || i == 2) && (j == 1 || j == 2)) a = neg ? _mm512_fnmadd_ps(uij, gij, a) : _mm512_fmadd_ps(uij, gij, a);
            else a = neg ? _mm512_mask3_fnmadd_ps(uij, gij, a, mk) : _mm512_mask3_fmadd_ps(uij, gij, a, mk);
          }
        }
      }
      winograd_bmbt(m);
      // Patch row i of lane l covers columns 2 (px0 + l) - 1 + j, j = 0..3:
      // plane columns 2 px0 + 2 l + j. (j = 0, 1) interleaved are 32
      // consecutive columns from 2 px0, (j = 2, 3) the same from 2 px0 + 2:
      // shifted 2 lanes in registers and added, 34 columns in three vectors
      // (a store then a load 8 bytes on would wait for the store to retire).
      for (int i = 0; i < 4; ++i) {
        const __m512 a0 = _mm512_permutex2var_ps(m[4 * i], ilo, m[4 * i + 1]);
        const __m512 a1 = _mm512_permutex2var_ps(m[4 * i], ihi, m[4 * i + 1]);
        const __m512i b0 = _mm512_castps_si512(_mm512_permutex2var_ps(m[4 * i + 2], ilo, m[4 * i + 3]));
        const __m512i b1 = _mm512_castps_si512(_mm512_permutex2var_ps(m[4 * i + 2], ihi, m[4 * i + 3]));
        const __m512i z = _mm512_setzero_si512();
        const __m512 s0 = _mm512_add_ps(a0, _mm512_castsi512_ps(_mm512_alignr_epi32(b0, z, 14)));
        const __m512 s1 = _mm512_add_ps(a1, _mm512_castsi512_ps(_mm512_alignr_epi32(b1, b0, 14)));
        const __m512 s2 = _mm512_castsi512_ps(_mm512_alignr_epi32(z, b1, 14));  // lanes 0, 1
        float* row = plane + (2 * py + i) * pw + 2 * px0;
        _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), s0));
        _mm512_storeu_ps(row + 16, _mm512_add_ps(_mm512_loadu_ps(row + 16), s1));
        _mm512_mask_storeu_ps(row + 32, 0x3, _mm512_add_ps(_mm512_maskz_loadu_ps(0x3, row + 32), s2));
      }
    }
  copy_interior<kRounded>(plane, pw, g, gx_n);
}
#endif

}  // namespace

void conv2d_thin_pool_input_grad(const float* gyp, const uint8_t* code, const float* w, const Geom2d& g, int64_t O,
                                 float* gx, bool bf16) {
  const int64_t Hp = g.H / 2, Wp = g.W / 2, Lp = Hp * Wp;
  const bool wide = BRISK_THIN_POOL_DX16 && sgemm_isa_avx512();  // 16 lanes, else 8
  std::vector<float> wr, u(size_t(16 * O));
  if (bf16) {
    wr.resize(size_t(9 * O));
    bf16_rounded(w, wr.data(), 9 * O);
    w = wr.data();
  }
  for (int64_t o = 0; o < O; ++o) winograd_filter(w + 9 * o, u.data() + 16 * o);
  // The 8-lane kernel's U, each value in 8 lanes [O][16][8] (rows8).
  std::vector<float> u8;
  if (!wide) {
    u8.resize(size_t(16 * O * 8));
    for (size_t i = 0; i < u8.size(); ++i) u8[i] = u[i / 8];
  }
  // Plane width: the last 16-window group writes 34 columns from 2 px0
  // (an 8-window group 18, never past that); rounded up to whole cache lines.
  const int64_t pw = ((Wp + 15) / 16 * 32 + 2 + 15) / 16 * 16, plane_size = (2 * Hp + 2) * pw;
  parallel_for_blocks(0, g.N, 2, [&](int64_t lo, int64_t hi) {
    static thread_local std::vector<float> plane;
    if (plane.size() < size_t(plane_size)) plane.resize(size_t(plane_size));
    for (int64_t n = lo; n < hi; ++n) {
      const float* gyp_n = gyp + n * O * Lp;
      const uint8_t* code_n = code + n * O * Lp;
      float* gx_n = gx + n * g.H * g.W;
#if BRISK_THIN_POOL_DX16
      if (wide) {
        if (bf16) sample16<true>(gyp_n, code_n, u.data(), g, O, plane.data(), pw, gx_n);
        else sample16<false>(gyp_n, code_n, u.data(), g, O, plane.data(), pw, gx_n);
        continue;
      }
#endif
      if (bf16) sample8<true>(gyp_n, code_n, u8.data(), g, O, plane.data(), pw, gx_n);
      else sample8<false>(gyp_n, code_n, u8.data(), g, O, plane.data(), pw, gx_n);
    }
  });
}

}  // namespace brisk::kern::cpu
