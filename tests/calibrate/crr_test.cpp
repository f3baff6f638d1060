// The CRR loop (calibrate/crr.h): the loss decreases, interrupted runs resume bit-identically,
// resumes with other settings are refused; block files and apply_calibration.
#include "calibrate/crr.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "calib_fixture.h"
#include "calibrate/block_file.h"
#include "calibrate/calibration_result.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "formats/weight_quant.h"
#include "model/loader.h"
#include "model/weight_quantizer.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/kv_stats.h"
#include "test_support.h"

namespace wkvq {
namespace {

namespace fs = std::filesystem;

// A fresh directory for one test, removed afterwards.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(fs::temp_directory_path() / ("wkvq_crr_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

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
  EXPECT_EQ(r.quant.kv_smooth, "learned");
}

TEST(Crr, ResumedRunIsBitIdenticalToAnUninterruptedOne) {
  const Model m = test::make_test_model(test::stories260k_config(), 61);
  const std::vector<int> calib = test::random_tokens(2048, 512, 62);
  TempDir full_dir("full"), split_dir("split");
  CrrOptions o = small_options();
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
}

TEST(Crr, ResumeWithOtherSettingsIsRefused) {
  const Model m = test::make_test_model(test::stories260k_config(), 71);
  const std::vector<int> calib = test::random_tokens(2048, 512, 72);
  TempDir dir("refuse");
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
  r.quant.kvbits = 4;
  r.quant.kv_smooth = "learned";
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

// ---- timing on the real model (run by hand) -------------------------------------------------
//
//   WKVQ_CRR_EPOCHS=2 WKVQ_CRR_SAMPLES=32 WKVQ_CRR_WINDOW=256 wkvq_calibrate_tests
//   --gtest_also_run_disabled_tests --gtest_filter='*Stories260KTiming*'
// Unset variables keep the defaults of CrrOptions. Prints the time and the perplexity (decode
// mode, W4 KV4) of the calibrated model next to RTN + statistics smoothing.

int64_t env_or(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoll(v) : fallback;
}

std::string read_text(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str().substr(0, max_bytes);
}

TEST(Crr, DISABLED_Stories260KTiming) {
  WKVQ_REQUIRE_SHARED(model_path, "models/stories260K/stories260K.bin");
  WKVQ_REQUIRE_SHARED(tok_path, "models/stories260K/tok512.bin");
  WKVQ_REQUIRE_SHARED(calib_path, "data/tinystories/calib.txt");
  WKVQ_REQUIRE_SHARED(test_path, "data/tinystories/test.txt");
  const Model fp = load_model(model_path);
  // (not load_tokenizer: this binary must not load sentencepiece, see src/CMakeLists.txt)
  const auto tok = BpeTokenizer::load(tok_path, fp.config.vocab_size);
  const std::vector<int> calib = tok->encode(read_text(calib_path, 4000000), true, false);
  CrrOptions o;
  o.epochs = static_cast<int>(env_or("WKVQ_CRR_EPOCHS", o.epochs));
  o.samples = env_or("WKVQ_CRR_SAMPLES", o.samples);
  o.window = env_or("WKVQ_CRR_WINDOW", o.window);
  o.k = static_cast<int>(env_or("WKVQ_CRR_K", o.k));
  o.threads = static_cast<int>(env_or("WKVQ_CRR_THREADS", 2));
  std::printf(
      "[ info ] calibration stream %zu tokens; k %d, epochs %d, samples %lld, window %lld\n",
      calib.size(), o.k, o.epochs, static_cast<long long>(o.samples),
      static_cast<long long>(crr_window(fp.config, o)));
  const auto t0 = std::chrono::steady_clock::now();
  const CalibrationResult r = calibrate_crr(fp, calib, o, [](const CrrProgress& p) {
    if (p.block_done) {
      std::printf("[ info ] block %d done: loss %.5g, elapsed %.1f s, eta %.1f s\n", p.block,
                  p.loss, p.elapsed_s, p.eta_s);
    }
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t l = 0; l < r.blocks.size(); ++l) {
    std::printf("[ info ] block %zu: loss %.5g -> %.5g (%.1f s)\n", l, r.blocks[l].loss_before,
                r.blocks[l].loss_after, r.blocks[l].seconds);
  }
  std::printf("[ info ] calibration took %.1f s\n", secs);

  const std::vector<int> text = tok->encode(read_text(test_path, 400000), true, false);
  PplOptions po;
  po.ctx = 256;
  po.max_windows = 40;
  po.mode = EvalMode::Decode;
  po.kv.bits = 4;
  const Model q = apply_calibration(fp, r, 4, o.wgroup);
  const PplResult ours = perplexity(q, text, po);  // the model's own (learned) smoothing
  WeightQuantOptions wo;
  wo.group = o.wgroup;
  const Model rtn = quantize_weights_rtn(fp, wo);
  CalibWindows cw;
  cw.ctx = crr_window(fp.config, o);
  cw.max_windows = o.samples;
  const KvSmoothing stats = smoothing_from_stats(collect_kv_stats(fp, calib, cw));
  PplOptions rtn_opt = po;
  rtn_opt.smoothing = &stats;
  const PplResult base_rtn = perplexity(rtn, text, rtn_opt);
  PplOptions fp_opt;
  fp_opt.ctx = po.ctx;
  fp_opt.max_windows = po.max_windows;
  const PplResult base_fp = perplexity(fp, text, fp_opt);
  std::printf(
      "[ info ] PPL (decode, W4 KV4, %lld tokens): FP %.4f, RTN + statistics smoothing %.4f, "
      "calibrated %.4f\n",
      static_cast<long long>(ours.tokens), base_fp.ppl, base_rtn.ppl, ours.ppl);
}

}  // namespace
}  // namespace wkvq
