// The pooled convolution's input and weight gradients as scatters of the
// pooled gradient's nonzeros (see the header).
#include "kernels/cpu/conv2d_pool_sparse_grad.h"

#include <immintrin.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/env_switch.h"
#include "core/thread_pool.h"
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include "kernels/cpu/conv2d_pool_sparse_common.h"
#include "kernels/cpu/gemm/sgemm.h"

namespace brisk::kern::cpu {

namespace {

std::atomic<bool> g_on{env_switch("BRISK_CONV_POOL_SPARSE", true)};
std::atomic<bool> g_dot{true};

// maybe_unused, this and the constants below: a build without AVX2 or
// AVX-512 (the sanitizers' portable one) compiles none of their users.
// bf16 on AVX512-BF16 dot products (set_conv_pool_sparse_bf16_dot)
[[maybe_unused]] bool bf16_dot_path() { return g_dot.load(std::memory_order_relaxed) && sgemm_bf16_supported(); }

// Planes up to this many positions (the per-thread accumulator plane is
// (H + 2) (W + 2) x 32 floats: 560 KB at this size).
constexpr int64_t kMaxPlane = 4096;
[[maybe_unused]] constexpr int64_t kChunk = 32;  // input channels a pass: two 16-lane vectors per position
// The largest share of live windows (code < 4, value nonzero) taken here
// (see the count in conv2d_pool_sparse_input_grad).
[[maybe_unused]] constexpr double kMaxLive = 0.9;

#if defined(__AVX512F__)
using pool_sparse::aligned_floats;
using pool_sparse::live_value;

// Lanes of 16 pooled values (their f32 bits and codes) that add anything
// (live_value), without branches.
inline __mmask16 live_lanes(__m512i bits, __m512i k) {
  return _mm512_cmplt_epu32_mask(k, _mm512_set1_epi32(4)) &
         _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x7fffffff));
}

// Whether at most a share `most` of the n pooled values is live (live_value).
bool few_live(const float* gq, const uint8_t* code, int64_t n, double most) {
  // 16 at a time, without branches; the tail one by one
  int64_t live = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i k = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(code + i)));
    live += __builtin_popcount(unsigned(live_lanes(_mm512_loadu_si512(gq + i), k)));
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
void set_conv_pool_sparse_bf16_dot(bool on) { g_dot.store(on, std::memory_order_relaxed); }

bool conv2d_pool_sparse_input_grad_applies(const Geom2d& g) {
  const bool geometry = g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ph == 1 &&
                        g.pw == 1 && g.Ho == g.H && g.Wo == g.W && g.H >= 2 && g.W >= 2 && g.H * g.W <= kMaxPlane;
  if (!conv_pool_sparse_enabled() || !geometry) return false;
#if defined(__AVX512F__)
  if (sgemm_isa_avx512()) return g.C >= 16 && g.C % 16 == 0;
#endif
#if defined(__AVX2__) && defined(__FMA__)
  if (sgemm_isa_avx2()) return g.C >= 8 && g.C % 8 == 0;
#endif
  return false;
}

#if defined(__AVX512F__)
namespace {

using U16 = uint32_t __attribute__((vector_size(64)));

// The live values of one pooled plane (go, co: Lq values and codes), 16
// windows a step without branches (the codes are as good as random):
// compressed into off (each value's position in the zero-bordered plane,
// h * Wp + x, from qoff: each window's top-left, Lq + 16 entries) and val
// (bf16: rounded); both hold Lq + 16 (each compress stores a vector).
// Their sum added into bsum (lane by lane). Returns how many.
inline int64_t live_list(const float* go, const uint8_t* co, int64_t Lq, const int32_t* qoff, int64_t Wp, bool bf16,
                         int32_t* off, float* val, __m512& bsum) {
  const __m512i wp = _mm512_set1_epi32(int32_t(Wp)), one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2);
  int64_t m = 0;
  for (int64_t q = 0; q < Lq; q += 16) {
    const __mmask16 in = Lq - q >= 16 ? __mmask16(0xffff) : __mmask16((1u << (Lq - q)) - 1);
    const __m512i k = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(in, co + q));
    const __m512i bits = _mm512_maskz_loadu_epi32(in, go + q);
    const __mmask16 live = in & live_lanes(bits, k);
    __m512 v = _mm512_castsi512_ps(bits);
    if (bf16) v = bf16_rounded_lanes<__m512, U16>(v);
    // the code's position: the window's top-left, + Wp for codes 2 and 3, + 1 for 1 and 3
    const __m512i pos = _mm512_add_epi32(
        _mm512_loadu_si512(qoff + q),
        _mm512_add_epi32(_mm512_maskz_mov_epi32(_mm512_test_epi32_mask(k, two), wp), _mm512_and_si512(k, one)));
    _mm512_storeu_si512(off + m, _mm512_maskz_compress_epi32(live, pos));
    _mm512_storeu_ps(val + m, _mm512_maskz_compress_ps(live, v));
    bsum = _mm512_mask_add_ps(bsum, live, bsum, v);
    m += __builtin_popcount(unsigned(live));
  }
  return m;
}

