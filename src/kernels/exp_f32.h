// wkvq's float exponential, the one the softmax uses: a definition that vector code reproduces bit
// for bit (kernels/kv_attend_kernels.h computes the same doubles lane by lane), unlike std::exp,
// whose result depends on the C library.
//
//   exp_f32(x): d = x widened to double, clamped to [kExpLo, kExpHi] (NaN passes through);
//     t = fma(d, log2(e), 1.5 * 2^52)        the low bits of t hold k = round(d / ln 2), ties even
//     k = t - 1.5 * 2^52                     exact
//     r = fma(-k, ln2_lo, fma(-k, ln2_hi, d))  |r| <= ln 2 / 2 (Cody-Waite: ln 2 = hi + lo)
//     p = Taylor polynomial of e^r of degree kExpDegree in Horner's order, each step one fma
//     2^k from t's bits: (bits(t) << 52) + (1023 << 52)
//     result = (float)(p * 2^k)               one rounding to float (subnormals, 0 and inf there)
// Every double operation is exact or one IEEE rounding, so the result is the same on every CPU.
// Accuracy: e^r's polynomial is within ~2^-45 relative of e^r, so the one rounding to float
// decides: the result is within kExpMaxUlp of e^x (tests/kernel/exp_f32_test.cpp measures it
// against long double), i.e. correctly rounded except within 2^-21 ulp of a tie. Special values:
// -inf and x < -103.98 give +0, +inf and x > 88.73 give +inf, NaN gives NaN, exp_f32(-0) = 1.
#pragma once

namespace wkvq {

// Clamping x to [kExpLo, kExpHi] changes no result (e^-110 rounds to 0, e^100 overflows to inf)
// and keeps 2^k a normal double.
inline constexpr double kExpLo = -110.0;
inline constexpr double kExpHi = 100.0;
inline constexpr double kExpShift = 0x1.8p52;               // 1.5 * 2^52
inline constexpr double kExpLog2e = 0x1.71547652b82fep0;    // log2(e) rounded to double
inline constexpr double kExpLn2Hi = 0x1.62e42fefa39efp-1;   // ln 2 rounded to double
inline constexpr double kExpLn2Lo = 0x1.abc9e3b39803fp-56;  // ln 2 - kExpLn2Hi
inline constexpr int kExpDegree = 11;
// kExpCoef[i] = 1 / i! rounded to double, i <= kExpDegree.
inline constexpr double kExpCoef[kExpDegree + 1] = {
    1.0,       1.0,        1.0 / 2,     1.0 / 6,      1.0 / 24,      1.0 / 120,
    1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800};
// The largest error, in units in the last place of the float result, over x in [-104, 89].
inline constexpr double kExpMaxUlp = 0.5 + 0x1p-21;

float exp_f32(float x);

}  // namespace wkvq
