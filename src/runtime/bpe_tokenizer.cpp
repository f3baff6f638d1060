#include "runtime/bpe_tokenizer.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <queue>
#include <utility>

#include "core/error.h"
#include "runtime/byte_token.h"

namespace wkvq {

namespace {

// Longest piece a tokenizer.bin may declare; llama2.c's own are a few dozen bytes, so a larger
// header value means the file is something else.
constexpr int32_t kMaxTokenLengthLimit = 1 << 16;

template <class T>
T read_le(std::string_view data, size_t at) {
  T v;
  std::memcpy(&v, data.data() + at, sizeof(T));
  return v;
}

// FNV-1a, fed piece by piece so that a pair's hash needs no concatenated copy.
constexpr uint32_t kFnvBasis = 2166136261u;
inline uint32_t fnv1a(uint32_t h, std::string_view s) {
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Loading

std::unique_ptr<BpeTokenizer> BpeTokenizer::load(const std::string& path, int vocab_size) {
  std::ifstream in(path, std::ios::binary);
  WKVQ_REQUIRE(in.good(), "cannot open tokenizer file ", path,
               "; pass --tokenizer with a llama2.c tokenizer.bin");
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  WKVQ_REQUIRE(!in.bad(), "error while reading tokenizer file ", path);
  return parse(data, vocab_size, path);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::parse(std::string_view data, int vocab_size,
                                                  const std::string& name) {
  WKVQ_REQUIRE(vocab_size >= 0, name, ": vocab size ", vocab_size,
               " requested; expected 0 (read to end of file) or the model's vocab size");
  WKVQ_REQUIRE(data.size() >= 4, name, ": ", data.size(),
               " bytes, too short for a llama2.c tokenizer.bin (expected an int32 "
               "max_token_length and then token records); pass the right --tokenizer");
  const int32_t max_len = read_le<int32_t>(data, 0);
  WKVQ_REQUIRE(max_len > 0 && max_len <= kMaxTokenLengthLimit, name, ": max_token_length is ",
               max_len, ", expected 1..", kMaxTokenLengthLimit,
               "; not a llama2.c tokenizer.bin, pass the right --tokenizer");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  size_t at = 4;
  const std::string of_vocab = vocab_size > 0 ? " of " + std::to_string(vocab_size) : "";
  while (vocab_size > 0 ? pieces.size() < static_cast<size_t>(vocab_size) : at < data.size()) {
    const size_t id = pieces.size();
    WKVQ_REQUIRE(data.size() - at >= 8, name, ": truncated at token ", id, of_vocab,
                 ": its score and length need 8 bytes at offset ", at, " but the file has ",
                 data.size(), " bytes; the file is cut short or belongs to a smaller vocab");
    const auto score = read_le<float>(data, at);
    const auto len = read_le<int32_t>(data, at + 4);
    WKVQ_REQUIRE(!std::isnan(score), name, ": token ", id, " has a NaN score (offset ", at,
                 "); the file is corrupt");
    WKVQ_REQUIRE(len >= 0, name, ": token ", id, " has a negative length ", len, " (offset ",
                 at + 4, "); the file is corrupt or not a tokenizer.bin");
    WKVQ_REQUIRE(len <= max_len, name, ": token ", id, " has length ", len,
                 ", more than the header's max_token_length ", max_len, " (offset ", at + 4,
                 "); the file is corrupt or not a llama2.c tokenizer.bin");
    at += 8;
    WKVQ_REQUIRE(data.size() - at >= static_cast<size_t>(len), name, ": truncated in token ", id,
                 ": its ", len, " bytes at offset ", at, " run past the end of the file (",
                 data.size(), " bytes)");
    pieces.emplace_back(data.substr(at, static_cast<size_t>(len)));
    scores.push_back(score);
    at += static_cast<size_t>(len);
  }
  WKVQ_REQUIRE(at == data.size(), name, ": ", data.size() - at, " bytes left after the ",
               vocab_size,
               " tokens of the model's vocab; the tokenizer belongs to a larger "
               "vocab, pass the model's own --tokenizer");
  return std::make_unique<BpeTokenizer>(pieces, scores, max_len, name);
}

BpeTokenizer::BpeTokenizer(const std::vector<std::string>& pieces, const std::vector<float>& scores,
                           int max_token_length, std::string name)
    : name_(std::move(name)), scores_(scores), max_token_length_(max_token_length) {
  WKVQ_REQUIRE(pieces.size() == scores.size(), name_, ": ", pieces.size(), " pieces but ",
               scores.size(), " scores");
  WKVQ_REQUIRE(pieces.size() >= 3, name_, ": ", pieces.size(),
               " tokens, expected at least 3 (<unk>, <s>, </s>)");
  WKVQ_REQUIRE(pieces.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max() / 4), name_,
               ": ", pieces.size(), " tokens, too many");
  size_t total = 0;
  for (const std::string& p : pieces) {
    WKVQ_REQUIRE(p.size() <= static_cast<size_t>(max_token_length), name_, ": piece of ", p.size(),
                 " bytes is longer than max_token_length ", max_token_length);
    total += p.size();
  }
  WKVQ_REQUIRE(total < std::numeric_limits<uint32_t>::max(), name_, ": pieces too large");
  blob_.reserve(total);
  offsets_.reserve(pieces.size() + 1);
  offsets_.push_back(0);
  for (const std::string& p : pieces) {
    blob_.insert(blob_.end(), p.begin(), p.end());
    offsets_.push_back(static_cast<uint32_t>(blob_.size()));
  }
  size_t cap = 16;
  while (cap < 2 * pieces.size()) cap *= 2;
  table_.assign(cap, -1);
  table_mask_ = static_cast<uint32_t>(cap - 1);
  for (int id = 0; id < vocab_size(); ++id) {
    const std::string_view p = piece(id);
    for (uint32_t h = fnv1a(kFnvBasis, p) & table_mask_;; h = (h + 1) & table_mask_) {
      int32_t& slot = table_[h];
      if (slot < 0) {
        slot = id;
        break;
      }
      if (piece(slot) == p) break;  // a repeated piece: the first id wins
    }
  }
}

std::string_view BpeTokenizer::piece(int id) const {
  const auto i = static_cast<size_t>(id);
  return {blob_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]};
}

int BpeTokenizer::lookup(std::string_view p) const {
  for (uint32_t h = fnv1a(kFnvBasis, p) & table_mask_;; h = (h + 1) & table_mask_) {
    const int32_t id = table_[h];
    if (id < 0 || piece(id) == p) return id;
  }
}

int BpeTokenizer::lookup_pair(int a, int b) const {
  const std::string_view pa = piece(a), pb = piece(b);
  if (pa.size() + pb.size() > static_cast<size_t>(max_token_length_)) return -1;
  for (uint32_t h = fnv1a(fnv1a(kFnvBasis, pa), pb) & table_mask_;; h = (h + 1) & table_mask_) {
    const int32_t id = table_[h];
    if (id < 0) return -1;
    const std::string_view p = piece(id);
    if (p.size() == pa.size() + pb.size() && p.substr(0, pa.size()) == pa &&
        p.substr(pa.size()) == pb) {
      return id;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

void BpeTokenizer::push_byte_fallback(unsigned char b, size_t at, std::vector<int>& out) const {
  const int id = b + kByteFallbackOffset;
  if (id >= vocab_size()) {
    fail(name_, ": byte 0x", std::hex, static_cast<int>(b), std::dec, " at text offset ", at,
         " has no piece and the vocab (", vocab_size(), " tokens) has no byte-fallback id ", id,
         " for it; use the model's own tokenizer or remove that character");
  }
  out.push_back(id);
}

// llama2.c's grouping: every byte starts a group unless it continues one (10xxxxxx); a group
// holds at most 4 bytes. Valid UTF-8 groups into code points; invalid input still groups
// deterministically and, having no piece, falls back byte by byte.
void BpeTokenizer::initial_symbols(std::string_view text, std::vector<int>& out) const {
  if (const int space = lookup(" "); space >= 0) {
    out.push_back(space);  // dummy prefix
  } else {
    push_byte_fallback(' ', 0, out);
  }
  size_t start = 0;
  while (start < text.size()) {
    size_t end = start + 1;
    while (end < text.size() && end - start < 4 &&
           (static_cast<unsigned char>(text[end]) & 0xC0u) == 0x80u) {
      ++end;
    }
    if (const int id = lookup(text.substr(start, end - start)); id >= 0) {
      out.push_back(id);
    } else {
      for (size_t i = start; i < end; ++i) {
        push_byte_fallback(static_cast<unsigned char>(text[i]), i, out);
      }
    }
    start = end;
  }
}

// Symbols form a doubly linked list over `ids`' slots; a merge keeps the left slot and unlinks
// the right one. Every adjacent pair that concatenates to a piece is a queue entry keyed by
// (score desc, left slot asc); slots keep text order, so the smallest left slot is the leftmost
// pair, exactly the naive scan's tie-break. Entries go stale when either symbol changes: each
// slot has a version, bumped whenever it merges or dies, and a popped entry whose recorded
// versions differ is dropped (lazy deletion).
void BpeTokenizer::merge(std::vector<int>& ids) const {
  const size_t n = ids.size();
  if (n < 2) return;
  struct Slot {
    int prev, next;  // -1 at the ends
    uint32_t version;
  };
  std::vector<Slot> slots(n);
  for (size_t i = 0; i < n; ++i) {
    slots[i] = {static_cast<int>(i) - 1, i + 1 < n ? static_cast<int>(i) + 1 : -1, 0};
  }
  struct Candidate {
    float score;
    int left, right, merged;
    uint32_t left_version, right_version;
  };
  struct Lower {  // priority_queue pops the greatest: higher score, then smaller left slot
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.score != b.score ? a.score < b.score : a.left > b.left;
    }
  };
  std::vector<Candidate> storage;
  storage.reserve(n);
  std::priority_queue<Candidate, std::vector<Candidate>, Lower> queue(Lower{}, std::move(storage));
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const int m = lookup_pair(ids[static_cast<size_t>(l)], ids[static_cast<size_t>(r)]);
    if (m < 0) return;
    const float s = scores_[static_cast<size_t>(m)];
    if (!(s > kMinMergeScore)) return;  // llama2.c never takes such a merge (nor NaN)
    queue.push(
        {s, l, r, m, slots[static_cast<size_t>(l)].version, slots[static_cast<size_t>(r)].version});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int>(i), static_cast<int>(i) + 1);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Slot& l = slots[static_cast<size_t>(c.left)];
    Slot& r = slots[static_cast<size_t>(c.right)];
    if (l.version != c.left_version || r.version != c.right_version) continue;  // stale
    WKVQ_ASSERT(l.next == c.right);
    ids[static_cast<size_t>(c.left)] = c.merged;
    ++l.version;
    ++r.version;  // dead: every entry that names it is now stale
    l.next = r.next;
    if (r.next >= 0) slots[static_cast<size_t>(r.next)].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  size_t out = 0;
  for (int i = 0; i >= 0; i = slots[static_cast<size_t>(i)].next) {
    ids[out++] = ids[static_cast<size_t>(i)];
  }
  ids.resize(out);
}

std::vector<int> BpeTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  WKVQ_REQUIRE(text.size() < static_cast<size_t>(std::numeric_limits<int>::max() / 2), name_,
               ": text of ", text.size(),
               " bytes is too long to encode in one piece; "
               "split it");
  std::vector<int> out;
  out.reserve(text.size() / 3 + 3);
  if (bos) out.push_back(kBos);
  if (!text.empty()) {
    std::vector<int> ids;
    ids.reserve(text.size() + 1);
    initial_symbols(text, ids);
    merge(ids);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  if (eos) out.push_back(kEos);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

std::string BpeTokenizer::decode_piece(int prev, int token) const {
  WKVQ_REQUIRE(token >= 0 && token < vocab_size(), "token id ", token,
               " is outside the tokenizer's vocabulary [0, ", vocab_size(), ") of ", name_,
               "; is the tokenizer the model's own?");
  if (token == kBos || token == kEos) return {};
  std::string_view p = piece(token);
  if (prev == kBos && !p.empty() && p.front() == ' ') p.remove_prefix(1);
  if (const int byte = byte_token_value(p, HexCase::kAny); byte >= 0) {
    return std::string(1, static_cast<char>(byte));
  }
  return std::string(p);
}

}  // namespace wkvq
