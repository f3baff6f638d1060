// Attention over the int-b KV cache (smoothing folded into the dot products, POQ, the fp16
// window) against dequantize-then-attend in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/kv_quant.h"
#include "runtime/kv_cache.h"

namespace wkvq {
namespace {

constexpr double kEps32 = 1.1920929e-7;

struct Case {
  int bits, group;
  bool poq;
  ChunkAttention mode;
  int64_t window = 0;  // the fp16 window (KvQuantSettings::window)
  int vbits = 0;       // the values' own bits (KvQuantSettings::vbits; 0: bits)
  bool rel8 = false;   // rel8 group metadata (KvQuantSettings::rel8)
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "K" << c.bits << " V" << (c.vbits != 0 ? c.vbits : c.bits) << " g" << c.group
      << (c.poq ? " POQ " : " no-POQ ")
      << (c.mode == ChunkAttention::TeacherForced ? "teacher-forced" : "prompt chunks")
      << " window " << c.window << (c.rel8 ? " rel8" : "");
}

LlamaConfig small_config() {
  LlamaConfig c;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.dim = 32;
  c.seq_len = 64;
  return c;
}

// Reference: K^, V^ of every token = smoothing undone on the dequantized record of the
// smoothed vector (the same f32 smoothing and quantize_token_ref as the cache, so the codes
// are identical); which tokens a query sees in full precision follows the POQ rules; with a
// window of W, the W most recent tokens the cache holds (those before the query under POQ, up to
// and including it without) that it does not see in full precision are read rounded to fp16.
std::vector<double> reference(const LlamaConfig& c, const Case& cs, const KvSmoothing& sm,
                              int layer, const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v, const std::vector<int64_t>& chunks,
                              double* max_abs_score_terms) {
  const int C = c.kv_dim(), hd = c.head_dim;
  const int64_t n = static_cast<int64_t>(k.size()) / C;
  const int64_t group = cs.group == 0 ? hd : cs.group;
  KvQuantFormat formats[2] = {
      make_kv_format(C, group, cs.bits, cs.rel8),
      make_kv_format(C, group, cs.vbits != 0 ? cs.vbits : cs.bits, cs.rel8)};
  if (cs.rel8) {
    for (int kv = 0; kv < 2; ++kv) formats[kv].rel8_groups = sm.rel8_groups(layer, kv);
  }
  std::vector<double> kh(k.size()), vh(v.size());
  std::vector<float> tmp(C), deq(C);
  std::vector<uint8_t> rec;
  for (int64_t t = 0; t < n; ++t) {
    for (int pass = 0; pass < 2; ++pass) {
      const KvQuantFormat& f = formats[pass];
      rec.resize(static_cast<size_t>(f.token_bytes));
      const float* x = (pass == 0 ? k : v).data() + t * C;
      const float* d = pass == 0 ? sm.dK(layer) : sm.dV(layer);
      const float* s = pass == 0 ? sm.sK(layer) : sm.sV(layer);
      for (int i = 0; i < C; ++i) tmp[i] = (x[i] - d[i]) / s[i];
      quantize_token_ref(f, tmp.data(), rec.data());
      dequantize_token_ref(f, rec.data(), deq.data());
      auto& out = pass == 0 ? kh : vh;
      for (int i = 0; i < C; ++i) out[t * C + i] = static_cast<double>(deq[i]) * s[i] + d[i];
    }
  }
  std::vector<double> out(static_cast<size_t>(n * c.q_dim()));
  int64_t chunk_start = 0, chunk_idx = 0, chunk_end = chunks[0];
  *max_abs_score_terms = 0;
  for (int64_t t = 0; t < n; ++t) {
    while (t >= chunk_end) chunk_start = chunk_end, chunk_end += chunks[++chunk_idx];
    const int64_t fp_from = !cs.poq                                         ? t + 1
                            : cs.mode == ChunkAttention::FullPrecisionChunk ? chunk_start
                                                                            : t;
    const int64_t held = cs.poq ? t : t + 1;  // the tokens the cache holds for this query
    const int64_t fp16_from = std::min(fp_from, std::max<int64_t>(0, held - cs.window));
    const auto seen = [&](const std::vector<float>& x, const std::vector<double>& dq, int64_t j,
                          int i) -> double {
      if (j >= fp_from) return x[j * C + i];
      if (j >= fp16_from) return fp16_to_f32(f32_to_fp16(x[j * C + i]));
      return dq[j * C + i];
    };
    for (int h = 0; h < c.n_heads; ++h) {
      const int c0 = h / (c.n_heads / c.n_kv_heads) * hd;
      std::vector<double> p(static_cast<size_t>(t + 1));
      double mx = -1e300;
      for (int64_t j = 0; j <= t; ++j) {
        double s = 0, terms = 0;
        for (int i = 0; i < hd; ++i) {
          const double kj = seen(k, kh, j, c0 + i);
          s += q[t * c.q_dim() + h * hd + i] * kj;
          terms += std::abs(q[t * c.q_dim() + h * hd + i]) *
                   (std::abs(kj) + 2 * std::abs(sm.dK(layer)[c0 + i]));
        }
        *max_abs_score_terms = std::max(*max_abs_score_terms, terms);
        p[j] = s / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, p[j]);
      }
      double z = 0;
      for (double& e : p) z += (e = std::exp(e - mx));
      for (int i = 0; i < hd; ++i) {
        double acc = 0;
        for (int64_t j = 0; j <= t; ++j) {
          acc += p[j] / z * seen(v, vh, j, c0 + i);
        }
        out[t * c.q_dim() + h * hd + i] = acc;
      }
    }
  }
  return out;
}

class KvCacheQuant : public ::testing::TestWithParam<Case> {};

TEST_P(KvCacheQuant, MatchesDequantizeThenAttend) {
  const Case cs = GetParam();
  const LlamaConfig c = small_config();
  const int C = c.kv_dim();
  const int64_t n = 29;
  const uint32_t seed = 99u + static_cast<uint32_t>(cs.bits * 7 + cs.group);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), us(0.5f, 2.0f);
  auto fill = [&](int64_t count, float offset) {
    std::vector<float> x(static_cast<size_t>(count));
    for (size_t i = 0; i < x.size(); ++i) x[i] = u(rng) + offset * static_cast<float>(i % 3);
    return x;
  };
  const auto q = fill(n * c.q_dim(), 0.0f), k = fill(n * C, 1.5f), v = fill(n * C, -0.7f);
  KvSmoothing sm = KvSmoothing::identity(c.n_layers, C);
  for (auto* vec : {&sm.dk, &sm.dv})
    for (float& x : *vec) x = u(rng);
  for (auto* vec : {&sm.sk, &sm.sv})
    for (float& x : *vec) x = us(rng);
  if (cs.rel8) {  // static ranges that hold most of the smoothed values and clip the rest
    KvGroupRanges r;
    r.n_layers = c.n_layers;
    r.group = cs.group == 0 ? c.head_dim : cs.group;
    r.n_groups = (C + r.group - 1) / r.group;
    const auto m = static_cast<size_t>(r.n_layers * r.n_groups);
    r.klo.assign(m, -3.0f);
    r.khi.assign(m, 6.0f);
    r.vlo.assign(m, -4.0f);
    r.vhi.assign(m, 3.0f);
    sm.set_ranges(r, "test");
  }

