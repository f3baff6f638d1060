// AVX-512 f32 matmul kernels (compiled with -mavx512f/bw/vl/dq; chosen at run time): the kernels
// of matmul_kernels.h sized for 32 zmm registers.
#include "kernels/simd_avx512.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/matmul_kernels.h"

namespace wkvq::detail {
namespace {

struct Avx512Tuning {
  // 12 x 32 register tile: 24 zmm accumulators.
  static constexpr GemmBlocking kBlocking = kAvx512Blocking;
  // NX * NW accumulators, at least 8 independent chains.
  static constexpr int dot_rows_of_w(int nx) { return nx == 1 ? 8 : 4; }
};

constexpr MatmulOps kOps = MatmulKernels<Avx512, Avx512Tuning>::ops();

}  // namespace

const MatmulOps& matmul_ops_avx512() { return kOps; }

}  // namespace wkvq::detail
