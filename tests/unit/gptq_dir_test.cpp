// The GPTQ-convention directory (QuantizedDirFormat::kGptq, model/quantized_model_io.h) and GPTQ
// act-order (formats/gptq.h): saved and loaded back, the quantized weights and smoothing are
// exactly the model's and a second save is byte-identical; the layout (dtypes, v1 zeros, the
// wkvq section, the separate smoothing file) is as documented; shapes without whole packing
// units or groups are refused naming the linear; a permuted g_idx reads back as the same
// function (Linear::in_order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/gptq.h"
#include "io/safetensors.h"
#include "model/linear.h"
#include "model/quantized_model_io.h"
#include "unit/quantized_model_fixture.h"

namespace wkvq {
namespace {

using namespace qmtest;  // NOLINT(google-build-using-namespace): test helpers
using nlohmann::json;

using test::read_file;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_same_quantized(const Linear& a, const Linear& b, const std::string& what) {
  ASSERT_EQ(a.q != nullptr, b.q != nullptr) << what;
  if (a.q == nullptr) return;
  EXPECT_EQ(a.q->codes, b.q->codes) << what;
  EXPECT_EQ(a.q->scales, b.q->scales) << what;
  EXPECT_EQ(a.q->zeros, b.q->zeros) << what;
}

TEST(GptqDir, SavesLoadsAndSavesAgainByteIdentical) {
  for (const RopeLayout layout : {RopeLayout::RotateHalf, RopeLayout::Interleaved}) {
    for (const bool smooth : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "interleaved " << (layout == RopeLayout::Interleaved)
                                        << " smooth " << smooth);
      const Model m =
          quantized_model(small_config(96, layout, false), 4, 32, "1.w_down", smooth, base_seed());
      TempDir tmp;
      save_quantized_model(m, tmp.path("a"), "", QuantizedDirFormat::kGptq);
      ASSERT_TRUE(is_quantized_model_dir(tmp.path("a")));
      const Model loaded = load_quantized_model(tmp.path("a"));
      EXPECT_EQ(loaded.quant.method, m.quant.method);
      EXPECT_EQ(loaded.quant.kv.bits, 4);
      EXPECT_EQ(loaded.quant.kv.smooth, m.quant.kv.smooth);
      EXPECT_EQ(loaded.kv_smoothing.n_layers, m.kv_smoothing.n_layers);
      if (layout == RopeLayout::RotateHalf) {
        for (int l = 0; l < m.config.n_layers; ++l) {
          for (int i = 0; i < 7; ++i) {
            expect_same_quantized(linear_by_index(m.layers[static_cast<size_t>(l)], i),
                                  linear_by_index(loaded.layers[static_cast<size_t>(l)], i),
                                  std::to_string(l) + "." + kLinearNames[i]);
          }
        }
        if (smooth) {
          EXPECT_EQ(loaded.kv_smoothing.dk, m.kv_smoothing.dk);
        }
      }
      save_quantized_model(loaded, tmp.path("b"), "", QuantizedDirFormat::kGptq);
      for (const char* f : {"/config.json", "/model.safetensors"}) {
        EXPECT_TRUE(read_file(tmp.path("a") + f) == read_file(tmp.path("b") + f)) << f;
      }
      EXPECT_EQ(std::filesystem::exists(tmp.path("a") + "/wkvq_kv.safetensors"), smooth);
      if (smooth) {
        EXPECT_TRUE(read_file(tmp.path("a") + "/wkvq_kv.safetensors") ==
                    read_file(tmp.path("b") + "/wkvq_kv.safetensors"));
      }
    }
  }
}

TEST(GptqDir, WritesTheConvention) {
  Model m = quantized_model(small_config(96, RopeLayout::RotateHalf, false), 4, 32, "1.w_down",
                            true, base_seed());
  TempDir tmp;
  save_quantized_model(m, tmp.path("q"), "", QuantizedDirFormat::kGptq);
  const json cfg = json::parse(read_file(tmp.path("q") + "/config.json"));
  const json& qc = cfg["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "gptq");
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["group_size"], 32);
  EXPECT_EQ(qc["desc_act"], false);
  EXPECT_EQ(qc["sym"], false);
  EXPECT_EQ(qc["lm_head"], false);
  EXPECT_TRUE(qc["dynamic"].contains("-:model\\.layers\\.1\\.mlp\\.down_proj$")) << qc.dump();
  EXPECT_EQ(cfg["torch_dtype"], "float16");
  EXPECT_EQ(cfg["wkvq"]["format_version"], kGptqDirFormatVersion);
  EXPECT_EQ(cfg["wkvq"]["kv_smooth"], "stats");
  EXPECT_EQ(cfg["wkvq"]["keep_float"], json::array({"1.w_down"}));
  EXPECT_TRUE(cfg["wkvq"]["checksums"].contains("wkvq_kv.safetensors"));
  bool zero0 = false;
  for (const LayerWeights& lw : m.layers) {
    for (int i = 0; i < 7; ++i) {
      const Linear& lin = linear_by_index(lw, i);
      if (lin.q) zero0 = zero0 || std::count(lin.q->zeros.begin(), lin.q->zeros.end(), 0) > 0;
    }
  }
  EXPECT_EQ(qc["checkpoint_format"], zero0 ? "gptq_v2" : "gptq");

  const SafetensorsFile f = SafetensorsFile::open(tmp.path("q") + "/model.safetensors");
  for (const auto& [name, t] : f.tensors()) {
    const bool packed = name.find("qweight") != std::string::npos ||
                        name.find("qzeros") != std::string::npos ||
                        name.find("g_idx") != std::string::npos;
    EXPECT_EQ(t.dtype, packed ? DType::I32 : DType::F16) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype), 0u) << name;
    EXPECT_EQ(name.find("kv_smoothing"), std::string::npos) << name;
  }
  const SafetensorsFile kv = SafetensorsFile::open(tmp.path("q") + "/wkvq_kv.safetensors");
  EXPECT_EQ(kv.tensors().size(), static_cast<size_t>(4 * m.config.n_layers));

  // A zero point 0 forces the v2 form.
  auto q0 = std::make_shared<QuantizedMatrix>(*m.layers[0].wq.q);
  q0->zeros[0] = 0;
  m.layers[0].wq.q = q0;
  save_quantized_model(m, tmp.path("v2"), "", QuantizedDirFormat::kGptq);
  const json cfg2 = json::parse(read_file(tmp.path("v2") + "/config.json"));
  EXPECT_EQ(cfg2["quantization_config"]["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(load_quantized_model(tmp.path("v2")).layers[0].wq.q->zeros, q0->zeros);
}

TEST(GptqDir, KeepsBf16FromABf16Source) {
  Model m = quantized_model(small_config(96, RopeLayout::RotateHalf, false), 4, 32, "0.wq", false,
                            base_seed());
  m.bf16_source = true;
  TempDir tmp;
  save_quantized_model(m, tmp.path("a"), "", QuantizedDirFormat::kGptq);
  const json cfg = json::parse(read_file(tmp.path("a") + "/config.json"));
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  {
    const SafetensorsFile f = SafetensorsFile::open(tmp.path("a") + "/model.safetensors");
    EXPECT_EQ(f.find("model.embed_tokens.weight")->dtype, DType::BF16);
    EXPECT_EQ(f.find("model.layers.0.self_attn.q_proj.weight")->dtype, DType::BF16);
    EXPECT_EQ(f.find("model.layers.0.self_attn.k_proj.scales")->dtype, DType::F16);
  }
  const Model back = load_quantized_model(tmp.path("a"));
  EXPECT_TRUE(back.bf16_source);
  save_quantized_model(back, tmp.path("b"), "", QuantizedDirFormat::kGptq);
  EXPECT_TRUE(read_file(tmp.path("a") + "/model.safetensors") ==
              read_file(tmp.path("b") + "/model.safetensors"));
}

TEST(GptqDir, WritesKeptFloatLinearsStoredInFp16) {
  Model m = quantized_model(small_config(96, RopeLayout::RotateHalf, true), 4, 32, "1.w_down",
                            false, base_seed());
  Linear& lin = linear_by_index(m.layers[1], 6);
  ASSERT_FALSE(lin.quantized());
  const auto n = static_cast<size_t>(lin.out * lin.in);
  uint16_t* h = m.storage.allocate_fp16(n);
  for (size_t i = 0; i < n; ++i) h[i] = f32_to_fp16(lin.w[i]);
  lin.w = nullptr;
  lin.w16 = h;
  TempDir tmp;
  for (const QuantizedDirFormat f : {QuantizedDirFormat::kWkvq, QuantizedDirFormat::kGptq}) {
    const std::string dir = tmp.path(f == QuantizedDirFormat::kGptq ? "g" : "w");
    save_quantized_model(m, dir, "", f);
    const Model back = load_quantized_model(dir);
    const Linear& b = linear_by_index(back.layers[1], 6);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(b.weight_f32(static_cast<int64_t>(i)), fp16_to_f32(h[i])) << i;
    }
  }
}

