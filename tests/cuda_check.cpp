// A CTest entry that reports CUDA availability visibly: exits 77 (reported by
// CTest as "Skipped") when no GPU is present, so a skipped CUDA suite is never
// mistaken for a passing one.
#include <cstdio>

#include "brisk.h"

int main() {
  int n = brisk::cuda_device_count();
  if (n == 0) {
    std::printf("CUDA: no device found (CUDA %s); CUDA tests skipped\n",
                brisk::cuda_compiled() ? "compiled in" : "not compiled");
    return 77;
  }
  std::printf("CUDA: %d device(s) found\n", n);
  return 0;
}
