// Quantizing the shared real models with RTN (W4, KV4 with statistics smoothing), saving the
// quantized model directory and loading it back gives the same model: the same logits as the
// in-memory quantized model (bit-identical for the Hugging Face model; within a derived
// tolerance for the llama2.c one, whose q/k rows are permuted into the rotate-half layout).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "model/loader.h"
#include "model/quantized_model_io.h"
#include "model/weight_quantizer.h"
#include "runtime/kv_stats.h"
#include "runtime/session.h"
#include "runtime/tokenizer.h"
#include "test_support.h"

namespace wkvq {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kSeed = 20240611u;

std::vector<int> random_tokens(int vocab, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  std::vector<int> t(n);
  for (int& x : t) x = tok(rng);
  return t;
}

// The model `quantize --method rtn` produces: W4 RTN, KV4 head_dim groups with POQ, statistics
// smoothing (from a seeded random token stream here, so the test does not depend on a text).
Model rtn_model(const Model& fp, int64_t group) {
  WeightQuantOptions o;
  o.bits = 4;
  o.group = group;
  Model q = quantize_weights_rtn(fp, o);
  CalibWindows w;
  w.ctx = std::min<int64_t>(128, fp.config.seq_len);
  w.max_windows = 4;
  q.kv_smoothing = smoothing_from_stats(
      collect_kv_stats(fp, random_tokens(fp.config.vocab_size, 512, kSeed), w));
  q.quant.kv = {4, 0, true, KvSmoothMode::Stats};
  return q;
}

std::vector<float> logits(const Model& m, const std::vector<int>& tokens, int kvbits) {
  KvQuantSettings kv;
  kv.bits = kvbits;
  Session s(m, static_cast<int64_t>(tokens.size()), kv, &m.kv_smoothing);
  std::vector<float> out(tokens.size() * static_cast<size_t>(m.config.vocab_size));
  s.forward_all(tokens.data(), static_cast<int64_t>(tokens.size()), out.data());
  return out;
}

int64_t dir_bytes(const std::string& dir) {
  int64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) n += static_cast<int64_t>(e.file_size());
  }
  return n;
}

void check_round_trip(const std::string& model_path, const std::string& tokenizer, int64_t group,
                      const std::string& name) {
  const Model fp = load_model(model_path);
  const Model q = rtn_model(fp, group);
  test::TempDir tmp("quantize_golden");
  const std::string dir = tmp.path(name);
  save_quantized_model(q, dir, tokenizer);
  ASSERT_TRUE(is_quantized_model_dir(dir));
  const std::string tok_copy = find_tokenizer_beside(dir, fp.config.vocab_size);
  EXPECT_EQ(fs::file_size(tok_copy), fs::file_size(tokenizer));
  const Model loaded = load_model(dir);
  EXPECT_EQ(loaded.weight_bytes(), q.weight_bytes());
  EXPECT_EQ(loaded.quant.kv.smooth, KvSmoothMode::Stats);

  const std::vector<int> tokens = random_tokens(fp.config.vocab_size, 64, kSeed + 1u);
  for (const int kvbits : {32, 4}) {
    const std::vector<float> want = logits(q, tokens, kvbits);
    const std::vector<float> got = logits(loaded, tokens, kvbits);
    float max_abs = 0.0f, max_diff = 0.0f;
    for (size_t i = 0; i < want.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(want[i]));
      max_diff = std::max(max_diff, std::fabs(want[i] - got[i]));
    }
    if (fp.config.rope_layout == RopeLayout::RotateHalf) {
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << name << " KV" << kvbits << ": max diff " << max_diff;
    } else {
      // Only the summation order of q.k changed (see quantized_model_io_test.cpp): a few ulps
      // per score, carried through the layers. Budget 4 * head_dim * n_layers ulps of the
      // largest logit.
      const float tol = 4.0f * static_cast<float>(fp.config.head_dim * fp.config.n_layers) *
                        std::numeric_limits<float>::epsilon() * std::max(max_abs, 1.0f);
      EXPECT_LE(max_diff, tol) << name << " KV" << kvbits << ", largest logit " << max_abs;
    }
    std::printf("[ info     ] %s KV%d: max |logit diff| %.3g (largest logit %.3g)\n", name.c_str(),
                kvbits, static_cast<double>(max_diff), static_cast<double>(max_abs));
  }
  const auto src_bytes = static_cast<double>(
      fs::is_directory(model_path) ? dir_bytes(model_path) : fs::file_size(model_path));
  std::printf(
      "[ info     ] %s: float %.0f bytes on disk (weights %lld) -> quantized directory "
      "%lld bytes (model.safetensors %lld, weights %lld)\n",
      name.c_str(), src_bytes, static_cast<long long>(fp.weight_bytes()),
      static_cast<long long>(dir_bytes(dir)),
      static_cast<long long>(fs::file_size(dir + "/model.safetensors")),
      static_cast<long long>(q.weight_bytes()));
}

TEST(QuantizeGolden, Stories260KRoundTrips) {
  WKVQ_REQUIRE_SHARED(path, "models/stories260K/stories260K.bin");
  WKVQ_REQUIRE_SHARED(tok, "models/stories260K/tok512.bin");
  check_round_trip(path, tok, 32, "stories260K");
}

TEST(QuantizeGolden, Ref6mRoundTrips) {
  WKVQ_REQUIRE_SHARED(path, "models/wkvq-ref-6m");
  WKVQ_REQUIRE_SHARED(tok, "models/wkvq-ref-6m/tokenizer.model");
  check_round_trip(path, tok, 128, "wkvq-ref-6m");
}

}  // namespace
}  // namespace wkvq
