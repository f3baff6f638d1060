// The KV lab (src/kvlab): honest bits against hand counts, the codecs against hand-computed
// codes, the simulated store against an independent formulation of each method's decode loop,
// chunked evaluation against token-by-token decoding, and the rotations exact in full precision.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kvlab/kv_codecs.h"
#include "kvlab/kv_lab_method.h"
#include "kvlab/kv_method.h"
#include "kvlab/kv_sweep.h"
#include "kvlab/sim_kv_store.h"
#include "model/forward.h"
#include "model/random_model.h"
#include "runtime/kv_cache.h"
#include "runtime/session.h"
#include "unit/kvlab_fixture.h"

namespace wkvq {
namespace {

using namespace kvlabtest;  // NOLINT(google-build-using-namespace): test helpers

const KvShape kStories{32, 8};  // stories260K: 4 KV heads of 8
const KvShape kHd64{256, 64};   // 4 KV heads of 64

double bits(const std::string& spec, const KvShape& s, int64_t ctx = 512) {
  return kv_bits_per_element(parse_kv_method(spec), s, ctx);
}

// Hand counts: codes + metadata per element, fp16 windows as their share of the context.
TEST(KvLabBits, HandCounts) {
  EXPECT_DOUBLE_EQ(bits("q4_0", kStories), (32 * 4 + 16) / 32.0);             // 4.5
  EXPECT_DOUBLE_EQ(bits("q4_1", kStories), (32 * 4 + 16 + 16) / 32.0);        // 5
  EXPECT_DOUBLE_EQ(bits("wkvq:b=4,g=8", kStories), (8 * 4 + 32) / 8.0);       // 8: today's default
  EXPECT_DOUBLE_EQ(bits("wkvq2d:b=4,g=32", kStories), (32 * 4 + 16) / 32.0);  // 4.5
  EXPECT_DOUBLE_EQ(bits("wkvq2d:b=2,g=32", kStories), (32 * 2 + 16) / 32.0);  // 2.5
  EXPECT_DOUBLE_EQ(bits("wkvq:b=4,g=64", kHd64), (64 * 4 + 32) / 64.0);       // 4.5
  EXPECT_DOUBLE_EQ(bits("wkvq:b=4", kHd64), (64 * 4 + 32) / 64.0);            // g0 = head_dim
  EXPECT_DOUBLE_EQ(bits("turbo:b=3", kHd64), (64 * 3 + 16) / 64.0);   // one fp16 norm per head
  EXPECT_DOUBLE_EQ(bits("turbo:b=2", kStories), (8 * 2 + 16) / 8.0);  // 4
  // KIVI b2 g32 r32 at 512: keys 2 + 32/32 (scale, min per channel per 32 tokens), values
  // 2 + 32/32 (per token group of 32 channels); 32 of 512 tokens in fp16
  EXPECT_DOUBLE_EQ(bits("kivi:b=2,g=32,r=32", kStories), (480 * 3.0 + 32 * 16.0) / 512.0);
  // a window of 16 fp16 tokens on wkvq2d b4 g32
  EXPECT_DOUBLE_EQ(bits("wkvq2d:b=4,g=32,w=16", kStories), (496 * 4.5 + 16 * 16.0) / 512.0);
  EXPECT_DOUBLE_EQ(bits("fp16", kStories), 16.0);
}

TEST(KvLabBits, BudgetPicksTheMostBitsWithin) {
  auto pick = [](const std::string& m, const KvShape& s, double budget) {
    const auto c = kv_config_for_budget(parse_kv_method(m), s, 512, budget);
    return c ? c->label() : std::string("none");
  };
  EXPECT_EQ(pick("wkvq", kStories, 4.5), "wkvq b3 g32");  // b4 needs g >= 64 > 32 channels
  EXPECT_EQ(pick("wkvq2d", kStories, 4.5), "wkvq2d b4 g32");
  EXPECT_EQ(pick("wkvq2d", kStories, 2.5), "wkvq2d b2 g32");
  EXPECT_EQ(pick("wkvq", kStories, 2.5), "none");
  EXPECT_EQ(pick("q4_0", kStories, 4.5), "q4_0");
  EXPECT_EQ(pick("q4_1", kStories, 4.5), "none");
  EXPECT_EQ(pick("turbo", kHd64, 3.5), "turbo b3");
  // given bits or group stay fixed: g16 and a window of 16 at 4.5 -> b3 ((3 + 1) 496 + 16 16) / 512
  EXPECT_EQ(pick("wkvq2d:g=16,w=16", kStories, 4.5), "wkvq2d b3 g16 w16");
  EXPECT_EQ(pick("wkvq:b=4", kStories, 4.5), "none");
}

TEST(KvLabParse, ErrorsNameTheProblem) {
  EXPECT_THROW(parse_kv_method("q5_0"), Error);
  EXPECT_THROW(parse_kv_method("wkvq:b=9"), Error);
  EXPECT_THROW(parse_kv_method("wkvq:x=1"), Error);
  EXPECT_THROW(parse_kv_method("q4_0:b=3"), Error);
  EXPECT_THROW(parse_kv_method("kivi:g=32,r=48"), Error);  // r not a multiple of g
  EXPECT_THROW(parse_kv_method("wkvq:b"), Error);
  EXPECT_EQ(parse_kv_method("kivi:b=4,g=16,r=64,w=2").label(), "kivi b4 g16 r64 w2");
  EXPECT_THROW(check_kv_method(parse_kv_method("q4_0"), {24, 8}), Error);
  EXPECT_THROW(check_kv_method(parse_kv_method("quarot"), {24, 12}), Error);
}

// q4_0 by hand: x_j = j - 16: the largest magnitude is -16, d = -16 / -8 = 2, id = 0.5,
// q = min(15, trunc(x / 2 + 8.5)), x^ = (q - 8) * 2.
TEST(KvLabCodecs, Q4_0ByHand) {
  std::vector<float> x(32), out(32);
  std::vector<uint8_t> q(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  q4_0_round_trip(x.data(), 32, out.data(), q.data());
  for (int j = 0; j < 32; ++j) {
    const int want = std::min(15, static_cast<int>(std::trunc((j - 16) / 2.0 + 8.5)));
    EXPECT_EQ(q[j], want) << j;
    EXPECT_EQ(out[j], static_cast<float>(want - 8) * 2.0f) << j;
  }
  EXPECT_EQ(q[0], 0);    // -16 -> 0.5 -> 0
  EXPECT_EQ(q[31], 15);  // 15 -> 16 -> clamped to 15
}

// q4_1 by hand: x_j = j / 4 on [0, 7.75]: d = 7.75 / 15, q = trunc(x / d + 0.5) = round half up;
// a constant block decodes to fp16(min).
TEST(KvLabCodecs, Q4_1ByHand) {
  std::vector<float> x(32), out(32);
  std::vector<uint8_t> q(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j) / 4.0f;
  q4_1_round_trip(x.data(), 32, out.data(), q.data());
  const float d = 7.75f / 15.0f;
  const float dh = fp16_to_f32(f32_to_fp16(d));
  for (int j = 0; j < 32; ++j) {
    const int want = std::min(15, static_cast<int>(std::trunc(x[j] * (1.0f / d) + 0.5f)));
    EXPECT_EQ(q[j], want) << j;
    EXPECT_EQ(out[j], static_cast<float>(want) * dh) << j;
  }
  std::vector<float> c(32, 0.1f);
  q4_1_round_trip(c.data(), 32, out.data());
  for (float o : out) EXPECT_EQ(o, fp16_to_f32(f32_to_fp16(0.1f)));
}

// The lab's rel8 round trip is the runtime's records: quantize_token_ref then
// dequantize_token_ref with rel8 metadata against the same levels gives the same floats, inside
// the static ranges and beyond them (the tails).
TEST(KvLabCodecs, Rel8IsTheRuntimeRecord) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const KvRel8Group groups[2] = {make_kv_rel8_group(-1.0f, 1.0f), make_kv_rel8_group(-2.0f, 2.0f)};
  for (int bits : {2, 3, 4, 8}) {
    KvQuantFormat f = make_kv_format(32, 16, bits, true);
    f.rel8_groups = groups;
    std::vector<float> x(32), out(32), back(32);
    std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
    for (int rep = 0; rep < 50; ++rep) {
      const float spread = rep % 5 == 0 ? 6.0f : 1.0f;  // every fifth token beyond the ranges
      for (int i = 0; i < 32; ++i) x[i] = u(rng) * spread * (i < 16 ? 1.0f : 2.0f);
      rel8_groups_round_trip(x.data(), 32, 16, bits, groups, out.data());
      quantize_token_ref(f, x.data(), rec.data());
      dequantize_token_ref(f, rec.data(), back.data());
      EXPECT_EQ(out, back) << "bits " << bits << " rep " << rep;
    }
  }
}

TEST(KvLabCodecs, HadamardIsOrthonormalAndItsOwnInverse) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8}, y = x;
  hadamard_in_place(y.data(), 8);
  double n0 = 0, n1 = 0;
  for (int i = 0; i < 8; ++i) n0 += x[i] * x[i], n1 += y[i] * y[i];
  EXPECT_NEAR(n0, n1, 1e-4);
  EXPECT_NEAR(y[0], 36.0 / std::sqrt(8.0), 1e-5);  // first row: all ones / sqrt(8)
  hadamard_in_place(y.data(), 8);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(y[i], x[i], 1e-5);
}

