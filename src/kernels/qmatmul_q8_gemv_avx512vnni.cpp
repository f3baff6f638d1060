// The int8-activation GEMVs of the AVX512_VNNI table (QGemmQ8Ops::gemv for 4-bit W, gemv8 for
// 8-bit W), n = 1 .. 64 rows of x (decode, batched decode; 8-bit W any n): the arithmetic of
// kernels/qmatmul_q8.h, bit for bit the int8 GEMM's (qmatmul_q8_avx512vnni.cpp) and the AVX2
// GEMVs' (qmatmul_q8_avx2.cpp), so that a teacher-forced pass through that GEMM and token-by-token
// decode through these GEMVs give the same numbers. Chosen by the kernel table
// (WKVQ_DECODE_GEMV=int8; 8-bit W above the dot kernels' limit also where the prompt GEMM is int8).
//
//  - x arrives quantized in the GEMV layout (qmatmul_impl.h: kQ8GemvBlockBytes per block, the
//    x codes of the low nibbles of the block's 64 code bytes, then those of the high nibbles).
//  - W in the tile layout (QuantizedMatrix::tile_codes, 4 and 8 bits, built at load when the
//    process runs this GEMV: model/linear.h, inference_matrix): qmatmul_q8_tiles_avx512vnni.cpp,
//    one sequential stream, the block sums of 16 rows straight in one vector. TinyLlama W4KV4
//    decode on Zen 4: 1.15-1.22x the row path it replaced at 1 thread and 1.07-1.15x at 2 (README,
//    session 22).
//  - 4-bit W without it (a matrix built outside inference_matrix: tests, tools): the AVX2 GEMV.
//  - 8-bit W without it: the row path below. The prompt GEMM's table runs 8-bit W (the q8 head of
//    a prompt's every position, as `ppl` needs) through this GEMV while the decode GEMV is the f32
//    one, whose rows must stay rows. Per tile of 16 W rows and per x row (x's columns put in order
//    once per call), four W rows at a time, 4 blocks per step (rows4_sums8: each x block loaded
//    once per four rows, each line of codes once, prefetched ahead); the 16 partial-sum vectors
//    reduced to 16 exact block sums (reduce16), transposed per tile to vectors over its rows and
//    finished in the GEMM's order (tile_epilogue). The other x rows find the tile's codes in
//    L1/L2, so W is read from memory once per call.
// Kernel functions exceed the style's 60 lines only where the register tiling needs it.
#include "core/error.h"
#include "kernels/qgroups_avx512.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

constexpr int64_t kTile = 16;       // W rows per tile (one vector of outputs)
constexpr int64_t kLineBytes = 64;  // codes of one 128-column block
// Software prefetch along the stream of codes: into L1 kPrefetch bytes ahead (as the f32 GEMV) and
// into L2/L3 kPrefetchFar bytes ahead, as measured on the 4-bit row path this file held until
// session 23. On an Intel Xeon VM, 1 thread, W from beyond L2
// (wkvq_qmatmul_bench GemvCold, 2048 x 2048 and 5632 x 2048, interleaved runs at load 8): both
// 13-16 GB/s of codes, the L1 one alone 10-12, none 10, T1 / T2 alone 11-13, NTA 6.5; a block
// of 16 rows read side by side (16 streams) 8.3. On Zen 4 (TinyLlama W4KV4 decode, 1 thread,
// 3 rounds of interleaved runs, tok/s): no prefetch 13.4-14.0, the L1 one alone 15.0-16.2, the far
// one alone (12 KB) 31.7-34.6, both at 12 KB 31.9-34.2, at 24 KB 32.7-39.3 (6 runs, median 36.5),
// 48 KB 35.6-37.9, 96 KB 35.1-37.0; 2 threads 12 KB 44.4-57.4, 24 KB 47.4-50.7 (3 each).
constexpr int64_t kPrefetch = 3072;
constexpr int64_t kPrefetchFar = 24576;
// The parameters of the tile kParamsAhead tiles ahead are prefetched (qgroups_avx512.h). Zen 4,
// 1 thread: no measurable effect on wkvq_qmatmul_bench GemvCold; a TinyLlama decode without it
// (in a variant that also restructured the kernels) ran 29.5-31.1 tok/s against 34.2-34.9 with it
// (3 interleaved pairs), not yet separated from that restructuring (README, session 20).
constexpr int64_t kParamsAhead = 2;
static_assert(kQ8Block == 2 * kLineBytes && kQ8GemvBlockBytes == 2 * kLineBytes);

