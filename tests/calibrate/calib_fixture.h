// Shared helpers of the calibrate tests: small seeded random Llama models, the runtime block on a
// given input, and conversions between std::vector<float> and tensors.
#pragma once

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "formats/weight_quant.h"
#include "kernels/rope.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/weight_quantizer.h"

namespace wkvq::test {

inline constexpr double kEps32 = 1.1920928955078125e-7;  // 2^-23

// Tolerance of an f32 block output against another f32 evaluation of the same formula in another
// summation order (BLAS vs the runtime's kernels). Each of the kStages stages (rmsnorm, q/k/v
// projections, RoPE, scores, softmax, probabilities x V, Wo, residual, rmsnorm, gate/up, SwiGLU,
// down, residual) rounds relative to its own result, which reaches the output with a gain of
// about 1 (normalised activations, weights ~1/sqrt(in)); the output is the residual stream, of
// magnitude M = max|y|, whose last additions round to ulps of M. Allowing kUlpsPerStage ulps of M
// per stage:  tol = kStages * kUlpsPerStage * eps * M.  (Measured: 1-3 ulps of M in all.) A real
// defect (wrong RoPE pairing, head mapping, norm, missing term) moves outputs by O(M). The 13
// stages listed plus the bias additions of the projections and the q/k norms (Qwen2, Qwen3) make
// 15; kStages = 16.
inline constexpr double kStages = 16;
inline constexpr double kUlpsPerStage = 2;

inline double block_tolerance(double max_abs_y) {
  return kStages * kUlpsPerStage * kEps32 * std::max(1.0, max_abs_y);
}

// The stories260K shape (dim 64, 5 layers, 8 heads, 4 KV heads, head_dim 8, hidden 172, ctx 512).
inline LlamaConfig stories260k_config() {
  LlamaConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 512;
  c.seq_len = 512;
  return c;
}

// The architecture features beyond Llama-2 (model/config.h), one at a time.
enum class Feature {
  None,
  QkvBias,        // Qwen2: q/k/v biases
  AttentionBias,  // Llama attention_bias: q/k/v/o biases
  QkNorm,         // Qwen3: per-head q/k RMSNorm, head_dim 16 != dim / heads
  Llama3Rope,     // rope_scaling llama3: factor 8, low 1, high 4, original 64 (at head_dim 8 with
                  // theta 1e4 the wavelengths 6.3, 63, 628, 6283 fall in all three bands)
  LinearRope,     // rope_scaling linear, factor 4
};

inline LlamaConfig with_feature(LlamaConfig c, Feature f) {
  switch (f) {
    case Feature::None:
      break;
    case Feature::QkvBias:
      c.qkv_bias = true;
      c.architecture = "Qwen2ForCausalLM";
      break;
    case Feature::AttentionBias:
      c.qkv_bias = c.o_bias = true;
      break;
    case Feature::QkNorm:
      c.qk_norm = true;
      c.head_dim = 16;
      c.architecture = "Qwen3ForCausalLM";
      break;
    case Feature::Llama3Rope:
      c.rope_scaling.kind = RopeScaling::Kind::Llama3;
      c.rope_scaling.factor = 8.0;
      c.rope_scaling.low_freq_factor = 1.0;
      c.rope_scaling.high_freq_factor = 4.0;
      c.rope_scaling.original_max_position = 64;
      break;
    case Feature::LinearRope:
      c.rope_scaling.kind = RopeScaling::Kind::Linear;
      c.rope_scaling.factor = 4.0;
      break;
  }
  return c;
}

// Linears uniform in +-1/sqrt(in), norms 1 +- 0.1, embeddings uniform in +-1 plus one shared
// random vector, so that K and V have the per-channel offsets that smoothing targets. Biases
// (when c.qkv_bias / c.o_bias) uniform in +-0.5, q/k norms (c.qk_norm) 1 +- 0.1; a model without
// them draws the same numbers as before they existed.
inline Model make_test_model(const LlamaConfig& c, uint64_t seed) {
  Model m;
  m.config = c;
  m.source = "random test model";
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto fill = [&](int64_t n, float center, float amp) {
    float* p = m.storage.allocate(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) p[i] = center + amp * u(rng);
    return p;
  };
  auto linear = [&](int out, int in) {
    return Linear{out, in, fill(int64_t{out} * in, 0.0f, 1.0f / std::sqrt(static_cast<float>(in))),
                  nullptr};
  };
  float* emb = fill(int64_t{c.vocab_size} * c.dim, 0.0f, 1.0f);
  const float* shared = fill(c.dim, 0.0f, 1.0f);
  for (int64_t i = 0; i < int64_t{c.vocab_size} * c.dim; ++i) emb[i] += shared[i % c.dim];
  m.tok_embeddings = emb;
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (LayerWeights& l : m.layers) {
    l.attn_norm = fill(c.dim, 1.0f, 0.1f);
    l.wq = linear(c.q_dim(), c.dim);
    l.wk = linear(c.kv_dim(), c.dim);
    l.wv = linear(c.kv_dim(), c.dim);
    l.wo = linear(c.dim, c.q_dim());
    if (c.qkv_bias) {
      l.wq.bias = fill(c.q_dim(), 0.0f, 0.5f);
      l.wk.bias = fill(c.kv_dim(), 0.0f, 0.5f);
      l.wv.bias = fill(c.kv_dim(), 0.0f, 0.5f);
    }
    if (c.o_bias) l.wo.bias = fill(c.dim, 0.0f, 0.5f);
    if (c.qk_norm) {
      l.q_norm = fill(c.head_dim, 1.0f, 0.1f);
      l.k_norm = fill(c.head_dim, 1.0f, 0.1f);
    }
    l.ffn_norm = fill(c.dim, 1.0f, 0.1f);
    l.w_gate = linear(c.hidden_dim, c.dim);
    l.w_up = linear(c.hidden_dim, c.dim);
    l.w_down = linear(c.dim, c.hidden_dim);
  }
  m.final_norm = fill(c.dim, 1.0f, 0.1f);
  m.output = Linear{c.vocab_size, c.dim, m.tok_embeddings, nullptr};
  return m;
}

// A copy of the floating-point `fp` with every block linear quantized as an act-order GPTQ
// checkpoint holds it (formats/gptq.h): W4, groups of `group` columns of a seeded random column
// permutation `order` (Linear::in_order), i.e. column j of the stored matrix is input feature
// order[j]. The runtime gathers its input in that order; the dense W^ puts the columns back.
inline Model with_act_order_weights(const Model& fp, int64_t group, uint64_t seed) {
  Model q = fp;
  std::mt19937_64 rng(seed);
  for (LayerWeights& l : q.layers) {
    for (int i = 0; i < 7; ++i) {
      Linear& lin = linear_by_index(l, i);
      auto order = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(lin.in));
      for (int32_t j = 0; j < static_cast<int32_t>(lin.in); ++j)
        (*order)[static_cast<size_t>(j)] = j;
      std::shuffle(order->begin(), order->end(), rng);
      std::vector<float> wp(static_cast<size_t>(lin.out * lin.in));
      for (int64_t r = 0; r < lin.out; ++r) {
        for (int64_t j = 0; j < lin.in; ++j) {
          wp[static_cast<size_t>(r * lin.in + j)] =
              lin.w[r * lin.in + (*order)[static_cast<size_t>(j)]];
        }
      }
      lin.q = std::make_shared<const QuantizedMatrix>(
          quantize_weights_ref(wp.data(), lin.out, lin.in, 4, group));
      lin.in_order = order;
      lin.w = nullptr;
    }
  }
  q.quant.method = "gptq";
  q.quant.wbits = 4;
  q.quant.wgroup = group;
  return q;
}

