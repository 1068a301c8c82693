// The pooled convolution's input and weight gradients as scatters of the
// pooled gradient's nonzeros (see the header).
#include "kernels/cpu/conv2d_pool_sparse_grad.h"

#include <immintrin.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/env_switch.h"
#include "core/thread_pool.h"
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/transpose8x8.h"

namespace brisk::kern::cpu {

namespace {

std::atomic<bool> g_on{env_switch("BRISK_CONV_POOL_SPARSE", true)};

// Planes up to this many positions (the per-thread accumulator plane is
// (H + 2) (W + 2) x 32 floats: 560 KB at this size).
constexpr int64_t kMaxPlane = 4096;
constexpr int64_t kChunk = 32;  // input channels a pass: two 16-lane vectors per position
// The largest share of live windows (code < 4, value nonzero) taken here
// (see the count in conv2d_pool_sparse_input_grad).
constexpr double kMaxLiveF32 = 0.9, kMaxLiveBf16 = 0.5;

// Whether a pooled value adds anything: its window not ReLU'd (code < 4)
// and its value (f32 bits) not +-0 (a NaN is live).
inline bool live_value(unsigned code, uint32_t bits) { return (code < 4) & ((bits & 0x7fffffffu) != 0); }

#if defined(__AVX512F__)
// Whether at most a share `most` of the n pooled values is live (live_value).
bool few_live(const float* gq, const uint8_t* code, int64_t n, double most) {
  // 16 at a time, without branches; the tail one by one
  int64_t live = 0, i = 0;
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), four = _mm512_set1_epi32(4);
  for (; i + 16 <= n; i += 16) {
    const __m512i k = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(code + i)));
    const __m512i bits = _mm512_loadu_si512(gq + i);
    const __mmask16 m = _mm512_cmplt_epi32_mask(k, four) & _mm512_test_epi32_mask(bits, abs_mask);
    live += __builtin_popcount(unsigned(m));
  }
  for (; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, gq + i, sizeof bits);
    live += live_value(code[i], bits);
  }
  return double(live) <= most * double(n);
}
#endif

}  // namespace

bool conv_pool_sparse_enabled() { return g_on.load(std::memory_order_relaxed); }
void set_conv_pool_sparse(bool on) { g_on.store(on, std::memory_order_relaxed); }

bool conv2d_pool_sparse_input_grad_applies(const Geom2d& g) {
#if defined(__AVX512F__)
  return conv_pool_sparse_enabled() && sgemm_isa_avx512() && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 &&
         g.dh == 1 && g.dw == 1 && g.ph == 1 && g.pw == 1 && g.Ho == g.H && g.Wo == g.W && g.H >= 2 && g.W >= 2 &&
         g.C >= 16 && g.C % 16 == 0 && g.H * g.W <= kMaxPlane;
#else
  (void)g;
  return false;
#endif
}

