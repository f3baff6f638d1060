// Whole-file writes that never leave a torn file behind (a temporary file renamed into place),
// and whole-file reads, both with errors that name the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace wkvq {

// Writes n bytes to path + ".tmp", flushes it to disk (fsync), then renames it to path.
void write_file_atomically(const std::string& path, const void* data, size_t n);
// The same for a file written piece by piece: write(out, tmp_path) fills the stream (it may
// throw; a failed stream state is an error too); the temporary file is renamed into place only
// once closed without error, and removed otherwise.
void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&, const std::string&)>& write);

// fsync of a file or directory (a directory: the names in it); throws wkvq::Error on failure.
void fsync_path(const std::string& path);

// The whole file; throws wkvq::Error when it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace wkvq
