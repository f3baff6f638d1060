// The CRR loop (calibrate/crr.h): the loss decreases, interrupted runs resume bit-identically,
// resumes with other settings are refused; block files and apply_calibration.
#include "calibrate/crr.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "calib_fixture.h"
#include "calibrate/block_file.h"
#include "calibrate/calibration_result.h"
#include "calibrate/lwc.h"
#include "calibrate/torch_block.h"
#include "core/error.h"
#include "formats/weight_quant.h"
#include "model/weight_quantizer.h"
#include "test_support.h"

namespace wkvq {
namespace {

namespace fs = std::filesystem;

CrrOptions small_options() {
  CrrOptions o;
  o.k = 2;
  o.epochs = 2;
  o.samples = 4;
  o.window = 32;
  o.batch = 2;
  o.wgroup = 32;
  o.seed = 9;
  o.threads = 2;
  return o;
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void expect_bit_identical(const CalibrationResult& a, const CalibrationResult& b) {
  ASSERT_EQ(a.blocks.size(), b.blocks.size());
  for (size_t l = 0; l < a.blocks.size(); ++l) {
    const BlockCalibration &x = a.blocks[l], &y = b.blocks[l];
    for (size_t i = 0; i < 7; ++i) {
      EXPECT_TRUE(same_floats(x.clip_hi[i], y.clip_hi[i])) << "block " << l << " linear " << i;
      EXPECT_TRUE(same_floats(x.clip_lo[i], y.clip_lo[i])) << "block " << l << " linear " << i;
    }
    EXPECT_TRUE(same_floats(x.smoothing.dk, y.smoothing.dk) &&
                same_floats(x.smoothing.sk, y.smoothing.sk) &&
                same_floats(x.smoothing.dv, y.smoothing.dv) &&
                same_floats(x.smoothing.sv, y.smoothing.sv))
        << "block " << l;
    EXPECT_EQ(x.loss_before, y.loss_before) << "block " << l;
    EXPECT_EQ(x.loss_after, y.loss_after) << "block " << l;
  }
}

TEST(Crr, LossDecreasesOnABlock) {
  const Model m = test::make_test_model(test::stories260k_config(), 51);
  const std::vector<int> calib = test::random_tokens(4096, 512, 52);
  CrrOptions o = small_options();
  o.samples = 8;
  o.window = 64;
  o.epochs = 5;
  o.k = 1;
  o.batch = 1;
  o.stop_after_block = 0;
  std::vector<double> epoch_loss;
  bool done = false;
  const CalibrationResult r = calibrate_crr(m, calib, o, [&](const CrrProgress& p) {
    EXPECT_EQ(p.block, 0);
    EXPECT_EQ(p.n_blocks, 5);
    EXPECT_GE(p.eta_s, 0.0);
    if (p.block_done) {
      done = true;
    } else {
      EXPECT_EQ(p.epoch, static_cast<int>(epoch_loss.size()) + 1);
      epoch_loss.push_back(p.loss);
    }
  });
  ASSERT_EQ(r.blocks.size(), 1u);
  ASSERT_EQ(epoch_loss.size(), 5u);
  EXPECT_TRUE(done);
  const BlockCalibration& b = r.blocks[0];
  std::printf("[ info ] block 0: loss %.5g before, %.5g after; epochs", b.loss_before,
              b.loss_after);
  for (const double l : epoch_loss) std::printf(" %.5g", l);
  std::printf("\n");
  EXPECT_LT(b.loss_after, b.loss_before);
  EXPECT_LT(epoch_loss.back(), epoch_loss.front());
  // something was learned: clip factors moved from sigmoid(4), smoothing from its start
  EXPECT_EQ(b.clip_hi[4].size(), static_cast<size_t>(172 * 2));  // w_gate: rows x groups of 32
  bool moved = false;
  for (const float c : b.clip_hi[1]) moved = moved || std::abs(c - 0.98201379f) > 1e-4f;
  EXPECT_TRUE(moved);
  EXPECT_EQ(r.quant.method, "wkvquant");
  EXPECT_EQ(r.quant.kv.smooth, KvSmoothMode::Learned);
}

// CRR's loss (design.md §2.3): block i with its quantized weights, followed by k' = min(k, L-1-i)
// full-precision blocks, against the full-precision model k' blocks later. Block 0's loss before
// training, recomputed here from the blocks themselves, for k = 0 .. 3 (one window: the whole
// stream; KV in floating point, so only the weights are quantized). The same operations in the
// same order, so the only slack is libtorch's reduction order: kLossRelTol relative.
TEST(Crr, LossRunsThroughTheKFullPrecisionSuccessors) {
  constexpr double kLossRelTol = 1e-6;
  const Model m = test::make_test_model(test::stories260k_config(), 41);
  const int64_t T = 32;
  const std::vector<int> calib = test::random_tokens(T, 512, 42);
  const int dim = m.config.dim;
  torch::Tensor x = torch::empty({1, T, dim}, torch::kFloat32);
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(x.data_ptr<float>() + t * dim,
                m.tok_embeddings + int64_t{calib[static_cast<size_t>(t)]} * dim,
                sizeof(float) * static_cast<size_t>(dim));
  }
  std::vector<double> expected;
  for (int k = 0; k <= 3; ++k) {
    CrrOptions o = small_options();
    o.k = k;
    o.samples = 1;
    o.window = T;
    o.batch = 1;
    o.epochs = 1;
    o.kv.bits = 16;
    o.stop_after_block = 0;
    const CalibrationResult r = calibrate_crr(m, calib, o);
    ASSERT_EQ(r.blocks.size(), 1u);

    torch::NoGradGuard no_grad;
    const TorchBlock b0(m, 0);
    const BlockLinears w_hat = Lwc(b0.weights(), o.wbits, o.wgroup, o.lwc_init).fake_quant();
    torch::Tensor y_fp = b0.forward(x), y_q = b0.forward(x, &w_hat);
    for (int j = 1; j <= k; ++j) {
      const TorchBlock bj(m, j);
      y_fp = bj.forward(y_fp);
      y_q = bj.forward(y_q);
    }
    expected.push_back((y_q - y_fp).abs().mean().item<double>());
    EXPECT_NEAR(r.blocks[0].loss_before, expected.back(), kLossRelTol * expected.back())
        << "k = " << k;
  }
  for (size_t k = 1; k < expected.size(); ++k) {
    EXPECT_GT(std::abs(expected[k] - expected[k - 1]), 1e3 * kLossRelTol * expected[k])
        << "k = " << k << " and k = " << k - 1 << " give the same loss: the test cannot tell them "
        << "apart";
  }
}

// An uninterrupted run with KV format kv, then the same run interrupted and resumed: the resumed
// one replays the finished blocks (with rel8, their K/V ranges too) and gives the same bits.
void check_resume(const KvQuantSettings& kv, CalibrationResult* out = nullptr) {
  const Model m = test::make_test_model(test::stories260k_config(), 61);
  const std::vector<int> calib = test::random_tokens(2048, 512, 62);
  test::TempDir full_dir("crr_full"), split_dir("crr_split");
  CrrOptions o = small_options();
  o.kv = kv;
  o.results_dir = full_dir.str();
  const CalibrationResult full = calibrate_crr(m, calib, o);
  ASSERT_EQ(full.blocks.size(), 5u);

  o.results_dir = split_dir.str();
  o.stop_after_block = 1;  // "interrupted" after block 1
  const CalibrationResult part = calibrate_crr(m, calib, o);
  ASSERT_EQ(part.blocks.size(), 2u);
  EXPECT_TRUE(fs::exists(block_file_path(split_dir.str(), 1)));
  EXPECT_FALSE(fs::exists(block_file_path(split_dir.str(), 2)));

  o.stop_after_block = -1;
  EXPECT_THROW(calibrate_crr(m, calib, o), Error) << "an existing run must not be overwritten";
  o.resume = true;
  int resumed_reports = 0;
  const CalibrationResult resumed = calibrate_crr(
      m, calib, o, [&](const CrrProgress& p) { resumed_reports += p.resumed ? 1 : 0; });
  EXPECT_EQ(resumed_reports, 2);
  expect_bit_identical(full, resumed);

  // the files of a finished run reproduce it too
  const CalibrationResult reread = calibrate_crr(m, calib, o);
  expect_bit_identical(full, reread);
  if (out != nullptr) *out = full;
}

TEST(Crr, ResumedRunIsBitIdenticalToAnUninterruptedOne) { check_resume(CrrOptions().kv); }

// Trained under the 4.5-bit formats (rel8 metadata against ranges that follow the smoothing,
// 3-bit values, an fp16 window): resumable as well, and the format reaches the training (the
// learned smoothing differs from the one learned for fp16 metadata with the same bits).
TEST(Crr, ResumedRunUnderRel8ValueBitsAndWindowIsBitIdentical) {
  KvQuantSettings kv = CrrOptions().kv;
  kv.group = 16;
  kv.vbits = 3;
  kv.window = 4;
  const CalibrationResult fp16 =
      calibrate_crr(test::make_test_model(test::stories260k_config(), 61),
                    test::random_tokens(2048, 512, 62), [&] {
                      CrrOptions o = small_options();
                      o.kv = kv;
                      return o;
                    }());
  kv.rel8 = true;
  CalibrationResult rel8;
  check_resume(kv, &rel8);
  ASSERT_EQ(rel8.blocks.size(), fp16.blocks.size());
  EXPECT_FALSE(same_floats(rel8.blocks[0].smoothing.sk, fp16.blocks[0].smoothing.sk));
  EXPECT_TRUE(rel8.quant.kv.rel8 && rel8.quant.kv.vbits == 3 && rel8.quant.kv.window == 4);
}

TEST(Crr, ResumeWithOtherSettingsIsRefused) {
  const Model m = test::make_test_model(test::stories260k_config(), 71);
  const std::vector<int> calib = test::random_tokens(2048, 512, 72);
  test::TempDir dir("crr_refuse");
  CrrOptions o = small_options();
  o.results_dir = dir.str();
  o.stop_after_block = 0;
  o.epochs = 1;
  calibrate_crr(m, calib, o);
  o.resume = true;
  o.stop_after_block = -1;
  o.epochs = 2;
  try {
    calibrate_crr(m, calib, o);
    FAIL() << "resume with other epochs was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("epochs"), std::string::npos) << e.what();
  }
  o.epochs = 1;
  const std::vector<int> other = test::random_tokens(2048, 512, 73);
  EXPECT_THROW(calibrate_crr(m, other, o), Error) << "another calibration text";
}

TEST(Crr, BadOptionsAreRejected) {
  const Model m = test::make_test_model(test::stories260k_config(), 81);
  const std::vector<int> calib = test::random_tokens(600, 512, 82);
  CrrOptions o = small_options();
  o.wbits = 5;
  EXPECT_THROW(calibrate_crr(m, calib, o), Error);
  o = small_options();
  o.window = 1000;  // beyond the context
  EXPECT_THROW(calibrate_crr(m, calib, o), Error);
  o = small_options();
  o.batch = 5;  // more than samples
  EXPECT_THROW(calibrate_crr(m, calib, o), Error);
  o = small_options();
  EXPECT_THROW(calibrate_crr(m, std::vector<int>(16, 1), o), Error) << "text shorter than a window";
}

// Frozen weights (an imported act-order GPTQ checkpoint, its own reference): with a float KV
// cache every block reproduces the reference exactly (the frozen W^ is the reference block's),
// and with KV4 only the smoothing is learned (no clip factors) and the weights are not touched.
TEST(Crr, FrozenWeightsAreTheModelsOwnAndOnlyTheSmoothingIsLearned) {
  const Model fp = test::make_test_model(test::stories260k_config(), 91);
  const Model q = test::with_act_order_weights(fp, 32, 92);
  const std::vector<int> calib = test::random_tokens(1024, 512, 93);
  CrrOptions o = small_options();
  o.k = 1;
  o.epochs = 1;
  o.samples = 2;
  o.batch = 1;
  o.frozen_weights = true;
  o.learn_lwc = false;
  o.kv = {32, 0, true, KvSmoothMode::None};
  const CalibrationResult exact = calibrate_crr(q, calib, o, {}, &q);
  for (const BlockCalibration& b : exact.blocks) EXPECT_EQ(b.loss_before, 0.0);
  o.kv = {4, 0, true, KvSmoothMode::Learned};
  const CalibrationResult r = calibrate_crr(q, calib, o, {}, &q);
  ASSERT_EQ(r.blocks.size(), 5u);
  for (const BlockCalibration& b : r.blocks) {
    EXPECT_GT(b.loss_before, 0.0);
    for (size_t i = 0; i < 7; ++i) EXPECT_TRUE(b.clip_hi[i].empty() && b.clip_lo[i].empty());
    EXPECT_EQ(b.smoothing.dk.size(), static_cast<size_t>(fp.config.kv_dim()));
  }
  const Model s = apply_smoothing(q, r);
  EXPECT_EQ(s.kv_smoothing.n_layers, 5);
  EXPECT_EQ(s.quant.method, "gptq+wkvquant-kv");
  for (size_t l = 0; l < 5; ++l) {
    for (int i = 0; i < 7; ++i) {
      EXPECT_EQ(linear_by_index(s.layers[l], i).q, linear_by_index(q.layers[l], i).q);
    }
  }
  o.learn_lwc = true;
  EXPECT_THROW(calibrate_crr(q, calib, o, {}, &q), Error) << "LWC on frozen weights";
  o.learn_lwc = false;
  EXPECT_THROW(calibrate_crr(q, calib, o), Error) << "frozen without the frozen model";
  o.frozen_weights = false;
  EXPECT_THROW(calibrate_crr(q, calib, o), Error) << "a quantized model without freezing it";
}

// ---- block files and apply_calibration ------------------------------------------------------

BlockFile sample_block_file() {
  BlockFile f;
  f.block = 3;
  f.record = "wkvq-crr 1\nk=5\n";
  for (size_t i = 0; i < 7; ++i) {
    f.data.clip_hi[i] = test::uniform(static_cast<int64_t>(i) + 2, 0.5f, 1.0f, i);
    f.data.clip_lo[i] = test::uniform(static_cast<int64_t>(i) + 2, 0.5f, 1.0f, i + 10);
  }
  f.data.smoothing = {test::uniform(4, -1, 1, 1), test::uniform(4, 0.1f, 2, 2),
                      test::uniform(4, -1, 1, 3), test::uniform(4, 0.1f, 2, 4)};
  f.data.loss_before = 0.5;
  f.data.loss_after = 0.25;
  f.data.seconds = 1.5;
  return f;
}

TEST(BlockFile, RoundTrips) {
  const BlockFile f = sample_block_file();
  const std::vector<uint8_t> bytes = serialize_block_file(f);
  const BlockFile g = parse_block_file(bytes.data(), bytes.size(), "test");
  EXPECT_EQ(g.block, 3);
  EXPECT_EQ(g.record, f.record);
  for (size_t i = 0; i < 7; ++i) EXPECT_TRUE(same_floats(f.data.clip_hi[i], g.data.clip_hi[i]));
  EXPECT_TRUE(same_floats(f.data.smoothing.sv, g.data.smoothing.sv));
  EXPECT_EQ(g.data.loss_after, 0.25);
}

TEST(BlockFile, EveryTruncationAndCorruptionIsAnError) {
  const std::vector<uint8_t> bytes = serialize_block_file(sample_block_file());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW(parse_block_file(bytes.data(), n, "test"), Error) << "truncated to " << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<uint8_t> bad = bytes;
    bad[i] ^= 0x5a;
    EXPECT_THROW(parse_block_file(bad.data(), bad.size(), "test"), Error) << "byte " << i;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_THROW(parse_block_file(longer.data(), longer.size(), "test"), Error);
}

TEST(ApplyCalibration, QuantizesWithTheClipFactorsAndSetsTheSmoothing) {
  const Model fp = test::make_test_model(test::stories260k_config(), 91);
  CalibrationResult r;
  r.quant.kv.bits = 4;
  r.quant.kv.smooth = KvSmoothMode::Learned;
  const int C = fp.config.kv_dim();
  for (int l = 0; l < fp.config.n_layers; ++l) {
    BlockCalibration b;
    for (int i = 0; i < 7; ++i) {
      const Linear& lin = linear_by_index(fp.layers[static_cast<size_t>(l)], i);
      const int64_t n = lin.out * ((lin.in + 31) / 32);
      b.clip_hi[static_cast<size_t>(i)] =
          test::uniform(n, 0.6f, 1.0f, static_cast<uint64_t>(l * 7 + i));
      b.clip_lo[static_cast<size_t>(i)] =
          test::uniform(n, 0.6f, 1.0f, static_cast<uint64_t>(l * 7 + i + 99));
    }
    b.smoothing = {test::uniform(C, -1, 1, 5), test::uniform(C, 0.5f, 2, 6),
                   test::uniform(C, -1, 1, 7), test::uniform(C, 0.5f, 2, 8)};
    r.blocks.push_back(std::move(b));
  }
  r.blocks[2].clip_hi[3].clear();  // layer 2 wo stays in floating point
  r.blocks[2].clip_lo[3].clear();
  const Model q = apply_calibration(fp, r, 4, 32);
  EXPECT_EQ(q.quant.method, "wkvquant");
  EXPECT_EQ(q.quant.wbits, 4);
  EXPECT_EQ(q.kv_smoothing.n_layers, 5);
  EXPECT_TRUE(same_floats(q.kv_smoothing.dk, [&] {
    std::vector<float> all;
    for (const auto& b : r.blocks)
      all.insert(all.end(), b.smoothing.dk.begin(), b.smoothing.dk.end());
    return all;
  }()));
  EXPECT_FALSE(q.layers[2].wo.quantized());
  const Linear& src = fp.layers[4].w_down;
  const QuantizedMatrix expected = quantize_weights_ref(
      src.w, src.out, src.in, 4, 32, r.blocks[4].clip_hi[6].data(), r.blocks[4].clip_lo[6].data());
  ASSERT_TRUE(q.layers[4].w_down.quantized());
  EXPECT_EQ(q.layers[4].w_down.q->codes, expected.codes);
  EXPECT_EQ(q.layers[4].w_down.q->scales, expected.scales);
  EXPECT_THROW(apply_calibration(fp, r, 4, 64), Error) << "clip shapes of another group size";
  r.blocks.pop_back();
  EXPECT_THROW(apply_calibration(fp, r, 4, 32), Error) << "an unfinished calibration";
}

}  // namespace
}  // namespace wkvq
