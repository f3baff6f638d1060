#include "calibrate/torch_block.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/rope.h"
#include "model/weight_quantizer.h"
#include "runtime/attention.h"

namespace wkvq {
namespace {

torch::Tensor copy_of(const float* p, std::vector<int64_t> shape, torch::ScalarType dtype) {
  return torch::from_blob(const_cast<float*>(p), shape, torch::kFloat32)
      .to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

torch::Tensor linear_weight(const Linear& l, torch::ScalarType dtype) {
  if (!l.quantized()) {
    WKVQ_REQUIRE(l.has_float(), "TorchBlock: a linear has neither float nor quantized weights");
    if (l.w != nullptr) return copy_of(l.w, {l.out, l.in}, dtype);
    torch::Tensor w = torch::empty({l.out, l.in}, torch::kFloat32);  // from fp16/bf16, exact
    l.rows_f32(0, l.out, w.data_ptr<float>());
    return w.to(dtype);
  }
  // W^ in input-feature order: act-order (GPTQ desc_act) columns put back through in_order
  const std::vector<float> w = l.dense_f32();
  return copy_of(w.data(), {l.out, l.in}, dtype);
}

// y = x W^T
torch::Tensor matmul_wt(const torch::Tensor& x, const torch::Tensor& w) {
  return torch::matmul(x, w.t());
}

// rmsnorm(x) * w over the last dimension; the mean square in double, as kernels/vec_ops rmsnorm.
torch::Tensor rmsnorm(const torch::Tensor& x, const torch::Tensor& w, float eps) {
  const torch::Tensor ms = x.to(torch::kFloat64).square().mean(-1, /*keepdim=*/true);
  const torch::Tensor scale = (ms + static_cast<double>(eps)).rsqrt().to(x.scalar_type());
  return x * scale * w;
}

}  // namespace

TorchBlock::TorchBlock(const Model& m, int layer, torch::ScalarType dtype)
    : c_(m.config), layer_(layer) {
  WKVQ_REQUIRE(layer >= 0 && layer < c_.n_layers, "TorchBlock: layer ", layer,
               " does not exist (the model has ", c_.n_layers, ")");
  const LayerWeights& l = m.layers[static_cast<size_t>(layer)];
  attn_norm_ = copy_of(l.attn_norm, {c_.dim}, dtype);
  ffn_norm_ = copy_of(l.ffn_norm, {c_.dim}, dtype);
  for (int i = 0; i < 7; ++i) {
    const Linear& lin = linear_by_index(l, i);
    w_[static_cast<size_t>(i)] = linear_weight(lin, dtype);
    if (lin.bias != nullptr) bias_[static_cast<size_t>(i)] = copy_of(lin.bias, {lin.out}, dtype);
    m.storage.release_pages(lin.float_data(), lin.float_bytes());  // mapped source read once
  }
  WKVQ_REQUIRE((l.q_norm != nullptr) == c_.qk_norm && (l.k_norm != nullptr) == c_.qk_norm, m.source,
               ": layer ", layer, " q/k norms do not match the config (qk_norm ",
               c_.qk_norm ? "true" : "false", ")");
  if (c_.qk_norm) {
    q_norm_ = copy_of(l.q_norm, {c_.head_dim}, dtype);
    k_norm_ = copy_of(l.k_norm, {c_.head_dim}, dtype);
  }
}

// x W_i^T (+ b_i): linear i with the weight w and the block's full-precision bias, added after the
// product as Linear::forward does.
torch::Tensor TorchBlock::linear(const torch::Tensor& x, const torch::Tensor& w, int i) const {
  const torch::Tensor y = matmul_wt(x, w);
  const torch::Tensor& b = bias_[static_cast<size_t>(i)];
  return b.defined() ? y + b : y;
}

// Every head of x (B, T, n_heads * head_dim) RMS-normed with the weight g (head_dim), as the
// runtime's rmsnorm_rows over (n * heads, head_dim) rows.
torch::Tensor TorchBlock::head_norm(const torch::Tensor& x, const torch::Tensor& g,
                                    int n_heads) const {
  const int64_t B = x.size(0), T = x.size(1);
  return rmsnorm(x.reshape({B, T, n_heads, c_.head_dim}), g, c_.norm_eps)
      .reshape({B, T, int64_t{n_heads} * c_.head_dim});
}

// RoPE on x (B, T, n_heads * head_dim) at positions 0..T-1, with the runtime's table (the
// frequencies of the model's rope_scaling, kernels/rope.h rope_frequencies; angles in double,
// rounded once to float) and pairing.
torch::Tensor TorchBlock::rope(const torch::Tensor& x, int n_heads) const {
  const int64_t B = x.size(0), T = x.size(1);
  const int hd = c_.head_dim, half = hd / 2;
  RopeTable table;
  table.build(0, T, hd, c_.rope_theta, c_.rope_scaling);
  const torch::Tensor cs = copy_of(table.cos.data(), {1, T, 1, half}, x.scalar_type());
  const torch::Tensor sn = copy_of(table.sin.data(), {1, T, 1, half}, x.scalar_type());
  torch::Tensor x0, x1;
  if (c_.rope_layout == RopeLayout::Interleaved) {  // pairs (2i, 2i + 1)
    const torch::Tensor xv = x.reshape({B, T, n_heads, half, 2});
    x0 = xv.select(-1, 0);
    x1 = xv.select(-1, 1);
  } else {  // pairs (i, i + hd/2)
    const torch::Tensor xv = x.reshape({B, T, n_heads, hd});
    x0 = xv.narrow(-1, 0, half);
    x1 = xv.narrow(-1, half, half);
  }
  const torch::Tensor y0 = x0 * cs - x1 * sn;
  const torch::Tensor y1 = x0 * sn + x1 * cs;
  const torch::Tensor y = c_.rope_layout == RopeLayout::Interleaved ? torch::stack({y0, y1}, -1)
                                                                    : torch::cat({y0, y1}, -1);
  return y.reshape({B, T, int64_t{n_heads} * hd});
}

TorchBlock::Qkv TorchBlock::qkv(const torch::Tensor& x, const BlockLinears& w) const {
  return qkv_normed(rmsnorm(x, attn_norm_, c_.norm_eps), w);
}

TorchBlock::Qkv TorchBlock::qkv_normed(const torch::Tensor& xn, const BlockLinears& w) const {
  // q, k, v = xn Wq^T (+ bq), xn Wk^T (+ bk), xn Wv^T (+ bv) with xn = rmsnorm(x) (B, T, dim);
  // per-head q/k norms (qk_norm); RoPE on q and k
  torch::Tensor q = linear(xn, w[0], 0);  // (B, T, q_dim)
  torch::Tensor k = linear(xn, w[1], 1);  // (B, T, kv_dim)
  if (c_.qk_norm) {
    q = head_norm(q, q_norm_, c_.n_heads);
    k = head_norm(k, k_norm_, c_.n_kv_heads);
  }
  Qkv r;
  r.q = rope(q, c_.n_heads);
  r.k = rope(k, c_.n_kv_heads);
  r.v = linear(xn, w[2], 2);  // (B, T, kv_dim)
  return r;
}

TorchBlock::Pass TorchBlock::run(const torch::Tensor& x, const BlockLinears& W,
                                 const FakeKv* kv) const {
  WKVQ_REQUIRE(x.dim() == 3 && x.size(2) == c_.dim, "TorchBlock: input must be (B, T, ", c_.dim,
               "), got ", x.sizes());
  Pass p;
  // attention: h = x + attention(q, k, v) Wo^T (+ bo)                    (B, T, dim)
  p.in[0] = rmsnorm(x, attn_norm_, c_.norm_eps);
  const Qkv a = qkv_normed(p.in[0], W);
  p.in[1] = causal_attention(a.q, a.k, a.v, c_, kv);
  const torch::Tensor h = x + linear(p.in[1], W[3], 3);
  // MLP: h + (silu(xn Wg^T) * (xn Wu^T)) Wd^T with xn = rmsnorm(h)   (B, T, hidden) -> (B, T, dim)
  p.in[2] = rmsnorm(h, ffn_norm_, c_.norm_eps);
  p.in[3] = torch::silu(linear(p.in[2], W[4], 4)) * linear(p.in[2], W[5], 5);
  p.y = h + linear(p.in[3], W[6], 6);
  return p;
}

torch::Tensor TorchBlock::forward(const torch::Tensor& x, const BlockLinears* w,
                                  const FakeKv* kv) const {
  return run(x, w != nullptr ? *w : w_, kv).y;
}

std::array<torch::Tensor, 4> TorchBlock::linear_inputs(const torch::Tensor& x,
                                                       const BlockLinears& w) const {
  return run(x, w, nullptr).in;
}

torch::Tensor teacher_forced_full_precision(bool poq, int64_t T, const torch::Device& device) {
  return teacher_forced_positions(poq, 0, T, device)[1];
}

std::array<torch::Tensor, 2> teacher_forced_positions(bool poq, int64_t window, int64_t T,
                                                      const torch::Device& device) {
  std::vector<int64_t> from(static_cast<size_t>(T)), wfrom(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    const int64_t f = full_precision_from(poq, ChunkAttention::TeacherForced, 0, t);
    from[static_cast<size_t>(t)] = f;
    wfrom[static_cast<size_t>(t)] = window_from(poq, window, f, t);
  }
  const torch::Tensor f = torch::tensor(from, torch::kInt64).unsqueeze(1);   // (T, 1)
  const torch::Tensor w = torch::tensor(wfrom, torch::kInt64).unsqueeze(1);  // (T, 1)
  const torch::Tensor j = torch::arange(T, torch::kInt64);                   // (T)
  const torch::Tensor t = j.unsqueeze(1);                                    // (T, 1)
  return {((j >= w) & (j < f)).to(device), ((j >= f) & (j <= t)).to(device)};
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const LlamaConfig& c, const FakeKv* kv) {
  const int64_t B = q.size(0), T = q.size(1);
  const int64_t H = c.n_heads, KH = c.n_kv_heads, hd = c.head_dim;
  // heads: (B, H, T, hd); query head h reads KV head h / (H / KH)
  auto kv_heads = [&](const torch::Tensor& t) {
    return t.reshape({B, T, KH, hd})
        .transpose(1, 2)
        .unsqueeze(2)
        .expand({B, KH, H / KH, T, hd})
        .reshape({B, H, T, hd});
  };
  const torch::Tensor qh = q.reshape({B, T, H, hd}).transpose(1, 2);
  const torch::Tensor kf = kv_heads(k), vf = kv_heads(v);
  const torch::Tensor kq = kv != nullptr ? kv_heads(kv->quantize_k(k)) : kf;
  const torch::Tensor vq = kv != nullptr ? kv_heads(kv->quantize_v(v)) : vf;
  // the positions read from the fp16 window and in full precision: the latter at most the
  // diagonal (teacher-forced), so the full-precision score of query t is q_t . k_t and its value
  // v_t
  std::array<torch::Tensor, 2> read;
  if (kv != nullptr)
    read = teacher_forced_positions(kv->spec().poq, kv->spec().window, T, q.device());
  const torch::Tensor& windowed = read[0];
  const torch::Tensor& exact = read[1];
  const bool poq = exact.defined() && exact.any().item<bool>();
  const bool window = windowed.defined() && windowed.any().item<bool>();
  const double inv_sqrt_hd = 1.0f / std::sqrt(static_cast<float>(hd));  // as the runtime, in f32

  // scores (B, H, T, T): q . K^_j, with the window's fp16 k_j and q . k_t where exact (the
  // diagonal under POQ); causal mask
  const auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(q.device());
  torch::Tensor scores = torch::matmul(qh, kq.transpose(-2, -1)) * inv_sqrt_hd;
  torch::Tensor kw, vw;
  if (window) {
    kw = kv_heads(kv->window_values(k));
    vw = kv_heads(kv->window_values(v));
    scores = torch::where(windowed, torch::matmul(qh, kw.transpose(-2, -1)) * inv_sqrt_hd, scores);
  }
  if (poq) scores = torch::where(exact, (qh * kf).sum(-1, /*keepdim=*/true) * inv_sqrt_hd, scores);
  scores = scores.masked_fill(torch::ones({T, T}, bool_opts).triu(1),
                              -std::numeric_limits<double>::infinity());
  const torch::Tensor p = torch::softmax(scores, -1);
  // out = sum_j p_j V^_j, the window's fp16 v_j, and v_t where exact          (B, H, T, hd)
  torch::Tensor stored = p;
  if (poq) stored = stored.masked_fill(exact, 0.0);
  if (window) stored = stored.masked_fill(windowed, 0.0);
  torch::Tensor out = torch::matmul(stored, vq);
  if (window) out = out + torch::matmul(p.masked_fill(windowed.logical_not(), 0.0), vw);
  if (poq) out = out + p.diagonal(0, -2, -1).unsqueeze(-1) * vf;
  return out.transpose(1, 2).reshape({B, T, H * hd});
}

}  // namespace wkvq
