// One process-wide thread pool. parallel_for splits [begin, end) into at most
// num_threads static chunks, so the split (and any per-chunk reduction order)
// depends only on the thread count: same seed + same threads = same bits.
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

}  // namespace brisk
