#include "calibrate/token_file.h"

#include <bit>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"

namespace wkvq {
namespace {

static_assert(std::endian::native == std::endian::little, "token files are little endian");
constexpr char kMagic[8] = {'W', 'K', 'V', 'Q', 'T', 'O', 'K', '\0'};
constexpr size_t kHeader = sizeof kMagic + sizeof(uint64_t);

}  // namespace

void write_token_file(const std::string& path, const std::vector<int>& tokens) {
  std::vector<uint8_t> bytes(kHeader + tokens.size() * sizeof(int32_t));
  const uint64_t n = tokens.size();
  std::memcpy(bytes.data(), kMagic, sizeof kMagic);
  std::memcpy(bytes.data() + sizeof kMagic, &n, sizeof n);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    std::memcpy(bytes.data() + kHeader + i * sizeof t, &t, sizeof t);
  }
  write_file_atomically(path, bytes.data(), bytes.size());
}

std::vector<int> read_token_file(const std::string& path, int vocab_size) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  WKVQ_REQUIRE(bytes.size() >= kHeader && std::memcmp(bytes.data(), kMagic, sizeof kMagic) == 0,
               path, ": not a wkvq token file (expected the magic WKVQTOK and a count)");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data() + sizeof kMagic, sizeof n);
  WKVQ_REQUIRE(n <= (bytes.size() - kHeader) / sizeof(int32_t) &&
                   bytes.size() == kHeader + n * sizeof(int32_t),
               path, ": the header says ", n, " tokens, the file has ", bytes.size(),
               " bytes; the file is truncated or corrupt");
  std::vector<int> tokens(n);
  for (size_t i = 0; i < n; ++i) {
    int32_t t = 0;
    std::memcpy(&t, bytes.data() + kHeader + i * sizeof t, sizeof t);
    WKVQ_REQUIRE(t >= 0 && t < vocab_size, path, ": token ", i, " is ", t,
                 ", outside the vocabulary [0, ", vocab_size, ")");
    tokens[i] = t;
  }
  return tokens;
}

}  // namespace wkvq
