// The runtime cache (runtime/kv_cache.h) against the KV lab's simulation of the same method:
// the fp16 window is the lab's `w`, the rel8 metadata the lab's wkvq2d.
#include <gtest/gtest.h>

#include <vector>

#include "kvlab/kv_lab_method.h"
#include "kvlab/kv_method.h"
#include "kvlab/kv_ranges.h"
#include "kvlab/sim_kv_store.h"
#include "model/random_model.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_stats.h"
#include "unit/kvlab_fixture.h"

namespace wkvq {
namespace {

using namespace kvlabtest;  // NOLINT(google-build-using-namespace): test helpers

// The runtime's fp16 window (KvQuantSettings::window, runtime/kv_cache.h) is the lab's `w`: the
// KV cache with --kvbits 4 and a window of 4 gives the logits of the lab's rtn:b=4,w=4 (the same
// int records, the window rounded to fp16 alike), token by token and as one teacher-forced pass;
// the codes are the same (the same K/V into the same quantizer), only the attention's order of f32
// operations differs: a few ulps of the logits through two layers. And it is not the cache without
// the window (the comparison could fail).
TEST(KvLabStore, RuntimeWindowIsTheLabsWindow) {
  const LlamaConfig c = lab_config();
  const Model model = make_random_model(c, 31);
  std::vector<int> toks(50);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int>((i * 7 + 3) % 48);
  const KvLabMethod m(parse_kv_method("rtn:b=4,w=4"), c, nullptr, nullptr);
  SimKvStore lab(m, c, 50, true);
  const auto want = store_logits(model, toks, lab, false);
  KvQuantSettings st;
  st.bits = 4;
  st.window = 4;
  constexpr float kOrderTolerance = 1e-5f;  // relative to the largest |logit| (seen: 7e-7)
  const auto gap = [&](const std::vector<float>& got) { return relative_gap(got, want); };
  for (const bool stepwise : {false, true}) {
    KvCache cache(c, 50, st);
    cache.set_chunk_attention(ChunkAttention::TeacherForced);
    EXPECT_LE(gap(store_logits(model, toks, cache, stepwise)), kOrderTolerance)
        << "stepwise " << stepwise;
  }
  // values with their own bits: the lab's per-layer bits kb=4.4,vb=2.2 with the same window
  const KvLabMethod kv42(parse_kv_method("rtn:w=4,kb=4.4,vb=2.2"), c, nullptr, nullptr);
  SimKvStore lab42(kv42, c, 50, true);
  const auto want42 = store_logits(model, toks, lab42, false);
  st.vbits = 2;
  KvCache split(c, 50, st);
  split.set_chunk_attention(ChunkAttention::TeacherForced);
  const auto got42 = store_logits(model, toks, split, false);
  EXPECT_LE(relative_gap(got42, want42), kOrderTolerance) << "K4 V2";
  EXPECT_GT(gap(got42), 100 * kOrderTolerance);  // and not the K4 V4 logits
  st.vbits = 0;
  st.window = 0;
  KvCache plain(c, 50, st);
  plain.set_chunk_attention(ChunkAttention::TeacherForced);
  EXPECT_GT(gap(store_logits(model, toks, plain, false)), 100 * kOrderTolerance);
}

// The runtime's rel8 metadata is the lab's wkvq2d: with the same statistics smoothing and the
// static group ranges measured on the same tokens (the runtime's smoothed_kv_group_ranges equals
// the lab's calibrate_kv_ranges), a KV4 g8 rel8 cache with a window of 2 gives the logits of
// wkvq2d:b=4,g=8,w=2 within the attention's order of f32 operations (the codes are the same; x^ is
// one fma in both). One teacher-forced pass, as the lab's store runs: token by token the K/V come
// from the n = 1 GEMV, an ulp off the GEMM's at times, which can move a group's minimum across a
// level (m8 is a step function of it). And not the fp16 metadata's logits (the comparison could
// fail).
TEST(KvLabStore, RuntimeRel8IsTheLabsWkvq2d) {
  const LlamaConfig c = lab_config();
  const Model model = make_random_model(c, 37);
  std::vector<int> toks(50), calib(160);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int>((i * 7 + 3) % 48);
  for (size_t i = 0; i < calib.size(); ++i) calib[i] = static_cast<int>((i * 11 + 5) % 48);
  const CalibWindows w{40, 0, 1};
  KvSmoothing sm = smoothing_from_stats(collect_kv_stats(model, calib, w));
  const KvLabMethod ranger(parse_kv_method("wkvq2d:b=0,g=8"), c, &sm, nullptr);
  const KvGroupRanges lab_ranges = calibrate_kv_ranges(model, ranger, calib, w);
  const KvGroupRanges runtime_ranges = smoothed_kv_group_ranges(model, calib, w, 8, &sm);
  ASSERT_EQ(runtime_ranges.n_groups, lab_ranges.n_groups);
  EXPECT_EQ(runtime_ranges.klo, lab_ranges.klo);
  EXPECT_EQ(runtime_ranges.khi, lab_ranges.khi);
  EXPECT_EQ(runtime_ranges.vlo, lab_ranges.vlo);
  EXPECT_EQ(runtime_ranges.vhi, lab_ranges.vhi);
  const KvLabMethod m(parse_kv_method("wkvq2d:b=4,g=8,w=2"), c, &sm, &lab_ranges);
  SimKvStore lab(m, c, 50, true);
  const auto want = store_logits(model, toks, lab, false);
  sm.set_ranges(runtime_ranges, "test");
  KvQuantSettings st;
  st.bits = 4;
  st.group = 8;
  st.window = 2;
  st.rel8 = true;
  st.smooth = KvSmoothMode::Stats;
  constexpr float kOrderTolerance = 1e-5f;  // relative to the largest |logit|
  KvCache cache(c, 50, st, &sm);
  cache.set_chunk_attention(ChunkAttention::TeacherForced);
  EXPECT_LE(relative_gap(store_logits(model, toks, cache, false), want), kOrderTolerance);
  st.rel8 = false;
  KvCache fp16_meta(c, 50, st, &sm);
  fp16_meta.set_chunk_attention(ChunkAttention::TeacherForced);
  EXPECT_GT(relative_gap(store_logits(model, toks, fp16_meta, false), want), 100 * kOrderTolerance);
}

}  // namespace
}  // namespace wkvq
