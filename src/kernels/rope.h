// Rotary position embedding (RoPE) on the heads of one token's q or k vector.
#pragma once

#include <cstdint>
#include <vector>

namespace wkvq {

// How RoPE pairs channels within a head of size hd:
//  Interleaved (llama2.c, Meta): channels (2i, 2i+1) rotate by angle pos * theta^(-2i/hd);
//  RotateHalf (Hugging Face):   channels (i, i + hd/2) rotate by the same angle.
// The two are the same function up to a permutation of each head's q/k rows.
enum class RopeLayout { Interleaved, RotateHalf };

// cos/sin of every (position, pair) for positions [pos0, pos0 + n): rows of head_dim/2 entries.
// Angles are computed in double and rounded once to float.
struct RopeTable {
  int head_dim = 0;
  std::vector<float> cos, sin;  // (n, head_dim / 2)
  void build(int64_t pos0, int64_t n, int head_dim, float theta);
};

// Rotates x = (n_heads, head_dim) in place with row `t` of the table.
void rope_apply(float* x, int n_heads, int head_dim, const RopeTable& table, int64_t t,
                RopeLayout layout);

}  // namespace wkvq