  KvQuantSettings st;
  st.bits = cs.bits;
  st.group = cs.group;
  st.poq = cs.poq;
  st.window = cs.window;
  st.vbits = cs.vbits;
  st.rel8 = cs.rel8;
  KvCache cache(c, c.seq_len, st, &sm);
  cache.set_chunk_attention(cs.mode);
  const int layer = 1;
  const std::vector<int64_t> chunks = {11, 1, 1, 9, 7};
  std::vector<float> out(static_cast<size_t>(n * c.q_dim()));
  int64_t pos = 0;
  for (int64_t len : chunks) {
    cache.attend(layer, q.data() + pos * c.q_dim(), k.data() + pos * C, v.data() + pos * C, len,
                 pos, out.data() + pos * c.q_dim());
    pos += len;
  }
  double terms = 0;
  const auto ref = reference(c, cs, sm, layer, q, k, v, chunks, &terms);
  // Score error: a dot of hd terms in f32 plus the smoothing terms, <= kScoreFactor * hd * eps *
  // sum|terms|; the output (|v| bounded by vmax) errs by 2 * score error * vmax + a sum of
  // (n + hd) f32 roundings of vmax.
  constexpr double kScoreFactor = 4.0;
  double vmax = 0;
  for (size_t i = 0; i < v.size(); ++i)
    vmax = std::max(vmax, std::abs(static_cast<double>(v[i])) + 4.0);
  const double score_err = kScoreFactor * c.head_dim * kEps32 * terms;
  const double tol = 2 * score_err * vmax + static_cast<double>(n + c.head_dim) * kEps32 * vmax;
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(out[i] - ref[i]));
  EXPECT_LE(worst, tol) << "seed " << seed << ", window " << cs.window << ", vbits " << cs.vbits;
}

