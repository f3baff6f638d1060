#include "model/output_head.h"

#include <cmath>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"

namespace wkvq {

namespace {
constexpr float kFp16Max = 65504.0f;
}  // namespace

HeadStorage parse_head_storage(std::string_view name) {
  if (name == "f32") return HeadStorage::F32;
  if (name == "f16") return HeadStorage::F16;
  fail("unknown output head storage '", name, "': expected f32 or f16");
}

const char* head_storage_name(HeadStorage s) { return s == HeadStorage::F16 ? "f16" : "f32"; }

HeadStorage head_storage(const Model& m) {
  return m.output.w16 != nullptr ? HeadStorage::F16 : HeadStorage::F32;
}

bool head_fits_fp16(const Model& m, int64_t* first_bad) {
  const Linear& h = m.output;
  if (h.w == nullptr && h.wbf16 == nullptr) return true;  // fp16 or quantized already
  const int64_t n = h.out * h.in;
  for (int64_t i = 0; i < n; ++i) {
    if (!(std::fabs(h.weight_f32(i)) <= kFp16Max)) {
      if (first_bad != nullptr) *first_bad = i;
      return false;
    }
  }
  return true;
}

void store_output_head(Model& m, HeadStorage s) {
  Linear& h = m.output;
  const bool already = s == HeadStorage::F16 ? h.w16 != nullptr : h.w != nullptr;
  if (h.q != nullptr || already) return;
  const int64_t n = h.out * h.in;
  const void* source = h.float_data();
  const int64_t source_bytes = h.float_bytes();
  if (s == HeadStorage::F16) {
    int64_t bad = 0;
    WKVQ_REQUIRE(head_fits_fp16(m, &bad), m.source, ": output head weight [", bad / h.in, ", ",
                 bad % h.in, "] = ", h.weight_f32(bad),
                 " does not fit fp16 (|w| <= 65504): keep the head "
                 "in f32 (--head f32)");
    uint16_t* dst = m.storage.allocate_fp16(static_cast<size_t>(n));
    parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dst[i] = f32_to_fp16(h.weight_f32(i));
    });
    h.w16 = dst;
    h.w = nullptr;
  } else {
    float* dst = m.storage.allocate(static_cast<size_t>(n));
    h.rows_f32(0, h.out, dst);
    h.w = dst;
    h.w16 = nullptr;
  }
  h.wbf16 = nullptr;
  // A head in place in the file (bf16, or a tied f32 table stays resident) is not read again.
  if (source != static_cast<const void*>(m.tok_embeddings)) {
    m.storage.release_pages(source, source_bytes);
  }
  m.config.tied_output = false;
}

}  // namespace wkvq
