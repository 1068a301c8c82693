// The thread pool: every index is visited exactly once whatever the pool size,
// nested regions run inline, a worker's exception reaches the caller, and the
// pool can be resized between regions. Run under TSan by scripts/sanitize.sh.
#include <atomic>
#include <chrono>
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

TEST_CASE("threads: parallel_for_blocks hands out each fixed block once, uneven work or not", "[threads]") {
  int before = get_num_threads();
  for (int n : {1, 2, 3}) {
    set_num_threads(n);
    for (int64_t len : {0, 1, 7, 8, 1000}) {
      for (int64_t block : {1, 3, 8}) {
        // each block's [lo, hi) recorded under its index: it must be exactly the
        // block-th slice, called once, whichever thread took it
        int64_t blocks = (len + block - 1) / block;
        std::vector<std::atomic<int>> calls(size_t(blocks + 1));
        std::vector<int64_t> lo_of(size_t(blocks + 1), -1), hi_of(size_t(blocks + 1), -1);
        std::atomic<int> misaligned{0};
        parallel_for_blocks(10, 10 + len, block, [&](int64_t lo, int64_t hi) {
          int64_t b = (lo - 10) / block;
          if ((lo - 10) % block != 0 || b >= blocks) {
            misaligned++;
            return;
          }
          if (calls[size_t(b)]++ == 0) lo_of[size_t(b)] = lo, hi_of[size_t(b)] = hi;
          if (b % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));  // uneven work
        });
        CHECK(misaligned.load() == 0);
        for (int64_t b = 0; b < blocks; ++b) {
          INFO("threads " << n << " len " << len << " block " << block << " index " << b);
          CHECK(calls[size_t(b)].load() == 1);
          CHECK(lo_of[size_t(b)] == 10 + b * block);
          CHECK(hi_of[size_t(b)] == std::min(10 + len, 10 + (b + 1) * block));
        }
      }
    }
  }
  set_num_threads(before);
  bt::ThreadCount two(2);
  CHECK_THROWS_WITH(parallel_for_blocks(0, 100, 1,
                                        [&](int64_t b, int64_t) {
                                          if (b == 37) BRISK_FAIL("block at ", b);
                                        }),
                    Catch::Contains("block at 37"));
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

TEST_CASE("threads: workers that went to sleep or were parked take the next job", "[threads]") {
  bt::ThreadCount three(3);
  // Idle past the workers' spin (about a millisecond) so they sleep on the
  // condition variable, or park them at once; each region must still run
  // every chunk on its own thread.
  for (int r = 0; r < 12; ++r) {
    if (r % 3 == 0) park_workers();
    else std::this_thread::sleep_for(std::chrono::milliseconds(r % 3 == 1 ? 5 : 0));
    std::vector<std::atomic<int>> hits(3);
    std::atomic<int> on_worker{0};
    parallel_for(0, 3, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
      if (b > 0 && in_parallel_region()) on_worker++;
    });
    INFO("round " << r);
    for (auto& h : hits) CHECK(h.load() == 1);
    CHECK(on_worker.load() == 2);
  }
  // A worker's exception (chunk 2, not the caller's) reaches the caller each
  // time, and the next region runs clean.
  for (int r = 0; r < 3; ++r) {
    CHECK_THROWS_WITH(parallel_for(0, 3, 1,
                                   [&](int64_t b, int64_t) {
                                     if (b == 2) BRISK_FAIL("worker chunk ", b);
                                   }),
                      Catch::Contains("worker chunk 2"));
    std::atomic<int> n{0};
    parallel_for(0, 3, 1, [&](int64_t b, int64_t e) { n += int(e - b); });
    CHECK(n.load() == 3);
  }
}
