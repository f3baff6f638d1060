// CRR calibration (design.md §2.3): sequential over blocks, each block's LWC clipping and KV
// smoothing learned so that the block, followed by its k full-precision successors, reproduces
// the full-precision model's activations k blocks later. This header needs no libtorch.
//
// Per block i, with S windows of T tokens:
//   X_fp[i]   (S, T, dim)  input of block i in the full-precision model
//   X_q[i]    (S, T, dim)  input of block i when blocks 0..i-1 are fake-quantized with their
//                          finished parameters (weights W^, KV in the teacher-forced POQ form)
//   Y_fp      = F[i+k'] o ... o F[i] (X_fp[i]),  k' = min(k, L-1-i)      (no grad)
//   Y_q       = F[i+k'] o ... o F[i+1] o Fq[i](X_q[i])                    (grad to block i only)
//   loss      = mean |Y_q - Y_fp| (MAE) or mean (Y_q - Y_fp)^2 (MSE); AdamW, weight decay 0
// then block i is frozen, saved, and X_q[i+1] = Fq[i](X_q[i]) with the saved values.
//
// Memory (f32): the activations X_fp, X_q, Y_fp, X_fp[i+1] and X_q[i+1] of all samples,
//   5 * S * T * dim * 4 bytes   (stories260K defaults: 5 * 32 * 256 * 64 * 4 = 10 MB;
//                                LLaMA-2-7B, S = 128, T = 2048: 5 * 4.3 GB = 21 GB),
// plus one batch through k' + 1 blocks with autograd (about B * T * (12 dim + 4 hidden +
// 3 n_heads * T) * 4 bytes per block), plus the f32 weights of k' + 1 blocks.
//
// Determinism: the windows come from `seed`, each block's sample order from (seed, block), so a
// resumed run (X_fp, X_q rebuilt by re-applying the finished blocks' saved values) gives results
// bit-identical to an uninterrupted one with the same thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "calibrate/calibration_result.h"
#include "formats/kv_quant.h"
#include "model/model.h"

namespace wkvq {

enum class CrrLoss { Mae, Mse };

// Defaults: the design started from k = 5, lr 1e-2 for LWC and 20 epochs of 128 windows of
// min(2048, context); that is about an hour for stories260K on two cores. The shipped defaults
// (5 epochs of 32 windows of up to 256 tokens, k = 1, MAE, LWC lr 1e-3) come from the ablation in
// docs/design.md §2.3: on stories260K k = 1 had the lowest KLD of k = 0, 1, 2, 5 (MAE and MSE); LWC
// at lr 1e-2 (or with 4x the windows, i.e. 4x the steps) fits TinyStories closer but raises
// WikiText-2 perplexity above the statistics rung, lr 1e-3 beats that rung on both texts.
struct CrrOptions {
  int k = 1;  // full-precision blocks after block i in the loss
  int epochs = 5;
  int64_t samples = 32;   // random windows of the calibration stream
  int64_t window = 0;     // tokens per window; 0: min(256, model context)
  int64_t batch = 1;      // windows per optimizer step
  bool learn_lwc = true;  // false: clip factors 1, i.e. RTN weights
  // The weights are an already quantized model's (an imported GPTQ checkpoint, GPTQ weights, a
  // quantized model directory), frozen exactly as they are: block i computes with their
  // dequantized W^ (act-order columns back in input order); no LWC (learn_lwc false); wbits and
  // wgroup only describe them. Only the KV smoothing is learned (or kept).
  bool frozen_weights = false;
  // The KV cache calibrated for (formats/kv_quant.h): bits 2, 3, 4 or 8 (16 or 32: KV not
  // quantized, not smoothed), group (0: head_dim), poq (the teacher-forced POQ attention in
  // training; false: the diagonal is quantized too), smooth: Learned (dK, sK, dV, sV learned),
  // Stats (statistics, kept) or None (identity, kept).
  KvQuantSettings kv{4, 0, true, KvSmoothMode::Learned};
  bool stats_init = true;      // learned smoothing starts from statistics (runtime/kv_stats.h),
                               // else 1/0; Stats smoothing always is statistics, None never
  int64_t stats_windows = 64;  // ... of the first stats_windows windows of the calibration stream,
  int64_t stats_ctx = 0;       // stats_ctx tokens each (0: min(2048, context); capped at the
                               // stream): what `--kv-smooth stats` computes, so the learned rungs
                               // start where the statistics rung ends
  CrrLoss loss = CrrLoss::Mae;
  int wbits = 4;         // 2, 3, 4 or 8; 16: weights stay in floating point
  int64_t wgroup = 128;  // 0: one group per row
  double lr_lwc = 1e-3;
  double lr_smooth = 5e-3;
  float lwc_init = 4.0f;  // initial gamma and beta
  uint64_t seed = 0;
  int threads = 0;            // torch and OpenMP threads; 0: keep the process setting
  std::string results_dir;    // one file per finished block; "": results only in memory
  bool resume = false;        // continue after the finished blocks found in results_dir
  int stop_after_block = -1;  // >= 0: return once this block is finished (a partial run)

  bool quantize_weights() const { return wbits <= 8; }
  bool quantize_kv() const { return kv.quantized(); }
  bool learn_smooth() const { return kv.smooth == KvSmoothMode::Learned; }
  // The smoothing (learned or kept) starts from the statistics of the calibration text.
  bool smooth_from_stats() const {
    return kv.smooth == KvSmoothMode::Stats || (learn_smooth() && stats_init);
  }
  // Throws wkvq::Error on an invalid setting for a model of config `c`.
  void validate(const LlamaConfig& c) const;
  // One "key=value" line per option that changes the result (not threads, results_dir, resume,
  // stop_after_block): what a resumed run must match.
  std::string record() const;
  // The inverse of record(): the options that change the result, from its text (the other
  // fields keep their defaults). Throws wkvq::Error naming the line on anything malformed.
  static CrrOptions parse_record(const std::string& text);
  // One line for people and for config.json: "lwc+smooth, k=5, mae, 20 epochs, ...".
  std::string summary() const;
  // The settings the result is calibrated for (method "wkvquant"), as the runtime records them.
  QuantizationInfo quant_info() const;
};

struct CrrProgress {
  int block = 0;
  int n_blocks = 0;
  int epoch = 0;  // epochs finished in this block
  int epochs = 0;
  double loss = 0;          // mean training loss of the last epoch (block_done: loss_after)
  double elapsed_s = 0;     // since the call started
  double eta_s = 0;         // estimated seconds left
  bool block_done = false;  // the block is finished (and saved)
  bool resumed = false;     // the block was read from the results directory
};
using CrrProgressFn = std::function<void(const CrrProgress&)>;

// Calibrates the floating-point model `fp` (f32 linears) on the token stream `calib`. Returns every
// finished block: all n_layers unless stop_after_block stopped early. Throws wkvq::Error on bad
// options, a stream shorter than one window, or a results directory from a different run.
//
// With opt.frozen_weights, `frozen` holds the weights (a model of fp's shape, its linears
// quantized or kept in float) and fp is the reference of the loss (Y_fp, X_fp): the
// floating-point model when there is one, else the frozen model itself (an imported checkpoint:
// the reference is then its own weights with a full-precision KV cache). frozen may be &fp.
CalibrationResult calibrate_crr(const Model& fp, const std::vector<int>& calib,
                                const CrrOptions& opt, const CrrProgressFn& progress = {},
                                const Model* frozen = nullptr);

// Effective window: opt.window, or min(256, context) when 0.
int64_t crr_window(const LlamaConfig& c, const CrrOptions& opt);

}  // namespace wkvq
