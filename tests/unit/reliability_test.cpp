// Reliability at the library level: the all-or-nothing directory write, the one KV
// settings check, the checksums of the quantized directory, token ids checked before scoring,
// and KV statistics that leave out the attention-sink positions.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "core/error.h"
#include "eval/perplexity.h"
#include "formats/kv_quant.h"
#include "io/atomic_dir.h"
#include "model/loader.h"
#include "model/quantized_model_io.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_stats.h"
#include "unit/quantized_model_fixture.h"

namespace wkvq {
namespace {

using namespace qmtest;  // NOLINT(google-build-using-namespace): test helpers

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Message of the wkvq::Error that f throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(AtomicDirectory, AFailedFillLeavesTheOldDirectoryAndNoTemporaries) {
  TempDir tmp;
  const std::string dir = tmp.path("out");
  write_directory_atomically(dir, [](const std::string& t) { test::write_file(t + "/a", "old"); });
  EXPECT_EQ(read_all(dir + "/a"), "old");
  EXPECT_THROW(write_directory_atomically(dir,
                                          [](const std::string& t) {
                                            test::write_file(t + "/a", "new, half written");
                                            throw std::runtime_error("disk full");
                                          }),
               std::runtime_error);
  EXPECT_EQ(read_all(dir + "/a"), "old");
  EXPECT_EQ(listing(tmp.str()), std::vector<std::string>{"out"});
  write_directory_atomically(dir, [](const std::string& t) { test::write_file(t + "/b", "new"); });
  EXPECT_EQ(listing(dir), std::vector<std::string>{"b"}) << "replaced whole, not merged";
  EXPECT_EQ(listing(tmp.str()), std::vector<std::string>{"out"});
}

TEST(AtomicDirectory, LeftoversOfAKilledSaveAreCleared) {
  TempDir tmp;
  const std::string dir = tmp.path("out");
  // killed between the two renames of the fallback swap: only DIR.wkvq-old holds the model
  fs::create_directories(old_directory_name(dir));
  test::write_file(old_directory_name(dir) + "/a", "previous");
  fs::create_directories(new_directory_name(dir));
  test::write_file(new_directory_name(dir) + "/a", "partial");
  EXPECT_THROW(write_directory_atomically(
                   dir, [](const std::string&) { throw std::runtime_error("fails again"); }),
               std::runtime_error);
  EXPECT_EQ(read_all(dir + "/a"), "previous") << "the previous contents are moved back";
  EXPECT_EQ(listing(tmp.str()), std::vector<std::string>{"out"});
}

TEST(KvSettings, OneCheckForEveryUser) {
  EXPECT_NO_THROW(validate_kv_settings({4, 0}, 32));
  EXPECT_NO_THROW(validate_kv_settings({4, 32}, 32));
  EXPECT_NO_THROW(validate_kv_settings({4, 12}, 32));  // the last group is shorter
  EXPECT_NO_THROW(validate_kv_settings({16, 0}, 32));
  const std::string msg = error_of([] { validate_kv_settings({4, 33}, 32); });
  EXPECT_NE(msg.find("--kvgroup 33"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1..32"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { validate_kv_settings({5, 0}, 32); }).find("--kvbits"), std::string::npos);
  EXPECT_NE(error_of([] { validate_kv_settings({4, -1}, 32); }), "");
  // the KV cache refuses a group wider than a token instead of computing a narrower one
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, true);  // kv_dim 32
  KvQuantSettings kv;
  kv.bits = 4;
  kv.group = 33;
  EXPECT_EQ(error_of([&] { KvCache cache(c, 4, kv); }).find("--kvgroup 33"), 0u);
}

TEST(KvSettings, TheWriterRefusesWhatTheReaderRefuses) {
  TempDir tmp;
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, true);
  Model m = quantized_model(c, 4, 32, "", false, base_seed());
  m.quant.kv.group = c.kv_dim() + 1;
  const std::string save = error_of([&] { save_quantized_model(m, tmp.path("q"), ""); });
  EXPECT_NE(save.find("--kvgroup 33: a KV group is 0 (head_dim) or 1..32"), std::string::npos)
      << save;
  EXPECT_FALSE(fs::exists(tmp.path("q")));
  m.quant.kv.group = 0;
  save_quantized_model(m, tmp.path("q"), "");
  const std::string config = tmp.path("q") + "/config.json";
  nlohmann::json j = nlohmann::json::parse(read_all(config));
  j["quantization_config"]["kv_group_size"] = c.kv_dim() + 1;
  test::write_file(config, j.dump());
  const std::string load = error_of([&] { (void)load_model(tmp.path("q")); });
  EXPECT_NE(load.find("--kvgroup 33: a KV group is 0 (head_dim) or 1..32"), std::string::npos)
      << load;
}

TEST(Checksums, AFlippedByteFailsTheLoadAVersion1DirectoryLoads) {
  TempDir tmp;
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, true);
  save_quantized_model(quantized_model(c, 4, 32, "", false, base_seed()), tmp.path("q"), "");
  const std::string st = tmp.path("q") + "/model.safetensors";
  std::string bytes = read_all(st);
  bytes[bytes.size() - 7] = static_cast<char>(bytes[bytes.size() - 7] ^ 0x01);  // one bit
  test::write_file(st, bytes);
  const std::string msg = error_of([&] { (void)load_model(tmp.path("q")); });
  EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  const std::string config = tmp.path("q") + "/config.json";
  nlohmann::json j = nlohmann::json::parse(read_all(config));
  j["quantization_config"]["format_version"] = 1;
  j["quantization_config"].erase("checksums");
  test::write_file(config, j.dump());
  EXPECT_NO_THROW((void)load_model(tmp.path("q"))) << "version 1: no checksums to verify";
  j["quantization_config"]["format_version"] = 2;
  test::write_file(config, j.dump());
  EXPECT_NE(error_of([&] { (void)load_model(tmp.path("q")); }).find("checksums"), std::string::npos)
      << "version 2 without checksums";
}

TEST(PerplexityTokens, AnIdOutsideTheVocabularyIsRefusedBeforeScoring) {
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, true);
  const Model m = make_random_model(c, base_seed());
  std::vector<int> stream = random_tokens(c.vocab_size, 40, base_seed() + 1u);
  PplOptions opt;
  opt.ctx = 8;
  opt.max_windows = 2;
  stream[15] = c.vocab_size;  // the last token of window 1: only ever a target, never an input
  const std::string msg = error_of([&] { (void)perplexity(m, stream, opt); });
  EXPECT_NE(msg.find("token 15"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vocabulary of 96"), std::string::npos) << msg;
  stream[15] = 1;
  stream[30] = -1;  // beyond the windows scored: not looked at
  EXPECT_NO_THROW((void)perplexity(m, stream, opt));
}

// K/V at window positions >= 1 do not depend on whether position 0 is recorded, so the ranges
// with the sink left out, merged with the ranges of position 0 alone (windows of one token: the
// same first tokens), are the ranges of everything.
TEST(KvStatistics, SinkPositionsAreLeftOut) {
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, true);
  const Model m = make_random_model(c, base_seed());
  const std::vector<int> stream = random_tokens(c.vocab_size, 64, base_seed() + 2u);
  const KvChannelStats all = collect_kv_stats(m, stream, {16, 4, 0});
  const KvChannelStats rest = collect_kv_stats(m, stream, {16, 4, 1});
  EXPECT_EQ(all.tokens, 64);
  EXPECT_EQ(rest.tokens, 60);
  std::vector<int> firsts;
  for (int w = 0; w < 4; ++w) firsts.push_back(stream[static_cast<size_t>(16 * w)]);
  const KvChannelStats sink = collect_kv_stats(m, firsts, {1, 4, 0});
  const float tol = 1e-5f;  // one-token and 16-token passes round differently
  int differs = 0;
  for (size_t i = 0; i < all.kmin.size(); ++i) {
    EXPECT_NEAR(std::min(rest.kmin[i], sink.kmin[i]), all.kmin[i], tol);
    EXPECT_NEAR(std::max(rest.kmax[i], sink.kmax[i]), all.kmax[i], tol);
    EXPECT_NEAR(std::min(rest.vmin[i], sink.vmin[i]), all.vmin[i], tol);
    EXPECT_NEAR(std::max(rest.vmax[i], sink.vmax[i]), all.vmax[i], tol);
    differs += rest.kmax[i] != all.kmax[i] || rest.kmin[i] != all.kmin[i];
  }
  EXPECT_GT(differs, 0) << "position 0 sets some range: the test would not see a difference";
  EXPECT_NE(error_of([&] { (void)collect_kv_stats(m, stream, {16, 4, 16}); }), "");
}

}  // namespace
}  // namespace wkvq
