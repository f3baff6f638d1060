// The paged KV pool (runtime/kv_pool.h): block accounting as caches grow and are released, a full
// pool refusing without side effects, and attention over paged storage (every format, blocks of
// two caches interleaved in one pool) against attention in double over the stored values.
#include "runtime/kv_pool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/kv_quant.h"
#include "runtime/kv_cache.h"

namespace wkvq {
namespace {

constexpr double kEps32 = 1.1920929e-7;

LlamaConfig small_config() {
  LlamaConfig c;
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.dim = 128;
  c.seq_len = 96;
  return c;
}

KvQuantSettings kv_bits(int bits) {
  KvQuantSettings s;
  s.bits = bits;
  return s;
}

TEST(KvBlockPool, SizesFollowTheFormatAndBudget) {
  const LlamaConfig c = small_config();
  for (const int bits : {32, 16, 8, 4, 3, 2}) {
    const KvQuantSettings kv = kv_bits(bits);
    const int64_t per_block = KvBlockPool::block_bytes(c, kv, 8);
    KvBlockPool pool(c, kv, 5 * per_block + per_block / 2, 8);
    EXPECT_EQ(pool.bytes_per_block(), per_block);
    EXPECT_EQ(pool.bytes_per_block() % 64, 0);
    EXPECT_EQ(pool.total_blocks(), 5);
    EXPECT_EQ(pool.free_blocks(), 5);
    EXPECT_EQ(pool.tokens_capacity(), 40);
    // a block holds at least its positions' K and V of every layer
    const KvCache probe(c, 1, kv);
    EXPECT_GE(pool.bytes_per_block(), 8 * probe.bytes_per_token());
    EXPECT_LT(pool.bytes_per_block(), 8 * probe.bytes_per_token() + 64);
  }
  EXPECT_THROW(KvBlockPool(c, kv_bits(4), KvBlockPool::block_bytes(c, kv_bits(4), 32) - 1), Error);
  EXPECT_THROW(KvBlockPool(c, kv_bits(4), 1 << 20, 0), Error);
}

TEST(KvBlockPool, CachesTakeBlocksAsTheyGrowAndGiveThemBack) {
  const LlamaConfig c = small_config();
  const KvQuantSettings kv = kv_bits(4);
  KvBlockPool pool(c, kv, 6 * KvBlockPool::block_bytes(c, kv, 4), 4);
  std::vector<float> q(static_cast<size_t>(c.q_dim()), 0.5f), k(c.kv_dim(), 0.25f),
      v(c.kv_dim(), -0.5f), out(q.size());
  {
    KvCache cache(c, pool, 64, kv, nullptr);
    EXPECT_EQ(cache.blocks_held(), 0);
    for (int64_t pos = 0; pos < 9; ++pos) {
      for (int layer = 0; layer < c.n_layers; ++layer) {
        cache.attend(layer, q.data(), k.data(), v.data(), 1, pos, out.data());
      }
      EXPECT_EQ(cache.blocks_held(), pos / 4 + 1) << "position " << pos;
      EXPECT_EQ(pool.free_blocks(), 6 - (pos / 4 + 1));
    }
    EXPECT_TRUE(cache.reserve(16));  // one more block: positions 12..15
    EXPECT_EQ(cache.blocks_held(), 4);
    cache.release();
    EXPECT_EQ(cache.blocks_held(), 0);
    EXPECT_EQ(pool.free_blocks(), 6);
    EXPECT_TRUE(cache.reserve(5));
    EXPECT_EQ(pool.free_blocks(), 4);
  }  // the destructor gives them back
  EXPECT_EQ(pool.free_blocks(), 6);
}

TEST(KvBlockPool, FullPoolRefusesWithoutSideEffects) {
  const LlamaConfig c = small_config();
  const KvQuantSettings kv = kv_bits(16);
  KvBlockPool pool(c, kv, 5 * KvBlockPool::block_bytes(c, kv, 4), 4);
  KvCache a(c, pool, 64, kv, nullptr), b(c, pool, 64, kv, nullptr);
  ASSERT_TRUE(a.reserve(12));   // 3 blocks
  ASSERT_TRUE(b.reserve(4));    // 1 block
  EXPECT_FALSE(b.reserve(12));  // needs 2 more, 1 free
  EXPECT_EQ(b.blocks_held(), 1);
  EXPECT_EQ(pool.free_blocks(), 1);
  std::vector<float> q(static_cast<size_t>(c.q_dim()), 0.5f), k(c.kv_dim(), 0.25f),
      v(c.kv_dim(), -0.5f), out(q.size());
  std::vector<float> k3(3 * k.size(), 0.25f), v3(3 * v.size(), 0.5f), q3(3 * q.size(), 0.5f),
      out3(q3.size());
  // positions 7..9 need blocks 1 and 2 of b: only one is free
  EXPECT_TRUE(b.reserve(7));
  try {
    b.attend(0, q3.data(), k3.data(), v3.data(), 3, 7, out3.data());
    ADD_FAILURE() << "attend past the pool did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KV pool full"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pool.free_blocks(), 0);  // b took the one free block for position 7 (reserve(7))
  EXPECT_EQ(b.blocks_held(), 2);
  EXPECT_THROW(b.reserve(65), Error);  // beyond the cache's max_tokens
  a.release();
  EXPECT_EQ(pool.free_blocks(), 3);
  EXPECT_TRUE(b.reserve(10));
  b.attend(0, q3.data(), k3.data(), v3.data(), 3, 7, out3.data());
  EXPECT_EQ(pool.free_blocks(), 2);
  // a cache whose settings differ from the pool's is refused
  EXPECT_THROW(KvCache(c, pool, 64, kv_bits(4), nullptr), Error);
}

// The values a cache of `bits` stores for x (no smoothing): x itself, its fp16 rounding, or the
// dequantized int record.
std::vector<double> stored_values(const LlamaConfig& c, int bits, const std::vector<float>& x) {
  const int C = c.kv_dim();
  std::vector<double> out(x.size());
  if (bits >= 16) {
    for (size_t i = 0; i < x.size(); ++i) {
      out[i] = bits == 32 ? x[i] : fp16_to_f32(f32_to_fp16(x[i]));
    }
    return out;
  }
  const KvQuantFormat f = make_kv_format(C, c.head_dim, bits);
  std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
  std::vector<float> deq(static_cast<size_t>(C));
  for (size_t t = 0; t < x.size() / C; ++t) {
    quantize_token_ref(f, x.data() + t * C, rec.data());
    dequantize_token_ref(f, rec.data(), deq.data());
    for (int i = 0; i < C; ++i) out[t * C + i] = deq[i];
  }
  return out;
}

// Attention in double: prompt chunks under POQ (FullPrecisionChunk), the stored values (ks, vs)
// before each chunk, the chunk's own k, v within it.
std::vector<double> reference(const LlamaConfig& c, const std::vector<float>& q,
                              const std::vector<float>& k, const std::vector<float>& v,
                              const std::vector<double>& ks, const std::vector<double>& vs,
                              const std::vector<int64_t>& chunks) {
  const int C = c.kv_dim(), hd = c.head_dim, qd = c.q_dim();
  const int64_t n = static_cast<int64_t>(k.size()) / C;
  std::vector<double> out(static_cast<size_t>(n * qd));
  int64_t start = 0, idx = 0, end = chunks[0];
  for (int64_t t = 0; t < n; ++t) {
    while (t >= end) start = end, end += chunks[static_cast<size_t>(++idx)];
    for (int h = 0; h < c.n_heads; ++h) {
      const int c0 = h / (c.n_heads / c.n_kv_heads) * hd;
      std::vector<double> p(static_cast<size_t>(t + 1));
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j <= t; ++j) {
        double s = 0;
        for (int i = 0; i < hd; ++i) {
          s += q[t * qd + h * hd + i] * (j < start ? ks[j * C + c0 + i] : k[j * C + c0 + i]);
        }
        p[j] = s / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, p[j]);
      }
      for (double& e : p) z += (e = std::exp(e - mx));
      for (int i = 0; i < hd; ++i) {
        double acc = 0;
        for (int64_t j = 0; j <= t; ++j) {
          acc += p[j] / z * (j < start ? vs[j * C + c0 + i] : v[j * C + c0 + i]);
        }
        out[t * qd + h * hd + i] = acc;
      }
    }
  }
  return out;
}

