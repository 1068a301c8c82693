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
#include <initializer_list>
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

// A choice among named kernels or instruction sets, read from the
// environment once, at start (BRISK_SGEMM_ISA=avx2, BRISK_BF16_GEMM=amx):
// "auto", unset or empty give best; a name the machine cannot run
// (usable(i) false), or one not in names, is reported on stderr naming the
// variable (and, for an unknown one, the names it takes, kind saying what
// they are), and best is kept. Returns the index into names.
template <class Usable>
int env_choice(const char* var, std::initializer_list<const char*> names, Usable usable, int best, const char* kind) {
  const char* e = std::getenv(var);
  if (!e || !*e || std::strcmp(e, "auto") == 0) return best;
  int i = 0;
  for (const char* n : names) {
    if (std::strcmp(e, n) == 0) {
      if (usable(i)) return i;
      std::fprintf(stderr, "brisk: ignoring %s=%s: this CPU (or OS) does not support it\n", var, e);
      return best;
    }
    ++i;
  }
  std::string known = "auto";
  for (const char* n : names) known += std::string(", ") + n;
  std::fprintf(stderr, "brisk: ignoring %s=%s: unknown %s (known: %s)\n", var, e, kind, known.c_str());
  return best;
}

}  // namespace brisk
