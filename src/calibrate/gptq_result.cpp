#include "calibrate/gptq_result.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "io/safetensors_writer.h"
#include "model/linear.h"
#include "model/weight_quantizer.h"

namespace wkvq {

int64_t GptqOptions::effective_window(const LlamaConfig& c) const {
  return window > 0 ? window : std::min<int64_t>(256, c.seq_len);
}

void GptqOptions::validate(const LlamaConfig& c) const {
  WKVQ_REQUIRE(bits == 2 || bits == 3 || bits == 4 || bits == 8,
               "gptq: bits must be 2, 3, 4 or 8, ", "got ", bits);
  WKVQ_REQUIRE(group >= 0, "gptq: the group size must be >= 0 (0: one group per row), got ", group);
  WKVQ_REQUIRE(damp > 0 && damp <= 10, "--gptq-damp: expected a fraction of the mean Hessian ",
               "diagonal in (0, 10], got ", damp);
  WKVQ_REQUIRE(block >= 1, "gptq: the lazy batch block must be >= 1 column, got ", block);
  WKVQ_REQUIRE(samples >= 1, "gptq: need at least one calibration window, got ", samples);
  const int64_t T = effective_window(c);
  WKVQ_REQUIRE(T >= 1 && T <= c.seq_len, "gptq: window of ", T, " tokens outside [1, model ",
               "context ", c.seq_len, "]");
}

std::string GptqOptions::summary(const LlamaConfig& c) const {
  std::ostringstream os;
  os << "gptq W" << bits << " g" << group << ", damp " << damp << ", act-order "
     << (act_order ? "on (static groups)" : "off") << ", " << samples << " windows of "
     << effective_window(c) << ", block " << block;
  return os.str();
}

namespace {

std::string tensor_name(size_t layer, int lin, const char* part) {
  return "layers." + std::to_string(layer) + "." + kLinearNames[lin] + "." + part;
}

// Copies tensor `name` of `f` into dst after checking its dtype and shape.
void read_into(const SafetensorsFile& f, const std::string& name, DType dtype,
               const std::vector<int64_t>& shape, void* dst) {
  const TensorInfo* t = f.find(name);
  WKVQ_REQUIRE(t != nullptr, f.path(), ": tensor ", name, " is missing; the GPTQ run did not ",
               "finish (run the command again)");
  WKVQ_REQUIRE(t->dtype == dtype && t->shape == shape, f.path(), ": tensor ", name, " is ",
               dtype_name(t->dtype), " ", t->shape_string(), ", expected ", dtype_name(dtype), " ",
               shape_to_string(shape));
  if (t->nbytes > 0) std::memcpy(dst, t->data, t->nbytes);
}

}  // namespace

void write_gptq_result(const std::string& path, const GptqResult& r, const std::string& summary) {
  SafetensorsWriter w;
  for (size_t l = 0; l < r.layers.size(); ++l) {
    for (int i = 0; i < 7; ++i) {
      const QuantizedMatrix& m = r.layers[l][static_cast<size_t>(i)];
      w.add(tensor_name(l, i, "codes"), DType::U8, {m.rows, m.row_bytes}, m.codes.data());
      w.add(tensor_name(l, i, "scales"), DType::F16, {m.rows, m.n_groups}, m.scales.data());
      w.add(tensor_name(l, i, "zeros"), DType::U8, {m.rows, m.n_groups}, m.zeros.data());
    }
  }
  w.set_metadata("wkvq_gptq", summary);
  w.write(path);
}

GptqResult read_gptq_result(const std::string& path, const Model& fp, const GptqOptions& o) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  const auto meta = f.metadata().find("wkvq_gptq");
  const std::string want = o.summary(fp.config);
  WKVQ_REQUIRE(meta != f.metadata().end() && meta->second == want, path,
               ": not written for the options asked for (", want, ")");
  GptqResult r;
  r.layers.resize(fp.layers.size());
  for (size_t l = 0; l < fp.layers.size(); ++l) {
    for (int i = 0; i < 7; ++i) {
      const Linear& lin = linear_by_index(fp.layers[l], i);
      QuantizedMatrix m = make_quantized_matrix(lin.out, lin.in, o.bits, o.group);
      read_into(f, tensor_name(l, i, "codes"), DType::U8, {m.rows, m.row_bytes}, m.codes.data());
      read_into(f, tensor_name(l, i, "scales"), DType::F16, {m.rows, m.n_groups}, m.scales.data());
      read_into(f, tensor_name(l, i, "zeros"), DType::U8, {m.rows, m.n_groups}, m.zeros.data());
      validate(m, tensor_name(l, i, "").c_str());
      r.layers[l][static_cast<size_t>(i)] = std::move(m);
    }
  }
  return r;
}

Model apply_gptq(const Model& fp, const GptqResult& r, const GptqOptions& o) {
  WKVQ_REQUIRE(r.layers.size() == fp.layers.size(), "GPTQ result has ", r.layers.size(),
               " layers, the model has ", fp.layers.size());
  Model q = fp;
  for (size_t l = 0; l < q.layers.size(); ++l) {
    for (int i = 0; i < 7; ++i) {
      const Linear& src = linear_by_index(fp.layers[l], i);
      WKVQ_REQUIRE(!src.quantized(), "apply_gptq: layer ", l, " ", kLinearNames[i],
                   " is already quantized; GPTQ starts from a floating-point model");
      const QuantizedMatrix& m = r.layers[l][static_cast<size_t>(i)];
      WKVQ_REQUIRE(m.rows == src.out && m.cols == src.in && m.bits == o.bits, "apply_gptq: layer ",
                   l, " ", kLinearNames[i], " is ", m.rows, " x ", m.cols, " at ", m.bits,
                   " bits, expected ", src.out, " x ", src.in, " at ", o.bits);
      Linear& dst = linear_by_index(q.layers[l], i);
      dst.q = inference_matrix(m);
      fp.storage.release_pages(src.float_data(), src.float_bytes());
      dst.w = nullptr;
      dst.w16 = nullptr;
      dst.wbf16 = nullptr;
    }
  }
  q.quant.method = "gptq";
  q.quant.wbits = o.bits;
  q.quant.wgroup = o.group;
  q.quant.calibration = o.summary(fp.config);
  return q;
}

}  // namespace wkvq
