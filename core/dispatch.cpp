// Dispatch table storage and lookup.
#include "core/dispatch.h"

#include "core/cuda.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <mutex>
#include <string_view>
#include <tuple>

#include "core/env_switch.h"
#include "core/error.h"
#include "core/kernel_params.h"
#include "core/op_keys.h"

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

std::atomic<bool> g_profiling{false};
std::mutex g_stats_mu;
// Never destroyed: the BRISK_PROFILE report reads it from an atexit handler.
std::map<std::pair<std::string, std::string>, OpStat>& stats_table() {
  static auto* t = new std::map<std::pair<std::string, std::string>, OpStat>();
  return *t;
}

const bool g_env_profiling = [] {
  if (env_switch("BRISK_PROFILE", false)) {
    g_profiling = true;
    std::atexit([] { std::fputs(format_op_stats(op_stats()).c_str(), stderr); });
  }
  return true;
}();

thread_local std::string t_forced;
thread_local std::string t_disabled;
thread_local std::string t_last;
thread_local std::map<std::string, std::string> t_last_by_op;

std::map<std::string, std::string>& preferences() {
  static std::map<std::string, std::string> p;
  return p;
}
// A preference may name several backends, "cpu,cuda": one per device table.
std::vector<std::string> split_backends(const std::string& pref) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < pref.size()) {
    size_t end = pref.find(',', start);
    if (end == std::string::npos) end = pref.size();
    if (end > start) out.push_back(pref.substr(start, end - start));
    start = end + 1;
  }
  return out;
}
void sort_entries(const std::string& op, std::vector<Entry>& v) {
  auto it = preferences().find(op);
  std::vector<std::string> pref = split_backends(it == preferences().end() ? "" : it->second);
  auto preferred = [&](const Entry& e) { return std::find(pref.begin(), pref.end(), e.backend) != pref.end(); };
  std::stable_sort(v.begin(), v.end(), [&](const Entry& a, const Entry& b) {
    bool pa = preferred(a), pb = preferred(b);
    if (pa != pb) return pa;
    return a.priority > b.priority;
  });
}
std::string g_gemm_backend = "native";
std::string g_conv_backend = "native";

}  // namespace

std::vector<KernelRegistration>& registrations() {
  static std::vector<KernelRegistration> r;
  return r;
}

void register_kernel(const std::string& op, DeviceType dev, DType dtype, const std::string& backend,
                     int priority, KernelFn fn, const char* where) {
  const OpKeyInfo* info = find_op_key(op);
  BRISK_CHECK(info, "register_kernel: op '", op, "' (backend ", backend, ", ", where,
              ") is not listed in core/op_keys.h");
  std::string file = std::filesystem::path(where).stem().string();
  std::string stem = info->stem;
  bool named = file == stem || (file.size() > stem.size() && file.ends_with("_" + stem));
  BRISK_CHECK(named, "register_kernel: op '", op, "' (backend ", backend, ") is registered from ", where,
              "; its kernels live in files named after its stem '", stem, "' (", stem, ".cpp, ", stem,
              ".cu or <vendor>_", stem, ".*)");
  registrations().push_back({op, backend, where, dev, dtype, priority});
  auto& v = table()[Key{op, dev, dtype}];
  v.push_back({backend, priority, fn});
  sort_entries(op, v);
}


void prefer_backend_locked(const std::string& op, const std::string& backend);
void set_gemm_backend_locked(const std::string& name);
void set_conv_backend_locked(const std::string& name);

void init_kernels() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_ref_kernels();
    register_cpu_kernels();
    register_vendor_kernels();
    register_cuda_kernels();
    // Environment switches read once; a bad value is reported and the default kept.
    auto from_env = [](const char* var, void (*set)(const std::string&)) {
      const char* e = std::getenv(var);
      std::string want = e && *e ? e : "native";
      try {
        set(want);
      } catch (const Error& err) {
        std::fprintf(stderr, "brisk: ignoring %s=%s: %s\n", var, want.c_str(), err.what());
        set("native");
      }
    };
    from_env("BRISK_GEMM", &set_gemm_backend_locked);
    from_env("BRISK_CONV", &set_conv_backend_locked);
  });
}

// Whether `backend` has a kernel for op on any device and dtype.
static bool has_backend(const char* op, const std::string& backend) {
  for (auto& [k, v] : table())
    if (std::get<0>(k) == op)
      for (auto& e : v)
        if (e.backend == backend) return true;
  return false;
}

// The *_locked forms run inside init_kernels' call_once (no re-entry).
void prefer_backend_locked(const std::string& op, const std::string& backend) {
  if (!backend.empty()) {
    for (const std::string& name : split_backends(backend))  // every named backend must exist for op
      BRISK_CHECK(has_backend(op.c_str(), name), "prefer_backend: no backend '", name, "' is registered for op ", op);
    preferences()[op] = backend;
  } else {
    preferences().erase(op);
  }
  for (auto& [k, v] : table())
    if (std::get<0>(k) == op) sort_entries(op, v);
}

