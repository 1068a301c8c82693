// Row helpers of the attention kernels (attention.cpp, attention_amx.cpp).
// static: each kernel file compiles its own copy with its own instruction
// set (attention_amx.cpp always with AVX-512, attention.cpp with the
// build's), so no copy can stand in for another at link time.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/cpu/fast_math.h"

namespace brisk::kern::cpu {

// How many keys query i sees: all Tk, or causally the first i + 1 + Tk - Tq
// (queries are the last Tq of Tk positions, as with a KV cache).
static inline int64_t keys_seen(bool causal, int64_t i, int64_t Tq, int64_t Tk) {
  if (!causal) return Tk;
  return std::max<int64_t>(0, std::min<int64_t>(Tk, i + 1 + Tk - Tq));
}

// One row of the forward's online softmax: mx = max(m_prev, scale s[j < n]),
// s[j] = softmax_exp(scale s[j] - mx) for j < n and 0 for n <= j < jb;
// returns the sum of s. The max and the sum are reductions that do not
// vectorize as one running value (each add waits for the last): with AVX-512
// they run in 16 lanes.
static inline float softmax_row(float* s, int64_t n, int64_t jb, float scale, float m_prev, float* mx_out) {
#ifdef __AVX512F__
  __m512 vscale = _mm512_set1_ps(scale), vmx = _mm512_set1_ps(m_prev);
  for (int64_t j = 0; j < n; j += 16) {
    __mmask16 k = tail_mask16(n - j);
    vmx = _mm512_mask_max_ps(vmx, k, vmx, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + j), vscale));
  }
  float mx = _mm512_reduce_max_ps(vmx);
  __m512 vm = _mm512_set1_ps(mx), vsum = _mm512_setzero_ps(), cutoff = _mm512_set1_ps(-60.0f);
  for (int64_t j = 0; j < jb; j += 16) {
    __mmask16 k = tail_mask16(n - j);
    __m512 x = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, s + j), vscale, vm);
    k &= _mm512_cmp_ps_mask(x, cutoff, _CMP_NLT_UQ);  // softmax_exp's flush below e^-60 (a NaN stays)
    __m512 e = _mm512_maskz_mov_ps(k, fast_exp16(x));
    _mm512_mask_storeu_ps(s + j, tail_mask16(jb - j), e);
    vsum = _mm512_add_ps(vsum, e);
  }
  *mx_out = mx;
  return _mm512_reduce_add_ps(vsum);
#else
  float mx = m_prev, sum = 0;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j] * scale);
  for (int64_t j = 0; j < n; ++j) {
    s[j] = softmax_exp(s[j] * scale - mx);
    sum += s[j];
  }
  for (int64_t j = n; j < jb; ++j) s[j] = 0;
  *mx_out = mx;
  return sum;
#endif
}

}  // namespace brisk::kern::cpu
