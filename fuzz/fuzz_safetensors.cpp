// safetensors reader (core/safetensors.h).
#include "core/safetensors.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = brisk_fuzz::write_input("input.safetensors", data, size);
  try {
    std::map<std::string, std::string> meta;
    for (auto& [k, t] : brisk::load_safetensors(path, &meta)) (void)t.numel();
  } catch (const brisk::Error&) {
  }
  return 0;
}
