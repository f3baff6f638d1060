// The storage of the vocabulary tables (model/output_head.h): the embedding table in fp16 or
// int8/int4 groups reads back, row by row, exactly the scalar dequantization of what was stored;
// a model with fp16 embeddings computes exactly the logits of the f32 model whose table is rounded
// to fp16; int-b heads and tables survive the quantized directory (format_version 4) bit for bit;
// a format_version 2 directory (f32 embeddings, no storage keys) still loads; the random model
// generated quantized equals the f32 random model quantized; quantizing lets go of the float
// weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/weight_quant.h"
#include "io/json_file.h"
#include "model/output_head.h"
#include "model/quantized_model_io.h"
#include "model/random_model.h"
#include "unit/quantized_model_fixture.h"

namespace wkvq {
namespace {

using namespace qmtest;  // NOLINT(google-build-using-namespace): test helpers

// Element (r, c) of a quantized matrix by the formula of formats/weight_quant.h, written out:
// (code - zero) * fp16 scale of its group.
float scalar_dequant(const QuantizedMatrix& q, int64_t r, int64_t c) {
  const int64_t g = r * q.n_groups + c / q.group;
  const float s = fp16_to_f32(q.scales[static_cast<size_t>(g)]);
  return static_cast<float>(static_cast<int>(weight_code(q, r, c)) -
                            static_cast<int>(q.zeros[static_cast<size_t>(g)])) *
         s;
}

TEST(TableStorage, NamesRoundTrip) {
  for (const TableStorage s :
       {TableStorage::F32, TableStorage::F16, TableStorage::Q8, TableStorage::Q4}) {
    EXPECT_EQ(parse_table_storage(table_storage_name(s)), s);
  }
  EXPECT_THROW(parse_table_storage("q2"), Error);
}

TEST(TableStorage, EmbeddingRowsAreTheStoredValues) {
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, false);
  const Model q = quantized_model(c, 4, 32, "", false, base_seed());
  const float* f32 = q.tok_embeddings;
  ASSERT_NE(f32, nullptr);
  std::vector<float> row(static_cast<size_t>(c.dim));
  for (const TableStorage s : {TableStorage::F16, TableStorage::Q8, TableStorage::Q4}) {
    SCOPED_TRACE(table_storage_name(s));
    Model m = q;
    store_embeddings(m, s);
    EXPECT_EQ(m.tok_embeddings, nullptr);
    EXPECT_EQ(embedding_storage(m), s);
    const Linear& t = m.tok_embeddings_packed;
    if (s == TableStorage::F16) {
      ASSERT_NE(t.w16, nullptr);
      EXPECT_EQ(m.embedding_bytes(), int64_t{c.vocab_size} * c.dim * 2);
    } else {
      ASSERT_NE(t.q, nullptr);
      EXPECT_EQ(t.q->bits, table_storage_bits(s));
      EXPECT_EQ(t.q->group, 32) << "the linears' group size";
      EXPECT_EQ(m.embedding_bytes(), t.q->bytes());
    }
    double max_err = 0;
    for (int64_t tok = 0; tok < c.vocab_size; ++tok) {
      m.embedding_row(tok, row.data());
      for (int64_t j = 0; j < c.dim; ++j) {
        const float orig = f32[tok * c.dim + j];
        const float want =
            s == TableStorage::F16 ? fp16_to_f32(f32_to_fp16(orig)) : scalar_dequant(*t.q, tok, j);
        ASSERT_EQ(row[static_cast<size_t>(j)], want) << "token " << tok << " column " << j;
        max_err = std::max(max_err, static_cast<double>(std::fabs(want - orig)));
      }
    }
    // The storage is lossy but close. int-b: formats/weight_quant.h bounds the error by
    // s (1/2 + (2^b - 1) 2^-11), s <= 2 / (2^b - 1) (1 + 2^-11) for a table in +-1; fp16: 2^-11
    // relative of values <= 1.
    const double levels = (1 << table_storage_bits(s)) - 1, u = std::ldexp(1.0, -11);
    const double bound = s == TableStorage::F16 ? u : 2.0 / levels * (1 + u) * (0.5 + levels * u);
    EXPECT_GT(max_err, 0.0) << "the table did change";
    EXPECT_LE(max_err, bound);
  }
}

TEST(TableStorage, Fp16EmbeddingsGiveTheLogitsOfTheRoundedTable) {
  for (const bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, tied);
    Model q = quantized_model(c, 4, 32, "", false, base_seed());
    store_output_head(q, TableStorage::F16);  // the head stays as it is below
    Model h = q;
    store_embeddings(h, TableStorage::F16);
    // Reference: the f32 table rounded to fp16 and back.
    Model r = q;
    const int64_t n = int64_t{c.vocab_size} * c.dim;
    float* w = r.storage.allocate(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) w[i] = fp16_to_f32(f32_to_fp16(q.tok_embeddings[i]));
    r.tok_embeddings = w;
    const std::vector<int> tokens = random_tokens(c.vocab_size, 20, base_seed() + 3u);
    for (const int kvbits : {32, 4}) {
      KvQuantSettings kv;
      kv.bits = kvbits;
      const std::vector<float> want = session_logits(r, tokens, kv);
      const std::vector<float> got = session_logits(h, tokens, kv);
      ASSERT_EQ(want.size(), got.size());
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
      const std::vector<float> f32 = session_logits(q, tokens, kv);
      EXPECT_NE(std::memcmp(f32.data(), got.data(), f32.size() * sizeof(float)), 0);
    }
  }
}

