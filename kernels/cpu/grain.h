// How much work one parallel_for task gets: below a few thousand elements a
// fork-join costs more than it saves. Kernels that split rows of `cols`
// elements take rows_per_task(cols, elems) rows per task; each call site keeps
// the element budget measured for it.
#pragma once
#include <algorithm>
#include <cstdint>

namespace brisk::kern::cpu {

constexpr int64_t kTaskElems = 32768;  // the default budget of a task, in elements

inline int64_t rows_per_task(int64_t cols, int64_t elems = kTaskElems) {
  return std::max<int64_t>(1, elems / std::max<int64_t>(cols, 1));
}

}  // namespace brisk::kern::cpu
