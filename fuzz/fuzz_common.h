// Shared by the fuzz harnesses: a per-process scratch folder and a helper
// that writes the fuzzer's bytes to a file there (the readers take paths).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace brisk_fuzz {

inline std::filesystem::path scratch() {
  static std::filesystem::path d = [] {
    auto p = std::filesystem::temp_directory_path() / ("brisk_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = (scratch() / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), long(size));
  return path;
}

}  // namespace brisk_fuzz
