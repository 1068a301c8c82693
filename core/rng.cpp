// Philox4x32-10 (Salmon et al., SC'11) and the random factories built on it.
#include "core/rng.h"

#include <cmath>

#include "core/thread_pool.h"

namespace brisk {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = uint64_t(M0) * c[0];
    uint64_t p1 = uint64_t(M1) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1],
         uint32_t(p0)};
    k[0] += W0;
    k[1] += W1;
  }
  return c;
}

std::array<uint32_t, 4> Generator::block(uint64_t idx) const {
  return philox4x32({uint32_t(idx), uint32_t(idx >> 32), 0u, 0u},
                    {uint32_t(seed_), uint32_t(seed_ >> 32)});
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

// 24 (float) or 53 (double) random bits -> [0, 1).
static double u01(uint32_t a, uint32_t b) {
  return double((uint64_t(a) << 21) ^ (uint64_t(b) >> 11)) * 0x1.0p-53;
}

template <class Fill>
static Tensor random_fill(const Shape& shape, TensorOptions opt, Generator* gen, int per_block,
                          Fill fill) {
  BRISK_CHECK(opt.device.type != DeviceType::meta, "random factories: meta tensors hold no data (device ",
              opt.device, ")");
  Generator& g = gen ? *gen : default_generator();
  Tensor out = empty(shape, TensorOptions(DType::f64));
  int64_t n = out.numel();
  uint64_t nblocks = uint64_t((n + per_block - 1) / per_block);
  uint64_t base = g.reserve(nblocks);
  double* p = out.data_ptr<double>();
  parallel_for(0, int64_t(nblocks), 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) fill(g.block(base + uint64_t(b)), p, b, n);
  });
  Tensor r = out.to(opt.dtype);
  // Drawn on the cpu and copied: a seed gives the same values on every device.
  if (opt.device.type != DeviceType::cpu) r = r.to(opt.device);
  if (opt.requires_grad) r.requires_grad_(true);
  return r;
}

Tensor rand(const Shape& shape, TensorOptions opt, Generator* gen) {
  BRISK_CHECK(is_floating(opt.dtype), "rand: dtype must be floating, got ", opt.dtype);
  return random_fill(shape, opt, gen, 2, [](std::array<uint32_t, 4> w, double* p, int64_t b, int64_t n) {
    for (int j = 0; j < 2 && 2 * b + j < n; ++j) p[2 * b + j] = u01(w[2 * j], w[2 * j + 1]);
  });
}

Tensor randn(const Shape& shape, TensorOptions opt, Generator* gen) {
  BRISK_CHECK(is_floating(opt.dtype), "randn: dtype must be floating, got ", opt.dtype);
  return random_fill(shape, opt, gen, 2, [](std::array<uint32_t, 4> w, double* p, int64_t b, int64_t n) {
    double u1 = 1.0 - u01(w[0], w[1]);  // (0, 1]: log is finite
    double u2 = u01(w[2], w[3]);
    double r = std::sqrt(-2.0 * std::log(u1));
    if (2 * b < n) p[2 * b] = r * std::cos(2 * M_PI * u2);
    if (2 * b + 1 < n) p[2 * b + 1] = r * std::sin(2 * M_PI * u2);
  });
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opt, Generator* gen) {
  BRISK_CHECK(high > low, "randint: need high > low, got low=", low, " high=", high);
  double span = double(high - low);
  return random_fill(shape, opt, gen, 2, [=](std::array<uint32_t, 4> w, double* p, int64_t b, int64_t n) {
    for (int j = 0; j < 2 && 2 * b + j < n; ++j)
      p[2 * b + j] = double(low) + std::floor(u01(w[2 * j], w[2 * j + 1]) * span);
  });
}

Tensor randperm(int64_t n, Generator* gen) {
  BRISK_CHECK(n >= 0, "randperm: n must be >= 0, got ", n);
  Generator& g = gen ? *gen : default_generator();
  Tensor out = arange(n);
  int64_t* p = out.data_ptr<int64_t>();
  uint64_t base = g.reserve(uint64_t(n));
  for (int64_t i = n - 1; i > 0; --i) {
    auto w = g.block(base + uint64_t(i));
    int64_t j = int64_t(u01(w[0], w[1]) * double(i + 1));
    std::swap(p[i], p[j]);
  }
  return out;
}

}  // namespace brisk
