// Fused conv2d on the native sgemm: one sample at a time per thread, unfolded
// into a thread-local [C*kh*kw, Ho*Wo] buffer that stays in L2, multiplied
// straight into the NCHW output, with bias and ReLU applied while the tile is
// hot. The composite path (im2col over the whole batch, then matmul) would
// stream a [N, C*kh*kw, Ho*Wo] tensor (29 MB for the cnn's conv2) through
// memory three times. (With BRISK_GEMM=openblas, nn::functional::conv2d runs
// the composite instead, so convolutions use the selected GEMM.)
//
// The forward and the weight gradient pick the orientation of their product
// whose edge micro-tiles waste less (GemmTile::fill): the cnn's 14x14 layer
// has L = 196 output positions, 6.1 tiles of 32 but 24.5 tiles of 8, so its
// forward computes y^T [L, O] and transposes it in the epilogue.
//
// In f32 on AVX-512, "same" convolutions (stride 1, output the input's size:
// the cnn's 3x3 pad 1 layers) skip the im2col buffer: each sample unfolds
// straight into the GEMM's packed strips (im2col_same_strips_avx512, and its
// transposed form for the weight gradient), the weight is packed once per
// batch, and sgemm_packed multiplies them with sgemm's kernel and K blocks.
// With AVX2 (no AVX-512), a "same" convolution unfolds with whole-plane
// masked copies (im2col_same_avx2), the forward packs the weight once per
// batch, and the weight gradient reads the unfold in place (sgemm_packed_b).
// Either way a thin first layer (C*kh*kw <= 16) runs its forward from the
// input planes (thin_forward, thin_forward_avx2) and its weight gradient as
// dot products (thin_gw).

#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics

#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "core/autocast.h"
#include "core/dispatch.h"
#include "core/thread_pool.h"
#include "kernels/cpu/conv2d_amx.h"
#include "kernels/cpu/conv2d_amx_direct.h"
#include "kernels/cpu/conv2d_bf16_direct.h"
#include "kernels/cpu/conv2d_pool_sparse_grad.h"
#include "kernels/cpu/conv2d_thin_pool.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/im2col.h"
#include "kernels/cpu/pool2d.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

namespace {

// n floats of v at a 64-byte boundary (the packed GEMM's B strips are read
// with aligned vector loads).
float* aligned64(std::vector<float>& v, size_t n) {
  if (v.size() < n + 15) v.resize(n + 15);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// Per-thread scratch, 64-byte aligned, grown on demand and kept (no per-call allocations).
float* scratch(size_t n) {
  static thread_local std::vector<float> buf;
  return aligned64(buf, n);
}

bool is_pointwise(const Geom2d& g) {  // 1x1, stride 1, no padding: x_n is its own im2col
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

// v[0..n) rounded to bf16 (nearest even) in place: the output cast and the
// inputs of the non-GEMM sums when autocast's casts are folded in
// (ConvParams::bf16). The GEMMs round their operands while packing.
float round_bf16(float v) { return bf16_rounded(v); }
void round_bf16(float* v, int64_t n) { bf16_rounded(v, v, n); }

}  // namespace

// The packed AMX forward computes 32 output channels per tile block: with
// fewer than half of them (an input gradient into 1-3 image channels) it
// wastes more than it saves, and the unfold-then-GEMM path runs instead.
constexpr int64_t kAmxMinRows = 16;

// The ReLU after a fused 2x2 max pool, over n pooled values and their
// window codes: v = v > 0 ? v : 0 (the relu op's own rule, so NaN -> 0), and
// code 4 (no gradient) where v was not above 0, as relu's backward would.
void relu_pooled(float* v, uint8_t* code, int64_t n) {
  int64_t i = 0;
#ifdef __AVX512F__
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(v + i);
    __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    _mm512_storeu_ps(v + i, _mm512_maskz_mov_ps(live, x));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(code + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(code + i), _mm_mask_mov_epi8(_mm_set1_epi8(4), live, c));
  }
#elif defined(__AVX2__)
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(v + i);
    __m256 live = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ);
    _mm256_storeu_ps(v + i, _mm256_and_ps(live, x));
    __m128i c = load_bytes8(code + i, 8);  // the 8 codes; 4 where not live
    store_bytes8(code + i, _mm_blendv_epi8(_mm_set1_epi8(4), c, narrow8_epi32(_mm256_castps_si256(live))), 8);
  }
#endif
  for (; i < n; ++i)
    if (!(v[i] > 0.f)) v[i] = 0.f, code[i] = 4;
}

// Sample n's gradient of the conv output, gy_n [O, Ho*Wo], for the backward
// kernels: a slice of gy, or, in the pooled form (a third input: the window
// codes of conv2d_pool_fwd), the 2x2 max-pool backward of the pooled
// gradient [O, Ho/2 * Wo/2], expanded into a per-thread buffer on the thread
// that uses it. The full-size gradient (13 MB per batch of 128 for the cnn's
// first layer) is then never written to memory nor read back from it.
struct GySample {
  const float* gy;
  const uint8_t* code = nullptr;  // pooled form: conv2d_pool_fwd's window codes
  Geom2d pg{};                   // pooled form: the pool's geometry (max_pool_2x2_geom)
  int64_t O, L;
  int64_t numel = 0;             // pooled form: elements of gy (and of code)
  GySample(const KernelArgs& a, const Geom2d& g, int64_t o) : gy(ptr<float>(a.in[0])), O(o), L(g.Ho * g.Wo) {
    if (a.in.size() > 2 && a.in[2].defined()) {
      code = ptr<uint8_t>(a.in[2]);
      pg = max_pool_2x2_geom(g, o);
      numel = a.in[0].numel();
    }
  }
  const float* operator()(int64_t n) const {
    if (!code) return gy + n * O * L;
    static thread_local std::vector<float> buf;
    if (buf.size() < size_t(O * L + kPoolSlack)) buf.resize(size_t(O * L + kPoolSlack));
    int64_t Lp = pg.Ho * pg.Wo;
    for (int64_t o = 0; o < O; ++o) {
      // planes in order, so each may spill into the next one's room (and the last into kPoolSlack)
      PoolSlack s{numel - (n * O + o + 1) * Lp, (O - o - 1) * L + kPoolSlack};
      max_pool_2x2_backward_codes(gy + (n * O + o) * Lp, code + (n * O + o) * Lp, pg, buf.data() + o * L, s);
    }
    return buf.data();
  }
};

// Samples per parallel_for_blocks block: the kernels below take samples
// two at a time, so a thread the host preempts holds up the others by at
// most a block. The weight gradient's blocks are larger: each keeps a
// partial gw (74 KB for the cnn's second layer) to add at the end.
constexpr int64_t kSampleBlock = 2, kGradBlock = 8;

// CKK up to this is "thin" (a first layer's 9 taps of one channel): the
// weight gradient runs as dot products (thin_gw) and an f32 "same" forward
// as thin_forward, where GEMM packing and its short K loop would cost more
// than the arithmetic.
constexpr int64_t kThinMax = 16;

