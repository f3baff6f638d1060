// The thread pool behind parallel_for (parallel.h).
//
// One loop at a time. The caller publishes a loop by writing its fields and then `ticket`, a
// 64-bit word holding the loop's generation (high 32 bits) and the next chunk to claim (low 32
// bits). Every member claims chunk i by a compare-exchange of (gen, i) into (gen, i + 1): a worker
// that wakes late, still holding an older generation, fails the exchange and can never run a
// chunk of a loop it did not read. A member that claimed a chunk of generation G has read the
// fields of G (they are not rewritten before every chunk of G is done). `done` counts finished
// chunks; the caller returns when it reaches the loop's count, so a worker that never woke costs
// nothing. Publishing first closes the ticket of the new generation (no index claimable), so that
// a member of the previous loop cannot pair its last ticket with the new loop's count (run()).
#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wkvq {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long an idle worker spins for the next loop before it sleeps: decode publishes a loop every
// 10-500 us, and a futex wake-up costs the caller a system call and the worker ~10 us.
constexpr auto kWorkerSpin = std::chrono::microseconds(200);
// Spins of the caller waiting for the last chunks before it yields its core (a descheduled worker
// holding a chunk may be waiting for it).
constexpr int kCallerSpins = 4096;

constexpr uint64_t kIndexMask = 0xFFFFFFFFu;

thread_local bool t_in_pool = false;  // this thread is a worker, or the caller inside a loop

class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker(); });
  }
  ~Pool() {
    stop_.store(true, std::memory_order_seq_cst);
    wake_.fetch_add(1, std::memory_order_seq_cst);
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void run(int64_t chunks, detail::ChunkFn fn, void* ctx) {
    std::unique_lock<std::mutex> lock(submit_, std::try_to_lock);
    if (workers_.empty() || t_in_pool || !lock.owns_lock()) {
      for (int64_t c = 0; c < chunks; ++c) fn(ctx, c);
      return;
    }
    const uint32_t gen = ++gen_;
    // Close the ticket first, at (gen, no chunk left): a member still in the previous loop that
    // read its last ticket (gen - 1, chunks) and then reads the new chunks_ below (acquire: the
    // close happens before it) can no longer claim that index, which the new count would allow:
    // its exchange fails. (Before the close, such a late claim ran a chunk of the new loop with
    // a mixed fn/ctx and counted it in the new done_, so the caller could return while a chunk
    // of its loop still ran: the rare wrong attention formats and crashes under load.)
    ticket_.store((uint64_t{gen} << 32) | kIndexMask, std::memory_order_relaxed);
    chunks_.store(chunks, std::memory_order_release);
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    ticket_.store(uint64_t{gen} << 32, std::memory_order_release);
    wake_.store(gen, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_.notify_all();

    t_in_pool = true;
    work_on(gen);
    t_in_pool = false;
    for (int spins = 0; done_.load(std::memory_order_acquire) < chunks; ++spins) {
      if (spins < kCallerSpins) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    if (failed_.load(std::memory_order_relaxed)) {
      const std::exception_ptr e = error_;
      error_ = nullptr;
      lock.unlock();
      std::rethrow_exception(e);
    }
  }

 private:
  // Claims and runs chunks of generation `gen` until none is left (or a newer loop started).
  void work_on(uint32_t gen) {
    for (;;) {
      uint64_t t = ticket_.load(std::memory_order_acquire);
      if (static_cast<uint32_t>(t >> 32) != gen) return;
      const auto c = static_cast<int64_t>(t & kIndexMask);
      if (c >= chunks_.load(std::memory_order_acquire)) return;
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), c);
        } catch (...) {
          std::lock_guard<std::mutex> g(error_mutex_);
          if (!failed_.load(std::memory_order_relaxed)) error_ = std::current_exception();
          failed_.store(true, std::memory_order_relaxed);
        }
      }
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void worker() {
    t_in_pool = true;
    uint32_t seen = 0;
    for (;;) {
      uint32_t gen = wake_.load(std::memory_order_seq_cst);
      const auto spin_end = std::chrono::steady_clock::now() + kWorkerSpin;
      for (int i = 0; gen == seen && !stop_.load(std::memory_order_relaxed); ++i) {
        cpu_relax();
        if (i % 64 == 63 && std::chrono::steady_clock::now() > spin_end) break;
        gen = wake_.load(std::memory_order_seq_cst);
      }
      if (gen == seen && !stop_.load(std::memory_order_seq_cst)) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        while ((gen = wake_.load(std::memory_order_seq_cst)) == seen &&
               !stop_.load(std::memory_order_seq_cst)) {
          wake_.wait(seen, std::memory_order_seq_cst);
        }
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
      if (stop_.load(std::memory_order_seq_cst)) return;
      seen = gen;
      work_on(gen);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex submit_;  // one loop at a time; a second caller runs serially
  uint32_t gen_ = 0;   // written by the submitting caller only

  // The published loop.
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int64_t> chunks_{0};
  std::atomic<detail::ChunkFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> done_{0};
  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;

  // Waking workers: wake_ holds the latest generation (futex word); sleepers_ counts workers
  // asleep on it, so a loop makes the system call only when one is.
  std::atomic<uint32_t> wake_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 4096) return static_cast<int>(v);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// The process's pool (the one piece of process state here, as OpenMP's team was before it).
std::unique_ptr<Pool>& pool_slot() {
  static std::unique_ptr<Pool> pool = std::make_unique<Pool>(default_threads());
  return pool;
}

}  // namespace

int num_threads() { return pool_slot()->threads(); }

void set_num_threads(int n) {
  if (n <= 0) return;
  std::unique_ptr<Pool>& p = pool_slot();
  if (p->threads() == n) return;
  p.reset();
  p = std::make_unique<Pool>(n);
}

namespace detail {

void run_chunks(int64_t chunks, ChunkFn fn, void* ctx) { pool_slot()->run(chunks, fn, ctx); }

}  // namespace detail
}  // namespace wkvq
