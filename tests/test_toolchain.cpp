// Guards against the GCC 12 AVX-512 SLP miscompile that CMakeLists.txt works
// around (-fno-tree-slp-vectorize): this exact pattern, in a translation unit
// that includes the brisk headers, was built as {1, 1, 1, 1}.
#include "tests/helpers.h"

using namespace bt;

TEST_CASE("toolchain: constant initializers survive the compiler's vectorizer", "[toolchain]") {
  std::vector<double> k{1.0, 1.0, 0.0, 0.0};
  Tensor w = ones({1, 4});
  CHECK(k[2] == 0.0);
  CHECK(k[3] == 0.0);
  std::vector<double> j{1, 1, 0, 0};
  CHECK(j == std::vector<double>{1.0, 1.0, 0.0, 0.0});
  CHECK(w.to_vector() == std::vector<double>{1.0, 1.0, 1.0, 1.0});
}
