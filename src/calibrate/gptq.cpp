#include "calibrate/gptq.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "calibrate/torch_block.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fp16.h"
#include "formats/weight_quant.h"
#include "model/weight_quantizer.h"

namespace wkvq {

torch::Tensor gptq_hessian(const torch::Tensor& x) {
  const torch::Tensor x2 = x.reshape({-1, x.size(-1)}).to(torch::kFloat64);
  return x2.t().matmul(x2) * (2.0 / static_cast<double>(std::max<int64_t>(1, x2.size(0))));
}

namespace {

// One group's parameters for every row: scales s (rows) and zero points z (rows) as f32 tensors
// for quantizing, their stored forms written into m at group `g`.
struct GroupParams {
  torch::Tensor s, z;
};

GroupParams group_params(const torch::Tensor& values, int64_t g, QuantizedMatrix& m) {
  const torch::Tensor v = values.to(torch::kFloat32).contiguous();  // (rows, len)
  const int64_t rows = v.size(0), len = v.size(1);
  GroupParams p{torch::empty({rows}, torch::kFloat32), torch::empty({rows}, torch::kFloat32)};
  const float* src = v.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const WeightGroupParams w = weight_group_params_ref(src + r * len, len, m.bits, 1.0f, 1.0f);
    const auto pi = static_cast<size_t>(r * m.n_groups + g);
    m.scales[pi] = w.scale_fp16;
    m.zeros[pi] = w.zero;
    p.s.data_ptr<float>()[r] = fp16_to_f32(w.scale_fp16);
    p.z.data_ptr<float>()[r] = static_cast<float>(w.zero);
  }
  return p;
}

// U: the upper Cholesky factor of (H + damp mean(diag H) I)^-1.
torch::Tensor inverse_hessian_factor(torch::Tensor h, double damp, const std::string& what) {
  torch::Tensor diag = h.diagonal();
  diag.add_(damp * diag.mean().item<double>());
  const auto [l, info] = torch::linalg_cholesky_ex(h);
  WKVQ_REQUIRE(info.item<int64_t>() == 0, what, ": the damped Hessian is not positive definite ",
               "(Cholesky failed at column ", info.item<int64_t>(), "); raise --gptq-damp");
  return torch::linalg_cholesky(torch::cholesky_inverse(l), /*upper=*/true);
}

class GptqLinear {
 public:
  GptqLinear(const torch::Tensor& w, const GptqOptions& o)
      : o_(o),
        w_(w.to(torch::kFloat64).clone()),
        m_(make_quantized_matrix(w.size(0), w.size(1), o.bits, o.group)),
        codes_(static_cast<size_t>(w.size(0) * w.size(1)), 0),
        params_(static_cast<size_t>(m_.n_groups)) {}

  QuantizedMatrix run(const torch::Tensor& h, const std::string& what);

 private:
  void quantize_block(const torch::Tensor& u, const torch::Tensor& perm, int64_t i1, int64_t i2);
  void quantize_column(torch::Tensor& w1, int64_t i, int64_t c);