TEST(TableStorage, TiedTableStoredOnceWithItsHead) {
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, true);
  Model m = quantized_model(c, 4, 32, "", false, base_seed());
  store_embeddings(m, TableStorage::Q8);
  EXPECT_TRUE(m.config.tied_output);
  ASSERT_NE(m.output.q, nullptr);
  EXPECT_EQ(m.output.q, m.tok_embeddings_packed.q) << "one table";
  EXPECT_EQ(head_storage(m), TableStorage::Q8);
  // An untied head asked otherwise: store_output_head first unties it.
  Model u = quantized_model(c, 4, 32, "", false, base_seed());
  store_output_head(u, TableStorage::F16);
  store_embeddings(u, TableStorage::Q4);
  EXPECT_FALSE(u.config.tied_output);
  EXPECT_NE(u.output.w16, nullptr);
  EXPECT_EQ(embedding_storage(u), TableStorage::Q4);
}

// Saved and loaded: the tables come back bit for bit, as do the logits.
TEST(TableStorage, DirectoryRoundTrip) {
  const struct {
    bool tied;
    TableStorage embed, head;
  } cases[] = {{false, TableStorage::Q4, TableStorage::Q8},
               {false, TableStorage::F16, TableStorage::Q4},
               {false, TableStorage::Q8, TableStorage::F16},
               {true, TableStorage::Q8, TableStorage::Q8},
               {true, TableStorage::F16, TableStorage::F16}};
  for (const auto& k : cases) {
    SCOPED_TRACE(std::string(table_storage_name(k.embed)) + " / " + table_storage_name(k.head) +
                 (k.tied ? " tied" : ""));
    const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, k.tied);
    Model m = quantized_model(c, 4, 32, "", false, base_seed());
    if (!(k.tied && k.embed == k.head)) store_output_head(m, k.head);
    store_embeddings(m, k.embed);
    TempDir tmp;
    const std::string dir = tmp.path("q");
    save_quantized_model(m, dir, "");
    const nlohmann::json cfg = read_json_file(dir + "/config.json");
    EXPECT_EQ(cfg["quantization_config"]["format_version"], 4);
    EXPECT_EQ(cfg["quantization_config"]["embed_storage"], table_storage_name(k.embed));
    EXPECT_EQ(cfg["quantization_config"]["head_storage"], table_storage_name(k.head));
    const Model l = load_quantized_model(dir);
    EXPECT_EQ(l.config.tied_output, k.tied);
    EXPECT_EQ(embedding_storage(l), k.embed);
    EXPECT_EQ(head_storage(l), k.head);
    std::vector<float> a(static_cast<size_t>(c.dim)), b(a.size());
    for (int64_t tok = 0; tok < c.vocab_size; ++tok) {
      m.embedding_row(tok, a.data());
      l.embedding_row(tok, b.data());
      ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << tok;
    }
    if (m.output.q) {
      ASSERT_NE(l.output.q, nullptr);
      EXPECT_TRUE(l.output.q->codes == m.output.q->codes);
      EXPECT_TRUE(l.output.q->scales == m.output.q->scales);
      EXPECT_TRUE(l.output.q->zeros == m.output.q->zeros);
    }
    const std::vector<int> tokens = random_tokens(c.vocab_size, 12, base_seed() + 5u);
    KvQuantSettings kv;
    kv.bits = 4;
    const std::vector<float> want = session_logits(m, tokens, kv);
    const std::vector<float> got = session_logits(l, tokens, kv);
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
    // GPTQ convention: int-b embeddings are refused, naming the way out.
    if (k.embed == TableStorage::Q4 || k.embed == TableStorage::Q8) {
      try {
        save_quantized_model(m, tmp.path("g"), "", QuantizedDirFormat::kGptq);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--format wkvq"), std::string::npos) << e.what();
      }
    }
  }
}

