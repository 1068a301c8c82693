// IDX reader (data/idx.h): plain or gzip-compressed bytes.
#include "core/error.h"
#include "data/idx.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = brisk_fuzz::write_input("input.idx", data, size);
  try {
    brisk::Tensor t = brisk::data::read_idx(path);
    (void)t.numel();
  } catch (const brisk::Error&) {
  }
  return 0;
}
