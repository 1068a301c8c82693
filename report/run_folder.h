// Reading what `brisk train` and `brisk speedup` leave in their folders, for
// `brisk report`: tolerant of runs still in progress and of a torn last line
// (each gives a warning and what can be read), strict about anything else
// (a corrupt line in the middle of a file is an error naming file and line).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace brisk::report {

struct RunFolder {
  std::string name, path;
  nlohmann::json config = nlohmann::json::object();  // config.json (empty when absent)
  std::vector<nlohmann::json> metrics;                // metrics.jsonl, one object per evaluation
  std::vector<nlohmann::json> telemetry;              // telemetry.jsonl (empty for older runs)
  bool finished = false;
  std::string status;                                 // "finished", or why not
  std::vector<std::string> warnings;
};

struct SpeedupFolder {
  std::string name, path;
  nlohmann::json report;  // report.json as `brisk speedup` writes it
};

// What a path given to `brisk report` holds.
enum class FolderKind { run, speedup, runs_parent, other };
FolderKind folder_kind(const std::string& path);

// Throws brisk::Error naming the folder and what is wrong with it.
RunFolder read_run(const std::string& path);
SpeedupFolder read_speedup(const std::string& path);

// Reads a JSON-lines file: one object per line. A last line without its
// newline that does not parse (a write cut short) is dropped with a warning
// in `warnings`; any other bad line throws, naming file and line.
std::vector<nlohmann::json> read_json_lines(const std::string& path, std::vector<std::string>& warnings);

}  // namespace brisk::report
