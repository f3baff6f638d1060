// Models with seeded random weights, for benchmarks of real shapes (speed does not depend on
// weight values) and for tests. Deterministic: the same config and seed give the same weights
// whatever the thread count.
#pragma once

#include <cstdint>
#include <string>

#include "model/model.h"
#include "model/output_head.h"
#include "model/weight_quantizer.h"

namespace wkvq {

// Weights uniform in +-1/sqrt(in) for linears (and the untied head), +-1 for the embedding,
// 1 +- 0.05 for norms. Each tensor is filled in fixed 64 Ki-element chunks, each chunk from its
// own generator seeded by splitmix64(seed, tensor index, chunk index), in parallel.
// Throws wkvq::Error when the config is invalid.
Model make_random_model(const LlamaConfig& config, uint64_t seed);

// How make_random_quantized_model stores the weights.
struct RandomQuantization {
  WeightQuantOptions weights;
  TableStorage embed = TableStorage::F32;
  TableStorage head = TableStorage::F32;
};

// Exactly make_random_model(config, seed) with its linears RTN-quantized (quantize_weights_rtn)
// and its tables stored as `rq` says (store_output_head, store_embeddings; a tied head with the
// embeddings' storage stays tied), but without ever holding the f32 model: the tables are made
// and converted first, then each linear is generated into a per-thread scratch and quantized.
// Peak memory: the quantized model plus the f32 tables briefly, plus threads x the largest linear.
Model make_random_quantized_model(const LlamaConfig& config, uint64_t seed,
                                  const RandomQuantization& rq);

// Named shapes: "tinyllama-1.1b", "llama2-7b", "stories260k-shape". Throws for any other name,
// listing the known ones.
LlamaConfig shape_preset(const std::string& name);

// A small JSON file with the keys of a Hugging Face config.json (hidden_size, ...); model_type /
// architectures may be left out. Validated.
LlamaConfig load_shape_file(const std::string& path);

}  // namespace wkvq
