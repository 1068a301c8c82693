// Optimized "fp8_round" (contract in core/kernel_params.h): the fp8 value grid
// by exponent arithmetic instead of encoding and decoding each value. For
// |a| = |x·scale| (saturated at the format's max) with exponent e (at least
// the smallest normal exponent, so subnormals share its quantum), the grid
// step is 2^(e - mantissa bits); rounding |a| / step to the nearest integer
// (ties to even) and scaling back is exact, as all factors are powers of two.
// Threaded over the pool; autocast's fp8 runs it on every tensor it casts.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp8.h"
#include "core/thread_pool.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

bool fp8_round(const KernelArgs& args) {
  const auto& p = *static_cast<const Fp8Params*>(args.params);
  auto f = Fp8Format(p.format);
  double scale = p.scale;
  const int min_e = 1 - fp8_bias(f), mbits = fp8_mantissa_bits(f);
  const float maxv = float(fp8_max(f));
  const float* x = ptr<float>(args.in[0]);
  float* o = ptr<float>(args.out[0]);
  parallel_for(0, args.out[0].numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float a = float(double(x[i]) * scale);  // as fp8_quantize
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
  return true;
}

void register_fp8() {
  register_kernel("fp8_round", DeviceType::cpu, DType::f32, "cpu", backend_priority::native, &fp8_round);
}

}  // namespace brisk::kern::cpu
