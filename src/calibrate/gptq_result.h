// GPTQ weight quantization as data (no libtorch): its options, the quantized linears it
// produces, the file the calibration worker hands them to wkvq in, and applying them to a model.
// The algorithm itself is calibrate/gptq.h (libtorch, in the worker).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "formats/weight_quant.h"
#include "model/model.h"

namespace wkvq {

struct GptqOptions {
  int bits = 4;            // 2, 3, 4 or 8
  int64_t group = 128;     // columns per group (weight_group_size; 0: one group per row)
  double damp = 0.01;      // H += damp * mean(diag(H)) * I before the Cholesky factorization
  bool act_order = false;  // columns in descending diag(H) order, with static groups
  int64_t block = 128;     // columns per lazy batch update
  int64_t samples = 32;    // calibration windows (consecutive, from the start of the text)
  int64_t window = 0;      // tokens per window; 0: min(256, model context)

  // Throws wkvq::Error on a setting that cannot run on a model of config `c`.
  void validate(const LlamaConfig& c) const;
  // "W4 g128, damp 0.01, act-order off, 32 windows of 256, block 128" (config.json and messages).
  std::string summary(const LlamaConfig& c) const;
  int64_t effective_window(const LlamaConfig& c) const;
};

// The GPTQ-quantized linears: layers[l][i] is linear i (kLinearNames order) of layer l.
struct GptqResult {
  std::vector<std::array<QuantizedMatrix, 7>> layers;
};

// The worker's result file, a safetensors file: per linear "layers.L.NAME.codes" (U8, rows x
// row_bytes), ".scales" (F16, rows x n_groups), ".zeros" (U8, rows x n_groups); metadata
// "wkvq_gptq" = the options' summary. Written atomically.
void write_gptq_result(const std::string& path, const GptqResult& r, const std::string& summary);
// Reads it back for the model `fp` (shapes from its linears) and the options `o`; throws
// wkvq::Error naming the file and tensor on a missing tensor, a wrong shape or dtype, a zero
// point out of range, or a file written for other options.
GptqResult read_gptq_result(const std::string& path, const Model& fp, const GptqOptions& o);

// A copy of the floating-point `fp` (f32, f16 or bf16 linears) whose linears are r's
// (quant.method "gptq", wbits and wgroup from `o`, quant.calibration the summary); everything
// else as in fp.
Model apply_gptq(const Model& fp, const GptqResult& r, const GptqOptions& o);

}  // namespace wkvq
