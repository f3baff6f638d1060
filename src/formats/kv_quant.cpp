// Scalar reference KV token quantizer: the definition kernels/kv_quant*.cpp are tested against.
#include "formats/kv_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"

namespace wkvq {
namespace {

void require_bits(int bits) {
  WKVQ_REQUIRE(bits == 2 || bits == 3 || bits == 4 || bits == 8,
               "KV quantization: bits must be 2, 3, 4 or 8, got ", bits);
}

uint16_t load_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint32_t>(p[1]) << 8));
}

void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xffu);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// Code of channel i of a packed group (any bit width).
uint32_t group_code(const uint8_t* src, int64_t len, int bits, int64_t i) {
  if (bits < 4) {  // channel order: bits b i .. b i + b - 1
    const int64_t bit = bits * i;
    uint32_t v = src[bit / 8];
    if (bit % 8 > 8 - bits) v |= static_cast<uint32_t>(src[bit / 8 + 1]) << 8;
    return (v >> (bit % 8)) & ((1u << bits) - 1u);
  }
  if (bits == 8) return src[i];
  const int64_t h = (len + 1) / 2;  // 4 bits: planes
  return (static_cast<uint32_t>(src[i % h]) >> (4 * (i / h))) & 15u;
}

}  // namespace

int64_t kv_code_bytes(int64_t len, int bits) {
  require_bits(bits);
  return (bits * len + 7) / 8;
}

const char* kv_smooth_name(KvSmoothMode m) {
  switch (m) {
    case KvSmoothMode::None:
      return "none";
    case KvSmoothMode::Stats:
      return "stats";
    case KvSmoothMode::Learned:
      return "learned";
  }
  return "?";
}

std::optional<KvSmoothMode> parse_kv_smooth(const std::string& s) {
  for (KvSmoothMode m : {KvSmoothMode::None, KvSmoothMode::Stats, KvSmoothMode::Learned}) {
    if (s == kv_smooth_name(m)) return m;
  }
  return std::nullopt;
}

void validate_kv_settings(const KvQuantSettings& s, int64_t channels) {
  const int bits = s.bits;
  WKVQ_REQUIRE(bits == 2 || bits == 3 || bits == 4 || bits == 8 || bits == 16 || bits == 32,
               "--kvbits must be 2, 3, 4 or 8 (int), 16 (fp16) or 32 (f32); found ", bits);
  WKVQ_REQUIRE(s.group >= 0 && s.group <= channels, "--kvgroup ", s.group,
               ": a KV group is 0 (head_dim) or 1..", channels, " channels (the model has ",
               channels, " KV channels per token); choose a group in that range");
  WKVQ_REQUIRE(s.window >= 0 && s.window <= kMaxKvWindow, "--kv-window ", s.window,
               ": a full-precision window is 0..", kMaxKvWindow, " positions");
  WKVQ_REQUIRE(s.window == 0 || s.quantized(), "--kv-window ", s.window, " with --kvbits ", bits,
               ": the fp16 window is for an int KV cache (--kvbits 2, 3, 4 or 8); an f32 or fp16 ",
               "cache holds every position in full precision already");
  WKVQ_REQUIRE(s.vbits == 0 || ((s.vbits == 2 || s.vbits == 3 || s.vbits == 4 || s.vbits == 8) &&
                                s.quantized()),
               "--kv-vbits ", s.vbits, " with --kvbits ", bits, ": value bits are 2, 3, 4 or 8 ",
               "beside int keys (--kvbits 2, 3, 4 or 8), or 0 for the keys' bits");
  WKVQ_REQUIRE(!s.rel8 || s.quantized(), "--kv-meta rel8 with --kvbits ", bits, ": the 8-bit ",
               "relative group metadata is for an int KV cache (--kvbits 2, 3, 4 or 8)");
}

