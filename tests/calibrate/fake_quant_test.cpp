// Fake quantization in libtorch against the runtime's exact quantizers: LWC weights against
// quantize_weights_ref (bit-exact), KV token groups against quantize_token_ref (bit-exact), and a
// whole fake-quantized block against the runtime block with real packed int weights and an int4
// KV cache in teacher-forced POQ mode, also with each architecture feature beyond Llama-2 (biases,
// q/k norms, scaled RoPE): the KV quantizer sees the same post-norm, post-RoPE keys in both.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "calib_fixture.h"
#include "calibrate/calibration_result.h"
#include "calibrate/fake_kv.h"
#include "calibrate/lwc.h"
#include "calibrate/torch_block.h"
#include "formats/kv_quant.h"
#include "formats/weight_quant.h"
#include "model/weight_quantizer.h"
#include "runtime/attention.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_stats.h"

namespace wkvq {
namespace {

// ---- weights --------------------------------------------------------------------------------

// Rows: random, all positive (range widened to 0), all negative, constant, tiny (min scale).
std::vector<float> awkward_weights(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> w = test::uniform(rows * cols, -1.0f, 1.0f, seed);
  for (int64_t c = 0; c < cols; ++c) {
    w[static_cast<size_t>(0 * cols + c)] = std::abs(w[static_cast<size_t>(c)]) + 0.1f;
    w[static_cast<size_t>(1 * cols + c)] = -std::abs(w[static_cast<size_t>(cols + c)]);
    w[static_cast<size_t>(2 * cols + c)] = 0.375f;
    w[static_cast<size_t>(3 * cols + c)] *= 1e-6f;
  }
  w[static_cast<size_t>(5 * cols + 3)] = 9.0f;  // an outlier
  return w;
}

struct WeightCase {
  int bits;
  int64_t group;
};

class LwcExact : public ::testing::TestWithParam<WeightCase> {};

TEST_P(LwcExact, DequantizedRuntimeQuantizerEqualsFakeQuant) {
  const auto [bits, group] = GetParam();
  const int64_t rows = 12, cols = 75;
  const std::vector<float> w = awkward_weights(rows, cols, 3);
  const GroupedWeight g = group_weight(test::tensor_from(w, {rows, cols}), group);
  // clip factors as sigmoid(gamma) of "learned" gammas, computed by torch as in calibration
  const torch::Tensor gamma =
      test::tensor_from(test::uniform(rows * g.n_groups, 0.5f, 5.0f, 4), {rows, g.n_groups});
  const torch::Tensor beta =
      test::tensor_from(test::uniform(rows * g.n_groups, 0.5f, 5.0f, 5), {rows, g.n_groups});
  const torch::Tensor hi = torch::sigmoid(gamma), lo = torch::sigmoid(beta);
  const std::vector<float> fake = test::floats_of(lwc_fake_quant(g, hi, lo, bits));

  const std::vector<float> hi_f = test::floats_of(hi), lo_f = test::floats_of(lo);
  const QuantizedMatrix q =
      quantize_weights_ref(w.data(), rows, cols, bits, group, hi_f.data(), lo_f.data());
  std::vector<float> deq(w.size());
  dequantize_weights_ref(q, deq.data());
  for (size_t i = 0; i < w.size(); ++i) {
    ASSERT_EQ(fake[i], deq[i]) << "row " << i / cols << " col " << i % cols << " bits " << bits
                               << " group " << group;
  }
}

INSTANTIATE_TEST_SUITE_P(BitsAndGroups, LwcExact,
                         ::testing::Values(WeightCase{4, 0}, WeightCase{4, 32}, WeightCase{4, 10},
                                           WeightCase{2, 16}, WeightCase{3, 7}, WeightCase{8, 32},
                                           WeightCase{4, 128}));

TEST(LwcExact, LearnedClipsOfTheLwcParametersReproduceItsWeights) {
  const Model m = test::make_test_model(test::stories260k_config(), 21);
  const TorchBlock block(m, 1);
  Lwc lwc(block.weights(), 4, 32);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(1);
    for (int i = 0; i < 7; ++i) {
      lwc.gamma(i).uniform_(1.0, 5.0);
      lwc.beta(i).uniform_(1.0, 5.0);
    }
  }
  const BlockLinears fake = lwc.fake_quant();
  for (int i = 0; i < 7; ++i) {
    const Linear& l = linear_by_index(m.layers[1], i);
    const QuantizedMatrix q =
        quantize_weights_ref(l.w, l.out, l.in, 4, 32, lwc.clip_hi(i).data(), lwc.clip_lo(i).data());
    std::vector<float> deq(static_cast<size_t>(l.out * l.in));
    dequantize_weights_ref(q, deq.data());
    EXPECT_EQ(test::floats_of(fake[static_cast<size_t>(i)]), deq) << kLinearNames[i];
  }
}

// ---- KV ---------------------------------------------------------------------------------------

struct KvCase {
  int bits;
  int64_t group;
};

class KvExact : public ::testing::TestWithParam<KvCase> {};

TEST_P(KvExact, FakeQuantEqualsRuntimeTokenQuantizer) {
  const auto [bits, group] = GetParam();
  const int64_t B = 2, T = 5, C = 32;
  std::vector<float> x = test::uniform(B * T * C, -3.0f, 5.0f, 8);
  for (int64_t c = 0; c < 8; ++c) x[static_cast<size_t>(C + c)] = 1.25f;  // a constant group
  const std::vector<float> fake =
      test::floats_of(fake_quant_tokens(test::tensor_from(x, {B, T, C}), bits, group));
  const KvQuantFormat f = make_kv_format(C, group, bits);
  std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
  std::vector<float> deq(static_cast<size_t>(C));
  for (int64_t t = 0; t < B * T; ++t) {
    quantize_token_ref(f, x.data() + t * C, rec.data());
    dequantize_token_ref(f, rec.data(), deq.data());
    for (int64_t c = 0; c < C; ++c) {
      ASSERT_EQ(fake[static_cast<size_t>(t * C + c)], deq[static_cast<size_t>(c)])
          << "token " << t << " channel " << c << " bits " << bits << " group " << group;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BitsAndGroups, KvExact,
                         ::testing::Values(KvCase{4, 8}, KvCase{4, 0}, KvCase{4, 12}, KvCase{2, 8},
                                           KvCase{3, 5}, KvCase{8, 16}));

TEST(KvExact, SmoothingIsUndoneAroundTheRuntimeQuantizer) {
  const int64_t T = 6, C = 16;
  const std::vector<float> k = test::uniform(T * C, -4.0f, 6.0f, 9);
  LayerSmoothing sm{test::uniform(C, -1.0f, 1.0f, 10), test::uniform(C, 0.3f, 3.0f, 11),
                    test::uniform(C, -1.0f, 1.0f, 12), test::uniform(C, 0.3f, 3.0f, 13)};
  const FakeKv kv(sm, 8, {4, 0, true}, /*learn=*/false);
  const std::vector<float> fake = test::floats_of(kv.quantize_k(test::tensor_from(k, {1, T, C})));
  const KvQuantFormat f = make_kv_format(C, 8, 4);
  std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
  std::vector<float> tmp(static_cast<size_t>(C)), deq(static_cast<size_t>(C));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < C; ++c) {  // the runtime's smoothing (runtime/kv_cache.cpp)
      const auto i = static_cast<size_t>(c);
      tmp[i] = (k[static_cast<size_t>(t * C + c)] - sm.dk[i]) / sm.sk[i];
    }
    quantize_token_ref(f, tmp.data(), rec.data());
    dequantize_token_ref(f, rec.data(), deq.data());
    for (int64_t c = 0; c < C; ++c) {
      const auto i = static_cast<size_t>(c);
      EXPECT_EQ(fake[static_cast<size_t>(t * C + c)], deq[i] * sm.sk[i] + sm.dk[i]);
    }
  }
}

// ---- a whole block ---------------------------------------------------------------------------
//
// The torch block with fake-quantized weights and KV against the runtime block with packed int4
// weights (apply_calibration -> quantize_weights_ref with the same clip factors) and an int4 KV
// cache with the same smoothing in teacher-forced mode (the evaluation's decode modes).
//
// Why a plain elementwise tolerance does not suffice, and what is compared instead: the weights
// W^ are bit-identical in the two paths (LwcExact), but K and V come out of different f32
// summation orders, so a smoothed value within a few ulps of a rounding boundary of its 4-bit code
// (or an fp16 rounding boundary of its group's min or scale) may be quantized differently in
// the two paths. Such a "flip" moves one element of K^ or V^ by one quantization step and touches
// every later token. So the test quantizes the K and V of both paths with the runtime's
// quantize_token_ref and finds the flips, then checks:
//  1. flips are rare: at most kMaxFlipShare of the K/V values (a smoothing, grouping or rounding
//     mismatch flips a large share of them);
//  2. every token before the first flipped one (which no flip can reach) agrees within the f32
//     block tolerance (block_tolerance: kStages * kUlpsPerStage ulps of max|y|);
//  3. over all tokens, the mean |difference| is at most the f32 tolerance plus the flips' share
//     of the quantization effect itself: the fake-quantized output differs from the FP one by
//     mean|y_q - y_fp| because every one of the N K/V values carries a quantization error of up
//     to one step; f flips add at most f such one-step errors, so their effect is about
//     (f / N) * mean|y_q - y_fp|, times kFlipGain = 10 for safety;
//  4. the comparison can see POQ (with a window: the window): the POQ and no-POQ outputs (with
//     and without the window) differ by kContrast times more than the two paths do.
constexpr double kMaxFlipShare = 0.01;
constexpr double kFlipGain = 10;
constexpr double kContrast = 10;

// A KvStore that records the K and V handed to attention, then attends through `inner`.
class Recorder final : public KvStore {
 public:
  Recorder(KvStore& inner, int kv_dim) : inner_(inner), kv_dim_(kv_dim) {}
  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override {
    keys.assign(k, k + n * kv_dim_);
    values.assign(v, v + n * kv_dim_);
    inner_.attend(layer, q, k, v, n, pos0, out);
  }
  std::vector<float> keys, values;

