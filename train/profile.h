// `brisk profile`: where a training run's time goes, before choosing a method.
// Trains N steps of a recipe (after a short warm-up), timing each phase (data
// loading, forward, backward, optimizer, each method's own work, evaluation)
// and each kernel (calls, time, FLOPs, bytes, achieved GFLOP/s and GB/s
// against this machine's measured GEMM and memory-copy peaks), and gives a
// verdict -- data-, compute-, memory- or overhead-bound -- with the method
// families that fit it.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/callback.h"
#include "train/config.h"

namespace brisk::train {

struct ProfileOptions {
  int64_t steps = 50;
  int64_t warmup = 5;  // steps run before the clocks start
};

// Runs the profile (the run folder is a temporary directory, removed after)
// and returns the report; `format_profile` renders it as text tables.
nlohmann::json run_profile(TrainConfig cfg, const ProfileOptions& o, const MethodBuilder& methods = {});
std::string format_profile(const nlohmann::json& report);

// Measured peaks of this machine on the current thread count: sgemm 1024^3
// (GFLOP/s) and a large memcpy (GB/s, bytes read + written).
struct MachinePeak {
  double gflops = 0, gbps = 0;
};
MachinePeak measure_peak();

// Where low precision makes a step's products cheaper: on cuda, bf16 tensor
// cores; on this CPU, a bf16 GEMM kernel (AVX512-BF16 dot products or AMX
// tiles: bf16_kernel names it) and an int8 one (VNNI). On a CPU with
// neither, precision:dtype=bf16 still rounds to bf16 (its numerics) but
// multiplies in f32, plus the casts: slower than f32, not faster.
struct LowPrecisionHardware {
  bool cuda = false, int8 = false;
  std::string bf16_kernel;  // "amx", "avx512bf16", "tensor cores" on cuda; "" for none
  bool bf16() const { return !bf16_kernel.empty(); }
};
LowPrecisionHardware low_precision_hardware(const std::string& device);
// The method families that fit a verdict (compute-, memory-, data- or
// overhead-bound), low precision among them only where hw makes it cheaper.
std::vector<std::string> profile_mitigations(const std::string& verdict, const LowPrecisionHardware& hw);

}  // namespace brisk::train