  const GptqOptions& o_;
  torch::Tensor w_;  // (rows, cols) f64, in processing order, updated as GPTQ goes
  QuantizedMatrix m_;
  std::vector<uint8_t> codes_;       // (rows, cols) in original column order
  std::vector<GroupParams> params_;  // per group, once computed
  torch::Tensor w1_, err1_, u1_;     // the current block's columns, errors and U[i1:i2, i1:i2]
};

QuantizedMatrix GptqLinear::run(const torch::Tensor& h_in, const std::string& what) {
  const int64_t rows = w_.size(0), cols = w_.size(1);
  WKVQ_REQUIRE(h_in.dim() == 2 && h_in.size(0) == cols && h_in.size(1) == cols, what,
               ": the Hessian must be ", cols, " x ", cols, ", got ", h_in.sizes());
  WKVQ_REQUIRE(torch::isfinite(w_).all().item<bool>(), what, ": the weights are not finite");
  WKVQ_REQUIRE(torch::isfinite(h_in).all().item<bool>(), what, ": the Hessian is not finite");
  torch::Tensor h = h_in.to(torch::kFloat64).clone();
  torch::Tensor diag = h.diagonal();
  diag.masked_fill_(diag == 0, 1.0);  // dead inputs, before the act-order sort
  torch::Tensor perm = torch::arange(cols, torch::kInt64);
  if (o_.act_order) {
    for (int64_t g = 0; g < m_.n_groups; ++g) {  // static groups, from the original weights
      const int64_t c0 = g * m_.group, len = std::min(m_.group, cols - c0);
      params_[static_cast<size_t>(g)] = group_params(w_.narrow(1, c0, len), g, m_);
    }
    perm = std::get<1>(torch::sort(h.diagonal(), /*stable=*/true, /*dim=*/0, /*descending=*/true));
    w_ = w_.index_select(1, perm);
    h = h.index_select(0, perm).index_select(1, perm);
  }
  const torch::Tensor u = inverse_hessian_factor(h, o_.damp, what);
  for (int64_t i1 = 0; i1 < cols; i1 += o_.block) {
    quantize_block(u, perm, i1, std::min(cols, i1 + o_.block));
  }
  for (int64_t r = 0; r < rows; ++r) {
    pack_row_codes_ref(codes_.data() + r * cols, cols, m_.bits, m_.codes.data() + r * m_.row_bytes);
  }
  return std::move(m_);
}

void GptqLinear::quantize_block(const torch::Tensor& u, const torch::Tensor& perm, int64_t i1,
                                int64_t i2) {
  const int64_t n = i2 - i1, cols = w_.size(1);
  w1_ = w_.narrow(1, i1, n).clone();
  err1_ = torch::zeros_like(w1_);
  u1_ = u.narrow(0, i1, n).narrow(1, i1, n);
  const int64_t* p = perm.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) quantize_column(w1_, i, p[i1 + i]);
  if (i2 < cols) {
    w_.narrow(1, i2, cols - i2).sub_(err1_.matmul(u.narrow(0, i1, n).narrow(1, i2, cols - i2)));
  }
}

// Column i of the current block, original column c.
void GptqLinear::quantize_column(torch::Tensor& w1, int64_t i, int64_t c) {
  const int64_t n = w1.size(1), rows = w1.size(0);
  const int64_t g = c / m_.group;
  if (!o_.act_order && c % m_.group == 0) {  // processing order = column order here
    const int64_t len = std::min(m_.group, w_.size(1) - c);
    const int64_t in_block = std::min(len, n - i);
    torch::Tensor vals = w1.narrow(1, i, in_block);
    if (in_block < len) {  // the rest of the group lies beyond this block, in w_
      const int64_t i2 = c - i + n;
      vals = torch::cat({vals, w_.narrow(1, i2, len - in_block)}, 1);
    }
    params_[static_cast<size_t>(g)] = group_params(vals, g, m_);
  }
  const GroupParams& gp = params_[static_cast<size_t>(g)];
  const torch::Tensor w = w1.select(1, i);
  const double qmax = static_cast<double>((1 << m_.bits) - 1);
  const torch::Tensor q = (torch::round(w.to(torch::kFloat32) / gp.s) + gp.z).clamp(0.0, qmax);
  const torch::Tensor dq = ((q - gp.z) * gp.s).to(torch::kFloat64);
  const float* qp = q.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    codes_[static_cast<size_t>(r * w_.size(1) + c)] = static_cast<uint8_t>(qp[r]);
  }
  const torch::Tensor e = (w - dq) / u1_[i][i];
  w1.narrow(1, i, n - i).sub_(e.unsqueeze(1).matmul(u1_.narrow(0, i, 1).narrow(1, i, n - i)));
  err1_.select(1, i).copy_(e);
}

}  // namespace

