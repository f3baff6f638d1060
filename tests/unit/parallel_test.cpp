// The thread pool behind parallel_for (core/parallel.h): every index is covered exactly once by
// chunks that are multiples of the grain, exceptions reach the caller, nested loops and loops
// from a second thread run serially, and the pool can be resized.
#include "core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_support.h"

namespace wkvq {
namespace {

using test::ThreadCount;

// Hit counts of every index over `rounds` loops of n indices with this grain; checks the chunks.
std::vector<int> hit_counts(int64_t n, int64_t grain, int rounds) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int> bad_chunks{0};
  const int64_t g = grain < 1 ? 1 : grain;  // a grain below 1 acts as 1
  for (int r = 0; r < rounds; ++r) {
    parallel_for(n, grain, [&](int64_t b, int64_t e) {
      if (b < 0 || e > n || b >= e || b % g != 0 || (e - b != g && e != n)) ++bad_chunks;
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    });
  }
  EXPECT_EQ(bad_chunks.load(), 0);
  std::vector<int> out;
  for (const auto& h : hits) out.push_back(h.load());
  return out;
}

TEST(ParallelFor, EveryIndexExactlyOnceAtEveryThreadCount) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadCount tc(threads);
    EXPECT_EQ(num_threads(), threads);
    for (int64_t n : {1, 2, 7, 64, 1000, 4099}) {
      for (int64_t grain : {1, 3, 64}) {
        const int rounds = 50;
        const std::vector<int> hits = hit_counts(n, grain, rounds);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(hits[static_cast<size_t>(i)], rounds)
              << "threads " << threads << " n " << n << " grain " << grain << " index " << i;
        }
      }
    }
  }
}

TEST(ParallelFor, EmptyAndNonPositiveGrain) {
  ThreadCount tc(2);
  int calls = 0;
  parallel_for(0, 4, [&](int64_t, int64_t) { ++calls; });
  parallel_for(-3, 4, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  const std::vector<int> hits = hit_counts(10, 0, 1);  // grain 0 acts as 1
  for (int h : hits) EXPECT_EQ(h, 1);
}

TEST(ParallelFor, WorkersRunChunks) {
  // With 2 threads and chunks that wait for each other, both threads must take part: the first
  // chunk to start waits (bounded) until another thread has started one too.
  ThreadCount tc(2);
  std::mutex m;
  std::set<std::thread::id> ids;
  for (int attempt = 0; attempt < 20 && ids.size() < 2; ++attempt) {
    std::atomic<int> started{0};
    parallel_for(2, 1, [&](int64_t, int64_t) {
      started.fetch_add(1);
      for (int i = 0; i < 2000000 && started.load() < 2; ++i) std::this_thread::yield();
      std::lock_guard<std::mutex> g(m);
      ids.insert(std::this_thread::get_id());
    });
  }
  EXPECT_EQ(ids.size(), 2u);
}

TEST(ParallelFor, ExceptionReachesTheCallerAndThePoolStaysUsable) {
  ThreadCount tc(3);
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> ran{0};
    EXPECT_THROW(parallel_for(1000, 1,
                              [&](int64_t b, int64_t) {
                                ran.fetch_add(1);
                                if (b == 17) throw std::runtime_error("chunk 17");
                              }),
                 std::runtime_error);
    EXPECT_GE(ran.load(), 1);
    EXPECT_LE(ran.load(), 1000);
  }
  try {
    parallel_for(8, 1, [](int64_t b, int64_t) {
      if (b % 2 == 1) throw std::invalid_argument("odd " + std::to_string(b));
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("odd ", 0), 0u);
  }
  const std::vector<int> hits = hit_counts(500, 7, 3);
  for (int h : hits) EXPECT_EQ(h, 3);
}

TEST(ParallelFor, NestedLoopsRunSeriallyInsideTheBody) {
  ThreadCount tc(2);
  std::vector<std::atomic<int>> hits(64 * 32);
  parallel_for(64, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const std::thread::id outer = std::this_thread::get_id();
      parallel_for(32, 1, [&](int64_t jb, int64_t je) {
        EXPECT_EQ(std::this_thread::get_id(), outer);  // inline on the same thread
        for (int64_t j = jb; j < je; ++j) hits[static_cast<size_t>(i * 32 + j)].fetch_add(1);
      });
    }
  });
  for (const auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ParallelFor, ConcurrentCallersEachCoverTheirRange) {
  ThreadCount tc(2);
  constexpr int kCallers = 4;
  constexpr int64_t kN = 3000;
  std::vector<std::vector<int>> results(kCallers);
  std::vector<std::thread> callers;
  for (int k = 0; k < kCallers; ++k) {
    callers.emplace_back([&, k] { results[static_cast<size_t>(k)] = hit_counts(kN, 5, 20); });
  }
  for (std::thread& t : callers) t.join();
  for (const std::vector<int>& r : results) {
    ASSERT_EQ(r.size(), static_cast<size_t>(kN));
    for (int h : r) EXPECT_EQ(h, 20);
  }
}

TEST(ParallelFor, ManyTinyLoopsAfterIdlePeriods) {
  // Workers go to sleep when idle; loops published right after must still complete.
  ThreadCount tc(3);
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::atomic<int64_t> sum{0};
    for (int k = 0; k < 200; ++k) {
      parallel_for(16, 1, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
    }
    EXPECT_EQ(sum.load(), 200 * 16);
  }
}

// Loop after loop whose chunk counts alternate 2, 3, 2, 3, ... (the index one past a loop's last
// chunk is a chunk of the next), on more threads than cores (members are descheduled in the
// middle of a claim): every chunk of every loop runs exactly once, with that loop's body, and has
// finished when parallel_for returns. A member of loop L that paired L's last ticket with loop
// L + 1's count once claimed a chunk of L + 1 late, ran it twice or with L's body, and let the
// caller return with it still running (the pool fix of session 9; the serve test saw it as a
// KV format read from a dead stack frame).
TEST(ParallelFor, LateMembersNeverRunAChunkOfTheNextLoop) {
  ThreadCount tc(4);
  int bad = 0;
  for (int loop = 0; loop < 20000 && bad == 0; ++loop) {
    const int64_t chunks = 2 + loop % 2;
    std::atomic<int> ran[3] = {0, 0, 0};
    std::atomic<int> finished{0};
    const int me = loop;
    parallel_for(chunks, 1, [&, me](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ran[i].fetch_add(me == loop ? 1 : 100);
      if (loop % 5 == 0) std::this_thread::yield();
      finished.fetch_add(static_cast<int>(e - b));
    });
    const int done_at_return = finished.load();
    for (int64_t i = 0; i < chunks; ++i) bad += ran[i].load() != 1;
    bad += done_at_return != chunks;
    if (bad != 0) ADD_FAILURE() << "loop " << loop << ": " << done_at_return << " of " << chunks;
  }
  EXPECT_EQ(bad, 0);
}

TEST(ParallelFor, ResizeKeepsResultsAndIgnoresNonPositive) {
  ThreadCount tc(4);
  set_num_threads(0);
  EXPECT_EQ(num_threads(), 4);
  set_num_threads(-2);
  EXPECT_EQ(num_threads(), 4);
  for (int threads : {1, 5, 2}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    const std::vector<int> hits = hit_counts(777, 2, 2);
    for (int h : hits) EXPECT_EQ(h, 2);
  }
}

}  // namespace
}  // namespace wkvq
