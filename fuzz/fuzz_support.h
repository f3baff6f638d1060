// Shared pieces of the libFuzzer targets (fuzz/fuzz_*.cpp, one per parser).
//
// A target defines LLVMFuzzerTestOneInput and hands the input to a parser; the parser must answer
// with a result or a wkvq::Error (bad input -> clear error). Anything else is a finding that
// libFuzzer reports and saves: a sanitizer report (ASan, UBSan), an abort (WKVQ_ASSERT, an
// uncaught exception of another type), a timeout or a memory blow-up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace wkvq::fuzz {

// A private temporary directory (under $TMPDIR, else /tmp) for parsers that take a path: each
// input is written to a file in it. Removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes the bytes to path()/name (replacing it) and returns that path.
  std::string write(const std::string& name, const uint8_t* data, size_t size) const;

 private:
  std::string path_;
};

// libFuzzer calls LLVMFuzzerTestOneInput without context, so a target's scratch directory lives
// as long as the process: the one exception to "no global state", confined to fuzz/.
const ScratchDir& scratch();

// Runs f(); a wkvq::Error is an accepted answer to bad input, any other exception escapes (and
// libFuzzer reports it as a crash).
template <class F>
void result_or_error(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

// The input as text (no copy).
inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A required environment variable; aborts with a message naming it when unset or empty.
std::string required_env(const char* name, const char* what);

// Links model.safetensors (and wkvq_kv.safetensors when present) of the quantized directory named
// by the environment variable `env` (written by `wkvq quantize`, see make_seeds.py) into
// scratch(), for targets that fuzz the files beside it.
void link_quantized_safetensors(const char* env = "WKVQ_FUZZ_QUANTIZED_DIR");

}  // namespace wkvq::fuzz
