#include "model/random_model.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "io/hf_config.h"
#include "model/loader.h"

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

Model make_random_model(const LlamaConfig& config, uint64_t seed) {
  config.validate("random model shape");
  Model m;
  m.config = config;
  m.source = "random weights (seed " + std::to_string(seed) + ")";
  const LlamaConfig& c = m.config;
  const int64_t dim = c.dim, hidden = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  const int64_t vocab = c.vocab_size;

  std::vector<FillJob> jobs;
  auto tensor = [&](int64_t n, float center, float half_width) {
    float* p = uninitialized_buffer(m.storage, static_cast<size_t>(n));
    jobs.push_back({p, n, center, half_width});
    return p;
  };
  auto linear = [&](int64_t out, int64_t in) {
    return f32_linear(out, in, tensor(out * in, 0.0f, 1.0f / std::sqrt(static_cast<float>(in))));
  };
  auto norm = [&]() { return tensor(dim, 1.0f, 0.05f); };

  m.tok_embeddings = tensor(vocab * dim, 0.0f, 1.0f);
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (LayerWeights& lw : m.layers) {
    lw.attn_norm = norm();
    lw.wq = linear(q, dim);
    lw.wk = linear(kv, dim);
    lw.wv = linear(kv, dim);
    lw.wo = linear(dim, q);
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
    lw.w_gate = linear(hidden, dim);
    lw.w_up = linear(hidden, dim);
    lw.w_down = linear(dim, hidden);
  }
  m.final_norm = norm();
  m.output = c.tied_output ? f32_linear(vocab, dim, m.tok_embeddings) : linear(vocab, dim);

  // Flatten (tensor, chunk) pairs so the big tensors spread over all threads.
  struct Piece {
    size_t job;
    int64_t chunk;
  };
  std::vector<Piece> pieces;
  for (size_t j = 0; j < jobs.size(); ++j) {
    for (int64_t ch = 0; ch * kChunk < jobs[j].n; ++ch) pieces.push_back({j, ch});
  }
  std::vector<uint64_t> tensor_seeds(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j) tensor_seeds[j] = splitmix64(seed ^ splitmix64(j));
  parallel_for(static_cast<int64_t>(pieces.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Piece& p = pieces[static_cast<size_t>(i)];
      fill_chunk(jobs[p.job], tensor_seeds[p.job], p.chunk);
    }
  });
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
