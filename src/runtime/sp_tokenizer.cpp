#include "runtime/sp_tokenizer.h"

#include <sentencepiece_processor.h>

#include <cstdio>

#include "core/error.h"

namespace wkvq {

SpTokenizer::SpTokenizer(const std::string& path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = sp_->Load(path);
  WKVQ_REQUIRE(status.ok(), "cannot load SentencePiece tokenizer ", path, ": ",
               status.ToString(), "; pass --tokenizer with the model's tokenizer.model");
}

SpTokenizer::~SpTokenizer() = default;

std::vector<int> SpTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> ids;
  if (!text.empty()) {
    const auto status = sp_->Encode(text, &ids);
    WKVQ_REQUIRE(status.ok(), "SentencePiece could not encode the text: ", status.ToString());
  }
  if (bos) ids.insert(ids.begin(), bos_id());
  if (eos) ids.push_back(eos_id());
  return ids;
}

std::string SpTokenizer::decode_piece(int prev, int token) const {
  WKVQ_REQUIRE(token >= 0 && token < vocab_size(), "token id ", token,
               " is outside the tokenizer's vocabulary [0, ", vocab_size(), ")");
  if (sp_->IsControl(token)) return "";
  const std::string piece = sp_->IdToPiece(token);
  if (sp_->IsByte(token)) {
    unsigned int byte = 0;
    if (std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1) {
      return std::string(1, static_cast<char>(byte));
    }
  }
  if (sp_->IsUnknown(token)) return " \xE2\x81\x87 ";  // SentencePiece's rendering of <unk>
  std::string out;
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += piece[i++];
    }
  }
  if (prev == bos_id() && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

int SpTokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int SpTokenizer::bos_id() const { return sp_->bos_id(); }
int SpTokenizer::eos_id() const { return sp_->eos_id(); }

}  // namespace wkvq
