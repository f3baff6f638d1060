// Quantized matmul: the reference (the definition), the split of the work over threads and the
// per-thread scratch. The SIMD kernels come from the kernel table (kernels/kernel_table.h,
// qmatmul_avx2.cpp / qmatmul_avx512.cpp).
#include "kernels/qmatmul.h"

#include <algorithm>
#include <array>
#include <memory>
#include <new>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/qmatmul_q8.h"
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
  const bool tiled = !w.tile_scales.empty();
  return detail::QMatView{w.codes.empty() ? nullptr : w.codes.data(),
                          w.scales.data(),
                          w.zeros.data(),
                          w.rows,
                          w.cols,
                          w.group,
                          w.n_groups,
                          w.row_bytes,
                          w.bits,
                          tiled ? w.tile_scales.data() : nullptr,
                          tiled ? w.tile_zeros.data() : nullptr,
                          w.tile_codes.empty() ? nullptr : w.tile_codes.data()};
}

// Blocks of W per thread in the dot kernels (decode): handed out one at a time, so that a thread
// the OS runs late leaves its share to the others. The chunked GEMVs (scaled, table) rearrange x
// once per block (about 1 us per 2048 columns), so they take fewer, larger blocks.
constexpr int kDotPartsPerThread = 4;
constexpr int kChunkedGemvPartsPerThread = 2;
// The int8 GEMV streams W at the memory's speed, and every block it starts costs a ramp of
// demand misses before the hardware prefetcher follows the new stream: one contiguous block per
// thread and matrix. Zen 5, TinyLlama W4KV4 decode at 2 threads, blocks per thread alternated
// every 8 tokens in one process (1024 tokens, 5 runs): 1 block 6-7 % faster than 4, 2-3 % than
// 2; 8 and 16 slower still (0.94, 0.88 of 4). The f32 chunked GEMV (compute-bound) is level at 1
// and 2.
constexpr int kQ8GemvPartsPerThread = 1;

// One matrix of a qmatmul_many call: its kernels, its split and where its tasks start.
struct Plan {
  const QuantizedMatrix* w = nullptr;
  float* y = nullptr;
  const detail::QMatmulOps* ops = nullptr;  // null: the reference
  bool dot = false;
  bool q8 = false;       // the int8 GEMM (kernels/qmatmul_q8.h), 4-bit W
  bool q8_gemv = false;  // the int8 GEMV: n <= the dot kernels' limit, or 8-bit W for any n
  const detail::QGemmQ8Ops* q8_ops = nullptr;  // whose kernels run it (q8 or q8_gemv)
  const detail::Q8View* x8 = nullptr;          // x quantized for it (q8 or q8_gemv)
  WorkSplit split{};
  int64_t first_task = 0;
};

// The int8 GEMV's kernels for an n-row product with w, or null: within the dot kernels' limit
// the decode table's (where WKVQ_DECODE_GEMV chose int8); above it 8-bit W, which has no GEMM,
// through the int8 GEMM's table where `use` runs it, so that each row gets what decode gives it.
const detail::QGemmQ8Ops* int8_gemv_ops(const KernelTable& table, GemmUse use, int64_t n,
                                        int64_t dot_max_rows, const QuantizedMatrix& w) {
  if (!qmatmul_q8_applies(w)) return nullptr;
  if (n <= dot_max_rows) return table.qgemv_q8;
  return w.bits == 8 && table.int8_gemm_for(use) ? table.qgemm_q8 : nullptr;
}

