#include "calibrate/fake_kv.h"

#include <algorithm>
#include <limits>

#include "calibrate/lwc.h"
#include "core/error.h"

namespace wkvq {

namespace {

// The metadata of each group (..., n_groups, 1) of minimum mn and maximum mx: m and s.
struct GroupParams {
  torch::Tensor m, s;
};

// fp16 scale and minimum.
GroupParams fp16_params(const torch::Tensor& mn, const torch::Tensor& mx, double qmax,
                        const QuantSteps& steps) {
  return {steps.to_fp16(mn), steps.to_fp16((mx - mn) / qmax)};
}

// rel8: m = L[m8] (the last level <= mn), t = L[t8] (the first level >= mx), s = (t - m) / qmax,
// as kv_rel8_codes and kv_group_params (formats/kv_quant.cpp).
GroupParams rel8_params(const torch::Tensor& mn, const torch::Tensor& mx, double qmax,
                        const torch::Tensor& levels, const QuantSteps& steps) {
  const int64_t n_groups = levels.size(0);
  torch::Tensor m_at, t_at;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor lv = levels.to(mn.scalar_type());
    auto by_group = [&](const torch::Tensor& t) {  // (..., n_groups, 1) -> (n_groups, N)
      return t.detach().reshape({-1, n_groups}).t().contiguous();
    };
    const torch::Tensor above = torch::searchsorted(lv, by_group(mn), false, /*right=*/true);
    const torch::Tensor m8 = (above - 1).clamp_min(0);
    const torch::Tensor t8 = torch::searchsorted(lv, by_group(mx), false, false).clamp_max(255);
    m_at = lv.gather(1, m8).t().reshape(mn.sizes());
    t_at = lv.gather(1, t8).t().reshape(mx.sizes());
  }
  const torch::Tensor m = steps.snap(mn, m_at);
  return {m, (steps.snap(mx, t_at) - m) / qmax};
}

}  // namespace

torch::Tensor rel8_levels(const std::vector<float>& lo, const std::vector<float>& hi) {
  WKVQ_REQUIRE(lo.size() == hi.size() && !lo.empty(), "rel8 levels: ", lo.size(), " minima and ",
               hi.size(), " maxima");
  const auto n = static_cast<int64_t>(lo.size());
  torch::Tensor levels = torch::empty({n, 256}, torch::kFloat32);
  float* dst = levels.data_ptr<float>();
  for (int64_t g = 0; g < n; ++g) {
    const KvRel8Group r =
        make_kv_rel8_group(lo[static_cast<size_t>(g)], hi[static_cast<size_t>(g)]);
    std::copy(r.levels, r.levels + 256, dst + g * 256);
  }
  return levels;
}

torch::Tensor fake_quant_tokens(const torch::Tensor& x, int bits, int64_t group,
                                const QuantSteps& steps, const torch::Tensor& levels) {
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
  // scale and minimum of each group                                       (..., n_groups, 1)
  const torch::Tensor mn = xg.amin(-1, /*keepdim=*/true);
  const torch::Tensor mx = xg.amax(-1, /*keepdim=*/true);
  WKVQ_REQUIRE(!levels.defined() ||
                   (levels.dim() == 2 && levels.size(0) == n_groups && levels.size(1) == 256),
               "KV fake quantization: rel8 levels for ", n_groups, " groups expected");
  const auto [m, s] = levels.defined() ? rel8_params(mn, mx, qmax, levels, steps)
                                       : fp16_params(mn, mx, qmax, steps);
  // codes (0 in a constant group, s = 0) and x^ = m + q * s
  const torch::Tensor live = s > 0;
  const torch::Tensor safe_s = torch::where(live, s, torch::ones_like(s));
  const torch::Tensor q = torch::where(live, steps.clamp(steps.round((xg - m) / safe_s), 0.0, qmax),
                                       torch::zeros_like(xg));
  std::vector<int64_t> flat = x.sizes().vec();
  flat.back() = n_groups * g;
  // fp16 metadata: q * s is exact (11 + 8 bits), so m + q * s rounds once, as the runtime's
  // fma(q, s, m); a rel8 scale has all 24 bits, so the sum is formed in double and rounded once.
  const torch::Tensor xq =
      levels.defined() ? (m.to(torch::kFloat64) + q.to(torch::kFloat64) * s.to(torch::kFloat64))
                             .to(x.scalar_type())
                       : m + q * s;
  return xq.reshape(flat).narrow(-1, 0, C);
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

torch::Tensor FakeKv::quantize(const torch::Tensor& x, int kv) const {
  const torch::Tensor& d = kv == 0 ? dk_ : dv_;
  const torch::Tensor s = scale(kv == 0 ? sk_ : sv_);
  const torch::Tensor smoothed = (x - d) / s;  // (B, T, kv_dim)
  torch::Tensor levels;
  if (spec_.rel8) {
    const auto [lo, hi] = group_ranges(kv);
    levels = rel8_levels(lo, hi);
  }
  const int bits = kv == 0 ? spec_.key_bits() : spec_.value_bits();
  return fake_quant_tokens(smoothed, bits, spec_.group, *steps_, levels) * s + d;
}

torch::Tensor FakeKv::quantize_k(const torch::Tensor& k) const { return quantize(k, 0); }
torch::Tensor FakeKv::quantize_v(const torch::Tensor& v) const { return quantize(v, 1); }

torch::Tensor FakeKv::window_values(const torch::Tensor& x) const { return steps_->to_fp16(x); }

void FakeKv::set_channel_ranges(const std::vector<float>& k_lo, const std::vector<float>& k_hi,
                                const std::vector<float>& v_lo, const std::vector<float>& v_hi) {
  const auto C = static_cast<size_t>(dk_.size(0));
  for (const std::vector<float>* r : {&k_lo, &k_hi, &v_lo, &v_hi}) {
    WKVQ_REQUIRE(r->size() == C, "KV fake quantization: ", r->size(), " channel ranges for ", C,
                 " channels");
  }
  ranges_ = {k_lo, k_hi, v_lo, v_hi};
}

std::array<std::vector<float>, 2> FakeKv::group_ranges(int kv) const {
  WKVQ_REQUIRE(!ranges_[0].empty(), "KV fake quantization with rel8 metadata: the channel ",
               "ranges are not set (set_channel_ranges)");
  torch::NoGradGuard no_grad;
  const std::vector<float> d = to_floats(kv == 0 ? dk_ : dv_);
  const std::vector<float> s = to_floats(scale(kv == 0 ? sk_ : sv_));
  const std::vector<float>& lo = ranges_[static_cast<size_t>(2 * kv)];
  const std::vector<float>& hi = ranges_[static_cast<size_t>(2 * kv + 1)];
  const auto C = static_cast<int64_t>(d.size());
  const int64_t g = spec_.group >= C ? C : spec_.group;
  std::array<std::vector<float>, 2> out;
  for (int64_t c0 = 0; c0 < C; c0 += g) {
    float glo = std::numeric_limits<float>::infinity(), ghi = -glo;
    for (int64_t c = c0; c < std::min(C, c0 + g); ++c) {  // s > 0: the order is kept
      const auto i = static_cast<size_t>(c);
      glo = std::min(glo, (lo[i] - d[i]) / s[i]);
      ghi = std::max(ghi, (hi[i] - d[i]) / s[i]);
    }
    out[0].push_back(glo);
    out[1].push_back(ghi);
  }
  return out;
}

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
