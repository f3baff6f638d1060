#include "chat/chat_prompt.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace wkvq {

namespace {

void add_unique(std::vector<int>& ids, int id) {
  if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

// The id of `text` when the tokenizer encodes it as exactly one token.
int single_token(const Tokenizer& tok, const std::string& text) {
  if (text.empty()) return -1;
  std::vector<int> ids = tok.encode(text, false, false);
  return ids.size() == 1 ? ids[0] : -1;
}

void add_generation_config_eos(std::vector<int>& ids, const std::string& model_dir) {
  const std::filesystem::path path = std::filesystem::path(model_dir) / "generation_config.json";
  std::ifstream in(path);
  if (!in) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object() || !j.contains("eos_token_id")) return;
  const nlohmann::json& e = j["eos_token_id"];
  for (const auto& id : e.is_array() ? e : nlohmann::json::array({e})) {
    if (id.is_number_integer()) add_unique(ids, id.get<int>());
  }
}

}  // namespace

ChatPrompt make_chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, bool parses_special,
                            const nlohmann::ordered_json& messages, const std::string& model_dir) {
  ChatPrompt p;
  p.text = tmpl.render(messages, /*add_generation_prompt=*/true);
  std::string_view body = p.text;
  bool bos = false;
  const std::string& bos_text = tmpl.bos_token();
  if (!parses_special && !bos_text.empty() && body.substr(0, bos_text.size()) == bos_text) {
    body.remove_prefix(bos_text.size());
    bos = true;
  }
  p.ids = tok.encode(body, bos, false);
  WKVQ_REQUIRE(!p.ids.empty(), tmpl.origin(), ": the chat template rendered an empty prompt");
  add_unique(p.stop_ids, tok.eos_id());
  if (parses_special) {
    add_unique(p.stop_ids, single_token(tok, tmpl.eos_token()));
    for (const char* marker :
         {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"}) {
      add_unique(p.stop_ids, single_token(tok, marker));
    }
  }
  add_generation_config_eos(p.stop_ids, model_dir);
  return p;
}

std::string join_ids(const std::vector<int>& ids) {
  std::string out;
  for (int id : ids) out += (out.empty() ? "" : ", ") + std::to_string(id);
  return out;
}

}  // namespace wkvq
