// Device parsing and printing.
#include "core/device.h"

#include <fstream>

#include "core/error.h"

namespace brisk {

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;  // a malformed line: no value to take
    size_t start = line.find_first_not_of(" \t", colon + 1);
    if (start != std::string::npos) return line.substr(start);
  }
  return "unknown cpu";
}

const char* device_type_name(DeviceType t) {
  switch (t) {
    case DeviceType::cpu: return "cpu";
    case DeviceType::cuda: return "cuda";
    case DeviceType::meta: return "meta";
  }
  return "?";
}

std::string Device::str() const {
  if (type == DeviceType::cuda) return "cuda:" + std::to_string(index);
  return device_type_name(type);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return Device(DeviceType::cpu);
  if (s == "meta") return Device(DeviceType::meta);
  if (s == "cuda") return Device(DeviceType::cuda, 0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int idx = std::stoi(s.substr(5), &used);
      if (used == s.size() - 5 && idx >= 0) return Device(DeviceType::cuda, idx);
    } catch (const std::exception&) {
    }
  }
  BRISK_FAIL("unknown device '", s, "': expected cpu, cuda, cuda:N or meta");
}

}  // namespace brisk
