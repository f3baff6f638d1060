#include "model/kv_smoothing.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "formats/kv_quant.h"

namespace wkvq {

KvSmoothing KvSmoothing::identity(int layers, int dim) {
  KvSmoothing s;
  s.n_layers = layers;
  s.kv_dim = dim;
  const auto n = static_cast<size_t>(layers) * static_cast<size_t>(dim);
  s.dk.assign(n, 0.0f);
  s.dv.assign(n, 0.0f);
  s.sk.assign(n, 1.0f);
  s.sv.assign(n, 1.0f);
  return s;
}

bool KvSmoothing::is_identity() const {
  auto all = [](const std::vector<float>& v, float x) {
    return std::all_of(v.begin(), v.end(), [x](float e) { return e == x; });
  };
  return all(dk, 0.0f) && all(dv, 0.0f) && all(sk, 1.0f) && all(sv, 1.0f);
}

void KvSmoothing::validate(const char* source) const {
  const auto n = static_cast<size_t>(n_layers) * static_cast<size_t>(kv_dim);
  for (const auto* v : {&dk, &sk, &dv, &sv}) {
    WKVQ_REQUIRE(v->size() == n, source, ": KV smoothing vectors must hold n_layers * kv_dim = ", n,
                 " values, found ", v->size());
  }
  for (size_t i = 0; i < n; ++i) {
    WKVQ_REQUIRE(std::isfinite(dk[i]) && std::isfinite(dv[i]), source,
                 ": non-finite KV shift at layer ", i / kv_dim, " channel ", i % kv_dim);
    WKVQ_REQUIRE(std::isfinite(sk[i]) && sk[i] > 0 && std::isfinite(sv[i]) && sv[i] > 0, source,
                 ": KV scales must be finite and positive; layer ", i / kv_dim, " channel ",
                 i % kv_dim, " has sK ", sk[i], ", sV ", sv[i]);
  }
  if (!has_ranges()) return;
  const KvGroupRanges& r = ranges;
  WKVQ_REQUIRE(r.n_layers == n_layers && r.group >= 1 && r.group <= kv_dim &&
                   r.n_groups == (kv_dim + r.group - 1) / r.group,
               source, ": KV group ranges of ", r.n_layers, " layers x ", r.n_groups, " groups of ",
               r.group, " channels do not fit ", n_layers, " layers of ", kv_dim, " channels");
  const auto m = static_cast<size_t>(r.n_layers * r.n_groups);
  for (const auto* v : {&r.klo, &r.khi, &r.vlo, &r.vhi}) {
    WKVQ_REQUIRE(v->size() == m, source, ": KV group ranges must hold n_layers * n_groups = ", m,
                 " values each, found ", v->size());
  }
  for (size_t i = 0; i < m; ++i) {
    for (int kv = 0; kv < 2; ++kv) {
      const float lo = (kv == 0 ? r.klo : r.vlo)[i], hi = (kv == 0 ? r.khi : r.vhi)[i];
      WKVQ_REQUIRE(std::isfinite(lo) && std::isfinite(hi) && hi >= lo, source, ": the static ",
                   kv == 0 ? "K" : "V", " range of layer ", i / r.n_groups, " group ",
                   i % r.n_groups, " is [", lo, ", ", hi, "]; it must be finite with hi >= lo");
    }
  }
}

std::vector<KvRel8Group> kv_rel8_levels(const KvGroupRanges& r) {
  std::vector<KvRel8Group> out;
  out.reserve(static_cast<size_t>(r.n_layers * 2 * r.n_groups));
  for (int l = 0; l < r.n_layers; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      for (int64_t g = 0; g < r.n_groups; ++g) {
        const auto i = static_cast<size_t>(l * r.n_groups + g);
        out.push_back(
            make_kv_rel8_group((kv == 0 ? r.klo : r.vlo)[i], (kv == 0 ? r.khi : r.vhi)[i]));
      }
    }
  }
  return out;
}

void KvSmoothing::set_ranges(KvGroupRanges r, const char* source) {
  ranges = std::move(r);
  rel8.clear();
  validate(source);
  rel8 = kv_rel8_levels(ranges);
}

KvChannelStats::KvChannelStats(int layers, int dim) : n_layers(layers), kv_dim(dim) {
  const auto n = static_cast<size_t>(layers) * static_cast<size_t>(dim);
  kmin.assign(n, std::numeric_limits<float>::infinity());
  vmin.assign(n, std::numeric_limits<float>::infinity());
  kmax.assign(n, -std::numeric_limits<float>::infinity());
  vmax.assign(n, -std::numeric_limits<float>::infinity());
}

void KvChannelStats::add(int layer, const float* k, const float* v, int64_t n) {
  const size_t base = static_cast<size_t>(layer) * static_cast<size_t>(kv_dim);
  for (int64_t t = 0; t < n; ++t) {
    for (int c = 0; c < kv_dim; ++c) {
      const float kc = k[t * kv_dim + c], vc = v[t * kv_dim + c];
      kmin[base + c] = std::min(kmin[base + c], kc);
      kmax[base + c] = std::max(kmax[base + c], kc);
      vmin[base + c] = std::min(vmin[base + c], vc);
      vmax[base + c] = std::max(vmax[base + c], vc);
    }
  }
  if (layer == 0) tokens += n;
}

namespace {
// Fills shift d and scale s of one layer from channel minima and maxima.
void init_from_range(const float* mn, const float* mx, int dim, float* d, float* s) {
  double mean_r = 0.0;
  for (int c = 0; c < dim; ++c) mean_r += (static_cast<double>(mx[c]) - mn[c]) / 2.0;
  mean_r /= dim;
  for (int c = 0; c < dim; ++c) {
    d[c] = static_cast<float>((static_cast<double>(mx[c]) + mn[c]) / 2.0);
    const double r = (static_cast<double>(mx[c]) - mn[c]) / 2.0;
    s[c] = mean_r > 0.0 ? std::max(static_cast<float>(r / mean_r), kMinSmoothingScale) : 1.0f;
  }
}
}  // namespace

KvSmoothing smoothing_from_stats(const KvChannelStats& st) {
  WKVQ_REQUIRE(st.tokens > 0, "KV statistics: no calibration tokens were seen");
  KvSmoothing s = KvSmoothing::identity(st.n_layers, st.kv_dim);
  for (int l = 0; l < st.n_layers; ++l) {
    const size_t o = static_cast<size_t>(l) * static_cast<size_t>(st.kv_dim);
    init_from_range(st.kmin.data() + o, st.kmax.data() + o, st.kv_dim, s.dk.data() + o,
                    s.sk.data() + o);
    init_from_range(st.vmin.data() + o, st.vmax.data() + o, st.kv_dim, s.dv.data() + o,
                    s.sv.data() + o);
  }
  return s;
}

}  // namespace wkvq