INSTANTIATE_TEST_SUITE_P(
    Settings, KvCacheQuant,
    ::testing::Values(Case{4, 0, true, ChunkAttention::FullPrecisionChunk},
                      Case{4, 0, true, ChunkAttention::TeacherForced},
                      Case{4, 0, false, ChunkAttention::FullPrecisionChunk},
                      Case{4, 16, true, ChunkAttention::TeacherForced},      // group spans heads
                      Case{4, 4, true, ChunkAttention::FullPrecisionChunk},  // groups inside heads
                      Case{2, 0, true, ChunkAttention::TeacherForced},
                      Case{3, 0, false, ChunkAttention::TeacherForced},
                      Case{8, 12, true,
                           ChunkAttention::FullPrecisionChunk},  // groups straddle heads
                      // the fp16 window: across chunk boundaries (chunks of 11, 1, 1, 9, 7), wider
                      // than a chunk and wider than the sequence
                      Case{4, 0, true, ChunkAttention::FullPrecisionChunk, 3},
                      Case{4, 0, true, ChunkAttention::TeacherForced, 3},
                      Case{4, 0, false, ChunkAttention::FullPrecisionChunk, 2},
                      Case{4, 0, false, ChunkAttention::TeacherForced, 1},
                      Case{3, 4, true, ChunkAttention::FullPrecisionChunk, 10},
                      Case{2, 0, true, ChunkAttention::TeacherForced, 40},
                      // values with their own bits (records of two sizes in one block)
                      Case{4, 0, true, ChunkAttention::TeacherForced, 0, 2},
                      Case{4, 0, true, ChunkAttention::FullPrecisionChunk, 3, 2},
                      Case{2, 0, false, ChunkAttention::TeacherForced, 0, 8},
                      Case{3, 12, true, ChunkAttention::FullPrecisionChunk, 0, 4},
                      // rel8 metadata against static group ranges (some values clipped)
                      Case{4, 0, true, ChunkAttention::FullPrecisionChunk, 0, 0, true},
                      Case{4, 4, true, ChunkAttention::TeacherForced, 3, 2, true},
                      Case{2, 16, false, ChunkAttention::TeacherForced, 0, 0, true},
                      Case{3, 12, true, ChunkAttention::FullPrecisionChunk, 0, 8, true}));

// q (n, q_dim), k, v (n, kv_dim) uniform in [-1, 1).
std::tuple<std::vector<float>, std::vector<float>, std::vector<float>> random_qkv(
    const LlamaConfig& c, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(n * c.q_dim())), k(static_cast<size_t>(n * c.kv_dim())),
      v(k.size());
  for (auto* vec : {&q, &k, &v})
    for (float& x : *vec) x = u(rng);
  return {q, k, v};
}

// A teacher-forced chunk is exactly the same tokens decoded one at a time (same codes, same
// operations, the same fp16 window): bit-identical outputs.
class KvCacheQuantDecode : public ::testing::TestWithParam<int64_t> {};