// Lloyd-Max levels: dim 3 gives the uniform density on [-1, 1] (levels at the cell centres);
// a large dim approaches N(0, 1/dim), whose 1- and 2-bit Lloyd-Max levels are +-0.7979 and
// +-0.4528, +-1.5104 standard deviations (Max 1960).
TEST(KvLabCodecs, LloydMaxKnownCases) {
  const auto u = lloyd_max_unit_coordinate(3, 2);
  const double want[4] = {-0.75, -0.25, 0.25, 0.75};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(u[i], want[i], 1e-5);
  const double sd = 1.0 / std::sqrt(4096.0);
  const auto g1 = lloyd_max_unit_coordinate(4096, 1);
  EXPECT_NEAR(g1[1] / sd, 0.7979, 2e-3);
  const auto g2 = lloyd_max_unit_coordinate(4096, 2);
  EXPECT_NEAR(g2[2] / sd, 0.4528, 2e-3);
  EXPECT_NEAR(g2[3] / sd, 1.5104, 3e-3);
}

// The view of KIVI's cache by its own decode loop (the KIVI paper's Algorithm 1, as a queue):
// keys go to a full-precision residual that is quantized (per channel, groups of g tokens) and
// emptied when it holds r tokens; values go to a full-precision queue whose oldest token is
// quantized (per token) when it holds more than r.
void kivi_view(const KvLabMethod& m, const std::vector<float>& k, const std::vector<float>& v,
               int64_t tokens, int64_t C, std::vector<float>& vk, std::vector<float>& vv) {
  const int64_t r = m.spec().residual;
  vk.assign(static_cast<size_t>(tokens * C), 0.0f);
  vv = vk;
  std::deque<int64_t> key_res, val_res;
  auto fp16 = [](float x) { return fp16_to_f32(f32_to_fp16(x)); };
  for (int64_t t = 0; t < tokens; ++t) {
    key_res.push_back(t);
    if (static_cast<int64_t>(key_res.size()) == r) {
      m.round_trip_keys(0, &k[key_res.front() * C], r, key_res.front(), &vk[key_res.front() * C]);
      key_res.clear();
    }
    val_res.push_back(t);
    if (static_cast<int64_t>(val_res.size()) > r) {
      m.round_trip_values(0, &v[val_res.front() * C], 1, &vv[val_res.front() * C]);
      val_res.pop_front();
    }
  }
  for (int64_t j : key_res)
    for (int64_t c = 0; c < C; ++c) vk[j * C + c] = fp16(k[j * C + c]);
  for (int64_t j : val_res)
    for (int64_t c = 0; c < C; ++c) vv[j * C + c] = fp16(v[j * C + c]);
}

