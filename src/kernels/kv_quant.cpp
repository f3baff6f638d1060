// KV quantization kernels (kernels side of formats/kv_quant.h): argument checks, the reference path (2/3 bits, Isa::Reference), and the
// choice of SIMD kernel (kv_quant_avx2.cpp / kv_quant_avx512.cpp).
#include "kernels/kv_quant.h"

#include "core/error.h"
#include "kernels/kv_quant_impl.h"

namespace wkvq {
namespace {

// The SIMD kernels cover 4 and 8 bits; everything else takes the reference.
Isa effective_isa(Isa isa, int bits) {
  WKVQ_REQUIRE(isa_supported(isa), "kv_quant: ISA ", isa_name(isa),
               " is not supported by this CPU");
  return (bits == 4 || bits == 8) ? isa : Isa::Reference;
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

}  // namespace

void quantize_token(const KvQuantFormat& f, const float* x, uint8_t* record) {
  quantize_token(best_isa(), f, x, record);
}

void quantize_token(Isa isa, const KvQuantFormat& f, const float* x, uint8_t* record) {
  int64_t bad = -1;
  switch (effective_isa(isa, f.bits)) {
    case Isa::Reference:
      quantize_token_ref(f, x, record);
      return;
    case Isa::Avx2:
      bad = detail::kv_quantize_token_avx2(shape_of(f), x, record);
      break;
    case Isa::Avx512:
      bad = detail::kv_quantize_token_avx512(shape_of(f), x, record);
      break;
  }
  if (bad >= 0) quantize_token_ref(f, x, record);  // throws with the channel named
}

float kv_dot(const float* q, const uint8_t* codes, int64_t len, int bits, float scale, float mn) {
  return kv_dot(best_isa(), q, codes, len, bits, scale, mn);
}

float kv_dot(Isa isa, const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
             float mn) {
  switch (effective_isa(isa, bits)) {
    case Isa::Avx2:
      return detail::kv_dot_avx2(q, codes, len, bits, scale, mn);
    case Isa::Avx512:
      return detail::kv_dot_avx512(q, codes, len, bits, scale, mn);
    case Isa::Reference:
      break;
  }
  return kv_dot_ref(q, codes, len, bits, scale, mn);
}

void kv_axpy(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
             float* out) {
  kv_axpy(best_isa(), p, codes, len, bits, scale, mn, out);
}

void kv_axpy(Isa isa, float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
             float* out) {
  switch (effective_isa(isa, bits)) {
    case Isa::Avx2:
      detail::kv_axpy_avx2(p, codes, len, bits, scale, mn, out);
      return;
    case Isa::Avx512:
      detail::kv_axpy_avx512(p, codes, len, bits, scale, mn, out);
      return;
    case Isa::Reference:
      break;
  }
  kv_axpy_ref(p, codes, len, bits, scale, mn, out);
}

void kv_dot_tokens(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                   int64_t g, const float* q, float* scores) {
  kv_dot_tokens(best_isa(), f, records, stride, n, g, q, scores);
}

void kv_dot_tokens(Isa isa, const KvQuantFormat& f, const uint8_t* records, int64_t stride,
                   int64_t n, int64_t g, const float* q, float* scores) {
  check_tokens(f, stride, n, g);
  const uint8_t* params = records + 4 * g;
  const uint8_t* codes = records + f.group_code_offset(g);
  const int64_t len = f.group_len(g);
  switch (effective_isa(isa, f.bits)) {
    case Isa::Avx2:
      detail::kv_dot_tokens_avx2(params, codes, stride, n, len, f.bits, q, scores);
      return;
    case Isa::Avx512:
      detail::kv_dot_tokens_avx512(params, codes, stride, n, len, f.bits, q, scores);
      return;
    case Isa::Reference:
      break;
  }
  for (int64_t t = 0; t < n; ++t) {
    const KvGroupParams p = kv_group_params(f, records + t * stride, g);
    scores[t] = kv_dot_ref(q, codes + t * stride, len, f.bits, p.scale, p.min);
  }
}

void kv_axpy_tokens(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                    int64_t g, const float* p, float* out) {
  kv_axpy_tokens(best_isa(), f, records, stride, n, g, p, out);
}

void kv_axpy_tokens(Isa isa, const KvQuantFormat& f, const uint8_t* records, int64_t stride,
                    int64_t n, int64_t g, const float* p, float* out) {
  check_tokens(f, stride, n, g);
  const uint8_t* params = records + 4 * g;
  const uint8_t* codes = records + f.group_code_offset(g);
  const int64_t len = f.group_len(g);
  switch (effective_isa(isa, f.bits)) {
    case Isa::Avx2:
      detail::kv_axpy_tokens_avx2(params, codes, stride, n, len, f.bits, p, out);
      return;
    case Isa::Avx512:
      detail::kv_axpy_tokens_avx512(params, codes, stride, n, len, f.bits, p, out);
      return;
    case Isa::Reference:
      break;
  }
  for (int64_t t = 0; t < n; ++t) {
    const KvGroupParams gp = kv_group_params(f, records + t * stride, g);
    kv_axpy_ref(p[t], codes + t * stride, len, f.bits, gp.scale, gp.min, out);
  }
}

}  // namespace wkvq
