// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
// Transformers", 2022): weight quantization that corrects each quantized column's error on the
// columns not yet quantized, using the inverse Hessian of the layer's squared output error.
//
// One linear W (rows, cols) with calibration inputs X (N, cols):
//   H = 2/N X^T X                         (f64; the 2/N scale cancels in the updates)
//   dead inputs (H_jj = 0): H_jj = 1      (their column is quantized by RTN, nothing propagates)
//   act-order: columns processed in descending H_jj order (a stable sort), H permuted alike
//   H += damp * mean(diag H) * I
//   U = upper Cholesky factor of H^-1     (torch::linalg_cholesky, torch::cholesky_inverse)
//   for each block of `block` columns [i1, i2) (lazy batch updates):
//     for each column j in it:
//       at a group start (see below): the group's scale and zero point
//       q_j = Q(w_j), e_j = (w_j - q_j) / U_jj
//       w_k -= e_j U_jk   for the block's columns k > j
//     W[:, i2:] -= E U[i1:i2, i2:]         (E: the block's e_j)
//
// Quantization Q is wkvq's asymmetric group format (formats/weight_quant.h) exactly: the group's
// parameters by weight_group_params_ref from the group's values in f32, the code
// clamp(round(w / s) + z, 0, 2^b - 1) from the f32 value, Q(w) = (q - z) s. The working
// weights are f64.
//
// Groups (the stored format has no g_idx: group k of a row is columns [k g, (k+1) g)):
//   act-order off: the group's parameters are computed when its first column is reached, from
//     the group's current values (every update of the columns quantized before it applied), as
//     GPTQ with groups does.
//   act-order on ("static groups"): every group's parameters are computed from the original W
//     before any update; the columns are quantized in act-order, each with the parameters of its
//     own (original-order) group. So the output needs no g_idx and stays in wkvq's format.
//
// Model level (gptq_model): block by block over calibration windows; in each block the linears
// are quantized in execution order (wq, wk, wv from rmsnorm(x); wo from the attention output;
// w_gate, w_up from rmsnorm(h); w_down from silu(gate) * up), each Hessian from the inputs that
// the block's already-quantized linears produce, and the quantized block's output is the next
// block's input.
#pragma once

#include <torch/types.h>

#include <functional>
#include <vector>

#include "calibrate/gptq_result.h"
#include "model/model.h"

namespace wkvq {

// H = 2/N X^T X in f64 for inputs x (..., cols): the rows of x are the N samples.
torch::Tensor gptq_hessian(const torch::Tensor& x);

// GPTQ of W (rows, cols) with the Hessian H (cols, cols) and the options' bits, group, damp,
// act_order and block. Throws wkvq::Error naming `what` when W is not finite or H is not
// positive definite even after damping.
QuantizedMatrix gptq_quantize(const torch::Tensor& w, const torch::Tensor& h, const GptqOptions& o,
                              const std::string& what = "gptq");

// Progress: block `done` of `total` finished.
using GptqProgressFn = std::function<void(int done, int total, double seconds)>;

// GPTQ of every linear of the floating-point `fp` on the token stream `calib` (o.samples windows
// of o.effective_window tokens, consecutive from the start; fewer when the text is shorter, at
// least one).
GptqResult gptq_model(const Model& fp, const std::vector<int>& calib, const GptqOptions& o,
                      const GptqProgressFn& progress = {});

}  // namespace wkvq
