// f16/bf16 casts against the bit formulas: round to nearest, ties to even.
#include "tests/helpers.h"

using namespace bt;

static float f_of(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

TEST_CASE("dtype: bf16 rounds to nearest even", "[dtype]") {
  // 1.0 = 0x3f800000. bf16 keeps the top 16 bits.
  CHECK(float_to_bf16_bits(1.0f) == 0x3f80);
  CHECK(float_to_bf16_bits(f_of(0x3f808000)) == 0x3f80);  // tie, lower is even: down
  CHECK(float_to_bf16_bits(f_of(0x3f818000)) == 0x3f82);  // tie, lower is odd: up
  CHECK(float_to_bf16_bits(f_of(0x3f808001)) == 0x3f81);  // above half: up
  CHECK(float_to_bf16_bits(f_of(0x3f807fff)) == 0x3f80);  // below half: down
  CHECK(float_to_bf16_bits(-2.0f) == 0xc000);
  CHECK(std::isnan(bf16_bits_to_float(float_to_bf16_bits(NAN))));
  CHECK(std::isinf(bf16_bits_to_float(float_to_bf16_bits(INFINITY))));
  CHECK(float_to_bf16_bits(f_of(0x7f7fffff)) == 0x7f80);  // FLT_MAX rounds to inf
}

// The lane-wise roundings kernels use on values in registers: bit for bit
// the scalar rounding, on a sweep of bit patterns (every 2^12th of the 2^32,
// plus the edges: ties both ways, denormals, FLT_MAX, infinities) and, for
// the full form, NaNs.
TEST_CASE("dtype: bf16 rounding lane by lane equals the scalar rounding", "[dtype]") {
  using V = float __attribute__((vector_size(32)));
  using U = uint32_t __attribute__((vector_size(32)));
  std::vector<uint32_t> bits{0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x00000001, 0x00008000, 0x00018000,
                             0x807fffff, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7f7f8000, 0x00000000};
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4093) bits.push_back(uint32_t(u));
  while (bits.size() % 8) bits.push_back(0x3f800000);
  int64_t checked_not_nan = 0, bad_full = 0, bad_fast = 0;
  uint32_t first_bad = 0;
  for (size_t i = 0; i < bits.size(); i += 8) {
    V v;
    std::memcpy(&v, bits.data() + i, sizeof v);
    V full_v = bf16_rounded_lanes<V, U>(v), fast_v = bf16_rounded_lanes_not_nan<V, U>(v);
    float full[8], fast[8];
    std::memcpy(full, &full_v, sizeof full);
    std::memcpy(fast, &fast_v, sizeof fast);
    for (int l = 0; l < 8; ++l) {
      float x = f_of(bits[i + size_t(l)]), want = bf16_rounded(x);
      bool ok_full = std::memcmp(&full[l], &want, 4) == 0;
      bool ok_fast = std::isnan(x) || std::memcmp(&fast[l], &want, 4) == 0;
      if ((!ok_full || !ok_fast) && bad_full + bad_fast == 0) first_bad = bits[i + size_t(l)];
      bad_full += !ok_full;
      bad_fast += !ok_fast;
      checked_not_nan += !std::isnan(x);
    }
  }
  INFO("first mismatch at bits 0x" << std::hex << first_bad);
  CHECK(bad_full == 0);
  CHECK(bad_fast == 0);
  CHECK(checked_not_nan > 1000000);
}

TEST_CASE("dtype: f16 rounds to nearest even, with subnormals and overflow", "[dtype]") {
  CHECK(float_to_half_bits(1.0f) == 0x3c00);
  CHECK(float_to_half_bits(-2.0f) == 0xc000);
  CHECK(float_to_half_bits(65504.0f) == 0x7bff);  // max normal
  CHECK(float_to_half_bits(65519.0f) == 0x7bff);  // below the rounding boundary
  CHECK(float_to_half_bits(65520.0f) == 0x7c00);  // ties away to inf
  CHECK(float_to_half_bits(1e-8f) == 0x0000);     // underflows to zero
  CHECK(float_to_half_bits(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(float_to_half_bits(std::ldexp(1.5f, -24)) == 0x0002);  // tie -> even (2)
  CHECK(float_to_half_bits(std::ldexp(2.5f, -24)) == 0x0002);  // tie -> even (2)
  CHECK(float_to_half_bits(std::ldexp(1.0f, -14)) == 0x0400);  // smallest normal
  // 1 + 2^-11 is exactly halfway between 1 and 1 + 2^-10: ties to even (1.0)
  CHECK(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  CHECK(float_to_half_bits(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(std::isnan(half_bits_to_float(float_to_half_bits(NAN))));
  CHECK(half_bits_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_bits_to_float(0x7bff) == 65504.0f);
}

TEST_CASE("dtype: every f16 and bf16 value round-trips through f32", "[dtype]") {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    uint16_t h = uint16_t(b);
    float f = half_bits_to_float(h);
    if (!std::isnan(f)) REQUIRE(float_to_half_bits(f) == h);
    float g = bf16_bits_to_float(h);
    if (!std::isnan(g)) REQUIRE(float_to_bf16_bits(g) == h);
  }
}

TEST_CASE("dtype: tensor casts to f16/bf16 match the scalar conversions", "[dtype]") {
  Tensor x = randn({257}) * 100.0;
  Tensor h = x.to(DType::f16), b = x.to(DType::bf16);
  CHECK(h.element_size() == 2);
  auto xv = x.to_vector(), hv = h.to_vector(), bv = b.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) {
    CHECK(hv[i] == half_bits_to_float(float_to_half_bits(float(xv[i]))));
    CHECK(bv[i] == bf16_bits_to_float(float_to_bf16_bits(float(xv[i]))));
  }
  CHECK(dtype_name(DType::bf16) == std::string("bf16"));
  CHECK(dtype_size(DType::i64) == 8);
}
