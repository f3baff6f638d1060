// io/atomic_file.h: a file is replaced whole or not at all; a failed write leaves the old file and
// no temporary behind, with an error naming the file.
#include "io/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_support.h"

namespace wkvq {
namespace {

std::string read_all(const std::string& path) {
  const std::vector<uint8_t> b = read_file_bytes(path);
  return {b.begin(), b.end()};
}

TEST(AtomicFile, WritesAndReplacesWhole) {
  test::TempDir tmp;
  const std::string path = tmp.path("f.bin");
  write_file_atomically(path, "first", 5);
  EXPECT_EQ(read_all(path), "first");
  write_file_atomically(path, [](std::ostream& out, const std::string&) {
    out << "second, ";
    out << "in pieces";
  });
  EXPECT_EQ(read_all(path), "second, in pieces");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(AtomicFile, AFailedWriteKeepsTheOldFileAndRemovesTheTemporary) {
  test::TempDir tmp;
  const std::string path = tmp.path("f.bin");
  write_file_atomically(path, "old", 3);
  EXPECT_THROW(write_file_atomically(path,
                                     [](std::ostream& out, const std::string&) {
                                       out << "half of it";
                                       throw std::runtime_error("producer failed");
                                     }),
               std::runtime_error);
  EXPECT_EQ(read_all(path), "old");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  // A stream left in a failed state counts as a failed write.
  EXPECT_THROW(
      write_file_atomically(
          path, [](std::ostream& out, const std::string&) { out.setstate(std::ios::badbit); }),
      Error);
  EXPECT_EQ(read_all(path), "old");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(AtomicFile, AMissingDirectoryIsAnErrorNamingTheFile) {
  test::TempDir tmp;
  const std::string path = tmp.path("no/such/dir/f.bin");
  try {
    write_file_atomically(path, "x", 1);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ".tmp"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wkvq
