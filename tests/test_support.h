// Helpers shared by the C++ tests: where ../shared is, and skipping vs failing when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/parallel.h"

namespace wkvq::test {

// A fresh, empty directory under the system temporary directory, unique per process and
// instance (`tag` names it for people), removed with its contents when destroyed.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path_.string(); }
  // A path inside the directory (nothing is created).
  std::string path(const std::string& name) const { return (path_ / name).string(); }
  // A subdirectory, created.
  std::string sub(const std::string& name) const;

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `path`, replacing it.
void write_file(const std::string& path, const std::string& bytes);
// The bytes of `path` (empty when it cannot be read).
std::string read_file(const std::string& path);

// $WKVQ_SHARED_DIR, else the directory configured at build time (../shared beside the checkout).
std::string shared_dir();
// shared_dir() + "/" + rel, or "" when it does not exist. Under CI (CI=true) a missing file is a
// test failure; elsewhere the caller skips.
std::string shared_path(const std::string& rel);
bool running_in_ci();

// Sets the worker thread count for a scope and restores the previous one on leaving it.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

}  // namespace wkvq::test

// Skips the current test when the shared file is absent (fails instead under CI).
#define WKVQ_REQUIRE_SHARED(var, rel)                                              \
  const std::string var = ::wkvq::test::shared_path(rel);                          \
  if (var.empty()) {                                                               \
    if (::wkvq::test::running_in_ci()) FAIL() << "missing " << rel << " under CI"; \
    GTEST_SKIP() << "needs " << ::wkvq::test::shared_dir() << "/" << rel;          \
  }
