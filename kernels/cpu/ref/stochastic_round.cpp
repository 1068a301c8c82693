// Reference "stochastic_round" (contract in core/kernel_params.h): x goes to
// one of its two representable f16/bf16 neighbours lo <= x <= hi, to hi when
// u < (x - lo) / (hi - lo), so the rounding is unbiased in expectation.
#include <cmath>

#include "kernels/strided.h"

namespace brisk::kern::ref {

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

bool stochastic_round(const KernelArgs& a) {
  const float *x = ptr<float>(a.in[0]), *u = ptr<float>(a.in[1]);
  int64_t n = a.out[0].numel();
  if (a.out[0].dtype() == DType::f16) round_all(x, u, ptr<Half>(a.out[0]), n);
  else round_all(x, u, ptr<BFloat16>(a.out[0]), n);
  return true;
}

void register_stochastic_round() {
  register_kernel("stochastic_round", DeviceType::cpu, DType::f32, "ref", backend_priority::ref, &stochastic_round);
}

}  // namespace brisk::kern::ref
