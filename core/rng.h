// Counter-based RNG (Philox4x32-10). Element i of a random tensor depends only
// on (seed, offset, i), never on the thread count or the chunking.
#pragma once
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace brisk {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // 128-bit blocks consumed so far
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserve n Philox blocks; returns the first block's counter.
  uint64_t reserve(uint64_t n_blocks) { uint64_t b = offset_; offset_ += n_blocks; return b; }
  // Block `idx` of the stream: 4 uniformly random 32-bit words.
  std::array<uint32_t, 4> block(uint64_t idx) const;

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

// Uniform [0, 1).
Tensor rand(const Shape& shape, TensorOptions opt = {}, Generator* gen = nullptr);
// Standard normal (Box-Muller on Philox words).
Tensor randn(const Shape& shape, TensorOptions opt = {}, Generator* gen = nullptr);
// Integers uniform in [low, high).
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opt = DType::i64,
               Generator* gen = nullptr);
// A random permutation of 0..n-1 (i64), Fisher-Yates on Philox words.
Tensor randperm(int64_t n, Generator* gen = nullptr);

}  // namespace brisk
