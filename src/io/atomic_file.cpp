#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace wkvq {

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&, const std::string&)>& write) {
  const std::string tmp = path + ".tmp";
  try {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    WKVQ_REQUIRE(out.good(), tmp, ": cannot create the file (", std::strerror(errno),
                 "); check that the directory exists and is writable");
    write(out, tmp);
    out.close();
    WKVQ_REQUIRE(out.good(), tmp, ": writing the file failed (disk full?)");
    fsync_path(tmp);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  WKVQ_REQUIRE(!ec, path, ": cannot move ", tmp, " into place: ", ec.message());
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  WKVQ_REQUIRE(fd >= 0, path, ": cannot open it to flush it to disk: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  WKVQ_REQUIRE(rc == 0, path, ": flushing it to disk failed (", std::strerror(err),
               "); the disk may be full or failing");
}

void write_file_atomically(const std::string& path, const void* data, size_t n) {
  write_file_atomically(path, [&](std::ostream& out, const std::string& tmp) {
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    WKVQ_REQUIRE(out.good(), tmp, ": writing ", n, " bytes failed (disk full?)");
  });
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  WKVQ_REQUIRE(in.good(), path, ": cannot open the file (", std::strerror(errno), ")");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  WKVQ_REQUIRE(!in.bad(), path, ": reading the file failed");
  return bytes;
}

}  // namespace wkvq