// One sample's live values grouped by window and code, o in order: window
// q's code-k values are entries [start[4 q + k], start[4 q + k + 1]) of
// o and v (bf16: rounded). Built once per sample for all its channel chunks.
struct Groups {
  std::vector<int32_t> o, start;
  std::vector<float> v, tg;  // tg, tc: the sample's values and codes transposed, [Lq][Op]
  std::vector<uint8_t> tc;
};

void group_sample(const float* gq_n, const uint8_t* code_n, int64_t O, int64_t Lq, bool bf16, Groups& gr) {
  const int64_t Op = (O + 15) / 16 * 16;  // o padded to whole vectors: code 4 (adds nothing) past O
  gr.tg.resize(size_t(Lq * Op));
  gr.tc.resize(size_t(Lq * Op));
  gr.o.resize(size_t(Lq * O + 16));  // + 16: each compress stores a whole vector
  gr.v.resize(size_t(Lq * O + 16));
  gr.start.resize(size_t(4 * Lq + 1));
  float* const tg = gr.tg.data();
  uint8_t* const tc = gr.tc.data();
  for (int64_t o = 0; o < O; ++o)
    for (int64_t q = 0; q < Lq; ++q) {
      tg[q * Op + o] = gq_n[o * Lq + q];
      tc[q * Op + o] = code_n[o * Lq + q];
    }
  for (int64_t q = 0; q < Lq; ++q)
    for (int64_t o = O; o < Op; ++o) tc[q * Op + o] = 4;
  if (bf16)
    for (int64_t i = 0; i < Lq * Op; i += 16)
      _mm512_storeu_ps(tg + i, bf16_rounded_lanes<__m512, U16>(_mm512_loadu_ps(tg + i)));
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int32_t* const ol = gr.o.data();
  float* const vl = gr.v.data();
  int32_t at = 0;
  for (int64_t q = 0; q < Lq; ++q)
    for (int k = 0; k < 4; ++k) {
      gr.start[size_t(4 * q + k)] = at;
      for (int64_t j = 0; j < Op; j += 16) {
        const __m512i kv = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tc + q * Op + j)));
        const __m512i bits = _mm512_loadu_si512(tg + q * Op + j);
        const __mmask16 m = live_lanes(bits, kv) & _mm512_cmpeq_epi32_mask(kv, _mm512_set1_epi32(k));
        _mm512_storeu_si512(ol + at, _mm512_maskz_compress_epi32(m, _mm512_add_epi32(iota, _mm512_set1_epi32(int(j)))));
        _mm512_storeu_ps(vl + at, _mm512_maskz_compress_ps(m, _mm512_castsi512_ps(bits)));
        at += __builtin_popcount(unsigned(m));
      }
    }
  gr.start[size_t(4 * Lq)] = at;
}

// rows [rows][32] of bf16 values held as f32 -> pairs [rows][16]: lane j
// = (channel j, channel j + 16) as bf16 (low, high), the layout the dot
// products read (the input gradient's weights, the weight gradient's input).
void bf16_pairs(const float* rows, int64_t n, uint32_t* pairs) {
  for (int64_t r = 0; r < n; ++r) {
    const __m512i lo = _mm512_load_si512(rows + r * kChunk), hi = _mm512_load_si512(rows + r * kChunk + 16);
    _mm512_store_si512(pairs + r * 16,
                       _mm512_or_si512(_mm512_srli_epi32(lo, 16), _mm512_and_si512(hi, _mm512_set1_epi32(-65536))));
  }
}

