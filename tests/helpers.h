// Test helpers: closeness with dtype-derived tolerances, a finite-difference
// gradient checker, and seeded random shapes.
#pragma once
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "brisk.h"
#include "kernels/cpu/gemm/sgemm.h"

namespace bt {
using namespace brisk;

// Sets the pool's thread count for one scope and restores the previous one:
// a test that needs n threads must not leave them to the tests after it (the
// sanitizer shards run one thread each, two shards side by side).
struct ThreadCount {
  int prev = get_num_threads();
  explicit ThreadCount(int n) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(prev); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;
};

// The vector sgemm ISAs (avx512, avx2) this CPU has, for kernels that run
// on either (set_sgemm_isa picks one); a WARN "SKIPPED" naming `what` for
// each ISA it lacks.
inline std::vector<const char*> vector_sgemm_isas(const std::string& what) {
  std::vector<const char*> out;
  for (const char* isa : {"avx512", "avx2"}) {
    if (kern::cpu::sgemm_isa_supported(isa)) out.push_back(isa);
    else WARN("SKIPPED: " << what << " on the " << isa << " sgemm: this CPU lacks it");
  }
  return out;
}

// Tolerance for comparing two computations of the same value in `dtype`,
// `terms` = number of products/terms accumulated (error grows ~sqrt(terms)).
inline double dtype_tol(DType t, int64_t terms = 1) {
  double eps = t == DType::f64 ? 1e-15 : t == DType::f32 ? 1.2e-7 : t == DType::bf16 ? 7.8e-3 : 9.8e-4;
  return 16 * eps * std::sqrt(double(std::max<int64_t>(terms, 1)));
}

// Max |a - b| / (1 + |b|) elementwise, after checking shape.
inline double max_rel_err(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto va = a.to_vector(), vb = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    if (std::isnan(va[i]) && std::isnan(vb[i])) continue;
    m = std::max(m, std::abs(va[i] - vb[i]) / (1 + std::abs(vb[i])));
  }
  return m;
}

inline void expect_close(const Tensor& a, const Tensor& b, double tol, const std::string& what = "") {
  INFO(what << " shape " << shape_str(a.shape()));
  REQUIRE(a.shape() == b.shape());
  CHECK(max_rel_err(a, b) <= tol);
}

inline bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), size_t(ca.numel()) * ca.element_size()) == 0;
}

// f64 leaf with values uniform in [lo, hi).
inline Tensor uniform64(const Shape& s, double lo = -1, double hi = 1, uint64_t seed = 1) {
  Generator g(seed);
  return (rand(s, DType::f64, &g) * (hi - lo) + lo).detach().requires_grad_(true);
}

// n floats: standard normals (from the f64 generator seeded `seed`) times
// scale, for kernels called on raw buffers.
inline std::vector<float> normal_floats(int64_t n, uint64_t seed, double scale = 1.0) {
  Generator g(seed);
  std::vector<double> d = randn({n}, {}, &g).to_vector();
  std::vector<float> out(d.size());
  for (size_t i = 0; i < d.size(); ++i) out[i] = float(d[i] * scale);
  return out;
}

// Central finite differences of sum(f(inputs) * r) against autograd, for every
// input that requires grad. r is a fixed random tensor so every output
// element's gradient is exercised with a distinct weight.
inline void gradcheck(const std::string& name, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                      std::vector<Tensor> inputs, double eps = 1e-6, double tol = 1e-6) {
  INFO("gradcheck " << name);
  Tensor out = f(inputs);
  REQUIRE(out.requires_grad());
  Generator gr(99);
  Tensor r = rand(out.shape(), DType::f64, &gr) + 0.5;
  for (auto& x : inputs)
    if (x.requires_grad()) x.set_grad(Tensor());
  sum(out * r).backward();
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor x = inputs[k];
    if (!x.requires_grad()) continue;
    REQUIRE(x.is_contiguous());
    Tensor analytic = x.grad();
    REQUIRE(analytic.defined());
    double* p = x.detach().data_ptr<double>();
    std::vector<double> numeric(size_t(x.numel()));
    NoGradGuard ng;
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = p[i];
      p[i] = orig + eps;
      double fp = sum(f(inputs) * r).item();
      p[i] = orig - eps;
      double fm = sum(f(inputs) * r).item();
      p[i] = orig;
      numeric[size_t(i)] = (fp - fm) / (2 * eps);
    }
    auto va = analytic.to_vector();
    double worst = 0;
    for (size_t i = 0; i < va.size(); ++i)
      worst = std::max(worst, std::abs(va[i] - numeric[i]) / (1 + std::abs(numeric[i])));
    INFO("input " << k << " shape " << shape_str(x.shape()) << " worst rel err " << worst);
    CHECK(worst <= tol);
  }
}

// Random shape of rank in [1, max_rank], dims in [1, max_dim].
inline Shape random_shape(std::mt19937& rng, int max_rank = 3, int max_dim = 4) {
  int rank = std::uniform_int_distribution<int>(1, max_rank)(rng);
  Shape s;
  for (int i = 0; i < rank; ++i) s.push_back(std::uniform_int_distribution<int>(1, max_dim)(rng));
  return s;
}

// A shape that broadcasts against s: some dims set to 1, maybe fewer leading dims.
inline Shape broadcastable(std::mt19937& rng, const Shape& s) {
  Shape b = s;
  for (auto& d : b)
    if (rng() % 3 == 0) d = 1;
  size_t drop = rng() % (b.size() + 1);
  if (drop == b.size() && !b.empty()) drop--;
  return Shape(b.begin() + long(drop), b.end());
}

}  // namespace bt
