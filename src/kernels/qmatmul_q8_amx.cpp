// The int8-activation GEMM for 4-bit weights (kernels/qmatmul_q8.h) on AMX tiles: bit for bit the
// AVX512_VNNI GEMM's result (qmatmul_q8_avx512vnni.cpp), faster where the CPU has AMX-INT8 and the
// OS grants it (kernels/isa.h: amx_int8_usable). Compiled with the AVX-512 flags plus AMX-TILE and
// AMX-INT8.
//
//  - x arrives quantized in the GEMV layout (qmatmul_impl.h): per 128-column block 64 bytes of
//    the codes of the columns W holds in its bytes' low nibbles, then 64 of the high ones. So 16
//    rows of x are two A tiles (16 rows x 64 signed bytes) read in place, one tile load each.
//  - W, 16 rows at a time: per block its 64-byte lines' low and high nibbles, transposed in
//    registers (16 x 16 dwords) into the B layout tdpbsud wants (row kk: the 4 codes of bytes
//    4 kk .. 4 kk + 3 of each of the 16 W rows), once per W tile for every x row of the call.
//  - per block, two tdpbsud give C[x row][W row] = sum_k xq_k q_k, exact int32 (|sum| <= 128 * 127
//    * 15); then per x row, as the VNNI GEMM does: acc = fma(d, s * float(sum), acc),
//    acc = acc - dsum * (z s) fused (fnmadd), block after block in column order.
//  - two x groups by two W tiles at a time (the eight tiles: 4 C, 2 A, 2 B), so that each tile
//    load feeds two tdpbsud; a thread's W rows in pairs of tiles, packed once, every x pair
//    against them.
// Measured (TinyLlama shape, pp512, vs_llamacpp.py --wkvq-amx on,off): 1.59x the VNNI GEMM's
// prefill at 1 thread, 1.53x at 2; left: x's tile loads from L2 (each W pair reads every x row
// again) and the per-block float conversion of 4 x 256 sums.
// Each call configures the tiles and releases them before it returns.
// Kernel functions exceed the style's 60 lines only where the register tiling needs it.
#include "kernels/qgroups_avx512.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

constexpr int64_t kRows = 16;                       // W rows per tile, x rows per group
constexpr int64_t kLine = 64;                       // code bytes of one 128-column block
constexpr int64_t kBTileBytes = 2 * kRows * kLine;  // a block's two B tiles (low, high nibbles)
static_assert(kQ8Block == 2 * kLine && kQ8GemvBlockBytes == 2 * kLine);

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles (GCC's intrinsics take literal numbers): 0-3 C (x group k, W tile t at 2 k + t), 4 and 5
// the two x groups' codes, 6 and 7 the two W tiles' B tiles; all 16 rows of 64 bytes.
void configure_tiles() {
  TileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.rows[t] = kRows;
    c.colsb[t] = kLine;
  }
  // GCC 12 does not see ldtilecfg read `c` and drops the stores above without this.
  __asm__ volatile("" : : "m"(c) : "memory");
  _tile_loadconfig(&c);
}

// The B tiles of W rows [o, o + rows) (rows >= `rows` zero) for every block: bt + b * 2048, the
// low nibbles' tile then the high nibbles'.
void pack_w_tiles(const QMatView& w, int64_t o, int64_t rows, int64_t blocks, uint8_t* bt) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t avail = w.row_bytes - b * kLine;
    const auto bytes =
        avail >= kLine ? ~__mmask64{0} : static_cast<__mmask64>((uint64_t{1} << avail) - 1u);
    __m512 lo[16];
    __m512 hi[16];
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const __m512i codes =
          r < rows ? _mm512_maskz_loadu_epi8(bytes, w.codes + (o + r) * w.row_bytes + b * kLine)
                   : _mm512_setzero_si512();
      lo[r] = _mm512_castsi512_ps(_mm512_and_si512(codes, nib));
      hi[r] = _mm512_castsi512_ps(_mm512_and_si512(_mm512_srli_epi16(codes, 4), nib));
    }
    Avx512::transpose(lo);  // lo[kk] lane r: dword kk of W row r
    Avx512::transpose(hi);
    uint8_t* dst = bt + b * kBTileBytes;
