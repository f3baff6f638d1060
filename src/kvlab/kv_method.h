// KV-cache quantization methods of the KV lab (issue 16): one spec type naming a method and its
// parameters, its parser, and its honest bits per element (every scale, minimum, norm and
// full-precision window counted, amortised over the evaluated context).
//
// Methods (docs/kvlab.md has the definitions and the sources they follow):
//   fp16        the K/V rounded to fp16 (reference)
//   wkvq        WKVQuant's token groups: static smoothing, g channels per group, fp16 scale and min
//   wkvq2d      the same with 8-bit scale/minimum codes relative to the group's static range
//   wkvq-rot    smoothing, then a per-head Hadamard rotation, then the wkvq groups
//   wkvq2d-rot  smoothing, rotation, then the wkvq2d groups
//   quarot      per-head Hadamard rotation, then token groups with fp16 scale and min
//   q4_0, q4_1  llama.cpp's blocks of 32 channels of one token (fp16 d; q4_1: fp16 d and m)
//   kivi        keys per channel over groups of g tokens, values per token in groups of g
//               channels (fp16 scale and min), the last r tokens in fp16
//   turbo       a random orthogonal rotation per head, a Lloyd-Max codebook for the rotated unit
//               vector's coordinates, one fp16 norm per head vector
//   kvquant     KVQuant-style: keys before RoPE, per channel with a static range from calibration
//               (b bits, no per-token metadata; RoPE applied after dequantization), values per
//               token in groups of g channels (fp16 scale and min); no outliers, uniform levels
// Every method takes w=N: the N most recent tokens kept in fp16 on top of POQ.
#pragma once

#include <cstdint>
#include <string>

namespace wkvq {

enum class KvFamily { Fp16, Int, Q4_0, Q4_1, Kivi, Turbo, KvQuant };

struct KvMethodSpec {
  KvFamily family = KvFamily::Int;
  std::string base;      // the method's name as parsed: "wkvq2d-rot", "q4_0", ...
  int bits = 4;          // code bits (Int, Kivi, Turbo); Int b=0: the transforms (smoothing,
                         // rotation) without a quantizer, f32 (the exactness check)
  int64_t group = 0;     // Int: channels per group (0: head_dim); Kivi: tokens per key group and
                         // channels per value group
  bool smooth = false;   // Int: static per-channel smoothing first
  bool rotate = false;   // Int: per-head Hadamard rotation (after the smoothing)
  bool rel8 = false;     // Int: 8-bit scale/minimum relative to the group's static range
  int64_t residual = 0;  // Kivi: r, tokens in fp16 (a multiple of group)
  int64_t window = 0;    // every method: the most recent tokens kept in fp16
  bool bits_given = false, group_given = false;  // b=, g= were in the spec (a sweep keeps them)

  // "wkvq2d b4 g32 w16": the base and every parameter that applies.
  std::string label() const;
  // Needs the static ranges of calibration text (wkvq2d*).
  bool needs_ranges() const {
    return (family == KvFamily::Int && rel8 && bits != 0) || family == KvFamily::KvQuant;
  }
};

// "NAME" or "NAME:key=value,...", keys b (bits), g (group), r (KIVI residual), w (window).
// Throws wkvq::Error naming the method, the key and the accepted values.
KvMethodSpec parse_kv_method(const std::string& text);

// The shape the bits depend on.
struct KvShape {
  int64_t kv_dim = 0;    // channels of one token (n_kv_heads * head_dim)
  int64_t head_dim = 0;  //
};

// Throws wkvq::Error when the method cannot run on this shape (q4 blocks of 32 need kv_dim a
// multiple of 32, the Hadamard rotation a power-of-two head_dim, a group beyond kv_dim, ...).
void check_kv_method(const KvMethodSpec& m, const KvShape& s);

// Stored bits per K/V element at a context of `ctx` tokens: the codes and every per-token,
// per-group or per-vector scale, minimum and norm; fp16 windows (w, KIVI's r) count as r/ctx of
// the tokens at 16 bits. Static per-model constants (smoothing vectors, static ranges, rotation
// matrices, codebooks) are not per-token memory and are not counted (kv_static_bytes).
double kv_bits_per_element(const KvMethodSpec& m, const KvShape& s, int64_t ctx);

// Bytes of the static per-layer constants a method needs (K and V together, per layer).
int64_t kv_static_bytes(const KvMethodSpec& m, const KvShape& s);

}  // namespace wkvq
