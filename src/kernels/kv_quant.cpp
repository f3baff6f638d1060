// KV quantization kernels (kernels side of formats/kv_quant.h): argument checks, the reference
// path (2/3 bits, Isa::Reference), and the kernel table's SIMD kernels (kv_quant_kernels.h).
#include "kernels/kv_quant.h"

#include "core/error.h"
#include "kernels/kernel_table.h"
#include "kernels/kv_quant_impl.h"

namespace wkvq {
namespace {

// The table's kernels for `bits`, or null where the reference runs (the SIMD kernels cover 4 and
// 8 bits).
const detail::KvQuantOps* ops_for(const KernelTable& t, int bits) {
  return bits == 4 || bits == 8 ? t.kv_quant : nullptr;
}

detail::KvShape shape_of(const KvQuantFormat& f) {
  return detail::KvShape{f.channels,         f.group, f.n_groups, f.params_bytes,
                         f.group_code_bytes, f.bits};
}

void check_tokens(const KvQuantFormat& f, int64_t stride, int64_t n, int64_t g) {
  WKVQ_REQUIRE(g >= 0 && g < f.n_groups, "kv_quant: group ", g, " outside [0, ", f.n_groups, ")");
  WKVQ_REQUIRE(n >= 0 && stride >= f.token_bytes, "kv_quant: ", n, " tokens with stride ", stride,
               " bytes (a record has ", f.token_bytes, ")");
}

void quantize_token_with(const KernelTable& t, const KvQuantFormat& f, const float* x,
                         uint8_t* record) {
  const detail::KvQuantOps* ops = ops_for(t, f.bits);
  // A SIMD kernel that meets a non-finite value or an fp16 overflow hands over to the reference,
  // which throws with the channel named.
  if (ops == nullptr || ops->quantize_token(shape_of(f), x, record) >= 0) {
    quantize_token_ref(f, x, record);
  }
}

float kv_dot_with(const KernelTable& t, const float* q, const uint8_t* codes, int64_t len, int bits,
                  float scale, float mn) {
  const detail::KvQuantOps* ops = ops_for(t, bits);
  return ops != nullptr ? ops->dot(q, codes, len, bits, scale, mn)
                        : kv_dot_ref(q, codes, len, bits, scale, mn);
}

void kv_axpy_with(const KernelTable& t, float p, const uint8_t* codes, int64_t len, int bits,
                  float scale, float mn, float* out) {
  const detail::KvQuantOps* ops = ops_for(t, bits);
  if (ops != nullptr) {
    ops->axpy(p, codes, len, bits, scale, mn, out);
  } else {
    kv_axpy_ref(p, codes, len, bits, scale, mn, out);
  }
}

void kv_dot_tokens_with(const KernelTable& t, const KvQuantFormat& f, const uint8_t* records,
                        int64_t stride, int64_t n, int64_t g, const float* q, float* scores) {
  check_tokens(f, stride, n, g);
  const uint8_t* codes = records + f.group_code_offset(g);
  const int64_t len = f.group_len(g);
  if (const detail::KvQuantOps* ops = ops_for(t, f.bits)) {
    ops->dot_tokens(records + 4 * g, codes, stride, n, len, f.bits, q, scores);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const KvGroupParams p = kv_group_params(f, records + i * stride, g);
    scores[i] = kv_dot_ref(q, codes + i * stride, len, f.bits, p.scale, p.min);
  }
}

void kv_axpy_tokens_with(const KernelTable& t, const KvQuantFormat& f, const uint8_t* records,
                         int64_t stride, int64_t n, int64_t g, const float* p, float* out) {
  check_tokens(f, stride, n, g);
  const uint8_t* codes = records + f.group_code_offset(g);
  const int64_t len = f.group_len(g);
  if (const detail::KvQuantOps* ops = ops_for(t, f.bits)) {
    ops->axpy_tokens(records + 4 * g, codes, stride, n, len, f.bits, p, out);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const KvGroupParams gp = kv_group_params(f, records + i * stride, g);
    kv_axpy_ref(p[i], codes + i * stride, len, f.bits, gp.scale, gp.min, out);
  }
}

}  // namespace

void quantize_token(const KvQuantFormat& f, const float* x, uint8_t* record) {
  quantize_token_with(kernel_table(), f, x, record);
}
void quantize_token(Isa isa, const KvQuantFormat& f, const float* x, uint8_t* record) {
  quantize_token_with(kernel_table(isa), f, x, record);
}

float kv_dot(const float* q, const uint8_t* codes, int64_t len, int bits, float scale, float mn) {
  return kv_dot_with(kernel_table(), q, codes, len, bits, scale, mn);
}
float kv_dot(Isa isa, const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
             float mn) {
  return kv_dot_with(kernel_table(isa), q, codes, len, bits, scale, mn);
}

void kv_axpy(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
             float* out) {
  kv_axpy_with(kernel_table(), p, codes, len, bits, scale, mn, out);
}
void kv_axpy(Isa isa, float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
             float* out) {
  kv_axpy_with(kernel_table(isa), p, codes, len, bits, scale, mn, out);
}

void kv_dot_tokens(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                   int64_t g, const float* q, float* scores) {
  kv_dot_tokens_with(kernel_table(), f, records, stride, n, g, q, scores);
}
void kv_dot_tokens(Isa isa, const KvQuantFormat& f, const uint8_t* records, int64_t stride,
                   int64_t n, int64_t g, const float* q, float* scores) {
  kv_dot_tokens_with(kernel_table(isa), f, records, stride, n, g, q, scores);
}

void kv_axpy_tokens(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                    int64_t g, const float* p, float* out) {
  kv_axpy_tokens_with(kernel_table(), f, records, stride, n, g, p, out);
}
void kv_axpy_tokens(Isa isa, const KvQuantFormat& f, const uint8_t* records, int64_t stride,
                    int64_t n, int64_t g, const float* p, float* out) {
  kv_axpy_tokens_with(kernel_table(isa), f, records, stride, n, g, p, out);
}

}  // namespace wkvq
