// wkvq kv-roundtrip: K and V rows of one layer through a KV lab method (src/kvlab): what the
// method's cache gives back when it holds all of them (the view of kvlab/sim_kv_store.h), for
// reference comparisons (tests/python/test_kv_methods.py).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "io/npy.h"
#include "kvlab/kv_lab_method.h"
#include "kvlab/sim_kv_store.h"

namespace wkvq::cli {

namespace {

struct RoundTripOptions {
  std::string method, k_in, v_in, out_dir;
  int64_t tokens = 0, head_dim = 0, kv_heads = 0;
};

std::vector<float> read_f32(const std::string& path, int64_t count) {
  std::ifstream f(path, std::ios::binary);
  WKVQ_REQUIRE(f.good(), "cannot open ", path);
  std::vector<float> x(static_cast<size_t>(count));
  f.read(reinterpret_cast<char*>(x.data()), static_cast<std::streamsize>(count * 4));
  WKVQ_REQUIRE(f.gcount() == count * 4 && f.peek() == std::char_traits<char>::eof(), path,
               ": expected exactly ", count * 4,
               " bytes (--tokens x --kv-heads x --head-dim "
               "little-endian float32)");
  return x;
}

void run_roundtrip(const RoundTripOptions& o) {
  LlamaConfig c;
  c.n_layers = 1;
  c.n_kv_heads = static_cast<int>(o.kv_heads);
  c.n_heads = c.n_kv_heads;
  c.head_dim = static_cast<int>(o.head_dim);
  c.dim = c.n_heads * c.head_dim;
  const int64_t C = c.kv_dim();
  const KvMethodSpec spec = parse_kv_method(o.method);
  WKVQ_REQUIRE(!(spec.family == KvFamily::Int && (spec.smooth || spec.rel8)),
               "kv-roundtrip: ", spec.label(),
               " needs a model's smoothing or static ranges; use it with wkvq ppl");
  const KvLabMethod m(spec, c, nullptr, nullptr);
  const auto k = read_f32(o.k_in, o.tokens * C);
  const auto v = read_f32(o.v_in, o.tokens * C);
  SimKvStore store(m, c, o.tokens, true);
  std::vector<float> vk(k.size()), vv(v.size());
  store.store_and_view(0, k.data(), v.data(), o.tokens, 0, o.tokens, vk.data(), vv.data());
  write_npy_f32(o.out_dir + "/k.npy", vk.data(), {o.tokens, C});
  write_npy_f32(o.out_dir + "/v.npy", vv.data(), {o.tokens, C});
  if (!m.codebook().empty()) {
    std::vector<float> rot;
    for (bool key : {true, false}) {
      for (int64_t h = 0; h < o.kv_heads; ++h) {
        for (double x : m.rotation(0, key, h)) rot.push_back(static_cast<float>(x));
      }
    }
    write_npy_f32(o.out_dir + "/rotations.npy", rot.data(),
                  {2, o.kv_heads, o.head_dim, o.head_dim});
  }
  std::printf("{\"method\": \"%s\", \"bits_per_element\": %.17g, \"codebook\": [",
              spec.label().c_str(), kv_bits_per_element(spec, m.shape(), o.tokens));
  for (size_t i = 0; i < m.codebook().size(); ++i) {
    std::printf("%s%.17g", i ? ", " : "", m.codebook()[i]);
  }
  std::printf("]}\n");
}

}  // namespace

void register_kv_roundtrip(CLI::App& app) {
  auto o = std::make_shared<RoundTripOptions>();
  CLI::App* cmd = app.add_subcommand(
      "kv-roundtrip",
      "K/V rows of one layer through a KV method (--kv-method of ppl): writes what its cache "
      "gives back when it holds them all (OUT/k.npy, OUT/v.npy; turbo also OUT/rotations.npy) "
      "and prints the method, bits per element at that context and codebook as JSON");
  cmd->add_option("--kv-method", o->method, "The method, as wkvq ppl --kv-method (no smoothing)")
      ->required();
  cmd->add_option("--k", o->k_in, "Keys: --tokens x kv_dim little-endian float32")->required();
  cmd->add_option("--v", o->v_in, "Values: the same shape")->required();
  cmd->add_option("--tokens", o->tokens, "Rows")->required()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--head-dim", o->head_dim, "Channels per head")
      ->required()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--kv-heads", o->kv_heads, "KV heads (kv_dim = kv-heads x head-dim)")
      ->required()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--out", o->out_dir, "Existing directory for the .npy files")->required();
  cmd->callback([o] { run_roundtrip(*o); });
}

}  // namespace wkvq::cli
