// Storage of the output head (the (vocab, dim) logits projection): f32, or fp16 to read half the
// bytes per token. design.md §2.1 keeps the head in floating point; a quantized model keeps it in
// fp16 by default (the FP16 model the method is measured against), an FP model in f32.
#pragma once

#include <string_view>

#include "model/model.h"

namespace wkvq {

enum class HeadStorage { F32, F16 };

// "f32" | "f16"; throws wkvq::Error otherwise.
HeadStorage parse_head_storage(std::string_view name);
const char* head_storage_name(HeadStorage s);

// How m.output is stored: F16 when fp16, else F32 (a quantized head counts as F32: it is not
// converted).
HeadStorage head_storage(const Model& m);

// Whether every value of m's f32 head is finite and within fp16's range (|w| <= 65504); when not,
// *first_bad (if given) is the index of the first value that is not.
bool head_fits_fp16(const Model& m, int64_t* first_bad = nullptr);

// Stores m.output as `s`: a converted copy in m.storage (fp16: round to nearest even). A head tied
// to the embeddings is untied (the embeddings stay f32). No-op when already so or when the head
// is quantized. Throws wkvq::Error naming the element when an f32 head does not fit fp16.
void store_output_head(Model& m, HeadStorage s);

}  // namespace wkvq