// The thin kernels are compiled per K = CKK (their registers are indexed by
// k): f(std::integral_constant<int, K>{}) for K = CKK in 1..kThinMax.
template <class F, int... Ks>
static void with_thin_k(int64_t CKK, std::integer_sequence<int, Ks...>, F&& f) {
  ((CKK == Ks + 1 ? f(std::integral_constant<int, Ks + 1>{}) : void()), ...);
}
template <class F>
static void with_thin_k(int64_t CKK, F&& f) {
  with_thin_k(CKK, std::make_integer_sequence<int, int(kThinMax)>{}, f);
}

// The thin forwards' unfold rows of x_n for a "same" geometry: row k = tap
// (c, i, j) is the input plane at the tap's flat offset, read through its
// chunk masks (same_tap_masks, 16 positions a chunk).
struct ThinRows {
  int64_t L, CKK;
  const float* src[kThinMax];
  const uint16_t* msk[kThinMax];
  ThinRows(const float* x, const Geom2d& g) : L(g.H * g.W), CKK(g.C * g.kh * g.kw) {
    int64_t taps = g.kh * g.kw;
    const uint16_t* mt = same_tap_masks(g);
    for (int64_t k = 0; k < CKK; ++k) {
      int64_t tap = k % taps;
      src[k] = x + (k / taps) * L + (tap / g.kw * g.dh - g.ph) * g.W + (tap % g.kw * g.dw - g.pw);
      msk[k] = mt + tap * same_tap_stride(g);
    }
  }
};

#ifdef __AVX512F__
// y_n [O, L] = (relu)(w [O, K] @ unfold(x_n) + bias) for a "same" geometry
// with K = CKK <= kThinMax, straight from the input planes. For NCH chunks of
// 16 positions, the K unfold rows are loaded once (masked, as
// im2col_same_avx512 does) and held in registers while every output channel
// passes, OB at a time: K * NCH + OB * NCH + 1 registers (9 * 2 + 4 * 2 + 1
// = 27 for a 3x3 first layer). Loading them once per block of channels
// instead (and K a run-time count) left the loop at a third of the FMA peak,
// busy with reloads of masks, pointers and spilled counters. Each output is an
// FMA chain over k from 0, then + bias, as sgemm's micro-kernel and epilogue
// sum it, so the values are the GEMM path's bit for bit.
template <int K, int NCH, int OB>
static inline void thin_forward_channels(const __m512 (&xv)[K][NCH], const float* w, const float* bias, bool relu,
                                         int64_t L, int64_t p0, float* y) {
  __m512 acc[OB][NCH];
#pragma GCC unroll 16
  for (int b = 0; b < OB; ++b)
#pragma GCC unroll 2
    for (int c = 0; c < NCH; ++c) acc[b][c] = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k)
#pragma GCC unroll 16
    for (int b = 0; b < OB; ++b) {
      __m512 wb = _mm512_set1_ps(w[b * K + k]);
#pragma GCC unroll 2
      for (int c = 0; c < NCH; ++c) acc[b][c] = _mm512_fmadd_ps(wb, xv[k][c], acc[b][c]);
    }
#pragma GCC unroll 16
  for (int b = 0; b < OB; ++b) {
    float* row = y + b * L;
#pragma GCC unroll 2
    for (int c = 0; c < NCH; ++c) {
      int64_t p = p0 + 16 * c;
      if (p >= L) break;
      __m512 v = acc[b][c];
      if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[b]));
      if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);  // std::max(v, 0.f)'s rule: NaN stays NaN
      _mm512_mask_storeu_ps(row + p, __mmask16(L - p >= 16 ? 0xffffu : (1u << (L - p)) - 1), v);
    }
  }
}

template <int K>
static void thin_forward_k(const float* const* src, const __mmask16* const* msk, const float* w, const float* bias,
                           int64_t O, bool relu, int64_t L, float* y) {
  constexpr int NCH = K <= 9 ? 2 : 1, OB = K <= 9 ? 4 : 8;  // at most 32 registers
  int64_t nchunks = (L + 15) / 16;
  for (int64_t t = 0; t < nchunks; t += NCH) {
    __m512 xv[K][NCH];
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k)
#pragma GCC unroll 2
      for (int c = 0; c < NCH; ++c)
        xv[k][c] = t + c < nchunks ? _mm512_maskz_loadu_ps(msk[k][t + c], src[k] + 16 * (t + c)) : _mm512_setzero_ps();
    int64_t o = 0;
    for (; o + OB <= O; o += OB)
      thin_forward_channels<K, NCH, OB>(xv, w + o * K, bias ? bias + o : nullptr, relu, L, 16 * t, y + o * L);
    for (; o < O; ++o)
      thin_forward_channels<K, NCH, 1>(xv, w + o * K, bias ? bias + o : nullptr, relu, L, 16 * t, y + o * L);
  }
}

static void thin_forward(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O, bool relu,
                         float* y) {
  ThinRows r(x, g);
  with_thin_k(r.CKK, [&](auto k) { thin_forward_k<decltype(k)::value>(r.src, r.msk, w, bias, O, relu, r.L, y); });
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
// thin_forward with AVX2 (16 ymm registers): 8 positions at a time, the K
// unfold rows of the chunk in registers (maskload with same_tap_masks'
// lanes; masked-off lanes never fault) while the output channels pass, OB at
// a time: K + OB + 1 registers (9 + 4 + 1 = 14 for a 3x3 first layer; above
// K = 11 some rows spill to L1). The same FMA chain over k from 0, then
// + bias, then std::max(v, 0)'s rule as the AVX-512 thin_forward and the
// GEMM path, so the same bits.
template <int K, int OB>
static inline void thin_forward_channels8(const __m256 (&xv)[K], const float* w, const float* bias, bool relu,
                                          int64_t L, int64_t p, __m256i tail, float* y) {
  __m256 acc[OB];
#pragma GCC unroll 16
  for (int b = 0; b < OB; ++b) acc[b] = _mm256_setzero_ps();
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k)
#pragma GCC unroll 16
    for (int b = 0; b < OB; ++b) acc[b] = _mm256_fmadd_ps(_mm256_set1_ps(w[b * K + k]), xv[k], acc[b]);
#pragma GCC unroll 16
  for (int b = 0; b < OB; ++b) {
    __m256 v = acc[b];
    if (bias) v = _mm256_add_ps(v, _mm256_set1_ps(bias[b]));
    if (relu) v = _mm256_max_ps(_mm256_setzero_ps(), v);  // 0 > v ? 0 : v: NaN stays NaN
    if (L - p >= 8) _mm256_storeu_ps(y + b * L + p, v);
    else _mm256_maskstore_ps(y + b * L + p, tail, v);
  }
}

