// Autocast: a thread-local policy under which matmul-like ops (linear,
// conv2d) compute in a low-precision format, while everything else
// (reductions, softmax, norms, losses, the optimizer) stays f32:
//   AutocastGuard ac({LowPrecision::bf16});
//   Tensor y = model.forward(x);  // linear / conv2d inputs and outputs in bf16
// Tensors stay in f32 storage holding values of the low format (under bf16
// autocast the f32 GEMM, told so by gemm_operands_bf16(), feeds those values
// to AVX512-BF16 dot products where the CPU has them; fp8 and fp16 are
// emulated). That is numerically exact for
// bf16/f16: a bf16 x bf16 product fits an f32 exactly, so an f32 GEMM over
// bf16 values is a bf16-input GEMM with f32 accumulation. Rounding happens
// where a real low-precision run stores a tensor: the op's inputs (activations
// and the f32 master weights, cast per step), its output, and the gradients
// flowing back through those (a low-precision tensor's gradient is low
// precision), so backward GEMMs see low-precision operands too.
//   bf16, fp16: round to nearest even (or stochastically, rounding=stochastic);
//     fp16 overflows to inf past 65504 and underflows below 2^-24, which is
//     what the loss scaler is for.
//   fp8: forward tensors in E4M3, gradients in E5M2 (the usual hybrid), each
//     scaled per tensor by fp8_max / amax of that tensor ("current" scaling),
//     or, when the policy holds an Fp8SiteScaling, by the amax history of
//     that cast site over earlier steps ("delayed" scaling, core/fp8.h).
//   int8: linear layers run SwitchBack-style through int8 GEMMs
//     (nn::functional::int8_linear: forward and input gradient in int8 with
//     per-row scales, the weight gradient in f32); conv2d inputs and weights
//     are quantized per row (sample / output channel) with gradients passed
//     straight through.
#pragma once
#include "core/fp8.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace brisk {

enum class LowPrecision { none, bf16, fp16, fp8, int8 };
enum class Rounding { nearest, stochastic };

struct AutocastPolicy {
  LowPrecision kind = LowPrecision::none;
  Rounding rounding = Rounding::nearest;  // stochastic: bf16 / fp16 only
  Generator* gen = nullptr;               // for stochastic rounding (default generator if null)
  Fp8SiteScaling* fp8_delayed = nullptr;  // fp8: delayed per-site scaling (core/fp8.h); null = current scaling
};

const char* low_precision_name(LowPrecision p);
LowPrecision parse_low_precision(const std::string& s);  // bf16|fp16|fp8|int8; throws naming the known ones

const AutocastPolicy& autocast_policy();  // this thread's; kind none = off
inline bool autocast_enabled() { return autocast_policy().kind != LowPrecision::none; }

// Sets the policy for the guard's lifetime (restoring the previous one).
// GEMMs on this thread take bf16 operands (rounded while packing, multiplied
// with AVX512-BF16 dot products where the CPU has them: kernels/cpu/gemm).
// On while a bf16 AutocastGuard is alive (forward and backward of a step run
// under the precision method's guard) and inside the autocast branches of
// linear and conv2d, whose operands are bf16 values by then.
bool gemm_operands_bf16();
// The kernel that multiplies bf16 autocast's GEMM operands in bf16 on this
// CPU ("amx" or "avx512bf16"), or "" where none can (no AVX512-BF16, or the
// f32 GEMM held to AVX2 by BRISK_SGEMM_ISA): there the products stay f32
// over bf16 values, bf16's numerics at f32's speed plus the casts. Answered
// by the CPU kernels (kernels/cpu/gemm/sgemm.cpp), as they register.
std::string cpu_bf16_gemm_kernel();
class GemmBf16Scope {
 public:
  explicit GemmBf16Scope(bool on);
  ~GemmBf16Scope();
  GemmBf16Scope(const GemmBf16Scope&) = delete;
  GemmBf16Scope& operator=(const GemmBf16Scope&) = delete;

 private:
  bool prev_;
};

class AutocastGuard {
 public:
  explicit AutocastGuard(AutocastPolicy p);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  AutocastPolicy prev_;
  bool prev_gemm_;
};

// An op's output is stored in bf16 under fp8 (the GEMM's 16-bit result) and
// left in f32 under int8 (int32 sums rescaled); inputs and weights take the
// policy's format.
enum class CastRole { activation, weight, output };

// x (f32) rounded to the policy's format, differentiably: the gradient is
// rounded to the gradient format on its way back (int8: passed straight
// through). Returns x unchanged when autocast is off or x is not f32.
Tensor autocast_cast(const Tensor& x, CastRole role);

// x unchanged, with the gradient rounded on its way back as autocast_cast's
// would be: for an operand whose forward rounding a kernel does itself (the
// bf16 GEMM rounds while packing; ConvParams::bf16). Returns x when autocast is
// off, x is not f32 or x does not require grad.
Tensor autocast_grad_cast(const Tensor& x);

// Whether kernels may fold autocast's bf16 casts in (conv2d where the bf16
// GEMM is active, linear on the CPU's native GEMM): on by default; off
// makes every cast a separate rounding pass (tests compare the two,
// benchmarks measure the difference).
bool autocast_fold_casts();
void set_autocast_fold_casts(bool on);

// The rounding itself, no autograd: x's values in format p (f32 storage).
Tensor round_to_format(const Tensor& x, LowPrecision p, Rounding r, bool gradient, Generator* gen = nullptr);
// x + bias rounded to bf16 (nearest even), f32 storage, in one pass, no
// autograd. x f32; bias undefined (x alone) or f32 [x.size(-1)]. In place
// (into x, which must then be contiguous) when in_place.
Tensor round_bf16_nearest(const Tensor& x, const Tensor& bias = Tensor(), bool in_place = false);

}  // namespace brisk
