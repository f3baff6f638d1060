#include "calibrate/crr.h"

#include <ATen/Parallel.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>

#include "calibrate/block_file.h"
#include "calibrate/crr_record.h"
#include "calibrate/fake_kv.h"
#include "calibrate/lwc.h"
#include "calibrate/torch_block.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/parallel.h"
#include "model/weight_quantizer.h"
#include "runtime/kv_stats.h"

namespace wkvq {
namespace {

using Clock = std::chrono::steady_clock;

torch::Tensor loss_of(CrrLoss kind, const torch::Tensor& y, const torch::Tensor& target) {
  const torch::Tensor d = y - target;
  return kind == CrrLoss::Mae ? d.abs().mean() : d.square().mean();
}

// Block i's quantization in a forward pass.
struct BlockQuant {
  BlockLinears w;              // W^ (or the full-precision weights)
  std::unique_ptr<FakeKv> kv;  // null: full-precision attention
};

class CrrRun {
 public:
  CrrRun(const Model& fp, const std::vector<int>& calib, const CrrOptions& opt,
         const CrrProgressFn& progress, const Model* frozen);
  CalibrationResult run();

 private:
  void choose_windows(const std::vector<int>& calib);
  int load_finished();
  torch::Tensor embed() const;
  const TorchBlock& block(int i);
  LayerSmoothing initial_smoothing(int i) const;
  BlockLinears frozen_weights(int i);
  torch::Tensor chain(const torch::Tensor& x, int first, int last, const BlockLinears& w,
                      const FakeKv* kv, torch::Tensor* first_out);
  torch::Tensor pass(const torch::Tensor& x, int first, int last, const BlockQuant* q,
                     torch::Tensor* first_out);
  double eval_loss(int i, int kp, const BlockLinears& w, const FakeKv* kv,
                   const torch::Tensor& y_fp);
  BlockQuant frozen(int i, const BlockCalibration& b);
  void set_kv_ranges(int i, const BlockLinears& w, FakeKv& kv);
  BlockCalibration train(int i);
  void run_epochs(int i, int kp, const Lwc* lwc, const BlockLinears& fixed_w, FakeKv* kv,
                  const torch::Tensor& y_fp);
  double units(int i) const;
  void report(CrrProgress p);