template <int K>
static void thin_forward8_k(const float* const* src, const uint16_t* const* msk, const float* w, const float* bias,
                            int64_t O, bool relu, int64_t L, float* y) {
  constexpr int OB = K <= 9 ? 4 : K <= 12 ? 2 : 1;
  __m256i tail = lane_bits8(L % 8 ? (1u << (L % 8)) - 1 : 0xffu);
  for (int64_t q = 0; q < (L + 7) / 8; ++q) {
    __m256 xv[K];
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k)
      xv[k] = _mm256_maskload_ps(src[k] + 8 * q, lane_bits8(uint32_t(msk[k][q / 2]) >> (q % 2 * 8) & 0xffu));
    int64_t o = 0;
    for (; o + OB <= O; o += OB)
      thin_forward_channels8<K, OB>(xv, w + o * K, bias ? bias + o : nullptr, relu, L, 8 * q, tail, y + o * L);
    for (; o < O; ++o)
      thin_forward_channels8<K, 1>(xv, w + o * K, bias ? bias + o : nullptr, relu, L, 8 * q, tail, y + o * L);
  }
}

static void thin_forward_avx2(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                              bool relu, float* y) {
  ThinRows r(x, g);
  with_thin_k(r.CKK, [&](auto k) { thin_forward8_k<decltype(k)::value>(r.src, r.msk, w, bias, O, relu, r.L, y); });
}
#endif

// y [O, L] = (relu)(yt [L, O]^T + bias), the epilogue of the forward's
// transposed product: 8 x 8 blocks through registers (a strided scalar
// gather took 9% of the cnn's step on a Zen 3). Each value is s + b, then
// std::max(., 0)'s rule (NaN and -0 kept), in vector and scalar parts alike.
static void transpose_bias_relu(const float* yt, int64_t L, int64_t O, const float* bias, bool relu, float* y) {
  int64_t o = 0;
#ifdef __AVX__
  for (; o + 8 <= O; o += 8) {
    __m256 b[8];
    for (int j = 0; j < 8; ++j) b[j] = _mm256_set1_ps(bias ? bias[o + j] : 0.f);
    int64_t l = 0;
    for (; l + 8 <= L; l += 8) {
      __m256 c[8];  // c[j]: yt[l .. l + 7, o + j], row o + j of y
      load_transposed8x8(yt + l * O + o, O, c);
      for (int j = 0; j < 8; ++j) {
        __m256 v = _mm256_add_ps(c[j], b[j]);
        if (relu) v = _mm256_max_ps(_mm256_setzero_ps(), v);  // 0 > v ? 0 : v
        _mm256_storeu_ps(y + (o + j) * L + l, v);
      }
    }
    for (int j = 0; j < 8; ++j) {
      float bj = bias ? bias[o + j] : 0.f;
      for (int64_t t = l; t < L; ++t) {
        float v = yt[t * O + o + j] + bj;
        y[(o + j) * L + t] = relu ? std::max(v, 0.f) : v;
      }
    }
  }
#endif
  for (; o < O; ++o) {
    float b = bias ? bias[o] : 0.f, *r = y + o * L;
    const float* s = yt + o;
    if (relu)
      for (int64_t l = 0; l < L; ++l) r[l] = std::max(s[l * O] + b, 0.f);
    else
      for (int64_t l = 0; l < L; ++l) r[l] = s[l * O] + b;
  }
}

// bf16 autocast on the AVX512-BF16 kernel, stride 1: the direct kernel
// (conv2d_bf16_direct.h), which reads a padded pair copy of x_n in place of
// an unfold. Its tiles are 32 output channels wide: not for O < 16, where
// most of each tile's lanes would be idle (a first layer's input gradient,
// O = 1, ran 4x slower than the GEMM path).
static bool bf16_direct_active(const Geom2d& g, int64_t O) {
  return O >= 16 && gemm_bf16_active() && !gemm_amx_active() && sgemm_isa_avx512() && conv2d_bf16_direct_applies(g);
}