TEST(GptqDir, RefusesShapesTheConventionCannotHold) {
  TempDir tmp;
  const Model padded = quantized_model(small_config(100, RopeLayout::RotateHalf, true), 4, 32, "",
                                       false, base_seed());
  const std::string e1 =
      error_of([&] { save_quantized_model(padded, tmp.path("a"), "", QuantizedDirFormat::kGptq); });
  EXPECT_NE(e1.find("model.layers.0.mlp.gate_proj"), std::string::npos) << e1;
  EXPECT_NE(e1.find("no padding"), std::string::npos) << e1;
  const Model groups = quantized_model(small_config(96, RopeLayout::RotateHalf, true), 4, 48, "",
                                       false, base_seed());
  const std::string e2 =
      error_of([&] { save_quantized_model(groups, tmp.path("b"), "", QuantizedDirFormat::kGptq); });
  EXPECT_NE(e2.find("group_size 48"), std::string::npos) << e2;
  // wkvq's own layout still takes both.
  save_quantized_model(padded, tmp.path("c"), "");
  save_quantized_model(groups, tmp.path("d"), "");
}

// Bad GPTQ-convention directories: each error names the key, file or tensor.
TEST(GptqDir, BadDirectoriesAreRefusedNamingTheKey) {
  const Model m = quantized_model(small_config(96, RopeLayout::RotateHalf, false), 4, 32, "", true,
                                  base_seed());
  TempDir tmp;
  save_quantized_model(m, tmp.path("base"), "", QuantizedDirFormat::kGptq);
  int n = 0;
  auto expect = [&](const std::function<void(json&, const std::string&)>& edit,
                    std::initializer_list<const char*> parts) {
    const std::string dir = tmp.path("case" + std::to_string(n++));
    std::filesystem::copy(tmp.path("base"), dir, std::filesystem::copy_options::recursive);
    json j = json::parse(read_file(dir + "/config.json"));
    edit(j, dir);
    test::write_file(dir + "/config.json", j.dump(2));
    const std::string e = error_of([&] { (void)load_quantized_model(dir); });
    for (const char* p : parts) EXPECT_NE(e.find(p), std::string::npos) << p << " in: " << e;
  };
  expect([](json& j, const std::string&) { j["wkvq"]["format_version"] = 4; },
         {"wkvq.format_version", "newer wkvq"});
  expect([](json& j, const std::string&) { j["quantization_config"]["bits"] = 3; },
         {"quantization_config.bits"});
  expect([](json& j, const std::string&) { j["quantization_config"]["group_size"] = 24; },
         {"group_size 24", "qweight"});
  expect([](json& j, const std::string&) { j["wkvq"]["kv_bits"] = 5; }, {"wkvq.kv_bits"});
  expect(
      [](json& j, const std::string& dir) {
        (void)j;
        std::filesystem::remove(dir + "/wkvq_kv.safetensors");
      },
      {"wkvq_kv.safetensors"});
  expect(
      [](json& j, const std::string&) {  // a foreign checkpoint with per-module overrides
        j.erase("wkvq");
        j["quantization_config"]["dynamic"] = {{"+:.*q_proj", {{"bits", 8}}}};
      },
      {"quantization_config.dynamic"});
  expect(
      [](json& j, const std::string&) {  // foreign: an unknown packing
        j.erase("wkvq");
        j["quantization_config"]["checkpoint_format"] = "gptq_v3";
      },
      {"quantization_config.checkpoint_format"});
}