// The same from finite f32 rows, rounded here (nearest even, by the
// hardware's conversion): vcvtne2ps2bf16 puts lo's 16 bf16 in words 0-15
// and hi's in 16-31, vpermw interleaves them. Its only difference from
// bf16_rounded, a denormal input read as zero, does not reach the dot
// products, which read denormal bf16 inputs as zero themselves. false
// where a value rounds to an infinity (from f32 within half a bf16 step of
// the largest), as bordered_planes' check on rounded values would say.
__attribute__((target("avx512bf16"))) bool bf16_pairs_rounding(const float* rows, int64_t n, uint32_t* pairs) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i exp = _mm512_set1_epi16(0x7f80);
  __mmask32 inf = 0;
  for (int64_t r = 0; r < n; ++r) {
    const __m512 lo = _mm512_load_ps(rows + r * kChunk), hi = _mm512_load_ps(rows + r * kChunk + 16);
    const __m512i b = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    inf |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(b, exp), exp);
    _mm512_store_si512(pairs + r * 16, _mm512_permutexvar_epi16(idx, b));
  }
  return inf == 0;
}

// acc's 9 positions at row0 + (i Wp + j) cells += s[3 i + j] (NV vectors each).
template <int NV>
__attribute__((always_inline)) inline void add_taps(const __m512 (&s)[9][NV], float* row0, int64_t Wp) {
  for (int i = 0; i < 3; ++i) {
    float* row = row0 + i * Wp * kChunk;
    for (int j = 0; j < 3; ++j)
      for (int v = 0; v < NV; ++v) {
        float* a = row + j * kChunk + 16 * v;
        _mm512_store_ps(a, _mm512_add_ps(_mm512_load_ps(a), s[3 * i + j][v]));
      }
  }
}

// One code group's values (vl[e], weight rows of o = ol[e], e in [e0,
// e1)) summed in registers, 9 taps x NV vectors, and added into acc at the
// group's 9 target positions (row0: the first; rows Wp cells apart).
// wc: the chunk's weights [O][9][32] f32.
template <int NV>
inline void group_add(const int32_t* ol, const float* vl, int32_t e0, int32_t e1, const float* wc, float* row0,
                      int64_t Wp) {
  __m512 s[9][NV];
  for (int t = 0; t < 9; ++t)
    for (int v = 0; v < NV; ++v) s[t][v] = _mm512_setzero_ps();
  int32_t e = e0;
  do {  // e0 < e1 (a group has a value); as a for loop GCC kept s in memory for the empty case
    const __m512 gb = _mm512_set1_ps(vl[e]);
    const float* wo = wc + int64_t(ol[e]) * 9 * kChunk;  // its 9 taps' 32 lanes, at fixed offsets
    for (int t = 0; t < 9; ++t)
      for (int v = 0; v < NV; ++v) s[t][v] = _mm512_fmadd_ps(gb, _mm512_load_ps(wo + t * kChunk + 16 * v), s[t][v]);
  } while (++e < e1);
  add_taps<NV>(s, row0, Wp);
}

// The same on AVX512-BF16 (bf16 only): wc [O][9][16] pairs, lane j of a
// row holding channels j (low half) and j + 16 (high half) as bf16. One
// 64-byte row serves both vectors: vdpbf16ps with g paired with zero (low:
// g's bits >> 16; high: g's own bits, whose low half a bf16 value leaves
// zero) adds w * g + w' * 0, the multiply-add of the f32 form (both
// finite, products exact), from half the bytes: the f32 form's 73 KB of
// weights for the cnn's second layer outgrow L1 and its multiply-adds wait
// on L2.
template <int NV>
__attribute__((target("avx512bf16"))) void group_add_dp(const int32_t* ol, const float* vl, int32_t e0, int32_t e1,
                                                         const uint32_t* wc, float* row0, int64_t Wp) {
  __m512 s[9][NV];
  for (int t = 0; t < 9; ++t)
    for (int v = 0; v < NV; ++v) s[t][v] = _mm512_setzero_ps();
  int32_t e = e0;
  do {  // e0 < e1, as in group_add
    uint32_t bits;
    std::memcpy(&bits, vl + e, sizeof bits);
    const __m512bh g_lo = (__m512bh)_mm512_set1_epi32(int(bits >> 16)), g_hi = (__m512bh)_mm512_set1_epi32(int(bits));
    const uint32_t* wo = wc + int64_t(ol[e]) * 9 * 16;
    for (int t = 0; t < 9; ++t) {
      const __m512bh w = (__m512bh)_mm512_load_si512(wo + t * 16);
      s[t][0] = _mm512_dpbf16_ps(s[t][0], w, g_lo);
      if (NV == 2) s[t][NV - 1] = _mm512_dpbf16_ps(s[t][NV - 1], w, g_hi);
    }
  } while (++e < e1);
  add_taps<NV>(s, row0, Wp);
}

