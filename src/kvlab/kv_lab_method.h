// A KV lab method ready to run on one model: the spec (kvlab/kv_method.h) with the static data it
// needs (smoothing, static ranges, rotations, codebook), and its round trip of K or V rows.
#pragma once

#include <cstdint>
#include <vector>

#include "kvlab/kv_method.h"
#include "model/config.h"
#include "model/kv_smoothing.h"

namespace wkvq {

class KvLabMethod {
 public:
  // `smoothing` (kept by reference; needed when spec.smooth) and `ranges` (copied; needed when
  // spec.rel8) come from calibration text. Throws when the method cannot run on `c` or lacks them.
  KvLabMethod(const KvMethodSpec& spec, const LlamaConfig& c, const KvSmoothing* smoothing,
              const KvGroupRanges* ranges);

  const KvMethodSpec& spec() const { return spec_; }
  KvShape shape() const { return {kv_dim_, head_dim_, n_layers_}; }

  // The view of the cache when it holds `t` tokens: positions < key_quantized_end(t) read their
  // round-tripped keys, the rest their fp16 keys; the same for values.
  //   keys:   floor(max(0, t - w) / kb) * kb, kb = KIVI's residual r (whole groups of tokens
  //           are quantized when r tokens have gathered), else 1;
  //   values: max(0, t - w - r) (r = 0 but for KIVI).
  int64_t key_quantized_end(int64_t t) const;
  int64_t value_quantized_end(int64_t t) const;
  // Round trips of layer `layer`'s rows [0, n) (n tokens, kv_dim channels each, consecutive).
  // Keys go in whole blocks of key_block() tokens (KIVI's per-channel groups), values any n.
  int64_t key_block() const;
  // pos0: the position of row 0 (kvquant undoes and redoes RoPE).
  void round_trip_keys(int layer, const float* k, int64_t n, int64_t pos0, float* out) const;
  void round_trip_values(int layer, const float* v, int64_t n, float* out) const;

  // The transform the quantizer sees of one token at position `pos`: for the Int family the
  // smoothing, then the per-head rotation; for kvquant's keys RoPE undone; identity otherwise.
  // Used to calibrate static ranges, per group of range_group() channels.
  void transform(bool key, int layer, int64_t pos, const float* x, float* y) const;
  int64_t range_group() const { return spec_.family == KvFamily::KvQuant ? 1 : group_; }

  // Turbo: the codebook and the rotation (head_dim x head_dim, row-major) of (layer, K or V, kv
  // head); empty for the other families.
  const std::vector<double>& codebook() const { return levels_; }
  std::vector<double> rotation(int layer, bool key, int64_t head) const;

 private:
  // The int methods' bits, per layer or uniform, are ones their quantizer takes.
  void check_int_bits() const;
  // One token's row of K (key) or V, any family but KIVI's keys.
  void round_trip_row(bool key, int layer, const float* x, float* out) const;
  void round_trip_int(bool key, int layer, const float* x, float* out) const;
  void untransform(bool key, int layer, float* y) const;
  void round_trip_turbo(bool key, int layer, const float* x, float* out) const;
  void round_trip_kivi_keys(const float* k, int64_t n, float* out) const;
  void round_trip_kvquant_key(int layer, int64_t pos, const float* x, float* out) const;
  // RoPE of one token's K at `pos` (inverse: at -pos).
  void rope_key(float* x, int64_t pos) const;

  KvMethodSpec spec_;
  int n_layers_ = 0;
  int64_t kv_dim_ = 0, head_dim_ = 0, group_ = 0;
  const KvSmoothing* smoothing_ = nullptr;
  LlamaConfig config_;
  KvGroupRanges ranges_;
  std::vector<KvRel8Group> rel8_;  // Int with rel8: the levels, (n_layers, K/V, n_groups)
  std::vector<double> levels_;     // turbo codebook
  std::vector<double> rotations_;  // turbo: (n_layers, 2, n_kv_heads, head_dim, head_dim)
};

}  // namespace wkvq
