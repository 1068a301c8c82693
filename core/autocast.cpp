#include "core/autocast.h"

#include "core/dispatch.h"
#include "core/op_keys.h"

#include <atomic>
#include <cmath>

#include "core/autograd.h"
#include "core/fp8.h"
#include "core/int8.h"
#include "core/ops.h"

namespace brisk {

namespace {
thread_local AutocastPolicy t_policy;

// Per-tensor fp8: scale = fp8_max / amax (1 when amax is 0 or not finite),
// or the cast site's delayed scale when the policy keeps them.
Tensor round_fp8(const Tensor& x, Fp8Format f) {
  if (Fp8SiteScaling* d = t_policy.fp8_delayed; d && t_policy.kind == LowPrecision::fp8)
    return fp8_round(x, f, d->next_scale(x, f));
  double amax = max(abs(x)).item();
  double scale = (amax > 0 && std::isfinite(amax)) ? fp8_max(f) / amax : 1.0;
  return fp8_round(x, f, scale);
}

// int8 per row of x viewed as [size(0), rest].
Tensor round_int8_rows(const Tensor& x) {
  if (x.dim() == 0 || x.numel() == 0) return x;
  Tensor r = x.reshape({x.size(0), -1});
  return dequantize_rows_int8(quantize_rows_int8(r)).reshape(x.shape());
}
}  // namespace

const char* low_precision_name(LowPrecision p) {
  switch (p) {
    case LowPrecision::bf16: return "bf16";
    case LowPrecision::fp16: return "fp16";
    case LowPrecision::fp8: return "fp8";
    case LowPrecision::int8: return "int8";
    default: return "f32";
  }
}

LowPrecision parse_low_precision(const std::string& s) {
  if (s == "bf16") return LowPrecision::bf16;
  if (s == "fp16" || s == "f16") return LowPrecision::fp16;
  if (s == "fp8") return LowPrecision::fp8;
  if (s == "int8") return LowPrecision::int8;
  BRISK_FAIL("unknown low-precision dtype '", s, "' (known: bf16, fp16, fp8, int8)");
}

const AutocastPolicy& autocast_policy() { return t_policy; }

// x's values (plus bias) rounded to the bf16 grid (nearest even), kept in
// f32: one pass ("bf16_round") instead of two casts through a bf16 tensor.
Tensor round_bf16_nearest(const Tensor& x, const Tensor& bias, bool in_place) {
  if (bias.defined())
    BRISK_CHECK(x.dim() >= 1 && bias.shape() == Shape({x.size(-1)}) && bias.dtype() == DType::f32 &&
                    bias.device() == x.device(),
                "round_bf16_nearest: bias ", shape_str(bias.shape()), " (", bias.dtype(), ") does not match x ",
                shape_str(x.shape()), " (f32 [", x.dim() ? x.size(-1) : 0, "] needed)");
  BRISK_CHECK(!in_place || x.is_contiguous(), "round_bf16_nearest: in place needs a contiguous x");
  Tensor xc = x.contiguous();
  Tensor out = in_place ? x : empty(x.shape(), TensorOptions(DType::f32, x.device()));
  Tensor ins[2] = {xc, bias.defined() ? bias.contiguous() : Tensor()};
  Tensor outs[1] = {out};
  std::span<const Tensor> in(ins, bias.defined() ? 2 : 1);
  dispatch(opkey::bf16_round, xc.device(), DType::f32, KernelArgs{in, outs, nullptr});
  return out;
}

namespace {
thread_local bool t_gemm_bf16 = false;
}  // namespace

bool gemm_operands_bf16() { return t_gemm_bf16; }
std::string cpu_bf16_gemm_kernel_answer();  // kernels/cpu/gemm/sgemm.cpp
std::string cpu_bf16_gemm_kernel() { return cpu_bf16_gemm_kernel_answer(); }
GemmBf16Scope::GemmBf16Scope(bool on) : prev_(t_gemm_bf16) { t_gemm_bf16 = on; }
GemmBf16Scope::~GemmBf16Scope() { t_gemm_bf16 = prev_; }

AutocastGuard::AutocastGuard(AutocastPolicy p) : prev_(t_policy), prev_gemm_(t_gemm_bf16) {
  BRISK_CHECK(p.rounding == Rounding::nearest || p.kind == LowPrecision::bf16 || p.kind == LowPrecision::fp16,
              "autocast: stochastic rounding applies to bf16 and fp16, not ", low_precision_name(p.kind));
  t_policy = p;
  t_gemm_bf16 = p.kind == LowPrecision::bf16;
}
AutocastGuard::~AutocastGuard() {
  t_policy = prev_;
  t_gemm_bf16 = prev_gemm_;
}

Tensor round_to_format(const Tensor& x, LowPrecision p, Rounding r, bool gradient, Generator* gen) {
  NoGradGuard ng;
  Tensor xd = x.detach();
  switch (p) {
    case LowPrecision::bf16:
    case LowPrecision::fp16: {
      DType d = p == LowPrecision::bf16 ? DType::bf16 : DType::f16;
      if (p == LowPrecision::bf16 && r == Rounding::nearest && xd.dtype() == DType::f32) return round_bf16_nearest(xd);
      return (r == Rounding::stochastic ? stochastic_round(xd, d, gen) : xd.to(d)).to(x.dtype());
    }
    case LowPrecision::fp8: return round_fp8(xd, gradient ? Fp8Format::e5m2 : Fp8Format::e4m3).to(x.dtype());
    case LowPrecision::int8: return round_int8_rows(xd).to(x.dtype());
    default: return x;
  }
}

Tensor autocast_cast(const Tensor& x, CastRole role) {
  const AutocastPolicy& p = t_policy;
  if (p.kind == LowPrecision::none || !x.defined() || x.dtype() != DType::f32) return x;
  LowPrecision kind = p.kind;
  if (role == CastRole::output) {
    // fp8 GEMMs write a 16-bit result (bf16, as Transformer Engine does);
    // int8 GEMMs rescale their int32 sums into f32.
    if (kind == LowPrecision::int8) return x;
    if (kind == LowPrecision::fp8) kind = LowPrecision::bf16;
  }
  Tensor y = round_to_format(x, kind, p.rounding, false, p.gen);
  Rounding rounding = p.rounding;
  Generator* gen = p.gen;
  // int8: gradients pass straight through (SwitchBack keeps them high precision here)
  if (kind == LowPrecision::int8) return attach_grad(y, "AutocastCastBackward", {x}, [](const Tensor& g) {
    return std::vector<Tensor>{g};
  });
  return attach_grad(y, "AutocastCastBackward", {x}, [kind, rounding, gen](const Tensor& g) {
    return std::vector<Tensor>{round_to_format(g, kind, rounding, true, gen)};
  });
}

Tensor autocast_grad_cast(const Tensor& x) {
  const AutocastPolicy& p = t_policy;
  if (p.kind == LowPrecision::none || !x.defined() || x.dtype() != DType::f32 || !x.requires_grad()) return x;
  LowPrecision kind = p.kind;
  Rounding rounding = p.rounding;
  Generator* gen = p.gen;
  return attach_grad(x.detach(), "AutocastGradCastBackward", {x}, [kind, rounding, gen](const Tensor& g) {
    return std::vector<Tensor>{round_to_format(g, kind, rounding, true, gen)};
  });
}

namespace {
std::atomic<bool> g_fold_casts{true};
}  // namespace
bool autocast_fold_casts() { return g_fold_casts.load(std::memory_order_relaxed); }
void set_autocast_fold_casts(bool on) { g_fold_casts = on; }

}  // namespace brisk
