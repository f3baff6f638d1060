// Quantized matmul at TinyLlama-1.1B shapes: int4 g128 and int8 (g128) GEMV (n = 1, decode) and
// GEMM (n = 128, prefill chunk), 1 and 2 threads. Seeded random weights (speed does not depend on
// the values). Gemv reads one W again and again (it stays in L2/L3: the kernel's compute speed);
// GemvCold rotates over copies of W totalling > 96 MiB, so W streams from DRAM as in a real decode
// step.
//
// Counters:
//   GB/s      bytes of the quantized weights (codes + fp16 scales + zeros) per second
//   vs_f32    t(matmul_f32) / t(qmatmul) on the same shape, n and threads: > 1 is faster than f32
//   f32_GB/s  bytes of the f32 weights per second in that matmul_f32 run
// Run: build/bin/wkvq_qmatmul_bench [--benchmark_filter=Gemv] [--benchmark_repetitions=9]
// On a shared machine take the best repetition: other processes only ever add time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/parallel.h"
#include "formats/weight_quant.h"
#include "kernels/matmul.h"
#include "kernels/qmatmul.h"
#include "model/linear.h"

namespace {

using wkvq::QuantizedMatrix;

constexpr int64_t kGroup = 128;
constexpr int64_t kGemmRows = 128;

struct Shape {
  int64_t out, in;
};
// TinyLlama-1.1B: q/o (2048x2048), k/v (256x2048, GQA), gate/up (5632x2048), down (2048x5632),
// output head (32000x2048).
constexpr Shape kShapes[] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};

const std::vector<float>& f32_weights(int64_t out, int64_t in) {
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<std::vector<float>>> cache;
  auto& slot = cache[{out, in}];
  if (!slot) {
    std::mt19937 rng(1234u + static_cast<uint32_t>(out * 7 + in));
    std::normal_distribution<float> normal(0.0f, 0.02f);
    slot = std::make_unique<std::vector<float>>(static_cast<size_t>(out * in));
    for (float& v : *slot) v = normal(rng);
  }
  return *slot;
}

const QuantizedMatrix& quantized(int64_t out, int64_t in, int bits) {
  static std::map<std::tuple<int64_t, int64_t, int>, std::shared_ptr<const QuantizedMatrix>> cache;
  auto& slot = cache[{out, in, bits}];
  if (!slot) {  // as inference holds it (with the tile layout where this process's kernels read it)
    slot = wkvq::inference_matrix(
        wkvq::quantize_weights_ref(f32_weights(out, in).data(), out, in, bits, kGroup));
  }
  return *slot;
}

std::vector<float> activations(int64_t count) {
  std::mt19937 rng(99u);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(count));
  for (float& v : x) v = dist(rng);
  return x;
}

// Seconds per matmul_f32 call on this shape and thread count: the best of 15 batches of ~20 ms
// (the minimum filters out time lost to other processes on a shared machine), cached.
double f32_seconds(int64_t n, int64_t out, int64_t in, int threads) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int>, double> cache;
  const auto key = std::make_tuple(n, out, in, threads);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const std::vector<float>& w = f32_weights(out, in);
  const std::vector<float> x = activations(n * in);
  std::vector<float> y(static_cast<size_t>(n * out));
  const auto t0 = std::chrono::steady_clock::now();
  wkvq::matmul_f32(x.data(), n, in, w.data(), out, y.data());  // warm up, and a first estimate
  const std::chrono::duration<double> first = std::chrono::steady_clock::now() - t0;
  const int reps = std::max(1, static_cast<int>(0.02 / std::max(first.count(), 1e-7)));
  double best = first.count();
  for (int batch = 0; batch < 15; ++batch) {
    const auto b0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) wkvq::matmul_f32(x.data(), n, in, w.data(), out, y.data());
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - b0;
    best = std::min(best, dt.count() / reps);
  }
  cache[key] = best;
  return best;
}

constexpr int64_t kColdBytes = int64_t{96} << 20;

// Args: out, in, bits, n, threads, cold (rotate over copies of W totalling > kColdBytes).
void BM_Qmatmul(benchmark::State& state) {
  const int64_t out = state.range(0);
  const int64_t in = state.range(1);
  const int bits = static_cast<int>(state.range(2));
  const int64_t n = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  const bool cold = state.range(5) != 0;
  wkvq::set_num_threads(threads);
  const QuantizedMatrix& w = quantized(out, in, bits);
  const int64_t copies = cold ? (kColdBytes + w.bytes() - 1) / w.bytes() : 1;
  std::vector<QuantizedMatrix> ws(static_cast<size_t>(copies - 1), w);
  const std::vector<float> x = activations(n * in);
  std::vector<float> y(static_cast<size_t>(n * out));
  const double t_f32 = f32_seconds(n, out, in, threads);
  int64_t c = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    wkvq::qmatmul(x.data(), n, c == 0 ? w : ws[static_cast<size_t>(c - 1)], y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    c = c + 1 == copies ? 0 : c + 1;
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - t0;
  const double t_q = elapsed.count() / static_cast<double>(state.iterations());
  state.counters["GB/s"] = static_cast<double>(w.bytes()) * 1e-9 / t_q;
  state.counters["f32_GB/s"] = static_cast<double>(out * in) * 4e-9 / t_f32;
  state.counters["vs_f32"] = t_f32 / t_q;
  state.SetLabel(std::string("int") + std::to_string(bits) + (n == 1 ? " gemv" : " gemm") +
                 " isa=" + wkvq::isa_name(wkvq::best_isa()));
}

void register_all() {
  for (const int64_t n : {int64_t{1}, kGemmRows}) {
    for (const int bits : {4, 8}) {
      for (const Shape s : kShapes) {
        for (const int threads : {1, 2}) {
          for (const int64_t cold : {0, 1}) {
            if (cold != 0 && n != 1) continue;
            const char* name = n != 1 ? "Gemm" : cold != 0 ? "GemvCold" : "Gemv";
            benchmark::RegisterBenchmark(name, BM_Qmatmul)
                ->Args({s.out, s.in, bits, n, threads, cold})
                ->ArgNames({"out", "in", "bits", "n", "threads", "cold"})
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
          }
        }
      }
    }
  }
}

const bool registered = (register_all(), true);

}  // namespace
