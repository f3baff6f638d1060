#include "kvlab/kv_lab_method.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/rope.h"
#include "kvlab/kv_codecs.h"

namespace wkvq {

namespace {
// The seed of the turbo rotation of (layer, K or V, kv head): fixed, so runs are reproducible.
uint64_t rotation_seed(int layer, int kv, int64_t head) {
  return 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(layer) << 32) ^
         (static_cast<uint64_t>(kv) << 24) ^ static_cast<uint64_t>(head);
}
}  // namespace

KvLabMethod::KvLabMethod(const KvMethodSpec& spec, const LlamaConfig& c,
                         const KvSmoothing* smoothing, const KvGroupRanges* ranges)
    : spec_(spec),
      n_layers_(c.n_layers),
      kv_dim_(c.kv_dim()),
      head_dim_(c.head_dim),
      smoothing_(smoothing),
      config_(c) {
  check_kv_method(spec_, shape());
  group_ = spec_.group == 0 ? head_dim_ : spec_.group;
  if (spec_.family == KvFamily::Int && spec_.smooth) {
    WKVQ_REQUIRE(smoothing_ != nullptr, "--kv-method ", spec_.label(),
                 " smooths K/V: it needs the model's smoothing or statistics from --calib FILE");
    WKVQ_REQUIRE(smoothing_->n_layers == n_layers_ && smoothing_->kv_dim == kv_dim_, "--kv-method ",
                 spec_.label(), ": smoothing of another shape");
  }
  if (spec_.family == KvFamily::Int) check_int_bits();
  if (spec_.family == KvFamily::Kivi) {
    WKVQ_REQUIRE(spec_.bits == 2 || spec_.bits == 3 || spec_.bits == 4 || spec_.bits == 8,
                 "--kv-method ", spec_.label(), ": kivi takes b = 2, 3, 4 or 8");
  }
  if (spec_.needs_ranges() && ranges != nullptr) {  // without: transform() only (calibration)
    const int64_t groups = (kv_dim_ + range_group() - 1) / range_group();
    WKVQ_REQUIRE(ranges->n_layers == n_layers_ && ranges->n_groups == groups, "--kv-method ",
                 spec_.label(), ": static ranges of another shape");
    ranges_ = *ranges;
    if (spec_.family == KvFamily::Int) rel8_ = kv_rel8_levels(ranges_);
  }
  if (spec_.family == KvFamily::Turbo) {
    levels_ = lloyd_max_unit_coordinate(static_cast<int>(head_dim_), spec_.bits);
    const int64_t heads = kv_dim_ / head_dim_;
    for (int l = 0; l < n_layers_; ++l) {
      for (int kv = 0; kv < 2; ++kv) {
        for (int64_t h = 0; h < heads; ++h) {
          const auto r = random_orthogonal(static_cast<int>(head_dim_), rotation_seed(l, kv, h));
          rotations_.insert(rotations_.end(), r.begin(), r.end());
        }
      }
    }
  }
}

void KvLabMethod::check_int_bits() const {
  WKVQ_REQUIRE(!spec_.alloc || !spec_.layer_bits.empty(), "--kv-method ", spec_.label(),
               ": alloc=sens needs its per-layer bits chosen first (make_kv_lab_method)");
  WKVQ_REQUIRE(
      spec_.layer_bits.empty() || spec_.layer_bits.size() == static_cast<size_t>(2 * n_layers_),
      "--kv-method ", spec_.label(), ": kb= and vb= need ", n_layers_,
      " layers' bits each (this model's layers), found ", spec_.layer_bits.size() / 2);
  for (int l = 0; l < n_layers_; ++l) {
    for (const bool key : {true, false}) {
      const int b = spec_.tensor_bits(l, key);
      // rel8: any 1..8 (1 bit: the group's two ends); fp16 metadata: formats/kv_quant.h's
      // 2, 3, 4, 8; 0: not quantized (f32)
      const bool ok =
          spec_.rel8 ? (b >= 0 && b <= 8) : (b == 0 || b == 2 || b == 3 || b == 4 || b == 8);
      WKVQ_REQUIRE(ok, "--kv-method ", spec_.label(), ": layer ", l, (key ? " keys" : " values"),
                   " at ", b, " bits; ",
                   spec_.rel8 ? "the 8-bit relative metadata takes 1..8 bits"
                              : "the fp16-metadata token groups take b = 2, 3, 4 or 8");
    }
  }
}

