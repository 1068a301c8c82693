// Element types. f16/bf16 are storage types with round-to-nearest-even casts;
// elementwise and GEMM kernels take them directly, everything else computes
// in f32 under autocast (core/autocast.h).
#pragma once
#include <cstdint>
#include <type_traits>
#include <cstring>
#include <ostream>

#include "core/error.h"

namespace brisk {

enum class DType : uint8_t { f32, f64, f16, bf16, i32, i64, u8, boolean };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
inline bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::f16 || t == DType::bf16;
}
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// Bit-level conversions. float -> 16 bit rounds to nearest, ties to even;
// NaN stays NaN (quiet), overflow goes to inf as IEEE prescribes.
uint16_t float_to_half_bits(float f);
float half_bits_to_float(uint16_t h);
// bf16 is the top half of an f32: inline, so kernels over bf16 storage
// vectorize (memory-bound ops then move half the bytes of f32).
inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN: keep sign, force quiet
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return uint16_t(u >> 16);
}
inline float bf16_bits_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// f rounded to bf16 (nearest even; NaN stays a quiet NaN), as an f32.
inline float bf16_rounded(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }
// dst[i] = bf16_rounded(src[i]) for i < n (dst may be src): both conversions
// inline, so the loop vectorizes.
inline void bf16_rounded(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_rounded(src[i]);
}
// The same rounding lane by lane on a GCC vector of f32 (V: __m256, or any
// float __attribute__((vector_size(...))); U: the uint32_t vector of its
// size), for kernels that round values they already hold in registers.
template <class V, class U>
inline V bf16_rounded_lanes(V v) {
  U u;
  std::memcpy(&u, &v, sizeof u);
  U nan = (U)((u & 0x7fffffffu) > 0x7f800000u);
  U r = ((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u & ~nan) | ((u | 0x00400000u) & 0xffff0000u & nan);
  std::memcpy(&v, &r, sizeof v);
  return v;
}
// The same for lanes known not to be NaN (finite or infinite): the NaN
// rule's six operations dropped, the same bits otherwise.
template <class V, class U>
inline V bf16_rounded_lanes_not_nan(V v) {
  U u;
  std::memcpy(&u, &v, sizeof u);
  U r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&v, &r, sizeof v);
  return v;
}

struct Half {
  uint16_t bits = 0;
  Half() = default;
  Half(float f) : bits(float_to_half_bits(f)) {}  // NOLINT: implicit like c10::Half
  operator float() const { return half_bits_to_float(bits); }
};
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float f) : bits(float_to_bf16_bits(f)) {}  // NOLINT
  operator float() const { return bf16_bits_to_float(bits); }
};

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<Half> { static constexpr DType value = DType::f16; };
template <> struct DTypeOf<BFloat16> { static constexpr DType value = DType::bf16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::i64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::boolean; };

// visit_dtype(t, [&](auto tag){ using T = typename decltype(tag)::type; ... })
template <class T> struct TypeTag { using type = T; };

template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(TypeTag<float>{});
    case DType::f64: return f(TypeTag<double>{});
    case DType::f16: return f(TypeTag<Half>{});
    case DType::bf16: return f(TypeTag<BFloat16>{});
    case DType::i32: return f(TypeTag<int32_t>{});
    case DType::i64: return f(TypeTag<int64_t>{});
    case DType::u8: return f(TypeTag<uint8_t>{});
    case DType::boolean: return f(TypeTag<bool>{});
  }
  BRISK_FAIL("visit_dtype: invalid dtype ", int(t));
}

// Convert any element type to/from double (the ref kernels' common currency).
template <class T> inline double to_double(T v) { return static_cast<double>(v); }
template <> inline double to_double(Half v) { return float(v); }
template <> inline double to_double(BFloat16 v) { return float(v); }
// To an integer type: truncate toward zero through int64, then wrap modulo
// the type's range (what x86's conversions give for in-range values), with
// NaN -> 0 and values beyond int64 clamped: a plain cast of an out-of-range
// double is undefined behaviour.
template <class T> inline T from_double(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (v != v) return T(0);
    if (v >= 9223372036854775807.0) return static_cast<T>(INT64_MAX);
    if (v <= -9223372036854775808.0) return static_cast<T>(INT64_MIN);
    return static_cast<T>(static_cast<int64_t>(v));
  } else {
    return static_cast<T>(v);
  }
}
template <> inline Half from_double<Half>(double v) { return Half(float(v)); }
template <> inline BFloat16 from_double<BFloat16>(double v) { return BFloat16(float(v)); }
template <> inline bool from_double<bool>(double v) { return v != 0.0; }

}  // namespace brisk
