// Per-layer bit allocation of the KV lab (issue 16 item 3, `alloc=sens`): the code bits of an int
// method shared out over the 2 n_layers tensors (the keys and the values of every layer) by a
// measured sensitivity, at the same total code bits (and so the same bits per element: every
// tensor keeps the uniform configuration's groups and metadata).
//
// Sensitivity: for each tensor t and bit width b of a menu, the KL divergence on calibration text
// of the evaluated weights decoding with only tensor t quantized at b bits (the others in f32)
// from the same weights with a float cache. The allocation minimises the sum of these over the
// tensors (their effects taken as additive) subject to the sum of the bits being the total.
#pragma once

#include <cstdint>
#include <vector>

#include "kvlab/kv_method.h"

namespace wkvq {

struct KvSensitivity {
  int n_tensors = 0;      // 2 n_layers: layer l's keys at 2l, its values at 2l + 1
  std::vector<int> bits;  // the bit widths measured, ascending
  std::vector<double>
      cost;  // (n_tensors, bits.size()): the KLD with only that tensor at those bits
};

// The b_t in s.bits minimising sum_t cost[t][b_t] subject to sum_t b_t == total (exact dynamic
// programme over tensors and bit sums). Deterministic: on equal sums the fewer bits win at the
// first tensor that differs. Throws when no choice of the menu sums to `total`.
std::vector<int> allocate_kv_bits(const KvSensitivity& s, int64_t total);

// More bits never cost more than fewer: cost[t][i] = min over j <= i of cost[t][j] (a
// measurement in which a wider code scores worse is noise of the calibration text).
void make_kv_sensitivity_monotone(KvSensitivity& s);

// The bit widths alloc=sens measures for `uniform` sharing out `total` bits over `tensors`: the
// 8-bit relative metadata (wkvq2d*) 1 .. ceil(total / tensors) + 2 (at most 8); the fp16-metadata
// groups 2, 3, 4, 8 (formats/kv_quant.h).
std::vector<int> kv_alloc_menu(const KvMethodSpec& uniform, int64_t total, int tensors);

// The total code bits alloc=sens shares out: m.alloc_total_bits, else 2 n_layers m.bits.
int64_t kv_alloc_total(const KvMethodSpec& m, int n_layers);

}  // namespace wkvq
