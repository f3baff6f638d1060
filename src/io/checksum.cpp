#include "io/checksum.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "core/error.h"
#include "io/mapped_file.h"

namespace wkvq {

namespace {

std::string hash_text(XXH64_hash_t h) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "xxh3_64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

std::string checksum_text(const void* data, size_t n) { return hash_text(XXH3_64bits(data, n)); }

// Read in chunks, not mapped: a mapped file's pages would count in the resident set of the
// process that just wrote it (quantize's peak RSS), the page cache does not.
std::string file_checksum(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  WKVQ_REQUIRE(f != nullptr, path, ": cannot open the file to checksum it");
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> st(XXH3_createState(),
                                                                     &XXH3_freeState);
  WKVQ_REQUIRE(st != nullptr && XXH3_64bits_reset(st.get()) == XXH_OK,
               "checksum: out of memory for the hash state");
  std::vector<char> buf(size_t{1} << 20);
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) {
    XXH3_64bits_update(st.get(), buf.data(), n);
  }
  WKVQ_REQUIRE(!std::ferror(f.get()), path, ": read error while computing its checksum");
  return hash_text(XXH3_64bits_digest(st.get()));
}

std::string mapped_file_checksum(const MappedFile& f) {
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> st(XXH3_createState(),
                                                                     &XXH3_freeState);
  WKVQ_REQUIRE(st != nullptr && XXH3_64bits_reset(st.get()) == XXH_OK,
               "checksum: out of memory for the hash state");
  constexpr size_t kChunk = size_t{32} << 20;
  for (size_t b = 0; b < f.size(); b += kChunk) {
    const size_t n = std::min(kChunk, f.size() - b);
    XXH3_64bits_update(st.get(), f.data() + b, n);
    f.release(f.data() + b, n);
  }
  return hash_text(XXH3_64bits_digest(st.get()));
}

void verify_checksum(const std::string& path, const void* data, size_t n,
                     const std::string& expected, const std::string& source) {
  verify_checksum_text(path, checksum_text(data, n), expected, source);
}

void verify_checksum_text(const std::string& path, const std::string& found,
                          const std::string& expected, const std::string& source) {
  WKVQ_REQUIRE(found == expected, path, ": checksum ", found, " differs from ", expected,
               " recorded in ", source,
               ": the file is damaged or was changed after it was written; write the directory "
               "again (wkvq quantize) or restore it from a copy");
}

}  // namespace wkvq
