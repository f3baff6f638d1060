// The int8-activation GEMV and GEMM for 4-bit weights (kernels/qmatmul_q8.h) on AVX2, for CPUs
// without AVX512_VNNI: the arithmetic of qmatmul_q8_ref, with the AVX512_VNNI kernels' float
// operations in their order (so both ISAs give the same numbers). Chosen by the kernel table
// (WKVQ_DECODE_GEMV=int8, WKVQ_PREFILL_GEMM=int8).
//
//  - quantize: x in the GEMV layout (qmatmul_impl.h), per block of 128 columns d = max|x| / 127,
//    q = round(x * (1 / d)) half to even, dsum = d * sum(q): the reference's operations.
//  - Integer sums: a 64-byte line of W's codes (one 128-column block of a row) is two ymm; each
//    meets x with one AND (low nibbles) and one shift and AND (high nibbles), then vpmaddubsw
//    (unsigned code x signed x code, pairs added in int16: at most 2 * 15 * 127 = 3810) per
//    32-byte quarter; the four int16 vectors are added (at most 15240 < 2^15) and vpmaddwd with
//    ones widens them to 8 int32 partial sums: 5 multiplies per 128 weights, against 16 FMAs in
//    the f32 scaled GEMV (qmatmul_gemv_avx2.cpp).
//  - Four W rows at a time, two blocks per step: each x block is loaded once for the four rows,
//    the 8 partial-sum vectors reduced to 8 exact block sums at once (reduce8) into scratch.
//  - Per tile of 8 W rows the block sums are transposed to vectors over the rows and become
//    floats: per x block acc = fma(d, s * float(sum), acc), then acc = acc - dsum * (z s) fused.
//  - Every row of x runs against a tile in turn while the tile's codes stay in L1/L2, so W is read
//    from memory once per call. The GEMM (`packed`, prefill) is the same loop over chunks of
//    kGemmTiles tiles, so that x is read once per 64 rows of W rather than per tile.
#include <cstring>

#include "core/error.h"
#include "kernels/qgroups_avx2.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx2.h"

namespace wkvq::detail {
namespace {

constexpr int64_t kTile = 8;                 // W rows per tile (one vector of outputs)
constexpr int64_t kLineBytes = 64;           // codes of one 128-column block
constexpr int64_t kHalf = 32;                // one ymm of codes
constexpr int64_t kParamFloats = 2 * kTile;  // per group of a tile: s of the 8 rows, then z * s
constexpr int64_t kGemmTiles = 8;            // tiles per chunk of the GEMM
// Software prefetch: each line's counterpart in the next four rows (the next rows4 step over the
// same blocks), into L1. On Zen 1 (wkvq_qmatmul_bench GemvCold 2048 x 2048 and 5632 x 2048,
// interleaved), GB/s of codes: 1 thread 6.2-7.2 against 4.4-4.6 without, 2 threads 11.5-12.6
// against 7.2-7.9; 2048-8192 bytes ahead in the row 5.4-7.2, into L2 8192-32768 ahead as well
// 6.9-7.5 (no better beyond noise).
constexpr int64_t kPrefetchRows = 4;
static_assert(kQ8Block == 2 * kLineBytes && kQ8GemvBlockBytes == 2 * kLineBytes);
static_assert(kQ8GemvRows % kTile == 0, "the GEMV split's row units are whole tiles");

// ---- quantize ----

// 8 + 8 int32 codes (in [-127, 127]) as 16 int8 at q.
inline void store16(int8_t* q, __m256i a, __m256i b) {
  const __m128i a16 = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  const __m128i b16 = _mm_packs_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm_packs_epi16(a16, b16));
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// One block of x (`len` columns from x; zeros past them) into the GEMV layout at q (128 bytes).
inline void quantize_block(const float* x, int64_t len, int8_t* q, float* d, float* dsum) {
  constexpr int kVecs = static_cast<int>(kQ8Block / kLanes);
  __m256 v[kVecs];
  __m256 amax = _mm256_setzero_ps();
  __m256 probe = _mm256_setzero_ps();  // NaN iff some x is NaN or infinite
  const __m256 sign = _mm256_set1_ps(-0.0f);
#pragma GCC unroll 16
  for (int j = 0; j < kVecs; ++j) {
    const int64_t count = len - j * kLanes;
    v[j] = Avx2::load_first(x + j * kLanes, lane_mask(count), count);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[j]));
    probe = _mm256_add_ps(probe, _mm256_mul_ps(v[j], _mm256_setzero_ps()));
  }
  const float dd = Avx2::hmax(amax) / 127.0f + Avx2::hsum(probe);
  const bool finite = dd - dd == 0.0f;
  const __m256 id = _mm256_set1_ps(finite && dd != 0.0f ? 1.0f / dd : 0.0f);
  __m256i qi[kVecs];
  __m256i sum = _mm256_setzero_si256();
#pragma GCC unroll 16
  for (int j = 0; j < kVecs; ++j) {
    qi[j] = finite ? _mm256_cvtps_epi32(_mm256_mul_ps(v[j], id))  // half to even
                   : _mm256_setzero_si256();
    sum = _mm256_add_epi32(sum, qi[j]);
  }
#pragma GCC unroll 8
  for (int u = 0; u < kVecs / 2; ++u) {  // columns 16 u .. +15: nibble u % 2 of bytes 16 (u / 2)
    store16(q + (u % 2) * kLineBytes + (u / 2) * 16, qi[2 * u], qi[2 * u + 1]);
  }
  *d = dd;
  *dsum = dd * static_cast<float>(hsum_i32(sum));
}

