// The kernel table: for each operation of the model (weights GEMV/GEMM in f32, fp16 and int4/int8;
// KV quantize; attention over the cache), the kernels this process runs. It is resolved once, on
// first use, from the CPU and two environment variables, and read by every hot call without further
// checks:
//
//   WKVQ_ISA  = reference | avx2 | avx512   pins the ISA (default: the widest this CPU runs;
//                                           one it lacks is an error)
//   WKVQ_GEMV = scaled | table | dot | auto  pins the int4 GEMV form (scaled: AVX2 or AVX-512;
//                                           table: AVX-512; default auto: a timing probe picks
//                                           scaled, else table / dot, see qmatmul.h)
//   WKVQ_PREFILL_GEMM = f32 | int8 | auto    the int4 GEMM above the dot kernels' row limit
//                                           (prefill): f32 activations, or int8 ones
//                                           (kernels/qmatmul_q8.h; needs the AVX2 kernels or
//                                           AVX-512 with AVX512_VNNI), for every pass. Default
//                                           auto: per pass (GemmUse below), int8 for a
//                                           session's prompt where the CPU has AVX512_VNNI,
//                                           f32 for evaluation
//   WKVQ_DECODE_GEMV = f32 | int8 | auto     the int4 GEMV / small GEMM of up to the dot kernels'
//                                           row limit (decode, batched decode): the f32 kernels,
//                                           or int8 activations (qmatmul_q8.h, the int8 GEMM's
//                                           arithmetic bit for bit; needs the AVX2 kernels or
//                                           AVX-512 with AVX512_VNNI, a clear error without
//                                           them). Default auto: kDefaultDecodeGemv.
//                                           With int8 here, evaluation passes run the int8 GEMM
//                                           too (unless WKVQ_PREFILL_GEMM=f32), so that a
//                                           teacher-forced pass equals token-by-token decoding
//
//   WKVQ_KV_SCORES = f32 | int8 | auto       the attention scores of 4-bit keys: f32 queries
//                                           against the decoded codes, or int8 queries against
//                                           the codes (kernels/kv_attend.h, gqa_scores_q8; any
//                                           ISA). Default auto: f32
//
//   WKVQ_AMX = on | off | auto               whether the int8 GEMM runs on AMX tiles where the
//                                           CPU has AMX-INT8 and the OS grants it (bit for bit
//                                           the AVX512_VNNI GEMM's result, faster); default auto
//                                           = on where usable; on without it is an error
//
// The six variables are read here and nowhere else (the commands' --decode-gemv, --prefill-gemm
// and --kv-scores set theirs before the table is resolved: cli/kernel_options.h).
// `kernel_table_entries` names every entry, for the "kernels:" line and the "kernels" object of
// `bench --json` / `ppl --json` (README, "Reproducibility"): two runs that print the same table ran
// the same instructions.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kernels/isa.h"

