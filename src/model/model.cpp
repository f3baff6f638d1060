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
