#include "model/model.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/huge_pages.h"

namespace wkvq {

float* WeightStorage::allocate(size_t n) {
  auto buf = std::shared_ptr<float[]>(new float[n]());
  float* p = buf.get();
  holders.push_back(std::shared_ptr<const void>(buf, p));
  return p;
}

uint16_t* WeightStorage::allocate_fp16(size_t n) {
  auto buf = std::shared_ptr<uint16_t[]>(new uint16_t[n]());
  uint16_t* p = buf.get();
  holders.push_back(std::shared_ptr<const void>(buf, p));
  return p;
}

void WeightStorage::hold_file(std::shared_ptr<const MappedFile> file) {
  holders.push_back(file);
  files.push_back(std::move(file));
}

void WeightStorage::release_pages(const void* p, int64_t bytes) const {
  if (p == nullptr || bytes <= 0) return;
  for (const auto& f : files) {
    if (f->contains(p, static_cast<size_t>(bytes))) {
      f->release(p, static_cast<size_t>(bytes));
      return;
    }
  }
}

void WeightStorage::release_file_pages() const {
  for (const auto& f : files) {
    if (f->size() > 0) f->release(f->data(), f->size());
  }
}

void WeightStorage::release(const void* p, int64_t bytes) {
  if (p == nullptr) return;
  release_pages(p, bytes);
  std::erase_if(holders, [p](const std::shared_ptr<const void>& h) { return h.get() == p; });
}

void Model::embedding_row(int64_t token, float* dst) const {
  WKVQ_ASSERT(token >= 0 && token < config.vocab_size);
  if (tok_embeddings != nullptr) {
    std::memcpy(dst, tok_embeddings + token * config.dim, sizeof(float) * config.dim);
  } else {
    tok_embeddings_packed.row(token, dst);
  }
}

int64_t Model::embedding_bytes() const {
  if (tok_embeddings != nullptr) return int64_t{config.vocab_size} * config.dim * 4;
  return tok_embeddings_packed.bytes();
}

int64_t Model::weight_bytes() const {
  const LlamaConfig& c = config;
  int64_t b = embedding_bytes() + int64_t{c.dim} * 4;  // embeddings + final norm
  for (const LayerWeights& l : layers) {
    b += 2 * int64_t{c.dim} * 4;
    if (l.q_norm != nullptr) b += int64_t{c.head_dim} * 4;
    if (l.k_norm != nullptr) b += int64_t{c.head_dim} * 4;
    for (const Linear* lin : l.linears()) {
      b += lin->bytes();
    }
  }
  if (!config.tied_output) b += output.bytes();
  return b;
}

int64_t Model::layout_copy_bytes() const {
  int64_t b = tok_embeddings_packed.layout_copy_bytes() + output.layout_copy_bytes();
  for (const LayerWeights& l : layers) {
    for (const Linear* lin : l.linears()) {
      b += lin->layout_copy_bytes();
    }
  }
  return b;
}

namespace {
size_t advise_linear(const Linear& lin) {
  if (lin.q) {
    return advise_huge_pages(lin.q->codes.data(), lin.q->codes.size()) +
           advise_huge_pages(lin.q->tile_codes.data(), lin.q->tile_codes.size());
  }
  return advise_huge_pages(lin.float_data(), static_cast<size_t>(lin.float_bytes()));
}
}  // namespace

int64_t advise_huge_pages(const Model& m) {
  size_t n = advise_linear(m.output) + advise_linear(m.tok_embeddings_packed);
  if (m.tok_embeddings != nullptr && !(m.config.tied_output && m.output.w == m.tok_embeddings)) {
    n += advise_huge_pages(m.tok_embeddings, static_cast<size_t>(m.embedding_bytes()));
  }
  for (const LayerWeights& l : m.layers) {
    for (const Linear* lin : l.linears()) {
      n += advise_linear(*lin);
    }
  }
  return static_cast<int64_t>(n);
}

}  // namespace wkvq
