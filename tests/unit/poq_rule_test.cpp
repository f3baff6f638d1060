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

}  // namespace
}  // namespace wkvq
