// BpeTokenizer::load rejects bad tokenizer.bin files (missing, truncated, bad lengths, garbage)
// with a wkvq::Error naming the file, and never crashes.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "core/error.h"
#include "runtime/bpe_tokenizer.h"
#include "unit/bpe_vocab_fixture.h"

namespace wkvq {
namespace {

using namespace bpe_test;

// ---------------------------------------------------------------------------------------------
// Loader

std::string error_of(const std::string& bytes, int vocab_size) {
  const TempFile f(bytes);
  try {
    BpeTokenizer::load(f.path(), vocab_size);
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(f.path()), std::string::npos) << "message lacks the path: " << what;
    return what;
  }
  return "";
}

std::string with_int32_at(std::string bytes, size_t at, int32_t v) {
  std::memcpy(bytes.data() + at, &v, 4);
  return bytes;
}

TEST(BpeTokenizerLoad, ReadsExactVocabOrUntilEnd) {
  const Vocab v = base_vocab({{" ", 1.5f}, {"hello", -2.f}});
  const TempFile f(serialize(v));
  const auto all = BpeTokenizer::load(f.path(), 0);
  EXPECT_EQ(all->vocab_size(), static_cast<int>(v.pieces.size()));
  EXPECT_EQ(all->max_token_length(), 6);
  EXPECT_EQ(all->piece(all->vocab_size() - 1), "hello");
  EXPECT_EQ(all->score(all->vocab_size() - 1), -2.f);
  EXPECT_EQ(BpeTokenizer::load(f.path(), all->vocab_size())->vocab_size(), all->vocab_size());
}

TEST(BpeTokenizerLoad, RejectsMissingFile) {
  EXPECT_THROW(BpeTokenizer::load("/nonexistent/dir/tokenizer.bin", 0), Error);
}

TEST(BpeTokenizerLoad, RejectsTruncatedFilesAtEveryLength) {
  Vocab v;
  for (const char* p : {"<unk>", "<s>", "</s>", " ", "ab"}) v.add(p, 0.f);
  const std::string full = serialize(v);
  // Offsets where a whole number of tokens ends: only there may a vocab_size 0 load succeed.
  std::vector<size_t> boundaries = {4};
  for (const std::string& p : v.pieces) boundaries.push_back(boundaries.back() + 8 + p.size());
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string cut = full.substr(0, n);
    EXPECT_NE(error_of(cut, 5), "") << "cut at " << n;
    const bool boundary =
        std::find(boundaries.begin() + 3, boundaries.end(), n) != boundaries.end();
    EXPECT_EQ(error_of(cut, 0).empty(), boundary) << "cut at " << n;
  }
  EXPECT_NE(error_of(full.substr(0, 30), 5).find("truncated"), std::string::npos);
}

TEST(BpeTokenizerLoad, RejectsBadLengthsAndSizes) {
  Vocab v;
  for (const char* p : {"<unk>", "<s>", "</s>", " ", "ab"}) v.add(p, 0.f);
  const std::string full = serialize(v);
  const size_t len3 = 4 + (8 + 5) + (8 + 3) + (8 + 4) + 4;  // length field of token 3
  std::string msg = error_of(with_int32_at(full, len3, -1), 0);
  EXPECT_NE(msg.find("token 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("negative"), std::string::npos) << msg;
  msg = error_of(with_int32_at(full, len3, 7), 0);
  EXPECT_NE(msg.find("token 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("max_token_length"), std::string::npos) << msg;
  EXPECT_NE(error_of(with_int32_at(full, len3, INT32_MAX), 0), "");
  EXPECT_NE(error_of(with_int32_at(full, len3, INT32_MIN), 0), "");
  EXPECT_NE(error_of(with_int32_at(full, 0, 0), 0), "");   // max_token_length 0
  EXPECT_NE(error_of(with_int32_at(full, 0, -3), 0), "");  // negative
  EXPECT_NE(error_of(with_int32_at(full, 0, 1 << 30), 0), "");
  EXPECT_NE(error_of(full, 4).find("bytes left"), std::string::npos);  // file longer than vocab
  EXPECT_NE(error_of(full, 6).find("truncated at token 5"), std::string::npos);  // shorter
  EXPECT_NE(error_of(full, -1), "");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::string with_nan = full;
  std::memcpy(with_nan.data() + 4, &nan, 4);
  EXPECT_NE(error_of(with_nan, 0).find("NaN"), std::string::npos);
  Vocab two;  // fewer than <unk>, <s>, </s>
  two.add("<unk>", 0.f);
  two.add("<s>", 0.f);
  EXPECT_NE(error_of(serialize(two), 0), "");
}

TEST(BpeTokenizerLoad, GarbageGivesAnErrorOrATokenizerNeverACrash) {
  const uint32_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay: WKVQ_TEST_SEED=" + std::to_string(seed) +
               ")");
  std::mt19937 rng(seed);
  const std::string valid = serialize(base_vocab({{" ", 0.f}, {"ab", 1.f}}));
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes;
    if (trial % 2 == 0) {  // random bytes, sometimes with a plausible header
      bytes.resize(rng() % 200);
      for (char& c : bytes) c = static_cast<char>(rng() % 256);
      if (bytes.size() >= 4 && rng() % 2 == 0) bytes = with_int32_at(bytes, 0, 8);
    } else {  // a valid file with a few bytes flipped
      bytes = valid;
      for (int k = 0; k < 3; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng() % 256);
    }
    const TempFile f(bytes);
    try {
      const auto tok = BpeTokenizer::load(f.path(), 0);
      // Whatever loaded must encode and decode any text without crashing.
      for (const char* text : {"ab ab", "\xC3\xA9x\x80", ""}) {
        try {
          const std::vector<int> ids = tok->encode(text, true, true);
          for (int id : ids) {
            ASSERT_GE(id, 0);
            ASSERT_LT(id, tok->vocab_size());
          }
          (void)tok->decode(ids);
        } catch (const Error&) {
          // a vocab without byte fallback for some byte: a clean error is fine
        }
      }
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace wkvq
