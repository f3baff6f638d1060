// The checks a model passes before save_quantized_model writes anything.
#include "model/quantized_model_check.h"

#include <string>

#include "core/error.h"
#include "formats/kv_quant.h"
#include "formats/weight_quant.h"
#include "model/weight_quantizer.h"

namespace wkvq {

int check_saveable(const Model& m) {
  const QuantizationInfo& q = m.quant;
  WKVQ_REQUIRE(q.wbits != 3,
               "saving 3-bit weights is not supported: the GPTQ layout of the "
               "quantized model directory packs 2, 4 or 8 bits; quantize with --wbits 2, 4 or 8");
  WKVQ_REQUIRE(q.wbits == 2 || q.wbits == 4 || q.wbits == 8, "save_quantized_model: ", m.source,
               " is not a quantized model (weight bits ", q.wbits,
               "); quantize it first (2, 4 or 8 bits)");
  WKVQ_REQUIRE(!q.method.empty(), "save_quantized_model: the quantization method is not named");
  WKVQ_REQUIRE(static_cast<int>(m.layers.size()) == m.config.n_layers,
               "save_quantized_model: the model has ", m.layers.size(), " layers, config says ",
               m.config.n_layers);
  const Linear& packed = m.tok_embeddings_packed;
  WKVQ_REQUIRE((m.tok_embeddings != nullptr || packed.q != nullptr || packed.w16 != nullptr) &&
                   m.final_norm != nullptr,
               "save_quantized_model: the model has no embeddings or final norm");
  // Smoothing vectors when kv_smooth says so; rel8 metadata carries static group ranges (on an
  // identity smoothing when kv_smooth is "none").
  const KvSmoothing& ks = m.kv_smoothing;
  const bool smoothed = ks.n_layers > 0 && !(q.kv.smooth == KvSmoothMode::None && ks.is_identity());
  WKVQ_REQUIRE(smoothed == (q.kv.smooth != KvSmoothMode::None),
               "save_quantized_model: kv_smooth is \"", kv_smooth_name(q.kv.smooth),
               "\" but the model ", smoothed ? "has" : "has no", " KV smoothing vectors");
  if (ks.n_layers > 0) {
    WKVQ_REQUIRE(ks.n_layers == m.config.n_layers && ks.kv_dim == m.config.kv_dim(),
                 "save_quantized_model: KV smoothing of shape (", ks.n_layers, ", ", ks.kv_dim,
                 ") does not fit the model");
    ks.validate("save_quantized_model");
  }
  if (q.kv.quantized() && q.kv.rel8) {
    const int64_t group = q.kv.group == 0 ? m.config.head_dim : q.kv.group;
    WKVQ_REQUIRE(ks.n_layers > 0 && ks.has_ranges() && ks.ranges.group == group,
                 "save_quantized_model: kv_meta is \"rel8\" but the model carries no static KV ",
                 "group ranges for groups of ", group, " channels");
  }
  // table: the head or the embeddings, whose int-b storage may have its own bits (8 or 4).
  auto check_linear = [&](const Linear& lin, const std::string& what, bool table = false) {
    WKVQ_REQUIRE(lin.q != nullptr || lin.w != nullptr || lin.w16 != nullptr,
                 "save_quantized_model: ", what, " has no weights");
    if (lin.q == nullptr) return;
    validate(*lin.q, what.c_str());
    const bool bits_ok =
        lin.q->bits == q.wbits || (table && (lin.q->bits == 8 || lin.q->bits == 4));
    WKVQ_REQUIRE(bits_ok && lin.q->group == weight_group_size(lin.in, q.wgroup) &&
                     lin.q->rows == lin.out && lin.q->cols == lin.in,
                 "save_quantized_model: ", what, " is quantized with ", lin.q->bits,
                 " bits, group ", lin.q->group, ", shape (", lin.q->rows, ", ", lin.q->cols,
                 "); the model says ", q.wbits, " bits, group ", q.wgroup, ", shape (", lin.out,
                 ", ", lin.in, ")");
  };
  for (int l = 0; l < m.config.n_layers; ++l) {
    for (int i = 0; i < 7; ++i) {
      check_linear(linear_by_index(m.layers[static_cast<size_t>(l)], i),
                   std::to_string(l) + "." + kLinearNames[i]);
    }
  }
  if (!m.config.tied_output) check_linear(m.output, "output", true);
  if (m.tok_embeddings == nullptr) check_linear(packed, "embeddings", true);
  return q.wbits;
}

}  // namespace wkvq
