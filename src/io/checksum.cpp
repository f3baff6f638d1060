#include "io/checksum.h"

#include <xxhash.h>

#include <cstdio>

#include "core/error.h"
#include "io/mapped_file.h"

namespace wkvq {

std::string checksum_text(const void* data, size_t n) {
  const XXH64_hash_t h = XXH3_64bits(data, n);
  char buf[40];
  std::snprintf(buf, sizeof buf, "xxh3_64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string file_checksum(const std::string& path) {
  const auto map = MappedFile::open(path);
  return checksum_text(map->data(), map->size());
}

void verify_checksum(const std::string& path, const void* data, size_t n,
                     const std::string& expected, const std::string& source) {
  const std::string found = checksum_text(data, n);
  WKVQ_REQUIRE(found == expected, path, ": checksum ", found, " differs from ", expected,
               " recorded in ", source,
               ": the file is damaged or was changed after it was written; write the directory "
               "again (wkvq quantize) or restore it from a copy");
}

}  // namespace wkvq
