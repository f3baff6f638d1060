// Per-token KV group quantization (design.md §2.2): the stored layout of one token's K or V vector
// and its scalar reference (de)quantizer, dot product and weighted accumulate. The SIMD versions
// live in kernels/kv_quant.h and are tested against these.
//
// A token's vector of C channels is cut into groups of g channels (the last group may be
// shorter). Per group, with b bits and qmax = 2^b - 1:
//   mn = min(x), mx = max(x), scale = (mx - mn) / qmax        (f32)
//   s = fp16(scale), m = fp16(mn)                             (round to nearest even; stored)
//   q = clamp(round((x - m) / s), 0, qmax)                    (q = 0 when s == 0: constant group)
//   x^ = m + q * s
// The fp16-rounded s and m are used for the codes, so x^ is exactly what decoding gives. A constant
// group has s = 0 and decodes exactly to m. Non-finite input, or a value beyond the fp16 range
// (|x| > 65504: m or s would be infinite), is rejected with wkvq::Error naming the channel.
//
// Error bound per element: |x - x^| <= s/2 + |mn - m| + qmax * |scale - s| + f32 rounding, i.e.
// s * (1/2 + qmax * 2^-11) + |mn| * 2^-11 (+ a few f32 ulps of max|x|). The last two terms are the
// fp16 rounding of min and scale, which can shift the covered range [m, m + qmax * s].
//
// Token record (KvQuantFormat::token_bytes bytes; records may sit at any byte address):
//   [0, 4 * n_groups)          per group g: fp16 scale at 4g, fp16 min at 4g + 2 (little endian)
//   [group_code_offset(g), +)  codes of group g, kv_code_bytes(group_len(g), b) bytes
// Codes of one group of len channels:
//   b = 8: byte j = code of channel j.
//   b = 4 ("planes"): h = ceil(len / 2); byte j (j < h) = code[j] | code[j + h] << 4 (a channel
//          index >= len contributes code 0).
//   b = 2, 3: bit-packed in channel order, channel i at bits b i..b i + b - 1 of the group's
//          little-endian bit string (bit n is bit n % 8 of byte n / 8); ceil(b len / 8) bytes, the
//          bits past the last channel 0.
// For b = 4 a SIMD kernel widens 16 bytes to 16 lanes and gets channels j..j+15 from the low
// nibbles and j+h..j+h+15 from the high nibbles, each run contiguous in q / out: no shuffles. For
// b = 2, 3 every 8 channels are b whole bytes: a kernel broadcasts them to 8 lanes and shifts each
// lane by b times its index (channels j..j+7 for any group length).
// Bits per element: b + 32 / g (plus byte rounding of odd-sized groups).
//
// Relative metadata ("rel8", issue 16: what two-dimensional quantization makes possible): each
// group g of a layer's K or V has a static range [lo, hi] of the smoothed values, measured on
// calibration text (KvGroupRanges, model/kv_smoothing.h), and 256 ascending f32 levels L made
// from it once (KvRel8Group), R = hi - lo:
//   L[16 + i]  = lo + i R / 223          i = 0..223 (224 levels across the range, L[239] = hi)
//   L[15 - j]  = lo - u 2^(j / 2) / 16   j = 0..15  (tails beyond the range, out to 11.3 u;
//   L[240 + j] = hi + u 2^(j / 2) / 16               u = R, or max(1, |lo|) when R = 0)
// A record stores two bytes per group instead of the fp16 scale and min:
//   m8 = the largest v with L[v] <= mn (0 if none), t8 = the smallest v with L[v] >= mx (255)
//   m = L[m8], s = (L[t8] - m) / qmax, q = clamp(round((x - m) / s), 0, qmax) (0 when s == 0)
//   x^ = fma(q, s, m)                             (one rounding: q * s need not be exact here)
// So the group's codes cover [min, max] wherever the levels reach: a token beyond the calibrated
// range (a rare token's outlier) gets a coarser step, not a clipped value; only values beyond the
// tails are clipped. Record: [0, 2 * n_groups) m8 at 2g, t8 at 2g + 1, then the codes as above.
// Bits per element: b + 16 / g. The fp16 form's x^ = m + q * s is the same fma (its product is
// exact), so one definition serves both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "formats/kv_rel8_group.h"