// Attention of one query head over view rows [0, t) and the current k_t, v_t, in double.
void naive_attend(const LlamaConfig& c, const float* q, const std::vector<float>& vk,
                  const std::vector<float>& vv, const float* kt, const float* vt, int64_t t,
                  std::vector<double>& out) {
  const int hd = c.head_dim, C = c.kv_dim();
  out.assign(static_cast<size_t>(c.n_heads * hd), 0.0);
  for (int h = 0; h < c.n_heads; ++h) {
    const int c0 = (h / (c.n_heads / c.n_kv_heads)) * hd;
    std::vector<double> s(static_cast<size_t>(t + 1));
    for (int64_t j = 0; j <= t; ++j) {
      const float* kj = j < t ? &vk[j * C + c0] : kt + c0;
      double d = 0;
      for (int i = 0; i < hd; ++i) d += static_cast<double>(q[h * hd + i]) * kj[i];
      s[j] = d / std::sqrt(static_cast<double>(hd));
    }
    double mx = s[0], z = 0;
    for (double x : s) mx = std::max(mx, x);
    for (double& x : s) z += (x = std::exp(x - mx));
    for (int64_t j = 0; j <= t; ++j) {
      const float* vj = j < t ? &vv[j * C + c0] : vt + c0;
      for (int i = 0; i < hd; ++i) out[h * hd + i] += s[j] / z * vj[i];
    }
  }
}

