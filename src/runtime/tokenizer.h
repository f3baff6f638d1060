// Tokenizer: text <-> token ids. Three implementations: llama2.c's BPE (tokenizer.bin,
// runtime/bpe_tokenizer.h), SentencePiece (tokenizer.model, runtime/sp_tokenizer.h) and
// Hugging Face's tokenizer.json (runtime/hf_tokenizer.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wkvq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, with BOS first / EOS last when asked (a tokenizer.json adds them only
  // when its own convention does: see hf_tokenizer.h). Empty text gives just those.
  virtual std::vector<int> encode(std::string_view text, bool bos, bool eos) const = 0;
  // The text of `token` when it follows `prev` (llama2.c semantics: the leading space of the
  // first piece after BOS is dropped; byte tokens <0xXX> give their raw byte). Raw bytes: one
  // UTF-8 character may be split over pieces (runtime/utf8_stream.h joins them for printing).
  virtual std::string decode_piece(int prev, int token) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;

  // Concatenation of decode_piece over `tokens` (BOS/EOS produce no text).
  std::string decode(const std::vector<int>& tokens) const;
};

struct TokenizerOptions {
  // tokenizer.json: find special added tokens (<|eot_id|>, <|im_start|>, ...) written in the
  // text; when false they are ordinary text. The other formats never parse them.
  bool parse_special = false;
};

// Opens a tokenizer by file: *.json -> Hugging Face tokenizer.json, *.model -> SentencePiece,
// otherwise llama2.c tokenizer.bin format.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path,
                                          const TokenizerOptions& options = {});

// The tokenizer that belongs to a model: in an HF directory `tokenizer.json` (preferred) or
// `tokenizer.model`; for a llama2.c file, `tokenizer.bin` or `tok<vocab>.bin` beside it. Throws
// with the paths tried when none.
std::string find_tokenizer_beside(const std::string& model_path, int vocab_size);

}  // namespace wkvq
