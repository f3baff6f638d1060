// The quantized model directory reader rejects every kind of bad input with a wkvq::Error that
// names the file and the field: truncated or mutated safetensors, unknown format_version,
// missing tensors, shapes or dtypes inconsistent with config.json, zero points out of range,
// dirty padding, bad scales, bad smoothing; and random byte mutations never crash it.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/fp16.h"
#include "io/checksum.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/loader.h"
#include "model/quantized_model_io.h"
#include "unit/quantized_model_fixture.h"

namespace wkvq {
namespace {

using namespace qmtest;  // NOLINT(google-build-using-namespace): test helpers
using nlohmann::json;

using test::read_file;

using test::write_file;

// A tensor as read back, editable.
struct Tensor {
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
// Returns false to drop the tensor.
using TensorEdit = std::function<bool(const std::string& name, Tensor& t)>;

// A saved model (hidden 100: padded; untied head; layer 1's w_down kept in float; smoothing),
// copied into a fresh directory per mutation.
class QuantizedModelErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = new TempDir();
    const Model m = quantized_model(small_config(100, RopeLayout::RotateHalf, false), 4, 32,
                                    "1.w_down", true, base_seed());
    save_quantized_model(m, base_->path("q"), "");
  }
  static void TearDownTestSuite() {
    delete base_;
    base_ = nullptr;
  }
  void SetUp() override {
    dir_ = tmp_.path("q");
    fs::copy(base_->path("q"), dir_, fs::copy_options::recursive);
  }

  std::string st() const { return dir_ + "/model.safetensors"; }
  std::string config() const { return dir_ + "/config.json"; }

  void edit_config(const std::function<void(json&)>& f) const {
    json j = json::parse(read_file(config()));
    f(j);
    write_file(config(), j.dump(2));
  }

