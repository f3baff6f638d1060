// check_sentencepiece_model (runtime/sp_model_check.h) on hand-built normalization rule blobs and
// model bytes: a well-formed darts-clone trie passes, each way a blob could make libsentencepiece
// read outside it is refused with an error naming the file and the defect. (That real trainers'
// blobs pass and that the hand-built trie means to libsentencepiece what it means here is
// tests/python/test_sp_charsmap.py's part.)
#include "runtime/sp_model_check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace wkvq {
namespace {

// Units of a darts-clone double array; every unit starts as one no byte can match (bit 31 set in
// its label), as darts-clone's builder leaves its unused units.
class TrieBuilder {
 public:
  explicit TrieBuilder(size_t units) : units_(units, kNoMatch) {}

  static constexpr uint32_t kNoMatch = 0x80000000u;

  // Unit `index` becomes a node with this label, reaching its children through `base` (its
  // offset is index ^ base; these tests keep offsets below 2^21, the unshifted encoding).
  void node(uint32_t index, uint32_t label, uint32_t base, bool leaf) {
    const uint32_t offset = index ^ base;
    units_.at(index) = offset << 10 | (leaf ? 1u << 8 : 0u) | label;
  }
  void root(uint32_t base) { units_.at(0) = base << 10; }
  void value(uint32_t index, uint32_t v) { units_.at(index) = kNoMatch | v; }

  // <uint32 trie bytes><units><replacement strings>
  std::string blob(const std::string& replacements) const {
    std::string out;
    put32(&out, static_cast<uint32_t>(units_.size() * 4));
    for (const uint32_t u : units_) put32(&out, u);
    return out + replacements;
  }
  static void put32(std::string* out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
  }