void quantize_gemv(const float* x, int64_t cols, int64_t i0, int64_t i1, int8_t* q, float* d,
                   float* dsum, int64_t stride, int64_t blocks) {
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kQ8Block;
      quantize_block(x + i * cols + c0, cols - c0, q + i * stride + b * kQ8GemvBlockBytes,
                     d + i * blocks + b, dsum + i * blocks + b);
    }
  }
}

// ---- block sums ----

// Codes [0, bytes) of a 32-byte half line, the rest 0 (bytes a multiple of 16: rows are whole
// 16-byte units; bytes >= 32 reads all 32).
inline __m256i load_half(const uint8_t* p, int64_t bytes) {
  if (bytes >= kHalf) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if (bytes > 0)
    return _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_setzero_si256();
}

// 8-bit codes [0, bytes) of a 32-byte piece, the rest 0: 8-bit rows are `cols` bytes (no
// padding), so a row's last piece may be any length and must not be read past.
inline __m256i load_piece8(const uint8_t* p, int64_t bytes) {
  if (bytes >= kHalf) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  alignas(32) uint8_t buf[kHalf] = {};
  if (bytes > 0) std::memcpy(buf, p, static_cast<size_t>(bytes));
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
}

// The 8 int32 partial sums of one block line (halves a, b) against x block xv (GEMV layout: the
// codes for the low nibbles of a, of b, then for the high nibbles of a, of b).
inline __m256i line_sums(__m256i a, __m256i b, const __m256i (&xv)[4]) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i s0 = _mm256_maddubs_epi16(_mm256_and_si256(a, nib), xv[0]);
  const __m256i s1 = _mm256_maddubs_epi16(_mm256_and_si256(b, nib), xv[1]);
  const __m256i s2 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(a, 4), nib), xv[2]);
  const __m256i s3 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(b, 4), nib), xv[3]);
  const __m256i s = _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3));
  return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