// y [N, O, Ho, Wo] = (relu)(conv(x, w) + bias), rounded to bf16 when bf16
// (x and w are then rounded by the GEMM's packing). w is [O, C*kh*kw]. With
// a sink, y is not written: each sample's [O, Ho*Wo] goes to the sink from a
// per-thread buffer. With a source, x is not read: x_n comes from it.
static void forward(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O, bool relu,
                    bool bf16, float* y, const ConvSampleSink* sink = nullptr,
                    const ConvSampleSource* source = nullptr) {
  if (gemm_amx_active() && conv2d_amx_applies(g) && O >= kAmxMinRows)
    return conv2d_forward_amx(x, w, bias, g, O, relu, bf16, y, sink, source);
  // 3x3 "same": Winograd F(2x2, 3x3), 2.25x fewer multiplies (conv2d_winograd.h).
  // Under bf16 autocast only where the CPU has no bf16 dot products: it then
  // rounds the operands and the output itself, with f32 transforms. On bf16
  // hardware a bf16 Winograd would round the transformed tiles too (an error
  // of bf16's 2^-9 times the terms' magnitude, not the output's), for 7% on
  // a Zen 4 over the packed bf16 path below.
  if (conv2d_winograd_applies(g, O)) return conv2d_forward_winograd(x, w, bias, g, O, relu, bf16, y, sink, source);
  if (bf16_direct_active(g, O)) return conv2d_forward_bf16_direct(x, w, bias, g, O, relu, bf16, y, sink, source);
  int64_t L = g.Ho * g.Wo, CKK = g.C * g.kh * g.kw, CHW = g.C * g.H * g.W;
  bool direct = is_pointwise(g);
  GemmTile t = sgemm_tile();
  // y_n^T [L, O] = col_n^T [L, CKK] @ w^T [CKK, O]: w^T is copied once per
  // call so it packs by rows; col_n^T is col_n read column-major (packs MR
  // contiguous values per k).
  // Worth the transposing epilogue only for a clear gain (not for a K = 9 first layer at 0.98 vs 1.0).
  bool tr = t.fill(L, O) > t.fill(O, L) + 0.05;
  // f32 on AVX-512 with a "same" geometry: each sample unfolds straight into
  // the GEMM's packed strips of col^T (tr) or col, and w is packed once for
  // the batch (sgemm_packed): no im2col buffer, no per-sample packing of
  // either operand. The products are sgemm's bit for bit.
  bool packed = false;
  // A thin f32 "same" forward (CKK <= kThinMax) runs straight from the input
  // planes (thin_forward, AVX-512 or AVX2 as sgemm's ISA), one sample at a time.
  [[maybe_unused]] bool thin = !direct && !bf16 && CKK <= kThinMax && !gemm_operands_bf16() && same_geometry(g);
  [[maybe_unused]] auto thin_batch = [&](auto&& sample) {  // sample(x_n, y_n)
    parallel_for_blocks(0, g.N, kSampleBlock, [&](int64_t lo, int64_t hi) {
      float* ybuf = sink ? scratch(size_t(O * L + kPoolSlack)) : nullptr;
      for (int64_t n = lo; n < hi; ++n) {
        float* yn = sink ? ybuf : y + n * O * L;
        sample(source ? (*source)(n) : x + n * CHW, yn);
        if (sink) (*sink)(n, yn);
      }
    });
  };
#ifdef __AVX512F__
  packed = !direct && !gemm_operands_bf16() && sgemm_isa_avx512() && same_geometry(g);
  if (thin && packed)
    return thin_batch([&](const float* xn, float* yn) { thin_forward(xn, w, bias, g, O, relu, yn); });
#endif
#if defined(__AVX2__) && defined(__FMA__)
  if (thin && sgemm_isa_avx2())
    return thin_batch([&](const float* xn, float* yn) { thin_forward_avx2(xn, w, bias, g, O, relu, yn); });
#endif
  // AVX2 (sgemm's avx2 ISA), same geometry, y^T: w^T packed once for the
  // batch, each sample unfolded straight into col^T's 6-wide A strips
  // (im2col_same_strips6_avx2; sgemm would pack both operands per sample,
  // from an im2col buffer). sgemm's bits still.
  GemmTile ft = sgemm_f32_tile();
#if defined(__AVX2__) && defined(__FMA__)
  constexpr bool strips6 = true;
#else
  constexpr bool strips6 = false;  // sgemm may still run AVX2 (its own flags); this unfold is not compiled
#endif
  bool pack_rows = strips6 && !packed && tr && !direct && !gemm_operands_bf16() && sgemm_isa_avx2() &&
                   same_geometry(g) && ft.mr == 6;
  std::vector<float> wt, wbuf;  // w^T [CKK, O] for the unpacked tr product; w packed (at wp)
  float* wp = nullptr;
  if (packed || pack_rows) {
    wp = aligned64(wbuf, size_t(sgemm_packed_size(O, CKK, tr ? ft.nr : ft.mr)));
    if (tr) sgemm_pack_b(CKK, O, MatF{w, 1, CKK}, wp);
    else sgemm_pack_a(O, CKK, MatF{w, CKK, 1}, wp);
  } else if (tr) {
    wt.resize(size_t(CKK * O));
    for (int64_t o = 0; o < O; ++o)
      for (int64_t k = 0; k < CKK; ++k) wt[size_t(k * O + o)] = w[o * CKK + k];
  }
  int64_t colsize = direct                ? 0
                    : packed || pack_rows ? sgemm_packed_size(L, CKK, tr ? ft.mr : ft.nr)
                                          : CKK * L;
  parallel_for_blocks(0, g.N, kSampleBlock, [&](int64_t lo, int64_t hi) {
    float* buf = scratch(size_t(colsize + (tr ? L * O : 0) + (sink ? O * L + kPoolSlack : 0)));
    float* col = buf;
    float* yt = buf + colsize;             // [L, O] when tr
    float* ybuf = yt + (tr ? L * O : 0);   // y_n for the sink
    for (int64_t n = lo; n < hi; ++n) {
      const float* xn = source ? (*source)(n) : x + n * CHW;
#ifdef __AVX512F__
      if (packed) im2col_same_strips_avx512(xn, g, tr ? ft.mr : ft.nr, col);
#endif
#if defined(__AVX2__) && defined(__FMA__)
      if (pack_rows) im2col_same_strips6_avx2(xn, g, col);
#endif
      if (!direct && !packed && !pack_rows) im2col_sample(xn, g, col);
      const float* cn = direct ? xn : col;
      float* yn = sink ? ybuf : y + n * O * L;
      if (tr) {
        if (packed || pack_rows) {
          sgemm_packed(L, O, CKK, col, wp, yt, O);
        } else {
          sgemm(L, O, CKK, MatF{cn, 1, L}, MatF{wt.data(), O, 1}, yt, O);
        }
        transpose_bias_relu(yt, L, O, bias, relu, yn);  // into NCHW while yt is in cache
        if (bf16) round_bf16(yn, O * L);
        if (sink) (*sink)(n, yn);
        continue;
      }
      if (packed) sgemm_packed(O, L, CKK, wp, col, yn, L);
      else sgemm(O, L, CKK, MatF{w, CKK, 1}, MatF{cn, L, 1}, yn, L);
      if (bias || relu)
        for (int64_t o = 0; o < O; ++o) {  // epilogue on the [O, L] tile while it is in cache
          float b = bias ? bias[o] : 0.f, *r = yn + o * L;
          if (relu)
            for (int64_t l = 0; l < L; ++l) r[l] = std::max(r[l] + b, 0.f);
          else
            for (int64_t l = 0; l < L; ++l) r[l] += b;
        }
      if (bf16) round_bf16(yn, O * L);
      if (sink) (*sink)(n, yn);
    }
  });
}

bool conv2d_fwd(const KernelArgs& a) {
  const ConvParams& p = *static_cast<const ConvParams*>(a.params);
  // Folded bf16 casts (p.bf16): every GEMM below rounds x and w, on bf16
  // dot products or (without them) as rounded copies for the f32 kernel.
  forward(ptr<float>(a.in[0]), ptr<float>(a.in[1]), a.in[2].defined() ? ptr<float>(a.in[2]) : nullptr, p.g,
          a.in[1].size(0), p.relu, p.bf16, ptr<float>(a.out[0]));
  return true;
}

// The conv forward with its 2x2 max pool applied to each sample's output
// planes while they are in cache: the full-size output [N, O, Ho, Wo] is
// never written to memory, nor read back by a pooling pass (for the cnn's
// first layer, 13 MB each way per batch of 128). With relu (ConvParams), the
// ReLU follows the pool (max commutes with it), and a window whose maximum
// is not above 0 gets code 4: the backward kernels then route it no
// gradient, which is the ReLU's backward, with no pass of its own.
bool conv2d_pool_fwd(const KernelArgs& a) {
  const ConvParams& p = *static_cast<const ConvParams*>(a.params);
  int64_t O = a.in[1].size(0), L = p.g.Ho * p.g.Wo;
  Geom2d pg = max_pool_2x2_geom(p.g, O);
  float* y = ptr<float>(a.out[0]);
  uint8_t* code = ptr<uint8_t>(a.out[1]);
  int64_t Lp = pg.Ho * pg.Wo;
  // A first layer, pooled in registers; under bf16 too (folded casts: on
  // the rounded operands), AMX or not: its K of 9 would fill a tenth of an
  // AMX tile's 32-deep reduction.
  if (conv2d_thin_pool_applies(p.g)) {
    conv2d_thin_pool_forward(ptr<float>(a.in[0]), ptr<float>(a.in[1]), a.in[2].defined() ? ptr<float>(a.in[2]) : nullptr,
                             p.g, O, p.relu, y, code, p.bf16);
    return true;
  }
  if (bf16_direct_active(p.g, O)) {  // pooled in registers
    conv2d_pool_forward_bf16_direct(ptr<float>(a.in[0]), ptr<float>(a.in[1]),
                                    a.in[2].defined() ? ptr<float>(a.in[2]) : nullptr, p.g, O, p.relu, p.bf16, y,
                                    code);
    return true;
  }
  if (conv2d_winograd_applies(p.g, O)) {  // pooled in registers (bf16: rounded before the pool)
    conv2d_pool_forward_winograd(ptr<float>(a.in[0]), ptr<float>(a.in[1]),
                                 a.in[2].defined() ? ptr<float>(a.in[2]) : nullptr, p.g, O, p.relu, p.bf16, y, code);
    return true;
  }
  ConvSampleSink pool = [&](int64_t n, const float* yn) {
    for (int64_t o = 0; o < O; ++o)  // planes in order: each may spill into the next (yn: into kPoolSlack)
      max_pool_2x2(yn + o * L, pg, y + (n * O + o) * Lp, code + (n * O + o) * Lp,
                   PoolSlack{(O - o - 1) * L + kPoolSlack, (O - o - 1) * Lp});
    if (p.relu) relu_pooled(y + n * O * Lp, code + n * O * Lp, O * Lp);
  };
  forward(ptr<float>(a.in[0]), ptr<float>(a.in[1]), a.in[2].defined() ? ptr<float>(a.in[2]) : nullptr, p.g, O,
          false, p.bf16, nullptr, &pool);
  return true;
}