TEST(GptqActOrder, PermutedGroupsReadBackAsTheSameFunction) {
  std::mt19937 rng(base_seed() + 5u);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t out = 16, in = 64, group = 16;
  std::vector<float> w(static_cast<size_t>(out * in));
  for (float& x : w) x = u(rng);
  const QuantizedMatrix m = quantize_weights_ref(w.data(), out, in, 4, group);
  // Shuffle the input columns: column j of m is input column perm[j] of the checkpoint.
  std::vector<int32_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  GptqTensors s = to_gptq(m, GptqZeros::kAsIs, 4, perm);
  std::vector<int32_t> order;
  const QuantizedMatrix back = from_gptq(s, GptqZeros::kAsIs, &order);
  EXPECT_EQ(order.size(), static_cast<size_t>(in));
  EXPECT_EQ(to_gptq(back, GptqZeros::kAsIs, 4, order).qweight, s.qweight);  // writes it back
  EXPECT_THROW(from_gptq(s, GptqZeros::kAsIs), Error);  // no place for the order
  // The linear with in_order computes x . W^T with W the checkpoint's dense weights.
  Linear lin;
  lin.out = out;
  lin.in = in;
  lin.q = std::make_shared<const QuantizedMatrix>(back);
  lin.in_order = std::make_shared<const std::vector<int32_t>>(order);
  const std::vector<float> dense = lin.dense_f32();
  std::vector<float> x(static_cast<size_t>(2 * in)), y(static_cast<size_t>(2 * out));
  for (float& v : x) v = u(rng);
  lin.forward(x.data(), 2, y.data());
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t o = 0; o < out; ++o) {
      double want = 0.0, mag = 0.0;
      for (int64_t i = 0; i < in; ++i) {
        const double p = static_cast<double>(x[static_cast<size_t>(n * in + i)]) *
                         dense[static_cast<size_t>(o * in + i)];
        want += p;
        mag += std::abs(p);
      }
      // f32 sums of 64 products: |error| <= 64 * eps32 * sum|products|.
      EXPECT_NEAR(y[static_cast<size_t>(n * out + o)], want, 64 * 1.2e-7 * mag + 1e-6);
    }
  }
  // Every dense column i is the checkpoint's: (code - zero) * scale of group g_idx[i].
  std::vector<float> orig(static_cast<size_t>(out * in));
  dequantize_weights_ref(m, orig.data());
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      EXPECT_EQ(dense[static_cast<size_t>(o * in + perm[static_cast<size_t>(i)])],
                orig[static_cast<size_t>(o * in + i)]);
    }
  }
  // A group with too many columns is not an act-order assignment.
  s.g_idx[0] = s.g_idx[0] == 0 ? 1 : 0;
  const std::string e = error_of([&] { from_gptq(s, GptqZeros::kAsIs, &order); });
  EXPECT_NE(e.find("g_idx"), std::string::npos) << e;
}

}  // namespace
}  // namespace wkvq
