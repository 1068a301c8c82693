// Refcounted, 64-byte-aligned storage. Tensors share one Storage through
// shared_ptr; views differ only in shape/strides/offset.
#pragma once
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace brisk {

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Number of live CPU storages and bytes, for leak/reuse checks.
  static size_t live_count();
  static size_t live_bytes();

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

using StoragePtr = std::shared_ptr<Storage>;

}  // namespace brisk
