// --method specs (efficiency/method.h): parse and build the method object.
#include "core/error.h"
#include "efficiency/method.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string spec(reinterpret_cast<const char*>(data), size);
  try {
    auto m = brisk::efficiency::make_method(spec);
    (void)m->name();
    (void)m->state_json();
  } catch (const brisk::Error&) {
  }
  return 0;
}
