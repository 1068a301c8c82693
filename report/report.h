// `brisk report`: one self-contained HTML page (works offline) drawn from run
// folders and `brisk speedup` folders: curves against steps and against
// training seconds on shared axes, the learning rate, time per phase, and per
// method what its telemetry recorded (docs/telemetry.md, docs/report.md).
#pragma once
#include <string>
#include <vector>

namespace brisk::report {

struct ReportOptions {
  std::vector<std::string> inputs;  // run folders, speedup folders, or folders of runs
  std::string out = "report.html";
  // Chart.js (Debian: libjs-chart.js), inlined into the page. Empty: the
  // BRISK_CHARTJS environment variable, else the Debian package's file.
  std::string chartjs;
  std::string title = "brisk report";
};

struct ReportSummary {
  int runs = 0, speedups = 0;
  std::vector<std::string> warnings;  // partial input: said on stderr, shown in the page
};

// Writes opt.out (atomically). Throws brisk::Error on input it cannot report.
ReportSummary write_report(const ReportOptions& opt);

// The page's application script (report/report.js, compiled in).
const char* report_script();

}  // namespace brisk::report