// 8-bit codes: the 8 int32 partial sums of sum (q - 128) xq over one block line (w: 4 ymm, columns
// in order) against x block xn (columns in order). vpmaddubsw needs one unsigned operand: |q - 128|
// <= 128 takes it, xq the sign of q - 128 (pairs at most 2 * 128 * 127 = 32512 < 2^15: exact),
// and one vpmaddwd with ones per quarter widens them (two quarters could exceed 2^15).
inline __m256i line_sums8(const __m256i (&w)[4], const __m256i (&xn)[4]) {
  const __m256i bias = _mm256_set1_epi8(-128);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const __m256i c = _mm256_xor_si256(w[k], bias);  // q - 128 as int8
    const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(c), _mm256_sign_epi8(xn[k], c));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
  }
  return acc;
}

// Lane k of the result: the sum of the 8 lanes of v[k] (exact int32). Interleave 32-bit pairs,
// 64-bit pairs, then add the 128-bit halves.
inline __m256i reduce8(const __m256i (&v)[8]) {
  __m256i a[4];  // per 128-bit half: v[2k] and v[2k + 1] summed pairwise
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    a[k] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * k], v[2 * k + 1]),
                            _mm256_unpackhi_epi32(v[2 * k], v[2 * k + 1]));
  }
  __m256i r[2];  // 128-bit half h of r[k]: the sums of v[4k .. 4k + 3] over half h
#pragma GCC unroll 2
  for (int k = 0; k < 2; ++k) {
    r[k] = _mm256_add_epi32(_mm256_unpacklo_epi64(a[2 * k], a[2 * k + 1]),
                            _mm256_unpackhi_epi64(a[2 * k], a[2 * k + 1]));
  }
  return _mm256_add_epi32(_mm256_permute2x128_si256(r[0], r[1], 0x20),
                          _mm256_permute2x128_si256(r[0], r[1], 0x31));
}

// Code bytes per block line: 64 (4 bits), 128 (8 bits).
template <int kBits>
constexpr int64_t kLine = kBits* kQ8Block / 8;

// The exact sums of blocks b0, b0 + 1 of W rows [0, nrows) (nrows <= 4, row_bytes apart) against
// one x row: sums[r * sstride + b]; a block past `blocks` gets 0. 4 bits: xq in the GEMV layout;
// 8 bits: xq with its columns in order and xbias its block sums times 128 (line_sums8 sums
// (q - 128) xq).
template <int kBits, bool kWhole>
inline void rows4_step(const uint8_t* codes, int64_t row_bytes, int64_t nrows, int64_t b0,
                       int64_t blocks, const int8_t* xq, const int32_t* xbias, int32_t* sums,
                       int64_t sstride) {
  constexpr int64_t kL = kLine<kBits>;
  __m256i v[8];  // v[r * 2 + bb]
#pragma GCC unroll 2
  for (int bb = 0; bb < 2; ++bb) {
    const int64_t b = b0 + bb;
    const bool in = kWhole || b < blocks;
    __m256i xv[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      xv[k] = in ? _mm256_loadu_si256(
                       reinterpret_cast<const __m256i*>(xq + b * kQ8GemvBlockBytes + k * kHalf))
                 : _mm256_setzero_si256();
    }
    const int64_t bytes = kWhole ? kL : row_bytes - b * kL;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      if ((kWhole || r < nrows) && in) {
        const uint8_t* line = codes + r * row_bytes + b * kL;
#pragma GCC unroll 2
        for (int64_t at = 0; at < kL; at += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(line) + kPrefetchRows * row_bytes + at,
                       _MM_HINT_T0);
        }
        if constexpr (kBits == 4) {
          v[r * 2 + bb] =
              line_sums(load_half(line, bytes), load_half(line + kHalf, bytes - kHalf), xv);
        } else {
          const __m256i w[4] = {load_piece8(line, bytes), load_piece8(line + kHalf, bytes - kHalf),
                                load_piece8(line + 2 * kHalf, bytes - 2 * kHalf),
                                load_piece8(line + 3 * kHalf, bytes - 3 * kHalf)};
          v[r * 2 + bb] = line_sums8(w, xv);
        }
      } else {
        v[r * 2 + bb] = _mm256_setzero_si256();
      }
    }
  }
  __m256i total = reduce8(v);
  if constexpr (kBits == 8) {  // + 128 sum(xq) of blocks b0, b0 + 1 in every row's pair of lanes
    int64_t pair;
    std::memcpy(&pair, xbias + b0, sizeof pair);
    total = _mm256_add_epi32(total, _mm256_set1_epi64x(pair));
  }
  alignas(32) int32_t red[8];  // lane r * 2 + bb
  _mm256_store_si256(reinterpret_cast<__m256i*>(red), total);
  for (int64_t r = 0; r < nrows; ++r) {
    sums[r * sstride + b0] = red[2 * r];
    sums[r * sstride + b0 + 1] = red[2 * r + 1];
  }
}

