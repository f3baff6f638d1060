// Internal to the KV quantization kernels: the per-ISA kernels behind kernels/kv_quant.h, 4 and 8 bits only.
// kv_quant.cpp validates arguments and dispatches; the SIMD files only compute. They use nothing
// from the standard library or from inline functions of other headers (an inline function
// instantiated with ISA flags could be picked by the linker for baseline code), hence the plain
// struct below instead of KvQuantFormat's member functions.
#pragma once

#include <cstdint>

namespace wkvq::detail {

// The fields of a KvQuantFormat the kernels need.
struct KvShape {
  int64_t channels;
  int64_t group;
  int64_t n_groups;
  int64_t params_bytes;
  int64_t group_code_bytes;
  int bits;
};

// Quantizes one token. Returns -1, or the first group it could not quantize (a non-finite value
// or an fp16 overflow): the caller then reruns the reference, which reports the error.
int64_t kv_quantize_token_avx512(const KvShape& s, const float* x, uint8_t* record);
int64_t kv_quantize_token_avx2(const KvShape& s, const float* x, uint8_t* record);

float kv_dot_avx512(const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
                    float mn);
float kv_dot_avx2(const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
                  float mn);
void kv_axpy_avx512(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
                    float* out);
void kv_axpy_avx2(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
                  float* out);

// Batched over tokens: `params` points at group g's fp16 scale of token 0, `codes` at its codes;
// token t's are `stride` bytes further per token.
void kv_dot_tokens_avx512(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                          int64_t len, int bits, const float* q, float* scores);
void kv_dot_tokens_avx2(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                        int64_t len, int bits, const float* q, float* scores);
void kv_axpy_tokens_avx512(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                           int64_t len, int bits, const float* p, float* out);
void kv_axpy_tokens_avx2(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                         int64_t len, int bits, const float* p, float* out);

}  // namespace wkvq::detail