TEST_P(KvCacheQuantDecode, TeacherForcedChunkEqualsTokenByToken) {
  const LlamaConfig c = small_config();
  const int C = c.kv_dim();
  const int64_t n = 17;
  const auto [q, k, v] = random_qkv(c, n, 3);
  KvQuantSettings st;
  st.bits = 4;
  st.window = GetParam();
  KvCache chunked(c, n, st), stepped(c, n, st);
  chunked.set_chunk_attention(ChunkAttention::TeacherForced);
  std::vector<float> a(q.size()), b(q.size());
  chunked.attend(0, q.data(), k.data(), v.data(), n, 0, a.data());
  for (int64_t t = 0; t < n; ++t) {
    stepped.attend(0, q.data() + t * c.q_dim(), k.data() + t * C, v.data() + t * C, 1, t,
                   b.data() + t * c.q_dim());
  }
  EXPECT_EQ(a, b);
}

INSTANTIATE_TEST_SUITE_P(Window, KvCacheQuantDecode, ::testing::Values(0, 1, 5));

TEST(KvCacheQuantSize, BytesAndBitsPerElement) {
  LlamaConfig c = small_config();
  KvQuantSettings st;
  st.bits = 4;  // groups of head_dim 8: 4 bytes of codes + 4 bytes of scale/min per group
  KvCache cache(c, 4, st);
  EXPECT_DOUBLE_EQ(cache.bits_per_element(), 4.0 + 32.0 / 8);
  EXPECT_EQ(cache.bytes_per_token(), 2 * c.n_layers * 2 * (4 + 4));
}

// The window's memory: W positions of fp16 K and V per layer beside the records; amortised over
// a sequence of T positions it adds 16 min(W, T) / T bits per element.
TEST(KvCacheWindow, BytesAndBitsPerElement) {
  LlamaConfig c = small_config();
  KvQuantSettings st;
  st.bits = 4;
  st.window = 16;
  KvCache cache(c, 64, st);
  EXPECT_EQ(cache.window_bytes(), 2 * c.n_layers * 16 * c.kv_dim() * 2);
  EXPECT_DOUBLE_EQ(cache.bits_per_element(), 4.0 + 32.0 / 8);  // the records alone
  EXPECT_DOUBLE_EQ(cache.bits_per_element_at(512), 8.0 + 16.0 * 16 / 512);
  EXPECT_DOUBLE_EQ(cache.bits_per_element_at(8), 8.0 + 16.0);  // the window holds all 8
}

// Values with their own bits: K records of 4 + 4 bytes per group of 8, V records of 4 + 2; the
// bits per element are the mean of the two.
TEST(KvCacheQuantSize, ValueBitsOfTheirOwn) {
  LlamaConfig c = small_config();
  KvQuantSettings st;
  st.bits = 4;
  st.vbits = 2;
  KvCache cache(c, 4, st);
  EXPECT_DOUBLE_EQ(cache.bits_per_element(), (4.0 + 32.0 / 8 + 2.0 + 32.0 / 8) / 2);
  EXPECT_EQ(cache.bytes_per_token(), c.n_layers * 2 * ((4 + 4) + (4 + 2)));
  st.bits = 16;  // an fp16 cache has no value bits of its own
  EXPECT_THROW(validate_kv_settings(st, c.kv_dim()), Error);
  st.bits = 4;
  st.vbits = 5;
  EXPECT_THROW(validate_kv_settings(st, c.kv_dim()), Error);
}

