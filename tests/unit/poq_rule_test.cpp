// full_precision_from (runtime/attention.h): the positions a query sees in full precision under
// past-only quantization, case by case from design.md §2.2.
#include <gtest/gtest.h>

#include <cstdint>

#include "runtime/attention.h"

namespace wkvq {
namespace {

constexpr ChunkAttention kModes[] = {ChunkAttention::FullPrecisionChunk,
                                     ChunkAttention::TeacherForced};

TEST(PoqRule, WithoutPoqEveryPositionIsReadQuantized) {
  for (ChunkAttention mode : kModes) {
    for (int64_t pos = 0; pos < 6; ++pos) {
      EXPECT_EQ(full_precision_from(false, mode, 0, pos), pos + 1);  // even the query's own K/V
      EXPECT_EQ(full_precision_from(false, mode, pos, pos), pos + 1);
    }
  }
}

TEST(PoqRule, DecodeStepSeesOnlyItselfInFullPrecision) {
  // a chunk of one token (a decode step at position t): [0, t) quantized, t itself exact
  for (ChunkAttention mode : kModes) {
    for (int64_t t = 0; t < 6; ++t) EXPECT_EQ(full_precision_from(true, mode, t, t), t);
  }
}

TEST(PoqRule, PrefillChunkSeesItsOwnTokensInFullPrecision) {
  // a chunk [5, 9) after a cache of 5 positions: every token sees the chunk's K/V exactly
  for (int64_t pos = 5; pos < 9; ++pos) {
    EXPECT_EQ(full_precision_from(true, ChunkAttention::FullPrecisionChunk, 5, pos), 5);
  }
}

TEST(PoqRule, TeacherForcedChunkIsTheDiagonal) {
  // the parallel form of token-by-token decoding: only the query's own position is exact
  for (int64_t pos = 5; pos < 9; ++pos) {
    EXPECT_EQ(full_precision_from(true, ChunkAttention::TeacherForced, 5, pos), pos);
  }
}

// window_from: a window of W reads the W most recent positions the cache holds (before the query
// under POQ, through it without) that the query does not already see in full precision.
TEST(PoqRule, WindowCoversTheMostRecentHeldPositions) {
  // decode step at t = 10, POQ, W = 3: [7, 10) from the window, 10 itself exact
  EXPECT_EQ(
      window_from(true, 3, full_precision_from(true, ChunkAttention::TeacherForced, 10, 10), 10),
      7);
  // without POQ the query's own position is held, so in the window: [8, 11)
  EXPECT_EQ(window_from(false, 3, 11, 10), 8);
  // early positions: the window starts at 0
  EXPECT_EQ(window_from(true, 3, 2, 2), 0);
  // a prompt chunk [5, 9): its first query reads [2, 5) from the window, the last one nothing
  // more than the chunk (8 - 3 = 5 = the chunk start)
  EXPECT_EQ(window_from(true, 3, 5, 5), 2);
  EXPECT_EQ(window_from(true, 3, 5, 8), 5);
  // a chunk longer than the window: a query past W into it reads nothing from the window
  EXPECT_EQ(window_from(true, 3, 0, 20), 0);
  // W = 0: no window
  for (int64_t pos = 0; pos < 6; ++pos) EXPECT_EQ(window_from(true, 0, pos, pos), pos);
}

}  // namespace
}  // namespace wkvq
