#include "model/linear.h"

#include <algorithm>
#include <array>
#include <memory>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/matmul.h"
#include "kernels/qmatmul.h"
#include "kernels/qmatmul_q8.h"

namespace wkvq {

namespace {

// bf16 W has no kernel of its own: it is a source to quantize, not a format to run (see
// model/loader.h, LoadOptions). Rows are converted in chunks of about this many elements and
// multiplied with matmul_f32: the product of the exact f32 values, with a bounded scratch.
constexpr int64_t kBf16ChunkElems = int64_t{1} << 22;

void matmul_bf16_by_chunks(const Linear& l, const float* x, int64_t n, float* y) {
  const int64_t rows = std::clamp<int64_t>(kBf16ChunkElems / std::max<int64_t>(l.in, 1), 1, l.out);
  std::vector<float> w(static_cast<size_t>(rows * l.in));
  std::vector<float> part(static_cast<size_t>(n * rows));
  for (int64_t r0 = 0; r0 < l.out; r0 += rows) {
    const int64_t nr = std::min(rows, l.out - r0);
    l.rows_f32(r0, nr, w.data());
    matmul_f32(x, n, l.in, w.data(), nr, part.data());
    for (int64_t t = 0; t < n; ++t) {
      std::copy_n(part.data() + t * nr, nr, y + t * l.out + r0);
    }
  }
}

// y[n, out] += bias, when the Linear has one.
void add_bias(const Linear& l, int64_t n, float* y) {
  if (l.bias == nullptr) return;
  for (int64_t t = 0; t < n; ++t) {
    float* row = y + t * l.out;
    for (int64_t o = 0; o < l.out; ++o) row[o] += l.bias[o];
  }
}

}  // namespace

void forward_group(std::span<const Linear* const> ls, const float* x, int64_t n,
                   std::span<float* const> ys, GemmUse use) {
  WKVQ_REQUIRE(ls.size() == ys.size(), "forward_group: ", ls.size(), " Linears but ", ys.size(),
               " outputs");
  constexpr size_t kMax = 8;
  bool fused = ls.size() <= kMax;
  for (const Linear* l : ls) fused = fused && l->q && !l->in_order && l->in == ls[0]->in;
  if (!fused) {
    for (size_t k = 0; k < ls.size(); ++k) ls[k]->forward(x, n, ys[k], use);
    return;
  }
  std::array<const QuantizedMatrix*, kMax> qs{};
  for (size_t k = 0; k < ls.size(); ++k) qs[k] = ls[k]->q.get();
  qmatmul_many(x, n, std::span(qs.data(), ls.size()), ys, use);
  for (size_t k = 0; k < ls.size(); ++k) add_bias(*ls[k], n, ys[k]);
}

void Linear::forward(const float* x, int64_t n, float* y, GemmUse use) const {
  if (q && in_order) {
    // The input in g_idx order (act-order checkpoints); the buffer is kept per thread so decode
    // does not allocate per call.
    thread_local std::vector<float> xs;
    xs.resize(static_cast<size_t>(n * in));
    const std::vector<int32_t>& order = *in_order;
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < in; ++j) xs[static_cast<size_t>(t * in + j)] = x[t * in + order[j]];
    }
    qmatmul(xs.data(), n, *q, y, use);
  } else if (q) {
    qmatmul(x, n, *q, y, use);
  } else if (w16 != nullptr) {
    matmul_f16(x, n, in, w16, out, y);
  } else if (wbf16 != nullptr) {
    matmul_bf16_by_chunks(*this, x, n, y);
  } else {
    matmul_f32(x, n, in, w, out, y);
  }
  add_bias(*this, n, y);
}

void Linear::rows_f32(int64_t r0, int64_t rows, float* dst) const {
  WKVQ_ASSERT(has_float() && r0 >= 0 && rows >= 0 && r0 + rows <= out);
  const int64_t begin = r0 * in, n = rows * in;
  parallel_for(n, int64_t{1} << 16, [&](int64_t b, int64_t e) {
    const auto count = static_cast<size_t>(e - b);
    if (w != nullptr) {
      std::copy_n(w + begin + b, count, dst + b);
    } else if (w16 != nullptr) {
      fp16_to_f32(w16 + begin + b, dst + b, count);
    } else {
      bf16_to_f32(wbf16 + begin + b, dst + b, count);
    }
  });
}

void Linear::row(int64_t r, float* dst) const {
  WKVQ_ASSERT(r >= 0 && r < out);
  if (!q) {
    const int64_t b = r * in;
    if (w != nullptr) {
      std::copy_n(w + b, in, dst);
    } else if (w16 != nullptr) {
      fp16_to_f32(w16 + b, dst, static_cast<size_t>(in));
    } else {
      bf16_to_f32(wbf16 + b, dst, static_cast<size_t>(in));
    }
    return;
  }
  if (!in_order) {
    dequantize_row_ref(*q, r, dst);
    return;
  }
  thread_local std::vector<float> tmp;
  tmp.resize(static_cast<size_t>(in));
  dequantize_row_ref(*q, r, tmp.data());
  for (int64_t j = 0; j < in; ++j) dst[(*in_order)[static_cast<size_t>(j)]] = tmp[j];
}

std::vector<float> Linear::dense_f32() const {
  std::vector<float> d(static_cast<size_t>(out * in));
  if (!q) {
    rows_f32(0, out, d.data());
    return d;
  }
  dequantize_weights_ref(*q, d.data());
  if (!in_order) return d;
  std::vector<float> row(static_cast<size_t>(in));
  for (int64_t r = 0; r < out; ++r) {
    float* dr = d.data() + r * in;
    for (int64_t j = 0; j < in; ++j) row[static_cast<size_t>((*in_order)[j])] = dr[j];
    std::copy(row.begin(), row.end(), dr);
  }
  return d;
}

const float* Linear::f32_view(std::vector<float>& scratch) const {
  if (w != nullptr) return w;
  scratch.resize(static_cast<size_t>(out * in));
  rows_f32(0, out, scratch.data());
  return scratch.data();
}

float Linear::weight_f32(int64_t i) const {
  WKVQ_ASSERT(has_float() && i >= 0 && i < out * in);
  if (w != nullptr) return w[i];
  return w16 != nullptr ? fp16_to_f32(w16[i]) : bf16_to_f32(wbf16[i]);
}

const void* Linear::float_data() const {
  if (w != nullptr) return w;
  return w16 != nullptr ? static_cast<const void*>(w16) : static_cast<const void*>(wbf16);
}

int64_t Linear::float_bytes() const {
  if (!has_float()) return 0;
  return out * in * static_cast<int64_t>(w != nullptr ? sizeof(float) : sizeof(uint16_t));
}

int64_t Linear::bytes() const {
  const int64_t b = bias != nullptr ? out * static_cast<int64_t>(sizeof(float)) : 0;
  if (q) return b + q->bytes();
  return b + float_bytes();
}

std::shared_ptr<const QuantizedMatrix> inference_matrix(QuantizedMatrix m) {
  // Only matrices the int8 GEMV takes (4 or 8 bits, groups of whole blocks) read the copy.
  if (reads_tile_layout(kernel_table()) && qmatmul_q8_applies(m)) add_tile_layout(m);
  return std::make_shared<const QuantizedMatrix>(std::move(m));
}

}  // namespace wkvq
