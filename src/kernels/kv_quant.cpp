// KV quantization kernels (kernels side of formats/kv_quant.h): argument checks, the reference
// path (Isa::Reference), and the kernel table's SIMD kernels (kv_quant_kernels.h).
#include "kernels/kv_quant.h"

#include "core/error.h"
#include "kernels/kernel_table.h"
#include "kernels/kv_quant_impl.h"

namespace wkvq {
namespace {

// The table's kernels for `bits`, or null where the reference runs (the SIMD kernels cover every
// width: 2, 3, 4 and 8 bits).
const detail::KvQuantOps* ops_for(const KernelTable& t, int bits) {
  return bits == 2 || bits == 3 || bits == 4 || bits == 8 ? t.kv_quant : nullptr;
}

void check_tokens(const KvQuantFormat& f, int64_t stride, int64_t n, int64_t g) {
  WKVQ_REQUIRE(g >= 0 && g < f.n_groups, "kv_quant: group ", g, " outside [0, ", f.n_groups, ")");
  WKVQ_REQUIRE(n >= 0 && stride >= f.token_bytes, "kv_quant: ", n, " tokens with stride ", stride,
               " bytes (a record has ", f.token_bytes, ")");
}

// Group g of n token records: the table's batched kernel simd(ops, params, rel8, codes, len), or
// for the reference ref(i, params of token i, codes of token i, len) for each token in order.
template <class Simd, class Ref>
void over_tokens(const KernelTable& t, const KvQuantFormat& f, const uint8_t* records,
                 int64_t stride, int64_t n, int64_t g, Simd simd, Ref ref) {
  check_tokens(f, stride, n, g);
  require_kv_levels(f, "kv_quant");
  const uint8_t* codes = records + f.group_code_offset(g);
  const int64_t len = f.group_len(g);
  if (const detail::KvQuantOps* ops = ops_for(t, f.bits)) {
    simd(*ops, records + f.group_param_offset(g), f.rel8_group(g), codes, len);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    ref(i, kv_group_params(f, records + i * stride, g), codes + i * stride, len);
  }
}

}  // namespace

namespace detail {
KvShape kv_shape_of(const KvQuantFormat& f) {
  return KvShape{f.channels,
                 f.group,
                 f.n_groups,
                 f.params_bytes,
                 f.group_code_bytes,
                 f.bits,
                 f.group_param_bytes(),
                 f.rel8_group(0)};
}
}  // namespace detail

void quantize_token(const KvQuantFormat& f, const float* x, uint8_t* record, const KernelTable& t) {
  require_kv_levels(f, "kv_quant");
  const detail::KvQuantOps* ops = ops_for(t, f.bits);
  // A SIMD kernel that meets a non-finite value or an fp16 overflow hands over to the reference,
  // which throws with the channel named.
  if (ops == nullptr || ops->quantize_token(detail::kv_shape_of(f), x, record) >= 0) {
    quantize_token_ref(f, x, record);
  }
}

float kv_dot(const float* q, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
             const KernelTable& t) {
  const detail::KvQuantOps* ops = ops_for(t, bits);
  return ops != nullptr ? ops->dot(q, codes, len, bits, scale, mn)
                        : kv_dot_ref(q, codes, len, bits, scale, mn);
}

void kv_axpy(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
             float* out, const KernelTable& t) {
  const detail::KvQuantOps* ops = ops_for(t, bits);
  if (ops != nullptr) {
    ops->axpy(p, codes, len, bits, scale, mn, out);
  } else {
    kv_axpy_ref(p, codes, len, bits, scale, mn, out);
  }
}

void kv_dot_tokens(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                   int64_t g, const float* q, float* scores, const KernelTable& t) {
  over_tokens(
      t, f, records, stride, n, g,
      [&](const detail::KvQuantOps& ops, const uint8_t* params, const KvRel8Group* rel8,
          const uint8_t* codes,
          int64_t len) { ops.dot_tokens(params, rel8, codes, stride, n, len, f.bits, q, scores); },
      [&](int64_t i, KvGroupParams p, const uint8_t* codes, int64_t len) {
        scores[i] = kv_dot_ref(q, codes, len, f.bits, p.scale, p.min);
      });
}

void kv_axpy_tokens(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                    int64_t g, const float* p, float* out, const KernelTable& t) {
  over_tokens(
      t, f, records, stride, n, g,
      [&](const detail::KvQuantOps& ops, const uint8_t* params, const KvRel8Group* rel8,
          const uint8_t* codes,
          int64_t len) { ops.axpy_tokens(params, rel8, codes, stride, n, len, f.bits, p, out); },
      [&](int64_t i, KvGroupParams gp, const uint8_t* codes, int64_t len) {
        kv_axpy_ref(p[i], codes, len, f.bits, gp.scale, gp.min, out);
      });
}

}  // namespace wkvq
