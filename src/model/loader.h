// Loading a Model from disk, with every size, shape, dtype and offset validated first.
//   a directory -> Hugging Face layout: config.json + model.safetensors (or sharded with
//                  model.safetensors.index.json); F32 used in place, F16/BF16 converted to f32
//                  (linears kept in place with LoadOptions::half_in_place); RoPE layout
//                  RotateHalf.
//   a file      -> llama2.c v0 .bin; used in place (zero-copy); RoPE layout Interleaved,
//                  norm_eps 1e-5, rope_theta 10000.
// Errors are wkvq::Error with a message naming the file and the field.
#pragma once

#include <string>

#include "io/hf_config.h"
#include "model/model.h"

namespace wkvq {

struct LoadOptions {
  // For a model that is going to be quantized: the F16/BF16 linears (and an untied F16/BF16
  // head) of a Hugging Face checkpoint stay in place in the mapped file as Linear::w16 / wbf16
  // instead of being converted to owned f32 buffers, and their pages are dropped from the
  // resident set after the load's scan (WeightStorage::release_pages). The quantizers read them
  // tensor by tensor, so the process holds at most the file's one floating-point copy. Embeddings
  // and norms are converted to f32 as always; F32 files and llama2.c files are unaffected. A bf16
  // Linear runs (Linear::forward) but more slowly than f32: not a format to run a model in.
  bool half_in_place = false;
};

Model load_model(const std::string& path, const LoadOptions& opt = {});
Model load_llama2c_model(const std::string& path);
Model load_hf_model(const std::string& dir, const LoadOptions& opt = {});

// The LlamaConfig a Hugging Face config describes (RotateHalf RoPE; a Mistral sliding window
// caps seq_len, where sliding-window and full attention agree). Not validated: call validate().
LlamaConfig config_from_hf(const HfConfig& hf);
// Prints on stderr that the context is capped at the sliding window, when it is (once per load).
void print_sliding_window_notice(const HfConfig& hf, const std::string& config_path);

}  // namespace wkvq
