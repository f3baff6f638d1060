// HfTokenizer on small tokenizer.json files written by the tests: merges by rank, ignore_merges,
// added and special tokens, byte fallback and unk, normalizers, BOS/EOS conventions, decoding,
// and clear errors (file and key named) for malformed or unsupported files.
#include "runtime/hf_tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/byte_level.h"
#include "runtime/tokenizer.h"
#include "test_support.h"

namespace wkvq {
namespace {

using nlohmann::json;
using Ids = std::vector<int>;

// A byte-level tokenizer.json: the 256 byte symbols (ids 0..255, id = byte), then `extra`
// tokens (ids 256...), the merges given, <|end|> (special) and <x> (not special) added.
json byte_level_json(const std::vector<std::string>& extra, const json& merges) {
  const ByteLevelAlphabet a;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[a.symbol(static_cast<unsigned char>(b))] = b;
  int next = 256;
  for (const std::string& t : extra) vocab[a.encode(t)] = next++;
  return {{"added_tokens",
           {{{"id", 1000}, {"content", "<|end|>"}, {"special", true}},
            {{"id", 1001}, {"content", "<x>"}, {"special", false}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern", {{"Regex", R"( ?\p{L}+|\p{N}{1,3}|\s+(?!\S)|\s+|[^\s\p{L}\p{N}]+)"}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
          {"post_processor", {{"type", "ByteLevel"}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

class HfTokenizerTest : public ::testing::Test {
 protected:
  std::string write(const json& tok, const json* config = nullptr) {
    test::write_file(dir_.path("tokenizer.json"), tok.dump());
    if (config != nullptr) test::write_file(dir_.path("tokenizer_config.json"), config->dump());
    return dir_.path("tokenizer.json");
  }
  std::unique_ptr<Tokenizer> load(const json& tok, const json* config = nullptr,
                                  bool parse_special = false) {
    TokenizerOptions o;
    o.parse_special = parse_special;
    return load_tokenizer(write(tok, config), o);
  }
  // The message of the error loading `tok` gives; checks that it names the file and `key`.
  std::string error_of(const json& tok, const std::string& key, const json* config = nullptr) {
    try {
      load(tok, config);
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(dir_.str()), std::string::npos) << "no file named: " << what;
      EXPECT_NE(what.find(key), std::string::npos) << "no key " << key << ": " << what;
      return what;
    }
    ADD_FAILURE() << "no error for key " << key;
    return "";
  }
  test::TempDir dir_{"hf_tokenizer"};
};

TEST_F(HfTokenizerTest, MergesByRankLowestFirst) {
  // "abc" = 256 ab, 257 bc, 258 abc. With "b c" ranked first: a + bc -> abc.
  const auto t1 = load(byte_level_json({"ab", "bc", "abc"}, {"b c", "a bc", "a b"}));
  EXPECT_EQ(t1->encode("abc", false, false), (Ids{258}));
  // With "a b" first and no "ab c": ab, c.
  const auto t2 = load(byte_level_json({"ab", "bc", "abc"}, {"a b", "b c", "a bc"}));
  EXPECT_EQ(t2->encode("abc", false, false), (Ids{256, 'c'}));
}

TEST_F(HfTokenizerTest, EqualRanksMergeLeftmostFirst) {
  const auto t = load(byte_level_json({"aa"}, json::array({json::array({"a", "a"})})));
  EXPECT_EQ(t->encode("aaa", false, false), (Ids{256, 'a'}));
  EXPECT_EQ(t->encode("aaaa", false, false), (Ids{256, 256}));
}

TEST_F(HfTokenizerTest, IgnoreMergesTakesWholeWords) {
  json tok = byte_level_json({"ab", "abc"}, {"a b"});  // no merge reaches "abc"
  EXPECT_EQ(load(tok)->encode("abc", false, false), (Ids{256, 'c'}));
  tok["model"]["ignore_merges"] = true;
  EXPECT_EQ(load(tok)->encode("abc", false, false), (Ids{257}));
}

TEST_F(HfTokenizerTest, SpecialTokensOnlyWhenParsed) {
  const json tok = byte_level_json({}, json::array());
  const auto plain = load(tok), special = load(tok, nullptr, true);
  // <x> is an added token that is not special: always found.
  EXPECT_EQ(plain->encode("a<x>", false, false), (Ids{'a', 1001}));
  EXPECT_EQ(special->encode("a<|end|>b", false, false), (Ids{'a', 1000, 'b'}));
  const Ids as_text = plain->encode("<|end|>", false, false);
  EXPECT_GT(as_text.size(), 1u);
  for (const int id : as_text) EXPECT_LT(id, 256);
  EXPECT_EQ(plain->decode(as_text), "<|end|>");
}

TEST_F(HfTokenizerTest, ByteLevelRoundTripsAnyUtf8AndRepairsInvalid) {
  const auto t = load(byte_level_json({"\xC3\xA9"}, json::array({"\xC3\x83 \xC2\xA9"})));
  const std::string text = "caf\xC3\xA9 \xF0\x9F\x98\x80\n\t x";
  EXPECT_EQ(t->decode(t->encode(text, false, false)), text);
  EXPECT_EQ(t->encode("\xC3\xA9", false, false), (Ids{256}));
  // invalid bytes are U+FFFD (EF BF BD) before encoding
  EXPECT_EQ(t->encode("\xFF", false, false), (Ids{0xEF, 0xBF, 0xBD}));
}

TEST_F(HfTokenizerTest, BosEosFollowTemplateAndConfig) {
  json tok = byte_level_json({}, json::array());
  tok["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single",
                            {{{"SpecialToken", {{"id", "<|end|>"}, {"type_id", 0}}}},
                             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  const auto t = load(tok);
  EXPECT_EQ(t->encode("a", true, true), (Ids{1000, 'a'}));  // the template adds BOS only
  EXPECT_EQ(t->encode("a", false, false), (Ids{'a'}));
  const json config = {{"add_bos_token", false}, {"add_eos_token", true}, {"eos_token", "<x>"}};
  const auto c = load(tok, &config);
  EXPECT_EQ(c->encode("a", true, true), (Ids{'a', 1001}));
  EXPECT_EQ(c->eos_id(), 1001);
  EXPECT_EQ(c->vocab_size(), 1002);
}

// SentencePiece conventions: Prepend/Replace normalizer, byte fallback, fused unk, decoders.
json spm_json(bool byte_fallback) {
  json t = json::parse(R"json({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "\u2581"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]},
    "decoder": {"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true,
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3, "a": 4, "b": 5,
                        "\u2581a": 6, "ab": 7, "\u2581ab": 8},
              "merges": ["\u2581 a", "a b", "\u2581 ab", "\u2581a b"]}
  })json");
  t["model"]["byte_fallback"] = byte_fallback;
  if (byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      t["model"]["vocab"][buf] = 9 + b;
    }
  }
  return t;
}

TEST_F(HfTokenizerTest, SentencePieceStyleByteFallbackAndUnk) {
  const auto t = load(spm_json(true));
  EXPECT_EQ(t->encode("ab a", true, false), (Ids{1, 8, 6}));
  // é (C3 A9) is not a piece: its bytes
  EXPECT_EQ(t->encode("a\xC3\xA9", false, false), (Ids{6, 9 + 0xC3, 9 + 0xA9}));
  EXPECT_EQ(t->decode(t->encode("ab a\xC3\xA9", true, false)), "ab a\xC3\xA9");
  // without byte fallback: one fused <unk> for the two unknown characters
  const auto u = load(spm_json(false));
  EXPECT_EQ(u->encode("a\xC3\xA9\xC3\xA8", false, false), (Ids{6, 0}));
  // Strip removes the prepended space of the first piece only
  EXPECT_EQ(t->decode_piece(1, 6), "a");
  EXPECT_EQ(t->decode_piece(6, 6), " a");
  EXPECT_EQ(t->decode_piece(6, 9 + 'x'), "x");
}

TEST_F(HfTokenizerTest, NfcNormalizer) {
  json tok = byte_level_json({"\xC3\xA9"}, json::array({"\xC3\x83 \xC2\xA9"}));
  tok["normalizer"] = {{"type", "NFC"}};
  EXPECT_EQ(load(tok)->encode("e\xCC\x81", false, false), (Ids{256}));  // e + U+0301 -> é
}

TEST_F(HfTokenizerTest, ErrorsNameFileAndKey) {
  const json good = byte_level_json({"ab"}, {"a b"});
  test::write_file(dir_.path("tokenizer.json"), "{\"model\": ");
  EXPECT_THROW(
      {
        try {
          load_tokenizer(dir_.path("tokenizer.json"));
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos);
          throw;
        }
      },
      Error);
  json t = good;
  t["model"]["type"] = "Unigram";
  error_of(t, "model.type");
  t = good;
  t["pre_tokenizer"] = {{"type", "Whitespace"}};
  error_of(t, "pre_tokenizer.type");
  t = good;
  t["normalizer"] = {{"type", "Lowercase"}};
  error_of(t, "normalizer.type");
  t = good;
  t["decoder"] = {{"type", "WordPiece"}};
  error_of(t, "decoder.type");
  t = good;
  t["model"]["merges"] = {"a b", "a zz"};
  EXPECT_NE(error_of(t, "model.merges[1]").find("\"zz\""), std::string::npos);
  t = good;
  t["model"]["merges"] = {"a c"};  // "ac" is no token
  error_of(t, "model.merges[0]");
  t = good;
  t["model"]["merges"] = {"a b c"};
  error_of(t, "model.merges[0]");
  t = good;
  t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  error_of(t, "pre_tokenizer.pretokenizers[0].pattern.Regex");
  t = good;
  t["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "MergedWithNext";
  error_of(t, "pre_tokenizer.pretokenizers[0].behavior");
  t = good;
  t["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}, {"split", true}};
  error_of(t, "pre_tokenizer.split");
  t = good;
  t["model"]["dropout"] = 0.1;
  error_of(t, "model.dropout");
  t = good;
  t.erase("model");
  error_of(t, "model");
  const json bad_bos = {{"bos_token", "<nope>"}};
  error_of(good, "bos_token", &bad_bos);
}

TEST_F(HfTokenizerTest, DecodePieceRejectsIdsOutsideTheVocabulary) {
  const auto t = load(byte_level_json({}, json::array()));
  EXPECT_THROW(t->decode_piece(-1, 1002), Error);
  EXPECT_THROW(t->decode_piece(-1, -1), Error);
}

}  // namespace
}  // namespace wkvq
