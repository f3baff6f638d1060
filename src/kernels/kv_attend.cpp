// Attention kernels (kernels/kv_attend.h): the scalar references, argument checks and the kernel
// table's SIMD kernels (kv_attend_kernels.h).
#include "kernels/kv_attend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/kv_attend_impl.h"
#include "kernels/kv_quant.h"
#include "kernels/qmatmul_q8.h"
#include "kernels/vec_ops.h"

namespace wkvq {
namespace {

// The SIMD decoder covers the int records (2, 3, 4 and 8 bits) when the head holds whole groups,
// or when it lies inside one group (a multiple of hd) at an offset of a multiple of two vectors
// (so the reference's sums over the zero-padded group have the same lanes: hd a multiple of
// 2 lanes) and, for 4 bits, inside one plane (an even number of heads per group).
bool simd_int_decode(const KvRecordFormat& f, int64_t c0, int64_t hd, int64_t lanes) {
  if (f.bits > 8) return false;
  const int64_t g = f.format.group;
  if (c0 % g == 0 && hd % g == 0) return true;
  return g % hd == 0 && c0 % hd == 0 && hd % (2 * lanes) == 0 && (f.bits != 4 || (g / hd) % 2 == 0);
}

void check_decode(const KvRecordFormat& f, int64_t stride, int64_t n, int64_t c0, int64_t hd) {
  if (f.bits <= 8) require_kv_levels(f.format, "kv_attend");
  WKVQ_REQUIRE(f.bits == 32 || f.bits == 16 || f.format.bits == f.bits, "kv_attend: ", f.bits,
               "-bit records with a ", f.format.bits, "-bit format");
  const int64_t channels = f.bits >= 16 ? stride / (f.bits / 8) : f.format.channels;
  WKVQ_REQUIRE(n >= 0 && hd > 0 && c0 >= 0 && c0 + hd <= channels, "kv_attend: channels [", c0,
               ", ", c0 + hd, ") of ", n, " records of ", channels, " channels");
}

}  // namespace

void kv_decode_head_ref(const KvRecordFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                        int64_t c0, int64_t hd, float* x) {
  if (f.bits == 32) {
    for (int64_t j = 0; j < n; ++j) {
      std::memcpy(x + j * hd, records + j * stride + 4 * c0,
                  sizeof(float) * static_cast<size_t>(hd));
    }
    return;
  }
  if (f.bits == 16) {
    for (int64_t j = 0; j < n; ++j) {
      const auto* h = reinterpret_cast<const uint16_t*>(records + j * stride) + c0;
      for (int64_t i = 0; i < hd; ++i) x[j * hd + i] = fp16_to_f32(h[i]);
    }
    return;
  }
  const KvQuantFormat& q = f.format;
  const int64_t g0 = c0 / q.group, g1 = (c0 + hd - 1) / q.group;
  std::vector<uint8_t> codes(static_cast<size_t>(q.group));
  for (int64_t j = 0; j < n; ++j) {
    const uint8_t* rec = records + j * stride;
    for (int64_t g = g0; g <= g1; ++g) {
      const KvGroupParams p = kv_group_params(q, rec, g);
      const int64_t first = q.group_first(g), len = q.group_len(g);
      unpack_kv_group_ref(rec + q.group_code_offset(g), len, q.bits, codes.data());
      const int64_t lo = std::max(first, c0), hi = std::min(first + len, c0 + hd);
      for (int64_t c = lo; c < hi; ++c) {
        x[j * hd + (c - c0)] = std::fma(static_cast<float>(codes[c - first]), p.scale, p.min);
      }
    }
  }
}

void gqa_scores_ref(const float* q, int64_t g, int64_t hd, const float* x, int64_t ldx, int64_t n,
                    float scale, float* scores, int64_t ld) {
  for (int64_t h = 0; h < g; ++h) {
    for (int64_t j = 0; j < n; ++j) scores[h * ld + j] = scale * dot(q + h * hd, x + j * ldx, hd);
  }
}

void gqa_values_ref(const float* p, int64_t ld, int64_t g, int64_t hd, const float* x, int64_t ldx,
                    int64_t n, float* acc) {
  for (int64_t h = 0; h < g; ++h) {
    for (int64_t j = 0; j < n; ++j) {
      const float pj = p[h * ld + j];
      axpy(acc + h * hd, pj, x + j * ldx, hd);
    }
  }
}

void kv_decode_head(const KvRecordFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                    int64_t c0, int64_t hd, float* x, const KernelTable& t) {
  check_decode(f, stride, n, c0, hd);
  const detail::KvAttendOps* ops = t.kv_attend;
  if (ops != nullptr && f.bits == 16) {
    ops->decode_fp16(records, stride, n, c0, hd, x);
  } else if (ops != nullptr && simd_int_decode(f, c0, hd, ops->lanes)) {
    ops->decode_int(detail::kv_shape_of(f.format), records, stride, n, c0, hd, x);
  } else {
    kv_decode_head_ref(f, records, stride, n, c0, hd, x);
  }
}

void gqa_scores(const float* q, int64_t g, int64_t hd, const float* x, int64_t ldx, int64_t n,
                float scale, float* scores, int64_t ld, const KernelTable& t) {
  WKVQ_REQUIRE(g >= 1 && hd >= 1 && ldx >= hd && ld >= n, "gqa_scores: ", g, " heads of ", hd, ", ",
               n, " rows ", ldx, " apart, scores ", ld, " apart");
  if (t.kv_attend != nullptr) {
    t.kv_attend->scores(q, g, hd, x, ldx, n, scale, scores, ld);
  } else {
    gqa_scores_ref(q, g, hd, x, ldx, n, scale, scores, ld);
  }
}

void gqa_values(const float* p, int64_t ld, int64_t g, int64_t hd, const float* x, int64_t ldx,
                int64_t n, float* acc, const KernelTable& t) {
  WKVQ_REQUIRE(g >= 1 && hd >= 1 && ldx >= hd && ld >= n, "gqa_values: ", g, " heads of ", hd, ", ",
               n, " rows ", ldx, " apart, weights ", ld, " apart");
  if (t.kv_attend != nullptr) {
    t.kv_attend->values(p, ld, g, hd, x, ldx, n, acc);
  } else {
    gqa_values_ref(p, ld, g, hd, x, ldx, n, acc);
  }
}

void gqa_softmax(float* scores, int64_t g, int64_t n, int64_t ld, const KernelTable& t) {
  WKVQ_REQUIRE(g >= 1 && n >= 1 && ld >= n, "gqa_softmax: ", g, " rows of ", n, ", ", ld, " apart");
  const detail::KvAttendOps* ops = t.kv_attend;
  for (int64_t h = 0; h < g; ++h) {
    if (ops != nullptr) {
      ops->softmax(scores + h * ld, n);
    } else {
      softmax_inplace(scores + h * ld, n);
    }
  }
}

int64_t gqa_scores_int_work(const KvQuantFormat& f, int64_t n, int64_t hd) {
  const int64_t groups = hd / f.group + 2;  // at most, holding hd channels
  return std::max(n * hd + 2 * n * groups, groups * f.group + n);
}

void gqa_scores_int_ref(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                        int64_t c0, const float* q, int64_t g, int64_t hd, float scale,
                        float* scores, int64_t ld, float* work, const KernelTable& dot_table) {
  // q_h over the groups' channels [first, first + span), 0 outside the head; then the partials
  const int64_t g0 = c0 / f.group, g1 = (c0 + hd - 1) / f.group;
  const int64_t first = f.group_first(g0), span = f.group_first(g1) + f.group_len(g1) - first;
  float* qpad = work;
  float* partial = work + span;
  for (int64_t h = 0; h < g; ++h) {
    std::fill(qpad, qpad + span, 0.0f);
    std::copy(q + h * hd, q + (h + 1) * hd, qpad + (c0 - first));
    float* row = scores + h * ld;
    for (int64_t k = g0; k <= g1; ++k) {
      float* dst = k == g0 ? row : partial;
      kv_dot_tokens(f, records, stride, n, k, qpad + (f.group_first(k) - first), dst, dot_table);
      if (k != g0) {
        for (int64_t j = 0; j < n; ++j) row[j] += partial[j];
      }
    }
    for (int64_t j = 0; j < n; ++j) row[j] *= scale;
  }
}

void gqa_scores_int(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                    int64_t c0, const float* q, int64_t g, int64_t hd, float scale, float* scores,
                    int64_t ld, float* work, const KernelTable& t) {
  const KvRecordFormat rf{f.bits, f};
  check_decode(rf, stride, n, c0, hd);
  WKVQ_REQUIRE(g >= 1 && ld >= n, "gqa_scores_int: ", g, " heads, ", n, " rows, scores ", ld,
               " apart");
  if (t.kv_attend == nullptr || t.kv_quant == nullptr ||
      !simd_int_decode(rf, c0, hd, t.kv_attend->lanes)) {
    gqa_scores_int_ref(f, records, stride, n, c0, q, g, hd, scale, scores, ld, work, t);
    return;
  }
  const detail::KvShape s = detail::kv_shape_of(f);
  float* sc = work + n * hd;
  float* mn = sc + n * std::max<int64_t>(1, hd / f.group);  // one group when the head is inside
  t.kv_attend->decode_codes(s, records, stride, n, c0, hd, work, sc, mn);
  t.kv_attend->scores_int(s, q, g, hd, work, sc, mn, n, scale, scores, ld);
}

void quantize_query_q8(const float* q, int64_t g, int64_t hd, int64_t group, int8_t* q8, float* d,
                       float* qsum) {
  WKVQ_REQUIRE(g >= 1 && group >= 1 && hd % group == 0, "quantize_query_q8: ", g, " heads of ", hd,
               " channels in groups of ", group);
  const int64_t groups = hd / group;
  for (int64_t h = 0; h < g; ++h) {
    for (int64_t k = 0; k < groups; ++k) {
      const float* x = q + h * hd + k * group;
      int64_t codes_sum = 0;  // the int8 GEMM's block quantizer, one block per key group
      d[h * groups + k] = quantize_block_q8_ref(x, group, q8 + h * hd + k * group, &codes_sum);
      float sum = 0.0f;
      for (int64_t i = 0; i < group; ++i) sum += x[i];
      qsum[h * groups + k] = sum;
    }
  }
}

bool gqa_scores_q8_applies(const KvQuantFormat& f, int64_t c0, int64_t hd) {
  return f.bits == 4 && f.group % 2 == 0 && c0 % f.group == 0 && hd % f.group == 0;
}

int64_t gqa_scores_q8_work(const KvQuantFormat& f, int64_t n, int64_t hd) {
  return (n * hd + 3) / 4 + 2 * n * std::max<int64_t>(1, hd / f.group);
}

void gqa_scores_q8_ref(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                       int64_t c0, const QueryQ8& q, int64_t g, int64_t hd, float scale,
                       float* scores, int64_t ld) {
  const int64_t len = f.group, groups = hd / len, g0 = c0 / len;
  std::vector<uint8_t> codes(static_cast<size_t>(len));
  for (int64_t h = 0; h < g; ++h) {
    for (int64_t j = 0; j < n; ++j) {
      const uint8_t* rec = records + j * stride;
      float total = 0.0f;
      for (int64_t k = 0; k < groups; ++k) {
        const KvGroupParams p = kv_group_params(f, rec, g0 + k);
        unpack_kv_group_ref(rec + f.group_code_offset(g0 + k), len, 4, codes.data());
        const int8_t* qk = q.q8 + h * hd + k * len;
        int32_t sum = 0;
        for (int64_t i = 0; i < len; ++i) sum += int32_t{qk[i]} * int32_t{codes[i]};
        const float t = static_cast<float>(sum) * q.d[h * groups + k];
        const float part = std::fma(p.scale, t, p.min * q.qsum[h * groups + k]);
        total = k == 0 ? part : total + part;
      }
      scores[h * ld + j] = total * scale;
    }
  }
}

void gqa_scores_q8(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                   int64_t c0, const QueryQ8& q, int64_t g, int64_t hd, float scale, float* scores,
                   int64_t ld, float* work, const KernelTable& t) {
  check_decode({f.bits, f}, stride, n, c0, hd);
  WKVQ_REQUIRE(gqa_scores_q8_applies(f, c0, hd), "gqa_scores_q8: ", f.bits,
               "-bit keys in groups of ", f.group, " for channels [", c0, ", ", c0 + hd,
               "); expected 4-bit keys whose groups (of an even length) lie inside the head");
  WKVQ_REQUIRE(g >= 1 && ld >= n, "gqa_scores_q8: ", g, " heads, ", n, " rows, scores ", ld,
               " apart");
  if (t.kv_attend == nullptr || f.group % 32 != 0) {
    gqa_scores_q8_ref(f, records, stride, n, c0, q, g, hd, scale, scores, ld);
    return;
  }
  const int64_t groups = hd / f.group;
  float* sc = work;
  float* mn = sc + n * groups;
  auto* codes = reinterpret_cast<uint8_t*>(mn + n * groups);
  t.kv_attend->scores_q8(detail::kv_shape_of(f), records, stride, n, c0, q.q8, q.d, q.qsum, g, hd,
                         scale, scores, ld, codes, sc, mn);
}

std::string kv_attend_kernel(const KvRecordFormat& f, int64_t hd, const KernelTable& t) {
  const std::string format = f.bits == 32   ? "f32"
                             : f.bits == 16 ? "fp16"
                                            : "int" + std::to_string(f.bits);
  if (t.kv_attend == nullptr) return "reference: " + format + " decode, GQA tiles";
  const std::string isa = isa_name(t.isa);
  if (f.bits == 32) return isa + ": f32 in place, GQA tiles";
  if (f.bits == 16 || simd_int_decode(f, 0, hd, t.kv_attend->lanes)) {
    return isa + ": " + format + " decode, GQA tiles";
  }
  return "reference " + format + " decode, " + isa + " GQA tiles";
}

}  // namespace wkvq
