// Chat templates (src/chat): the input is parsed as a Jinja template and, when it parses,
// rendered for a small conversation with a step bound, so the lexer, parser, evaluator and the
// built-in filters and methods all see it. Bad templates must end in a wkvq::Error.
#include "chat/jinja_eval.h"
#include "chat/jinja_parser.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  using jinja::Value;
  fuzz::result_or_error([&] {
    const jinja::Body body = jinja::parse(fuzz::as_text(data, size));
    auto message = [](const char* role, const char* content) {
      return Value::dict({{"role", Value(role)}, {"content", Value(content)}});
    };
    const jinja::ValueDict vars{
        {"messages", Value::list({message("system", "Be brief."), message("user", " Hi \n"),
                                  message("assistant", "<think>\nx\n</think>\n\nHello")})},
        {"add_generation_prompt", Value(true)},
        {"bos_token", Value("<s>")},
        {"eos_token", Value("</s>")}};
    jinja::render(body, vars, 20'000);  // a bound that keeps each input fast
  });
  return 0;
}