#if defined(__AVX512F__)
namespace {

using U8 = uint32_t __attribute__((vector_size(32)));

// One sample's channels [c0, c0 + 16 NV) (NV = 1 or 2): acc [(H + 2) (W
// + 2), 32] zeroed; per window, its live values grouped by code (o in
// order): a group shares its 9 target positions, so its sums stay in
// registers (9 x NV vectors, a multiply-add per live value and vector of
// weights) and are added into acc once; then acc's interior is transposed
// into gx_n's channel rows (rounded with bf16). Adding each value into acc
// directly cost a load and a store per multiply-add: 1.6x the time.
template <int NV>
void sample_chunk(const float* gq_n, const uint8_t* code_n, const float* wt, const Geom2d& g, int64_t O, int64_t c0,
                  bool bf16, float* acc, float* gx_n) {
  const int64_t H = g.H, W = g.W, C = g.C, Wq = W / 2, Lq = (H / 2) * Wq, Wp = W + 2;
  std::memset(acc, 0, sizeof(float) * size_t((H + 2) * Wp * kChunk));
  static thread_local std::vector<int32_t> group_buf;  // [4][O]: each code's live o
  static thread_local std::vector<float> value_buf;    // [4][O]: their values
  if (group_buf.size() < size_t(4 * O)) {
    group_buf.resize(size_t(4 * O));
    value_buf.resize(size_t(4 * O));
  }
  int32_t* const group = group_buf.data();
  float* const value = value_buf.data();
  for (int64_t q = 0; q < Lq; ++q) {
    // Without branches (the codes are as good as random): each value is
    // written to its code's next slot, which only a live one keeps. A
    // ReLU'd window (code 4) or a zero (+-0; NaN is live) adds nothing.
    int64_t count[4] = {0, 0, 0, 0};
    for (int64_t o = 0; o < O; ++o) {
      const unsigned k = code_n[o * Lq + q];
      uint32_t bits;
      std::memcpy(&bits, gq_n + o * Lq + q, sizeof bits);
      const unsigned slot = k & 3;
      const int64_t at = slot * O + count[slot];
      group[at] = int32_t(o);
      std::memcpy(value + at, &bits, sizeof bits);
      count[slot] += live_value(k, bits);
    }
    if (bf16)
      for (int k = 0; k < 4; ++k)
        for (int64_t e = 0; e < count[k]; ++e) value[k * O + e] = bf16_rounded(value[k * O + e]);
    for (unsigned k = 0; k < 4; ++k) {
      if (!count[k]) continue;
      __m512 s[9][NV];
      for (int t = 0; t < 9; ++t)
        for (int v = 0; v < NV; ++v) s[t][v] = _mm512_setzero_ps();
      for (int64_t e = 0; e < count[k]; ++e) {
        const __m512 gb = _mm512_set1_ps(value[k * O + e]);
        const float* wo = wt + int64_t(group[k * O + e]) * 9 * C + c0;
        for (int t = 0; t < 9; ++t)
          for (int v = 0; v < NV; ++v) s[t][v] = _mm512_fmadd_ps(gb, _mm512_loadu_ps(wo + t * C + 16 * v), s[t][v]);
      }
      // the code's position (h, x); gx[c, h + i - 1, x + j - 1] sits at acc's (h + i, x + j)
      const int64_t h = 2 * (q / Wq) + k / 2, x = 2 * (q % Wq) + k % 2;
      float* base = acc + (h * Wp + x) * kChunk;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          float* a = base + (i * Wp + j) * kChunk;
          for (int v = 0; v < NV; ++v)
            _mm512_storeu_ps(a + 16 * v, _mm512_add_ps(_mm512_loadu_ps(a + 16 * v), s[3 * i + j][v]));
        }
    }
  }
  // acc's interior [H, W, 16 NV] -> gx_n [c0 + c, H, W]: 8 positions by 8
  // channels a transpose (positions past W: lanes not stored).
  for (int64_t h = 0; h < H; ++h)
    for (int64_t x0 = 0; x0 < W; x0 += 8) {
      const int64_t m = std::min<int64_t>(8, W - x0);
      const __mmask8 live = __mmask8((1u << m) - 1);
      const float* src = acc + ((h + 1) * Wp + x0 + 1) * kChunk;  // rows past m read the border or the next row: in range
      for (int64_t cb = 0; cb < 16 * NV; cb += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * kChunk + cb);
        transpose8x8(r);  // r[j]: channel c0 + cb + j at positions x0 .. x0 + 7
        for (int j = 0; j < 8; ++j) {
          __m256 y = bf16 ? bf16_rounded_lanes<__m256, U8>(r[j]) : r[j];
          _mm256_mask_storeu_ps(gx_n + ((c0 + cb + j) * H + h) * W + x0, live, y);
        }
      }
    }
}

}  // namespace
#endif

bool conv2d_pool_sparse_input_grad(const float* gq, const uint8_t* code, const float* w, const Geom2d& g, int64_t O,
                                   bool bf16, float* gx) {
#if defined(__AVX512F__)
  const int64_t C = g.C, Lq = (g.H / 2) * (g.W / 2), CHW = C * g.H * g.W;
  // The scatter's time goes with the live windows, the dense kernels' does
  // not: past a share of live windows the dense kernel is faster (the cnn's
  // second layer, Zen 4, 2 threads: 0.94 of the windows live, the scatter
  // took 0.87x the f32 Winograd kernel's time and 1.38x the bf16 direct
  // one's; 0.46 live, as in training, 0.60x and 0.83-0.93x).
  if (!few_live(gq, code, g.N * O * Lq, bf16 ? kMaxLiveBf16 : kMaxLiveF32)) return false;
  // wt [O, 9, C]: each (o, tap)'s input channels contiguous (bf16: rounded)
  std::vector<float> wt(size_t(O * 9 * C));
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int t = 0; t < 9; ++t) {
        float v = w[(o * C + c) * 9 + t];
        if (bf16) v = bf16_rounded(v);
        if (!std::isfinite(v)) return false;
        wt[size_t((o * 9 + t) * C + c)] = v;
      }
  // + 8 cells: the transposes' rows past a plane row's end read up to 7 cells on
  const size_t plane = size_t(((g.H + 2) * (g.W + 2) + 8) * kChunk);
  parallel_for_blocks(0, g.N, 2, [&](int64_t lo, int64_t hi) {
    static thread_local std::vector<float> acc_buf;
    if (acc_buf.size() < plane) acc_buf.resize(plane);
    float* const acc = acc_buf.data();
    for (int64_t n = lo; n < hi; ++n)
      for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
        const float* gq_n = gq + n * O * Lq;
        const uint8_t* code_n = code + n * O * Lq;
        if (C - c0 >= kChunk) sample_chunk<2>(gq_n, code_n, wt.data(), g, O, c0, bf16, acc, gx + n * CHW);
        else sample_chunk<1>(gq_n, code_n, wt.data(), g, O, c0, bf16, acc, gx + n * CHW);
      }
  });
  return true;