struct Sequence {
  std::vector<float> q, k, v, out;
};

Sequence random_sequence(const LlamaConfig& c, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Sequence s;
  for (auto [vec, width] : {std::pair{&s.q, c.q_dim()}, {&s.k, c.kv_dim()}, {&s.v, c.kv_dim()}}) {
    vec->resize(static_cast<size_t>(n * width));
    for (float& x : *vec) x = u(rng);
  }
  s.out.assign(s.q.size(), 0.0f);
  return s;
}

// Two caches of one pool (blocks of 5 positions) fed alternately chunk by chunk, so their blocks
// interleave in the pool: each equals the double reference over its own stored values. Tolerance
// as in attention_test: a score of hd products of |q|, |k| <= 1 (int: |x^| <= 1 + s/2 < 1.2) errs
// by <= hd * eps * sum|q||k|; softmax turns it into a relative probability error <= 2x that; the
// output, a convex combination of |v| <= 1.2, adds a sum of n + hd f32 roundings.
TEST(KvBlockPool, PagedAttentionOfInterleavedCachesMatchesReference) {
  const LlamaConfig c = small_config();
  const std::vector<int64_t> chunks = {7, 1, 1, 12, 1, 3, 1};
  int64_t n = 0;
  for (const int64_t len : chunks) n += len;
  // {key bits, value bits}: the values' own bits give records of two sizes in every block
  for (const auto& [bits, vbits] :
       {std::pair{32, 32}, {16, 16}, {8, 8}, {4, 4}, {3, 3}, {2, 2}, {4, 2}, {2, 8}}) {
    KvQuantSettings kv = kv_bits(bits);
    if (vbits != bits) kv.vbits = vbits;
    KvBlockPool pool(c, kv, 16 * KvBlockPool::block_bytes(c, kv, 5), 5);
    KvCache a(c, pool, n, kv, nullptr), b(c, pool, n, kv, nullptr);
    Sequence sa = random_sequence(c, n, 10u + static_cast<uint32_t>(bits));
    Sequence sb = random_sequence(c, n, 50u + static_cast<uint32_t>(bits));
    const int layer = 1, C = c.kv_dim(), qd = c.q_dim();
    int64_t pos = 0;
    for (const int64_t len : chunks) {
      for (auto [cache, s] : {std::pair{&a, &sa}, {&b, &sb}}) {
        cache->attend(layer, s->q.data() + pos * qd, s->k.data() + pos * C, s->v.data() + pos * C,
                      len, pos, s->out.data() + pos * qd);
      }
      pos += len;
    }
    EXPECT_EQ(a.blocks_held(), (n + 4) / 5);
    const double hd = c.head_dim, vmax = 1.2;
    const double score_err = hd * hd * vmax * kEps32 / std::sqrt(hd);
    const double tol = 2 * score_err * vmax + static_cast<double>(n + c.head_dim) * kEps32 * vmax;
    for (const Sequence* s : {&sa, &sb}) {
      const auto ref = reference(c, s->q, s->k, s->v, stored_values(c, bits, s->k),
                                 stored_values(c, vbits, s->v), chunks);
      double worst = 0;
      for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(s->out[i] - ref[i]));
      EXPECT_LE(worst, tol) << bits << "-bit K, " << vbits << "-bit V cache, sequence "
                            << (s == &sa ? "a" : "b");
    }
  }
}

// contiguous_f32_layer describes plain arrays as one block: attend_chunk over it equals the f32
// cache (blocks of 32 positions) on the same data.
TEST(KvBlockPool, ContiguousF32LayerMatchesTheCache) {
  const LlamaConfig c = small_config();
  const int64_t n = 70;
  Sequence s = random_sequence(c, n, 7);
  KvCache cache(c, n);
  cache.attend(0, s.q.data(), s.k.data(), s.v.data(), n, 0, s.out.data());
  std::vector<float> out(s.q.size());
  const StoredKvLayer flat = contiguous_f32_layer(s.k.data(), s.v.data(), c.kv_dim(), n);
  attend_chunk(flat, {c.n_heads, c.n_kv_heads, c.head_dim}, true, ChunkAttention::TeacherForced,
               s.q.data(), s.k.data(), s.v.data(), n, 0, out.data());
  // teacher-forced reads every earlier position from the store, the prompt chunk none: both see
  // the same f32 values, so the results agree to f32 rounding of the same sums
  const double tol = 4 * static_cast<double>(n + c.head_dim) * kEps32;
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], s.out[i], tol) << i;
}

}  // namespace
}  // namespace wkvq