bool conv2d_bwd_input(const KernelArgs& a) {
  const Geom2d& g = static_cast<const ConvParams*>(a.params)->g;
  // Folded bf16 casts: the GEMMs round w and gy (as in the forward), and gx
  // comes out rounded (the gradient of the cast x).
  bool bf = static_cast<const ConvParams*>(a.params)->bf16;
  const float* w = ptr<float>(a.in[1]);
  float* gx = ptr<float>(a.out[0]);
  int64_t O = a.in[1].size(0), L = g.Ho * g.Wo, CKK = g.C * g.kh * g.kw, CHW = g.C * g.H * g.W;
  GySample gy(a, g, O);
  // A first layer's pooled gradient: Winograd backwards from the pooled
  // gradient and its codes (with folded casts, on rounded operands), on
  // AMX machines too (its 9 taps suit no tile).
  if (gy.code && conv2d_thin_pool_input_grad_applies(g)) {
    conv2d_thin_pool_input_grad(gy.gy, gy.code, w, g, O, gx, bf);
    return true;
  }
  // A pooled gradient on AVX-512 or AVX2: only its nonzeros, scattered (about 1 in 8
  // of the dense sums' multiply-adds after a ReLU'd pool); a dense kernel
  // below where w holds a non-finite value. Not under bf16 on AMX tiles,
  // whose dense products outrun the scatter's one multiply-add (or bf16
  // dot product paired with zero) per live value and vector.
  if (gy.code && !(bf && gemm_amx_active()) && conv2d_pool_sparse_input_grad_applies(g) &&
      conv2d_pool_sparse_input_grad(gy.gy, gy.code, w, g, O, bf, gx))
    return true;
  ConvSampleSource source = [&gy](int64_t n) { return gy(n); };
  bool direct = is_pointwise(g);
  // Stride 1, dilation 1: gx is the forward convolution of gy (O channels)
  // with w flipped and its channel axes swapped, padded kh-1-ph: no col2im,
  // and its product (gx^T [H*W, C], K = O*kh*kw) fills the tiles better than
  // dcol [CKK, L] does when L is 8-row friendly but not 32-column friendly
  // (the cnn's 196 positions: 0.98 vs 0.875).
  GemmTile t = sgemm_tile();
  int64_t HW = g.H * g.W;
  // On AMX tiles the forward path wins whenever it applies: it unfolds
  // straight into packed bf16 (conv2d_amx.cpp), with no col2im pass.
  Geom2d gt{g.N, O, g.Ho, g.Wo, g.kh, g.kw, 1, 1, g.kh - 1 - g.ph, g.kw - 1 - g.pw, 1, 1, g.H, g.W};
  bool amx = gemm_amx_active() && conv2d_amx_applies(gt) && g.C >= kAmxMinRows;
  // Likewise Winograd's forward (f32 3x3 "same"), with no col2im pass either.
  bool wino = conv2d_winograd_applies(gt, g.C);
  if (!direct && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ph < g.kh && g.pw < g.kw &&
      (amx || wino || bf16_direct_active(gt, g.C) || std::max(t.fill(HW, g.C), t.fill(g.C, HW)) > t.fill(CKK, L) + 0.05)) {
    std::vector<float> wf(size_t(g.C * O * g.kh * g.kw));  // [C, O*kh*kw], flipped taps
    for (int64_t o = 0; o < O; ++o)
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j)
            wf[size_t(((c * O + o) * g.kh + (g.kh - 1 - i)) * g.kw + (g.kw - 1 - j))] =
                w[((o * g.C + c) * g.kh + i) * g.kw + j];
    // Folded bf16 casts: gx is rounded as the forward rounds y (ConvParams::bf16).
    PooledInput pooled{gy.gy, gy.code, gy.pg.Ho, gy.pg.Wo};
    if (gy.code && bf16_direct_active(gt, g.C)) {  // the pooled gradient expanded in the padded copy itself
      conv2d_forward_bf16_direct(nullptr, wf.data(), nullptr, gt, g.C, false, bf, gx, nullptr, nullptr, &pooled);
    } else if (gy.code && amx && conv2d_amx_direct_applies(gt)) {  // likewise, in the sample's bf16 copy
      conv2d_forward_amx_direct(nullptr, wf.data(), nullptr, gt, g.C, false, bf, gx, nullptr, nullptr, &pooled);
    } else if (gy.code && !amx && wino) {  // likewise, in Winograd's zero-bordered planes (forward's choice here)
      conv2d_forward_winograd(nullptr, wf.data(), nullptr, gt, g.C, false, bf, gx, nullptr, nullptr, &pooled);
    } else {
      forward(nullptr, wf.data(), nullptr, gt, g.C, false, bf, gx, nullptr, &source);
    }
    return true;
  }
  // f32 with a vector ISA: W^T packed once for the batch and each gy_n
  // packed alone (sgemm would pack W^T again for every sample). Same bits.
  bool packed = !gemm_operands_bf16() && (sgemm_isa_avx2() || sgemm_isa_avx512());
  GemmTile ft = sgemm_f32_tile();
  std::vector<float> abuf;
  const float* ap = nullptr;
  int64_t colsize = direct ? 0 : (CKK * L + 15) / 16 * 16, bsize = packed ? sgemm_packed_size(L, O, ft.nr) : 0;
  if (packed) {
    float* p = aligned64(abuf, size_t(sgemm_packed_size(CKK, O, ft.mr)));
    sgemm_pack_a(CKK, O, MatF{w, 1, CKK}, p);
    ap = p;
  }
  parallel_for_blocks(0, g.N, kSampleBlock, [&](int64_t lo, int64_t hi) {
    float* col = scratch(size_t(colsize + bsize));
    float* bp = col + colsize;  // gy_n's B strips (64-byte aligned: colsize is a multiple of 16)
    for (int64_t n = lo; n < hi; ++n) {
      // dcol [CKK, L] = W^T [CKK, O] @ gy_n [O, L]
      float* dst = direct ? gx + n * CHW : col;
      if (packed) {
        sgemm_pack_b(O, L, MatF{gy(n), L, 1}, bp);
        sgemm_packed(CKK, L, O, ap, bp, dst, L);
      } else {
        sgemm(CKK, L, O, MatF{w, 1, CKK}, MatF{gy(n), L, 1}, dst, L);
      }
      if (!direct) col2im_sample(col, g, gx + n * CHW);
      if (bf) round_bf16(gx + n * CHW, CHW);  // in cache, while the sample's gx is
    }
  });
  return true;
}

