// Model: the immutable weights of a Llama decoder after load. Per-session state (KV cache,
// scratch, sampler) lives in runtime/session.h, never here.
#pragma once

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
  std::string source;                     // path the model was loaded from (for messages)
  const float* tok_embeddings = nullptr;  // (vocab_size, dim)
  std::vector<LayerWeights> layers;       // n_layers
  const float* final_norm = nullptr;      // (dim)
  Linear output;                          // (vocab_size, dim); shares tok_embeddings when tied
  WeightStorage storage;
  QuantizationInfo quant;
  KvSmoothing kv_smoothing;  // n_layers == 0: none
  bool bf16_source = false;  // float tensors read from bf16: a GPTQ-convention save keeps bf16

  // Bytes of all weights as stored for inference (embeddings and head included).
  int64_t weight_bytes() const;
};

}  // namespace wkvq