// One sample's channels [c0, c0 + 16 NV) (NV = 1 or 2; chunk ch = c0 /
// 32 of the weights, wt [chunks][O][9][32] f32 or, with dot products,
// wtb [chunks][O][9][16] bf16 pairs): acc [(H + 2) (W + 2), 32] zeroed;
// per window and code, its group of live values shares its 9 target
// positions, so the group's sums stay in registers (a multiply-add per live
// value and vector of weights) and are added into acc once; then acc's
// interior is transposed into gx_n's channel rows (rounded with bf16).
// Adding each value into acc directly cost a load and a store per
// multiply-add: 1.6x the time (and o by o, with o's weights in registers
// and each value added into acc: 1.3x).
template <int NV>
void sample_chunk(const Groups& gr, const float* wt, const uint32_t* wtb, const Geom2d& g, int64_t O, int64_t c0,
                  bool bf16, float* acc, float* gx_n) {
  const int64_t H = g.H, W = g.W, Wq = W / 2, Lq = (H / 2) * Wq, Wp = W + 2;
  std::memset(acc, 0, sizeof(float) * size_t((H + 2) * Wp * kChunk));
  const int64_t chunk = (c0 / kChunk) * O * 9;
  const int32_t* const ol = gr.o.data();
  const float* const vl = gr.v.data();
  for (int64_t q = 0; q < Lq; ++q)
    for (int k = 0; k < 4; ++k) {
      const int32_t e0 = gr.start[size_t(4 * q + k)], e1 = gr.start[size_t(4 * q + k + 1)];
      if (e0 == e1) continue;
      // the code's position (h, x); gx[c, h + i - 1, x + j - 1] sits at acc's (h + i, x + j)
      const int64_t h = 2 * (q / Wq) + k / 2, x = 2 * (q % Wq) + k % 2;
      float* const row0 = acc + (h * Wp + x) * kChunk;
      if (wtb) group_add_dp<NV>(ol, vl, e0, e1, wtb + chunk * 16, row0, Wp);
      else group_add<NV>(ol, vl, e0, e1, wt + chunk * kChunk, row0, Wp);
    }
  pool_sparse::store_planes<kChunk>(acc, g, c0, 16 * NV, bf16, gx_n);
}

}  // namespace
#endif

