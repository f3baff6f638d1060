// The quantization options shared by ppl, generate, bench and quantize, and the model they
// describe: weights RTN-quantized or as loaded, the KV cache settings, and the KV smoothing.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "formats/kv_quant.h"
#include "model/kv_smoothing.h"
#include "model/model.h"
#include "model/output_head.h"
#include "model/random_model.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_stats.h"
#include "runtime/tokenizer.h"

namespace wkvq::cli {

struct QuantCliOptions {
  int wbits = 0;           // 0: weights as loaded
  int64_t wgroup = 128;    // 0: one group per row
  std::string keep_float;  // linears kept in float, see KeepFloat
  // --kvbits --kvgroup --poq --kv-smooth: the KV settings given; a field the command line
  // leaves out (kv_given) is the model's own (kv_over). --kv-smooth takes none or stats.
  KvQuantSettings kv;
  struct KvGiven {
    bool bits = false, group = false, poq = false, smooth = false, window = false, vbits = false,
         meta = false;
  } kv_given;
  double kv_auto = 0;          // --kv-auto: > 0 chooses the KV format within it (cli/kv_auto.h)
  std::string calib;           // calibration text for --kv-smooth stats, --kv-meta rel8, --kv-auto
  int64_t calib_windows = 64;  // windows of the calibration text used for statistics
  int64_t calib_ctx = 0;       // their length (0: min(2048, context))
  int64_t calib_sinks = CalibWindows::kDefaultSinkPositions;  // left out of the statistics
  // Tokens the rel8 static ranges are measured on when there is no --calib text: bench's seeded
  // random prompts for a random-weight shape (speed only; a real model measures them on text).
  std::vector<int> range_tokens;
  std::string head;   // "f32" | "f16" | "q8" | "q4" | "" (the default, apply_table_options)
  std::string embed;  // the same for the embedding table

  // Registers --wbits --wgroup --keep-float --kvbits --kvgroup --poq --kv-smooth --calib
  // --calib-windows --calib-ctx --calib-sinks --head --embed on `cmd`.
  void add_to(CLI::App* cmd);
  // The KV cache's options of add_to: --kvbits --kvgroup --poq --kv-vbits --kv-window --kv-meta
  // --kv-auto --kv-smooth.
  void add_kv_to(CLI::App* cmd);
  // `model` (the KV settings a model asks for) with the fields the command line gave replaced;
  // --kvbits 16 or 32 also drops the model's int-only window, value bits and rel8 metadata
  // unless they are given too (so an int-KV model runs with a float cache by --kvbits alone).
  KvQuantSettings kv_over(const KvQuantSettings& model) const;
  // kv's bits, group, value bits, window and metadata as if given on the command line (a format
  // chosen by --kv-auto, handed on to calibration); --kv-auto cleared.
  void set_kv_format(const KvQuantSettings& kv);
};

struct PreparedModel {
  Model fp;               // as loaded
  Model model;            // what runs: fp, or fp with RTN-quantized linears
  KvQuantSettings kv;     // the cache's settings (kv.smooth: where `smoothing` came from)
  KvSmoothing smoothing;  // n_layers == 0: none
  const KvSmoothing* smoothing_or_null() const {
    return smoothing.n_layers > 0 ? &smoothing : nullptr;
  }
  // "W4 g128 RTN, KV4 g8 POQ, stats smoothing" and the like.
  std::string describe() const;
};

// The defaults of --embed and --head for a model with quantized linears (a float model keeps its
// tables as loaded). Measured in the README ("Memory": KL divergence of each storage).
inline constexpr TableStorage kDefaultQuantizedEmbed = TableStorage::F32;
inline constexpr TableStorage kDefaultQuantizedHead = TableStorage::F16;

// The storage --embed / --head ask for m: the option when given, else the default above when m's
// linears are quantized and the table is f32 (or bf16) now (f16 only where the table fits fp16:
// else f32, with a note on stderr), else the table's current storage.
TableStorage resolved_embed_storage(const Model& m, const std::string& embed);
TableStorage resolved_head_storage(const Model& m, const std::string& head);

// Stores m's embedding table and output head as --embed and --head ask (resolved as above; a
// tied head asked to be stored as the embeddings stays tied). Throws when an explicit f16 cannot
// hold a table's values.
void apply_table_options(Model& m, const QuantCliOptions& o);

// make_random_quantized_model's settings from the options (bits, group, keep-float, and the
// tables as --embed / --head ask, else the defaults above). Throws on bad --keep-float entries.
RandomQuantization random_quantization(const QuantCliOptions& o, const LlamaConfig& c);

// Loads nothing: applies the options to a loaded model. `tok` encodes --calib text (may be null
// when no statistics are asked for). keep_fp: PreparedModel::fp keeps the model as loaded (for
// --kld and the like); otherwise it is left empty and the float weights the quantized model no
// longer reads are freed (only the quantized model is held).
PreparedModel prepare_model(Model loaded, const QuantCliOptions& o, const Tokenizer* tok,
                            bool keep_fp = true);

// rel8 metadata (p.kv.rel8): the static group ranges of p.smoothing (identity when none) measured
// with p.model on the tokenized --calib text (its windows: --calib-windows, --calib-ctx,
// --calib-sinks); what prepare_model does for a model it quantizes, for a calibrated one.
void add_kv_group_ranges(PreparedModel& p, const QuantCliOptions& o,
                         const std::vector<int>& calib_tokens);

// Statistics smoothing of `fp` from the calibration text, tokenized (`calib` names it in the
// progress line).
KvSmoothing stats_smoothing(const Model& fp, const std::vector<int>& stream,
                            const std::string& calib, int64_t windows, int64_t ctx, int64_t sinks);

}  // namespace wkvq::cli
