// The instruction sets the kernels are written for, and which of them this CPU runs. Which one a
// process uses, and with it every kernel, is decided once by kernels/kernel_table.h.
#pragma once

#include <iosfwd>
#include <string_view>

namespace wkvq {

enum class Isa { Reference, Avx2, Avx512 };

// "reference" | "avx2" | "avx512".
const char* isa_name(Isa isa);
// The inverse of isa_name; throws wkvq::Error for any other name.
Isa parse_isa(std::string_view name);
// Writes isa_name(isa).
std::ostream& operator<<(std::ostream& os, Isa isa);
// Whether this CPU runs `isa`'s kernels (AVX2 needs FMA and F16C; AVX-512 needs F, BW, VL, DQ
// and AVX2). Detected once per process.
bool isa_supported(Isa isa);
// Whether this CPU runs the AVX512_VNNI kernels on top of the AVX-512 ones (the int8 GEMM of
// kernels/qmatmul_q8.h).
bool avx512_vnni_supported();
// Whether this process may run AMX-INT8 tiles (the int8 GEMM's AMX kernel): the CPU has AMX-TILE
// and AMX-INT8 and the OS granted the tile data (Linux arch_prctl ARCH_REQ_XCOMP_PERM, asked once
// per process), on top of the AVX-512 kernels.
bool amx_int8_usable();
// The widest supported ISA, ignoring WKVQ_ISA.
Isa widest_supported_isa();
// The ISA of this process's kernel table (kernel_table().isa): widest_supported_isa(), or the one
// WKVQ_ISA names.
Isa best_isa();

}  // namespace wkvq
