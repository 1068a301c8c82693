// safetensors reader/writer (format: github.com/huggingface/safetensors).
#include "core/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace brisk {

using json = nlohmann::json;

static const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    case DType::boolean: return "BOOL";
  }
  return "?";
}

static std::optional<DType> parse_st_dtype(const std::string& s) {
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8,
                  DType::boolean})
    if (s == st_dtype(t)) return t;
  return std::nullopt;
}

void atomic_write(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  BRISK_CHECK(fd >= 0, "cannot write ", tmp, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      BRISK_FAIL("cannot write ", tmp, ": ", std::strerror(e));
    }
    done += size_t(w);
  }
  ::fsync(fd);
  ::close(fd);
  BRISK_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename ", tmp, " to ", path, ": ",
              std::strerror(errno));
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string body;
  for (const auto& [name, t] : tensors) {
    BRISK_CHECK(t.defined(), "save_safetensors ", path, ": tensor '", name, "' is undefined");
    BRISK_CHECK(t.device().type == DeviceType::cpu, "save_safetensors ", path, ": tensor '", name,
                "' is on ", t.device(), "; move it to cpu first");
    Tensor c = t.detach().to(kCPU).contiguous();  // device tensors are saved from a host copy
    size_t n = size_t(c.numel()) * c.element_size();
    size_t begin = body.size();
    body.append(static_cast<const char*>(c.raw_data()), n);
    header[name] = {{"dtype", st_dtype(c.dtype())}, {"shape", c.shape()}, {"data_offsets", {begin, begin + n}}};
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  std::string out(8, '\0');
  uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((hl >> (8 * i)) & 0xff);
  out += h;
  out += body;
  atomic_write(path, out);
}

TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  std::ifstream f(path, std::ios::binary);
  BRISK_CHECK(f.good(), "safetensors file not found or unreadable: ", path);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  BRISK_CHECK(bytes.size() >= 8, "safetensors file ", path, ": truncated (", bytes.size(), " bytes)");
  uint64_t hl = 0;
  for (int i = 0; i < 8; ++i) hl |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  BRISK_CHECK(hl <= bytes.size() - 8, "safetensors file ", path, ": header length ", hl,
              " exceeds file size ", bytes.size(), " (truncated or corrupt)");
  json header;
  try {
    header = json::parse(bytes.substr(8, hl));
  } catch (const json::exception& e) {
    BRISK_FAIL("safetensors file ", path, ": corrupt header (", e.what(), ")");
  }
  BRISK_CHECK(header.is_object(), "safetensors file ", path, ": header is not a JSON object");
  size_t data_start = 8 + hl, data_len = bytes.size() - data_start;
  TensorMap out;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (metadata)
        for (auto& [k, v] : info.items()) (*metadata)[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    try {
      auto dt = parse_st_dtype(info.at("dtype").get<std::string>());
      BRISK_CHECK(dt.has_value(), "safetensors file ", path, ": tensor '", name, "' has unsupported dtype ",
                  info.at("dtype").dump());
      Shape shape = info.at("shape").get<Shape>();
      auto off = info.at("data_offsets").get<std::vector<uint64_t>>();
      BRISK_CHECK(off.size() == 2 && off[0] <= off[1] && off[1] <= data_len, "safetensors file ", path,
                  ": tensor '", name, "' has data offsets outside the file (truncated or corrupt)");
      for (int64_t d : shape)
        BRISK_CHECK(d >= 0, "safetensors file ", path, ": tensor '", name, "' has a negative dim");
      size_t want = size_t(shape_numel(shape)) * dtype_size(*dt);
      BRISK_CHECK(off[1] - off[0] == want, "safetensors file ", path, ": tensor '", name, "' holds ",
                  off[1] - off[0], " bytes, its shape ", shape_str(shape), " and dtype need ", want);
      Tensor t = empty(shape, *dt);
      if (want) std::memcpy(t.raw_data(), bytes.data() + data_start + off[0], want);
      out[name] = t;
    } catch (const json::exception& e) {
      BRISK_FAIL("safetensors file ", path, ": bad entry for tensor '", name, "' (", e.what(), ")");
    }
  }
  return out;
}

}  // namespace brisk
