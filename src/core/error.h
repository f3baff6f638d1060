// Errors: one exception type carrying a message with context, thrown by library code and caught
// at the CLI boundary. Messages say what was expected, what was found and what to do.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace wkvq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Builds a message from any streamable parts: fail("file ", path, ": expected ", a, ", got ", b).
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  throw Error(os.str());
}

// Input validation: throws wkvq::Error with the given message parts when cond is false.
#define WKVQ_REQUIRE(cond, ...)  \
  do {                           \
    if (!(cond)) {               \
      ::wkvq::fail(__VA_ARGS__); \
    }                            \
  } while (0)

// Internal invariant: a broken one is a bug in wkvq, not bad input; aborts loudly.
[[noreturn]] void invariant_failed(const char* expr, const char* file, int line);
#define WKVQ_ASSERT(cond) ((cond) ? (void)0 : ::wkvq::invariant_failed(#cond, __FILE__, __LINE__))

}  // namespace wkvq
