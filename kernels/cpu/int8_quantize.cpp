// Threaded int8 per-row quantization: rows split over the pool, each row by
// the shared formula of kernels/cpu/int8_row.h (so results equal the ref's).
// A non-finite row is reported after the parallel pass (the first one).
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/int8_row.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

bool int8_quantize_rows(const KernelArgs& a) {
  int64_t R = a.in[0].size(0), C = a.in[0].size(1);
  const float* x = ptr<float>(a.in[0]);
  auto* q = reinterpret_cast<int8_t*>(ptr<uint8_t>(a.out[0]));
  float* s = ptr<float>(a.out[1]);
  std::vector<char> bad(size_t(R), 0);
  parallel_for(0, R, rows_per_task(C, 16384), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) bad[size_t(i)] = !quantize_int8_row(x + i * C, C, q + i * C, s + i);
  });
  for (int64_t i = 0; i < R; ++i)
    BRISK_CHECK(!bad[size_t(i)], "op quantize_rows_int8: row ", i, " holds a non-finite value");
  return true;
}

void register_int8_quantize() {
  register_kernel("int8_quantize_rows", DeviceType::cpu, DType::f32, "cpu", backend_priority::native,
                  &int8_quantize_rows);
}

}  // namespace brisk::kern::cpu
