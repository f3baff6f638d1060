// The quantized model directory (model/quantized_model_io.h): small random models, RTN-quantized
// at 2, 4 and 8 bits (padded shapes, keep-float linears, tied and untied heads, KV smoothing),
// saved and loaded back hold exactly the same weights and give the same logits: bit-identical for
// a rotate-half source, within a derived tolerance for an interleaved one (its q/k rows are
// permuted on save). Also the GPTQ layout at 2 and 8 bits (formats/gptq.h).
#include "model/quantized_model_io.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/gptq.h"
#include "io/safetensors.h"
#include "model/loader.h"
#include "model/output_head.h"
#include "unit/quantized_model_fixture.h"

namespace wkvq {
namespace {

using namespace qmtest;  // NOLINT(google-build-using-namespace): test helpers
using nlohmann::json;

using test::read_file;

void expect_same_matrix(const QuantizedMatrix& want, const QuantizedMatrix& got) {
  EXPECT_EQ(got.rows, want.rows);
  EXPECT_EQ(got.cols, want.cols);
  EXPECT_EQ(got.bits, want.bits);
  EXPECT_EQ(got.group, want.group);
  EXPECT_EQ(got.n_groups, want.n_groups);
  EXPECT_TRUE(got.codes == want.codes);
  EXPECT_TRUE(got.scales == want.scales);
  EXPECT_TRUE(got.zeros == want.zeros);
}

void expect_same_floats(const float* want, const float* got, int64_t n, const std::string& what) {
  ASSERT_NE(got, nullptr) << what;
  EXPECT_EQ(std::memcmp(want, got, static_cast<size_t>(n) * sizeof(float)), 0) << what;
}

// x[order[i]] == y[i] for i < n (order null: the identity); both null is equal too.
void expect_permuted(const float* x, const float* y, int64_t n, const std::vector<int64_t>* order,
                     const std::string& what) {
  ASSERT_EQ(x == nullptr, y == nullptr) << what;
  for (int64_t i = 0; x != nullptr && i < n; ++i) {
    EXPECT_EQ(y[i], x[order ? (*order)[static_cast<size_t>(i)] : i]) << what << "[" << i << "]";
  }
}

// Biases and q/k norms, rows permuted like their linears (q/k norms within one head).
void expect_same_extras(const LayerWeights& la, const LayerWeights& lb, const LlamaConfig& c,
                        const std::vector<int64_t>* q_order, const std::vector<int64_t>* k_order) {
  const std::vector<int64_t>* orders[4] = {q_order, k_order, nullptr, nullptr};
  for (int i = 0; i < 4; ++i) {
    const Linear &x = linear_by_index(la, i), &y = linear_by_index(lb, i);
    expect_permuted(x.bias, y.bias, x.out, orders[i], std::string(kLinearNames[i]) + " bias");
  }
  const std::vector<int64_t> head = rotate_half_row_order(1, c.head_dim);
  const std::vector<int64_t>* h = q_order != nullptr ? &head : nullptr;
  expect_permuted(la.q_norm, lb.q_norm, c.head_dim, h, "q_norm");
  expect_permuted(la.k_norm, lb.k_norm, c.head_dim, h, "k_norm");
}

// `loaded` holds exactly the weights of `orig`; when orig uses the interleaved RoPE layout, its
// q/k rows (and K smoothing channels) in rotate-half order.
void expect_same_model(const Model& orig, const Model& loaded) {
  const LlamaConfig &a = orig.config, &b = loaded.config;
  EXPECT_EQ(b.rope_layout, RopeLayout::RotateHalf);
  EXPECT_EQ(std::tie(a.dim, a.hidden_dim, a.n_layers, a.n_heads, a.n_kv_heads, a.head_dim,
                     a.vocab_size, a.seq_len, a.tied_output, a.bos_id, a.eos_id),
            std::tie(b.dim, b.hidden_dim, b.n_layers, b.n_heads, b.n_kv_heads, b.head_dim,
                     b.vocab_size, b.seq_len, b.tied_output, b.bos_id, b.eos_id));
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(std::tie(a.architecture, a.qkv_bias, a.o_bias, a.qk_norm),
            std::tie(b.architecture, b.qkv_bias, b.o_bias, b.qk_norm));
  const RopeScaling &ra = a.rope_scaling, &rb = b.rope_scaling;
  EXPECT_EQ(std::tie(ra.kind, ra.factor, ra.low_freq_factor, ra.high_freq_factor,
                     ra.original_max_position),
            std::tie(rb.kind, rb.factor, rb.low_freq_factor, rb.high_freq_factor,
                     rb.original_max_position));
  const QuantizationInfo &qa = orig.quant, &qb = loaded.quant;
  EXPECT_EQ(std::tie(qa.method, qa.wbits, qa.wgroup), std::tie(qb.method, qb.wbits, qb.wgroup));
  EXPECT_EQ(qa.kv, qb.kv);

  const bool permuted = a.rope_layout == RopeLayout::Interleaved;
  const std::vector<int64_t> q_order = rotate_half_row_order(a.n_heads, a.head_dim);
  const std::vector<int64_t> k_order = rotate_half_row_order(a.n_kv_heads, a.head_dim);
  const int64_t dim = a.dim, vocab = a.vocab_size;
  expect_same_floats(orig.tok_embeddings, loaded.tok_embeddings, vocab * dim, "embeddings");
  expect_same_floats(orig.final_norm, loaded.final_norm, dim, "final norm");
  ASSERT_EQ(loaded.layers.size(), orig.layers.size());
  for (int l = 0; l < a.n_layers; ++l) {
    const LayerWeights &la = orig.layers[static_cast<size_t>(l)],
                       &lb = loaded.layers[static_cast<size_t>(l)];
    expect_same_floats(la.attn_norm, lb.attn_norm, dim, "attn norm");
    expect_same_floats(la.ffn_norm, lb.ffn_norm, dim, "ffn norm");
    expect_same_extras(la, lb, a, permuted ? &q_order : nullptr, permuted ? &k_order : nullptr);
    for (int i = 0; i < 7; ++i) {
      SCOPED_TRACE(::testing::Message() << "layer " << l << " " << kLinearNames[i]);
      const Linear &x = linear_by_index(la, i), &y = linear_by_index(lb, i);
      ASSERT_EQ(x.out, y.out);
      ASSERT_EQ(x.in, y.in);
      const std::vector<int64_t>* order = permuted && i == 0   ? &q_order
                                          : permuted && i == 1 ? &k_order
                                                               : nullptr;
      if (x.quantized()) {
        ASSERT_TRUE(y.quantized());
        EXPECT_EQ(y.w, nullptr);
        expect_same_matrix(order ? permute_rows(*x.q, *order) : *x.q, *y.q);
      } else {
        ASSERT_FALSE(y.quantized());
        for (int64_t r = 0; r < x.out; ++r) {
          const int64_t src = order ? (*order)[static_cast<size_t>(r)] : r;
          expect_same_floats(x.w + src * x.in, y.w + r * y.in, x.in, "float row");
        }
      }
    }
  }
  if (a.tied_output) {
    EXPECT_EQ(loaded.output.w, loaded.tok_embeddings);
  } else if (orig.output.w16 != nullptr) {
    ASSERT_NE(loaded.output.w16, nullptr) << "an fp16 head loads as fp16";
    EXPECT_EQ(loaded.output.w, nullptr);
    EXPECT_EQ(std::memcmp(orig.output.w16, loaded.output.w16,
                          static_cast<size_t>(vocab * dim) * sizeof(uint16_t)),
              0);
  } else {
    expect_same_floats(orig.output.w, loaded.output.w, vocab * dim, "lm_head");
  }
  const KvSmoothing &sa = orig.kv_smoothing, &sb = loaded.kv_smoothing;
  ASSERT_EQ(sb.n_layers, sa.n_layers);
  if (sa.n_layers == 0) return;
  ASSERT_EQ(sb.kv_dim, sa.kv_dim);
  for (size_t i = 0; i < sa.dk.size(); ++i) {
    const size_t layer0 = i / static_cast<size_t>(sa.kv_dim) * static_cast<size_t>(sa.kv_dim);
    const size_t src =
        permuted ? layer0 + static_cast<size_t>(k_order[i - layer0]) : i;  // K channels permute
    EXPECT_EQ(sb.dk[i], sa.dk[src]);
    EXPECT_EQ(sb.sk[i], sa.sk[src]);
    EXPECT_EQ(sb.dv[i], sa.dv[i]);
    EXPECT_EQ(sb.sv[i], sa.sv[i]);
  }
}

struct RoundTripCase {
  const char* name;
  int hidden;
  RopeLayout layout;
  bool tied;
  int bits;
  int64_t group;
  const char* keep_float;
  bool smooth;
  bool f16_head = false;
  int arch = 0;  // with_arch (quantized_model_fixture.h)
};

void PrintTo(const RoundTripCase& c, std::ostream* os) { *os << c.name; }

class QuantizedModelRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(QuantizedModelRoundTrip, SameWeightsAndLogits) {
  const RoundTripCase& p = GetParam();
  const uint32_t seed = base_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (WKVQ_TEST_SEED)");
  Model orig = quantized_model(with_arch(small_config(p.hidden, p.layout, p.tied), p.arch), p.bits,
                               p.group, p.keep_float, p.smooth, seed);
  if (p.f16_head) store_output_head(orig, HeadStorage::F16);
  TempDir tmp;
  const std::string dir = tmp.path("q");
  save_quantized_model(orig, dir, "");
  ASSERT_TRUE(is_quantized_model_dir(dir));
  const Model loaded = load_model(dir);  // through the loader's hook
  EXPECT_EQ(loaded.source, dir);
  expect_same_model(orig, loaded);
  EXPECT_EQ(loaded.weight_bytes(), orig.weight_bytes());

