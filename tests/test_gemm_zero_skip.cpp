// Exact zero skipping in the f32 sgemm (kernels/cpu/gemm/zero_skip.h), on
// every ISA and avx512 tile this CPU runs: with skipping on, sgemm gives the
// bits it gives with skipping off, both match the f64 reference, and the
// multiply-adds it reports left out are exactly those of the A strips'
// all-zero k, counted here from A itself; a non-finite B or a NaN in A
// still makes C NaN where the dense product does.
#include <cmath>
#include <cstring>

#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"

using namespace bt;
using brisk::kern::cpu::GemmEpilogue;
using brisk::kern::cpu::MatF;
namespace kc = brisk::kern::cpu;

namespace {

struct Guard {  // restores the automatic choices even when a CHECK fails
  ~Guard() {
    kc::set_sgemm_isa("auto");
    kc::set_sgemm_avx512_tile("auto");
    kc::set_sgemm_zero_skip(true);
  }
};

struct Path {
  const char* isa;
  const char* tile;  // avx512's tile, "" elsewhere
  int mr;            // rows of the micro-tile: the strips whose zeros are skipped
};
const Path kPaths[] = {{"avx512", "8x32", 8}, {"avx512", "6x64", 6}, {"avx2", "", 6}, {"sse", "", 4}};

// A [M, K] as ReLU leaves it: normals with the negatives made +0 or -0, and
// in each group of 12 rows a quarter of the k zero in every row (whole
// columns of zeros for strips of 4 or 6 rows; an 8-row strip across two
// groups keeps a k only where both groups zeroed it).
std::vector<float> relu_like(int64_t M, int64_t K, uint64_t seed) {
  Generator g(seed);
  Tensor t = randn({M * K}, DType::f32, &g);
  std::vector<float> a(t.data_ptr<float>(), t.data_ptr<float>() + M * K);
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] < 0.f) a[i] = (i % 3 == 0) ? -0.f : 0.f;
  Tensor u = rand({(M + 11) / 12 * K}, DType::f32, &g);
  const float* z = u.data_ptr<float>();
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k)
      if (z[i / 12 * K + k] < 0.25f) a[size_t(i * K + k)] = 0.f;
  return a;
}

std::vector<float> normals(int64_t n, uint64_t seed) {
  Generator g(seed);
  Tensor t = randn({n}, DType::f32, &g);
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + n);
}

// What sgemm should report left out for A [M, K] (row-major a), one K block
// (K <= 256) and a product whose rows are one block per thread (M <= 128):
// per strip of mr rows, nk = the k with a nonzero (NaN included) in any row,
// and where that leaves out at least 1/16 of K, (K - nk) x rows x N.
int64_t expected_skip(const std::vector<float>& a, int64_t M, int64_t N, int64_t K, int mr) {
  int64_t total = 0;
  for (int64_t i0 = 0; i0 < M; i0 += mr) {
    int64_t rows = std::min<int64_t>(mr, M - i0), nk = 0;
    for (int64_t k = 0; k < K; ++k) {
      bool nz = false;
      for (int64_t i = i0; i < i0 + rows; ++i) nz = nz || !(a[size_t(i * K + k)] == 0.f);
      nk += nz;
    }
    if (nk * 16 <= K * 15) total += (K - nk) * rows * N;
  }
  return total;
}

// C = (acc ? C0 : 0) + A @ B in double, and the sum of |A| |B| per element.
void ref(int64_t M, int64_t N, int64_t K, MatF A, MatF B, const std::vector<float>& c0, bool acc,
         std::vector<double>& C, std::vector<double>& mag) {
  C.assign(size_t(M * N), 0.0);
  mag.assign(size_t(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = acc ? c0[size_t(i * N + j)] : 0.0, m = acc ? std::abs(c0[size_t(i * N + j)]) : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        double p = double(A.p[i * A.rs + k * A.cs]) * double(B.p[k * B.rs + j * B.cs]);
        s += p, m += std::abs(p);
      }
      C[size_t(i * N + j)] = s, mag[size_t(i * N + j)] = m;
    }
}