// Lane j of the result: the sum of the 16 lanes of v[j] (exact int32).
inline __m512i reduce16(const __m512i (&v)[16]) {
  __m512i a[8];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    a[k] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * k], v[2 * k + 1]),
                            _mm512_unpackhi_epi32(v[2 * k], v[2 * k + 1]));
  }
  __m512i r[4];  // 128-bit lane L of r[k]: partial sums of v[4k .. 4k + 3] over lane L
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * k], a[2 * k + 1]),
                            _mm512_unpackhi_epi64(a[2 * k], a[2 * k + 1]));
  }
  const __m512i t01 = _mm512_add_epi32(_mm512_shuffle_i32x4(r[0], r[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_i32x4(r[0], r[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i t23 = _mm512_add_epi32(_mm512_shuffle_i32x4(r[2], r[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_i32x4(r[2], r[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(t01, t23, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i32x4(t01, t23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// One 64-byte line of codes (`bytes` of it; the rest 0), prefetched ahead along the stream.
inline __m512i load_line(const uint8_t* line, __mmask64 bytes) {
  _mm_prefetch(reinterpret_cast<const char*>(line) + kPrefetch, _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(line) + kPrefetchFar, _MM_HINT_T2);
  return _mm512_maskz_loadu_epi8(bytes, line);
}

// The mask of the first n bytes of a line (n <= 0: none, n >= 64: all).
inline __mmask64 first_bytes(int64_t n) {
  return n >= kLineBytes ? ~__mmask64{0}
         : n <= 0        ? __mmask64{0}
                         : static_cast<__mmask64>((uint64_t{1} << n) - 1u);
}

// tile_params's result for W rows [o, o + rows) (o a multiple of kTile): from W's tile-major copy
// where it has one (QMatView::tile_scales: per group one fp16 and one u8 load, no transposes),
// else by tile_params's transposes.
inline void group_params(const QMatView& w, int64_t o, int64_t rows, float* params) {
  if (w.tile_scales == nullptr) {
    prefetch_params(w, o + kParamsAhead * kTile, kTile);
    tile_params(w, o, rows, params);
    return;
  }
  const int64_t at = o / kTile * w.n_groups * kTile;
  for (int64_t g = 0; g < w.n_groups; ++g) {
    const __m512 sc = _mm512_cvtph_ps(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.tile_scales + at + g * kTile)));
    const __m128i z =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.tile_zeros + at + g * kTile));
    _mm512_store_ps(params + g * 2 * kLanes, sc);
    _mm512_store_ps(params + g * 2 * kLanes + kLanes,
                    _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(z)), sc));
  }
}
static_assert(kTile == kLanes, "a tile's parameters of one group are one vector");

// y[i, o .. o + rows) for x row i from the exact block sums of a tile (sums[(r * steps + k) * 16 +
// bb]: W row r, block k * 16 + bb; rows >= `rows` are zeroed here), in the GEMM's order and with
// its operations.
void tile_epilogue(const Q8View& x8, int64_t i, const QMatView& w, int64_t o, int64_t rows,
                   const float* params, int32_t* sums, float* y, int64_t ldy) {
  const int64_t blocks = x8.blocks;
  const int64_t steps = (blocks + kTile - 1) / kTile;
  for (int64_t r = rows; r < kTile; ++r) {
    for (int64_t k = 0; k < steps; ++k) {
      _mm512_store_si512(sums + (r * steps + k) * 16, _mm512_setzero_si512());
    }
  }
  const int64_t group_blocks = w.n_groups == 1 ? blocks : w.group / kQ8Block;
  const float* d = x8.d + i * blocks;
  const float* dsum = x8.dsum + i * blocks;
  __m512 acc = _mm512_setzero_ps();
  for (int64_t k = 0; k < steps; ++k) {
    __m512 t[16];  // t[bb]: block k * 16 + bb, lane r = W row
#pragma GCC unroll 16
    for (int r = 0; r < kTile; ++r)
      t[r] = _mm512_load_ps(reinterpret_cast<float*>(sums) + (r * steps + k) * 16);
    Avx512::transpose(t);
    for (int bb = 0; bb < kTile && k * kTile + bb < blocks; ++bb) {
      const int64_t b = k * kTile + bb;
      const float* pg = params + b / group_blocks * 2 * kLanes;
      const __m512 sc = _mm512_load_ps(pg);
      const __m512 zs = _mm512_load_ps(pg + kLanes);
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_castps_si512(t[bb]));
      acc = _mm512_fmadd_ps(_mm512_set1_ps(d[b]), _mm512_mul_ps(sc, sum), acc);
      acc = _mm512_fnmadd_ps(_mm512_set1_ps(dsum[b]), zs, acc);
    }
  }
  _mm512_mask_storeu_ps(y + i * ldy + o, lane_mask(rows), acc);
}

// ---- 8-bit W (the q8 output head): one code byte per column, in column order ----

// x row i's codes in column order (W's order at 8 bits), from the GEMV layout: per block, the
// 16-column runs of the low-nibble half (bytes 0..63: columns 0-15, 32-47, 64-79, 96-111) and of
// the high-nibble half (bytes 64..127: columns 16-31, 48-63, ...) interleaved back.
void columns_in_order(const Q8View& x8, int64_t i, int8_t* xn) {
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  for (int64_t b = 0; b < x8.blocks; ++b) {
    const int8_t* src = x8.q + i * x8.stride + b * kQ8GemvBlockBytes;
    const __m512i lo = _mm512_loadu_si512(src);
    const __m512i hi = _mm512_loadu_si512(src + kLineBytes);
    _mm512_storeu_si512(xn + b * kQ8GemvBlockBytes, _mm512_permutex2var_epi64(lo, first, hi));
    _mm512_storeu_si512(xn + b * kQ8GemvBlockBytes + kLineBytes,
                        _mm512_permutex2var_epi64(lo, second, hi));
  }
}

// As rows4_step, for 8-bit codes (two lines per block, multiplied as they are: vpdpbusd takes
// unsigned bytes, so codes up to 255 need no bias) against one x row in column order.
template <bool kWhole>
inline void rows4_step8(const uint8_t* codes, int64_t row_bytes, int64_t nrows, int64_t b0,
                        int64_t blocks, const int8_t* xn, int32_t* sums, int64_t sstride) {
  __m512i v[16];
#pragma GCC unroll 4
  for (int bb = 0; bb < 4; ++bb) {
    const int64_t b = b0 + bb;
    const bool in = kWhole || b < blocks;
    const int64_t left = row_bytes - b * kQ8GemvBlockBytes;  // code bytes from the block's start
    const __mmask64 m0 = kWhole ? ~__mmask64{0} : first_bytes(left);
    const __mmask64 m1 = kWhole ? ~__mmask64{0} : first_bytes(left - kLineBytes);
    const __m512i xl = in ? _mm512_loadu_si512(xn + b * kQ8GemvBlockBytes) : _mm512_setzero_si512();
    const __m512i xh =
        in ? _mm512_loadu_si512(xn + b * kQ8GemvBlockBytes + kLineBytes) : _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      if ((kWhole || r < nrows) && in) {
        const uint8_t* line = codes + r * row_bytes + b * kQ8GemvBlockBytes;
        const __m512i c0 = load_line(line, m0);
        const __m512i c1 = load_line(line + kLineBytes, m1);
        v[r * 4 + bb] =
            _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), c0, xl), c1, xh);
      } else {
        v[r * 4 + bb] = _mm512_setzero_si512();
      }
    }
  }
  alignas(64) int32_t red[16];  // lane r * 4 + bb
  _mm512_store_si512(red, reduce16(v));
  for (int64_t r = 0; r < nrows; ++r) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(sums + r * sstride + b0),
                     _mm_load_si128(reinterpret_cast<const __m128i*>(red + 4 * r)));
  }
}

