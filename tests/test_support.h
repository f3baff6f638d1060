// Helpers shared by the C++ tests: where ../shared is, and skipping vs failing when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace wkvq::test {

// $WKVQ_SHARED_DIR, else the directory configured at build time (../shared beside the checkout).
std::string shared_dir();
// shared_dir() + "/" + rel, or "" when it does not exist. Under CI (CI=true) a missing file is a
// test failure; elsewhere the caller skips.
std::string shared_path(const std::string& rel);
bool running_in_ci();

}  // namespace wkvq::test

// Skips the current test when the shared file is absent (fails instead under CI).
#define WKVQ_REQUIRE_SHARED(var, rel)                                              \
  const std::string var = ::wkvq::test::shared_path(rel);                          \
  if (var.empty()) {                                                               \
    if (::wkvq::test::running_in_ci()) FAIL() << "missing " << rel << " under CI"; \
    GTEST_SKIP() << "needs " << ::wkvq::test::shared_dir() << "/" << rel;          \
  }
