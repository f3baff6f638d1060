// f32 matmul: the reference (the definition) and the split of the work over threads. The SIMD
// kernels come from the kernel table (kernels/kernel_table.h, matmul_kernels.h).
#include "kernels/matmul.h"

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul_impl.h"
#include "kernels/work_split.h"

namespace wkvq {
namespace {

// A weight as f32, from f32 or fp16 storage (exact).
inline float weight_f32(float w) { return w; }
inline float weight_f32(uint16_t w) { return fp16_to_f32(w); }

// The reference: for every output, a float sum of the `in` products in index order. This is the
// definition the SIMD kernels are tested against. No FMA: this file is compiled for baseline
// x86-64 (and ISO C++ mode keeps GCC from contracting a * b + c anyway).
template <class T>
void reference_block(const float* x, int64_t in, const T* w, float* y, int64_t ldy,
                     detail::MatmulBlock b) {
  for (int64_t i = b.i0; i < b.i1; ++i) {
    const float* xi = x + i * in;
    for (int64_t o = b.o0; o < b.o1; ++o) {
      const T* wo = w + o * in;
      float s = 0.0f;
      for (int64_t k = 0; k < in; ++k) s += xi[k] * weight_f32(wo[k]);
      y[i * ldy + o] = s;
    }
  }
}

// The table's dot and packed kernels for weights stored as T.
auto dot_kernel(const detail::MatmulOps& ops, const float* /*w*/) { return ops.dot_f32; }
auto dot_kernel(const detail::MatmulOps& ops, const uint16_t* /*w*/) { return ops.dot_f16; }
auto packed_kernel(const detail::MatmulOps& ops, const float* /*w*/) { return ops.packed_f32; }
auto packed_kernel(const detail::MatmulOps& ops, const uint16_t* /*w*/) { return ops.packed_f16; }

template <class T>
void matmul_any(const char* name, const KernelTable& table, const float* x, int64_t n, int64_t in,
                const T* w, int64_t out, float* y) {
  WKVQ_REQUIRE(n >= 0 && in >= 0 && out >= 0, name, ": negative size (n=", n, ", in=", in,
               ", out=", out, ")");
  if (n == 0 || out == 0) return;
  WKVQ_REQUIRE(y != nullptr && (in == 0 || (x != nullptr && w != nullptr)), name,
               ": null pointer for a non-empty product");
  if (in == 0) {  // empty sums
    for (int64_t j = 0; j < n * out; ++j) y[j] = 0.0f;
    return;
  }
  const detail::MatmulOps* ops = table.matmul;
  if (ops == nullptr) {  // the reference
    const WorkSplit s = split_work(n, in, out, n, 1);
    parallel_for(s.tasks(), 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const WorkBlock wb = s.block(t, n, out);
        reference_block(x, in, w, y, out, detail::MatmulBlock{wb.i0, wb.i1, wb.o0, wb.o1});
      }
    });
    return;
  }
  // Dot kernels read W once per 4 rows of x: keep x whole and split W's rows. Packed kernels
  // split along both, in register-tile units.
  const bool dot = n <= ops->dot_max_rows;
  const detail::GemmBlocking& blocking = ops->blocking;
  // Decode (the dot kernels): 4 blocks of W rows per thread, taken dynamically (work_split.h).
  const WorkSplit s = dot ? split_work(n, in, out, n, ops->dot_row_align, 4)
                          : split_work(n, in, out, blocking.mr, blocking.nr);
  const auto dot_fn = dot_kernel(*ops, w);
  const auto packed_fn = packed_kernel(*ops, w);
  parallel_for(s.tasks(), 1, [&](int64_t begin, int64_t end) {
    float* pack = dot ? nullptr : thread_pack_buffer(detail::pack_floats(blocking));
    for (int64_t t = begin; t < end; ++t) {
      const WorkBlock wb = s.block(t, n, out);
      const detail::MatmulBlock b{wb.i0, wb.i1, wb.o0, wb.o1};
      if (dot) {
        dot_fn(x, in, w, y, out, b);
      } else {
        packed_fn(x, in, w, y, out, b, pack);
      }
    }
  });
}

}  // namespace

void matmul_f32(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y) {
  matmul_any("matmul_f32", kernel_table(), x, n, in, w, out, y);
}

void matmul_f32(Isa isa, const float* x, int64_t n, int64_t in, const float* w, int64_t out,
                float* y) {
  matmul_any("matmul_f32", kernel_table(isa), x, n, in, w, out, y);
}

void matmul_f16(const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out, float* y) {
  matmul_any("matmul_f16", kernel_table(), x, n, in, w, out, y);
}

void matmul_f16(Isa isa, const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out,
                float* y) {
  matmul_any("matmul_f16", kernel_table(isa), x, n, in, w, out, y);
}

}  // namespace wkvq
