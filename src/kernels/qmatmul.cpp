// Quantized matmul: the reference (the definition), the split of the work over threads and the
// per-thread scratch. The SIMD kernels come from the kernel table (kernels/kernel_table.h,
// qmatmul_avx2.cpp / qmatmul_avx512.cpp).
#include "kernels/qmatmul.h"

#include <algorithm>
#include <memory>
#include <new>
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

void qmatmul_with(const KernelTable& table, const float* x, int64_t n, const QuantizedMatrix& w,
                  float* y) {
  WKVQ_REQUIRE(n >= 0, "qmatmul: negative row count ", n);
  if (n == 0 || w.rows == 0) return;
  WKVQ_REQUIRE(x != nullptr && y != nullptr, "qmatmul: null pointer for a non-empty product");
  WKVQ_ASSERT(w.codes.size() == static_cast<size_t>(w.rows * w.row_bytes) &&
              w.scales.size() == static_cast<size_t>(w.rows * w.n_groups));

  const detail::QMatmulOps* ops = qmatmul_has_simd(table.isa, w) ? table.qmatmul : nullptr;
  if (ops == nullptr) {  // the reference
    const WorkSplit s = split_work(n, w.cols, w.rows, n, 1);
    parallel_for(s.tasks(), 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const WorkBlock wb = s.block(t, n, w.rows);
        reference_block(x, w, y, detail::QBlock{wb.i0, wb.i1, wb.o0, wb.o1});
      }
    });
    return;
  }
  const auto gemv = n == 1 && table.int4_gemv.form == GemvForm::Scaled ? ops->scaled_gemv : nullptr;
  const bool dot = n <= ops->dot_max_rows;
  const detail::QGemmBlocking& blocking = ops->blocking;
  const WorkSplit s = dot ? split_work(n, w.cols, w.rows, n, detail::kQDotRowAlign)
                          : split_work(n, w.cols, w.rows, blocking.mr, blocking.nr);
  const detail::QMatView view = view_of(w);
  parallel_for(s.tasks(), 1, [&](int64_t begin, int64_t end) {
    float* pack = dot ? nullptr : thread_pack_buffer(detail::qpack_floats(blocking));
    for (int64_t t = begin; t < end; ++t) {
      const WorkBlock wb = s.block(t, n, w.rows);
      const detail::QBlock b{wb.i0, wb.i1, wb.o0, wb.o1};
      if (gemv != nullptr && gemv(x, view, y, b.o0, b.o1)) continue;
      if (dot) {
        ops->dot(x, view, y, w.rows, b);
      } else {
        ops->packed(x, view, y, w.rows, b, pack);
      }
    }
  });
}

}  // namespace

bool qmatmul_has_simd(Isa isa, const QuantizedMatrix& w) {
  return isa != Isa::Reference && (w.bits == 4 || w.bits == 8) &&
         (w.n_groups == 1 || w.group % detail::kQBlockCols == 0);
}

void qmatmul(const float* x, int64_t n, const QuantizedMatrix& w, float* y) {
  qmatmul_with(kernel_table(), x, n, w, y);
}

void qmatmul(Isa isa, const float* x, int64_t n, const QuantizedMatrix& w, float* y) {
  qmatmul_with(kernel_table(isa), x, n, w, y);
}

}  // namespace wkvq