// Chunked attention through the store equals KIVI's own decode loop token by token, and
// equals the same store fed one token at a time (bit for bit).
TEST(KvLabStore, KiviChunkEqualsItsDecodeLoop) {
  const LlamaConfig c = lab_config();
  const int64_t C = c.kv_dim(), n = 70, qd = c.q_dim();
  const KvLabMethod m(parse_kv_method("kivi:b=2,g=8,r=16"), c, nullptr, nullptr);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> q(n * qd), k(n * C), v(n * C);
  for (auto* a : {&q, &k, &v})
    for (float& x : *a) x = u(rng);
  SimKvStore chunked(m, c, n, true), stepped(m, c, n, true);
  std::vector<float> a(q.size()), b(q.size());
  chunked.attend(0, q.data(), k.data(), v.data(), 45, 0, a.data());  // two chunks
  chunked.attend(0, &q[45 * qd], &k[45 * C], &v[45 * C], n - 45, 45, &a[45 * qd]);
  for (int64_t t = 0; t < n; ++t) {
    stepped.attend(0, &q[t * qd], &k[t * C], &v[t * C], 1, t, &b[t * qd]);
  }
  EXPECT_EQ(a, b);
  std::vector<float> vk, vv;
  std::vector<double> ref;
  double worst = 0;
  for (int64_t t = 0; t < n; ++t) {
    kivi_view(m, k, v, t, C, vk, vv);
    naive_attend(c, &q[t * qd], vk, vv, &k[t * C], &v[t * C], t, ref);
    for (int64_t i = 0; i < qd; ++i) worst = std::max(worst, std::fabs(ref[i] - a[t * qd + i]));
  }
  // f32 softmax and sums over <= 70 terms of |v| <= 1: a few hundred ulps of 1 at most
  EXPECT_LE(worst, 1e-5);
}

// A window of w fp16 tokens: token t reads tokens [t - w, t) in fp16, older ones round-tripped.
TEST(KvLabStore, WindowKeepsTheLastTokensInFp16) {
  const LlamaConfig c = lab_config();
  const int64_t C = c.kv_dim(), n = 30, qd = c.q_dim(), w = 5;
  const KvLabMethod m(parse_kv_method("q4_0:w=5"), c, nullptr, nullptr);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> q(n * qd), k(n * C), v(n * C);
  for (auto* a : {&q, &k, &v})
    for (float& x : *a) x = u(rng);
  SimKvStore s(m, c, n, true);
  std::vector<float> out(q.size());
  s.attend(0, q.data(), k.data(), v.data(), n, 0, out.data());
  std::vector<float> vk(n * C), vv(n * C);
  std::vector<double> ref;
  double worst = 0;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < t; ++j) {
      if (j < t - w) {
        q4_0_round_trip(&k[j * C], C, &vk[j * C]);
        q4_0_round_trip(&v[j * C], C, &vv[j * C]);
      } else {
        for (int64_t i = 0; i < C; ++i) {
          vk[j * C + i] = fp16_to_f32(f32_to_fp16(k[j * C + i]));
          vv[j * C + i] = fp16_to_f32(f32_to_fp16(v[j * C + i]));
        }
      }
    }
    naive_attend(c, &q[t * qd], vk, vv, &k[t * C], &v[t * C], t, ref);
    for (int64_t i = 0; i < qd; ++i) worst = std::max(worst, std::fabs(ref[i] - out[t * qd + i]));
  }
  EXPECT_LE(worst, 1e-5);
}