void prefer_backend(const std::string& op, const std::string& backend) {
  init_kernels();
  prefer_backend_locked(op, backend);
}

std::string preferred_backend(const std::string& op) {
  auto it = preferences().find(op);
  return it == preferences().end() ? "" : it->second;
}

void set_gemm_backend_locked(const std::string& name) {
  if (name == "native") {
    prefer_backend_locked("gemm", has_backend("gemm", "cuda") ? "cpu,cuda" : "cpu");
  } else if (name == "openblas") {
    BRISK_CHECK(has_backend("gemm", "openblas"), "set_gemm_backend: OpenBLAS is not compiled in (configure with -DBRISK_OPENBLAS=ON)");
    prefer_backend_locked("gemm", has_backend("gemm", "cuda") ? "openblas,cuda" : "openblas");
  } else if (name == "cublas") {
    BRISK_CHECK(has_backend("gemm", "cublas"), "set_gemm_backend: cuBLAS is not compiled in (brisk was built "
                "without CUDA)");
    prefer_backend_locked("gemm", "cpu,cublas");
  } else if (name == "auto") {
    prefer_backend_locked("gemm", "");
  } else {
    BRISK_FAIL("set_gemm_backend: unknown GEMM backend '", name, "' (known: native, openblas, cublas, auto)");
  }
  g_gemm_backend = name;
}

void set_gemm_backend(const std::string& name) {
  init_kernels();
  set_gemm_backend_locked(name);
}

static const char* kConvOps[] = {"conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight", "batch_norm_fwd",
                                 "batch_norm_bwd"};

void set_conv_backend_locked(const std::string& name) {
  if (name == "native") {
    // brisk's own kernels first (cuDNN declines anyway unless selected)
    for (const char* op : kConvOps) preferences()[op] = "cpu,cuda";
  } else if (name == "cudnn") {
    BRISK_CHECK(has_backend("conv2d_fwd", "cudnn"), "set_conv_backend: cuDNN is not compiled in (needs CUDA "
                "and cuDNN 9; see BRISK_CUDNN in CMakeLists.txt)");
    for (const char* op : kConvOps) preferences()[op] = "cudnn";
  } else {
    BRISK_FAIL("set_conv_backend: unknown convolution backend '", name, "' (known: native, cudnn)");
  }
  for (const char* op : kConvOps)
    for (auto& [k, v] : table())
      if (std::get<0>(k) == op) sort_entries(op, v);
  g_conv_backend = name;
}

void set_conv_backend(const std::string& name) {
  init_kernels();
  set_conv_backend_locked(name);
}

std::string conv_backend() {
  init_kernels();
  return g_conv_backend;
}

std::string gemm_backend() {
  init_kernels();
  return g_gemm_backend;
}

void dispatch(const char* op, Device dev, DType dtype, const KernelArgs& args) {
  if (try_dispatch(op, dev, dtype, args)) return;
  BRISK_FAIL("op ", op, ": no kernel for device=", dev, " dtype=", dtype,
             t_forced.empty() ? "" : " in forced backend '" + t_forced + "'",
             dtype == DType::f16 || dtype == DType::bf16
                 ? " (16-bit tensors have elementwise and GEMM kernels; compute other ops in f32 under "
                   "autocast, core/autocast.h, or cast with .to(DType::f32))"
                 : "");
}

// Work and traffic of one kernel call, for the op profile.
static void op_cost(const char* op, const KernelArgs& a, double& flops, double& bytes) {
  bytes = 0;
  for (const Tensor& t : a.in)
    if (t.defined()) bytes += double(t.numel()) * double(t.element_size());
  for (const Tensor& t : a.out)
    if (t.defined()) bytes += double(t.numel()) * double(t.element_size());
  std::string_view o(op);
  if (o == "gemm") {
    flops = 2.0 * double(a.in[0].size(0)) * double(a.in[0].size(1)) * double(a.in[0].size(2)) * double(a.in[1].size(2));
  } else if (o.substr(0, 7) == "conv2d_" && a.params) {
    const Geom2d& g = static_cast<const ConvParams*>(a.params)->g;
    int64_t O = o == "conv2d_bwd_weight" ? a.out[0].size(0) : a.in[1].size(0);
    flops = 2.0 * double(g.N) * double(O) * double(g.C * g.kh * g.kw) * double(g.Ho * g.Wo);
  } else if (o.substr(0, 10) == "attention_" && a.params) {
    const auto& p = *static_cast<const AttentionParams*>(a.params);
    const Tensor& q = a.in[o == "attention_fwd" ? 0 : 1];
    const Tensor& k = a.in[o == "attention_fwd" ? 1 : 2];
    flops = (o == "attention_fwd" ? 4.0 : 10.0) * double(q.size(0) * q.size(1)) * double(q.size(3)) *
            double(attention_pairs(q.size(2), k.size(2), p.causal));
  } else if (o.substr(0, 10) == "csr_linear") {
    flops = 2.0 * double(a.in[o == "csr_linear_bwd_weight" ? 3 : 2].numel()) * double(a.in[0].size(1));
  } else {
    flops = !a.out.empty() && a.out[0].defined() ? double(a.out[0].numel()) : 0.0;
  }
}

