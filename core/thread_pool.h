// One process-wide thread pool. parallel_for splits [begin, end) into at most
// num_threads static chunks, so the split (and any per-chunk reduction order)
// depends only on the thread count: same seed + same threads = same bits.
// parallel_for_blocks hands out fixed blocks dynamically.
#pragma once
#include <cstdint>
#include <functional>

namespace brisk {

void set_num_threads(int n);  // 1 <= n <= max_num_threads(); also caps vendor BLAS threads
int max_num_threads();        // 4x the cores (at least 8): beyond that threads only contend
int get_num_threads();
// True inside a parallel_for chunk (where a nested parallel_for runs inline).
bool in_parallel_region();
// Stops idle workers spinning now (they sleep until the next parallel_for).
// Called before handing the cores to another runtime (OpenBLAS's own
// threads), so the two pools do not oversubscribe the machine.
void park_workers();
// fn(lo, hi) is called on disjoint chunks; chunks are >= grain elements.
// Runs inline when the range is small or when called from a worker.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);
// fn(lo, hi) on each block [lo, lo + block) of [begin, end) (the last one
// shorter), the blocks taken in order by whichever thread is free: for work
// that a thread's equal share leaves uneven (a vCPU the host preempts, a
// sample that costs more), where parallel_for's other threads would wait.
// A thread claims a run of 1/(2 threads) of the blocks left (at least one),
// so many small blocks cost few claims of the shared counter; a thread
// stalled holding a run keeps it (at most a quarter of the blocks at 2
// threads), the last blocks go one at a time.
// The blocks do not depend on the thread count, but which thread runs one
// does: a reduction keeps one partial per block, not per thread.
void parallel_for_blocks(int64_t begin, int64_t end, int64_t block,
                         const std::function<void(int64_t, int64_t)>& fn);

}  // namespace brisk