// 16 floats as one vector (GCC lowers it to the widest the build has). The
// summation loops below are written on it because the build turns off GCC's
// SLP vectorizer (CMakeLists.txt), which a 16-wide scalar loop body needs.
#ifdef __AVX512F__
using v16 = float __attribute__((vector_size(64)));
#else
// Without AVX-512, GCC lowers a 64-byte vector through the stack and general
// registers (the thin weight gradient ran at 9 GFLOP/s): two 32-byte halves
// instead, lanes 0-7 and 8-15, each lane's arithmetic the same.
using v8 = float __attribute__((vector_size(32)));
struct v16 {
  v8 lo, hi;
  v16& operator+=(const v16& o) {
    lo += o.lo;
    hi += o.hi;
    return *this;
  }
  friend v16 operator*(const v16& a, const v16& b) { return {a.lo * b.lo, a.hi * b.hi}; }
  float operator[](int i) const { return i < 8 ? lo[i] : hi[i - 8]; }
};
#endif
static inline v16 load16(const float* p) {
  v16 v;
#ifdef __AVX512F__
  std::memcpy(&v, p, sizeof v);
#else
  std::memcpy(&v.lo, p, sizeof v.lo);  // half by half: one ymm load each
  std::memcpy(&v.hi, p + 8, sizeof v.hi);
#endif
  return v;
}
// tail, then lanes 0..15 in order: a fixed summation order.
static inline float finish16(v16 acc, float tail) {
  for (int u = 0; u < 16; ++u) tail += acc[u];
  return tail;
}

// bf16 rounding (nearest even; NaN kept quiet) lane by lane, the scalar
// round_bf16's arithmetic (float_to_bf16_bits), for the folded autocast casts
// (ConvParams::bf16) where a sum reads gy without going through the GEMM.
static inline v16 round_bf16(v16 v) {
#ifdef __AVX512F__
  return bf16_rounded_lanes<v16, uint32_t __attribute__((vector_size(64)))>(v);
#else
  using vu8 = uint32_t __attribute__((vector_size(32)));
  return {bf16_rounded_lanes<v8, vu8>(v.lo), bf16_rounded_lanes<v8, vu8>(v.hi)};
#endif
}
template <bool BF>
static inline v16 load16r(const float* p) {
  return BF ? round_bf16(load16(p)) : load16(p);
}
template <bool BF>
static inline float loadr(const float* p) {
  return BF ? round_bf16(*p) : *p;
}

// sum_l a[l] (16 lanes of partial sums, then the lanes in order); BF: of a's bf16 roundings.
template <bool BF>
static float sum16(const float* a, int64_t L) {
  v16 acc{};
  int64_t l = 0;
  for (; l + 16 <= L; l += 16) acc += load16r<BF>(a + l);
  float s = 0.f;
  for (; l < L; ++l) s += loadr<BF>(a + l);
  return finish16(acc, s);
}

// The sum of a pooled gradient over its windows that pass one on (code
// 0..3; a ReLU'd window, code 4, passes none): the sum of
// max_pool_2x2_backward_codes' expanded plane, without expanding it (the
// bias gradient of a pooled conv). 16 lanes of partial sums, then the lanes
// in order, then the tail. BF: of gy's bf16 roundings.
template <bool BF>
static float pooled_live_sum(const float* gy, const uint8_t* code, int64_t n) {
  int64_t i = 0;
  float s = 0.f;
#ifdef __AVX512F__
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(code + i)));
    __m512 g = _mm512_loadu_ps(gy + i);
    if constexpr (BF) g = (__m512)round_bf16((v16)g);
    acc = _mm512_mask_add_ps(acc, _mm512_cmplt_epu32_mask(c, _mm512_set1_epi32(4)), acc, g);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  for (float v : lanes) s += v;
#endif
  for (; i < n; ++i)
    if (code[i] < 4) s += loadr<BF>(gy + i);
  return s;
}

// The thin case of the weight gradient (a first layer: C*kh*kw = 9), where
// GEMM packing would cost more than the arithmetic: for every (o, k),
// acc[o * CKK + k] (16 lanes) += g[o * L + l] * c[k * L + l] over the 16-wide
// l runs, tail[o * CKK + k] += the rest. The lanes stay apart across the
// samples of a chunk and are summed once at its end (thin_gw_finish): a
// horizontal sum per (o, k) and sample would cost more than the products.
// OB output channels at a time share each load of c, over KB of the CKK rows
// of c at a time; KB and OB are template arguments so the OB * KB
// accumulators stay in registers. The blocking leaves each (o, k)'s sum, and
// so the result, unchanged.
// BF: g read as its bf16 roundings (c is rounded by the caller).
template <int KB, int OB, bool BF>
static void thin_gw_block(const float* g, const float* c, int64_t L, int64_t CKK, v16* acc, float* tail) {
  int64_t L16 = L / 16 * 16;
  v16 r[OB][KB];
  for (int b = 0; b < OB; ++b)
    for (int k = 0; k < KB; ++k) r[b][k] = acc[b * CKK + k];
  for (int64_t l = 0; l < L16; l += 16) {
    v16 gv[OB];
    for (int b = 0; b < OB; ++b) gv[b] = load16r<BF>(g + b * L + l);
#pragma GCC unroll 16
    for (int k = 0; k < KB; ++k) {
      v16 cv = load16(c + k * L + l);
      for (int b = 0; b < OB; ++b) r[b][k] += gv[b] * cv;
    }
  }
  for (int b = 0; b < OB; ++b)
    for (int k = 0; k < KB; ++k) {
      acc[b * CKK + k] = r[b][k];
      for (int64_t l = L16; l < L; ++l) tail[b * CKK + k] += loadr<BF>(g + b * L + l) * c[k * L + l];
    }
}
// Rows [o, o + OB) of g against all CKK rows of c, KB rows at a time.
template <int CKK, int KB, int OB, bool BF>
static void thin_gw_rows(const float* g, const float* c, int64_t L, v16* acc, float* tail) {
  int k = 0;
  for (; k + KB <= CKK; k += KB) thin_gw_block<KB, OB, BF>(g, c + k * L, L, CKK, acc + k, tail + k);
  if constexpr (CKK % KB != 0) thin_gw_block<CKK % KB, OB, BF>(g, c + k * L, L, CKK, acc + k, tail + k);
}
template <int CKK, bool BF>
static void thin_gw_k(const float* g, const float* c, int64_t O, int64_t L, v16* acc, float* tail) {
#ifdef __AVX512F__
  // A v16 is one zmm: OB * (CKK + 1) + 1 registers of 32.
  constexpr int KB = CKK, OB = CKK <= 9 ? 3 : CKK <= 14 ? 2 : 1;
#else
  // A v16 is two of the 16 ymm: OB * (KB + 1) + 1 v16 <= 8, else the
  // accumulators spill. KB = 5 measured best for the cnn's CKK = 9 (5 + 4) on
  // a Zen 3 (0.8 ms per batch of 128; KB 2-4, 6, 7, 9 and OB 2-3 0.9-1.5 ms).
  constexpr int KB = CKK < 5 ? CKK : 5, OB = 1;
#endif
  int64_t o = 0;
  for (; o + OB <= O; o += OB) thin_gw_rows<CKK, KB, OB, BF>(g + o * L, c, L, acc + o * CKK, tail + o * CKK);
  for (; o < O; ++o) thin_gw_rows<CKK, KB, 1, BF>(g + o * L, c, L, acc + o * CKK, tail + o * CKK);
}
static void thin_gw(const float* g, const float* c, int64_t O, int64_t CKK, int64_t L, v16* acc, float* tail,
                    bool bf) {
  with_thin_k(CKK, [&](auto k) {
    constexpr int K = decltype(k)::value;
    if (bf)
      thin_gw_k<K, true>(g, c, O, L, acc, tail);
    else
      thin_gw_k<K, false>(g, c, O, L, acc, tail);
  });
}
// dst[i] += the chunk's sum for (o, k) = i: its tail, then its lanes in order.
static void thin_gw_finish(const v16* acc, const float* tail, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] += finish16(acc[i], tail[i]);
}

