// IDX reader over zlib's gz* API (reads .gz and uncompressed files alike).
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/checked.h"
#include "core/error.h"

namespace brisk::data {

namespace {

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() { if (f) gzclose(f); }
};

void read_exact(gzFile f, void* dst, size_t n, const std::string& path, const char* what) {
  size_t got = 0;
  auto* p = static_cast<unsigned char*>(dst);
  while (got < n) {
    unsigned chunk = unsigned(std::min<size_t>(n - got, 1u << 30));
    int r = gzread(f, p + got, chunk);
    if (r < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      BRISK_FAIL("IDX file ", path, ": corrupt compressed data while reading ", what, " (", msg, ")");
    }
    if (r == 0) BRISK_FAIL("IDX file ", path, ": truncated, expected ", n, " bytes of ", what, ", got ", got);
    got += size_t(r);
  }
}

}  // namespace

Tensor read_idx(const std::string& path) {
  BRISK_CHECK(std::filesystem::exists(path), "IDX file not found: ", path);
  BRISK_CHECK(std::filesystem::is_regular_file(path), "IDX file ", path, " is not a regular file");
  GzFile gz;
  gz.f = gzopen(path.c_str(), "rb");
  BRISK_CHECK(gz.f != nullptr, "IDX file ", path, ": cannot open");
  unsigned char magic[4];
  read_exact(gz.f, magic, 4, path, "header");
  BRISK_CHECK(magic[0] == 0 && magic[1] == 0, "IDX file ", path, ": bad magic number (not an IDX file)");
  BRISK_CHECK(magic[2] == 0x08, "IDX file ", path, ": element type 0x", std::hex, int(magic[2]),
              " not supported (only unsigned bytes, 0x08)");
  int nd = magic[3];
  BRISK_CHECK(nd >= 1 && nd <= 4, "IDX file ", path, ": invalid rank ", nd);
  Shape shape;
  int64_t total = 1;
  for (int i = 0; i < nd; ++i) {
    unsigned char b[4];
    read_exact(gz.f, b, 4, path, "dimensions");
    int64_t d = (int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | b[3];
    BRISK_CHECK(d > 0, "IDX file ", path, ": invalid dimension ", d);
    shape.push_back(d);
    total = checked_mul(total, d, ("IDX file " + path).c_str());
  }
  // 4 GiB of u8 is beyond any image set brisk reads into memory.
  BRISK_CHECK(total < (int64_t(1) << 32), "IDX file ", path, ": implausibly large (", shape_str(shape), " = ",
              total, " elements)");
  // An uncompressed file must hold every byte its header declares: checked
  // before allocating, so a 16-byte file cannot ask for gigabytes.
  if (gzdirect(gz.f)) {
    int64_t need = 4 + 4 * int64_t(nd) + total, have = int64_t(std::filesystem::file_size(path));
    BRISK_CHECK(have >= need, "IDX file ", path, ": truncated, header declares ", shape_str(shape), " (", need,
                " bytes) but the file has ", have);
    Tensor t = empty(shape, DType::u8);
    read_exact(gz.f, t.data_ptr<uint8_t>(), size_t(total), path, "data");
    return t;
  }
  // Compressed: the header's size is only a claim until the bytes decompress,
  // so memory grows with what arrives (a few bytes of gzip cannot make brisk
  // allocate gigabytes); then one copy into the tensor.
  std::vector<uint8_t> buf;
  constexpr size_t kChunk = size_t(16) << 20;
  while (buf.size() < size_t(total)) {
    size_t at = buf.size(), want = std::min(kChunk, size_t(total) - at);
    buf.resize(at + want);
    int r = gzread(gz.f, buf.data() + at, unsigned(want));
    if (r < 0) {
      int err = 0;
      BRISK_FAIL("IDX file ", path, ": corrupt compressed data while reading data (", gzerror(gz.f, &err), ")");
    }
    buf.resize(at + size_t(r));
    BRISK_CHECK(r > 0, "IDX file ", path, ": truncated, header declares ", shape_str(shape), " (", total,
                " bytes of data) but it decompresses to ", buf.size());
  }
  Tensor t = empty(shape, DType::u8);
  std::memcpy(t.data_ptr<uint8_t>(), buf.data(), buf.size());
  return t;
}

static std::string find_file(const std::string& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    std::string p = dir + "/" + stem + ext;
    if (std::filesystem::exists(p)) return p;
  }
  BRISK_FAIL("dataset file ", dir, "/", stem, "[.gz] not found. For Fashion-MNIST install the Debian "
             "package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), which provides ",
             kFashionMnistDir, ", or point --data-dir at a folder of IDX files.");
}

MnistSplit load_mnist_split(const std::string& dir, bool train) {
  std::string prefix = train ? "train" : "t10k";
  Tensor images = read_idx(find_file(dir, prefix + "-images-idx3-ubyte"));
  Tensor labels = read_idx(find_file(dir, prefix + "-labels-idx1-ubyte"));
  BRISK_CHECK(images.dim() == 3, "dataset ", dir, ": images must be [N, H, W], got ", shape_str(images.shape()));
  BRISK_CHECK(labels.dim() == 1 && labels.size(0) == images.size(0), "dataset ", dir, ": ",
              images.size(0), " images but labels shape ", shape_str(labels.shape()));
  return {images.reshape({images.size(0), 1, images.size(1), images.size(2)}), labels.to(DType::i64)};
}

}  // namespace brisk::data
