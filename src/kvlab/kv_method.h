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
// The int methods take alloc=sens or alloc=solo (per-layer bits from a measured sensitivity,
// kvlab/kv_alloc.h)
// and kb=, vb= (explicit per-layer key and value bits, e.g. kb=3.3.2.2.2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
  // Int: per-layer bits, key and value of layer l at [2l] and [2l + 1] (empty: `bits` for every
  // layer; 0: that tensor not quantized, f32 (the sensitivity probes)). Given by kb=, vb= or
  // chosen by alloc=sens (kvlab/kv_alloc.h); `bits` stays the uniform configuration's.
  std::vector<int> layer_bits;
  bool alloc = false;  // alloc=sens or alloc=solo: layer_bits from the measured sensitivity
  // alloc=solo: each tensor's sensitivity measured with the other tensors in f32; alloc=sens:
  // with the other tensors at the uniform configuration's bits (the operating point)
  bool alloc_solo = false;
  // alloc=sens: the code bits to share out over the 2 n_layers tensors (0: 2 n_layers bits, the
  // uniform configuration's; a sweep may set more when the budget allows a fraction of a bit)
  int64_t alloc_total_bits = 0;

  // The code bits of layer `layer`'s keys (key) or values.
  int tensor_bits(int layer, bool key) const {
    return layer_bits.empty() ? bits : layer_bits[static_cast<size_t>(2 * layer + (key ? 0 : 1))];
  }

  // "wkvq2d b4 g32 w16": the base and every parameter that applies; with per-layer bits
  // "wkvq2d b2 g32 alloc kb3.2.2.2.2 vb2.2.2.2.1" (alloc: chosen by alloc=sens).
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
  int n_layers = 0;      // needed only for alloc=sens with alloc_total_bits set
};

// Throws wkvq::Error when the method cannot run on this shape (q4 blocks of 32 need kv_dim a
// multiple of 32, the Hadamard rotation a power-of-two head_dim, a group beyond kv_dim, ...).
void check_kv_method(const KvMethodSpec& m, const KvShape& s);

// Stored bits per K/V element at a context of `ctx` tokens: the codes and every per-token,
// per-group or per-vector scale, minimum and norm; fp16 windows (w, KIVI's r) count as r/ctx of
// the tokens at 16 bits. Per-layer bits: the mean over the 2 n_layers tensors of each one's
// codes and metadata (every tensor holds kv_dim elements per token). Static per-model constants
// (smoothing vectors, static ranges, rotation matrices, codebooks) are not per-token memory and are
// not counted (kv_static_bytes).
double kv_bits_per_element(const KvMethodSpec& m, const KvShape& s, int64_t ctx);

// Bytes of the static per-layer constants a method needs (K and V together, per layer).
int64_t kv_static_bytes(const KvMethodSpec& m, const KvShape& s);

}  // namespace wkvq
