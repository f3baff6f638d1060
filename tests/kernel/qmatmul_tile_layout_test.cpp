// W (4 or 8 bits) whose codes the tile layout holds (add_tile_layout moves them out of
// QuantizedMatrix::codes) gives every product the same numbers, bit for bit, as W with its rows
// (which the AVX512_VNNI table's int8 GEMV hands to the AVX2 one at 4 bits and runs by rows at 8):
// the AVX512_VNNI int8 GEMV reads the tile codes; every other kernel (the reference, f32 dot
// kernels and chunked GEMVs, packed GEMMs, int8 GEMM, AVX2 int8 GEMV) reads rows copied back per
// block of rows (kernels/qmatmul.cpp, run_on_row_copies). Shapes cross that block (256 rows), a
// tile of 16 and a 128-column block partially; n crosses the dot kernels' limit (24 for AVX2, 64
// for AVX-512).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "kernel/qmatmul_q8_support.h"
#include "test_support.h"

namespace wkvq::q8test {
namespace {

struct NamedTable {
  const char* name;
  KernelTable table;
};

// Every table this CPU runs: each ISA's f32 kernels, and its int8 GEMM and GEMV where it has them.
std::vector<NamedTable> tables() {
  std::vector<NamedTable> out{{"reference", kernel_table(Isa::Reference)}};
  for (const Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!isa_supported(isa)) continue;
    out.push_back({isa == Isa::Avx2 ? "avx2 f32" : "avx512 f32",
                   kernel_table(isa, PrefillGemm::F32, DecodeGemv::F32)});
    if (isa == Isa::Avx512) {
      out.push_back({"avx512 f32 scaled gemv", with_gemv(out.back().table, GemvForm::Scaled)});
      out.push_back({"avx512 f32 table gemv", with_gemv(out.back().table, GemvForm::Table)});
    }
    if (runs_int8(isa)) {
      out.push_back({isa == Isa::Avx2 ? "avx2 int8" : "avx512 int8", gemv_table(isa)});
    }
  }
  return out;
}

std::vector<float> product(const KernelTable& t, const std::vector<float>& x, int64_t n,
                           const QuantizedMatrix& w) {
  std::vector<float> y(static_cast<size_t>(n * w.rows));
  qmatmul(t, x.data(), n, w, y.data());
  return y;
}

TEST(QmatmulTileLayout, EveryKernelGivesTheRowsResult) {
  uint32_t seed = base_seed() + 5000u;
  for (const int threads : {1, 2}) {
    const test::ThreadCount tc(threads);
    for (const auto& [bits, group] : {std::pair{4, int64_t{0}}, std::pair{4, int64_t{32}},
                                      std::pair{4, int64_t{128}}, std::pair{8, int64_t{128}}}) {
      for (const int64_t in : {300, 1024}) {
        for (const int64_t out : {17, 300}) {
          std::mt19937 rng(++seed);
          const QuantizedMatrix rows = random_matrix(out, in, group, rng, bits);
          QuantizedMatrix tiled = rows;
          add_tile_layout(tiled);
          ASSERT_TRUE(tiled.codes.empty());
          for (const int64_t n : {1, 3, 30, 65}) {
            const std::vector<float> x = random_x(n, in, 1.0f, rng);
            for (const NamedTable& t : tables()) {
              EXPECT_EQ(product(t.table, x, n, tiled), product(t.table, x, n, rows))
                  << t.name << " threads=" << threads << " bits=" << bits << " g=" << group
                  << " in=" << in << " out=" << out << " n=" << n << " seed=" << seed;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace wkvq::q8test