Plan plan_of(const KernelTable& table, GemmUse use, int64_t n, const QuantizedMatrix& w, float* y) {
  const bool tiled_codes = w.codes_in_tiles();
  WKVQ_ASSERT(
      (tiled_codes ? w.tile_codes.size() == static_cast<size_t>(tile_codes_bytes(w))
                   : w.codes.size() == static_cast<size_t>(w.rows * w.row_bytes)) &&
      w.scales.size() == static_cast<size_t>(w.rows * w.n_groups) &&
      w.tile_scales.size() == w.tile_zeros.size() &&
      (w.tile_scales.empty() ||
       w.tile_scales.size() == static_cast<size_t>((w.rows + kParamTileRows - 1) / kParamTileRows *
                                                   w.n_groups * kParamTileRows)) &&
      (!tiled_codes || !w.tile_scales.empty()));
  Plan p;
  p.w = &w;
  p.y = y;
  p.ops = qmatmul_has_simd(table.isa, w) ? table.qmatmul : nullptr;
  if (p.ops == nullptr) {
    p.split = split_work(n, w.cols, w.rows, n, 1);
  } else if (const detail::QGemmQ8Ops* gemv =
                 int8_gemv_ops(table, use, n, p.ops->dot_max_rows, w)) {
    p.q8_gemv = true;  // 4 or 8 bits: QGemmQ8Ops::gemv or gemv8
    p.q8_ops = gemv;
    p.split = split_work(n, w.cols, w.rows, n, detail::kQ8GemvRows, kQ8GemvPartsPerThread);
  } else if (n <= p.ops->dot_max_rows) {
    p.dot = true;
    const bool chunked = n == 1 && chunked_gemv(table) != nullptr;
    p.split = split_work(n, w.cols, w.rows, n, detail::kQDotRowAlign,
                         chunked ? kChunkedGemvPartsPerThread : kDotPartsPerThread);
  } else if (table.int8_gemm_for(use) && qmatmul_q8_applies(w)) {
    p.q8 = true;
    p.q8_ops = table.qgemm_q8;
    p.split =
        split_work(n, w.cols, w.rows, table.qgemm_q8->blocking.mr, table.qgemm_q8->blocking.nr);
  } else {
    p.split = split_work(n, w.cols, w.rows, p.ops->blocking.mr, p.ops->blocking.nr);
  }
  return p;
}

// x quantized for the int8 GEMM (or, `gemv`, in the int8 GEMV's layout), on the pool's threads.
detail::Q8View quantize_x(const detail::QGemmQ8Ops& ops, bool gemv, const float* x, int64_t n,
                          int64_t cols, Q8Activations& a) {
  gemv = gemv || ops.gemm_takes_gemv_layout;
  a.resize(n, gemv ? (cols + kQ8BlockCols - 1) / kQ8BlockCols * detail::kQ8GemvBlockBytes : cols);
  const int64_t blocks = (cols + kQ8BlockCols - 1) / kQ8BlockCols;
  const auto quantize = gemv ? ops.quantize_gemv : ops.quantize;
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    quantize(x, cols, begin, end, a.q.data(), a.d.data(), a.dsum.data(), a.stride, blocks);
  });
  return detail::Q8View{a.q.data(), a.d.data(), a.dsum.data(), a.stride, blocks};
}

// x quantized for the plans of one qmatmul_with call: in the int8 GEMM's layout and in the
// GEMV layout, each when some plan needs it (both the same where the GEMM takes the GEMV layout).
struct QuantizedX {
  Q8Activations gemm_codes, gemv_codes;
  detail::Q8View gemm{}, gemv{};
  // The view plan p reads, quantizing x for it first if no plan before needed that layout.
  const detail::Q8View& for_plan(const Plan& p, const float* x, int64_t n, int64_t cols) {
    const bool gemv_layout = p.q8_gemv || p.q8_ops->gemm_takes_gemv_layout;
    detail::Q8View& v = gemv_layout ? gemv : gemm;
    if (v.q == nullptr)
      v = quantize_x(*p.q8_ops, gemv_layout, x, n, cols, gemv_layout ? gemv_codes : gemm_codes);
    return v;
  }
};

