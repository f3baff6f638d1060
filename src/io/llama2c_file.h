// llama2.c checkpoint, legacy "v0" format (run.c's read_checkpoint):
//   header: 7 int32 little-endian
//     dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//     vocab_size < 0 means the classifier is NOT shared with the token embedding and is stored
//     at the end of the file.
//   then float32 tensors, in this order (shapes as stored, row-major; every matrix is
//   (out_features, in_features), i.e. llama2.c's matmul(xout, x, w, n=in, d=out) with w (d, n)):
//     token_embedding (vocab, dim)
//     rms_att         (layer, dim)
//     wq              (layer, n_heads * head_size, dim)
//     wk              (layer, n_kv_heads * head_size, dim)
//     wv              (layer, n_kv_heads * head_size, dim)
//     wo              (layer, dim, n_heads * head_size)
//     rms_ffn         (layer, dim)
//     w1              (layer, hidden_dim, dim)
//     w2              (layer, dim, hidden_dim)
//     w3              (layer, hidden_dim, dim)
//     rms_final       (dim)
//     freq_cis_real   (seq_len, head_size / 2)   skipped: RoPE angles are recomputed
//     freq_cis_imag   (seq_len, head_size / 2)   skipped
//     wcls            (vocab, dim)               only when vocab_size < 0 in the header
//   head_size = dim / n_heads. The file must have exactly the size these imply.
// This layer knows nothing of LlamaConfig: it returns header values and pointers into the map.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "io/mapped_file.h"

namespace wkvq {

struct Llama2cHeader {
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;  // absolute value of the stored field
  int seq_len = 0;
  bool shared_classifier = true;  // stored vocab_size > 0
  int head_size = 0;              // dim / n_heads
};

struct Llama2cFile {
  std::string path;
  Llama2cHeader header;
  std::shared_ptr<const MappedFile> file;  // keeps every pointer below alive
  // Pointers into the map (4-byte aligned: the header is 28 bytes, the map page-aligned).
  const float* token_embedding = nullptr;  // (vocab, dim)
  const float* rms_att = nullptr;          // (layer, dim)
  const float* wq = nullptr;               // (layer, n_heads * head_size, dim)
  const float* wk = nullptr;               // (layer, n_kv_heads * head_size, dim)
  const float* wv = nullptr;               // (layer, n_kv_heads * head_size, dim)
  const float* wo = nullptr;               // (layer, dim, n_heads * head_size)
  const float* rms_ffn = nullptr;          // (layer, dim)
  const float* w1 = nullptr;               // (layer, hidden_dim, dim)   gate
  const float* w2 = nullptr;               // (layer, dim, hidden_dim)   down
  const float* w3 = nullptr;               // (layer, hidden_dim, dim)   up
  const float* rms_final = nullptr;        // (dim)
  const float* wcls = nullptr;             // (vocab, dim); == token_embedding when shared
};

inline constexpr int64_t kLlama2cHeaderBytes = 7 * 4;

// Validates the header (fields positive and plausible, dim % n_heads == 0, n_heads % n_kv_heads
// == 0, even head_size) and the exact file size implied by it. Throws wkvq::Error naming the
// path and the field, or the expected and found byte counts.
Llama2cHeader parse_llama2c_header(const uint8_t* bytes, size_t size, const std::string& path);
// Number of bytes a valid file with this header has.
int64_t llama2c_expected_bytes(const Llama2cHeader& h);

Llama2cFile read_llama2c(const std::string& path);

}  // namespace wkvq
