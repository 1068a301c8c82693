// The HTML page of `brisk report` (report.h): the data as one JSON object,
// Chart.js and the page's script inlined, nothing fetched.
#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/brisk.h"
#include "core/safetensors.h"
#include "data/idx.h"
#include "report/run_folder.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace brisk::report {

namespace {

constexpr const char* kDebianChartJs = "/usr/share/javascript/chart.js/chart.min.js";

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  BRISK_CHECK(f.good(), "cannot read ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string chartjs_source(const ReportOptions& opt) {
  std::string path = opt.chartjs;
  if (path.empty()) {
    const char* env = std::getenv("BRISK_CHARTJS");
    path = env && *env ? env : kDebianChartJs;
  }
  BRISK_CHECK(fs::is_regular_file(path), "brisk report draws its charts with Chart.js, not found at ", path,
              ": install the Debian package libjs-chart.js (scripts/install_deps.sh does), or point "
              "BRISK_CHARTJS at a chart.min.js");
  std::string s = read_text(path);
  BRISK_CHECK(s.find("Chart") != std::string::npos && s.find("</script") == std::string::npos, path,
              " does not look like Chart.js");
  return s;
}

// Telemetry records grouped by kind: {"train": [...], "prune": [...], ...}.
json group_telemetry(const std::vector<json>& recs) {
  json g = json::object();
  for (auto& r : recs) g[r["kind"].get<std::string>()].push_back(r);
  return g;
}

// Fashion-MNIST training images of the examples a selection method kept most
// and least often: index -> 784 pixels as hex (row-major, 0 = black).
json selected_images(const RunFolder& r, std::vector<std::string>& warnings) {
  json out = json::object();
  if (r.config.value("data", std::string("fashion-mnist")) != "fashion-mnist") return out;
  std::set<int64_t> want;
  for (auto& rec : r.telemetry)
    if (rec["kind"] == "select")
      for (const char* k : {"most_kept", "least_kept"})
        if (rec.contains(k) && rec[k].is_array())
          for (auto& e : rec[k])
            if (e.contains("index") && e["index"].is_number_integer()) want.insert(e["index"].get<int64_t>());
  if (want.empty()) return out;
  std::string dir = r.config.value("data-dir", std::string());
  if (dir.empty()) dir = data::kFashionMnistDir;
  data::MnistSplit split;
  try {
    split = data::load_mnist_split(dir, true);
  } catch (const std::exception& e) {
    warnings.push_back(r.path + ": the selected examples' pictures are left out: " + e.what());
    return out;
  }
  int64_t n = split.images.size(0), hw = split.images.numel() / std::max<int64_t>(n, 1);
  const uint8_t* px = split.images.contiguous().data_ptr<uint8_t>();
  const int64_t* lab = split.labels.contiguous().data_ptr<int64_t>();
  for (int64_t i : want) {
    if (i < 0 || i >= n) {
      warnings.push_back(r.path + ": telemetry names example " + std::to_string(i) + ", outside the dataset (" +
                         std::to_string(n) + " examples); its picture is left out");
      continue;
    }
    std::string hex(size_t(2 * hw), '0');
    for (int64_t k = 0; k < hw; ++k) {
      uint8_t v = px[i * hw + k];
      hex[size_t(2 * k)] = "0123456789abcdef"[v >> 4];
      hex[size_t(2 * k + 1)] = "0123456789abcdef"[v & 15];
    }
    out[std::to_string(i)] = {{"pixels", hex}, {"label", lab[i]}, {"side", int64_t(std::lround(std::sqrt(double(hw))))}};
  }
  return out;
}

// JSON inside <script type="application/json">: "</" must not end the element.
std::string script_safe(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<' && i + 1 < s.size() && s[i + 1] == '/') o += "<\\/", ++i;
    else o += s[i];
  }
  return o;
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

constexpr const char* kStyle = R"css(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 16px; }
.chart { position: relative; height: 300px; }
.warn { background: #fff4d6; border: 1px solid #e7c66b; padding: 6px 10px; margin: 4px 0; }
.note { color: #555; font-size: 13px; }
.masks, .images { display: flex; flex-wrap: wrap; gap: 10px; }
.masks figure, .images figure { margin: 0; text-align: center; font-size: 11px; }
canvas.px { image-rendering: pixelated; border: 1px solid #ccc; }
)css";

}  // namespace

ReportSummary write_report(const ReportOptions& opt) {
  BRISK_CHECK(!opt.inputs.empty(), "brisk report: give at least one run folder (brisk report RUN [RUN...] --out report.html)");
  BRISK_CHECK(!opt.out.empty(), "brisk report: --out must not be empty");
  std::string chartjs = chartjs_source(opt);  // first: a missing library fails before any work
  ReportSummary sum;
  json runs = json::array(), speedups = json::array();
  std::vector<std::string> paths;
  for (auto& in : opt.inputs) {
    BRISK_CHECK(fs::exists(in), "brisk report: ", in, " does not exist");
    FolderKind k = folder_kind(in);
    if (k == FolderKind::runs_parent) {  // a folder of runs: each of them
      std::vector<std::string> sub;
      for (auto& e : fs::directory_iterator(in))
        if (e.is_directory() && folder_kind(e.path().string()) != FolderKind::other) sub.push_back(e.path().string());
      std::sort(sub.begin(), sub.end());
      sum.warnings.push_back(in + " is a folder of " + std::to_string(sub.size()) + " runs: reporting each");
      paths.insert(paths.end(), sub.begin(), sub.end());
    } else {
      paths.push_back(in);
    }
  }
  for (auto& p : paths) {
    if (folder_kind(p) == FolderKind::speedup) {
      SpeedupFolder s = read_speedup(p);
      speedups.push_back({{"name", s.name}, {"path", s.path}, {"report", s.report}});
      sum.speedups++;
      continue;
    }
    RunFolder r = read_run(p);  // throws on a path that is not a run folder
    json images = selected_images(r, r.warnings);
    for (auto& w : r.warnings) sum.warnings.push_back(w);
    runs.push_back({{"name", r.name},
                    {"path", r.path},
                    {"status", r.status},
                    {"finished", r.finished},
                    {"warnings", r.warnings},
                    {"config", r.config},
                    {"metrics", r.metrics},
                    {"telemetry", group_telemetry(r.telemetry)},
                    {"images", images}});
    sum.runs++;
  }
  // Two runs with one folder name (a/seed0, b/seed0): label them by path.
  std::set<std::string> names;
  bool clash = false;
  for (auto& r : runs) clash |= !names.insert(r["name"].get<std::string>()).second;
  if (clash)
    for (auto& r : runs) r["name"] = r["path"];

  std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  json data = {{"title", opt.title}, {"generated", when}, {"version", BRISK_VERSION},
               {"runs", runs}, {"speedups", speedups}, {"warnings", sum.warnings}};

  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" << html_escape(opt.title)
    << "</title>\n<style>" << kStyle << "</style>\n"
    << "<script>/* Chart.js, from the Debian package libjs-chart.js (MIT License) */\n" << chartjs << "\n</script>\n"
    << "<script type=\"application/json\" id=\"report-data\">" << script_safe(data.dump()) << "</script>\n"
    << "</head><body>\n<h1>" << html_escape(opt.title) << "</h1>\n<div id=\"report\"></div>\n"
    << "<pre id=\"report-status\" class=\"note\"></pre>\n"
    << "<script>\n" << report_script() << "\n</script>\n</body></html>\n";
  fs::path out(opt.out);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  atomic_write(opt.out, h.str());
  return sum;
}

}  // namespace brisk::report
