// The CPU caching allocator behind every Storage. Training allocates and frees
// the same activation and gradient buffers every step; a freed block goes to a
// free list keyed by its rounded size and the next request of that size takes
// it back, warm and already paged in. So a steady-state step makes no system
// allocations (cpu_allocator_stats().system_allocs stops growing). Blocks are
// 64-byte aligned. BRISK_CACHING_ALLOCATOR=0 turns caching off (every block
// goes straight to and from the system, e.g. for AddressSanitizer runs).
#pragma once
#include <cstddef>
#include <cstdint>

namespace brisk {

struct AllocatorStats {
  int64_t requests = 0;       // allocate() calls
  int64_t system_allocs = 0;  // requests the cache could not serve (fresh memory)
  int64_t cache_hits = 0;     // requests served from the free lists
  int64_t bytes_in_use = 0;   // held by live storages (rounded sizes)
  int64_t bytes_cached = 0;   // free blocks kept for reuse
  int64_t peak_bytes_in_use = 0;
};

void* cpu_allocate(size_t nbytes);          // never null: throws brisk::Error when out of memory
void cpu_deallocate(void* p, size_t nbytes);  // nbytes as passed to cpu_allocate
AllocatorStats cpu_allocator_stats();
void reset_cpu_allocator_counters();  // zeroes requests/system_allocs/cache_hits and the peak
void empty_cpu_cache();               // returns every cached block to the system
// Cached bytes beyond this are returned to the system instead (default 4 GiB).
void set_cpu_cache_limit(size_t bytes);
bool cpu_caching_enabled();

}  // namespace brisk
