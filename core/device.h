// Device: where a tensor's storage lives. It is part of every tensor and of the
// dispatch key. `meta` tensors carry shape and dtype but no data (shape
// inference, and tests of device checks on machines without a GPU).
#pragma once
#include <ostream>
#include <string>

namespace brisk {

enum class DeviceType : uint8_t { cpu, cuda, meta };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  Device() = default;
  Device(DeviceType t, int i = 0) : type(t), index(i) {}  // NOLINT
  static Device parse(const std::string& s);  // "cpu", "cuda", "cuda:1", "meta"
  std::string str() const;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

inline const Device kCPU{DeviceType::cpu, 0};
inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }
const char* device_type_name(DeviceType t);

// The CPU's model name as /proc/cpuinfo gives it ("AMD EPYC", "Intel(R)
// Xeon(R) ..."), or "unknown cpu": printed beside every benchmark figure and
// stored with every run, since the figures differ from one CPU to the next.
std::string cpu_model_name();

// Set by the CUDA backend when it is compiled in and finds a device.
int cuda_device_count();
bool cuda_compiled();

}  // namespace brisk
