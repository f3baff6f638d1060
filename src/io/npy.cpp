#include "io/npy.h"

#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"

namespace wkvq {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t count = 1;
  for (int64_t d : shape) {
    dict += std::to_string(d) + ", ";
    count *= d;
  }
  dict += "), }";
  // magic (6) + version (2) + header length (2) + dict, padded with spaces to a multiple of 64
  // and ended by a newline
  const size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  const auto header_len = static_cast<uint16_t>(dict.size());

  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  WKVQ_REQUIRE(f != nullptr, "cannot create ", path, "; check that its directory exists");
  const unsigned char head[10] = {0x93,
                                  'N',
                                  'U',
                                  'M',
                                  'P',
                                  'Y',
                                  1,
                                  0,
                                  static_cast<unsigned char>(header_len & 0xff),
                                  static_cast<unsigned char>(header_len >> 8)};
  bool ok = std::fwrite(head, 1, 10, f.get()) == 10;
  ok = ok && std::fwrite(dict.data(), 1, dict.size(), f.get()) == dict.size();
  ok = ok && std::fwrite(data, sizeof(float), static_cast<size_t>(count), f.get()) ==
                 static_cast<size_t>(count);
  WKVQ_REQUIRE(ok, "writing ", path, " failed (disk full?)");
}

}  // namespace wkvq
