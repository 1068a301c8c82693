// Run-time choice of the sgemm build by CPUID (see sgemm.h).
#include "kernels/cpu/gemm/sgemm.h"

#include <atomic>

#include "core/autocast.h"
#include "core/error.h"

namespace brisk::kern::cpu {

template <class E> void sgemm_avx512(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool);
template <class E> void sgemm_avx2(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool);
template <class E> void sgemm_sse(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool);
template <class E> void sgemm_avx512bf16(int64_t, int64_t, int64_t, Mat<E>, Mat<E>, float*, int64_t, bool);

namespace {
enum Isa : int { sse, avx2, avx512 };
const char* kNames[] = {"sse", "avx2", "avx512"};

bool supported(Isa i) {
  switch (i) {
    case avx512: return __builtin_cpu_supports("avx512f");
    case avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
}
Isa best() { return supported(avx512) ? avx512 : supported(avx2) ? avx2 : sse; }
std::atomic<int> g_isa{best()};
}  // namespace

bool sgemm_isa_supported(const std::string& isa) {
  for (int i = 0; i < 3; ++i)
    if (isa == kNames[i]) return supported(Isa(i));
  return false;
}

std::string sgemm_isa() { return kNames[g_isa.load()]; }
bool sgemm_isa_avx512() { return g_isa.load(std::memory_order_relaxed) == avx512; }

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
template <class E>
void run(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  switch (g_isa.load(std::memory_order_relaxed)) {
    case avx512: return sgemm_avx512<E>(M, N, K, A, B, C, ldc, accumulate);
    case avx2: return sgemm_avx2<E>(M, N, K, A, B, C, ldc, accumulate);
    default: return sgemm_sse<E>(M, N, K, A, B, C, ldc, accumulate);
  }
}
}  // namespace

bool sgemm_bf16_supported() {
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return cpu && g_isa.load(std::memory_order_relaxed) == avx512;
}
bool gemm_bf16_active() { return gemm_operands_bf16() && sgemm_bf16_supported(); }

GemmTile sgemm_tile() {
  if (gemm_bf16_active()) return {8, 32};  // sgemm_avx512bf16.cpp's Bf16Panels
  switch (g_isa.load(std::memory_order_relaxed)) {  // the BRISK_GEMM_MR x NV * W of each build
    case avx512: return {8, 32};
    case avx2: return {6, 16};
    default: return {4, 8};
  }
}

void sgemm(int64_t M, int64_t N, int64_t K, MatF A, MatF B, float* C, int64_t ldc, bool accumulate) {
  if (M > 0 && N > 0 && gemm_operands_bf16() && sgemm_bf16_supported()) return sgemm_avx512bf16<float>(M, N, K, A, B, C, ldc, accumulate);
  run(M, N, K, A, B, C, ldc, accumulate);
}
void sgemm(int64_t M, int64_t N, int64_t K, Mat<BFloat16> A, Mat<BFloat16> B, float* C, int64_t ldc, bool accumulate) {
  run(M, N, K, A, B, C, ldc, accumulate);
}
void sgemm(int64_t M, int64_t N, int64_t K, Mat<Half> A, Mat<Half> B, float* C, int64_t ldc, bool accumulate) {
  run(M, N, K, A, B, C, ldc, accumulate);
}

}  // namespace brisk::kern::cpu
