// f32 matmul: the reference (the definition), ISA selection, and the split of the work over
// threads. The SIMD kernels themselves live in matmul_avx2.cpp / matmul_avx512.cpp.
#include "kernels/matmul.h"

#include <cpuid.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <ostream>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/matmul_impl.h"
#include "kernels/work_split.h"

namespace wkvq {
namespace {

// A weight as f32, from f32 or fp16 storage (exact).
inline float weight_f32(float w) { return w; }
inline float weight_f32(uint16_t w) { return fp16_to_f32(w); }

// F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

// The reference: for every output, a float sum of the `in` products in index order. This is the
// definition the SIMD kernels are tested against. No FMA: this file is compiled for baseline
// x86-64 (and ISO C++ mode keeps GCC from contracting a * b + c anyway).

template <class T>
void reference_block(const float* x, int64_t in, const T* w, float* y, int64_t ldy,
                     detail::MatmulBlock b) {
  for (int64_t i = b.i0; i < b.i1; ++i) {
    const float* xi = x + i * in;
    for (int64_t o = b.o0; o < b.o1; ++o) {
      const T* wo = w + o * in;
      float s = 0.0f;
      for (int64_t k = 0; k < in; ++k) s += xi[k] * weight_f32(wo[k]);
      y[i * ldy + o] = s;
    }
  }
}

enum class Kernel { Reference, Dot, Packed };

// Runs `kernel` of `isa` on block b (pack: scratch for the packed kernels, else unused).
template <class T>
void run_block(Isa isa, Kernel kernel, const float* x, int64_t in, const T* w, float* y,
               int64_t ldy, detail::MatmulBlock b, float* pack) {
  if (kernel == Kernel::Reference) {
    reference_block(x, in, w, y, ldy, b);
  } else if (isa == Isa::Avx512) {
    if (kernel == Kernel::Dot) {
      detail::matmul_dot_avx512(x, in, w, y, ldy, b);
    } else {
      detail::matmul_packed_avx512(x, in, w, y, ldy, b, pack);
    }
  } else {
    WKVQ_ASSERT(isa == Isa::Avx2);
    if (kernel == Kernel::Dot) {
      detail::matmul_dot_avx2(x, in, w, y, ldy, b);
    } else {
      detail::matmul_packed_avx2(x, in, w, y, ldy, b, pack);
    }
  }
}

// Detected once: every kernel call asks (per layer, head and token in decode).
bool cpu_has_avx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
  }();
  return has;
}

bool cpu_has_avx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq");
  }();
  return has;
}

Isa detect_isa() {
  const char* env = std::getenv("WKVQ_ISA");
  if (env == nullptr || *env == '\0') {
    if (cpu_has_avx512()) return Isa::Avx512;
    if (cpu_has_avx2()) return Isa::Avx2;
    return Isa::Reference;
  }
  const Isa isa = parse_isa(env);
  WKVQ_REQUIRE(isa_supported(isa), "WKVQ_ISA=", env, ": this CPU does not support ", isa_name(isa),
               "; unset WKVQ_ISA or choose a supported one");
  return isa;
}

template <class T>
void matmul_any(const char* name, Isa isa, const float* x, int64_t n, int64_t in, const T* w,
                int64_t out, float* y) {
  WKVQ_REQUIRE(n >= 0 && in >= 0 && out >= 0, name, ": negative size (n=", n, ", in=", in,
               ", out=", out, ")");
  WKVQ_REQUIRE(isa_supported(isa), name, ": ISA ", isa_name(isa), " is not supported by this CPU");
  if (n == 0 || out == 0) return;
  WKVQ_REQUIRE(y != nullptr && (in == 0 || (x != nullptr && w != nullptr)), name,
               ": null pointer for a non-empty product");
  if (in == 0) {  // empty sums
    for (int64_t j = 0; j < n * out; ++j) y[j] = 0.0f;
    return;
  }

  const Kernel kernel = isa == Isa::Reference      ? Kernel::Reference
                        : n <= detail::kDotMaxRows ? Kernel::Dot
                                                   : Kernel::Packed;
  const detail::GemmBlocking& blocking =
      isa == Isa::Avx512 ? detail::kAvx512Blocking : detail::kAvx2Blocking;
  // Dot kernels read W once per 4 rows of x: keep x whole and split W's rows (multiples of 8, the
  // rows of W one step reads). Packed kernels split along both, in register-tile units.
  const WorkSplit s = kernel == Kernel::Packed ? split_work(n, in, out, blocking.mr, blocking.nr)
                      : kernel == Kernel::Dot  ? split_work(n, in, out, n, 8)
                                               : split_work(n, in, out, n, 1);
  parallel_for(s.tasks(), 1, [&](int64_t begin, int64_t end) {
    float* pack =
        kernel == Kernel::Packed ? thread_pack_buffer(detail::pack_floats(blocking)) : nullptr;
    for (int64_t t = begin; t < end; ++t) {
      const WorkBlock wb = s.block(t, n, out);
      const detail::MatmulBlock b{wb.i0, wb.i1, wb.o0, wb.o1};
      run_block(isa, kernel, x, in, w, y, out, b, pack);
    }
  });
}

}  // namespace

Isa parse_isa(std::string_view name) {
  for (const Isa isa : {Isa::Reference, Isa::Avx2, Isa::Avx512}) {
    if (name == isa_name(isa)) return isa;
  }
  fail("unknown ISA '", name, "': expected reference, avx2 or avx512");
}

std::ostream& operator<<(std::ostream& os, Isa isa) { return os << isa_name(isa); }

Isa best_isa() {
  static const Isa isa = detect_isa();  // WKVQ_ISA is read once, on the first call
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Reference:
      return "reference";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
  }
  return "unknown";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Reference:
      return true;
    case Isa::Avx2:
      return cpu_has_avx2();
    case Isa::Avx512:
      return cpu_has_avx512();
  }
  return false;
}

void matmul_f32(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y) {
  matmul_f32(best_isa(), x, n, in, w, out, y);
}

void matmul_f32(Isa isa, const float* x, int64_t n, int64_t in, const float* w, int64_t out,
                float* y) {
  matmul_any("matmul_f32", isa, x, n, in, w, out, y);
}

void matmul_f16(const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out, float* y) {
  matmul_f16(best_isa(), x, n, in, w, out, y);
}

void matmul_f16(Isa isa, const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out,
                float* y) {
  matmul_any("matmul_f16", isa, x, n, in, w, out, y);
}

}  // namespace wkvq
