// The output head's storage (model/output_head.h): an fp16 head computes exactly the logits of the
// f32 model whose head is rounded to fp16 (matmul_f16 is defined as matmul_f32 of the converted
// weights, kernel for kernel), a tied head is untied without touching the embeddings, f16 -> f32
// is exact, and a head that does not fit fp16 is refused with the element named.
#include "model/output_head.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "unit/quantized_model_fixture.h"

namespace wkvq {
namespace {

using namespace qmtest;  // NOLINT(google-build-using-namespace): test helpers

// `m` with its f32 head replaced by an owned copy rounded to fp16 and back.
Model with_rounded_f32_head(const Model& m) {
  Model r = m;
  const int64_t n = m.output.out * m.output.in;
  float* w = r.storage.allocate(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) w[i] = fp16_to_f32(f32_to_fp16(m.output.w[i]));
  r.output.w = w;
  r.config.tied_output = false;
  return r;
}

TEST(OutputHead, NamesRoundTrip) {
  for (const HeadStorage s : {HeadStorage::F32, HeadStorage::F16}) {
    EXPECT_EQ(parse_head_storage(head_storage_name(s)), s);
  }
  EXPECT_THROW(parse_head_storage("bf16"), Error);
}

TEST(OutputHead, Fp16HeadGivesTheLogitsOfTheRoundedHead) {
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const Model q = quantized_model(small_config(96, RopeLayout::RotateHalf, tied), 4, 32, "",
                                    false, base_seed());
    Model h = q;
    store_output_head(h, HeadStorage::F16);
    ASSERT_NE(h.output.w16, nullptr);
    EXPECT_EQ(h.output.w, nullptr);
    EXPECT_EQ(head_storage(h), HeadStorage::F16);
    EXPECT_FALSE(h.config.tied_output);
    EXPECT_EQ(h.tok_embeddings, q.tok_embeddings) << "the embeddings stay as they were";
    const int64_t head_f32 = q.config.vocab_size * q.config.dim * 4;
    EXPECT_EQ(h.weight_bytes(), q.weight_bytes() + (tied ? head_f32 / 2 : -head_f32 / 2));

    const Model r = with_rounded_f32_head(q);
    const std::vector<int> tokens = random_tokens(q.config.vocab_size, 20, base_seed() + 1u);
    for (const int kvbits : {32, 4}) {
      KvQuantSettings kv;
      kv.bits = kvbits;
      const std::vector<float> want = session_logits(r, tokens, kv);
      const std::vector<float> got = session_logits(h, tokens, kv);
      ASSERT_EQ(want.size(), got.size());
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << "KV bits " << kvbits;
      // ... and it is not the f32 head's result (the test could fail).
      const std::vector<float> f32 = session_logits(q, tokens, kv);
      EXPECT_NE(std::memcmp(f32.data(), got.data(), f32.size() * sizeof(float)), 0);
    }
  }
}

TEST(OutputHead, BackToF32IsExactAndRepeatsAreNoOps) {
  const Model q = quantized_model(small_config(96, RopeLayout::RotateHalf, false), 4, 32, "", false,
                                  base_seed());
  Model h = q;
  store_output_head(h, HeadStorage::F16);
  const uint16_t* w16 = h.output.w16;
  store_output_head(h, HeadStorage::F16);
  EXPECT_EQ(h.output.w16, w16) << "already fp16: nothing to do";
  Model back = h;
  store_output_head(back, HeadStorage::F32);
  ASSERT_NE(back.output.w, nullptr);
  EXPECT_EQ(back.output.w16, nullptr);
  const Model r = with_rounded_f32_head(q);
  const int64_t n = q.output.out * q.output.in;
  EXPECT_EQ(std::memcmp(back.output.w, r.output.w, static_cast<size_t>(n) * sizeof(float)), 0);
}

TEST(OutputHead, RefusesAHeadOutsideFp16Range) {
  const Model q = quantized_model(small_config(96, RopeLayout::RotateHalf, false), 4, 32, "", false,
                                  base_seed());
  for (const float bad : {70000.0f, -1e30f, std::numeric_limits<float>::infinity()}) {
    Model m = q;
    const int64_t n = m.output.out * m.output.in;
    float* w = m.storage.allocate(static_cast<size_t>(n));
    std::memcpy(w, q.output.w, static_cast<size_t>(n) * sizeof(float));
    w[3 * m.output.in + 5] = bad;
    m.output.w = w;
    int64_t first = -1;
    EXPECT_FALSE(head_fits_fp16(m, &first));
    EXPECT_EQ(first, 3 * m.output.in + 5);
    try {
      store_output_head(m, HeadStorage::F16);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("[3, 5]"), std::string::npos) << msg;
      EXPECT_NE(msg.find("--head f32"), std::string::npos) << msg;
    }
    EXPECT_EQ(m.output.w, w) << "left as it was";
  }
  int64_t none = -1;
  EXPECT_TRUE(head_fits_fp16(q, &none));
  EXPECT_EQ(none, -1);
}

}  // namespace
}  // namespace wkvq