// A directory as format_version 2 wrote it (f32 embeddings, fp16 head, no storage keys) loads,
// and so does version 1 (no checksums); an inconsistent version 4 and an unknown version do not.
TEST(TableStorage, OlderFormatDirectoriesStillLoad) {
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, false);
  Model m = quantized_model(c, 4, 32, "", false, base_seed());
  store_output_head(m, TableStorage::F16);
  TempDir tmp;
  const std::string dir = tmp.path("q");
  save_quantized_model(m, dir, "");
  const std::string config = dir + "/config.json";
  const nlohmann::json v4 = read_json_file(config);
  auto write = [&](const nlohmann::json& j) { std::ofstream(config) << j.dump(2); };
  nlohmann::json v2 = v4;
  v2["quantization_config"]["format_version"] = 2;
  v2["quantization_config"].erase("embed_storage");
  v2["quantization_config"].erase("head_storage");
  write(v2);
  const std::vector<int> tokens = random_tokens(c.vocab_size, 12, base_seed() + 7u);
  const std::vector<float> want = session_logits(m, tokens, KvQuantSettings{});
  for (const int version : {2, 1}) {
    SCOPED_TRACE(version);
    if (version == 1) {
      nlohmann::json v1 = v2;
      v1["quantization_config"]["format_version"] = 1;
      v1["quantization_config"].erase("checksums");
      write(v1);
    }
    const Model l = load_quantized_model(dir);
    ASSERT_NE(l.tok_embeddings, nullptr) << "f32 embeddings";
    EXPECT_EQ(head_storage(l), TableStorage::F16);
    const std::vector<float> got = session_logits(l, tokens, KvQuantSettings{});
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
  }
  nlohmann::json bad = v4;
  bad["quantization_config"]["head_storage"] = "q8";
  write(bad);
  EXPECT_THROW(load_quantized_model(dir), Error);
  bad = v4;
  bad["quantization_config"]["format_version"] = 3;
  write(bad);
  EXPECT_THROW(load_quantized_model(dir), Error);
  bad = v4;
  bad["quantization_config"].erase("embed_storage");
  write(bad);
  EXPECT_THROW(load_quantized_model(dir), Error);
}

TEST(TableStorage, RandomModelGeneratedQuantizedEqualsQuantizedRandomModel) {
  for (const bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    LlamaConfig c = small_config(96, RopeLayout::RotateHalf, tied);
    RandomQuantization rq;
    rq.weights.bits = 4;
    rq.weights.group = 32;
    rq.weights.keep_float = KeepFloat("1.w_down", c.n_layers);
    rq.embed = TableStorage::Q8;
    rq.head = tied ? TableStorage::Q8 : TableStorage::F16;
    const Model got = make_random_quantized_model(c, 7, rq);
    Model want = quantize_weights_rtn(make_random_model(c, 7), rq.weights);
    if (!tied) store_output_head(want, rq.head);
    store_embeddings(want, rq.embed);
    EXPECT_EQ(got.weight_bytes(), want.weight_bytes());
    for (int l = 0; l < c.n_layers; ++l) {
      for (int i = 0; i < 7; ++i) {
        const Linear& a = linear_by_index(got.layers[static_cast<size_t>(l)], i);
        const Linear& b = linear_by_index(want.layers[static_cast<size_t>(l)], i);
        ASSERT_EQ(a.quantized(), b.quantized());
        if (a.quantized()) {
          EXPECT_TRUE(a.q->codes == b.q->codes && a.q->scales == b.q->scales &&
                      a.q->zeros == b.q->zeros);
        } else {
          EXPECT_EQ(std::memcmp(a.w, b.w, static_cast<size_t>(a.out * a.in) * 4), 0);
        }
      }
    }
    const std::vector<int> tokens = random_tokens(c.vocab_size, 12, base_seed());
    const std::vector<float> x = session_logits(got, tokens, KvQuantSettings{});
    const std::vector<float> y = session_logits(want, tokens, KvQuantSettings{});
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0);
  }
}

// The quantized model does not keep the float linears or tables alive: once the float model is
// dropped, their buffers are freed.
TEST(TableStorage, QuantizingLetsGoOfTheFloatWeights) {
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, false);
  Model fp = make_random_model(c, 3);
  auto holder_of = [&](const void* p) {
    for (const auto& h : fp.storage.holders) {
      if (h.get() == p) return std::weak_ptr<const void>(h);
    }
    return std::weak_ptr<const void>();
  };
  const std::weak_ptr<const void> linear = holder_of(fp.layers[0].w_up.w);
  const std::weak_ptr<const void> head = holder_of(fp.output.w);
  const std::weak_ptr<const void> table = holder_of(fp.tok_embeddings);
  const std::weak_ptr<const void> norm = holder_of(fp.final_norm);
  ASSERT_FALSE(linear.expired() || head.expired() || table.expired());
  WeightQuantOptions o;
  o.group = 32;
  Model q = quantize_weights_rtn(fp, o);
  store_output_head(q, TableStorage::F16);
  store_embeddings(q, TableStorage::Q8);
  fp = Model{};
  EXPECT_TRUE(linear.expired());
  EXPECT_TRUE(head.expired());
  EXPECT_TRUE(table.expired());
  EXPECT_FALSE(norm.expired()) << "still read by the quantized model";
}

}  // namespace
}  // namespace wkvq
