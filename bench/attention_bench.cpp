// Decode attention of one TinyLlama-1.1B layer (32 query heads, 4 KV heads, head_dim 64) for one
// new token over n stored positions, through attend_chunk (runtime/attention.h) as decode runs
// it: POQ on (the new token in full precision), smoothing on for int storage, the best ISA.
//   decode_attention/<kvbits>/<n>   kvbits 4, 8 (int records, groups of head_dim), 16 (fp16)
//                                   or 32 (f32); Time: microseconds per call.
// Threads: OMP_NUM_THREADS. Run e.g.
//   OMP_NUM_THREADS=1 build/bin/wkvq_attention_bench --benchmark_filter='decode_attention/4/'
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "formats/kv_quant.h"
#include "runtime/attention.h"

namespace wkvq {
namespace {

constexpr int kHeads = 32, kKvHeads = 4, kHeadDim = 64, kKvDim = kKvHeads * kHeadDim;

// Cheap deterministic fill in [lo, hi): speed does not depend on the values.
void fill(std::vector<float>& v, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  uint32_t s = seed * 2654435761u + 1u;
  for (float& f : v) {
    s = s * 1664525u + 1013904223u;
    f = lo + static_cast<float>(s >> 8) * ((hi - lo) / 16777216.0f);
  }
}

// n stored positions of K and V in `bits`, and the layer that reads them.
struct StoredLayer {
  std::vector<uint8_t> k, v;
  std::vector<float> dk, sk, dv, sv;
  int64_t block = 0;
  StoredKvLayer layer;

  StoredLayer(int bits, int64_t n) : dk(kKvDim), sk(kKvDim), dv(kKvDim), sv(kKvDim) {
    fill(dk, 1, -0.1f, 0.1f);
    fill(sk, 2, 1.0f, 1.2f);
    fill(dv, 3, -0.1f, 0.1f);
    fill(sv, 4, 1.0f, 1.2f);
    StoredKvLayer& s = layer;
    s.bits = bits;
    s.kv_dim = kKvDim;
    if (bits <= 8) s.format = make_kv_format(kKvDim, kHeadDim, bits);
    s.record_bytes = bits <= 8 ? s.format.token_bytes : int64_t{kKvDim} * bits / 8;
    k.resize(static_cast<size_t>(n * s.record_bytes));
    v.resize(k.size());
    std::vector<float> x(kKvDim);
    for (int64_t j = 0; j < 2 * n; ++j) {
      fill(x, static_cast<uint32_t>(j + 10), -2.0f, 2.0f);
      uint8_t* r = (j < n ? k.data() : v.data()) + (j % n) * s.record_bytes;
      if (bits <= 8) {
        quantize_token_ref(s.format, x.data(), r);
      } else if (bits == 16) {
        for (int i = 0; i < kKvDim; ++i) {
          const uint16_t h = f32_to_fp16(x[static_cast<size_t>(i)]);
          std::memcpy(r + 2 * i, &h, 2);
        }
      } else {
        std::memcpy(r, x.data(), sizeof(float) * kKvDim);
      }
    }
    s.k = k.data();
    s.v = v.data();
    s.blocks = &block;
    s.block_tokens = n + 1;
    if (bits <= 8) {
      s.dk = dk.data();
      s.sk = sk.data();
      s.dv = dv.data();
      s.sv = sv.data();
    }
  }
};

void decode_attention(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const int64_t n = state.range(1);
  const StoredLayer stored(bits, n);
  std::vector<float> q(kHeads * kHeadDim), k(kKvDim), v(kKvDim), out(q.size());
  fill(q, 5, -2.0f, 2.0f);
  fill(k, 6);
  fill(v, 7);
  const AttentionShape shape{kHeads, kKvHeads, kHeadDim};
  for (auto _ : state) {
    attend_chunk(stored.layer, shape, true, ChunkAttention::FullPrecisionChunk, q.data(), k.data(),
                 v.data(), 1, n, out.data());
    benchmark::DoNotOptimize(out.data());
  }
}

BENCHMARK(decode_attention)
    ->ArgsProduct({{4, 8, 16, 32}, {1024, 4096}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace wkvq
