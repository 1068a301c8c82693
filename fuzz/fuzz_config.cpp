// TOML recipes (train/config.h): parse, then validate.
#include "core/error.h"
#include "fuzz/fuzz_common.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = brisk_fuzz::write_input("input.toml", data, size);
  try {
    brisk::train::TrainConfig c;
    c.load_toml(path);
    c.validate();
    (void)brisk::train::TrainConfig::from_json(c.to_json());
  } catch (const brisk::Error&) {
  }
  return 0;
}
