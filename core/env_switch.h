// On/off switches read from the environment once, at start
// (BRISK_CONV_WINOGRAD=0, BRISK_PROFILE=1, ...): "1" is on, "0" off, unset
// or empty the switch's default. Any other value is reported on stderr,
// naming the variable and the values it takes, and the default is kept, as
// for a bad BRISK_NUM_THREADS: a typo ("off", "false") must not quietly
// leave a path on.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace brisk {

// The switch's value for the text `value` (null: unset); a value that is
// neither "0" nor "1" gives dflt and sets *problem to a message naming var.
inline bool parse_env_switch(const char* var, const char* value, bool dflt, std::string* problem) {
  if (!value || !*value) return dflt;
  if (std::strcmp(value, "1") == 0) return true;
  if (std::strcmp(value, "0") == 0) return false;
  if (problem)
    *problem = std::string(var) + "='" + value + "' is not 0 or 1; ignored (default " + (dflt ? "1" : "0") + ")";
  return dflt;
}

inline bool env_switch(const char* var, bool dflt) {
  std::string problem;
  bool on = parse_env_switch(var, std::getenv(var), dflt, &problem);
  if (!problem.empty()) std::fprintf(stderr, "brisk: warning: %s\n", problem.c_str());
  return on;
}

}  // namespace brisk