#pragma GCC unroll 16
    for (int kk = 0; kk < kRows; ++kk) {
      _mm512_store_ps(reinterpret_cast<float*>(dst + kk * kLine), lo[kk]);
      _mm512_store_ps(reinterpret_cast<float*>(dst + (kRows + kk) * kLine), hi[kk]);
    }
  }
}

// Two groups of 16 x rows (codes at xq[0], xq[1], `stride` bytes between rows; count[k] rows of
// group k are real, the rest ignored) against two W tiles (B tiles bt[t], params p[t], rows[t]
// real rows): C tile 2 k + t = group k x tile t, the 8 tiles of a 2 x 2 register blocking, every
// tile load used by two tdpbsud. Writes y[i[k] + r, o[t] .. o[t] + rows[t]).
struct Pair {
  const int8_t* xq[2];
  int64_t i[2], count[2];
  const uint8_t* bt[2];
  const float* params[2];
  int64_t o[2], rows[2];
};

void pair_rows(const Q8View& x8, int64_t stride, const QMatView& w, const Pair& p, int32_t* cbuf,
               float* acc, float* y, int64_t ldy) {
  const int64_t blocks = x8.blocks;
  const int64_t group_blocks = w.n_groups == 1 ? blocks : w.group / kQ8Block;
  for (int64_t k = 0; k < 4 * kRows * kRows; k += kLanes) {
    _mm512_store_ps(acc + k, _mm512_setzero_ps());
  }
  for (int64_t b = 0; b < blocks; ++b) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t h = 0; h < 2; ++h) {  // the low-nibble columns, then the high ones
      _tile_loadd(4, p.xq[0] + b * kQ8GemvBlockBytes + h * kLine, stride);
      _tile_loadd(5, p.xq[1] + b * kQ8GemvBlockBytes + h * kLine, stride);
      _tile_loadd(6, p.bt[0] + b * kBTileBytes + h * kRows * kLine, kLine);
      _tile_loadd(7, p.bt[1] + b * kBTileBytes + h * kRows * kLine, kLine);
      _tile_dpbsud(0, 4, 6);
      _tile_dpbsud(1, 4, 7);
      _tile_dpbsud(2, 5, 6);
      _tile_dpbsud(3, 5, 7);
    }
    _tile_stored(0, cbuf, kLine);
    _tile_stored(1, cbuf + kRows * kRows, kLine);
    _tile_stored(2, cbuf + 2 * kRows * kRows, kLine);
    _tile_stored(3, cbuf + 3 * kRows * kRows, kLine);
    for (int q = 0; q < 4; ++q) {
      const int k = q / 2;
      const float* pg = p.params[q % 2] + b / group_blocks * 2 * kRows;
      const __m512 sc = _mm512_load_ps(pg);
      const __m512 zs = _mm512_load_ps(pg + kRows);
      const float* d = x8.d + p.i[k] * blocks + b;
      const float* dsum = x8.dsum + p.i[k] * blocks + b;
      const int32_t* c = cbuf + q * kRows * kRows;
      float* a = acc + q * kRows * kRows;
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        const bool in = r < p.count[k];
        const __m512 dd = _mm512_set1_ps(in ? d[r * blocks] : 0.0f);
        const __m512 ds = _mm512_set1_ps(in ? dsum[r * blocks] : 0.0f);
        const __m512 sum = _mm512_cvtepi32_ps(_mm512_load_si512(c + r * kRows));
        const __m512 v = _mm512_fmadd_ps(dd, _mm512_mul_ps(sc, sum), _mm512_load_ps(a + r * kRows));
        _mm512_store_ps(a + r * kRows, _mm512_fnmadd_ps(ds, zs, v));
      }
    }
  }
  for (int q = 0; q < 4; ++q) {
    const int k = q / 2, t = q % 2;
    const __mmask16 m = lane_mask(p.rows[t]);
    for (int64_t r = 0; r < p.count[k]; ++r) {
      _mm512_mask_storeu_ps(y + (p.i[k] + r) * ldy + p.o[t], m,
                            _mm512_load_ps(acc + (q * kRows + r) * kRows));
    }
  }
}

