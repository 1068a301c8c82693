// IDX reader on files the test writes itself (plain, gzip, truncated,
// corrupt), and Fashion-MNIST from the Debian package when installed.
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "data/idx.h"
#include "tests/helpers.h"

using namespace bt;
namespace fs = std::filesystem;

static std::vector<unsigned char> idx_bytes(std::vector<uint32_t> dims, int n_data) {
  std::vector<unsigned char> b{0, 0, 0x08, uint8_t(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(d >> s));
  for (int i = 0; i < n_data; ++i) b.push_back(uint8_t(i * 7));
  return b;
}

static std::string write_file(const std::string& name, const std::vector<unsigned char>& bytes, bool gz) {
  fs::path dir = fs::temp_directory_path() / "brisk_test_idx";
  fs::create_directories(dir);
  std::string path = (dir / name).string();
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
  }
  return path;
}

TEST_CASE("data: IDX files, plain and gzip, read back exactly", "[data]") {
  for (bool gz : {false, true}) {
    std::string p = write_file(gz ? "ok.gz" : "ok", idx_bytes({2, 3, 4}, 24), gz);
    Tensor t = data::read_idx(p);
    CHECK(t.shape() == Shape({2, 3, 4}));
    CHECK(t.dtype() == DType::u8);
    CHECK(t.to_vector()[5] == 35);
  }
}

TEST_CASE("data: truncated, corrupt and missing IDX files give clear errors", "[data]") {
  std::string trunc = write_file("trunc.gz", idx_bytes({10, 10}, 50), true);
  CHECK_THROWS_WITH(data::read_idx(trunc), Catch::Contains("truncated") && Catch::Contains("trunc.gz"));
  auto bad = idx_bytes({4}, 4);
  bad[0] = 0x1f;
  std::string badp = write_file("bad", bad, false);
  CHECK_THROWS_WITH(data::read_idx(badp), Catch::Contains("bad magic") && Catch::Contains("bad"));
  auto wrong_type = idx_bytes({4}, 4);
  wrong_type[2] = 0x0d;
  CHECK_THROWS_WITH(data::read_idx(write_file("float", wrong_type, false)), Catch::Contains("not supported"));
  // a .gz whose compressed stream is garbage after a valid gzip header
  std::vector<unsigned char> garbage{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  CHECK_THROWS_AS(data::read_idx(write_file("garbage.gz", garbage, false)), brisk::Error);
  CHECK_THROWS_WITH(data::read_idx("/nonexistent/x-idx1-ubyte"), Catch::Contains("not found"));
  CHECK_THROWS_WITH(data::load_mnist_split("/nonexistent", true),
                    Catch::Contains("dataset-fashion-mnist") && Catch::Contains("/nonexistent"));
}

TEST_CASE("data: Fashion-MNIST from the Debian package", "[data]") {
  if (!fs::exists(data::kFashionMnistDir)) {
    WARN("SKIPPED: " << data::kFashionMnistDir << " missing (apt-get install dataset-fashion-mnist)");
    return;
  }
  auto test = data::load_mnist_split(data::kFashionMnistDir, false);
  CHECK(test.images.shape() == Shape({10000, 1, 28, 28}));
  CHECK(test.labels.shape() == Shape({10000}));
  CHECK(min(test.labels).item() == 0);
  CHECK(max(test.labels).item() == 9);
  // balanced: 1000 of each class
  Tensor counts = sum(eq(test.labels.unsqueeze(1), arange(10).unsqueeze(0)), {0});
  CHECK(counts.to_vector() == std::vector<double>(10, 1000));
}
