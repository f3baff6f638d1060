// TorchBlock: one Llama decoder block in libtorch, differentiable, equal to the runtime's
// block_forward (model/forward.h) in full precision: RMSNorm (sum of squares in double, as
// kernels/vec_ops), linears with their biases when the model has them (Qwen2 q/k/v,
// attention_bias o; added after the product, as Linear::forward), per-head q/k RMSNorm before RoPE
// (Qwen3 qk_norm), RoPE in the model's layout with the runtime's angle table and its rope_scaling
// (kernels/rope.h), GQA attention, SwiGLU. Optionally with fake-quantized weights
// (calibrate/lwc.h) and a fake-quantized KV cache (calibrate/fake_kv.h) in the teacher-forced
// attention form of design.md §2.2; the keys the KV quantizer sees are the post-norm, post-RoPE
// ones the runtime's cache stores.
//
// Biases and q/k norms are full-precision constants: never quantized, never learned.
//
// A block sees a batch of independent windows, each at positions 0..T-1.
#pragma once

#include <torch/types.h>

#include <array>
#include <cstdint>

#include "calibrate/fake_kv.h"
#include "calibrate/lwc.h"
#include "model/model.h"

namespace wkvq {

class TorchBlock {
 public:
  // Block `layer` of `m`: weights copied (dequantized when stored quantized, in input-feature
  // order for act-order weights) into tensors of `dtype`, constants without gradient (biases and
  // q/k norms likewise).
  TorchBlock(const Model& m, int layer, torch::ScalarType dtype = torch::kFloat32);

  const LlamaConfig& config() const { return c_; }
  int layer() const { return layer_; }
  // The full-precision weights, kLinearNames order.
  const BlockLinears& weights() const { return w_; }

  // x (B, T, dim) -> (B, T, dim). w: the weights to use (null: the full-precision ones);
  // kv: fake KV quantization (null: full-precision attention).
  torch::Tensor forward(const torch::Tensor& x, const BlockLinears* w = nullptr,
                        const FakeKv* kv = nullptr) const;

  // The attention inputs of block input x: q (B, T, q_dim), k, v (B, T, kv_dim), with their
  // biases, q and k after the q/k norms (when the model has them) and RoPE.
  struct Qkv {
    torch::Tensor q, k, v;
  };
  Qkv qkv(const torch::Tensor& x, const BlockLinears& w) const;

  // The inputs of the block's linears for block input x with weights w (full-precision
  // attention): [0] rmsnorm(x), read by wq, wk, wv; [1] the attention output, read by wo;
  // [2] rmsnorm(h), read by w_gate, w_up; [3] silu(gate) * up, read by w_down. Each (B, T, in).
  std::array<torch::Tensor, 4> linear_inputs(const torch::Tensor& x, const BlockLinears& w) const;

 private:
  // forward() with the linears' inputs kept: in[0..3] as linear_inputs, y the block output.
  struct Pass {
    std::array<torch::Tensor, 4> in;
    torch::Tensor y;
  };
  Pass run(const torch::Tensor& x, const BlockLinears& w, const FakeKv* kv) const;
  Qkv qkv_normed(const torch::Tensor& xn, const BlockLinears& w) const;  // xn = rmsnorm(x)
  torch::Tensor rope(const torch::Tensor& x, int n_heads) const;
  torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, int i) const;
  torch::Tensor head_norm(const torch::Tensor& x, const torch::Tensor& g, int n_heads) const;

  LlamaConfig c_;
  int layer_;
  torch::Tensor attn_norm_, ffn_norm_;  // (dim)
  torch::Tensor q_norm_, k_norm_;       // (head_dim) when qk_norm, else undefined
  BlockLinears w_;
  BlockLinears bias_;  // (out) per linear, undefined for a linear without bias
};

// The tensor form of full_precision_from (runtime/attention.h) for a teacher-forced chunk of T
// tokens at positions 0..T-1: a (T, T) bool mask, true where query t reads position j in full
// precision. By the rule that is the diagonal under POQ and nothing without it.
torch::Tensor teacher_forced_full_precision(bool poq, int64_t T, const torch::Device& device);

// With an fp16 window of `window` positions (KvQuantSettings::window): {positions read from the
// window, positions read in full precision}, (T, T) bool masks by the runtime's rules
// (window_from, full_precision_from, runtime/attention.h). window 0: the first is all false.
std::array<torch::Tensor, 2> teacher_forced_positions(bool poq, int64_t window, int64_t T,
                                                      const torch::Device& device);

// Causal attention of q (B, T, q_dim) over k, v (B, T, kv_dim) -> (B, T, q_dim), GQA heads.
// kv null: full precision. Otherwise the teacher-forced form of design.md §2.2: query t reads
// K^_j, V^_j (kv->quantize_k/v) for j < t, and on the diagonal what
// teacher_forced_full_precision(kv->spec().poq, T) says: the full-precision k_t, v_t under POQ,
// K^_t, V^_t without (conventional KV quantization); with an fp16 window, the positions
// teacher_forced_positions names as the window's from fp16 k_j, v_j (kv->window_values).
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const LlamaConfig& c, const FakeKv* kv);

}  // namespace wkvq
