#include "model/weight_quantizer.h"

#include <cstdlib>
#include <memory>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/parallel.h"
#include "model/linear.h"

namespace wkvq {

const Linear& linear_by_index(const LayerWeights& l, int i) {
  WKVQ_ASSERT(i >= 0 && i < 7);
  return *l.linears()[static_cast<size_t>(i)];
}

Linear& linear_by_index(LayerWeights& l, int i) {
  return const_cast<Linear&>(linear_by_index(std::as_const(l), i));
}

namespace {
int linear_index(const std::string& name) {
  for (int i = 0; i < 7; ++i) {
    if (name == kLinearNames[i]) return i;
  }
  return -1;
}

int parse_layer(const std::string& s, int n_layers) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') return -2;
  WKVQ_REQUIRE(v >= 0 && v < n_layers, "--keep-float: layer ", v, " does not exist (the model has ",
               n_layers, " layers)");
  return static_cast<int>(v);
}
}  // namespace

KeepFloat::KeepFloat(const std::string& spec, int n_layers) {
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const size_t dot = item.find('.');
    int layer = -1, lin = -1;
    if (dot == std::string::npos) {
      layer = parse_layer(item, n_layers);
      if (layer == -2) {
        layer = -1;
        lin = linear_index(item);
        WKVQ_REQUIRE(lin >= 0, "--keep-float: unknown entry '", item,
                     "'; expected a layer number, a linear name (wq, wk, wv, wo, w_gate, w_up, "
                     "w_down) or LAYER.NAME");
      }
    } else {
      layer = parse_layer(item.substr(0, dot), n_layers);
      lin = linear_index(item.substr(dot + 1));
      WKVQ_REQUIRE(layer >= 0 && lin >= 0, "--keep-float: cannot read '", item,
                   "'; expected LAYER.NAME such as 3.w_down");
    }
    entries_.emplace_back(layer, lin);
  }
}

bool KeepFloat::keeps(int layer, int linear) const {
  for (const auto& [l, i] : entries_) {
    if ((l < 0 || l == layer) && (i < 0 || i == linear)) return true;
  }
  return false;
}

void to_owned_f32(Model& m, Linear& lin) {
  if (lin.w != nullptr || !lin.has_float()) return;
  float* dst = m.storage.allocate(static_cast<size_t>(lin.out * lin.in));
  lin.rows_f32(0, lin.out, dst);
  m.storage.release_pages(lin.float_data(), lin.float_bytes());
  lin.w = dst;
  lin.w16 = nullptr;
  lin.wbf16 = nullptr;
}

Model quantize_weights_rtn(const Model& fp, const WeightQuantOptions& opt) {
  Model q = fp;
  const int L = fp.config.n_layers;
  parallel_for(int64_t{L} * 7, 1, [&](int64_t b, int64_t e) {
    std::vector<float> scratch;
    for (int64_t item = b; item < e; ++item) {
      const int layer = static_cast<int>(item / 7), lin = static_cast<int>(item % 7);
      if (opt.keep_float.keeps(layer, lin)) continue;
      const Linear& src = linear_by_index(fp.layers[static_cast<size_t>(layer)], lin);
      Linear& dst = linear_by_index(q.layers[static_cast<size_t>(layer)], lin);
      dst.q = inference_matrix(
          quantize_weights_ref(src.f32_view(scratch), src.out, src.in, opt.bits, opt.group));
      fp.storage.release_pages(src.float_data(), src.float_bytes());
      dst.w = nullptr;
      dst.w16 = nullptr;
      dst.wbf16 = nullptr;
    }
  });
  // Linears kept in floating point run in f32, as from an f32 checkpoint; q lets go of the float
  // sources of the quantized ones (serially: the storage's holder list is not thread-safe).
  for (int layer = 0; layer < L; ++layer) {
    for (int i = 0; i < 7; ++i) {
      const Linear& src = linear_by_index(fp.layers[static_cast<size_t>(layer)], i);
      Linear& dst = linear_by_index(q.layers[static_cast<size_t>(layer)], i);
      if (dst.q != nullptr) q.storage.release(src.float_data(), src.float_bytes());
      to_owned_f32(q, dst);
    }
  }
  q.quant.method = "rtn";
  q.quant.wbits = opt.bits;
  q.quant.wgroup = opt.group;
  return q;
}

}  // namespace wkvq
