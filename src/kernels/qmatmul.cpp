// Quantized matmul: the reference (the definition), ISA selection, the split of the work over
// threads and the per-thread scratch. The SIMD kernels live in qmatmul_avx2.cpp / _avx512.cpp.
#include "kernels/qmatmul.h"

#include <algorithm>
#include <memory>
#include <new>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/qmatmul_impl.h"

namespace wkvq {
namespace {

// Below this many multiply-adds a product runs on the calling thread (a fork/join of the OpenMP
// team costs a few microseconds).
constexpr int64_t kMinParallelMacs = int64_t{1} << 18;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

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

struct Split {
  int64_t n_grain, out_grain;
  int64_t n_parts, out_parts;
};

// Splits W's rows (units of out_align) over the threads; x's rows (units of n_align) only when W
// has too few row units to keep every thread busy.
Split split_work(int64_t n, int64_t in, int64_t out, int64_t n_align, int64_t out_align) {
  int threads = num_threads();
  if (n * in * out < kMinParallelMacs) threads = 1;
  const int64_t out_parts = std::min<int64_t>(threads, ceil_div(out, out_align));
  const int64_t n_parts =
      std::max<int64_t>(1, std::min<int64_t>(threads / out_parts, ceil_div(n, n_align)));
  Split s{};
  s.out_grain = round_up(ceil_div(out, out_parts), out_align);
  s.n_grain = round_up(ceil_div(n, n_parts), n_align);
  s.out_parts = ceil_div(out, s.out_grain);
  s.n_parts = ceil_div(n, s.n_grain);
  return s;
}

// One thread's packing scratch, 64-byte aligned, kept for the thread's lifetime (the OpenMP team
// persists), so a GEMM allocates nothing after the first call on a thread.
float* thread_pack_buffer(int64_t count) {
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  thread_local std::unique_ptr<float[], Free> buffer;
  thread_local int64_t capacity = 0;
  if (capacity < count) {
    buffer.reset(static_cast<float*>(
        ::operator new[](static_cast<size_t>(count) * sizeof(float), std::align_val_t{64})));
    capacity = count;
  }
  return buffer.get();
}

detail::QMatView view_of(const QuantizedMatrix& w) {
  return detail::QMatView{w.codes.data(), w.scales.data(), w.zeros.data(), w.rows, w.cols,
                          w.group,        w.n_groups,      w.row_bytes,    w.bits};
}

}  // namespace

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
  const bool dot =
      simd && n <= (isa == Isa::Avx512 ? detail::kQDotMaxRowsAvx512 : detail::kQDotMaxRowsAvx2);
  const detail::QGemmBlocking& blocking =
      isa == Isa::Avx512 ? detail::kQAvx512Blocking : detail::kQAvx2Blocking;
  const Split s = !simd ? split_work(n, w.cols, w.rows, n, 1)
                  : dot ? split_work(n, w.cols, w.rows, n, detail::kQDotRowAlign)
                        : split_work(n, w.cols, w.rows, blocking.mr, blocking.nr);
  const detail::QMatView view = view_of(w);
  parallel_for(s.n_parts * s.out_parts, 1, [&](int64_t begin, int64_t end) {
    float* pack = (simd && !dot) ? thread_pack_buffer(detail::qpack_floats(blocking)) : nullptr;
    for (int64_t t = begin; t < end; ++t) {
      detail::QBlock b{};
      b.i0 = (t / s.out_parts) * s.n_grain;
      b.i1 = std::min(n, b.i0 + s.n_grain);
      b.o0 = (t % s.out_parts) * s.out_grain;
      b.o1 = std::min(w.rows, b.o0 + s.out_grain);
      if (!simd) {
        reference_block(x, w, y, b);
      } else if (isa == Isa::Avx512) {
        dot ? detail::qmatmul_dot_avx512(x, view, y, w.rows, b)
            : detail::qmatmul_packed_avx512(x, view, y, w.rows, b, pack);
      } else {
        dot ? detail::qmatmul_dot_avx2(x, view, y, w.rows, b)
            : detail::qmatmul_packed_avx2(x, view, y, w.rows, b, pack);
      }
    }
  });
}

}  // namespace wkvq
