// The checks a model passes before save_quantized_model (model/quantized_model_io.h) writes
// anything: saveable bit width, a named method, layers, embeddings and final norm present, KV
// smoothing consistent with the settings, every linear quantized as the model says.
#pragma once

#include "model/model.h"

namespace wkvq {

// Throws wkvq::Error naming what does not fit; returns the weights' bit width (2, 4 or 8).
int check_saveable(const Model& m);

}  // namespace wkvq
