// Tokenizers on the real files: llama2.c's tok512.bin (stories260K) against a naive quadratic
// encoder and exact round trips on TinyStories / WikiText; the SentencePiece tokenizer.model of
// wkvq-ref-6m against libsentencepiece's own decoder and exact round trips on WikiText lines.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/sp_tokenizer.h"
#include "runtime/tokenizer.h"
#include "test_support.h"

namespace wkvq {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Pieces of `text` separated by `sep` (separators dropped, empty pieces skipped).
std::vector<std::string> split(const std::string& text, const std::string& sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + sep.size();
  }
  return out;
}

// llama2.c's encode as written in run.c's description: quadratic scan for the best pair.
std::vector<int> naive_encode(const BpeTokenizer& tok, const std::string& text) {
  std::map<std::string, int> index;
  for (int i = 0; i < tok.vocab_size(); ++i) index.emplace(std::string(tok.piece(i)), i);
  auto find = [&index](const std::string& s) {
    const auto it = index.find(s);
    return it == index.end() ? -1 : it->second;
  };
  std::vector<int> sym;
  if (!text.empty()) sym.push_back(find(" "));
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i + 1;
    while (j < text.size() && j - i < 4 && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80) {
      ++j;
    }
    const std::string group = text.substr(i, j - i);
    if (const int id = find(group); id >= 0) {
      sym.push_back(id);
    } else {
      for (char b : group) sym.push_back(static_cast<unsigned char>(b) + 3);
    }
    i = j;
  }
  while (true) {
    float best = -1e10f;
    size_t best_i = 0;
    int best_id = -1;
    for (size_t k = 0; k + 1 < sym.size(); ++k) {
      const int id = find(std::string(tok.piece(sym[k])) + std::string(tok.piece(sym[k + 1])));
      if (id >= 0 && tok.score(id) > best) {
        best = tok.score(id);
        best_i = k;
        best_id = id;
      }
    }
    if (best_id < 0) return sym;
    sym[best_i] = best_id;
    sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
  }
}

// What a caller printing token by token gets.
std::string decode_by_pieces(const Tokenizer& tok, const std::vector<int>& ids) {
  std::string out;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] == tok.bos_id() || ids[k] == tok.eos_id()) continue;
    out += tok.decode_piece(k == 0 ? -1 : ids[k - 1], ids[k]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// llama2.c tok512.bin

TEST(TokenizerGolden, Tok512KnownPrompt) {
  WKVQ_REQUIRE_SHARED(path, "models/stories260K/tok512.bin");
  const auto tok = BpeTokenizer::load(path, 512);
  EXPECT_EQ(tok->vocab_size(), 512);
  // Ids cross-checked with the independent Python reference (tests/python/reference/bpe.py).
  EXPECT_EQ(tok->encode("Once upon a time, there was", true, false),
            (std::vector<int>{1, 403, 407, 261, 378, 432, 383, 286}));
  EXPECT_EQ(tok->decode(tok->encode("Once upon a time, there was", true, true)),
            "Once upon a time, there was");
}

TEST(TokenizerGolden, Tok512RoundTripsTinyStoriesParagraphs) {
  WKVQ_REQUIRE_SHARED(tok_path, "models/stories260K/tok512.bin");
  WKVQ_REQUIRE_SHARED(text_path, "data/tinystories/test.txt");
  const auto tok = load_tokenizer(tok_path);
  const std::vector<std::string> paragraphs = split(read_all(text_path), "\n\n");
  ASSERT_GT(paragraphs.size(), 50u);
  for (size_t p = 0; p < paragraphs.size(); ++p) {
    const std::vector<int> ids = tok->encode(paragraphs[p], true, false);
    ASSERT_EQ(tok->decode(ids), paragraphs[p]) << "paragraph " << p;
    ASSERT_EQ(decode_by_pieces(*tok, ids), paragraphs[p]) << "paragraph " << p;
  }
}

TEST(TokenizerGolden, Tok512FastEqualsNaiveOnFirst20KB) {
  WKVQ_REQUIRE_SHARED(tok_path, "models/stories260K/tok512.bin");
  WKVQ_REQUIRE_SHARED(stories, "data/tinystories/test.txt");
  WKVQ_REQUIRE_SHARED(wiki, "data/wikitext-2-raw/wiki.test.raw");
  const auto tok = BpeTokenizer::load(tok_path, 512);
  for (const auto& [path, sep] : {std::pair{stories, "\n\n"}, std::pair{wiki, "\n"}}) {
    const std::string head = read_all(path).substr(0, 20000);
    size_t bytes = 0, tokens = 0;
    for (const std::string& para : split(head, sep)) {
      const std::vector<int> fast = tok->encode(para, false, false);
      ASSERT_EQ(fast, naive_encode(*tok, para)) << path << ", paragraph at byte " << bytes;
      bytes += para.size();
      tokens += fast.size();
    }
    std::printf("  %s: fast == naive on %zu bytes in paragraphs (%zu tokens)\n", path.c_str(),
                bytes, tokens);
  }
}

TEST(TokenizerGolden, Tok512WholeFilesRoundTripAndTiming) {
  WKVQ_REQUIRE_SHARED(tok_path, "models/stories260K/tok512.bin");
  WKVQ_REQUIRE_SHARED(stories, "data/tinystories/test.txt");
  WKVQ_REQUIRE_SHARED(wiki, "data/wikitext-2-raw/wiki.test.raw");
  const auto tok = BpeTokenizer::load(tok_path, 512);
  // Token counts (without BOS) cross-checked with tests/python/reference/bpe.py.
  for (const auto& [path, expected] :
       {std::pair{stories, size_t{196197}}, std::pair{wiki, size_t{809289}}}) {
    const std::string text = read_all(path);
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int> ids = tok->encode(text, false, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  %s: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s); timing not asserted\n",
                path.c_str(), text.size(), ids.size(), s,
                static_cast<double>(text.size()) / s / 1e6);
    EXPECT_EQ(ids.size(), expected) << path;
    std::vector<int> with_bos = {tok->bos_id()};
    with_bos.insert(with_bos.end(), ids.begin(), ids.end());
    EXPECT_TRUE(tok->decode(with_bos) == text) << path << ": round trip differs";
  }
}

