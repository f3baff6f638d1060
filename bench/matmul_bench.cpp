// f32 matmul micro-benchmarks at TinyLlama-1.1B shapes (out x in), one entry per ISA:
//   gemv/<isa>/<out>x<in>        n = 1 (decode). Counter GB (shown GB=x/s): bytes of W read per
//                                second. W rotates over copies totalling > 96 MiB, so it streams
//                                from DRAM as in a real decode step (one small W would sit in
//                                cache).
//   gemv_f16/<isa>/<out>x<in>    the same with W in fp16 (matmul_f16: the output head of a
//                                quantized model); GB counts the fp16 bytes.
//   gemm/<isa>/<out>x<in>/n<n>   prefill. Counter GFLOP (shown GFLOP=x/s): 2 n in out per second.
//   read_bw                      plain read of 256 MiB, GB per second: the GEMV roofline.
// x_ref: speed-up over the reference at the same thread count, only where the reference is cheap
// to time. Threads: OMP_NUM_THREADS (the `threads` counter). Run e.g.
//   OMP_NUM_THREADS=1 build/bin/wkvq_matmul_bench --benchmark_filter='gemv|read_bw'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/matmul.h"

namespace wkvq {
namespace {

// Cheap deterministic fill in [-1, 1): speed does not depend on the values.
void fill(std::vector<float>& v, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1u;
  for (float& f : v) {
    s = s * 1664525u + 1013904223u;
    f = static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
}

// The reference is timed once per shape and thread count, and only when it takes well under a
// second; 0 otherwise.
constexpr int64_t kMaxReferenceMacs = int64_t{100} << 20;

double reference_seconds(int64_t n, int64_t in, int64_t out) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int>, double> cache;
  if (n * in * out > kMaxReferenceMacs) return 0.0;
  const auto key = std::make_tuple(n, in, out, num_threads());
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  std::vector<float> x(static_cast<size_t>(n * in));
  std::vector<float> w(static_cast<size_t>(out * in));
  std::vector<float> y(static_cast<size_t>(n * out));
  fill(x, 1);
  fill(w, 2);
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul_f32(Isa::Reference, x.data(), n, in, w.data(), out, y.data());
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  cache[key] = best;
  return best;
}

// seconds: wall time of the timed loop.
void set_common_counters(benchmark::State& state, Isa isa, int64_t n, int64_t in, int64_t out,
                         double seconds) {
  state.counters["threads"] = num_threads();
  if (isa != Isa::Reference && state.iterations() > 0) {
    const double ref = reference_seconds(n, in, out);
    if (ref > 0.0) {
      state.counters["x_ref"] = ref * static_cast<double>(state.iterations()) / seconds;
    }
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

constexpr int64_t kColdBytes = int64_t{96} << 20;

void product(Isa isa, const float* x, int64_t in, const float* w, int64_t out, float* y) {
  matmul_f32(isa, x, 1, in, w, out, y);
}
void product(Isa isa, const float* x, int64_t in, const uint16_t* w, int64_t out, float* y) {
  matmul_f16(isa, x, 1, in, w, out, y);
}

// W is float (f32) or uint16_t (fp16).
template <class W>
void bm_gemv(benchmark::State& state, Isa isa, int64_t out, int64_t in) {
  const int64_t w_elems = out * in;
  const auto w_bytes = static_cast<int64_t>(sizeof(W)) * w_elems;
  const int64_t copies = std::max<int64_t>(1, (kColdBytes + w_bytes - 1) / w_bytes);
  std::vector<float> wf(static_cast<size_t>(copies * w_elems));
  fill(wf, 3);
  std::vector<W> w(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) {
    if constexpr (sizeof(W) == 2) {
      w[i] = f32_to_fp16(wf[i]);
    } else {
      w[i] = wf[i];
    }
  }
  std::vector<float> x(static_cast<size_t>(in));
  std::vector<float> y(static_cast<size_t>(out));
  fill(x, 4);
  int64_t c = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    product(isa, x.data(), in, w.data() + c * w_elems, out, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    c = c + 1 == copies ? 0 : c + 1;
  }
  const double seconds = seconds_since(t0);
  state.counters["GB"] = benchmark::Counter(static_cast<double>(w_bytes) * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
  set_common_counters(state, isa, 1, in, out, seconds);
}

void bm_gemm(benchmark::State& state, Isa isa, int64_t out, int64_t in, int64_t n) {
  std::vector<float> w(static_cast<size_t>(out * in));
  std::vector<float> x(static_cast<size_t>(n * in));
  std::vector<float> y(static_cast<size_t>(n * out));
  fill(w, 5);
  fill(x, 6);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    matmul_f32(isa, x.data(), n, in, w.data(), out, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double seconds = seconds_since(t0);
  state.counters["GFLOP"] = benchmark::Counter(2e-9 * static_cast<double>(n * in * out),
                                               benchmark::Counter::kIsIterationInvariantRate);
  set_common_counters(state, isa, n, in, out, seconds);
}

void bm_read_bandwidth(benchmark::State& state) {
  const int64_t words = (int64_t{256} << 20) / 8;
  std::vector<uint64_t> data(static_cast<size_t>(words), 1);
  const int64_t grain = (words + num_threads() - 1) / num_threads();
  std::vector<uint64_t> sums(static_cast<size_t>(num_threads()) + 1);
  for (auto _ : state) {
    parallel_for(words, grain, [&](int64_t b, int64_t e) {
      uint64_t s = 0;
      for (int64_t i = b; i < e; ++i) s += data[static_cast<size_t>(i)];
      sums[static_cast<size_t>(b / grain)] = s;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB"] = benchmark::Counter(static_cast<double>(words) * 8e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = num_threads();
}

struct Shape {
  int64_t out, in;
};
// TinyLlama-1.1B: q/o (2048x2048), k/v (256x2048), gate/up (5632x2048), down (2048x5632),
// the classifier (32000x2048).
constexpr Shape kShapes[] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};

std::string shape_name(const Shape& s) {
  return std::to_string(s.out) + "x" + std::to_string(s.in);
}

int register_all() {
  benchmark::RegisterBenchmark("read_bw", bm_read_bandwidth)->UseRealTime();
  for (const Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Reference}) {
    if (!isa_supported(isa)) continue;
    const std::string isa_str = isa_name(isa);
    for (const Shape& s : kShapes) {
      // The reference runs only where it is quick: GEMV up to 5632x2048, no GEMM but one.
      if (isa == Isa::Reference && s.out * s.in > 5632 * 2048) continue;
      benchmark::RegisterBenchmark(("gemv/" + isa_str + "/" + shape_name(s)).c_str(),
                                   bm_gemv<float>, isa, s.out, s.in)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("gemv_f16/" + isa_str + "/" + shape_name(s)).c_str(),
                                   bm_gemv<uint16_t>, isa, s.out, s.in)
          ->UseRealTime();
    }
    for (const int64_t n : {128, 512}) {
      for (const Shape& s : kShapes) {
        if (isa == Isa::Reference && (n != 128 || s.out != 256)) continue;
        benchmark::RegisterBenchmark(
            ("gemm/" + isa_str + "/" + shape_name(s) + "/n" + std::to_string(n)).c_str(), bm_gemm,
            isa, s.out, s.in, n)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  return 0;
}

const int kRegistered = register_all();

}  // namespace
}  // namespace wkvq
