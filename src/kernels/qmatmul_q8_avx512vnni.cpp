// The int8-activation GEMM for 4-bit weights (kernels/qmatmul_q8.h), AVX-512 with AVX512_VNNI
// (compiled with -mavx512vnni; chosen at run time by the kernel table).
//
//  - quantize: each row of x in blocks of kQ8Block columns: d = max|x| / 127, q = round(x / d)
//    (x times 1 / d, rounded half to even) as int8, dsum = d * sum(q). Bit for bit the reference's
//    arithmetic (kernels/qmatmul_q8.cpp), NaN / Inf included.
//  - packed: the BLIS-style loop nest of gemm_driver.h with integer panels. W's 4-bit codes q
//  (0..15)
//    unpacked to one byte each, 4 consecutive columns per 32-bit lane, 32 W rows per panel (two
//    zmm per 4 columns); x's int8 codes packed 4 columns per 32-bit word. The 12 x 32 register tile
//    holds int32 sums: vpdpbusd adds 4 products (unsigned W code x signed x code) per lane, 64 per
//    instruction against 16 for an f32 FMA. At the end of each x block (128 columns, inside one
//    W group) the sums are exact integers and become floats:
//        y += d * (s * sum_k q_k xq_k) - dsum * (z * s)
//    (sum_k (q_k - z) s d xq_k, the zero point folded into the x block's code sum).
// Kernel functions exceed the style's 60 lines only where the register tiling needs it.
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

constexpr QGemmBlocking kB = kQ8Avx512Blocking;
constexpr int kMr = static_cast<int>(kB.mr);
constexpr int64_t kNr = kB.nr;
constexpr int64_t kBlocksPerKc = kB.kc / kQ8Block;
static_assert(kNr == 2 * kLanes, "a panel row of 4 columns is two zmm");
static_assert(kB.kc % kQ8Block == 0 && kB.nc % kNr == 0, "whole x blocks and panels");
// Floats of one panel's parameters per x block: s of the 32 rows, then z * s.
constexpr int64_t kParamFloats = 2 * kNr;

// ---- quantize ----

// gemv: the codes in the GEMV layout (qmatmul_impl.h), all 128 stored; else in column order,
// the first `stored` only.
inline void quantize_block(const float* x, int64_t len, int64_t stored, int8_t* q, float* d,
                           float* dsum, bool gemv) {
  __m512 v[kQ8Block / kLanes];
  __m512 amax = _mm512_setzero_ps();
  __m512 probe = _mm512_setzero_ps();  // NaN iff some x is NaN or infinite
#pragma GCC unroll 8
  for (int j = 0; j < kQ8Block / kLanes; ++j) {
    v[j] = _mm512_maskz_loadu_ps(lane_mask(len - j * kLanes), x + j * kLanes);
    amax = _mm512_max_ps(amax, _mm512_abs_ps(v[j]));
    probe = _mm512_add_ps(probe, _mm512_mul_ps(v[j], _mm512_setzero_ps()));
  }
  const float dd = _mm512_reduce_max_ps(amax) / 127.0f + _mm512_reduce_add_ps(probe);
  const bool finite = dd - dd == 0.0f;
  const __m512 id = _mm512_set1_ps(finite && dd != 0.0f ? 1.0f / dd : 0.0f);
  __m512i sum = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int j = 0; j < kQ8Block / kLanes; ++j) {
    const __m512i qi = finite ? _mm512_cvtps_epi32(_mm512_mul_ps(v[j], id))  // half to even
                              : _mm512_setzero_si512();
    sum = _mm512_add_epi32(sum, qi);
    if (gemv) {  // columns 16 j .. +15: nibble j % 2 of bytes 16 (j / 2) .. +15 of the line
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + (j % 2) * 4 * kLanes + (j / 2) * kLanes),
                       _mm512_cvtepi32_epi8(qi));
    } else if (j * kLanes < stored) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + j * kLanes), _mm512_cvtepi32_epi8(qi));
    }
  }
  *d = dd;
  *dsum = dd * static_cast<float>(_mm512_reduce_add_epi32(sum));
}

void quantize(const float* x, int64_t cols, int64_t i0, int64_t i1, int8_t* q, float* d,
              float* dsum, int64_t stride, int64_t blocks) {
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kQ8Block;
      quantize_block(x + i * cols + c0, cols - c0, stride - c0, q + i * stride + c0,
                     d + i * blocks + b, dsum + i * blocks + b, false);
    }
  }
}

// As quantize, the codes in the GEMV layout (stride: blocks * kQ8GemvBlockBytes).
void quantize_gemv(const float* x, int64_t cols, int64_t i0, int64_t i1, int8_t* q, float* d,
                   float* dsum, int64_t stride, int64_t blocks) {
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kQ8Block;
      quantize_block(x + i * cols + c0, cols - c0, kQ8Block, q + i * stride + b * kQ8GemvBlockBytes,
                     d + i * blocks + b, dsum + i * blocks + b, true);
    }
  }
}

