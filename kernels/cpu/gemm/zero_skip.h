// Exact zero skipping inside the dense f32 micro-tile: which k of an A strip
// (MR rows) hold a nonzero in any row. A k where all MR broadcast values are
// zero adds MR x NR exact zeros to the tile's sums, so the tile may leave it
// out and stay dense over the k it keeps (micro_tile's k list). Where such
// zeros come from: ReLU's outputs and the gradients it masks (an mlp's hidden
// activations H = relu(Z) and dZ = dH * (Z > 0)), whole rows of them when a
// strip's samples share inactive units.
// Bits: leaving out a product a * b with a = +-0 and b finite changes no sum
// (x + +-0 = x for x != 0, and a sum that starts at +0 never becomes -0), so
// the result equals the dense kernel's bit for bit. With b = Inf or NaN the
// dense product is NaN: the driver skips only over B panels it has checked
// finite (finite_panel), so non-finite weights still poison C as they would.
// Included by sgemm_impl.h inside its build's namespace: MR, W and the ISA
// are the including build's (and so are its includes: <cstring>, and the
// intrinsics where the build has AVX).
#pragma once

// Whether any of the n <= W floats at p is nonzero (NaN counts as nonzero:
// it must reach C), as a bit per float (bit j: p[j]).
inline uint32_t nonzero_bits(const float* p, int n) {
#if BRISK_GEMM_W == 16
  return uint32_t(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), p), _mm512_setzero_ps(),
                                     _CMP_NEQ_UQ));
#elif BRISK_GEMM_W == 8
  __m256 v;
  if (n == 8) v = _mm256_loadu_ps(p);
  else v = _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  return uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ)));
#else
  uint32_t bits = 0;  // SSE build: plain compares (!(x == 0) is true for NaN)
  for (int j = 0; j < n; ++j) bits |= uint32_t(!(p[j] == 0.f)) << j;
  return bits;
#endif
}

// A packed strip a [kc, MR] -> the k with a nonzero among their MR values,
// ascending, in ks [kc]; returns how many.
inline int64_t nonzero_ks_packed(int64_t kc, const float* a, int32_t* ks) {
  static_assert(MR <= W, "one vector per k");
  int64_t n = 0;
  for (int64_t k = 0; k < kc; ++k) {
    ks[n] = int32_t(k);  // written always, kept by the count (no branch to mispredict)
    n += nonzero_bits(a + k * MR, MR) != 0;
  }
  return n;
}

// The same for MR rows of a row-major A read in place: row i at a + i * lda,
// kc values each; rows from m on are not the product's (the tile reads row 0
// again there) and are not looked at. The list is written only where
// worth(count, kc) says it will be used: for a dense strip, writing one
// entry per k cost more than the scan (5% of a 128 x 256 x 512 product).
template <class Worth>
inline int64_t nonzero_ks_rows(int64_t kc, const float* a, int64_t lda, int m, int32_t* ks, Worth worth) {
  constexpr int64_t kMaxK = 512;  // the f32 kernels' deepest K block (sgemm_impl.h's kc_for)
  if (kc > kMaxK) return kc;      // (never: no list, the dense tile)
  uint32_t words[kMaxK / W];      // bit j of word w: k = w * W + j has a nonzero
  // The first row alone first: where it has no zero (a dense operand, an
  // mlp's normalized input) no k can be zero in every row, and the other
  // rows need not be read (the scan of a dense 8-row strip, 8x cheaper).
  int64_t n = 0, nw = 0;
  for (int64_t k0 = 0; k0 < kc; k0 += W, ++nw) {
    words[nw] = nonzero_bits(a + k0, int(kc - k0 < W ? kc - k0 : W));
    n += __builtin_popcount(words[nw]);
  }
  if (n == kc) return n;
  n = 0;
  for (int64_t k0 = 0, w = 0; k0 < kc; k0 += W, ++w) {
    const int wk = int(kc - k0 < W ? kc - k0 : W);
    uint32_t bits = words[w];
    for (int i = 1; i < m; ++i) bits |= nonzero_bits(a + i * lda + k0, wk);
    words[w] = bits;
    n += __builtin_popcount(bits);
  }
  if (!worth(n, kc)) return n;
  n = 0;
  for (int64_t w = 0; w < nw; ++w)
    for (uint32_t bits = words[w]; bits; bits &= bits - 1) ks[n++] = int32_t(w * W + __builtin_ctz(bits));
  return n;
}

// Whether all n floats of a packed B panel are finite: v * 0 is NaN exactly
// for Inf and NaN, and a sum of zeros stays zero.
inline bool finite_panel(const float* p, int64_t n) {
  vf acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    vf v;
    std::memcpy(&v, p + i, sizeof v);
    acc += v * 0.f;
  }
  float s = 0.f;
  for (; i < n; ++i) s += p[i] * 0.f;
  for (int j = 0; j < W; ++j) s += acc[j];
  return s == 0.f;
}
