// Mutated model files never crash the loaders: each gives a model or a wkvq::Error.
#include <gtest/gtest.h>

#include <random>

#include "loader_fixture.h"

namespace wkvq {
namespace {

namespace fs = std::filesystem;
using namespace loader_test;

// ---- fuzz -------------------------------------------------------------------------------------

// Mutates bytes, mostly near the front where the headers are; sometimes truncates or extends.
std::string mutate(std::string b, std::mt19937_64& rng, size_t hot_bytes) {
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits && !b.empty(); ++e) {
    const uint64_t kind = rng() % 10;
    const size_t span = (kind < 7 && hot_bytes > 0) ? std::min(hot_bytes, b.size()) : b.size();
    const size_t at = static_cast<size_t>(rng() % span);
    if (kind < 8) {
      b[at] =
          static_cast<char>(rng() % 2 ? (b[at] ^ (1 << (rng() % 8))) : static_cast<char>(rng()));
    } else if (kind == 8) {
      b.resize(at);
    } else {
      b.insert(at, 1 + rng() % 8, static_cast<char>(rng()));
    }
  }
  return b;
}

// Either a model or a wkvq::Error, never a crash or another exception.
void expect_model_or_error(const std::string& path, uint64_t seed, int iter) {
  try {
    const Model m = load_model(path);
    EXPECT_NO_THROW(m.config.validate("fuzz"));
  } catch (const Error&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << "seed " << seed << " iteration " << iter << ": non-wkvq exception "
                  << e.what();
  }
}

TEST(LoaderFuzz, MutatedFilesGiveModelOrError) {
  const uint64_t seed = 20240601;
  std::mt19937_64 rng(seed);
  Spec s;
  const auto w = make_weights(s, 9);
  const std::string bin = llama2c_bytes(s, w);
  const StImage img = st_image(w, "F16");
  const std::string st = img.bytes();
  const size_t st_header = 8 + img.header.dump().size();
  const std::string cfg = config_json(s).dump(1);
  test::TempDir tmp("loader");
  const std::string bin_path = tmp.path("fuzz.bin");
  const std::string dir = tmp.sub("hf");
  int errors = 0, models = 0;
  for (int i = 0; i < 600; ++i) {
    if (i % 3 == 0) {
      test::write_file(bin_path, mutate(bin, rng, 28));
      expect_model_or_error(bin_path, seed, i);
      continue;
    }
    test::write_file(dir + "/config.json", i % 3 == 1 ? cfg : mutate(cfg, rng, cfg.size()));
    test::write_file(dir + "/model.safetensors", i % 3 == 2 ? st : mutate(st, rng, st_header));
    try {
      load_model(dir);
      ++models;
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "seed " << seed << " iteration " << i << ": " << e.what();
    }
  }
  EXPECT_GT(errors, 100) << "the mutations should break most headers";
  EXPECT_GT(models, 0) << "some mutations (e.g. in values) leave a loadable model";
}

}  // namespace
}  // namespace wkvq