  const Model& fp_;
  const Model* frozen_;  // the frozen weights (opt_.frozen_weights), else null
  const CrrOptions opt_;
  const CrrProgressFn progress_;
  const std::vector<int>& calib_;  // the whole calibration stream (outlives the run)
  const int L_;
  const int64_t T_, S_;
  std::vector<int> tokens_;  // (S, T) windows, row-major
  std::string record_;
  KvSmoothing init_smooth_;  // statistics initialisation (n_layers 0: identity)
  std::vector<std::unique_ptr<TorchBlock>> blocks_;
  torch::Tensor x_fp_, x_q_;  // (S, T, dim)
  CalibrationResult result_;
  Clock::time_point start_ = Clock::now();
  double units_total_ = 0, units_done_ = 0;
};

CrrRun::CrrRun(const Model& fp, const std::vector<int>& calib, const CrrOptions& opt,
               const CrrProgressFn& progress, const Model* frozen)
    : fp_(fp),
      frozen_(frozen),
      opt_(opt),
      progress_(progress),
      calib_(calib),
      L_(fp.config.n_layers),
      T_(crr_window(fp.config, opt)),
      S_(opt.samples),
      blocks_(static_cast<size_t>(fp.config.n_layers)) {
  opt_.validate(fp.config);
  WKVQ_REQUIRE(opt_.frozen_weights == (frozen != nullptr),
               "calibration: frozen weights need the model holding them, and only they do");
  if (frozen != nullptr) {
    WKVQ_REQUIRE(frozen->config.summary() == fp.config.summary(),
                 "calibration: the frozen "
                 "weights (",
                 frozen->source, ": ", frozen->config.summary(),
                 ") are not of the "
                 "reference model's shape (",
                 fp.config.summary(), ")");
  } else {
    for (const LayerWeights& l : fp.layers) {
      for (int i = 0; i < 7; ++i) {
        const Linear& lin = linear_by_index(l, i);
        WKVQ_REQUIRE(!lin.quantized() && lin.has_float(),
                     "calibration needs a floating-point model (f32, f16 or bf16 linears); ",
                     fp.source,
                     " is already quantized (learn only the KV smoothing on its frozen weights: "
                     "--learn smooth)");
      }
    }
  }
  choose_windows(calib);
  record_ = run_record(fp, calib, opt, frozen);
}

// S windows of T tokens at seeded random offsets of the stream.
void CrrRun::choose_windows(const std::vector<int>& calib) {
  const auto n = static_cast<int64_t>(calib.size());
  WKVQ_REQUIRE(n >= T_, "calibration text: ", n, " tokens, fewer than one window of ", T_,
               "; give a longer calibration text or a smaller window");
  std::mt19937_64 rng(splitmix64(opt_.seed));
  tokens_.resize(static_cast<size_t>(S_ * T_));
  for (int64_t s = 0; s < S_; ++s) {
    const auto start = static_cast<int64_t>(rng() % static_cast<uint64_t>(n - T_ + 1));
    std::copy(calib.begin() + start, calib.begin() + start + T_, tokens_.begin() + s * T_);
  }
}

// Reads the finished blocks of an earlier run; returns the first block left to calibrate.
int CrrRun::load_finished() {
  if (opt_.results_dir.empty()) return 0;
  std::filesystem::create_directories(opt_.results_dir);
  int n = 0;
  for (; n < L_; ++n) {
    const std::string path = block_file_path(opt_.results_dir, n);
    if (!std::filesystem::exists(path)) break;
    WKVQ_REQUIRE(opt_.resume, "the results directory ", opt_.results_dir,
                 " already holds a calibration run (", path,
                 "); resume it, or give an empty directory");
    BlockFile f = read_block_file(path);
    WKVQ_REQUIRE(f.block == n, path, ": holds block ", f.block, ", expected ", n);
    WKVQ_REQUIRE(f.record == record_, path,
                 ": written by a run with different options, model "
                 "or calibration text (first difference: ",
                 first_difference(f.record, record_),
                 "); resume with the same settings, or give an empty directory");
    result_.blocks.push_back(std::move(f.data));
  }
  return n;
}

torch::Tensor CrrRun::embed() const {
  const int dim = fp_.config.dim;
  torch::Tensor x = torch::empty({S_, T_, dim}, torch::kFloat32);
  float* dst = x.data_ptr<float>();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const int tok = tokens_[t];
    WKVQ_REQUIRE(tok >= 0 && tok < fp_.config.vocab_size, "calibration text: token id ", tok,
                 " is outside the vocabulary [0, ", fp_.config.vocab_size, ")");
    std::memcpy(dst + t * static_cast<size_t>(dim),
                fp_.tok_embeddings + static_cast<int64_t>(tok) * dim,
                sizeof(float) * static_cast<size_t>(dim));
  }
  return x;
}

const TorchBlock& CrrRun::block(int i) {
  auto& b = blocks_[static_cast<size_t>(i)];
  if (!b) b = std::make_unique<TorchBlock>(fp_, i);
  return *b;
}

LayerSmoothing CrrRun::initial_smoothing(int i) const {
  const int C = fp_.config.kv_dim();
  if (init_smooth_.n_layers == 0) return LayerSmoothing::identity(C);
  auto slice = [&](const float* p) { return std::vector<float>(p, p + C); };
  return {slice(init_smooth_.dK(i)), slice(init_smooth_.sK(i)), slice(init_smooth_.dV(i)),
          slice(init_smooth_.sV(i))};
}

// Block i's frozen weights: the frozen model's W^ (the reference block's own weights when the
// frozen model is the reference).
BlockLinears CrrRun::frozen_weights(int i) {
  if (frozen_ == &fp_) return block(i).weights();
  return TorchBlock(*frozen_, i).weights();
}

// x through blocks first..last; block `first` with weights w and KV fake quant kv.
torch::Tensor CrrRun::chain(const torch::Tensor& x, int first, int last, const BlockLinears& w,
                            const FakeKv* kv, torch::Tensor* first_out) {
  torch::Tensor y = block(first).forward(x, &w, kv);
  if (first_out != nullptr) *first_out = y;
  for (int j = first + 1; j <= last; ++j) y = block(j).forward(y);
  return y;
}

// chain() over all samples, in batches, without gradient. q null: block `first` in full precision.
torch::Tensor CrrRun::pass(const torch::Tensor& x, int first, int last, const BlockQuant* q,
                           torch::Tensor* first_out) {
  torch::NoGradGuard no_grad;
  torch::Tensor out = torch::empty_like(x);
  if (first_out != nullptr) *first_out = torch::empty_like(x);
  const BlockLinears& w = q != nullptr ? q->w : block(first).weights();
  for (int64_t s0 = 0; s0 < S_; s0 += opt_.batch) {
    const int64_t n = std::min(opt_.batch, S_ - s0);
    torch::Tensor y1;
    out.narrow(0, s0, n).copy_(
        chain(x.narrow(0, s0, n), first, last, w, q != nullptr ? q->kv.get() : nullptr, &y1));
    if (first_out != nullptr) first_out->narrow(0, s0, n).copy_(y1);
  }
  return out;
}

double CrrRun::eval_loss(int i, int kp, const BlockLinears& w, const FakeKv* kv,
                         const torch::Tensor& y_fp) {
  torch::NoGradGuard no_grad;
  double sum = 0;
  for (int64_t s0 = 0; s0 < S_; s0 += opt_.batch) {
    const int64_t n = std::min(opt_.batch, S_ - s0);
    const torch::Tensor y = chain(x_q_.narrow(0, s0, n), i, i + kp, w, kv, nullptr);
    sum += loss_of(opt_.loss, y, y_fp.narrow(0, s0, n)).item<double>() * static_cast<double>(n);
  }
  units_done_ += static_cast<double>((kp + 1) * S_);
  return sum / static_cast<double>(S_);
}

// The forward-pass form of a finished block's saved values (training, carry-forward and resume
// all use exactly this, so a resumed run is bit-identical).
BlockQuant CrrRun::frozen(int i, const BlockCalibration& b) {
  BlockQuant q;
  q.w = opt_.frozen_weights ? frozen_weights(i)
        : opt_.quantize_weights()
            ? fake_quant_fixed(block(i).weights(), b.clip_hi, b.clip_lo, opt_.wbits, opt_.wgroup)
            : block(i).weights();
  if (!b.smoothing.empty()) {
    q.kv = std::make_unique<FakeKv>(b.smoothing, fp_.config.head_dim, opt_.kv, /*learn=*/false);
    set_kv_ranges(i, q.w, *q.kv);
  }
  return q;
}

// rel8 metadata: the raw K and V channel ranges of block i with weights w over X_q[i] (all
// windows, position 0 of each left out as the runtime's --calib-sinks 1 does), which the static
// group ranges follow (calibrate/fake_kv.h). Nothing for fp16 metadata.
void CrrRun::set_kv_ranges(int i, const BlockLinears& w, FakeKv& kv) {
  if (!opt_.kv.rel8) return;
  torch::NoGradGuard no_grad;
  const int64_t skip = T_ > 1 ? 1 : 0;
  torch::Tensor lo[2], hi[2];
  for (int64_t s0 = 0; s0 < S_; s0 += opt_.batch) {
    const int64_t n = std::min(opt_.batch, S_ - s0);
    const TorchBlock::Qkv a = block(i).qkv(x_q_.narrow(0, s0, n), w);
    for (int t = 0; t < 2; ++t) {
      const torch::Tensor x = (t == 0 ? a.k : a.v).narrow(1, skip, T_ - skip);
      const torch::Tensor xl = x.amin({0, 1}), xh = x.amax({0, 1});
      lo[t] = s0 == 0 ? xl : torch::minimum(lo[t], xl);
      hi[t] = s0 == 0 ? xh : torch::maximum(hi[t], xh);
    }
  }
  kv.set_channel_ranges(to_floats(lo[0]), to_floats(hi[0]), to_floats(lo[1]), to_floats(hi[1]));
}

// Learns block i's parameters, then freezes them and carries X_q and X_fp to block i + 1.
BlockCalibration CrrRun::train(int i) {
  const auto t0 = Clock::now();
  const int kp = std::min(opt_.k, L_ - 1 - i);
  // targets Y_fp = F[i+k'] o ... o F[i](X_fp[i]), and X_fp[i+1] on the way     (S, T, dim)
  torch::Tensor x_fp_next;
  const torch::Tensor y_fp = pass(x_fp_, i, i + kp, nullptr, &x_fp_next);
  units_done_ += static_cast<double>((kp + 1) * S_);
  // parameters: LWC (or fixed RTN / float weights) and the KV smoothing
  const BlockLinears& w = block(i).weights();
  std::unique_ptr<Lwc> lwc;
  BlockLinears fixed_w = w;
  std::array<std::vector<float>, 7> ones;
  if (opt_.frozen_weights) {  // the weights as they are; no clip factors
    fixed_w = frozen_weights(i);
  } else if (opt_.quantize_weights() && opt_.learn_lwc) {
    lwc = std::make_unique<Lwc>(w, opt_.wbits, opt_.wgroup, opt_.lwc_init);
  } else if (opt_.quantize_weights()) {  // RTN: clip factors 1
    for (size_t l = 0; l < 7; ++l) {
      const GroupedWeight g = group_weight(w[l], opt_.wgroup);
      ones[l].assign(static_cast<size_t>(g.rows * g.n_groups), 1.0f);
    }
    fixed_w = fake_quant_fixed(w, ones, ones, opt_.wbits, opt_.wgroup);
  }
  std::unique_ptr<FakeKv> kv;
  if (opt_.quantize_kv()) {
    kv = std::make_unique<FakeKv>(initial_smoothing(i), fp_.config.head_dim, opt_.kv,
                                  opt_.learn_smooth());
    if (opt_.kv.rel8) set_kv_ranges(i, lwc ? lwc->fake_quant() : fixed_w, *kv);
  }
  BlockCalibration b;
  b.loss_before = eval_loss(i, kp, lwc ? lwc->fake_quant() : fixed_w, kv.get(), y_fp);
  run_epochs(i, kp, lwc.get(), fixed_w, kv.get(), y_fp);
  // freeze: the learned values as data (frozen weights: no clip factors)
  for (size_t l = 0; l < 7 && !opt_.frozen_weights; ++l) {
    b.clip_hi[l] = lwc ? lwc->clip_hi(static_cast<int>(l)) : ones[l];
    b.clip_lo[l] = lwc ? lwc->clip_lo(static_cast<int>(l)) : ones[l];
  }
  if (kv) b.smoothing = kv->values();
  const BlockQuant fq = frozen(i, b);
  b.loss_after = eval_loss(i, kp, fq.w, fq.kv.get(), y_fp);
  // X_q[i+1] = Fq[i](X_q[i]), X_fp[i+1] = F[i](X_fp[i])
  x_q_ = pass(x_q_, i, i, &fq, nullptr);
  x_fp_ = x_fp_next;
  units_done_ += static_cast<double>(S_);
  b.seconds = seconds_since(t0);
  return b;
}

void CrrRun::run_epochs(int i, int kp, const Lwc* lwc, const BlockLinears& fixed_w, FakeKv* kv,
                        const torch::Tensor& y_fp) {
  using torch::optim::AdamWOptions;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (lwc != nullptr) {
    groups.emplace_back(lwc->parameters(),
                        std::make_unique<AdamWOptions>(AdamWOptions(opt_.lr_lwc).weight_decay(0)));
  }
  if (kv != nullptr && !kv->parameters().empty()) {
    groups.emplace_back(kv->parameters(), std::make_unique<AdamWOptions>(
                                              AdamWOptions(opt_.lr_smooth).weight_decay(0)));
  }
  if (groups.empty()) return;  // nothing to learn
  torch::optim::AdamW adamw(groups, AdamWOptions().weight_decay(0));
  std::mt19937_64 rng(splitmix64(opt_.seed ^ splitmix64(static_cast<uint64_t>(i) + 1)));
  std::vector<int64_t> order(static_cast<size_t>(S_));
  for (int epoch = 0; epoch < opt_.epochs; ++epoch) {
    for (int64_t s = 0; s < S_; ++s) order[static_cast<size_t>(s)] = s;
    for (int64_t s = S_ - 1; s > 0; --s) {  // Fisher-Yates, portable across standard libraries
      std::swap(order[static_cast<size_t>(s)],
                order[static_cast<size_t>(rng() % static_cast<uint64_t>(s + 1))]);
    }
    double sum = 0;
    if (kv != nullptr && epoch > 0 && lwc != nullptr &&
        opt_.kv.rel8) {  // the ranges of the learned weights
      torch::NoGradGuard no_grad;
      set_kv_ranges(i, lwc->fake_quant(), *kv);
    }
    for (int64_t s0 = 0; s0 < S_; s0 += opt_.batch) {
      const int64_t n = std::min(opt_.batch, S_ - s0);
      const torch::Tensor idx = torch::from_blob(order.data() + s0, {n}, torch::kInt64).clone();
      const BlockLinears w = lwc != nullptr ? lwc->fake_quant() : fixed_w;
      const torch::Tensor y = chain(x_q_.index_select(0, idx), i, i + kp, w, kv, nullptr);
      const torch::Tensor loss = loss_of(opt_.loss, y, y_fp.index_select(0, idx));
      adamw.zero_grad();
      loss.backward();
      adamw.step();
      sum += loss.item<double>() * static_cast<double>(n);
    }
    const double mean = sum / static_cast<double>(S_);
    WKVQ_REQUIRE(std::isfinite(mean), "calibration diverged at block ", i, " epoch ", epoch + 1,
                 ": the loss is ", mean, "; lower the learning rates");
    units_done_ += static_cast<double>(3 * (kp + 1) * S_);
    report({i, L_, epoch + 1, opt_.epochs, mean, 0, 0, false, false});
  }
}

// Work of block i in units of one block forward over one sample (a training step ~ 3).
double CrrRun::units(int i) const {
  const int kp = std::min(opt_.k, L_ - 1 - i);
  const bool learns = (opt_.quantize_weights() && opt_.learn_lwc && !opt_.frozen_weights) ||
                      (opt_.quantize_kv() && opt_.learn_smooth());
  const int epochs = learns ? opt_.epochs : 0;
  return static_cast<double>((3 * epochs + 3) * (kp + 1) + 1) * static_cast<double>(S_);
}

void CrrRun::report(CrrProgress p) {
  if (!progress_) return;
  p.elapsed_s = seconds_since(start_);
  const double done = std::min(units_done_, units_total_);
  p.eta_s = done > 0 ? p.elapsed_s * (units_total_ - done) / done : 0.0;
  progress_(p);
}

CalibrationResult CrrRun::run() {
  if (opt_.threads > 0) {
    at::set_num_threads(opt_.threads);
    set_num_threads(opt_.threads);
  }
  const int start = load_finished();
  const int last = opt_.stop_after_block >= 0 ? std::min(opt_.stop_after_block, L_ - 1) : L_ - 1;
  if (start <= last && opt_.quantize_kv() && opt_.smooth_from_stats()) {
    const int64_t ctx =
        opt_.stats_ctx > 0 ? opt_.stats_ctx : std::min<int64_t>(2048, fp_.config.seq_len);
    const CalibWindows w{std::min(ctx, static_cast<int64_t>(calib_.size())), opt_.stats_windows};
    init_smooth_ = smoothing_from_stats(collect_kv_stats(fp_, calib_, w));
    // That pass read every weight in the mapped files; the blocks read them again one at a time.
    fp_.storage.release_file_pages();
  }
  x_fp_ = embed();
  x_q_ = x_fp_;
  for (int i = 0; i < start && i <= last; ++i) {  // replay the finished blocks
    const BlockQuant fq = frozen(i, result_.blocks[static_cast<size_t>(i)]);
    x_q_ = pass(x_q_, i, i, &fq, nullptr);
    x_fp_ = pass(x_fp_, i, i, nullptr, nullptr);
    blocks_[static_cast<size_t>(i)].reset();
    report({i, L_, 0, opt_.epochs, result_.blocks[static_cast<size_t>(i)].loss_after, 0, 0, true,
            true});
  }
  for (int i = start; i <= last; ++i) units_total_ += units(i);
  for (int i = start; i <= last; ++i) {
    result_.blocks.push_back(train(i));
    const BlockCalibration& b = result_.blocks.back();
    if (!opt_.results_dir.empty()) {
      write_block_file(block_file_path(opt_.results_dir, i), {i, record_, b});
    }
    blocks_[static_cast<size_t>(i)].reset();
    report({i, L_, opt_.epochs, opt_.epochs, b.loss_after, 0, 0, true, false});
  }
  result_.blocks.resize(std::min(result_.blocks.size(), static_cast<size_t>(last + 1)));
  return result_;
}

}  // namespace

CalibrationResult calibrate_crr(const Model& fp, const std::vector<int>& calib,
                                const CrrOptions& opt, const CrrProgressFn& progress,
                                const Model* frozen) {
  CalibrationResult r = CrrRun(fp, calib, opt, progress, frozen).run();
  r.quant = opt.quant_info();
  return r;
}

}  // namespace wkvq
