// The pooled convolution's input and weight gradients as scatters of the
// pooled gradient's live values on AVX2 (conv2d_pool_sparse_grad.h): the
// AVX-512 kernels' forms, 8 channels a pass. With 16 ymm registers a tap's
// sums fit one vector each (9 accumulators); 32 channels at once would need
// 36. The weights of one 8-channel pass, [O][9][8] f32 (18 KB for the cnn's
// second layer), stay in L1.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/conv2d_pool_sparse_common.h"
#include "kernels/cpu/conv2d_pool_sparse_grad.h"

namespace brisk::kern::cpu {

#if defined(__AVX2__) && defined(__FMA__)
namespace {

constexpr int64_t kLanes = 8;  // channels a pass: one ymm vector per tap
using pool_sparse::aligned_floats;
using pool_sparse::live_value;

// Whether at most a share `most` of the n pooled values is live: 8 at a
// time without branches, the tail one by one.
bool few_live(const float* gq, const uint8_t* code, int64_t n, double most) {
  int64_t live = 0, i = 0;
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), three = _mm256_set1_epi32(3), zero = _mm256_setzero_si256();
  for (; i + 8 <= n; i += 8) {
    const __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + i)));
    const __m256i mag = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gq + i)), abs_mask);
    const __m256i dead = _mm256_or_si256(_mm256_cmpgt_epi32(k, three), _mm256_cmpeq_epi32(mag, zero));
    live += 8 - __builtin_popcount(unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(dead))));
  }
  for (; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, gq + i, sizeof bits);
    live += live_value(code[i], bits);
  }
  return double(live) <= most * double(n);
}

// One sample's live values grouped by window and code, o in order: window
// q's code-k values are entries [start[4 q + k], start[4 q + k + 1]) of o
// and v (bf16: rounded). Without branches: each value is written to its
// code's next slot, which only a live one keeps.
struct Groups {
  std::vector<int32_t> o, start, slot_o;
  std::vector<float> v, slot_v;
};

void group_sample(const float* gq_n, const uint8_t* code_n, int64_t O, int64_t Lq, bool bf16, Groups& gr) {
  gr.o.resize(size_t(Lq * O));
  gr.v.resize(size_t(Lq * O));
  gr.start.resize(size_t(4 * Lq + 1));
  gr.slot_o.resize(size_t(4 * O));
  gr.slot_v.resize(size_t(4 * O));
  int32_t at = 0;
  for (int64_t q = 0; q < Lq; ++q) {
    int64_t count[4] = {0, 0, 0, 0};
    for (int64_t o = 0; o < O; ++o) {
      const unsigned k = code_n[o * Lq + q];
      uint32_t bits;
      std::memcpy(&bits, gq_n + o * Lq + q, sizeof bits);
      const unsigned s = k & 3;
      const size_t pos = size_t(s * O + count[s]);
      gr.slot_o[pos] = int32_t(o);
      std::memcpy(&gr.slot_v[pos], &bits, sizeof bits);
      count[s] += live_value(k, bits);
    }
    for (int k = 0; k < 4; ++k) {
      gr.start[size_t(4 * q + k)] = at;
      for (int64_t e = 0; e < count[k]; ++e, ++at) {
        gr.o[size_t(at)] = gr.slot_o[size_t(k * O + e)];
        const float v = gr.slot_v[size_t(k * O + e)];
        gr.v[size_t(at)] = bf16 ? bf16_rounded(v) : v;
      }
    }
  }
  gr.start[size_t(4 * Lq)] = at;
}

// One sample's channels [c0, c0 + 8) (wt: the pass's weights [O][9][8]):
// acc [(H + 2) (W + 2) + 8][8] zeroed; each window's code groups summed in
// 9 registers and added into acc at their 9 positions; then acc's interior
// transposed into gx_n's channel rows (rounded with bf16).
void sample_pass(const Groups& gr, const float* wt, const Geom2d& g, int64_t c0, bool bf16, float* acc, float* gx_n) {
  const int64_t H = g.H, W = g.W, Wq = W / 2, Lq = (H / 2) * Wq, Wp = W + 2;
  std::memset(acc, 0, sizeof(float) * size_t((H + 2) * Wp * kLanes));
  for (int64_t q = 0; q < Lq; ++q)
    for (int k = 0; k < 4; ++k) {
      const int32_t e0 = gr.start[size_t(4 * q + k)], e1 = gr.start[size_t(4 * q + k + 1)];
      if (e0 == e1) continue;
      __m256 s[9];
      for (int t = 0; t < 9; ++t) s[t] = _mm256_setzero_ps();
      for (int32_t e = e0; e < e1; ++e) {
        const __m256 gb = _mm256_set1_ps(gr.v[size_t(e)]);
        const float* wo = wt + int64_t(gr.o[size_t(e)]) * 9 * kLanes;
        for (int t = 0; t < 9; ++t) s[t] = _mm256_fmadd_ps(gb, _mm256_load_ps(wo + t * kLanes), s[t]);
      }
      // the code's position (h, x); gx[c, h + i - 1, x + j - 1] sits at acc's (h + i, x + j)
      const int64_t h = 2 * (q / Wq) + k / 2, x = 2 * (q % Wq) + k % 2;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          float* a = acc + ((h + i) * Wp + x + j) * kLanes;
          _mm256_store_ps(a, _mm256_add_ps(_mm256_load_ps(a), s[3 * i + j]));
        }
    }
  pool_sparse::store_planes<kLanes>(acc, g, c0, kLanes, bf16, gx_n);
}

}  // namespace

