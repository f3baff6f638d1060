// The file of one finished block of a CRR calibration run, so an interrupted run can resume
// (design.md §2.3: per-block results saved as they finish). One file per block in the run's
// results directory: block_0000.wkvqcal, block_0001.wkvqcal, ...
//
// Byte layout (little endian, no padding):
//   [0, 8)     magic "WKVQCAL\0"
//   u32        format version (kBlockFileVersion)
//   u32        block index
//   u32 n, n bytes   run record: the options and the model/data fingerprint of the run, text
//   7 times    u64 count, f32 clip_hi[count], f32 clip_lo[count]     (kLinearNames order)
//   u64 kv_dim, f32 dk[kv_dim], sk[kv_dim], dv[kv_dim], sv[kv_dim]
//   f64 loss_before, f64 loss_after, f64 seconds
//   u64        FNV-1a 64 checksum of every byte before it
// The parser is total: any byte string gives a BlockFile or a wkvq::Error naming the file and
// the field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "calibrate/calibration_result.h"

namespace wkvq {

inline constexpr uint32_t kBlockFileVersion = 1;

struct BlockFile {
  int block = 0;
  std::string record;
  BlockCalibration data;
};

// dir/block_NNNN.wkvqcal
std::string block_file_path(const std::string& dir, int block);

std::vector<uint8_t> serialize_block_file(const BlockFile& f);
// `name` is used in error messages.
BlockFile parse_block_file(const uint8_t* data, size_t size, const std::string& name);

// Writes atomically (a temporary file renamed into place), so a killed run never leaves a torn
// block file behind.
void write_block_file(const std::string& path, const BlockFile& f);
BlockFile read_block_file(const std::string& path);
// The block files 0 .. n_layers-1 of a finished run in `dir`, checked to be one run's (the same
// record). Throws naming the first missing or mismatched file.
std::vector<BlockFile> read_block_files(const std::string& dir, int n_layers);

}  // namespace wkvq
