// The native sgemm (every micro-kernel build this CPU runs: AVX-512, AVX2, SSE)
// against a double-precision triple loop, over transposes, edge sizes that
// are not multiples of the micro-tile, K blocking and accumulate mode; and its
// thread-count independence.
#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"

using namespace bt;
using brisk::kern::cpu::MatF;
namespace kc = brisk::kern::cpu;

namespace {

struct IsaGuard {  // restores the CPUID choice and the automatic tile even when a CHECK fails
  ~IsaGuard() {
    kc::set_sgemm_isa("auto");
    kc::set_sgemm_avx512_tile("auto");
  }
};

// Reference: C = (acc ? C0 : 0) + A @ B in double.
std::vector<double> ref_gemm(int64_t M, int64_t N, int64_t K, MatF A, MatF B, const std::vector<float>& C0,
                             bool acc) {
  std::vector<double> C(size_t(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = acc ? C0[size_t(i * N + j)] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += double(A.p[i * A.rs + k * A.cs]) * double(B.p[k * B.rs + j * B.cs]);
      C[size_t(i * N + j)] = s;
    }
  return C;
}

std::vector<float> randvec(int64_t n, uint64_t seed) {
  Generator g(seed);
  Tensor t = randn({n}, DType::f32, &g);
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + n);
}

}  // namespace

TEST_CASE("gemm: every supported ISA matches the f64 reference over shapes, transposes, accumulate", "[kernels][gemm]") {
  IsaGuard guard;
  struct Case { int64_t M, N, K; };
  // {13, 200, 300}: partial 6 x 64 tiles in both directions and two K blocks;
  // {9, 600, 1024}: a deep product, K blocks of 512 and two 512-column panels
  std::vector<Case> cases{{1, 1, 1}, {7, 5, 3}, {8, 32, 1}, {17, 33, 65}, {64, 196, 288}, {130, 70, 600},
                          {3, 1000, 20}, {300, 9, 257}, {128, 10, 0}, {13, 200, 300}, {9, 600, 1024}};
  int tested = 0;
  // avx512 twice: its 8 x 32 and 6 x 64 micro-tiles, each forced for every shape
  for (auto [isa, tile] : {std::pair{"avx512", "8x32"}, {"avx512", "6x64"}, {"avx2", ""}, {"sse", ""}}) {
    if (!kc::sgemm_isa_supported(isa)) {
      WARN("SKIPPED: CPU lacks " << isa << ": its sgemm build is not tested here");
      continue;
    }
    kc::set_sgemm_isa(isa);
    REQUIRE(kc::sgemm_isa() == isa);
    if (*tile) kc::set_sgemm_avx512_tile(tile);
    ++tested;
    for (auto c : cases)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (bool acc : {false, true}) {
            auto a = randvec(c.M * c.K, 1), b = randvec(c.K * c.N, 2), c0 = randvec(c.M * c.N, 3);
            MatF A = ta ? MatF{a.data(), 1, c.M} : MatF{a.data(), c.K, 1};
            MatF B = tb ? MatF{b.data(), 1, c.K} : MatF{b.data(), c.N, 1};
            std::vector<float> C = c0;
            kc::sgemm(c.M, c.N, c.K, A, B, C.data(), c.N, acc);
            auto R = ref_gemm(c.M, c.N, c.K, A, B, c0, acc);
            double err = 0;
            for (size_t i = 0; i < R.size(); ++i) err = std::max(err, std::abs(C[i] - R[i]) / (1 + std::abs(R[i])));
            INFO(isa << " " << tile << " " << c.M << "x" << c.N << "x" << c.K << " tA=" << ta << " tB=" << tb
                     << " acc=" << acc);
            CHECK(err <= dtype_tol(DType::f32, c.K + 1));
          }
  }
  CHECK(tested >= 1);
  CHECK_THROWS_WITH(kc::set_sgemm_isa("avx9000"), Catch::Contains("unknown instruction set 'avx9000'"));
  CHECK_THROWS_WITH(kc::set_sgemm_avx512_tile("8x64"), Catch::Contains("unknown micro-tile '8x64'"));
}

