// Run-time choice of the sgemm build by CPUID (see sgemm.h).
#include "kernels/cpu/gemm/sgemm.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "core/autocast.h"
#include "core/cpu_gemm_stats.h"
#include "core/env_switch.h"
#include "core/error.h"

namespace brisk::kern::cpu {

template <class E>
void sgemm_avx512(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool, const GemmEpilogue*);
template <class E>
void sgemm_avx512_wide(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool, const GemmEpilogue*);
template <class E>
void sgemm_avx2(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool, const GemmEpilogue*);
template <class E>
void sgemm_sse(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool, const GemmEpilogue*);
template <class E>
void sgemm_avx512bf16(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool, const GemmEpilogue*);
template <class E>
void sgemm_amx(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool, const GemmEpilogue*);
bool amx_bf16_usable();  // sgemm_amx.cpp: CPUID and the OS's permission for tile state
#define BRISK_PACKED_DECL(ns)                                                                   \
  namespace ns {                                                                                \
  void packed_a(int64_t M, int64_t K, MatF A, float* dst, int64_t stride);                      \
  void packed_b(int64_t K, int64_t N, MatF B, float* dst, int64_t stride);                      \
  void packed_gemm(int64_t M, int64_t N, int64_t K, const float* ap, int64_t sa, const float* bp, \
                   int64_t sb, float* C, int64_t ldc, bool accumulate);                         \
  void packed_gemm_rows(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* bp, int64_t sb, \
                        float* C, int64_t ldc, bool accumulate);                                \
  }
BRISK_PACKED_DECL(avx512)
BRISK_PACKED_DECL(avx2)
BRISK_PACKED_DECL(sse)
#undef BRISK_PACKED_DECL

namespace {
enum Isa : int { sse, avx2, avx512 };
const char* kNames[] = {"sse", "avx2", "avx512"};

bool supported(Isa i) {
  switch (i) {
    case Isa::avx512: return __builtin_cpu_supports("avx512f");
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
}
Isa best() { return supported(Isa::avx512) ? Isa::avx512 : supported(Isa::avx2) ? Isa::avx2 : Isa::sse; }
// BRISK_SGEMM_ISA=auto|avx512|avx2|sse, read once: the f32 kernels' instruction
// set (an AVX-512 machine can run and time the AVX2 paths).
std::atomic<int> g_isa{env_choice("BRISK_SGEMM_ISA", {kNames[0], kNames[1], kNames[2]},
                                  [](int i) { return supported(Isa(i)); }, best(), "instruction set")};
}  // namespace

bool sgemm_isa_supported(const std::string& isa) {
  for (int i = 0; i < 3; ++i)
    if (isa == kNames[i]) return supported(Isa(i));
  return false;
}

std::string sgemm_isa() { return kNames[g_isa.load()]; }
bool sgemm_isa_avx512() { return g_isa.load(std::memory_order_relaxed) == Isa::avx512; }
bool sgemm_isa_avx2() { return g_isa.load(std::memory_order_relaxed) == Isa::avx2; }

void set_sgemm_isa(const std::string& isa) {
  if (isa == "auto") {
    g_isa = best();
    return;
  }
  for (int i = 0; i < 3; ++i)
    if (isa == kNames[i]) {
      BRISK_CHECK(supported(Isa(i)), "set_sgemm_isa: this CPU does not support ", isa);
      g_isa = i;
      return;
    }
  BRISK_FAIL("set_sgemm_isa: unknown instruction set '", isa, "' (known: auto, avx512, avx2, sse)");
}

namespace {
std::atomic<bool> g_zero_skip{env_switch("BRISK_SGEMM_ZERO_SKIP", true)};
std::atomic<int64_t> g_zero_skip_macs{0};
}  // namespace
bool sgemm_zero_skip() { return g_zero_skip.load(std::memory_order_relaxed); }
void set_sgemm_zero_skip(bool on) { g_zero_skip = on; }
int64_t sgemm_zero_skip_macs() { return g_zero_skip_macs.load(); }
void add_zero_skip_macs(int64_t macs) { g_zero_skip_macs.fetch_add(macs, std::memory_order_relaxed); }

namespace {
// The AVX-512 f32 tile: BRISK_SGEMM_TILE=auto|8x32|6x64, read once.
enum Tile : int { t8x32, t6x64, t_auto };
const char* kTileNames[] = {"8x32", "6x64", "auto"};
std::atomic<int> g_tile{env_choice("BRISK_SGEMM_TILE", {kTileNames[0], kTileNames[1]}, [](int) { return true; },
                                   Tile::t_auto, "micro-tile")};

// auto: 6x64 for f32 products at least 512 on every side, and for tall ones
// (at least 1024 rows) at least 64 wide and deep. Measured on the Xeon, 2
// threads, against 8x32 (medians of 3 interleaved runs): tall products at
// every width and depth from 64 to 512 gained 1-11% (the gpt's 4096 x 512 x
// 128 4%, 4096 x 384 x 512 7%, 1024 x 128 x 128 11%; its step's GEMMs 6%),
// 1024^3 and 2048^3 3-4%; on one thread the same or better. Shorter ones
// lose more to the wider tile's edges and to its B strips streaming from L2
// than its loop gains when their operands arrive from L3, as in a training
// step: the mlp's 128 x 512 x 784 ran 2-5% slower, its 512 x 784 x 128
// (even in isolation) made its epoch 1.5-3% slower, the cnn's fc1 128 x 128
// x 3136 3-7%; they keep 8x32.
template <class E>
bool wide_tile(int64_t M, int64_t N, int64_t K) {
  if constexpr (!std::is_same_v<E, float>) return false;  // 16-bit operands: packed with the 8-row vector path
  int t = g_tile.load(std::memory_order_relaxed);
  if (t != Tile::t_auto) return t == Tile::t6x64;
  return (M >= 512 && N >= 512 && K >= 512) || (M >= 1024 && N >= 64 && K >= 64);
}

template <class E>
void run(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool accumulate,
         const GemmEpilogue* ep = nullptr) {
  if (M <= 0 || N <= 0) return;
  switch (g_isa.load(std::memory_order_relaxed)) {
    case Isa::avx512:
      if (wide_tile<E>(M, N, K)) return sgemm_avx512_wide<E>(M, N, K, A, B, C, ldc, accumulate, ep);
      return sgemm_avx512<E>(M, N, K, A, B, C, ldc, accumulate, ep);
    case Isa::avx2: return sgemm_avx2<E>(M, N, K, A, B, C, ldc, accumulate, ep);
    default: return sgemm_sse<E>(M, N, K, A, B, C, ldc, accumulate, ep);
  }
}
}  // namespace

std::string sgemm_avx512_tile() { return kTileNames[g_tile.load()]; }
bool sgemm_wide_tile(int64_t M, int64_t N, int64_t K) {
  return g_isa.load(std::memory_order_relaxed) == Isa::avx512 && wide_tile<float>(M, N, K);
}

void set_sgemm_avx512_tile(const std::string& tile) {
  for (int i = 0; i < 3; ++i)
    if (tile == kTileNames[i]) {
      g_tile = i;
      return;
    }
  BRISK_FAIL("set_sgemm_avx512_tile: unknown micro-tile '", tile, "' (known: auto, 8x32, 6x64)");
}

bool sgemm_bf16_supported() {
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return cpu && g_isa.load(std::memory_order_relaxed) == Isa::avx512;
}
bool gemm_bf16_active() { return gemm_operands_bf16() && sgemm_bf16_supported(); }

namespace {
enum Bf16Kernel : int { k_avx512bf16, k_amx };
const char* kBf16Names[] = {"avx512bf16", "amx"};
bool bf16_kernel_supported(int k) { return k == k_amx ? amx_bf16_usable() : sgemm_bf16_supported(); }
int bf16_best() { return amx_bf16_usable() ? k_amx : k_avx512bf16; }
// BRISK_BF16_GEMM=auto|amx|avx512bf16, read once.
int bf16_initial() {
  return env_choice("BRISK_BF16_GEMM", {kBf16Names[0], kBf16Names[1]}, bf16_kernel_supported, bf16_best(), "kernel");
}
std::atomic<int>& g_bf16() {
  static std::atomic<int> k{bf16_initial()};
  return k;
}
bool bf16_amx_now() { return g_bf16().load(std::memory_order_relaxed) == k_amx; }
}  // namespace

bool bf16_gemm_kernel_supported(const std::string& name) {
  for (int i = 0; i < 2; ++i)
    if (name == kBf16Names[i]) return bf16_kernel_supported(i);
  return false;
}
bool gemm_amx_active() { return gemm_bf16_active() && bf16_amx_now(); }
std::string bf16_gemm_kernel() {
  int k = g_bf16().load();
  return bf16_kernel_supported(k) ? kBf16Names[k] : "none";
}
void set_bf16_gemm_kernel(const std::string& name) {
  // "none" is what bf16_gemm_kernel() reports where no bf16 kernel runs (no
  // AVX512-BF16, or the f32 GEMM held below AVX-512): restoring it changes nothing.
  if (name == "none") {
    BRISK_CHECK(!bf16_kernel_supported(k_avx512bf16) && !bf16_kernel_supported(k_amx),
                "set_bf16_gemm_kernel: 'none' names no kernel, and this CPU has one (known: auto, amx, avx512bf16)");
    return;
  }
  if (name == "auto") {
    g_bf16() = bf16_best();
    return;
  }
  for (int i = 0; i < 2; ++i)
    if (name == kBf16Names[i]) {
      BRISK_CHECK(bf16_kernel_supported(i), "set_bf16_gemm_kernel: this CPU (or OS) does not support ", name);
      g_bf16() = i;
      return;
    }
  BRISK_FAIL("set_bf16_gemm_kernel: unknown kernel '", name, "' (known: auto, amx, avx512bf16)");
}

GemmTile sgemm_f32_tile() {
  switch (g_isa.load(std::memory_order_relaxed)) {  // the BRISK_GEMM_MR x NV * W of each build
    case Isa::avx512: return {8, 32};
    case Isa::avx2: return {6, 16};
    default: return {4, 8};
  }
}

GemmTile sgemm_tile() {
  if (gemm_bf16_active()) return bf16_amx_now() ? GemmTile{32, 32} : GemmTile{8, 32};  // AmxPanels, Bf16Panels
  return sgemm_f32_tile();
}

int64_t sgemm_packed_stride(int64_t K, int64_t r) {
  // An odd number of cache lines: strips a power-of-two apart would map a
  // row's stores across all strips (the unfold writes) into a few L1 sets.
  int64_t lines = (K * r + 15) / 16;
  return (lines | 1) * 16;
}
int64_t sgemm_packed_size(int64_t rows, int64_t K, int64_t r) { return (rows + r - 1) / r * sgemm_packed_stride(K, r); }

namespace {
// Each build's packed entry points (sgemm_impl.h), for the ISA in use.
struct PackedOps {
  decltype(&avx512::packed_a) pack_a;
  decltype(&avx512::packed_b) pack_b;
  decltype(&avx512::packed_gemm) gemm;
  decltype(&avx512::packed_gemm_rows) gemm_rows;
};
const PackedOps& packed_ops() {
  static const PackedOps ops[] = {
      {sse::packed_a, sse::packed_b, sse::packed_gemm, sse::packed_gemm_rows},
      {avx2::packed_a, avx2::packed_b, avx2::packed_gemm, avx2::packed_gemm_rows},
      {avx512::packed_a, avx512::packed_b, avx512::packed_gemm, avx512::packed_gemm_rows}};
  return ops[g_isa.load(std::memory_order_relaxed)];  // indexed by Isa
}
}  // namespace

void sgemm_pack_a(int64_t M, int64_t K, MatF A, float* dst) {
  packed_ops().pack_a(M, K, A, dst, sgemm_packed_stride(K, sgemm_f32_tile().mr));
}
void sgemm_pack_b(int64_t K, int64_t N, MatF B, float* dst) {
  packed_ops().pack_b(K, N, B, dst, sgemm_packed_stride(K, sgemm_f32_tile().nr));
}
void sgemm_packed(int64_t M, int64_t N, int64_t K, const float* Ap, const float* Bp, float* C, int64_t ldc,
                  bool accumulate) {
  GemmTile t = sgemm_f32_tile();
  packed_ops().gemm(M, N, K, Ap, sgemm_packed_stride(K, t.mr), Bp, sgemm_packed_stride(K, t.nr), C, ldc, accumulate);
}
void sgemm_packed_b(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp, float* C,
                    int64_t ldc, bool accumulate) {
  packed_ops().gemm_rows(M, N, K, A, lda, Bp, sgemm_packed_stride(K, sgemm_f32_tile().nr), C, ldc, accumulate);
}

namespace {
// op(X) [R, S] rounded to bf16 (nearest even) into buf, laid out as X is
// (rows contiguous, or columns for a transposed view), so that the reads run
// along memory and the rounding vectorizes (core/dtype.h's bf16_rounded);
// the GEMM packs either layout into the same panels. buf is the calling
// thread's, kept between calls: a fresh buffer per call (1.6 MB for the
// cnn's fc1 weight) cost its page faults on every product.
MatF rounded_copy(MatF X, int64_t R, int64_t S, std::vector<float>& buf) {
  if (buf.size() < size_t(R * S)) buf.resize(size_t(R * S));
  float* o = buf.data();
  if (X.cs == 1) {
    for (int64_t r = 0; r < R; ++r) bf16_rounded(X.p + r * X.rs, o + r * S, S);
    return MatF{o, S, 1};
  }
  if (X.rs == 1) {
    for (int64_t c = 0; c < S; ++c) bf16_rounded(X.p + c * X.cs, o + c * R, R);
    return MatF{o, 1, R};
  }
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < S; ++c) o[r * S + c] = bf16_rounded(X.p[r * X.rs + c * X.cs]);
  return MatF{o, S, 1};
}
}  // namespace

void sgemm(int64_t M, int64_t N, int64_t K, MatF A, MatF B, float* C, int64_t ldc, bool accumulate,
           const GemmEpilogue* ep) {
  if (M > 0 && N > 0 && gemm_operands_bf16()) {
    if (sgemm_bf16_supported()) {
      if (bf16_amx_now()) return sgemm_amx<float>(M, N, K, A, B, C, ldc, accumulate, ep);
      return sgemm_avx512bf16<float>(M, N, K, A, B, C, ldc, accumulate, ep);
    }
    // No bf16 dot products on this CPU (or ISA): the f32 GEMM of rounded
    // copies, so that bf16 operands are what every path multiplies (callers
    // that fold autocast's casts, nn::functional::linear, rely on it).
    static thread_local std::vector<float> abuf, bbuf;
    return run(M, N, K, rounded_copy(A, M, K, abuf), rounded_copy(B, K, N, bbuf), C, ldc, accumulate, ep);
  }
  run(M, N, K, A, B, C, ldc, accumulate, ep);
}
void sgemm(int64_t M, int64_t N, int64_t K, Mat<BFloat16> A, Mat<BFloat16> B, float* C, int64_t ldc, bool accumulate) {
  run(M, N, K, A, B, C, ldc, accumulate);
}
void sgemm(int64_t M, int64_t N, int64_t K, Mat<Half> A, Mat<Half> B, float* C, int64_t ldc, bool accumulate) {
  run(M, N, K, A, B, C, ldc, accumulate);
}

}  // namespace brisk::kern::cpu

namespace brisk {
// core/cpu_gemm_stats.h (core and train cannot include the kernels).
bool cpu_gemm_zero_skip_on() { return kern::cpu::sgemm_zero_skip(); }
int64_t cpu_gemm_zero_skipped_macs() { return kern::cpu::sgemm_zero_skip_macs(); }
// core/autocast.h's cpu_bf16_gemm_kernel (core cannot include the kernels).
std::string cpu_bf16_gemm_kernel_answer() {
  return kern::cpu::sgemm_bf16_supported() ? kern::cpu::bf16_gemm_kernel() : std::string();
}
}  // namespace brisk