  const std::vector<int> tokens = random_tokens(orig.config.vocab_size, 24, seed + 7u);
  KvQuantSettings kv4;
  kv4.bits = 4;
  for (const KvQuantSettings& kv : {KvQuantSettings{}, kv4}) {
    SCOPED_TRACE(::testing::Message() << "KV bits " << kv.bits);
    const std::vector<float> want = session_logits(orig, tokens, kv);
    const std::vector<float> got = session_logits(loaded, tokens, kv);
    ASSERT_EQ(want.size(), got.size());
    if (p.layout == RopeLayout::RotateHalf) {
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << "a rotate-half model must load bit-identical";
      continue;
    }
    // Interleaved source: after the permutation each score q.k sums the same products in another
    // order, which moves it by at most ~head_dim * eps * sum|q_i k_i| (a reordered sum); the
    // scores' magnitudes here are O(1-10), so each differs by a few ulps of 10, and the layers
    // above carry that forward. Budget: 4 * head_dim * n_layers ulps of the largest logit
    // (observed: 1-2 ulps).
    // A KV code that flips on a rounding boundary would exceed it: the quantizer sees exactly
    // the same K values (the same set, permuted within whole-head groups), so none may flip.
    float max_abs = 0.0f, max_diff = 0.0f;
    for (size_t i = 0; i < want.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(want[i]));
      max_diff = std::max(max_diff, std::fabs(want[i] - got[i]));
    }
    const float tol = 4.0f * static_cast<float>(orig.config.head_dim * orig.config.n_layers) *
                      std::numeric_limits<float>::epsilon() * std::max(max_abs, 1.0f);
    EXPECT_LE(max_diff, tol) << "largest logit " << max_abs;
    std::printf("[ info     ] %s KV%d: max |logit diff| %.3g (budget %.3g, largest logit %.3g)\n",
                p.name, kv.bits, static_cast<double>(max_diff), static_cast<double>(tol),
                static_cast<double>(max_abs));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, QuantizedModelRoundTrip,
    ::testing::Values(
        RoundTripCase{"w4_g32", 96, RopeLayout::RotateHalf, true, 4, 32, "", true},
        RoundTripCase{"w4_g32_padded_untied", 100, RopeLayout::RotateHalf, false, 4, 32, "", true},
        RoundTripCase{"w4_g128_one_group_per_row", 96, RopeLayout::RotateHalf, true, 4, 128, "",
                      false},
        RoundTripCase{"w8_g0_keep_w_down", 100, RopeLayout::RotateHalf, true, 8, 0, "1.w_down",
                      true},
        RoundTripCase{"w2_g16_keep_some", 96, RopeLayout::RotateHalf, false, 2, 16, "0.wq,w_up",
                      true},
        RoundTripCase{"w4_g32_interleaved", 96, RopeLayout::Interleaved, true, 4, 32, "", true},
        RoundTripCase{"w4_g32_interleaved_keep_wk_padded", 100, RopeLayout::Interleaved, false, 4,
                      32, "1.wk", true},
        RoundTripCase{"w4_g32_f16_head_was_tied", 96, RopeLayout::RotateHalf, true, 4, 32, "", true,
                      true},
        RoundTripCase{"w4_g128_f16_head_untied", 96, RopeLayout::RotateHalf, false, 4, 128, "",
                      false, true},
        RoundTripCase{"qwen2_biases", 96, RopeLayout::RotateHalf, false, 4, 32, "1.wk", true, false,
                      1},
        RoundTripCase{"qwen3_qk_norm_head_dim_32", 96, RopeLayout::RotateHalf, true, 4, 32, "",
                      true, false, 2},
        RoundTripCase{"llama3_rope_biases", 96, RopeLayout::RotateHalf, false, 4, 32, "", false,
                      true, 3},
        RoundTripCase{"qwen2_biases_interleaved", 96, RopeLayout::Interleaved, false, 4, 32, "",
                      true, false, 1},
        RoundTripCase{"qwen3_qk_norm_interleaved", 96, RopeLayout::Interleaved, true, 4, 32, "",
                      true, false, 2}),
    [](const ::testing::TestParamInfo<RoundTripCase>& i) { return std::string(i.param.name); });

TEST(QuantizedModelIo, WritesTheDocumentedLayout) {
  const Model m = quantized_model(small_config(100, RopeLayout::RotateHalf, false), 4, 32,
                                  "1.w_down", true, base_seed());
  TempDir tmp;
  const std::string dir = tmp.path("q");
  save_quantized_model(m, dir, "");
  const json cfg = json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(cfg["model_type"], "llama");
  EXPECT_EQ(cfg["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(cfg["hidden_size"], 64);
  EXPECT_EQ(cfg["intermediate_size"], 100);
  EXPECT_EQ(cfg["num_key_value_heads"], 2);
  EXPECT_EQ(cfg["head_dim"], 16);
  EXPECT_EQ(cfg["rms_norm_eps"], 1e-5);  // shortest decimal of the float
  EXPECT_EQ(cfg["tie_word_embeddings"], false);
  const json& qc = cfg["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "wkvq");
  EXPECT_EQ(qc["format_version"], kQuantizedFormatVersion);
  EXPECT_EQ(qc["method"], "rtn");
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["group_size"], 32);
  EXPECT_EQ(qc["zero_point"], "exact");
  EXPECT_EQ(qc["desc_act"], false);
  EXPECT_EQ(qc["kv_bits"], 4);
  EXPECT_EQ(qc["kv_smooth"], "stats");
  EXPECT_FALSE(qc.contains("kv_window"));      // written only for a window (older readers: none)
  EXPECT_FALSE(qc.contains("kv_value_bits"));  // only when the values have other bits
  EXPECT_EQ(qc["keep_float"], json::array({"1.w_down"}));
  EXPECT_EQ(qc["padding"]["values_per_int32"], 8);
  // down_proj (in 100) and gate/up (out 100) are padded to 104; down_proj of layer 0 is quantized.
  EXPECT_EQ(qc["padding"]["linears"].size(), 3u) << qc["padding"].dump();

  const SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  auto expect = [&](const std::string& name, DType d, std::vector<int64_t> shape) {
    const TensorInfo* t = f.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dtype, d) << name;
    EXPECT_EQ(t->shape, shape) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % dtype_size(d), 0u) << name << " misaligned";
  };
  expect("model.embed_tokens.weight", DType::F32, {96, 64});
  expect("lm_head.weight", DType::F32, {96, 64});
  expect("model.norm.weight", DType::F32, {64});
  expect("model.layers.0.mlp.down_proj.qweight", DType::I32, {13, 64});
  expect("model.layers.0.mlp.down_proj.qzeros", DType::I32, {4, 8});
  expect("model.layers.0.mlp.down_proj.scales", DType::F16, {4, 64});
  expect("model.layers.0.mlp.down_proj.g_idx", DType::I32, {100});
  expect("model.layers.0.mlp.gate_proj.qzeros", DType::I32, {2, 13});
  expect("model.layers.1.mlp.down_proj.weight", DType::F32, {64, 100});
  expect("model.layers.1.self_attn.kv_smoothing.k_scale", DType::F32, {32});
  EXPECT_EQ(f.find("model.layers.1.mlp.down_proj.qweight"), nullptr);
}

TEST(QuantizedModelIo, SavingTheLoadedModelGivesTheSameFiles) {
  for (const RopeLayout layout : {RopeLayout::RotateHalf, RopeLayout::Interleaved}) {
    const Model m =
        quantized_model(small_config(100, layout, true), 4, 32, "0.wq", true, base_seed() + 3u);
    TempDir tmp;
    save_quantized_model(m, tmp.path("a"), "");
    save_quantized_model(load_quantized_model(tmp.path("a")), tmp.path("b"), "");
    for (const char* f : {"/config.json", "/model.safetensors"}) {
      EXPECT_TRUE(read_file(tmp.path("a") + f) == read_file(tmp.path("b") + f)) << f;
    }
  }
}

TEST(QuantizedModelIo, OverwritesOnlyQuantizedModelDirectories) {
  const Model m = quantized_model(small_config(96, RopeLayout::RotateHalf, true), 4, 32, "", false,
                                  base_seed());
  TempDir tmp;
  const std::string dir = tmp.path("q");
  save_quantized_model(m, dir, "");
  save_quantized_model(m, dir, "");  // again: an earlier quantized model is replaced
  EXPECT_TRUE(is_quantized_model_dir(dir));
  // A float model directory (config.json without quantization_config) is never overwritten.
  const std::string other = tmp.path("float");
  fs::create_directories(other);
  std::ofstream(other + "/config.json") << R"({"model_type": "llama"})";
  EXPECT_FALSE(is_quantized_model_dir(other));
  try {
    save_quantized_model(m, other, "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a wkvq quantized model"), std::string::npos)
        << e.what();
  }
  std::ofstream(tmp.path("notes.txt")) << "x";
  EXPECT_THROW(save_quantized_model(m, tmp.path(""), ""), Error);  // holds unrelated files
  EXPECT_FALSE(is_quantized_model_dir(tmp.path("missing")));
}

TEST(QuantizedModelIo, CopiesTheTokenizer) {
  const Model m =
      quantized_model(small_config(96, RopeLayout::RotateHalf, true), 8, 0, "", false, base_seed());
  TempDir tmp;
  std::ofstream(tmp.path("tok96.bin"), std::ios::binary) << "bpe";
  std::ofstream(tmp.path("sp.model"), std::ios::binary) << "sp";
  save_quantized_model(m, tmp.path("q"), tmp.path("tok96.bin"));
  EXPECT_EQ(read_file(tmp.path("q") + "/tokenizer.bin"), "bpe");
  save_quantized_model(m, tmp.path("q"), tmp.path("sp.model"));
  EXPECT_EQ(read_file(tmp.path("q") + "/tokenizer.model"), "sp");
  EXPECT_FALSE(fs::exists(tmp.path("q") + "/tokenizer.bin"));  // the stale one is gone
  EXPECT_THROW(save_quantized_model(m, tmp.path("q2"), tmp.path("none.model")), Error);
}

TEST(QuantizedModelIo, RefusesThreeBitWeights) {
  const Model m = quantized_model(small_config(96, RopeLayout::RotateHalf, true), 3, 32, "", false,
                                  base_seed());
  TempDir tmp;
  try {
    save_quantized_model(m, tmp.path("q"), "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("saving 3-bit weights is not supported"),
              std::string::npos)
        << e.what();
  }
}

TEST(QuantizedModelIo, RotateHalfRowOrderIsTheRopeLayoutChange) {
  const std::vector<int64_t> o = rotate_half_row_order(2, 4);
  EXPECT_EQ(o, (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
}

// ---- GPTQ layout at 2 and 8 bits ----

TEST(GptqBits, RoundTripsAtTwoFourAndEightBits) {
  std::mt19937 rng(base_seed() + 11u);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const int bits : {2, 4, 8}) {
    for (const int64_t in : {int64_t{5}, int64_t{16}, int64_t{37}, int64_t{100}}) {
      for (const int64_t out : {int64_t{1}, int64_t{3}, int64_t{16}, int64_t{21}}) {
        SCOPED_TRACE(::testing::Message() << "bits " << bits << " in " << in << " out " << out);
        std::vector<float> w(static_cast<size_t>(in * out));
        for (float& x : w) x = u(rng);
        const QuantizedMatrix m = quantize_weights_ref(w.data(), out, in, bits, 16);
        const GptqTensors t = to_gptq(m, GptqZeros::kAsIs, bits);
        const int64_t p = 32 / bits;
        EXPECT_EQ(t.qweight.size(), static_cast<size_t>((in + p - 1) / p * out));
        EXPECT_EQ(t.qzeros.size(), static_cast<size_t>(m.n_groups * ((out + p - 1) / p)));
        expect_same_matrix(m, from_gptq(t, GptqZeros::kAsIs));
      }
    }
  }
}

TEST(GptqBits, TwoBitFieldsSitLowestFirst) {
  QuantizedMatrix m = make_quantized_matrix(3, 20, 2, 0);  // out 3, in 20: 16 codes per int32
  std::vector<uint8_t> row(20);
  for (int64_t o = 0; o < 3; ++o) {
    for (int64_t i = 0; i < 20; ++i)
      row[static_cast<size_t>(i)] = static_cast<uint8_t>((o + i) % 4);
    pack_row_codes_ref(row.data(), 20, 2, m.codes.data() + o * m.row_bytes);
    m.zeros[static_cast<size_t>(o)] = static_cast<uint8_t>(o + 1);
    m.scales[static_cast<size_t>(o)] = f32_to_fp16(0.5f);
  }
  const GptqTensors t = to_gptq(m, GptqZeros::kAsIs, 2);
  ASSERT_EQ(t.qweight.size(), 6u);  // (2, 3)
  for (int64_t o = 0; o < 3; ++o) {
    for (int64_t i = 0; i < 20; ++i) {
      const auto word = static_cast<uint32_t>(t.qweight[static_cast<size_t>((i / 16) * 3 + o)]);
      EXPECT_EQ((word >> (2 * (i % 16))) & 3u, static_cast<uint32_t>((o + i) % 4));
    }
  }
  EXPECT_EQ(static_cast<uint32_t>(t.qzeros[0]), 1u | 2u << 2 | 3u << 4);  // exact zero points
}

TEST(GptqBits, RejectsThreeBitsMismatchesAndDirtyPadding) {
  const QuantizedMatrix m3 = make_quantized_matrix(4, 8, 3, 0);
  EXPECT_THROW(to_gptq(m3, GptqZeros::kAsIs, 3), Error);
  const QuantizedMatrix m8 = make_quantized_matrix(5, 6, 8, 0);
  EXPECT_THROW(to_gptq(m8, GptqZeros::kAsIs), Error);  // the default asks for 4 bits
  GptqTensors t = to_gptq(m8, GptqZeros::kAsIs, 8);
  t.qweight[t.qweight.size() - 1] = 1 << 24;  // column 7 of a 6-column matrix
  EXPECT_THROW(from_gptq(t, GptqZeros::kAsIs), Error);
  t = to_gptq(m8, GptqZeros::kAsIs, 8);
  t.qzeros[1] = 1 << 8;  // zero point of row 5 of a 5-row matrix
  EXPECT_THROW(from_gptq(t, GptqZeros::kAsIs), Error);
  t = to_gptq(m8, GptqZeros::kAsIs, 8);
  t.qzeros[0] = 0xFF;  // v1: stored 255 = zero point 256
  EXPECT_THROW(from_gptq(t, GptqZeros::kMinusOne), Error);
}

}  // namespace
}  // namespace wkvq
