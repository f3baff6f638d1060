#include "cli/chat_files.h"

#include <filesystem>

#include "cli/common.h"

namespace wkvq::cli {

ChatFiles open_chat_files(const std::string& tokenizer, const std::string& model_path,
                          int vocab_size, const std::string& chat_template) {
  const std::string path =
      tokenizer.empty() ? find_tokenizer_beside(model_path, vocab_size) : tokenizer;
  TokenizerOptions topt;
  topt.parse_special = true;
  std::unique_ptr<Tokenizer> tok = load_tokenizer(path, topt);
  check_tokenizer_fits(*tok, path, model_path, vocab_size);
  // tokenizer_config.json and generation_config.json live beside the tokenizer
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return ChatFiles{std::move(tok), ChatTemplate::for_model(path, chat_template),
                   std::filesystem::path(path).extension() == ".json", dir.empty() ? "." : dir};
}

}  // namespace wkvq::cli
