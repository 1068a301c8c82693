// The int8 GEMM on AMX-INT8 tiles (kernels/cpu/int8_amx.cpp): the same
// quantized operands as the VNNI kernel (A as u8 = q + 128, B packed
// [K4][Np][4] int8, the u8 shift removed with B's column sums), multiplied by
// tdpbusd, 16x64 by 64x16 bytes per instruction. Integer sums: the result is
// bit-identical to the reference and to the VNNI kernel.
#pragma once
#include <cstdint>
#include <string>

namespace brisk::kern::cpu {

// Which kernel backs "int8_gemm" on the cpu backend: "amx" where the CPU has
// AMX-INT8 and the OS grants tile state, else "vnni" (AVX512-VNNI).
// BRISK_INT8_GEMM=auto|amx|vnni sets it at start; set_int8_gemm_kernel
// switches it (tests run both), throwing brisk::Error for an unknown name or
// one the machine lacks.
std::string int8_gemm_kernel();
void set_int8_gemm_kernel(const std::string& name);
bool int8_gemm_kernel_supported(const std::string& name);

// Operand padding the AMX kernel needs: A rows of a multiple of 64 bytes and
// row count a multiple of 32 (padding rows and k hold u8 128, i.e. q = 0);
// B's K4 a multiple of 16 (padding rows zero); Np a multiple of 32.
constexpr int64_t kAmxInt8KAlign = 64, kAmxInt8MAlign = 32;

// Rows [i0, i1) of C [M, N] (i0 a multiple of 32) from au [Mp][K4 * 4],
// bp [K4][Np][4], corr [Np] = 128 * column sums of B, scales sa [Mp], sb [Np]:
// C = float(acc - corr[j]) * sa[i] * sb[j], the VNNI kernel's epilogue.
void int8_amx_rows(const uint8_t* au, int64_t K4, const int8_t* bp, int64_t Np, const int32_t* corr, const float* sa,
                   const float* sb, float* c, int64_t M, int64_t N, int64_t i0, int64_t i1);

}  // namespace brisk::kern::cpu
