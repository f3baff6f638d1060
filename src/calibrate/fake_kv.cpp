#include "calibrate/fake_kv.h"

#include "calibrate/lwc.h"
#include "core/error.h"

namespace wkvq {

torch::Tensor fake_quant_tokens(const torch::Tensor& x, int bits, int64_t group,
                                const QuantSteps& steps) {
  WKVQ_REQUIRE(bits == 2 || bits == 3 || bits == 4 || bits == 8,
               "KV fake quantization: bits must be 2, 3, 4 or 8, got ", bits);
  const int64_t C = x.size(-1);
  const int64_t g = (group <= 0 || group >= C) ? C : group;
  const int64_t n_groups = (C + g - 1) / g;
  const int64_t pad = n_groups * g - C;
  const double qmax = (1 << bits) - 1;
  // groups (..., n_groups, g); a short last group repeats its last channel (same min and max)
  torch::Tensor xp = x;
  if (pad > 0) {
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes.back() = pad;
    xp = torch::cat({x, x.narrow(-1, C - 1, 1).expand(sizes)}, -1);
  }
  std::vector<int64_t> gshape = x.sizes().vec();
  gshape.back() = n_groups;
  gshape.push_back(g);
  const torch::Tensor xg = xp.reshape(gshape);
  // fp16 scale and minimum of each group                                  (..., n_groups, 1)
  const torch::Tensor mn = xg.amin(-1, /*keepdim=*/true);
  const torch::Tensor mx = xg.amax(-1, /*keepdim=*/true);
  const torch::Tensor s = steps.to_fp16((mx - mn) / qmax);
  const torch::Tensor m = steps.to_fp16(mn);
  // codes (0 in a constant group, s = 0) and x^ = m + q * s
  const torch::Tensor live = s > 0;
  const torch::Tensor safe_s = torch::where(live, s, torch::ones_like(s));
  const torch::Tensor q = torch::where(live, steps.clamp(steps.round((xg - m) / safe_s), 0.0, qmax),
                                       torch::zeros_like(xg));
  std::vector<int64_t> flat = x.sizes().vec();
  flat.back() = n_groups * g;
  return (m + q * s).reshape(flat).narrow(-1, 0, C);
}

namespace {
torch::Tensor tensor_of(const std::vector<float>& v, const torch::TensorOptions& options) {
  return torch::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())},
                          torch::kFloat32)
      .to(torch::TensorOptions().dtype(options.dtype()).device(options.device()),
          /*non_blocking=*/false, /*copy=*/true);
}
}  // namespace

FakeKv::FakeKv(const LayerSmoothing& init, int head_dim, const KvQuantSettings& spec, bool learn,
               const torch::TensorOptions& options, const QuantSteps* steps)
    : spec_(spec), learn_(learn), steps_(steps) {
  const size_t n = init.dk.size();
  WKVQ_REQUIRE(n > 0 && init.sk.size() == n && init.dv.size() == n && init.sv.size() == n,
               "KV fake quantization: smoothing vectors of different lengths");
  if (spec_.group == 0) spec_.group = head_dim;
  dk_ = tensor_of(init.dk, options);
  dv_ = tensor_of(init.dv, options);
  sk_ = tensor_of(init.sk, options);
  sv_ = tensor_of(init.sv, options);
  if (learn_) {
    sk_ = sk_.log();
    sv_ = sv_.log();
    for (torch::Tensor* t : {&dk_, &sk_, &dv_, &sv_}) t->set_requires_grad(true);
  }
}

torch::Tensor FakeKv::scale(const torch::Tensor& s_or_log) const {
  return learn_ ? s_or_log.exp() : s_or_log;
}

torch::Tensor FakeKv::quantize(const torch::Tensor& x, const torch::Tensor& d,
                               const torch::Tensor& s_or_log) const {
  const torch::Tensor s = scale(s_or_log);
  const torch::Tensor smoothed = (x - d) / s;  // (B, T, kv_dim)
  return fake_quant_tokens(smoothed, spec_.bits, spec_.group, *steps_) * s + d;
}

torch::Tensor FakeKv::quantize_k(const torch::Tensor& k) const { return quantize(k, dk_, sk_); }
torch::Tensor FakeKv::quantize_v(const torch::Tensor& v) const { return quantize(v, dv_, sv_); }

std::vector<torch::Tensor> FakeKv::parameters() const {
  if (!learn_) return {};
  return {dk_, sk_, dv_, sv_};
}

LayerSmoothing FakeKv::values() const {
  torch::NoGradGuard no_grad;
  LayerSmoothing v;
  v.dk = to_floats(dk_);
  v.sk = to_floats(scale(sk_));
  v.dv = to_floats(dv_);
  v.sv = to_floats(scale(sv_));
  return v;
}

}  // namespace wkvq
