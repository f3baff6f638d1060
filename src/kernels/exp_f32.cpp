#include "kernels/exp_f32.h"

#include <bit>
#include <cmath>
#include <cstdint>

namespace wkvq {

float exp_f32(float x) {
  double d = static_cast<double>(x);
  d = kExpLo > d ? kExpLo : d;  // the order of the vector max/min: NaN stays NaN
  d = kExpHi < d ? kExpHi : d;
  const double t = std::fma(d, kExpLog2e, kExpShift);
  const double k = t - kExpShift;
  const double r = std::fma(-k, kExpLn2Lo, std::fma(-k, kExpLn2Hi, d));
  double p = kExpCoef[kExpDegree];
  for (int i = kExpDegree - 1; i >= 0; --i) p = std::fma(p, r, kExpCoef[i]);
  const uint64_t bits = (std::bit_cast<uint64_t>(t) << 52) + (uint64_t{1023} << 52);
  return static_cast<float>(p * std::bit_cast<double>(bits));
}

}  // namespace wkvq
