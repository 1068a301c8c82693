// The op dispatch table: (op name, device type, dtype) -> kernels, best first.
// Each backend (ref, cpu, openblas, cuda, ...) registers what it supports with
// a priority. A kernel returns false to decline a call it does not do well
// (e.g. a vendor GEMM on tiny or strided shapes), and the next one is tried;
// the ref backend accepts everything it registers for, so it is the fallback.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace brisk {

struct KernelArgs {
  std::span<const Tensor> in;
  std::span<Tensor> out;  // allocated by the op layer
  const void* params = nullptr;  // op-specific struct from core/kernel_params.h
};
using KernelFn = bool (*)(const KernelArgs&);

namespace backend_priority {
constexpr int ref = 0;      // kernels/cpu/ref: the oracle
constexpr int native = 10;  // kernels/cpu, kernels/cuda: hand-written, optimized
constexpr int vendor = 20;  // kernels/vendor: OpenBLAS, cuBLAS, cuDNN
}  // namespace backend_priority

// Registers fn for (op, dev, dtype). op must be listed in core/op_keys.h, and
// the registering file (`file`: by default the caller's, through the
// __builtin_FILE() that GCC, Clang and nvcc share; std::source_location is
// missing from Clang 14) must be named after op's stem (<stem>.cpp/.cu, or
// <vendor>_<stem>.* for a vendor backend): anything else throws, so a kernel
// cannot hide under another name.
void register_kernel(const std::string& op, DeviceType dev, DType dtype, const std::string& backend,
                     int priority, KernelFn fn, const char* file = __builtin_FILE());

// What register_kernel recorded, for tests, docs and `brisk info`.
struct KernelRegistration {
  std::string op, backend, file;  // file: as the compiler named it
  DeviceType dev;
  DType dtype;
  int priority;
};
std::vector<KernelRegistration> kernel_registrations();

// Run the best kernel that accepts the call. Throws brisk::Error naming the op,
// device and dtype when nothing is registered.
void dispatch(const char* op, Device dev, DType dtype, const KernelArgs& args);
// Like dispatch, but returns false instead of throwing when no kernel is
// registered or every kernel declines: for fused overrides of a composite.
bool try_dispatch(const char* op, Device dev, DType dtype, const KernelArgs& args);
// Convenience: dispatch on in[0]'s device and dtype.
void dispatch(const char* op, std::span<const Tensor> in, std::span<Tensor> out,
              const void* params = nullptr);

// Backends registered for a key, best first (for tests, docs and `brisk info`).
std::vector<std::string> kernel_backends(const std::string& op, DeviceType dev, DType dtype);
// The backend that ran most recently on this thread, overall or for one op
// (tests use it to check that a kernel claimed the calls it should).
const std::string& last_backend();
std::string last_backend(const std::string& op);

// While alive, only kernels of `backend` run on this thread, with the ref
// oracle as fallback where `backend` has no kernel or declines. Tests use it to
// run an optimized kernel and the oracle on the same inputs.
class ForceBackend {
 public:
  explicit ForceBackend(std::string backend);
  ~ForceBackend();
  ForceBackend(const ForceBackend&) = delete;
  ForceBackend& operator=(const ForceBackend&) = delete;

 private:
  std::string prev_;
};

// While alive, `backend` is skipped on this thread (e.g. run native, not openblas).
class DisableBackend {
 public:
  explicit DisableBackend(std::string backend);
  ~DisableBackend();
  DisableBackend(const DisableBackend&) = delete;
  DisableBackend& operator=(const DisableBackend&) = delete;

 private:
  std::string prev_;
};

// Process-wide backend choice for one op: `backend`'s kernels are tried first
// (in every device/dtype table of `op`), the rest after it in priority order;
// "" restores pure priority order. Call it at start-up or between steps, not
// while other threads dispatch. Throws for an unknown backend.
void prefer_backend(const std::string& op, const std::string& backend);
std::string preferred_backend(const std::string& op);  // "" when none
// The GEMM switch (also the environment variable BRISK_GEMM, read once at
// start-up): "native" (default: kernels/cpu sgemm), "openblas", or "auto"
// (priority order: OpenBLAS where it accepts the shape).
void set_gemm_backend(const std::string& name);
std::string gemm_backend();
// The convolution switch on CUDA (also BRISK_CONV, read once at start-up):
// "native" (default: im2col + GEMM and brisk's batch-norm kernels) or "cudnn"
// (conv2d_fwd/bwd_* and batch_norm_fwd/bwd through cuDNN, which declines
// unless selected). "gemm" names: native, openblas, cublas, auto.
void set_conv_backend(const std::string& name);
std::string conv_backend();

void init_kernels();  // registers every compiled-in backend once (idempotent)

// Per-(op, backend) call counts and kernel seconds, collected while enabled
// (also by setting BRISK_PROFILE=1, which prints the table at exit).
struct OpStat {
  std::string op, backend;
  int64_t calls = 0;
  double seconds = 0;
  double max_seconds = 0;  // the longest single call: a VM preemption or page faults land in one call
  double flops = 0;  // GEMM/conv: 2 per multiply-add; other ops: 1 per output element
  double bytes = 0;  // operands read + results written, once each (a lower bound on traffic)
};
void set_op_profiling(bool on);
std::vector<OpStat> op_stats();  // sorted by time, descending
void reset_op_stats();
std::string format_op_stats(const std::vector<OpStat>& stats);

}  // namespace brisk
