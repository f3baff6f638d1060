#include "runtime/unicode_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"

namespace wkvq {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  const int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf));
}

// The JIT stack for one find_all call: long runs (a megabyte of spaces for \s+) need more than
// PCRE2's default 32 KiB.
constexpr size_t kJitStackMin = 32 * 1024, kJitStackMax = 8 * 1024 * 1024;

}  // namespace

struct UnicodeRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

UnicodeRegex::UnicodeRegex(const std::string& pattern, const std::string& where)
    : pattern_(pattern), where_(where), code_(std::make_unique<Code>()) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  WKVQ_REQUIRE(code_->code != nullptr, where, ": the regular expression \"", pattern,
               "\" does not compile (PCRE2: ", pcre2_message(err), " at offset ", offset, ")");
  const int jit = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);
  WKVQ_REQUIRE(jit == 0, where, ": PCRE2 cannot JIT-compile \"", pattern,
               "\": ", pcre2_message(jit));
}

UnicodeRegex::~UnicodeRegex() = default;

void UnicodeRegex::find_all(std::string_view text,
                            std::vector<std::pair<size_t, size_t>>& out) const {
  const auto free_data = [](pcre2_match_data* d) { pcre2_match_data_free(d); };
  const auto free_ctx = [](pcre2_match_context* c) { pcre2_match_context_free(c); };
  const auto free_stack = [](pcre2_jit_stack* s) { pcre2_jit_stack_free(s); };
  std::unique_ptr<pcre2_match_data, decltype(free_data)> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr), free_data);
  std::unique_ptr<pcre2_match_context, decltype(free_ctx)> ctx(pcre2_match_context_create(nullptr),
                                                               free_ctx);
  std::unique_ptr<pcre2_jit_stack, decltype(free_stack)> stack(
      pcre2_jit_stack_create(kJitStackMin, kJitStackMax, nullptr), free_stack);
  WKVQ_REQUIRE(data && ctx && stack, where_, ": out of memory for a PCRE2 match");
  pcre2_jit_stack_assign(ctx.get(), nullptr, stack.get());
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0;
  while (at < text.size()) {
    const int rc = pcre2_match(code_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK,
                               data.get(), ctx.get());
    if (rc == PCRE2_ERROR_NOMATCH) break;
    WKVQ_REQUIRE(rc > 0, where_, ": matching \"", pattern_, "\" failed: ", pcre2_message(rc),
                 " (text of ", text.size(), " bytes)");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
    if (ov[1] > ov[0]) {
      out.emplace_back(ov[0], ov[1]);
      at = ov[1];
    } else {  // an empty match: step over one character
      at = ov[0] + 1;
      while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
    }
  }
}

}  // namespace wkvq
