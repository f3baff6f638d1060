// Checksums of whole files, to detect damaged bytes on load (a flipped bit in packed weights
// would otherwise load and run silently). XXH3-64 (libxxhash): tens of GB/s per core, so a
// checksum costs a small fraction of reading the file. Text form: "xxh3_64:" + 16 hex digits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace wkvq {

// "xxh3_64:<16 lowercase hex digits>" of n bytes.
std::string checksum_text(const void* data, size_t n);
// The same of a whole file (read in chunks); throws wkvq::Error when it cannot be read.
std::string file_checksum(const std::string& path);

class MappedFile;
// The same of a whole mapped file, hashed in chunks whose pages are dropped from the resident set
// after use (MappedFile::release): verifying a large file does not leave it resident.
std::string mapped_file_checksum(const MappedFile& f);

// Throws wkvq::Error when the bytes' checksum differs from `expected` (a checksum_text), saying
// that `path` is damaged and what to do; `source` names where `expected` came from.
void verify_checksum(const std::string& path, const void* data, size_t n,
                     const std::string& expected, const std::string& source);
// The same with the checksum already computed (`found`, a checksum_text).
void verify_checksum_text(const std::string& path, const std::string& found,
                          const std::string& expected, const std::string& source);

}  // namespace wkvq
