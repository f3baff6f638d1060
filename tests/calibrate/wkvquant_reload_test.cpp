// `quantize --method wkvquant` in process for each architecture family: a short CRR calibration
// (calibrate_crr) of a random model with the family's features, applied (apply_calibration),
// written as a quantized model directory and loaded back, gives bit-identical logits to the
// calibrated model in memory, in prefill and decode with the learned int4 KV cache; the biases and
// q/k norms come through calibration and the directory unchanged (full-precision constants).
// The CLI path (the calibration worker, BF16 and F32 checkpoints) is
// tests/python/test_quantize_architectures.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "calib_fixture.h"
#include "calibrate/calibration_result.h"
#include "calibrate/crr.h"
#include "model/loader.h"
#include "model/quantized_model_io.h"
#include "model/weight_quantizer.h"
#include "runtime/session.h"
#include "test_support.h"

namespace wkvq {
namespace {

using test::Feature;

struct Family {
  const char* name;
  const char* architecture;
  Feature feature;
  bool tied;
};

void PrintTo(const Family& p, std::ostream* os) { *os << p.name; }

// Per position, the logits of `tokens`: one batched pass, or token by token through the cache.
std::vector<float> logits_of(const Model& m, const std::vector<int>& tokens, bool decode) {
  KvQuantSettings kv;
  kv.bits = m.quant.kv.bits;
  kv.poq = m.quant.kv.poq;
  const auto n = static_cast<int64_t>(tokens.size());
  const int vocab = m.config.vocab_size;
  Session s(m, n, kv, m.kv_smoothing.n_layers > 0 ? &m.kv_smoothing : nullptr);
  std::vector<float> out(static_cast<size_t>(n * vocab));
  if (!decode) {
    s.forward_all(tokens.data(), n, out.data());
    return out;
  }
  for (int64_t t = 0; t < n; ++t) {
    const float* l = s.decode(tokens[static_cast<size_t>(t)]);
    std::copy(l, l + vocab, out.begin() + t * vocab);
  }
  return out;
}

bool same_floats(const float* a, const float* b, int64_t n) {
  return a != nullptr && b != nullptr &&
         std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float)) == 0;
}

class WkvquantReload : public ::testing::TestWithParam<Family> {};

TEST_P(WkvquantReload, DirectoryGivesTheCalibratedModelsLogits) {
  const Family& f = GetParam();
  LlamaConfig c = test::with_feature(test::stories260k_config(), f.feature);
  c.n_layers = 2;
  c.rope_layout = RopeLayout::RotateHalf;  // a Hugging Face checkpoint's layout
  c.architecture = f.architecture;
  c.tied_output = f.tied;
  Model fp = test::make_test_model(c, 41);
  if (!f.tied) {  // an untied head: its own rows (a copy of the embeddings, shifted)
    float* head = fp.storage.allocate(static_cast<size_t>(c.vocab_size) * c.dim);
    for (int64_t i = 0; i < int64_t{c.vocab_size} * c.dim; ++i) {
      head[i] = 0.5f * fp.tok_embeddings[i] + 0.01f;
    }
    fp.output = Linear{c.vocab_size, c.dim, head, nullptr};
  }
  fp.config.validate("random " + std::string(f.name) + " model");

  CrrOptions opt;
  opt.epochs = 1;
  opt.samples = 2;
  opt.window = 80;  // beyond the llama3 scaling's original context (64)
  opt.wgroup = 32;
  opt.stats_windows = 2;
  const std::vector<int> calib = test::random_tokens(400, c.vocab_size, 5);
  const CalibrationResult r = calibrate_crr(fp, calib, opt);
  ASSERT_EQ(static_cast<int>(r.blocks.size()), c.n_layers);
  for (const BlockCalibration& b : r.blocks) {
    EXPECT_TRUE(std::isfinite(b.loss_before) && std::isfinite(b.loss_after));
    EXPECT_FALSE(b.smoothing.empty());
  }
  const Model q = apply_calibration(fp, r, opt.wbits, opt.wgroup);

  test::TempDir tmp("wkvquant_reload");
  const std::string dir = tmp.path(f.name);
  save_quantized_model(q, dir, "");
  const Model loaded = load_model(dir);
  EXPECT_EQ(loaded.config.architecture, c.architecture);
  EXPECT_EQ(loaded.quant.method, "wkvquant");
  EXPECT_EQ(loaded.quant.kv.smooth, KvSmoothMode::Learned);
  EXPECT_EQ(loaded.config.rope_scaling.kind, c.rope_scaling.kind);
  EXPECT_EQ(loaded.config.rope_scaling.factor, c.rope_scaling.factor);
  EXPECT_EQ(loaded.config.head_dim, c.head_dim);
  for (int l = 0; l < c.n_layers; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const LayerWeights &a = fp.layers[static_cast<size_t>(l)],
                       &b = q.layers[static_cast<size_t>(l)],
                       &d = loaded.layers[static_cast<size_t>(l)];
    for (int i = 0; i < 7; ++i) {
      const Linear &la = linear_by_index(a, i), &lb = linear_by_index(b, i),
                   &ld = linear_by_index(d, i);
      EXPECT_TRUE(lb.quantized() && ld.quantized()) << kLinearNames[i];
      if (la.bias == nullptr) {
        EXPECT_TRUE(lb.bias == nullptr && ld.bias == nullptr) << kLinearNames[i];
        continue;
      }
      EXPECT_TRUE(same_floats(la.bias, lb.bias, la.out)) << kLinearNames[i] << " bias, memory";
      EXPECT_TRUE(same_floats(la.bias, ld.bias, la.out)) << kLinearNames[i] << " bias, directory";
    }
    EXPECT_EQ(a.q_norm != nullptr, c.qk_norm);
    if (c.qk_norm) {
      EXPECT_TRUE(same_floats(a.q_norm, b.q_norm, c.head_dim) &&
                  same_floats(a.q_norm, d.q_norm, c.head_dim));
      EXPECT_TRUE(same_floats(a.k_norm, b.k_norm, c.head_dim) &&
                  same_floats(a.k_norm, d.k_norm, c.head_dim));
    }
  }

  const std::vector<int> tokens = test::random_tokens(96, c.vocab_size, 9);
  for (const bool decode : {false, true}) {
    SCOPED_TRACE(decode ? "decode" : "prefill");
    const std::vector<float> want = logits_of(q, tokens, decode);
    const std::vector<float> got = logits_of(loaded, tokens, decode);
    ASSERT_EQ(want.size(), got.size());
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
        << "the directory must reload bit-identical";
    for (const float v : got) ASSERT_TRUE(std::isfinite(v));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Families, WkvquantReload,
    ::testing::Values(Family{"llama3_tied", "LlamaForCausalLM", Feature::Llama3Rope, true},
                      Family{"llama_attention_bias", "LlamaForCausalLM", Feature::AttentionBias,
                             false},
                      Family{"qwen2", "Qwen2ForCausalLM", Feature::QkvBias, false},
                      Family{"qwen3", "Qwen3ForCausalLM", Feature::QkNorm, true},
                      Family{"mistral", "MistralForCausalLM", Feature::None, false}),
    [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace wkvq
