// f32 GEMM throughput: brisk's native sgemm vs OpenBLAS vs the machine's FMA
// peak, on square sizes 256..2048 and on the cnn/mlp training shapes (batch
// 128); on AVX-512 also the native sgemm held to its 8 x 32 tile (BM_native_8x32).
//   ./build/bench/brisk_bench_gemm --benchmark_min_time=0.3
// Counters: GFLOPs = 2*M*N*K per second. BM_fma_peak measures the peak with
// independent FMA chains on every thread of the pool; BM_bf16dp_peak the
// same with vdpbf16ps, the ceiling of the AVX512-BF16 kernel (BM_bf16dp).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <thread>
#include <type_traits>

#include "brisk.h"
#include "bench/fma_peak.h"
#include "core/autocast.h"
#include "core/int8.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/int8_amx.h"
#ifdef BRISK_HAS_OPENBLAS
#include <cblas.h>
#endif

using namespace brisk;
using kern::cpu::MatF;

// Shapes as (M, N, K, transA, transB): C[M,N] = op(A) @ op(B).
struct Shape5 { int64_t M, N, K, ta, tb; };

// Operand buffers as a brisk tensor's storage: 64-byte aligned, as brisk's
// and PyTorch's tensors are. A std::vector's 16-byte alignment splits rows of
// C across cache lines, and two threads writing the halves of each row then
// share a line per row: products with K = 10 ran 1.7x slower on 2 threads
// than on one, and two of the mlp's products ran 5-7% slower than from
// aligned buffers.
template <class T>
struct Buf {
  Tensor t;
  explicit Buf(int64_t n) : t(empty({n}, std::is_same_v<T, BFloat16> ? DType::bf16 : DType::f32)) {}
  T* data() { return static_cast<T*>(t.raw_data()); }
  size_t size() const { return size_t(t.numel()); }
  T& operator[](size_t i) { return data()[i]; }
};

static void run(benchmark::State& st, bool blas, const kern::cpu::GemmEpilogue* ep = nullptr) {
  Shape5 s{st.range(0), st.range(1), st.range(2), st.range(3), st.range(4)};
  Buf<float> A(s.M * s.K), B(s.K * s.N), C(s.M * s.N);
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(i % 17) * 0.01f;
  for (size_t i = 0; i < B.size(); ++i) B[i] = float(i % 13) * 0.01f;
  // Stored row-major as op(X) requires: A is [M,K] or (ta) [K,M]; B is [K,N] or (tb) [N,K].
  MatF a = s.ta ? MatF{A.data(), 1, s.M} : MatF{A.data(), s.K, 1};
  MatF b = s.tb ? MatF{B.data(), 1, s.K} : MatF{B.data(), s.N, 1};
  for (auto _ : st) {
    if (!blas) {
      kern::cpu::sgemm(s.M, s.N, s.K, a, b, C.data(), s.N, false, ep);
    } else {
#ifdef BRISK_HAS_OPENBLAS
      cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, int(s.M),
                  int(s.N), int(s.K), 1.f, A.data(), int(s.ta ? s.M : s.K), B.data(), int(s.tb ? s.K : s.N), 0.f,
                  C.data(), int(s.N));
#else
      st.SkipWithError("OpenBLAS not compiled in");
      break;
#endif
    }
    benchmark::DoNotOptimize(C.data());
  }
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * double(s.M * s.N * s.K), benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
}

static void BM_native(benchmark::State& st) { run(st, false); }
static void BM_openblas(benchmark::State& st) { run(st, true); }
// The native sgemm held to the AVX-512 8 x 32 tile, beside BM_native (which
// runs products at least 512 on every side, or 1024 tall and 64 wide and
// deep, on the 6 x 64 tile): the tile's gain, measured in one run.
static void BM_native_8x32(benchmark::State& st) {
  if (kern::cpu::sgemm_isa() != "avx512") {
    st.SkipWithError("SKIPPED: the 8x32 tile is the avx512 build's; this CPU runs another");
    return;
  }
  std::string prev = kern::cpu::sgemm_avx512_tile();
  kern::cpu::set_sgemm_avx512_tile("8x32");
  run(st, false);
  kern::cpu::set_sgemm_avx512_tile(prev);
}

using bench::BM_bf16dp_peak;  // bench/fma_peak.h
using bench::BM_fma_peak;
BENCHMARK(BM_fma_peak)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_bf16dp_peak)->UseRealTime()->Unit(benchmark::kMillisecond);