 private:
  std::vector<uint32_t> units_;
};

// One rule, "a" -> the replacement at byte 0 ("x"): root children in block 256..511, the node
// for 'a' at 256 ^ 'a', its value unit and children in block 512..767.
TrieBuilder one_rule() {
  TrieBuilder t(768);
  t.root(256);
  t.node(256 ^ 'a', 'a', 512, true);
  t.value(512, 0);
  return t;
}
const std::string kReplacements("x\0", 2);

// A chain "a", "aa", ... of `rules` rules, each node's children in its own block.
std::string chain(int rules) {
  TrieBuilder t(static_cast<size_t>(rules + 2) * 256);
  t.root(256);
  for (int i = 0; i < rules; ++i) {
    const uint32_t block = 256u * static_cast<uint32_t>(i + 1);
    t.node(block ^ 'a', 'a', block + 256, true);
    t.value(block + 256, 0);
  }
  return t.blob(kReplacements);
}

std::string error_of(const std::string& blob) {
  try {
    check_sentencepiece_charsmap(blob, "m.model", "normalizer_spec.precompiled_charsmap");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const std::string& blob, const std::string& fragment) {
  const std::string e = error_of(blob);
  EXPECT_NE(e.find("m.model"), std::string::npos) << e;
  EXPECT_NE(e.find("normalizer_spec.precompiled_charsmap"), std::string::npos) << e;
  EXPECT_NE(e.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << e;
}

TEST(SpModelCheck, WellFormedRulesAndNoRulesPass) {
  EXPECT_EQ(error_of(""), "");
  EXPECT_EQ(error_of(one_rule().blob(kReplacements)), "");
  EXPECT_EQ(error_of(chain(static_cast<int>(kSentencePieceMaxRuleMatches))), "");
}

TEST(SpModelCheck, RefusesABlobTooShortOrWithABadTrieSize) {
  expect_refused("abc", "too short");
  expect_refused(std::string("\x00\x00\x00\x00zz", 6), "gives its trie 0 bytes");
  std::string blob = one_rule().blob(kReplacements);
  blob[0] = static_cast<char>(blob[0] + 2);  // not a multiple of 4
  expect_refused(blob, "multiple of 4");
  blob = one_rule().blob(kReplacements);
  blob.replace(0, 4, std::string("\xff\xff\x00\x00", 4));  // more than the blob holds
  expect_refused(blob, "gives its trie 65535 bytes");
}

TEST(SpModelCheck, RefusesChildrenOutsideTheTrie) {
  TrieBuilder t = one_rule();
  t.root(1024);  // the root's children would be units 1024..1279 of 768
  expect_refused(t.blob(kReplacements), "children would be units 1024..1279 of 768");
  t = one_rule();
  t.node(256 ^ 'a', 'a', 768, true);  // the node's value and children past the end
  expect_refused(t.blob(kReplacements), "of 768");
}

TEST(SpModelCheck, RefusesAReplacementOutsideTheStrings) {
  TrieBuilder t = one_rule();
  t.value(512, 2);  // "x\0" has bytes 0 and 1
  expect_refused(t.blob(kReplacements), "replacement starts at byte 2 of 2");
}

TEST(SpModelCheck, RefusesACycle) {
  TrieBuilder t = one_rule();
  t.node(256 ^ 'a', 'a', 256, false);  // 'a' leads back to the root's own children
  expect_refused(t.blob(kReplacements), "cycle through trie unit 353");
}

TEST(SpModelCheck, RefusesMoreMatchesAlongAPathThanTheLibraryCollects) {
  expect_refused(chain(static_cast<int>(kSentencePieceMaxRuleMatches) + 1),
                 "more than 32 rules along one path");
}

// Model bytes: field 3 (normalizer_spec) holding field 2 (precompiled_charsmap).
std::string varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>(v | 0x80));
  out.push_back(static_cast<char>(v));
  return out;
}
std::string field(int number, const std::string& bytes) {
  return varint(static_cast<uint64_t>(number) << 3 | 2) + varint(bytes.size()) + bytes;
}

std::string model_error_of(const std::string& model) {
  try {
    check_sentencepiece_model(model, "m.model");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SpModelCheck, FindsTheCharsmapsInTheModel) {
  const std::string pieces = field(1, field(1, "a"));
  const std::string good = field(3, field(1, "nfkc") + field(2, one_rule().blob(kReplacements)));
  EXPECT_EQ(model_error_of(pieces + good + varint(4 << 3) + varint(300)), "");
  TrieBuilder bad = one_rule();
  bad.root(1024);
  const std::string e = model_error_of(pieces + field(3, field(2, bad.blob(kReplacements))));
  EXPECT_NE(e.find("normalizer_spec.precompiled_charsmap"), std::string::npos) << e;
  // the denormalizer's rules, and a second normalizer_spec (protobuf merges the two)
  const std::string e2 = model_error_of(good + field(5, field(2, bad.blob(kReplacements))));
  EXPECT_NE(e2.find("denormalizer_spec.precompiled_charsmap"), std::string::npos) << e2;
  EXPECT_NE(model_error_of(good + field(3, field(2, bad.blob(kReplacements)))), "");
}

TEST(SpModelCheck, RefusesBrokenWireFormat) {
  const std::string ok = field(1, field(1, "a"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {ok + "\x0a\x05" + "ab", "claims 5 bytes but only 2 remain"},
      {ok + "\x08\x80", "ends inside a varint"},
      {ok + std::string(11, '\x80'), "longer than 10 bytes"},
      {ok + "\x0b\x0c", "protobuf group"},
      {ok + "\x0e", "invalid wire type 6"},
      {ok + std::string("\x00\x01", 2), "numbered 0"},
      {ok + "\x0d\x01\x02", "ends inside a fixed-size field"},
      {field(3, "\x12\x09xy"), "normalizer_spec field 2 at byte 0 claims 9 bytes"},
  };
  for (const auto& [model, fragment] : cases) {
    const std::string e = model_error_of(model);
    EXPECT_NE(e.find("m.model"), std::string::npos) << e;
    EXPECT_NE(e.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << e;
  }
}

}  // namespace
}  // namespace wkvq