namespace wkvq {

// Where the static channel smoothing of the KV cache comes from (design.md §2.2): none (identity),
// statistics of the full-precision model on calibration text, or learned by CRR calibration.
enum class KvSmoothMode { None, Stats, Learned };
// "none" | "stats" | "learned": the spelling of --kv-smooth and of config.json's kv_smooth.
const char* kv_smooth_name(KvSmoothMode m);
// The inverse; std::nullopt for anything else (the caller names the field in its error).
std::optional<KvSmoothMode> parse_kv_smooth(const std::string& s);

// The KV cache quantization settings: one type from the command line (--kvbits, --kvgroup, --poq,
// --kv-smooth) through the quantized model directory (config.json quantization_config kv_bits,
// kv_group_size, poq, kv_smooth) and the calibration (CrrOptions::kv, FakeKv) to the runtime cache
// (KvCache) and its attention (runtime/attention.h). Calibration models no window: it calibrates
// the int cache as without one.
struct KvQuantSettings {
  int bits = 32;      // 2, 3, 4, 8: int-b per-token groups; 16: fp16; 32: f32
  int64_t group = 0;  // channels per quantization group of one token; 0: head_dim
  bool poq = true;    // past-only quantization: a token sees its own K/V in full precision
  KvSmoothMode smooth = KvSmoothMode::None;  // the smoothing the K/V are stored with (int only)
  // Full-precision window (int storage only): the `window` most recent tokens before the query
  // (with POQ; without it, the most recent ones including the query) are also kept in fp16 and
  // attention reads them from there instead of their int records (runtime/kv_cache.h).
  int64_t window = 0;
  // Value bits when they differ from the keys' (int storage: 2, 3, 4 or 8; 0: `bits` for both).
  // Keys carry the scores' error into every probability, values only into the output they
  // weigh: the KV lab's per-layer allocation gives keys the bits (docs/kvlab.md).
  int vbits = 0;
  // Group metadata of int storage: rel8 (2 bytes per group against static ranges of calibration
  // text, KvSmoothing::ranges) or fp16 scale and min (4 bytes).
  bool rel8 = false;
  bool quantized() const { return bits <= 8; }
  int key_bits() const { return bits; }
  int value_bits() const { return vbits != 0 ? vbits : bits; }
  bool operator==(const KvQuantSettings&) const = default;
};

// The one check of the KV settings, used by every writer and reader (the CLI options, the
// quantized model directory on save and on load, the KV cache, calibration): bits 2, 3, 4, 8
// (int groups), 16 (fp16) or 32 (f32); group 0 (= head_dim) or 1..channels (channels =
// n_kv_heads * head_dim; the last group of a token may be shorter, so the group need not divide
// the channels); window 0..2^20 positions, and 0 unless the storage is int; vbits 0, or 2, 3, 4, 8
// with int storage; rel8 only with int storage. Throws wkvq::Error naming --kvbits / --kvgroup /
// --kv-window / --kv-vbits / --kv-meta and the range.
void validate_kv_settings(const KvQuantSettings& s, int64_t channels);
constexpr int64_t kMaxKvWindow = int64_t{1} << 20;

// Bytes of codes for one group of `len` channels at `bits` bits.
int64_t kv_code_bytes(int64_t len, int bits);

// The levels for a static range [lo, hi] (finite, hi >= lo; throws otherwise).
KvRel8Group make_kv_rel8_group(float lo, float hi);
// The two metadata bytes of a group with minimum mn and maximum mx (finite): m8, t8 above.
void kv_rel8_codes(const KvRel8Group& r, float mn, float mx, uint8_t* m8t8);
inline constexpr int kRel8TailLevels = 16;  // levels beyond each end of the static range

struct KvQuantFormat {
  int64_t channels = 0;          // C = n_kv_heads * head_dim
  int64_t group = 0;             // g: channels per group (last group may be shorter)
  int bits = 4;                  // 2, 3, 4 or 8
  int64_t n_groups = 0;          // ceil(C / g)
  int64_t params_bytes = 0;      // group_param_bytes() * n_groups
  int64_t group_code_bytes = 0;  // kv_code_bytes(g, bits): code bytes of every full group
  int64_t token_bytes = 0;       // bytes of one token record
  bool rel8 = false;             // metadata: rel8 (2 bytes per group) or fp16 scale, min (4)
  // rel8: the static ranges of the records' layer and tensor, one per group (n_groups); set by
  // whoever holds them (runtime/kv_cache.h) before the records are written or read.
  const KvRel8Group* rel8_groups = nullptr;

  int64_t group_first(int64_t g) const { return g * group; }
  int64_t group_len(int64_t g) const { return g + 1 < n_groups ? group : channels - g * group; }
  int64_t group_code_offset(int64_t g) const { return params_bytes + g * group_code_bytes; }
  int64_t group_param_bytes() const { return rel8 ? 2 : 4; }
  int64_t group_param_offset(int64_t g) const { return g * group_param_bytes(); }
  // rel8: group g's static range (null for fp16 metadata).
  const KvRel8Group* rel8_group(int64_t g) const { return rel8 ? rel8_groups + g : nullptr; }
};

// Layout for C channels in groups of g (g = 0 or g >= C: one group per token), fp16 or rel8
// metadata (rel8: set rel8_groups before use). Throws wkvq::Error on bad arguments.
KvQuantFormat make_kv_format(int64_t channels, int64_t group, int bits, bool rel8 = false);

// Throws wkvq::Error (naming `what`) when f has rel8 metadata but no static levels attached.
void require_kv_levels(const KvQuantFormat& f, const char* what);

// Packs codes[0:len] (each < 2^bits) in the group layout above; writes kv_code_bytes(len, bits).
void pack_kv_group_ref(const uint8_t* codes, int64_t len, int bits, uint8_t* dst);
void unpack_kv_group_ref(const uint8_t* src, int64_t len, int bits, uint8_t* codes);

// Scale and min of group g of a token record, as floats (fp16: stored; rel8: from the levels).
struct KvGroupParams {
  float scale = 0.0f;
  float min = 0.0f;
};
KvGroupParams kv_group_params(const KvQuantFormat& f, const uint8_t* record, int64_t g);

// x[0:C] -> record[0:token_bytes].
void quantize_token_ref(const KvQuantFormat& f, const float* x, uint8_t* record);
// record -> x^[0:C].
void dequantize_token_ref(const KvQuantFormat& f, const uint8_t* record, float* x);

// q . x^ over one group of len channels, without dequantizing:
//   scale * sum_i q_i * code_i + mn * sum_i q_i       (both sums in f32, channel order)
float kv_dot_ref(const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
                 float mn);
// out[0:len] += p * x^, x^_i = mn + code_i * scale.
void kv_axpy_ref(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
                 float* out);

}  // namespace wkvq