#else
  (void)gq, (void)code, (void)w, (void)g, (void)O, (void)bf16, (void)gx;
  return false;
#endif
}

#if defined(__AVX512F__)
namespace {

// Sample n's x_n [C, H, W] -> xs [C / 32 chunks][(H + 2) (W + 2)][32]
// (bf16: rounded), the borders and the lanes past C zero (written here,
// so the plane needs no zeroing first). Whether every value is finite.
bool nhwc_planes(const float* x_n, const Geom2d& g, bool bf16, float* xs) {
  const int64_t H = g.H, W = g.W, C = g.C, Wp = W + 2, P = (H + 2) * Wp;
  const __m256 exp_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7f800000));
  for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
    float* d = xs + (c0 / kChunk) * P * kChunk;
    const int64_t cw = std::min<int64_t>(kChunk, C - c0);
    std::memset(d, 0, sizeof(float) * size_t(Wp * kChunk));                  // row 0
    std::memset(d + (H + 1) * Wp * kChunk, 0, sizeof(float) * size_t(Wp * kChunk));  // row H + 1
    for (int64_t h = 0; h < H; ++h) {
      float* row = d + (h + 1) * Wp * kChunk;
      std::memset(row, 0, sizeof(float) * kChunk);                           // column 0
      std::memset(row + (W + 1) * kChunk, 0, sizeof(float) * kChunk);       // column W + 1
      for (int64_t x0 = 0; x0 < W; x0 += 8) {
        const int64_t m = std::min<int64_t>(8, W - x0);
        const __mmask8 live = __mmask8((1u << m) - 1);
        for (int64_t cb = 0; cb < kChunk; cb += 8) {
          __m256 r[8];
          for (int j = 0; j < 8; ++j)  // channel c0 + cb + j's 8 positions (zeros past C and past W)
            r[j] = cb + j < cw ? _mm256_maskz_loadu_ps(live, x_n + ((c0 + cb + j) * H + h) * W + x0)
                               : _mm256_setzero_ps();
          transpose8x8(r);  // r[i]: position x0 + i's 8 channels
          for (int64_t i = 0; i < m; ++i) {
            __m256 v = bf16 ? bf16_rounded_lanes<__m256, U8>(r[i]) : r[i];
            if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(v, exp_mask), exp_mask, _CMP_EQ_OQ)))
              return false;  // an infinity or NaN (exponent all ones)
            _mm256_storeu_ps(row + (x0 + i + 1) * kChunk + cb, v);
          }
        }
      }
    }
  }
  return true;
}

}  // namespace
#endif

