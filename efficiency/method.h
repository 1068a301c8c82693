// The method registry: `--method family:key=value,...` makes a Callback.
// Each efficiency family registers a factory; unknown families and keys are
// clear errors that list what is known.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "train/callback.h"

namespace brisk::efficiency {

struct MethodSpec {
  std::string family;
  std::map<std::string, std::string> args;
  std::string text;  // as given
};
MethodSpec parse_method_spec(const std::string& text);

// Typed access to a spec's args; marks keys as used so leftovers are errors.
class MethodArgs {
 public:
  explicit MethodArgs(const MethodSpec& spec) : spec_(spec) {}
  double get_double(const std::string& key, double def);
  int64_t get_int(const std::string& key, int64_t def);
  std::string get_string(const std::string& key, const std::string& def);
  // Names the member whose keys were asked for (e.g. "schedule=gradual"), so
  // that a key it does not take is reported against it.
  // family_keys: every key any member takes, so that a key no member knows is
  // reported as unknown rather than as not applying.
  void set_kind(std::string kind, std::vector<std::string> family_keys) {
    kind_ = std::move(kind);
    family_keys_ = std::move(family_keys);
  }
  // Throws naming any key that no get_* call asked for.
  void finish() const;

 private:
  const MethodSpec& spec_;
  std::vector<std::string> used_;
  std::string kind_;
  std::vector<std::string> family_keys_;
};

using MethodFactory = std::function<std::unique_ptr<train::Callback>(MethodArgs&)>;
void register_method(const std::string& family, MethodFactory factory);
std::unique_ptr<train::Callback> make_method(const std::string& text);
// Every spec's method, in composition order (efficiency/compose.h), refusing
// conflicting sets: the train::MethodBuilder to hand a Trainer.
std::vector<std::unique_ptr<train::Callback>> make_methods(const std::vector<std::string>& specs);
std::vector<std::string> method_families();

}  // namespace brisk::efficiency