// ---- packing ----

// Columns [c, c + 64) of a 4-bit row (only [c, c + 32) when `two` is false; the rest zero) as 64
// code bytes in column order: 4 columns per 32-bit lane.
inline __m512i unpack64(const uint8_t* codes, int64_t c, bool two) {
  const __m256i v = _mm256_maskz_loadu_epi8(two ? 0xFFFFFFFFu : 0xFFFFu, codes + c / 2);
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, nib);                        // c..+15, c+32..+47
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);  // c+16..+31, c+48..+63
  const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

// W rows [o, o + rows) (rows <= 32), columns [pc, pc + kc) (kc a multiple of 32), as a panel of
// codes (kernels/qmatmul_impl.h: panel[(k / 4) * 128 + r * 4 + k % 4]); rows >= `rows` zero.
// params[blk * 64 + r] = s, params[blk * 64 + 32 + r] = z * s of row r's group at x block blk.
void pack_panel(const QMatView& w, int64_t o, int64_t rows, int64_t pc, int64_t kc, uint8_t* panel,
                float* params) {
  for (int64_t h = 0; h < 2; ++h) {
    const int64_t r0 = h * kLanes;
    const int64_t nr = min64(kLanes, rows - r0);  // may be <= 0: all-zero half
    for (int64_t c = pc; c < pc + kc; c += 4 * kLanes) {
      const bool two = c + 2 * kQBlockCols <= pc + kc;
      __m512 t[kLanes];
#pragma GCC unroll 16
      for (int r = 0; r < kLanes; ++r) {
        t[r] = r < nr ? _mm512_castsi512_ps(unpack64(w.codes + (o + r0 + r) * w.row_bytes, c, two))
                      : _mm512_setzero_ps();
      }
      Avx512::transpose(t);
      const int64_t count = two ? kLanes : kLanes / 2;
      for (int64_t j = 0; j < count; ++j) {
        _mm512_store_ps(reinterpret_cast<float*>(panel + ((c - pc) / 4 + j) * 4 * kNr + r0 * 4),
                        t[j]);
      }
    }
  }
  const int64_t group = w.n_groups == 1 ? w.cols + kQ8Block : w.group;
  for (int64_t blk = 0; blk * kQ8Block < kc; ++blk) {
    const int64_t g = (pc + blk * kQ8Block) / group;
    for (int64_t r = 0; r < kNr; ++r) {
      float s = 0.0f;
      float zs = 0.0f;
      if (r < rows) {
        const int64_t i = (o + r) * w.n_groups + g;
        s = _cvtsh_ss(w.scales[i]);
        zs = static_cast<float>(w.zeros[i]) * s;  // exact
      }
      params[blk * kParamFloats + r] = s;
      params[blk * kParamFloats + kNr + r] = zs;
    }
  }
}

// x codes of rows [i, i + rows), columns [pc, pc + kc), 4 columns per word: xp[(k / 4) * kMr + r].
inline void pack_x(const Q8View& x8, int64_t i, int64_t rows, int64_t pc, int64_t kc, int32_t* xp) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = x8.q + (i + r) * x8.stride + pc;
    for (int64_t k4 = 0; k4 < kc / 4; ++k4) __builtin_memcpy(xp + k4 * kMr + r, src + 4 * k4, 4);
  }
}

// ---- register tile ----

// y[r, 0:32] (masked by m0, m1) = (accumulate ? y : 0) + the x blocks of columns [0, kc) of M
// rows of packed x against one panel; d, dsum: the rows' block scales from the first block
// (row r's at d[r * blocks]).
template <int M>
void tile(const int32_t* xp, const uint8_t* wp, const float* params, int64_t kc, const float* d,
          const float* dsum, int64_t blocks, float* y, int64_t ldy, __mmask16 m0, __mmask16 m1,
          bool accumulate) {
  alignas(64) float acc[M][kNr];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    _mm512_store_ps(acc[r],
                    accumulate ? _mm512_maskz_loadu_ps(m0, y + r * ldy) : _mm512_setzero_ps());
    _mm512_store_ps(acc[r] + kLanes, accumulate ? _mm512_maskz_loadu_ps(m1, y + r * ldy + kLanes)
                                                : _mm512_setzero_ps());
  }
  for (int64_t blk = 0; blk * kQ8Block < kc; ++blk) {
    __m512i s0[M];
    __m512i s1[M];
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      s0[r] = _mm512_setzero_si512();
      s1[r] = _mm512_setzero_si512();
    }
    const int64_t k4_end = min64(kc, (blk + 1) * kQ8Block) / 4;