int64_t KvLabMethod::key_block() const {
  return spec_.family == KvFamily::Kivi ? spec_.residual : 1;
}

int64_t KvLabMethod::key_quantized_end(int64_t t) const {
  const int64_t kb = key_block();
  return std::max<int64_t>(0, t - spec_.window) / kb * kb;
}

int64_t KvLabMethod::value_quantized_end(int64_t t) const {
  const int64_t r = spec_.family == KvFamily::Kivi ? spec_.residual : 0;
  return std::max<int64_t>(0, t - spec_.window - r);
}

void KvLabMethod::rope_key(float* x, int64_t pos) const {
  RopeTable t;
  t.build(pos, 1, static_cast<int>(head_dim_), config_.rope_theta, config_.rope_scaling);
  rope_apply(x, static_cast<int>(kv_dim_ / head_dim_), static_cast<int>(head_dim_), t, 0,
             config_.rope_layout);
}

void KvLabMethod::transform(bool key, int layer, int64_t pos, const float* x, float* y) const {
  std::memcpy(y, x, sizeof(float) * static_cast<size_t>(kv_dim_));
  if (spec_.family == KvFamily::KvQuant && key) rope_key(y, -pos);
  if (spec_.family != KvFamily::Int) return;
  if (spec_.smooth) {
    const float* d = key ? smoothing_->dK(layer) : smoothing_->dV(layer);
    const float* s = key ? smoothing_->sK(layer) : smoothing_->sV(layer);
    for (int64_t c = 0; c < kv_dim_; ++c) y[c] = (y[c] - d[c]) / s[c];
  }
  if (spec_.rotate) {
    for (int64_t c0 = 0; c0 < kv_dim_; c0 += head_dim_) hadamard_in_place(y + c0, head_dim_);
  }
}

void KvLabMethod::untransform(bool key, int layer, float* y) const {
  if (spec_.rotate) {
    for (int64_t c0 = 0; c0 < kv_dim_; c0 += head_dim_) hadamard_in_place(y + c0, head_dim_);
  }
  if (spec_.smooth) {
    const float* d = key ? smoothing_->dK(layer) : smoothing_->dV(layer);
    const float* s = key ? smoothing_->sK(layer) : smoothing_->sV(layer);
    for (int64_t c = 0; c < kv_dim_; ++c) y[c] = y[c] * s[c] + d[c];
  }
}

void KvLabMethod::round_trip_int(bool key, int layer, const float* x, float* out) const {
  std::vector<float> y(static_cast<size_t>(kv_dim_));
  transform(key, layer, 0, x, y.data());
  const int bits = spec_.tensor_bits(layer, key);
  if (bits == 0) {  // the transforms alone
    std::memcpy(out, y.data(), sizeof(float) * y.size());
  } else if (spec_.rel8) {
    WKVQ_REQUIRE(!rel8_.empty(), "--kv-method ", spec_.label(), " needs static ranges");
    const size_t at = static_cast<size_t>((layer * 2 + (key ? 0 : 1)) * ranges_.n_groups);
    rel8_groups_round_trip(y.data(), kv_dim_, group_, bits, rel8_.data() + at, out);
  } else {
    token_groups_round_trip(y.data(), kv_dim_, group_, bits, out);
  }
  untransform(key, layer, out);
}

std::vector<double> KvLabMethod::rotation(int layer, bool key, int64_t head) const {
  if (rotations_.empty()) return {};
  const auto heads = static_cast<size_t>(kv_dim_ / head_dim_);
  const auto hd = static_cast<size_t>(head_dim_);
  const size_t at =
      ((static_cast<size_t>(layer) * 2 + (key ? 0 : 1)) * heads + static_cast<size_t>(head)) * hd *
      hd;
  return {rotations_.begin() + static_cast<std::ptrdiff_t>(at),
          rotations_.begin() + static_cast<std::ptrdiff_t>(at + hd * hd)};
}

