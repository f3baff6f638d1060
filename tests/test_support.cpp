#include "test_support.h"

#include <cstdlib>
#include <filesystem>

namespace wkvq::test {

std::string shared_dir() {
  if (const char* env = std::getenv("WKVQ_SHARED_DIR"); env != nullptr && *env != '\0') return env;
  return WKVQ_DEFAULT_SHARED_DIR;
}

std::string shared_path(const std::string& rel) {
  const std::string p = shared_dir() + "/" + rel;
  return std::filesystem::exists(p) ? p : std::string();
}

bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

}  // namespace wkvq::test
