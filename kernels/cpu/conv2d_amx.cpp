// The bf16 convolution forward on AMX tiles (see conv2d_amx.h). With tiles,
// the products cost a fraction of what getting the operands to them does, so
// this path removes passes rather than FLOPs: the f32 path unfolds a sample
// into an f32 buffer and the GEMM then reads it again to pack it; here the
// unfold writes the packed bf16 pairs directly (half the bytes, one pass),
// the weights are packed once per call instead of once per sample, and bias,
// ReLU and the output rounding happen as the tiles are stored.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include "kernels/cpu/conv2d_amx.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/conv2d_amx_direct.h"

#define BRISK_GEMM_NS amx
#include "kernels/cpu/gemm/amx_tile.h"
#include "kernels/cpu/gemm/bf16_pack.h"
#include "kernels/cpu/pool2d.h"

namespace brisk::kern::cpu {

namespace {
using amx::Step;

// "Same" geometry unfold (im2col_same_avx512's idea): row k = tap (c, i, j)
// of the unfold [K = C*kh*kw, L = H*W] is input plane c shifted by delta =
// (i*dh - ph)*W + (j*dw - pw), with the lanes whose column wraps or whose
// source falls outside the plane (and those past L) zeroed. The masks depend
// on the tap position (i, j) only: built once per call, so a row chunk is one
// masked load. load(t, ch) reads lanes 16ch..16ch+15 of row t.
struct SameUnfold {
  const Geom2d& g;
  int64_t L, taps, K, chunks;  // chunks: of 16 lanes, covering the 32-column strips
  std::vector<Step> masks;     // [taps][chunks] __mmask16, in Steps (a type of this file's own)
  SameUnfold(const Geom2d& geom)
      : g(geom), L(g.H * g.W), taps(g.kh * g.kw), K(g.C * taps), chunks(2 * ((L + 31) / 32)) {
    masks.resize(size_t((taps * chunks * 2 + 63) / 64));
    __mmask16* m = reinterpret_cast<__mmask16*>(masks.data());
    std::fill(m, m + taps * chunks, __mmask16(0));
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t r = i * g.kw + j, drow = i * g.dh - g.ph, dcol = j * g.dw - g.pw;
        for (int64_t p = 0; p < L; ++p) {
          int64_t row = p / g.W + drow, col = p % g.W + dcol;
          if (row >= 0 && row < g.H && col >= 0 && col < g.W) m[r * chunks + p / 16] |= __mmask16(1u << (p % 16));
        }
      }
  }
  struct Tap {
    const float* src = nullptr;  // the plane shifted by delta; null: a padding row past K
    const __mmask16* m = nullptr;
  };
  Tap tap(const float* x, int64_t k) const {
    Tap t;
    if (k >= K) return t;
    int64_t c = k / taps, r = k % taps, i = r / g.kw, j = r % g.kw;
    t.src = x + c * L + (i * g.dh - g.ph) * g.W + (j * g.dw - g.pw);
    t.m = reinterpret_cast<const __mmask16*>(masks.data()) + r * chunks;
    return t;
  }
  // Masked-off lanes never fault, so the shifted pointer may point outside the plane.
  static __m512 load(const Tap& t, int64_t ch) {
    return t.src ? _mm512_maskz_loadu_ps(t.m[ch], t.src + 16 * ch) : _mm512_setzero_ps();
  }

  // The unfold of x as the packed B operand [K, L] of the forward: rows k
  // and k + 1 become one pair row; strips of 32 columns, kp * 16 pair rows
  // each (kp = ceil(K / 32)), zero past K and past L.
  void to_b(const float* x, Step* dst) {
    int64_t kp = (K + 31) / 32;
    uint32_t* out = reinterpret_cast<uint32_t*>(dst);
    for (int64_t k2 = 0; k2 < kp * 16; ++k2) {
      Tap a = tap(x, 2 * k2), b = tap(x, 2 * k2 + 1);
      for (int64_t ch = 0; ch < chunks; ++ch) {
        uint32_t* o = out + (ch / 2) * kp * 16 * 32 + k2 * 32 + (ch % 2) * 16;
        if (!a.src)
          _mm512_store_si512(o, _mm512_setzero_si512());
        else
          amx::pack_pairs16(load(a, ch), load(b, ch), o);
      }
    }
  }

  // The unfold of x as the packed A operand [K, L] of the weight gradient
  // (rows = taps, k = positions): strips of 32 rows, each row L bf16 padded
  // to whole steps, zero past K and past L.
  void to_a(const float* x, Step* dst) {
    int64_t lsteps = chunks / 2, strips = (K + 31) / 32;
    uint16_t* out = reinterpret_cast<uint16_t*>(dst);
    for (int64_t k = 0; k < strips * 32; ++k) {
      Tap t = tap(x, k);
      uint16_t* o = out + k * lsteps * 32;  // strip k / 32, row k % 32: rows are contiguous across strips
      for (int64_t ch = 0; ch < chunks; ++ch)
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 16 * ch), (__m256i)_mm512_cvtneps_pbh(load(t, ch)));
    }
  }
};

}  // namespace