KvQuantFormat make_kv_format(int64_t channels, int64_t group, int bits, bool rel8) {
  require_bits(bits);
  WKVQ_REQUIRE(channels >= 1, "KV quantization: need at least one channel, got ", channels);
  WKVQ_REQUIRE(group >= 0, "KV quantization: group size must be >= 0, got ", group);
  KvQuantFormat f;
  f.channels = channels;
  f.group = (group == 0 || group >= channels) ? channels : group;
  f.bits = bits;
  f.n_groups = (channels + f.group - 1) / f.group;
  f.rel8 = rel8;
  f.params_bytes = f.group_param_bytes() * f.n_groups;
  f.group_code_bytes = kv_code_bytes(f.group, bits);
  f.token_bytes = f.params_bytes + (f.n_groups - 1) * f.group_code_bytes +
                  kv_code_bytes(f.group_len(f.n_groups - 1), bits);
  return f;
}

void require_kv_levels(const KvQuantFormat& f, const char* what) {
  WKVQ_REQUIRE(!f.rel8 || f.rel8_groups != nullptr, what,
               ": rel8 records without their static ranges");
}

KvRel8Group make_kv_rel8_group(float lo, float hi) {
  WKVQ_REQUIRE(std::isfinite(lo) && std::isfinite(hi) && hi >= lo, "KV rel8 metadata: a static ",
               "group range must be finite with hi >= lo, found [", lo, ", ", hi, "]");
  constexpr int kTail = kRel8TailLevels, kCore = 256 - 2 * kTail;
  const float range = hi - lo;
  const float unit = range > 0.0f ? range : std::max(1.0f, std::fabs(lo));
  KvRel8Group r{};
  for (int i = 0; i < kCore; ++i) {
    r.levels[kTail + i] =
        std::min(hi, lo + static_cast<float>(i) * (range / static_cast<float>(kCore - 1)));
  }
  r.levels[kTail + kCore - 1] = hi;
  for (int j = 0; j < kTail; ++j) {
    const float out = unit * std::exp2(static_cast<float>(j) / 2.0f) / 16.0f;
    r.levels[kTail - 1 - j] = lo - out;
    r.levels[kTail + kCore + j] = hi + out;
  }
  return r;
}

void kv_rel8_codes(const KvRel8Group& r, float mn, float mx, uint8_t* m8t8) {
  const float* end = r.levels + 256;
  // m8: the last level <= mn; t8: the first level >= mx
  const float* m = std::upper_bound(r.levels, end, mn);
  const float* t = std::lower_bound(r.levels, end, mx);
  m8t8[0] = static_cast<uint8_t>(m == r.levels ? 0 : m - r.levels - 1);
  m8t8[1] = static_cast<uint8_t>(t == end ? 255 : t - r.levels);
}

void pack_kv_group_ref(const uint8_t* codes, int64_t len, int bits, uint8_t* dst) {
  const int64_t nbytes = kv_code_bytes(len, bits);
  std::fill(dst, dst + nbytes, uint8_t{0});
  const int64_t h = (len + 1) / 2;  // 4 bits: planes
  for (int64_t i = 0; i < len; ++i) {
    const auto q = static_cast<uint32_t>(codes[i]);
    WKVQ_REQUIRE(q < (1u << bits), "pack_kv_group_ref: code ", q, " at channel ", i,
                 " does not fit in ", bits, " bits");
    if (bits < 4 || bits == 8) {  // channel order
      const int64_t bit = bits * i;
      const uint32_t v = q << (bit % 8);
      dst[bit / 8] = static_cast<uint8_t>(dst[bit / 8] | (v & 0xffu));
      if (v > 0xffu) dst[bit / 8 + 1] = static_cast<uint8_t>(dst[bit / 8 + 1] | (v >> 8));
    } else {
      dst[i % h] = static_cast<uint8_t>(dst[i % h] | (q << (4 * (i / h))));
    }
  }
}

void unpack_kv_group_ref(const uint8_t* src, int64_t len, int bits, uint8_t* codes) {
  require_bits(bits);
  for (int64_t i = 0; i < len; ++i) codes[i] = static_cast<uint8_t>(group_code(src, len, bits, i));
}

