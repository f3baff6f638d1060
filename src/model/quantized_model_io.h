// The quantized model directory (design.md §5): a Hugging Face layout that other engines can
// read the weights of, and that wkvq loads back exactly.
//
//   DIR/config.json        HF keys of the model's architecture (architectures, model_type,
//                          rope_scaling, attention_bias, head_dim, ...) + "quantization_config"
//   DIR/model.safetensors  written by io/safetensors_writer.h, tensors in this order:
//     model.embed_tokens.weight                      F32 (vocab, dim)       embed_storage "f32";
//                                                    F16 for "f16" (written with the scales);
//                                                    for "q8" / "q4" instead the four GPTQ
//                                                    tensors model.embed_tokens.{qweight,
//                                                    qzeros,g_idx,scales} of (out vocab, in dim)
//                                                    at 8 / 4 bits, the directory's group_size
//     model.norm.weight                              F32 (dim)
//     lm_head.weight                                 F32 (vocab, dim)       only when untied;
//                                                    F16 when the head is fp16 (written with
//                                                    the scales, after the I32 tensors);
//                                                    head_storage "q8" / "q4": lm_head.{qweight,
//                                                    qzeros,g_idx,scales} at 8 / 4 bits
//     model.layers.L.input_layernorm.weight          F32 (dim)
//     model.layers.L.post_attention_layernorm.weight F32 (dim)
//     model.layers.L.self_attn.kv_smoothing.{k_shift,k_scale,v_shift,v_scale}
//                                                    F32 (kv_dim)           when smoothed
//     model.layers.L.self_attn.{q,k,v}_proj.bias     F32 (q_dim / kv_dim)   when qkv_bias
//     model.layers.L.self_attn.o_proj.bias           F32 (dim)              when o_bias
//     model.layers.L.self_attn.{q,k}_norm.weight     F32 (head_dim)         when qk_norm
//     per linear PREFIX = model.layers.L.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj}.
//       kept in float:  PREFIX.weight                F32 (out, in)
//       quantized:      PREFIX.qweight               I32 (ceil(in / P), out)
//                       PREFIX.qzeros                I32 (G, ceil(out / P))
//                       PREFIX.g_idx                 I32 (in)               i / group
//                       PREFIX.scales                F16 (G, out)
//     (F32 tensors first, then I32, then F16: every tensor sits aligned to its element size.)
//   DIR/tokenizer.json (Hugging Face), DIR/tokenizer.model (SentencePiece) or DIR/tokenizer.bin
//     (llama2.c BPE): a copy of the tokenizer (plus tokenizer_config.json /
//     special_tokens_map.json when found beside it).
// The int tensors follow formats/gptq.h with P = 32 / bits values per int32 (lowest bits first),
// G = ceil(in / group) groups along the input; in and out not a multiple of P are zero-padded.
// Zero points are written exactly (GptqZeros::kAsIs, GPTQModel's "gptq_v2"), NOT in the v1
// "stored zero = zero - 1" form that AutoGPTQ/exllama assume by default: quantization_config says
// so with "zero_point": "exact" and "checkpoint_format": "gptq_v2".
//
// quantization_config: quant_method "wkvq", format_version 4, method ("rtn", ...), bits (2, 4, 8),
// group_size (GPTQ convention: -1 = one group per row), desc_act false, sym false, zero_point,
// checkpoint_format, kv_bits, kv_group_size (0 = head_dim), poq, kv_smooth ("none", "stats",
// "learned"), keep_float (["L.name", ...], wkvq names: "3.w_down"), padding {values_per_int32,
// fill, linears: [{name, in, in_packed, out, out_packed}] for each linear kind that is padded},
// checksums {file name: "xxh3_64:<hex>"} of model.safetensors and the tokenizer files
// (io/checksum.h), verified on every load, embed_storage and head_storage ("f32", "f16", "q8",
// "q4"; a tied head is stored with the embeddings). Version 2 (f32 embeddings, the head as its
// tensors say) and version 1 (no checksums, unverified) still load.
// The directory is written all-or-nothing (io/atomic_dir.h).
//
// GPTQ convention (QuantizedDirFormat::kGptq, format_version 3), what AutoGPTQ / GPTQModel,
// transformers and vLLM load:
//   config.json: torch_dtype "float16" ("bfloat16" when Model::bf16_source); quantization_config
//   {quant_method "gptq", bits,
//     group_size (-1: one group per row), desc_act, sym false, static_groups false,
//     true_sequential true, lm_head (quantized or not), checkpoint_format "gptq" (v1: zeros
//     stored minus one, written whenever every zero point is >= 1) or "gptq_v2" (stored as is,
//     with a printed notice), dynamic {"-:<regex of the module>$": {}} for each linear kept in
//     float (GPTQModel's and vLLM's "do not quantize" rule)}; and a top-level "wkvq" section
//     {format_version 3, method, kv_bits, kv_group_size, poq, kv_smooth, keep_float,
//     calibration, checksums} that other engines ignore.
//   model.safetensors (metadata format "pt"): the I32 tensors above, then F16 scales, then every
//     float tensor (embeddings, norms, biases, q/k norms, kept-float linears, float lm_head) in
//     F16, or BF16 for a bf16 source (an fp16 head stays F16).
//     No padding: a linear whose in or out is not a multiple of P, or whose in is not a multiple
//     of group_size, is refused naming it.
//   wkvq_kv.safetensors: the KV smoothing vectors (same names as above, F32), when smoothed.
//   Act-order (desc_act, from an imported checkpoint): g_idx as the checkpoint had it.
// The reader also takes GPTQ checkpoints of other tools (no "wkvq" section): v1 / v2 zeros, sym
// or not, any group size dividing the inputs, desc_act (Linear::in_order), 2, 4 or 8 bits, float
// tensors in F32, F16 or BF16; they load with method "gptq", a float KV cache and no smoothing.
//
// RoPE: the directory uses HF's rotate-half layout. A model in llama2.c's interleaved layout has
// each head's q/k rows permuted on save (rotate_half_row_order), with the K smoothing vectors;
// the saved model computes the same function, up to the summation order of q.k. (Only when the
// KV quantization group (kv_group_size) splits a head do the KV groups differ after the
// permutation: groups of whole heads, the default, see the same values.)
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "formats/weight_quant.h"
#include "model/model.h"

