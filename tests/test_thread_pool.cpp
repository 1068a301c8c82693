// The thread pool: every index is visited exactly once whatever the pool size,
// nested regions run inline, a worker's exception reaches the caller, and the
// pool can be resized between regions. Run under TSan by scripts/sanitize.sh.
#include <atomic>
#include <thread>

#include "tests/helpers.h"

using namespace bt;

TEST_CASE("threads: parallel_for covers the range once for every pool size", "[threads]") {
  int before = get_num_threads();
  for (int n : {1, 2, 3, 4}) {
    set_num_threads(n);
    CHECK(get_num_threads() == n);
    for (int64_t len : {0, 1, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(len));
      parallel_for(0, len, 3, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
      });
      for (auto& h : hits) CHECK(h.load() == 1);
    }
  }
  set_num_threads(before);
}

TEST_CASE("threads: nested regions run inline and exceptions reach the caller", "[threads]") {
  bt::ThreadCount two(2);
  std::atomic<int64_t> total{0};
  std::atomic<int> outside{0};  // Catch's CHECK is not thread-safe: count in the workers, check here
  parallel_for(0, 8, 1, [&](int64_t b, int64_t e) {
    if (!in_parallel_region()) outside++;
    parallel_for(0, 4, 1, [&](int64_t b2, int64_t e2) { total += (e - b) * (e2 - b2); });
  });
  CHECK(outside.load() == 0);
  CHECK(total.load() == 32);
  CHECK_THROWS_WITH(parallel_for(0, 100, 1,
                                 [&](int64_t b, int64_t) {
                                   if (b >= 50) BRISK_FAIL("chunk at ", b);
                                 }),
                    Catch::Contains("chunk at"));
  // The pool still works after a failed region.
  std::atomic<int> after{0};
  parallel_for(0, 10, 1, [&](int64_t b, int64_t e) { after += int(e - b); });
  CHECK(after.load() == 10);
}

TEST_CASE("threads: two callers share the pool (loader prefetch and training)", "[threads]") {
  bt::ThreadCount two(2);
  std::atomic<int64_t> a{0}, b{0};
  std::thread other([&] {
    for (int r = 0; r < 50; ++r) parallel_for(0, 64, 4, [&](int64_t s, int64_t e) { a += e - s; });
  });
  for (int r = 0; r < 50; ++r) parallel_for(0, 64, 4, [&](int64_t s, int64_t e) { b += e - s; });
  other.join();
  CHECK(a.load() == 50 * 64);
  CHECK(b.load() == 50 * 64);
}
