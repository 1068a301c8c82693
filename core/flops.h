// A process-wide count of floating-point operations in the compute-heavy ops
// (GEMM, conv2d, sparse linear: 2 per multiply-add), incremented by the op
// layer for every forward and backward call. The trainer records its
// training-time delta; `brisk speedup` reports it next to wall-clock time.
#pragma once
#include <atomic>
#include <cstdint>

namespace brisk {

inline std::atomic<int64_t>& flop_counter() {
  static std::atomic<int64_t> c{0};
  return c;
}
inline void count_flops(int64_t n) { flop_counter().fetch_add(n, std::memory_order_relaxed); }
inline int64_t flops_counted() { return flop_counter().load(std::memory_order_relaxed); }

}  // namespace brisk