template <int kBits>
void rows4_sums(const uint8_t* codes, int64_t row_bytes, int64_t nrows, int64_t blocks,
                const int8_t* xq, const int32_t* xbias, int32_t* sums, int64_t sstride) {
  const int64_t full = row_bytes / kLine<kBits>;  // blocks with all their code bytes
  int64_t b0 = 0;
  if (nrows == 4) {
    for (; b0 + 2 <= full; b0 += 2) {
      rows4_step<kBits, true>(codes, row_bytes, 4, b0, blocks, xq, xbias, sums, sstride);
    }
  }
  for (; b0 < blocks; b0 += 2) {
    rows4_step<kBits, false>(codes, row_bytes, nrows, b0, blocks, xq, xbias, sums, sstride);
  }
}

// For 8-bit W: rows [i0, i1) of x8 (GEMV layout) with their columns in order at xn (blocks *
// kQ8GemvBlockBytes bytes per row), and 128 times each block's sum of codes at xbias (bpad int32
// per row, zero past the blocks). The GEMV layout's ymm k holds columns 32 j + 16 h + (0..15) of
// the pairs (j, h) = (2k, 0), (2k + 1, 0) for k < 2 and (2k - 4, 1), (2k - 3, 1) after.
void columns_in_order(const Q8View& x8, int64_t i0, int64_t i1, int64_t bpad, int8_t* xn,
                      int32_t* xbias) {
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int64_t i = i0; i < i1; ++i) {
    int8_t* row = xn + (i - i0) * x8.blocks * kQ8GemvBlockBytes;
    int32_t* bias = xbias + (i - i0) * bpad;
    for (int64_t b = 0; b < bpad; ++b) bias[b] = 0;
    for (int64_t b = 0; b < x8.blocks; ++b) {
      const int8_t* src = x8.q + i * x8.stride + b * kQ8GemvBlockBytes;
      __m256i v[4];
      for (int k = 0; k < 4; ++k) {
        v[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k * kHalf));
      }
      const __m256i out[4] = {
          _mm256_permute2x128_si256(v[0], v[2], 0x20), _mm256_permute2x128_si256(v[0], v[2], 0x31),
          _mm256_permute2x128_si256(v[1], v[3], 0x20), _mm256_permute2x128_si256(v[1], v[3], 0x31)};
      __m256i sum = _mm256_setzero_si256();
      for (int k = 0; k < 4; ++k) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + b * kQ8GemvBlockBytes + k * kHalf),
                            out[k]);
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, out[k]), ones16));
      }
      bias[b] = 128 * hsum_i32(sum);
    }
  }
}

// ---- tiles ----

