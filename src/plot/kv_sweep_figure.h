// The figure of the KV sweep (`wkvq inspect --plot DIR --sweep FILE.json`): KLD from the
// floating-point model (log scale) against KV bits per element, one line per method with error
// bars (KLD stderr), and the weights-only KLD (float KV cache) as a dashed reference line.
#pragma once

#include <string>

#include "plot/kv_sweep_data.h"

namespace wkvq {

std::string kv_sweep_svg(const KvSweepData& d, const std::string& title);

}  // namespace wkvq
