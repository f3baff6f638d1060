// KvSmoothing: the static per-channel shift and scale of the KV cache (design.md §2.2),
//   K~ = (K - dK) / sK        V~ = (V - dV) / sV
// per layer and per KV channel c = kv_head * head_dim + d (K after RoPE). The quantizer sees the
// smoothed K~, V~; attention undoes the smoothing exactly (runtime/kv_cache.cpp).
#pragma once

#include <cstdint>
#include <vector>

namespace wkvq {

struct KvSmoothing {
  int n_layers = 0;
  int kv_dim = 0;
  std::vector<float> dk, sk, dv, sv;  // (n_layers, kv_dim) each; s > 0

  // Shift 0 and scale 1 everywhere: no smoothing.
  static KvSmoothing identity(int n_layers, int kv_dim);
  bool is_identity() const;

  const float* dK(int layer) const { return dk.data() + int64_t{layer} * kv_dim; }
  const float* sK(int layer) const { return sk.data() + int64_t{layer} * kv_dim; }
  const float* dV(int layer) const { return dv.data() + int64_t{layer} * kv_dim; }
  const float* sV(int layer) const { return sv.data() + int64_t{layer} * kv_dim; }

  // Throws unless sizes match (n_layers, kv_dim), scales are finite and > 0, shifts finite.
  void validate(const char* source) const;
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