#pragma GCC unroll 2
    for (int64_t k4 = blk * kQ8Block / 4; k4 < k4_end; ++k4) {
      const __m512i w0 = _mm512_load_si512(wp + k4 * 4 * kNr);
      const __m512i w1 = _mm512_load_si512(wp + k4 * 4 * kNr + 4 * kLanes);
#pragma GCC unroll 16
      for (int r = 0; r < M; ++r) {
        const __m512i xb = _mm512_set1_epi32(xp[k4 * kMr + r]);
        s0[r] = _mm512_dpbusd_epi32(s0[r], w0, xb);
        s1[r] = _mm512_dpbusd_epi32(s1[r], w1, xb);
      }
    }
    const float* pb = params + blk * kParamFloats;
    const __m512 sc0 = _mm512_load_ps(pb);
    const __m512 sc1 = _mm512_load_ps(pb + kLanes);
    const __m512 zs0 = _mm512_load_ps(pb + kNr);
    const __m512 zs1 = _mm512_load_ps(pb + kNr + kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const __m512 dd = _mm512_set1_ps(d[r * blocks + blk]);
      const __m512 ds = _mm512_set1_ps(dsum[r * blocks + blk]);
      __m512 a0 = _mm512_load_ps(acc[r]);
      __m512 a1 = _mm512_load_ps(acc[r] + kLanes);
      a0 = _mm512_fmadd_ps(dd, _mm512_mul_ps(sc0, _mm512_cvtepi32_ps(s0[r])), a0);
      a1 = _mm512_fmadd_ps(dd, _mm512_mul_ps(sc1, _mm512_cvtepi32_ps(s1[r])), a1);
      _mm512_store_ps(acc[r], _mm512_fnmadd_ps(ds, zs0, a0));
      _mm512_store_ps(acc[r] + kLanes, _mm512_fnmadd_ps(ds, zs1, a1));
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    _mm512_mask_storeu_ps(y + r * ldy, m0, _mm512_load_ps(acc[r]));
    _mm512_mask_storeu_ps(y + r * ldy + kLanes, m1, _mm512_load_ps(acc[r] + kLanes));
  }
}

using Tile = void (*)(const int32_t*, const uint8_t*, const float*, int64_t, const float*,
                      const float*, int64_t, float*, int64_t, __mmask16, __mmask16, bool);
constexpr Tile kTiles[kMr] = {&tile<1>, &tile<2>, &tile<3>, &tile<4>,  &tile<5>,  &tile<6>,
                              &tile<7>, &tile<8>, &tile<9>, &tile<10>, &tile<11>, &tile<12>};

// One thread's block b of y: the loop nest of gemm_driver.h over columns [0, cols rounded up to
// 32) (x's codes are zero past the row's end).
void packed(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b, uint8_t* pack) {
  uint8_t* const wpack = pack;
  float* const params = reinterpret_cast<float*>(pack + kB.nc * kB.kc);
  int32_t* const xpack = reinterpret_cast<int32_t*>(
      pack + kB.nc * kB.kc + (kB.nc / kNr) * kBlocksPerKc * kParamFloats * 4);
  const int64_t cols = (w.cols + kQBlockCols - 1) / kQBlockCols * kQBlockCols;
  for (int64_t jc = b.o0; jc < b.o1; jc += kB.nc) {
    const int64_t ncb = min64(kB.nc, b.o1 - jc);
    for (int64_t pc = 0; pc < cols; pc += kB.kc) {
      const int64_t kcb = min64(kB.kc, cols - pc);
      for (int64_t p = 0; p * kNr < ncb; ++p) {
        pack_panel(w, jc + p * kNr, min64(kNr, ncb - p * kNr), pc, kcb, wpack + p * kNr * kcb,
                   params + p * kBlocksPerKc * kParamFloats);
      }
      for (int64_t i = b.i0; i < b.i1; i += kMr) {
        const int64_t rows = min64(kMr, b.i1 - i);
        pack_x(x8, i, rows, pc, kcb, xpack);
        const int64_t first = i * x8.blocks + pc / kQ8Block;
        for (int64_t p = 0; p * kNr < ncb; ++p) {
          const int64_t n_cols = ncb - p * kNr;
          kTiles[rows - 1](xpack, wpack + p * kNr * kcb, params + p * kBlocksPerKc * kParamFloats,
                           kcb, x8.d + first, x8.dsum + first, x8.blocks,
                           y + i * ldy + jc + p * kNr, ldy, lane_mask(n_cols),
                           lane_mask(n_cols - kLanes), pc > 0);
        }
      }
    }
  }
}

int64_t pack_bytes(int64_t /*blocks*/, int64_t /*n_groups*/) { return qgemm_q8_pack_bytes(kB); }

constexpr QGemmQ8Ops kOps{&quantize,
                          &packed,
                          kB,
                          &quantize_gemv,
                          &qgemv_q8_avx512vnni,
                          false,
                          &pack_bytes,
                          &qgemv_q8_avx512vnni_8bit};

}  // namespace

const QGemmQ8Ops& qgemm_q8_ops_avx512vnni() { return kOps; }

}  // namespace wkvq::detail
