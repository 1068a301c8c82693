// CUDA: the device is a real field of tensors and of the dispatch key. With no
// GPU (or no CUDA build) these tests say so visibly and skip.
#include "tests/helpers.h"

using namespace bt;

TEST_CASE("cuda: device availability is reported", "[cuda]") {
  int n = cuda_device_count();
  if (n == 0) {
    WARN("SKIPPED: no CUDA device found (CUDA " << (cuda_compiled() ? "compiled in" : "not compiled")
                                             << "); CUDA tests skipped");
    CHECK_THROWS_AS(zeros({2}, TensorOptions(DType::f32, Device(DeviceType::cuda))), brisk::Error);
    return;
  }
  CHECK(cuda_compiled());
  // The CUDA backend issue adds kernels; until then ops on cuda report no kernel.
  CHECK(kernel_backends("binary", DeviceType::cuda, DType::f32).empty());
}

TEST_CASE("cuda: dispatch keys include the device", "[cuda]") {
  CHECK_FALSE(kernel_backends("gemm", DeviceType::cpu, DType::f32).empty());
  CHECK(kernel_backends("gemm", DeviceType::meta, DType::f32).empty());
}
