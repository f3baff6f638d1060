// SimKvStore: the KV cache of a KV lab method by simulation (issue 16). It keeps the full-precision
// K/V of the window and a view of what the method's cache would hold: the round-tripped (quantize,
// then dequantize) K/V in f32 for the positions the method has quantized, fp16 for the positions
// it still keeps in full precision (windows, KIVI's residual). Attention is the runtime's
// (attend_chunk of runtime/attention.h over an f32 StoredKvLayer), with POQ exactly as in the
// runtime: the current token in full precision.
//
// Every query reads the view of the cache as it is when that token is decoded (the view of KIVI
// and of windows changes with time: rows move from fp16 to round-tripped), so a chunk of n tokens
// gives the same result as the same tokens decoded one by one (tests/unit/kvlab_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "eval/perplexity.h"
#include "kvlab/kv_lab_method.h"
#include "model/config.h"

namespace wkvq {

class SimKvStore final : public EvalKvStore {
 public:
  // Room for `max_tokens` positions; `method` is kept by reference. poq: the current token in
  // full precision (off: it reads its own K/V back from the view, quantized when the method
  // quantizes it at once).
  SimKvStore(const KvLabMethod& method, const LlamaConfig& c, int64_t max_tokens, bool poq);

  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override;
  void reset() override;

  // Stores n tokens of layer `layer` at positions [pos0, pos0 + n) without attending, and writes
  // the view of the cache holding `tokens` <= pos0 + n of them: rows [0, tokens) of vk, vv (what
  // the method's cache gives back then). For kv-roundtrip and the tests.
  void store_and_view(int layer, const float* k, const float* v, int64_t n, int64_t pos0,
                      int64_t tokens, float* vk, float* vv);

 private:
  struct Layer {
    std::vector<float> fk, fv;  // full precision, (max_tokens, kv_dim)
    std::vector<float> hk, hv;  // the same rounded to fp16 (what a full-precision window holds)
    std::vector<float> qk, qv;  // round-tripped rows [0, done_k), [0, done_v)
    int64_t stored = 0;         // positions stored
    int64_t done_k = 0, done_v = 0;
  };
  // Stores the rows and round-trips every row the view of the cache holding `horizon` tokens needs.
  void append(Layer& l, int layer, const float* k, const float* v, int64_t n, int64_t pos0,
              int64_t horizon);
  // The view of the cache holding `tokens` tokens: rows [0, tokens) of vk, vv, from row `from` on
  // (rows before it already hold that view's values: views only move rows from fp16 to
  // round-tripped as the cache grows).
  void build_view(const Layer& l, int64_t from, int64_t tokens, float* vk, float* vv) const;
  // The one call of the runtime attention: queries q (n rows) at positions [pos, pos + n) over
  // the view vk, vv (the positions before full_precision_from(...)) and the current k, v.
  void attend_view(const float* vk, const float* vv, const float* q, const float* k, const float* v,
                   int64_t n, int64_t pos, float* out) const;
  // The view is a prefix of every later one (nothing kept in fp16 for a while): a chunk attends
  // in one call over the round-tripped rows.
  bool prefix_stable() const;

  const KvLabMethod& method_;
  int n_heads_, n_kv_heads_, head_dim_;
  int64_t kv_dim_, max_tokens_;
  bool poq_;
  std::vector<Layer> layers_;
};

}  // namespace wkvq