// The exact block sums of W rows [0, nrows) (nrows <= 4) of 8-bit codes against x row xn:
// sums[r * sstride + b], b < blocks rounded up to 4.
void rows4_sums8(const uint8_t* codes, int64_t row_bytes, int64_t nrows, int64_t blocks,
                 const int8_t* xn, int32_t* sums, int64_t sstride) {
  const int64_t full = row_bytes / kQ8GemvBlockBytes;  // blocks with 128 code bytes
  int64_t b0 = 0;
  if (nrows == 4) {
    for (; b0 + 4 <= full; b0 += 4) {
      rows4_step8<true>(codes, row_bytes, 4, b0, blocks, xn, sums, sstride);
    }
  }
  for (; b0 < blocks; b0 += 4) {
    rows4_step8<false>(codes, row_bytes, nrows, b0, blocks, xn, sums, sstride);
  }
}

}  // namespace

// One thread's block of y = x8 . W^T for 8-bit W (QGemmQ8Ops::gemv8): x's rows in column order
// once per call (scratch after qgemv_q8_scratch_bytes(n_groups, blocks, 0)), then per tile its
// parameters and per x row its block sums and the epilogue of the 4-bit GEMV; the other x rows
// find the tile's codes in L1/L2, so W is read from memory once per call.
void qgemv_q8_avx512vnni_8bit(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
                              uint8_t* scratch) {
  WKVQ_ASSERT(w.bits == 8);
  float* const params = reinterpret_cast<float*>(scratch);
  int32_t* const sums = reinterpret_cast<int32_t*>(scratch + qgemv_q8_params_bytes(w.n_groups));
  auto* const xn =
      reinterpret_cast<int8_t*>(scratch + qgemv_q8_scratch_bytes(w.n_groups, x8.blocks, 0));
  const int64_t xn_stride = x8.blocks * kQ8GemvBlockBytes;
  for (int64_t i = b.i0; i < b.i1; ++i) columns_in_order(x8, i, xn + (i - b.i0) * xn_stride);
  if (w.tile_codes != nullptr && w.tile_scales != nullptr) {
    qgemv_q8_tiles_avx512vnni(xn, xn_stride, x8, w, y, ldy, b);
    return;
  }
  const int64_t sstride = (x8.blocks + kTile - 1) / kTile * kTile;  // tile_epilogue's steps
  for (int64_t o = b.o0; o < b.o1; o += kTile) {
    const int64_t rows = min64(kTile, b.o1 - o);
    group_params(w, o, rows, params);
    for (int64_t i = b.i0; i < b.i1; ++i) {
      for (int64_t r = 0; r < rows; r += 4) {
        rows4_sums8(w.codes + (o + r) * w.row_bytes, w.row_bytes, min64(4, rows - r), x8.blocks,
                    xn + (i - b.i0) * xn_stride, sums + r * sstride, sstride);
      }
      tile_epilogue(x8, i, w, o, rows, params, sums, y, ldy);
    }
  }
}

// One thread's block of y = x8 . W^T for 4-bit W (kernels/qmatmul_impl.h, QGemmQ8Ops::gemv):
// from W's tile layout, which inference code builds wherever this GEMV runs (model/linear.h,
// inference_matrix); W without it (a matrix built elsewhere: tests, tools) runs the AVX2 int8
// GEMV, whose numbers are these bit for bit.
void qgemv_q8_avx512vnni(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
                         uint8_t* scratch) {
  if (w.tile_codes != nullptr && w.tile_scales != nullptr) {
    qgemv_q8_tiles_avx512vnni(x8.q + b.i0 * x8.stride, x8.stride, x8, w, y, ldy, b);
    return;
  }
  qgemm_q8_ops_avx2().gemv(x8, w, y, ldy, b, scratch);
}

}  // namespace wkvq::detail
