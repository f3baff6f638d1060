#include "io/llama2c_file.h"

#include <cstring>

#include "core/error.h"

namespace wkvq {

namespace {

// The header of llama2.c's newer export formats ("ak42" little-endian): not the v0 layout.
constexpr int32_t kLlama2cV1Magic = 0x616b3432;

int32_t read_i32_le(const uint8_t* p) {
  const uint32_t v = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                     (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  int32_t r;
  std::memcpy(&r, &v, 4);
  return r;
}

void require_field(const std::string& path, const char* name, int64_t v, int64_t max) {
  WKVQ_REQUIRE(v > 0, path, ": llama2.c header field ", name, " must be positive, found ", v,
               "; the file is corrupt or not a llama2.c v0 checkpoint");
  WKVQ_REQUIRE(v <= max, path, ": llama2.c header field ", name, " = ", v,
               " is implausibly large (at most ", max,
               "); the file is corrupt or not a llama2.c v0 checkpoint");
}

}  // namespace

Llama2cHeader parse_llama2c_header(const uint8_t* bytes, size_t size, const std::string& path) {
  WKVQ_REQUIRE(size >= static_cast<size_t>(kLlama2cHeaderBytes), path, ": file is ", size,
               " bytes, too short for the ", kLlama2cHeaderBytes,
               "-byte llama2.c header (truncated or not a llama2.c checkpoint)");
  int32_t f[7];
  for (int i = 0; i < 7; ++i) f[i] = read_i32_le(bytes + 4 * i);
  WKVQ_REQUIRE(f[0] != kLlama2cV1Magic, path,
               ": this is a llama2.c version 1/2 export (magic \"ak42\"); only the legacy v0 "
               "format is supported: export with --version 0 (export.py legacy_export)");

  Llama2cHeader h;
  require_field(path, "dim", f[0], 1 << 20);
  require_field(path, "hidden_dim", f[1], 1 << 22);
  require_field(path, "n_layers", f[2], 4096);
  require_field(path, "n_heads", f[3], 1 << 16);
  require_field(path, "n_kv_heads", f[4], 1 << 16);
  const int64_t vocab = f[5] < 0 ? -static_cast<int64_t>(f[5]) : f[5];
  require_field(path, "vocab_size (absolute value)", vocab, 1 << 24);
  require_field(path, "seq_len", f[6], 1 << 24);
  h.dim = f[0];
  h.hidden_dim = f[1];
  h.n_layers = f[2];
  h.n_heads = f[3];
  h.n_kv_heads = f[4];
  h.vocab_size = static_cast<int>(vocab);
  h.shared_classifier = f[5] > 0;
  h.seq_len = f[6];
  WKVQ_REQUIRE(h.dim % h.n_heads == 0, path, ": llama2.c header: dim (", h.dim,
               ") is not divisible by n_heads (", h.n_heads, ")");
  WKVQ_REQUIRE(h.n_heads % h.n_kv_heads == 0, path, ": llama2.c header: n_heads (", h.n_heads,
               ") is not a multiple of n_kv_heads (", h.n_kv_heads, ")");
  h.head_size = h.dim / h.n_heads;
  WKVQ_REQUIRE(h.head_size % 2 == 0, path,
               ": llama2.c header: head_size = dim / n_heads = ", h.head_size,
               " must be even for RoPE");

  const int64_t expected = llama2c_expected_bytes(h);
  WKVQ_REQUIRE(static_cast<int64_t>(size) == expected, path, ": expected ", expected,
               " bytes for a llama2.c v0 checkpoint with dim ", h.dim, ", hidden_dim ",
               h.hidden_dim, ", ", h.n_layers, " layers, ", h.n_heads, " heads, ", h.n_kv_heads,
               " kv heads, vocab ", h.vocab_size, " (", h.shared_classifier ? "shared" : "separate",
               " classifier), seq_len ", h.seq_len, ", found ", size, " bytes (",
               static_cast<int64_t>(size) < expected ? "truncated" : "trailing bytes", ")");
  return h;
}

int64_t llama2c_expected_bytes(const Llama2cHeader& h) {
  // Bounded by the header limits: every term below stays under 2^60, no overflow.
  const int64_t dim = h.dim, hidden = h.hidden_dim, layers = h.n_layers;
  const int64_t q = int64_t{h.n_heads} * h.head_size, kv = int64_t{h.n_kv_heads} * h.head_size;
  const int64_t vocab = h.vocab_size;
  int64_t floats = vocab * dim;                          // token_embedding
  floats += layers * dim;                                // rms_att
  floats += layers * (q * dim + 2 * kv * dim);           // wq, wk, wv
  floats += layers * dim * q;                            // wo
  floats += layers * dim;                                // rms_ffn
  floats += layers * 3 * hidden * dim;                   // w1, w2, w3
  floats += dim;                                         // rms_final
  floats += 2 * int64_t{h.seq_len} * (h.head_size / 2);  // freq_cis_real, freq_cis_imag
  if (!h.shared_classifier) floats += vocab * dim;       // wcls
  return kLlama2cHeaderBytes + 4 * floats;
}

Llama2cFile read_llama2c(const std::string& path) {
  Llama2cFile out;
  out.path = path;
  out.file = MappedFile::open(path);
  out.header = parse_llama2c_header(out.file->data(), out.file->size(), path);
  const Llama2cHeader& h = out.header;

  // The map is page-aligned and the header 28 bytes: every tensor is 4-byte aligned.
  const auto* base = reinterpret_cast<const float*>(out.file->data() + kLlama2cHeaderBytes);
  const int64_t dim = h.dim, hidden = h.hidden_dim, layers = h.n_layers;
  const int64_t q = int64_t{h.n_heads} * h.head_size, kv = int64_t{h.n_kv_heads} * h.head_size;
  int64_t off = 0;
  auto take = [&](int64_t n) {
    const float* p = base + off;
    off += n;
    return p;
  };
  out.token_embedding = take(int64_t{h.vocab_size} * dim);
  out.rms_att = take(layers * dim);
  out.wq = take(layers * q * dim);
  out.wk = take(layers * kv * dim);
  out.wv = take(layers * kv * dim);
  out.wo = take(layers * dim * q);
  out.rms_ffn = take(layers * dim);
  out.w1 = take(layers * hidden * dim);
  out.w2 = take(layers * dim * hidden);
  out.w3 = take(layers * hidden * dim);
  out.rms_final = take(dim);
  take(2 * int64_t{h.seq_len} * (h.head_size / 2));  // freq_cis_real, freq_cis_imag: skipped
  out.wcls = h.shared_classifier ? out.token_embedding : take(int64_t{h.vocab_size} * dim);
  WKVQ_ASSERT(kLlama2cHeaderBytes + 4 * off == static_cast<int64_t>(out.file->size()));
  return out;
}

}  // namespace wkvq
