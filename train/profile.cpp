// brisk profile (see profile.h).
#include "train/profile.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <vector>

#include "core/autocast.h"
#include "core/cpu_gemm_stats.h"
#include "core/dispatch.h"
#include "core/int8.h"
#include "core/ops.h"
#include "core/thread_pool.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace brisk::train {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

MachinePeak measure_peak() {
  MachinePeak p;
  {
    NoGradGuard ng;
    Tensor a = randn({1024, 1024}), b = randn({1024, 1024});
    matmul(a, b);  // warm-up: packing buffers, pool threads
    int reps = 0;
    auto t0 = Clock::now();
    while (since(t0) < 0.3 || reps < 3) {
      matmul(a, b);
      ++reps;
    }
    p.gflops = 2.0 * 1024 * 1024 * 1024 * reps / since(t0) / 1e9;
  }
  {
    size_t n = size_t(64) << 20;  // 64 MiB: well past the caches
    std::vector<char> src(n, 1), dst(n, 0);
    int threads = get_num_threads();
    auto copy = [&] {
      parallel_for(0, threads, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
          size_t a = n * size_t(t) / size_t(threads), b = n * size_t(t + 1) / size_t(threads);
          std::memcpy(dst.data() + a, src.data() + a, b - a);
        }
      });
    };
    copy();
    int reps = 0;
    auto t0 = Clock::now();
    while (since(t0) < 0.3 || reps < 3) {
      copy();
      ++reps;
    }
    p.gbps = 2.0 * double(n) * reps / since(t0) / 1e9;
  }
  return p;
}

LowPrecisionHardware low_precision_hardware(const std::string& device) {
  LowPrecisionHardware hw;
  if (device.rfind("cuda", 0) == 0) {
    hw.cuda = true;
    hw.bf16_kernel = "tensor cores";
    return hw;
  }
  hw.bf16_kernel = cpu_bf16_gemm_kernel();
  hw.int8 = int8_vnni_supported();
  return hw;
}

std::vector<std::string> profile_mitigations(const std::string& verdict, const LowPrecisionHardware& hw) {
  if (verdict == "data-bound")
    return {"the loader, not the model, sets the pace: more loader threads or cached/preprocessed inputs",
            "selection that visits fewer examples (select:kind=rs2|infobatch) also loads fewer"};
  if (verdict == "overhead-bound")
    return {"time goes to framework work between kernels (graph building, small ops): a larger batch size",
            "fewer, fused ops (Linear/Conv2d followed by ReLU already run fused)"};
  if (verdict == "memory-bound")  // (autocast keeps f32 storage: low precision moves no fewer bytes)
    return {"fusion of the memory-bound ops listed above into their neighbours",
            "selection reduces every op's work per epoch (select:kind=rs2|infobatch)",
            "fewer activations: structured pruning (prune:structure=channel) narrows the layers"};
  BRISK_CHECK(verdict == "compute-bound", "profile_mitigations: unknown verdict '", verdict,
              "' (known: compute-bound, memory-bound, data-bound, overhead-bound)");
  std::vector<std::string> advice = {"fewer FLOPs per step: structured pruning (prune:structure=channel) shrinks the GEMMs",
                                     "fewer steps per epoch: selection (select:kind=rs2|infobatch|selective-backprop)",
                                     "start small: growth (grow:kind=net2net|msg)"};
  if (hw.cuda)
    advice.push_back("cheaper FLOPs: low precision (precision:dtype=bf16, bf16 tensor cores)");
  else if (hw.bf16() || hw.int8)
    advice.push_back(std::string("cheaper FLOPs: low precision (") +
                     (hw.bf16() ? "precision:dtype=bf16 on this CPU's " + hw.bf16_kernel + " bf16 GEMM" : "") +
                     (hw.bf16() && hw.int8 ? ", or " : "") + (hw.int8 ? "precision:dtype=int8 on its VNNI int8 GEMM" : "") +
                     ")");
  else
    advice.push_back("no cheaper FLOPs on this CPU: it has no bf16 or int8 dot-product instructions, so "
                     "precision:dtype=bf16 would multiply in f32 and add its casts (slower than f32)");
  return advice;
}

