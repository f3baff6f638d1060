// wkvq bench --parallel N,... (alias --batch): aggregate decode speed of N sequences decoded
// together by the batched forward of continuous batching (model/batch_forward.h, the decode step
// of wkvq serve), each at the same context length, and the KV memory they need.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/quant_options.h"

namespace wkvq::cli {

// One row per N: prefill `context` random tokens once (the cache copied to the N sequences),
// then `decode` batched steps of N rows. Returns the rows as JSON, printing a table unless
// `json` (then the caller prints).
nlohmann::json bench_parallel(const PreparedModel& p, const std::vector<int>& parallel, int context,
                              int decode, uint64_t seed, bool json);

}  // namespace wkvq::cli