// One task of an int8 plan (p.q8 or p.q8_gemv) over block b of view v of W (y: where v's row 0
// goes, row stride w.rows), with its per-thread scratch.
void run_q8_task(const QuantizedMatrix& w, const detail::QMatView& v, const Plan& p,
                 const detail::QBlock& b, float* y) {
  const detail::Q8View& x8 = *p.x8;
  if (p.q8_gemv) {
    const int64_t bytes = detail::qgemv_q8_scratch_bytes(w.n_groups, x8.blocks, b.i1 - b.i0);
    const auto gemv = w.bits == 8 ? p.q8_ops->gemv8 : p.q8_ops->gemv;
    gemv(x8, v, y, w.rows, b, reinterpret_cast<uint8_t*>(thread_pack_buffer((bytes + 3) / 4)));
  } else {
    const detail::QGemmQ8Ops& q8 = *p.q8_ops;
    const int64_t floats = (q8.pack_bytes(x8.blocks, w.n_groups) + 3) / 4;
    q8.packed(x8, v, y, w.rows, b, reinterpret_cast<uint8_t*>(thread_pack_buffer(floats)));
  }
}

// Block b of plan p's SIMD kernel on view v of W (y: where v's row 0 goes, row stride w.rows).
void run_kernel(const KernelTable& table, const float* x, int64_t n, const Plan& p,
                const detail::QMatView& v, const detail::QBlock& b, float* y) {
  const QuantizedMatrix& w = *p.w;
  if (p.q8_gemv || p.q8) {
    run_q8_task(w, v, p, b, y);
  } else if (p.dot) {
    const ChunkedGemv gemv = n == 1 ? chunked_gemv(table) : nullptr;
    if (gemv != nullptr && gemv(x, v, y, b.o0, b.o1)) return;
    p.ops->dot(x, v, y, w.rows, b);
  } else {
    p.ops->packed(x, v, y, w.rows, b, thread_pack_buffer(detail::qpack_floats(p.ops->blocking)));
  }
}

// Rows of W per kernel call when the kernel reads row-major codes that only W's tile layout holds
// (add_tile_layout moved them): that many rows are copied back first (copy_row_codes). A multiple
// of every kernel's row unit (8, 16, 32) and of the packed GEMMs' nc.
constexpr int64_t kRowCopyRows = 256;

// Whether plan p's kernel reads the tile layout's codes rather than W's rows.
bool reads_tile_codes(const KernelTable& table, const Plan& p) {
  return p.q8_gemv && reads_tile_layout(table);  // 4 and 8 bits
}

// Block b of plan p for W whose codes only the tile layout holds, for a kernel that reads rows:
// per kRowCopyRows rows, the rows copied back into this thread's buffer and the kernel run on that
// part of W as a matrix of its own (its rows' scales and zeros, its part of y). The same numbers:
// every output depends on its own row of W only.
void run_on_row_copies(const KernelTable& table, const float* x, int64_t n, const Plan& p,
                       const detail::QBlock& b) {
  const QuantizedMatrix& w = *p.w;
  for (int64_t o = b.o0; o < b.o1; o += kRowCopyRows) {
    const int64_t rows = std::min(kRowCopyRows, b.o1 - o);
    uint8_t* codes = thread_codes_buffer(rows * w.row_bytes);
    copy_row_codes(w, o, rows, codes);
    detail::QMatView v = view_of(w);
    v.codes = codes;
    v.scales += o * w.n_groups;
    v.zeros += o * w.n_groups;
    v.rows = rows;
    v.tile_scales = nullptr;
    v.tile_zeros = nullptr;
    v.tile_codes = nullptr;
    run_kernel(table, x, n, p, v, detail::QBlock{b.i0, b.i1, 0, rows}, p.y + o);
  }
}

// Task t of plan p (t < p.split.tasks()) on this thread.
void run_task(const KernelTable& table, const float* x, int64_t n, const Plan& p, int64_t t) {
  const QuantizedMatrix& w = *p.w;
  const WorkBlock wb = p.split.block(t, n, w.rows);
  const detail::QBlock b{wb.i0, wb.i1, wb.o0, wb.o1};
  if (p.ops == nullptr) {
    reference_block(x, w, p.y, b);  // dequantize_row_ref reads either layout
  } else if (w.codes_in_tiles() && !reads_tile_codes(table, p)) {
    run_on_row_copies(table, x, n, p, b);
  } else {
    run_kernel(table, x, n, p, view_of(w), b, p.y);
  }
}

// Up to kMaxFused matrices in one parallel loop: the tasks of every matrix, one after another.
constexpr size_t kMaxFused = 8;

