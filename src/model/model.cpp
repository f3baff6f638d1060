#include "model/model.h"

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

int64_t Model::weight_bytes() const {
  const LlamaConfig& c = config;
  int64_t b = int64_t{c.vocab_size} * c.dim * 4 + int64_t{c.dim} * 4;  // embeddings + final norm
  for (const LayerWeights& l : layers) {
    b += 2 * int64_t{c.dim} * 4;
    if (l.q_norm != nullptr) b += int64_t{c.head_dim} * 4;
    if (l.k_norm != nullptr) b += int64_t{c.head_dim} * 4;
    for (const Linear* lin : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      b += lin->bytes();
    }
  }
  if (!config.tied_output) b += output.bytes();
  return b;
}

}  // namespace wkvq
