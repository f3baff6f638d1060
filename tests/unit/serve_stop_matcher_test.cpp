// The stop-string matcher of wkvq serve (serve/stop_matcher.h): stop strings found within a piece
// and across pieces, never emitting text that may still become a stop string, the held text
// released when it cannot, the earliest match winning.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "serve/stop_matcher.h"

namespace wkvq::serve {
namespace {

// Pushes the pieces; returns everything emitted (with the flush when nothing matched).
std::string run(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += m.push(p);
  if (!m.matched()) out += m.flush();
  return out;
}

TEST(StopMatcher, NoStopsPassesEverythingAtOnce) {
  StopMatcher m;
  EXPECT_EQ(m.push("Hello"), "Hello");
  EXPECT_EQ(m.push(" world"), " world");
  EXPECT_FALSE(m.matched());
}

TEST(StopMatcher, StopWithinOnePieceCutsBeforeIt) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.push("abcENDdef"), "abc");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.push("more"), "");
}

TEST(StopMatcher, StopAcrossPiecesIsHeldUntilResolved) {
  StopMatcher m({"\n\nUser:"});
  EXPECT_EQ(m.push("Sure.\n"), "Sure.");  // "\n" may start the stop string
  EXPECT_EQ(m.push("\nUs"), "");
  EXPECT_EQ(m.push("er"), "");
  EXPECT_EQ(m.push(": hi"), "");
  EXPECT_TRUE(m.matched());
}

TEST(StopMatcher, PartialMatchThatFailsIsReleased) {
  StopMatcher m({"stop"});
  EXPECT_EQ(m.push("a st"), "a ");
  EXPECT_EQ(m.push("ep"), "step");
  EXPECT_FALSE(m.matched());
  EXPECT_EQ(m.push("sto"), "");
  EXPECT_EQ(m.flush(), "sto");  // generation ended: the held text is the answer's end
}

TEST(StopMatcher, EarliestOfSeveralStopsWins) {
  StopMatcher m({"cd", "b"});
  EXPECT_EQ(run(m, {"a", "bcd"}), "a");
  StopMatcher m2({"xyz", "yz!"});
  EXPECT_EQ(run(m2, {"wx", "y", "z"}), "w");
}

TEST(StopMatcher, OverlappingPrefixKeepsTheLongestPossibleStart) {
  StopMatcher m({"aab"});
  EXPECT_EQ(m.push("a"), "");
  EXPECT_EQ(m.push("a"), "");
  EXPECT_EQ(m.push("a"), "a");  // "aaa": only the last "aa" can still start "aab"
  EXPECT_EQ(m.push("b"), "");
  EXPECT_TRUE(m.matched());
}

TEST(StopMatcher, EmptyStopStringsAreIgnored) {
  StopMatcher m({"", "z"});
  EXPECT_EQ(run(m, {"abc"}), "abc");
}

TEST(StopMatcher, MultibyteTextIsCutAtCharacterBoundaries) {
  StopMatcher m({"é!"});
  EXPECT_EQ(m.push("caf\xC3\xA9"), "caf");
  EXPECT_EQ(m.push("?"), "\xC3\xA9?");
}

}  // namespace
}  // namespace wkvq::serve
