// How a matrix product y (n x out) = x (n x in) . W^T is cut into per-thread blocks, and the
// per-thread packing scratch of the GEMM kernels; shared by matmul.cpp and qmatmul.cpp (baseline
// code only).
#pragma once

#include <cstdint>

namespace wkvq {

// Below this many multiply-adds a product runs on the calling thread: a loop on the thread pool
// costs a few microseconds, about what one core needs for this much work.
inline constexpr int64_t kMinParallelMacs = int64_t{1} << 18;

// Rows [i0, i1) of x and y, rows [o0, o1) of W (columns of y).
struct WorkBlock {
  int64_t i0, i1, o0, o1;
};

// A grid of row ranges of y (multiples of n_grain) by column ranges (multiples of out_grain).
struct WorkSplit {
  int64_t n_grain, out_grain;
  int64_t n_parts, out_parts;
  int64_t tasks() const { return n_parts * out_parts; }  // <= num_threads() * parts_per_thread
  // The block of task t (t < tasks()) of a product with n rows and out columns.
  WorkBlock block(int64_t t, int64_t n, int64_t out) const;
};

// Prefers splitting W's rows (units of out_align: each thread streams its own part of W); splits
// x's rows (units of n_align) as well only when W has too few row units to keep every thread
// busy. One block per thread where possible (parts_per_thread blocks per thread when there are
// several threads: the pool hands them out one at a time, so a thread that runs late leaves its
// share to the others); one block in all when the product is small.
WorkSplit split_work(int64_t n, int64_t in, int64_t out, int64_t n_align, int64_t out_align,
                     int parts_per_thread = 1);

// This thread's packing scratch of at least `count` floats, 64-byte aligned, kept for the
// thread's lifetime (the pool's workers persist, core/parallel.h), so a GEMM allocates nothing
// after the first call on a thread.
float* thread_pack_buffer(int64_t count);
// This thread's buffer of at least `bytes` bytes for W's codes copied back into rows
// (kernels/qmatmul.cpp: W whose codes the tile layout holds, for a kernel that reads rows), kept
// like thread_pack_buffer's.
uint8_t* thread_codes_buffer(int64_t bytes);

}  // namespace wkvq
