#include "calibrate/calibration_result.h"

#include <memory>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "formats/weight_quant.h"
#include "model/linear.h"
#include "model/weight_quantizer.h"

namespace wkvq {

LayerSmoothing LayerSmoothing::identity(int kv_dim) {
  LayerSmoothing s;
  const auto n = static_cast<size_t>(kv_dim);
  s.dk.assign(n, 0.0f);
  s.dv.assign(n, 0.0f);
  s.sk.assign(n, 1.0f);
  s.sv.assign(n, 1.0f);
  return s;
}

KvSmoothing CalibrationResult::smoothing() const {
  if (blocks.empty() || blocks[0].smoothing.empty()) return {};
  const int kv_dim = static_cast<int>(blocks[0].smoothing.dk.size());
  KvSmoothing s;
  s.n_layers = static_cast<int>(blocks.size());
  s.kv_dim = kv_dim;
  for (size_t l = 0; l < blocks.size(); ++l) {
    const LayerSmoothing& b = blocks[l].smoothing;
    WKVQ_REQUIRE(b.dk.size() == static_cast<size_t>(kv_dim) && b.sk.size() == b.dk.size() &&
                     b.dv.size() == b.dk.size() && b.sv.size() == b.dk.size(),
                 "calibration result: block ", l, " has KV smoothing of ", b.dk.size(),
                 " channels, block 0 of ", kv_dim);
    s.dk.insert(s.dk.end(), b.dk.begin(), b.dk.end());
    s.sk.insert(s.sk.end(), b.sk.begin(), b.sk.end());
    s.dv.insert(s.dv.end(), b.dv.begin(), b.dv.end());
    s.sv.insert(s.sv.end(), b.sv.begin(), b.sv.end());
  }
  s.validate("calibration result");
  return s;
}

Model apply_calibration(const Model& fp, const CalibrationResult& r, int wbits, int64_t wgroup) {
  const int L = fp.config.n_layers;
  WKVQ_REQUIRE(static_cast<int>(r.blocks.size()) == L, "calibration result has ", r.blocks.size(),
               " blocks, the model has ", L, " layers; finish (resume) the calibration first");
  Model q = fp;
  parallel_for(int64_t{L} * 7, 1, [&](int64_t b, int64_t e) {
    std::vector<float> scratch;
    for (int64_t item = b; item < e; ++item) {
      const auto layer = static_cast<size_t>(item / 7);
      const int lin = static_cast<int>(item % 7);
      const std::vector<float>& hi = r.blocks[layer].clip_hi[static_cast<size_t>(lin)];
      const std::vector<float>& lo = r.blocks[layer].clip_lo[static_cast<size_t>(lin)];
      if (hi.empty()) continue;  // stays in floating point
      const Linear& src = linear_by_index(fp.layers[layer], lin);
      WKVQ_REQUIRE(!src.quantized() && src.has_float(), "apply_calibration: layer ", layer, " ",
                   kLinearNames[lin],
                   " is not in floating point; calibration results apply to a floating-point "
                   "model");
      const int64_t g = weight_group_size(src.in, wgroup);
      const int64_t expected = src.out * ((src.in + g - 1) / g);
      WKVQ_REQUIRE(static_cast<int64_t>(hi.size()) == expected && lo.size() == hi.size(),
                   "apply_calibration: layer ", layer, " ", kLinearNames[lin], " has ", hi.size(),
                   " clip factors, expected rows x groups = ", expected, " for group size ", wgroup,
                   "; was it calibrated with another --wgroup?");
      Linear& dst = linear_by_index(q.layers[layer], lin);
      dst.q = inference_matrix(quantize_weights_ref(src.f32_view(scratch), src.out, src.in, wbits,
                                                    wgroup, hi.data(), lo.data()));
      fp.storage.release_pages(src.float_data(), src.float_bytes());
      dst.w = nullptr;
      dst.w16 = nullptr;
      dst.wbf16 = nullptr;
    }
  });
  for (LayerWeights& l : q.layers) {  // linears left in floating point run in f32
    for (int i = 0; i < 7; ++i) to_owned_f32(q, linear_by_index(l, i));
  }
  q.quant = r.quant;
  q.quant.method = "wkvquant";
  q.quant.wbits = wbits;
  q.quant.wgroup = wgroup;
  q.kv_smoothing = r.smoothing();
  return q;
}

Model apply_smoothing(const Model& weights, const CalibrationResult& r) {
  const int L = weights.config.n_layers;
  WKVQ_REQUIRE(static_cast<int>(r.blocks.size()) == L, "calibration result has ", r.blocks.size(),
               " blocks, the model has ", L, " layers; finish (resume) the calibration first");
  Model q = weights;
  q.kv_smoothing = r.smoothing();
  WKVQ_REQUIRE(q.kv_smoothing.n_layers == 0 || q.kv_smoothing.kv_dim == weights.config.kv_dim(),
               "calibration result: KV smoothing of ", q.kv_smoothing.kv_dim,
               " channels, the model has ", weights.config.kv_dim());
  q.quant.kv = r.quant.kv;
  const std::string method = weights.quant.method.empty() ? "quantized" : weights.quant.method;
  q.quant.method = method + "+wkvquant-kv";
  q.quant.calibration = (weights.quant.calibration.empty() ? method : weights.quant.calibration) +
                        "; KV: " + r.quant.calibration;
  return q;
}

}  // namespace wkvq
