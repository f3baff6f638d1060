#include "runtime/hf_bpe_model.h"

#include <queue>

#include "core/error.h"
#include "runtime/byte_token.h"
#include "runtime/utf8.h"

namespace wkvq {

namespace {

// Words longer than this are not cached (they rarely repeat and would bloat the cache).
constexpr size_t kMaxCachedWord = 64;

}  // namespace

HfBpeModel::HfBpeModel(const JsonNode& model, bool byte_level) : byte_level_(byte_level) {
  const std::string type = model.string_or("type", "BPE");
  WKVQ_REQUIRE(type == "BPE", model.where(), ".type: model type \"", type,
               "\" is not supported (supported: BPE)");
  if (model.has("dropout")) {
    const double p =
        model["dropout"].json().is_number() ? model["dropout"].json().get<double>() : 1;
    WKVQ_REQUIRE(p == 0.0, model.where(), ".dropout: BPE dropout ", model["dropout"].json().dump(),
                 " is not supported (only null or 0: encoding must be deterministic)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    WKVQ_REQUIRE(model.string_or(key, "").empty(), model.where(), ".", key, ": \"",
                 model[key].string(), "\" is not supported (only null or empty)");
  }
  byte_fallback_ = model.boolean_or("byte_fallback", false);
  fuse_unk_ = model.boolean_or("fuse_unk", false);
  ignore_merges_ = model.boolean_or("ignore_merges", false);
  load_vocab(model["vocab"]);
  load_merges(model["merges"]);
  if (model.has("unk_token")) {
    const std::string unk = model["unk_token"].string();
    unk_id_ = id(unk);
    WKVQ_REQUIRE(unk_id_ >= 0, model.where(), ".unk_token: \"", unk, "\" is not in model.vocab");
  }
  for (int b = 0; b < 256; ++b) {
    const auto u = static_cast<unsigned char>(b);
    byte_ids_[b] = id(alphabet_.symbol(u));
    fallback_ids_[b] = byte_fallback_ ? id(byte_token_text(u)) : -1;
  }
}

void HfBpeModel::load_vocab(const JsonNode& vocab) {
  const nlohmann::json& v = vocab.object();
  WKVQ_REQUIRE(!v.empty(), vocab.where(), ": the vocabulary is empty");
  ids_.reserve(v.size());
  for (auto it = v.begin(); it != v.end(); ++it) {
    const JsonNode n(it.value(), vocab.file(), "model.vocab[\"" + it.key() + "\"]");
    const int64_t i = n.integer();
    WKVQ_REQUIRE(i >= 0 && i < (1 << 24), n.where(), ": id ", i,
                 " is outside [0, 2^24); expected the token's non-negative id");
    if (tokens_.size() <= static_cast<size_t>(i)) tokens_.resize(static_cast<size_t>(i) + 1);
    tokens_[static_cast<size_t>(i)] = it.key();
    ids_.emplace(it.key(), static_cast<int>(i));
  }
}

void HfBpeModel::load_merges(const JsonNode& merges) {
  const nlohmann::json& m = merges.array();
  merges_.reserve(m.size());
  for (size_t r = 0; r < m.size(); ++r) {
    const JsonNode n = merges[r];
    std::string a, b;
    if (n.json().is_string()) {
      const std::string s = n.string();
      const size_t sp = s.find(' ');
      WKVQ_REQUIRE(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, n.where(),
                   ": \"", s, "\" is not a merge \"A B\" (two tokens, one space)");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      WKVQ_REQUIRE(n.json().is_array() && n.json().size() == 2, n.where(),
                   ": expected a merge \"A B\" or [\"A\", \"B\"], found ", n.json().dump());
      a = n[size_t{0}].string();
      b = n[size_t{1}].string();
    }
    const int ia = id(a), ib = id(b), im = id(a + b);
    WKVQ_REQUIRE(ia >= 0, n.where(), ": merge token \"", a, "\" is not in model.vocab");
    WKVQ_REQUIRE(ib >= 0, n.where(), ": merge token \"", b, "\" is not in model.vocab");
    WKVQ_REQUIRE(im >= 0, n.where(), ": the merged token \"", a + b, "\" is not in model.vocab");
    merges_.try_emplace(pair_key(ia, ib), Merge{static_cast<int>(r), im});
  }
}

int HfBpeModel::id(std::string_view token) const {
  const auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

void HfBpeModel::initial_symbols(std::string_view word, std::vector<int>& syms) const {
  int unk_run = 0;  // pending fused unk symbols
  const auto flush_unk = [&] {
    if (unk_run > 0) syms.push_back(unk_id_);
    unk_run = 0;
  };
  for (size_t i = 0; i < word.size();) {
    const size_t n = byte_level_ ? 1 : std::max<size_t>(1, utf8::valid_length(word, i));
    const std::string_view ch = word.substr(i, n);
    i += n;
    const int direct = byte_level_ ? byte_ids_[static_cast<unsigned char>(ch[0])] : id(ch);
    if (direct >= 0) {
      flush_unk();
      syms.push_back(direct);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (const char c : ch) all = all && fallback_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        flush_unk();
        for (const char c : ch) syms.push_back(fallback_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (!fuse_unk_) flush_unk();
      ++unk_run;
    }
  }
  flush_unk();
}

void HfBpeModel::merge(std::vector<int>& syms) const {
  const int n = static_cast<int>(syms.size());
  if (n < 2) return;
  std::vector<int> next(static_cast<size_t>(n)), prev(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
    prev[static_cast<size_t>(i)] = i - 1;
  }
  struct Cand {
    int rank, pos, left, right, id;  // id: the merged symbol
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  const auto consider = [&](int pos) {
    if (pos < 0) return;  // the first symbol has no left neighbour (prev -1)
    const int nx = next[static_cast<size_t>(pos)];
    if (nx < 0) return;
    const int a = syms[static_cast<size_t>(pos)], b = syms[static_cast<size_t>(nx)];
    const auto it = merges_.find(pair_key(a, b));
    if (it != merges_.end()) heap.push({it->second.rank, pos, a, b, it->second.id});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const auto p = static_cast<size_t>(c.pos);
    const int nx = next[p];
    // Stale: the left symbol was merged away or changed, or its right neighbour changed.
    if (syms[p] != c.left || nx < 0 || syms[static_cast<size_t>(nx)] != c.right) continue;
    syms[p] = c.id;
    const int after = next[static_cast<size_t>(nx)];
    next[p] = after;
    if (after >= 0) prev[static_cast<size_t>(after)] = c.pos;
    syms[static_cast<size_t>(nx)] = -1;  // dead
    consider(prev[p]);
    consider(c.pos);
  }
  size_t w = 0;
  for (int i = 0; i >= 0; i = next[static_cast<size_t>(i)])
    syms[w++] = syms[static_cast<size_t>(i)];
  syms.resize(w);
}

void HfBpeModel::encode_word(std::string_view word, WordCache& cache, std::vector<int>& out) const {
  const bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable) {
    const auto it = cache.find(word);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int> syms;
  const int whole =
      ignore_merges_ ? id(byte_level_ ? alphabet_.encode(word) : std::string(word)) : -1;
  if (whole >= 0) {
    syms.push_back(whole);
  } else {
    initial_symbols(word, syms);
    merge(syms);
  }
  out.insert(out.end(), syms.begin(), syms.end());
  if (cacheable) cache.emplace(word, std::move(syms));
}

}  // namespace wkvq