// KVQuant-style keys: RoPE undone, each channel in its static range (b bits), RoPE redone. RoPE
// is a rotation of each head, so a head's error norm is that of the pre-RoPE codes: at most
// sqrt(hd) half-steps (plus f32 rounding of the two rotations); and the codes are taken before
// RoPE, so the same key at another position gives another (rotated) result.
TEST(KvLabMethodTest, KvQuantQuantizesKeysBeforeRope) {
  const LlamaConfig c = lab_config();
  const int64_t C = c.kv_dim(), n = 10;
  KvGroupRanges r;
  r.n_layers = c.n_layers;
  r.n_groups = C;
  r.klo.assign(static_cast<size_t>(c.n_layers * C), -2.0f);
  r.khi.assign(r.klo.size(), 2.0f);
  r.vlo = r.klo;
  r.vhi = r.khi;
  const KvLabMethod m(parse_kv_method("kvquant:b=4"), c, nullptr, &r);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> k(n * C), out(k.size()), out0(k.size());
  for (float& x : k) x = u(rng);
  m.round_trip_keys(0, k.data(), n, 5, out.data());
  m.round_trip_keys(0, k.data(), n, 0, out0.data());
  const double bound = std::sqrt(8.0) * (4.0 / 15.0) / 2.0 + 1e-5;
  double moved = 0;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < C / 8; ++h) {
      double e = 0;
      for (int64_t i = 0; i < 8; ++i) {
        const size_t at = static_cast<size_t>(t * C + h * 8 + i);
        e += (out[at] - k[at]) * (out[at] - k[at]);
        moved = std::max(moved, static_cast<double>(std::fabs(out[at] - out0[at])));
      }
      EXPECT_LE(std::sqrt(e), bound);
    }
  }
  EXPECT_GT(moved, 1e-3);  // the position matters: the grid is the pre-RoPE one
  EXPECT_DOUBLE_EQ(kv_bits_per_element(m.spec(), m.shape(), 512), 4.0 + 16.0 / 8.0);
}

// The rotations are exact in full precision: with no quantizer (b=0), QuaRot's Hadamard
// rotation, and smoothing then rotation, give the logits of the plain f32 cache within f32
// rounding (the rotation and its inverse: a few ulps per element, relative to the logits' size).
TEST(KvLabStore, RotationsAreExactInFullPrecision) {
  const LlamaConfig c = lab_config();
  const Model model = make_random_model(c, 21);
  std::vector<int> toks(40);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int>((i * 7 + 3) % 48);
  KvCache plain(c, 40);
  plain.set_chunk_attention(ChunkAttention::TeacherForced);
  const auto want = store_logits(model, toks, plain, false);
  KvSmoothing sm = KvSmoothing::identity(c.n_layers, c.kv_dim());
  for (size_t i = 0; i < sm.dk.size(); ++i) {
    sm.dk[i] = 0.1f * static_cast<float>(i % 5);
    sm.sk[i] = 0.5f + 0.1f * static_cast<float>(i % 7);
    sm.dv[i] = -0.05f * static_cast<float>(i % 3);
    sm.sv[i] = 1.5f - 0.1f * static_cast<float>(i % 4);
  }
  float scale = 0;
  for (float x : want) scale = std::max(scale, std::fabs(x));
  for (const char* spec : {"quarot:b=0", "wkvq-rot:b=0"}) {
    const KvLabMethod m(parse_kv_method(spec), c, &sm, nullptr);
    SimKvStore s(m, c, 40, true);
    const auto got = store_logits(model, toks, s, false);
    float worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
    // the view's fp16 rounding is not involved (nothing kept in fp16 without windows)
    EXPECT_LE(worst, 64 * 1.2e-7f * scale) << spec;
    EXPECT_GT(scale, 0.1f);
  }
}

// The evaluation (one teacher-forced pass over the window) equals true token-by-token decoding
// through the same store, for methods whose view changes with time and for one whose does not;
// the model's matmuls batch differently (n rows vs one), so within f32 rounding of the logits.
TEST(KvLabStore, TeacherForcedEqualsTokenByToken) {
  const LlamaConfig c = lab_config();
  const Model model = make_random_model(c, 22);
  std::vector<int> toks(60);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int>((i * 11 + 5) % 48);
  for (const char* spec : {"kivi:b=2,g=8,r=16", "q4_0:w=4", "turbo:b=2"}) {
    const KvLabMethod m(parse_kv_method(spec), c, nullptr, nullptr);
    SimKvStore a(m, c, 60, true), b(m, c, 60, true);
    const auto chunk = store_logits(model, toks, a, false);
    const auto step = store_logits(model, toks, b, true);
    EXPECT_LE(relative_gap(chunk, step), 1e-3f) << spec;  // a code may flip at a boundary
  }
}

}  // namespace
}  // namespace wkvq
