#include "runtime/bpe_tokenizer.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <queue>

#include "core/error.h"

namespace wkvq {

namespace {

template <class T>
T read_le(const std::string& data, size_t at) {
  T v;
  std::memcpy(&v, data.data() + at, sizeof(T));
  return v;
}

}  // namespace

BpeTokenizer::BpeTokenizer(const std::string& path, int vocab_size) {
  std::ifstream in(path, std::ios::binary);
  WKVQ_REQUIRE(in.good(), "cannot open tokenizer ", path,
               "; pass --tokenizer with a llama2.c tokenizer.bin");
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  WKVQ_REQUIRE(data.size() >= 4, path, ": ", data.size(),
               " bytes, too short for a llama2.c tokenizer (expected an int32 max_token_length "
               "and token records)");
  max_token_length_ = read_le<int32_t>(data, 0);
  WKVQ_REQUIRE(max_token_length_ > 0 && max_token_length_ <= (1 << 16), path,
               ": max_token_length is ", max_token_length_,
               ", expected 1..65536; not a llama2.c tokenizer.bin");
  size_t at = 4;
  while (vocab_size > 0 ? static_cast<int>(pieces_.size()) < vocab_size : at < data.size()) {
    const size_t id = pieces_.size();
    WKVQ_REQUIRE(at + 8 <= data.size(), path, ": truncated at token ", id, " (offset ", at,
                 ", file size ", data.size(), "); expected ", vocab_size,
                 " tokens — is this the model's tokenizer?");
    const auto score = read_le<float>(data, at);
    const auto len = read_le<int32_t>(data, at + 4);
    at += 8;
    WKVQ_REQUIRE(len > 0 && len <= max_token_length_, path, ": token ", id, " has length ", len,
                 ", expected 1..", max_token_length_, " (max_token_length); file corrupt");
    WKVQ_REQUIRE(at + static_cast<size_t>(len) <= data.size(), path, ": token ", id,
                 " runs past the end of the file (offset ", at, " + ", len, " > ", data.size(),
                 ")");
    WKVQ_REQUIRE(std::isfinite(score), path, ": token ", id, " has a non-finite score");
    pieces_.emplace_back(data, at, static_cast<size_t>(len));
    scores_.push_back(score);
    at += static_cast<size_t>(len);
  }
  WKVQ_REQUIRE(vocab_size <= 0 || at == data.size(), path, ": ", data.size() - at,
               " bytes left after ", vocab_size, " tokens; the tokenizer has a different "
               "vocabulary size than the model (", vocab_size, ")");
  WKVQ_REQUIRE(pieces_.size() > 3, path, ": only ", pieces_.size(), " tokens");
  index_.reserve(pieces_.size() * 2);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    index_.emplace(std::string_view(pieces_[i]), static_cast<int>(i));  // first one wins
  }
}

int BpeTokenizer::lookup(std::string_view s) const {
  const auto it = index_.find(s);
  return it == index_.end() ? -1 : it->second;
}

// Code points as pieces, or byte-fallback ids; the grouping of llama2.c: a lead byte starts a
// new code point, continuation bytes (10xxxxxx) join it up to 4 bytes.
std::vector<int> BpeTokenizer::initial_symbols(std::string_view text) const {
  std::vector<int> ids;
  ids.reserve(text.size() + 1);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = start + 1;
    while (end < text.size() && end - start < 4 &&
           (static_cast<unsigned char>(text[end]) & 0xC0u) == 0x80u) {
      ++end;
    }
    const int id = lookup(text.substr(start, end - start));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t i = start; i < end; ++i) ids.push_back(static_cast<unsigned char>(text[i]) + 3);
    }
    start = end;
  }
  return ids;
}

void BpeTokenizer::merge(std::vector<int>& ids) const {
  const auto n = static_cast<int>(ids.size());
  std::vector<int> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  std::vector<uint32_t> version(static_cast<size_t>(n), 0);
  for (int i = 0; i < n; ++i) {
    prev[static_cast<size_t>(i)] = i - 1;
    next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    float score;
    int left, right, merged;
    uint32_t left_version, right_version;
    bool operator<(const Candidate& o) const {  // priority: higher score, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Candidate> heap;
  std::string buf;
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    buf.assign(pieces_[static_cast<size_t>(ids[static_cast<size_t>(l)])]);
    buf += pieces_[static_cast<size_t>(ids[static_cast<size_t>(r)])];
    const int id = lookup(buf);
    if (id >= 0) {
      heap.push({scores_[static_cast<size_t>(id)], l, r, id, version[static_cast<size_t>(l)],
                 version[static_cast<size_t>(r)]});
    }
  };
  for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const auto l = static_cast<size_t>(c.left), r = static_cast<size_t>(c.right);
    if (version[l] != c.left_version || version[r] != c.right_version || next[l] != c.right) {
      continue;  // stale: one side was merged away or changed since
    }
    ids[l] = c.merged;
    ++version[l];
    version[r] = UINT32_MAX;  // dead
    next[l] = next[r];
    if (next[r] >= 0) prev[static_cast<size_t>(next[r])] = c.left;
    consider(prev[l], c.left);
    consider(c.left, next[l]);
  }
  std::vector<int> out;
  for (int i = 0; i >= 0 && i < n; i = next[static_cast<size_t>(i)]) {
    out.push_back(ids[static_cast<size_t>(i)]);
  }
  ids.swap(out);
}

std::vector<int> BpeTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> out;
  if (bos) out.push_back(bos_id());
  if (!text.empty()) {
    const int space = lookup(" ");
    WKVQ_REQUIRE(space >= 0, "tokenizer has no \" \" piece for the dummy prefix");
    std::vector<int> ids = initial_symbols(text);
    ids.insert(ids.begin(), space);
    merge(ids);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  if (eos) out.push_back(eos_id());
  return out;
}

std::string BpeTokenizer::decode_piece(int prev, int token) const {
  WKVQ_REQUIRE(token >= 0 && token < vocab_size(), "token id ", token,
               " is outside the tokenizer's vocabulary [0, ", vocab_size(), ")");
  const std::string& p = pieces_[static_cast<size_t>(token)];
  const size_t skip = prev == bos_id() && !p.empty() && p[0] == ' ' ? 1 : 0;
  unsigned int byte = 0;
  char tail = 0;
  if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%02X>%c", &byte, &tail) == 1) {
    return std::string(1, static_cast<char>(byte));
  }
  return p.substr(skip);
}

}  // namespace wkvq
