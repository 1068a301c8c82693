// A small fork-join pool. A job is a generation number plus a function of the
// chunk index. Workers spin (pause loop) for a while after each job before they
// sleep on a condition variable, and the caller spins on the pending count: a
// training step issues thousands of short parallel ops, and a futex wake-up
// (~50 us on a VM) would cost more than many of them. The spin is bounded, so
// idle workers do not steal cycles from OpenBLAS's own threads for long.
#include "core/thread_pool.h"

#include "core/autocast.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BRISK_PAUSE() _mm_pause()
#else
#define BRISK_PAUSE() std::this_thread::yield()
#endif

namespace brisk {

void vendor_set_num_threads(int n);  // kernels/vendor: OpenBLAS, or a no-op

namespace {

thread_local bool t_in_worker = false;
constexpr int kSpin = 1 << 15;  // pause iterations (~0.5-1 ms) before sleeping

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return n_threads_; }
  void park() { park_.store(true, std::memory_order_relaxed); }

  void resize(int n) {
    stop();
    n_threads_ = n;
    stopping_ = false;
    // New workers start at the current generation: jobs already run are not theirs.
    uint64_t gen = generation_.load();
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, gen] { loop(i, gen); });
  }

  void run(int n_chunks, const std::function<void(int)>& chunk) {
    std::unique_lock<std::mutex> run_lock(run_mu_);  // one job at a time
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &chunk;
      n_chunks_ = n_chunks;
      pending_.store(n_chunks - 1, std::memory_order_relaxed);
      park_.store(false, std::memory_order_relaxed);
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    t_in_worker = true;
    try {
      chunk(0);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
    t_in_worker = false;
    for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i)
      if (i < kSpin) BRISK_PAUSE(); else std::this_thread::yield();
    std::lock_guard<std::mutex> lk(mu_);
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(int id, uint64_t seen) {
    t_in_worker = true;
    for (;;) {
      int spin = 0;
      while (generation_.load(std::memory_order_acquire) == seen && !stopping_.load() &&
             !park_.load(std::memory_order_relaxed) && spin++ < kSpin)
        BRISK_PAUSE();
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        if (generation_.load() == seen && !stopping_) {
          sleepers_++;
          cv_.wait(lk, [&] { return stopping_ || generation_.load() != seen; });
          sleepers_--;
        }
        if (stopping_) return;
        seen = generation_.load();
        if (id >= n_chunks_) continue;
        job = job_;
      }
      try {
        (*job)(id);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_;
  const std::function<void(int)>* job_ = nullptr;
  int n_chunks_ = 0;
  std::atomic<int> pending_{0}, sleepers_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> park_{false};  // set by park(): idle workers stop spinning
  std::exception_ptr error_;
};

int default_threads() {
  if (const char* e = std::getenv("BRISK_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(e, &end, 10);
    if (end != e && *end == '\0' && n >= 1 && n <= max_num_threads()) return int(n);
    std::fprintf(stderr, "brisk: warning: BRISK_NUM_THREADS='%s' is not a thread count in [1, %d]; ignored\n", e,
                 max_num_threads());
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

int max_num_threads() {
  int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(8, 4 * cores);
}

void set_num_threads(int n) {
  BRISK_CHECK(n >= 1 && n <= max_num_threads(), "set_num_threads: need 1 <= n <= ", max_num_threads(),
              " (4x the ", std::thread::hardware_concurrency(), " cores; more threads only wait on each other), got ", n);
  BRISK_CHECK(!t_in_worker, "set_num_threads: cannot resize the pool from inside parallel_for");
  if (pool().size() != n) pool().resize(n);
  vendor_set_num_threads(n);
}

int get_num_threads() { return pool().size(); }
bool in_parallel_region() { return t_in_worker; }
void park_workers() { pool().park(); }

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  int64_t n = end - begin;
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = std::min<int64_t>(pool().size(), (n + grain - 1) / grain);
  if (chunks <= 1 || t_in_worker) {
    fn(begin, end);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  // The caller's per-thread compute context travels with the work: a GEMM
  // run by a worker for a bf16-autocast op takes the bf16 kernel as the
  // caller's would (core/autocast.h).
  bool gemm_bf16 = gemm_operands_bf16();
  pool().run(int(chunks), [&](int c) {
    GemmBf16Scope ctx(gemm_bf16);
    int64_t lo = begin + c * per, hi = std::min(end, lo + per);
    if (lo < hi) fn(lo, hi);
  });
}

void parallel_for_blocks(int64_t begin, int64_t end, int64_t block,
                         const std::function<void(int64_t, int64_t)>& fn) {
  int64_t n = end - begin;
  if (n <= 0) return;
  block = std::max<int64_t>(block, 1);
  int64_t blocks = (n + block - 1) / block;
  auto run_block = [&](int64_t b) { fn(begin + b * block, std::min(end, begin + (b + 1) * block)); };
  int64_t threads = std::min<int64_t>(pool().size(), blocks);
  if (threads <= 1 || t_in_worker) {
    for (int64_t b = 0; b < blocks; ++b) run_block(b);
    return;
  }
  std::atomic<int64_t> next{0};
  bool gemm_bf16 = gemm_operands_bf16();  // the caller's compute context, as in parallel_for
  pool().run(int(threads), [&](int) {
    GemmBf16Scope ctx(gemm_bf16);
    for (int64_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < blocks;) run_block(b);
  });
}

}  // namespace brisk
