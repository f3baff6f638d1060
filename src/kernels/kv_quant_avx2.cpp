// AVX2 + FMA + F16C KV quantization kernels, 4 and 8 bits (compiled with -mavx2 -mfma -mf16c;
// chosen at run time): the kernels of kv_quant_kernels.h with the Avx2 traits.
#include "kernels/simd_avx2.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/kv_quant_kernels.h"

namespace wkvq::detail {

const KvQuantOps& kv_quant_ops_avx2() {
  static constexpr KvQuantOps kOps = KvQuantKernels<Avx2>::ops();
  return kOps;
}

}  // namespace wkvq::detail