bool conv2d_pool_sparse_weight_grad(const float* gq, const uint8_t* code, const float* x, const Geom2d& g, int64_t O,
                                    bool bf16, float* gw, float* gb) {
#if defined(__AVX512F__)
  const int64_t C = g.C, H = g.H, W = g.W, Wq = W / 2, Lq = (H / 2) * Wq, Wp = W + 2, P = (H + 2) * Wp;
  const int64_t chunks = (C + kChunk - 1) / kChunk, CHW = C * H * W;
  if (g.N == 0 || !few_live(gq, code, g.N * O * Lq, bf16 ? kMaxLiveBf16 : kMaxLiveF32))
    return false;  // no samples: the dense kernel writes the zeros
  constexpr int64_t kBlock = 8;  // samples per partial
  const int64_t blocks = (g.N + kBlock - 1) / kBlock, part = O * 9 * chunks * kChunk + O;
  std::vector<float> partial(size_t(blocks * part));
  std::atomic<bool> finite{true};
  std::vector<int64_t> qoff(static_cast<size_t>(Lq));  // window q's top-left position, h * Wp + x
  for (int64_t q = 0; q < Lq; ++q) qoff[size_t(q)] = 2 * (q / Wq) * Wp + 2 * (q % Wq);
  parallel_for_blocks(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    static thread_local std::vector<float> xs_buf;
    if (xs_buf.size() < size_t(chunks * P * kChunk)) xs_buf.resize(size_t(chunks * P * kChunk));
    float* const xs = xs_buf.data();
    static thread_local std::vector<int32_t> off_buf;  // [Lq]: a plane's live values, their positions (h * Wp + x)
    static thread_local std::vector<float> val_buf;    // [Lq]: and values
    if (off_buf.size() < size_t(Lq)) {
      off_buf.resize(size_t(Lq));
      val_buf.resize(size_t(Lq));
    }
    int32_t* const off = off_buf.data();
    float* const val = val_buf.data();
    for (int64_t b = b0; b < b1 && finite.load(std::memory_order_relaxed); ++b) {
      float* pw = partial.data() + b * part;  // [O][chunks][9][32], then [O] for the bias
      float* pb = pw + O * 9 * chunks * kChunk;
      std::fill(pw, pw + part, 0.f);
      for (int64_t n = b * kBlock; n < std::min(g.N, (b + 1) * kBlock); ++n) {
        if (!nhwc_planes(x + n * CHW, g, bf16, xs)) {
          finite.store(false, std::memory_order_relaxed);
          return;
        }
        for (int64_t o = 0; o < O; ++o) {
          // the live values of (n, o), without branches (the codes are as good as random)
          const float* go = gq + (n * O + o) * Lq;
          const uint8_t* co = code + (n * O + o) * Lq;
          int64_t m = 0;
          for (int64_t q = 0; q < Lq; ++q) {
            const unsigned k = co[q];
            uint32_t bits;
            std::memcpy(&bits, go + q, sizeof bits);
            off[m] = int32_t(qoff[size_t(q)] + (k >> 1 & 1) * Wp + (k & 1));  // the code's position
            std::memcpy(val + m, &bits, sizeof bits);
            m += live_value(k, bits);
          }
          float bsum = 0.f;
          for (int64_t e = 0; e < m; ++e) {
            if (bf16) val[e] = bf16_rounded(val[e]);
            bsum += val[e];
          }
          pb[o] += bsum;
          for (int64_t ch = 0; ch < chunks; ++ch) {
            float* acc = pw + (o * chunks + ch) * 9 * kChunk;
            const float* xc = xs + ch * P * kChunk;
            __m512 s[9][2];
            for (int t = 0; t < 9; ++t)
              for (int v = 0; v < 2; ++v) s[t][v] = _mm512_loadu_ps(acc + t * kChunk + 16 * v);
            for (int64_t e = 0; e < m; ++e) {
              const float* base = xc + int64_t(off[e]) * kChunk;  // tap (i, j) reads x at padded (h + i, x + j)
              const __m512 gb16 = _mm512_set1_ps(val[e]);
              for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j)
                  for (int v = 0; v < 2; ++v)
                    s[3 * i + j][v] =
                        _mm512_fmadd_ps(gb16, _mm512_loadu_ps(base + (i * Wp + j) * kChunk + 16 * v), s[3 * i + j][v]);
            }
            for (int t = 0; t < 9; ++t)
              for (int v = 0; v < 2; ++v) _mm512_storeu_ps(acc + t * kChunk + 16 * v, s[t][v]);
          }
        }
      }
    }
  });
  if (!finite.load()) return false;
  // partial 0 += partial 1, ... in block order; then gw [o][c * 9 + t] and gb
  parallel_for(0, O, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      float* p0 = partial.data() + o * 9 * chunks * kChunk;
      for (int64_t b = 1; b < blocks; ++b) {
        const float* pbk = partial.data() + b * part + o * 9 * chunks * kChunk;
        for (int64_t i = 0; i < 9 * chunks * kChunk; ++i) p0[i] += pbk[i];
      }
      for (int64_t c = 0; c < C; ++c)
        for (int t = 0; t < 9; ++t) {
          const float v = p0[((c / kChunk) * 9 + t) * kChunk + c % kChunk];
          gw[(o * C + c) * 9 + t] = bf16 ? bf16_rounded(v) : v;
        }
      if (gb) {
        float s = 0.f;
        for (int64_t b = 0; b < blocks; ++b) s += partial[size_t(b * part + O * 9 * chunks * kChunk + o)];
        gb[o] = s;
      }
    }
  });
  return true;
#else
  (void)gq, (void)code, (void)x, (void)g, (void)O, (void)bf16, (void)gw, (void)gb;
  return false;
#endif
}

}  // namespace brisk::kern::cpu
