#include "model/quantized_kv_tensors.h"

#include <string>

#include "core/error.h"
#include "model/hf_names.h"

namespace wkvq {
namespace {

// Layer l's static group ranges (n_groups each).
void add_ranges(SafetensorsWriter& w, const Model& m, int l, const std::vector<int64_t>& k_order) {
  const KvGroupRanges& r = m.kv_smoothing.ranges;
  WKVQ_REQUIRE(k_order.empty() || r.group % m.config.head_dim == 0,
               "save_quantized_model: rel8 KV metadata in groups of ", r.group,
               " channels: this interleaved-RoPE model's K channels are reordered within each ",
               "head of ", m.config.head_dim, " in the saved layout, so its groups would change; ",
               "use a --kvgroup that is a multiple of ", m.config.head_dim);
  const std::string p = layer_tensor(l, "self_attn.kv_ranges.");
  const auto at = static_cast<std::ptrdiff_t>(int64_t{l} * r.n_groups);
  auto vec = [&](const std::vector<float>& v) {
    return std::vector<float>(v.begin() + at, v.begin() + at + r.n_groups);
  };
  w.add_owned(p + "k_lo", DType::F32, {r.n_groups}, vec(r.klo));
  w.add_owned(p + "k_hi", DType::F32, {r.n_groups}, vec(r.khi));
  w.add_owned(p + "v_lo", DType::F32, {r.n_groups}, vec(r.vlo));
  w.add_owned(p + "v_hi", DType::F32, {r.n_groups}, vec(r.vhi));
}

}  // namespace

bool writes_kv_static(const KvQuantSettings& kv) {
  return kv.smooth != KvSmoothMode::None || (kv.quantized() && kv.rel8);
}

void add_kv_static_tensors(SafetensorsWriter& w, const Model& m, int l,
                           const std::vector<int64_t>& k_order) {
  const KvSmoothing& s = m.kv_smoothing;
  const KvQuantSettings& settings = m.quant.kv;
  if (settings.quantized() && settings.rel8) add_ranges(w, m, l, k_order);
  if (settings.smooth == KvSmoothMode::None) return;
  const auto kv = static_cast<size_t>(s.kv_dim);
  auto vec = [&](const float* p, bool permute) {
    std::vector<float> v(p, p + kv);
    if (permute && !k_order.empty()) {
      for (size_t c = 0; c < kv; ++c) v[c] = p[k_order[c]];
    }
    return v;
  };
  const std::string p = layer_tensor(l, "self_attn.kv_smoothing.");
  const int64_t n = s.kv_dim;
  w.add_owned(p + "k_shift", DType::F32, {n}, vec(s.dK(l), true));
  w.add_owned(p + "k_scale", DType::F32, {n}, vec(s.sK(l), true));
  w.add_owned(p + "v_shift", DType::F32, {n}, vec(s.dV(l), false));
  w.add_owned(p + "v_scale", DType::F32, {n}, vec(s.sV(l), false));
}

}  // namespace wkvq