namespace wkvq {

// format_version of wkvq's own layout (quant_method "wkvq"; 1 = without checksums) and of the
// GPTQ-convention layout (quant_method "gptq", the version in the "wkvq" section).
// 4: embed_storage / head_storage (f32, f16, q8, q4) in quantization_config; 3 is the GPTQ
// layout's number and never that of wkvq's own layout.
inline constexpr int kQuantizedFormatVersion = 4;
inline constexpr int kGptqDirFormatVersion = 3;

enum class QuantizedDirFormat {
  kWkvq,  // quant_method "wkvq", format_version 2: F32 float tensors, exact zero points, padding
  kGptq,  // quant_method "gptq" + "wkvq" section, format_version 3 (see "GPTQ convention" above)
};

// Writes `m` (quantized with 2-, 4- or 8-bit weights; 3-bit is refused) into `dir`, creating it.
// `dir` must be absent, empty, or an earlier quantized model directory (overwritten). An empty
// tokenizer_path writes no tokenizer. Throws wkvq::Error naming the file and the problem (for
// kGptq also a linear whose shape the convention cannot hold, or a float value beyond fp16).
void save_quantized_model(const Model& m, const std::string& dir, const std::string& tokenizer_path,
                          QuantizedDirFormat format = QuantizedDirFormat::kWkvq);

// True when `path` is a directory whose config.json has a quantization_config with quant_method
// "wkvq". Never throws (a malformed config.json gives false; loading it reports the problem).
bool is_quantized_model_dir(const std::string& path);
// The same test on the parsed config.json of a directory (never throws).
bool is_quantized_config(const nlohmann::json& config);

// Reads a directory written by save_quantized_model: quantized linears as Linear::q (w = null),
// float tensors as Linear::w / pointers, the KV smoothing and Model::quant. Everything is
// validated first; errors name the file and the field.
Model load_quantized_model(const std::string& dir);
// The same with the directory's config.json already parsed (`config`), so it is read once.
Model load_quantized_model(const std::string& dir, const nlohmann::json& config);

// The row order that turns a q/k projection of n_heads heads from the interleaved RoPE layout
// into the rotate-half one: new row h*hd + j = old row h*hd + 2j and new row h*hd + hd/2 + j =
// old row h*hd + 2j + 1 (j < hd/2). order[new] = old.
std::vector<int64_t> rotate_half_row_order(int n_heads, int head_dim);
// out row r = m row order[r], with its scales and zero points (exact).
QuantizedMatrix permute_rows(const QuantizedMatrix& m, const std::vector<int64_t>& order);

}  // namespace wkvq