KvGroupParams kv_group_params(const KvQuantFormat& f, const uint8_t* record, int64_t g) {
  WKVQ_ASSERT(g >= 0 && g < f.n_groups);
  KvGroupParams p;
  if (f.rel8) {
    require_kv_levels(f, "kv_group_params");
    const float* levels = f.rel8_groups[g].levels;
    p.min = levels[record[2 * g]];
    p.scale = (levels[record[2 * g + 1]] - p.min) / static_cast<float>((1 << f.bits) - 1);
    return p;
  }
  p.scale = fp16_to_f32(load_u16(record + 4 * g));
  p.min = fp16_to_f32(load_u16(record + 4 * g + 2));
  return p;
}

void quantize_token_ref(const KvQuantFormat& f, const float* x, uint8_t* record) {
  const int qmax = (1 << f.bits) - 1;
  std::vector<uint8_t> codes(static_cast<size_t>(f.group));
  for (int64_t g = 0; g < f.n_groups; ++g) {
    const int64_t c0 = f.group_first(g);
    const int64_t len = f.group_len(g);
    const float* xg = x + c0;
    int64_t imin = 0;
    int64_t imax = 0;
    for (int64_t i = 0; i < len; ++i) {
      WKVQ_REQUIRE(std::isfinite(xg[i]), "KV quantization: non-finite value ", xg[i],
                   " at channel ", c0 + i);
      if (xg[i] < xg[imin]) imin = i;
      if (xg[i] > xg[imax]) imax = i;
    }
    const float mn = xg[imin];
    const float mx = xg[imax];
    float s = 0.0f;
    float m = 0.0f;
    if (f.rel8) {
      require_kv_levels(f, "quantize_token_ref");
      kv_rel8_codes(f.rel8_groups[g], mn, mx, record + 2 * g);
      const KvGroupParams p = kv_group_params(f, record, g);
      s = p.scale;
      m = p.min;
    } else {
      const uint16_t s16 = f32_to_fp16((mx - mn) / static_cast<float>(qmax));
      const uint16_t m16 = f32_to_fp16(mn);
      s = fp16_to_f32(s16);
      m = fp16_to_f32(m16);
      WKVQ_REQUIRE(std::isfinite(m), "KV quantization: value ", mn, " at channel ", c0 + imin,
                   " is beyond the fp16 range of the stored group minimum (|x| <= 65504)");
      WKVQ_REQUIRE(std::isfinite(s), "KV quantization: value ", mx, " at channel ", c0 + imax,
                   " makes the group's scale (max - min) / ", qmax, " overflow fp16 (min ", mn,
                   " at channel ", c0 + imin, ")");
      store_u16(record + 4 * g, s16);
      store_u16(record + 4 * g + 2, m16);
    }
    for (int64_t i = 0; i < len; ++i) {
      float v = s > 0.0f ? std::nearbyint((xg[i] - m) / s) : 0.0f;
      v = std::min(std::max(v, 0.0f), static_cast<float>(qmax));
      codes[static_cast<size_t>(i)] = static_cast<uint8_t>(v);
    }
    pack_kv_group_ref(codes.data(), len, f.bits, record + f.group_code_offset(g));
  }
}

void dequantize_token_ref(const KvQuantFormat& f, const uint8_t* record, float* x) {
  for (int64_t g = 0; g < f.n_groups; ++g) {
    const KvGroupParams p = kv_group_params(f, record, g);
    const uint8_t* codes = record + f.group_code_offset(g);
    const int64_t len = f.group_len(g);
    for (int64_t i = 0; i < len; ++i) {
      x[f.group_first(g) + i] =
          std::fma(static_cast<float>(group_code(codes, len, f.bits, i)), p.scale, p.min);
    }
  }
}

float kv_dot_ref(const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
                 float mn) {
  require_bits(bits);
  float dot = 0.0f;
  float sum = 0.0f;
  for (int64_t i = 0; i < len; ++i) {
    dot += q[i] * static_cast<float>(group_code(codes, len, bits, i));
    sum += q[i];
  }
  return scale * dot + mn * sum;
}

void kv_axpy_ref(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
                 float* out) {
  require_bits(bits);
  for (int64_t i = 0; i < len; ++i) {
    out[i] += p * std::fma(static_cast<float>(group_code(codes, len, bits, i)), scale, mn);
  }
}

}  // namespace wkvq
