// Run and speedup folders, read for `brisk report` (run_folder.h).
#include "report/run_folder.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/brisk.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace brisk::report {

namespace {
// Upper bound on a file the report reads: far above any real run's
// metrics or telemetry, and well below what would exhaust memory.
constexpr std::uintmax_t kMaxFileBytes = std::uintmax_t(1) << 30;

json read_json_file(const fs::path& p) {
  BRISK_CHECK(fs::file_size(p) <= kMaxFileBytes, p.string(), " is larger than 1 GiB; not a file brisk wrote");
  std::ifstream f(p);
  BRISK_CHECK(f.good(), "cannot read ", p.string());
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    BRISK_FAIL(p.string(), " is not valid JSON (", e.what(), ")");
  }
}
}  // namespace

FolderKind folder_kind(const std::string& path) {
  fs::path p(path);
  if (!fs::is_directory(p)) return FolderKind::other;
  if (fs::exists(p / "report.json")) return FolderKind::speedup;
  if (fs::exists(p / "metrics.jsonl") || fs::exists(p / "config.json")) return FolderKind::run;
  for (auto& e : fs::directory_iterator(p))
    if (e.is_directory() && (fs::exists(e.path() / "metrics.jsonl") || fs::exists(e.path() / "report.json")))
      return FolderKind::runs_parent;
  return FolderKind::other;
}

std::vector<json> read_json_lines(const std::string& path, std::vector<std::string>& warnings) {
  BRISK_CHECK(fs::file_size(path) <= kMaxFileBytes, path, " is larger than 1 GiB; not a file brisk wrote");
  std::ifstream f(path, std::ios::binary);
  BRISK_CHECK(f.good(), "cannot read ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string all = ss.str();
  std::vector<json> out;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    bool torn = nl == std::string::npos;
    std::string line = all.substr(pos, torn ? std::string::npos : nl - pos);
    pos = torn ? all.size() : nl + 1;
    ++line_no;
    if (line.empty()) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const std::exception&) {
      if (torn) {
        warnings.push_back(path + " ends in a line cut short (line " + std::to_string(line_no) +
                           "): left out, the lines before it are shown");
        break;
      }
      BRISK_FAIL(path, " line ", line_no, " is not valid JSON: the file is corrupt (", line.substr(0, 80), ")");
    }
    BRISK_CHECK(j.is_object(), path, " line ", line_no, " is not a JSON object");
    out.push_back(std::move(j));
  }
  return out;
}

RunFolder read_run(const std::string& path) {
  fs::path p(path);
  BRISK_CHECK(fs::exists(p), "brisk report: ", path, " does not exist");
  BRISK_CHECK(fs::is_directory(p), "brisk report: ", path, " is a file, not a run folder");
  BRISK_CHECK(fs::exists(p / "metrics.jsonl") || fs::exists(p / "config.json"), "brisk report: ", path,
              " is not a run folder (it has no metrics.jsonl or config.json; `brisk train --out DIR` writes them)");
  RunFolder r;
  r.path = path;
  r.name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
  if (fs::exists(p / "config.json")) {
    r.config = read_json_file(p / "config.json");
    BRISK_CHECK(r.config.is_object(), (p / "config.json").string(), " is not a JSON object");
  } else {
    r.warnings.push_back(path + " has no config.json: the run's settings are not shown");
  }
  if (fs::exists(p / "metrics.jsonl")) r.metrics = read_json_lines((p / "metrics.jsonl").string(), r.warnings);
  for (size_t i = 0; i < r.metrics.size(); ++i) {
    const json& m = r.metrics[i];
    BRISK_CHECK(m.contains("step") && m["step"].is_number() && m.contains("wall_s") && m["wall_s"].is_number(),
                path, "/metrics.jsonl line ", i + 1, " has no numeric 'step' and 'wall_s': not a brisk metrics line");
  }
  if (fs::exists(p / "telemetry.jsonl")) {
    r.telemetry = read_json_lines((p / "telemetry.jsonl").string(), r.warnings);
    for (size_t i = 0; i < r.telemetry.size(); ++i)
      BRISK_CHECK(r.telemetry[i].contains("kind") && r.telemetry[i]["kind"].is_string() &&
                      r.telemetry[i].contains("step") && r.telemetry[i]["step"].is_number(),
                  path, "/telemetry.jsonl line ", i + 1, " has no 'kind' and 'step': not a brisk telemetry record");
  } else {
    r.warnings.push_back(path + " has no telemetry.jsonl (a run from before telemetry, or telemetry = false): "
                         "curves come from metrics.jsonl, method sections are left out");
  }
  // Finished: the last evaluation reached the planned epochs or max-steps.
  double epochs = r.config.value("epochs", 0.0);
  double max_steps = r.config.value("max-steps", 0.0);
  if (r.metrics.empty()) {
    r.status = "no evaluation yet (in progress, or stopped before its first)";
  } else {
    double e = r.metrics.back().value("epoch", 0.0), s = r.metrics.back().value("step", 0.0);
    r.finished = (epochs > 0 && e >= epochs - 1e-9) || (max_steps > 0 && s >= max_steps);
    std::ostringstream os;
    if (r.finished) os << "finished";
    else os << "not finished: epoch " << e << " of " << epochs << " (in progress, or stopped; --resume continues it)";
    r.status = os.str();
  }
  if (!r.finished) r.warnings.push_back(path + ": " + r.status + "; the report shows what it has so far");
  return r;
}

SpeedupFolder read_speedup(const std::string& path) {
  fs::path p(path);
  SpeedupFolder s;
  s.path = path;
  s.name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
  s.report = read_json_file(p / "report.json");
  BRISK_CHECK(s.report.is_object() && s.report.contains("configs") && s.report["configs"].is_object(),
              path, "/report.json has no 'configs': not a `brisk speedup` report");
  return s;
}

}  // namespace brisk::report
