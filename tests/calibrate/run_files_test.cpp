// The files of a calibration run that wkvq and its worker exchange: the options record
// (CrrOptions::record / parse_record), the calibration token file, and the set of block files
// read back once the run is finished (read_block_files).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "calibrate/block_file.h"
#include "calibrate/crr.h"
#include "calibrate/token_file.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "test_support.h"

namespace wkvq {
namespace {

namespace fs = std::filesystem;

CrrOptions unusual_options() {
  CrrOptions o;  // every field away from its default, so a dropped field shows
  o.k = 2;
  o.epochs = 7;
  o.samples = 33;
  o.window = 100;
  o.batch = 3;
  o.learn_lwc = false;
  o.kv.smooth = KvSmoothMode::Learned;
  o.stats_init = false;
  o.stats_windows = 5;
  o.stats_ctx = 77;
  o.loss = CrrLoss::Mse;
  o.kv.poq = false;
  o.wbits = 2;
  o.wgroup = 0;
  o.kv.bits = 8;
  o.kv.group = 16;
  o.lr_lwc = 0.0123456789012345;
  o.lr_smooth = 1e-7;
  o.lwc_init = 2.5f;
  o.seed = 18446744073709551557ull;
  return o;
}

TEST(CrrRecord, ParsesBackToTheSameOptions) {
  const CrrOptions o = unusual_options();
  const CrrOptions p = CrrOptions::parse_record(o.record());
  EXPECT_EQ(p.record(), o.record());
  EXPECT_EQ(p.seed, o.seed);
  EXPECT_EQ(p.lr_lwc, o.lr_lwc);
  EXPECT_EQ(CrrOptions::parse_record(CrrOptions().record()).record(), CrrOptions().record());
  // frozen weights: a line of their own, written only when set (earlier records stay as they were)
  CrrOptions f = CrrOptions();
  f.learn_lwc = false;
  f.frozen_weights = true;
  EXPECT_EQ(CrrOptions().record().find("frozen_weights"), std::string::npos);
  EXPECT_NE(f.record().find("frozen_weights=1\n"), std::string::npos);
  EXPECT_TRUE(CrrOptions::parse_record(f.record()).frozen_weights);
  EXPECT_EQ(CrrOptions::parse_record(f.record()).record(), f.record());
}

TEST(CrrRecord, KvFormatBeyondBitsAndGroupIsRecorded) {
  // value bits, the fp16 window and rel8 metadata: lines of their own, only when set
  for (const char* key : {"kvvbits", "kvwindow", "kvmeta"}) {
    EXPECT_EQ(CrrOptions().record().find(key), std::string::npos) << key;
  }
  CrrOptions o = unusual_options();
  o.kv.vbits = 3;
  o.kv.window = 16;
  o.kv.rel8 = true;
  const std::string r = o.record();
  for (const char* line : {"kvvbits=3\n", "kvwindow=16\n", "kvmeta=rel8\n"}) {
    EXPECT_NE(r.find(line), std::string::npos) << line;
  }
  const CrrOptions p = CrrOptions::parse_record(r);
  EXPECT_EQ(p.kv, o.kv);
  EXPECT_EQ(p.record(), r);
  EXPECT_NE(r, unusual_options().record());  // a resumed run with another format is refused
  std::string bad = r;
  bad.replace(bad.find("kvmeta=rel8"), 11, "kvmeta=fp16");
  EXPECT_THROW(CrrOptions::parse_record(bad), Error);
}

TEST(CrrRecord, MalformedRecordsAreErrors) {
  const std::string good = unusual_options().record();
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  const std::vector<std::string> bad = {"",
                                        "wkvq-crr 2\n",
                                        replaced("k=2\n", ""),                   // missing key
                                        replaced("k=2\n", "k=2\nk=3\n"),         // repeated key
                                        replaced("k=2\n", "k=two\n"),            // not an integer
                                        replaced("k=2\n", "k=2x\n"),             // trailing garbage
                                        replaced("loss=mse", "loss=l1"),         // unknown loss
                                        replaced("poq=0", "poq=yes"),            // not 0/1
                                        replaced("lr_lwc=", "lr_lwc=abc"),       // not a number
                                        replaced("k=2\n", "k=2\nsurprise=1\n"),  // unknown key
                                        replaced("k=2\n", "k 2\n")};             // not key=value
  for (const std::string& s : bad) {
    EXPECT_THROW(CrrOptions::parse_record(s), Error) << s;
  }
}

TEST(CrrOptions, QuantInfoNamesWhatWasLearned) {
  CrrOptions o;
  EXPECT_EQ(o.quant_info().kv.smooth, KvSmoothMode::Learned);
  EXPECT_EQ(o.quant_info().method, "wkvquant");
  o.kv.smooth = KvSmoothMode::Stats;
  EXPECT_EQ(o.quant_info().kv.smooth, KvSmoothMode::Stats);
  o.kv.bits = 16;  // KV not quantized: nothing smoothed
  EXPECT_EQ(o.quant_info().kv.smooth, KvSmoothMode::None);
  o.kv.bits = 4;
  EXPECT_NE(o.quant_info().calibration.find("lwc, k=1"), std::string::npos)
      << o.quant_info().calibration;
}

TEST(TokenFile, RoundTripsAndRejectsBadFiles) {
  const test::TempDir d("run_files_tokens");
  const std::string path = d.path("t.bin");
  const std::vector<int> tokens = {1, 0, 511, 7, 300};
  write_token_file(path, tokens);
  EXPECT_EQ(read_token_file(path, 512), tokens);
  EXPECT_THROW(read_token_file(path, 511), Error);  // 511 outside a 511-token vocabulary
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_file_atomically(path, bytes.data(), n);
    EXPECT_THROW(read_token_file(path, 512), Error) << "truncated to " << n;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  write_file_atomically(path, longer.data(), longer.size());
  EXPECT_THROW(read_token_file(path, 512), Error);
  std::vector<uint8_t> huge = bytes;
  huge[15] = 0x40;  // count 2^62 + 5
  write_file_atomically(path, huge.data(), huge.size());
  EXPECT_THROW(read_token_file(path, 512), Error);
  EXPECT_THROW(read_token_file(d.path("missing.bin"), 512), Error);
}

BlockFile block(int i, const std::string& record) {
  BlockFile f;
  f.block = i;
  f.record = record;
  f.data.smoothing = LayerSmoothing::identity(4);
  f.data.loss_after = i;
  return f;
}

TEST(BlockFiles, ReadsAFinishedRunAndRejectsAnUnfinishedOrMixedOne) {
  const test::TempDir d("run_files_blocks");
  const std::string dir = d.str();
  for (int i = 0; i < 3; ++i) write_block_file(block_file_path(dir, i), block(i, "run A"));
  const std::vector<BlockFile> files = read_block_files(dir, 3);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[2].data.loss_after, 2.0);
  EXPECT_THROW(read_block_files(dir, 4), Error);  // block 3 missing
  write_block_file(block_file_path(dir, 1), block(1, "run B"));
  EXPECT_THROW(read_block_files(dir, 3), Error);  // another run's block
  write_block_file(block_file_path(dir, 1), block(2, "run A"));
  EXPECT_THROW(read_block_files(dir, 3), Error);  // block 2 in block 1's file
}

}  // namespace
}  // namespace wkvq
