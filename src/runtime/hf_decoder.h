// HfDecoder: the "decoder" of a Hugging Face tokenizer.json, turning one model token string into
// the bytes it stands for (so that pieces can be printed as they are generated). Supported:
//   ByteLevel    the token read in the byte-level alphabet (byte_level.h); a token with a code
//                point outside it is kept as it is (as Hugging Face does);
//   Replace      {"pattern": {"String": s}, "content": c}: every s becomes c;
//   ByteFallback a token "<0xXX>" becomes byte XX;
//   Fuse         nothing to do piece by piece (pieces are concatenated anyway);
//   Strip        {"content": c, "start": n, "stop": 0}: up to n leading c removed from the first
//                piece of a sequence ("stop" other than 0 is not supported);
//   Metaspace    {"replacement", "prepend_scheme"}: the replacement becomes a space, and unless
//                prepend_scheme is "never" the first piece's leading space is removed;
//   Sequence     {"decoders": [...]} in order; null: the token string itself.
// Anything else is an error naming the file and key. Bytes are returned raw: one character may
// be split over pieces (Utf8Stream reassembles them for printing).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/byte_level.h"
#include "runtime/json_node.h"

namespace wkvq {

class HfDecoder {
 public:
  explicit HfDecoder(const JsonNode& decoder);

  // The bytes of model token `token`; `first`: it is the first piece of the text.
  std::string decode(std::string_view token, bool first) const;

 private:
  enum class Kind { kByteLevel, kReplace, kByteFallback, kStrip };
  struct Step {
    Kind kind;
    std::string a, b;  // Replace: pattern, content; Strip: content
    int count = 0;     // Strip: start
  };
  void add(const JsonNode& node);

  std::vector<Step> steps_;
  ByteLevelAlphabet alphabet_;
};

}  // namespace wkvq
