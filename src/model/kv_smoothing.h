// KvSmoothing: the static per-channel shift and scale of the KV cache (design.md §2.2),
//   K~ = (K - dK) / sK        V~ = (V - dV) / sV
// per layer and per KV channel c = kv_head * head_dim + d (K after RoPE). The quantizer sees the
// smoothed K~, V~; attention undoes the smoothing exactly (runtime/kv_cache.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/kv_rel8_group.h"

namespace wkvq {

// Static ranges of K and V per layer and channel group of `group` channels, from calibration
// text: for the runtime cache the ranges of the smoothed K~, V~ that rel8 group metadata is
// coded against (formats/kv_quant.h); for the KV lab those of a method's transformed K, V
// (kvlab/kv_ranges.h). (n_layers, n_groups) each.
struct KvGroupRanges {
  int n_layers = 0;
  int64_t group = 0;  // channels per group (the last may be shorter)
  int64_t n_groups = 0;
  std::vector<float> klo, khi, vlo, vhi;
};

// The rel8 levels (formats/kv_quant.h make_kv_rel8_group) of every range of r: (n_layers, K then
// V, n_groups).
std::vector<KvRel8Group> kv_rel8_levels(const KvGroupRanges& r);

struct KvSmoothing {
  int n_layers = 0;
  int kv_dim = 0;
  std::vector<float> dk, sk, dv, sv;  // (n_layers, kv_dim) each; s > 0
  // rel8 group metadata (KvQuantSettings::rel8): the static group ranges of K~ and V~ and their
  // levels, (n_layers, 2, n_groups) with K before V; ranges.n_layers == 0: none. Set by
  // set_ranges.
  KvGroupRanges ranges;
  std::vector<KvRel8Group> rel8;

  // Shift 0 and scale 1 everywhere: no smoothing.
  static KvSmoothing identity(int n_layers, int kv_dim);
  bool is_identity() const;

  const float* dK(int layer) const { return dk.data() + int64_t{layer} * kv_dim; }
  const float* sK(int layer) const { return sk.data() + int64_t{layer} * kv_dim; }
  const float* dV(int layer) const { return dv.data() + int64_t{layer} * kv_dim; }
  const float* sV(int layer) const { return sv.data() + int64_t{layer} * kv_dim; }

  // Throws unless sizes match (n_layers, kv_dim), scales are finite and > 0, shifts finite, and
  // the ranges (if any) are finite with hi >= lo and n_groups of `group` channels.
  void validate(const char* source) const;
  // Validates r (as above, `source` naming where it came from) and keeps it with its levels.
  void set_ranges(KvGroupRanges r, const char* source);
  bool has_ranges() const { return ranges.n_layers > 0; }
  // Layer `layer`'s static groups of K (kv = 0) or V (kv = 1); has_ranges() only.
  const KvRel8Group* rel8_groups(int layer, int kv) const {
    return rel8.data() + (int64_t{layer} * 2 + kv) * ranges.n_groups;
  }
};

// Channel ranges of K and V seen on calibration text, per layer: (n_layers, kv_dim) each.
struct KvChannelStats {
  int n_layers = 0;
  int kv_dim = 0;
  int64_t tokens = 0;
  std::vector<float> kmin, kmax, vmin, vmax;
  KvChannelStats(int layers, int dim);
  void add(int layer, const float* k, const float* v, int64_t n);  // n tokens of (kv_dim)
};

// The statistics initialisation of design.md §2.2, per layer and channel:
//   d = (max + min) / 2,  r = (max - min) / 2,  s = max(r / mean(r), kMinScale)
// where mean(r) is over the layer's channels, so every channel gets a similar range; the floor
// keeps constant channels (r = 0) usable.
KvSmoothing smoothing_from_stats(const KvChannelStats& st);
inline constexpr float kMinSmoothingScale = 1e-2f;

}  // namespace wkvq