// One thread's block b of y = x8 . W^T (QGemmQ8Ops::packed; x8 in the GEMV layout): pairs of W
// tiles (32 rows) packed once, then every pair of x groups (32 rows) against them. Scratch:
// qgemm_q8_amx_pack_bytes.
void packed(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b, uint8_t* pack) {
  const int64_t blocks = x8.blocks;
  uint8_t* const bt[2] = {pack, pack + blocks * kBTileBytes};
  auto* const params0 = reinterpret_cast<float*>(pack + 2 * blocks * kBTileBytes);
  float* const params[2] = {params0, params0 + w.n_groups * 2 * kRows};
  auto* const cbuf = reinterpret_cast<int32_t*>(params0 + 2 * w.n_groups * 2 * kRows);
  auto* const acc = reinterpret_cast<float*>(cbuf + 4 * kRows * kRows);
  auto* const xpad = reinterpret_cast<int8_t*>(acc + 4 * kRows * kRows);
  // The last group's rows past the block's end read as zero codes from a padded copy.
  const int64_t full = b.i0 + (b.i1 - b.i0) / kRows * kRows;
  if (full < b.i1) {
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t k = 0; k < x8.stride; k += kLine) {
        const __m512i v = full + r < b.i1 ? _mm512_loadu_si512(x8.q + (full + r) * x8.stride + k)
                                          : _mm512_setzero_si512();
        _mm512_store_si512(xpad + r * x8.stride + k, v);
      }
    }
  }
  const auto group = [&](int64_t i) { return i < full ? x8.q + i * x8.stride : xpad; };
  configure_tiles();
  for (int64_t o = b.o0; o < b.o1; o += 2 * kRows) {
    Pair p{};
    for (int t = 0; t < 2; ++t) {
      p.o[t] = o + t * kRows;
      p.rows[t] = min64(kRows, b.o1 - p.o[t]);  // <= 0: no second tile (its B tiles: the first's)
      p.bt[t] = p.rows[t] > 0 ? bt[t] : bt[0];
      p.params[t] = p.rows[t] > 0 ? params[t] : params[0];
      if (p.rows[t] > 0) {
        pack_w_tiles(w, p.o[t], p.rows[t], blocks, bt[t]);
        tile_params(w, p.o[t], p.rows[t], params[t]);
      }
    }
    for (int64_t i = b.i0; i < b.i1; i += 2 * kRows) {
      for (int k = 0; k < 2; ++k) {
        p.i[k] = i + k * kRows;
        p.count[k] = p.i[k] < b.i1 ? min64(kRows, b.i1 - p.i[k]) : 0;  // 0: reads group 0 again
        p.xq[k] = p.count[k] > 0 ? group(p.i[k]) : group(i);
        if (p.count[k] == 0) p.i[k] = i;
      }
      pair_rows(x8, x8.stride, w, p, cbuf, acc, y, ldy);
    }
  }
  _tile_release();
}

}  // namespace

const QGemmQ8Ops& qgemm_q8_ops_amx() {
  static const QGemmQ8Ops ops = [] {
    QGemmQ8Ops o = qgemm_q8_ops_avx512vnni();
    o.packed = &packed;
    o.blocking = QGemmBlocking{2 * kRows, 2 * kRows, kQ8Block, 2 * kRows};  // split in pairs
    o.gemm_takes_gemv_layout = true;  // the tiles read x in the GEMV layout
    o.pack_bytes = &qgemm_q8_amx_pack_bytes;
    return o;
  }();
  return ops;
}

}  // namespace wkvq::detail