// sgemm with skipping on and off (C starting as c0, or zeros where c0 is
// empty): C_on, C_off, and the multiply-adds left out with it on.
int64_t both(int64_t M, int64_t N, int64_t K, MatF A, MatF B, const std::vector<float>& c0, bool acc,
             const GemmEpilogue* ep, std::vector<float>& on, std::vector<float>& off) {
  on = c0.empty() ? std::vector<float>(size_t(M * N)) : c0, off = on;
  kc::set_sgemm_zero_skip(false);
  int64_t before = kc::sgemm_zero_skip_macs();
  kc::sgemm(M, N, K, A, B, off.data(), N, acc, ep);
  CHECK(kc::sgemm_zero_skip_macs() == before);  // off means off
  kc::set_sgemm_zero_skip(true);
  kc::sgemm(M, N, K, A, B, on.data(), N, acc, ep);
  return kc::sgemm_zero_skip_macs() - before;
}

template <class Body>
void for_each_path(Body&& body) {
  Guard guard;
  int tested = 0;
  for (const Path& p : kPaths) {
    if (!kc::sgemm_isa_supported(p.isa)) {
      WARN("SKIPPED: this CPU lacks " << p.isa << ": its zero skipping is not tested here");
      continue;
    }
    kc::set_sgemm_isa(p.isa);
    if (*p.tile) kc::set_sgemm_avx512_tile(p.tile);
    INFO("path " << p.isa << " " << p.tile);
    ++tested;
    body(p);
  }
  CHECK(tested >= 1);
}

}  // namespace

TEST_CASE("gemm zero skip: the dense product's bits, the f64 reference, and exactly the zero strips' work left out",
          "[kernels][gemm]") {
  struct Case { int64_t M, N, K; };
  // one K block and one row block per thread (the count is exact there):
  // whole and partial strips, narrow and wide B
  const Case counted[] = {{128, 256, 200}, {45, 70, 256}, {128, 40, 96}, {7, 300, 64}};
  for_each_path([&](const Path& p) {
    for (const Case& c : counted)
      for (bool ta : {false, true})  // A read in place (rows) or packed (a transposed view)
        for (int acc_row0 = 0; acc_row0 < 4; ++acc_row0) {
          // row 0 dense (no zero at all) or as the others: its strip then has nothing to skip
          const bool acc = acc_row0 & 1, dense_row0 = acc_row0 & 2;
          std::vector<float> a = relu_like(c.M, c.K, 7), b = normals(c.K * c.N, 8), c0 = normals(c.M * c.N, 9);
          if (dense_row0) {
            std::vector<float> r0 = normals(c.K, 19);
            for (int64_t k = 0; k < c.K; ++k) a[size_t(k)] = r0[size_t(k)] == 0.f ? 1.f : r0[size_t(k)];
          }
          std::vector<float> at(a.size());  // A^T [K, M], read as A through a transposed view
          for (int64_t i = 0; i < c.M; ++i)
            for (int64_t k = 0; k < c.K; ++k) at[size_t(k * c.M + i)] = a[size_t(i * c.K + k)];
          MatF A = ta ? MatF{at.data(), 1, c.M} : MatF{a.data(), c.K, 1}, B{b.data(), c.N, 1};
          std::vector<float> on, off;
          int64_t skipped = both(c.M, c.N, c.K, A, B, c0, acc, nullptr, on, off);
          INFO(c.M << "x" << c.N << "x" << c.K << " transposed A " << ta << " accumulate " << acc << " dense row 0 "
                   << dense_row0);
          int64_t want = expected_skip(a, c.M, c.N, c.K, p.mr);
          if (!dense_row0 || c.M > p.mr) CHECK(want > 0);  // the data has zero strips to skip
          CHECK(skipped == want);
          CHECK(std::memcmp(on.data(), off.data(), sizeof(float) * on.size()) == 0);
          std::vector<double> R, mag;
          ref(c.M, c.N, c.K, A, B, c0, acc, R, mag);
          double worst = 0;
          for (size_t i = 0; i < R.size(); ++i) worst = std::max(worst, std::abs(on[i] - R[i]) / (1e-30 + mag[i]));
          CHECK(worst <= 1e-5);
        }
    // A dense A: nothing to leave out
    std::vector<float> a = normals(64 * 128, 10), b = normals(128 * 96, 11), on, off;
    CHECK(both(64, 96, 128, MatF{a.data(), 128, 1}, MatF{b.data(), 96, 1}, {}, false, nullptr, on, off) == 0);
    CHECK(std::memcmp(on.data(), off.data(), sizeof(float) * on.size()) == 0);
  });
}

