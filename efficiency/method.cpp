// Method spec parsing and the family registry.
#include "efficiency/method.h"

#include "efficiency/compose.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace brisk::efficiency {

void register_builtin_methods();  // efficiency/builtin.cpp

static std::map<std::string, MethodFactory>& registry() {
  static std::map<std::string, MethodFactory> r;
  return r;
}

static void ensure_builtins() {
  static bool done = [] {
    register_builtin_methods();
    return true;
  }();
  (void)done;
}

MethodSpec parse_method_spec(const std::string& text) {
  MethodSpec s;
  s.text = text;
  size_t colon = text.find(':');
  s.family = text.substr(0, colon);
  BRISK_CHECK(!s.family.empty(), "--method '", text, "': expected FAMILY[:key=value,...]");
  if (colon == std::string::npos) return s;
  std::string rest = text.substr(colon + 1);
  size_t pos = 0;
  while (pos <= rest.size() && !rest.empty()) {
    size_t comma = rest.find(',', pos);
    std::string kv = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t eq = kv.find('=');
    BRISK_CHECK(eq != std::string::npos && eq > 0, "--method '", text, "': expected key=value, got '", kv, "'");
    std::string k = kv.substr(0, eq);
    BRISK_CHECK(!s.args.count(k), "--method '", text, "': key '", k, "' given twice");
    s.args[k] = kv.substr(eq + 1);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return s;
}

double MethodArgs::get_double(const std::string& key, double def) {
  used_.push_back(key);
  auto it = spec_.args.find(key);
  if (it == spec_.args.end()) return def;
  try {
    size_t used = 0;
    double v = std::stod(it->second, &used);
    if (used == it->second.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  BRISK_FAIL("--method ", spec_.family, ": key '", key, "' must be a number, got '", it->second, "'");
}

int64_t MethodArgs::get_int(const std::string& key, int64_t def) {
  double v = get_double(key, double(def));
  BRISK_CHECK(v == std::floor(v), "--method ", spec_.family, ": key '", key, "' must be an integer");
  // Outside int64's range the conversion is undefined: refuse (found by fuzz/fuzz_method_spec).
  BRISK_CHECK(std::fabs(v) < 9.2e18, "--method ", spec_.family, ": key '", key, "' is out of range: ", v);
  return int64_t(v);
}

std::string MethodArgs::get_string(const std::string& key, const std::string& def) {
  used_.push_back(key);
  auto it = spec_.args.find(key);
  return it == spec_.args.end() ? def : it->second;
}

void MethodArgs::finish() const {
  for (auto& [k, v] : spec_.args)
    if (std::find(used_.begin(), used_.end(), k) == used_.end()) {
      std::string known;
      for (auto& u : used_) known += (known.empty() ? "" : ", ") + u;
      bool in_family = std::find(family_keys_.begin(), family_keys_.end(), k) != family_keys_.end();
      if (kind_.empty() || !in_family)
        BRISK_FAIL("--method ", spec_.family, ": unknown key '", k, "' (known", kind_.empty() ? "" : " for " + kind_,
                   ": ", known.empty() ? "none" : known, ")");
      BRISK_FAIL("--method ", spec_.family, ": key '", k, "' does not apply to ", kind_, " (its keys: ", known, ")");
    }
}

void register_method(const std::string& family, MethodFactory factory) {
  registry()[family] = std::move(factory);
}

std::vector<std::string> method_families() {
  ensure_builtins();
  std::vector<std::string> out;
  for (auto& [k, v] : registry()) out.push_back(k);
  return out;
}

std::unique_ptr<train::Callback> make_method(const std::string& text) {
  ensure_builtins();
  MethodSpec spec = parse_method_spec(text);
  auto it = registry().find(spec.family);
  if (it == registry().end()) {
    std::string known;
    for (auto& f : method_families()) known += (known.empty() ? "" : ", ") + f;
    BRISK_FAIL("--method '", text, "': unknown method family '", spec.family, "' (known: ", known, ")");
  }
  MethodArgs args(spec);
  auto cb = it->second(args);
  args.finish();
  return cb;
}

std::vector<std::unique_ptr<train::Callback>> make_methods(const std::vector<std::string>& specs) {
  std::vector<std::unique_ptr<train::Callback>> ms;
  for (const std::string& text : specs) ms.push_back(make_method(text));
  order_and_check(ms);
  return ms;
}

}  // namespace brisk::efficiency