TEST(TokenizerGolden, FindsTokenizerBesideModels) {
  WKVQ_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  WKVQ_REQUIRE_SHARED(tok, "models/stories260K/tok512.bin");
  WKVQ_REQUIRE_SHARED(hf_dir, "models/wkvq-ref-6m");
  EXPECT_EQ(find_tokenizer_beside(model, 512), tok);
  EXPECT_EQ(find_tokenizer_beside(hf_dir, 0), hf_dir + "/tokenizer.model");
  try {
    find_tokenizer_beside(model, 1000);
    FAIL() << "expected wkvq::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("tok1000.bin"), std::string::npos) << what;
    EXPECT_NE(what.find("tokenizer.bin"), std::string::npos) << what;
    EXPECT_NE(what.find("--tokenizer"), std::string::npos) << what;
  }
}

// ---------------------------------------------------------------------------------------------
// SentencePiece tokenizer.model

TEST(TokenizerGolden, SentencePieceRoundTripsWikiTextLines) {
  WKVQ_REQUIRE_SHARED(model, "models/wkvq-ref-6m/tokenizer.model");
  WKVQ_REQUIRE_SHARED(wiki, "data/wikitext-2-raw/wiki.test.raw");
  const auto tok = load_tokenizer(model);
  EXPECT_EQ(tok->vocab_size(), 4096);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model).ok());
  const std::vector<std::string> lines = split(read_all(wiki), "\n");
  size_t checked = 0, tokens = 0;
  for (size_t i = 0; i < lines.size() && checked < 1500; ++i) {
    const std::string& line = lines[i];
    const std::vector<int> ids = tok->encode(line, true, true);
    ASSERT_EQ(ids.front(), 1);
    ASSERT_EQ(ids.back(), 2);
    ASSERT_EQ(tok->decode(ids), line) << "line " << i;
    ASSERT_EQ(decode_by_pieces(*tok, ids), line) << "line " << i;
    std::string reference;  // libsentencepiece's own decoding of the same ids
    ASSERT_TRUE(sp.Decode(ids, &reference).ok());
    ASSERT_EQ(tok->decode(ids), reference) << "line " << i;
    ++checked;
    tokens += ids.size();
  }
  std::printf("  %zu WikiText lines round-trip (%zu tokens)\n", checked, tokens);
}

TEST(TokenizerGolden, SentencePieceDecodesBytePieces) {
  WKVQ_REQUIRE_SHARED(model, "models/wkvq-ref-6m/tokenizer.model");
  const SpTokenizer tok(model);
  EXPECT_TRUE(tok.adds_dummy_prefix());
  // U+2615 (hot beverage) is surely not a piece of a 4096 vocab trained on English: byte fallback.
  const std::string text = "tea \xE2\x98\x95 and caf\xC3\xA9";
  const std::vector<int> ids = tok.encode(text, true, false);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_THROW(tok.decode_piece(1, 4096), Error);
  EXPECT_THROW(tok.decode_piece(1, -1), Error);
}

TEST(TokenizerGolden, SentencePieceLoadErrorNamesThePath) {
  try {
    SpTokenizer tok("/nonexistent/tokenizer.model");
    FAIL() << "expected wkvq::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.model"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load_tokenizer("/nonexistent/tokenizer.model"), Error);
}

}  // namespace
}  // namespace wkvq
