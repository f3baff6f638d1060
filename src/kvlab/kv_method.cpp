#include "kvlab/kv_method.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"

namespace wkvq {

namespace {

struct Base {
  KvFamily family;
  bool smooth, rotate, rel8;
  int bits;
  int64_t group, residual;
};

// The methods by name and their defaults.
const std::map<std::string, Base>& bases() {
  static const std::map<std::string, Base> m = {
      {"fp16", {KvFamily::Fp16, false, false, false, 16, 0, 0}},
      {"wkvq", {KvFamily::Int, true, false, false, 4, 0, 0}},
      {"wkvq2d", {KvFamily::Int, true, false, true, 4, 0, 0}},
      {"wkvq-rot", {KvFamily::Int, true, true, false, 4, 0, 0}},
      {"wkvq2d-rot", {KvFamily::Int, true, true, true, 4, 0, 0}},
      {"quarot", {KvFamily::Int, false, true, false, 4, 0, 0}},
      {"rtn", {KvFamily::Int, false, false, false, 4, 0, 0}},
      {"q4_0", {KvFamily::Q4_0, false, false, false, 4, 32, 0}},
      {"q4_1", {KvFamily::Q4_1, false, false, false, 4, 32, 0}},
      {"kivi", {KvFamily::Kivi, false, false, false, 2, 32, 128}},
      {"turbo", {KvFamily::Turbo, false, false, false, 3, 0, 0}},
      {"kvquant", {KvFamily::KvQuant, false, false, false, 4, 0, 0}},
  };
  return m;
}

std::string method_names() {
  std::string s;
  for (const auto& [name, b] : bases()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

int64_t parse_int(const std::string& method, const std::string& key, const std::string& v) {
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  WKVQ_REQUIRE(used == v.size() && !v.empty() && x >= 0, "--kv-method ", method, ": ", key, "=", v,
               " is not a non-negative integer");
  return x;
}

// "3.3.2.2.2": per-layer bits of kb= or vb=.
std::vector<int> parse_bit_list(const std::string& text, const std::string& key,
                                const std::string& value) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= value.size()) {
    const size_t dot = std::min(value.find('.', at), value.size());
    const int64_t b = parse_int(text, key, value.substr(at, dot - at));
    WKVQ_REQUIRE(b <= 8, "--kv-method ", text, ": ", key, "=", value,
                 " has a layer of more than 8 bits");
    out.push_back(static_cast<int>(b));
    at = dot + 1;
  }
  return out;
}

// Per-layer bits of kb= and vb= as parsed (joined into layer_bits at the end).
struct LayerLists {
  std::vector<int> kb, vb;
};

void apply_key(KvMethodSpec& m, const std::string& text, const std::string& key,
               const std::string& value, LayerLists& lists) {
  if (key == "alloc" || key == "kb" || key == "vb") {
    WKVQ_REQUIRE(m.family == KvFamily::Int, "--kv-method ", text, ": ", key,
                 "= (per-layer bits) is for the int methods (rtn, wkvq*, quarot)");
    if (key == "alloc") {
      WKVQ_REQUIRE(value == "sens" || value == "solo", "--kv-method ", text, ": alloc=", value,
                   " is not accepted; expected alloc=sens or alloc=solo (per-layer bits from the "
                   "measured sensitivity: the other layers at the uniform bits, or in f32)");
      m.alloc = true;
      m.alloc_solo = value == "solo";
    } else {
      (key == "kb" ? lists.kb : lists.vb) = parse_bit_list(text, key, value);
    }
    return;
  }
  const int64_t x = parse_int(text, key, value);
  if (key == "b") {
    // b=0 on the int methods: the transforms alone, no quantizer (the exactness check)
    const bool ok = m.family == KvFamily::Turbo
                        ? (x >= 1 && x <= 4)
                        : (x >= 2 && x <= 8) || (x == 0 && m.family == KvFamily::Int);
    WKVQ_REQUIRE(ok && m.family != KvFamily::Fp16 && m.family != KvFamily::Q4_0 &&
                     m.family != KvFamily::Q4_1,
                 "--kv-method ", text, ": b=", value,
                 " is not accepted (int and kivi: 2..8, int also 0 = no quantizer, turbo: 1..4; "
                 "fp16, q4_0 and q4_1 have fixed bits)");
    m.bits = static_cast<int>(x);
    m.bits_given = true;
  } else if (key == "g") {
    WKVQ_REQUIRE(x >= 1 && (m.family == KvFamily::Int || m.family == KvFamily::Kivi ||
                            m.family == KvFamily::KvQuant),
                 "--kv-method ", text, ": g=", value,
                 " (a group of at least 1, for the int methods and kivi)");
    m.group = x;
    m.group_given = true;
  } else if (key == "r") {
    WKVQ_REQUIRE(m.family == KvFamily::Kivi, "--kv-method ", text, ": r= is kivi's residual");
    m.residual = x;
  } else if (key == "w") {
    m.window = x;
  } else {
    fail("--kv-method ", text, ": unknown key '", key,
         "'; expected b, g, r (kivi), w, alloc, kb or vb");
  }
}

}  // namespace

KvMethodSpec parse_kv_method(const std::string& text) {
  const size_t colon = text.find(':');
  const std::string name = text.substr(0, colon);
  const auto it = bases().find(name);
  WKVQ_REQUIRE(it != bases().end(), "--kv-method: unknown method '", name, "'; expected one of ",
               method_names(), ", optionally followed by :b=4,g=32,w=16");
  const Base& b = it->second;
  KvMethodSpec m;
  m.family = b.family;
  m.base = name;
  m.smooth = b.smooth;
  m.rotate = b.rotate;
  m.rel8 = b.rel8;
  m.bits = b.bits;
  m.group = b.group;
  m.residual = b.residual;
  if (colon == std::string::npos) return m;
  LayerLists lists;
  std::string rest = text.substr(colon + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string kv = rest.substr(0, comma);
    const size_t eq = kv.find('=');
    WKVQ_REQUIRE(eq != std::string::npos, "--kv-method ", text, ": '", kv,
                 "' is not key=value (keys b, g, r, w)");
    apply_key(m, text, kv.substr(0, eq), kv.substr(eq + 1), lists);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  if (!lists.kb.empty() || !lists.vb.empty()) {
    WKVQ_REQUIRE(lists.kb.size() == lists.vb.size() && !m.alloc, "--kv-method ", text,
                 ": kb= and vb= give the key and value bits of every layer, both of the same "
                 "length, and replace alloc=sens");
    for (size_t l = 0; l < lists.kb.size(); ++l) {
      m.layer_bits.push_back(lists.kb[l]);
      m.layer_bits.push_back(lists.vb[l]);
    }
  }
  if (m.family == KvFamily::Kivi) {
    WKVQ_REQUIRE(m.residual >= m.group && m.residual % m.group == 0, "--kv-method ", text,
                 ": kivi's residual r=", m.residual, " must be a positive multiple of g=", m.group,
                 " (keys are quantized a whole group of tokens at a time)");
  }
  return m;
}

std::string KvMethodSpec::label() const {
  std::string s = base;
  const bool has_bits = family == KvFamily::Int || family == KvFamily::Kivi ||
                        family == KvFamily::Turbo || family == KvFamily::KvQuant;
  if (has_bits) s += " b" + std::to_string(bits);
  if ((family == KvFamily::Int || family == KvFamily::Kivi || family == KvFamily::KvQuant) &&
      group > 0) {
    s += " g" + std::to_string(group);
  }
  if (family == KvFamily::Kivi) s += " r" + std::to_string(residual);
  if (alloc) s += alloc_solo ? " alloc-solo" : " alloc";
  if (!layer_bits.empty()) {
    for (size_t kv = 0; kv < 2; ++kv) {
      s += kv == 0 ? " kb" : " vb";
      for (size_t i = kv; i < layer_bits.size(); i += 2) {
        if (i >= 2) s += '.';
        s += std::to_string(layer_bits[i]);
      }
    }
  }
  if (window > 0) s += " w" + std::to_string(window);
  return s;
}

void check_kv_method(const KvMethodSpec& m, const KvShape& s) {
  const bool pow2 = s.head_dim > 0 && (s.head_dim & (s.head_dim - 1)) == 0;
  if (m.family == KvFamily::Q4_0 || m.family == KvFamily::Q4_1) {
    WKVQ_REQUIRE(s.kv_dim % 32 == 0, "--kv-method ", m.base, ": blocks of 32 channels need ",
                 "n_kv_heads * head_dim a multiple of 32; this model has ", s.kv_dim);
  }
  if (m.family == KvFamily::Int) {
    WKVQ_REQUIRE(m.group <= s.kv_dim, "--kv-method ", m.label(), ": a group of ", m.group,
                 " channels exceeds the ", s.kv_dim, " K/V channels of a token");
    WKVQ_REQUIRE(!m.rotate || pow2, "--kv-method ", m.label(),
                 ": the Hadamard rotation needs a power-of-two head_dim; this model has ",
                 s.head_dim);
  }
  if (m.family == KvFamily::Kivi) {
    WKVQ_REQUIRE(m.group <= s.kv_dim, "--kv-method ", m.label(), ": value groups of ", m.group,
                 " channels exceed the ", s.kv_dim, " K/V channels of a token");
  }
  if (m.family == KvFamily::Turbo) {
    WKVQ_REQUIRE(s.head_dim >= 2, "--kv-method turbo needs head_dim >= 2");
  }
}

namespace {
// Bits per element of the quantized part (no windows), one bit width for every tensor.
double uniform_quantized_bits(const KvMethodSpec& m, const KvShape& s) {
  const auto c = static_cast<double>(s.kv_dim);
  switch (m.family) {
    case KvFamily::Fp16:
      return 16.0;
    case KvFamily::Q4_0:
      return 4.0 + 16.0 / 32.0;  // fp16 d per block of 32
    case KvFamily::Q4_1:
      return 4.0 + 32.0 / 32.0;  // fp16 d and m per block of 32
    case KvFamily::Turbo:
      return m.bits + 16.0 / static_cast<double>(s.head_dim);  // fp16 norm per head vector
    case KvFamily::Kivi: {
      // keys: fp16 scale and min per channel and group of g tokens; values: per token, per
      // group of g channels (the last may be shorter: ceil)
      const double key_meta = 32.0 / static_cast<double>(m.group);
      const double groups = std::ceil(c / static_cast<double>(m.group));
      const double value_meta = 32.0 * groups / c;
      return m.bits + (key_meta + value_meta) / 2.0;
    }
    case KvFamily::KvQuant: {  // keys: b (static per-channel range); values: b + 32 / g
      const int64_t g = m.group == 0 ? s.head_dim : m.group;
      return m.bits + 16.0 * std::ceil(c / static_cast<double>(g)) / c;
    }
    case KvFamily::Int: {
      if (m.bits == 0) return 32.0;  // no quantizer: f32
      const int64_t g = m.group == 0 ? s.head_dim : m.group;
      const double groups = std::ceil(c / static_cast<double>(g));
      return m.bits + (m.rel8 ? 16.0 : 32.0) * groups / c;
    }
  }
  return 0.0;
}

// The same with per-layer bits: the mean over the tensors (each kv_dim elements per token).
double quantized_bits(const KvMethodSpec& m, const KvShape& s) {
  if (m.family != KvFamily::Int) return uniform_quantized_bits(m, s);
  KvMethodSpec one = m;
  if (!m.layer_bits.empty()) {
    double sum = 0.0;
    for (const int b : m.layer_bits) {
      one.bits = b;
      sum += uniform_quantized_bits(one, s);
    }
    return sum / static_cast<double>(m.layer_bits.size());
  }
  if (m.alloc && m.alloc_total_bits > 0) {  // not yet shared out: the mean code bits
    WKVQ_REQUIRE(s.n_layers > 0, "KV bits per element: alloc=sens needs the number of layers");
    const double tensors = 2.0 * s.n_layers;
    return uniform_quantized_bits(m, s) - m.bits +
           static_cast<double>(m.alloc_total_bits) / tensors;
  }
  return uniform_quantized_bits(m, s);
}
}  // namespace

double kv_bits_per_element(const KvMethodSpec& m, const KvShape& s, int64_t ctx) {
  WKVQ_REQUIRE(ctx > 0, "KV bits per element: context must be positive");
  const int64_t fp_tokens =
      std::min<int64_t>(ctx, m.window + (m.family == KvFamily::Kivi ? m.residual : 0));
  const double f = static_cast<double>(fp_tokens) / static_cast<double>(ctx);
  return (1.0 - f) * quantized_bits(m, s) + f * 16.0;
}

int64_t kv_static_bytes(const KvMethodSpec& m, const KvShape& s) {
  if (m.family == KvFamily::Turbo) return 2 * 4 * s.kv_dim * s.head_dim;  // K, V rotations (f32)
  if (m.family == KvFamily::KvQuant) return 2 * 4 * s.kv_dim;             // lo, hi per key channel
  if (m.family != KvFamily::Int) return 0;
  int64_t b = 0;
  if (m.smooth) b += 4 * 4 * s.kv_dim;  // dK, sK, dV, sV
  if (m.rel8) {
    const int64_t g = m.group == 0 ? s.head_dim : m.group;
    b += 2 * 2 * 4 * ((s.kv_dim + g - 1) / g);  // lo, hi per group, K and V
  }
  return b;
}

}  // namespace wkvq
