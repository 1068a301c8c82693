// safetensors reader/writer (format: github.com/huggingface/safetensors).
#include "core/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/checked.h"
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

namespace {

// Parses the header, refusing duplicate keys at any depth (nlohmann keeps the
// last silently; a file with two entries of one name is corrupt).
json parse_header(const std::string& text, const std::string& path) {
  std::vector<std::set<std::string>> open;  // keys seen in each open object
  std::string dup;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) open.emplace_back();
    else if (ev == json::parse_event_t::object_end && !open.empty()) open.pop_back();
    else if (ev == json::parse_event_t::key && !open.empty() && !open.back().insert(parsed.get<std::string>()).second &&
             dup.empty())
      dup = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(text, cb);
  } catch (const json::exception& e) {
    BRISK_FAIL("safetensors file ", path, ": corrupt header (", e.what(), ")");
  }
  BRISK_CHECK(dup.empty(), "safetensors file ", path, ": key '", dup, "' appears twice in the header");
  BRISK_CHECK(header.is_object(), "safetensors file ", path, ": header is not a JSON object");
  return header;
}

// A JSON array of non-negative integers (no fractions, no signs, no strings).
std::vector<uint64_t> unsigned_list(const json& v, const std::string& path, const std::string& name,
                                    const char* field) {
  BRISK_CHECK(v.is_array(), "safetensors file ", path, ": tensor '", name, "': ", field, " must be an array");
  std::vector<uint64_t> out;
  for (auto& x : v) {
    BRISK_CHECK(x.is_number_unsigned() || (x.is_number_integer() && x.get<int64_t>() >= 0), "safetensors file ",
                path, ": tensor '", name, "': ", field, " must hold non-negative integers, got ", x.dump());
    out.push_back(x.get<uint64_t>());
  }
  return out;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

}  // namespace

// Every field is validated before any tensor is made: integer dims whose
// product fits, byte ranges that exactly tile the data section (no overlap,
// no hole, as the format requires), sizes that match shape x dtype.
TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  std::ifstream f(path, std::ios::binary);
  BRISK_CHECK(f.good(), "safetensors file not found or unreadable: ", path);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  BRISK_CHECK(bytes.size() >= 8, "safetensors file ", path, ": truncated (", bytes.size(), " bytes)");
  uint64_t hl = 0;
  for (int i = 0; i < 8; ++i) hl |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  BRISK_CHECK(hl <= bytes.size() - 8, "safetensors file ", path, ": header length ", hl,
              " exceeds file size ", bytes.size(), " (truncated or corrupt)");
  json header = parse_header(bytes.substr(8, hl), path);
  size_t data_start = 8 + hl, data_len = bytes.size() - data_start;
  std::vector<Entry> entries;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      BRISK_CHECK(info.is_object(), "safetensors file ", path, ": __metadata__ must be an object");
      for (auto& [k, v] : info.items()) {
        BRISK_CHECK(v.is_string(), "safetensors file ", path, ": __metadata__ value '", k, "' must be a string");
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    BRISK_CHECK(info.is_object(), "safetensors file ", path, ": entry '", name, "' is not an object");
    for (auto& [k, v] : info.items())
      BRISK_CHECK(k == "dtype" || k == "shape" || k == "data_offsets", "safetensors file ", path, ": tensor '",
                  name, "' has unknown field '", k, "'");
    BRISK_CHECK(info.contains("dtype") && info.contains("shape") && info.contains("data_offsets"),
                "safetensors file ", path, ": tensor '", name, "' needs dtype, shape and data_offsets");
    BRISK_CHECK(info["dtype"].is_string(), "safetensors file ", path, ": tensor '", name, "': dtype must be a string");
    auto dt = parse_st_dtype(info["dtype"].get<std::string>());
    BRISK_CHECK(dt.has_value(), "safetensors file ", path, ": tensor '", name, "' has unsupported dtype ",
                info["dtype"].dump());
    Entry e{name, *dt, {}, 0, 0};
    for (uint64_t d : unsigned_list(info["shape"], path, name, "shape")) {
      BRISK_CHECK(d < (uint64_t(1) << 62), "safetensors file ", path, ": tensor '", name, "' has dimension ", d);
      e.shape.push_back(int64_t(d));
    }
    std::string what = "safetensors file " + path + ": tensor '" + name + "'";
    size_t want = checked_bytes(checked_numel(e.shape, what.c_str()), dtype_size(*dt), what.c_str());
    auto off = unsigned_list(info["data_offsets"], path, name, "data_offsets");
    BRISK_CHECK(off.size() == 2 && off[0] <= off[1] && off[1] <= data_len, "safetensors file ", path,
                ": tensor '", name, "' has data offsets outside the file (truncated or corrupt)");
    BRISK_CHECK(off[1] - off[0] == want, "safetensors file ", path, ": tensor '", name, "' holds ",
                off[1] - off[0], " bytes, its shape ", shape_str(e.shape), " and dtype need ", want);
    e.begin = off[0];
    e.end = off[1];
    entries.push_back(std::move(e));
  }
  // The byte ranges, sorted, must tile [0, data_len): an overlap would alias
  // two tensors, a hole would hide bytes no tensor owns.
  std::vector<const Entry*> by_offset;
  for (auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t at = 0;
  for (const Entry* e : by_offset) {
    BRISK_CHECK(e->begin >= at, "safetensors file ", path, ": tensor '", e->name, "' overlaps another tensor's bytes");
    BRISK_CHECK(e->begin == at, "safetensors file ", path, ": bytes [", at, ", ", e->begin,
                ") of the data belong to no tensor (corrupt file)");
    at = e->end;
  }
  BRISK_CHECK(at == data_len, "safetensors file ", path, ": ", data_len - at,
              " bytes after the last tensor belong to no tensor (corrupt file)");
  TensorMap out;
  for (auto& e : entries) {
    Tensor t = empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw_data(), bytes.data() + data_start + e.begin, e.end - e.begin);
    out[e.name] = t;
  }
  return out;
}

}  // namespace brisk
