// Model: the immutable weights of a Llama decoder after load. Per-session state (KV cache,
// scratch, sampler) lives in runtime/session.h, never here.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/kv_quant.h"
#include "io/mapped_file.h"
#include "model/config.h"
#include "model/kv_smoothing.h"
#include "model/linear.h"

namespace wkvq {

struct LayerWeights {
  const float* attn_norm = nullptr;  // (dim) RMSNorm weight before attention
  Linear wq;                         // (n_heads * head_dim, dim), bias (q_dim) when qkv_bias
  Linear wk;                         // (n_kv_heads * head_dim, dim), bias (kv_dim) when qkv_bias
  Linear wv;                         // (n_kv_heads * head_dim, dim), bias (kv_dim) when qkv_bias
  Linear wo;                         // (dim, n_heads * head_dim), bias (dim) when o_bias
  const float* q_norm = nullptr;     // (head_dim) RMSNorm weight of every q head (qk_norm)
  const float* k_norm = nullptr;     // (head_dim) RMSNorm weight of every k head (qk_norm)
  const float* ffn_norm = nullptr;   // (dim) RMSNorm weight before the MLP
  Linear w_gate;                     // (hidden_dim, dim)  llama2.c w1
  Linear w_up;                       // (hidden_dim, dim)  llama2.c w3
  Linear w_down;                     // (dim, hidden_dim)  llama2.c w2

  // The seven projections in linear_by_index's order: q, k, v, o, gate, up, down.
  std::array<const Linear*, 7> linears() const {
    return {&wq, &wk, &wv, &wo, &w_gate, &w_up, &w_down};
  }
};

// Keeps the memory behind the weight pointers alive: mapped files and converted buffers.
struct WeightStorage {
  std::vector<std::shared_ptr<const void>> holders;
  std::vector<std::shared_ptr<const MappedFile>> files;  // the mapped files weights point into
  // Keeps `file` alive and lets release_pages drop pages of it.
  void hold_file(std::shared_ptr<const MappedFile> file);
  // Drops the pages of [p, p + bytes) from the resident set when the range lies in one of
  // `files` (MappedFile::release; the data stays readable); does nothing for other memory.
  void release_pages(const void* p, int64_t bytes) const;
  // The same for every page of `files`.
  void release_file_pages() const;
  // Lets go of the weight at p (bytes long) once it has been converted into another storage: an
  // owned buffer that starts at p is dropped from `holders` (freed when no other copy of the
  // model holds it), pages of a mapped file are released (release_pages).
  void release(const void* p, int64_t bytes);
  // A fresh owned f32 buffer of n floats (zeroed), kept alive with the model.
  float* allocate(size_t n);
  // The same for n fp16 values.
  uint16_t* allocate_fp16(size_t n);
};

// How a model was quantized (all zero / empty for a floating-point model). The KV settings are
// the defaults a quantized model directory asks for; commands may override them.
struct QuantizationInfo {
  std::string method;       // "", "rtn", "wkvquant", ...
  int wbits = 0;            // 0: float weights
  int64_t wgroup = 0;       // weight group size (0: one group per row)
  KvQuantSettings kv;       // bits 32 (f32 KV) unless the directory asks for more; smooth: how
                            // Model::kv_smoothing was made
  std::string calibration;  // how a calibrated method was run (CrrOptions::summary), else ""
};

struct Model {
  LlamaConfig config;
  std::string source;  // path the model was loaded from (for messages)
  // The token embedding table (vocab_size, dim): f32 in tok_embeddings, or, when that is null,
  // fp16 (w16) or group-wise int-b (q) in tok_embeddings_packed (model/output_head.h,
  // store_embeddings). Read one row per token: embedding_row.
  const float* tok_embeddings = nullptr;
  Linear tok_embeddings_packed;      // out = vocab_size, in = dim; used when tok_embeddings is null
  std::vector<LayerWeights> layers;  // n_layers
  const float* final_norm = nullptr;  // (dim)
  Linear output;  // (vocab_size, dim); shares the embedding table when config.tied_output
  WeightStorage storage;
  QuantizationInfo quant;
  KvSmoothing kv_smoothing;  // n_layers == 0: none
  bool bf16_source = false;  // float tensors read from bf16: a GPTQ-convention save keeps bf16

  // Row `token` of the embedding table as f32 into dst (dim values): exact for f32 and fp16,
  // the dequantized row (dequantize_row_ref) for int-b.
  void embedding_row(int64_t token, float* dst) const;
  // Bytes of the embedding table as stored.
  int64_t embedding_bytes() const;
  // Bytes of all weights as stored for inference (embeddings and head included).
  int64_t weight_bytes() const;
  // Bytes held besides weight_bytes() in the kernels' own layouts (Linear::layout_copy_bytes).
  int64_t layout_copy_bytes() const;
};

// Marks every weight buffer of m of at least one huge page (packed codes, float matrices, the
// tables) for transparent huge pages (core/huge_pages.h); returns the bytes advised.
int64_t advise_huge_pages(const Model& m);

}  // namespace wkvq
