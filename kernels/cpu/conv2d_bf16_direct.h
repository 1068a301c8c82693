// The bf16 convolution forward on AVX512-BF16 dot products with no unfold
// (kernels/cpu/conv2d_bf16_direct.cpp), for stride-1 geometries under bf16
// autocast where bf16_gemm_kernel() is "avx512bf16". Also the input
// gradient's path: conv2d.cpp computes a stride-1 input gradient as a
// forward convolution (w flipped, its channel axes swapped).
//
// An implicit GEMM: y_n^T [positions, O] = X [positions, (c, tap)] @ w^T,
// where row q of X is read straight from a padded copy of x_n whose channel
// pairs (c, c + 1) are interleaved as the (k, k + 1) pairs vdpbf16ps takes:
// at tap (i, j) the pair for output position (h, w) sits at a fixed offset
// from position (h, w)'s own, so each micro-tile row is a pointer, and a
// k step is one broadcast per row. The GEMM path's per-sample unfold into
// f32 strips and its conversion pass are gone.
#pragma once
#include <cstdint>
#include <memory>

#include "core/kernel_params.h"
#include "kernels/cpu/conv2d_sample.h"

namespace brisk::kern::cpu {

// Whether conv2d_forward_bf16_direct handles geometry g (integer checks
// only: the caller checks that the AVX512-BF16 kernel is the active bf16 GEMM).
inline bool conv2d_bf16_direct_applies(const Geom2d& g) {
  constexpr int64_t kMax = int64_t(1) << 28;  // keeps every index below in range of its type
  return g.sh == 1 && g.sw == 1 && g.kh * g.kw > 1 && g.ph >= 0 && g.pw >= 0 && g.dh >= 1 && g.dw >= 1 &&
         g.Ho == g.H + 2 * g.ph - g.dh * (g.kh - 1) && g.Wo == g.W + 2 * g.pw - g.dw * (g.kw - 1) && g.Ho > 0 &&
         g.Wo > 0 && g.C > 0 && (g.H + 2 * g.ph) * (g.W + 2 * g.pw) * (g.C + 1) < kMax &&
         g.C * g.kh * g.kw < kMax;
}

// y [N, O, Ho*Wo] = (relu)(conv(x, w) + bias) per sample, rounded to bf16
// when bf16, on bf16 roundings of x and w (nearest even) with f32 sums:
// the bf16 GEMM path's values up to the order of the sums (pairs of
// channels first, then taps, then channel pairs). w is [O, C*kh*kw]. With a
// sink, y is not written: each y_n goes to the sink from a per-thread buffer
// (kPoolSlack floats of room after it). With a source or a pooled input, x
// is not read.
void conv2d_forward_bf16_direct(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                                bool relu, bool bf16, float* y, const ConvSampleSink* sink = nullptr,
                                const ConvSampleSource* source = nullptr, const PooledInput* pooled = nullptr);

// conv2d_forward_bf16_direct's output pooled as conv2d_pool_fwd pools it
// (kernel_params.h): y [N, O, Ho/2, Wo/2] and the window codes, each
// window's 4 outputs rounded (bf16), pooled and ReLU'd (relu) in registers,
// with no full-size output: a tile's rows are whole windows (two, or one
// output row of up to 14 positions pooled against the row above it). The same
// values and codes as the forward followed by max_pool_2x2 and relu_pooled.
// Ho, Wo >= 2.
void conv2d_pool_forward_bf16_direct(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                                     bool relu, bool bf16, float* y, uint8_t* code);

// Whether Bf16DirectWeightGrad handles g: conv2d_bf16_direct_applies, and
// output rows of even width (its k pairs are neighbouring positions of a row).
inline bool conv2d_bf16_direct_wgrad_applies(const Geom2d& g) {
  return conv2d_bf16_direct_applies(g) && g.Wo % 2 == 0;
}

// The weight gradient the same way: gw [O, C*kh*kw] += sum_n gy_n [O, L] @
// unfold(x_n)^T, as gw^T = X^T @ gy^T with K = positions, where the pair
// (k, k + 1) is two neighbouring positions of an output row: a row (c, tap)
// of X^T is a pointer into a padded bf16 copy of x_n, and a k step is one
// 32-bit broadcast from it; gy_n^T is packed into pairs. The samples added
// before finish() are one product (K = samples * L) with the accumulators
// in registers. Rounds x and gy to bf16 (nearest even) and sums in f32, as
// the bf16 GEMM does. One object per thread; at most `samples` add() calls.
class Bf16DirectWeightGrad {
 public:
  Bf16DirectWeightGrad(const Geom2d& g, int64_t O, int64_t samples);
  ~Bf16DirectWeightGrad();
  void add(const float* gy_n, const float* x_n);  // gy_n [O, Ho*Wo], x_n [C, H, W]
  // The same for gy_n the expansion of a pooled gradient gq_n [O, Hq, Wq] by
  // its window codes cq_n (PooledInput's rule; 2 Hq <= Ho, 2 Wq == Wo),
  // which is not formed. With gb: gb[o] += sum of channel o of the rounded
  // gy_n, added in the order conv2d.cpp's sum16<true> adds the expanded row
  // (16 lanes by position, the tail, the lanes in order), so that both
  // forms give the same bits.
  void add_pooled(const float* gq_n, const uint8_t* cq_n, int64_t Hq, int64_t Wq, const float* x_n, float* gb);
  void finish(float* gw);                         // gw [O, C*kh*kw] += the added samples' sum

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brisk::kern::cpu