bool conv2d_bwd_weight(const KernelArgs& a) {
  const Geom2d& g = static_cast<const ConvParams*>(a.params)->g;
  bool bf = static_cast<const ConvParams*>(a.params)->bf16;
  const float* x = ptr<float>(a.in[1]);
  float* gw = ptr<float>(a.out[0]);
  float* gb = a.out[1].defined() ? ptr<float>(a.out[1]) : nullptr;
  int64_t O = a.out[0].size(0), L = g.Ho * g.Wo, CKK = g.C * g.kh * g.kw, CHW = g.C * g.H * g.W;
  GySample gy(a, g, O);
  // A pooled gradient on AVX-512 or AVX2: only its live values (conv2d_pool_sparse_grad.h);
  // a dense kernel below where x holds a non-finite value or most windows
  // are live, and under bf16 on AMX tiles (as for the input gradient).
  if (gy.code && !(bf && gemm_amx_active()) && conv2d_pool_sparse_input_grad_applies(g) &&
      conv2d_pool_sparse_weight_grad(gy.gy, gy.code, x, g, O, bf, gw, gb))
    return true;
  bool direct = is_pointwise(g);
  // gw = sum_n gy_n [O, L] @ col_n^T [L, CKK]. Each block of kGradBlock
  // samples sums into its own partial, whichever thread takes it
  // (parallel_for_blocks); partials are added in block order, so the result
  // does not depend on the thread count or the schedule. A thin CKK (a first layer's
  // 9) uses dot products; otherwise the product is gw or gw^T = col_n @
  // gy_n^T, whichever fills the micro-tiles better (both operands run along L,
  // so either way they pack through register transposes).
  // On AMX tiles every shape runs as tile products of unfold @ gy^T (AmxWeightGrad).
  // A first layer's pooled gradient: straight from the pooled gradient and
  // its codes (ThinPoolWeightGrad; with folded casts, on rounded operands),
  // on AMX machines too (its K of 9 suits no tile).
  bool thin_pool = gy.code && conv2d_thin_pool_applies(g);
  bool amx = gemm_amx_active() && !thin_pool;
  // On AMX tiles a "same" stride-1 layer wide enough in channels runs
  // direct, with no unfold (AmxDirectWeightGrad); others as AmxWeightGrad.
  bool amx_direct = amx && conv2d_amx_direct_applies(g);
  // 3x3 "same" (C, O >= 8): Winograd F(2x2, 3x3), 2.25x fewer multiplies
  // (WinogradWeightGrad; folded bf16 casts: on rounded operands, where the
  // CPU has no bf16 dot products).
  bool wino = !amx && conv2d_winograd_applies(g, O);
  // bf16 autocast on the AVX512-BF16 kernel, stride 1, even output rows:
  // straight from padded bf16 copies of the block's samples (Bf16DirectWeightGrad).
  bool bdirect = !amx && !thin_pool && bf16_direct_active(g, O) && conv2d_bf16_direct_wgrad_applies(g);
  bool own = wino || thin_pool || bdirect;  // an accumulator of its own (gw [O, CKK]): no unfold, no GEMM here
  bool thin = !amx && !own && CKK <= kThinMax;
  GemmTile t = sgemm_tile();
  bool unfold_here = !direct && !(amx && conv2d_amx_applies(g));  // AmxWeightGrad unfolds "same" inputs itself
  // f32 on AVX-512 with a "same" geometry: neither operand goes through
  // sgemm's packing. gw^T = col_n @ gy_n^T reads col_n's rows (which run
  // along K = L) in place and packs only the small gy_n^T; gw = gy_n @ col_n^T
  // reads gy_n's rows in place and unfolds col_n^T transposed straight into
  // packed strips. The former needs no transposing unfold, so it is taken
  // unless its tiles waste clearly more. sgemm's bits either way.
  bool packed = false;
#ifdef __AVX512F__
  packed = !amx && !thin && !bf && unfold_here && !gemm_operands_bf16() && sgemm_isa_avx512() && same_geometry(g);
#endif
  // AVX2 has the in-place form only (no transposing unfold into strips):
  // col_n from im2col, gy_n^T packed, taken whatever the tiles' fill.
  bool packed_rows = !amx && !thin && !bf && unfold_here && !gemm_operands_bf16() && sgemm_isa_avx2() &&
                     same_geometry(g) && !own;
  packed = (packed && !own) || packed_rows;
  bool transposed = !own && (amx || packed_rows ||
                              (!thin && (packed ? t.fill(CKK, O) + 0.05 >= t.fill(O, CKK)
                                                : t.fill(CKK, O) > t.fill(O, CKK) + 0.01)));
  GemmTile ft = sgemm_f32_tile();
  // Per thread when packed: [col_n | gy_n^T's strips] (transposed) or col_n^T's strips.
  int64_t usize = transposed ? (CKK * L + 15) / 16 * 16 : sgemm_packed_size(CKK, L, ft.nr);
  int64_t gsize = transposed ? sgemm_packed_size(O, L, ft.nr) : 0;
  int64_t blocks = (g.N + kGradBlock - 1) / kGradBlock, part = O * CKK + O;
  static thread_local std::vector<float> partial;  // the caller's; workers zero and write their blocks
  if (partial.size() < size_t(blocks * part)) partial.resize(size_t(blocks * part));
  float* pbase = partial.data();  // not `partial` inside the lambda: that names each worker's own
  parallel_for_blocks(0, blocks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      float* pw = pbase + c * part;
      float* pb = pw + O * CKK;
      std::fill(pw, pw + part, 0.f);
      float* col = own ? nullptr : scratch(size_t(packed ? usize + gsize : CKK * L));
      std::optional<AmxWeightGrad> tiles;
      if (amx && !amx_direct) tiles.emplace(g, O, pw);
      std::optional<AmxDirectWeightGrad> dtiles;
      if (amx_direct) dtiles.emplace(g, O, kGradBlock, pw);
      std::optional<WinogradWeightGrad> wg;
      if (wino) wg.emplace(g, O, bf);
      std::optional<ThinPoolWeightGrad> tp;
      if (thin_pool) tp.emplace(g, O, bf);
      std::optional<Bf16DirectWeightGrad> bd;
      if (bdirect) bd.emplace(g, O, kGradBlock);
      // the thin path's per-lane sums over the chunk's samples, and their tails
      static thread_local std::vector<v16> thin_acc;
      static thread_local std::vector<float> thin_tail;
      if (thin) {
        thin_acc.assign(size_t(O * CKK), v16{});
        thin_tail.assign(size_t(O * CKK), 0.f);
      }
      const int64_t n_end = std::min(g.N, (c + 1) * kGradBlock);
      for (int64_t n = c * kGradBlock; n < n_end; ++n) {
        const float* xn = x + n * CHW;
        if (thin_pool) {  // the pooled gradient as it is, not expanded; two samples a call (one band where they fit)
          int64_t OLp = O * gy.pg.Ho * gy.pg.Wo, take = std::min<int64_t>(2, n_end - n);
          tp->add(gy.gy + n * OLp, gy.code + n * OLp, xn, gy.numel - (n + take) * OLp, take);
          n += take - 1;
          continue;
        }
        if (bdirect && gy.code && bf) {  // the pooled gradient as it is, not expanded
          int64_t OLp = O * gy.pg.Ho * gy.pg.Wo;
          bd->add_pooled(gy.gy + n * OLp, gy.code + n * OLp, gy.pg.Ho, gy.pg.Wo, xn, gb ? pb : nullptr);
          continue;
        }
        if (wino && gy.code && WinogradWeightGrad::pooled_applies(g)) {  // the pooled gradient as it is
          int64_t Lp = gy.pg.Ho * gy.pg.Wo, OLp = O * Lp;
          wg->add_pooled(gy.gy + n * OLp, gy.code + n * OLp, xn);
          if (gb)
            for (int64_t o = 0; o < O; ++o) {
              const float* gq = gy.gy + n * OLp + o * Lp;
              const uint8_t* cq = gy.code + n * OLp + o * Lp;
              pb[o] += bf ? pooled_live_sum<true>(gq, cq, Lp) : pooled_live_sum<false>(gq, cq, Lp);
            }
          continue;
        }
        const float* gyn = gy(n);
        if (wino) {
          wg->add(gyn, xn);
          if (gb)
            for (int64_t o = 0; o < O; ++o) pb[o] += bf ? sum16<true>(gyn + o * L, L) : sum16<false>(gyn + o * L, L);
          continue;
        }
        if (bdirect) {
          bd->add(gyn, xn);
          if (gb)
            for (int64_t o = 0; o < O; ++o) pb[o] += bf ? sum16<true>(gyn + o * L, L) : sum16<false>(gyn + o * L, L);
          continue;
        }
        if (packed) {
          if (transposed) {
            // gw^T [CKK, O] += col_n [CKK, L] @ gy_n^T: col_n's rows run along L = K and are read in place
            float* gp = col + usize;
#ifdef __AVX512F__
            if (!packed_rows) im2col_same_avx512(xn, g, col);
#endif
            if (packed_rows) im2col_sample(xn, g, col);  // im2col_same_avx2
            sgemm_pack_b(L, O, MatF{gyn, 1, L}, gp);
            sgemm_packed_b(CKK, O, L, col, L, gp, pw, O, true);
          } else {
#ifdef __AVX512F__
            // gw [O, CKK] += gy_n [O, L] @ col_n^T: gy_n's rows read in place, col_n^T unfolded into B strips
            im2col_same_strips_t_avx512(xn, g, ft.nr, col);
            sgemm_packed_b(O, CKK, L, gyn, L, col, pw, CKK, true);
#endif
          }
          if (gb)
            for (int64_t o = 0; o < O; ++o) pb[o] += sum16<false>(gyn + o * L, L);
          continue;
        }
        if (unfold_here) im2col_sample(xn, g, col);
        const float* cn = direct ? xn : col;
        // Folded bf16 casts: the thin dot products and the bias sum do not go
        // through the rounding GEMM, so they round gy as they read it and
        // the thin path rounds its (small) col.
        if (bf && thin) {
          if (direct) std::memcpy(col, xn, sizeof(float) * size_t(CKK * L));
          round_bf16(col, CKK * L);
          cn = col;
        }
        if (amx_direct)
          dtiles->add(gyn, xn);
        else if (amx)
          tiles->add(gyn, xn, cn);
        else if (thin)
          thin_gw(gyn, cn, O, CKK, L, thin_acc.data(), thin_tail.data(), bf);
        else if (transposed)
          sgemm(CKK, O, L, MatF{cn, L, 1}, MatF{gyn, 1, L}, pw, O, true);
        else
          sgemm(O, CKK, L, MatF{gyn, L, 1}, MatF{cn, 1, L}, pw, CKK, true);
        if (gb)
          for (int64_t o = 0; o < O; ++o) pb[o] += bf ? sum16<true>(gyn + o * L, L) : sum16<false>(gyn + o * L, L);
      }
      if (thin) thin_gw_finish(thin_acc.data(), thin_tail.data(), O * CKK, pw);
      if (wino) wg->finish(pw);
      if (bdirect) bd->finish(pw);
      if (thin_pool) tp->finish(pw, gb ? pb : nullptr);
      if (amx_direct) dtiles->finish();
    }
  });
  // partial 0 += partial 1, += partial 2, ... in block order (each element's
  // sum in that order whatever the split of the elements between threads)
  parallel_for(0, part, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t c = 1; c < blocks; ++c) {
      const float* src = pbase + c * part;
      for (int64_t i = lo; i < hi; ++i) pbase[i] += src[i];
    }
    for (int64_t i = lo; i < std::min(hi, O * CKK); ++i)
      // transposed partials hold gw^T [CKK, O]; folded bf16 casts: gw rounded (the cast w's gradient)
      gw[transposed ? (i % O) * CKK + i / O : i] = bf ? round_bf16(pbase[i]) : pbase[i];
    if (gb)
      for (int64_t i = std::max(lo, O * CKK); i < hi; ++i) gb[i - O * CKK] = pbase[i];
  });
  return true;
}

void register_conv2d() {
  constexpr int P = backend_priority::native;
  register_kernel("conv2d_fwd", DeviceType::cpu, DType::f32, "cpu", P, &conv2d_fwd);
  register_kernel("conv2d_pool_fwd", DeviceType::cpu, DType::f32, "cpu", P, &conv2d_pool_fwd);
  register_kernel("conv2d_bwd_input", DeviceType::cpu, DType::f32, "cpu", P, &conv2d_bwd_input);
  register_kernel("conv2d_bwd_weight", DeviceType::cpu, DType::f32, "cpu", P, &conv2d_bwd_weight);
}

}  // namespace brisk::kern::cpu
