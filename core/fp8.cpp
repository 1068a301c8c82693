// fp8 casts and delayed scaling (see fp8.h).
#include "core/fp8.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/kernel_params.h"
#include "core/op_keys.h"
#include "core/ops.h"

namespace brisk {

namespace {
struct Spec {
  int ebits, mbits, bias;
  double maxv;
};
Spec spec(Fp8Format f) { return f == Fp8Format::e4m3 ? Spec{4, 3, 7, 448.0} : Spec{5, 2, 15, 57344.0}; }
}  // namespace

double fp8_max(Fp8Format f) { return spec(f).maxv; }
int fp8_mantissa_bits(Fp8Format f) { return spec(f).mbits; }
int fp8_bias(Fp8Format f) { return spec(f).bias; }
const char* fp8_name(Fp8Format f) { return f == Fp8Format::e4m3 ? "e4m3" : "e5m2"; }

uint8_t fp8_encode(float v, Fp8Format f) {
  Spec s = spec(f);
  if (std::isnan(v)) return 0x7F;  // E4M3: S.1111.111; E5M2: S.11111.11 (both NaN)
  uint8_t sign = std::signbit(v) ? 0x80 : 0x00;
  double a = std::min(std::abs(double(v)), s.maxv);  // saturate (infinities too)
  if (a == 0) return sign;
  int min_e = 1 - s.bias;  // smallest normal exponent
  int e = std::ilogb(a);
  double quantum = std::ldexp(1.0, std::max(e, min_e) - s.mbits);
  double r = std::nearbyint(a / quantum) * quantum;  // ties to even (default rounding mode)
  r = std::min(r, s.maxv);
  if (r == 0) return sign;
  int er = std::ilogb(r);
  if (er < min_e) {  // subnormal: exponent field 0
    int m = int(std::lround(r / std::ldexp(1.0, min_e - s.mbits)));
    return uint8_t(sign | m);
  }
  int m = int(std::lround((r / std::ldexp(1.0, er) - 1.0) * double(1 << s.mbits)));
  return uint8_t(sign | ((er + s.bias) << s.mbits) | m);
}

float fp8_decode(uint8_t code, Fp8Format f) {
  Spec s = spec(f);
  bool neg = code & 0x80;
  int ef = (code >> s.mbits) & ((1 << s.ebits) - 1), m = code & ((1 << s.mbits) - 1);
  double v;
  if (f == Fp8Format::e4m3 && ef == 15 && m == 7) return NAN;
  if (f == Fp8Format::e5m2 && ef == 31) return m ? NAN : (neg ? -INFINITY : INFINITY);
  if (ef == 0)
    v = std::ldexp(double(m), 1 - s.bias - s.mbits);
  else
    v = std::ldexp(1.0 + double(m) / double(1 << s.mbits), ef - s.bias);
  return float(neg ? -v : v);
}

// The op layer: checks, then the fp8 kernels (kernels/cpu/ref/fp8.cpp, kernels/cpu/fp8.cpp).
namespace {
Tensor run_fp8(const char* op, const Tensor& in, DType out_dtype, Fp8Format f, double scale) {
  Tensor out = empty(in.shape(), out_dtype);
  Fp8Params p{uint8_t(f), scale};
  Tensor ins[1] = {in};
  Tensor outs[1] = {out};
  dispatch(op, Device(DeviceType::cpu), in.dtype(), KernelArgs{ins, outs, &p});
  return out;
}
void check_scale(const char* op, double scale) {
  BRISK_CHECK(scale > 0 && std::isfinite(scale), "op ", op, ": scale must be finite and > 0, got ", scale);
}
}  // namespace

Tensor fp8_quantize(const Tensor& x, Fp8Format f, double scale) {
  check_defined("fp8_quantize", x);
  BRISK_CHECK(is_floating(x.dtype()), "op fp8_quantize: expected a floating input, got ", x.dtype());
  check_scale("fp8_quantize", scale);
  return run_fp8(opkey::fp8_quantize, x.detach().to(DType::f32).contiguous(), DType::u8, f, scale);
}

Tensor fp8_dequantize(const Tensor& codes, Fp8Format f, double scale) {
  check_defined("fp8_dequantize", codes);
  BRISK_CHECK(codes.dtype() == DType::u8, "op fp8_dequantize: expected u8 codes, got ", codes.dtype());
  check_scale("fp8_dequantize", scale);
  return run_fp8(opkey::fp8_dequantize, codes.contiguous(), DType::f32, f, scale);
}

Tensor fp8_round(const Tensor& x, Fp8Format f, double scale) {
  check_defined("fp8_round", x);
  BRISK_CHECK(is_floating(x.dtype()), "op fp8_round: expected a floating input, got ", x.dtype());
  check_scale("fp8_round", scale);
  return run_fp8(opkey::fp8_round, x.detach().to(DType::f32).contiguous(), DType::f32, f, scale);
}

Fp8DelayedScaling::Fp8DelayedScaling(Fp8Format f, int history, int margin) : f_(f), len_(history), margin_(margin) {
  BRISK_CHECK(history >= 1, "Fp8DelayedScaling: history must be >= 1, got ", history);
  BRISK_CHECK(margin >= 0, "Fp8DelayedScaling: margin must be >= 0, got ", margin);
}

void Fp8DelayedScaling::update(const Tensor& x) { record(max(abs(x.detach().to(DType::f64))).item()); }

void Fp8DelayedScaling::record(double amax) {
  hist_.push_back(amax);
  if (int(hist_.size()) > len_) hist_.pop_front();
  double m = 0;
  bool finite = true;
  for (double a : hist_) {
    finite &= std::isfinite(a);
    m = std::max(m, a);
  }
  if (m > 0 && finite) scale_ = fp8_max(f_) * std::ldexp(1.0, -margin_) / m;  // else: keep the old scale
}

void Fp8DelayedScaling::set_state(const std::vector<double>& history, double scale) {
  BRISK_CHECK(int(history.size()) <= len_, "Fp8DelayedScaling: ", history.size(), " amax entries exceed the history of ",
              len_);
  BRISK_CHECK(scale > 0 && std::isfinite(scale), "Fp8DelayedScaling: scale must be finite and > 0, got ", scale);
  hist_.assign(history.begin(), history.end());
  scale_ = scale;
}

Fp8SiteScaling::Fp8SiteScaling(int history, int margin) : len_(history), margin_(margin) {
  Fp8DelayedScaling check(Fp8Format::e4m3, history, margin);  // validates the arguments
}

double Fp8SiteScaling::next_scale(const Tensor& x, Fp8Format f) {
  double amax = max(abs(x.detach().to(DType::f64))).item();
  if (next_ == sites_.size()) sites_.emplace_back(f, len_, margin_);
  Fp8DelayedScaling& s = sites_[next_++];
  BRISK_CHECK(s.format() == f, "fp8 delayed scaling: cast site ", next_ - 1, " was ", fp8_name(s.format()),
              " and is now ", fp8_name(f), ": the step's casts changed order (a model whose forward differs between "
              "steps needs scaling=current)");
  double scale = s.amax_history().empty() ? ((amax > 0 && std::isfinite(amax)) ? fp8_max(f) / amax : 1.0) : s.scale();
  s.record(amax);
  return scale;
}

std::vector<Fp8SiteScaling::SiteState> Fp8SiteScaling::state() const {
  std::vector<SiteState> out;
  for (auto& s : sites_)
    out.push_back({s.format(), std::vector<double>(s.amax_history().begin(), s.amax_history().end()), s.scale()});
  return out;
}

void Fp8SiteScaling::load_state(const std::vector<SiteState>& st) {
  sites_.clear();
  for (auto& s : st) {
    sites_.emplace_back(s.format, len_, margin_);
    sites_.back().set_state(s.history, s.scale);
  }
  next_ = 0;
}

}  // namespace brisk