// The 6 x 64 tile against the 8 x 32 one, bit for bit: edges in both
// directions, several K blocks, transposes, accumulate, each epilogue, a
// product narrow enough to run as its transpose, one and two threads; and
// "auto" choosing 6 x 64 exactly for f32 products at least 512 on every side
// or at least 1024 rows tall and 64 wide and deep.
TEST_CASE("gemm: the avx512 6x64 tile gives the 8x32 tile's bits, and auto picks it for tall products", "[kernels][gemm]") {
  if (!kc::sgemm_isa_supported("avx512")) {
    WARN("SKIPPED: CPU lacks avx512: its two micro-tiles are not compared here");
    return;
  }
  IsaGuard guard;
  kc::set_sgemm_isa("avx512");
  int prev = get_num_threads();
  struct Case { int64_t M, N, K; };
  std::vector<Case> cases{{5, 63, 17}, {13, 200, 300}, {64, 130, 513}, {130, 20, 600}, {520, 515, 530}};
  int compared = 0;
  for (auto c : cases)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int epi = 0; epi < 4; ++epi)  // none, bias, bias + ReLU, bias + ReLU + bf16 rounding
          for (int threads : {1, 2}) {
            bool acc = (epi + ta) % 2 == 1;
            INFO(c.M << "x" << c.N << "x" << c.K << " tA=" << ta << " tB=" << tb << " epilogue=" << epi
                     << " acc=" << acc << " threads=" << threads);
            auto a = randvec(c.M * c.K, 21), b = randvec(c.K * c.N, 22), c0 = randvec(c.M * c.N, 23),
                 bias = randvec(c.N, 24);
            MatF A = ta ? MatF{a.data(), 1, c.M} : MatF{a.data(), c.K, 1};
            MatF B = tb ? MatF{b.data(), 1, c.K} : MatF{b.data(), c.N, 1};
            kc::GemmEpilogue ep{epi ? bias.data() : nullptr, epi == 3, epi >= 2};
            set_num_threads(threads);
            std::vector<float> narrow = c0, wide = c0;
            kc::set_sgemm_avx512_tile("8x32");
            kc::sgemm(c.M, c.N, c.K, A, B, narrow.data(), c.N, acc, epi ? &ep : nullptr);
            kc::set_sgemm_avx512_tile("6x64");
            kc::sgemm(c.M, c.N, c.K, A, B, wide.data(), c.N, acc, epi ? &ep : nullptr);
            CHECK(std::memcmp(narrow.data(), wide.data(), narrow.size() * sizeof(float)) == 0);
            ++compared;
          }
  set_num_threads(prev);
  CHECK(compared == int(cases.size()) * 32);
  kc::set_sgemm_avx512_tile("auto");
  CHECK(kc::sgemm_avx512_tile() == "auto");
  CHECK(kc::sgemm_wide_tile(512, 512, 512));
  CHECK(kc::sgemm_wide_tile(2048, 1000, 4096));
  CHECK(kc::sgemm_wide_tile(4096, 384, 128));  // the gpt's qkv projection
  CHECK(kc::sgemm_wide_tile(1024, 64, 64));
  CHECK_FALSE(kc::sgemm_wide_tile(511, 512, 512));
  CHECK_FALSE(kc::sgemm_wide_tile(1023, 512, 128));
  CHECK_FALSE(kc::sgemm_wide_tile(4096, 63, 512));
  CHECK_FALSE(kc::sgemm_wide_tile(4096, 512, 63));
  CHECK_FALSE(kc::sgemm_wide_tile(512, 784, 128));  // the mlp's weight gradient
  CHECK_FALSE(kc::sgemm_wide_tile(128, 512, 784));  // and its forward
  CHECK_FALSE(kc::sgemm_wide_tile(128, 128, 3136));  // the cnn's fc1
  kc::set_sgemm_avx512_tile("6x64");
  CHECK(kc::sgemm_wide_tile(7, 5, 3));
  kc::set_sgemm_avx512_tile("8x32");
  CHECK_FALSE(kc::sgemm_wide_tile(2048, 2048, 2048));
  kc::set_sgemm_isa("avx2");  // the tile is avx512's: other builds never run it
  kc::set_sgemm_avx512_tile("6x64");
  CHECK_FALSE(kc::sgemm_wide_tile(2048, 2048, 2048));
}

TEST_CASE("gemm: a leading dimension larger than N leaves the gap untouched", "[kernels][gemm]") {
  int64_t M = 19, N = 37, K = 23, ldc = 50;
  auto a = randvec(M * K, 4), b = randvec(K * N, 5);
  std::vector<float> C(size_t(M * ldc), 7.0f);
  kc::sgemm(M, N, K, MatF{a.data(), K, 1}, MatF{b.data(), N, 1}, C.data(), ldc);
  auto R = ref_gemm(M, N, K, MatF{a.data(), K, 1}, MatF{b.data(), N, 1}, {}, false);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) CHECK(std::abs(C[size_t(i * ldc + j)] - R[size_t(i * N + j)]) < 1e-4);
    for (int64_t j = N; j < ldc; ++j) CHECK(C[size_t(i * ldc + j)] == 7.0f);
  }
}

