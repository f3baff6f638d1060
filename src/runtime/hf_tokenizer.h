// HfTokenizer: a Hugging Face tokenizer.json (with the tokenizer_config.json beside it, when
// there is one), BPE models only: byte-level ones (GPT-2, Llama-3.x, Qwen2.5, Qwen3, SmolLM) and
// SentencePiece-style ones (Llama-2, Mistral, TinyLlama: Prepend/Replace normalizer, byte
// fallback, fused unk).
//
// encode(text): invalid UTF-8 is first replaced by U+FFFD (utf8.h: as Python's
// errors="replace" and Node's UTF-8 decoder do, since Hugging Face's tokenizers only take
// text); added tokens are cut out (hf_added_tokens.h; special ones only when
// TokenizerOptions::parse_special); each stretch between them is normalized (hf_normalizer.h),
// pre-tokenized (hf_pre_tokenizer.h) and encoded word by word by the BPE model
// (hf_bpe_model.h). `bos` / `eos` add the BOS / EOS token when the tokenizer's own convention
// adds it: add_bos_token / add_eos_token of tokenizer_config.json when given, else whether the
// post_processor's TemplateProcessing "single" template starts / ends with a special token.
// (Qwen's tokenizers add none: their sequences start with the first text token.)
//
// decode_piece: an added token gives its content; a model token the decoder's bytes
// (hf_decoder.h), raw; the first piece of a text (prev < 0 or prev == BOS) is "first" for the
// decoder's Strip. BOS and EOS give "". clean_up_tokenization_spaces is not applied: decoding
// is exact.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/hf_added_tokens.h"
#include "runtime/hf_bpe_model.h"
#include "runtime/hf_decoder.h"
#include "runtime/hf_normalizer.h"
#include "runtime/hf_pre_tokenizer.h"
#include "runtime/tokenizer.h"

namespace wkvq {

class HfTokenizer final : public Tokenizer {
 public:
  // Reads tokenizer.json at `path` and tokenizer_config.json beside it (optional). Throws
  // wkvq::Error naming the file and the JSON key of anything malformed or unsupported.
  static std::unique_ptr<HfTokenizer> load(const std::string& path,
                                           const TokenizerOptions& options = {});

  std::vector<int> encode(std::string_view text, bool bos, bool eos) const override;
  std::string decode_piece(int prev, int token) const override;
  int vocab_size() const override { return vocab_size_; }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }

 private:
  HfTokenizer(const JsonNode& root, const TokenizerOptions& options);
  void read_special_tokens(const JsonNode& root, const std::string& config_path);

  HfAddedTokens added_;
  HfNormalizer normalizer_;
  HfPreTokenizer pre_tokenizer_;
  HfBpeModel model_;
  HfDecoder decoder_;
  std::string path_;
  bool parse_special_ = false, add_bos_ = false, add_eos_ = false;
  int vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1;
};

}  // namespace wkvq
