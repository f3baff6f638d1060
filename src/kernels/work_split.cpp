#include "kernels/work_split.h"

#include <algorithm>
#include <memory>
#include <new>
#include <vector>

#include "core/parallel.h"

namespace wkvq {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

}  // namespace

WorkBlock WorkSplit::block(int64_t t, int64_t n, int64_t out) const {
  WorkBlock b{};
  b.i0 = (t / out_parts) * n_grain;
  b.i1 = std::min(n, b.i0 + n_grain);
  b.o0 = (t % out_parts) * out_grain;
  b.o1 = std::min(out, b.o0 + out_grain);
  return b;
}

WorkSplit split_work(int64_t n, int64_t in, int64_t out, int64_t n_align, int64_t out_align,
                     int parts_per_thread) {
  int64_t threads = num_threads();
  if (n * in * out < kMinParallelMacs) threads = 1;
  if (threads > 1) threads *= std::max(parts_per_thread, 1);
  const int64_t out_parts = std::min<int64_t>(threads, ceil_div(out, out_align));
  const int64_t n_parts =
      std::max<int64_t>(1, std::min<int64_t>(threads / out_parts, ceil_div(n, n_align)));
  WorkSplit s{};
  s.out_grain = round_up(ceil_div(out, out_parts), out_align);
  s.n_grain = round_up(ceil_div(n, n_parts), n_align);
  s.out_parts = ceil_div(out, s.out_grain);
  s.n_parts = ceil_div(n, s.n_grain);
  return s;
}

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

uint8_t* thread_codes_buffer(int64_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (static_cast<int64_t>(buffer.size()) < bytes) buffer.resize(static_cast<size_t>(bytes));
  return buffer.data();
}

}  // namespace wkvq
