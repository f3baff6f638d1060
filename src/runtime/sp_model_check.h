// check_sentencepiece_model: the checks that libsentencepiece (0.1.97, Debian 12) does not make on
// a tokenizer.model before it trusts it.
//
// A model's normalization rules (NormalizerSpec.precompiled_charsmap, and the denormalizer's) are
// a blob <uint32 trie size><darts-clone double-array trie><NUL-terminated replacement strings>.
// libsentencepiece walks the trie for every input character without bounds checks: a corrupt blob
// makes it read anywhere in memory (a crash, or garbage text) or overrun its 32-entry result
// array. The check walks every trie node that any input can reach, exactly as the library's
// commonPrefixSearch does, and requires every unit it reads to lie inside the trie, every value to
// point into the strings, the nodes to form a tree, and at most 32 rules to match along any
// path. The model is read as protobuf wire format (the fields it names below); anything else in
// it is left to libsentencepiece's parser, which checks it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wkvq {

// libsentencepiece's Normalizer::kMaxTrieResultsSize: the rules it can collect for one position.
inline constexpr std::size_t kSentencePieceMaxRuleMatches = 32;

// Throws wkvq::Error naming `path` when `model` (the bytes of a tokenizer.model) is not protobuf
// wire format, uses protobuf groups (no SentencePiece model does), or holds a normalization rule
// blob that libsentencepiece could read outside of.
void check_sentencepiece_model(std::string_view model, const std::string& path);

// The check of one precompiled_charsmap blob (empty: no rules); `what` names it in the error.
void check_sentencepiece_charsmap(std::string_view blob, const std::string& path,
                                  const std::string& what);

}  // namespace wkvq