QuantizedMatrix gptq_quantize(const torch::Tensor& w, const torch::Tensor& h, const GptqOptions& o,
                              const std::string& what) {
  WKVQ_REQUIRE(w.dim() == 2, what, ": the weight must be a matrix, got ", w.sizes());
  torch::NoGradGuard no_grad;
  return GptqLinear(w, o).run(h, what);
}

namespace {

// (S, T, dim) embeddings of S consecutive windows of T tokens from the start of the stream.
torch::Tensor embed_windows(const Model& fp, const std::vector<int>& calib, int64_t T,
                            int64_t samples) {
  const auto n = static_cast<int64_t>(calib.size());
  WKVQ_REQUIRE(n >= T, "calibration text: ", n, " tokens, fewer than one window of ", T,
               "; give a longer calibration text or a smaller --window");
  const int64_t S = std::min(samples, n / T);
  const int dim = fp.config.dim;
  torch::Tensor x = torch::empty({S, T, dim}, torch::kFloat32);
  float* dst = x.data_ptr<float>();
  for (int64_t t = 0; t < S * T; ++t) {
    const int tok = calib[static_cast<size_t>(t)];
    WKVQ_REQUIRE(tok >= 0 && tok < fp.config.vocab_size, "calibration text: token id ", tok,
                 " is outside the vocabulary [0, ", fp.config.vocab_size, ")");
    std::memcpy(dst + t * dim, fp.tok_embeddings + static_cast<int64_t>(tok) * dim,
                sizeof(float) * static_cast<size_t>(dim));
  }
  return x;
}

// The Hessian of linear input `k` of block `b` with weights w over all windows of x.
torch::Tensor block_hessian(const TorchBlock& b, const torch::Tensor& x, const BlockLinears& w,
                            size_t k) {
  torch::Tensor h;
  for (int64_t s = 0; s < x.size(0); ++s) {
    const torch::Tensor hs = gptq_hessian(b.linear_inputs(x.narrow(0, s, 1), w)[k]);
    h = h.defined() ? h + hs : hs;
  }
  return h / static_cast<double>(x.size(0));
}

torch::Tensor dequantized(const QuantizedMatrix& m) {
  torch::Tensor t = torch::empty({m.rows, m.cols}, torch::kFloat32);
  dequantize_weights_ref(m, t.data_ptr<float>());
  return t;
}

}  // namespace

GptqResult gptq_model(const Model& fp, const std::vector<int>& calib, const GptqOptions& o,
                      const GptqProgressFn& progress) {
  o.validate(fp.config);
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor x = embed_windows(fp, calib, o.effective_window(fp.config), o.samples);
  // Linears by the input they read (TorchBlock::linear_inputs), in execution order.
  const std::array<std::vector<int>, 4> stages = {{{0, 1, 2}, {3}, {4, 5}, {6}}};
  GptqResult r;
  r.layers.resize(fp.layers.size());
  const int L = fp.config.n_layers;
  for (int l = 0; l < L; ++l) {
    const TorchBlock b(fp, l);
    BlockLinears w = b.weights();
    for (size_t k = 0; k < stages.size(); ++k) {
      const torch::Tensor h = block_hessian(b, x, w, k);
      for (const int i : stages[k]) {
        const std::string what = "layer " + std::to_string(l) + " " + kLinearNames[i];
        QuantizedMatrix m = gptq_quantize(w[static_cast<size_t>(i)], h, o, what);
        w[static_cast<size_t>(i)] = dequantized(m);
        r.layers[static_cast<size_t>(l)][static_cast<size_t>(i)] = std::move(m);
      }
    }
    for (int64_t s = 0; s < x.size(0); ++s)
      x.narrow(0, s, 1).copy_(b.forward(x.narrow(0, s, 1), &w));
    if (progress) progress(l + 1, L, seconds_since(t0));
  }
  return r;
}

}  // namespace wkvq
