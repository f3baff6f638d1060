// AVX-512 KV quantization kernels, 4 and 8 bits (compiled with -mavx512f/bw/vl/dq; chosen at
// run time): the kernels of kv_quant_kernels.h with the Avx512 traits.
#include "kernels/simd_avx512.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/kv_quant_kernels.h"

namespace wkvq::detail {

const KvQuantOps& kv_quant_ops_avx512() {
  static constexpr KvQuantOps kOps = KvQuantKernels<Avx512>::ops();
  return kOps;
}

}  // namespace wkvq::detail