 private:
  KvStore& inner_;
  int kv_dim_;
};

// Clip factors (initial sigmoid(4), or "learned" ones in [0.7, 1]) and statistics smoothing.
CalibrationResult make_result(const Model& fp, int64_t wgroup, bool learned_clips) {
  CalibrationResult r;
  const KvSmoothing sm = smoothing_from_stats(
      collect_kv_stats(fp, test::random_tokens(512, fp.config.vocab_size, 3), {128, 4}));
  const float init = torch::sigmoid(torch::full({1}, 4.0f)).item<float>();
  const int C = fp.config.kv_dim();
  for (int l = 0; l < fp.config.n_layers; ++l) {
    BlockCalibration b;
    for (int i = 0; i < 7; ++i) {
      const Linear& lin = linear_by_index(fp.layers[static_cast<size_t>(l)], i);
      const int64_t g = weight_group_size(lin.in, wgroup);
      const int64_t n = lin.out * ((lin.in + g - 1) / g);
      const auto seed = static_cast<uint64_t>(100 * l + 2 * i);
      b.clip_hi[static_cast<size_t>(i)] =
          learned_clips ? test::uniform(n, 0.7f, 1.0f, seed) : std::vector<float>(n, init);
      b.clip_lo[static_cast<size_t>(i)] =
          learned_clips ? test::uniform(n, 0.7f, 1.0f, seed + 1) : std::vector<float>(n, init);
    }
    auto slice = [&](const float* p) { return std::vector<float>(p, p + C); };
    b.smoothing = {slice(sm.dK(l)), slice(sm.sK(l)), slice(sm.dV(l)), slice(sm.sV(l))};
    r.blocks.push_back(std::move(b));
  }
  return r;
}

// Per token (K or V, (T, kv_dim)), whether the smoothed a and b quantize to different records of
// format f (the cache's: its groups, bits and metadata); counts the differing dequantized values.
int64_t count_flips(const std::vector<float>& a, const std::vector<float>& b, const float* d,
                    const float* s, const KvQuantFormat& f, std::vector<bool>& token_flipped) {
  const int64_t C = f.channels;
  const auto T = static_cast<int64_t>(a.size()) / C;
  std::vector<uint8_t> ra(static_cast<size_t>(f.token_bytes)), rb(ra.size());
  std::vector<float> sa(static_cast<size_t>(C)), sb(sa.size()), da(sa.size()), db(sa.size());
  int64_t flips = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < C; ++c) {
      sa[static_cast<size_t>(c)] = (a[static_cast<size_t>(t * C + c)] - d[c]) / s[c];
      sb[static_cast<size_t>(c)] = (b[static_cast<size_t>(t * C + c)] - d[c]) / s[c];
    }
    quantize_token_ref(f, sa.data(), ra.data());
    quantize_token_ref(f, sb.data(), rb.data());
    dequantize_token_ref(f, ra.data(), da.data());
    dequantize_token_ref(f, rb.data(), db.data());
    for (int64_t c = 0; c < C; ++c) {
      if (da[static_cast<size_t>(c)] != db[static_cast<size_t>(c)]) {
        ++flips;
        token_flipped[static_cast<size_t>(t)] = true;
      }
    }
  }
  return flips;
}