  void edit_tensors(const TensorEdit& f) const {
    std::vector<std::pair<std::string, Tensor>> all;
    {
      const SafetensorsFile file = SafetensorsFile::open(st());
      std::vector<std::pair<size_t, std::string>> order;  // by offset: keep the file's order
      for (const auto& [name, t] : file.tensors()) {
        order.emplace_back(static_cast<size_t>(t.data - file.mapping()->data()), name);
      }
      std::sort(order.begin(), order.end());
      for (const auto& [offset, name] : order) {
        const TensorInfo& t = *file.find(name);
        Tensor x{t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
        if (f(name, x)) all.emplace_back(name, std::move(x));
      }
    }
    SafetensorsWriter w;
    for (auto& [name, t] : all) w.add_owned(name, t.dtype, t.shape, std::move(t.bytes));
    w.write(st());
    // The edit is deliberate: record the new checksum, so the reader's own checks are tested.
    edit_config([this](json& j) {
      j["quantization_config"]["checksums"]["model.safetensors"] = file_checksum(st());
    });
  }
  // Edits one tensor's bytes.
  void edit_tensor(const std::string& which, const std::function<void(Tensor&)>& f) const {
    bool found = false;
    edit_tensors([&](const std::string& name, Tensor& t) {
      if (name == which) {
        f(t);
        found = true;
      }
      return true;
    });
    ASSERT_TRUE(found) << which;
  }

  // Loading fails with a wkvq::Error whose message holds every one of `parts`.
  void expect_error(std::initializer_list<const char*> parts) const {
    try {
      (void)load_model(dir_);
      ADD_FAILURE() << "expected a wkvq::Error";
    } catch (const Error& e) {
      for (const char* p : parts) {
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
            << "message lacks \"" << p << "\": " << e.what();
      }
    }
  }

  static TempDir* base_;
  TempDir tmp_;
  std::string dir_;
};

TempDir* QuantizedModelErrors::base_ = nullptr;

template <class T>
void set_element(Tensor& t, size_t i, T v) {
  ASSERT_LE((i + 1) * sizeof(T), t.bytes.size());
  std::memcpy(t.bytes.data() + i * sizeof(T), &v, sizeof(T));
}

TEST_F(QuantizedModelErrors, TheBaseModelLoads) {
  const Model m = load_model(dir_);
  EXPECT_EQ(m.quant.wbits, 4);
  EXPECT_EQ(m.kv_smoothing.n_layers, 2);
}

TEST_F(QuantizedModelErrors, TruncatedSafetensors) {
  const std::string bytes = read_file(st());
  write_file(st(), bytes.substr(0, bytes.size() / 2));
  expect_error({"model.safetensors", "truncated"});
  write_file(st(), bytes.substr(0, 5));
  expect_error({"model.safetensors"});
}

TEST_F(QuantizedModelErrors, MissingSafetensors) {
  fs::remove(st());
  expect_error({"model.safetensors"});
}

TEST_F(QuantizedModelErrors, NewerFormatVersion) {
  edit_config(
      [](json& j) { j["quantization_config"]["format_version"] = kQuantizedFormatVersion + 1; });
  expect_error({"config.json", "format_version", "newer wkvq"});
}

TEST_F(QuantizedModelErrors, UnknownFormatVersion) {
  edit_config([](json& j) { j["quantization_config"]["format_version"] = 0; });
  expect_error({"config.json", "format_version"});
  edit_config([](json& j) { j["quantization_config"]["format_version"] = "1"; });
  expect_error({"config.json", "format_version", "integer"});
}

TEST_F(QuantizedModelErrors, MissingOrBadConfigKeys) {
  edit_config([](json& j) { j["quantization_config"].erase("kv_bits"); });
  expect_error({"config.json", "quantization_config.kv_bits", "missing"});
  edit_config([](json& j) { j["quantization_config"]["kv_bits"] = 5; });
  expect_error({"config.json", "kv_bits"});
  edit_config([](json& j) { j["quantization_config"]["bits"] = 3; });
  expect_error({"config.json", "quantization_config.bits"});
  edit_config([](json& j) {
    j["quantization_config"]["kv_bits"] = 4;
    j["quantization_config"]["bits"] = 4;
    j["quantization_config"]["desc_act"] = true;
  });
  expect_error({"config.json", "desc_act"});
  edit_config([](json& j) {
    j["quantization_config"]["desc_act"] = false;
    j["quantization_config"]["keep_float"] = json::array({"7.w_down"});
  });
  expect_error({"config.json", "keep_float"});
}

TEST_F(QuantizedModelErrors, MissingQweight) {
  edit_tensors([](const std::string& name, Tensor&) {
    return name != "model.layers.1.self_attn.q_proj.qweight";
  });
  expect_error({"model.safetensors", "model.layers.1.self_attn.q_proj.qweight", "missing"});
}

TEST_F(QuantizedModelErrors, WrongShape) {
  edit_tensor("model.layers.0.self_attn.k_proj.scales", [](Tensor& t) {
    std::swap(t.shape[0], t.shape[1]);  // same bytes, transposed shape
  });
  expect_error({"model.safetensors", "model.layers.0.self_attn.k_proj.scales", "shape"});
}

TEST_F(QuantizedModelErrors, ShapesInconsistentWithConfig) {
  edit_config([](json& j) { j["intermediate_size"] = 96; });
  expect_error({"model.safetensors", "model.layers.0.mlp.gate_proj.qweight", "shape"});
  edit_config([](json& j) {
    j["intermediate_size"] = 100;
    j["quantization_config"]["bits"] = 8;
  });
  expect_error({"config.json", "padding.values_per_int32", "32 / bits = 4"});
  edit_config([](json& j) { j["quantization_config"]["padding"]["values_per_int32"] = 4; });
  expect_error({"model.safetensors", "qweight", "shape", "bits = 8"});
  edit_config([](json& j) {
    j["quantization_config"]["bits"] = 4;
    j["quantization_config"]["padding"]["values_per_int32"] = 8;
    j["quantization_config"]["group_size"] = 16;
  });
  expect_error({"model.safetensors", "shape", "group = 16"});
}

TEST_F(QuantizedModelErrors, WrongDtype) {
  edit_tensor("model.layers.0.self_attn.v_proj.qweight", [](Tensor& t) { t.dtype = DType::F32; });
  expect_error({"model.safetensors", "model.layers.0.self_attn.v_proj.qweight", "dtype"});
}

TEST_F(QuantizedModelErrors, ZeroPointOutOfRange) {
  // Exact zero points always fit their b-bit field; in the v1 layout (stored zero - 1) a
  // stored 15 means 16, out of the 4-bit range.
  edit_config([](json& j) { j["quantization_config"]["zero_point"] = "minus_one"; });
  edit_tensor("model.layers.0.self_attn.q_proj.qzeros",
              [](Tensor& t) { set_element<int32_t>(t, 0, 0xF); });
  expect_error({"model.safetensors", "model.layers.0.self_attn.q_proj.", "qzeros",
                "out of the 4-bit range"});
}

TEST_F(QuantizedModelErrors, DirtyPadding) {
  // down_proj: in = 100, so the last qweight word of each row holds 4 codes and 4 padding fields.
  edit_tensor("model.layers.0.mlp.down_proj.qweight",
              [](Tensor& t) { set_element<int32_t>(t, 12 * 64, 1 << 28); });
  expect_error({"model.safetensors", "model.layers.0.mlp.down_proj.", "padding"});
}

TEST_F(QuantizedModelErrors, DirtyZeroPointPadding) {
  // gate_proj: out = 100, so the last qzeros word of each group covers rows 96..103.
  edit_tensor("model.layers.1.mlp.gate_proj.qzeros",
              [](Tensor& t) { set_element<int32_t>(t, 12, 0x3 << 20); });
  expect_error({"model.safetensors", "model.layers.1.mlp.gate_proj.", "zero point of row 101"});
}

TEST_F(QuantizedModelErrors, BadScales) {
  edit_tensor("model.layers.0.self_attn.o_proj.scales",
              [](Tensor& t) { set_element<uint16_t>(t, 5, f32_to_fp16(-0.25f)); });
  expect_error({"model.safetensors", "model.layers.0.self_attn.o_proj.scales", "> 0"});
  edit_tensor("model.layers.0.self_attn.o_proj.scales",
              [](Tensor& t) { set_element<uint16_t>(t, 5, uint16_t{0x7e00}); });  // NaN
  expect_error({"model.safetensors", "model.layers.0.self_attn.o_proj.", "not finite"});
}

TEST_F(QuantizedModelErrors, NegativeSmoothingScale) {
  edit_tensor("model.layers.1.self_attn.kv_smoothing.k_scale",
              [](Tensor& t) { set_element<float>(t, 3, -1.0f); });
  expect_error(
      {"model.safetensors", "model.layers.1.self_attn.kv_smoothing.k_scale", "channel 3", "> 0"});
}

TEST_F(QuantizedModelErrors, MissingSmoothing) {
  edit_tensors([](const std::string& name, Tensor&) {
    return name != "model.layers.0.self_attn.kv_smoothing.v_shift";
  });
  expect_error({"model.safetensors", "kv_smoothing.v_shift", "missing"});
}

TEST_F(QuantizedModelErrors, NonFiniteFloatTensor) {
  edit_tensor("model.embed_tokens.weight",
              [](Tensor& t) { set_element<float>(t, 17, std::numeric_limits<float>::infinity()); });
  expect_error({"model.safetensors", "model.embed_tokens.weight", "non-finite"});
}

// An F16 lm_head (what an fp16 head is saved as) loads as fp16; a non-finite value in it is
// refused.
TEST_F(QuantizedModelErrors, Fp16HeadLoadsAndNonFiniteIsRefused) {
  auto to_f16 = [](Tensor& t) {
    std::vector<uint8_t> b(t.bytes.size() / 2);
    for (size_t i = 0; i < b.size() / 2; ++i) {
      float f = 0.0f;
      std::memcpy(&f, t.bytes.data() + 4 * i, 4);
      const uint16_t h = f32_to_fp16(f);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
    t.dtype = DType::F16;
    t.bytes = std::move(b);
  };
  edit_tensor("lm_head.weight", to_f16);
  expect_error({"head_storage", "\"f32\"", "holds the head as f16"});  // format_version 4 says
  edit_config([](json& j) { j["quantization_config"]["head_storage"] = "f16"; });
  const Model m = load_model(dir_);
  ASSERT_NE(m.output.w16, nullptr);
  EXPECT_EQ(m.output.w, nullptr);
  edit_tensor("lm_head.weight", [](Tensor& t) { set_element<uint16_t>(t, 9, uint16_t{0x7C00}); });
  expect_error({"model.safetensors", "lm_head.weight", "non-finite fp16", "element 9"});
}

TEST_F(QuantizedModelErrors, TensorsTheConfigDoesNotExplain) {
  edit_config([](json& j) { j["quantization_config"]["kv_smooth"] = "none"; });
  expect_error({"model.safetensors", "unexpected tensor", "kv_smoothing"});
  edit_config([](json& j) {
    j["quantization_config"]["kv_smooth"] = "stats";
    j["quantization_config"]["keep_float"] = json::array({"1.w_down", "0.wq"});
  });
  expect_error(
      {"model.safetensors", "model.layers.0.self_attn.q_proj.weight", "missing", "keep_float"});
}

// Random byte mutations of the safetensors file (header and data) and of config.json values:
// each load either succeeds or throws wkvq::Error; nothing crashes or throws anything else.
TEST_F(QuantizedModelErrors, MutationsNeverCrash) {
  const uint32_t seed = base_seed() + 99u;
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (WKVQ_TEST_SEED)");
  std::mt19937 rng(seed);
  const std::string good = read_file(st());
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  int errors = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string bytes = good;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n; ++k) {
      // Half of the mutations hit the header (where structure lives), half anywhere.
      const size_t limit = iter % 2 == 0 ? static_cast<size_t>(8 + header_len) : bytes.size();
      bytes[rng() % limit] = static_cast<char>(rng() & 0xFF);
    }
    if (iter % 10 == 0) bytes.resize(rng() % bytes.size());
    write_file(st(), bytes);
    try {
      (void)load_model(dir_);
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 0);
}

}  // namespace
}  // namespace wkvq
