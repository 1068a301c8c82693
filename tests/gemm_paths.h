// Runs a test body once per CPU GEMM path (AMX tiles, AVX512-BF16 dot
// products, the f32 kernels of each ISA), selecting the path for the body and
// restoring automatic dispatch afterwards; a path this CPU lacks says SKIPPED
// instead of passing silently (development machines differ: some have AMX,
// some only AVX512-BF16).
#pragma once
#include <initializer_list>
#include <string>

#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"

namespace bt {

struct GemmPath {
  const char* isa;           // sgemm ISA: "avx512", "avx2", "sse"
  const char* bf16 = "";     // bf16 GEMM kernel ("amx", "avx512bf16"), "" for the f32 kernel's rounded copies
  bool bf16_scope = false;   // for tests that decide it per path (GemmBf16Scope)
};

inline std::string gemm_path_name(const GemmPath& p) {
  return std::string(p.isa) + (*p.bf16 ? std::string(" ") + p.bf16 : "") + (p.bf16_scope ? " (bf16 scope)" : "");
}

// body(const GemmPath&) runs with the path selected; SKIPPED for paths the CPU lacks.
template <class Body>
void for_each_gemm_path(std::initializer_list<GemmPath> paths, Body&& body) {
  struct Restore {
    std::string kernel = kern::cpu::bf16_gemm_kernel();
    ~Restore() {
      kern::cpu::set_sgemm_isa("auto");
      kern::cpu::set_bf16_gemm_kernel(kernel);
    }
  } restore;
  for (const GemmPath& path : paths) {
    bool have =
        kern::cpu::sgemm_isa_supported(path.isa) && (!*path.bf16 || kern::cpu::bf16_gemm_kernel_supported(path.bf16));
    if (!have) {
      WARN("SKIPPED: this CPU lacks the GEMM path " << gemm_path_name(path));
      continue;
    }
    kern::cpu::set_sgemm_isa(path.isa);
    if (*path.bf16) kern::cpu::set_bf16_gemm_kernel(path.bf16);
    INFO("GEMM path " << gemm_path_name(path));
    body(path);
  }
}

}  // namespace bt