bool try_dispatch(const char* op, Device dev, DType dtype, const KernelArgs& args) {
  init_kernels();
  // A kernel must never see another device's pointer (a host pointer in a
  // CUDA kernel is a crash, not an error), so mixed devices stop here.
  for (const Tensor& t : args.in)
    BRISK_CHECK(!t.defined() || t.device() == dev, "op ", op, ": expected every tensor on ", dev, ", got one on ",
                t.device(), " (shape ", shape_str(t.shape()), "); move it with .to(", dev, ")");
  for (const Tensor& t : args.out)
    BRISK_CHECK(!t.defined() || t.device() == dev, "op ", op, ": expected every output on ", dev, ", got one on ",
                t.device(), " (shape ", shape_str(t.shape()), ")");
  auto it = table().find(Key{op, dev.type, dtype});
  if (it != table().end()) {
    for (const Entry& e : it->second) {
      if (!t_forced.empty() && e.backend != t_forced && e.backend != "ref") continue;
      if (!t_disabled.empty() && e.backend == t_disabled) continue;
      bool prof = g_profiling.load(std::memory_order_relaxed);
      // CUDA kernels run asynchronously: while profiling, each call waits for
      // the work queued before it and for its own, so its time is its own.
      bool sync = prof && dev.type == DeviceType::cuda;
      if (sync) cuda::synchronize();
      auto t0 = prof ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      if (e.fn(args)) {
        if (sync) cuda::synchronize();
        if (prof) {
          double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          std::lock_guard<std::mutex> lk(g_stats_mu);
          OpStat& st = stats_table()[{op, e.backend}];
          st.op = op;
          st.backend = e.backend;
          st.calls++;
          st.seconds += dt;
          st.max_seconds = std::max(st.max_seconds, dt);
          double f = 0, b = 0;
          op_cost(op, args, f, b);
          st.flops += f;
          st.bytes += b;
        }
        t_last = e.backend;
        t_last_by_op[op] = e.backend;
        return true;
      }
    }
  }
  return false;
}

void dispatch(const char* op, std::span<const Tensor> in, std::span<Tensor> out, const void* params) {
  BRISK_CHECK(!in.empty(), "op ", op, ": dispatch needs at least one input");
  dispatch(op, in[0].device(), in[0].dtype(), KernelArgs{in, out, params});
}

std::vector<KernelRegistration> kernel_registrations() {
  init_kernels();
  return registrations();
}

std::span<const OpKeyInfo> op_keys() {
#define BRISK_OP_KEY_INFO(key, stem) OpKeyInfo{#key, #stem},
  static constexpr OpKeyInfo keys[] = {BRISK_OP_KEYS(BRISK_OP_KEY_INFO)};
#undef BRISK_OP_KEY_INFO
  return keys;
}

const OpKeyInfo* find_op_key(std::string_view key) {
  for (const OpKeyInfo& k : op_keys())
    if (key == k.key) return &k;
  return nullptr;
}

std::vector<std::string> kernel_backends(const std::string& op, DeviceType dev, DType dtype) {
  init_kernels();
  std::vector<std::string> names;
  auto it = table().find(Key{op, dev, dtype});
  if (it != table().end())
    for (const Entry& e : it->second) names.push_back(e.backend);
  return names;
}

void set_op_profiling(bool on) { g_profiling = on; }

std::vector<OpStat> op_stats() {
  std::lock_guard<std::mutex> lk(g_stats_mu);
  std::vector<OpStat> v;
  for (auto& [k, s] : stats_table()) v.push_back(s);
  std::sort(v.begin(), v.end(), [](const OpStat& a, const OpStat& b) { return a.seconds > b.seconds; });
  return v;
}

void reset_op_stats() {
  std::lock_guard<std::mutex> lk(g_stats_mu);
  stats_table().clear();
}

std::string format_op_stats(const std::vector<OpStat>& stats) {
  double total = 0;
  for (auto& s : stats) total += s.seconds;
  std::ostringstream os;
  char line[160];
  std::snprintf(line, sizeof line, "%-28s %-9s %10s %10s %6s\n", "op", "backend", "calls", "seconds", "%");
  os << line;
  for (auto& s : stats) {
    std::snprintf(line, sizeof line, "%-28s %-9s %10lld %10.3f %6.1f\n", s.op.c_str(), s.backend.c_str(),
                  (long long)s.calls, s.seconds, total > 0 ? 100 * s.seconds / total : 0.0);
    os << line;
  }
  return os.str();
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
