// Internal to the KV quantization kernels: the per-ISA kernels behind kernels/kv_quant.h, 2, 3, 4
// and 8 bits. kv_quant.cpp validates arguments and runs the kernel table's kernels
// (kv_quant_kernels.h, instantiated per ISA); the SIMD files only compute. They use nothing from
// the standard library or from inline functions of other headers (an inline function instantiated
// with ISA flags could be picked by the linker for baseline code), hence the plain struct below
// instead of KvQuantFormat's member functions.
#pragma once

#include <cstdint>

#include "formats/kv_rel8_group.h"

namespace wkvq {
struct KvQuantFormat;
}

namespace wkvq::detail {

// The fields of a KvQuantFormat the kernels need.
struct KvShape {
  int64_t channels;
  int64_t group;
  int64_t n_groups;
  int64_t params_bytes;
  int64_t group_code_bytes;
  int bits;
  int64_t group_param_bytes;  // 4: fp16 scale and min; 2: rel8 (formats/kv_quant.h)
  const KvRel8Group* rel8;    // rel8: the n_groups static ranges; null for fp16 metadata
};

// One ISA's KV kernels (an entry of the kernel table, kernels/kernel_table.h), 2, 3, 4 and 8 bits:
//   quantize_token: returns -1, or the first group it could not quantize (a non-finite value or
//     an fp16 overflow): the caller then reruns the reference, which reports the error.
//   dot / axpy: one group (kernels/kv_quant.h).
//   dot_tokens / axpy_tokens: batched over tokens: `params` points at group g's metadata of
//     token 0 (fp16 scale and min, or with `rel8` = the group's static range its two rel8 bytes),
//     `codes` at its codes; token t's are `stride` bytes further per token.
struct KvQuantOps {
  int64_t (*quantize_token)(const KvShape& s, const float* x, uint8_t* record);
  float (*dot)(const float* q, const uint8_t* codes, int64_t len, int bits, float scale, float mn);
  void (*axpy)(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
               float* out);
  void (*dot_tokens)(const uint8_t* params, const KvRel8Group* rel8, const uint8_t* codes,
                     int64_t stride, int64_t n, int64_t len, int bits, const float* q,
                     float* scores);
  void (*axpy_tokens)(const uint8_t* params, const KvRel8Group* rel8, const uint8_t* codes,
                      int64_t stride, int64_t n, int64_t len, int bits, const float* p, float* out);
};

// The shape of a format (defined in kv_quant.cpp, baseline code).
KvShape kv_shape_of(const KvQuantFormat& f);

// Defined in kv_quant_avx2.cpp / kv_quant_avx512.cpp (compiled with those ISA flags).
const KvQuantOps& kv_quant_ops_avx2();
const KvQuantOps& kv_quant_ops_avx512();

}  // namespace wkvq::detail