// rel8: the static group ranges of every layer in `sm` set to those the fake quantizer codes
// against (the raw K/V channel ranges of the torch block's K, V over positions 1.., as CRR
// measures them, widened by kRangeMargin of their width: a token whose group minimum is exactly
// a level, as the extreme token of a range is, would be coded against the level below it for a
// K one ulp lower in the runtime's summation order, a flip of the whole group that calibration
// ranges from other text do not provoke).
constexpr float kRangeMargin = 0.01f;
void share_rel8_ranges(const TorchBlock::Qkv& a, int64_t group, const LlamaConfig& c, FakeKv& kv,
                       FakeKv& kv_other, KvSmoothing& sm) {
  const int64_t T = a.k.size(1);
  std::vector<std::vector<float>> r;
  for (const torch::Tensor& x : {a.k, a.v}) {
    const torch::Tensor p = x.narrow(1, 1, T - 1);
    const torch::Tensor lo = p.amin({0, 1}), hi = p.amax({0, 1});
    r.push_back(test::floats_of(lo - kRangeMargin * (hi - lo)));
    r.push_back(test::floats_of(hi + kRangeMargin * (hi - lo)));
  }
  kv.set_channel_ranges(r[0], r[1], r[2], r[3]);
  kv_other.set_channel_ranges(r[0], r[1], r[2], r[3]);
  const auto [klo, khi] = kv.group_ranges(0);
  const auto [vlo, vhi] = kv.group_ranges(1);
  KvGroupRanges g{c.n_layers, group, static_cast<int64_t>(klo.size()), {}, {}, {}, {}};
  for (int l = 0; l < c.n_layers; ++l) {
    g.klo.insert(g.klo.end(), klo.begin(), klo.end());
    g.khi.insert(g.khi.end(), khi.begin(), khi.end());
    g.vlo.insert(g.vlo.end(), vlo.begin(), vlo.end());
    g.vhi.insert(g.vhi.end(), vhi.begin(), vhi.end());
  }
  sm.set_ranges(std::move(g), "test");
}

