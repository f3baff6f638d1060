#include "model/output_head.h"

#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "formats/weight_quant.h"
#include "model/linear.h"

namespace wkvq {

namespace {

constexpr float kFp16Max = 65504.0f;

// The float table of `lin` (out x in) converted to `s`, its storage held by m.storage. Throws
// naming `what` and the element when a value does not fit fp16.
Linear converted(Model& m, const Linear& lin, TableStorage s, const char* what,
                 const char* option) {
  WKVQ_ASSERT(lin.has_float());
  Linear out;
  out.out = lin.out;
  out.in = lin.in;
  const int64_t n = lin.out * lin.in;
  if (s == TableStorage::F32) {
    float* dst = m.storage.allocate(static_cast<size_t>(n));
    lin.rows_f32(0, lin.out, dst);
    out.w = dst;
  } else if (s == TableStorage::F16) {
    for (int64_t i = 0; i < n && lin.w16 == nullptr; ++i) {
      WKVQ_REQUIRE(std::fabs(lin.weight_f32(i)) <= kFp16Max, m.source, ": ", what, " weight [",
                   i / lin.in, ", ", i % lin.in, "] = ", lin.weight_f32(i),
                   " does not fit fp16 (|w| <= 65504): keep it in f32 (", option, " f32)");
    }
    uint16_t* dst = m.storage.allocate_fp16(static_cast<size_t>(n));
    parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dst[i] = f32_to_fp16(lin.weight_f32(i));
    });
    out.w16 = dst;
  } else {
    std::vector<float> scratch;
    out.q = inference_matrix(quantize_weights_ref(lin.f32_view(scratch), lin.out, lin.in,
                                                  table_storage_bits(s), table_group(m)));
  }
  return out;
}

}  // namespace

Linear embedding_table(const Model& m) {
  if (m.tok_embeddings == nullptr) return m.tok_embeddings_packed;
  Linear lin;
  lin.out = m.config.vocab_size;
  lin.in = m.config.dim;
  lin.w = m.tok_embeddings;
  return lin;
}

namespace {

TableStorage storage_of(const Linear& lin) {
  if (lin.q)
    return lin.q->bits == 8   ? TableStorage::Q8
           : lin.q->bits == 4 ? TableStorage::Q4
                              : TableStorage::F32;
  return lin.w16 != nullptr ? TableStorage::F16 : TableStorage::F32;
}

}  // namespace

TableStorage parse_table_storage(std::string_view name) {
  for (const TableStorage s :
       {TableStorage::F32, TableStorage::F16, TableStorage::Q8, TableStorage::Q4}) {
    if (name == table_storage_name(s)) return s;
  }
  fail("unknown table storage '", name, "': expected f32, f16, q8 or q4");
}

const char* table_storage_name(TableStorage s) {
  switch (s) {
    case TableStorage::F16:
      return "f16";
    case TableStorage::Q8:
      return "q8";
    case TableStorage::Q4:
      return "q4";
    default:
      return "f32";
  }
}

int table_storage_bits(TableStorage s) {
  return s == TableStorage::Q8 ? 8 : s == TableStorage::Q4 ? 4 : 0;
}

TableStorage head_storage(const Model& m) {
  if (m.output.w == nullptr && m.output.w16 == nullptr && m.output.wbf16 == nullptr &&
      m.output.q == nullptr) {
    return TableStorage::F32;
  }
  return storage_of(m.output);
}

TableStorage embedding_storage(const Model& m) { return storage_of(embedding_table(m)); }

int64_t table_group(const Model& m) {
  return m.quant.wbits > 0 ? m.quant.wgroup : kDefaultTableGroup;
}

bool head_fits_fp16(const Model& m, int64_t* first_bad) { return fits_fp16(m.output, first_bad); }

bool fits_fp16(const Linear& h, int64_t* first_bad) {
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

void store_output_head(Model& m, TableStorage s) {
  Linear& h = m.output;
  const bool already = s == TableStorage::F32 ? h.w != nullptr : !h.q && storage_of(h) == s;
  if (h.q != nullptr || already) {
    m.config.tied_output = false;  // a tied head keeps reading the table as it is now
    return;
  }
  const void* source = h.float_data();
  const int64_t source_bytes = h.float_bytes();
  Linear c = converted(m, h, s, "output head", "--head");
  c.bias = h.bias;
  h = c;
  // A head in place in the file or in its own buffer is not read again; a tied table stays.
  const bool shared = source == static_cast<const void*>(m.tok_embeddings) ||
                      source == m.tok_embeddings_packed.float_data();
  if (!shared) m.storage.release(source, source_bytes);
  m.config.tied_output = false;
}

void store_embeddings(Model& m, TableStorage s) {
  const Linear table = embedding_table(m);
  const TableStorage now = storage_of(table);
  if (now == s) return;
  WKVQ_REQUIRE(table.has_float(), m.source, ": the embedding table is stored as ",
               table_storage_name(now), "; it cannot be converted to ", table_storage_name(s));
  const Linear c = converted(m, table, s, "embedding table", "--embed");
  if (m.config.tied_output) m.output = c;  // the head follows: still one table
  m.tok_embeddings = s == TableStorage::F32 ? c.w : nullptr;
  m.tok_embeddings_packed = s == TableStorage::F32 ? Linear{} : c;
  const bool head_reads_it = m.output.float_data() == table.float_data();
  if (!head_reads_it) m.storage.release(table.float_data(), table.float_bytes());
}

}  // namespace wkvq