TEST_CASE("gemm: results are bit-identical for 1 and 2 threads", "[kernels][gemm]") {
  int prev = get_num_threads();
  // 64 x 1000 x 500: the two threads take 500 columns each, and the K block
  // bound of a 500-column product (512: one block) differs from the whole
  // product's (262: two blocks of 250): each thread must block K as the
  // whole product does. (At K >= 512 every width takes blocks of 512.) 512 x 784 x
  // 128 with A transposed (a weight gradient) splits rows instead. 64 x 1100
  // x 1030: a deep product (K blocks of 512) whose halves are narrower than 512.
  struct Case { int64_t M, N, K; bool ta; };
  for (Case c : {Case{256, 300, 700, false}, Case{64, 1000, 500, false}, Case{512, 784, 128, true},
                 Case{64, 1100, 1030, false}}) {
    INFO(c.M << "x" << c.N << "x" << c.K << " ta=" << c.ta);
    auto a = randvec(c.M * c.K, 6), b = randvec(c.K * c.N, 7);
    MatF A = c.ta ? MatF{a.data(), 1, c.M} : MatF{a.data(), c.K, 1};
    std::vector<float> c1(size_t(c.M * c.N)), c2(size_t(c.M * c.N));
    set_num_threads(1);
    kc::sgemm(c.M, c.N, c.K, A, MatF{b.data(), c.N, 1}, c1.data(), c.N);
    set_num_threads(2);
    kc::sgemm(c.M, c.N, c.K, A, MatF{b.data(), c.N, 1}, c2.data(), c.N);
    CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
  }
  set_num_threads(prev);
}

// The packed entry points (conv2d's): operands packed by sgemm_pack_a/b and
// multiplied by sgemm_packed (or A read in place by sgemm_packed_b) give
// sgemm's result bit for bit on every ISA,
// over edge sizes, several K blocks (K > 256), K = 0 and accumulate; and the
// layout is the documented one (element (i, k) of A at strip i / mr, offset
// k * mr + i % mr; zero past M), read back from the buffer directly.
TEST_CASE("gemm: packed operands give sgemm's bits on every ISA, in the documented layout", "[kernels][gemm]") {
  IsaGuard guard;
  struct Case { int64_t M, N, K; };
  std::vector<Case> cases{{1, 1, 1}, {7, 5, 3}, {196, 64, 288}, {196, 32, 576}, {64, 288, 196}, {33, 70, 600},
                          {9, 3, 0}};
  int tested = 0;
  for (std::string isa : {"avx512", "avx2", "sse"}) {
    if (!kc::sgemm_isa_supported(isa)) {
      WARN("SKIPPED: packed sgemm on " << isa << ": this CPU lacks it");
      continue;
    }
    kc::set_sgemm_isa(isa);
    ++tested;
    kc::GemmTile t = kc::sgemm_f32_tile();
    for (auto c : cases)
      for (bool acc : {false, true}) {
        INFO(isa << " " << c.M << "x" << c.N << "x" << c.K << " acc=" << acc);
        auto a = randvec(c.M * c.K, 11), b = randvec(c.K * c.N, 12), c0 = randvec(c.M * c.N, 13);
        // A row-major, B column-major (the conv weight's orientation): both packing paths
        MatF A{a.data(), c.K, 1}, B{b.data(), 1, c.K};
        int64_t sa = kc::sgemm_packed_size(c.M, c.K, t.mr), sb = kc::sgemm_packed_size(c.N, c.K, t.nr);
        std::vector<float> ap(size_t(sa) + 1, NAN), bbuf(size_t(sb) + 16, NAN);
        float* bp = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(bbuf.data()) + 63) & ~uintptr_t(63));
        kc::sgemm_pack_a(c.M, c.K, A, ap.data());
        kc::sgemm_pack_b(c.K, c.N, B, bp);
        int64_t st = kc::sgemm_packed_stride(c.K, t.mr);
        bool layout = true;
        for (int64_t i = 0; i < (c.M + t.mr - 1) / t.mr * t.mr; ++i)
          for (int64_t k = 0; k < c.K; ++k) {
            float want = i < c.M ? a[size_t(i * c.K + k)] : 0.f;
            layout = layout && ap[size_t(i / t.mr * st + k * t.mr + i % t.mr)] == want;
          }
        CHECK(layout);
        std::vector<float> want = c0, got = c0, rows = c0;
        kc::sgemm(c.M, c.N, c.K, A, B, want.data(), c.N, acc);
        kc::sgemm_packed(c.M, c.N, c.K, ap.data(), bp, got.data(), c.N, acc);
        CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
        // A read in place from its rows, here with a row stride past K (a view of wider rows)
        int64_t lda = c.K + 3;
        std::vector<float> wide(size_t(c.M * lda), NAN);
        for (int64_t i = 0; i < c.M; ++i)
          for (int64_t k = 0; k < c.K; ++k) wide[size_t(i * lda + k)] = a[size_t(i * c.K + k)];
        kc::sgemm_packed_b(c.M, c.N, c.K, wide.data(), lda, bp, rows.data(), c.N, acc);
        CHECK(std::memcmp(want.data(), rows.data(), want.size() * sizeof(float)) == 0);
      }
  }
  CHECK(tested >= 1);
}
