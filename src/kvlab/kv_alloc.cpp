#include "kvlab/kv_alloc.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace wkvq {

std::vector<int> allocate_kv_bits(const KvSensitivity& s, int64_t total) {
  const auto n = static_cast<size_t>(s.n_tensors);
  const size_t nb = s.bits.size();
  WKVQ_REQUIRE(n > 0 && nb > 0 && s.cost.size() == n * nb,
               "KV bit allocation: a sensitivity table of ", n, " tensors x ", nb,
               " bit widths needs ", n * nb, " costs, found ", s.cost.size());
  const int bmax = s.bits.back();
  const auto sums = static_cast<size_t>(bmax) * n + 1;
  WKVQ_REQUIRE(total >= 0 && static_cast<size_t>(total) < sums, "KV bit allocation: ", total,
               " bits cannot be shared out over ", n, " tensors of ", s.bits.front(), "..", bmax,
               " bits");
  const double inf = std::numeric_limits<double>::infinity();
  // best[t][u]: the least cost of tensors [0, t) using u bits; pick[t][u]: tensor t-1's menu index
  std::vector<std::vector<double>> best(n + 1, std::vector<double>(sums, inf));
  std::vector<std::vector<size_t>> pick(n + 1, std::vector<size_t>(sums, 0));
  best[0][0] = 0.0;
  for (size_t t = 0; t < n; ++t) {
    for (size_t u = 0; u < sums; ++u) {
      if (best[t][u] == inf) continue;
      for (size_t i = 0; i < nb; ++i) {
        const size_t v = u + static_cast<size_t>(s.bits[i]);
        if (v >= sums) break;
        const double c = best[t][u] + s.cost[t * nb + i];
        if (c < best[t + 1][v]) {
          best[t + 1][v] = c;
          pick[t + 1][v] = i;
        }
      }
    }
  }
  WKVQ_REQUIRE(best[n][static_cast<size_t>(total)] < inf, "KV bit allocation: no choice of ",
               s.bits.front(), "..", bmax, " bits over ", n, " tensors sums to ", total);
  std::vector<int> out(n);
  auto u = static_cast<size_t>(total);
  for (size_t t = n; t > 0; --t) {
    out[t - 1] = s.bits[pick[t][u]];
    u -= static_cast<size_t>(out[t - 1]);
  }
  return out;
}

void make_kv_sensitivity_monotone(KvSensitivity& s) {
  const size_t nb = s.bits.size();
  for (size_t t = 0; t < static_cast<size_t>(s.n_tensors); ++t) {
    for (size_t i = 1; i < nb; ++i) {
      s.cost[t * nb + i] = std::min(s.cost[t * nb + i], s.cost[t * nb + i - 1]);
    }
  }
}

std::vector<int> kv_alloc_menu(const KvMethodSpec& uniform, int64_t total, int tensors) {
  WKVQ_REQUIRE(uniform.family == KvFamily::Int && tensors > 0,
               "alloc=sens shares out the bits of the int methods");
  if (!uniform.rel8) return {2, 3, 4, 8};
  const auto top = static_cast<int>(std::min<int64_t>(8, (total + tensors - 1) / tensors + 2));
  std::vector<int> out;
  for (int b = 1; b <= top; ++b) out.push_back(b);
  return out;
}

int64_t kv_alloc_total(const KvMethodSpec& m, int n_layers) {
  return m.alloc_total_bits > 0 ? m.alloc_total_bits : int64_t{2} * n_layers * m.bits;
}

}  // namespace wkvq