TEST_CASE("gemm zero skip: several K and row blocks, the epilogue, and two threads give the dense bits",
          "[kernels][gemm]") {
  struct Case { int64_t M, N, K; };
  const Case cases[] = {{300, 130, 520}, {64, 300, 1100}, {257, 64, 300}, {131, 512, 784}};
  for_each_path([&](const Path&) {
    for (const Case& c : cases)
      for (int threads : {1, 2}) {
        ThreadCount tc(threads);
        std::vector<float> a = relu_like(c.M, c.K, 12), b = normals(c.K * c.N, 13), bias = normals(c.N, 14);
        GemmEpilogue ep{bias.data(), false, true};
        std::vector<float> on, off;
        int64_t skipped = both(c.M, c.N, c.K, MatF{a.data(), c.K, 1}, MatF{b.data(), c.N, 1},
                               std::vector<float>(size_t(c.M * c.N)), false, &ep, on, off);
        INFO(c.M << "x" << c.N << "x" << c.K << " threads " << threads);
        CHECK(skipped > 0);
        CHECK(std::memcmp(on.data(), off.data(), sizeof(float) * on.size()) == 0);
      }
  });
}

TEST_CASE("gemm zero skip: Inf and NaN in B, and NaN in A, reach C as in the dense product", "[kernels][gemm]") {
  const int64_t M = 96, N = 80, K = 128;
  for_each_path([&](const Path&) {
    std::vector<float> a = relu_like(M, K, 15), b = normals(K * N, 16);
    for (int64_t i = 0; i < M; ++i) a[size_t(i * K + 5)] = a[size_t(i * K + 9)] = 0.f;  // k 5 and 9: zero everywhere
    b[size_t(5 * N + 3)] = INFINITY;  // 0 * Inf: NaN in all of column 3
    b[size_t(9 * N + 70)] = NAN;      // 0 * NaN: NaN in all of column 70
    std::vector<float> on, off;
    both(M, N, K, MatF{a.data(), K, 1}, MatF{b.data(), N, 1}, {}, false, nullptr, on, off);
    CHECK(std::memcmp(on.data(), off.data(), sizeof(float) * on.size()) == 0);
    int64_t nans = 0;
    for (int64_t i = 0; i < M; ++i) {
      CHECK(std::isnan(on[size_t(i * N + 3)]));
      CHECK(std::isnan(on[size_t(i * N + 70)]));
      for (int64_t j = 0; j < N; ++j) nans += std::isnan(on[size_t(i * N + j)]);
    }
    CHECK(nans == 2 * M);
    // a NaN in A among zeros: its k is kept, its row of C is NaN
    std::vector<float> a2 = relu_like(M, K, 17), b2 = normals(K * N, 18);
    for (int64_t i = 0; i < M; ++i) a2[size_t(i * K + 7)] = 0.f;
    a2[size_t(40 * K + 7)] = NAN;
    both(M, N, K, MatF{a2.data(), K, 1}, MatF{b2.data(), N, 1}, {}, false, nullptr, on, off);
    CHECK(std::memcmp(on.data(), off.data(), sizeof(float) * on.size()) == 0);
    for (int64_t j = 0; j < N; ++j) CHECK(std::isnan(on[size_t(40 * N + j)]));
    CHECK(!std::isnan(on[size_t(39 * N)]));
  });
}
