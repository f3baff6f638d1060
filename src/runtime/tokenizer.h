// Tokenizer: text <-> token ids. Two implementations: llama2.c's BPE (tokenizer.bin,
// runtime/bpe_tokenizer.h) and SentencePiece (tokenizer.model, runtime/sp_tokenizer.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wkvq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, with BOS first / EOS last when asked. Empty text gives just those.
  virtual std::vector<int> encode(std::string_view text, bool bos, bool eos) const = 0;
  // The text of `token` when it follows `prev` (llama2.c semantics: the leading space of the
  // first piece after BOS is dropped; byte tokens <0xXX> give their raw byte).
  virtual std::string decode_piece(int prev, int token) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;

  // Concatenation of decode_piece over `tokens` (BOS/EOS produce no text).
  std::string decode(const std::vector<int>& tokens) const;
};

// Opens a tokenizer by file: *.model -> SentencePiece, otherwise llama2.c tokenizer.bin format.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// The tokenizer that belongs to a model: `tokenizer.model` in an HF directory; for a llama2.c
// file, `tokenizer.bin` or `tok<vocab>.bin` beside it. Throws with the paths tried when none.
std::string find_tokenizer_beside(const std::string& model_path, int vocab_size);

}  // namespace wkvq