// rel8 metadata: 2 bytes per group instead of 4 (groups of 4: 4 + 4 bits per element); the cache
// refuses to store without static ranges, or with ranges of other groups, naming what to do.
TEST(KvCacheQuantSize, Rel8MetadataNeedsItsRanges) {
  const LlamaConfig c = small_config();
  KvQuantSettings st;
  st.bits = 4;
  st.rel8 = true;
  KvSmoothing sm = KvSmoothing::identity(c.n_layers, c.kv_dim());
  std::vector<float> q(static_cast<size_t>(c.q_dim()), 0.5f), kv(c.kv_dim(), 0.25f), out(q.size());
  const auto attend_one = [&](KvCache& cache) {
    cache.attend(0, q.data(), kv.data(), kv.data(), 1, 0, out.data());
  };
  try {
    KvCache cache(c, 4, st, &sm);
    attend_one(cache);
    ADD_FAILURE() << "a rel8 cache without ranges stored a token";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--calib"), std::string::npos) << e.what();
  }
  KvGroupRanges r;
  r.n_layers = c.n_layers;
  r.group = 4;  // not the cache's groups of head_dim = 8
  r.n_groups = c.kv_dim() / 4;
  for (auto* v : {&r.klo, &r.vlo}) v->assign(static_cast<size_t>(r.n_layers * r.n_groups), -1.0f);
  for (auto* v : {&r.khi, &r.vhi}) v->assign(static_cast<size_t>(r.n_layers * r.n_groups), 1.0f);
  sm.set_ranges(r, "test");
  KvCache other_groups(c, 4, st, &sm);
  EXPECT_THROW(attend_one(other_groups), Error);
  st.group = 4;
  KvCache cache(c, 4, st, &sm);
  attend_one(cache);
  EXPECT_DOUBLE_EQ(cache.bits_per_element(), 4.0 + 16.0 / 4);
  EXPECT_EQ(cache.bytes_per_token(), c.n_layers * 2 * (c.kv_dim() / 4) * (2 + 2));
  r.khi[0] = std::nanf("");
  EXPECT_THROW(sm.set_ranges(r, "test"), Error);
  st.bits = 16;  // rel8 is for int storage
  EXPECT_THROW(validate_kv_settings(st, c.kv_dim()), Error);
}

// The ring holds the positions before the next chunk only: a chunk that does not continue the
// sequence (or start again at 0) is refused, naming where it could continue.
TEST(KvCacheWindow, PositionsOutOfOrderAreRefused) {
  const LlamaConfig c = small_config();
  KvQuantSettings st;
  st.bits = 4;
  st.window = 4;
  KvCache cache(c, 32, st);
  std::vector<float> q(static_cast<size_t>(8 * c.q_dim()), 0.5f), kv(8 * c.kv_dim(), 0.25f);
  std::vector<float> out(q.size());
  cache.attend(0, q.data(), kv.data(), kv.data(), 6, 0, out.data());
  try {
    cache.attend(0, q.data(), kv.data(), kv.data(), 1, 3, out.data());
    ADD_FAILURE() << "a chunk at position 3 after 6 positions was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("continue at 6"), std::string::npos) << e.what();
  }
  cache.attend(0, q.data(), kv.data(), kv.data(), 1, 6, out.data());  // in order: fine
  cache.attend(0, q.data(), kv.data(), kv.data(), 2, 0, out.data());  // a new sequence: fine
}

// A window is for an int cache; out-of-range windows are refused with the option's name.
TEST(KvCacheWindow, SettingsAreChecked) {
  KvQuantSettings st;
  st.bits = 16;
  st.window = 8;
  EXPECT_THROW(validate_kv_settings(st, 32), Error);
  st.bits = 4;
  EXPECT_NO_THROW(validate_kv_settings(st, 32));
  st.window = -1;
  try {
    validate_kv_settings(st, 32);
    ADD_FAILURE() << "window -1 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-window"), std::string::npos) << e.what();
  }
}

// copy_prefix copies the window too: decoding on from the copy equals decoding on from the
// original (bit for bit).
TEST(KvCacheWindow, CopyPrefixCarriesTheWindow) {
  const LlamaConfig c = small_config();
  const int C = c.kv_dim();
  const int64_t n = 12;
  const auto [q, k, v] = random_qkv(c, n, 8);
  KvQuantSettings st;
  st.bits = 4;
  st.window = 3;
  KvCache a(c, n, st), b(c, n, st);
  std::vector<float> out(q.size()), x(static_cast<size_t>(c.q_dim())), y(x.size());
  for (int layer = 0; layer < c.n_layers; ++layer) {
    a.attend(layer, q.data(), k.data(), v.data(), 8, 0, out.data());
  }
  b.copy_prefix(a, 8);
  for (int layer = 0; layer < c.n_layers; ++layer) {
    const int64_t t = 8;
    a.attend(layer, &q[t * c.q_dim()], &k[t * C], &v[t * C], 1, t, x.data());
    b.attend(layer, &q[t * c.q_dim()], &k[t * C], &v[t * C], 1, t, y.data());
    EXPECT_EQ(x, y) << "layer " << layer;
  }
}

}  // namespace
}  // namespace wkvq
