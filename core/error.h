// brisk::Error: the one exception type for mistakes a user can make (shapes,
// dtypes, devices, files, flags). Messages name the op or file and the values.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace brisk {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <class... Args>
std::string cat_str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace brisk

// BRISK_CHECK(cond, "op add: ", shape, ...): throws brisk::Error with the
// streamed message when cond is false. Never aborts.
#define BRISK_CHECK(cond, ...)                                   \
  do {                                                           \
    if (!(cond)) throw ::brisk::Error(::brisk::detail::cat_str(__VA_ARGS__)); \
  } while (0)

#define BRISK_FAIL(...) throw ::brisk::Error(::brisk::detail::cat_str(__VA_ARGS__))