bool conv2d_pool_sparse_input_grad(const float* gq, const uint8_t* code, const float* w, const Geom2d& g, int64_t O,
                                   bool bf16, float* gx) {
#if defined(__AVX2__) && defined(__FMA__)
  if (sgemm_isa_avx2()) return conv2d_pool_sparse_input_grad_avx2(gq, code, w, g, O, bf16, kMaxLive, gx);
#endif
#if defined(__AVX512F__)
  const int64_t C = g.C, Lq = (g.H / 2) * (g.W / 2), CHW = C * g.H * g.W;
  // The scatter's time goes with the live windows, the dense kernels' does
  // not. The cnn's second layer, Zen 4, 2 threads (BM_pool_grad): at 0.94
  // of the windows live the scatter took 0.72x the f32 Winograd kernel's
  // time and 0.66x the bf16 direct one's (dot products); at 0.46, as in
  // training, about 0.4x both. The cap stays below all-live for CPUs with
  // two 512-bit FMA pipes, where the dense kernels gain twice what the
  // scatter, bound by its loads, does (not measured there).
  if (!few_live(gq, code, g.N * O * Lq, kMaxLive)) return false;
  // wt [chunks][O][9][32]: each (chunk, o, tap)'s 32 input channels in one
  // aligned row (zeros past C; bf16: rounded)
  const int64_t chunks = (C + kChunk - 1) / kChunk;
  std::vector<float> wt_buf;
  float* const wt = aligned_floats(wt_buf, size_t(chunks * O * 9 * kChunk));
  if (!pool_sparse::pass_weights<kChunk>(w, O, C, bf16, wt)) return false;
  // bf16 on AVX512-BF16: wtb [chunks][O][9][16], lane j = (channel j, channel j + 16) as bf16 (low, high)
  std::vector<float> wtb_buf;
  uint32_t* wtb = nullptr;
  if (bf16 && bf16_dot_path()) {
    wtb = reinterpret_cast<uint32_t*>(aligned_floats(wtb_buf, size_t(chunks * O * 9 * 16)));
    bf16_pairs(wt, chunks * O * 9, wtb);
  }
  // + 8 cells: the transposes' rows past a plane row's end read up to 7 cells on
  const size_t plane = size_t(((g.H + 2) * (g.W + 2) + 8) * kChunk);
  parallel_for_blocks(0, g.N, 2, [&](int64_t lo, int64_t hi) {
    static thread_local std::vector<float> acc_buf;
    float* const acc = aligned_floats(acc_buf, plane);
    static thread_local Groups gr;
    for (int64_t n = lo; n < hi; ++n) {
      group_sample(gq + n * O * Lq, code + n * O * Lq, O, Lq, bf16, gr);
      for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
        if (C - c0 >= kChunk) sample_chunk<2>(gr, wt, wtb, g, O, c0, bf16, acc, gx + n * CHW);
        else sample_chunk<1>(gr, wt, wtb, g, O, c0, bf16, acc, gx + n * CHW);
      }
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

// One (sample, o, chunk)'s m live values (positions off, values val) added
// into acc [9][32] (the chunk's weight gradient of o): tap (i, j) reads x
// at padded (h + i, x + j) of xc [P][32], row i's three taps at fixed
// offsets; acc's 18 vectors stay in registers across the values.
inline void live_add(const int32_t* off, const float* val, int64_t m, const float* xc, int64_t Wp, float* acc) {
  __m512 s[9][2];
  for (int t = 0; t < 9; ++t)
    for (int v = 0; v < 2; ++v) s[t][v] = _mm512_load_ps(acc + t * kChunk + 16 * v);
  for (int64_t e = 0; e < m; ++e) {
    const float* r0 = xc + int64_t(off[e]) * kChunk;
    const __m512 gb16 = _mm512_set1_ps(val[e]);
    for (int i = 0; i < 3; ++i) {
      const float* r = r0 + i * Wp * kChunk;
      for (int j = 0; j < 3; ++j)
        for (int v = 0; v < 2; ++v)
          s[3 * i + j][v] = _mm512_fmadd_ps(gb16, _mm512_load_ps(r + j * kChunk + 16 * v), s[3 * i + j][v]);
    }
  }
  for (int t = 0; t < 9; ++t)
    for (int v = 0; v < 2; ++v) _mm512_store_ps(acc + t * kChunk + 16 * v, s[t][v]);
}

// The same on AVX512-BF16 (bf16 only), xb [P][16] pairs (bf16_pairs):
// one 64-byte row per tap serves both vectors, as in group_add_dp.
__attribute__((target("avx512bf16"))) void live_add_dp(const int32_t* off, const float* val, int64_t m,
                                                        const uint32_t* xb, int64_t Wp, float* acc) {
  __m512 s[9][2];
  for (int t = 0; t < 9; ++t)
    for (int v = 0; v < 2; ++v) s[t][v] = _mm512_load_ps(acc + t * kChunk + 16 * v);
  for (int64_t e = 0; e < m; ++e) {
    uint32_t bits;
    std::memcpy(&bits, val + e, sizeof bits);
    const __m512bh g_lo = (__m512bh)_mm512_set1_epi32(int(bits >> 16)), g_hi = (__m512bh)_mm512_set1_epi32(int(bits));
    const uint32_t* r0 = xb + int64_t(off[e]) * 16;
    for (int i = 0; i < 3; ++i) {
      const uint32_t* r = r0 + i * Wp * 16;
      for (int j = 0; j < 3; ++j) {
        const __m512bh w = (__m512bh)_mm512_load_si512(r + j * 16);
        s[3 * i + j][0] = _mm512_dpbf16_ps(s[3 * i + j][0], w, g_lo);
        s[3 * i + j][1] = _mm512_dpbf16_ps(s[3 * i + j][1], w, g_hi);
      }
    }
  }
  for (int t = 0; t < 9; ++t)
    for (int v = 0; v < 2; ++v) _mm512_store_ps(acc + t * kChunk + 16 * v, s[t][v]);
}

}  // namespace
#endif

bool conv2d_pool_sparse_weight_grad(const float* gq, const uint8_t* code, const float* x, const Geom2d& g, int64_t O,
                                    bool bf16, float* gw, float* gb) {
#if defined(__AVX2__) && defined(__FMA__)
  if (sgemm_isa_avx2()) return conv2d_pool_sparse_weight_grad_avx2(gq, code, x, g, O, bf16, kMaxLive, gw, gb);
#endif
#if defined(__AVX512F__)
  const int64_t C = g.C, H = g.H, W = g.W, Wq = W / 2, Lq = (H / 2) * Wq, Wp = W + 2, P = (H + 2) * Wp;
  const int64_t chunks = (C + kChunk - 1) / kChunk, CHW = C * H * W;
  if (g.N == 0 || !few_live(gq, code, g.N * O * Lq, kMaxLive))
    return false;  // no samples: the dense kernel writes the zeros
  const bool dot = bf16 && bf16_dot_path();
  constexpr int64_t kBlock = 8;  // samples per partial
  // a block's partial: [O][chunks][9][32], then [O] for the bias, rounded up to whole vectors (aligned rows)
  const int64_t blocks = (g.N + kBlock - 1) / kBlock, part = O * 9 * chunks * kChunk + (O + 15) / 16 * 16;
  std::vector<float> partial_buf;
  float* const partial = aligned_floats(partial_buf, size_t(blocks * part));
  std::atomic<bool> finite{true};
  const std::vector<int32_t> qoff = pool_sparse::window_offsets(g);
  parallel_for_blocks(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    static thread_local std::vector<float> xs_buf, xb_buf;
    float* const xs = aligned_floats(xs_buf, size_t(chunks * P * kChunk));
    uint32_t* const xb = dot ? reinterpret_cast<uint32_t*>(aligned_floats(xb_buf, size_t(chunks * P * 16))) : nullptr;
    static thread_local std::vector<int32_t> off_buf;  // [Lq + 16]: a plane's live values, their positions (h * Wp + x)
    static thread_local std::vector<float> val_buf;    // [Lq + 16]: and values (+ 16: each compress stores a vector)
    if (off_buf.size() < size_t(Lq + 16)) {
      off_buf.resize(size_t(Lq + 16));
      val_buf.resize(size_t(Lq + 16));
    }
    int32_t* const off = off_buf.data();
    float* const val = val_buf.data();
    for (int64_t b = b0; b < b1 && finite.load(std::memory_order_relaxed); ++b) {
      float* pw = partial + b * part;  // [O][chunks][9][32], then [O] for the bias
      float* pb = pw + O * 9 * chunks * kChunk;
      std::fill(pw, pw + part, 0.f);
      for (int64_t n = b * kBlock; n < std::min(g.N, (b + 1) * kBlock); ++n) {
        // with dot products the planes stay f32 and round as they become pairs
        if (!pool_sparse::bordered_planes<kChunk>(x + n * CHW, g, bf16 && !dot, xs) ||
            (dot && !bf16_pairs_rounding(xs, chunks * P, xb))) {
          finite.store(false, std::memory_order_relaxed);
          return;
        }
        // x_{n+1}'s lines fetched a share per o: read straight into
        // bordered_planes' transposes (32 channel rows at once), they came from
        // memory at a quarter of this kernel's time
        const char* next = reinterpret_cast<const char*>(x + (n + 1) * CHW);
        const int64_t lines = n + 1 < g.N ? (CHW * int64_t(sizeof(float)) + 63) / 64 : 0, per_o = (lines + O - 1) / O;
        for (int64_t o = 0; o < O; ++o) {
          for (int64_t l = o * per_o; l < std::min(lines, (o + 1) * per_o); ++l)
            _mm_prefetch(next + l * 64, _MM_HINT_T0);
          __m512 bsum = _mm512_setzero_ps();
          const int64_t m = live_list(gq + (n * O + o) * Lq, code + (n * O + o) * Lq, Lq, qoff.data(), Wp, bf16, off,
                                      val, bsum);
          pb[o] += _mm512_reduce_add_ps(bsum);
          for (int64_t ch = 0; ch < chunks; ++ch) {
            float* acc = pw + (o * chunks + ch) * 9 * kChunk;
            if (dot) live_add_dp(off, val, m, xb + ch * P * 16, Wp, acc);
            else live_add(off, val, m, xs + ch * P * kChunk, Wp, acc);
          }
        }
      }
    }
  });
  if (!finite.load()) return false;
  pool_sparse::sum_partials<kChunk>(partial, blocks, part, O, C, bf16, gw, gb);
  return true;
#else
  (void)gq, (void)code, (void)x, (void)g, (void)O, (void)bf16, (void)gw, (void)gb;
  return false;
#endif
}

}  // namespace brisk::kern::cpu