// The records of K (kv = 0) or V of layer `layer` in a cache of settings `spec`.
KvQuantFormat cache_format(const KvQuantSettings& spec, int kv, int64_t group, const LlamaConfig& c,
                           const KvSmoothing& sm, int layer) {
  KvQuantFormat f =
      make_kv_format(c.kv_dim(), group, kv == 0 ? spec.key_bits() : spec.value_bits(), spec.rel8);
  if (spec.rel8) f.rel8_groups = sm.rel8_groups(layer, kv);
  return f;
}

struct BlockCase {
  const char* name;
  bool poq;
  bool learned_clips;
  test::Feature feature = test::Feature::None;
  KvQuantSettings kv{4, 0};  // the cache's format (poq from `poq`)
};

void PrintTo(const BlockCase& p, std::ostream* os) { *os << p.name; }

class FakeQuantBlock : public ::testing::TestWithParam<BlockCase> {};

TEST_P(FakeQuantBlock, MatchesRuntimeWithPackedWeightsAndInt4Cache) {
  const BlockCase cs = GetParam();
  const int64_t T = 128, wgroup = 32;
  // T = 128 positions: beyond the original context (64) of the llama3 scaling
  const Model fp =
      test::make_test_model(test::with_feature(test::stories260k_config(), cs.feature), 31);
  const LlamaConfig& c = fp.config;
  const CalibrationResult r = make_result(fp, wgroup, cs.learned_clips);
  const Model q = apply_calibration(fp, r, 4, wgroup);
  std::vector<float> x;  // layer inputs: the FP runtime's residual stream
  for (const int t : test::random_tokens(T, c.vocab_size, 77)) {
    x.insert(x.end(), fp.tok_embeddings + int64_t{t} * c.dim,
             fp.tok_embeddings + int64_t{t + 1} * c.dim);
  }
  for (int layer = 0; layer < c.n_layers; ++layer) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    const BlockCalibration& b = r.blocks[static_cast<size_t>(layer)];
    KvQuantSettings spec = cs.kv;
    spec.poq = cs.poq;
    // the contrast: without POQ, or (a window) without the window, which then holds the diagonal
    KvQuantSettings other = spec;
    if (spec.window > 0)
      other.window = 0;
    else
      other.poq = !spec.poq;
    const TorchBlock block(fp, layer);
    const BlockLinears w = fake_quant_fixed(block.weights(), b.clip_hi, b.clip_lo, 4, wgroup);
    FakeKv kv(b.smoothing, c.head_dim, spec, false);
    FakeKv kv_other(b.smoothing, c.head_dim, other, false);
    const torch::Tensor X = test::tensor_from(x, {1, T, c.dim});
    const TorchBlock::Qkv a = block.qkv(X, w);
    KvSmoothing smoothing = q.kv_smoothing;
    const int64_t group = spec.group == 0 ? c.head_dim : spec.group;
    if (spec.rel8) share_rel8_ranges(a, group, c, kv, kv_other, smoothing);
    KvCache cache(c, T, spec, &smoothing);
    cache.set_chunk_attention(ChunkAttention::TeacherForced);
    Recorder rec(cache, c.kv_dim());
    const std::vector<float> y_rt = test::runtime_block(q, layer, x, rec);

    const std::vector<float> y_t = test::floats_of(block.forward(X, &w, &kv));
    const std::vector<float> y_fp = test::floats_of(block.forward(X));
    const std::vector<float> y_other = test::floats_of(block.forward(X, &w, &kv_other));

    std::vector<bool> flipped(static_cast<size_t>(T), false);
    const KvQuantFormat fk = cache_format(spec, 0, group, c, smoothing, layer);
    const KvQuantFormat fv = cache_format(spec, 1, group, c, smoothing, layer);
    const int64_t flips = count_flips(rec.keys, test::floats_of(a.k), b.smoothing.dk.data(),
                                      b.smoothing.sk.data(), fk, flipped) +
                          count_flips(rec.values, test::floats_of(a.v), b.smoothing.dv.data(),
                                      b.smoothing.sv.data(), fv, flipped);
    const auto values = static_cast<double>(2 * T * c.kv_dim());
    const int64_t first_flip = std::find(flipped.begin(), flipped.end(), true) - flipped.begin();

    double max_y = 0, max_clean = 0, sum_diff = 0, sum_effect = 0, sum_contrast = 0;
    for (size_t i = 0; i < y_rt.size(); ++i) {
      const double diff = std::abs(static_cast<double>(y_t[i]) - y_rt[i]);
      max_y = std::max(max_y, std::abs(static_cast<double>(y_rt[i])));
      if (static_cast<int64_t>(i) / c.dim < first_flip) max_clean = std::max(max_clean, diff);
      sum_diff += diff;
      sum_effect += std::abs(static_cast<double>(y_t[i]) - y_fp[i]);
      sum_contrast += std::abs(static_cast<double>(y_t[i]) - y_other[i]);
    }
    const auto n = static_cast<double>(y_rt.size());
    const double tol = test::block_tolerance(max_y);
    EXPECT_LE(static_cast<double>(flips), kMaxFlipShare * values);
    EXPECT_LE(max_clean, tol) << "first flipped token " << first_flip;
    EXPECT_LE(sum_diff / n,
              tol + kFlipGain * (static_cast<double>(flips) / values) * sum_effect / n);
    EXPECT_GE(sum_contrast / n, kContrast * sum_diff / n);
    std::printf(
        "[ info ] %s layer %d: flips %lld of %.0f (first at token %lld), max diff before %.3g "
        "(tol %.3g), mean diff %.3g, quantization effect %.3g, poq contrast %.3g\n",
        cs.name, layer, static_cast<long long>(flips), values, static_cast<long long>(first_flip),
        max_clean, tol, sum_diff / n, sum_effect / n, sum_contrast / n);
    x = y_rt;  // the next layer's input: this layer's output (any stream will do)
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, FakeQuantBlock,
    ::testing::Values(BlockCase{"poq_initial_clips", true, false},
                      BlockCase{"poq_learned_clips", true, true},
                      BlockCase{"nopoq_learned_clips", false, true},
                      BlockCase{"poq_qkv_bias", true, true, test::Feature::QkvBias},
                      BlockCase{"poq_attention_bias", true, true, test::Feature::AttentionBias},
                      BlockCase{"poq_qk_norm_head_dim_16", true, true, test::Feature::QkNorm},
                      BlockCase{"poq_llama3_rope", true, true, test::Feature::Llama3Rope},
                      BlockCase{"nopoq_linear_rope", false, true, test::Feature::LinearRope},
                      // the 4.5-bit formats: rel8 metadata, 3-bit values, the fp16 window
                      BlockCase{"poq_rel8_k4v3_g16_window8",
                                true,
                                true,
                                test::Feature::None,
                                {4, 16, true, KvSmoothMode::None, 8, 3, true}},
                      BlockCase{"poq_rel8_g32",
                                true,
                                true,
                                test::Feature::None,
                                {4, 32, true, KvSmoothMode::None, 0, 0, true}},
                      BlockCase{"nopoq_window4",
                                false,
                                true,
                                test::Feature::None,
                                {4, 0, false, KvSmoothMode::None, 4}}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(FakeQuantBlock, WeightsOnlyMatchesRuntimeWithAnF32Cache) {
  const int64_t T = 64, wgroup = 32;
  const Model fp = test::make_test_model(test::stories260k_config(), 32);
  const CalibrationResult r = make_result(fp, wgroup, true);
  const Model q = apply_calibration(fp, r, 4, wgroup);
  const std::vector<float> x = test::uniform(T * fp.config.dim, -1.0f, 1.0f, 5);
  for (int layer = 0; layer < fp.config.n_layers; ++layer) {
    KvCache cache(fp.config, T);
    const std::vector<float> y_rt = test::runtime_block(q, layer, x, cache);
    const TorchBlock block(fp, layer);
    const BlockCalibration& b = r.blocks[static_cast<size_t>(layer)];
    const BlockLinears w = fake_quant_fixed(block.weights(), b.clip_hi, b.clip_lo, 4, wgroup);
    const std::vector<float> y_t =
        test::floats_of(block.forward(test::tensor_from(x, {1, T, fp.config.dim}), &w));
    double max_y = 0, max_diff = 0;
    for (size_t i = 0; i < y_rt.size(); ++i) {
      max_y = std::max(max_y, std::abs(static_cast<double>(y_rt[i])));
      max_diff = std::max(max_diff, std::abs(static_cast<double>(y_t[i]) - y_rt[i]));
    }
    EXPECT_LE(max_diff, test::block_tolerance(max_y)) << "layer " << layer;
  }
}

// The libtorch block's teacher-forced attention reads in full precision exactly the positions
// the runtime's rule (full_precision_from, runtime/attention.h) names: the diagonal under POQ.
TEST(TeacherForcedRule, MaskIsTheRuntimeRule) {
  for (const bool poq : {true, false}) {
    for (const int64_t T : {1, 6}) {
      const torch::Tensor m = teacher_forced_full_precision(poq, T, torch::kCPU);
      ASSERT_EQ(m.sizes(), (std::vector<int64_t>{T, T}));
      const auto a = m.accessor<bool, 2>();
      for (int64_t t = 0; t < T; ++t) {
        const int64_t from = full_precision_from(poq, ChunkAttention::TeacherForced, 0, t);
        for (int64_t j = 0; j < T; ++j) {
          EXPECT_EQ(a[t][j], j >= from && j <= t) << "poq " << poq << " t " << t << " j " << j;
        }
      }
      EXPECT_TRUE(
          torch::equal(m, poq ? torch::eye(T, torch::kBool) : torch::zeros({T, T}, torch::kBool)));
    }
  }
}

}  // namespace
}  // namespace wkvq
