// safetensors I/O: an 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}, then the
// raw little-endian tensor bytes. Writes are atomic (temp file + rename).
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"

namespace brisk {

using TensorMap = std::map<std::string, Tensor>;

// Throws brisk::Error naming the path if the file cannot be written.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Throws brisk::Error naming the path on a missing, truncated or corrupt file.
TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

// Write `bytes` to path atomically: path.tmp, fsync, rename over path.
void atomic_write(const std::string& path, const std::string& bytes);

}  // namespace brisk
