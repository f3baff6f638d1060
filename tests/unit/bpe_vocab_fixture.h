// Synthetic llama2.c vocabularies for the BpeTokenizer tests (bpe_tokenizer_test.cpp,
// bpe_tokenizer_load_test.cpp): building, serialising to tokenizer.bin bytes, loading.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "runtime/bpe_tokenizer.h"
#include "test_support.h"

namespace wkvq::bpe_test {

// ---------------------------------------------------------------------------------------------
// Synthetic vocabularies

struct Vocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  int max_len = 0;

  int add(const std::string& p, float score) {
    pieces.push_back(p);
    scores.push_back(score);
    max_len = std::max(max_len, static_cast<int>(p.size()));
    return static_cast<int>(pieces.size()) - 1;
  }
};

// <unk>, <s>, </s>, the 256 byte pieces <0xXX> (ids 3..258), then `extra` in order.
inline Vocab base_vocab(const std::vector<std::pair<std::string, float>>& extra) {
  Vocab v;
  v.add("<unk>", 0.f);
  v.add("\n<s>\n", 0.f);
  v.add("\n</s>\n", 0.f);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.add(buf, 0.f);
  }
  for (const auto& [p, s] : extra) v.add(p, s);
  return v;
}

inline std::string serialize(const Vocab& v) {
  std::string out;
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  const int32_t max_len = v.max_len;
  put(&max_len, 4);
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    const auto len = static_cast<int32_t>(v.pieces[i].size());
    put(&v.scores[i], 4);
    put(&len, 4);
    put(v.pieces[i].data(), v.pieces[i].size());
  }
  return out;
}

// A file in a fresh temporary directory, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& bytes) : path_(dir_.path("vocab.bin")) {
    test::write_file(path_, bytes);
  }
  const std::string& path() const { return path_; }

 private:
  test::TempDir dir_{"bpe"};
  std::string path_;
};

inline std::unique_ptr<BpeTokenizer> load_vocab(const Vocab& v) {
  const TempFile f(serialize(v));
  return BpeTokenizer::load(f.path(), static_cast<int>(v.pieces.size()));
}

// Seed of the randomized tests: $WKVQ_TEST_SEED to replay a failure, else a fresh one (printed
// with every failure).
inline uint32_t test_seed() {
  if (const char* env = std::getenv("WKVQ_TEST_SEED"); env != nullptr && *env != '\0') {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return std::random_device{}();
}

}  // namespace wkvq::bpe_test
