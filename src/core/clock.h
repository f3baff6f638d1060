// Elapsed wall time for progress lines and reports.
#pragma once

#include <chrono>

namespace wkvq {

// Seconds since t0 (steady clock).
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace wkvq
