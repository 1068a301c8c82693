// Stochastic rounding to f16 / bf16: x goes to one of its two representable
// neighbours lo <= x <= hi, to hi with probability (x - lo) / (hi - lo), so
// the rounding is unbiased in expectation (E[round(x)] = x). Used for
// low-precision weights that must still feel tiny updates (weight decay,
// small learning rates), where round-to-nearest would drop them.
#include <cmath>

#include "core/dispatch.h"
#include "core/ops.h"
#include "core/rng.h"

namespace brisk {

namespace {

template <class T> struct Bits;
template <> struct Bits<Half> {
  static uint16_t from(float f) { return float_to_half_bits(f); }
  static float to(uint16_t b) { return half_bits_to_float(b); }
};
template <> struct Bits<BFloat16> {
  static uint16_t from(float f) { return float_to_bf16_bits(f); }
  static float to(uint16_t b) { return bf16_bits_to_float(b); }
};

// Neighbour one step up / down in value, for sign-magnitude 16-bit floats.
uint16_t step_up(uint16_t b) { return (b & 0x8000) ? (b == 0x8000 ? 0x0001 : uint16_t(b - 1)) : uint16_t(b + 1); }
uint16_t step_down(uint16_t b) { return (b & 0x8000) ? uint16_t(b + 1) : (b == 0x0000 ? 0x8001 : uint16_t(b - 1)); }

template <class T>
void round_all(const float* x, const float* u, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    uint16_t r = Bits<T>::from(v);  // nearest (even)
    float rv = Bits<T>::to(r);
    if (!std::isfinite(v) || !std::isfinite(rv) || rv == v) {
      out[i].bits = r;  // exact, NaN, or beyond the largest finite value: as nearest
      continue;
    }
    uint16_t lo = rv < v ? r : step_down(r), hi = rv < v ? step_up(r) : r;
    float lv = Bits<T>::to(lo), hv = Bits<T>::to(hi);
    if (!std::isfinite(hv) || !std::isfinite(lv)) {
      out[i].bits = r;
      continue;
    }
    double p_up = (double(v) - double(lv)) / (double(hv) - double(lv));
    out[i].bits = double(u[i]) < p_up ? hi : lo;
  }
}

}  // namespace

Tensor stochastic_round(const Tensor& x, DType to, Generator* gen) {
  check_defined("stochastic_round", x);
  BRISK_CHECK(to == DType::f16 || to == DType::bf16, "op stochastic_round: target dtype must be f16 or bf16, got ",
              to);
  BRISK_CHECK(is_floating(x.dtype()), "op stochastic_round: expected a floating input, got ", x.dtype());
  BRISK_CHECK(x.device().type == DeviceType::cpu, "op stochastic_round: runs on the cpu (no CUDA kernel), got ", x.device());
  Tensor xf = x.detach().to(DType::f32).contiguous();
  Tensor u = rand(x.shape(), DType::f32, gen);  // Philox: same seed, same roundings
  Tensor out = empty(x.shape(), to);
  if (to == DType::f16)
    round_all(xf.data_ptr<float>(), u.data_ptr<float>(), static_cast<Half*>(out.raw_data()), x.numel());
  else
    round_all(xf.data_ptr<float>(), u.data_ptr<float>(), static_cast<BFloat16*>(out.raw_data()), x.numel());
  return out;
}

}  // namespace brisk
