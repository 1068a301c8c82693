// NCCL collectives for CUDA tensors (distributed.h: DeviceCollectives).
// Compiled only where CUDA, NCCL and MPI are all found (CMakeLists.txt); the
// stub in distributed.cpp says so otherwise.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "train/distributed.h"

namespace brisk::train::dist {

namespace {

void nccl_check(ncclResult_t rc, const char* what) {
  BRISK_CHECK(rc == ncclSuccess, "NCCL ", what, " failed: ", ncclGetErrorString(rc));
}

void cuda_check(cudaError_t rc, const char* what) {
  BRISK_CHECK(rc == cudaSuccess, "CUDA ", what, " failed: ", cudaGetErrorString(rc));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::f16: return ncclFloat16;
    case DType::bf16: return ncclBfloat16;
    case DType::i64: return ncclInt64;
    case DType::u8: case DType::boolean: return ncclUint8;
    default: BRISK_FAIL("NCCL: dtype ", dtype_name(t), " is not supported");
  }
}

// Device address of element [0, ...] (offset applied; raw_data() is cpu only).
void* dev_ptr(const Tensor& t) {
  return static_cast<char*>(t.storage()->data()) + t.unsafe_impl()->offset * int64_t(t.element_size());
}

class NcclCollectives final : public DeviceCollectives {
 public:
  NcclCollectives(ProcessGroup& host, int device) : size_(host.size()) {
    cuda_check(cudaSetDevice(device), "cudaSetDevice");
    ncclUniqueId id;
    if (host.is_main()) nccl_check(ncclGetUniqueId(&id), "GetUniqueId");
    host.broadcast(&id, sizeof id, 0);
    nccl_check(ncclCommInitRank(&comm_, host.size(), id, host.rank()), "CommInitRank");
    cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }
  ~NcclCollectives() override {
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }

  void all_reduce_mean_(const std::vector<Tensor>& ts) override {
    for (auto& t : ts)
      BRISK_CHECK(t.device().type == DeviceType::cuda && t.dtype() == DType::f32 && t.is_contiguous(),
                  "NCCL all_reduce_mean_: tensors must be contiguous f32 on cuda, got ", t.str());
    // One group call: NCCL fuses the tensors' reductions (its own bucketing).
    cuda_check(cudaDeviceSynchronize(), "synchronize before all-reduce");  // the backward's kernels are done
    nccl_check(ncclGroupStart(), "GroupStart");
    for (auto& t : ts)
      nccl_check(ncclAllReduce(dev_ptr(t), dev_ptr(t), size_t(t.numel()), ncclFloat32, ncclSum,
                               comm_, stream_),
                 "AllReduce");
    nccl_check(ncclGroupEnd(), "GroupEnd");
    cuda_check(cudaStreamSynchronize(stream_), "synchronize after all-reduce");
    for (auto& t : ts) const_cast<Tensor&>(t).mul_(1.0 / double(size_));
  }

  void broadcast_(const Tensor& t, int root) override {
    BRISK_CHECK(t.device().type == DeviceType::cuda && t.is_contiguous(),
                "NCCL broadcast_: tensor must be contiguous on cuda, got ", t.str());
    cuda_check(cudaDeviceSynchronize(), "synchronize before broadcast");
    nccl_check(ncclBroadcast(dev_ptr(t), dev_ptr(t), size_t(t.numel()), nccl_type(t.dtype()), root,
                             comm_, stream_),
               "Broadcast");
    cuda_check(cudaStreamSynchronize(stream_), "synchronize after broadcast");
  }

 private:
  int size_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

bool nccl_built() { return true; }

std::unique_ptr<DeviceCollectives> make_nccl(ProcessGroup& host, int device_index) {
  return std::make_unique<NcclCollectives>(host, device_index);
}

}  // namespace brisk::train::dist