// Per group g of W rows [o, o + rows): s at params[g * 16 + r], z * s at params[g * 16 + 8 + r]
// (rows >= `rows`: zero); z * s rounded once, as in the reference.
void tile_params(const QMatView& w, int64_t o, int64_t rows, float* params) {
  for (int64_t g0 = 0; g0 < w.n_groups; g0 += kLanes) {
    const int64_t count = min64(kLanes, w.n_groups - g0);
    __m256 s[8];
    __m256 zs[8];
#pragma GCC unroll 8
    for (int r = 0; r < kTile; ++r) {
      if (r < rows) {
        alignas(32) float sv[8];
        alignas(32) int32_t zv[8];
        load_group_params(w, o + r, g0, count, sv, zv);
        s[r] = _mm256_load_ps(sv);
        zs[r] = _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(zv))), s[r]);
      } else {
        s[r] = _mm256_setzero_ps();
        zs[r] = _mm256_setzero_ps();
      }
    }
    Avx2::transpose(s);
    Avx2::transpose(zs);
    for (int64_t g = g0; g < g0 + count; ++g) {
      _mm256_store_ps(params + g * kParamFloats, s[g - g0]);
      _mm256_store_ps(params + g * kParamFloats + kTile, zs[g - g0]);
    }
  }
}

// y[i, o .. o + rows) of x row i against one tile (params from tile_params); xq, xbias: x row i as
// rows4_sums takes it; sums: kTile rows of bpad int32 (bpad = blocks rounded up to 8), 32-byte
// aligned.
template <int kBits>
void tile_row(const Q8View& x8, int64_t i, const int8_t* xq, const int32_t* xbias,
              const QMatView& w, int64_t o, int64_t rows, const float* params, int32_t* sums,
              int64_t bpad, float* y, int64_t ldy) {
  const int64_t blocks = x8.blocks;
  for (int64_t r = 0; r < rows; r += 4) {
    rows4_sums<kBits>(w.codes + (o + r) * w.row_bytes, w.row_bytes, min64(4, rows - r), blocks, xq,
                      xbias, sums + r * bpad, bpad);
  }
  const int64_t group_blocks = w.n_groups == 1 ? blocks : w.group / kQ8Block;
  const float* d = x8.d + i * blocks;
  const float* dsum = x8.dsum + i * blocks;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b0 = 0; b0 < blocks; b0 += 8) {
    __m256 t[8];  // after the transpose t[bb]: block b0 + bb, lane r = W row
#pragma GCC unroll 8
    for (int r = 0; r < kTile; ++r) {
      t[r] = _mm256_load_ps(reinterpret_cast<const float*>(sums + r * bpad + b0));
    }
    Avx2::transpose(t);
    for (int64_t bb = 0; bb < 8 && b0 + bb < blocks; ++bb) {
      const int64_t b = b0 + bb;
      const float* pg = params + b / group_blocks * kParamFloats;
      const __m256 sum = _mm256_cvtepi32_ps(_mm256_castps_si256(t[bb]));
      acc = _mm256_fmadd_ps(_mm256_set1_ps(d[b]), _mm256_mul_ps(_mm256_load_ps(pg), sum), acc);
      acc = _mm256_fnmadd_ps(_mm256_set1_ps(dsum[b]), _mm256_load_ps(pg + kTile), acc);
    }
  }
  Avx2::store_first(y + i * ldy + o, lane_mask(rows), rows, acc);
}

