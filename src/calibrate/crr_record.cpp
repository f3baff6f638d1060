// The record of a CRR run (calibrate/crr_record.h): the options and a fingerprint of what they
// were applied to.
#include "calibrate/crr_record.h"

#include <cstring>
#include <sstream>

#include "model/weight_quantizer.h"

namespace wkvq {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

namespace {

// A cheap fingerprint of n floats: every 4099th value and the count.
uint64_t hash_floats(uint64_t h, const float* p, int64_t n) {
  if (p == nullptr) return splitmix64(h ^ 0xdeadull);
  for (int64_t i = 0; i < n; i += 4099) {
    uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    h = splitmix64(h ^ bits ^ (static_cast<uint64_t>(i) << 32));
  }
  return splitmix64(h ^ static_cast<uint64_t>(n));
}

// The same fingerprint of a linear's floating-point weights, whatever their storage (the f32
// values it samples are the same from an f32 or an fp16/bf16 load of one checkpoint).
uint64_t hash_linear(uint64_t h, const Linear& lin) {
  if (lin.w != nullptr || !lin.has_float()) return hash_floats(h, lin.w, lin.out * lin.in);
  const int64_t n = lin.out * lin.in;
  for (int64_t i = 0; i < n; i += 4099) {
    const float v = lin.weight_f32(i);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    h = splitmix64(h ^ bits ^ (static_cast<uint64_t>(i) << 32));
  }
  return splitmix64(h ^ static_cast<uint64_t>(n));
}

// The same fingerprint of a quantized linear's storage: sampled bytes of its codes, its scales and
// zero points, and its act-order column order.
uint64_t hash_quantized(uint64_t h, const Linear& lin) {
  auto bytes = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; i += 4099) h = splitmix64(h ^ b[i] ^ (static_cast<uint64_t>(i) << 8));
    h = splitmix64(h ^ n);
  };
  const QuantizedMatrix& q = *lin.q;
  const std::vector<uint8_t> codes = row_major_codes(q);  // the same bytes in either layout
  bytes(codes.data(), codes.size());
  bytes(q.scales.data(), q.scales.size() * sizeof(uint16_t));
  bytes(q.zeros.data(), q.zeros.size());
  if (lin.in_order) bytes(lin.in_order->data(), lin.in_order->size() * sizeof(int32_t));
  return h;
}

}  // namespace

// The options plus what they were applied to: the model (config, sampled weights, biases and q/k
// norms where it has them: a model without keeps the fingerprint it had before those existed),
// the frozen weights (when frozen) and the calibration stream. A resumed run must match it
// exactly.
std::string run_record(const Model& fp, const std::vector<int>& calib, const CrrOptions& opt,
                       const Model* frozen) {
  const LlamaConfig& c = fp.config;
  uint64_t h = hash_floats(0, fp.tok_embeddings, int64_t{c.vocab_size} * c.dim);
  for (const LayerWeights& l : fp.layers) {
    h = hash_floats(h, l.attn_norm, c.dim);
    h = hash_floats(h, l.ffn_norm, c.dim);
    for (int i = 0; i < 7; ++i) {
      const Linear& lin = linear_by_index(l, i);
      h = hash_linear(h, lin);
      if (lin.bias != nullptr) h = hash_floats(h, lin.bias, lin.out);
    }
    if (l.q_norm != nullptr) h = hash_floats(h, l.q_norm, c.head_dim);
    if (l.k_norm != nullptr) h = hash_floats(h, l.k_norm, c.head_dim);
  }
  if (frozen != nullptr) {
    for (const LayerWeights& l : frozen->layers) {
      for (int i = 0; i < 7; ++i) {
        const Linear& lin = linear_by_index(l, i);
        h = lin.quantized() ? hash_quantized(h, lin) : hash_linear(h, lin);
      }
    }
  }
  uint64_t hs = 0;
  for (const int t : calib) hs = splitmix64(hs ^ static_cast<uint32_t>(t));
  std::ostringstream os;
  os << opt.record() << "model=" << c.summary() << "\nmodel_hash=" << h
     << "\ncalib_tokens=" << calib.size() << "\ncalib_hash=" << hs << "\n";
  return os.str();
}

std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  while (true) {
    const bool ga = static_cast<bool>(std::getline(sa, la));
    const bool gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "(none)";
    if (!ga || !gb || la != lb) {
      std::ostringstream os;  // (not string +: GCC 12 reports a false -Wrestrict there)
      os << "'" << (ga ? la : std::string()) << "' vs '" << (gb ? lb : std::string()) << "'";
      return os.str();
    }
  }
}

}  // namespace wkvq
