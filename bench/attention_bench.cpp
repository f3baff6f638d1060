// One layer's decode attention at context N for each KV cache format, at TinyLlama-1.1B's
// attention shape (32 query heads sharing 4 KV heads of 64 channels, GQA 8): N positions stored as
// one prefill chunk, then each iteration is one decode step of KvCache::attend on that layer at
// position N (its k, v stored, then N + 1 positions attended: the int scores, softmax and values of
// runtime/attention.h). 1 thread, POQ, no smoothing; seeded random q, k, v (the speed does not
// depend on the values). Args: kvbits, kvgroup (0: head_dim), N. The label names the attention
// kernels (kernels/kv_attend.h's kv_attend_kernel).
//
// Run: build/bin/wkvq_attention_bench [--benchmark_repetitions=9]
// On a shared machine take the best repetition, or count instructions of one step, which no other
// process changes:
//   valgrind --tool=callgrind --toggle-collect='*decode_step*' build/bin/wkvq_attention_bench
//       --benchmark_filter='kvbits:3/kvgroup:0/n:1024$' --benchmark_min_time=0.000001
// (one line).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "formats/kv_quant.h"
#include "model/config.h"
#include "runtime/kv_cache.h"

namespace {

wkvq::LlamaConfig tinyllama_attention(int64_t max_tokens) {
  wkvq::LlamaConfig c;
  c.dim = 2048;
  c.hidden_dim = 5632;
  c.n_layers = 1;
  c.n_heads = 32;
  c.n_kv_heads = 4;
  c.head_dim = 64;
  c.vocab_size = 32000;
  c.seq_len = static_cast<int>(max_tokens);
  return c;
}

std::vector<float> uniform(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& e : x) e = u(rng);
  return x;
}

// Kept out of line: the one function callgrind counts (--toggle-collect).
__attribute__((noinline)) void decode_step(wkvq::KvCache& cache, const float* q, const float* k,
                                           const float* v, int64_t pos, float* out) {
  cache.attend(0, q, k, v, 1, pos, out);
}

void BM_DecodeAttention(benchmark::State& state) {
  wkvq::set_num_threads(1);
  const int64_t n = state.range(2);
  const wkvq::LlamaConfig c = tinyllama_attention(n + 1);
  wkvq::KvQuantSettings kv;
  kv.bits = static_cast<int>(state.range(0));
  kv.group = state.range(1);
  wkvq::KvCache cache(c, n + 1, kv);
  const auto q = uniform(n * c.q_dim(), 1);
  const auto k = uniform((n + 1) * c.kv_dim(), 2);
  const auto v = uniform((n + 1) * c.kv_dim(), 3);
  std::vector<float> out(static_cast<size_t>(n * c.q_dim()));
  cache.attend(0, q.data(), k.data(), v.data(), n, 0, out.data());  // the context: one chunk
  const int64_t at = n * c.kv_dim();
  for (auto _ : state) {
    decode_step(cache, q.data(), k.data() + at, v.data() + at, n, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(cache.attention_kernel());
  state.counters["bits_per_element"] = cache.bits_per_element();
}

BENCHMARK(BM_DecodeAttention)
    ->ArgNames({"kvbits", "kvgroup", "n"})
    ->Args({2, 0, 1024})
    ->Args({3, 0, 1024})
    ->Args({4, 0, 1024})
    ->Args({8, 0, 1024})
    ->Args({16, 0, 1024})
    ->Args({2, 16, 1024})
    ->Args({3, 16, 1024})
    ->Args({4, 16, 1024})
    ->Args({4, 0, 4096})
    ->Args({16, 0, 4096})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