bool conv2d_pool_sparse_input_grad_avx2(const float* gq, const uint8_t* code, const float* w, const Geom2d& g,
                                        int64_t O, bool bf16, double most, float* gx) {
  const int64_t C = g.C, Lq = (g.H / 2) * (g.W / 2), CHW = C * g.H * g.W, passes = C / kLanes;
  if (!few_live(gq, code, g.N * O * Lq, most)) return false;
  // wt [passes][O][9][8] (bf16: rounded)
  std::vector<float> wt_buf;
  float* const wt = aligned_floats(wt_buf, size_t(C * O * 9));
  if (!pool_sparse::pass_weights<kLanes>(w, O, C, bf16, wt)) return false;
  const size_t plane = size_t(((g.H + 2) * (g.W + 2) + 8) * kLanes);  // + 8 cells: the transposes' reads past a row
  parallel_for_blocks(0, g.N, 2, [&](int64_t lo, int64_t hi) {
    static thread_local std::vector<float> acc_buf;
    float* const acc = aligned_floats(acc_buf, plane);
    static thread_local Groups gr;
    for (int64_t n = lo; n < hi; ++n) {
      group_sample(gq + n * O * Lq, code + n * O * Lq, O, Lq, bf16, gr);
      for (int64_t p = 0; p < passes; ++p)
        sample_pass(gr, wt + p * O * 9 * kLanes, g, p * kLanes, bf16, acc, gx + n * CHW);
    }
  });
  return true;
}

bool conv2d_pool_sparse_weight_grad_avx2(const float* gq, const uint8_t* code, const float* x, const Geom2d& g,
                                         int64_t O, bool bf16, double most, float* gw, float* gb) {
  const int64_t C = g.C, H = g.H, W = g.W, Wq = W / 2, Lq = (H / 2) * Wq, Wp = W + 2, P = (H + 2) * Wp;
  const int64_t passes = C / kLanes, CHW = C * H * W;
  if (g.N == 0 || !few_live(gq, code, g.N * O * Lq, most)) return false;  // no samples: the dense kernel writes zeros
  constexpr int64_t kBlock = 8;  // samples per partial, added in block order
  // a block's partial: [O][passes][9][8], then [O] for the bias, rounded up to whole vectors
  const int64_t blocks = (g.N + kBlock - 1) / kBlock, part = O * 9 * C + (O + 7) / 8 * 8;
  std::vector<float> partial_buf;
  float* const partial = aligned_floats(partial_buf, size_t(blocks * part));
  std::atomic<bool> finite{true};
  const std::vector<int32_t> qoff = pool_sparse::window_offsets(g);
  parallel_for_blocks(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    static thread_local std::vector<float> xs_buf, val_buf;
    static thread_local std::vector<int32_t> off_buf;
    float* const xs = aligned_floats(xs_buf, size_t(passes * P * kLanes));
    if (off_buf.size() < size_t(Lq)) {
      off_buf.resize(size_t(Lq));
      val_buf.resize(size_t(Lq));
    }
    int32_t* const off = off_buf.data();
    float* const val = val_buf.data();
    for (int64_t b = b0; b < b1 && finite.load(std::memory_order_relaxed); ++b) {
      float* pw = partial + b * part;
      float* pb = pw + O * 9 * C;
      std::fill(pw, pw + part, 0.f);
      for (int64_t n = b * kBlock; n < std::min(g.N, (b + 1) * kBlock); ++n) {
        if (!pool_sparse::bordered_planes<kLanes>(x + n * CHW, g, bf16, xs)) {
          finite.store(false, std::memory_order_relaxed);
          return;
        }
        for (int64_t o = 0; o < O; ++o) {
          // the live values of (n, o), without branches
          const float* go = gq + (n * O + o) * Lq;
          const uint8_t* co = code + (n * O + o) * Lq;
          int64_t m = 0;
          for (int64_t q = 0; q < Lq; ++q) {
            const unsigned k = co[q];
            uint32_t bits;
            std::memcpy(&bits, go + q, sizeof bits);
            off[m] = qoff[size_t(q)] + int32_t((k >> 1 & 1) * Wp + (k & 1));
            std::memcpy(val + m, &bits, sizeof bits);
            m += live_value(k, bits);
          }
          float bsum = 0.f;
          for (int64_t e = 0; e < m; ++e) {
            if (bf16) val[e] = bf16_rounded(val[e]);
            bsum += val[e];
          }
          pb[o] += bsum;
          for (int64_t p = 0; p < passes; ++p) {
            float* acc = pw + (o * passes + p) * 9 * kLanes;
            const float* xc = xs + p * P * kLanes;
            __m256 s[9];
            for (int t = 0; t < 9; ++t) s[t] = _mm256_load_ps(acc + t * kLanes);
            for (int64_t e = 0; e < m; ++e) {
              const float* r0 = xc + int64_t(off[e]) * kLanes;  // tap (i, j) reads x at padded (h + i, x + j)
              const __m256 gv = _mm256_set1_ps(val[e]);
              for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j)
                  s[3 * i + j] = _mm256_fmadd_ps(gv, _mm256_load_ps(r0 + (i * Wp + j) * kLanes), s[3 * i + j]);
            }
            for (int t = 0; t < 9; ++t) _mm256_store_ps(acc + t * kLanes, s[t]);
          }
        }
      }
    }
  });
  if (!finite.load()) return false;
  pool_sparse::sum_partials<kLanes>(partial, blocks, part, O, C, bf16, gw, gb);
  return true;
}
#endif

}  // namespace brisk::kern::cpu
