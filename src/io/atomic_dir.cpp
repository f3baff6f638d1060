#include "io/atomic_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"

namespace wkvq {

namespace fs = std::filesystem;

namespace {

// dir without a trailing separator ("out/" and "out" are one directory).
fs::path normal_dir(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (!p.empty() && p.filename().empty()) p = p.parent_path();
  WKVQ_REQUIRE(!p.empty() && p.filename() != "." && p.filename() != "..", dir,
               ": not a directory name that can be replaced; name the output directory itself");
  return p;
}

void remove_tree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  WKVQ_REQUIRE(!ec, p.string(), ": cannot remove it: ", ec.message());
}

// Leftovers of a save that was killed: DIR.wkvq-new is always stale; DIR.wkvq-old is DIR's
// previous contents when the kill fell between the two renames of the fallback swap.
void clear_leftovers(const fs::path& dir, const fs::path& fresh, const fs::path& old) {
  std::error_code ec;
  if (fs::exists(old, ec) && !fs::exists(dir, ec)) {
    fs::rename(old, dir, ec);
    WKVQ_REQUIRE(!ec, old.string(), ": cannot move it back to ", dir.string(), ": ", ec.message());
  }
  remove_tree(old);
  remove_tree(fresh);
}

void sync_tree(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) fsync_path(e.path().string());
  }
  WKVQ_REQUIRE(!ec, dir.string(), ": cannot list the directory: ", ec.message());
  fsync_path(dir.string());
}

// Puts fresh in dir's place; afterwards the previous dir (if any) is at `old` or `fresh`.
void swap_in(const fs::path& fresh, const fs::path& dir, const fs::path& old) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::rename(fresh, dir, ec);
    WKVQ_REQUIRE(!ec, dir.string(), ": cannot move ", fresh.string(),
                 " into place: ", ec.message());
    return;
  }
  if (renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) return;
  WKVQ_REQUIRE(errno == EINVAL || errno == ENOSYS || errno == ENOTSUP, dir.string(),
               ": cannot exchange it with ", fresh.string(), ": ", std::strerror(errno));
  fs::rename(dir, old, ec);  // no atomic exchange on this file system: two renames
  WKVQ_REQUIRE(!ec, dir.string(), ": cannot move it aside to ", old.string(), ": ", ec.message());
  fs::rename(fresh, dir, ec);
  if (ec) {
    std::error_code ec2;
    fs::rename(old, dir, ec2);
    fail(dir.string(), ": cannot move ", fresh.string(), " into place: ", ec.message());
  }
}

}  // namespace

std::string new_directory_name(const std::string& dir) {
  return normal_dir(dir).string() + ".wkvq-new";
}

std::string old_directory_name(const std::string& dir) {
  return normal_dir(dir).string() + ".wkvq-old";
}

void write_directory_atomically(const std::string& dir,
                                const std::function<void(const std::string& tmp)>& fill) {
  const fs::path d = normal_dir(dir);
  const fs::path fresh = new_directory_name(dir), old = old_directory_name(dir);
  clear_leftovers(d, fresh, old);
  std::error_code ec;
  if (d.has_parent_path()) fs::create_directories(d.parent_path(), ec);
  fs::create_directory(fresh, ec);
  WKVQ_REQUIRE(!ec, fresh.string(), ": cannot create the directory: ", ec.message());
  try {
    fill(fresh.string());
    sync_tree(fresh);
    swap_in(fresh, d, old);
  } catch (...) {
    fs::remove_all(fresh, ec);
    throw;
  }
  fsync_path(d.has_parent_path() ? d.parent_path().string() : std::string("."));
  // The previous contents: at `fresh` after an exchange, at `old` after the fallback.
  fs::remove_all(fresh, ec);
  fs::remove_all(old, ec);
}

}  // namespace wkvq
