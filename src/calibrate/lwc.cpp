#include "calibrate/lwc.h"

#include <cstring>

#include "core/error.h"
#include "formats/weight_quant.h"

namespace wkvq {

GroupedWeight group_weight(const torch::Tensor& w, int64_t group) {
  WKVQ_REQUIRE(w.dim() == 2, "LWC: a weight must be a matrix, got ", w.dim(), " dimensions");
  GroupedWeight g;
  g.rows = w.size(0);
  g.cols = w.size(1);
  g.group = weight_group_size(g.cols, group);
  g.n_groups = (g.cols + g.group - 1) / g.group;
  const int64_t pad = g.n_groups * g.group - g.cols;
  torch::Tensor wp = w.detach();
  if (pad > 0) wp = torch::cat({wp, wp.narrow(1, g.cols - 1, 1).expand({g.rows, pad})}, 1);
  g.wg = wp.reshape({g.rows, g.n_groups, g.group}).contiguous();  // (rows, n_groups, group)
  g.mx = std::get<0>(g.wg.max(-1));                               // (rows, n_groups)
  g.mn = std::get<0>(g.wg.min(-1));
  return g;
}

torch::Tensor lwc_fake_quant(const GroupedWeight& g, const torch::Tensor& clip_hi,
                             const torch::Tensor& clip_lo, int bits, const QuantSteps& steps) {
  WKVQ_REQUIRE(bits == 2 || bits == 3 || bits == 4 || bits == 8,
               "LWC: bits must be 2, 3, 4 or 8, got ", bits);
  const double qmax = (1 << bits) - 1;
  // range of each group, widened to include 0                           (rows, n_groups)
  const torch::Tensor hi = (clip_hi * g.mx).clamp_min(0.0);
  const torch::Tensor lo = (clip_lo * g.mn).clamp_max(0.0);
  // fp16 scale and integer zero point                                   (rows, n_groups)
  const torch::Tensor s = steps.to_fp16(((hi - lo) / qmax).clamp_min(1e-5));
  const torch::Tensor z = steps.clamp(steps.round(-lo / s), 0.0, qmax);
  // codes and W^                                                         (rows, n_groups, group)
  const torch::Tensor s3 = s.unsqueeze(-1);
  const torch::Tensor z3 = z.unsqueeze(-1);
  const torch::Tensor q = steps.clamp(steps.round(g.wg / s3) + z3, 0.0, qmax);
  return ((q - z3) * s3).reshape({g.rows, g.n_groups * g.group}).narrow(1, 0, g.cols);
}

Lwc::Lwc(const BlockLinears& w, int bits, int64_t group, float init) : bits_(bits) {
  for (size_t i = 0; i < 7; ++i) {
    grouped_[i] = group_weight(w[i], group);
    const auto opts = torch::TensorOptions().dtype(w[i].scalar_type()).requires_grad(true);
    gamma_[i] = torch::full({grouped_[i].rows, grouped_[i].n_groups}, init, opts);
    beta_[i] = torch::full({grouped_[i].rows, grouped_[i].n_groups}, init, opts);
  }
}

BlockLinears Lwc::fake_quant(const QuantSteps& steps) const {
  BlockLinears out;
  for (size_t i = 0; i < 7; ++i) {
    out[i] = lwc_fake_quant(grouped_[i], torch::sigmoid(gamma_[i]), torch::sigmoid(beta_[i]), bits_,
                            steps);
  }
  return out;
}

std::vector<torch::Tensor> Lwc::parameters() const {
  std::vector<torch::Tensor> p;
  for (size_t i = 0; i < 7; ++i) {
    p.push_back(gamma_[i]);
    p.push_back(beta_[i]);
  }
  return p;
}

std::vector<float> Lwc::clip_hi(int i) const {
  return to_floats(torch::sigmoid(gamma_[static_cast<size_t>(i)].detach()));
}

std::vector<float> Lwc::clip_lo(int i) const {
  return to_floats(torch::sigmoid(beta_[static_cast<size_t>(i)].detach()));
}

BlockLinears fake_quant_fixed(const BlockLinears& w, const std::array<std::vector<float>, 7>& hi,
                              const std::array<std::vector<float>, 7>& lo, int bits,
                              int64_t group) {
  torch::NoGradGuard no_grad;
  BlockLinears out;
  for (size_t i = 0; i < 7; ++i) {
    if (hi[i].empty()) {  // a linear left in floating point
      out[i] = w[i];
      continue;
    }
    const GroupedWeight g = group_weight(w[i], group);
    WKVQ_REQUIRE(
        static_cast<int64_t>(hi[i].size()) == g.rows * g.n_groups && lo[i].size() == hi[i].size(),
        "LWC: clip factors of linear ", i, " hold ", hi[i].size(), " and ", lo[i].size(),
        " values, expected rows x groups = ", g.rows * g.n_groups);
    auto as_tensor = [&](const std::vector<float>& v) {
      return torch::from_blob(const_cast<float*>(v.data()), {g.rows, g.n_groups}, torch::kFloat32)
          .to(w[i].options(), /*non_blocking=*/false, /*copy=*/true);
    };
    out[i] = lwc_fake_quant(g, as_tensor(hi[i]), as_tensor(lo[i]), bits);
  }
  return out;
}

std::vector<float> to_floats(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kFloat32).contiguous();
  std::vector<float> v(static_cast<size_t>(c.numel()));
  if (!v.empty()) std::memcpy(v.data(), c.data_ptr<float>(), v.size() * sizeof(float));
  return v;
}

}  // namespace wkvq
