// The Catch2 runner, with a scratch folder per test process: every file and
// folder a test makes goes under fs::temp_directory_path(), which is $TMPDIR
// here, and the folder goes when the process ends. (ctest runs each test
// case in a process of its own; without this a suite run left hundreds of
// folders in the system's temp folder.) Child processes a test starts
// inherit it.
#define CATCH_CONFIG_RUNNER
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

int main(int argc, char* argv[]) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path base = fs::temp_directory_path(ec);
  if (ec) base = "/tmp";
  const fs::path own = base / ("brisk_tests_" + std::to_string(::getpid()));
  fs::create_directories(own, ec);
  const bool scoped = !ec && ::setenv("TMPDIR", own.c_str(), 1) == 0;
  const int rc = Catch::Session().run(argc, argv);
  if (scoped) fs::remove_all(own, ec);
  return rc;
}
