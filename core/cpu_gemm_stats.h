// What the CPU GEMM kernels (kernels/cpu/gemm) tell the layers above them,
// which may not include the kernels' headers (the profiler, in train/).
#pragma once
#include <cstdint>

namespace brisk {

// Whether the f32 GEMM skips the k where a whole A strip is zero (exact:
// the dense product's bits; kernels/cpu/gemm/zero_skip.h), and the
// multiply-adds it has left out so since the start, on all threads.
bool cpu_gemm_zero_skip_on();
int64_t cpu_gemm_zero_skipped_macs();

}  // namespace brisk
