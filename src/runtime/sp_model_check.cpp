#include "runtime/sp_model_check.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace wkvq {

namespace {

// sentencepiece_model.proto: ModelProto.normalizer_spec = 3, .denormalizer_spec = 5;
// NormalizerSpec.precompiled_charsmap = 2.
constexpr uint64_t kNormalizerSpecField = 3, kDenormalizerSpecField = 5, kCharsmapField = 2;
constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kStartGroup = 3, kEndGroup = 4,
              kFixed32 = 5;

struct WireField {
  uint64_t number = 0;
  int wire_type = 0;
  std::string_view bytes;  // the payload of a length-delimited field
};

// Protobuf wire format, one field at a time (https://protobuf.dev/programming-guides/encoding/).
class WireReader {
 public:
  WireReader(std::string_view data, const std::string& path, const char* message)
      : data_(data), path_(path), message_(message) {}

  // The next field, or false at the end of the message.
  bool next(WireField* f) {
    if (at_ == data_.size()) return false;
    const size_t start = at_;
    const uint64_t key = varint();
    f->number = key >> 3;
    f->wire_type = static_cast<int>(key & 7);
    f->bytes = {};
    WKVQ_REQUIRE(f->number != 0, path_, ": ", message_, " has a field numbered 0 at byte ", start,
                 "; expected a SentencePiece tokenizer.model (protobuf), the file is corrupt");
    switch (f->wire_type) {
      case kVarint:
        (void)varint();
        break;
      case kFixed64:
        skip(8);
        break;
      case kFixed32:
        skip(4);
        break;
      case kLengthDelimited: {
        const uint64_t n = varint();
        WKVQ_REQUIRE(n <= data_.size() - at_, path_, ": ", message_, " field ", f->number,
                     " at byte ", start, " claims ", n, " bytes but only ", data_.size() - at_,
                     " remain; the file is truncated or corrupt");
        f->bytes = data_.substr(at_, n);
        at_ += n;
        break;
      }
      case kStartGroup:
      case kEndGroup:
        fail(path_, ": ", message_, " field ", f->number, " at byte ", start,
             " is a protobuf group, which no SentencePiece model uses; the file is corrupt");
      default:
        fail(path_, ": ", message_, " field ", f->number, " at byte ", start,
             " has the invalid wire type ", f->wire_type,
             "; expected a SentencePiece tokenizer.model (protobuf), the file is corrupt");
    }
    return true;
  }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      WKVQ_REQUIRE(at_ < data_.size(), path_, ": ", message_,
                   " ends inside a varint; the file is truncated or corrupt");
      const auto b = static_cast<uint8_t>(data_[at_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail(path_, ": ", message_, " has a varint longer than 10 bytes at byte ", at_,
         "; the file is corrupt");
  }

  void skip(size_t n) {
    WKVQ_REQUIRE(n <= data_.size() - at_, path_, ": ", message_,
                 " ends inside a fixed-size field; the file is truncated or corrupt");
    at_ += n;
  }

  std::string_view data_;
  const std::string& path_;
  const char* message_;
  size_t at_ = 0;
};

uint32_t load_le32(std::string_view bytes, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(bytes[at + i]);
  return v;
}

// A darts-clone double-array unit (its DoubleArrayUnit): the bit layout libsentencepiece reads.
struct TrieUnit {
  uint32_t bits;
  bool has_leaf() const { return ((bits >> 8) & 1) != 0; }
  uint32_t value() const { return bits & 0x7FFFFFFFu; }
  uint32_t label() const { return bits & 0x800000FFu; }
  uint64_t offset() const { return static_cast<uint64_t>(bits >> 10) << ((bits & (1u << 9)) >> 6); }
};

}  // namespace

void check_sentencepiece_charsmap(std::string_view blob, const std::string& path,
                                  const std::string& what) {
  if (blob.empty()) return;
  auto corrupt = [&](auto&&... parts) {
    fail(path, ": the ", what, " (", blob.size(), " bytes) ", parts...,
         "; libsentencepiece does not check these rules and would read outside its buffers. "
         "Expected "
         "the normalization rules a SentencePiece trainer writes: the file is corrupt, pass the "
         "model's own --tokenizer");
  };
  if (blob.size() <= 4) corrupt("is too short for its 4-byte trie size");
  const uint32_t trie_bytes = load_le32(blob, 0);
  if (trie_bytes == 0 || trie_bytes % 4 != 0 || trie_bytes > blob.size() - 4) {
    corrupt("gives its trie ", trie_bytes,
            " bytes; expected a positive multiple of 4 that fits in what follows");
  }
  const uint64_t units = trie_bytes / 4;
  const std::string_view replacements = blob.substr(4 + trie_bytes);
  auto unit = [&](uint64_t i) { return TrieUnit{load_le32(blob, 4 + 4 * i)}; };

  // The library's commonPrefixSearch from unit 0: for each input byte c, the child is base ^ c,
  // an edge when that unit's label is c; the child's base is child ^ offset and, when it has a
  // leaf, the unit at that base holds the value, an offset into the replacement strings. Any
  // byte can come next, so every unit base ^ 0..255 of a reached base is read. darts-clone builds
  // the array from a DAWG, so a unit can be reached along several paths; it must not be reached
  // from itself (a cycle), and no path may match more rules than the library collects. A
  // depth-first walk visits each unit once and keeps, per unit, the most rules matched on a path
  // from it.
  enum : uint8_t { kUnseen, kOnPath, kDone };
  std::vector<uint8_t> state(units, kUnseen), most(units, 0);
  struct Frame {
    uint64_t index, base;
    uint32_t next_label;
    uint8_t most_below;
  };
  std::vector<Frame> walk;
  auto enter = [&](uint64_t index) {
    const uint64_t base = index ^ unit(index).offset();
    if ((base | 0xFF) >= units) {
      corrupt("has a trie node whose children would be units ", base & ~uint64_t{0xFF}, "..",
              base | 0xFF, " of ", units);
    }
    if (index != 0 && unit(index).has_leaf() && unit(base).value() >= replacements.size()) {
      corrupt("has a rule whose replacement starts at byte ", unit(base).value(), " of ",
              replacements.size());
    }
    state[index] = kOnPath;
    walk.push_back({index, base, 0, 0});
  };
  enter(0);
  while (!walk.empty()) {
    Frame& top = walk.back();
    if (top.next_label == 256) {
      const bool leaf = top.index != 0 && unit(top.index).has_leaf();
      const size_t matches = top.most_below + (leaf ? 1 : 0);
      if (matches > kSentencePieceMaxRuleMatches) {
        corrupt("matches more than ", kSentencePieceMaxRuleMatches,
                " rules along one path, libsentencepiece's limit");
      }
      state[top.index] = kDone;
      most[top.index] = static_cast<uint8_t>(matches);
      walk.pop_back();
      if (!walk.empty()) {
        walk.back().most_below = std::max(walk.back().most_below, static_cast<uint8_t>(matches));
      }
      continue;
    }
    const uint32_t c = top.next_label++;
    const uint64_t child = top.base ^ c;
    if (unit(child).label() != c) continue;
    if (state[child] == kOnPath) corrupt("has a cycle through trie unit ", child);
    if (state[child] == kDone) {
      top.most_below = std::max(top.most_below, most[child]);
      continue;
    }
    enter(child);  // may reallocate `walk`: `top` is not used after this
  }
}

void check_sentencepiece_model(std::string_view model, const std::string& path) {
  WireReader top(model, path, "the model");
  WireField f;
  while (top.next(&f)) {
    if (f.wire_type != kLengthDelimited) continue;
    const char* spec_name = f.number == kNormalizerSpecField     ? "normalizer_spec"
                            : f.number == kDenormalizerSpecField ? "denormalizer_spec"
                                                                 : nullptr;
    if (spec_name == nullptr) continue;
    // A field repeated in the file is merged by protobuf (the last charsmap wins): check each.
    WireReader spec(f.bytes, path, spec_name);
    WireField g;
    while (spec.next(&g)) {
      if (g.number == kCharsmapField && g.wire_type == kLengthDelimited) {
        check_sentencepiece_charsmap(g.bytes, path,
                                     std::string(spec_name) + ".precompiled_charsmap");
      }
    }
  }
}

}  // namespace wkvq
