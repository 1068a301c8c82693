// Checked integer arithmetic for sizes that come from outside (file headers,
// checkpoints, flags): an overflow is a brisk::Error naming what was being
// sized, never a wrapped number that later indexes out of bounds.
#pragma once
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace brisk {

// a * b, or brisk::Error "<what>: size overflows (a x b)".
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  BRISK_CHECK(!__builtin_mul_overflow(a, b, &r), what, ": size overflows 64-bit integers (", a, " x ", b, ")");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  BRISK_CHECK(!__builtin_add_overflow(a, b, &r), what, ": size overflows 64-bit integers (", a, " + ", b, ")");
  return r;
}

// Product of dims, each >= 0; throws on a negative dim or an overflow.
inline int64_t checked_numel(const std::vector<int64_t>& dims, const char* what) {
  int64_t n = 1;
  for (int64_t d : dims) {
    BRISK_CHECK(d >= 0, what, ": negative dimension ", d);
    n = checked_mul(n, d, what);
  }
  return n;
}

// Bytes for n elements of `elem` bytes each, checked.
inline size_t checked_bytes(int64_t n, size_t elem, const char* what) {
  return size_t(checked_mul(n, int64_t(elem), what));
}

}  // namespace brisk
