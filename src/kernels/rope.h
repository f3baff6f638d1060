// Rotary position embedding (RoPE) on the heads of one token's q or k vector.
#pragma once

#include <cstdint>
#include <vector>

namespace wkvq {

// How RoPE pairs channels within a head of size hd:
//  Interleaved (llama2.c, Meta): channels (2i, 2i+1) rotate by angle pos * freq_i;
//  RotateHalf (Hugging Face):   channels (i, i + hd/2) rotate by the same angle.
// The two are the same function up to a permutation of each head's q/k rows.
enum class RopeLayout { Interleaved, RotateHalf };

// Scaling of the RoPE frequencies (Hugging Face config.json "rope_scaling"). With
// base_i = theta^(-2i/hd):
//  None:   freq_i = base_i;
//  Linear: freq_i = base_i / factor (positions divided by factor);
//  Llama3: with wavelen_i = 2 pi / base_i, lo = original_max_position / low_freq_factor and
//          hi = original_max_position / high_freq_factor:
//            wavelen_i > lo -> base_i / factor        (long wavelengths: scaled)
//            wavelen_i < hi -> base_i                 (short wavelengths: kept)
//            else           -> (1 - s) base_i / factor + s base_i,
//                              s = (original_max_position / wavelen_i - low_freq_factor)
//                                  / (high_freq_factor - low_freq_factor).
struct RopeScaling {
  enum class Kind { None, Linear, Llama3 };
  Kind kind = Kind::None;
  double factor = 1.0;            // Linear, Llama3: > 0
  double low_freq_factor = 1.0;   // Llama3: > 0
  double high_freq_factor = 4.0;  // Llama3: > low_freq_factor
  int original_max_position = 0;  // Llama3: > 0 (original_max_position_embeddings)
};

// The hd/2 rotation frequencies freq_i (radians per position) of a head of size hd, in double.
std::vector<double> rope_frequencies(int head_dim, double theta, const RopeScaling& scaling);

// cos/sin of every (position, pair) for positions [pos0, pos0 + n): rows of head_dim/2 entries.
// Angles are computed in double (pos * freq_i) and rounded once to float.
struct RopeTable {
  int head_dim = 0;
  std::vector<float> cos, sin;  // (n, head_dim / 2)
  void build(int64_t pos0, int64_t n, int head_dim, float theta,
             const RopeScaling& scaling = RopeScaling{});
};

// Rotates x = (n_heads, head_dim) in place with row `t` of the table.
void rope_apply(float* x, int n_heads, int head_dim, const RopeTable& table, int64_t t,
                RopeLayout layout);

}  // namespace wkvq