// Seeded token ids in [0, vocab).
inline std::vector<int> random_tokens(int64_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng() % static_cast<uint64_t>(vocab));
  return t;
}

// The runtime's block `layer` of m on x (T, dim) at positions 0..T-1, attending through kv.
inline std::vector<float> runtime_block(const Model& m, int layer, const std::vector<float>& x,
                                        KvStore& kv) {
  const LlamaConfig& c = m.config;
  const auto T = static_cast<int64_t>(x.size()) / c.dim;
  ForwardScratch s;
  s.reserve(c, T);
  s.rope.build(0, T, c.head_dim, c.rope_theta, c.rope_scaling);
  std::copy(x.begin(), x.end(), s.x.begin());
  block_forward(m, layer, T, 0, kv, s);
  return std::vector<float>(s.x.begin(), s.x.begin() + T * c.dim);
}

inline torch::Tensor tensor_from(const std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}

inline std::vector<float> floats_of(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kFloat32).contiguous();
  std::vector<float> v(static_cast<size_t>(c.numel()));
  std::memcpy(v.data(), c.data_ptr<float>(), v.size() * sizeof(float));
  return v;
}

// Seeded values uniform in [lo, hi).
inline std::vector<float> uniform(int64_t n, float lo, float hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

}  // namespace wkvq::test
