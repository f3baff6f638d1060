// The int8-activation GEMV of qmatmul_q8_gemv_avx512vnni.cpp for W in the tile layout
// (QMatView::tile_codes, formats/weight_quant.h), 4- and 8-bit W: the same numbers bit for bit as
// the AVX2 GEMVs and the 8-bit row path there (the GEMM's arithmetic, kernels/qmatmul_q8.h).
// AVX-512 with AVX512_VNNI.
//
// A tile's block of 128 columns is 16 lines at 4 bits, 32 at 8; lane r of line k holds code bytes
// 4k .. 4k + 3 of row r's block. At 8 bits those are 4 consecutive columns; at 4 bits their low
// nibbles are 4 consecutive columns and their high nibbles the 4 columns 16 further on: exactly
// the x codes at 4k .. 4k + 3 of the block's two GEMV-layout halves. So one vpdpbusd (per nibble
// half) against those 4 x codes broadcast adds 4 columns into each row's lane, and after the
// block's lines one vector holds the exact block sums of the tile's 16 rows: no horizontal
// reduction, no transposes, and W is read as one sequential stream (tile after tile). Hardware
// prefetch alone follows that stream, so no software prefetch is issued: on Zen 4 (TinyLlama W4KV4
// decode, 3 interleaved rounds, tok/s) 1 thread 38.3-40.6 without, 34.4-37.3 with the row path's
// 3 KB + 24 KB prefetches added; 2 threads 55.7-71.7 without, 51.4-53.1 with an 8 KB one.
// Kernel functions exceed the style's 60 lines only where the register tiling needs it.
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

constexpr int64_t kTile = kQ8GemvRows;                 // W rows per tile (one vector of outputs)
constexpr int64_t kLineBytes = kQ8GemvBlockBytes / 2;  // one line of the tile layout
static_assert(kTile == kLanes, "a tile's outputs are one vector");

// The x codes c .. c + 3 (one GEMV-layout half at 4 bits, column order at 8), in every lane.
inline __m512i x_quad(const int8_t* c) { return _mm512_broadcastd_epi32(_mm_loadu_si32(c)); }

// y[i0 + i, o .. o + rows) for M rows of x (codes xq, row stride xstride: the GEMV layout at 4
// bits, column order at 8; d and dsum those of x8's row i0 + i) against one tile of kBits-bit W in
// the tile layout, in the GEMM's order and with its operations (tile_epilogue's): per block
// acc = fma(d, s * float(sum), acc), then acc = acc - dsum * (z s). Independent chains of sums
// (vpdpbusd latency) where M is small.
template <int kBits, int M>
void tile_rows(const int8_t* xq, int64_t xstride, const Q8View& x8, int64_t i0, const QMatView& w,
               int64_t o, int64_t rows, float* y, int64_t ldy) {
  constexpr int kLines = kTile * kBits / 4;          // lines per 128-column block
  constexpr int kHalves = kBits == 4 ? 2 : 1;        // products per line and x row
  constexpr int kChains = M == 1 ? 4 / kHalves : 1;  // chains per half
  constexpr int64_t kBlockBytes = kLines * kLineBytes;
  const int64_t blocks = x8.blocks;
  const uint8_t* codes = w.tile_codes + o / kTile * blocks * kBlockBytes;
  const int64_t group_blocks = w.n_groups == 1 ? blocks : w.group / kQ8Block;
  const int64_t at = o / kTile * w.n_groups * kTile;  // the tile's parameters
  const __m512i nib = _mm512_set1_epi8(0x0F);
  __m512 acc[M];
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps();
  __m512 sc = _mm512_setzero_ps();
  __m512 zs = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    if (b % group_blocks == 0) {
      const int64_t g = at + b / group_blocks * kTile;
      sc = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.tile_scales + g)));
      const __m128i z = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.tile_zeros + g));
      zs = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(z)), sc);
    }
    __m512i sum[M][kChains][kHalves];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      for (int c = 0; c < kChains; ++c) {
        for (int h = 0; h < kHalves; ++h) sum[i][c][h] = _mm512_setzero_si512();
      }
    }
    const uint8_t* block = codes + b * kBlockBytes;
#pragma GCC unroll 32
    for (int k = 0; k < kLines; ++k) {
      __m512i line = _mm512_loadu_si512(block + k * kLineBytes);
      __asm__("" : "+v"(line));  // one load (as line_nibbles)
      __m512i part[kHalves];
      if constexpr (kBits == 4) {
        part[0] = _mm512_and_si512(line, nib);
        part[kHalves - 1] = _mm512_and_si512(_mm512_srli_epi16(line, 4), nib);
      } else {
        part[0] = line;  // unsigned bytes as they are: at most 4 x 255 x 127 per lane
      }
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        const int8_t* xb = xq + i * xstride + b * kQ8GemvBlockBytes + 4 * k;
        __m512i(&s)[kHalves] = sum[i][k % kChains];
        for (int h = 0; h < kHalves; ++h) {
          s[h] = _mm512_dpbusd_epi32(s[h], part[h], x_quad(xb + h * kLineBytes));
        }
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      __m512i total = _mm512_setzero_si512();
      for (int c = 0; c < kChains; ++c) {
        for (int h = 0; h < kHalves; ++h) total = _mm512_add_epi32(total, sum[i][c][h]);
      }
      const __m512 part = _mm512_mul_ps(sc, _mm512_cvtepi32_ps(total));
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(x8.d[(i0 + i) * blocks + b]), part, acc[i]);
      acc[i] = _mm512_fnmadd_ps(_mm512_set1_ps(x8.dsum[(i0 + i) * blocks + b]), zs, acc[i]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
    _mm512_mask_storeu_ps(y + (i0 + i) * ldy + o, lane_mask(rows), acc[i]);
  }
}

// One thread's block of y = x8 . W^T for kBits-bit W in the tile layout: up to 4 rows of x per pass
// over a tile (xq, xstride as tile_rows's for x8's row b.i0).
template <int kBits>
void tiles_tiled(const int8_t* xq, int64_t xstride, const Q8View& x8, const QMatView& w, float* y,
                 int64_t ldy, QBlock b) {
  for (int64_t o = b.o0; o < b.o1; o += kTile) {
    const int64_t rows = min64(kTile, b.o1 - o);
    int64_t i = b.i0;
    const auto xi = [&](int64_t row) { return xq + (row - b.i0) * xstride; };
    for (; i + 4 <= b.i1; i += 4) tile_rows<kBits, 4>(xi(i), xstride, x8, i, w, o, rows, y, ldy);
    for (; i + 2 <= b.i1; i += 2) tile_rows<kBits, 2>(xi(i), xstride, x8, i, w, o, rows, y, ldy);
    for (; i < b.i1; ++i) tile_rows<kBits, 1>(xi(i), xstride, x8, i, w, o, rows, y, ldy);
  }
}

}  // namespace

void qgemv_q8_tiles_avx512vnni(const int8_t* xq, int64_t xstride, const Q8View& x8,
                               const QMatView& w, float* y, int64_t ldy, QBlock b) {
  if (w.bits == 4) {
    tiles_tiled<4>(xq, xstride, x8, w, y, ldy, b);
  } else {
    tiles_tiled<8>(xq, xstride, x8, w, y, ldy, b);
  }
}

}  // namespace wkvq::detail
