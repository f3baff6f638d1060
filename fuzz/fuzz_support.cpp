#include "fuzz_support.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace wkvq::fuzz {

namespace fs = std::filesystem;

ScratchDir::ScratchDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = (tmp != nullptr && *tmp != '\0' ? std::string(tmp) : std::string("/tmp")) +
                        "/wkvq-fuzz-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror(("wkvq fuzz: cannot create a scratch directory " + pattern).c_str());
    std::abort();
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string ScratchDir::write(const std::string& name, const uint8_t* data, size_t size) const {
  const std::string p = path_ + "/" + name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "wkvq fuzz: cannot write %zu bytes to %s\n", size, p.c_str());
    std::abort();
  }
  return p;
}

const ScratchDir& scratch() {
  static const ScratchDir dir;
  return dir;
}

std::string required_env(const char* name, const char* what) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    std::fprintf(stderr, "wkvq fuzz: set %s to %s (the CTest label fuzz sets it)\n", name, what);
    std::abort();
  }
  return v;
}

void link_quantized_safetensors(const char* env) {
  const std::string src =
      required_env(env, "a directory written by wkvq quantize (for its model.safetensors)");
  for (const char* f : {"model.safetensors", "wkvq_kv.safetensors"}) {
    if (fs::exists(src + "/" + f)) {
      fs::create_symlink(fs::absolute(src + "/" + f), scratch().path() + "/" + f);
    }
  }
}

}  // namespace wkvq::fuzz
