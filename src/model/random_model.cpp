#include "model/random_model.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "io/hf_config.h"
#include "model/linear.h"
#include "model/loader.h"
#include "model/output_head.h"

namespace wkvq {

namespace {

// An f32 Linear viewing w (out, in) row-major.
Linear f32_linear(int64_t out, int64_t in, const float* w) {
  Linear lin;
  lin.out = out;
  lin.in = in;
  lin.w = w;
  return lin;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// One tensor to fill: values uniform in center +- half_width.
struct FillJob {
  float* dst;
  int64_t n;
  float center;
  float half_width;
};

// An owned buffer left uninitialised (unlike WeightStorage::allocate, which zeroes): the
// parallel fill below is the first touch of every page, so page faults spread over the threads
// too (zeroing 4 GB of TinyLlama-shaped weights first took longer than generating them).
float* uninitialized_buffer(WeightStorage& storage, size_t n) {
  std::shared_ptr<float[]> buf = std::make_shared_for_overwrite<float[]>(n);
  float* p = buf.get();
  storage.holders.push_back(std::shared_ptr<const void>(buf, p));
  return p;
}

constexpr int64_t kChunk = int64_t{1} << 16;

void fill_chunk(const FillJob& job, uint64_t tensor_seed, int64_t chunk) {
  uint64_t state = splitmix64(tensor_seed ^ splitmix64(static_cast<uint64_t>(chunk)));
  const int64_t b = chunk * kChunk;
  const int64_t e = std::min(job.n, b + kChunk);
  for (int64_t i = b; i < e; ++i) {
    state += 0x9e3779b97f4a7c15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * 0x1.0p-24f;  // [0, 1)
    job.dst[i] = job.center + job.half_width * (2.0f * u - 1.0f);
  }
}

}  // namespace

namespace {

// The tensors of a random model in a fixed order (the order decides each tensor's seed): jobs
// whose dst is null are linears (lin set) filled later, one at a time, when quantizing.
struct RandomPlan {
  std::vector<FillJob> jobs;
  std::vector<Linear*> linears;  // per job: the linear it is (null for other tensors)
  std::vector<uint64_t> seeds;
};

void fill_jobs(const std::vector<FillJob>& jobs, const std::vector<uint64_t>& seeds,
               const std::vector<size_t>& which) {
  // Flatten (tensor, chunk) pairs so the big tensors spread over all threads.
  struct Piece {
    size_t job;
    int64_t chunk;
  };
  std::vector<Piece> pieces;
  for (const size_t j : which) {
    for (int64_t ch = 0; ch * kChunk < jobs[j].n; ++ch) pieces.push_back({j, ch});
  }
  parallel_for(static_cast<int64_t>(pieces.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Piece& p = pieces[static_cast<size_t>(i)];
      fill_chunk(jobs[p.job], seeds[p.job], p.chunk);
    }
  });
}

// Lays out m's tensors; buffers are allocated now for every tensor but the linears when
// `defer_linears` (those are generated and quantized one by one).
RandomPlan plan_random_model(Model& m, uint64_t seed, bool defer_linears) {
  const LlamaConfig& c = m.config;
  const int64_t dim = c.dim, hidden = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  const int64_t vocab = c.vocab_size;
  RandomPlan plan;
  auto tensor = [&](int64_t n, float center, float half_width) {
    float* p = uninitialized_buffer(m.storage, static_cast<size_t>(n));
    plan.jobs.push_back({p, n, center, half_width});
    plan.linears.push_back(nullptr);
    return p;
  };
  auto linear = [&](Linear& lin, int64_t out, int64_t in) {
    const float hw = 1.0f / std::sqrt(static_cast<float>(in));
    if (defer_linears) {
      lin = f32_linear(out, in, nullptr);
      plan.jobs.push_back({nullptr, out * in, 0.0f, hw});
      plan.linears.push_back(&lin);
    } else {
      lin = f32_linear(out, in, tensor(out * in, 0.0f, hw));
    }
  };
  auto norm = [&]() { return tensor(dim, 1.0f, 0.05f); };

  m.tok_embeddings = tensor(vocab * dim, 0.0f, 1.0f);
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (LayerWeights& lw : m.layers) {
    lw.attn_norm = norm();
    linear(lw.wq, q, dim);
    linear(lw.wk, kv, dim);
    linear(lw.wv, kv, dim);
    linear(lw.wo, dim, q);
    if (c.qkv_bias) {
      lw.wq.bias = tensor(q, 0.0f, 0.1f);
      lw.wk.bias = tensor(kv, 0.0f, 0.1f);
      lw.wv.bias = tensor(kv, 0.0f, 0.1f);
    }
    if (c.o_bias) lw.wo.bias = tensor(dim, 0.0f, 0.1f);
    if (c.qk_norm) {
      lw.q_norm = tensor(c.head_dim, 1.0f, 0.05f);
      lw.k_norm = tensor(c.head_dim, 1.0f, 0.05f);
    }
    lw.ffn_norm = norm();
    linear(lw.w_gate, hidden, dim);
    linear(lw.w_up, hidden, dim);
    linear(lw.w_down, dim, hidden);
  }
  m.final_norm = norm();
  if (c.tied_output) {
    m.output = f32_linear(vocab, dim, m.tok_embeddings);
  } else {
    m.output = f32_linear(vocab, dim,
                          tensor(vocab * dim, 0.0f, 1.0f / std::sqrt(static_cast<float>(dim))));
  }
  for (size_t j = 0; j < plan.jobs.size(); ++j) {
    plan.seeds.push_back(splitmix64(seed ^ splitmix64(j)));
  }
  return plan;
}

}  // namespace

Model make_random_model(const LlamaConfig& config, uint64_t seed) {
  config.validate("random model shape");
  Model m;
  m.config = config;
  m.source = "random weights (seed " + std::to_string(seed) + ")";
  const RandomPlan plan = plan_random_model(m, seed, false);
  std::vector<size_t> all(plan.jobs.size());
  for (size_t j = 0; j < all.size(); ++j) all[j] = j;
  fill_jobs(plan.jobs, plan.seeds, all);
  return m;
}

Model make_random_quantized_model(const LlamaConfig& config, uint64_t seed,
                                  const RandomQuantization& rq) {
  config.validate("random model shape");
  const WeightQuantOptions& wo = rq.weights;
  Model m;
  m.config = config;
  m.source = "random weights (seed " + std::to_string(seed) + ")";
  m.quant.method = "rtn";
  m.quant.wbits = wo.bits;
  m.quant.wgroup = wo.group;
  const RandomPlan plan = plan_random_model(m, seed, true);
  std::vector<size_t> small, deferred;
  for (size_t j = 0; j < plan.jobs.size(); ++j) {
    (plan.linears[j] != nullptr ? deferred : small).push_back(j);
  }
  fill_jobs(plan.jobs, plan.seeds, small);
  // The tables first, while nothing else is large: their f32 values are let go once stored.
  if (config.tied_output && rq.embed == rq.head) {
    store_embeddings(m, rq.embed);
  } else {
    store_output_head(m, rq.head);
    store_embeddings(m, rq.embed);
  }
  // Each linear generated into one thread's scratch and quantized (or kept in f32) on its own.
  parallel_for(static_cast<int64_t>(deferred.size()), 1, [&](int64_t b, int64_t e) {
    std::vector<float> scratch;
    for (int64_t i = b; i < e; ++i) {
      const size_t j = deferred[static_cast<size_t>(i)];
      FillJob job = plan.jobs[j];
      scratch.resize(static_cast<size_t>(job.n));
      job.dst = scratch.data();
      for (int64_t ch = 0; ch * kChunk < job.n; ++ch) fill_chunk(job, plan.seeds[j], ch);
      Linear& lin = *plan.linears[j];
      lin.q = inference_matrix(
          quantize_weights_ref(scratch.data(), lin.out, lin.in, wo.bits, wo.group));
    }
  });
  // Linears kept in float: generated again into owned buffers (serially: the holder list).
  for (int l = 0; l < config.n_layers; ++l) {
    for (int i = 0; i < 7; ++i) {
      if (!wo.keep_float.keeps(l, i)) continue;
      Linear& lin = linear_by_index(m.layers[static_cast<size_t>(l)], i);
      size_t j = 0;
      while (plan.linears[j] != &lin) ++j;
      FillJob job = plan.jobs[j];
      job.dst = uninitialized_buffer(m.storage, static_cast<size_t>(job.n));
      fill_jobs({job}, {plan.seeds[j]}, {0});
      lin.q = nullptr;
      lin.w = job.dst;
    }
  }
  return m;
}

LlamaConfig shape_preset(const std::string& name) {
  LlamaConfig c;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  if (name == "tinyllama-1.1b") {
    c.dim = 2048;
    c.n_layers = 22;
    c.n_heads = 32;
    c.n_kv_heads = 4;
    c.head_dim = 64;
    c.hidden_dim = 5632;
    c.vocab_size = 32000;
    c.seq_len = 2048;
    c.rope_layout = RopeLayout::RotateHalf;
    c.tied_output = false;
  } else if (name == "llama2-7b") {
    c.dim = 4096;
    c.n_layers = 32;
    c.n_heads = 32;
    c.n_kv_heads = 32;
    c.head_dim = 128;
    c.hidden_dim = 11008;
    c.vocab_size = 32000;
    c.seq_len = 4096;
    c.rope_layout = RopeLayout::RotateHalf;
    c.tied_output = false;
  } else if (name == "stories260k-shape") {
    c.dim = 64;
    c.n_layers = 5;
    c.n_heads = 8;
    c.n_kv_heads = 4;
    c.head_dim = 8;
    c.hidden_dim = 172;
    c.vocab_size = 512;
    c.seq_len = 512;
    c.rope_layout = RopeLayout::Interleaved;
    c.tied_output = true;
  } else {
    fail("unknown model shape \"", name,
         "\"; known shapes: tinyllama-1.1b, llama2-7b, stories260k-shape (or give a shape file)");
  }
  c.validate("shape " + name);
  return c;
}

LlamaConfig load_shape_file(const std::string& path) {
  const LlamaConfig c = config_from_hf(read_hf_config(path, /*require_architecture=*/false));
  c.validate(path);
  return c;
}

}  // namespace wkvq
