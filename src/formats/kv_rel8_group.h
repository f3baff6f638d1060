// One KV quantization group's static range for the 8-bit relative metadata ("rel8",
// formats/kv_quant.h): a plain struct the SIMD kernels read too (no functions, no standard
// library: kernels/kv_quant_impl.h).
#pragma once

namespace wkvq {

// The 256 ascending levels a group's minimum and maximum are coded as (made once per group by
// make_kv_rel8_group, formats/kv_quant.h).
struct KvRel8Group {
  float levels[256];
};

}  // namespace wkvq
