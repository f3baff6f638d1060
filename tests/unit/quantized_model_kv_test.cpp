// The KV cache settings a quantized model directory records (model/quantized_model_io.h): the
// fp16 window, the values' own bits, and rel8 group metadata with its static ranges, in both
// directory layouts.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "core/error.h"
#include "model/quantized_model_io.h"
#include "runtime/session.h"
#include "unit/quantized_model_fixture.h"

namespace wkvq {
namespace {

using namespace qmtest;  // NOLINT(google-build-using-namespace): test helpers
using nlohmann::json;
using test::read_file;

// The fp16 window of the KV cache and the values' own bits are part of the KV settings a
// directory records.
TEST(QuantizedModelIo, KvWindowRoundTrips) {
  Model m = quantized_model(small_config(100, RopeLayout::RotateHalf, false), 4, 32, "", true,
                            base_seed());
  m.quant.kv.window = 16;
  m.quant.kv.vbits = 2;
  TempDir tmp;
  save_quantized_model(m, tmp.path("q"), "");
  const json cfg = json::parse(read_file(tmp.path("q") + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["kv_window"], 16);
  EXPECT_EQ(cfg["quantization_config"]["kv_value_bits"], 2);
  const Model back = load_quantized_model(tmp.path("q"));
  EXPECT_EQ(back.quant.kv.window, 16);
  EXPECT_EQ(back.quant.kv.value_bits(), 2);
  EXPECT_EQ(back.quant.kv.key_bits(), m.quant.kv.bits);
}

// rel8 metadata: the static group ranges travel with the directory (config.json kv_meta, four
// tensors per layer; in the GPTQ layout in wkvq_kv.safetensors beside the smoothing), with and
// without smoothing; the reloaded model decodes (teacher-forced: every past position read from the
// cache) as with the original smoothing and ranges, and not as with fp16 metadata.
TEST(QuantizedModelIo, KvRel8RangesRoundTrip) {
  const auto decode_logits = [](const Model& m, const std::vector<int>& toks, bool rel8) {
    KvQuantSettings kv = m.quant.kv;
    kv.rel8 = rel8;
    Session session(m, static_cast<int64_t>(toks.size()), kv, &m.kv_smoothing);
    session.cache().set_chunk_attention(ChunkAttention::TeacherForced);
    std::vector<float> logits(toks.size() * static_cast<size_t>(m.config.vocab_size));
    session.forward_all(toks.data(), static_cast<int64_t>(toks.size()), logits.data());
    return logits;
  };
  for (const QuantizedDirFormat format : {QuantizedDirFormat::kWkvq, QuantizedDirFormat::kGptq}) {
    for (const bool smooth : {true, false}) {
      SCOPED_TRACE(::testing::Message()
                   << "gptq " << (format == QuantizedDirFormat::kGptq) << " smooth " << smooth);
      const LlamaConfig c = small_config(128, RopeLayout::RotateHalf, false);  // GPTQ: 8 | dims
      Model m = quantized_model(c, 4, 32, "", smooth, base_seed());
      if (!smooth) m.kv_smoothing = KvSmoothing::identity(c.n_layers, c.kv_dim());
      m.quant.kv.rel8 = true;
      m.quant.kv.group = 8;
      KvGroupRanges r;
      r.n_layers = c.n_layers;
      r.group = 8;
      r.n_groups = c.kv_dim() / 8;
      std::mt19937 rng(base_seed() + 7u);
      std::uniform_real_distribution<float> lo(-3.0f, -1.0f), hi(1.0f, 3.0f);
      for (auto* v : {&r.klo, &r.vlo}) {
        for (int64_t i = 0; i < r.n_layers * r.n_groups; ++i) v->push_back(lo(rng));
      }
      for (auto* v : {&r.khi, &r.vhi}) {
        for (int64_t i = 0; i < r.n_layers * r.n_groups; ++i) v->push_back(hi(rng));
      }
      m.kv_smoothing.set_ranges(r, "test");
      TempDir tmp;
      save_quantized_model(m, tmp.path("q"), "", format);
      const json cfg = json::parse(read_file(tmp.path("q") + "/config.json"));
      const json& qc =
          format == QuantizedDirFormat::kGptq ? cfg["wkvq"] : cfg["quantization_config"];
      EXPECT_EQ(qc["kv_meta"], "rel8");
      const Model back = load_quantized_model(tmp.path("q"));
      EXPECT_TRUE(back.quant.kv.rel8);
      ASSERT_TRUE(back.kv_smoothing.has_ranges());
      EXPECT_EQ(back.kv_smoothing.ranges.klo, r.klo);
      EXPECT_EQ(back.kv_smoothing.ranges.vhi, r.vhi);
      EXPECT_EQ(back.kv_smoothing.is_identity(), !smooth);
      const std::vector<int> toks = random_tokens(c.vocab_size, 12, base_seed());
      Model original_static = back;
      original_static.kv_smoothing = m.kv_smoothing;
      const std::vector<float> got = decode_logits(back, toks, true);
      EXPECT_EQ(got, decode_logits(original_static, toks, true));
      EXPECT_NE(got, decode_logits(back, toks, false));
    }
  }
  // A model that says rel8 but carries no ranges is refused on save.
  Model bad = quantized_model(small_config(100, RopeLayout::RotateHalf, false), 4, 32, "", true,
                              base_seed());
  bad.quant.kv.rel8 = true;
  TempDir tmp;
  EXPECT_THROW(save_quantized_model(bad, tmp.path("q"), ""), Error);
}

}  // namespace
}  // namespace wkvq