bool conv2d_amx_applies(const Geom2d& g) {
  return g.sh == 1 && g.sw == 1 && g.Ho == g.H && g.Wo == g.W && g.H * g.W < (int64_t(1) << 30) &&
         g.C * g.kh * g.kw < (int64_t(1) << 20);
}

void conv2d_forward_amx(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O, bool relu,
                        bool bf16, float* y, const ConvSampleSink* sink, const ConvSampleSource* source) {
  if (conv2d_amx_direct_applies(g)) return conv2d_forward_amx_direct(x, w, bias, g, O, relu, bf16, y, sink, source);
  SameUnfold unfold(g);
  const int64_t L = unfold.L, K = unfold.K, kp = (K + 31) / 32, mstrips = (O + 31) / 32, nstrips = (L + 31) / 32,
                strip = kp * 32;  // Steps per packed strip
  std::vector<Step> pa(size_t(mstrips * strip));  // w [O, K]: A strips, shared by every sample
  for (int64_t i = 0; i < mstrips; ++i)
    amx::pack_a_rows(w + i * 32 * K, K, std::min<int64_t>(32, O - 32 * i), K, pa.data() + i * strip);
  const bool epilogue = bias || relu || bf16;
  parallel_for(0, g.N, 1, [&](int64_t lo, int64_t hi) {
    static thread_local std::vector<Step> pb;
    static thread_local std::vector<float> ybuf;  // y_n for the sink
    if (pb.size() < size_t(nstrips * strip)) pb.resize(size_t(nstrips * strip));
    if (sink && ybuf.size() < size_t(O * L + kPoolSlack)) ybuf.resize(size_t(O * L + kPoolSlack));
    for (int64_t n = lo; n < hi; ++n) {
      unfold.to_b(source ? (*source)(n) : x + n * g.C * L, pb.data());
      float* yn = sink ? ybuf.data() : y + n * O * L;
      for (int64_t s = 0; s < nstrips; ++s)
        for (int64_t i = 0; i < mstrips; ++i) {
          amx::Epilogue ep{bias ? bias + 32 * i : nullptr, relu, bf16};
          amx::tile_product_32x32(K, pa.data() + i * strip, pb.data() + s * strip, yn + 32 * i * L + 32 * s, L,
                                  false, int(std::min<int64_t>(32, O - 32 * i)),
                                  int(std::min<int64_t>(32, L - 32 * s)), epilogue ? &ep : nullptr);
        }
      if (sink) (*sink)(n, yn);
    }
  });
}

struct AmxWeightGrad::Impl {
  const Geom2d& g;
  int64_t O, CKK, L, lsteps, mstrips, nstrips;
  float* gwt;
  std::optional<SameUnfold> same;  // set when the geometry is "same": x unfolds straight into A
  std::vector<Step> a, b;          // A: unfold [CKK, L] strips; B: gy_n^T [L, O] strips
  Impl(const Geom2d& geom, int64_t o, float* dst)
      : g(geom), O(o), CKK(g.C * g.kh * g.kw), L(g.Ho * g.Wo), lsteps((L + 31) / 32), mstrips((CKK + 31) / 32),
        nstrips((o + 31) / 32), gwt(dst) {
    if (conv2d_amx_applies(g)) same.emplace(g);
    a.resize(size_t(mstrips * 32 * lsteps));
    b.resize(size_t(nstrips * 32 * lsteps));
  }
};

AmxWeightGrad::AmxWeightGrad(const Geom2d& g, int64_t O, float* gwt) : impl_(new Impl(g, O, gwt)) {}
AmxWeightGrad::~AmxWeightGrad() = default;

void AmxWeightGrad::add(const float* gy_n, const float* x_n, const float* col_n) {
  Impl& m = *impl_;
  if (m.same) {
    m.same->to_a(x_n, m.a.data());
  } else {
    for (int64_t i = 0; i < m.mstrips; ++i)
      amx::pack_a_rows(col_n + 32 * i * m.L, m.L, std::min<int64_t>(32, m.CKK - 32 * i), m.L,
                       m.a.data() + i * 32 * m.lsteps);
  }
  // gy_n^T [L, O] is column-major: each column (an output channel) is a run along k.
  amx::pack_b_pairs<32>(MatF{gy_n, 1, m.L}, 0, m.L, 0, m.O, m.lsteps * 16, reinterpret_cast<uint32_t*>(m.b.data()));
  for (int64_t s = 0; s < m.nstrips; ++s)
    for (int64_t i = 0; i < m.mstrips; ++i)
      amx::tile_product_32x32(m.L, m.a.data() + i * 32 * m.lsteps, m.b.data() + s * 32 * m.lsteps,
                              m.gwt + 32 * i * m.O + 32 * s, m.O, true, int(std::min<int64_t>(32, m.CKK - 32 * i)),
                              int(std::min<int64_t>(32, m.O - 32 * s)), nullptr);
}

}  // namespace brisk::kern::cpu