#define SHAPES                                                                                                  \
  ->ArgNames({"M", "N", "K", "tA", "tB"})                                                                      \
  ->Args({256, 256, 256, 0, 0})->Args({512, 512, 512, 0, 0})->Args({1024, 1024, 1024, 0, 0})                   \
  ->Args({2048, 2048, 2048, 0, 0})->Args({2000, 2000, 2000, 0, 0})                                            \
  /* mlp 784-512-256-10 at batch 128: forward x@W^T, input grad g@W, weight grad g^T@x */                      \
  ->Args({128, 512, 784, 0, 1})->Args({128, 256, 512, 0, 1})->Args({128, 10, 256, 0, 1})                      \
  /* layer 1's forward with B stored untransposed: beside tB = 1, what packing W^T costs */                    \
  ->Args({128, 512, 784, 0, 0})                                                                                \
  ->Args({128, 512, 256, 0, 0})->Args({512, 784, 128, 1, 0})->Args({256, 512, 128, 1, 0})                      \
  ->Args({10, 256, 128, 1, 0})->Args({128, 256, 10, 0, 0})                                                     \
  /* the layer-1 forward as its transpose, W @ x^T */ ->Args({512, 128, 784, 0, 1})                            \
  /* cnn fc1 3136->128 */                                                                                       \
  ->Args({128, 128, 3136, 0, 1})->Args({128, 3136, 128, 0, 0})->Args({128, 3136, 128, 1, 0})                   \
  /* cnn fc2 128->10 */ ->Args({128, 10, 128, 0, 1})->Args({10, 128, 128, 1, 0})->Args({128, 128, 10, 0, 0})      \
  /* cnn conv2 per sample: W[64,288] @ cols[288,196]; dcols = W^T @ dY; dW = dY @ cols^T */                     \
  ->Args({64, 196, 288, 0, 0})->Args({288, 196, 64, 1, 0})->Args({64, 288, 196, 0, 1})                          \
  /* cnn conv1 per sample: W[32,9] @ cols[9,784] */                                                             \
  ->Args({32, 784, 9, 0, 0})                                                                                    \
  ->UseRealTime()->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_native) SHAPES;
BENCHMARK(BM_openblas) SHAPES;
BENCHMARK(BM_native_8x32)
    ->ArgNames({"M", "N", "K", "tA", "tB"})
    ->Args({512, 512, 512, 0, 0})->Args({1024, 1024, 1024, 0, 0})->Args({2048, 2048, 2048, 0, 0})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
// int8 with per-row scales on AVX512-VNNI or AMX-INT8 tiles, quantization
// and packing included, vs the native f32 sgemm on the same square sizes
// (counted as 2*n^3 ops). Skipped where the machine lacks the kernel.
static void int8_kernel(benchmark::State& st, const char* kernel) {
  if (!int8_vnni_supported() || !kern::cpu::int8_gemm_kernel_supported(kernel)) {
    st.SkipWithError((std::string("SKIPPED: this machine lacks the int8 kernel ") + kernel).c_str());
    return;
  }
  std::string prev = kern::cpu::int8_gemm_kernel();
  kern::cpu::set_int8_gemm_kernel(kernel);
  int64_t n = st.range(0);
  Tensor a = randn({n, n}), b = randn({n, n});
  ForceBackend cpu("cpu");  // the optimized kernel of "int8_gemm" (the ref is the scalar loop)
  for (auto _ : st) benchmark::DoNotOptimize(int8_matmul(a, b).raw_data());
  kern::cpu::set_int8_gemm_kernel(prev);
  st.counters["GOPs"] = benchmark::Counter(2.0 * double(n * n * n), benchmark::Counter::kIsIterationInvariantRate,
                                           benchmark::Counter::kIs1000);
}
static void BM_int8_vnni(benchmark::State& st) { int8_kernel(st, "vnni"); }
static void BM_int8_amx(benchmark::State& st) { int8_kernel(st, "amx"); }
BENCHMARK(BM_int8_vnni)->Arg(512)->Arg(1024)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_int8_amx)->Arg(512)->Arg(1024)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);
// bf16 operands (half the bytes), f32 accumulation, vs f32 on the same square
// sizes: the kernel behind matmul on bf16 tensors. Counted as 2*n^3 FLOPs.
static void BM_bf16(benchmark::State& st) {
  int64_t n = st.range(0);
  Buf<BFloat16> A(n * n), B(n * n);
  Buf<float> C(n * n);
  for (size_t i = 0; i < A.size(); ++i) A[i] = BFloat16(float(i % 17) * 0.01f);
  for (size_t i = 0; i < B.size(); ++i) B[i] = BFloat16(float(i % 13) * 0.01f);
  for (auto _ : st) {
    kern::cpu::sgemm(n, n, n, kern::cpu::Mat<BFloat16>{A.data(), n, 1}, kern::cpu::Mat<BFloat16>{B.data(), n, 1},
                     C.data(), n);
    benchmark::DoNotOptimize(C.data());
  }
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * double(n * n * n), benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
}
BENCHMARK(BM_bf16)->Arg(512)->Arg(1024)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);

