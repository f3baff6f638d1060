// BpeTokenizer on small synthetic vocabularies: merge order, ties, byte fallback, dummy prefix,
// UTF-8 grouping, decoding, and a randomized comparison of the heap-ordered encoder with a naive
// quadratic one written here from llama2.c's description.
#include "runtime/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "unit/bpe_vocab_fixture.h"

namespace wkvq {
namespace {

using namespace bpe_test;

// ---------------------------------------------------------------------------------------------
// Naive reference: llama2.c's encode, quadratic, from its description.

std::vector<int> naive_encode(const BpeTokenizer& tok, std::string_view text, bool bos, bool eos) {
  std::map<std::string, int> index;
  for (int i = 0; i < tok.vocab_size(); ++i) index.emplace(std::string(tok.piece(i)), i);
  auto find = [&index](const std::string& s) {
    const auto it = index.find(s);
    return it == index.end() ? -1 : it->second;
  };
  std::vector<int> ids;
  if (bos) ids.push_back(1);
  std::vector<int> sym;
  if (!text.empty()) sym.push_back(find(" ") >= 0 ? find(" ") : ' ' + 3);
  std::string group;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) group.clear();
    group += static_cast<char>(c);
    const bool more = i + 1 < text.size() &&
                      (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80 && group.size() < 4;
    if (more) continue;
    if (const int id = find(group); id >= 0) {
      sym.push_back(id);
    } else {
      for (char b : group) sym.push_back(static_cast<unsigned char>(b) + 3);
    }
    group.clear();
  }
  while (true) {
    float best = -1e10f;
    int best_i = -1, best_id = -1;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      const int id = find(std::string(tok.piece(sym[i])) + std::string(tok.piece(sym[i + 1])));
      if (id >= 0 && tok.score(id) > best) {
        best = tok.score(id);
        best_i = static_cast<int>(i);
        best_id = id;
      }
    }
    if (best_i < 0) break;
    sym[static_cast<size_t>(best_i)] = best_id;
    sym.erase(sym.begin() + best_i + 1);
  }
  ids.insert(ids.end(), sym.begin(), sym.end());
  if (eos) ids.push_back(2);
  return ids;
}