void KvLabMethod::round_trip_turbo(bool key, int layer, const float* x, float* out) const {
  const int64_t heads = kv_dim_ / head_dim_;
  for (int64_t h = 0; h < heads; ++h) {
    const std::vector<double> r = rotation(layer, key, h);
    turbo_round_trip(x + h * head_dim_, static_cast<int>(head_dim_), r, levels_,
                     out + h * head_dim_);
  }
}

// KIVI keys: per channel over each group of g tokens, fp16 scale and min (the token record's
// formula with the g tokens of one channel as its channels).
void KvLabMethod::round_trip_kivi_keys(const float* k, int64_t n, float* out) const {
  const int64_t g = spec_.group;
  WKVQ_ASSERT(n % g == 0);
  std::vector<float> col(static_cast<size_t>(g)), back(static_cast<size_t>(g));
  for (int64_t t0 = 0; t0 < n; t0 += g) {
    for (int64_t c = 0; c < kv_dim_; ++c) {
      for (int64_t t = 0; t < g; ++t) col[t] = k[(t0 + t) * kv_dim_ + c];
      token_groups_round_trip(col.data(), g, g, spec_.bits, back.data());
      for (int64_t t = 0; t < g; ++t) out[(t0 + t) * kv_dim_ + c] = back[t];
    }
  }
}

void KvLabMethod::round_trip_row(bool key, int layer, const float* x, float* o) const {
  switch (spec_.family) {
    case KvFamily::Fp16:
      for (int64_t c = 0; c < kv_dim_; ++c) o[c] = fp16_to_f32(f32_to_fp16(x[c]));
      return;
    case KvFamily::Q4_0:
      q4_0_round_trip(x, kv_dim_, o);
      return;
    case KvFamily::Q4_1:
      q4_1_round_trip(x, kv_dim_, o);
      return;
    case KvFamily::Turbo:
      round_trip_turbo(key, layer, x, o);
      return;
    case KvFamily::Kivi:  // values: per token, groups of g channels, fp16 scale and min
    case KvFamily::KvQuant:
      WKVQ_ASSERT(!key);
      token_groups_round_trip(x, kv_dim_, group_, spec_.bits, o);
      return;
    case KvFamily::Int:
      round_trip_int(key, layer, x, o);
      return;
  }
}

// KVQuant-style keys: RoPE undone, each channel quantized in its static range [lo, hi] (b bits,
// step (hi - lo) / (2^b - 1), values beyond clipped), RoPE redone.
void KvLabMethod::round_trip_kvquant_key(int layer, int64_t pos, const float* x, float* out) const {
  WKVQ_REQUIRE(ranges_.n_layers > 0, "--kv-method ", spec_.label(), " needs static ranges");
  transform(true, layer, pos, x, out);
  const float qmax = static_cast<float>((1 << spec_.bits) - 1);
  const float* lo = ranges_.klo.data() + layer * ranges_.n_groups;
  const float* hi = ranges_.khi.data() + layer * ranges_.n_groups;
  for (int64_t c = 0; c < kv_dim_; ++c) {
    const float step = (hi[c] - lo[c]) / qmax;
    const float q = std::clamp(std::nearbyint((out[c] - lo[c]) / step), 0.0f, qmax);
    out[c] = lo[c] + q * step;
  }
  rope_key(out, pos);
}

void KvLabMethod::round_trip_keys(int layer, const float* k, int64_t n, int64_t pos0,
                                  float* out) const {
  if (spec_.family == KvFamily::Kivi) {
    round_trip_kivi_keys(k, n, out);
    return;
  }
  if (spec_.family == KvFamily::KvQuant) {
    for (int64_t t = 0; t < n; ++t) {
      round_trip_kvquant_key(layer, pos0 + t, k + t * kv_dim_, out + t * kv_dim_);
    }
    return;
  }
  for (int64_t t = 0; t < n; ++t) round_trip_row(true, layer, k + t * kv_dim_, out + t * kv_dim_);
}

void KvLabMethod::round_trip_values(int layer, const float* v, int64_t n, float* out) const {
  for (int64_t t = 0; t < n; ++t) round_trip_row(false, layer, v + t * kv_dim_, out + t * kv_dim_);
}

}  // namespace wkvq
