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

}  // namespace brisk::train
