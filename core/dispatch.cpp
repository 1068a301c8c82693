// Dispatch table storage and lookup.
#include "core/dispatch.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "core/error.h"

namespace brisk {

void register_ref_kernels();     // kernels/cpu/ref
void register_cpu_kernels();     // kernels/cpu
void register_vendor_kernels();  // kernels/vendor (OpenBLAS when compiled in)
void register_cuda_kernels();    // kernels/cuda (no-op without CUDA)

namespace {

struct Entry {
  std::string backend;
  int priority;
  KernelFn fn;
};
using Key = std::tuple<std::string, DeviceType, DType>;

std::map<Key, std::vector<Entry>>& table() {
  static std::map<Key, std::vector<Entry>> t;
  return t;
}

thread_local std::string t_forced;
thread_local std::string t_disabled;
thread_local std::string t_last;
thread_local std::map<std::string, std::string> t_last_by_op;

}  // namespace

void register_kernel(const std::string& op, DeviceType dev, DType dtype, const std::string& backend,
                     int priority, KernelFn fn) {
  auto& v = table()[Key{op, dev, dtype}];
  v.push_back({backend, priority, fn});
  std::stable_sort(v.begin(), v.end(),
                   [](const Entry& a, const Entry& b) { return a.priority > b.priority; });
}

void init_kernels() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_ref_kernels();
    register_cpu_kernels();
    register_vendor_kernels();
    register_cuda_kernels();
  });
}

void dispatch(const char* op, Device dev, DType dtype, const KernelArgs& args) {
  init_kernels();
  auto it = table().find(Key{op, dev.type, dtype});
  if (it != table().end()) {
    for (const Entry& e : it->second) {
      if (!t_forced.empty() && e.backend != t_forced && e.backend != "ref") continue;
      if (!t_disabled.empty() && e.backend == t_disabled) continue;
      if (e.fn(args)) {
        t_last = e.backend;
        t_last_by_op[op] = e.backend;
        return;
      }
    }
  }
  BRISK_FAIL("op ", op, ": no kernel for device=", dev, " dtype=", dtype,
             t_forced.empty() ? "" : " in forced backend '" + t_forced + "'",
             dtype == DType::f16 || dtype == DType::bf16
                 ? " (f16/bf16 are storage types for now: cast to f32 with .to(DType::f32))"
                 : "");
}

void dispatch(const char* op, std::span<const Tensor> in, std::span<Tensor> out, const void* params) {
  BRISK_CHECK(!in.empty(), "op ", op, ": dispatch needs at least one input");
  dispatch(op, in[0].device(), in[0].dtype(), KernelArgs{in, out, params});
}

std::vector<std::string> kernel_backends(const std::string& op, DeviceType dev, DType dtype) {
  init_kernels();
  std::vector<std::string> names;
  auto it = table().find(Key{op, dev, dtype});
  if (it != table().end())
    for (const Entry& e : it->second) names.push_back(e.backend);
  return names;
}

const std::string& last_backend() { return t_last; }
std::string last_backend(const std::string& op) {
  auto it = t_last_by_op.find(op);
  return it == t_last_by_op.end() ? "" : it->second;
}

ForceBackend::ForceBackend(std::string backend) : prev_(t_forced) { t_forced = std::move(backend); }
ForceBackend::~ForceBackend() { t_forced = prev_; }
DisableBackend::DisableBackend(std::string backend) : prev_(t_disabled) {
  t_disabled = std::move(backend);
}
DisableBackend::~DisableBackend() { t_disabled = prev_; }

}  // namespace brisk