// The f32 GEMM under bf16 autocast's scope: operands rounded to bf16 while
// packing, then products on the named bf16 kernel (skipped where the machine
// lacks it): AVX512-BF16 dot products, or AMX tiles. Arguments: n (square),
// and whether A is transposed (column-major, as in conv's input gradient).
static void bf16_kernel(benchmark::State& st, const char* kernel) {
  if (!kern::cpu::bf16_gemm_kernel_supported(kernel)) {
    st.SkipWithError((std::string("SKIPPED: this machine lacks the bf16 kernel ") + kernel).c_str());
    return;
  }
  std::string prev = kern::cpu::bf16_gemm_kernel();
  kern::cpu::set_bf16_gemm_kernel(kernel);
  int64_t n = st.range(0);
  Buf<float> A(n * n), B(n * n), C(n * n);
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(i % 17) * 0.01f;
  for (size_t i = 0; i < B.size(); ++i) B[i] = float(i % 13) * 0.01f;
  kern::cpu::MatF a = st.range(1) ? kern::cpu::MatF{A.data(), 1, n} : kern::cpu::MatF{A.data(), n, 1};
  brisk::GemmBf16Scope scope(true);
  for (auto _ : st) {
    kern::cpu::sgemm(n, n, n, a, kern::cpu::MatF{B.data(), n, 1}, C.data(), n);
    benchmark::DoNotOptimize(C.data());
  }
  kern::cpu::set_bf16_gemm_kernel(prev);
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * double(n * n * n), benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
}
static void BM_bf16dp(benchmark::State& st) { bf16_kernel(st, "avx512bf16"); }
static void BM_bf16amx(benchmark::State& st) { bf16_kernel(st, "amx"); }
#define BF16_SIZES ArgsProduct({{512, 1024, 2048}, {0, 1}})->UseRealTime()->Unit(benchmark::kMillisecond)
BENCHMARK(BM_bf16dp)->BF16_SIZES;
BENCHMARK(BM_bf16amx)->BF16_SIZES;

// gpt-small's training GEMMs (batch 32 x context 128 = 4096 rows, width 128,
// MLP 512, qkv 384, vocab 256), f32 and under bf16 autocast on the best bf16
// kernel with the epilogue autocast's linear uses (rounding C to bf16): the
// forward x @ W^T, the input gradient g @ W and the weight gradient g^T @ x
// of each linear.
static void gpt_shape(benchmark::State& st, bool bf16) {
  if (bf16 && !kern::cpu::sgemm_bf16_supported()) {
    st.SkipWithError("SKIPPED: this machine has no bf16 GEMM kernel");
    return;
  }
  brisk::GemmBf16Scope scope(bf16);
  kern::cpu::GemmEpilogue round{nullptr, true};
  run(st, false, bf16 ? &round : nullptr);
}
static void BM_gpt_f32(benchmark::State& st) { gpt_shape(st, false); }
static void BM_gpt_bf16(benchmark::State& st) { gpt_shape(st, true); }
#define GPT_SHAPES                                                                                             \
  ->ArgNames({"M", "N", "K", "tA", "tB"})                                                                      \
  ->Args({4096, 384, 128, 0, 1})->Args({4096, 128, 128, 0, 1})->Args({4096, 512, 128, 0, 1})                   \
  ->Args({4096, 128, 512, 0, 1})->Args({4096, 256, 128, 0, 1})                                                 \
  ->Args({4096, 128, 384, 0, 0})->Args({4096, 128, 512, 0, 0})->Args({4096, 512, 128, 0, 0})                   \
  ->Args({384, 128, 4096, 1, 0})->Args({512, 128, 4096, 1, 0})->Args({128, 512, 4096, 1, 0})                   \
  ->UseRealTime()->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_gpt_f32) GPT_SHAPES;
BENCHMARK(BM_gpt_bf16) GPT_SHAPES;

// The cnn's fc1 (3136 -> 128, batch 128) under the same two modes: forward,
// input gradient, weight gradient. They take 12% of the cnn step.
#define CNN_FC_SHAPES                                                                                          \
  ->ArgNames({"M", "N", "K", "tA", "tB"})                                                                      \
  ->Args({128, 128, 3136, 0, 1})->Args({128, 3136, 128, 0, 0})->Args({128, 3136, 128, 1, 0})                   \
  ->UseRealTime()->Unit(benchmark::kMicrosecond)
static void BM_cnn_fc_f32(benchmark::State& st) { gpt_shape(st, false); }
static void BM_cnn_fc_bf16(benchmark::State& st) { gpt_shape(st, true); }
BENCHMARK(BM_cnn_fc_f32) CNN_FC_SHAPES;
BENCHMARK(BM_cnn_fc_bf16) CNN_FC_SHAPES;
BENCHMARK_MAIN();