json run_profile(TrainConfig cfg, const ProfileOptions& o, const MethodBuilder& methods) {
  BRISK_CHECK(o.steps >= 1, "profile: --steps must be >= 1, got ", o.steps);
  BRISK_CHECK(o.warmup >= 1, "profile: warm-up must be >= 1 step, got ", o.warmup);
  BRISK_CHECK(o.steps <= std::numeric_limits<int64_t>::max() - o.warmup, "profile: --steps ", o.steps,
              " plus the warm-up's ", o.warmup, " is past the largest step count");
  fs::path dir = fs::temp_directory_path() / ("brisk_profile_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  struct Cleanup {
    fs::path d;
    ~Cleanup() { std::error_code ec; fs::remove_all(d, ec); }
  } cleanup{dir};
  cfg.out = dir.string();
  cfg.progress = "off";
  cfg.eval_every = 0;
  cfg.max_steps = o.warmup + o.steps;
  if (cfg.threads > 0) set_num_threads(int(cfg.threads));
  MachinePeak peak = measure_peak();

  // A probe acts last at every batch end: it starts the clocks after the
  // warm-up steps and stops them after `steps` more. Its clock is the
  // trainer's training seconds, which leave out the evaluations (and their
  // checkpoints) at the epoch ends inside the window, as `brisk train`'s
  // train_seconds do; the op table leaves out their kernels.
  struct Probe : Callback {
    int64_t start, stop;
    PhaseTimes p0, p1;
    double s0 = 0, s1 = 0;  // training seconds at the window's ends
    int64_t z0 = 0, z1 = 0;  // the f32 GEMM's zero-skipped multiply-adds at the window's ends
    std::vector<OpStat> stats;
    bool on = false, done = false;
    Probe(int64_t a, int64_t b) : start(a), stop(b) {}
    std::string name() const override { return "profile"; }
    void on_batch_end(Trainer& t) override {
      if (t.state().step == start) {
        p0 = t.phases();
        reset_op_stats();
        set_op_profiling(on = true);
        s0 = t.training_seconds();
        z0 = cpu_gemm_zero_skipped_macs();
      }
      if (t.state().step == stop) {
        s1 = t.training_seconds();
        z1 = cpu_gemm_zero_skipped_macs();
        p1 = t.phases();
        set_op_profiling(on = false);
        stats = op_stats();
        done = true;
      }
    }
    void on_eval_start(Trainer&) override {
      if (on) set_op_profiling(false);
    }
    void on_eval_end(Trainer&) override {
      if (on) set_op_profiling(true);
    }
  };
  Trainer t(cfg, methods);
  auto probe_owner = std::make_unique<Probe>(o.warmup, o.warmup + o.steps);
  Probe* probe = probe_owner.get();
  t.add_callback(std::move(probe_owner));
  t.fit();  // ends with one evaluation (timed as its own phase)
  set_op_profiling(false);
  BRISK_CHECK(probe->done, "profile: the run ended after ", t.state().step, " steps, before the ",
              o.warmup + o.steps, " needed (fewer batches than --steps? lower --steps)");
  PhaseTimes p0 = probe->p0, p1 = t.phases();
  p1.data = probe->p1.data, p1.forward = probe->p1.forward, p1.backward = probe->p1.backward;
  p1.optimizer = probe->p1.optimizer, p1.methods = probe->p1.methods, p1.methods_outside = probe->p1.methods_outside;
  double wall = probe->s1 - probe->s0;
  auto stats = probe->stats;

  json r;
  r["config"] = cfg.to_json();
  r["steps"] = o.steps;
  r["threads"] = get_num_threads();
  r["peak"] = {{"gemm_gflops", peak.gflops}, {"copy_gbps", peak.gbps}};
  double phase_sum = 0;
  json ph;
  auto add = [&](const std::string& k, double v) {
    ph[k] = v;
    phase_sum += v;
  };
  add("data", p1.data - p0.data);
  add("forward", p1.forward - p0.forward);
  add("backward", p1.backward - p0.backward);
  add("optimizer", p1.optimizer - p0.optimizer);
  auto delta = [](const std::map<std::string, double>& a, const std::map<std::string, double>& b,
                  const std::string& k) { return (a.count(k) ? a.at(k) : 0.0) - (b.count(k) ? b.at(k) : 0.0); };
  for (auto& [m, s] : p1.methods) {
    if (m == "profile") continue;  // the probe itself
    // in the training seconds only: not the method's epoch-end or evaluation handlers
    add("method: " + m, delta(p1.methods, p0.methods, m) - delta(p1.methods_outside, p0.methods_outside, m));
  }
  r["phases"] = ph;
  r["eval_seconds"] = p1.eval - p0.eval;  // evaluations at epoch ends in the window and after it
  r["train_seconds"] = wall;
  r["other_seconds"] = std::max(0.0, wall - phase_sum);  // progress, the loop's bookkeeping
  double kernel_s = 0, heavy_s = 0, heavy_flops = 0;
  double balance = peak.gflops / std::max(peak.gbps, 1e-9);  // FLOP per byte where the two peaks meet
  for (auto& s : stats) {
    double intensity = s.bytes > 0 ? s.flops / s.bytes : 0;
    bool compute = intensity >= balance / 4;  // GEMM-like: limited by arithmetic, not bytes
    kernel_s += s.seconds;
    if (compute) heavy_s += s.seconds, heavy_flops += s.flops;
    r["ops"].push_back({{"op", s.op}, {"backend", s.backend}, {"calls", s.calls}, {"seconds", s.seconds},
                        {"max_call_seconds", s.max_seconds},
                        {"flops", s.flops}, {"bytes", s.bytes},
                        {"gflops", s.seconds > 0 ? s.flops / s.seconds / 1e9 : 0.0},
                        {"gbps", s.seconds > 0 ? s.bytes / s.seconds / 1e9 : 0.0},
                        {"pct_of_peak", s.seconds > 0 ? 100.0 * (compute ? s.flops / s.seconds / 1e9 / peak.gflops
                                                                       : s.bytes / s.seconds / 1e9 / peak.gbps)
                                                      : 0.0},
                        {"bound", compute ? "compute" : "memory"}});
  }
  r["kernel_seconds"] = kernel_s;
  // Exact zero skipping in the CPU f32 GEMM: the multiply-adds it left out
  // in the window (outside it too if an evaluation ran inside: its products
  // are not told apart), against the compute-bound ops' FLOPs (which count
  // them as done: the GFLOP/s above are dense-equivalent).
  double left = 2.0 * double(probe->z1 - probe->z0);
  r["zero_skip"] = {{"on", cpu_gemm_zero_skip_on()}, {"gflop_left_out", left / 1e9},
                    {"share_of_compute_flops", heavy_flops > 0 ? std::min(1.0, left / heavy_flops) : 0.0}};
  double step_s = wall / double(o.steps);
  r["step_ms"] = 1000 * step_s;
  // Verdict: the largest share of the step decides.
  double data_f = (p1.data - p0.data) / std::max(wall, 1e-12);
  double overhead_f = std::max(0.0, wall - kernel_s - (p1.data - p0.data)) / std::max(wall, 1e-12);
  double heavy_f = heavy_s / std::max(wall, 1e-12), light_f = (kernel_s - heavy_s) / std::max(wall, 1e-12);
  double top = std::max({data_f, overhead_f, heavy_f, light_f});
  std::string verdict = top == data_f       ? "data-bound"
                        : top == overhead_f ? "overhead-bound"
                        : top == heavy_f    ? "compute-bound"
                                            : "memory-bound";
  LowPrecisionHardware hw = low_precision_hardware(cfg.device);
  r["low_precision_hardware"] = {{"bf16_gemm", hw.bf16() ? hw.bf16_kernel : "none"}, {"int8_gemm", hw.int8}};
  r["shares"] = {{"data", data_f}, {"overhead", overhead_f}, {"compute_kernels", heavy_f}, {"memory_kernels", light_f}};
  r["verdict"] = verdict;
  r["mitigations"] = profile_mitigations(verdict, hw);
  return r;
}

