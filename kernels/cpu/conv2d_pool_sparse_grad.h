// The input and weight gradients of a 3x3 "same" convolution followed by
// its 2x2 max pool (conv2d_pool_fwd), straight from the pooled gradient and
// the window codes, as scatters over the gradient's nonzeros only.
//
// The dense form expands the pooled gradient gq [O, Hq, Wq] to gy [O, H,
// W] (each window's value at its code's position, zeros at the other
// three; nothing at all for a window the fused ReLU zeroed, code 4) and
// convolves it with the flipped weights: 3 of every 4 multiply-adds, and
// with the ReLU about 7 of 8 in the cnn's second layer, multiply zeros.
// Here (the input gradient; the weight gradient below is its mirror) each
// live window value g = gq[o, window] at its position p adds
// g * w[o, c, tap] to gx[c, p + tap - 1] for the 9 taps, 32 input channels
// a step (two 16-lane vectors), into a zero-bordered [H + 2, W + 2, 32]
// plane per sample that is then transposed into gx's NCHW rows.
//
// The sums run over o, then windows, in order: not the dense kernels'
// order, so the values differ from theirs by f32 rounding (the tests
// compare both with the definition). bf16 (autocast's folded casts): g and
// w are taken as their bf16 roundings (their products are exact in f32)
// and gx is rounded, as the dense bf16 kernels do; on AVX512-BF16 the
// multiply-adds are dot products of bf16 operands paired with zero, from
// tables of half the bytes (the f32 form's weights outgrow L1 and wait on
// L2). A window value of zero adds nothing, as in the dense sums; a NaN or
// infinite one reaches the same 9 x C entries there as here. A non-finite
// weight is not handled (0 * inf is NaN in the dense sums, and here the
// zeros are not multiplied): the call returns false and writes nothing,
// and the caller takes a dense kernel. So it does where more than 0.9 of
// the windows are live (the count costs one pass over the codes): the
// scatter's time goes with that share, the dense kernels' does not.
//
// AVX-512 builds on the avx512 sgemm ISA, C a multiple of 16; AVX2 builds
// on the avx2 ISA, C a multiple of 8. conv2d.cpp does not take it for bf16
// on AMX tiles, whose dense products are faster.
// set_conv_pool_sparse(false) (or BRISK_CONV_POOL_SPARSE=0 at start) turns
// it off.
#pragma once
#include <cstdint>

#include "core/kernel_params.h"

namespace brisk::kern::cpu {

bool conv_pool_sparse_enabled();
void set_conv_pool_sparse(bool on);
// Under bf16, whether the scatters multiply with AVX512-BF16 dot products
// where the CPU has them (default) or with the f32 multiply-adds every
// AVX-512 CPU runs; the values are the same (tests run both).
void set_conv_pool_sparse_bf16_dot(bool on);

// Whether conv2d_pool_sparse_input_grad and _weight_grad handle geometry
// g (the convolution's; its pool is 2x2 over the output).
bool conv2d_pool_sparse_input_grad_applies(const Geom2d& g);

// gx [N, C, H, W] = the input gradient of conv(x, w) pooled, from gq [N, O,
// Hq, Wq] and code [N, O, Hq, Wq] (Hq = H / 2, Wq = W / 2); w [O, C, 3, 3].
// false (gx untouched) where w holds a non-finite value or too many windows are live.
bool conv2d_pool_sparse_input_grad(const float* gq, const uint8_t* code, const float* w, const Geom2d& g, int64_t O,
                                   bool bf16, float* gx);

// The weight gradient the same way: each live window value g at position p
// adds g * x_n[c, p + tap - 1] to gw[o, c, tap] (9 taps, 32 channels a
// step, the sums for one o in registers while a sample's live values of o
// are added; x_n copied into a zero-bordered [H + 2, W + 2, 32] plane per
// 32 channels, so a tap's 32 channels are two vector loads), and g to
// gb[o]. Per block of 8 samples a partial, added in block order, so the
// result does not depend on the thread count. Written, not accumulated:
// gw [O, C*9] (bf16: rounded, the gradient of the cast w), gb [O] (null:
// none; bf16: the sum of the rounded values). A non-finite x gives NaN in
// the dense sums (0 * inf) where the scatter multiplies no zeros: it
// returns false, gw and gb untouched (the caller takes a dense kernel), as
// it does past the share of live windows where that is faster.
bool conv2d_pool_sparse_weight_grad(const float* gq, const uint8_t* code, const float* x, const Geom2d& g, int64_t O,
                                    bool bf16, float* gw, float* gb);

// The two on AVX2 (conv2d_pool_sparse_grad_avx2.cpp: 8 channels a pass, f32
// multiply-adds in both precisions), which the two above call when the
// sgemm ISA is avx2; most: the largest share of live windows taken.
bool conv2d_pool_sparse_input_grad_avx2(const float* gq, const uint8_t* code, const float* w, const Geom2d& g,
                                        int64_t O, bool bf16, double most, float* gx);
bool conv2d_pool_sparse_weight_grad_avx2(const float* gq, const uint8_t* code, const float* x, const Geom2d& g,
                                         int64_t O, bool bf16, double most, float* gw, float* gb);

}  // namespace brisk::kern::cpu
