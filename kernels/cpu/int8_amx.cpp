// The int8 GEMM on AMX-INT8 tiles (see int8_amx.h). A 32x32 block of C in
// four int32 tiles (tmm0-3), two 16-row A tiles (tmm4-5, 64 k each) and two
// 16-column B tiles (tmm6-7, 16 groups of 4 k), four tdpbusd per 64 k; the
// epilogue dequantizes from a tile store.
#include "kernels/cpu/int8_amx.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "core/env_switch.h"
#include "core/error.h"
#include "kernels/cpu/gemm/amx_tile.h"

#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics

namespace brisk::kern::cpu {

namespace {
bool amx_int8_usable() {
  static const bool ok =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && amx::amx_usable(25);  // the quantization passes use AVX-512 F/BW
  return ok;
}
bool vnni_usable() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}
bool usable(const std::string& n) { return n == "amx" ? amx_int8_usable() : n == "vnni" ? vnni_usable() : false; }
std::string best() { return amx_int8_usable() ? "amx" : "vnni"; }
// 1: amx, 0: vnni. BRISK_INT8_GEMM=auto|vnni|amx read once.
std::atomic<int>& g_kernel() {
  static std::atomic<int> k{env_choice(
      "BRISK_INT8_GEMM", {"vnni", "amx"}, [](int i) { return usable(i ? "amx" : "vnni"); }, int(best() == "amx"),
      "kernel")};
  return k;
}
}  // namespace

bool int8_gemm_kernel_supported(const std::string& name) { return usable(name); }
std::string int8_gemm_kernel() { return g_kernel().load() ? "amx" : "vnni"; }
void set_int8_gemm_kernel(const std::string& name) {
  if (name == "auto") {
    g_kernel() = int(best() == "amx");
    return;
  }
  BRISK_CHECK(name == "amx" || name == "vnni", "set_int8_gemm_kernel: unknown kernel '", name,
              "' (known: auto, amx, vnni)");
  BRISK_CHECK(usable(name), "set_int8_gemm_kernel: this CPU (or OS) does not support ", name);
  g_kernel() = int(name == "amx");
}

void int8_amx_rows(const uint8_t* au, int64_t K4, const int8_t* bp, int64_t Np, const int32_t* corr, const float* sa,
                   const float* sb, float* c, int64_t M, int64_t N, int64_t i0, int64_t i1) {
  amx::ensure_config();
  const int64_t sa_bytes = K4 * 4, sb_bytes = Np * 4, steps = K4 / 16;
  alignas(64) int32_t t[32][32];
  for (int64_t j = 0; j < N; j += 32)
    for (int64_t i = i0; i < i1; i += 32) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      const uint8_t* a0 = au + i * sa_bytes;
      for (int64_t s = 0; s < steps; ++s) {
        const int8_t* b0 = bp + (s * 16 * Np + j) * 4;  // 16 rows of 4 k x 16 columns: columns j..j+15
        _tile_loadd(4, a0 + s * 64, sa_bytes);
        _tile_loadd(6, b0, sb_bytes);
        _tile_loadd(7, b0 + 64, sb_bytes);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_loadd(5, a0 + 16 * sa_bytes + s * 64, sa_bytes);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
      }
      _tile_stored(0, &t[0][0], 128);
      _tile_stored(1, &t[0][16], 128);
      _tile_stored(2, &t[16][0], 128);
      _tile_stored(3, &t[16][16], 128);
      int64_t rows = std::min<int64_t>(32, M - i), cols = std::min<int64_t>(32, N - j);
      for (int h = 0; h < 2 && 16 * h < cols; ++h) {
        int64_t w = std::min<int64_t>(16, cols - 16 * h);
        __mmask16 mk = w == 16 ? __mmask16(0xffff) : __mmask16((1u << w) - 1);
        __m512i cv = _mm512_loadu_si512(corr + j + 16 * h);
        __m512 sbv = _mm512_maskz_loadu_ps(mk, sb + j + 16 * h);
        for (int64_t r = 0; r < rows; ++r) {
          __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(&t[r][16 * h]), cv));
          v = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(sa[i + r])), sbv);
          _mm512_mask_storeu_ps(c + (i + r) * N + j + 16 * h, mk, v);
        }
      }
    }
}

}  // namespace brisk::kern::cpu
