#include "runtime/sp_tokenizer.h"

#include <sentencepiece_processor.h>

#include <exception>
#include <limits>
#include <new>

#include "core/error.h"
#include "io/mapped_file.h"
#include "runtime/byte_token.h"
#include "runtime/sp_model_check.h"

namespace wkvq {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";      // U+2581, SentencePiece's space
constexpr std::string_view kUnknownText = " \xE2\x81\x87 ";  // SentencePiece's text for <unk>

// Runs f(), a call into libsentencepiece. The library answers most bad input with a Status, but a
// corrupt model can also make it, or the protobuf parser built into it, throw a standard exception
// (out_of_range, length_error, protobuf's FatalException): that becomes a wkvq::Error naming the
// file and the step. Running out of memory stays std::bad_alloc, which the CLI reports as such.
template <class F>
auto guarded(const std::string& path, const char* step, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(path, ": libsentencepiece failed to ", step, " (", e.what(),
         "); expected an intact SentencePiece tokenizer.model: the file may be corrupt, pass the "
         "model's own --tokenizer");
  }
}

}  // namespace

SpTokenizer::SpTokenizer(const std::string& path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(path) {
  // The bytes that are checked are the bytes that libsentencepiece parses.
  const auto file = MappedFile::open(path);
  const std::string_view model(reinterpret_cast<const char*>(file->data()), file->size());
  WKVQ_REQUIRE(!model.empty(), "SentencePiece tokenizer ", path,
               " is empty; expected a tokenizer.model, pass the model's --tokenizer");
  check_sentencepiece_model(model, path);
  guarded(path, "load the model", [&] {
    const auto status = sp_->LoadFromSerializedProto(model);
    WKVQ_REQUIRE(status.ok(), "cannot load SentencePiece tokenizer ", path, ": ", status.ToString(),
                 "; expected a tokenizer.model, pass the model's --tokenizer");
    vocab_size_ = sp_->GetPieceSize();
    bos_id_ = sp_->bos_id();
    eos_id_ = sp_->eos_id();
    WKVQ_REQUIRE(vocab_size_ > 0, path, ": the SentencePiece model has no pieces");
    // The normalizer settings live in the model proto, which the public header does not expose:
    // probe them instead. With a dummy prefix, "a" encodes to pieces starting with U+2581.
    std::vector<std::string> probe;
    WKVQ_REQUIRE(sp_->Encode("a", &probe).ok(), path, ": SentencePiece cannot encode \"a\"");
    dummy_prefix_ = !probe.empty() && std::string_view(probe.front()).substr(0, 3) == kSpaceMark;
  });
}

SpTokenizer::~SpTokenizer() = default;

std::vector<int> SpTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  WKVQ_REQUIRE(!bos || bos_id_ >= 0, path_, ": BOS requested but the model defines no BOS id");
  WKVQ_REQUIRE(!eos || eos_id_ >= 0, path_, ": EOS requested but the model defines no EOS id");
  WKVQ_REQUIRE(text.size() < static_cast<size_t>(std::numeric_limits<int>::max()), path_,
               ": text of ", text.size(), " bytes is too long to encode in one piece");
  std::vector<int> ids;
  if (!text.empty()) {
    const auto status = guarded(path_, "encode text", [&] { return sp_->Encode(text, &ids); });
    WKVQ_REQUIRE(status.ok(), path_, ": SentencePiece could not encode the text (", text.size(),
                 " bytes): ", status.ToString());
  }
  std::vector<int> out;
  out.reserve(ids.size() + 2);
  if (bos) out.push_back(bos_id_);
  out.insert(out.end(), ids.begin(), ids.end());
  if (eos) out.push_back(eos_id_);
  return out;
}

std::string SpTokenizer::decode_piece(int prev, int token) const {
  WKVQ_REQUIRE(token >= 0 && token < vocab_size_, "token id ", token,
               " is outside the tokenizer's vocabulary [0, ", vocab_size_, ") of ", path_,
               "; is the tokenizer the model's own?");
  if (sp_->IsControl(token)) return {};
  if (sp_->IsUnknown(token)) return std::string(kUnknownText);
  const std::string& piece = sp_->IdToPiece(token);
  // libsentencepiece loads a byte piece only when it is "<0xXX>" (upper-case hex)
  if (const int b = sp_->IsByte(token) ? byte_token_value(piece, HexCase::kAny) : -1; b >= 0) {
    return std::string(1, static_cast<char>(b));
  }
  std::string out;
  out.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    if (std::string_view(piece).substr(i, kSpaceMark.size()) == kSpaceMark) {
      out += ' ';
      i += kSpaceMark.size();
    } else {
      out += piece[i++];
    }
  }
  if (dummy_prefix_ && prev == bos_id_ && !out.empty() && out.front() == ' ') out.erase(0, 1);
  return out;
}

}  // namespace wkvq
