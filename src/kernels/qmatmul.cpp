// Quantized matmul: the reference (the definition), ISA selection, the split of the work over
// threads and the per-thread scratch. The SIMD kernels live in qmatmul_avx2.cpp / _avx512.cpp.
#include "kernels/qmatmul.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/work_split.h"

namespace wkvq {
namespace {

// Reference block: each W row dequantized (dequantize_row_ref), then a sequential f32 sum per
// output. No FMA: baseline x86-64 has none.
void reference_block(const float* x, const QuantizedMatrix& w, float* y, detail::QBlock b) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t o = b.o0; o < b.o1; ++o) {
    dequantize_row_ref(w, o, row.data());
    for (int64_t i = b.i0; i < b.i1; ++i) {
      const float* xi = x + i * w.cols;
      float s = 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) s += xi[k] * row[static_cast<size_t>(k)];
      y[i * w.rows + o] = s;
    }
  }
}

detail::QMatView view_of(const QuantizedMatrix& w) {
  return detail::QMatView{w.codes.data(), w.scales.data(), w.zeros.data(), w.rows, w.cols,
                          w.group,        w.n_groups,      w.row_bytes,    w.bits};
}

GemvChoice read_gemv_choice() {
  const char* env = std::getenv("WKVQ_GEMV");
  const std::string v = env == nullptr ? "" : env;
  const bool avx512 = best_isa() == Isa::Avx512;
  if (v.empty() || v == "auto") {
    return {avx512 && detail::denormal_operands_are_fast() ? GemvForm::Scaled : GemvForm::Dot,
            false};
  }
  WKVQ_REQUIRE(v == "scaled" || v == "dot", "WKVQ_GEMV=", v,
               ": expected scaled, dot or auto (the int4 GEMV of the AVX-512 kernels)");
  WKVQ_REQUIRE(v == "dot" || avx512,
               "WKVQ_GEMV=scaled needs the AVX-512 kernels, but this process ", "runs ",
               isa_name(best_isa()), " (CPU or WKVQ_ISA); unset WKVQ_GEMV or use dot");
  return {v == "scaled" ? GemvForm::Scaled : GemvForm::Dot, true};
}

}  // namespace

GemvChoice int4_gemv_choice() {
  static const GemvChoice choice = read_gemv_choice();
  return choice;
}

std::string kernel_summary() {
  const char* isa_env = std::getenv("WKVQ_ISA");
  const bool isa_pinned = isa_env != nullptr && *isa_env != '\0';
  const GemvChoice g = int4_gemv_choice();
  const bool avx512 = best_isa() == Isa::Avx512;
  return std::string("isa ") + isa_name(best_isa()) + (isa_pinned ? " (WKVQ_ISA)" : " (auto)") +
         ", int4 gemv " + (g.form == GemvForm::Scaled ? "scaled" : "dot") +
         (g.pinned ? " (WKVQ_GEMV)"
          : avx512 ? " (probe)"
                   : " (isa)");
}

bool qmatmul_has_simd(Isa isa, const QuantizedMatrix& w) {
  return isa != Isa::Reference && (w.bits == 4 || w.bits == 8) &&
         (w.n_groups == 1 || w.group % detail::kQBlockCols == 0);
}

void qmatmul(const float* x, int64_t n, const QuantizedMatrix& w, float* y) {
  qmatmul(best_isa(), x, n, w, y);
}

void qmatmul(Isa isa, const float* x, int64_t n, const QuantizedMatrix& w, float* y) {
  WKVQ_REQUIRE(n >= 0, "qmatmul: negative row count ", n);
  WKVQ_REQUIRE(isa_supported(isa), "qmatmul: ISA ", isa_name(isa), " is not supported by this CPU");
  if (n == 0 || w.rows == 0) return;
  WKVQ_REQUIRE(x != nullptr && y != nullptr, "qmatmul: null pointer for a non-empty product");
  WKVQ_ASSERT(w.codes.size() == static_cast<size_t>(w.rows * w.row_bytes) &&
              w.scales.size() == static_cast<size_t>(w.rows * w.n_groups));

  const bool simd = qmatmul_has_simd(isa, w);
  const bool scaled = isa == Isa::Avx512 && simd && int4_gemv_choice().form == GemvForm::Scaled;
  const bool dot =
      simd && n <= (isa == Isa::Avx512 ? detail::kQDotMaxRowsAvx512 : detail::kQDotMaxRowsAvx2);
  const detail::QGemmBlocking& blocking =
      isa == Isa::Avx512 ? detail::kQAvx512Blocking : detail::kQAvx2Blocking;
  const WorkSplit s = !simd ? split_work(n, w.cols, w.rows, n, 1)
                      : dot ? split_work(n, w.cols, w.rows, n, detail::kQDotRowAlign)
                            : split_work(n, w.cols, w.rows, blocking.mr, blocking.nr);
  const detail::QMatView view = view_of(w);
  parallel_for(s.tasks(), 1, [&](int64_t begin, int64_t end) {
    float* pack = (simd && !dot) ? thread_pack_buffer(detail::qpack_floats(blocking)) : nullptr;
    for (int64_t t = begin; t < end; ++t) {
      const WorkBlock wb = s.block(t, n, w.rows);
      const detail::QBlock b{wb.i0, wb.i1, wb.o0, wb.o1};
      if (!simd) {
        reference_block(x, w, y, b);
      } else if (isa == Isa::Avx512) {
        dot ? detail::qmatmul_dot_avx512(x, view, y, w.rows, b, scaled)
            : detail::qmatmul_packed_avx512(x, view, y, w.rows, b, pack);
      } else {
        dot ? detail::qmatmul_dot_avx2(x, view, y, w.rows, b)
            : detail::qmatmul_packed_avx2(x, view, y, w.rows, b, pack);
      }
    }
  });
}

}  // namespace wkvq
