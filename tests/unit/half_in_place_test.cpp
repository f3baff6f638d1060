// F16/BF16 linears kept in place from the file (LoadOptions::half_in_place):
// the storage kinds of Linear (fp16 w16, bf16 wbf16) against f32 on the same rounded values, the
// loader's choice of storage, the scan for non-finite halves, and quantization from them.
#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "kernels/matmul.h"
#include "loader_fixture.h"
#include "model/output_head.h"
#include "model/weight_quantizer.h"
#include "runtime/session.h"

namespace wkvq {
namespace {

using namespace loader_test;

// Seeded values in [-1, 1].
std::vector<float> uniform(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

std::vector<uint16_t> bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = to_bf16(v[i]);
  return b;
}

// A bf16 Linear computes exactly matmul_f32 of its f32 values (the conversion is exact and the
// chunks of rows are whole rows, each output a dot product over `in` as in the f32 kernel), for
// GEMV and GEMM, for sizes with several chunks (out * in > 2^22) and a partial last chunk.
TEST(HalfLinear, Bf16ForwardEqualsF32OnTheRoundedValues) {
  struct Size {
    int64_t n, out, in;
  };
  for (const Size s :
       {Size{1, 37, 19}, Size{5, 64, 48}, Size{1, 1100, 4096}, Size{3, 1100, 4096}}) {
    SCOPED_TRACE(std::to_string(s.n) + "x" + std::to_string(s.out) + "x" + std::to_string(s.in));
    const std::vector<uint16_t> wb = bf16_bits(uniform(s.out * s.in, 1));
    std::vector<float> wf(wb.size());
    bf16_to_f32(wb.data(), wf.data(), wb.size());
    const std::vector<float> x = uniform(s.n * s.in, 2), bias = uniform(s.out, 3);
    Linear lin;
    lin.out = s.out;
    lin.in = s.in;
    lin.wbf16 = wb.data();
    lin.bias = bias.data();
    std::vector<float> y(static_cast<size_t>(s.n * s.out)), ref(y.size());
    lin.forward(x.data(), s.n, y.data());
    matmul_f32(x.data(), s.n, s.in, wf.data(), s.out, ref.data());
    for (int64_t t = 0; t < s.n; ++t) {
      for (int64_t o = 0; o < s.out; ++o)
        ref[static_cast<size_t>(t * s.out + o)] += bias[static_cast<size_t>(o)];
    }
    ASSERT_EQ(y, ref);

    std::vector<float> rows(static_cast<size_t>(2 * s.in));
    lin.rows_f32(s.out - 2, 2, rows.data());
    EXPECT_TRUE(std::equal(rows.begin(), rows.end(), wf.end() - 2 * s.in));
    EXPECT_EQ(lin.weight_f32(s.out * s.in - 1), wf.back());
    EXPECT_EQ(lin.float_bytes(), s.out * s.in * 2);
    EXPECT_EQ(lin.bytes(), s.out * s.in * 2 + s.out * 4);
  }
}

TEST(HalfLinear, F16AccessorsAreExact) {
  const std::vector<float> v = uniform(6 * 10, 4);
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_fp16(v[i]);
  Linear lin;
  lin.out = 6;
  lin.in = 10;
  lin.w16 = h.data();
  std::vector<float> scratch;
  const float* f = lin.f32_view(scratch);
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(f[i], fp16_to_f32(h[i]));
    ASSERT_EQ(lin.weight_f32(static_cast<int64_t>(i)), fp16_to_f32(h[i]));
  }
}

// Writes w in `dtype` to dir with its data section at an even address (metadata padding).
void write_aligned(const std::string& dir, const Spec& s, const std::vector<RefTensor>& w,
                   const std::string& dtype) {
  for (const std::string pad : {"", "x"}) {
    StImage img = st_image(w, dtype);
    img.header["__metadata__"]["pad"] = pad;
    write_hf(dir, config_json(s), img);
    const SafetensorsSet set = SafetensorsSet::open_dir(dir);
    if (reinterpret_cast<uintptr_t>(set.get("lm_head.weight").data) % 2 == 0) return;
  }
  FAIL() << "no padding aligns the data";
}

std::vector<const Linear*> all_linears(const Model& m) {
  std::vector<const Linear*> out;
  for (const LayerWeights& l : m.layers) {
    for (int i = 0; i < 7; ++i) out.push_back(&linear_by_index(l, i));
  }
  out.push_back(&m.output);
  return out;
}

// With half_in_place, F16/BF16 linears point into the mapped file in their dtype (no f32 copy),
// with the same values as a default (f32) load; F32 files, and halves at an odd address (a header
// whose length is odd: padded here with metadata), are converted to f32 as before. Logits are
// identical either way.
TEST(HalfInPlace, LinearsStayInTheFileDtypeWithTheSameValues) {
  Spec s;
  s.dim = 64;
  s.hidden = 96;
  s.heads = 4;
  s.kv_heads = 2;
  const auto w = make_weights(s, 11);
  LoadOptions in_place;
  in_place.half_in_place = true;
  for (const std::string dtype : {"F32", "F16", "BF16"}) {
    int kept_in_place = 0;
    for (const std::string pad : {"", "x"}) {
      SCOPED_TRACE(dtype + " pad '" + pad + "'");
      test::TempDir tmp("half");
      const std::string dir = tmp.sub("hf");
      StImage img = st_image(w, dtype);
      img.header["__metadata__"]["pad"] = pad;
      write_hf(dir, config_json(s), img);
      const Model ref = load_model(dir);
      const Model m = load_model(dir, in_place);
      expect_weights(m, w, dtype);
      const SafetensorsSet set = SafetensorsSet::open_dir(dir);
      const bool aligned =
          reinterpret_cast<uintptr_t>(set.get("lm_head.weight").data) % 2 == 0;  // all alike
      const bool half = dtype != "F32" && aligned;
      kept_in_place += half ? 1 : 0;
      for (const Linear* lin : all_linears(m)) {
        EXPECT_EQ(lin->w != nullptr, !half);
        EXPECT_EQ(lin->w16 != nullptr, half && dtype == "F16");
        EXPECT_EQ(lin->wbf16 != nullptr, half && dtype == "BF16");
        if (half) {
          EXPECT_TRUE(m.storage.files.front()->contains(lin->float_data(),
                                                        static_cast<size_t>(lin->float_bytes())));
        }
      }
      const std::vector<int> tokens = {1, 5, 9, 2, 30, 7};
      Session a(ref), b(m);
      const float* la = a.prefill(tokens);
      const std::vector<float> logits_a(la, la + s.vocab);
      const float* lb = b.prefill(tokens);
      EXPECT_EQ(std::vector<float>(lb, lb + s.vocab), logits_a);
    }
    EXPECT_EQ(kept_in_place, dtype == "F32" ? 0 : 1) << dtype;
  }
}

// RTN from the in-place halves equals RTN from the f32 load (same values), the pages released
// after use stay readable, kept-float linears become f32, and the head goes to fp16 exactly.
TEST(HalfInPlace, RtnFromHalvesEqualsRtnFromF32) {
  Spec s;
  s.dim = 64;
  s.hidden = 128;
  const auto w = make_weights(s, 12);
  LoadOptions in_place;
  in_place.half_in_place = true;
  test::TempDir tmp("half");
  const std::string dir = tmp.sub("hf");
  write_aligned(dir, s, w, "BF16");
  WeightQuantOptions opt;
  opt.bits = 4;
  opt.group = 32;
  opt.keep_float = KeepFloat("1.w_down", s.layers);
  const Model ref_fp = load_model(dir);
  const Model fp = load_model(dir, in_place);
  ASSERT_NE(fp.layers[0].wq.wbf16, nullptr);
  Model ref = quantize_weights_rtn(ref_fp, opt);
  Model q = quantize_weights_rtn(fp, opt);
  store_output_head(ref, HeadStorage::F16);
  store_output_head(q, HeadStorage::F16);
  const std::vector<const Linear*> a = all_linears(ref), b = all_linears(q);
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(a[i]->quantized(), b[i]->quantized());
    EXPECT_EQ(b[i]->wbf16, nullptr);
    if (a[i]->quantized()) {
      EXPECT_EQ(a[i]->q->codes, b[i]->q->codes);
      EXPECT_EQ(a[i]->q->scales, b[i]->q->scales);
      EXPECT_EQ(a[i]->q->zeros, b[i]->q->zeros);
    } else if (a[i]->w != nullptr) {
      ASSERT_NE(b[i]->w, nullptr);
      EXPECT_TRUE(std::equal(a[i]->w, a[i]->w + a[i]->out * a[i]->in, b[i]->w));
    } else {
      ASSERT_NE(b[i]->w16, nullptr);
      EXPECT_TRUE(std::equal(a[i]->w16, a[i]->w16 + a[i]->out * a[i]->in, b[i]->w16));
    }
  }
  expect_weights(fp, w, "BF16");  // the released source pages read back the same
}

// The load's scan of small models covers in-place halves: Inf/NaN bits are refused by name.
TEST(HalfInPlace, NonFiniteHalfIsRefused) {
  Spec s;
  auto w = make_weights(s, 13);
  const std::string name = lname(1, "mlp.up_proj.weight");
  for (RefTensor& t : w) {
    if (t.name == name) t.v[5] = std::numeric_limits<float>::infinity();
  }
  LoadOptions in_place;
  in_place.half_in_place = true;
  for (const std::string dtype : {"F16", "BF16"}) {
    SCOPED_TRACE(dtype);
    test::TempDir tmp("half");
    const std::string dir = tmp.sub("hf");
    write_aligned(dir, s, w, dtype);
    expect_error([&] { load_model(dir, in_place); }, {name, "non-finite", "element 5"});
  }
}

}  // namespace
}  // namespace wkvq
