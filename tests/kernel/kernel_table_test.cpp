// The kernel table (kernels/kernel_table.h): resolved once, one table per ISA naming that ISA's
// kernels, the reference table holding none, and a description of every operation.
#include "kernels/kernel_table.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "core/error.h"
#include "kernels/isa.h"
#include "kernels/qmatmul_impl.h"

namespace wkvq {
namespace {

const Isa kAllIsas[] = {Isa::Reference, Isa::Avx2, Isa::Avx512};

// The kernel kernel_table_entries(t) names for `op` ("" when it names none).
std::string kernel_of(const KernelTable& t, const std::string& op) {
  for (const auto& [o, kernel] : kernel_table_entries(t)) {
    if (o == op) return kernel;
  }
  return "";
}

TEST(KernelTable, ProcessTableIsResolvedOnceAndIsItsIsasTable) {
  const KernelTable& t = kernel_table();
  EXPECT_EQ(&t, &kernel_table());
  EXPECT_EQ(t.isa, best_isa());
  EXPECT_TRUE(isa_supported(t.isa));
  const KernelTable& same = kernel_table(t.isa);
  EXPECT_EQ(t.matmul, same.matmul);
  EXPECT_EQ(t.qmatmul, same.qmatmul);
  EXPECT_EQ(t.kv_quant, same.kv_quant);
  EXPECT_EQ(t.kv_attend, same.kv_attend);
  const char* env = std::getenv("WKVQ_ISA");
  EXPECT_EQ(t.isa_pinned, env != nullptr && *env != '\0');
  if (t.isa_pinned) {
    EXPECT_EQ(t.isa, parse_isa(env));
  } else {
    EXPECT_EQ(t.isa, widest_supported_isa());
  }
}

TEST(KernelTable, ReferenceTableRunsTheReferences) {
  const KernelTable& t = kernel_table(Isa::Reference);
  EXPECT_EQ(t.matmul, nullptr);
  EXPECT_EQ(t.qmatmul, nullptr);
  EXPECT_EQ(t.kv_quant, nullptr);
  EXPECT_EQ(t.kv_attend, nullptr);
  for (const auto& [op, kernel] : kernel_table_entries(t)) {
    EXPECT_EQ(kernel.rfind("reference", 0), 0u) << op << ": " << kernel;
  }
}

TEST(KernelTable, EachIsaTableHoldsAndNamesItsOwnKernels) {
  const std::set<std::string> ops = {
      "matmul_f32_f16", "qmatmul_int4",         "qmatmul_int8",        "qmatmul_other",
      "kv_quant_int2",  "kv_quant_int3",        "kv_quant_int4",       "kv_quant_int8",
      "kv_attend",      "qmatmul_int4_prefill", "qmatmul_int4_decode", "kv_scores_int4"};
  int simd_tables = 0;
  for (const Isa isa : kAllIsas) {
    if (!isa_supported(isa)) {
      EXPECT_THROW(kernel_table(isa), Error) << isa_name(isa);
      continue;
    }
    const KernelTable& t = kernel_table(isa);
    EXPECT_EQ(t.isa, isa);
    std::set<std::string> seen;
    for (const auto& [op, kernel] : kernel_table_entries(t)) {
      EXPECT_TRUE(seen.insert(op).second) << "operation listed twice: " << op;
      const bool simd = isa != Isa::Reference && op != "qmatmul_other";
      const std::string expected = simd ? isa_name(isa) : "reference";
      EXPECT_EQ(kernel.rfind(expected, 0), 0u) << isa_name(isa) << " " << op << ": " << kernel;
    }
    EXPECT_EQ(seen, ops);
    if (isa == Isa::Reference) continue;
    ++simd_tables;
    ASSERT_NE(t.matmul, nullptr);
    ASSERT_NE(t.qmatmul, nullptr);
    ASSERT_NE(t.kv_quant, nullptr);
    ASSERT_NE(t.kv_attend, nullptr);
    for (const Isa other : kAllIsas) {  // distinct kernels per ISA
      if (other == isa || other == Isa::Reference || !isa_supported(other)) continue;
      EXPECT_NE(t.matmul, kernel_table(other).matmul);
      EXPECT_NE(t.qmatmul, kernel_table(other).qmatmul);
      EXPECT_NE(t.kv_quant, kernel_table(other).kv_quant);
      EXPECT_NE(t.kv_attend, kernel_table(other).kv_attend);
    }
  }
  EXPECT_EQ(simd_tables, (isa_supported(Isa::Avx2) ? 1 : 0) + (isa_supported(Isa::Avx512) ? 1 : 0));
}

// The int8 prefill GEMM: with the AVX2 kernels, or the AVX-512 ones on a CPU with AVX512_VNNI, an
// error otherwise (the reference; AVX-512 without VNNI); kernel_table(isa) itself keeps the f32
// one.
TEST(KernelTable, Int8PrefillGemmOnlyWhereTheCpuRunsIt) {
  for (const Isa isa : kAllIsas) {
    if (!isa_supported(isa)) continue;
    EXPECT_EQ(kernel_table(isa).int4_gemm.form, PrefillGemm::F32) << isa_name(isa);
    EXPECT_EQ(kernel_table(isa).qgemm_q8, nullptr) << isa_name(isa);
    EXPECT_EQ(kernel_table(isa, PrefillGemm::F32).qgemm_q8, nullptr) << isa_name(isa);
    if (isa == Isa::Reference || (isa == Isa::Avx512 && !avx512_vnni_supported())) {
      EXPECT_THROW(kernel_table(isa, PrefillGemm::Int8), Error) << isa_name(isa);
      continue;
    }
    const KernelTable t = with_amx(kernel_table(isa, PrefillGemm::Int8), false);
    EXPECT_NE(t.qgemm_q8, nullptr);
    const char* want = isa == Isa::Avx2 ? "avx2: int8" : "avx512_vnni: int8";
    EXPECT_EQ(kernel_of(t, "qmatmul_int4_prefill").rfind(want, 0), 0u)
        << kernel_of(t, "qmatmul_int4_prefill");
  }
  const KernelTable& p = kernel_table();
  EXPECT_EQ(p.qgemm_q8 != nullptr, p.int4_gemm.form == PrefillGemm::Int8);
}

// The int8 decode GEMV: likewise only where those kernels run, never chosen unasked.
TEST(KernelTable, Int8DecodeGemvOnlyWhereTheCpuRunsItAndOnlyWhenAsked) {
  for (const Isa isa : kAllIsas) {
    if (!isa_supported(isa)) continue;
    EXPECT_EQ(kernel_table(isa).int4_decode.form, DecodeGemv::F32) << isa_name(isa);
    EXPECT_EQ(kernel_table(isa).qgemv_q8, nullptr) << isa_name(isa);
    EXPECT_EQ(kernel_table(isa, PrefillGemm::F32, DecodeGemv::F32).qgemv_q8, nullptr);
    if (isa == Isa::Reference || (isa == Isa::Avx512 && !avx512_vnni_supported())) {
      EXPECT_THROW(kernel_table(isa, PrefillGemm::F32, DecodeGemv::Int8), Error) << isa_name(isa);
      continue;
    }
    const KernelTable t = kernel_table(isa, PrefillGemm::F32, DecodeGemv::Int8);
    EXPECT_NE(t.qgemv_q8, nullptr);
    EXPECT_EQ(t.qgemm_q8, nullptr);  // the two choices are independent
    const char* want = isa == Isa::Avx2 ? "avx2: int8" : "avx512_vnni: int8";
    EXPECT_EQ(kernel_of(t, "qmatmul_int4_decode").rfind(want, 0), 0u)
        << kernel_of(t, "qmatmul_int4_decode");
    // 8-bit weights (the q8 head) take the int8 GEMV of the same ISA (QGemmQ8Ops::gemv8)
    EXPECT_NE(t.qgemv_q8->gemv8, nullptr);
    EXPECT_NE(kernel_of(t, "qmatmul_int8").find(want), std::string::npos)
        << kernel_of(t, "qmatmul_int8");
    EXPECT_EQ(kernel_of(kernel_table(isa), "qmatmul_int8").find("int8 activations"),
              std::string::npos);
  }
  const KernelTable& p = kernel_table();
  EXPECT_EQ(p.qgemv_q8 != nullptr, p.int4_decode.form == DecodeGemv::Int8);
  EXPECT_TRUE(p.int4_decode.form == DecodeGemv::F32 || p.int4_decode.pinned)
      << "the int8 decode GEMV runs only when WKVQ_DECODE_GEMV asks for it";
}

// The int8 GEMM on AMX tiles: only where AMX-INT8 is usable (else with_amx refuses it); the
// process takes it unless WKVQ_AMX=off; same entry points as the VNNI GEMM otherwise.
TEST(KernelTable, AmxInt8GemmOnlyWhereUsable) {
  const KernelTable& p = kernel_table();
  const char* env = std::getenv("WKVQ_AMX");
  const bool off = env != nullptr && std::string(env) == "off";
  EXPECT_EQ(p.amx, p.isa == Isa::Avx512 && amx_int8_usable() && !off);
  if (!isa_supported(Isa::Avx512) || !avx512_vnni_supported()) return;
  const KernelTable t = kernel_table(Isa::Avx512, PrefillGemm::Int8);
  if (!amx_int8_usable()) {
    EXPECT_THROW(with_amx(t, true), Error);
    return;
  }
  const KernelTable a = with_amx(t, true);
  EXPECT_TRUE(a.amx);
  EXPECT_EQ(kernel_of(a, "qmatmul_int4_prefill").rfind("amx: int8", 0), 0u)
      << kernel_of(a, "qmatmul_int4_prefill");
  EXPECT_NE(a.qgemm_q8, with_amx(t, false).qgemm_q8);
  EXPECT_EQ(with_amx(kernel_table(Isa::Avx512, PrefillGemm::F32), true).qgemm_q8, nullptr)
      << "AMX only changes how the int8 GEMM runs, not whether it does";
}

// The int4 GEMV forms exist where the ISA has their kernels (dot everywhere, scaled on AVX2 and
// AVX-512, table on AVX-512); asking for one elsewhere is an error naming what it needs.
TEST(KernelTable, GemvFormsExistWhereTheIsaHasThem) {
  EXPECT_THROW(with_gemv(kernel_table(Isa::Reference), GemvForm::Scaled), Error);
  EXPECT_EQ(with_gemv(kernel_table(Isa::Reference), GemvForm::Dot).int4_gemv.form, GemvForm::Dot);
  if (!isa_supported(Isa::Avx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  const KernelTable& avx2 = kernel_table(Isa::Avx2);
  EXPECT_NE(chunked_gemv(with_gemv(avx2, GemvForm::Scaled)), nullptr);
  EXPECT_EQ(chunked_gemv(with_gemv(avx2, GemvForm::Dot)), nullptr);
  try {
    with_gemv(avx2, GemvForm::Table);
    ADD_FAILURE() << "the table GEMV on AVX2 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("AVX-512"), std::string::npos) << e.what();
  }
}

TEST(KernelTable, SummaryNamesTheIsaAndTheGemvForm) {
  const KernelTable& t = kernel_table();
  const std::string s = kernel_summary();
  EXPECT_NE(s.find(std::string("isa ") + isa_name(t.isa)), std::string::npos) << s;
  EXPECT_NE(s.find(std::string("gemv ") + gemv_form_name(t.int4_gemv.form)), std::string::npos)
      << s;
  if (t.isa == Isa::Reference) {
    EXPECT_EQ(t.int4_gemv.form, GemvForm::Dot);
  } else if (!t.int4_gemv.pinned) {  // the probe picks the scaled form or the ISA's other one
    const GemvForm other = t.isa == Isa::Avx512 ? GemvForm::Table : GemvForm::Dot;
    EXPECT_EQ(t.int4_gemv.form, detail::denormal_operands_are_fast() ? GemvForm::Scaled : other);
  }
  EXPECT_NE(
      s.find(t.int4_gemm.form == PrefillGemm::Int8 ? "prefill gemm int8" : "prefill gemm f32"),
      std::string::npos)
      << s;
  EXPECT_NE(s.find(t.int4_decode.form == DecodeGemv::Int8 ? "decode gemv int8" : "decode gemv f32"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find(t.kv_scores.form == KvScores::Int8 ? "kv scores int8" : "kv scores f32"),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace wkvq
