// The native f32 GEMM: packed panels and a register-blocked micro-kernel, one
// build per instruction set (AVX-512, AVX2+FMA, portable SSE), picked at run
// time by CPUID. Other kernels (conv2d, linear) call it directly; the "gemm"
// dispatch op is a thin wrapper.
#pragma once
#include <cstdint>
#include <string>

namespace brisk::kern::cpu {

// A read-only matrix view: element (r, c) is p[r * rs + c * cs]. Any strides,
// so transposes are free (swap rs and cs).
struct MatF {
  const float* p;
  int64_t rs, cs;
  MatF t() const { return {p, cs, rs}; }
};

// C[M, N] (row stride ldc) = A[M, K] @ B[K, N], or C += A @ B when accumulate.
// Runs on the brisk thread pool when the problem is large enough and the call
// is not already inside a parallel region. Deterministic: each element of C is
// summed in the same k order whatever the thread count.
void sgemm(int64_t M, int64_t N, int64_t K, MatF A, MatF B, float* C, int64_t ldc, bool accumulate = false);

// The instruction set sgemm uses: "avx512", "avx2" or "sse". set_sgemm_isa
// forces one (tests run every micro-kernel the CPU supports); "auto" restores
// the CPUID choice. Throws brisk::Error for an unknown name or one the CPU
// lacks.
std::string sgemm_isa();
void set_sgemm_isa(const std::string& isa);
bool sgemm_isa_supported(const std::string& isa);

}  // namespace brisk::kern::cpu
