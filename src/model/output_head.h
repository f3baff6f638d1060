// Storage of the two vocabulary-sized tables: the output head (the (vocab, dim) logits
// projection) and the token embedding table (read one row per token). Each is f32, fp16 (half
// the bytes, exact for an fp16/bf16 source that fits fp16), or group-wise asymmetric int8 / int4
// (formats/weight_quant.h, RTN, the linears' group size: a quarter / an eighth of the bytes).
// design.md §2.1 keeps both in floating point; what a quantized model uses by default, with the
// KL divergence each choice costs, is in the README ("Memory").
#pragma once

#include <cstdint>
#include <string_view>

#include "model/model.h"

namespace wkvq {

enum class TableStorage { F32, F16, Q8, Q4 };
using HeadStorage = TableStorage;

// "f32" | "f16" | "q8" | "q4"; throws wkvq::Error otherwise.
TableStorage parse_table_storage(std::string_view name);
inline TableStorage parse_head_storage(std::string_view name) { return parse_table_storage(name); }
const char* table_storage_name(TableStorage s);
inline const char* head_storage_name(TableStorage s) { return table_storage_name(s); }
// Bits of an int storage (8, 4), 0 for a float one.
int table_storage_bits(TableStorage s);

// How m.output / the embedding table is stored. A quantized head of another bit width (an
// imported GPTQ lm_head) counts as F32: it is never converted.
TableStorage head_storage(const Model& m);
TableStorage embedding_storage(const Model& m);

// The group size quantized tables use: the linears' (m.quant.wgroup, 0 = one group per row) when
// the weights are quantized, else kDefaultTableGroup.
inline constexpr int64_t kDefaultTableGroup = 128;
int64_t table_group(const Model& m);

// The embedding table as a Linear (out = vocab, in = dim) in whatever storage it has.
Linear embedding_table(const Model& m);
// Whether every value of a floating-point `lin` is finite and within fp16's range; when not,
// *first_bad (if given) is the index of the first value that is not. True for a quantized one.
bool fits_fp16(const Linear& lin, int64_t* first_bad = nullptr);

// Whether every value of m's f32 head is finite and within fp16's range (|w| <= 65504); when not,
// *first_bad (if given) is the index of the first value that is not.
bool head_fits_fp16(const Model& m, int64_t* first_bad = nullptr);

// Stores m.output as `s`: a converted copy in m.storage (fp16: round to nearest even; int-b: RTN
// with table_group(m)); the old owned buffer is let go (WeightStorage::release). A head tied to
// the embeddings is untied (the embeddings stay as they are; when already stored as `s`, the
// head keeps reading the table, which store_embeddings then leaves in place). No other change
// when already so or when the head is quantized. Throws wkvq::Error naming the element when an f32
// head does not fit fp16.
void store_output_head(Model& m, TableStorage s);

// Stores the embedding table as `s` (conversions as for the head; an int-b table cannot be
// converted). A tied head follows: it shares the new table (config.tied_output stays true: one
// table in memory and on disk); to store a tied head otherwise, call store_output_head first.
void store_embeddings(Model& m, TableStorage s);

}  // namespace wkvq
