// A small fork-join pool. Each worker has its own slot (a job pointer and a
// generation number, on its own cache line); the caller hands a job to the
// workers it needs by bumping their slots, runs chunk 0 itself and spins on the
// pending count. Workers spin (pause loop) for a while after each job before
// they sleep on a condition variable: a training step issues thousands of
// short parallel ops, and a futex wake-up (~50 us on a VM) would cost more
// than many of them. No lock is taken on that path (the mutex guards sleeping
// and errors only): a fork-join is a few cache-line transfers, about 0.5 us
// on the 2-core VM where the locked version took 1.6 us. The spin is bounded,
// so idle workers do not steal cycles from OpenBLAS's own threads for long.
#include "core/thread_pool.h"

#include "core/autocast.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
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
    slots_ = std::make_unique<Slot[]>(size_t(n));
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { loop(i); });
  }

  void run(int n_chunks, const std::function<void(int)>& chunk) {
    std::unique_lock<std::mutex> run_lock(run_mu_);  // one job at a time
    pending_.store(n_chunks - 1, std::memory_order_relaxed);
    park_.store(false, std::memory_order_relaxed);
    // Chunk i goes to worker i. The job is written before the generation
    // (released by it); seq_cst on the generation and on sleepers_ (the
    // worker's side in sleep()) means either the worker sees the new
    // generation before it waits, or this sees it asleep and wakes it.
    for (int i = 1; i < n_chunks; ++i) {
      slots_[size_t(i)].job = &chunk;
      slots_[size_t(i)].gen.fetch_add(1, std::memory_order_seq_cst);
    }
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(mu_);  // a worker between its check and its wait holds mu_
      cv_.notify_all();
    }
    t_in_worker = true;
    try {
      chunk(0);
    } catch (...) {
      record_error();
    }
    t_in_worker = false;
    for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i)
      if (i < kSpin) BRISK_PAUSE(); else std::this_thread::yield();
    if (failed_.load(std::memory_order_relaxed)) {
      std::exception_ptr e;
      {
        std::lock_guard<std::mutex> lk(mu_);
        std::swap(e, error_);
        failed_.store(false, std::memory_order_relaxed);
      }
      std::rethrow_exception(e);
    }
  }

 private:
  struct alignas(64) Slot {  // one cache line per worker: the caller writes, the worker polls
    std::atomic<uint64_t> gen{0};
    const std::function<void(int)>* job = nullptr;
  };

  void record_error() {
    std::lock_guard<std::mutex> lk(mu_);
    if (!error_) error_ = std::current_exception();
    failed_.store(true, std::memory_order_relaxed);
  }

  void loop(int id) {
    t_in_worker = true;
    Slot& slot = slots_[size_t(id)];
    uint64_t seen = 0;  // the slot is new (resize): a job handed over before this thread ran is still its
    for (;;) {
      int spin = 0;
      while (slot.gen.load(std::memory_order_acquire) == seen && !stopping_.load(std::memory_order_relaxed) &&
             !park_.load(std::memory_order_relaxed) && spin++ < kSpin)
        BRISK_PAUSE();
      if (slot.gen.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_.wait(lk, [&] { return stopping_.load() || slot.gen.load(std::memory_order_seq_cst) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      if (stopping_.load()) return;
      seen = slot.gen.load(std::memory_order_acquire);  // one bump per job: the caller waits for this one first
      try {
        (*slot.job)(id);
      } catch (...) {
        record_error();
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
  std::unique_ptr<Slot[]> slots_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_;
  alignas(64) std::atomic<int> pending_{0};  // chunks still running on workers: polled by the caller
  alignas(64) std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> park_{false};  // set by park(): idle workers stop spinning
  std::atomic<bool> failed_{false};  // error_ holds an exception to rethrow
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
  // The caller's per-thread compute context travels with the work: a GEMM
  // run by a worker for a bf16-autocast op takes the bf16 kernel as the
  // caller's would (core/autocast.h). One reference captured: the
  // std::function made of the lambda stores it inline, with no allocation.
  struct Job {
    int64_t begin, end, per;
    const std::function<void(int64_t, int64_t)>& fn;
    bool gemm_bf16;
  } job{begin, end, (n + chunks - 1) / chunks, fn, gemm_operands_bf16()};
  pool().run(int(chunks), [&job](int c) {
    GemmBf16Scope ctx(job.gemm_bf16);
    int64_t lo = job.begin + c * job.per, hi = std::min(job.end, lo + job.per);
    if (lo < hi) job.fn(lo, hi);
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
  struct Job {
    std::atomic<int64_t> next{0};
    int64_t begin, end, block, blocks;
    const std::function<void(int64_t, int64_t)>& fn;
    bool gemm_bf16;  // the caller's compute context, as in parallel_for
  } job{{}, begin, end, block, blocks, fn, gemm_operands_bf16()};
  // Blocks are claimed in runs (guided scheduling): a thread takes 1/(2
  // threads) of the blocks left, at least one, so a run of many small
  // blocks costs a few claims of the shared counter rather than one each
  // (each claim moves its cache line between the cores: with 2-sample
  // blocks, the first layer's forward ran 7-10% slower than on equal
  // shares), while the last blocks still go one at a time to whichever
  // thread is free.
  pool().run(int(threads), [&job, threads](int) {
    GemmBf16Scope ctx(job.gemm_bf16);
    int64_t b = job.next.load(std::memory_order_relaxed);
    while (b < job.blocks) {
      int64_t take = std::max<int64_t>(1, (job.blocks - b) / (2 * threads));
      if (!job.next.compare_exchange_weak(b, b + take, std::memory_order_relaxed)) continue;  // b reloaded
      for (int64_t e = std::min(job.blocks, b + take); b < e; ++b)
        job.fn(job.begin + b * job.block, std::min(job.end, job.begin + (b + 1) * job.block));
      b = job.next.load(std::memory_order_relaxed);
    }
  });
}

}  // namespace brisk
