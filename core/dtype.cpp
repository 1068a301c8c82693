// dtype names, sizes and the f16/bf16 bit conversions (round to nearest even).
#include "core/dtype.h"

#include <cmath>

namespace brisk {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::f64: case DType::i64: return 8;
    case DType::f16: case DType::bf16: return 2;
    case DType::u8: case DType::boolean: return 1;
  }
  BRISK_FAIL("dtype_size: invalid dtype ", int(t));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::boolean: return "bool";
  }
  return "?";
}

static uint32_t bits_of(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

uint16_t float_to_half_bits(float f) {
  uint32_t u = bits_of(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {
    // Result is subnormal (or zero) in f16: value = m * 2^-24 with m < 1024.
    // Let the FPU do RNE: adding 0.5 (2^-1) shifts the bits into place.
    float r = float_of(abs) + 0.5f;
    return uint16_t(sign | uint16_t(bits_of(r) - bits_of(0.5f)));
  }
  // Normal: rebias exponent (127 -> 15), keep 10 mantissa bits, RNE on the 13 dropped.
  uint32_t lsb = (abs >> 13) & 1u;
  abs += 0xc8000fffu + lsb;  // -(112 << 23) + 0xfff + lsb, mod 2^32
  return uint16_t(sign | uint16_t(abs >> 13));
}

float half_bits_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return float_of(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    float v = std::ldexp(float(man), -24);
    return sign ? -v : v;
  }
  return float_of(sign | ((exp + 112) << 23) | (man << 13));
}

}  // namespace brisk