// Rows [b.i0, b.i1) of x against W rows [b.o0, b.o1), `tiles` tiles at a time: the parameters of
// a chunk of tiles, then every x row against each of its tiles. Scratch: the parameters (tiles *
// n_groups * kParamFloats floats), then kTile * bpad int32 of block sums; 64-byte aligned. 8 bits:
// x's rows in column order and their biases (columns_in_order) at `xn`, `xbias`.
template <int kBits>
void run_tiles(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
               uint8_t* scratch, int64_t tiles, const int8_t* xn, const int32_t* xbias) {
  float* const params = reinterpret_cast<float*>(scratch);
  const int64_t tile_floats = w.n_groups * kParamFloats;
  int32_t* const sums = reinterpret_cast<int32_t*>(params + tiles * tile_floats);
  const int64_t bpad = (x8.blocks + 7) / 8 * 8;
  for (int64_t k = 0; k < kTile * bpad; ++k) sums[k] = 0;  // blocks past the row's: 0
  for (int64_t o = b.o0; o < b.o1; o += tiles * kTile) {
    const int64_t chunk = min64(tiles * kTile, b.o1 - o);
    for (int64_t t = 0; t * kTile < chunk; ++t) {
      tile_params(w, o + t * kTile, min64(kTile, chunk - t * kTile), params + t * tile_floats);
    }
    for (int64_t i = b.i0; i < b.i1; ++i) {
      const int8_t* xq =
          kBits == 4 ? x8.q + i * x8.stride : xn + (i - b.i0) * x8.blocks * kQ8GemvBlockBytes;
      const int32_t* xb = kBits == 4 ? nullptr : xbias + (i - b.i0) * bpad;
      for (int64_t t = 0; t * kTile < chunk; ++t) {
        tile_row<kBits>(x8, i, xq, xb, w, o + t * kTile, min64(kTile, chunk - t * kTile),
                        params + t * tile_floats, sums, bpad, y, ldy);
      }
    }
  }
}

// The decode GEMV: one tile at a time (QGemmQ8Ops::gemv; scratch qgemv_q8_scratch_bytes).
void gemv(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b, uint8_t* scratch) {
  run_tiles<4>(x8, w, y, ldy, b, scratch, 1, nullptr, nullptr);
}

// The GEMM (QGemmQ8Ops::packed; scratch pack_bytes below).
void gemm(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b, uint8_t* scratch) {
  run_tiles<4>(x8, w, y, ldy, b, scratch, kGemmTiles, nullptr, nullptr);
}

// The parameters of kGemmTiles tiles, then the block sums (blocks rounded up to 8), plus 64 bytes.
int64_t pack_bytes(int64_t blocks, int64_t n_groups) {
  const int64_t params = kGemmTiles * n_groups * kParamFloats * 4;
  return params + kTile * ((blocks + 7) / 8 * 8) * 4 + 64;
}
// The GEMV's scratch (qgemv_q8_scratch_bytes, sized for the VNNI GEMV) holds one tile's parameters
// (n_groups * 64 bytes of its n_groups * 128) and the block sums (8 * ceil8(blocks) int32 of its
// 16 * 16 * ceil4(blocks) int32); the 8-bit GEMV's x rows in column order and their biases follow
// at qgemv_q8_scratch_bytes(n_groups, blocks, 0), as that function lays them out.

// Blocking: x rows in units of 1, W rows in units of a GEMM chunk (kc, nc unused).
constexpr QGemmBlocking kB{1, kTile* kGemmTiles, kQ8Block, kTile* kGemmTiles};
// Both entry points take x in the GEMV layout, so `quantize` is the same quantizer.
constexpr QGemmQ8Ops kOps{&quantize_gemv, &gemm, kB,          &quantize_gemv,
                          &gemv,          true,  &pack_bytes, &qgemv_q8_avx2_8bit};

}  // namespace

const QGemmQ8Ops& qgemm_q8_ops_avx2() { return kOps; }

// The 8-bit GEMV (QGemmQ8Ops::gemv8): x's rows put in column order once per call, then the tiles.
void qgemv_q8_avx2_8bit(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
                        uint8_t* scratch) {
  WKVQ_ASSERT(w.bits == 8);
  const int64_t bpad = (x8.blocks + 7) / 8 * 8;
  auto* const xn =
      reinterpret_cast<int8_t*>(scratch + qgemv_q8_scratch_bytes(w.n_groups, x8.blocks, 0));
  auto* const xbias =
      reinterpret_cast<int32_t*>(xn + (b.i1 - b.i0) * x8.blocks * kQ8GemvBlockBytes);
  columns_in_order(x8, b.i0, b.i1, bpad, xn, xbias);
  run_tiles<8>(x8, w, y, ldy, b, scratch, 1, xn, xbias);
}

}  // namespace wkvq::detail
