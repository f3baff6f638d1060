// CalibrationResult: what a WKVQuant calibration learns, as plain data (no libtorch): per block the
// LWC clip factors of its seven linears and its KV smoothing. Applying it to a floating-point
// model is a separate step (apply_calibration), so results can be stored, inspected and reused.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "model/kv_smoothing.h"
#include "model/model.h"

namespace wkvq {

// The KV smoothing of one layer: kv_dim floats each, s > 0 (model/kv_smoothing.h).
struct LayerSmoothing {
  std::vector<float> dk, sk, dv, sv;
  static LayerSmoothing identity(int kv_dim);
  bool empty() const { return dk.empty(); }
};

struct BlockCalibration {
  // Per linear (kLinearNames order, model/weight_quantizer.h): clip factors sigmoid(gamma),
  // sigmoid(beta) of shape (rows, n_groups) row-major, each in [0, 1]; empty: the linear stays
  // in floating point.
  std::array<std::vector<float>, 7> clip_hi, clip_lo;
  LayerSmoothing smoothing;  // empty: no KV smoothing (KV not quantized)
  double loss_before = 0;    // CRR loss over all samples with the initial parameters
  double loss_after = 0;     // ... with the learned ones
  double seconds = 0;        // time spent on this block
};

struct CalibrationResult {
  // The settings calibrated for: method "wkvquant", wbits, wgroup, and kv (CrrOptions::kv; its
  // smooth Learned, Stats or None).
  QuantizationInfo quant;
  std::vector<BlockCalibration> blocks;  // block i = layer i; n_layers when complete

  // The KV smoothing of every block (n_layers == 0 when the blocks carry none).
  KvSmoothing smoothing() const;
};

// A runtime model from the floating-point `fp` (f32 linears) and a complete result: every linear
// with clip factors quantized by quantize_weights_ref(W, ..., wbits, wgroup, clip_hi, clip_lo)
// (the others stay in f32), model.kv_smoothing set from the result, quant.method = "wkvquant".
// Throws when the result does not fit the model (block count, clip shapes for wgroup).
Model apply_calibration(const Model& fp, const CalibrationResult& r, int wbits, int64_t wgroup);

// The model `weights` (frozen: calibrated with CrrOptions::frozen_weights) with the KV smoothing
// of a complete result: its linears shared as they are (bit for bit), model.kv_smoothing and
// quant.kv from the result, quant.method "<weights' method>+wkvquant-kv" and quant.calibration
// naming both. Throws when the result does not fit the model (block count, KV channels).
Model apply_smoothing(const Model& weights, const CalibrationResult& r);

}  // namespace wkvq
