// fp8 casts and delayed scaling (see fp8.h).
#include "core/fp8.h"

#include <cstring>

#include "core/thread_pool.h"

#include <cmath>

#include "core/error.h"
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

Tensor fp8_quantize(const Tensor& x, Fp8Format f, double scale) {
  check_defined("fp8_quantize", x);
  BRISK_CHECK(is_floating(x.dtype()), "op fp8_quantize: expected a floating input, got ", x.dtype());
  BRISK_CHECK(scale > 0 && std::isfinite(scale), "op fp8_quantize: scale must be finite and > 0, got ", scale);
  Tensor xf = x.detach().to(DType::f32).contiguous();
  Tensor out = empty(x.shape(), DType::u8);
  const float* p = xf.data_ptr<float>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < x.numel(); ++i) o[i] = fp8_encode(float(double(p[i]) * scale), f);
  return out;
}

Tensor fp8_dequantize(const Tensor& codes, Fp8Format f, double scale) {
  check_defined("fp8_dequantize", codes);
  BRISK_CHECK(codes.dtype() == DType::u8, "op fp8_dequantize: expected u8 codes, got ", codes.dtype());
  BRISK_CHECK(scale > 0 && std::isfinite(scale), "op fp8_dequantize: scale must be finite and > 0, got ", scale);
  Tensor c = codes.contiguous();
  Tensor out = empty(codes.shape(), DType::f32);
  const uint8_t* p = c.data_ptr<uint8_t>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < codes.numel(); ++i) o[i] = float(double(fp8_decode(p[i], f)) / scale);
  return out;
}

Tensor fp8_round(const Tensor& x, Fp8Format f, double scale) {
  check_defined("fp8_round", x);
  BRISK_CHECK(is_floating(x.dtype()), "op fp8_round: expected a floating input, got ", x.dtype());
  BRISK_CHECK(scale > 0 && std::isfinite(scale), "op fp8_round: scale must be finite and > 0, got ", scale);
  Spec sp = spec(f);
  const int min_e = 1 - sp.bias, mbits = sp.mbits;
  const float maxv = float(sp.maxv);
  Tensor xf = x.detach().to(DType::f32).contiguous();
  Tensor out = empty(x.shape(), DType::f32);
  const float* p = xf.data_ptr<float>();
  float* o = out.data_ptr<float>();
  parallel_for(0, x.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float a = float(double(p[i]) * scale);  // as fp8_quantize
      if (std::isnan(a)) {
        o[i] = NAN;
        continue;
      }
      float m = std::min(std::fabs(a), maxv);  // saturate (infinities too)
      uint32_t u;
      std::memcpy(&u, &m, 4);
      int e = std::max(int((u >> 23) & 0xff) - 127, min_e);  // float subnormals: below min_e anyway
      uint32_t qb = uint32_t(e - mbits + 127) << 23, ib = uint32_t(mbits - e + 127) << 23;
      float quantum, inv;
      std::memcpy(&quantum, &qb, 4);
      std::memcpy(&inv, &ib, 4);
      float r = std::min(std::nearbyint(m * inv) * quantum, maxv);  // exact power-of-two scalings
      r = std::signbit(a) ? -r : r;
      o[i] = float(double(r) / scale);  // as fp8_dequantize
    }
  });
  return out;
}

Fp8DelayedScaling::Fp8DelayedScaling(Fp8Format f, int history, int margin) : f_(f), len_(history), margin_(margin) {
  BRISK_CHECK(history >= 1, "Fp8DelayedScaling: history must be >= 1, got ", history);
  BRISK_CHECK(margin >= 0, "Fp8DelayedScaling: margin must be >= 0, got ", margin);
}

void Fp8DelayedScaling::update(const Tensor& x) {
  double amax = max(abs(x.detach().to(DType::f64))).item();
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

}  // namespace brisk