namespace wkvq {

namespace detail {
struct MatmulOps;
struct QMatmulOps;
struct KvQuantOps;
struct KvAttendOps;
struct QGemmQ8Ops;
struct QMatView;
}  // namespace detail

// The int4 GEMV (n = 1) has three forms that round differently (qmatmul.h).
enum class GemvForm { Dot, Scaled, Table };
struct GemvChoice {
  GemvForm form = GemvForm::Dot;
  bool pinned = false;  // set by WKVQ_GEMV (else chosen by the probe or the ISA)
};

// The int4 GEMM for more rows than the dot kernels take (prefill; qmatmul_q8.h).
enum class PrefillGemm { F32, Int8 };
struct PrefillGemmChoice {
  PrefillGemm form = PrefillGemm::F32;  // what a Prompt pass runs (GemmUse)
  bool pinned = false;                  // set by WKVQ_PREFILL_GEMM: then every pass runs `form`
};
// What auto picks for prompts where the CPU runs the int8 GEMM.
inline constexpr PrefillGemm kDefaultPrefillGemm = PrefillGemm::Int8;

// What a product of many rows is for, which picks its int4 GEMM unless WKVQ_PREFILL_GEMM pins one:
//  - Exact: f32 activations. Evaluation (ppl, KLD, logits, calibration statistics) and serve,
//    whose rows must equal what token-by-token decoding (n = 1, always f32) and a sequence run
//    alone give, up to rounding order: ppl's decode mode is one teacher-forced pass standing for
//    token-by-token decoding, and a serve step mixes prompt chunks with other sequences' decode
//    rows.
//  - Prompt: the table's int4_gemm.form (int8 activations where the CPU has AVX512_VNNI), for the
//    prompt of a session (generate, chat, bench): llama.cpp's trade, whose cost is measured in
//    README "Prefill" (prefill PPL within its stderr).
enum class GemmUse { Exact, Prompt };

// The int4 products of up to the dot kernels' row limit (decode; qmatmul_q8.h): f32 activations
// (the dot / scaled / table kernels) or int8 ones (the int8 GEMV, AVX2 or AVX512_VNNI). Int8
// changes the numbers (its cost is measured in KLD, README), so it is never chosen unasked.
enum class DecodeGemv { F32, Int8 };
struct DecodeGemvChoice {
  DecodeGemv form = DecodeGemv::F32;
  bool pinned = false;  // set by WKVQ_DECODE_GEMV
};
inline constexpr DecodeGemv kDefaultDecodeGemv = DecodeGemv::F32;

// The scores of 4-bit keys (kernels/kv_attend.h): f32 queries against the decoded codes
// (gqa_scores_int), or the queries rounded to int8 per group against the codes (gqa_scores_q8).
// Int8 changes the numbers (its KLD cost is in README), so it is never chosen unasked.
enum class KvScores { F32, Int8 };
struct KvScoresChoice {
  KvScores form = KvScores::F32;
  bool pinned = false;  // set by WKVQ_KV_SCORES
};

struct KernelTable {
  Isa isa = Isa::Reference;
  bool isa_pinned = false;       // by WKVQ_ISA
  GemvChoice int4_gemv;          // Dot for Isa::Reference
  PrefillGemmChoice int4_gemm;   // F32 unless asked for, or isa is Avx512 with AVX512_VNNI
  DecodeGemvChoice int4_decode;  // F32 unless asked for (AVX2, or Avx512 with AVX512_VNNI)
  KvScoresChoice kv_scores;      // F32 unless asked for
  // The ISA's kernels; null for Isa::Reference (the scalar references of matmul.h, qmatmul.h,
  // kv_quant.h run instead).
  const detail::MatmulOps* matmul = nullptr;
  const detail::QMatmulOps* qmatmul = nullptr;
  const detail::KvQuantOps* kv_quant = nullptr;
  const detail::KvAttendOps* kv_attend = nullptr;  // attention tiles (kernels/kv_attend.h)
  const detail::QGemmQ8Ops* qgemm_q8 = nullptr;    // set iff int4_gemm.form is Int8
  bool amx = false;  // qgemm_q8 runs on AMX tiles (WKVQ_AMX; same results as AVX512_VNNI)
  const detail::QGemmQ8Ops* qgemv_q8 = nullptr;  // set iff int4_decode.form is Int8
  // Whether a product for `use` with more rows than the dot kernels take runs the int8 GEMM: a
  // Prompt where the table has it; an Exact pass only when the environment asked for int8 (the
  // GEMM pinned, or the decode GEMV, whose results a teacher-forced pass must reproduce).
  bool int8_gemm_for(GemmUse use) const {
    return qgemm_q8 != nullptr &&
           (use == GemmUse::Prompt || int4_gemm.pinned || int4_decode.form == DecodeGemv::Int8);
  }
};

// Whether t's kernels read a quantized matrix's tile layout (QuantizedMatrix::tile_codes,
// tile_scales, tile_zeros; add_tile_layout) where it has one: the AVX512_VNNI int8 decode GEMV,
// which otherwise hands 4-bit W to the AVX2 GEMV and runs 8-bit W by rows. Inference code builds
// it then (model/linear.h, inference_matrix).
inline bool reads_tile_layout(const KernelTable& t) {
  return t.qgemv_q8 != nullptr && t.isa == Isa::Avx512;
}

// This process's table, resolved on the first call (thread-safe); throws wkvq::Error for a bad
// WKVQ_ISA / WKVQ_GEMV value, or one this CPU cannot run.
const KernelTable& kernel_table();
// The table of an explicit ISA (tests and benchmarks compare ISAs with it), with the process's
// int4 GEMV choice for AVX-512 (Dot for the others) and the f32 prefill GEMM. Throws wkvq::Error
// when this CPU does not support `isa`.
const KernelTable& kernel_table(Isa isa);
// kernel_table(isa) with the prefill GEMM `gemm`. Throws wkvq::Error when this CPU does not run
// it (Int8 needs isa Avx2, or Avx512 and AVX512_VNNI).
KernelTable kernel_table(Isa isa, PrefillGemm gemm);
// "dot", "scaled" or "table".
const char* gemv_form_name(GemvForm form);
// The chunked GEMV (n = 1) of t's int4 GEMV form: the scaled or table kernel (which returns false
// where it does not apply, for the dot kernel to run), or null for the dot form or an ISA without
// one.
using ChunkedGemv = bool (*)(const float* x, const detail::QMatView& w, float* y, int64_t o0,
                             int64_t o1);
ChunkedGemv chunked_gemv(const KernelTable& t);
// `t` with the int4 GEMV pinned to `form`; throws wkvq::Error for a chunked form (scaled, table)
// where t's ISA is not Avx512.
KernelTable with_gemv(KernelTable t, GemvForm form);
// `t` with the int8 GEMM on AMX tiles (amx) or AVX512_VNNI, where t runs it; throws wkvq::Error
// for amx where !amx_int8_usable().
KernelTable with_amx(KernelTable t, bool amx);
// kernel_table(isa, gemm) with the decode GEMV `gemv`. Throws wkvq::Error as above (Int8 needs
// isa Avx2, or Avx512 and AVX512_VNNI).
KernelTable kernel_table(Isa isa, PrefillGemm gemm, DecodeGemv gemv);

// (operation, kernel) pairs naming every entry of `t`, e.g. ("qmatmul_int4",
// "avx512: gemv scaled (probe), dot n<=64, packed 12x32").
std::vector<std::pair<std::string, std::string>> kernel_table_entries(const KernelTable& t);

// "isa avx512 (auto), int4 gemv scaled (probe), prefill gemm f32 (auto), decode gemv f32 (auto)"
// and the like: the table in one line.
std::string kernel_summary();
// kernel_table().int4_gemv.
GemvChoice int4_gemv_choice();

}  // namespace wkvq