void qmatmul_with(const KernelTable& table, GemmUse use, const float* x, int64_t n,
                  std::span<const QuantizedMatrix* const> ws, std::span<float* const> ys) {
  WKVQ_REQUIRE(n >= 0, "qmatmul: negative row count ", n);
  WKVQ_REQUIRE(ws.size() == ys.size(), "qmatmul: ", ws.size(), " matrices but ", ys.size(),
               " outputs");
  QuantizedX xq;  // x quantized once for every matrix that runs an int8 kernel
  for (size_t k0 = 0; k0 < ws.size(); k0 += kMaxFused) {
    std::array<Plan, kMaxFused> plans;
    size_t count = 0;
    int64_t tasks = 0;
    for (size_t k = k0; k < std::min(ws.size(), k0 + kMaxFused); ++k) {
      WKVQ_REQUIRE(ws[k] != nullptr, "qmatmul: null matrix ", k);
      WKVQ_REQUIRE(ws[k]->cols == ws[0]->cols, "qmatmul: matrices of one call must have the ",
                   "same columns (input features), found ", ws[0]->cols, " and ", ws[k]->cols);
      if (n == 0 || ws[k]->rows == 0) continue;
      WKVQ_REQUIRE(x != nullptr && ys[k] != nullptr,
                   "qmatmul: null pointer for a non-empty product");
      Plan& p = plans[count++];
      p = plan_of(table, use, n, *ws[k], ys[k]);
      p.first_task = tasks;
      tasks += p.split.tasks();
      if (p.q8 || p.q8_gemv) p.x8 = &xq.for_plan(p, x, n, ws[0]->cols);
    }
    parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
      size_t k = 0;
      for (int64_t t = begin; t < end; ++t) {
        while (t >= plans[k].first_task + plans[k].split.tasks()) ++k;
        run_task(table, x, n, plans[k], t - plans[k].first_task);
      }
    });
  }
}

}  // namespace

bool qmatmul_has_simd(Isa isa, const QuantizedMatrix& w) {
  return isa != Isa::Reference && (w.bits == 4 || w.bits == 8) &&
         (w.n_groups == 1 || w.group % detail::kQBlockCols == 0);
}

void qmatmul(const float* x, int64_t n, const QuantizedMatrix& w, float* y, GemmUse use) {
  const QuantizedMatrix* ws[] = {&w};
  float* ys[] = {y};
  qmatmul_with(kernel_table(), use, x, n, ws, ys);
}

void qmatmul(Isa isa, const float* x, int64_t n, const QuantizedMatrix& w, float* y) {
  const QuantizedMatrix* ws[] = {&w};
  float* ys[] = {y};
  qmatmul_with(kernel_table(isa), GemmUse::Exact, x, n, ws, ys);
}

void qmatmul(Isa isa, PrefillGemm gemm, const float* x, int64_t n, const QuantizedMatrix& w,
             float* y) {
  const QuantizedMatrix* ws[] = {&w};
  float* ys[] = {y};
  qmatmul_with(kernel_table(isa, gemm), GemmUse::Exact, x, n, ws, ys);
}

void qmatmul(const KernelTable& table, const float* x, int64_t n, const QuantizedMatrix& w,
             float* y) {
  const QuantizedMatrix* ws[] = {&w};
  float* ys[] = {y};
  qmatmul_with(table, GemmUse::Exact, x, n, ws, ys);
}

void qmatmul_many(const float* x, int64_t n, std::span<const QuantizedMatrix* const> w,
                  std::span<float* const> y, GemmUse use) {
  qmatmul_with(kernel_table(), use, x, n, w, y);
}

void qmatmul_many(const KernelTable& table, const float* x, int64_t n,
                  std::span<const QuantizedMatrix* const> w, std::span<float* const> y) {
  qmatmul_with(table, GemmUse::Exact, x, n, w, y);
}

void qmatmul_many(Isa isa, const float* x, int64_t n, std::span<const QuantizedMatrix* const> w,
                  std::span<float* const> y) {
  qmatmul_with(kernel_table(isa), GemmUse::Exact, x, n, w, y);
}

}  // namespace wkvq
