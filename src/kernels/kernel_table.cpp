// The kernel table: resolution (the one place WKVQ_ISA, WKVQ_GEMV, WKVQ_PREFILL_GEMM,
// WKVQ_DECODE_GEMV and WKVQ_AMX are read) and description.
#include "kernels/kernel_table.h"

#include <cstdlib>
#include <string>
#include <utility>

#include "core/error.h"
#include "kernels/kv_attend_impl.h"
#include "kernels/kv_quant_impl.h"
#include "kernels/matmul_impl.h"
#include "kernels/qmatmul_impl.h"

namespace wkvq {
namespace {

// WKVQ_ISA, or "" when unset.
std::string isa_env() {
  const char* env = std::getenv("WKVQ_ISA");
  return env == nullptr ? "" : env;
}

Isa resolve_isa(const std::string& env) {
  if (env.empty()) return widest_supported_isa();
  const Isa isa = parse_isa(env);
  WKVQ_REQUIRE(isa_supported(isa), "WKVQ_ISA=", env, ": this CPU does not support ", isa_name(isa),
               "; unset WKVQ_ISA or choose a supported one");
  return isa;
}

// What auto picks for `isa`'s int4 GEMV: the scaled form where FMAs on denormal operands are fast
// (timed once), else the table form on AVX-512 and the dot kernel on AVX2.
GemvForm auto_gemv(Isa isa) {
  if (isa == Isa::Reference) return GemvForm::Dot;
  if (detail::denormal_operands_are_fast()) return GemvForm::Scaled;
  return isa == Isa::Avx512 ? GemvForm::Table : GemvForm::Dot;
}

// Whether `isa` has the int4 GEMV `form` (dot: every ISA; scaled: AVX2 and AVX-512; table:
// AVX-512).
bool has_gemv(Isa isa, GemvForm form) {
  switch (form) {
    case GemvForm::Scaled:
      return isa != Isa::Reference;
    case GemvForm::Table:
      return isa == Isa::Avx512;
    case GemvForm::Dot:
      break;
  }
  return true;
}

GemvChoice resolve_gemv(Isa isa) {
  const char* env = std::getenv("WKVQ_GEMV");
  const std::string v = env == nullptr ? "" : env;
  if (v.empty() || v == "auto") return {auto_gemv(isa), false};
  WKVQ_REQUIRE(
      v == "scaled" || v == "table" || v == "dot", "WKVQ_GEMV=", v,
      ": expected scaled, table, dot or auto (the int4 GEMV of the AVX2 / AVX-512 kernels)");
  const GemvForm form = v == "scaled"  ? GemvForm::Scaled
                        : v == "table" ? GemvForm::Table
                                       : GemvForm::Dot;
  WKVQ_REQUIRE(has_gemv(isa, form), "WKVQ_GEMV=", v, " needs the ",
               form == GemvForm::Table ? "AVX-512" : "AVX2 or AVX-512",
               " kernels, but this process runs ", isa_name(isa),
               " (CPU or WKVQ_ISA); unset WKVQ_GEMV or use dot");
  return {form, true};
}

// Whether `isa`'s table has the int8-activation kernels (qmatmul_q8.h): the AVX2 ones, or the
// AVX-512 ones where the CPU has AVX512_VNNI.
bool int8_supported(Isa isa) {
  return isa == Isa::Avx2 || (isa == Isa::Avx512 && avx512_vnni_supported());
}

// "needs the AVX2 kernels, or ..." and what this process lacks, for the errors.
std::string int8_needs(Isa isa) {
  return std::string("needs the AVX2 kernels, or the AVX-512 kernels with AVX512_VNNI, but ") +
         "this process runs " + isa_name(isa) +
         (isa == Isa::Avx512 ? " on a CPU without AVX512_VNNI (WKVQ_ISA=avx2 runs the AVX2 ones)"
                             : "");
}

// One of the two int8-activation switches (WKVQ_PREFILL_GEMM, WKVQ_DECODE_GEMV = f32 | int8 |
// auto): {int8, pinned}; auto takes `auto_int8`. `what` names the product in the errors.
std::pair<bool, bool> resolve_int8_env(const char* var, Isa isa, bool auto_int8, const char* what) {
  const char* env = std::getenv(var);
  const std::string v = env == nullptr ? "" : env;
  if (v.empty() || v == "auto") return {auto_int8, false};
  WKVQ_REQUIRE(v == "f32" || v == "int8", var, "=", v, ": expected f32, int8 or auto (", what, ")");
  WKVQ_REQUIRE(v == "f32" || int8_supported(isa), var, "=int8 ", int8_needs(isa), "; unset ", var,
               " or use f32");
  return {v == "int8", true};
}

// Where auto gives prompts the int8 GEMM: wherever it runs (AVX2; AVX-512 with AVX512_VNNI). Its
// prefill PPL is within 0.2 stderr of the f32 GEMM's on both (README "Prefill GEMM with int8
// activations").
bool prefill_int8_by_default(Isa isa) { return int8_supported(isa); }

PrefillGemmChoice resolve_prefill_gemm(Isa isa) {
  const auto [int8, pinned] =
      resolve_int8_env("WKVQ_PREFILL_GEMM", isa,
                       kDefaultPrefillGemm == PrefillGemm::Int8 && prefill_int8_by_default(isa),
                       "the int4 GEMM of prefill");
  return {int8 ? PrefillGemm::Int8 : PrefillGemm::F32, pinned};
}

DecodeGemvChoice resolve_decode_gemv(Isa isa) {
  const auto [int8, pinned] = resolve_int8_env(
      "WKVQ_DECODE_GEMV", isa, kDefaultDecodeGemv == DecodeGemv::Int8 && int8_supported(isa),
      "the int4 GEMV of decode");
  return {int8 ? DecodeGemv::Int8 : DecodeGemv::F32, pinned};
}

KvScoresChoice resolve_kv_scores() {
  const char* env = std::getenv("WKVQ_KV_SCORES");
  const std::string v = env == nullptr ? "" : env;
  if (v.empty() || v == "auto") return {KvScores::F32, false};
  WKVQ_REQUIRE(v == "f32" || v == "int8", "WKVQ_KV_SCORES=", v,
               ": expected f32, int8 or auto (the attention scores of 4-bit keys)");
  return {v == "int8" ? KvScores::Int8 : KvScores::F32, true};
}

// An explicit table's int8 kernel (tests, benchmarks): only where the CPU runs it.
void require_int8(bool int8, Isa isa, const char* what) {
  WKVQ_REQUIRE(!int8 || int8_supported(isa), "kernels: the int8 ", what, " ", int8_needs(isa));
}

// The int8 kernels of `isa`'s table (int8_supported(isa)); the GEMM on AMX tiles with `amx`.
const detail::QGemmQ8Ops* int8_ops(Isa isa, bool amx) {
  if (isa == Isa::Avx2) return &detail::qgemm_q8_ops_avx2();
  return amx ? &detail::qgemm_q8_ops_amx() : &detail::qgemm_q8_ops_avx512vnni();
}

void set_decode_gemv(KernelTable& t, DecodeGemvChoice c) {
  t.int4_decode = c;
  t.qgemv_q8 = c.form == DecodeGemv::Int8 ? int8_ops(t.isa, false) : nullptr;
}

// WKVQ_AMX = on | off | auto: whether the int8 GEMM runs on AMX tiles (auto: where usable).
bool resolve_amx(Isa isa) {
  const char* env = std::getenv("WKVQ_AMX");
  const std::string v = env == nullptr ? "" : env;
  const bool usable = isa == Isa::Avx512 && amx_int8_usable();
  if (v.empty() || v == "auto") return usable;
  WKVQ_REQUIRE(v == "on" || v == "off", "WKVQ_AMX=", v, ": expected on, off or auto (the int8 ",
               "GEMM on AMX tiles)");
  WKVQ_REQUIRE(v == "off" || usable, "WKVQ_AMX=on needs the AVX-512 kernels and AMX-INT8 granted ",
               "by the OS, but this process runs ", isa_name(isa),
               amx_int8_usable() ? "" : " without usable AMX-INT8", "; unset WKVQ_AMX or use off");
  return v == "on";
}

void set_prefill_gemm(KernelTable& t, PrefillGemmChoice c) {
  t.int4_gemm = c;
  t.qgemm_q8 = c.form == PrefillGemm::Int8 ? int8_ops(t.isa, t.amx) : nullptr;
}

// The ISA's kernels, without the process-dependent fields.
KernelTable table_of(Isa isa) {
  KernelTable t;
  t.isa = isa;
  if (isa == Isa::Avx2) {
    t.matmul = &detail::matmul_ops_avx2();
    t.qmatmul = &detail::qmatmul_ops_avx2();
    t.kv_quant = &detail::kv_quant_ops_avx2();
    t.kv_attend = &detail::kv_attend_ops_avx2();
  } else if (isa == Isa::Avx512) {
    t.matmul = &detail::matmul_ops_avx512();
    t.qmatmul = &detail::qmatmul_ops_avx512();
    t.kv_quant = &detail::kv_quant_ops_avx512();
    t.kv_attend = &detail::kv_attend_ops_avx512();
  }
  return t;
}

KernelTable resolve() {
  const std::string env = isa_env();
  KernelTable t = table_of(resolve_isa(env));
  t.isa_pinned = !env.empty();
  t.int4_gemv = resolve_gemv(t.isa);
  t.amx = resolve_amx(t.isa);
  set_prefill_gemm(t, resolve_prefill_gemm(t.isa));
  set_decode_gemv(t, resolve_decode_gemv(t.isa));
  t.kv_scores = resolve_kv_scores();
  return t;
}

std::string blocking_name(int64_t mr, int64_t nr) {
  return std::to_string(mr) + "x" + std::to_string(nr);
}

}  // namespace

const KernelTable& kernel_table() {
  static const KernelTable table = resolve();
  return table;
}

const KernelTable& kernel_table(Isa isa) {
  WKVQ_REQUIRE(isa_supported(isa), "kernels: ISA ", isa_name(isa), " is not supported by this CPU");
  switch (isa) {
    case Isa::Reference: {
      static const KernelTable t = table_of(Isa::Reference);
      return t;
    }
    case Isa::Avx2: {
      static const KernelTable t = [] {
        KernelTable a = table_of(Isa::Avx2);
        // The process's choice where it runs AVX2, else what auto picks for AVX2.
        const GemvChoice process = kernel_table().int4_gemv;
        a.int4_gemv = kernel_table().isa == Isa::Avx2 ? process : GemvChoice{auto_gemv(Isa::Avx2)};
        return a;
      }();
      return t;
    }
    case Isa::Avx512:
      break;
  }
  static const KernelTable avx512 = [] {
    KernelTable t = table_of(Isa::Avx512);
    // The process's choice (where it runs AVX2 or the reference, a form AVX-512 has too).
    t.int4_gemv = kernel_table().int4_gemv;
    return t;
  }();
  return avx512;
}

const char* gemv_form_name(GemvForm form) {
  switch (form) {
    case GemvForm::Scaled:
      return "scaled";
    case GemvForm::Table:
      return "table";
    case GemvForm::Dot:
      break;
  }
  return "dot";
}

ChunkedGemv chunked_gemv(const KernelTable& t) {
  if (t.qmatmul == nullptr) return nullptr;
  switch (t.int4_gemv.form) {
    case GemvForm::Scaled:
      return t.qmatmul->scaled_gemv;
    case GemvForm::Table:
      return t.qmatmul->table_gemv;
    case GemvForm::Dot:
      break;
  }
  return nullptr;
}

KernelTable with_gemv(KernelTable t, GemvForm form) {
  WKVQ_REQUIRE(has_gemv(t.isa, form), "kernels: the ", gemv_form_name(form),
               " int4 GEMV needs the ", form == GemvForm::Table ? "AVX-512" : "AVX2 or AVX-512",
               " kernels, not ", isa_name(t.isa));
  t.int4_gemv = {form, true};
  return t;
}

KernelTable with_amx(KernelTable t, bool amx) {
  WKVQ_REQUIRE(!amx || (t.isa == Isa::Avx512 && amx_int8_usable()), "kernels: the AMX int8 GEMM ",
               "needs the AVX-512 kernels and AMX-INT8 granted by the OS, not available with ",
               isa_name(t.isa), " here");
  t.amx = amx;
  set_prefill_gemm(t, t.int4_gemm);
  return t;
}

KernelTable kernel_table(Isa isa, PrefillGemm gemm) {
  KernelTable t = kernel_table(isa);
  t.amx = isa == Isa::Avx512 && kernel_table().amx;  // the process's choice
  require_int8(gemm == PrefillGemm::Int8, isa, "prefill GEMM");
  set_prefill_gemm(t, {gemm, true});
  return t;
}

KernelTable kernel_table(Isa isa, PrefillGemm gemm, DecodeGemv gemv) {
  KernelTable t = kernel_table(isa, gemm);
  require_int8(gemv == DecodeGemv::Int8, isa, "decode GEMV");
  set_decode_gemv(t, {gemv, true});
  return t;
}

Isa best_isa() { return kernel_table().isa; }

GemvChoice int4_gemv_choice() { return kernel_table().int4_gemv; }

std::vector<std::pair<std::string, std::string>> kernel_table_entries(const KernelTable& t) {
  const std::string isa = isa_name(t.isa);
  std::vector<std::pair<std::string, std::string>> e;
  if (t.matmul == nullptr) {
    e.emplace_back("matmul_f32_f16", "reference");
  } else {
    const detail::MatmulOps& m = *t.matmul;
    e.emplace_back("matmul_f32_f16", isa + ": dot n<=" + std::to_string(m.dot_max_rows) +
                                         ", packed " + blocking_name(m.blocking.mr, m.blocking.nr));
  }
  if (t.qmatmul == nullptr) {
    e.emplace_back("qmatmul_int4", "reference");
    e.emplace_back("qmatmul_int4_decode", "reference");
    e.emplace_back("qmatmul_int8", "reference");
    e.emplace_back("qmatmul_int4_prefill", "reference");
  } else {
    const detail::QMatmulOps& q = *t.qmatmul;
    const std::string rest = "dot n<=" + std::to_string(q.dot_max_rows) + ", packed " +
                             blocking_name(q.blocking.mr, q.blocking.nr);
    const std::string gemv = chunked_gemv(t) != nullptr
                                 ? "gemv " + std::string(gemv_form_name(t.int4_gemv.form)) + ", "
                                 : "";
    e.emplace_back("qmatmul_int4", isa + ": " + gemv + rest);
    const std::string int8_name =
        t.isa == Isa::Avx2 ? "avx2: int8 activations" : "avx512_vnni: int8 activations";
    const std::string int8 = int8_name + ", ";
    e.emplace_back("qmatmul_int4_decode", t.qgemv_q8 != nullptr
                                              ? int8 + "gemv n<=" + std::to_string(q.dot_max_rows) +
                                                    " (groups of 128k columns; others f32)"
                                              : isa + ": f32 activations (as qmatmul_int4)");
    e.emplace_back("qmatmul_int8",
                   isa + ": " + rest +
                       (t.qgemv_q8 != nullptr ? "; gemv n<=" + std::to_string(q.dot_max_rows) +
                                                    " " + int8_name + " (groups of 128k columns)"
                                              : ""));
    const std::string gemm = t.amx                ? "amx: int8 activations, tiles "
                             : t.isa == Isa::Avx2 ? int8 + "gemv tiles in chunks of "
                                                  : int8 + "packed ";
    e.emplace_back(
        "qmatmul_int4_prefill",
        t.qgemm_q8 != nullptr
            ? gemm +
                  (t.isa == Isa::Avx2
                       ? std::to_string(t.qgemm_q8->blocking.nr) + " rows"
                       : blocking_name(t.qgemm_q8->blocking.mr, t.qgemm_q8->blocking.nr)) +
                  " (groups of 128k columns; others f32)" +
                  (t.int8_gemm_for(GemmUse::Exact) ? "" : "; prompts only, evaluation f32")
            : isa + ": f32 activations (as qmatmul_int4)");
  }
  e.emplace_back("qmatmul_other", "reference (bits 2, 3 or groups off 32-column blocks)");
  for (const char* bits : {"2", "3", "4", "8"}) {  // per KV format: store, dot, axpy
    e.emplace_back(std::string("kv_quant_int") + bits, t.kv_quant == nullptr ? "reference" : isa);
  }
  const std::string attend_isa = t.kv_attend == nullptr ? "reference" : isa;
  e.emplace_back("kv_scores_int4",
                 attend_isa + (t.kv_scores.form == KvScores::F32
                                   ? ": f32 queries against the decoded codes (as kv_attend)"
                                   : ": int8 queries against the codes" +
                                         std::string(t.kv_attend == nullptr
                                                         ? ""
                                                         : " (groups of 32k channels; others "
                                                           "reference)")));
  e.emplace_back("kv_attend", t.kv_attend == nullptr
                                  ? "reference"
                                  : isa +
                                        ": GQA tiles; decode fp16, int2/int3/int4/int8 with groups "
                                        "inside heads (groups across heads: reference decode)");
  return e;
}

std::string kernel_summary() {
  const KernelTable& t = kernel_table();
  const GemvChoice g = t.int4_gemv;
  const PrefillGemmChoice p = t.int4_gemm;
  const DecodeGemvChoice dg = t.int4_decode;
  return std::string("isa ") + isa_name(t.isa) + (t.isa_pinned ? " (WKVQ_ISA)" : " (auto)") +
         ", int4 gemv " + gemv_form_name(g.form) +
         (g.pinned               ? " (WKVQ_GEMV)"
          : t.isa == Isa::Avx512 ? " (probe)"
                                 : " (isa)") +
         ", prefill gemm " +
         (p.pinned ? std::string(p.form == PrefillGemm::Int8 ? "int8" : "f32") +
                         " (--prefill-gemm / WKVQ_PREFILL_GEMM)"
          : !t.int8_gemm_for(GemmUse::Exact) && p.form == PrefillGemm::Int8
              ? std::string("int8 prompts, f32 evaluation (auto)")
              : std::string(p.form == PrefillGemm::Int8 ? "int8" : "f32") + " (auto)") +
         ", decode gemv " + (dg.form == DecodeGemv::Int8 ? "int8" : "f32") +
         (dg.pinned ? " (--decode-gemv / WKVQ_DECODE_GEMV)" : " (auto)") + ", kv scores " +
         (t.kv_scores.form == KvScores::Int8 ? "int8" : "f32") +
         (t.kv_scores.pinned ? " (--kv-scores / WKVQ_KV_SCORES)" : " (auto)") +
         (t.amx ? ", int8 gemm on amx" : "");
}

}  // namespace wkvq