std::vector<int> ids_of(const BpeTokenizer& tok, const std::vector<std::string>& pieces) {
  std::vector<int> ids;
  for (const std::string& p : pieces) {
    const int id = tok.lookup(p);
    EXPECT_GE(id, 0) << "test vocab lacks piece '" << p << "'";
    ids.push_back(id);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Encoding

TEST(BpeTokenizer, EmptyTextGivesOnlyBosEos) {
  const auto tok = load_vocab(base_vocab({{" ", 0.f}, {"a", 0.f}}));
  EXPECT_EQ(tok->encode("", false, false), std::vector<int>{});
  EXPECT_EQ(tok->encode("", true, false), std::vector<int>{1});
  EXPECT_EQ(tok->encode("", true, true), (std::vector<int>{1, 2}));
}

TEST(BpeTokenizer, DummyPrefixComesAfterBos) {
  const auto tok = load_vocab(base_vocab({{" ", 0.f}, {"a", 0.f}, {"b", 0.f}}));
  const int space = tok->lookup(" "), a = tok->lookup("a"), b = tok->lookup("b");
  EXPECT_EQ(tok->encode("ab", false, false), (std::vector<int>{space, a, b}));
  EXPECT_EQ(tok->encode("ab", true, true), (std::vector<int>{1, space, a, b, 2}));
}

TEST(BpeTokenizer, DummyPrefixMergesWithFirstWord) {
  const auto tok =
      load_vocab(base_vocab({{" ", 0.f}, {"h", 0.f}, {"i", 0.f}, {" h", 1.f}, {" hi", 2.f}}));
  EXPECT_EQ(tok->encode("hi", true, false), (std::vector<int>{1, tok->lookup(" hi")}));
}

TEST(BpeTokenizer, HighestScoreMergesFirst) {
  const auto bc_wins = load_vocab(
      base_vocab({{" ", 0.f}, {"a", 0.f}, {"b", 0.f}, {"c", 0.f}, {"ab", 1.f}, {"bc", 2.f}}));
  EXPECT_EQ(bc_wins->encode("abc", false, false), ids_of(*bc_wins, {" ", "a", "bc"}));
  const auto ab_wins = load_vocab(
      base_vocab({{" ", 0.f}, {"a", 0.f}, {"b", 0.f}, {"c", 0.f}, {"ab", 3.f}, {"bc", 2.f}}));
  EXPECT_EQ(ab_wins->encode("abc", false, false), ids_of(*ab_wins, {" ", "ab", "c"}));
}

TEST(BpeTokenizer, MergesChainThroughLongerPieces) {
  const auto tok = load_vocab(base_vocab({{" ", 0.f},
                                          {"a", 0.f},
                                          {"b", 0.f},
                                          {"c", 0.f},
                                          {"d", 0.f},
                                          {"cd", 5.f},
                                          {"ab", 4.f},
                                          {"abcd", 1.f},
                                          {" abcd", 0.5f}}));
  EXPECT_EQ(tok->encode("abcd", false, false), ids_of(*tok, {" abcd"}));
  EXPECT_EQ(tok->encode("abcdab", false, false), ids_of(*tok, {" abcd", "ab"}));
}

TEST(BpeTokenizer, TiesGoToTheLeftmostPair) {
  const auto tok = load_vocab(
      base_vocab({{" ", 0.f}, {"a", 0.f}, {"b", 0.f}, {"aa", 1.f}, {"ab", 1.f}, {"ba", 1.f}}));
  // "aaa": both pairs are "aa", the left one merges.
  EXPECT_EQ(tok->encode("aaa", false, false), ids_of(*tok, {" ", "aa", "a"}));
  // "bab": "ba" and "ab" tie; "ba" is leftmost.
  EXPECT_EQ(tok->encode("bab", false, false), ids_of(*tok, {" ", "ba", "b"}));
  // "abab": a-b, b-a, a-b tie; the first a-b merges, then the last a-b (b-a is gone).
  EXPECT_EQ(tok->encode("abab", false, false), ids_of(*tok, {" ", "ab", "ab"}));
}

TEST(BpeTokenizer, TieBreakUsesPositionAfterEarlierMerges) {
  // "xaab" merges "xa" first (score 3), leaving "xa" "a" "b"; then "xaa" and "ab" tie at 1 and
  // "xaa", whose left symbol is the merged one, is leftmost.
  const auto tok = load_vocab(base_vocab(
      {{" ", 0.f}, {"x", 0.f}, {"a", 0.f}, {"b", 0.f}, {"xa", 3.f}, {"ab", 1.f}, {"xaa", 1.f}}));
  EXPECT_EQ(tok->encode("xaab", false, false), ids_of(*tok, {" ", "xaa", "b"}));
  EXPECT_EQ(tok->encode("xaab", false, false), naive_encode(*tok, "xaab", false, false));
}

TEST(BpeTokenizer, ScoresAtOrBelowMinus1e10NeverMerge) {
  const auto tok =
      load_vocab(base_vocab({{" ", 0.f}, {"a", 0.f}, {"aa", -1e10f}, {"b", 0.f}, {"bb", -1e9f}}));
  EXPECT_EQ(tok->encode("aabb", false, false), ids_of(*tok, {" ", "a", "a", "bb"}));
}

TEST(BpeTokenizer, UnknownCharactersFallBackToBytes) {
  const auto tok = load_vocab(base_vocab({{" ", 0.f}, {"a", 0.f}}));
  const int space = tok->lookup(" "), a = tok->lookup("a");
  // U+00E9 (2 bytes) and U+1F600 (4 bytes) are not pieces: one id per byte, byte + 3.
  EXPECT_EQ(tok->encode("a\xC3\xA9", false, false),
            (std::vector<int>{space, a, 0xC3 + 3, 0xA9 + 3}));
  EXPECT_EQ(tok->encode("\xF0\x9F\x98\x80", false, false),
            (std::vector<int>{space, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}));
}

TEST(BpeTokenizer, MultiByteCodePointsArePieces) {
  const auto tok = load_vocab(base_vocab({{" ", 0.f},
                                          {"\xC3\xA9", 0.f},          // U+00E9
                                          {"\xE2\x82\xAC", 0.f},      // U+20AC
                                          {"\xF0\x9F\x98\x80", 0.f},  // U+1F600
                                          {"\xC3\xA9\xE2\x82\xAC", 1.f}}));
  EXPECT_EQ(tok->encode("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", false, false),
            ids_of(*tok, {" ", "\xC3\xA9\xE2\x82\xAC", "\xF0\x9F\x98\x80"}));
}

TEST(BpeTokenizer, InvalidUtf8GroupsLikeLlama2c) {
  const auto tok = load_vocab(base_vocab({{" ", 0.f}, {"a", 0.f}, {"b", 0.f}}));
  const int space = tok->lookup(" "), a = tok->lookup("a"), b = tok->lookup("b");
  // A lone continuation byte, a truncated 3-byte sequence, a continuation after ASCII (which
  // joins the ASCII byte's group, so 'a' falls back too), 5 continuation bytes (4 + 1 groups).
  EXPECT_EQ(tok->encode("\x80"
                        "b",
                        false, false),
            (std::vector<int>{space, 0x80 + 3, b}));
  EXPECT_EQ(tok->encode("\xE2\x82"
                        "b",
                        false, false),
            (std::vector<int>{space, 0xE2 + 3, 0x82 + 3, b}));
  EXPECT_EQ(tok->encode("a\x80", false, false), (std::vector<int>{space, 'a' + 3, 0x80 + 3}));
  EXPECT_EQ(tok->encode("a\x80\x80\x80\x80", false, false),
            (std::vector<int>{space, 'a' + 3, 0x80 + 3, 0x80 + 3, 0x80 + 3, 0x80 + 3}));
  EXPECT_EQ(tok->encode(std::string_view("\0a", 2), false, false),
            (std::vector<int>{space, 0 + 3, a}));
}

TEST(BpeTokenizer, MissingSpacePieceFallsBackForTheDummyPrefix) {
  const auto tok = load_vocab(base_vocab({{"a", 0.f}}));
  EXPECT_EQ(tok->encode("a", false, false), (std::vector<int>{' ' + 3, tok->lookup("a")}));
}

TEST(BpeTokenizer, RepeatedPieceResolvesToItsFirstId) {
  Vocab v = base_vocab({{" ", 0.f}, {"a", 0.f}});
  const int first = static_cast<int>(v.pieces.size()) - 1;
  v.add("a", 5.f);
  const auto tok = load_vocab(v);
  EXPECT_EQ(tok->lookup("a"), first);
  EXPECT_EQ(tok->encode("a", false, false), (std::vector<int>{tok->lookup(" "), first}));
}

TEST(BpeTokenizer, VocabWithoutByteFallbackRejectsUnknownBytes) {
  Vocab v;
  v.add("<unk>", 0.f);
  v.add("<s>", 0.f);
  v.add("</s>", 0.f);
  v.add(" ", 0.f);
  v.add("a", 0.f);
  const auto tok = load_vocab(v);
  EXPECT_EQ(tok->encode("aa", false, false), (std::vector<int>{3, 4, 4}));
  try {
    tok->encode("ab", false, false);
    FAIL() << "expected wkvq::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte-fallback"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("offset 1"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

TEST(BpeTokenizer, DecodePieceRules) {
  const auto tok = load_vocab(
      base_vocab({{" ", 0.f}, {" a", 0.f}, {"b", 0.f}, {"<0x4G>", 0.f}, {" <0x41>", 0.f}}));
  const int sa = tok->lookup(" a"), b = tok->lookup("b");
  EXPECT_EQ(tok->decode_piece(1, sa), "a");   // leading space dropped after BOS
  EXPECT_EQ(tok->decode_piece(b, sa), " a");  // kept elsewhere
  EXPECT_EQ(tok->decode_piece(-1, sa), " a");
  EXPECT_EQ(tok->decode_piece(1, b), "b");
  EXPECT_EQ(tok->decode_piece(b, 0x0A + 3), "\n");    // <0x0A>
  EXPECT_EQ(tok->decode_piece(b, 0xFF + 3), "\xFF");  // <0xFF>
  EXPECT_EQ(tok->decode_piece(b, 0x00 + 3), std::string(1, '\0'));
  EXPECT_EQ(tok->decode_piece(b, tok->lookup("<0x4G>")), "<0x4G>");  // not hex: literal
  EXPECT_EQ(tok->decode_piece(1, tok->lookup(" <0x41>")), "A");      // space dropped first
  EXPECT_EQ(tok->decode_piece(b, 1), "");                            // BOS and EOS are not text
  EXPECT_EQ(tok->decode_piece(b, 2), "");
  EXPECT_THROW(tok->decode_piece(1, -1), Error);
  EXPECT_THROW(tok->decode_piece(1, tok->vocab_size()), Error);
}

TEST(BpeTokenizer, DecodeInvertsEncodeForAnyBytes) {
  const auto tok = load_vocab(base_vocab(
      {{" ", 0.f}, {"a", 0.f}, {"b", 0.f}, {"ab", 1.f}, {" a", 2.f}, {"\xC3\xA9", 0.f}}));
  std::mt19937 rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) {
      const uint32_t r = rng() % 8;
      c = r < 3 ? "ab "[r] : r == 3 ? '\xC3' : r == 4 ? '\xA9' : static_cast<char>(rng() % 256);
    }
    EXPECT_EQ(tok->decode(tok->encode(text, true, true)), text) << "trial " << trial;
  }
}

// ---------------------------------------------------------------------------------------------
// Heap-ordered encoder == naive encoder, on random vocabularies and texts

TEST(BpeTokenizer, FastEncoderEqualsNaiveOnRandomVocabs) {
  const uint32_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay: WKVQ_TEST_SEED=" + std::to_string(seed) +
               ")");
  std::mt19937 rng(seed);
  const std::vector<std::string> alphabet = {" ", "a", "b", "c", "d", "\xC3\xA9", "\xE2\x82\xAC"};
  for (int round = 0; round < 60; ++round) {
    // A vocab: the alphabet (sometimes without " ") plus random concatenations of existing
    // pieces; scores from a few integers so that ties are common.
    std::vector<std::pair<std::string, float>> extra;
    std::vector<std::string> pool;
    for (const std::string& s : alphabet) {
      if (s == " " && rng() % 5 == 0) continue;
      if (s != " " && rng() % 7 == 0) continue;  // some characters only by byte fallback
      extra.push_back({s, 0.f});
      pool.push_back(s);
    }
    const int merges = static_cast<int>(rng() % 60);
    for (int m = 0; m < merges && !pool.empty(); ++m) {
      const std::string p = pool[rng() % pool.size()] + pool[rng() % pool.size()];
      extra.push_back({p, static_cast<float>(rng() % 5) - 1.f});
      pool.push_back(p);
    }
    const auto tok = load_vocab(base_vocab(extra));
    for (int t = 0; t < 25; ++t) {
      std::string text;
      const size_t len = rng() % 120;
      while (text.size() < len) {
        text += rng() % 10 == 0 ? std::string(1, static_cast<char>(rng() % 256))
                                : alphabet[rng() % alphabet.size()];
      }
      const bool bos = rng() % 2 == 0, eos = rng() % 2 == 0;
      ASSERT_EQ(tok->encode(text, bos, eos), naive_encode(*tok, text, bos, eos))
          << "round " << round << ", text of " << text.size() << " bytes";
    }
  }
}

}  // namespace
}  // namespace wkvq