std::string format_profile(const json& r) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "brisk profile: %s, %lld steps of batch %lld on %d threads: %.2f ms per step\n",
                r["config"]["model"].get<std::string>().c_str(), (long long)r["steps"].get<int64_t>(),
                (long long)r["config"]["batch-size"].get<int64_t>(), r["threads"].get<int>(), r["step_ms"].get<double>());
  os << line;
  std::snprintf(line, sizeof line, "machine peaks (measured): GEMM %.0f GFLOP/s, memory copy %.1f GB/s\n\n",
                r["peak"]["gemm_gflops"].get<double>(), r["peak"]["copy_gbps"].get<double>());
  os << line << "phase                              seconds       %\n";
  double wall = r["train_seconds"].get<double>();
  auto row = [&](const std::string& k, double v) {
    std::snprintf(line, sizeof line, "%-32s %9.3f %7.1f\n", k.c_str(), v, 100 * v / std::max(wall, 1e-12));
    os << line;
  };
  for (auto& [k, v] : r["phases"].items()) row(k, v.get<double>());
  row("other", r["other_seconds"].get<double>());
  std::snprintf(line, sizeof line, "%-32s %9.3f   (not in the step time)\n\n", "evaluation",
                r["eval_seconds"].get<double>());
  os << line;
  os << "op                      backend     calls   seconds      %    GFLOP     GB  GFLOP/s   GB/s  %peak bound\n";
  for (auto& o : r["ops"]) {
    std::snprintf(line, sizeof line, "%-23s %-9s %7lld %9.3f %6.1f %8.2f %6.2f %8.1f %6.1f %6.1f %s\n",
                  o["op"].get<std::string>().c_str(), o["backend"].get<std::string>().c_str(),
                  (long long)o["calls"].get<int64_t>(), o["seconds"].get<double>(),
                  100 * o["seconds"].get<double>() / std::max(wall, 1e-12), o["flops"].get<double>() / 1e9,
                  o["bytes"].get<double>() / 1e9, o["gflops"].get<double>(), o["gbps"].get<double>(),
                  o["pct_of_peak"].get<double>(), o["bound"].get<std::string>().c_str());
    os << line;
  }
  // A row whose time is mostly one call is not the kernel's cost: the VM's
  // host took the core away (or the call faulted in fresh pages) during it.
  // Flagged when that call is over half the op's time, over 10x the mean of
  // its other calls and over 2% of the window (a kernel that runs once a
  // step holds at most 1/steps of its row), so that one stall is not read
  // as a slow kernel.
  for (auto& o : r["ops"]) {
    if (!o.contains("max_call_seconds")) continue;
    double s = o["seconds"].get<double>(), mx = o["max_call_seconds"].get<double>();
    int64_t calls = o["calls"].get<int64_t>();
    if (calls < 10) continue;
    double rest = (s - mx) / double(calls - 1);
    if (mx > 0.5 * s && mx > 10 * rest && mx > 0.02 * wall) {
      char note[512];
      std::snprintf(note, sizeof note,
                    "note: one %s call took %.1f ms, %.0f%% of that op's time (its other calls %.1f us each on "
                    "average): a stall such as the host preempting this process, not the kernel's cost; rerun "
                    "before reading that row\n",
                    o["op"].get<std::string>().c_str(), 1e3 * mx, 100 * mx / std::max(s, 1e-12), 1e6 * rest);
      os << note;
    }
  }
  if (r.contains("zero_skip")) {
    auto z = r["zero_skip"];
    if (z["on"].get<bool>())
      std::snprintf(line, sizeof line,
                    "\nzero skipping (exact) left out %.2f GFLOP, %.1f%% of the compute-bound ops' FLOPs "
                    "(BRISK_SGEMM_ZERO_SKIP=0 turns it off)\n",
                    z["gflop_left_out"].get<double>(), 100 * z["share_of_compute_flops"].get<double>());
    else
      std::snprintf(line, sizeof line, "\nzero skipping: off (BRISK_SGEMM_ZERO_SKIP=0)\n");
    os << line;
  }
  auto sh = r["shares"];
  std::snprintf(line, sizeof line,
                "\nshares of the step: data %.0f%%, compute-bound kernels %.0f%%, memory-bound kernels %.0f%%, "
                "overhead %.0f%%\nverdict: %s\n",
                100 * sh["data"].get<double>(), 100 * sh["compute_kernels"].get<double>(),
                100 * sh["memory_kernels"].get<double>(), 100 * sh["overhead"].get<double>(),
                r["verdict"].get<std::string>().c_str());
  os << line;
  for (auto& m : r["mitigations"]) os << "  - " << m.get<std::string>() << "\n";
  return os.str();
}

}  // namespace brisk::train
