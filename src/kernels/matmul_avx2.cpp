// AVX2 + FMA f32 matmul kernels (compiled with -mavx2 -mfma -mf16c; chosen at run time): the
// kernels of matmul_kernels.h sized for 16 ymm registers.
#include "kernels/simd_avx2.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/matmul_kernels.h"

namespace wkvq::detail {
namespace {

struct Avx2Tuning {
  // 6 x 16 register tile: 12 ymm accumulators.
  static constexpr GemmBlocking kBlocking = kAvx2Blocking;
  // NX * NW + NX + 1 <= 16 registers.
  static constexpr int dot_rows_of_w(int nx) { return nx == 1 ? 8 : nx == 2 ? 4 : nx == 3 ? 3 : 2; }
};

constexpr MatmulOps kOps = MatmulKernels<Avx2, Avx2Tuning>::ops();

}  // namespace

const MatmulOps& matmul_ops_avx2() { return kOps; }

}  // namespace wkvq::detail
