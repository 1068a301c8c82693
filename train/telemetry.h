// Method telemetry: what the trainer and each efficiency method decided, as
// one JSON object per line in the run folder's telemetry.jsonl (format:
// docs/telemetry.md). `brisk report` draws it; a run without the file (older
// runs, or telemetry = false) still reports from metrics.jsonl.
//
// Records are buffered in memory and appended at each evaluation, just before
// the checkpoint that covers them is written; the checkpoint stores the line
// count, and a resume trims the file to it (as metrics.jsonl), so every step's
// records appear once however often a run is interrupted.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace brisk::train {

class Telemetry {
 public:
  // `enabled`: the run's telemetry setting; `writer`: whether this process
  // writes files (the main rank of a data-parallel job).
  void open(const std::string& dir, bool enabled, bool writer);
  // Whether records are kept. Methods skip the work of building a record
  // when this is false; on the other ranks of a data-parallel job it is false.
  bool on() const { return enabled_ && writer_; }
  // Keeps one record (an object with at least "kind"); nothing when !on().
  void record(nlohmann::json r);
  // Appends the buffered records to telemetry.jsonl.
  void flush();
  // Whole lines in the file, counting the ones flushed (checkpointed).
  int64_t lines() const { return lines_; }
  // On resume: keep the first `lines` whole lines (the ones the checkpoint covers).
  void trim(int64_t lines);
  // A fresh run: an empty file.
  void reset();

 private:
  std::string path_;
  bool enabled_ = false, writer_ = false;
  std::vector<nlohmann::json> pending_;
  int64_t lines_ = 0;
};

// Keeps the first `lines` whole lines of a JSON-lines file (a last line
// without its newline is a torn write and goes too), rewriting it atomically;
// returns how many it kept. What a resume does to metrics.jsonl and
// telemetry.jsonl, so that each record the checkpoint covers appears once.
int64_t keep_first_lines(const std::string& path, int64_t lines);

// A 2-d picture of a mask for a heatmap: the mask viewed as [rows, cols]
// (rows = dim 0, cols = the other dims flattened) and averaged over blocks so
// that it is at most max_side x max_side cells; each cell is the fraction of
// kept weights in its block, written as one hex digit (0: all pruned, f: all
// kept; rounded to the nearest sixteenth). Returns {"rows", "cols", "shape",
// "cells"} where cells is a string of rows * cols digits, row-major.
nlohmann::json mask_picture(const Tensor& mask, int64_t max_side = 32);

// Edges and counts of a histogram of `values` over [lo, hi] in `bins` equal
// bins ({"lo", "hi", "counts"}); lo/hi are the values' min and max when not given.
nlohmann::json histogram(const std::vector<float>& values, int64_t bins = 30);

}  // namespace brisk::train
