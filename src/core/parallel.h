// Parallel loops over an index range, on the process's persistent thread pool (parallel.cpp).
//
// The pool holds num_threads() - 1 worker threads; the calling thread is the last member and
// works too. A loop is cut into chunks that every member claims one at a time from a shared
// counter, so a member the OS has descheduled (the host shared with other processes) only delays
// the chunk it holds: the others take the rest. Workers spin briefly for the next loop (decode
// runs a few hundred small loops per token) and then sleep on a futex, never spinning for long
// against a thread that has work. The number of threads is set at the CLI boundary
// (set_num_threads); by default it is OMP_NUM_THREADS when that is a positive integer (kept from
// the OpenMP days: fuzzing and benchmarks set it), else the number of hardware threads.
//
// Serial fallback: a parallel_for called from inside another one's body, or from a second thread
// while the pool runs a loop, runs its chunks on the calling thread, in order.
#pragma once

#include <cstdint>

namespace wkvq {

int num_threads();
// Resizes the pool to n threads (the caller and n - 1 workers); n <= 0 is ignored. Not to be
// called while a parallel_for runs.
void set_num_threads(int n);

namespace detail {

using ChunkFn = void (*)(void* ctx, int64_t chunk);
// Calls fn(ctx, c) exactly once for each c in [0, chunks) over the pool and returns when all have
// returned. An exception thrown by fn stops the chunks not yet started and is rethrown here (the
// first one, when several throw).
void run_chunks(int64_t chunks, ChunkFn fn, void* ctx);

}  // namespace detail

// Calls body(begin, end) on disjoint chunks covering [0, n), each chunk a multiple of `grain`
// (except the last), chunks spread over the threads. Runs inline when there is one chunk. An
// exception thrown by `body` stops the remaining chunks and is rethrown to the caller (one of
// them, when several threads throw).
template <class Body>
void parallel_for(int64_t n, int64_t grain, Body&& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  // At most 2^30 chunks (the pool's chunk counter is 32 bits): a larger grain, still a multiple.
  constexpr int64_t kMaxChunks = int64_t{1} << 30;
  const int64_t min_grain = (n + kMaxChunks - 1) / kMaxChunks;
  if (grain < min_grain) grain *= (min_grain + grain - 1) / grain;
  const int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1) {
    body(int64_t{0}, n);
    return;
  }
  struct Ctx {
    Body* body;
    int64_t n, grain;
  } ctx{&body, n, grain};
  detail::run_chunks(
      chunks,
      [](void* p, int64_t c) {
        const Ctx& x = *static_cast<const Ctx*>(p);
        const int64_t b = c * x.grain;
        (*x.body)(b, b + x.grain < x.n ? b + x.grain : x.n);
      },
      &ctx);
}

}  // namespace wkvq
